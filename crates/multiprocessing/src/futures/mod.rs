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
//!
//! An executor built outside this crate, whose workers are processes the runtime does not
//! start (the ranks of an MPI job), hands out the same [`Future`]s and [`Map`]s through
//! [`Promises`].

mod future;
mod map;
mod process;
mod promise;
mod thread;
mod wait;

use crate::error::{Error, Result};
use crate::pool;
use crate::start::StartMethod;

pub use future::Future;
pub use map::Map;
pub use process::{ProcessPoolExecutor, TimeLimited};
pub use promise::{Promise, Promises};
pub use thread::ThreadPoolExecutor;
pub use wait::{AsCompleted, ReturnWhen, Waited, as_completed, wait};

/// Options for an executor: Python's `max_workers`, `initializer`, `mp_context` and
/// `max_tasks_per_child`.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct Builder {
    max_workers: Option<usize>,
    initializer: Option<fn()>,
    method: Option<StartMethod>,
    max_tasks_per_child: Option<usize>,
    /// The options a process executor passes to its pool as they are: time limits and
    /// memory ceilings.
    pool: pool::Builder,
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

    /// How a process executor's workers start: Python's `mp_context`. Without it, the
    /// program's [`get_start_method`](crate::get_start_method), or `spawn` when
    /// [`max_tasks_per_child`](Builder::max_tasks_per_child) is set, as in Python.
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// How many calls a process executor's worker runs before a fresh one replaces it:
    /// Python's `max_tasks_per_child`. A worker that has done its share is not a dead one: the
    /// executor does not break.
    pub fn max_tasks_per_child(mut self, tasks: usize) -> Builder {
        self.max_tasks_per_child = Some(tasks);
        self
    }

    /// How long any one call of a process executor (a chunk, in a map) may run: past it, the
    /// call fails alone with [`Error::TaskTimedOut`], its worker is stopped and replaced, and
    /// the executor does not break. See [`pool::Builder::task_timeout`].
    pub fn task_timeout(mut self, limit: std::time::Duration) -> Builder {
        self.pool = self.pool.task_timeout(limit);
        self
    }

    /// How much memory a process executor's worker may hold after a call before it is
    /// replaced; see [`pool::Builder::max_memory_per_child`].
    pub fn max_memory_per_child(mut self, bytes: u64) -> Builder {
        self.pool = self.pool.max_memory_per_child(bytes);
        self
    }

    /// A hard ceiling on each process executor worker's heap: a call that allocates past it
    /// fails alone with [`Error::MemoryLimitExceeded`], and the executor does not break; see
    /// [`pool::Builder::memory_limit`].
    pub fn memory_limit(mut self, bytes: u64) -> Builder {
        self.pool = self.pool.memory_limit(bytes);
        self
    }

    /// Starts a process executor.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`] for 0 workers or 0 tasks per child,
    /// [`Error::MaxTasksUnderFork`] for `max_tasks_per_child` with `fork` (Python refuses it
    /// too), [`Error::BrokenProcessPool`] when a worker's initializer fails,
    /// [`Error::NotInitialized`] for `spawn` or `forkserver` without [`init`](crate::init),
    /// [`Error::Os`].
    pub fn processes(self) -> Result<ProcessPoolExecutor> {
        let method = match (self.method, self.max_tasks_per_child) {
            (Some(StartMethod::Fork), Some(_)) => return Err(Error::MaxTasksUnderFork),
            (Some(method), _) => method,
            (None, Some(_)) => StartMethod::Spawn,
            (None, None) => crate::get_start_method(),
        };
        let mut options = self.pool.processes(self.workers()?).start_method(method);
        if let Some(initializer) = self.initializer {
            options = options.initializer(initializer);
        }
        if let Some(tasks) = self.max_tasks_per_child {
            options = options.maxtasksperchild(tasks);
        }
        ProcessPoolExecutor::start(options)
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
