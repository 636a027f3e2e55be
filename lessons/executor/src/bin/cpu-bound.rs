//! A CPU-bound task five times: in a loop, on three threads, on six processes. From the
//! course chapter's speed comparison (no file name there).
//!
//! Book: `book/src/executor.md`. Run: `cargo run --release -p lesson-executor --bin cpu-bound`.
//!
//! Notice: Rust's `map` is lazy, so each run reads its results; Python's `map` submits
//! everything at once and the `with` block waits. On a terminal, a bar on stderr shows the
//! tasks done.

use std::time::Instant;

use multiprocessing::ProgressExt;
use multiprocessing::futures::{ProcessPoolExecutor, ThreadPoolExecutor};

// ANCHOR: task
fn cpu_bound_task(n: u64) -> u64 {
    println!("Starting task {n} in process {}", std::process::id());
    let mut count = 0;
    for i in 0..10_u64.pow(7) {
        count += std::hint::black_box(i) % n;
    }
    println!("Completed task {n} in process {}", std::process::id());
    count
}
// ANCHOR_END: task

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let start = Instant::now();
    for n in 1..6 {
        cpu_bound_task(n);
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!("Total time without any executor: {elapsed:.3} seconds");

    let start = Instant::now();
    let executor = ThreadPoolExecutor::new(3)?;
    executor
        .map(cpu_bound_task, 1..6)
        .progress_bar(5)
        .collect::<Result<Vec<_>, _>>()?;
    drop(executor);
    let elapsed = start.elapsed().as_secs_f64();
    println!("Total time ThreadPoolExecutor: {elapsed:.3} seconds");

    let start = Instant::now();
    let executor = ProcessPoolExecutor::new(6)?;
    executor
        .map(cpu_bound_task, 1..6)
        .progress_bar(5)
        .collect::<Result<Vec<_>, _>>()?;
    drop(executor);
    let elapsed = start.elapsed().as_secs_f64();
    println!("Total time with ProcessPoolExecutor: {elapsed:.3} seconds");
    Ok(())
}
// ANCHOR_END: main
