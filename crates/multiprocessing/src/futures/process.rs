//! [`ProcessPoolExecutor`]: calls run by a pool of worker processes that breaks when one dies.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::future::{Future, Outstanding, Payload};
use super::{Builder, Map};
use crate::codec;
use crate::completion::{Completer, driven_completion};
use crate::diagnosis::{Diagnosis, TaskPlace};
use crate::error::{Error, Result};
use crate::pool::{
    self, ChunkResult, Job, OnWorkerDeath, Pool, Reply, WorkerStats, decode_results,
};
use crate::task::Task;
use crate::window::{Pending, Window};

/// Where a process executor's call delivers its result: the future's completer, which may be
/// withdrawn (cancelled) until a worker takes the call.
struct FutureReply<R>(Completer<Payload<R>>);

impl<R: DeserializeOwned + Send + 'static> Reply for FutureReply<R> {
    fn start(&self) -> bool {
        self.0.start()
    }

    fn cancellable(&self) -> bool {
        true
    }

    fn send(self: Box<Self>, result: ChunkResult) {
        self.0
            .set(result.map(|bytes| Payload::Encoded(bytes, decode_one::<R>)));
    }

    fn stop_requested(&self) -> bool {
        self.0.stop_requested()
    }

    fn stopped(self: Box<Self>) {
        self.0.cancel();
    }
}

/// A one-call chunk's result, decoded.
fn decode_one<R: DeserializeOwned>(chunk: ChunkResult) -> Result<R> {
    decode_results(&chunk, 1)
        .into_iter()
        .next()
        .unwrap_or(Err(Error::ResultLost))
}

/// Runs calls in worker processes: Python's `concurrent.futures.ProcessPoolExecutor`.
///
/// Dropping it shuts it down and waits for the calls submitted, as leaving Python's `with`
/// block does.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::futures::ProcessPoolExecutor;
///
/// fn is_even(n: u64) -> bool {
///     n % 2 == 0
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ProcessPoolExecutor::new(2)?;
/// let answers: Vec<bool> = executor.map(is_even, [1, 2, 3]).collect::<Result<_, _>>()?;
/// assert_eq!(answers, [false, true, false]);
/// # Ok(())
/// # }
/// ```
///
/// The lesson `lesson-executor` runs more.
pub struct ProcessPoolExecutor {
    /// `None` once shut down without waiting: the pool then finishes on its own.
    pool: Option<Pool>,
    outstanding: Outstanding,
}

impl std::fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPoolExecutor")
            .finish_non_exhaustive()
    }
}

impl ProcessPoolExecutor {
    /// An executor with `max_workers` processes.
    ///
    /// # Errors
    ///
    /// As [`Builder::processes`].
    pub fn new(max_workers: usize) -> Result<ProcessPoolExecutor> {
        Builder::default().max_workers(max_workers).processes()
    }

