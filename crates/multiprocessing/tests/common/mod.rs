//! What the runtime's test files share: how long to wait, and waiting that fails a test
//! instead of hanging it.

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use multiprocessing::{ExitStatus, Process};
use nix::errno::Errno;
use nix::unistd::Pid;

/// Long enough for anything a test waits for; a wait that needs more is a hang.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Waits for `process`; kills it and fails the test if it does not end within [`PATIENCE`].
pub fn finish(process: &Process) -> ExitStatus {
    match process.join_timeout(PATIENCE).expect("join") {
        Some(status) => status,
        None => {
            process.kill().expect("kill");
            process.join().expect("join");
            panic!("{process} did not end in time");
        }
    }
}

/// Starts `process` and waits for it, as [`finish`] does.
pub fn run(process: &Process) -> ExitStatus {
    process.start().expect("start");
    finish(process)
}

/// Starts `process` and hands it back.
pub fn started(process: Process) -> Process {
    process.start().expect("start");
    process
}

/// Whether a process with this pid exists (a zombie counts).
pub fn exists(pid: u32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid as i32), None) != Err(Errno::ESRCH)
}

/// Runs `work` on a thread of its own and returns what it returns; fails the test if it takes
/// longer than [`PATIENCE`], instead of hanging it.
pub fn bounded<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(work());
    });
    receiver
        .recv_timeout(PATIENCE)
        .expect("did not finish in time")
}

/// A result type whose decoding panics in the parent for one value: a validating type, or a
/// bug in a hand-written `Deserialize`.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Touchy(pub u64);

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Touchy, D::Error> {
        let value = u64::deserialize(deserializer)?;
        assert_ne!(value, 13, "Touchy cannot hold 13");
        Ok(Touchy(value))
    }
}

/// A task whose result is a [`Touchy`].
pub fn touchy(n: u64) -> Touchy {
    Touchy(n)
}
