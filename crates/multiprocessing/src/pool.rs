//! Python's `multiprocessing.Pool`: a fixed set of worker processes that run tasks.
//!
//! A task is a plain `fn` whose argument and result are serde types (the Rust counterpart of
//! "must be picklable"); it travels as a [`TaskRef`], so it means the
//! same in every process running this executable. Each worker has a socket of its own to the
//! pool; a manager thread in the parent hands each idle worker the next chunk of work and
//! collects the results, so the pool always knows which worker holds which task.
//!
//! That is what fixes Python's famous trap (bpo-22393): when a worker dies (killed, out of
//! memory, crashed), Python loses its task and `map` waits forever. Here the manager sees the
//! worker's socket close at once, fails exactly the tasks that worker held with
//! [`Error::WorkerDied`] (naming the worker and how it ended), starts a replacement, and
//! every other task completes.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::pipe::{Connection, pipe};
use crate::process::{Builder as ProcessBuilder, ExitStatus, Process, catch_task};
use crate::task::{Task, TaskRef};

/// How long terminated workers get to end before they are killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// How many inputs a worker may be sent ahead of its results (but always one chunk), so that
/// a worker running small tasks does not sit idle while its last result travels back and the
/// next task travels out. Large chunks go one at a time, which keeps the load balanced.
const ITEMS_AHEAD: usize = 4;

/// What a worker sends back for one item: the encoded result, or why there is none.
pub(crate) type ItemResult = std::result::Result<Vec<u8>, Error>;

/// A worker's report on one item, as it crosses the socket.
#[derive(Serialize, Deserialize)]
enum WorkerFailure {
    Panicked(String),
    Decode(String),
    Encode(String),
}

impl From<WorkerFailure> for Error {
    fn from(failure: WorkerFailure) -> Error {
        match failure {
            WorkerFailure::Panicked(message) => Error::TaskPanicked { message },
            WorkerFailure::Decode(message) => Error::Decode { message },
            WorkerFailure::Encode(message) => Error::Encode { message },
        }
    }
}

/// What the pool asks of a worker. The pool sends the arguments borrowed
/// (`Request<&[Vec<u8>]>`), the worker receives them owned (`Request<Vec<Vec<u8>>>`): both
/// encode the same way.
#[derive(Serialize, Deserialize)]
enum Request<Args> {
    /// Run `task` on each encoded argument, in order.
    Run { task: TaskRef, args: Args },
    /// End, after finishing nothing more.
    Exit,
}

/// The request that ends a worker.
const EXIT: Request<&[Vec<u8>]> = Request::Exit;

/// A chunk of work and what to do with its results.
pub(crate) struct Job {
    pub(crate) task: TaskRef,
    pub(crate) args: Vec<Vec<u8>>,
    /// Called just before the job goes to a worker; `false` withdraws it (a cancelled
    /// future), and then neither it nor `done` is called again.
    pub(crate) start: Option<Box<dyn FnOnce() -> bool + Send>>,
    pub(crate) done: Box<dyn FnOnce(Vec<ItemResult>) + Send>,
}

impl Job {
    /// A job with nothing to do before it starts.
    fn new(
        task: TaskRef,
        args: Vec<Vec<u8>>,
        done: Box<dyn FnOnce(Vec<ItemResult>) + Send>,
    ) -> Job {
        Job {
            task,
            args,
            start: None,
            done,
        }
    }

    /// Finishes every item of the job with `error`.
    fn fail(self, error: &Error) {
        let results = self.args.iter().map(|_| Err(error.clone())).collect();
        (self.done)(results);
    }
}

/// What callers tell the manager thread.
enum Command {
    Submit(Job),
    Close,
    Terminate,
}

