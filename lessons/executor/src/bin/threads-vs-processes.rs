//! A thousand random 15-digit numbers tested for primality on 16 processes and on 16
//! threads: `prime.py`.
//!
//! Book: `book/src/executor.md`. Run:
//! `cargo run --release -p lesson-executor --bin threads-vs-processes`.
//!
//! Notice: in Python the threads took twelve times as long as the processes, because of the
//! GIL; here both use every core. On a terminal, a bar on stderr shows each `map` going.

use std::time::Instant;

use multiprocessing::ProgressExt;
use multiprocessing::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
use rand::RngExt;

// ANCHOR: is_prime
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n == 2 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let sqrt_n = n.isqrt();
    (3..=sqrt_n).step_by(2).all(|i| !n.is_multiple_of(i))
}
// ANCHOR_END: is_prime

// ANCHOR: executors
fn processes(primes: &[u64], num_workers: usize) -> multiprocessing::Result<Vec<bool>> {
    let ex = ProcessPoolExecutor::new(num_workers)?;
    ex.map(is_prime, primes.to_vec())
        .progress_bar(primes.len())
        .collect()
}

fn threads(primes: &[u64], num_workers: usize) -> multiprocessing::Result<Vec<bool>> {
    let ex = ThreadPoolExecutor::new(num_workers)?;
    ex.map(is_prime, primes.to_vec())
        .progress_bar(primes.len())
        .collect()
}
// ANCHOR_END: executors

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    // Make it more intensive: 1,000 random numbers of 15 digits.
    let list_size = 1000;
    let mut rng = rand::rng();
    let primes: Vec<u64> = (0..list_size)
        .map(|_| rng.random_range(100_000_000_000_000..500_000_000_000_000))
        .collect();

    let p_start = Instant::now();
    let result_p = processes(&primes, 16)?;
    let p_time = p_start.elapsed().as_secs_f64();
    let t_start = Instant::now();
    let result_t = threads(&primes, 16)?;
    let t_time = t_start.elapsed().as_secs_f64();
    assert_eq!(result_p, result_t);

    println!("Timings:");
    println!("Processes: {p_time:.3}");
    println!("Threads  : {t_time:.3}");
    Ok(())
}
// ANCHOR_END: main
