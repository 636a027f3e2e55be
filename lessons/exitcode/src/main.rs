//! How a process ended, as a number: `multiprocessing_exitcode.py`.
//!
//! Book: `book/src/exitcode.md`. Run: `cargo run -p lesson-exitcode`.
//!
//! Notice: a panic is Python's uncaught exception: reported on stderr, exit code 1. A signal
//! gives minus its number: `SIGTERM` is 15.

use std::thread::sleep;
use std::time::Duration;

use multiprocessing::{Process, exit};

// ANCHOR: targets
fn exit_error() {
    exit(1);
}

fn exit_ok() {}

fn return_value() -> i32 {
    1
}

fn raises() {
    panic!("There was an error!");
}

fn terminated() {
    sleep(Duration::from_secs(3));
}
// ANCHOR_END: targets

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let funcs: [(&str, fn()); 5] = [
        ("exit_error", exit_error),
        ("exit_ok", exit_ok),
        ("return_value", || {
            return_value();
        }),
        ("raises", raises),
        ("terminated", terminated),
    ];
    let mut jobs = Vec::new();
    for (name, f) in funcs {
        println!("Starting process for {name}");
        let j = Process::builder().name(name).target(f);
        j.start()?;
        jobs.push(j);
    }

    jobs[jobs.len() - 1].terminate()?;

    for j in &jobs {
        let status = j.join()?;
        println!("{}.exitcode = {}", j.name(), status.exitcode());
    }
    Ok(())
}
// ANCHOR_END: main
