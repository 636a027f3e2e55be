//! A `TaskRef` made in one process runs in a fresh copy of the same executable, as a future
//! `spawn` start method needs: the test binary runs itself again, with the encoded reference
//! and argument in its environment, and that copy runs only the half that executes them.

use std::process::Command;

use multiprocessing::codec::{decode, encode};
use multiprocessing::task::{ChunkResults, Task, TaskRef};

/// Where the parent puts the encoded task and argument for the fresh copy.
const TASK_VAR: &str = "MULTIPROCESSING_TEST_TASK";

fn doubler(number: i32) -> i32 {
    number * 2
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_task_ref_runs_in_a_fresh_copy_of_the_binary() {
    let message = encode(&(Task::new(doubler).to_ref(), encode(&vec![25]).unwrap())).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fresh_copy_runs_the_task",
            "--ignored",
            "--nocapture",
        ])
        .env(TASK_VAR, hex(&message))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("result=50\n"), "{stdout}");
}

/// The half that runs in the fresh copy, started by the test above.
#[test]
#[ignore = "runs only in the copy that a_task_ref_runs_in_a_fresh_copy_of_the_binary starts"]
fn fresh_copy_runs_the_task() {
    let message = std::env::var(TASK_VAR).expect("started by the test above");
    let (task, arg): (TaskRef, Vec<u8>) = decode(&unhex(&message)).unwrap();
    // SAFETY: the reference was made by this same test executable, run by its parent.
    let result = unsafe { task.run(&arg) }.unwrap();
    let results: ChunkResults<i32> = decode(&result).unwrap();
    println!("result={}", results[0].as_ref().unwrap());
}