/// Options for a [`Pool`]: Python's `Pool(processes, initializer, maxtasksperchild)`.
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct Builder {
    processes: Option<usize>,
    initializer: Option<fn()>,
    maxtasksperchild: Option<usize>,
    /// What a dead worker does to the pool: replaced (a `Pool`), or the pool breaks (a
    /// `ProcessPoolExecutor`, as in Python).
    pub(crate) breaks: bool,
    /// The workers' names, before `-N`; `ForkPoolWorker` unless set.
    pub(crate) prefix: Option<&'static str>,
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

    /// How many chunks of work a worker runs before it is replaced by a fresh one; without
    /// it, workers live as long as the pool.
    pub fn maxtasksperchild(mut self, tasks: usize) -> Builder {
        self.maxtasksperchild = Some(tasks);
        self
    }

    /// Starts the workers and the pool's manager thread.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`] for 0 processes or 0 `maxtasksperchild`, [`Error::Os`] when a
    /// worker or the manager thread cannot be started.
    pub fn build(self) -> Result<Pool> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 || self.maxtasksperchild == Some(0) {
            return Err(Error::NoWorkers);
        }
        let (commands, inbox) = mpsc::channel();
        let (wake_reader, wake_writer) = UnixStream::pair()
            .map_err(|error| os_error("cannot make the pool's wake-up", &error))?;
        wake_reader
            .set_nonblocking(true)
            .map_err(|error| os_error("cannot make the pool's wake-up", &error))?;
        let broken = Arc::new(OnceLock::new());
        let mut manager = Manager {
            broken: broken.clone(),
            inbox,
            wake: wake_reader,
            wake_writer_fd: wake_writer.as_raw_fd(),
            workers: Vec::new(),
            queue: VecDeque::new(),
            options: self,
            closing: false,
        };
        for _ in 0..processes {
            let worker = manager.spawn_worker()?;
            manager.workers.push(worker);
        }
        let thread = std::thread::Builder::new()
            .name("pool-manager".into())
            .spawn(move || manager.run())
            .map_err(|error| os_error("cannot start the pool's manager thread", &error))?;
        Ok(Pool {
            broken,
            commands: Mutex::new(Commands {
                sender: Some(commands),
                open: true,
            }),
            wake: wake_writer,
            manager: Mutex::new(Some(thread)),
            processes,
            detached: false,
        })
    }
}