    /// Options: `max_workers` (the CPU count by default) and an initializer.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(super) fn start(options: pool::Builder) -> Result<ProcessPoolExecutor> {
        let pool = options
            .start(OnWorkerDeath::Break)
            .map_err(|error| match error {
                Error::WorkerDidNotStart { worker, status } => {
                    Error::BrokenProcessPool(Box::new(Diagnosis::new(worker, status)))
                }
                other => other,
            })?;
        Ok(ProcessPoolExecutor {
            pool: Some(pool),
            outstanding: Outstanding::default(),
        })
    }

    /// Schedules `f(arg)` and returns its future: Python's `submit`.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](ProcessPoolExecutor::shutdown),
    /// [`Error::BrokenProcessPool`] once a worker has died, [`Error::Encode`].
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Future<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let limit = self.pool.as_ref().and_then(Pool::task_timeout);
        self.submit_limited(f, arg, limit)
    }

    /// [`submit`](ProcessPoolExecutor::submit) with the time `limit`.
    fn submit_limited<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        limit: Option<Duration>,
    ) -> Result<Future<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let pool = self.pool.as_ref().ok_or(Error::Shutdown)?;
        let args = codec::encode(std::slice::from_ref(&arg))?;
        let (key, driver) = pool.job_key();
        let (completion, completer) = driven_completion(Some(pool.dispatcher()), Some(driver));
        let future = Future::with_stopper(completion, Some(pool.waker()));
        self.outstanding.track(&future)?;
        pool.submit(Job {
            key,
            task: Task::new(f).to_ref(),
            args,
            count: 1,
            call: None,
            place: TaskPlace::Call,
            limit,
            reply: Box::new(FutureReply(completer)),
        })?;
        Ok(future)
    }

    /// Calls `f` on each input and yields the results in input order: Python's `map`.
    ///
    /// Inputs are taken lazily, a bounded number ahead of the results read; set a timeout
    /// and a chunk size on the returned iterator before reading it.
    pub fn map<'a, A, R, I>(&'a self, f: fn(A) -> R, inputs: I) -> Map<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
    {
        let limit = self.pool.as_ref().and_then(Pool::task_timeout);
        self.map_limited(f, inputs, limit)
    }

    /// [`map`](ProcessPoolExecutor::map) with each chunk's time `limit`.
    fn map_limited<'a, A, R, I>(
        &'a self,
        f: fn(A) -> R,
        inputs: I,
        limit: Option<Duration>,
    ) -> Map<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
    {
        let task = Task::new(f).to_ref();
        let mut first = 0;
        let send = move |chunk: Vec<A>| -> Result<Box<dyn Pending<R> + 'a>> {
            self.outstanding.check_open()?;
            let pool = self.pool.as_ref().ok_or(Error::Shutdown)?;
            let sent = pool.send_chunk(task, &chunk, first, limit);
            first += chunk.len();
            sent
        };
        let pool = self.pool.as_ref();
        let workers = pool.map_or(1, Pool::processes);
        Map::new(
            Window::new(inputs.into_iter(), 1, 2 * workers, Box::new(send))
                .with_inputs_ahead(pool.map_or(0, Pool::inputs_ahead)),
        )
    }

    /// The same executor, but every call made through what this returns may run at most
    /// `limit` (each chunk, in a map), instead of the executor's
    /// [`task_timeout`](Builder::task_timeout): a call past it fails alone with
    /// [`Error::TaskTimedOut`], its worker is stopped and replaced, and the executor does not
    /// break.
    pub fn with_task_timeout(&self, limit: Duration) -> TimeLimited<'_> {
        TimeLimited {
            executor: self,
            limit,
        }
    }

    /// How each worker this executor ever had spent its time, in the order they started;
    /// empty after [`shutdown`](ProcessPoolExecutor::shutdown).
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        self.pool.as_ref().map_or_else(Vec::new, Pool::worker_stats)
    }

    /// Stops taking calls: Python's `shutdown(wait, cancel_futures)`. With `cancel_futures`,
    /// calls not yet started are cancelled; with `wait`, returns once the rest have finished
    /// and the workers have ended, else at once, leaving them to finish on their own (unless
    /// the program ends first: its workers are daemonic, and end with it).
    pub fn shutdown(&mut self, wait: bool, cancel_futures: bool) {
        self.outstanding.shut_down(cancel_futures);
        if let Some(pool) = self.pool.take() {
            pool.close();
            if wait {
                let _ = pool.join();
            } else {
                pool.detach();
            }
        }
    }
}

/// A process executor whose calls have a time limit of their own: from
/// [`ProcessPoolExecutor::with_task_timeout`].
#[derive(Clone, Copy, Debug)]
pub struct TimeLimited<'e> {
    executor: &'e ProcessPoolExecutor,
    limit: Duration,
}

impl<'e> TimeLimited<'e> {
    /// [`ProcessPoolExecutor::submit`], with this limit.
    ///
    /// # Errors
    ///
    /// As [`ProcessPoolExecutor::submit`]; the future fails with [`Error::TaskTimedOut`] if the
    /// call runs past the limit.
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Future<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.executor.submit_limited(f, arg, Some(self.limit))
    }

    /// [`ProcessPoolExecutor::map`], with this limit for each chunk: an input that runs past
    /// it yields [`Error::TaskTimedOut`], and every other input its result.
    pub fn map<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Map<'e, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
    {
        self.executor.map_limited(f, inputs, Some(self.limit))
    }
}

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}
