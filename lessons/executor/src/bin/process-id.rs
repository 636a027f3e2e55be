//! Which process ran each task, with processes and with threads: `process_id.py`.
//!
//! Book: `book/src/executor.md`. Run: `cargo run -p lesson-executor --bin process-id`.
//!
//! Notice: the two halves differ only in the executor's type; processes report four pids,
//! threads one, the pid of this program.

use std::thread::sleep;
use std::time::Duration;

use multiprocessing::futures::{ProcessPoolExecutor, ThreadPoolExecutor};

// ANCHOR: do_work
fn do_work(n: u64) -> (u64, u32) {
    sleep(Duration::from_secs(n));
    (n, std::process::id())
}
// ANCHOR_END: do_work

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let tasks = 1..5;

    let ex = ProcessPoolExecutor::new(tasks.clone().count())?;
    for result in ex.map(do_work, tasks.clone()) {
        let (n, pid) = result?;
        println!("ran task {n} in process {pid}");
    }

    let ex = ThreadPoolExecutor::new(tasks.clone().count())?;
    for result in ex.map(do_work, tasks) {
        let (n, pid) = result?;
        println!("ran task {n} in process {pid}");
    }
    Ok(())
}
// ANCHOR_END: main