fn os_error(context: &'static str, error: &std::io::Error) -> Error {
    Error::Os {
        context,
        errno: nix::Error::from_raw(error.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Locks a mutex whose data stays valid even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pool of worker processes: Python's `multiprocessing.Pool`.
///
/// Dropping the pool terminates it, as leaving Python's `with Pool(...)` block does: call
/// [`close`](Pool::close) and [`join`](Pool::join) first to let queued work finish.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::Pool;
///
/// fn do_calculation(data: i32) -> i32 {
///     data * 2
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let pool = Pool::new(2)?;
/// assert_eq!(pool.map(do_calculation, 0..5)?, [0, 2, 4, 6, 8]);
/// # Ok(())
/// # }
/// ```
///
/// The lesson `lesson-pool` runs more.
pub struct Pool {
    /// Set when a pool that breaks on a worker's death has broken: why.
    broken: Arc<OnceLock<Error>>,
    commands: Mutex<Commands>,
    /// Written to after each command, to wake the manager from `poll`.
    wake: UnixStream,
    manager: Mutex<Option<JoinHandle<()>>>,
    processes: usize,
    /// Set by `detach`: dropping the pool then leaves its manager to finish on its own.
    detached: bool,
}

/// The way to the manager thread.
struct Commands {
    /// `None` once the pool is terminated.
    sender: Option<Sender<Command>>,
    /// False once the pool is closed or terminated: no more work is accepted.
    open: bool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool of `processes` workers.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new(processes: usize) -> Result<Pool> {
        Builder::default().processes(processes).build()
    }

    /// Options: the number of workers, an initializer, `maxtasksperchild`.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Calls `f` on every input in the workers and returns the results in input order:
    /// Python's `map`. The inputs go out in chunks, sized as Python sizes them.
    ///
    /// # Errors
    ///
    /// The first failed task's error ([`Error::TaskPanicked`], [`Error::WorkerDied`], ...),
    /// [`Error::PoolClosed`] after [`close`](Pool::close).
    pub fn map<A, R>(&self, f: fn(A) -> R, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.map_async(f, inputs)?.get()
    }

    /// [`map`](Pool::map) with chunks of `chunksize` inputs.
    ///
    /// # Errors
    ///
    /// As [`map`](Pool::map).
    pub fn map_chunked<A, R>(
        &self,
        f: fn(A) -> R,
        inputs: impl IntoIterator<Item = A>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args = encode_all(inputs)?;
        self.submit_all(Task::new(f).to_ref(), args, chunksize)?
            .get()
    }

    /// Starts a [`map`](Pool::map) and returns at once: Python's `map_async`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] for an input, [`Error::PoolClosed`].
    pub fn map_async<A, R>(
        &self,
        f: fn(A) -> R,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args = encode_all(inputs)?;
        let chunksize = default_chunksize(args.len(), self.processes);
        self.submit_all(Task::new(f).to_ref(), args, chunksize)
    }

    /// Calls `f` with each pair of arguments unpacked: Python's `starmap`.
    ///
    /// # Errors
    ///
    /// As [`map`](Pool::map).
    pub fn starmap<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        inputs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args = encode_all(inputs)?;
        let chunksize = default_chunksize(args.len(), self.processes);
        self.submit_all(Task::pair(f).to_ref(), args, chunksize)?
            .get()
    }

    /// Calls `f` on the inputs lazily, one at a time, yielding results in input order:
    /// Python's `imap`. Only a bounded number of inputs is taken ahead of the results
    /// read, so an endless input works (Python reads all of it first).
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Imap<'_, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.imap_chunked(f, inputs, 1)
    }

    /// [`imap`](Pool::imap) with chunks of `chunksize` inputs.
    pub fn imap_chunked<A, R, I>(
        &self,
        f: fn(A) -> R,
        inputs: I,
        chunksize: usize,
    ) -> Imap<'_, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        Imap {
            pool: self,
            task: Task::new(f).to_ref(),
            inputs: inputs.into_iter(),
            chunksize: chunksize.max(1),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            done: false,
            _types: PhantomData,
        }
    }

    /// Like [`imap`](Pool::imap), but yields each result as soon as it is ready, in any
    /// order: Python's `imap_unordered`.
    pub fn imap_unordered<A, R, I>(
        &self,
        f: fn(A) -> R,
        inputs: I,
    ) -> ImapUnordered<'_, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let (sender, results) = mpsc::channel();
        ImapUnordered {
            pool: self,
            task: Task::new(f).to_ref(),
            inputs: inputs.into_iter(),
            sender,
            results,
            in_flight: 0,
            done: false,
            _types: PhantomData,
        }
    }

    /// Calls `f(arg)` in a worker and waits for the result: Python's `apply`.
    ///
    /// # Errors
    ///
    /// The task's error, [`Error::PoolClosed`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, arg)?.get()
    }

    /// Starts `f(arg)` in a worker and returns at once: Python's `apply_async`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] for the argument, [`Error::PoolClosed`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let slot = Slot::new(1, 1);
        self.submit(Job::new(
            Task::new(f).to_ref(),
            vec![codec::encode(&arg)?],
            slot.filler(0),
        ))?;
        Ok(AsyncResult {
            slot,
            finish: finish_one::<R>,
        })
    }

    /// Accepts no more work; what was submitted still runs: Python's `close`.
    pub fn close(&self) {
        self.command(Command::Close);
    }

    /// Stops the workers now, even after [`close`](Pool::close); work not finished fails
    /// with [`Error::PoolTerminated`]: Python's `terminate`. Returns once every worker has
    /// ended.
    pub fn terminate(&self) {
        self.command(Command::Terminate);
        self.wait_for_manager();
    }

    /// Sends `Close` or `Terminate`, once each, and stops accepting work.
    fn command(&self, command: Command) {
        let mut commands = lock(&self.commands);
        let terminate = matches!(command, Command::Terminate);
        if (commands.open || terminate)
            && let Some(sender) = &commands.sender
        {
            let _ = sender.send(command);
            self.wake_manager();
        }
        commands.open = false;
        if terminate {
            commands.sender = None;
        }
    }

    /// Waits until every worker has ended, after [`close`](Pool::close) or
    /// [`terminate`](Pool::terminate): Python's `join`.
    ///
    /// # Errors
    ///
    /// [`Error::PoolRunning`] when the pool is neither closed nor terminated.
    pub fn join(&self) -> Result<()> {
        if lock(&self.commands).open {
            return Err(Error::PoolRunning);
        }
        self.wait_for_manager();
        Ok(())
    }

    /// How many workers the pool keeps.
    pub(crate) fn processes(&self) -> usize {
        self.processes
    }

    /// Lets a closed pool finish its queued work on its own after it is dropped, instead of
    /// terminating it (an executor's `shutdown(wait=False)`).
    pub(crate) fn detach(mut self) {
        self.close();
        self.detached = true;
    }

    fn wait_for_manager(&self) {
        if let Some(thread) = lock(&self.manager).take() {
            let _ = thread.join();
        }
    }

    /// Sends `args` in chunks of `chunksize`; the result gathers them in order.
    fn submit_all<R>(
        &self,
        task: TaskRef,
        args: Vec<Vec<u8>>,
        chunksize: usize,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        R: DeserializeOwned,
    {
        let chunksize = chunksize.max(1);
        let slot = Slot::new(args.len(), args.len().div_ceil(chunksize));
        let mut args = args.into_iter();
        let mut offset = 0;
        loop {
            let chunk: Vec<Vec<u8>> = args.by_ref().take(chunksize).collect();
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            self.submit(Job::new(task, chunk, slot.filler(offset)))?;
            offset += len;
        }
        Ok(AsyncResult {
            slot,
            finish: finish_all::<R>,
        })
    }

    /// Hands a job to the manager thread.
    pub(crate) fn submit(&self, job: Job) -> Result<()> {
        if let Some(error) = self.broken.get() {
            return Err(error.clone());
        }
        let commands = lock(&self.commands);
        let (true, Some(sender)) = (commands.open, &commands.sender) else {
            return Err(Error::PoolClosed);
        };
        sender
            .send(Command::Submit(job))
            .map_err(|_| Error::PoolClosed)?;
        self.wake_manager();
        Ok(())
    }

    fn wake_manager(&self) {
        let _ = (&self.wake).write(&[1]);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.detached {
            self.terminate();
        }
    }
}

