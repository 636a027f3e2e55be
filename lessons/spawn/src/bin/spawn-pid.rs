//! Doubling numbers in five processes, each printing its pid: `example_get_pid.py`.
//!
//! Book: `book/src/spawn.md`. Run: `cargo run -p lesson-spawn --bin spawn-pid`.
//!
//! Notice: `std::process::id()` is Python's `os.getpid()`; the second loop joins every
//! process, so the program ends only after all five have printed.

use multiprocessing::Process;

// ANCHOR: doubler
/// A doubling function that can be used by a process
fn doubler(number: i32) {
    let result = number * 2;
    let proc = std::process::id();
    println!("{number} doubled to {result} by process id: {proc}");
}
// ANCHOR_END: doubler

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let numbers = [5, 10, 15, 20, 25];
    let mut procs = Vec::new();

    for number in numbers {
        let proc = Process::new(move || doubler(number));
        proc.start()?;
        procs.push(proc);
    }

    for proc in &procs {
        proc.join()?;
    }
    Ok(())
}
// ANCHOR_END: main
