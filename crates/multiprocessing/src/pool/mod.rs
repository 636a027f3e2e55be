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
//!
//! A task's way through the files below: [`Pool`] (here) encodes a chunk of arguments and
//! hands it, as a job, to the manager thread (`manager.rs`), which sends it to a worker
//! (`worker.rs`, the worker's loop and the frames both sides exchange); the encoded results
//! come back to the job's completion, and the caller decodes them (`results.rs`).

mod ahead;
mod manager;
mod results;
mod worker;

use std::marker::PhantomData;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::completion::{Completion, Dispatcher, completion};
use crate::error::{Error, Result};
use crate::start::StartMethod;
use crate::sync::lock;
use crate::task::{Task, TaskRef};
use crate::window::{EncodedChunk, Pending, SendChunk, Window};
use manager::{CallId, Command, Waker};
use results::{Part, finish_all, finish_one};

pub(crate) use manager::{Job, Reply};
pub use results::{AsyncResult, Imap, ImapUnordered};
pub(crate) use results::{ChunkResult, decode_results};
pub(crate) use worker::spawned_worker;

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
        })?;
        Ok(Pool {
            broken: handle.broken,
            commands: Mutex::new(Commands {
                sender: Some(handle.commands),
                open: true,
            }),
            wake: handle.wake,
            manager: Mutex::new(Some(handle.thread)),
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
    /// Wakes the manager from `poll` after each command; never blocks.
    wake: Waker,
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
        self.imap_window(true, f, inputs.into_iter(), chunksize)
    }

    /// Like [`imap`](Pool::imap), but yields each result as soon as it is ready, in any
    /// order: Python's `imap_unordered`.
    pub fn imap_unordered<'a, A, R, I>(
        &'a self,
        f: fn(A) -> R,
        inputs: I,
    ) -> ImapUnordered<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'a,
        I: IntoIterator<Item = A>,
    {
        self.imap_unordered_chunked(f, inputs, 1)
    }

    /// [`imap_unordered`](Pool::imap_unordered) with chunks of `chunksize` inputs; the
    /// results of one chunk come out together. A `chunksize` of 0 makes the first item
    /// [`Error::InvalidChunksize`].
    pub fn imap_unordered_chunked<'a, A, R, I>(
        &'a self,
        f: fn(A) -> R,
        inputs: I,
        chunksize: usize,
    ) -> ImapUnordered<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'a,
        I: IntoIterator<Item = A>,
    {
        self.imap_window(false, f, inputs.into_iter(), chunksize)
    }

    /// The iterator of `imap` (`in_order`) and `imap_unordered`.
    fn imap_window<'a, A, R, I>(
        &'a self,
        in_order: bool,
        f: fn(A) -> R,
        inputs: I,
        chunksize: usize,
    ) -> Imap<'a, A, R, I>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'a,
        I: Iterator<Item = A>,
    {
        let send = self.chunk_sender(Task::new(f).to_ref());
        let ahead = 2 * self.processes;
        let window = if in_order {
            Window::new(inputs, chunksize, ahead, send)
        } else {
            Window::unordered(inputs, chunksize, ahead, send)
        };
        Imap {
            window: window.with_inputs_ahead(self.inputs_ahead()),
        }
    }

    /// How a window sends a chunk of inputs to this pool's workers.
    pub(crate) fn chunk_sender<'a, A, R>(&'a self, task: TaskRef) -> SendChunk<'a, A, R>
    where
        A: Serialize,
        R: DeserializeOwned + 'a,
    {
        Box::new(move |chunk: Vec<A>| self.send_chunk(task, &chunk))
    }

    /// Sends one chunk of inputs to the workers; its results arrive in what this returns.
    pub(crate) fn send_chunk<'a, A, R>(
        &self,
        task: TaskRef,
        chunk: &[A],
    ) -> Result<Box<dyn Pending<R> + 'a>>
    where
        A: Serialize,
        R: DeserializeOwned + 'a,
    {
        let count = chunk.len();
        let completion = self.submit_chunk(task, codec::encode(chunk)?, count)?;
        Ok(Box::new(EncodedChunk {
            completion,
            count,
            _result: PhantomData,
        }))
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

    /// How many inputs a lazy map keeps in flight besides two chunks a worker: what the
    /// workers may be sent ahead of need when they run small tasks quickly.
    pub(crate) fn inputs_ahead(&self) -> usize {
        self.processes * ahead::MOST
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
        // The result is seen only once every chunk is in: the chunks are one call.
        let call = (args.len() > chunksize).then(CallId::new);
        let parts = args
            .chunks(chunksize)
            .map(|chunk| {
                let completion =
                    self.submit_part(task, codec::encode(chunk)?, chunk.len(), call)?;
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

    /// Sends one chunk, whose result is seen on its own; its completion gets the encoded
    /// results.
    pub(crate) fn submit_chunk(
        &self,
        task: TaskRef,
        args: Vec<u8>,
        count: usize,
    ) -> Result<Completion<Vec<u8>>> {
        self.submit_part(task, args, count, None)
    }

    /// Sends one chunk, a part of `call` if given; its completion gets the encoded results.
    fn submit_part(
        &self,
        task: TaskRef,
        args: Vec<u8>,
        count: usize,
        call: Option<CallId>,
    ) -> Result<Completion<Vec<u8>>> {
        let (completion, completer) = completion(Some(&self.dispatcher));
        self.submit(Job {
            task,
            args,
            count,
            call,
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
        self.wake.wake();
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