/// Python's default chunk size for `map`: the inputs split into about four chunks per worker.
fn default_chunksize(inputs: usize, processes: usize) -> usize {
    let chunks = processes * 4;
    (inputs / chunks + usize::from(!inputs.is_multiple_of(chunks))).max(1)
}

fn encode_all<A: Serialize>(inputs: impl IntoIterator<Item = A>) -> Result<Vec<Vec<u8>>> {
    inputs.into_iter().map(|arg| codec::encode(&arg)).collect()
}

/// Where the results of one submission gather, chunk by chunk.
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

struct SlotState {
    items: Vec<Option<ItemResult>>,
    chunks_left: usize,
}

impl Slot {
    fn new(items: usize, chunks: usize) -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                items: (0..items).map(|_| None).collect(),
                chunks_left: chunks,
            }),
            ready: Condvar::new(),
        })
    }

    /// The callback that stores a chunk's results from position `offset` on.
    fn filler(self: &Arc<Slot>, offset: usize) -> Box<dyn FnOnce(Vec<ItemResult>) + Send> {
        let slot = self.clone();
        Box::new(move |results| {
            let mut state = lock(&slot.state);
            for (i, result) in results.into_iter().enumerate() {
                state.items[offset + i] = Some(result);
            }
            state.chunks_left -= 1;
            if state.chunks_left == 0 {
                slot.ready.notify_all();
            }
        })
    }

    /// Waits until every chunk is in, or `deadline`; the results if they all are.
    fn wait(&self, deadline: Option<Instant>) -> Option<MutexGuard<'_, SlotState>> {
        let mut state = lock(&self.state);
        while state.chunks_left > 0 {
            match deadline {
                None => {
                    state = self
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    state = self
                        .ready
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        Some(state)
    }
}

/// Decodes one item's result.
pub(crate) fn decode<R: DeserializeOwned>(item: ItemResult) -> Result<R> {
    item.and_then(|bytes| codec::decode(&bytes))
}

/// Decodes one item's result, left in place.
fn decode_item<R: DeserializeOwned>(item: &Option<ItemResult>) -> Result<R> {
    match item
        .as_ref()
        .expect("every item is filled before the slot is ready")
    {
        Ok(bytes) => codec::decode(bytes),
        Err(error) => Err(error.clone()),
    }
}

fn finish_one<R: DeserializeOwned>(items: &[Option<ItemResult>]) -> Result<R> {
    decode_item(&items[0])
}

fn finish_all<R: DeserializeOwned>(items: &[Option<ItemResult>]) -> Result<Vec<R>> {
    items.iter().map(decode_item).collect()
}

/// The result of [`Pool::apply_async`] or [`Pool::map_async`], once it is ready: Python's
/// `AsyncResult`.
pub struct AsyncResult<R> {
    slot: Arc<Slot>,
    finish: fn(&[Option<ItemResult>]) -> Result<R>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    /// Waits for the result: Python's `get()`.
    ///
    /// # Errors
    ///
    /// The task's error: [`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// [`Error::PoolTerminated`], [`Error::Decode`].
    pub fn get(&self) -> Result<R> {
        let state = self.slot.wait(None).expect("no deadline");
        (self.finish)(&state.items)
    }

    /// Waits at most `timeout` for the result: Python's `get(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not ready in time (it may still come; ask again), and
    /// as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        match self.slot.wait(crate::deadline_after(timeout)) {
            Some(state) => (self.finish)(&state.items),
            None => Err(Error::Timeout { after: timeout }),
        }
    }

    /// Waits at most `timeout` (`None`: as long as it takes); returns whether it is ready.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.slot
            .wait(timeout.and_then(crate::deadline_after))
            .is_some()
    }

    /// Whether the result is in: Python's `ready()`.
    pub fn ready(&self) -> bool {
        lock(&self.slot.state).chunks_left == 0
    }

    /// Whether it is in and no task failed: Python's `successful()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] before it is in, as Python raises `ValueError`.
    pub fn successful(&self) -> Result<bool> {
        let state = lock(&self.slot.state);
        if state.chunks_left > 0 {
            return Err(Error::NotReady);
        }
        Ok(state.items.iter().all(|item| matches!(item, Some(Ok(_)))))
    }
}

