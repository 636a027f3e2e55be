//! CPU-bound work: naive recursive Fibonacci, in a loop and on two workers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::Result;
use crate::measure::time;

/// The classic exponential Fibonacci: pure CPU, no memory traffic, no I/O.
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// The smallest `n` for which one `fib(n)` takes at least `target` on this machine.
pub fn calibrate(target: Duration) -> u32 {
    (1..)
        .find(|&n| {
            let start = Instant::now();
            black_box(fib(black_box(n)));
            start.elapsed() >= target
        })
        .expect("fib grows without bound")
}

/// `calls` calls of `fib(n)`, one after the other in this thread.
pub fn sequential(n: u32, calls: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..calls {
        black_box(fib(black_box(n)));
    }
    start.elapsed()
}

/// How long reading every result of an executor's `map` takes. The map is lazy, so the work
/// starts with the first read; every result must be `expected`.
///
/// # Errors
///
/// When a call fails or returns something else.
pub fn read_all(
    results: impl Iterator<Item = multiprocessing::Result<u64>>,
    expected: u64,
) -> Result<Duration> {
    let (elapsed, results) = time(|| Ok(results.collect::<multiprocessing::Result<Vec<_>>>()?))?;
    if results.iter().all(|&result| result == expected) {
        Ok(elapsed)
    } else {
        Err("a Fibonacci call returned a wrong result".into())
    }
}
