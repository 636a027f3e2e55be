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
//! does every later `submit`. (A [`Pool`] replaces the worker instead.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Error, Result};
use crate::pool::{self, ChunkResult, Job, Pool, decode_chunk};
use crate::process::catch_task;
use crate::sync::{lock, wait_until};
use crate::task::Task;

/// Where a future is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Pending,
    Running,
    Cancelled,
    Finished,
}

type Callback<R> = Box<dyn FnOnce(&Future<R>) + Send>;

struct FutureState<R> {
    phase: Phase,
    callbacks: Vec<Callback<R>>,
}

struct FutureInner<R> {
    state: Mutex<FutureState<R>>,
    changed: Condvar,
    /// Set once, when the call finishes (or is cancelled).
    outcome: OnceLock<Result<R>>,
}

/// The eventual result of a call submitted to an executor: Python's `Future`.
///
/// A cheap handle; clones refer to the same future.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::futures::ProcessPoolExecutor;
///
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ProcessPoolExecutor::new(1)?;
/// let future = executor.submit(fib, 30)?;
/// assert_eq!(*future.result()?, 832_040);
/// assert!(future.done());
/// # Ok(())
/// # }
/// ```
pub struct Future<R> {
    inner: Arc<FutureInner<R>>,
}

impl<R> Clone for Future<R> {
    fn clone(&self) -> Self {
        Future {
            inner: self.inner.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Future")
            .field("state", &lock(&self.inner.state).phase)
            .finish()
    }
}

impl<R> Future<R> {
    fn new() -> Future<R> {
        Future {
            inner: Arc::new(FutureInner {
                state: Mutex::new(FutureState {
                    phase: Phase::Pending,
                    callbacks: Vec::new(),
                }),
                changed: Condvar::new(),
                outcome: OnceLock::new(),
            }),
        }
    }

    fn phase(&self) -> Phase {
        lock(&self.inner.state).phase
    }

    /// Whether a worker is running the call now.
    pub fn running(&self) -> bool {
        self.phase() == Phase::Running
    }

    /// Whether the call has finished or was cancelled.
    pub fn done(&self) -> bool {
        matches!(self.phase(), Phase::Finished | Phase::Cancelled)
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.phase() == Phase::Cancelled
    }

    /// Cancels the call if it has not started; returns whether the future is now cancelled
    /// (false when it is running or done): Python's `cancel()`.
    pub fn cancel(&self) -> bool {
        let mut state = lock(&self.inner.state);
        match state.phase {
            Phase::Cancelled => true,
            Phase::Running | Phase::Finished => false,
            Phase::Pending => {
                state.phase = Phase::Cancelled;
                let _ = self.inner.outcome.set(Err(Error::Cancelled));
                self.notify(state);
                true
            }
        }
    }

    /// Waits for the call and returns its result: Python's `result()`.
    ///
    /// # Errors
    ///
    /// The call's error ([`Error::TaskPanicked`], [`Error::BrokenProcessPool`], ...), or
    /// [`Error::Cancelled`].
    pub fn result(&self) -> Result<&R> {
        self.wait_until(None);
        self.outcome()
    }

    /// Waits at most `timeout` for the result: Python's `result(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not done in time, and as [`result`](Future::result).
    pub fn result_timeout(&self, timeout: Duration) -> Result<&R> {
        if !self.wait_until(crate::deadline_after(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        self.outcome()
    }

    /// Waits for the call and returns its error, or `None` when it succeeded: Python's
    /// `exception()`. A cancelled future gives [`Error::Cancelled`].
    pub fn exception(&self) -> Option<Error> {
        self.wait_until(None);
        self.outcome().err()
    }

    /// Waits at most `timeout` (`None`: as long as it takes); returns whether it is done.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.wait_until(timeout.and_then(crate::deadline_after))
    }

    /// Calls `callback` with this future once it is done (at once, if it is): Python's
    /// `add_done_callback`. It runs on the thread that completes the future.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<R>) + Send + 'static) {
        let mut state = lock(&self.inner.state);
        if matches!(state.phase, Phase::Finished | Phase::Cancelled) {
            drop(state);
            callback(self);
        } else {
            state.callbacks.push(Box::new(callback));
        }
    }

    fn outcome(&self) -> Result<&R> {
        match self
            .inner
            .outcome
            .get()
            .expect("a done future has an outcome")
        {
            Ok(value) => Ok(value),
            Err(error) => Err(error.clone()),
        }
    }

