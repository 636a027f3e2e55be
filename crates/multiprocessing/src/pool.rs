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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::completion::{Completer, Completion, Dispatcher, completion};
use crate::error::{Error, Result};
use crate::pipe::{Connection, pipe};
use crate::process::{Builder as ProcessBuilder, ExitStatus, Process, catch_task};
use crate::sync::lock;
use crate::task::{ChunkResults, Task, TaskRef};
use crate::window::{EncodedChunk, Pending, Window};

/// How long terminated workers get to end before they are killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// How many inputs a worker may be sent ahead of its results (but always one chunk), so that
/// a worker running small tasks does not sit idle while its last result travels back and the
/// next task travels out. Large chunks go one at a time, which keeps the load balanced.
const ITEMS_AHEAD: usize = 4;

/// How many times in a row the pool tries to start a worker in place of one that ended,
/// before it gives the place up.
const START_TRIES: usize = 3;

/// What came back for a chunk: its results as the worker encoded them (a
/// [`ChunkResults`](crate::task::ChunkResults)), or why the whole chunk has none (its worker
/// died, the pool was terminated, its arguments could not be decoded).
pub(crate) type ChunkResult = std::result::Result<Vec<u8>, Error>;

/// The first byte of a frame to a worker: run a chunk (then the task's 16 bytes and the
/// encoded arguments follow), or end.
const RUN: u8 = 0;
const EXIT: u8 = 1;

/// The first byte of a worker's reply: the chunk's encoded results follow, or why it has
/// none. A lone `DONE` also says that a new worker is ready.
const DONE: u8 = 0;
const DECODE_FAILED: u8 = 1;
const ENCODE_FAILED: u8 = 2;
const PANICKED: u8 = 3;

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
    pub(crate) task: TaskRef,
    /// The chunk's arguments, encoded together as one `Vec<A>`.
    pub(crate) args: Vec<u8>,
    /// How many arguments that is.
    pub(crate) count: usize,
    pub(crate) reply: Box<dyn Reply>,
}

impl Job {
    /// Finishes the job with `error` for each of its items.
    fn fail(self, error: &Error) {
        self.reply.send(Err(error.clone()));
    }
}

