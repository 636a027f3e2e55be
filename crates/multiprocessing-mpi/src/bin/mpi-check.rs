//! The program that the crate's tests (`tests/mpirun.rs`) run under `mpirun`, one mode per
//! behaviour they check: `mpirun -np 4 target/debug/mpi-check <mode>`. It prints what a user
//! would look at; the tests read it.

use std::time::Duration;

use multiprocessing::Result;
use multiprocessing_mpi::MpiPoolExecutor;

/// How many steps of the Collatz map take `n` to 1: cheap, and different from one input to
/// the next, so that a result out of place shows.
fn collatz(mut n: u64) -> u32 {
    let mut steps = 0;
    while n > 1 {
        n = if n.is_multiple_of(2) {
            n / 2
        } else {
            3 * n + 1
        };
        steps += 1;
    }
    steps
}

/// The same 300 inputs on every run.
fn inputs() -> Vec<u64> {
    (1..=300).map(|i| i * 7919 % 10_007 + 1).collect()
}

fn refuses_three(n: u64) -> u64 {
    assert_ne!(n, 3, "three is refused");
    n
}

/// Panics on a thread of its own, which is outside the task, then sleeps.
fn panics_beside(seconds: u64) -> u64 {
    let _ = std::thread::spawn(|| panic!("a thread that a task started")).join();
    std::thread::sleep(Duration::from_secs(seconds));
    seconds
}

fn sleeps(seconds: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(seconds));
    seconds
}

fn dies(_: u64) -> u64 {
    std::process::abort()
}

fn print(label: &str, values: &[impl ToString]) {
    let values: Vec<String> = values.iter().map(ToString::to_string).collect();
    println!("{label}: {}", values.join(","));
}

fn main() -> Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "serial" {
        print(
            "serial",
            &inputs().into_iter().map(collatz).collect::<Vec<_>>(),
        );
        return Ok(());
    }
    let mut world = multiprocessing_mpi::init();
    println!("ranks: {}", world.size());
    match mode.as_str() {
        "answers" => {
            print("scatter", &world.scatter_gather(collatz, inputs())?);
            let executor = MpiPoolExecutor::new(&mut world)?;
            let mapped: Vec<u32> = executor.map(collatz, inputs()).collect::<Result<_>>()?;
            print("map", &mapped);
            let chunked = executor.map(collatz, inputs()).chunksize(7);
            print("map chunksize 7", &chunked.collect::<Result<Vec<_>>>()?);
            let futures = inputs().into_iter().map(|n| executor.submit(collatz, n));
            let futures = futures.collect::<Result<Vec<_>>>()?;
            let submitted = futures.iter().map(|future| future.result().copied());
            print("submit", &submitted.collect::<Result<Vec<_>>>()?);
        }
        "task-panics" => {
            let executor = MpiPoolExecutor::new(&mut world)?;
            println!(
                "submit: {}",
                executor.submit(refuses_three, 3)?.result().is_err()
            );
            let mapped = executor.map(refuses_three, [1, 2, 3, 4]).map(|r| r.is_ok());
            print("map ok", &mapped.collect::<Vec<_>>());
            println!("then: {}", executor.submit(collatz, 27)?.result()?);
            drop(executor);
            let scattered = world.scatter_gather(refuses_three, [1, 2, 3, 4]);
            println!("scatter: {}", scattered.is_err());
            print("then", &world.scatter_gather(collatz, [27, 97])?);
        }
        "cancel" => {
            let executor = MpiPoolExecutor::new(&mut world)?;
            let busy = (0..executor.workers()).map(|_| executor.submit(sleeps, 1));
            let busy = busy.collect::<Result<Vec<_>>>()?;
            while !busy.iter().all(|future| future.running()) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let waiting = executor.submit(collatz, 27)?;
            println!("cancel: {}", waiting.cancel());
            println!("cancelled: {}", waiting.result().is_err());
            let slept = busy.iter().map(|future| future.result().copied());
            print("busy", &slept.collect::<Result<Vec<_>>>()?);
        }
        "panic-in-a-worker" => {
            let executor = MpiPoolExecutor::new(&mut world)?;
            executor.submit(panics_beside, 600)?.result()?;
        }
        "panic-on-rank-0" => {
            let executor = MpiPoolExecutor::new(&mut world)?;
            let future = executor.submit(sleeps, 600)?;
            while !future.running() {
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("rank 0 gives up");
        }
        "worker-dies" => {
            let executor = MpiPoolExecutor::new(&mut world)?;
            executor.submit(dies, 0)?.result()?;
        }
        other => println!("no mode {other:?}"),
    }
    Ok(())
}
