//! Runs `mpi-check` (`src/bin/mpi-check.rs`) under `mpirun` and checks what a user sees: its
//! output, how `mpirun` exits, and that no rank is left running. Each run has a deadline that
//! kills `mpirun` and its ranks, so a hang fails the test instead of stalling it; the
//! deadline measures nothing.
//!
//! MPI can be initialised once per process, so nothing here calls MPI itself: every test
//! starts a job. Every test checks the number of ranks too, since a program started by
//! another MPI's launcher becomes as many jobs of one rank, which would pass for a while.

use std::path::Path;
use std::time::Duration;

use tests::mpirun::{MpiRun, mpirun};

/// How long a job may run before it is taken for a hang.
const DEADLINE: Duration = Duration::from_secs(120);

const RANKS: usize = 4;

fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mpi-check"))
}

/// Runs `mpi-check <mode>` on four ranks, and fails on any problem around the run.
fn run(mode: &str) -> MpiRun {
    let run = mpirun(program(), RANKS, &[mode], &[], DEADLINE);
    assert!(run.problems.is_empty(), "{mode}: {:#?}", run);
    assert_eq!(
        run.stdout.lines().next(),
        Some(format!("ranks: {RANKS}").as_str()),
        "{mode}: {run:#?}"
    );
    run
}

/// The value of `label: ...` in `output`.
fn line<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label}: ")))
        .unwrap_or_else(|| panic!("no `{label}:` line in:\n{output}"))
}

#[test]
fn four_ranks_answer_what_a_serial_run_answers() {
    let serial = std::process::Command::new(program())
        .arg("serial")
        .output()
        .expect("mpi-check runs");
    let serial = String::from_utf8(serial.stdout).unwrap();
    let expected = line(&serial, "serial");
    assert_eq!(expected.split(',').count(), 300, "{serial}");

    let run = run("answers");
    assert!(run.status.success(), "{run:#?}");
    for mode in ["scatter", "map", "map chunksize 7", "submit"] {
        assert_eq!(line(&run.stdout, mode), expected, "{mode}");
    }
}

#[test]
fn a_task_that_panics_fails_its_future_and_the_job_goes_on() {
    let run = run("task-panics");
    assert!(run.status.success(), "{run:#?}");
    let output = &run.stdout;
    assert_eq!(line(output, "submit"), "true", "the future holds an error");
    assert_eq!(line(output, "map ok"), "true,true,false,true");
    assert_eq!(
        line(output, "scatter"),
        "true",
        "scatter_gather gives the error"
    );
    let then: Vec<&str> = output
        .lines()
        .filter_map(|line| line.strip_prefix("then: "))
        .collect();
    assert_eq!(then, ["111", "111,118"], "the workers go on:\n{output}");
    // The panic is the call's result, reported to whoever asked, not printed by the worker.
    assert!(!run.stderr.contains("three is refused"), "{}", run.stderr);
}

#[test]
fn a_call_no_worker_has_started_can_be_cancelled() {
    let run = run("cancel");
    assert!(run.status.success(), "{run:#?}");
    // Every worker sleeps on a call of its own: the next call waits on rank 0.
    assert_eq!(line(&run.stdout, "cancel"), "true");
    assert_eq!(line(&run.stdout, "cancelled"), "true");
    assert_eq!(line(&run.stdout, "busy"), "1,1,1");
}

/// A job that must end at once, though its tasks would sleep ten minutes: `mpirun` exits
/// with a code that is not 0, and the runner finds no rank left.
fn ends_the_job(mode: &str, message: &str) {
    let run = run(mode);
    assert!(!run.status.success(), "{run:#?}");
    assert!(run.stderr.contains(message), "{mode}: {}", run.stderr);
}

#[test]
fn a_worker_that_panics_outside_a_task_ends_the_job() {
    ends_the_job("panic-in-a-worker", "a rank panicked outside a task");
}

#[test]
fn rank_0_panicking_ends_the_job() {
    ends_the_job("panic-on-rank-0", "rank 0 gives up");
}

#[test]
fn a_worker_that_dies_ends_the_job() {
    ends_the_job("worker-dies", "exited on signal 6");
}
