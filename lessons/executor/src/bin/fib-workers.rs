//! The same CPU-bound call on 1 to 32 workers: `runprocesses(workernum, fibnum)` from
//! "Distributed Computing with Python", chapter 3 (no file name there).
//!
//! Book: `book/src/executor.md`. Run: `cargo run --release -p lesson-executor --bin fib-workers`.
//!
//! Notice: each run gives every worker one `fib(34)`, so the work grows with the workers;
//! with 2 cores, times stay flat up to 2 workers and then grow. (The source's `fib` returned
//! before recursing, so its timings measured only the pool; this one computes.) On a
//! terminal, a bar on stderr shows each run's calls done.

use std::time::Instant;

use multiprocessing::ProgressExt;
use multiprocessing::futures::ProcessPoolExecutor;

// ANCHOR: fib
fn fib(n: u64) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}
// ANCHOR_END: fib

// ANCHOR: runprocesses
fn runprocesses(workernum: usize, fibnum: u64) -> multiprocessing::Result<()> {
    let t0 = Instant::now();
    let pool = ProcessPoolExecutor::new(workernum)?;
    // Run fib on each element of [fibnum; workernum], in parallel.
    let results: Vec<u64> = pool
        .map(fib, vec![fibnum; workernum])
        .progress_bar(workernum)
        .collect::<Result<_, _>>()?;
    drop(pool);
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "{workernum:>2} workers, {} results: {dt:.3} s",
        results.len()
    );
    Ok(())
}
// ANCHOR_END: runprocesses

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    for workers in [1, 2, 3, 4] {
        runprocesses(workers, 34)?;
    }
    println!("***************");
    for workers in [8, 16, 32] {
        runprocesses(workers, 34)?;
    }
    Ok(())
}
// ANCHOR_END: main
