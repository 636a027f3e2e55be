//! `log_to_stderr` as a user sees it: Python's record format, the level a child inherits,
//! and whole lines when many processes log at once.
//!
//! The logger and its level are global to a process, so each test changes the level only in
//! a child of its own; this file is its own test binary, with no other logger.

mod common;

use common::run;

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;

use multiprocessing::logging::{LevelFilter, get_logger, log_to_stderr};
use multiprocessing::{ExitStatus, Process};

/// Runs `body` in a child whose stderr is a pipe; returns what it and its children wrote there.
fn stderr_of(body: impl FnOnce() + Send + 'static) -> String {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let p = Process::builder().name("test").target(move || {
        nix::unistd::dup2_stderr(writer.as_fd()).unwrap();
        drop(writer);
        body();
    });
    // Read while it runs: a full pipe would block the writers.
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        reader.read_to_string(&mut text).map(|_| text)
    });
    assert_eq!(run(&p), ExitStatus::Exited(0));
    reading.join().unwrap().unwrap()
}

#[test]
fn records_follow_python_and_the_level_is_inherited() {
    let text = stderr_of(|| {
        log_to_stderr(Some(LevelFilter::Info));
        let child = Process::builder().name("worker").target(|| {
            log::debug!("hidden at INFO");
            log::warn!("shown at INFO");
        });
        child.start().unwrap();
        child.join().unwrap();
        // Lowering the level in the parent affects the children started afterwards.
        get_logger().set_level(LevelFilter::Error);
        let quiet = Process::builder()
            .name("quiet")
            .target(|| log::warn!("hidden at ERROR"));
        quiet.start().unwrap();
        quiet.join().unwrap();
        get_logger().set_level(LevelFilter::Info);
    });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "[INFO/worker] child process calling self.run()",
            "[WARNING/worker] shown at INFO",
            "[INFO/worker] process shutting down",
            "[INFO/worker] process exiting with exitcode 0",
            // The test's child ends: its own exit records (both children were joined).
            "[INFO/test] process shutting down",
            "[INFO/test] process exiting with exitcode 0",
        ]
    );
}

#[test]
fn records_from_many_processes_stay_whole_lines() {
    const PROCESSES: usize = 8;
    const RECORDS: usize = 1000;
    let text = stderr_of(|| {
        log_to_stderr(Some(LevelFilter::Warn));
        let workers: Vec<Process> = (0..PROCESSES)
            .map(|_| {
                Process::new(|| {
                    for i in 0..RECORDS {
                        // Long enough that a record split in two would show.
                        log::warn!("record {i} {}", "x".repeat(200));
                    }
                })
            })
            .collect();
        for worker in &workers {
            worker.start().unwrap();
        }
        for worker in &workers {
            assert!(worker.join().unwrap().success());
        }
    });
    let padding = "x".repeat(200);
    let mut next: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let (name, rest) = line
            .strip_prefix("[WARNING/")
            .and_then(|line| line.split_once("] record "))
            .unwrap_or_else(|| panic!("not a whole record: {line:?}"));
        let (number, tail) = rest.split_once(' ').expect("a record number");
        assert_eq!(tail, padding, "a record was cut: {line:?}");
        let expected = next.entry(name.to_owned()).or_default();
        assert_eq!(number.parse::<usize>().unwrap(), *expected, "in {line:?}");
        *expected += 1;
    }
    assert_eq!(next.len(), PROCESSES);
    assert!(next.values().all(|count| *count == RECORDS), "{next:?}");
}
