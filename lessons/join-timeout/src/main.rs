//! A join that gives up after a timeout: `multiprocessing_daemon_join_timeout.py`.
//!
//! Book: `book/src/join-timeout.md`. Run: `cargo run -p lesson-join-timeout`.
//!
//! Notice: `join_timeout` returns after one second while the daemon sleeps for two, so it is
//! still alive; at exit the runtime terminates it.

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
    n.start()?;

    d.join_timeout(Duration::from_secs(1))?;
    println!("d.is_alive() {}", d.is_alive());
    n.join()?;
    Ok(())
}
// ANCHOR_END: main
