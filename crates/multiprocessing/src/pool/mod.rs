//! Python's `multiprocessing.Pool`: a fixed set of worker processes that run tasks.
//!
//! A task is a plain `fn` whose argument and result are serde types (the Rust counterpart of
//! "must be picklable"); it travels as a [`TaskRef`], so it means the
//! same in every process running this executable. Each worker has a socket of its own to the
//! pool, and one record in the parent, behind one lock, says which worker holds which task.
//!
//! That is what fixes Python's famous trap (bpo-22393): when a worker dies (killed, out of
//! memory, crashed), Python loses its task and `map` waits forever. Here the pool sees the
//! worker's socket close at once, fails exactly the tasks that worker held with
//! [`Error::WorkerDied`] (naming the worker, its task, how it ended and the memory it held),
//! starts a replacement, and every other task completes. The same record lets a task run
//! under a time limit, or a memory ceiling, and fail alone past it ([`Builder`]).
//!
//! A task's way through the files below: [`Pool`] (here) encodes a chunk of arguments into a
//! job (`job.rs`) and hands it to an idle worker at once, or to the queue
//! (`manager/shared.rs`); the worker (`worker.rs`, its loop and the frames both sides
//! exchange) runs it and replies. The caller waiting for that reply reads it from the
//! worker's socket itself when it can; otherwise the manager thread (`manager/`), which
//! sleeps on every socket, reads it, hands out the queued work, and replaces the workers
//! that end. The encoded results come back to the job's completion, and the caller decodes
//! them (`results.rs`).

mod ahead;
mod builder;
mod job;
mod limited;
mod manager;
mod results;
mod stats;
mod worker;

use std::marker::PhantomData;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::completion::{Completion, Dispatcher, Drive, driven_completion};
use crate::diagnosis::TaskPlace;
use crate::error::{Error, Result};
use crate::sync::lock;
use crate::task::{Task, TaskRef};
use crate::window::{EncodedChunk, Pending, SendChunk, Window};
use job::{CallId, JobKey};
use manager::{Command, Shared};
use results::{Part, finish_all, finish_one};