/// The iterator [`Pool::imap`] returns; each item is that input's result.
pub struct Imap<'a, A, R, I> {
    pool: &'a Pool,
    task: TaskRef,
    inputs: I,
    chunksize: usize,
    /// Chunks sent, oldest first.
    pending: VecDeque<AsyncResult<Vec<ItemResult>>>,
    /// Results of the oldest chunk not yet yielded.
    ready: VecDeque<Result<R>>,
    /// No more inputs.
    done: bool,
    _types: PhantomData<fn(A) -> R>,
}

/// Undecoded results, for the iterators to decode one by one.
fn finish_raw(items: &[Option<ItemResult>]) -> Result<Vec<ItemResult>> {
    Ok(items
        .iter()
        .map(|item| {
            item.clone()
                .expect("every item is filled before the slot is ready")
        })
        .collect())
}

impl<A, R, I> Imap<'_, A, R, I>
where
    A: Serialize,
    I: Iterator<Item = A>,
{
    /// Keeps two chunks per worker in flight.
    fn top_up(&mut self) -> Result<()> {
        while !self.done && self.pending.len() < 2 * self.pool.processes {
            let chunk = encode_all(self.inputs.by_ref().take(self.chunksize))?;
            if chunk.is_empty() {
                self.done = true;
                break;
            }
            let slot = Slot::new(chunk.len(), 1);
            self.pool
                .submit(Job::new(self.task, chunk, slot.filler(0)))?;
            self.pending.push_back(AsyncResult {
                slot,
                finish: finish_raw,
            });
        }
        Ok(())
    }
}

impl<A, R, I> Iterator for Imap<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if let Some(result) = self.ready.pop_front() {
            return Some(result);
        }
        if let Err(error) = self.top_up() {
            self.done = true;
            return Some(Err(error));
        }
        let chunk = self.pending.pop_front()?;
        match chunk.get() {
            Ok(items) => self.ready.extend(items.into_iter().map(decode)),
            Err(error) => return Some(Err(error)),
        }
        self.ready.pop_front()
    }
}

/// The iterator [`Pool::imap_unordered`] returns: results as they come.
pub struct ImapUnordered<'a, A, R, I> {
    pool: &'a Pool,
    task: TaskRef,
    inputs: I,
    sender: Sender<Vec<ItemResult>>,
    results: Receiver<Vec<ItemResult>>,
    in_flight: usize,
    done: bool,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R, I> Iterator for ImapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        while !self.done && self.in_flight < 2 * self.pool.processes {
            let Some(input) = self.inputs.next() else {
                self.done = true;
                break;
            };
            let sender = self.sender.clone();
            let submitted = codec::encode(&input).and_then(|arg| {
                self.pool.submit(Job::new(
                    self.task,
                    vec![arg],
                    Box::new(move |results| {
                        let _ = sender.send(results);
                    }),
                ))
            });
            if let Err(error) = submitted {
                self.done = true;
                return Some(Err(error));
            }
            self.in_flight += 1;
        }
        if self.in_flight == 0 {
            return None;
        }
        let results = self.results.recv().ok()?;
        self.in_flight -= 1;
        let item = results.into_iter().next()?;
        Some(decode(item))
    }
}

