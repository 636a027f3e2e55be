//! A job: a chunk of work on its way to a worker, and where its results go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::results::ChunkResult;
use crate::completion::Completer;
use crate::diagnosis::TaskPlace;
use crate::error::Error;
use crate::task::TaskRef;

/// Where a chunk's result goes. It is a [`Completer`] underneath, so a job dropped on any
/// path, unanswered, fails its waiters instead of leaving them waiting.
pub(crate) trait Reply: Send {
    /// Called just before the job goes to a worker; `false` withdraws it (a cancelled
    /// future).
    fn start(&self) -> bool;

    /// Whether the job can still be withdrawn until it starts: such a job goes only to an
    /// idle worker, never ahead to a busy one, where a cancel could no longer reach it.
    fn cancellable(&self) -> bool {
        false
    }

    /// Delivers the result.
    fn send(self: Box<Self>, result: ChunkResult);

    /// Whether its caller asked for it to be stopped while it runs (a future's
    /// [`terminate`](crate::futures::Future::terminate)): its worker is then stopped and
    /// replaced.
    fn stop_requested(&self) -> bool {
        false
    }

    /// Delivers the news that it was stopped at its caller's request.
    fn stopped(self: Box<Self>) {
        self.send(Err(Error::Cancelled));
    }
}

impl Reply for Completer<Vec<u8>> {
    fn start(&self) -> bool {
        true
    }

    fn send(self: Box<Self>, result: ChunkResult) {
        self.set(result);
    }
}

/// A chunk of work and where its results go.
pub(crate) struct Job {
    /// Names this job among all others, for a waiter that reads its result itself.
    pub(crate) key: JobKey,
    pub(crate) task: TaskRef,
    /// The chunk's arguments, encoded together as one `Vec<A>`.
    pub(crate) args: Vec<u8>,
    /// How many arguments that is.
    pub(crate) count: usize,
    /// The call this chunk is one of, when that call's results are seen only all together
    /// (a `map`): a worker may then hold one chunk's results back while it runs the next
    /// chunk of the same call. `None` for a chunk whose result is seen on its own.
    pub(crate) call: Option<CallId>,
    /// Which inputs of its call these are, for the error that says what a dead worker ran.
    pub(crate) place: TaskPlace,
    /// How long it may run: past that, its worker is stopped and it fails alone.
    pub(crate) limit: Option<Duration>,
    pub(crate) reply: Box<dyn Reply>,
}

/// Names one call of several chunks; see [`Job::call`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallId(u64);

impl CallId {
    /// A name no other call of this process has.
    pub(crate) fn new() -> CallId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        CallId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Names one job; see [`Job::key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct JobKey(u64);

impl JobKey {
    /// A name no other job of this process has.
    pub(crate) fn new() -> JobKey {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        JobKey(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A job sent to a worker.
pub(super) struct Sent {
    pub(super) job: Job,
    /// Sent as more of the call of the job sent just before it: the worker may have held
    /// that job's reply back while it ran this one.
    pub(super) more: bool,
}

impl Job {
    /// Finishes the job with `error` for each of its items.
    pub(super) fn fail(self, error: &Error) {
        self.reply.send(Err(error.clone()));
    }
}
