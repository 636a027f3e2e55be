//! Which of six large numbers are prime, with `executor.map`: `process_pool_executor_ex.py`.
//!
//! Book: `book/src/executor.md`. Run: `cargo run --release -p lesson-executor --bin primes`.
//!
//! Notice: `map` yields the results in the order of the inputs, whichever worker finishes
//! first; `zip` pairs each with its number, as in Python.

use multiprocessing::futures::ProcessPoolExecutor;

const PRIMES: [u64; 6] = [
    112272535095293,
    112582705942171,
    112272535095293,
    115280095190773,
    115797848077099,
    1099726899285419,
];

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

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let executor = ProcessPoolExecutor::builder().processes()?;
    for (number, prime) in PRIMES.into_iter().zip(executor.map(is_prime, PRIMES)) {
        println!("{number} is prime: {}", prime?);
    }
    Ok(())
}
// ANCHOR_END: main
