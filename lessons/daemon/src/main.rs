//! A daemonic process is stopped when the main program ends: `multiprocessing_daemon.py`.
//!
//! Book: `book/src/daemon.md`. Run: `cargo run -p lesson-daemon`.
//!
//! Notice: the program ends after about one second, not two: at exit the runtime terminates
//! the daemon (so its `Exiting` line never appears) and waits for the non-daemon.

use std::thread::sleep;
use std::time::Duration;

use multiprocessing::{Process, current_process};

// ANCHOR: workers
fn daemon() {
    let p = current_process();
    println!("Starting: {} {}", p.name(), p.pid());
    sleep(Duration::from_secs(2));
    println!("Exiting : {} {}", p.name(), p.pid());
}

fn non_daemon() {
    let p = current_process();
    println!("Starting: {} {}", p.name(), p.pid());
    println!("Exiting : {} {}", p.name(), p.pid());
}
// ANCHOR_END: workers

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let d = Process::builder().name("daemon").target(daemon);
    d.set_daemon(true)?;

    let n = Process::builder().name("non-daemon").target(non_daemon);
    n.set_daemon(false)?;

    d.start()?;
    sleep(Duration::from_secs(1));
    n.start()?;
    Ok(())
}
// ANCHOR_END: main
