//! Any serde type can cross a queue: `multiprocessing_queue.py`.
//!
//! Book: `book/src/queue.md`. Run: `cargo run -p lesson-queue --bin queue-fancy`.
//!
//! Notice: Python pickles `MyFancyClass`; here `#[derive(Serialize, Deserialize)]` is what
//! lets it cross, and the method it calls is compiled into both processes.

use multiprocessing::{Process, Queue, current_process};
use serde::{Deserialize, Serialize};

// ANCHOR: fancy
#[derive(Serialize, Deserialize)]
struct MyFancyClass {
    name: String,
}

impl MyFancyClass {
    fn new(name: &str) -> MyFancyClass {
        MyFancyClass {
            name: name.to_owned(),
        }
    }

    fn do_something(&self) {
        let proc_name = current_process().name().to_owned();
        println!("Doing something fancy in {proc_name} for {}!", self.name);
    }
}
// ANCHOR_END: fancy

// ANCHOR: main
fn worker(q: Queue<MyFancyClass>) -> multiprocessing::Result<()> {
    let obj = q.get()?;
    obj.do_something();
    Ok(())
}

fn main() -> multiprocessing::Result<()> {
    let queue = Queue::new()?;

    let p = Process::new({
        let queue = queue.clone();
        move || worker(queue)
    });
    p.start()?;

    queue.put(MyFancyClass::new("Fancy Dan"))?;

    // Wait for the worker to finish
    queue.close();
    p.join()?;
    Ok(())
}
// ANCHOR_END: main
