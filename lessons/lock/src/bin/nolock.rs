//! Two processes write to one stream at the same time: `multiprocessing_nolock.py`.
//!
//! Book: `book/src/lock.md`. Run: `cargo run -p lesson-lock --bin nolock`.
//!
//! Notice: nothing keeps the workers apart, so their words can interleave inside a line; the
//! jumble differs from run to run. Compare `cargo run -p lesson-lock`.

use std::io::{self, Write};

use lesson_lock::Slow;
use multiprocessing::Process;

// ANCHOR: workers
fn worker_with(mut stream: impl Write) -> io::Result<()> {
    stream.write_all(b"Lock acquired via with\n")
}

fn worker_no_with(mut stream: impl Write) -> io::Result<()> {
    stream.write_all(b"Lock acquired directly\n")
}
// ANCHOR_END: workers

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let w = Process::new(|| worker_with(Slow(io::stdout())));
    let nw = Process::new(|| worker_no_with(Slow(io::stdout())));

    w.start()?;
    nw.start()?;

    w.join()?;
    nw.join()?;
    Ok(())
}
// ANCHOR_END: main
