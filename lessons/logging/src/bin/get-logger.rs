//! Changing the level through the logger: `multiprocessing_get_logger.py`.
//!
//! Book: `book/src/logging.md`. Run: `cargo run -p lesson-logging --bin get-logger`.
//!
//! Notice: the level is set in the parent before `start`, and the forked child starts with it;
//! at `INFO` the `DEBUG` records of the default binary are gone.

use std::io::Write;

use multiprocessing::Process;
use multiprocessing::logging::{LevelFilter, get_logger, log_to_stderr};

// ANCHOR: worker
fn worker() {
    println!("Doing some work");
    let _ = std::io::stdout().flush();
}
// ANCHOR_END: worker

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    log_to_stderr(None);
    let logger = get_logger();
    logger.set_level(LevelFilter::Info);
    let p = Process::new(worker);
    p.start()?;
    p.join()?;
    Ok(())
}
// ANCHOR_END: main
