//! The pool's workers and the one lock around them: the manager thread, which starts and
//! replaces workers, hands each idle one the next chunk of work and collects the results;
//! and the callers, who hand a job to an idle worker themselves and read its reply
//! themselves while they wait for it (see [`Shared`]).

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

mod dispatch;
mod faults;
mod shared;
mod workers;

use super::OnWorkerDeath;
use super::job::Job;
use super::stats::Timelines;
use super::worker::EXIT;
use crate::error::{Error, Result};
use crate::start::StartMethod;

use dispatch::has_reply;
pub(in crate::pool) use shared::driver;
pub(crate) use shared::{Shared, Waker};
use workers::{Worker, end};

/// How long terminated workers get to end before they are killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(1);

/// How many times in a row the pool tries to start a worker in place of one that ended,
/// before it gives the place up.
const START_TRIES: usize = 3;

/// What the pool is made of: how many workers, what each runs first, how long each lives, and
/// what a worker's death does.
#[derive(Clone, Copy, Debug)]
pub(super) struct Options {
    pub(super) processes: usize,
    pub(super) initializer: Option<fn()>,
    pub(super) maxtasksperchild: Option<usize>,
    pub(super) on_death: OnWorkerDeath,
    pub(super) method: StartMethod,
    /// Above this many bytes resident after a task, a worker is replaced before its next.
    pub(super) max_memory_per_child: Option<u64>,
    /// A hard ceiling on each worker's heap, in bytes: an allocation past it fails.
    pub(super) memory_limit: Option<u64>,
}

/// What callers tell the manager thread.
pub(super) enum Command {
    Close,
    Terminate,
}

/// The key under which the manager's epoll reports its wake-up socket; a worker's key is
/// its serial number.
const WAKE_KEY: u64 = u64::MAX;

/// The pool's side of a running manager thread.
pub(super) struct Handle {
    /// What the pool shares with the manager thread and with waiters.
    pub(super) shared: Arc<Shared>,
    /// Where commands go; the manager reads them after each wake-up.
    pub(super) commands: Sender<Command>,
    /// Set when the pool has broken: why.
    pub(super) broken: Arc<OnceLock<Error>>,
    /// Where each worker's time went.
    pub(super) timelines: Timelines,
    pub(super) thread: JoinHandle<()>,
}

