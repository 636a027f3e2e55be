//! Two processes write to one stream, one at a time: `multiprocessing_lock.py`.
//!
//! Book: `book/src/lock.md`. Run: `cargo run -p lesson-lock`.
//!
//! Notice: each worker holds the lock while it writes its line, so the lines come out whole,
//! in either order. Compare `cargo run -p lesson-lock --bin nolock`.

use std::error::Error;
use std::io::{self, Write};

use lesson_lock::Slow;
use multiprocessing::{Lock, Process};

// ANCHOR: workers
fn worker_with(lock: &Lock, mut stream: impl Write) -> Result<(), Box<dyn Error>> {
    let _guard = lock.acquire()?; // with lock:
    stream.write_all(b"Lock acquired via with\n")?;
    Ok(())
}

fn worker_no_with(lock: &Lock, mut stream: impl Write) -> Result<(), Box<dyn Error>> {
    let guard = lock.acquire()?; // lock.acquire()
    let written = stream.write_all(b"Lock acquired directly\n"); // try:
    drop(guard); // finally: lock.release()
    Ok(written?)
}
// ANCHOR_END: workers

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let lock = Lock::new()?;
    let w = Process::new({
        let lock = lock.clone();
        move || worker_with(&lock, Slow(io::stdout()))
    });
    let nw = Process::new(move || worker_no_with(&lock, Slow(io::stdout())));

    w.start()?;
    nw.start()?;

    w.join()?;
    nw.join()?;
    Ok(())
}
// ANCHOR_END: main