/// A worker as the manager sees it.
struct Worker {
    process: Process,
    conn: Connection,
    /// The jobs sent to it, oldest (the one it runs) first; it answers them in order.
    jobs: VecDeque<Job>,
    /// Frames not yet taken by its socket. The manager never waits to write, since the
    /// worker may be waiting for the manager to read.
    outbox: Vec<u8>,
    /// How many jobs it has been sent, and has finished.
    sent: usize,
    finished: usize,
}

/// The thread that owns the workers: dispatches jobs, collects results, replaces the dead.
struct Manager {
    /// Shared with the pool: set when the pool breaks.
    broken: Arc<OnceLock<Error>>,
    inbox: Receiver<Command>,
    wake: UnixStream,
    /// The other end of `wake`, which workers must not keep open.
    wake_writer_fd: RawFd,
    workers: Vec<Worker>,
    queue: VecDeque<Job>,
    options: Builder,
    closing: bool,
}

impl Manager {
    fn run(mut self) {
        loop {
            if self.take_commands() == Some(true) {
                self.terminate();
                return;
            }
            self.dispatch();
            if self.closing
                && self.queue.is_empty()
                && self.workers.iter().all(|w| w.jobs.is_empty())
            {
                self.retire_all();
                return;
            }
            self.wait_and_collect();
        }
    }

