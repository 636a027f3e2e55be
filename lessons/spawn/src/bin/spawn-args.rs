//! Each worker gets a number: `multiprocessing_simpleargs.py`.
//!
//! Book: `book/src/spawn.md`. Run: `cargo run -p lesson-spawn --bin spawn-args`.
//!
//! Notice: Python passes `args=(i,)`, which must be picklable; here the closure captures `i`
//! with `move`, and the forked child already has a copy of it.

use multiprocessing::Process;

// ANCHOR: worker
/// thread worker function
fn worker(num: i32) {
    println!("Worker: {num}");
}
// ANCHOR_END: worker

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let mut jobs = Vec::new();
    for i in 0..5 {
        let p = Process::new(move || worker(i));
        p.start()?;
        jobs.push(p);
    }
    Ok(())
}
// ANCHOR_END: main