    /// Waits until done or `deadline`; whether it is done.
    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        let state = lock(&self.inner.state);
        wait_until(&self.inner.changed, state, deadline, |state| {
            matches!(state.phase, Phase::Finished | Phase::Cancelled)
        })
        .is_some()
    }

    /// Marks it running, unless it was cancelled; whether it may run.
    fn set_running(&self) -> bool {
        let mut state = lock(&self.inner.state);
        if state.phase != Phase::Pending {
            return false;
        }
        state.phase = Phase::Running;
        true
    }

    /// Stores the outcome and wakes whoever waits.
    fn finish(&self, outcome: Result<R>) {
        let mut state = lock(&self.inner.state);
        if state.phase == Phase::Cancelled {
            return;
        }
        state.phase = Phase::Finished;
        let _ = self.inner.outcome.set(outcome);
        self.notify(state);
    }

    /// Wakes waiters, then runs the callbacks without holding the lock.
    fn notify(&self, mut state: MutexGuard<'_, FutureState<R>>) {
        let callbacks = std::mem::take(&mut state.callbacks);
        drop(state);
        self.inner.changed.notify_all();
        for callback in callbacks {
            callback(self);
        }
    }
}

/// What the executor keeps of a future it may have to cancel at shutdown.
trait Cancel: Send + Sync {
    fn cancel(&self) -> bool;
    fn done(&self) -> bool;
}

impl<R: Send + Sync + 'static> Cancel for Future<R> {
    fn cancel(&self) -> bool {
        Future::cancel(self)
    }

    fn done(&self) -> bool {
        Future::done(self)
    }
}

/// The futures an executor has handed out and not seen done, for `shutdown(cancel_futures)`.
#[derive(Default)]
struct Outstanding {
    futures: Mutex<Vec<Box<dyn Cancel>>>,
    shut_down: AtomicBool,
}

impl Outstanding {
    fn track<R: Send + Sync + 'static>(&self, future: &Future<R>) -> Result<()> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        let mut futures = lock(&self.futures);
        futures.retain(|future| !future.done());
        futures.push(Box::new(future.clone()));
        Ok(())
    }

    /// Refuses new work from now on; with `cancel`, cancels what has not started.
    fn shut_down(&self, cancel: bool) {
        self.shut_down.store(true, Ordering::SeqCst);
        if cancel {
            for future in lock(&self.futures).drain(..) {
                future.cancel();
            }
        }
    }
}

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
        let mut options = pool::Builder::default().processes(self.workers()?);
        if let Some(initializer) = self.initializer {
            options = options.initializer(initializer);
        }
        options.breaks = true;
        options.prefix = Some("ForkProcess");
        let pool = options.build().map_err(|error| match error {
            Error::WorkerDidNotStart { worker, status } => {
                Error::BrokenProcessPool { worker, status }
            }
            other => other,
        })?;
        Ok(ProcessPoolExecutor {
            pool: Some(pool),
            outstanding: Outstanding::default(),
        })
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
        let future = Future::new();
        self.outstanding.track(&future)?;
        self.send(
            Task::new(f),
            std::slice::from_ref(&arg),
            {
                let future = future.clone();
                move |mut results: Vec<Result<R>>| future.finish(results.remove(0))
            },
            Some(future.clone()),
        )?;
        Ok(future)
    }

    /// Sends a chunk of arguments; `done` gets one decoded result per argument.
    fn send<A, R, F, T>(
        &self,
        task: Task<A, R>,
        args: &[A],
        done: F,
        future: Option<Future<T>>,
    ) -> Result<()>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        F: FnOnce(Vec<Result<R>>) + Send + 'static,
        T: Send + Sync + 'static,
    {
        let pool = self.pool.as_ref().ok_or(Error::Shutdown)?;
        let start = future.map(|future| {
            Box::new(move || future.set_running()) as Box<dyn FnOnce() -> bool + Send>
        });
        let count = args.len();
        pool.submit(Job {
            task: task.to_ref(),
            args: codec::encode(args)?,
            count,
            start,
            done: Box::new(move |chunk: ChunkResult| done(decode_chunk(&chunk, count))),
        })
    }

    /// Calls `f` on each input and yields the results in input order: Python's `map`.
    ///
    /// Inputs are taken lazily, a bounded number ahead of the results read; set a timeout
    /// and a chunk size on the returned iterator before reading it.
    pub fn map<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Map<'_, Self, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
    {
        Map::new(self, f, inputs.into_iter(), self.workers())
    }

    fn workers(&self) -> usize {
        self.pool.as_ref().map_or(1, Pool::processes)
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

impl Drop for ProcessPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

/// A job for a thread worker.
type ThreadJob = Box<dyn FnOnce() + Send>;

struct ThreadQueue {
    jobs: VecDeque<ThreadJob>,
    open: bool,
}

struct ThreadShared {
    queue: Mutex<ThreadQueue>,
    available: Condvar,
}

/// Runs calls in threads of this process: Python's `concurrent.futures.ThreadPoolExecutor`,
/// with the same methods as [`ProcessPoolExecutor`].
///
/// Rust threads run in parallel: there is no GIL to take turns on. What threads lack is the
/// wall between workers that processes give.
///
/// # Example
///
/// ```
/// use multiprocessing::futures::ThreadPoolExecutor;
///
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ThreadPoolExecutor::new(2)?;
/// assert_eq!(*executor.submit(square, 12)?.result()?, 144);
/// # Ok(())
/// # }
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<ThreadShared>,
    threads: Vec<JoinHandle<()>>,
    outstanding: Outstanding,
}