/// Starts the manager thread, which starts the workers; returns once all have reported in.
pub(super) fn start(options: Options) -> Result<Handle> {
    let (commands, inbox) = mpsc::channel();
    let (wake_reader, wake_writer) =
        UnixStream::pair().map_err(Error::io("cannot make the pool's wake-up"))?;
    // Neither end ever blocks: a wake-up that does not fit means the manager has plenty
    // waiting for it already, and a caller must never wait for the manager to read.
    for end in [&wake_reader, &wake_writer] {
        end.set_nonblocking(true)
            .map_err(Error::io("cannot make the pool's wake-up"))?;
    }
    let epoll = Arc::new(
        Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(Error::os("cannot make the pool's epoll set"))?,
    );
    epoll
        .add(&wake_reader, EpollEvent::new(EpollFlags::EPOLLIN, WAKE_KEY))
        .map_err(Error::os("cannot make the pool's epoll set"))?;
    let broken = Arc::new(OnceLock::new());
    let woken = Arc::new(AtomicBool::new(false));
    let timelines = Timelines::default();
    let shared = Arc::new(Shared {
        manager: Mutex::new(Manager {
            broken: broken.clone(),
            timelines: timelines.clone(),
            inbox,
            wake: wake_reader,
            woken: woken.clone(),
            wake_writer_fd: wake_writer.as_raw_fd(),
            epoll: epoll.clone(),
            workers: Vec::new(),
            next_serial: 0,
            queue: VecDeque::new(),
            options,
            closing: false,
            finished: false,
        }),
        epoll,
        wake: Arc::new(Waker {
            stream: wake_writer,
            woken,
        }),
    });
    // The manager thread forks every worker, the first ones too: a daemonic child dies
    // with the thread that forked it, and this thread lives exactly as long as the pool.
    let (started, start) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("pool-manager".into())
        .spawn({
            let shared = shared.clone();
            move || {
                {
                    let mut manager = shared.lock();
                    for _ in 0..manager.options.processes {
                        if let Err(error) = manager.add_worker() {
                            manager.stop_all(&Error::PoolTerminated);
                            manager.finished = true;
                            let _ = started.send(Err(error));
                            return;
                        }
                    }
                }
                let _ = started.send(Ok(()));
                run(&shared);
            }
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
    Ok(Handle {
        shared,
        commands,
        broken,
        timelines,
        thread,
    })
}

/// The manager thread's loop: a round under the lock, then a sleep without it until a
/// worker replies or ends, a caller wakes it, or the nearest time limit of a running job.
fn run(shared: &Shared) {
    let mut events = vec![EpollEvent::empty(); 64];
    loop {
        let timeout = {
            let mut manager = shared.lock();
            match manager.round() {
                Round::Over => return,
                Round::Again => continue,
                Round::Sleep(timeout) => timeout,
            }
        };
        let ready = shared.epoll.wait(&mut events, timeout).unwrap_or(0);
        let mut manager = shared.lock();
        for event in &events[..ready] {
            manager.handle(event);
        }
        manager.stop_overdue();
    }
}

/// What a round of the manager's loop leaves it to do.
enum Round {
    /// The pool is over: the thread ends.
    Over,
    /// Replies were read ahead, which no socket shows: another round at once.
    Again,
    /// Sleep, at most this long.
    Sleep(PollTimeout),
}

/// The thread that owns the workers: dispatches jobs, collects results, replaces the dead.
///
/// The list of workers changes only in [`renew`](Manager::renew), at the top of a round, so
/// that no index taken during a round outlives a change to the list.
struct Manager {
    /// Shared with the pool: set when the pool breaks.
    broken: Arc<OnceLock<Error>>,
    /// Shared with the pool: where each worker's time went.
    timelines: Timelines,
    inbox: Receiver<Command>,
    wake: UnixStream,
    /// Up from a caller's write to `wake` until the manager has read it; see [`Waker`].
    woken: Arc<AtomicBool>,
    /// The other end of `wake`, which workers must not keep open.
    wake_writer_fd: RawFd,
    /// What the manager thread sleeps on: the wake-up and every worker's socket.
    epoll: Arc<Epoll>,
    workers: Vec<Worker>,
    /// The serial number of the next worker.
    next_serial: u64,
    queue: VecDeque<Job>,
    options: Options,
    closing: bool,
    /// Set once the manager thread has ended: no job can be run any more.
    finished: bool,
}

impl Manager {
    /// One round of the manager thread's loop: commands, replacements, dispatch.
    fn round(&mut self) -> Round {
        if self.take_commands() == Some(true) {
            self.terminate();
            self.finished = true;
            return Round::Over;
        }
        self.renew();
        self.dispatch();
        if self.closing && self.queue.is_empty() && self.workers.iter().all(|w| w.jobs.is_empty()) {
            self.retire_all();
            self.finished = true;
            return Round::Over;
        }
        // Replies already read ahead would not make their sockets look readable.
        let buffered: Vec<usize> = (0..self.workers.len())
            .filter(|&index| !self.workers[index].lent && self.workers[index].conn.has_read_ahead())
            .collect();
        if buffered.is_empty() {
            return Round::Sleep(self.poll_timeout());
        }
        for index in buffered {
            self.collect(index);
        }
        Round::Again
    }

    /// Handles what the epoll set reported: a wake-up, a reply or a death, room to write.
    fn handle(&mut self, event: &EpollEvent) {
        if event.data() == WAKE_KEY {
            let mut drain = [0; 64];
            while matches!((&self.wake).read(&mut drain), Ok(n) if n > 0) {}
            // Lowered after the read, so that a caller who finds it down writes a byte
            // this read did not take. A swap, not a store: it reads what the last
            // caller's swap wrote, so that caller's command is visible to the
            // `try_recv`s at the top of the next round.
            self.woken.swap(false, Ordering::Acquire);
            return;
        }
        // A worker that has ended since, or is lent to a waiter, is not read here.
        let Some(index) = self.index_of(event.data()) else {
            return;
        };
        if self.workers[index].lent {
            return;
        }
        let events = event.events();
        if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
            // The report may be stale: a waiter may have borrowed the socket and read the
            // reply between the report and this lock.
            let conn = &self.workers[index].conn;
            if has_reply(conn) {
                self.collect(index);
            }
        } else if events.contains(EpollFlags::EPOLLOUT) {
            self.flush(index);
        }
    }

    /// Where the worker with this serial number is in the list, if it still is.
    fn index_of(&self, serial: u64) -> Option<usize> {
        self.workers
            .iter()
            .position(|worker| worker.serial == serial)
    }

    /// Whether a worker has ended and waits for the manager thread to replace it.
    fn needs_renewal(&self) -> bool {
        self.workers.iter().any(|worker| worker.ended)
    }

    /// Takes every pending command; `Some(true)` when told to terminate.
    fn take_commands(&mut self) -> Option<bool> {
        loop {
            match self.inbox.try_recv() {
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
            self.bury(&self.workers[index]);
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

    fn retire_all(&mut self) {
        for worker in &mut self.workers {
            let _ = worker.conn.send_bytes(&[EXIT]);
        }
        for worker in std::mem::take(&mut self.workers) {
            self.bury(&worker);
        }
    }

    fn terminate(&mut self) {
        self.stop_all(&Error::PoolTerminated);
    }

    /// Ends every worker now and fails all work, running or queued, with `error`.
    fn stop_all(&mut self, error: &Error) {
        for worker in &self.workers {
            let _ = worker.process.terminate();
        }
        for worker in std::mem::take(&mut self.workers) {
            self.bury(&worker);
            for sent in worker.jobs {
                sent.job.fail(error);
            }
        }
        for job in self.queue.drain(..) {
            job.fail(error);
        }
    }
}
