//! Submitting one call and watching its future: `pool.submit(fib, 38)`, then
//! `fut.running()` and `fut.done()`, from "Distributed Computing with Python", chapter 3
//! (no file name there).
//!
//! Book: `book/src/executor.md`. Run: `cargo run -p lesson-executor`.
//!
//! Notice: `submit` returns at once with a `Future`; the call runs in the worker process
//! meanwhile, and `result()` waits for it. `running()` turns true once the worker has the
//! call, so the lesson asks until it does, and then asks `done()` while `fib(38)` computes.

use std::thread;
use std::time::Duration;

use multiprocessing::futures::ProcessPoolExecutor;

// ANCHOR: fib
fn fib(n: u64) -> u64 {
    if n <= 2 { 1 } else { fib(n - 1) + fib(n - 2) }
}
// ANCHOR_END: fib

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let pool = ProcessPoolExecutor::new(1)?;
    let fut = pool.submit(fib, 38)?;
    // The pool hands the call to its idle worker in the background; wait until it has.
    while !fut.running() && !fut.done() {
        thread::sleep(Duration::from_millis(1));
    }
    println!("fut.running() = {}", fut.running());
    println!("fut.done() = {}", fut.done());

    println!("fut.result() = {}", fut.result()?);
    println!("fut.running() = {}", fut.running());
    println!("fut.done() = {}", fut.done());
    Ok(())
}
// ANCHOR_END: main