    /// Takes every pending command; `Some(true)` when told to terminate.
    fn take_commands(&mut self) -> Option<bool> {
        loop {
            match self.inbox.try_recv() {
                Ok(Command::Submit(job)) => match self.broken.get() {
                    Some(error) => job.fail(error),
                    None => self.queue.push_back(job),
                },
                Ok(Command::Close) => self.closing = true,
                Ok(Command::Terminate) => return Some(true),
                Err(mpsc::TryRecvError::Empty) => return None,
                // The pool is gone without a word: treat it as a terminate.
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Some(!self.closing);
                }
            }
        }
    }

    /// Gives queued jobs to workers with room for them, the least busy first. A busy worker
    /// is sent work ahead only while there is more queued than there are workers, so that
    /// a job never waits behind another on one worker while a second worker could be idle.
    fn dispatch(&mut self) {
        while let Some(next) = self.queue.front().map(|job| job.args.len()) {
            let Some(index) = self.least_busy_with_room(next) else {
                return;
            };
            let mut job = self.queue.pop_front().expect("not empty");
            if let Some(start) = job.start.take()
                && !start()
            {
                continue;
            }
            let request = Request::Run {
                task: job.task,
                args: job.args.as_slice(),
            };
            let worker = &mut self.workers[index];
            let frame = match worker.conn.frame(&request) {
                Ok(frame) => frame,
                Err(error) => {
                    job.fail(&error);
                    continue;
                }
            };
            worker.outbox.extend_from_slice(&frame);
            worker.jobs.push_back(job);
            worker.sent += 1;
            self.flush(index);
        }
    }

    /// The worker that holds the fewest inputs and may take `next` more, if any may.
    fn least_busy_with_room(&self, next: usize) -> Option<usize> {
        let limit = self.options.maxtasksperchild.unwrap_or(usize::MAX);
        let plenty = self.queue.len() > self.workers.len();
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, worker)| worker.sent < limit)
            .map(|(index, worker)| (worker.jobs.iter().map(|job| job.args.len()).sum(), index))
            .filter(|&(ahead, index): &(usize, usize)| {
                self.workers[index].jobs.is_empty() || (plenty && ahead + next <= ITEMS_AHEAD)
            })
            .min()
            .map(|(_, index)| index)
    }

    /// Writes what the worker's socket takes of its outbox; replaces it if it died.
    fn flush(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        while !worker.outbox.is_empty() {
            match worker.conn.send_some(&worker.outbox) {
                Ok(0) => return,
                Ok(written) => {
                    worker.outbox.drain(..written);
                }
                Err(_) => return self.replace(index),
            }
        }
    }

    /// Waits for a result, a dead worker or a command, and handles what came.
    fn wait_and_collect(&mut self) {
        // Replies already read ahead would not make their sockets look readable.
        let buffered: Vec<usize> = (0..self.workers.len())
            .filter(|&index| self.workers[index].conn.has_read_ahead())
            .collect();
        if !buffered.is_empty() {
            for index in buffered {
                self.collect(index);
            }
            return;
        }
        let ready: Vec<(usize, PollFlags)> = {
            let mut fds = vec![PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
            fds.extend(self.workers.iter().map(|worker| {
                let mut events = PollFlags::POLLIN;
                if !worker.outbox.is_empty() {
                    events |= PollFlags::POLLOUT;
                }
                PollFd::new(worker.conn.as_fd(), events)
            }));
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds
                    .iter()
                    .enumerate()
                    .filter_map(|(i, fd)| Some((i, fd.revents()?)))
                    .filter(|(_, events)| !events.is_empty())
                    .collect(),
                Err(_) => Vec::new(),
            }
        };
        for (index, events) in ready {
            if index == 0 {
                let mut drain = [0; 64];
                while matches!((&self.wake).read(&mut drain), Ok(n) if n > 0) {}
            } else if events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            {
                self.collect(index - 1);
            } else {
                self.flush(index - 1);
            }
        }
    }

    /// Reads a worker's replies (all that have arrived), or learns that it died.
    fn collect(&mut self, index: usize) {
        loop {
            let worker = &mut self.workers[index];
            let reply = worker
                .conn
                .recv::<Vec<std::result::Result<Vec<u8>, WorkerFailure>>>();
            let Ok(results) = reply else {
                return self.replace(index);
            };
            worker.finished += 1;
            if let Some(job) = worker.jobs.pop_front() {
                (job.done)(
                    results
                        .into_iter()
                        .map(|r| r.map_err(Error::from))
                        .collect(),
                );
            }
            if self.options.maxtasksperchild == Some(worker.finished) {
                return self.retire(index);
            }
            if !worker.conn.has_read_ahead() {
                return;
            }
        }
    }

    /// A worker's socket broke: wait for it to end, fail the job it was running, give the
    /// jobs it had not started to others, and start a replacement.
    fn replace(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        let status = end(&worker.process, TERMINATE_GRACE);
        let name = worker.process.name();
        log::warn!("pool worker {name} ended unexpectedly: {status}");
        if self.options.breaks {
            let error = Error::BrokenProcessPool {
                worker: name,
                status,
            };
            let _ = self.broken.set(error.clone());
            return self.stop_all(&error);
        }
        if let Some(job) = worker.jobs.pop_front() {
            job.fail(&Error::WorkerDied {
                worker: name,
                status,
            });
        }
        // A worker answers in order, so the others were never started.
        for job in worker.jobs.drain(..).rev() {
            self.queue.push_front(job);
        }
        worker.outbox.clear();
        self.restart(index);
    }

    /// Ends a worker that has done its share, and starts a fresh one.
    fn retire(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        let _ = worker.conn.send(&EXIT);
        end(&worker.process, TERMINATE_GRACE);
        self.restart(index);
    }

    fn restart(&mut self, index: usize) {
        match self.spawn_worker() {
            Ok(worker) => self.workers[index] = worker,
            Err(error) => {
                log::error!("cannot start a pool worker: {error}");
                self.workers.remove(index);
                if self.workers.is_empty() {
                    for job in self.queue.drain(..) {
                        job.fail(&error);
                    }
                }
            }
        }
    }

    fn retire_all(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.conn.send(&EXIT);
        }
        for worker in self.workers.drain(..) {
            end(&worker.process, TERMINATE_GRACE);
        }
    }

    fn terminate(&mut self) {
        self.stop_all(&Error::PoolTerminated);
        while let Ok(command) = self.inbox.try_recv() {
            if let Command::Submit(job) = command {
                job.fail(&Error::PoolTerminated);
            }
        }
    }

    /// Ends every worker now and fails all work, running or queued, with `error`.
    fn stop_all(&mut self, error: &Error) {
        for worker in &self.workers {
            let _ = worker.process.terminate();
        }
        for worker in self.workers.drain(..) {
            end(&worker.process, TERMINATE_GRACE);
            for job in worker.jobs {
                job.fail(error);
            }
        }
        for job in self.queue.drain(..) {
            job.fail(error);
        }
    }

    /// Forks a worker, daemonic and named `ForkPoolWorker-N`, as Python's are.
    fn spawn_worker(&self) -> Result<Worker> {
        let (conn, worker_end) = pipe(true)?;
        // What the worker must close: the other workers' sockets and the wake-up pair, so
        // that each socket's only holders are the pool and its own worker.
        let mut inherited: Vec<RawFd> = self
            .workers
            .iter()
            .map(|worker| worker.conn.as_fd().as_raw_fd())
            .collect();
        inherited.push(self.wake.as_raw_fd());
        inherited.push(self.wake_writer_fd);
        inherited.push(conn.as_fd().as_raw_fd());
        let initializer = self.options.initializer;
        let process = ProcessBuilder::default()
            .daemon(true)
            .make(self.options.prefix.unwrap_or("ForkPoolWorker"), move || {
                worker_main(worker_end, &inherited, initializer)
            });
        process.start()?;
        // Wait for the worker's first word: from then on it is running (its start-up log
        // record is written, its initializer has run), and a worker that cannot even start
        // (an initializer that panics) is reported here, not as a pool that replaces it
        // forever.
        let mut conn = conn;
        if let Err(error) = conn.recv::<Vec<std::result::Result<Vec<u8>, WorkerFailure>>>() {
            let status = end(&process, TERMINATE_GRACE);
            log::error!("pool worker {} did not start: {error}", process.name());
            return Err(Error::WorkerDidNotStart {
                worker: process.name(),
                status,
            });
        }
        Ok(Worker {
            process,
            conn,
            jobs: VecDeque::new(),
            outbox: Vec::new(),
            sent: 0,
            finished: 0,
        })
    }
}

