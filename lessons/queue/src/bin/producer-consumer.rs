//! Consumers share a joinable queue of tasks: `multiprocessing_producer_consumer.py`.
//!
//! Book: `book/src/queue.md`. Run: `cargo run -p lesson-queue --bin producer-consumer`.
//!
//! Notice: `Consumer` implements `Run`, the counterpart of subclassing `Process`, so its
//! processes are called `Consumer-N`; `None` is the poison pill that stops one.

use std::fmt;
use std::thread::sleep;
use std::time::Duration;

use multiprocessing::{JoinableQueue, Process, Queue, Run, cpu_count, current_process};
use serde::{Deserialize, Serialize};

// ANCHOR: consumer
struct Consumer {
    task_queue: JoinableQueue<Option<Task>>,
    result_queue: Queue<String>,
}

impl Run for Consumer {
    type Output = multiprocessing::Result<()>;

    fn run(self) -> multiprocessing::Result<()> {
        let proc_name = current_process().name().to_owned();
        loop {
            let Some(next_task) = self.task_queue.get()? else {
                // Poison pill means shutdown
                println!("{proc_name}: Exiting");
                self.task_queue.task_done()?;
                break;
            };
            println!("{proc_name}: {next_task}");
            let answer = next_task.call();
            self.task_queue.task_done()?;
            self.result_queue.put(answer)?;
        }
        Ok(())
    }
}
// ANCHOR_END: consumer

// ANCHOR: task
#[derive(Serialize, Deserialize)]
struct Task {
    a: i64,
    b: i64,
}

impl Task {
    fn call(&self) -> String {
        sleep(Duration::from_millis(100)); // pretend to take time to do the work
        format!("{} * {} = {}", self.a, self.b, self.a * self.b)
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} * {}", self.a, self.b)
    }
}
// ANCHOR_END: task

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    // Establish communication queues
    let tasks = JoinableQueue::new()?;
    let results = Queue::new()?;

    // Start consumers
    let num_consumers = cpu_count() * 2;
    println!("Creating {num_consumers} consumers");
    let consumers: Vec<Process> = (0..num_consumers)
        .map(|_| {
            Process::from_run(Consumer {
                task_queue: tasks.clone(),
                result_queue: results.clone(),
            })
        })
        .collect();
    for w in &consumers {
        w.start()?;
    }

    // Enqueue jobs
    let mut num_jobs = 10;
    for i in 0..num_jobs {
        tasks.put(Some(Task { a: i, b: i }))?;
    }

    // Add a poison pill for each consumer
    for _ in 0..num_consumers {
        tasks.put(None)?;
    }

    // Wait for all of the tasks to finish
    tasks.join()?;

    // Start printing results
    while num_jobs > 0 {
        let result = results.get()?;
        println!("Result: {result}");
        num_jobs -= 1;
    }
    Ok(())
}
// ANCHOR_END: main
