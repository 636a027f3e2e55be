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
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::completion::{Completer, Completion, Phase, completion};
use crate::error::{Error, Result};
use crate::pool::{self, ChunkResult, Job, OnWorkerDeath, Pool, Reply, decode_results};
use crate::process::catch_task;
use crate::sync::{lock, wait_until};
use crate::task::Task;
use crate::window::{EncodedChunk, Pending, ValueChunk, Window};

/// What a finished call leaves: its value, as a thread returned it, or as a worker process
/// encoded it, with the function that decodes it.
enum Payload<R> {
    Value(R),
    Encoded(Vec<u8>, fn(ChunkResult) -> Result<R>),
}

struct FutureInner<R> {
    completion: Completion<Payload<R>>,
    /// The outcome, decoded on first read by whichever thread reads it first; never by an
    /// executor's own thread.
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
            .field("state", &self.inner.completion.phase())
            .finish()
    }
}

impl<R> Future<R> {
    fn new(completion: Completion<Payload<R>>) -> Future<R> {
        Future {
            inner: Arc::new(FutureInner {
                completion,
                outcome: OnceLock::new(),
            }),
        }
    }

    fn phase(&self) -> Phase {
        self.inner.completion.phase()
    }

    /// Whether a worker is running the call now.
    pub fn running(&self) -> bool {
        self.phase() == Phase::Running
    }

    /// Whether the call has finished or was cancelled.
    pub fn done(&self) -> bool {
        self.phase().is_done()
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.phase() == Phase::Cancelled
    }

    /// Cancels the call if it has not started; returns whether the future is now cancelled
    /// (false when it is running or done): Python's `cancel()`. A call waiting in a process
    /// executor's queue is never sent ahead to a busy worker, so it stays cancellable until
    /// a worker starts it.
    pub fn cancel(&self) -> bool {
        self.inner.completion.cancel()
    }

    /// Waits for the call and returns its result: Python's `result()`.
    ///
    /// # Errors
    ///
    /// The call's error ([`Error::TaskPanicked`], [`Error::BrokenProcessPool`], ...),
    /// [`Error::Cancelled`], or [`Error::Decode`] when the result cannot be decoded (its
    /// `Deserialize` failed or panicked).
    pub fn result(&self) -> Result<&R> {
        self.inner.completion.wait(None);
        self.outcome()
    }