/// Waits up to `grace` for `process` to end, then kills it; returns how it ended.
fn end(process: &Process, grace: Duration) -> ExitStatus {
    match process.join_timeout(grace) {
        Ok(Some(status)) => status,
        _ => {
            let _ = process.kill();
            process
                .join()
                .unwrap_or(ExitStatus::Signaled(libc::SIGKILL))
        }
    }
}

/// A worker's life: run the initializer, then jobs, until told to stop or the pool is gone.
fn worker_main(mut conn: Connection, inherited: &[RawFd], initializer: Option<fn()>) -> Result<()> {
    for &fd in inherited {
        // SAFETY: these descriptors were copied into this process by fork and belong to the
        // parent's pool; nothing in this worker uses them, and closing them here changes
        // nothing in the parent.
        unsafe { libc::close(fd) };
    }
    if let Some(initializer) = initializer {
        initializer();
    }
    // An empty reply says: initialized and running.
    conn.send(&Vec::<std::result::Result<Vec<u8>, WorkerFailure>>::new())?;
    loop {
        let request = match conn.recv::<Request<Vec<Vec<u8>>>>() {
            Ok(request) => request,
            Err(Error::Disconnected) => return Ok(()),
            Err(error) => return Err(error),
        };
        let (task, args) = match request {
            Request::Run { task, args } => (task, args),
            Request::Exit => return Ok(()),
        };
        let results: Vec<std::result::Result<Vec<u8>, WorkerFailure>> = args
            .iter()
            .map(|arg| {
                // SAFETY: the task reference was made by the parent, which runs this same
                // executable (this process is its fork).
                match catch_task(|| unsafe { task.run(arg) }) {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(Error::Encode { message })) => Err(WorkerFailure::Encode(message)),
                    Ok(Err(error)) => Err(WorkerFailure::Decode(error.to_string())),
                    Err(panic) => Err(WorkerFailure::Panicked(panic)),
                }
            })
            .collect();
        match conn.send(&results) {
            Ok(()) => {}
            Err(Error::Disconnected) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_sized_as_python_sizes_them() {
        // divmod(len, processes * 4), plus one when there is a remainder.
        assert_eq!(default_chunksize(10, 2), 2);
        assert_eq!(default_chunksize(100_000, 2), 12_500);
        assert_eq!(default_chunksize(7, 4), 1);
        assert_eq!(default_chunksize(0, 4), 1);
    }
}
