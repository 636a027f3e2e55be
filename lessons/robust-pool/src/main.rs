//! A pool that outlives its worst tasks: one hangs, one ends its worker, one asks for more memory
//! than the pool allows, and every other task finishes. Python's `Pool.map` waits forever for
//! the first two; here each fails alone and says why. This goes beyond the source material:
//! it shows what pebble, billiard, loky and mpire add to Python's pool.
//!
//! Book: `book/src/robust-pool.md`. Run: `cargo run -p lesson-robust-pool`.
//!
//! Notice: the pool started five workers in all: two, and one in place of each worker that a
//! bad task took down.

use std::thread::sleep;
use std::time::Duration;

use multiprocessing::Pool;

// ANCHOR: task
/// Squares `n`, except for three inputs that misbehave.
fn task(n: u64) -> u64 {
    match n {
        // Never returns, like a call waiting on a server that is gone.
        3 => loop {
            sleep(Duration::from_secs(1));
        },
        // Ends its process, as a C library that gives up calls exit().
        5 => std::process::exit(3),
        // Asks for 2 GiB, four times what a worker may have.
        7 => vec![1u8; 2 << 30].len() as u64,
        n => n * n,
    }
}
// ANCHOR_END: task

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_secs(1))
        .memory_limit(512 << 20)
        .build()?;
    for (n, result) in pool.imap(task, 0..10).enumerate() {
        match result {
            Ok(square) => println!("{n}: {square}"),
            Err(error) => println!("{n}: {error}"),
        }
    }
    pool.close();
    pool.join()?;
    println!("workers started: {}", pool.worker_stats().len());
    Ok(())
}
// ANCHOR_END: main
