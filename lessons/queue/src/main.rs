//! A creator and a consumer share a queue: `multiprocessing_process_communication.py`.
//!
//! Book: `book/src/queue.md`. Run: `cargo run -p lesson-queue`.
//!
//! Notice: each process gets its own handle to the one queue (`q.clone()` moved into its
//! closure); the consumer stops at the sentinel `-1`, after doubling it like any other item.

use multiprocessing::{Process, Queue};

const SENTINEL: i64 = -1;

// ANCHOR: creator
/// Creates data to be consumed and waits for the consumer to finish processing
fn creator(data: Vec<i64>, q: Queue<i64>) -> multiprocessing::Result<()> {
    println!("Creating data and putting it on the queue");
    for item in data {
        q.put(item)?;
    }
    Ok(())
}
// ANCHOR_END: creator

// ANCHOR: consumer
/// Consumes some data and works on it; in this case, all it does is double the input
fn my_consumer(q: Queue<i64>) -> multiprocessing::Result<()> {
    loop {
        let data = q.get()?;
        println!("data found to be processed: {data}");
        let processed = data * 2;
        println!("{processed}");

        if data == SENTINEL {
            break;
        }
    }
    Ok(())
}
// ANCHOR_END: consumer

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    let q = Queue::new()?;
    let data = vec![5, 10, 13, -1];
    let process_one = Process::new({
        let q = q.clone();
        move || creator(data, q)
    });
    let process_two = Process::new({
        let q = q.clone();
        move || my_consumer(q)
    });
    process_one.start()?;
    process_two.start()?;

    q.close();

    process_one.join()?;
    process_two.join()?;
    Ok(())
}
// ANCHOR_END: main
