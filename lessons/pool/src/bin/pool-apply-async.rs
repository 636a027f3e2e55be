//! Asking a pool for one result, with a timeout: `multiprocessing_pool_get_result.py`.
//!
//! Book: `book/src/pool.md`. Run: `cargo run -p lesson-pool --bin pool-apply-async`.
//!
//! Notice: `get_timeout` gives up after one second with `Error::Timeout` instead of waiting
//! forever; the log records show the two workers starting.

use std::time::Duration;

use multiprocessing::logging::{LevelFilter, log_to_stderr};
use multiprocessing::{StartMethod, get_context};

// ANCHOR: doubler
fn doubler(number: i32) -> i32 {
    number * 2
}
// ANCHOR_END: doubler

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    log_to_stderr(Some(LevelFilter::Info));
    let pool = get_context(StartMethod::Fork).pool(2)?;
    let result = pool.apply_async(doubler, 25)?;
    println!("{}", result.get_timeout(Duration::from_secs(1))?);
    Ok(())
}
// ANCHOR_END: main