impl std::fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl ThreadPoolExecutor {
    /// An executor with `max_workers` threads.
    ///
    /// # Errors
    ///
    /// As [`Builder::threads`].
    pub fn new(max_workers: usize) -> Result<ThreadPoolExecutor> {
        Builder::default().max_workers(max_workers).threads()
    }

    /// Options: `max_workers` (the CPU count by default) and an initializer.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn start(workers: usize, initializer: Option<fn()>) -> Result<ThreadPoolExecutor> {
        let shared = Arc::new(ThreadShared {
            queue: Mutex::new(ThreadQueue {
                jobs: VecDeque::new(),
                open: true,
            }),
            available: Condvar::new(),
        });
        let (ready, reports) = mpsc::channel();
        let mut executor = ThreadPoolExecutor {
            shared,
            threads: Vec::new(),
            outstanding: Outstanding::default(),
        };
        for index in 0..workers {
            let (shared, ready) = (executor.shared.clone(), ready.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ThreadPoolExecutor-0_{index}"))
                .spawn(move || thread_worker(&shared, initializer, &ready))
                .map_err(Error::io("cannot start an executor thread"))?;
            executor.threads.push(thread);
        }
        // Every thread reports its initializer; one that panicked breaks the executor now,
        // where Python would fail each later call with `BrokenThreadPool`.
        for _ in 0..workers {
            if let Ok(Err(message)) = reports.recv() {
                return Err(Error::BrokenThreadPool { message });
            }
        }
        Ok(executor)
    }

    /// Schedules `f(arg)` and returns its future: Python's `submit`.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](ThreadPoolExecutor::shutdown).
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Future<R>>
    where
        A: Send + 'static,
        R: Send + Sync + 'static,
    {
        let future = Future::new();
        self.outstanding.track(&future)?;
        let job = {
            let future = future.clone();
            move || {
                if future.set_running() {
                    future.finish(run_here(f, arg));
                }
            }
        };
        self.push(Box::new(job))?;
        Ok(future)
    }

    fn push(&self, job: ThreadJob) -> Result<()> {
        let mut queue = lock(&self.shared.queue);
        if !queue.open {
            return Err(Error::Shutdown);
        }
        queue.jobs.push_back(job);
        self.shared.available.notify_one();
        Ok(())
    }