/// A chunk's results, decoded: each item's value, or why it has none. A result type whose
/// decoding panics fails its items with [`Error::Decode`]; the panic goes no further.
pub(crate) fn decode_results<R: DeserializeOwned>(
    chunk: &ChunkResult,
    count: usize,
) -> Vec<Result<R>> {
    let decoded = chunk.as_ref().map_err(Error::clone).and_then(|bytes| {
        catch_task(|| codec::decode::<ChunkResults<R>>(bytes)).unwrap_or_else(|panic| {
            Err(Error::Decode {
                message: format!("decoding a result panicked: {panic}"),
            })
        })
    });
    match decoded {
        Ok(items) => items
            .into_iter()
            .map(|item| item.map_err(|message| Error::TaskPanicked { message }))
            .collect(),
        Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
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
        let (wake_reader, wake_writer) =
            UnixStream::pair().map_err(Error::io("cannot make the pool's wake-up"))?;
        // Neither end ever blocks: a wake-up that does not fit means the manager has plenty
        // waiting for it already, and a caller must never wait for the manager to read.
        for end in [&wake_reader, &wake_writer] {
            end.set_nonblocking(true)
                .map_err(Error::io("cannot make the pool's wake-up"))?;
        }
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
        // The manager thread forks every worker, the first ones too: a daemonic child dies
        // with the thread that forked it, and this thread lives exactly as long as the pool.
        let (started, start) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pool-manager".into())
            .spawn(move || {
                for _ in 0..processes {
                    match manager.spawn_worker() {
                        Ok(worker) => manager.workers.push(worker),
                        Err(error) => {
                            manager.stop_all(&Error::PoolTerminated);
                            let _ = started.send(Err(error));
                            return;
                        }
                    }
                }
                let _ = started.send(Ok(()));
                manager.run();
            })
            .map_err(Error::io("cannot start the pool's manager thread"))?;
        match start.recv() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                let _ = thread.join();
                return Err(error);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::Os {
                    context: "the pool's manager thread ended while starting workers",
                    errno: nix::Error::EIO,
                });
            }
        }
        Ok(Pool {
            broken,
            commands: Mutex::new(Commands {
                sender: Some(commands),
                open: true,
            }),
            wake: wake_writer,
            manager: Mutex::new(Some(thread)),
            dispatcher: Dispatcher::default(),
            processes,
            detached: false,
        })
    }
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
    /// Set when the pool has broken (a worker of a pool that breaks on a death died, or no
    /// worker could be started): why.
    broken: Arc<OnceLock<Error>>,
    commands: Mutex<Commands>,
    /// Written to after each command, to wake the manager from `poll`; never blocks.
    wake: UnixStream,
    manager: Mutex<Option<JoinHandle<()>>>,
    /// Runs the callbacks of results, off the manager thread.
    dispatcher: Dispatcher,
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
    /// [`Error::InvalidChunksize`] for 0, and as [`map`](Pool::map).
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
        let args: Vec<A> = inputs.into_iter().collect();
        self.submit_all(Task::new(f).to_ref(), &args, chunksize)?
            .get()
    }

    /// Starts a [`map`](Pool::map) and returns at once: Python's `map_async`. Add callbacks
    /// to the result with [`AsyncResult::callback`] and [`AsyncResult::error_callback`].
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
        let args: Vec<A> = inputs.into_iter().collect();
        let chunksize = default_chunksize(args.len(), self.processes);
        self.submit_all(Task::new(f).to_ref(), &args, chunksize)
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
        self.starmap_async(f, inputs)?.get()
    }

    /// [`starmap`](Pool::starmap) with chunks of `chunksize` pairs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidChunksize`] for 0, and as [`map`](Pool::map).
    pub fn starmap_chunked<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        inputs: impl IntoIterator<Item = (A, B)>,
        chunksize: usize,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args: Vec<(A, B)> = inputs.into_iter().collect();
        self.submit_all(Task::pair(f).to_ref(), &args, chunksize)?
            .get()
    }

    /// Starts a [`starmap`](Pool::starmap) and returns at once: Python's `starmap_async`.
    ///
    /// # Errors
    ///
    /// As [`map_async`](Pool::map_async).
    pub fn starmap_async<A, B, R>(
        &self,
        f: fn(A, B) -> R,
        inputs: impl IntoIterator<Item = (A, B)>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        B: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args: Vec<(A, B)> = inputs.into_iter().collect();
        let chunksize = default_chunksize(args.len(), self.processes);
        self.submit_all(Task::pair(f).to_ref(), &args, chunksize)
    }

    /// Calls `f` on the inputs lazily, one at a time, yielding results in input order:
    /// Python's `imap`. Only a bounded number of inputs is taken ahead of the results
    /// read, so an endless input works (Python reads all of it first).
    /// [`Imap::next_timeout`] bounds the wait for one result.
    pub fn imap<'a, A, R, I>(&'a self, f: fn(A) -> R, inputs: I) -> Imap<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'a,
        I: IntoIterator<Item = A>,
    {
        self.imap_chunked(f, inputs, 1)
    }

    /// [`imap`](Pool::imap) with chunks of `chunksize` inputs. A `chunksize` of 0 makes the
    /// first item [`Error::InvalidChunksize`].
    pub fn imap_chunked<'a, A, R, I>(
        &'a self,
        f: fn(A) -> R,
        inputs: I,
        chunksize: usize,
    ) -> Imap<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'a,
        I: IntoIterator<Item = A>,
    {
        let task = Task::new(f).to_ref();
        let send = move |chunk: Vec<A>| -> Result<Box<dyn Pending<R> + 'a>> {
            let count = chunk.len();
            let completion = self.submit_chunk(task, codec::encode(&chunk)?, count)?;
            Ok(Box::new(EncodedChunk {
                completion,
                count,
                _result: PhantomData,
            }))
        };
        Imap {
            window: Window::new(
                inputs.into_iter(),
                chunksize,
                2 * self.processes,
                Box::new(send),
            ),
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
        self.imap_unordered_chunked(f, inputs, 1)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with chunks of `chunksize` inputs; the
    /// results of one chunk come out together. A `chunksize` of 0 makes the first item
    /// [`Error::InvalidChunksize`].
    pub fn imap_unordered_chunked<A, R, I>(
        &self,
        f: fn(A) -> R,
        inputs: I,
        chunksize: usize,
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
            chunksize,
            sender,
            results,
            ready: VecDeque::new(),
            in_flight: 0,
            exhausted: false,
            failed: false,
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

    /// Starts `f(arg)` in a worker and returns at once: Python's `apply_async`. Add callbacks
    /// to the result with [`AsyncResult::callback`] and [`AsyncResult::error_callback`].
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] for the argument, [`Error::PoolClosed`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args = codec::encode(std::slice::from_ref(&arg))?;
        let completion = self.submit_chunk(Task::new(f).to_ref(), args, 1)?;
        Ok(AsyncResult {
            parts: vec![Part {
                completion,
                count: 1,
            }],
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
        let terminate = matches!(command, Command::Terminate);
        let sent = {
            let mut commands = lock(&self.commands);
            let sent = (commands.open || terminate)
                && commands
                    .sender
                    .as_ref()
                    .is_some_and(|sender| sender.send(command).is_ok());
            commands.open = false;
            if terminate {
                commands.sender = None;
            }
            sent
        };
        if sent {
            self.wake_manager();
        }
    }

    /// Waits until every worker has ended and every callback has run, after
    /// [`close`](Pool::close) or [`terminate`](Pool::terminate): Python's `join`. Called from
    /// a result's callback, it does not wait for the callbacks, which would be waiting for
    /// itself.
    ///
    /// # Errors
    ///
    /// [`Error::PoolRunning`] when the pool is neither closed nor terminated.
    pub fn join(&self) -> Result<()> {
        if lock(&self.commands).open {
            return Err(Error::PoolRunning);
        }
        self.wait_for_manager();
        self.dispatcher.close(true);
        Ok(())
    }

    /// How many workers the pool keeps.
    pub(crate) fn processes(&self) -> usize {
        self.processes
    }

    /// The thread that runs this pool's callbacks.
    pub(crate) fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
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
    fn submit_all<A, R>(
        &self,
        task: TaskRef,
        args: &[A],
        chunksize: usize,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        if chunksize == 0 {
            return Err(Error::InvalidChunksize);
        }
        let parts = args
            .chunks(chunksize)
            .map(|chunk| {
                let completion = self.submit_chunk(task, codec::encode(chunk)?, chunk.len())?;
                Ok(Part {
                    completion,
                    count: chunk.len(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(AsyncResult {
            parts,
            finish: finish_all::<R>,
        })
    }

    /// Sends one chunk; its completion gets the encoded results.
    pub(crate) fn submit_chunk(
        &self,
        task: TaskRef,
        args: Vec<u8>,
        count: usize,
    ) -> Result<Completion<Vec<u8>>> {
        let (completion, completer) = completion(Some(&self.dispatcher));
        self.submit(Job {
            task,
            args,
            count,
            reply: Box::new(completer),
        })?;
        Ok(completion)
    }

    /// Hands a job to the manager thread.
    pub(crate) fn submit(&self, job: Job) -> Result<()> {
        if let Some(error) = self.broken.get() {
            return Err(error.clone());
        }
        {
            let commands = lock(&self.commands);
            let (true, Some(sender)) = (commands.open, &commands.sender) else {
                return Err(Error::PoolClosed);
            };
            sender
                .send(Command::Submit(job))
                .map_err(|_| Error::PoolClosed)?;
        }
        self.wake_manager();
        Ok(())
    }

    /// Wakes the manager; never waits, and takes no lock.
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

/// One chunk of a submission: where its encoded results arrive, and how many they are.
#[derive(Clone)]
struct Part {
    completion: Completion<Vec<u8>>,
    count: usize,
}

/// Every item's result, decoded, in order; the parts must all be in.
fn decode_parts<R: DeserializeOwned>(parts: &[Part]) -> Vec<Result<R>> {
    parts
        .iter()
        .flat_map(|part| {
            part.completion
                .read(|chunk| decode_results(chunk, part.count))
                .unwrap_or_else(|| (0..part.count).map(|_| Err(Error::ResultLost)).collect())
        })
        .collect()
}

fn finish_one<R: DeserializeOwned>(parts: &[Part]) -> Result<R> {
    decode_parts(parts)
        .into_iter()
        .next()
        .unwrap_or(Err(Error::ResultLost))
}

fn finish_all<R: DeserializeOwned>(parts: &[Part]) -> Result<Vec<R>> {
    decode_parts(parts).into_iter().collect()
}

/// The result of [`Pool::apply_async`] or [`Pool::map_async`], once it is ready: Python's
/// `AsyncResult`.
pub struct AsyncResult<R> {
    parts: Vec<Part>,
    finish: fn(&[Part]) -> Result<R>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    /// Waits for the result: Python's `get()`. It can be asked for again.
    ///
    /// # Errors
    ///
    /// The first failed task's error: [`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// [`Error::PoolTerminated`], [`Error::Decode`].
    pub fn get(&self) -> Result<R> {
        self.wait_until(None);
        (self.finish)(&self.parts)
    }

    /// Waits at most `timeout` for the result: Python's `get(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not ready in time (it may still come; ask again), and
    /// as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        if !self.wait_until(crate::deadline_after(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        (self.finish)(&self.parts)
    }

    /// Waits at most `timeout` (`None`: as long as it takes); returns whether it is ready.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.wait_until(timeout.and_then(crate::deadline_after))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        self.parts.iter().all(|part| part.completion.wait(deadline))
    }

    /// Whether the result is in: Python's `ready()`.
    pub fn ready(&self) -> bool {
        self.parts.iter().all(|part| part.completion.is_done())
    }

    /// Whether it is in and no task failed: Python's `successful()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] before it is in, as Python raises `ValueError`.
    pub fn successful(&self) -> Result<bool> {
        if !self.ready() {
            return Err(Error::NotReady);
        }
        Ok((self.finish)(&self.parts).is_ok())
    }
}

impl<R: 'static> AsyncResult<R> {
    /// Calls `callback` with the result once it is in, if every task succeeded: Python's
    /// `callback=` argument. It runs on the pool's callback thread, after the callbacks of
    /// results that came in before (at once, on this thread, if the result is in already).
    /// A callback that panics is logged and costs nothing else.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use multiprocessing::Pool;
    ///
    /// fn double(x: i32) -> i32 {
    ///     x * 2
    /// }
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let pool = Pool::new(2)?;
    /// pool.apply_async(double, 21)?
    ///     .callback(|value| println!("got {value}"))
    ///     .error_callback(|error| eprintln!("failed: {error}"));
    /// pool.close();
    /// pool.join()?; // every callback has run
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "the result still holds the outcome; drop it with `let _ =` if only the callback matters"]
    pub fn callback(self, callback: impl FnOnce(R) + Send + 'static) -> Self {
        self.when_ready(move |outcome| {
            if let Ok(value) = outcome {
                callback(value);
            }
        });
        self
    }

    /// Calls `callback` with the error once the result is in, if a task failed: Python's
    /// `error_callback=` argument. It runs as [`callback`](AsyncResult::callback) does.
    #[must_use = "the result still holds the outcome; drop it with `let _ =` if only the callback matters"]
    pub fn error_callback(self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.when_ready(move |outcome| {
            if let Err(error) = outcome {
                callback(error);
            }
        });
        self
    }

    /// Calls `then` with the outcome once every part is in.
    fn when_ready(&self, then: impl FnOnce(Result<R>) + Send + 'static) {
        let finish = self.finish;
        if self.parts.is_empty() {
            return then(finish(&self.parts));
        }
        let left = Arc::new(AtomicUsize::new(self.parts.len()));
        let then = Arc::new(Mutex::new(Some(then)));
        for part in &self.parts {
            let (left, then, parts) = (left.clone(), then.clone(), self.parts.clone());
            part.completion.on_done(move || {
                if left.fetch_sub(1, Ordering::AcqRel) == 1
                    && let Some(then) = lock(&then).take()
                {
                    then(finish(&parts));
                }
            });
        }
    }
}

/// The iterator [`Pool::imap`] returns; each item is that input's result.
pub struct Imap<'a, A, R, I> {
    window: Window<'a, A, R, I>,
}

impl<A, R, I: Iterator<Item = A>> Imap<'_, A, R, I> {
    /// The next result, waiting at most `timeout` for it: Python's `next(timeout)`.
    /// `Some(Err(Error::Timeout))` when it is not ready in time; it can be asked for again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.window
            .next_until(crate::deadline_after(timeout), timeout)
    }
}

impl<A, R, I: Iterator<Item = A>> Iterator for Imap<'_, A, R, I> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.window.next_until(None, Duration::ZERO)
    }
}

