//! Joining a daemonic process waits for it: `multiprocessing_daemon_join.py`.
//!
//! Book: `book/src/daemon.md`. Run: `cargo run -p lesson-daemon --bin daemon-join`.
//!
//! Notice: `d.join()` waits the full two seconds, so this time the daemon prints `Exiting`.

use std::thread::sleep;
use std::time::Duration;

use multiprocessing::{Process, current_process};

// ANCHOR: workers
fn daemon() {
    let name = current_process().name().to_owned();
    println!("Starting: {name}");
    sleep(Duration::from_secs(2));
    println!("Exiting : {name}");
}

fn non_daemon() {
    let name = current_process().name().to_owned();
    println!("Starting: {name}");
    println!("Exiting : {name}");
}
// ANCHOR_END: workers

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let d = Process::builder()
        .name("daemon")
        .daemon(true)
        .target(daemon);
    let n = Process::builder()
        .name("non-daemon")
        .daemon(false)
        .target(non_daemon);

    d.start()?;
    sleep(Duration::from_secs(1));
    n.start()?;

    d.join()?;
    n.join()?;
    Ok(())
}
// ANCHOR_END: main