    /// Waits at most `timeout` for the result: Python's `result(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not done in time, and as [`result`](Future::result).
    pub fn result_timeout(&self, timeout: Duration) -> Result<&R> {
        if !self.wait(Some(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        self.outcome()
    }

    /// Waits for the call and returns its error, or `None` when it succeeded: Python's
    /// `exception()`. A cancelled future gives [`Error::Cancelled`].
    pub fn exception(&self) -> Option<Error> {
        self.inner.completion.wait(None);
        self.outcome().err()
    }

    /// Waits at most `timeout` for the call and returns its error, or `None` when it
    /// succeeded: Python's `exception(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not done in time.
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<Error>> {
        if !self.wait(Some(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        Ok(self.outcome().err())
    }

    /// Waits at most `timeout` (`None`: as long as it takes); returns whether it is done.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.inner
            .completion
            .wait(timeout.and_then(crate::deadline_after))
    }

    /// Calls `callback` with this future once it is done: Python's `add_done_callback`.
    ///
    /// A future that is done already calls it at once, on this thread. Otherwise a process
    /// executor's future calls it on the executor's callback thread, after the callbacks of
    /// futures done before, and a thread executor's on the worker thread that ran the call.
    /// A callback that panics is logged at error level and costs nothing else; one that
    /// blocks delays only the callbacks behind it, never a result.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<R>) + Send + 'static)
    where
        R: Send + Sync + 'static,
    {
        let future = self.clone();
        self.inner.completion.on_done(move || callback(&future));
    }

    /// Calls `notify` once the future is done, on the thread that completes it: for the
    /// runtime's own bookkeeping, which must never wait behind a user's callback.
    fn on_done_inline(&self, notify: impl FnOnce() + Send + 'static)
    where
        R: Send + Sync + 'static,
    {
        self.inner.completion.on_done_inline(notify);
    }

    fn outcome(&self) -> Result<&R> {
        let outcome = self
            .inner
            .outcome
            .get_or_init(|| match self.inner.completion.take() {
                Some(Ok(Payload::Value(value))) => Ok(value),
                Some(Ok(Payload::Encoded(bytes, decode))) => decode(Ok(bytes)),
                Some(Err(error)) => Err(error),
                None => Err(Error::ResultLost),
            });
        outcome.as_ref().map_err(Error::clone)
    }
}

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
}

/// A one-call chunk's result, decoded.
fn decode_one<R: DeserializeOwned>(chunk: ChunkResult) -> Result<R> {
    decode_results(&chunk, 1)
        .into_iter()
        .next()
        .unwrap_or(Err(Error::ResultLost))
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
    futures: Mutex<Tracked>,
    shut_down: AtomicBool,
}

#[derive(Default)]
struct Tracked {
    futures: Vec<Box<dyn Cancel>>,
    /// The length at which the done ones are next dropped: twice what was left last time,
    /// so that a burst of submissions costs constant time each, not a scan of all.
    prune_at: usize,
}

impl Outstanding {
    fn track<R: Send + Sync + 'static>(&self, future: &Future<R>) -> Result<()> {
        if self.shut_down.load(Ordering::SeqCst) {
            return Err(Error::Shutdown);
        }
        let mut tracked = lock(&self.futures);
        if tracked.futures.len() >= tracked.prune_at {
            tracked.futures.retain(|future| !future.done());
            tracked.prune_at = (2 * tracked.futures.len()).max(64);
        }
        tracked.futures.push(Box::new(future.clone()));
        Ok(())
    }

    fn check_open(&self) -> Result<()> {
        if self.shut_down.load(Ordering::SeqCst) {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Refuses new work from now on; with `cancel`, cancels what has not started.
    fn shut_down(&self, cancel: bool) {
        self.shut_down.store(true, Ordering::SeqCst);
        if cancel {
            for future in lock(&self.futures).futures.drain(..) {
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
        let pool = options
            .start(OnWorkerDeath::Break)
            .map_err(|error| match error {
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
        let pool = self.pool.as_ref().ok_or(Error::Shutdown)?;
        let args = codec::encode(std::slice::from_ref(&arg))?;
        let (completion, completer) = completion(Some(pool.dispatcher()));
        let future = Future::new(completion);
        self.outstanding.track(&future)?;
        pool.submit(Job {
            task: Task::new(f).to_ref(),
            args,
            count: 1,
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
        let task = Task::new(f).to_ref();
        let send = move |chunk: Vec<A>| -> Result<Box<dyn Pending<R> + 'a>> {
            self.outstanding.check_open()?;
            let pool = self.pool.as_ref().ok_or(Error::Shutdown)?;
            let count = chunk.len();
            let completion = pool.submit_chunk(task, codec::encode(&chunk)?, count)?;
            Ok(Box::new(EncodedChunk {
                completion,
                count,
                _result: PhantomData,
            }))
        };
        Map::new(Window::new(
            inputs.into_iter(),
            1,
            2 * self.workers(),
            Box::new(send),
        ))
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
        let (completion, completer) = completion(None);
        let future = Future::new(completion);
        self.outstanding.track(&future)?;
        self.push(Box::new(move || {
            if completer.start() {
                completer.set(run_here(f, arg).map(Payload::Value));
            }
        }))?;
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
    pub fn map<'a, A, R, I>(&'a self, f: fn(A) -> R, inputs: I) -> Map<'a, A, R, I::IntoIter>
    where
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let send = move |chunk: Vec<A>| -> Result<Box<dyn Pending<R> + 'a>> {
            self.outstanding.check_open()?;
            let count = chunk.len();
            let (completion, completer) = completion(None);
            self.push(Box::new(move || {
                completer.set(Ok(chunk.into_iter().map(|arg| run_here(f, arg)).collect()));
            }))?;
            Ok(Box::new(ValueChunk { completion, count }))
        };
        Map::new(Window::new(
            inputs.into_iter(),
            1,
            2 * self.threads.len().max(1),
            Box::new(send),
        ))
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

/// The results of an executor's `map`, in input order: Python's `Executor.map`.
///
/// Nothing is scheduled until the first result is read; then inputs are taken a bounded
/// number of chunks ahead. Set [`timeout`](Map::timeout) (measured from the first read, as
/// Python measures it from the call) and [`chunksize`](Map::chunksize) before reading.
pub struct Map<'a, A, R, I> {
    window: Window<'a, A, R, I>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    started: bool,
}

impl<'a, A, R, I: Iterator<Item = A>> Map<'a, A, R, I> {
    fn new(window: Window<'a, A, R, I>) -> Self {
        Map {
            window,
            timeout: None,
            deadline: None,
            started: false,
        }
    }

    /// Fails with [`Error::Timeout`] for any result not ready within `timeout` of the first
    /// read, and ends there.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends inputs in chunks of `chunksize` (1 by default), which saves round trips for a
    /// process executor. A `chunksize` of 0 makes the first item
    /// [`Error::InvalidChunksize`], as Python raises `ValueError`.
    #[must_use]
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.window.chunksize = chunksize;
        self
    }
}

impl<A, R, I: Iterator<Item = A>> Iterator for Map<'_, A, R, I> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if !self.started {
            self.started = true;
            self.deadline = self.timeout.and_then(crate::deadline_after);
        }
        let next = self
            .window
            .next_until(self.deadline, self.timeout.unwrap_or_default());
        if let Some(Err(Error::Timeout { .. })) = next {
            self.window.fail();
        }
        next
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
    let futures = distinct(futures);
    let deadline = timeout.and_then(crate::deadline_after);
    let completions = notify_on_completion(&futures);
    loop {
        let done = futures.iter().filter(|future| future.done()).count();
        // A cancelled future is done, but raised nothing: Python does not count it.
        let failed = futures
            .iter()
            .any(|future| future.done() && !future.cancelled() && future.exception().is_some());
        let satisfied = match return_when {
            ReturnWhen::FirstCompleted => done > 0,
            ReturnWhen::FirstException => failed || done == futures.len(),
            ReturnWhen::AllCompleted => done == futures.len(),
        };
        if satisfied || !receive_until(&completions, deadline) {
            break;
        }
    }
    let (done, not_done) = futures.into_iter().partition(|future| future.done());
    Waited { done, not_done }
}

/// Each future once, in the order of first appearance: Python's functions take a set.
fn distinct<R>(futures: &[Future<R>]) -> Vec<&Future<R>> {
    let mut seen: Vec<&Future<R>> = Vec::with_capacity(futures.len());
    let mut addresses = std::collections::HashSet::with_capacity(futures.len());
    for future in futures {
        if addresses.insert(Arc::as_ptr(&future.inner)) {
            seen.push(future);
        }
    }
    seen
}

/// Yields `futures` as they complete, then stops: Python's `as_completed`. Once `timeout`
/// has passed, yields one [`Error::Timeout`] and stops.
pub fn as_completed<R: Send + Sync + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<'_, R> {
    let futures = distinct(futures);
    AsCompleted {
        completions: notify_on_completion(&futures),
        left: futures.len(),
        futures,
        deadline: timeout.and_then(crate::deadline_after),
        timeout,
    }
}

/// The iterator [`as_completed`] returns.
pub struct AsCompleted<'a, R> {
    /// Each future once.
    futures: Vec<&'a Future<R>>,
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
                Some(Ok(self.futures[index]))
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
fn notify_on_completion<R: Send + Sync + 'static>(futures: &[&Future<R>]) -> mpsc::Receiver<usize> {
    let (sender, receiver) = mpsc::channel();
    for (index, future) in futures.iter().enumerate() {
        let sender = sender.clone();
        future.on_done_inline(move || {
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