/// The iterator [`Pool::imap_unordered`] returns: results as they come.
pub struct ImapUnordered<'a, A, R, I> {
    pool: &'a Pool,
    task: TaskRef,
    inputs: I,
    chunksize: usize,
    /// Each chunk's completion, with its size, as it comes in.
    sender: Sender<(Completion<Vec<u8>>, usize)>,
    results: Receiver<(Completion<Vec<u8>>, usize)>,
    /// Results of the last chunk in, not yet yielded.
    ready: VecDeque<Result<R>>,
    /// Chunks sent and not yet in.
    in_flight: usize,
    exhausted: bool,
    failed: bool,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R, I> ImapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    /// The next result to come in, waiting at most `timeout` for one: Python's
    /// `next(timeout)`. `Some(Err(Error::Timeout))` when none came in time; ask again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.next_until(crate::deadline_after(timeout), timeout)
    }

    fn next_until(&mut self, deadline: Option<Instant>, after: Duration) -> Option<Result<R>> {
        if self.failed {
            return None;
        }
        if let Some(result) = self.ready.pop_front() {
            return Some(result);
        }
        if self.chunksize == 0 {
            self.failed = true;
            return Some(Err(Error::InvalidChunksize));
        }
        if let Err(error) = self.top_up() {
            self.failed = true;
            return Some(Err(error));
        }
        if self.in_flight == 0 {
            return None;
        }
        let received = match deadline {
            None => self.results.recv().ok(),
            Some(deadline) => deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| self.results.recv_timeout(left).ok()),
        };
        let Some((completion, count)) = received else {
            return Some(Err(Error::Timeout { after }));
        };
        self.in_flight -= 1;
        let chunk = completion.take().unwrap_or(Err(Error::ResultLost));
        self.ready.extend(decode_results(&chunk, count));
        self.ready.pop_front()
    }

    /// Keeps two chunks per worker in flight.
    fn top_up(&mut self) -> Result<()> {
        while !self.exhausted && self.in_flight < 2 * self.pool.processes {
            let chunk: Vec<A> = self.inputs.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.exhausted = true;
                break;
            }
            let count = chunk.len();
            let completion = self
                .pool
                .submit_chunk(self.task, codec::encode(&chunk)?, count)?;
            let (sender, done) = (self.sender.clone(), completion.clone());
            completion.on_done_inline(move || {
                let _ = sender.send((done, count));
            });
            self.in_flight += 1;
        }
        Ok(())
    }
}

