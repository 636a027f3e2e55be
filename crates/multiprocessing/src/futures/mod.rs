//! Python's `concurrent.futures`: executors that run calls in processes or threads, and the
//! futures that hold their results.
//!
//! [`ProcessPoolExecutor`] and [`ThreadPoolExecutor`] have the same methods, so a program
//! switches between processes and threads by changing one line, as the source material does.
//! Both take plain `fn` items; the process executor also needs serde types, since arguments
//! and results cross between processes.
//!
//! As in Python, a process executor whose worker dies abruptly is broken: every pending
//! future fails with [`Error::BrokenProcessPool`], naming the worker and how it ended, and so
//! does every later `submit`. (A [`Pool`](crate::Pool) replaces the worker instead.)

mod future;
mod map;
mod process;
mod thread;
mod wait;

use crate::error::{Error, Result};

pub use future::Future;
pub use map::Map;
pub use process::ProcessPoolExecutor;
pub use thread::ThreadPoolExecutor;
pub use wait::{AsCompleted, ReturnWhen, Waited, as_completed, wait};

/// Options for an executor: Python's `max_workers` and `initializer`.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct Builder {
    max_workers: Option<usize>,
    initializer: Option<fn()>,
}

impl Builder {
    /// How many workers; [`cpu_count`](crate::cpu_count) by default.
    pub fn max_workers(mut self, workers: usize) -> Builder {
        self.max_workers = Some(workers);
        self
    }

    /// A function each worker runs once, when it starts. A worker whose initializer panics
    /// breaks the executor before it is returned: [`Error::BrokenProcessPool`] or
    /// [`Error::BrokenThreadPool`].
    pub fn initializer(mut self, initializer: fn()) -> Builder {
        self.initializer = Some(initializer);
        self
    }

    /// Starts a process executor.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`] for 0 workers, [`Error::BrokenProcessPool`] when a worker's
    /// initializer fails, [`Error::Os`].
    pub fn processes(self) -> Result<ProcessPoolExecutor> {
        ProcessPoolExecutor::start(self.workers()?, self.initializer)
    }

    /// Starts a thread executor.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`] for 0 workers, [`Error::BrokenThreadPool`] when an initializer
    /// panics, [`Error::Os`] when a thread cannot start.
    pub fn threads(self) -> Result<ThreadPoolExecutor> {
        ThreadPoolExecutor::start(self.workers()?, self.initializer)
    }

    fn workers(&self) -> Result<usize> {
        match self.max_workers.unwrap_or_else(crate::cpu_count) {
            0 => Err(Error::NoWorkers),
            workers => Ok(workers),
        }
    }
}
