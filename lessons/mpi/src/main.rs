//! The executor's primes on the ranks of an MPI job: the six numbers of
//! `process_pool_executor_ex.py` and the thousand of `prime.py`, by one scatter and one gather
//! (`Pool.map`, a chunk per rank), then by `MpiPoolExecutor`. Book: `book/src/mpi.md`.
//! Build: `cargo build --release -p lesson-mpi --features mpi`; run:
//! `mpirun -np 4 target/release/lesson-mpi`. Notice: every rank runs this program; on all
//! ranks but 0, `init` serves rank 0's calls.

use std::time::Instant;

use multiprocessing_mpi::MpiPoolExecutor;
use rand::RngExt;

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
    let mut world = multiprocessing_mpi::init();
    println!("{} ranks", world.size());
    let mut rng = rand::rng();
    let numbers: Vec<u64> = (0..1000)
        .map(|_| rng.random_range(100_000_000_000_000..500_000_000_000_000))
        .collect();

    // Pool.map with one large chunk per rank: one scatter, one gather.
    for (number, prime) in PRIMES
        .into_iter()
        .zip(world.scatter_gather(is_prime, PRIMES)?)
    {
        println!("{number} is prime: {prime}");
    }
    let start = Instant::now();
    let scattered = world.scatter_gather(is_prime, numbers.clone())?;
    let elapsed = start.elapsed().as_secs_f64();
    println!("scatter/gather: {elapsed:.3} seconds");

    // The executor lesson's code, with every rank but 0 as a worker.
    let executor = MpiPoolExecutor::new(&mut world)?;
    for (number, prime) in PRIMES.into_iter().zip(executor.map(is_prime, PRIMES)) {
        println!("{number} is prime: {}", prime?);
    }
    let start = Instant::now();
    let mapped: Vec<bool> = executor.map(is_prime, numbers).collect::<Result<_, _>>()?;
    let elapsed = start.elapsed().as_secs_f64();
    println!("MpiPoolExecutor: {elapsed:.3} seconds");
    assert_eq!(scattered, mapped);
    Ok(())
}
// ANCHOR_END: main
