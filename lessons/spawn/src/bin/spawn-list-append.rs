//! A CPU-heavy toy with threads and with processes: the `list_append` example of the
//! course page on multiprocessing (its `thread_test.py` and `multiproc_test.py`).
//!
//! Book: `book/src/spawn.md`; the introduction sets its times beside Python's. Run:
//! `cargo run --release -p lesson-spawn --bin spawn-list-append`.
//!
//! Notice: in Python only the processes speed up, because the GIL lets one thread run Python
//! code at a time. Rust has no GIL: its threads scale as well as its processes do.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use multiprocessing::Process;
use rand::RngExt;

/// Random numbers appended in all (the course page's `size`), split evenly among workers.
const SIZE: usize = 10_000_000;

// ANCHOR: list_append
/// Appends `count` random numbers to `out_list`; `id` names the job, for debugging.
fn list_append(count: usize, id: usize, out_list: &mut Vec<f64>) {
    let _ = id;
    let mut rng = rand::rng();
    for _ in 0..count {
        out_list.push(rng.random());
    }
}

/// One worker's job: a list of its own, filled with its share of `SIZE`.
fn job(id: usize, workers: usize) {
    let mut out_list = Vec::new();
    list_append(SIZE / workers, id, &mut out_list);
    black_box(out_list);
}
// ANCHOR_END: list_append

// ANCHOR: workers
fn with_threads(workers: usize) -> Duration {
    let start = Instant::now();
    let jobs: Vec<_> = (0..workers)
        .map(|id| thread::spawn(move || job(id, workers)))
        .collect();
    for j in jobs {
        j.join().expect("a worker thread panicked");
    }
    start.elapsed()
}

fn with_processes(workers: usize) -> multiprocessing::Result<Duration> {
    let start = Instant::now();
    let jobs: Vec<_> = (0..workers)
        .map(|id| Process::new(move || job(id, workers)))
        .collect();
    for j in &jobs {
        j.start()?;
    }
    for j in &jobs {
        j.join()?;
    }
    Ok(start.elapsed())
}
// ANCHOR_END: workers

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    println!("{SIZE} random numbers, split among the workers' lists.");
    for workers in [1, 2, 4] {
        let threads = with_threads(workers).as_secs_f64();
        let processes = with_processes(workers)?.as_secs_f64();
        println!("workers {workers}: threads {threads:.3} s, processes {processes:.3} s");
    }
    println!("List processing complete.");
    Ok(())
}
// ANCHOR_END: main