impl<A, R, I> Iterator for ImapUnordered<'_, A, R, I>
where
    A: Serialize,
    R: DeserializeOwned,
    I: Iterator<Item = A>,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.next_until(None, Duration::ZERO)
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
    /// Set once it has died, or has done its share and was told to exit: it takes no more
    /// work and is replaced at the top of the manager's next round.
    ended: bool,
}

/// The thread that owns the workers: dispatches jobs, collects results, replaces the dead.
///
/// The list of workers changes only in [`renew`](Manager::renew), at the top of a round, so
/// that no index taken during a round outlives a change to the list.
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
            self.renew();
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

    /// Replaces the workers that ended in the last round. A place that cannot be filled
    /// after [`START_TRIES`] tries is given up; a pool left with no worker at all is broken,
    /// with the error that the last try gave, and fails its work instead of queueing it.
    fn renew(&mut self) {
        if let Some(error) = self.broken.get() {
            if !self.workers.is_empty() || !self.queue.is_empty() {
                let error = error.clone();
                self.stop_all(&error);
            }
            return;
        }
        let mut last_error = None;
        for index in 0..self.workers.len() {
            if !self.workers[index].ended {
                continue;
            }
            end(&self.workers[index].process, TERMINATE_GRACE);
            match self.start_worker() {
                Ok(worker) => self.workers[index] = worker,
                Err(error) => {
                    log::error!("cannot start a pool worker: {error}");
                    last_error = Some(error);
                }
            }
        }
        self.workers.retain(|worker| !worker.ended);
        if self.workers.is_empty()
            && let Some(error) = last_error
        {
            let _ = self.broken.set(error.clone());
            self.stop_all(&error);
        }
    }

    /// Gives queued jobs to workers with room for them, the least busy first. A busy worker
    /// is sent work ahead only while there is more queued than there are workers, so that
    /// a job never waits behind another on one worker while a second worker could be idle,
    /// and never a job that could still be cancelled.
    fn dispatch(&mut self) {
        while let Some(front) = self.queue.front() {
            let (next, cancellable) = (front.count, front.reply.cancellable());
            let Some(index) = self.least_busy_with_room(next, cancellable) else {
                return;
            };
            let job = self.queue.pop_front().expect("not empty");
            if !job.reply.start() {
                continue;
            }
            let worker = &mut self.workers[index];
            let frame = match worker
                .conn
                .frame(&[&[RUN], &job.task.to_bytes(), &job.args])
            {
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

    /// The worker that holds the fewest inputs and may take `next` more, if any may; only
    /// an idle one for a job that is `cancellable`.
    fn least_busy_with_room(&self, next: usize, cancellable: bool) -> Option<usize> {
        let limit = self.options.maxtasksperchild.unwrap_or(usize::MAX);
        let plenty = self.queue.len() > self.workers.len() && !cancellable;
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, worker)| !worker.ended && worker.sent < limit)
            .map(|(index, worker)| (worker.jobs.iter().map(|job| job.count).sum(), index))
            .filter(|&(ahead, index): &(usize, usize)| {
                self.workers[index].jobs.is_empty() || (plenty && ahead + next <= ITEMS_AHEAD)
            })
            .min()
            .map(|(_, index)| index)
    }

    /// Writes what the worker's socket takes of its outbox; notes it if it died.
    fn flush(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        while !worker.ended && !worker.outbox.is_empty() {
            match worker.conn.send_some(&worker.outbox) {
                Ok(0) => return,
                Ok(written) => {
                    worker.outbox.drain(..written);
                }
                Err(_) => return self.lost(index),
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
            if worker.ended {
                return;
            }
            let Ok(reply) = worker.conn.recv_bytes() else {
                return self.lost(index);
            };
            worker.finished += 1;
            if let Some(job) = worker.jobs.pop_front() {
                job.reply.send(chunk_result(reply));
            }
            if self.options.maxtasksperchild == Some(worker.finished) {
                let _ = worker.conn.send_bytes(&[EXIT]);
                worker.ended = true;
                return;
            }
            if !worker.conn.has_read_ahead() {
                return;
            }
        }
    }

    /// A worker's socket broke: wait for it to end, fail the job it was running, and give
    /// the jobs it had not started to others; or, in a pool that breaks, break it. The
    /// worker is replaced at the top of the next round.
    fn lost(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        if worker.ended {
            return;
        }
        worker.ended = true;
        let status = end(&worker.process, TERMINATE_GRACE);
        let name = worker.process.name();
        log::warn!("pool worker {name} ended unexpectedly: {status}");
        if self.options.breaks {
            let _ = self.broken.set(Error::BrokenProcessPool {
                worker: name,
                status,
            });
            return;
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
    }

    /// Starts a worker, trying again when that fails, up to [`START_TRIES`] times.
    fn start_worker(&self) -> Result<Worker> {
        let mut tries = 1;
        loop {
            match self.spawn_worker() {
                Ok(worker) => return Ok(worker),
                Err(error) if tries == START_TRIES => return Err(error),
                Err(_) => tries += 1,
            }
        }
    }

    fn retire_all(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.conn.send_bytes(&[EXIT]);
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
        if let Err(error) = conn.recv_bytes() {
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
            ended: false,
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
    // A lone DONE says: initialized and running.
    conn.send_bytes(&[DONE])?;
    loop {
        let frame = match conn.recv_bytes() {
            Ok(frame) => frame,
            Err(Error::Disconnected) => return Ok(()),
            Err(error) => return Err(error),
        };
        let (Some(&RUN), Some(task)) = (frame.first(), TaskRef::from_bytes(&frame[1..])) else {
            return Ok(());
        };
        // SAFETY: the task reference was made by the parent, which runs this same executable
        // (this process is its fork).
        let (tag, body) = match catch_task(|| unsafe { task.run(&frame[17..]) }) {
            Ok(Ok(results)) => (DONE, results),
            Ok(Err(Error::Encode { message })) => (ENCODE_FAILED, message.into_bytes()),
            Ok(Err(Error::Decode { message })) => (DECODE_FAILED, message.into_bytes()),
            Ok(Err(error)) => (DECODE_FAILED, error.to_string().into_bytes()),
            Err(panic) => (PANICKED, panic.into_bytes()),
        };
        match conn.send_parts(&[&[tag], &body]) {
            Ok(()) => {}
            Err(Error::Disconnected) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
}

/// A worker's reply as the result of the chunk it answers.
fn chunk_result(mut reply: Vec<u8>) -> ChunkResult {
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
