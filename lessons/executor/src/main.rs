//! Submitting one call and watching its future: `pool.submit(fib, 38)`, then
//! `fut.running()` and `fut.done()`, from "Distributed Computing with Python", chapter 3
//! (no file name there).
//!
//! Book: `book/src/executor.md`. Run: `cargo run -p lesson-executor`.
//!
//! Notice: `submit` returns at once with a `Future`; the call runs in the worker process
//! meanwhile, and `result()` waits for it.

use std::time::Duration;

use multiprocessing::futures::ProcessPoolExecutor;

// ANCHOR: fib
fn fib(n: u64) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}
// ANCHOR_END: fib

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let pool = ProcessPoolExecutor::new(1)?;
    let fut = pool.submit(fib, 38)?;
    // Give the pool a moment to hand the call to its worker; fib(38) takes far longer.
    fut.wait(Some(Duration::from_millis(20)));
    println!("fut.running() = {}", fut.running());
    println!("fut.done() = {}", fut.done());

    println!("fut.result() = {}", fut.result()?);
    println!("fut.running() = {}", fut.running());
    println!("fut.done() = {}", fut.done());
    Ok(())
}
// ANCHOR_END: main
