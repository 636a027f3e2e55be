//! One small program under `fork`, `spawn` and `forkserver`: what a child inherits, what a
//! pool's workers are called, and what starting a process costs. It ports the list of start
//! methods that follows `example_get_pid.py` in the source's main chapter (prose, no file
//! name there).
//!
//! Book: `book/src/start-methods.md`. Run: `cargo run -p lesson-start-methods`.
//!
//! Notice: `main` sets `SETTING` after `init()`. A forked child is a copy made later and sees
//! it; a child started afresh runs `main` only as far as `init()`, so it never does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use multiprocessing::{StartMethod, current_process, get_context};

/// How many processes each method starts to time, of which the lesson prints the median.
const RUNS: usize = 5;

// ANCHOR: children
/// A global that `main` changes once the program has started.
static SETTING: AtomicU64 = AtomicU64::new(0);

/// What a pool worker sees: its own name, and `SETTING`.
fn inherited((): ()) -> (String, u64) {
    let name = current_process().name().to_owned();
    (name, SETTING.load(Ordering::SeqCst))
}

/// A process that does nothing, to time starting and joining one.
fn nothing((): ()) {}
// ANCHOR_END: children

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    SETTING.store(42, Ordering::SeqCst);

    println!("method      pool worker             SETTING  start + join (median of {RUNS})");
    for method in StartMethod::ALL {
        let ctx = get_context(method);
        let (name, setting) = ctx.pool(1)?.apply(inherited, ())?;

        let mut times = Vec::new();
        for _ in 0..RUNS {
            let started = Instant::now();
            let p = ctx.process(nothing, ())?;
            p.start()?;
            p.join()?;
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[RUNS / 2];
        println!(
            "{:<10}  {name:<22}  {setting:>7}  {median:.1?}",
            method.name()
        );
    }
    Ok(())
}
// ANCHOR_END: main
