//! A pool maps a function over inputs in its workers: `multiprocessing_pool.py`.
//!
//! Book: `book/src/pool.md`. Run: `cargo run -p lesson-pool`.
//!
//! Notice: the built-in `map` is lazy, in Rust as in Python 3 (which prints `<map object>`),
//! so the lesson collects it; the pool's `map` returns the same list, computed in the workers.
//! Each worker runs the initializer once, when it starts.

use multiprocessing::{Pool, StartMethod, cpu_count, current_process};

// ANCHOR: functions
fn do_calculation(data: i32) -> i32 {
    data * 2
}

fn start_process() {
    println!("Starting {}", current_process().name());
}
// ANCHOR_END: functions

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let inputs: Vec<i32> = (0..10).collect();
    println!("Input   : {inputs:?}");

    let builtin_outputs: Vec<i32> = inputs.iter().copied().map(do_calculation).collect();
    println!("Built-in: {builtin_outputs:?}");

    let pool_size = cpu_count();

    let pool = Pool::builder()
        .processes(pool_size)
        .initializer(start_process)
        .start_method(StartMethod::Fork)
        .build()?;
    let pool_outputs = pool.map(do_calculation, inputs)?;
    drop(pool);

    println!("Pool    : {pool_outputs:?}");
    Ok(())
}
// ANCHOR_END: main
