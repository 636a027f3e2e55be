//! The benchmark's command line: the Rust figures, with `--compare` the Python baseline and
//! the table, and with `--chart` the pictures. See the library's documentation and the book's
//! "Performance" chapter.
//!
//! Run: `cargo run --release -p bench -- --compare --chart bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use bench::{Scale, chart, compare, machine};

const USAGE: &str = "usage: bench [--compare] [--smoke] [--chart FOLDER]
  --compare       also run the CPython baseline (bench/baseline.py) and print a table of both
  --smoke         tiny counts that only prove every figure runs; the values mean nothing
  --chart FOLDER  also draw the figures into FOLDER/results.svg and FOLDER/sizes.svg";

fn main() -> ExitCode {
    // A child started by `spawn` or `forkserver` runs this `main` again: here it does its
    // work and ends, before the command line is read.
    if let Err(error) = multiprocessing::init() {
        eprintln!("bench: {error}");
        return ExitCode::FAILURE;
    }
    let mut compare = false;
    let mut smoke = false;
    let mut chart = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--compare" => compare = true,
            "--smoke" => smoke = true,
            "--chart" => match args.next() {
                Some(folder) => chart = Some(PathBuf::from(folder)),
                None => {
                    eprintln!("bench: --chart needs a folder\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
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
    match run(compare, smoke, chart) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(compare: bool, smoke: bool, chart: Option<PathBuf>) -> bench::Result<()> {
    if compare {
        compare::check_python()?;
    }
    let scale = if smoke { Scale::SMOKE } else { Scale::FULL };
    let machine = machine::describe();
    println!("# Rust runtime: {machine}");
    let rust = bench::run(&scale)?;
    let python = if compare {
        println!("# CPython baseline: {}", compare::script().display());
        let python = compare::run_baseline(smoke)?;
        println!();
        print!("{}", compare::report(&machine, &rust, &python));
        python
    } else {
        bench::measure::Figures::default()
    };
    if let Some(folder) = chart {
        let caption = format!("Measured {machine}");
        let [figures, sizes] = chart::write(&folder, &caption, &rust, &python)?;
        println!("\nDrew {} and {}.", figures.display(), sizes.display());
    }
    Ok(())
}
