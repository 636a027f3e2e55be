//! A pool worker's side: its loop, and the frames it and the manager exchange.
//!
//! To a worker, a frame is a tag byte, then for `RUN` and `RUN_MORE` the task's [`TaskRef`]
//! and the chunk's encoded arguments. From a worker, a frame is a tag byte, then the chunk's
//! encoded results or why it has none.
//!
//! Frames travel in batches both ways: the manager writes every frame it has for a worker
//! with one system call, and the worker reads them with one. The worker answers the chunks of
//! one `map` that it read together with one write; any other chunk it answers before it
//! starts the next (`serve` says why).

use std::os::fd::RawFd;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::results::ChunkResult;
use crate::error::{Error, Result};
use crate::pipe::Connection;
use crate::process::catch_task;
use crate::task::{FnRef, TaskRef};

/// The first byte of a frame to a worker: run a chunk (then the task's reference and the
/// encoded arguments follow), or end. `RUN_MORE` runs a chunk of the same call as the chunk
/// sent to this worker just before it, whose results nobody sees until this one's are in
/// too: the worker may hold that chunk's reply back while it runs this one.
const RUN: u8 = 0;
pub(super) const EXIT: u8 = 1;
const RUN_MORE: u8 = 2;

/// The parts of a frame that tells a worker to run `task` on a chunk of encoded `args`; with
/// `more`, as more of the call its previous chunk belongs to.
pub(super) fn run_frame<'a>(
    task: &'a [u8; TaskRef::BYTES],
    args: &'a [u8],
    more: bool,
) -> [&'a [u8]; 3] {
    [if more { &[RUN_MORE] } else { &[RUN] }, task, args]
}

/// A frame's task and arguments, and whether it is more of the previous chunk's call, if it
/// is a frame to run.
fn parse_run(frame: &[u8]) -> Option<(TaskRef, &[u8], bool)> {
    let (&tag, rest) = frame.split_first()?;
    if tag != RUN && tag != RUN_MORE {
        return None;
    }
    let (task, args) = rest.split_at_checked(TaskRef::BYTES)?;
    Some((TaskRef::from_bytes(task)?, args, tag == RUN_MORE))
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
    match serve(&mut conn) {
        // The pool is gone: nothing is left to do.
        Err(Error::Disconnected) => Ok(()),
        outcome => outcome,
    }
}

/// Runs chunks and answers them, until told to end or the pool is gone.
fn serve(conn: &mut Connection) -> Result<()> {
    let mut replies = Replies::default();
    loop {
        // Nothing more is here to run: what is done goes now, before waiting for more.
        if !conn.has_read_ahead() {
            replies.send(conn)?;
        }
        let frame = conn.recv_bytes()?;
        // Anything but a chunk to run (`EXIT`) ends the worker.
        let Some((task, args, more)) = parse_run(&frame) else {
            replies.send(conn)?;
            return Ok(());
        };
        // Held replies wait only for a chunk of their own call: nobody sees them before this
        // chunk's reply anyway. Before any other chunk they go, so that a slow task never
        // holds back results already done, and so that the manager, should this worker die,
        // knows which chunk it was running: its first unanswered one, or one of the same
        // call as that (which fails with it).
        if !more {
            replies.send(conn)?;
        }
        // SAFETY: the task reference was made by the parent, which runs this same executable
        // (this process is its fork).
        let (tag, body) = match catch_task(|| unsafe { task.run(args) }) {
            Ok(Ok(results)) => (DONE, results),
            Ok(Err(Error::Encode { message })) => (ENCODE_FAILED, message.into_bytes()),
            Ok(Err(Error::Decode { message })) => (DECODE_FAILED, message.into_bytes()),
            Ok(Err(error)) => (DECODE_FAILED, error.to_string().into_bytes()),
            Err(panic) => (PANICKED, panic.into_bytes()),
        };
        if replies.is_empty() && !conn.has_read_ahead() {
            // The common case of one chunk at a time: its reply goes at once, uncopied.
            conn.send_parts(&[&[tag], &body])?;
        } else {
            replies.add(conn, &[&[tag], &body])?;
        }
    }
}

/// Replies framed and not sent yet, to go together in one write.
#[derive(Default)]
struct Replies(Vec<u8>);

impl Replies {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a reply made of `parts`.
    fn add(&mut self, conn: &Connection, parts: &[&[u8]]) -> Result<()> {
        let frame = conn.frame(parts)?;
        if self.0.is_empty() {
            self.0 = frame;
        } else {
            self.0.extend_from_slice(&frame);
        }
        Ok(())
    }

    /// Writes them all, waiting for room in the socket when it is full (the manager reads
    /// its workers' sockets without ever waiting to write to one).
    fn send(&mut self, conn: &mut Connection) -> Result<()> {
        let mut sent = 0;
        while sent < self.0.len() {
            match conn.send_some(&self.0[sent..])? {
                0 => {
                    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLOUT)];
                    match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(errno) => {
                            return Err(Error::Os {
                                context: "cannot wait to send a pool worker's replies",
                                errno,
                            });
                        }
                    }
                }
                written => sent += written,
            }
        }
        self.0.clear();
        Ok(())
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
