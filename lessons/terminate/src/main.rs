//! Stopping a process from outside: `multiprocessing_terminate.py`.
//!
//! Book: `book/src/terminate.md`. Run: `cargo run -p lesson-terminate`.
//!
//! Notice: `terminate` only sends `SIGTERM`; `join` is what waits for the child to die and
//! updates the handle, which then shows `stopped exitcode=-SIGTERM`.

use std::thread::sleep;
use std::time::Duration;

use multiprocessing::Process;

// ANCHOR: slow_worker
fn slow_worker() {
    println!("Starting worker");
    sleep(Duration::from_millis(100));
    println!("Finished worker");
}
// ANCHOR_END: slow_worker

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let p = Process::new(slow_worker);
    println!("BEFORE: {p} {}", p.is_alive());

    p.start()?;
    println!("DURING: {p} {}", p.is_alive());

    p.terminate()?;
    println!("TERMINATED: {p} {}", p.is_alive());

    p.join()?;
    println!("JOINED: {p} {}", p.is_alive());
    Ok(())
}
// ANCHOR_END: main
