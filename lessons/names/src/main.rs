//! Default and chosen process names: `multiprocessing_names.py`.
//!
//! Book: `book/src/names.md`. Run: `cargo run -p lesson-names`.
//!
//! Notice: the first `Process` is created and never started, yet it takes the name
//! `Process-1`, so the five workers are `Process-2` to `Process-6`, as in Python.

use multiprocessing::{Process, current_process};

// ANCHOR: doubler
/// A doubling function that can be used by a process
fn doubler(number: i32) {
    let result = number * 2;
    let proc_name = current_process().name().to_owned();
    println!("{number} doubled to {result} by: {proc_name}");
}
// ANCHOR_END: doubler

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let numbers = [5, 10, 15, 20, 25];
    let mut procs = Vec::new();
    let _proc = Process::new(|| doubler(5));

    for number in numbers {
        let proc = Process::new(move || doubler(number));
        proc.start()?;
        procs.push(proc);
    }

    let proc = Process::builder().name("Test").target(|| doubler(2));
    proc.start()?;
    procs.push(proc);

    for proc in &procs {
        proc.join()?;
    }
    Ok(())
}
// ANCHOR_END: main
