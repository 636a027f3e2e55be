//! `--compare`: runs the Python baseline after the Rust figures and prints one table with
//! both, the ratio between them, each figure against its floor, and the targets.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Result;
use crate::catalogue::{self, Better, FIGURES, Spec, Target};
use crate::measure::Figures;

/// The environment variable that names the Python interpreter; `python3` when unset.
pub const PYTHON_VAR: &str = "BENCH_PYTHON";

/// The Python baseline, beside this package's manifest.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline.py")
}

/// The interpreter to run: `$BENCH_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var(PYTHON_VAR).unwrap_or_else(|_| "python3".to_owned())
}

/// Checks that the interpreter runs, before minutes are spent on the Rust figures.
///
/// # Errors
///
/// A message saying what to install or set when it does not.
pub fn check_python() -> Result<()> {
    let python = python();
    let status = Command::new(&python)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map_err(|error| {
            format!(
                "--compare needs Python 3 to run the baseline, and `{python}` cannot be run \
                 ({error}); install python3 or set {PYTHON_VAR} to an interpreter"
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{python} --version` failed ({status}); set {PYTHON_VAR} to Python 3").into())
    }
}

/// Runs the baseline (with `--smoke` if `smoke`), echoing its lines as they come, and returns
/// its figures and notes.
///
/// # Errors
///
/// When it cannot be started or does not exit with code 0.
pub fn run_baseline(smoke: bool) -> Result<Figures> {
    let python = python();
    let script = script();
    let mut command = Command::new(&python);
    command.arg(&script).stdout(Stdio::piped());
    if smoke {
        command.arg("--smoke");
    }
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot run `{python} {}`: {error}", script.display()))?;
    let mut text = String::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        text.push_str(&line);
        text.push('\n');
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("the Python baseline failed ({status}); its error is above").into());
    }
    Ok(Figures::parse(&text))
}

/// The report `--compare` ends with, in Markdown: where and how it was measured, each run's
/// notes, then the [`table`].
pub fn report(machine: &str, rust: &Figures, python: &Figures) -> String {
    let notes = |figures: &Figures| figures.notes().join("; ");
    format!(
        "Measured {machine}, with `cargo run --release -p bench -- --compare`.\n\n\
         - Rust: {}.\n\
         - {}.\n\n\
         {}",
        notes(rust),
        notes(python),
        table(rust, python)
    )
}

/// The comparison table, in Markdown: one row per figure of the catalogue.
pub fn table(rust: &Figures, python: &Figures) -> String {
    let mut table = String::from(
        "| figure | Rust | Python | Rust better by | against the floor | target |\n\
         | --- | ---: | ---: | ---: | --- | --- |\n",
    );
    for spec in FIGURES {
        table.push_str(&row(spec, rust, python));
        table.push('\n');
    }
    table
}

/// One row of the table.
fn row(spec: &Spec, rust: &Figures, python: &Figures) -> String {
    let cell = |figures: &Figures| {
        figures
            .get(spec.name)
            .map_or("—".to_owned(), |value| grouped(&spec.format(value)))
    };
    let ratio = better_by(spec, rust, python).map_or(String::new(), |r| format!("{r:.1}x"));
    let floor = match (spec.floor, against_floor(spec, rust)) {
        (Some(floor), Some(share)) => describe_floor(spec.better, floor, share),
        _ if spec.name.starts_with("raw_") => "(the floor)".to_owned(),
        _ => String::new(),
    };
    let targets: Vec<String> = spec
        .targets
        .iter()
        .map(|target| {
            let verdict = match met(*target, spec, rust, python) {
                Some(true) => "met",
                Some(false) => "missed",
                None => "not measured",
            };
            format!("{}: {verdict}", describe_target(*target))
        })
        .collect();
    let unit = if spec.unit.is_empty() {
        String::new()
    } else {
        format!(" ({})", spec.unit)
    };
    format!(
        "| `{}`{unit} | {} | {} | {ratio} | {floor} | {} |",
        spec.name,
        cell(rust),
        cell(python),
        targets.join("; ")
    )
}

/// How many times better the Rust figure is than the Python one: Python's time over Rust's,
/// or Rust's rate over Python's.
pub fn better_by(spec: &Spec, rust: &Figures, python: &Figures) -> Option<f64> {
    let (rust, python) = (rust.get(spec.name)?, python.get(spec.name)?);
    match spec.better {
        Better::Lower => Some(python / rust),
        Better::Higher => Some(rust / python),
        Better::Neither => None,
    }
}

/// The Rust figure divided by its floor, measured in the same run.
pub fn against_floor(spec: &Spec, rust: &Figures) -> Option<f64> {
    Some(rust.get(spec.name)? / rust.get(spec.floor?)?)
}

/// `1.21x fork + waitpid` for a time, `64% of pipe bandwidth` for a rate.
fn describe_floor(better: Better, floor: &str, share: f64) -> String {
    let what = match floor {
        catalogue::RAW_FORK => "bare fork + waitpid",
        catalogue::RAW_SPAWN => "bare posix_spawn + waitpid",
        catalogue::RAW_ROUNDTRIP => "bare pipe round trip on one CPU",
        catalogue::RAW_ROUNDTRIP_PLACED => "bare pipe round trip placed alike",
        _ => "bare pipe bandwidth",
    };
    match better {
        Better::Higher => format!("{:.0}% of {what}", share * 100.0),
        _ => format!("{share:.2}x {what}"),
    }
}

fn describe_target(target: Target) -> String {
    match target {
        Target::WithinFloor(times) => format!("≤ {times}x floor"),
        Target::ShareOfFloor(share) => format!("≥ {:.0}% of floor", share * 100.0),
        Target::TimesPython(times) => format!("≥ {times}x CPython"),
        Target::AtLeast(value) => format!("≥ {}", grouped(&format!("{value}"))),
    }
}

/// Whether the target is met; `None` when a figure it needs is missing.
fn met(target: Target, spec: &Spec, rust: &Figures, python: &Figures) -> Option<bool> {
    match target {
        Target::WithinFloor(times) => Some(against_floor(spec, rust)? <= times),
        Target::ShareOfFloor(share) => Some(against_floor(spec, rust)? >= share),
        Target::TimesPython(times) => Some(better_by(spec, rust, python)? >= times),
        Target::AtLeast(value) => Some(rust.get(spec.name)? >= value),
    }
}

/// A whole number with thousands separators (`1234567` → `1,234,567`); anything else as is.
fn grouped(number: &str) -> String {
    if number.len() <= 4 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return number.to_owned();
    }
    let mut out = String::new();
    for (i, digit) in number.chars().enumerate() {
        if i > 0 && (number.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