    /// Calls `f` on each input and yields the results in input order: Python's `map`.
    pub fn map<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Map<'_, Self, A, R, I::IntoIter>
    where
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Map::new(self, f, inputs.into_iter(), self.threads.len().max(1))
    }

    /// Stops taking calls: Python's `shutdown(wait, cancel_futures)`; see
    /// [`ProcessPoolExecutor::shutdown`].
    pub fn shutdown(&mut self, wait: bool, cancel_futures: bool) {
        self.outstanding.shut_down(cancel_futures);
        lock(&self.shared.queue).open = false;
        self.shared.available.notify_all();
        if wait {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

/// Runs `f(arg)` on this thread; a panic becomes [`Error::TaskPanicked`].
fn run_here<A, R>(f: fn(A) -> R, arg: A) -> Result<R> {
    catch_task(|| f(arg)).map_err(|message| Error::TaskPanicked { message })
}

/// A thread worker: run the initializer, then jobs until the queue closes and empties.
fn thread_worker(
    shared: &ThreadShared,
    initializer: Option<fn()>,
    ready: &mpsc::Sender<std::result::Result<(), String>>,
) {
    let initialized = catch_task(|| {
        if let Some(initializer) = initializer {
            initializer();
        }
    });
    let failed = initialized.is_err();
    let _ = ready.send(initialized);
    if failed {
        return;
    }
    loop {
        let queue = lock(&shared.queue);
        let mut queue = wait_until(&shared.available, queue, None, |queue| {
            !queue.jobs.is_empty() || !queue.open
        })
        .expect("no deadline");
        let Some(job) = queue.jobs.pop_front() else {
            return;
        };
        drop(queue);
        job();
    }
}

/// An executor that can run a chunk of calls and report each result: what [`Map`] needs.
pub trait RunChunk<A, R> {
    /// Runs `f` on each of `args`; `done` gets the results, in order.
    ///
    /// # Errors
    ///
    /// When the chunk cannot be scheduled (shut down, broken, an argument not encodable).
    fn run_chunk(
        &self,
        f: fn(A) -> R,
        args: Vec<A>,
        done: Box<dyn FnOnce(Vec<Result<R>>) + Send>,
    ) -> Result<()>;
}

impl<A, R> RunChunk<A, R> for ProcessPoolExecutor
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn run_chunk(
        &self,
        f: fn(A) -> R,
        args: Vec<A>,
        done: Box<dyn FnOnce(Vec<Result<R>>) + Send>,
    ) -> Result<()> {
        if self.outstanding.shut_down.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        self.send(Task::new(f), &args, done, None::<Future<()>>)
    }
}

impl<A, R> RunChunk<A, R> for ThreadPoolExecutor
where
    A: Send + 'static,
    R: Send + 'static,
{
    fn run_chunk(
        &self,
        f: fn(A) -> R,
        args: Vec<A>,
        done: Box<dyn FnOnce(Vec<Result<R>>) + Send>,
    ) -> Result<()> {
        self.push(Box::new(move || {
            done(args.into_iter().map(|arg| run_here(f, arg)).collect());
        }))
    }
}

/// A one-shot hand-over from the thread that completes a chunk to the reader of [`Map`].
struct Handoff<T> {
    value: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Handoff<T> {
    fn put(&self, value: T) {
        *lock(&self.value) = Some(value);
        self.ready.notify_all();
    }

    /// Takes the value, waiting until `deadline`; `None` when it passed.
    fn take(&self, deadline: Option<Instant>) -> Option<T> {
        wait_until(&self.ready, lock(&self.value), deadline, |value| {
            value.is_some()
        })?
        .take()
    }
}

/// The results of an executor's `map`, in input order: Python's `Executor.map`.
///
/// Nothing is scheduled until the first result is read; then inputs are taken a bounded
/// number of chunks ahead. Set [`timeout`](Map::timeout) (measured from the first read, as
/// Python measures it from the call) and [`chunksize`](Map::chunksize) before reading.
pub struct Map<'a, E, A, R, I> {
    executor: &'a E,
    f: fn(A) -> R,
    inputs: I,
    chunksize: usize,
    ahead: usize,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    pending: VecDeque<Arc<Handoff<Vec<Result<R>>>>>,
    ready: VecDeque<Result<R>>,
    exhausted: bool,
    failed: bool,
}

impl<'a, E, A, R, I> Map<'a, E, A, R, I> {
    fn new(executor: &'a E, f: fn(A) -> R, inputs: I, workers: usize) -> Self {
        Map {
            executor,
            f,
            inputs,
            chunksize: 1,
            ahead: 2 * workers,
            timeout: None,
            deadline: None,
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            exhausted: false,
            failed: false,
        }
    }

    /// Fails with [`Error::Timeout`] for any result not ready within `timeout` of the first
    /// read.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends inputs in chunks of `chunksize` (1 by default), which saves round trips for a
    /// process executor.
    #[must_use]
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = chunksize.max(1);
        self
    }
}

