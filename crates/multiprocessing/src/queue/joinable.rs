//! Python's `multiprocessing.JoinableQueue`: a [`Queue`] that counts unfinished tasks.

use std::ops::Deref;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Builder, Queue};
use crate::error::{Error, Result};

/// A [`Queue`] that counts unfinished tasks: Python's `multiprocessing.JoinableQueue`.
///
/// Every `put` adds a task; every [`task_done`](JoinableQueue::task_done) finishes one, in
/// whichever process; [`join`](JoinableQueue::join) waits until none is left. It is a `Queue`
/// in every other way, and derefs to one.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{JoinableQueue, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let tasks: JoinableQueue<u32> = JoinableQueue::new()?;
/// let worker = {
///     let tasks = tasks.clone();
///     Process::new(move || -> multiprocessing::Result<()> {
///         let n = tasks.get()?;
///         println!("{n} squared is {}", n * n);
///         tasks.task_done()
///     })
/// };
/// worker.start()?;
/// tasks.put(7)?;
/// tasks.join()?; // returns once the worker has called task_done
/// # Ok(())
/// # }
/// ```
pub struct JoinableQueue<T> {
    pub(super) queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::new()?,
        })
    }

    /// A joinable queue built with the given options.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn with(builder: Builder) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: builder.build()?,
        })
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one task, taken with `get`, as finished.
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooManyTimes`] when there is no unfinished task, [`Error::Os`].
    pub fn task_done(&self) -> Result<()> {
        let mut guard = self.queue.inner.lock(None)?.expect("no deadline");
        let unfinished = guard.state().unfinished;
        if unfinished == 0 {
            return Err(Error::TaskDoneTooManyTimes);
        }
        if unfinished == 1 {
            // Wake the joiners before the count reaches 0 (see `SharedCondition::notify`).
            self.queue.inner.header.all_done.notify();
        }
        guard.state().unfinished = unfinished - 1;
        Ok(())
    }

    /// Waits until every message put has been marked done.
    ///
    /// # Errors
    ///
    /// [`Error::Os`].
    pub fn join(&self) -> Result<()> {
        self.join_until(None).map(drop)
    }

    /// Waits at most `timeout` for every task to be done; returns whether they all were.
    ///
    /// # Errors
    ///
    /// [`Error::Os`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_until(crate::sync::deadline_after(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let inner = &self.queue.inner;
        let Some(mut guard) = inner.lock(deadline)? else {
            return Ok(false);
        };
        while guard.state().unfinished > 0 {
            if !guard.wait(&inner.header.all_done, deadline)? {
                return Ok(guard.state().unfinished == 0);
            }
        }
        Ok(true)
    }
}
