//! [`MpiPoolExecutor`]: the executors' API, with the other ranks of the job as its workers.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use mpi::Rank;
use mpi::point_to_point::MatchedReceiveVec;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, Destination, Source};
use multiprocessing::futures::{Future, Map, Promise, Promises};
use multiprocessing::task::Task;
use multiprocessing::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::World;
use crate::wire::{COMMAND, Command, Outcome, RESULT};

/// A call on its way to a worker: the command to send, and the promise its result keeps.
struct Job {
    command: Vec<u8>,
    promise: Promise,
    /// Whether it may wait at a busy worker: a chunk of `map`, which cannot be cancelled,
    /// in a command small enough to be sent without waiting for the worker to take it.
    ahead: bool,
}

/// How many inputs per worker a `map` keeps in flight besides two chunks: enough that the
/// others keep busy while one call takes a hundred times as long as the rest. They wait on
/// rank 0, which sends them on as workers finish.
const INPUTS_AHEAD: usize = 64;

/// The largest command sent ahead to a busy worker. MPI libraries send a message this small
/// at once and hold it for the receiver (Open MPI's "eager" limit on one host is 4 KiB with
/// its header, 64 KiB over TCP); a larger one may keep the sender waiting until the worker is
/// done with the call before.
const AHEAD_LIMIT: usize = 4000;

/// Runs calls on the other ranks of an MPI job: `mpi4py.futures.MPIPoolExecutor`, with the
/// methods of the runtime's `ProcessPoolExecutor`.
///
/// Rank 0 hands out the calls from a manager thread, to idle workers first; the workers are
/// all the other ranks, serving in [`init`](crate::init). A call from `submit` goes only to an
/// idle worker, so it can be cancelled until it starts; a small chunk of `map` may also wait
/// at a busy worker, one at most, so that the worker goes on to it without waiting for rank 0. A call travels as a
/// [`TaskRef`](multiprocessing::task::TaskRef) and its arguments, encoded: every rank runs
/// the same executable file, on whatever host, so the function is where the reference says.
///
/// A panic in a call is that call's error ([`Error::TaskPanicked`]); the worker goes on. A
/// rank that dies ends the whole job, as MPI does: there is no broken pool to report.
///
/// Dropping it shuts it down and waits for the calls submitted.
///
/// # Example
///
/// ```no_run
/// use multiprocessing_mpi::MpiPoolExecutor;
///
/// fn is_even(n: u64) -> bool {
///     n % 2 == 0
/// }
///
/// fn main() -> multiprocessing::Result<()> {
///     let mut world = multiprocessing_mpi::init();
///     let executor = MpiPoolExecutor::new(&mut world)?;
///     assert!(!*executor.submit(is_even, 7)?.result()?);
///     let answers: Vec<bool> = executor.map(is_even, [1, 2, 3]).collect::<Result<_, _>>()?;
///     assert_eq!(answers, [false, true, false]);
///     Ok(())
/// }
/// ```
///
/// The lesson `lesson-mpi` runs more.
pub struct MpiPoolExecutor<'w> {
    world: &'w mut World,
    workers: usize,
    /// `None` once shut down: the manager ends when the calls sent are done.
    jobs: Option<Sender<Job>>,
    manager: Option<JoinHandle<()>>,
    promises: Promises,
}