impl<E, A, R, I> Iterator for Map<'_, E, A, R, I>
where
    E: RunChunk<A, R>,
    R: Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if self.failed {
            return None;
        }
        if let Some(result) = self.ready.pop_front() {
            return Some(result);
        }
        if self.deadline.is_none() {
            self.deadline = self.timeout.and_then(crate::deadline_after);
        }
        while !self.exhausted && self.pending.len() < self.ahead {
            let chunk: Vec<A> = self.inputs.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.exhausted = true;
                break;
            }
            let handoff = Arc::new(Handoff {
                value: Mutex::new(None),
                ready: Condvar::new(),
            });
            let done = {
                let handoff = handoff.clone();
                Box::new(move |results| handoff.put(results))
            };
            if let Err(error) = self.executor.run_chunk(self.f, chunk, done) {
                self.failed = true;
                return Some(Err(error));
            }
            self.pending.push_back(handoff);
        }
        let handoff = self.pending.pop_front()?;
        match handoff.take(self.deadline) {
            Some(results) => self.ready.extend(results),
            None => {
                self.failed = true;
                return Some(Err(Error::Timeout {
                    after: self.timeout.unwrap_or_default(),
                }));
            }
        }
        self.ready.pop_front()
    }
}

/// When [`wait`] returns: Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done.
    FirstCompleted,
    /// As soon as any future fails (or all are done).
    FirstException,
    /// When all are done.
    AllCompleted,
}

/// Futures split by [`wait`]: those done, and those not.
#[derive(Debug)]
pub struct Waited<'a, R> {
    /// The futures that are done.
    pub done: Vec<&'a Future<R>>,
    /// The others.
    pub not_done: Vec<&'a Future<R>>,
}

/// Waits for `futures` until `return_when` holds or `timeout` passes: Python's
/// `concurrent.futures.wait`.
///
/// # Example
///
/// ```
/// use multiprocessing::futures::{ReturnWhen, ThreadPoolExecutor, wait};
///
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ThreadPoolExecutor::new(2)?;
/// let futures = vec![executor.submit(square, 2)?, executor.submit(square, 3)?];
/// let waited = wait(&futures, ReturnWhen::AllCompleted, None);
/// assert_eq!(waited.done.len(), 2);
/// # Ok(())
/// # }
/// ```
pub fn wait<R: Send + Sync + 'static>(
    futures: &[Future<R>],
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<'_, R> {
    let deadline = timeout.and_then(crate::deadline_after);
    let completions = notify_on_completion(futures);
    loop {
        let done = futures.iter().filter(|future| future.done()).count();
        let failed = futures
            .iter()
            .any(|future| future.done() && future.exception().is_some());
        let satisfied = match return_when {
            ReturnWhen::FirstCompleted => done > 0,
            ReturnWhen::FirstException => failed || done == futures.len(),
            ReturnWhen::AllCompleted => done == futures.len(),
        };
        if satisfied || !receive_until(&completions, deadline) {
            break;
        }
    }
    let (done, not_done) = futures.iter().partition(|future| future.done());
    Waited { done, not_done }
}

/// Yields `futures` as they complete, then stops: Python's `as_completed`. Once `timeout`
/// has passed, yields one [`Error::Timeout`] and stops.
pub fn as_completed<R: Send + Sync + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<'_, R> {
    AsCompleted {
        futures,
        completions: notify_on_completion(futures),
        deadline: timeout.and_then(crate::deadline_after),
        timeout,
        left: futures.len(),
    }
}

/// The iterator [`as_completed`] returns.
pub struct AsCompleted<'a, R> {
    futures: &'a [Future<R>],
    completions: mpsc::Receiver<usize>,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    left: usize,
}

impl<'a, R> Iterator for AsCompleted<'a, R> {
    type Item = Result<&'a Future<R>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let received = match self.deadline {
            None => self.completions.recv().ok(),
            Some(deadline) => deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| self.completions.recv_timeout(left).ok()),
        };
        match received {
            Some(index) => {
                self.left -= 1;
                Some(Ok(&self.futures[index]))
            }
            None => {
                self.left = 0;
                Some(Err(Error::Timeout {
                    after: self.timeout.unwrap_or_default(),
                }))
            }
        }
    }
}

/// A channel that receives each future's index once it is done.
fn notify_on_completion<R: Send + Sync + 'static>(futures: &[Future<R>]) -> mpsc::Receiver<usize> {
    let (sender, receiver) = mpsc::channel();
    for (index, future) in futures.iter().enumerate() {
        let sender = sender.clone();
        future.add_done_callback(move |_| {
            let _ = sender.send(index);
        });
    }
    receiver
}

/// Waits for one completion until `deadline`; false when time ran out.
fn receive_until(completions: &mpsc::Receiver<usize>, deadline: Option<Instant>) -> bool {
    match deadline {
        None => completions.recv().is_ok(),
        Some(deadline) => deadline
            .checked_duration_since(Instant::now())
            .is_some_and(|left| completions.recv_timeout(left).is_ok()),
    }
}
