//! An I/O-bound task, one `Process` per task against a `Pool`: the "Process Vs Pool Class"
//! example of the course page (its `mprocess3.py` and `mprocess4.py`).
//!
//! Book: `book/src/pool.md`. Run: `cargo run --release -p lesson-pool --bin process-vs-pool`.
//!
//! Notice: each task only creates, writes and closes a file; what is timed is mostly the
//! cost of starting processes and handing them work, as the pool's own account of its
//! workers' time shows.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use multiprocessing::{Pool, Process, WorkerStats};

/// How many files each way writes.
const TASKS: usize = 10;

// ANCHOR: test
/// Creates a file, writes to it, and closes it.
fn test(path: PathBuf) {
    let mut file = fs::File::create(&path).expect("the lesson's folder is writable");
    file.write_all(b"Hello from a worker\n")
        .expect("the disk has room");
}
// ANCHOR_END: test

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let dir = std::env::temp_dir().join(format!("process-vs-pool-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("the temporary folder is writable");
    let paths: Vec<PathBuf> = (0..TASKS).map(|i| dir.join(format!("{i}.txt"))).collect();

    let start = Instant::now();
    let procs: Vec<Process> = paths
        .iter()
        .map(|path| {
            let path = path.clone();
            Process::new(move || test(path))
        })
        .collect();
    for p in &procs {
        p.start()?;
    }
    for p in &procs {
        p.join()?;
    }
    println!("Time taken {} seconds", start.elapsed().as_secs_f64());

    let start = Instant::now();
    let pool = Pool::new(TASKS)?;
    pool.map(test, paths)?;
    pool.close();
    pool.join()?;
    println!("Time taken {} seconds", start.elapsed().as_secs_f64());
    let all = WorkerStats::total(&pool.worker_stats());
    println!(
        "Pool workers: {:?} starting, {:?} working, {:?} waiting",
        all.startup, all.working, all.waiting
    );

    fs::remove_dir_all(&dir).expect("the lesson's folder can be removed");
    Ok(())
}
// ANCHOR_END: main
