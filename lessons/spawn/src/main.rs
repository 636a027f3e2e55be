//! Five processes that each print `Worker`: `multiprocessing_simple.py`.
//!
//! Book: `book/src/spawn.md`. Run: `cargo run -p lesson-spawn`.
//!
//! Notice: `Process::new` takes a closure, where Python takes `target=worker`; nothing joins
//! the workers, yet the program waits for them before it ends, as Python's does.

use multiprocessing::Process;

// ANCHOR: worker
/// worker function
fn worker() {
    println!("Worker");
}
// ANCHOR_END: worker

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let mut jobs = Vec::new();
    for _ in 0..5 {
        let p = Process::new(worker);
        p.start()?;
        jobs.push(p);
    }
    Ok(())
}
// ANCHOR_END: main
