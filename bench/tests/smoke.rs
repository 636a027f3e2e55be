//! Runs the benchmark once with tiny counts (`--smoke`) to prove that every figure is measured,
//! printed and drawn. No test here looks at a value: a timing is a benchmark, not a test.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use bench::catalogue::{FIGURES, SIZES};
use bench::chart::{FIGURES_SVG, SIZES_SVG};
use bench::compare::PYTHON_VAR;

/// Runs the built benchmark with `args`, and `BENCH_PYTHON` set to `python` if given.
fn bench(args: &[&str], python: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bench"));
    command.args(args);
    if let Some(python) = python {
        command.env(PYTHON_VAR, python);
    }
    command.output().expect("the bench binary runs")
}

/// Stdout, after checking that the run succeeded.
fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "bench failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn python_runs() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The number after `name: ` on some line of `text`.
fn figure(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(": ")?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn every_figure_is_printed_with_a_number() {
    let text = stdout_of(&bench(&["--smoke"], None));
    let missing: Vec<&str> = FIGURES
        .iter()
        .map(|spec| spec.name)
        .filter(|name| !figure(&text, name).is_some_and(f64::is_finite))
        .collect();
    assert!(missing.is_empty(), "no number for {missing:?} in:\n{text}");
}

#[test]
fn compare_prints_a_row_with_both_runs_for_every_figure_and_draws_them() {
    if !python_runs() {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chart");
    fs::create_dir_all(&folder).expect("a folder for the chart");
    let folder_arg = folder.to_str().expect("a UTF-8 path");
    let text = stdout_of(&bench(
        &["--smoke", "--compare", "--chart", folder_arg],
        None,
    ));
    for spec in FIGURES {
        let row = text
            .lines()
            .find(|line| line.starts_with(&format!("| `{}`", spec.name)))
            .unwrap_or_else(|| panic!("no table row for {} in:\n{text}", spec.name));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for (column, cell) in [("Rust", cells[2]), ("Python", cells[3])] {
            let number = cell.replace(',', "").parse::<f64>();
            assert!(
                number.is_ok(),
                "{} has no {column} number: {row}",
                spec.name
            );
        }
    }
    let svg = |file| {
        let text = fs::read_to_string(folder.join(file)).expect("the chart was written");
        assert!(text.starts_with("<svg"), "{file} is no SVG");
        text
    };
    let bars = svg(FIGURES_SVG);
    for name in [
        "process_fork_start_join_median",
        "pool_imap_1m_items_peak_rss",
    ] {
        assert!(bars.contains(name), "{FIGURES_SVG} has no chart of {name}");
    }
    let curves = svg(SIZES_SVG);
    for size in SIZES {
        assert!(
            curves.contains(size.label),
            "{SIZES_SVG} has no {}",
            size.label
        );
    }
}

#[test]
fn chart_without_a_folder_says_what_to_do() {
    let output = bench(&["--chart"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("--chart needs a folder"),
        "stderr: {stderr}"
    );
}

#[test]
fn compare_without_python_says_what_to_do() {
    let output = bench(&["--smoke", "--compare"], Some("/nonexistent/python3"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("install python3 or set BENCH_PYTHON"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}
