//! The benchmark's command line: the Rust figures, and with `--compare` the Python baseline and
//! the table. See the library's documentation and the book's "Performance" chapter.
//!
//! Run: `cargo run --release -p bench -- --compare`.

use std::process::ExitCode;

use bench::{Scale, compare, machine};

const USAGE: &str = "usage: bench [--compare] [--smoke]
  --compare  also run the CPython baseline (bench/baseline.py) and print a table of both
  --smoke    tiny counts that only prove every figure runs; the values mean nothing";

fn main() -> ExitCode {
    // A child started by `spawn` or `forkserver` runs this `main` again: here it does its
    // work and ends, before the command line is read.
    if let Err(error) = multiprocessing::init() {
        eprintln!("bench: {error}");
        return ExitCode::FAILURE;
    }
    let mut compare = false;
    let mut smoke = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--compare" => compare = true,
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
    match run(compare, smoke) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(compare: bool, smoke: bool) -> bench::Result<()> {
    if compare {
        compare::check_python()?;
    }
    let scale = if smoke { Scale::SMOKE } else { Scale::FULL };
    let machine = machine::describe();
    println!("# Rust runtime: {machine}");
    let rust = bench::run(&scale)?;
    if !compare {
        return Ok(());
    }
    println!("# CPython baseline: {}", compare::script().display());
    let python = compare::run_baseline(smoke)?;
    println!();
    print!("{}", compare::report(&machine, &rust, &python));
    Ok(())
}