impl std::fmt::Debug for MpiPoolExecutor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiPoolExecutor")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl<'w> MpiPoolExecutor<'w> {
    /// An executor whose workers are every rank but 0. It borrows the world: while it lives,
    /// the other ranks are its.
    ///
    /// # Errors
    ///
    /// [`Error::NoWorkers`] when the job has one rank only (started without `mpirun`, or with
    /// `-np 1`).
    pub fn new(world: &'w mut World) -> Result<MpiPoolExecutor<'w>> {
        world.finish_manager();
        let workers = world.size() - 1;
        if workers == 0 {
            return Err(Error::NoWorkers);
        }
        let (jobs, queue) = mpsc::channel();
        let manager = std::thread::Builder::new()
            .name("mpi-executor".into())
            .spawn(move || manage(&queue, workers))
            .map_err(|error| Error::Os {
                context: "cannot start the executor's manager thread",
                errno: nix::errno::Errno::from_raw(error.raw_os_error().unwrap_or(0)),
            })?;
        Ok(MpiPoolExecutor {
            world,
            workers,
            jobs: Some(jobs),
            manager: Some(manager),
            promises: Promises::new(),
        })
    }

    /// How many ranks run calls: all but rank 0.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Schedules `f(arg)` on a worker and returns its future: Python's `submit`.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](MpiPoolExecutor::shutdown), [`Error::Encode`].
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Future<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let jobs = self.jobs.as_ref().ok_or(Error::Shutdown)?;
        let command = Command::run(Task::new(f).to_ref(), std::slice::from_ref(&arg))?;
        let (future, promise) = self.promises.future();
        jobs.send(Job {
            command,
            promise,
            ahead: false,
        })
        .map_err(|_| Error::Shutdown)?;
        Ok(future)
    }

    /// Calls `f` on each input and yields the results in input order: Python's `map`.
    ///
    /// Inputs are taken lazily, two chunks and 64 inputs per worker ahead of the results
    /// read; set a timeout and a chunk size on the returned iterator before reading it. Each
    /// chunk is one message each way, so a chunk size of tens or hundreds pays for a round
    /// trip once for all of them.
    pub fn map<'a, A, R, I>(&'a self, f: fn(A) -> R, inputs: I) -> Map<'a, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned + 'a,
        R: Serialize + DeserializeOwned + 'a,
        I: IntoIterator<Item = A>,
    {
        let task = Task::new(f).to_ref();
        let (ahead, inputs_ahead) = (2 * self.workers, INPUTS_AHEAD * self.workers);
        Map::promised(
            inputs,
            ahead,
            inputs_ahead,
            move |chunk: Vec<A>, promise| {
                let jobs = self.jobs.as_ref().ok_or(Error::Shutdown)?;
                let command = Command::run(task, &chunk)?;
                let ahead = command.len() <= AHEAD_LIMIT;
                jobs.send(Job {
                    command,
                    promise,
                    ahead,
                })
                .map_err(|_| Error::Shutdown)
            },
        )
    }

    /// Stops taking calls: Python's `shutdown(wait, cancel_futures)`. With `cancel_futures`,
    /// calls no worker has started are cancelled; with `wait`, returns once the rest have
    /// finished, else at once (the next use of the world, or its drop, waits for them).
    pub fn shutdown(&mut self, wait: bool, cancel_futures: bool) {
        if cancel_futures {
            self.promises.cancel_pending();
        }
        self.jobs = None;
        if let Some(manager) = self.manager.take() {
            if wait {
                let _ = manager.join();
                self.promises.close();
            } else {
                self.world.leave_manager(manager);
            }
        }
    }
}

impl Drop for MpiPoolExecutor<'_> {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

/// The longest the manager sleeps between two looks for results, while calls are out.
const MAX_PAUSE: Duration = Duration::from_millis(1);

/// The manager, on rank 0: hands each job to a worker, keeps each promise with the result
/// that comes back, and ends once the executor is shut down and every call sent is done. The
/// only thread of rank 0 that calls MPI while the executor lives.
///
/// MPI's receive cannot wait for a channel too, so while calls are out it looks for results
/// and new jobs in turn, sleeping a little longer each time it finds neither (up to
/// [`MAX_PAUSE`]), which leaves the cores to the workers.
fn manage(jobs: &Receiver<Job>, workers: usize) {
    let world = SimpleCommunicator::world();
    // The promises of the calls each worker has, in the order sent, which is the order its
    // results come back in: MPI keeps the order of messages between two ranks.
    let mut calls: Vec<VecDeque<Promise>> = (0..=workers).map(|_| VecDeque::new()).collect();
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut open = true;
    let mut pause = Duration::ZERO;
    loop {
        while open {
            match jobs.try_recv() {
                Ok(job) => queue.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        while let Some(job) = queue.front() {
            let Some(rank) = worker_for(&calls, job.ahead) else {
                break;
            };
            let job = queue.pop_front().expect("a job is queued");
            if job.promise.set_running_or_notify_cancel() {
                world
                    .process_at_rank(rank as Rank)
                    .send_with_tag(&job.command[..], COMMAND);
                calls[rank].push_back(job.promise);
            }
        }
        if calls.iter().all(VecDeque::is_empty) {
            if !open && queue.is_empty() {
                return;
            }
            // Nothing out: wait for a job.
            match jobs.recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => open = false,
            }
            continue;
        }
        if let Some(probed) = world.any_process().immediate_matched_probe_with_tag(RESULT) {
            let (outcome, status) = probed.matched_receive_vec::<u8>();
            let promise = calls[status.source_rank() as usize]
                .pop_front()
                .expect("a result comes from a worker that has a call");
            match Outcome::decode(&outcome) {
                Ok(results) => promise.set_result(results),
                Err(error) => promise.set_exception(error),
            }
            pause = Duration::ZERO;
            continue;
        }
        pause = (pause * 2).clamp(Duration::from_micros(1), MAX_PAUSE);
        if open {
            match jobs.recv_timeout(pause) {
                Ok(job) => queue.push_back(job),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        } else {
            std::thread::sleep(pause);
        }
    }
}

/// The worker to send the next job to: an idle one, else, for a job that may wait, one with a
/// single call.
fn worker_for(calls: &[VecDeque<Promise>], ahead: bool) -> Option<usize> {
    let idle = (1..calls.len()).find(|&rank| calls[rank].is_empty());
    let busy = || (1..calls.len()).find(|&rank| calls[rank].len() == 1);
    idle.or_else(|| if ahead { busy() } else { None })
}
