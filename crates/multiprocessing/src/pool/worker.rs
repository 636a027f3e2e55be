//! A pool worker's side: its loop, and the frames it and the manager exchange.
//!
//! To a worker, a frame is a tag byte, then for `RUN` the task's [`TaskRef`] and the chunk's
//! encoded arguments. From a worker, a frame is a tag byte, then the chunk's encoded results
//! or why it has none.

use std::os::fd::RawFd;

use super::results::ChunkResult;
use crate::error::{Error, Result};
use crate::pipe::Connection;
use crate::process::catch_task;
use crate::task::{FnRef, TaskRef};

/// The first byte of a frame to a worker: run a chunk (then the task's reference and the
/// encoded arguments follow), or end.
const RUN: u8 = 0;
pub(super) const EXIT: u8 = 1;

/// The parts of a frame that tells a worker to run `task` on a chunk of encoded `args`.
pub(super) fn run_frame<'a>(task: &'a [u8; TaskRef::BYTES], args: &'a [u8]) -> [&'a [u8]; 3] {
    [&[RUN], task, args]
}

/// A frame's task and arguments, if it is a `RUN` frame.
fn parse_run(frame: &[u8]) -> Option<(TaskRef, &[u8])> {
    let (&RUN, rest) = frame.split_first()? else {
        return None;
    };
    let (task, args) = rest.split_at_checked(TaskRef::BYTES)?;
    Some((TaskRef::from_bytes(task)?, args))
}

/// The first byte of a worker's reply: the chunk's encoded results follow, or why it has
/// none. A lone `DONE` also says that a new worker is ready.
const DONE: u8 = 0;
const DECODE_FAILED: u8 = 1;
const ENCODE_FAILED: u8 = 2;
const PANICKED: u8 = 3;

/// A worker started afresh, by `spawn` or `forkserver`: it has nothing of the pool's to
/// close, and gets its initializer by reference. Returns its exit code.
pub(crate) fn spawned_worker(conn: Connection, initializer: Option<FnRef>) -> i32 {
    // SAFETY: the reference was made by `FnRef::new` in the pool's process, which runs this
    // same executable.
    let initializer = initializer.map(|initializer| unsafe { initializer.get() });
    crate::Outcome::exit_code(worker_main(conn, &[], initializer))
}

/// A worker's life: run the initializer, then jobs, until told to stop or the pool is gone.
pub(super) fn worker_main(
    mut conn: Connection,
    inherited: &[RawFd],
    initializer: Option<fn()>,
) -> Result<()> {
    for &fd in inherited {
        // SAFETY: these descriptors were copied into this process by fork and belong to the
        // parent's pool; nothing in this worker uses them, and closing them here changes
        // nothing in the parent.
        unsafe { libc::close(fd) };
    }
    if let Some(initializer) = initializer {
        initializer();
    }
    // A lone DONE says: initialized and running.
    conn.send_bytes(&[DONE])?;
    loop {
        let frame = match conn.recv_bytes() {
            Ok(frame) => frame,
            Err(Error::Disconnected) => return Ok(()),
            Err(error) => return Err(error),
        };
        // Anything but a chunk to run (`EXIT`) ends the worker.
        let Some((task, args)) = parse_run(&frame) else {
            return Ok(());
        };
        // SAFETY: the task reference was made by the parent, which runs this same executable
        // (this process is its fork).
        let (tag, body) = match catch_task(|| unsafe { task.run(args) }) {
            Ok(Ok(results)) => (DONE, results),
            Ok(Err(Error::Encode { message })) => (ENCODE_FAILED, message.into_bytes()),
            Ok(Err(Error::Decode { message })) => (DECODE_FAILED, message.into_bytes()),
            Ok(Err(error)) => (DECODE_FAILED, error.to_string().into_bytes()),
            Err(panic) => (PANICKED, panic.into_bytes()),
        };
        match conn.send_parts(&[&[tag], &body]) {
            Ok(()) => {}
            Err(Error::Disconnected) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// A worker's reply as the result of the chunk it answers.
pub(super) fn chunk_result(mut reply: Vec<u8>) -> ChunkResult {
    let Some(&tag) = reply.first() else {
        return Err(Error::Corrupt {
            message: "a pool worker sent an empty reply".into(),
        });
    };
    reply.remove(0);
    let message = || String::from_utf8_lossy(&reply).into_owned();
    match tag {
        DONE => Ok(reply),
        DECODE_FAILED => Err(Error::Decode { message: message() }),
        ENCODE_FAILED => Err(Error::Encode { message: message() }),
        PANICKED => Err(Error::TaskPanicked { message: message() }),
        other => Err(Error::Corrupt {
            message: format!("a pool worker sent a reply of unknown kind {other}"),
        }),
    }
}