pub use builder::Builder;
pub(crate) use builder::OnWorkerDeath;
pub(crate) use job::{Job, Reply};
pub use limited::TimeLimited;
pub(crate) use manager::Waker;
pub use results::{AsyncResult, Imap, ImapUnordered};
pub(crate) use results::{ChunkResult, decode_results};
pub use stats::WorkerStats;
pub(crate) use worker::spawned_worker;

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
    /// Where each worker's time went.
    timelines: stats::Timelines,
    /// How long a task may run, unless a call says otherwise.
    task_timeout: Option<Duration>,
    /// The manager's state, shared with its thread and with the threads that wait for
    /// results.
    shared: Arc<Shared>,
    commands: Mutex<Commands>,
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
        self.submit_all(Task::new(f).to_ref(), &args, chunksize, self.task_timeout)?
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
        self.map_limited(f, inputs, self.task_timeout)
    }

    /// [`map_async`](Pool::map_async) with each chunk's time `limit`.
    fn map_limited<A, R>(
        &self,
        f: fn(A) -> R,
        inputs: impl IntoIterator<Item = A>,
        limit: Option<Duration>,
    ) -> Result<AsyncResult<Vec<R>>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args: Vec<A> = inputs.into_iter().collect();
        let chunksize = default_chunksize(args.len(), self.processes);
        self.submit_all(Task::new(f).to_ref(), &args, chunksize, limit)
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
        self.submit_all(Task::pair(f).to_ref(), &args, chunksize, self.task_timeout)?
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
        self.submit_all(Task::pair(f).to_ref(), &args, chunksize, self.task_timeout)
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
        self.imap_window(true, f, inputs.into_iter(), chunksize, self.task_timeout)
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
        self.imap_window(false, f, inputs.into_iter(), chunksize, self.task_timeout)
    }

    /// The iterator of `imap` (`in_order`) and `imap_unordered`.
    fn imap_window<'a, A, R, I>(
        &'a self,
        in_order: bool,
        f: fn(A) -> R,
        inputs: I,
        chunksize: usize,
        limit: Option<Duration>,
    ) -> Imap<'a, A, R, I>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'a,
        I: Iterator<Item = A>,
    {
        let send = self.chunk_sender(Task::new(f).to_ref(), limit);
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

    /// How a window sends its chunks of inputs, one after another, to this pool's workers,
    /// each with the time `limit`.
    fn chunk_sender<'a, A, R>(
        &'a self,
        task: TaskRef,
        limit: Option<Duration>,
    ) -> SendChunk<'a, A, R>
    where
        A: Serialize,
        R: DeserializeOwned + 'a,
    {
        let mut first = 0;
        Box::new(move |chunk: Vec<A>| {
            let sent = self.send_chunk(task, &chunk, first, limit);
            first += chunk.len();
            sent
        })
    }

    /// Sends one chunk of inputs, the `first` of which is that input of its call, to the
    /// workers; its results arrive in what this returns.
    pub(crate) fn send_chunk<'a, A, R>(
        &self,
        task: TaskRef,
        chunk: &[A],
        first: usize,
        limit: Option<Duration>,
    ) -> Result<Box<dyn Pending<R> + 'a>>
    where
        A: Serialize,
        R: DeserializeOwned + 'a,
    {
        let count = chunk.len();
        let place = TaskPlace::Inputs { first, count };
        let completion =
            self.submit_part(task, codec::encode(chunk)?, count, None, place, limit)?;
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
        self.apply_limited(f, arg, self.task_timeout)
    }

    /// [`apply_async`](Pool::apply_async) with the time `limit`.
    fn apply_limited<A, R>(
        &self,
        f: fn(A) -> R,
        arg: A,
        limit: Option<Duration>,
    ) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let args = codec::encode(std::slice::from_ref(&arg))?;
        let task = Task::new(f).to_ref();
        let completion = self.submit_part(task, args, 1, None, TaskPlace::Call, limit)?;
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

    /// How long a task may run, unless a call says otherwise.
    pub(crate) fn task_timeout(&self) -> Option<Duration> {
        self.task_timeout
    }

    /// What wakes the manager thread.
    pub(crate) fn waker(&self) -> Arc<Waker> {
        self.shared.wake.clone()
    }

    /// A new job's name, and what lets its waiters read its reply themselves.
    pub(crate) fn job_key(&self) -> (JobKey, Box<dyn Drive>) {
        let key = JobKey::new();
        (key, manager::driver(&self.shared, key))
    }

    /// How each worker this pool ever had spent its time, in the order they started:
    /// start-up, working, waiting for work, and how many inputs each answered.
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        self.timelines.stats()
    }

    /// The same pool, but every call made through what this returns gives each task (each
    /// chunk, in a map) at most `limit` to run, instead of the pool's
    /// [`task_timeout`](Builder::task_timeout).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use multiprocessing::{Error, Pool};
    /// fn nap(seconds: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_secs(seconds));
    ///     seconds
    /// }
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let pool = Pool::new(2)?;
    /// let limited = pool.with_task_timeout(Duration::from_secs(2));
    /// let results: Vec<_> = limited.imap(nap, [0, 60, 1]).collect();
    /// assert!(matches!(results[1], Err(Error::TaskTimedOut { .. })));
    /// assert_eq!(results[2].as_ref().ok(), Some(&1));
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_task_timeout(&self, limit: Duration) -> TimeLimited<'_> {
        TimeLimited { pool: self, limit }
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
        limit: Option<Duration>,
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
            .enumerate()
            .map(|(index, chunk)| {
                let place = TaskPlace::Inputs {
                    first: index * chunksize,
                    count: chunk.len(),
                };
                let args = codec::encode(chunk)?;
                let completion = self.submit_part(task, args, chunk.len(), call, place, limit)?;
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

    /// Sends one chunk, a part of `call` if given, with the time `limit`; its completion
    /// gets the encoded results.
    fn submit_part(
        &self,
        task: TaskRef,
        args: Vec<u8>,
        count: usize,
        call: Option<CallId>,
        place: TaskPlace,
        limit: Option<Duration>,
    ) -> Result<Completion<Vec<u8>>> {
        let (key, driver) = self.job_key();
        let (completion, completer) = driven_completion(Some(&self.dispatcher), Some(driver));
        self.submit(Job {
            key,
            task,
            args,
            count,
            call,
            place,
            limit,
            reply: Box::new(completer),
        })?;
        Ok(completion)
    }

    /// Hands a job to the workers: to an idle one at once, or to the queue.
    pub(crate) fn submit(&self, job: Job) -> Result<()> {
        if let Some(error) = self.broken.get() {
            return Err(error.clone());
        }
        // Held while the job goes in, so that no close or terminate comes between the check
        // and the queue.
        let commands = lock(&self.commands);
        if !commands.open || commands.sender.is_none() {
            return Err(Error::PoolClosed);
        }
        self.shared.submit(job)
    }

    /// Wakes the manager; never waits, and takes no lock.
    fn wake_manager(&self) {
        self.shared.wake.wake();
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
