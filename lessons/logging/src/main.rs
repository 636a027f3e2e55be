//! The runtime's own log records, at `DEBUG`: `multiprocessing_log_to_stderr.py`.
//!
//! Book: `book/src/logging.md`. Run: `cargo run -p lesson-logging`.
//!
//! Notice: the records go to stderr and `Doing some work` to stdout; each record names the
//! process that wrote it, so the child's lines say `Process-1`.

use std::io::Write;

use multiprocessing::Process;
use multiprocessing::logging::{LevelFilter, log_to_stderr};

// ANCHOR: worker
fn worker() {
    println!("Doing some work");
    let _ = std::io::stdout().flush();
}
// ANCHOR_END: worker

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    log_to_stderr(Some(LevelFilter::Debug));
    let p = Process::new(worker);
    p.start()?;
    p.join()?;
    Ok(())
}
// ANCHOR_END: main
