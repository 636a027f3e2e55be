//! Greatest common divisors, serially, on two threads and on two processes: the `gcd`
//! example of "Effective Python" in the main chapter (no file name there).
//!
//! Book: `book/src/executor.md`. Run: `cargo run --release -p lesson-executor --bin gcd`.
//!
//! Notice: the three runs differ by one line; in Python only the processes beat the serial
//! run, here the threads do too.

use std::time::Instant;

use multiprocessing::futures::{ProcessPoolExecutor, ThreadPoolExecutor};

const NUMBERS: [(u64, u64); 4] = [
    (1963309, 2265973),
    (2030677, 3814172),
    (1551645, 2229620),
    (2039045, 2020802),
];

// ANCHOR: gcd
fn gcd((a, b): (u64, u64)) -> u64 {
    let low = a.min(b);
    (1..=low)
        .rev()
        .find(|i| a % i == 0 && b % i == 0)
        .unwrap_or(1)
}
// ANCHOR_END: gcd

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let start = Instant::now();
    let results: Vec<u64> = NUMBERS.into_iter().map(gcd).collect();
    println!("Took {:.3} seconds.", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let pool = ThreadPoolExecutor::new(2)?;
    let threaded: Vec<u64> = pool.map(gcd, NUMBERS).collect::<Result<_, _>>()?;
    drop(pool);
    println!("Took {:.3} seconds.", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let pool = ProcessPoolExecutor::new(2)?;
    let forked: Vec<u64> = pool.map(gcd, NUMBERS).collect::<Result<_, _>>()?;
    drop(pool);
    println!("Took {:.3} seconds.", start.elapsed().as_secs_f64());

    assert!(results == threaded && results == forked);
    Ok(())
}
// ANCHOR_END: main
