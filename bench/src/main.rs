//! The benchmark's command line. See the library's documentation.
//!
//! Run: `cargo run --release -p bench`.

use std::process::ExitCode;

use bench::{Scale, machine};

const USAGE: &str = "usage: bench [--smoke]
  --smoke    tiny counts that only prove every figure runs; the values mean nothing";

fn main() -> ExitCode {
    let mut smoke = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => smoke = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("bench: unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match run(smoke) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(smoke: bool) -> bench::Result<()> {
    let scale = if smoke { Scale::SMOKE } else { Scale::FULL };
    let machine = machine::describe();
    println!("# Rust runtime: {machine}");
    bench::run(&scale)?;
    Ok(())
}
