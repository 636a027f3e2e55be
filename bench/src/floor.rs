//! The floor the operating system sets: bare `fork` + `waitpid`, and a bare pipe, with nothing
//! of the runtime in between. The runtime's figures are set against these, measured in the
//! same run.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe};

use crate::Result;

/// Forks a bare child that closes `parents_ends`, runs `body` and ends with `_exit`: code 0 if
/// `body` returned true, 1 otherwise. What `body` captured is closed in the parent when this
/// returns; the parent's ends of the child's pipes must be closed in the child, or it would
/// hold its own input open and never see it end.
fn spawn(parents_ends: &[&File], body: impl FnOnce() -> bool) -> Result<Pid> {
    // SAFETY: the child may run while other threads of the parent held locks at the fork, so
    // it touches no lock: `body` only reads and writes file descriptors it owns, and the
    // child leaves by `_exit`, never returning into the parent's code or destructors.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            for end in parents_ends {
                // SAFETY: the child's copy of a descriptor the parent keeps; its `File` is
                // never used or dropped in the child, which leaves by `_exit`.
                unsafe { libc::close(end.as_raw_fd()) };
            }
            let ok = catch_unwind(AssertUnwindSafe(body)).unwrap_or(false);
            // SAFETY: `_exit` ends the child at once, without the parent's `atexit` handlers.
            unsafe { libc::_exit(i32::from(!ok)) }
        }
    }
}

/// Waits for a bare child and checks that it exited with code 0.
fn reap(child: Pid) -> Result<()> {
    match waitpid(child, None)? {
        WaitStatus::Exited(_, 0) => Ok(()),
        status => Err(format!("a bare child ended badly: {status:?}").into()),
    }
}

/// One `fork` of a child that exits at once, and the parent's `waitpid` for it.
///
/// # Errors
///
/// When `fork` or `waitpid` fails.
// ANCHOR: fork_wait
pub fn fork_wait() -> Result<Duration> {
    let start = Instant::now();
    let child = spawn(&[], || true)?;
    reap(child)?;
    Ok(start.elapsed())
}
// ANCHOR_END: fork_wait

/// A bare child that echoes what it reads from one pipe into another, for timing round trips.
pub struct Echo {
    child: Pid,
    to_child: File,
    from_child: File,
}

impl Echo {
    /// Forks the echoing child. Fork it before any process that should not inherit its pipes:
    /// it ends when every copy of its input's write end is closed.
    ///
    /// # Errors
    ///
    /// When the pipes or the child cannot be made.
    pub fn start() -> Result<Echo> {
        let (down_read, down_write) = pipe()?;
        let (up_read, up_write) = pipe()?;
        let (to_child, from_child) = (File::from(down_write), File::from(up_read));
        let child = spawn(&[&to_child, &from_child], move || echo(down_read, up_write))?;
        Ok(Echo {
            child,
            to_child,
            from_child,
        })
    }

    /// One round trip: 8 bytes to the child and 8 bytes back.
    ///
    /// # Errors
    ///
    /// When the child is gone.
    // ANCHOR: roundtrip
    pub fn roundtrip(&mut self) -> Result<Duration> {
        let mut reply = [0; 8];
        let start = Instant::now();
        self.to_child.write_all(&[1; 8])?;
        self.from_child.read_exact(&mut reply)?;
        Ok(start.elapsed())
    }
    // ANCHOR_END: roundtrip

    /// Closes the child's input and waits for it to end.
    ///
    /// # Errors
    ///
    /// When it ended badly.
    pub fn finish(self) -> Result<()> {
        drop(self.to_child);
        reap(self.child)
    }
}

/// The echoing child's loop: until its input ends.
fn echo(input: OwnedFd, output: OwnedFd) -> bool {
    let (mut input, mut output) = (File::from(input), File::from(output));
    let mut buffer = [0; 8];
    loop {
        match input.read(&mut buffer) {
            Ok(0) => return true,
            Ok(count) if output.write_all(&buffer[..count]).is_ok() => {}
            _ => return false,
        }
    }
}

/// How long a bare child takes to send `messages` copies of `payload` through a pipe, read by
/// the parent one message at a time into a buffer of the payload's size.
///
/// # Errors
///
/// When the pipe or the child fails, or fewer bytes arrive than were sent.
// ANCHOR: bandwidth
pub fn pipe_bandwidth(payload: &[u8], messages: usize) -> Result<Duration> {
    let (read_end, write_end) = pipe()?;
    let mut input = File::from(read_end);
    let mut buffer = vec![0; payload.len()];
    let start = Instant::now();
    let child = spawn(&[&input], move || {
        let mut output = File::from(write_end);
        (0..messages).all(|_| output.write_all(payload).is_ok())
    })?;
    for _ in 0..messages {
        input.read_exact(&mut buffer)?;
    }
    let elapsed = start.elapsed();
    reap(child)?;
    Ok(elapsed)
}
// ANCHOR_END: bandwidth
