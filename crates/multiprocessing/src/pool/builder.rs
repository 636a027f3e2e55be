//! How a pool is made: Python's `Pool(processes, initializer, maxtasksperchild)`, and what
//! goes beyond it (time limits, memory ceilings), for a [`Pool`] and for the process
//! executor built on one.

use std::sync::Mutex;
use std::time::Duration;

use super::{Commands, Pool, manager};
use crate::completion::Dispatcher;
use crate::error::{Error, Result};
use crate::start::StartMethod;

/// What the death of a worker does to its pool, which is what tells Python's two pools apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnWorkerDeath {
    /// The task it ran fails and a new worker takes its place: a [`Pool`], whose workers are
    /// named `ForkPoolWorker-N`.
    Replace,
    /// The pool breaks, and all its work fails: a
    /// [`ProcessPoolExecutor`](crate::futures::ProcessPoolExecutor), whose workers are named
    /// `ForkProcess-N`.
    Break,
}

impl OnWorkerDeath {
    /// The workers' names, before `-N`, as Python names them for each start method.
    pub(super) fn worker_name(self, method: StartMethod) -> &'static str {
        match self {
            OnWorkerDeath::Replace => method.pool_worker(),
            OnWorkerDeath::Break => method.executor_worker(),
        }
    }
}

/// Options for a [`Pool`]: Python's `Pool(processes, initializer, maxtasksperchild)`.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct Builder {
    processes: Option<usize>,
    initializer: Option<fn()>,
    maxtasksperchild: Option<usize>,
    method: Option<StartMethod>,
    task_timeout: Option<Duration>,
    max_memory_per_child: Option<u64>,
    memory_limit: Option<u64>,
}

impl Builder {
    /// How many workers; [`cpu_count`](crate::cpu_count) by default.
    pub fn processes(mut self, processes: usize) -> Builder {
        self.processes = Some(processes);
        self
    }

    /// A function each worker runs once, when it starts.
    pub fn initializer(mut self, initializer: fn()) -> Builder {
        self.initializer = Some(initializer);
        self
    }

    /// How the workers start ([`get_start_method`](crate::get_start_method) by default):
    /// under `spawn` and `forkserver` they are safe in a program with threads, and the program
    /// must call [`init`](crate::init).
    pub fn start_method(mut self, method: StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// How many chunks of work a worker runs before it is replaced by a fresh one; without
    /// it, workers live as long as the pool.
    pub fn maxtasksperchild(mut self, tasks: usize) -> Builder {
        self.maxtasksperchild = Some(tasks);
        self
    }

    /// How long any one task (a chunk, in a map) may run. A task past it fails alone with
    /// [`Error::TaskTimedOut`]: its worker is stopped (`SIGTERM`, then `SIGKILL` a second
    /// later) and replaced, and every other task goes on. [`Pool::with_task_timeout`] sets a
    /// limit for some calls only.
    pub fn task_timeout(mut self, limit: Duration) -> Builder {
        self.task_timeout = Some(limit);
        self
    }

    /// How much memory, in bytes, a worker may hold resident after a task: a worker above it
    /// is replaced by a fresh one before its next task (billiard's `max_memory_per_child`).
    /// Workers are then never sent work ahead, so that none runs a task after it has grown
    /// too large.
    pub fn max_memory_per_child(mut self, bytes: u64) -> Builder {
        self.max_memory_per_child = Some(bytes);
        self
    }

    /// A hard ceiling, in bytes, on the heap of each worker (`RLIMIT_DATA`: what it inherited
    /// from its parent counts too): a task that allocates past it fails alone with
    /// [`Error::MemoryLimitExceeded`], and its worker is replaced, instead of the machine
    /// running out of memory.
    pub fn memory_limit(mut self, bytes: u64) -> Builder {
        self.memory_limit = Some(bytes);
        self
    }

    /// Starts the workers and the pool's manager thread.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`] for 0 processes or 0 `maxtasksperchild`, [`Error::Os`] when a
    /// worker or the manager thread cannot be started.
    pub fn build(self) -> Result<Pool> {
        self.start(OnWorkerDeath::Replace)
    }

    /// Starts the pool, whose workers' deaths do what `on_death` says.
    pub(crate) fn start(self, on_death: OnWorkerDeath) -> Result<Pool> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 || self.maxtasksperchild == Some(0) {
            return Err(Error::NoWorkers);
        }
        let handle = manager::start(manager::Options {
            processes,
            initializer: self.initializer,
            maxtasksperchild: self.maxtasksperchild,
            on_death,
            method: self.method.unwrap_or_else(crate::get_start_method),
            max_memory_per_child: self.max_memory_per_child,
            memory_limit: self.memory_limit,
        })?;
        Ok(Pool {
            shared: handle.shared,
            broken: handle.broken,
            timelines: handle.timelines,
            task_timeout: self.task_timeout,
            commands: Mutex::new(Commands {
                sender: Some(handle.commands),
                open: true,
            }),
            manager: Mutex::new(Some(handle.thread)),
            dispatcher: Dispatcher::default(),
            processes,
            detached: false,
        })
    }
}
