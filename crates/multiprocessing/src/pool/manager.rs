//! The pool's workers and the one lock around them: the manager thread, which starts and
//! replaces workers, hands each idle one the next chunk of work and collects the results;
//! and the callers, who hand a job to an idle worker themselves and read its reply
//! themselves while they wait for it (see [`Shared`]).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

use super::OnWorkerDeath;
use super::ahead::Ahead;
use super::job::{Job, JobKey, Sent};
use super::stats::{Timeline, Timelines};
use super::worker::{EXIT, chunk_result, run_frame, worker_main};
use crate::completion::Drive;
use crate::diagnosis::Diagnosis;
use crate::error::{Error, Result};
use crate::pipe::{Connection, pipe};
use crate::process::{Builder as ProcessBuilder, ExitStatus, Process, oom};
use crate::readable::wait_readable;
use crate::start::StartMethod;
use crate::sync::lock;

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

/// What the pool, its manager thread and the threads that wait for results share: the
/// manager's state behind one lock, and the epoll set the manager thread sleeps on.
///
/// The manager thread holds the lock for a round of its loop and lets go of it while it
/// sleeps. A caller takes it to hand a job over: a job that finds an idle worker goes to it
/// at once, from the caller's thread, with no word to the manager thread. A caller that
/// waits for a job that an otherwise quiet worker runs borrows that worker's socket (see
/// [`Shared::drive`]): it takes the socket out of the epoll set, sleeps on it itself, and
/// reads the reply. A round trip then wakes two threads, the worker and the caller, where
/// going through the manager thread woke four.
pub(crate) struct Shared {
    manager: Mutex<Manager>,
    epoll: Arc<Epoll>,
    /// Wakes the manager thread from its sleep; never blocks.
    pub(super) wake: Arc<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Manager> {
        lock(&self.manager)
    }

    /// Queues `job`, and sends it to an idle worker at once if one is free.
    ///
    /// # Errors
    ///
    /// The error that broke the pool, or [`Error::PoolClosed`] once the manager has ended.
    pub(super) fn submit(&self, job: Job) -> Result<()> {
        let limited = job.limit.is_some();
        let mut manager = self.lock();
        if let Some(error) = manager.broken.get() {
            return Err(error.clone());
        }
        if manager.finished {
            return Err(Error::PoolClosed);
        }
        manager.queue.push_back(job);
        manager.dispatch();
        // The manager thread must learn of a new deadline, and replace a worker that was
        // found dead.
        let wake = limited || manager.needs_renewal();
        drop(manager);
        if wake {
            self.wake.wake();
        }
        Ok(())
    }

    /// Waits at most until `deadline` for the reply to job `key`, reading it from its
    /// worker's socket on this thread; false when that cannot be done now: the job is not
    /// the one its worker runs, or that worker has frames to take first, or another thread
    /// reads it already.
    ///
    /// While it waits the socket is out of the manager's epoll set, so the reply wakes this
    /// thread alone. It sleeps on a duplicate of the socket, which stays valid whatever the
    /// manager does meanwhile: stop the worker for a time limit, or terminate the pool.
    fn drive(&self, key: JobKey, deadline: Option<Instant>) -> bool {
        let (serial, socket) = {
            let mut manager = self.lock();
            let Some(index) = manager.workers.iter().position(|worker| {
                !worker.ended
                    && !worker.lent
                    && worker.outbox.is_empty()
                    && worker.jobs.front().is_some_and(|sent| sent.job.key == key)
            }) else {
                return false;
            };
            if manager.workers[index].conn.has_read_ahead() {
                manager.collect(index);
                manager.dispatch();
                return true;
            }
            let Ok(socket) = manager.workers[index].conn.as_fd().try_clone_to_owned() else {
                return false;
            };
            manager.workers[index].lent = true;
            manager.arm(index);
            (manager.workers[index].serial, socket)
        };
        let ready = wait_readable(socket.as_fd(), deadline, "cannot wait for a pool worker")
            .unwrap_or(false);
        drop(socket);
        let mut manager = self.lock();
        if let Some(index) = manager.index_of(serial) {
            manager.workers[index].lent = false;
            if ready {
                manager.collect(index);
                manager.dispatch();
            }
            if manager.index_of(serial) == Some(index) {
                manager.arm(index);
            }
        }
        let wake = manager.needs_renewal();
        drop(manager);
        if wake {
            self.wake.wake();
        }
        true
    }
}

/// Lets the waiters of one job read its reply themselves: a completion's [`Drive`].
struct JobDriver {
    shared: Weak<Shared>,
    key: JobKey,
}

impl Drive for JobDriver {
    fn drive(&self, deadline: Option<Instant>) -> bool {
        self.shared
            .upgrade()
            .is_some_and(|shared| shared.drive(self.key, deadline))
    }
}

/// What lets the waiters of job `key` of the pool `shared` read its reply themselves.
pub(super) fn driver(shared: &Arc<Shared>, key: JobKey) -> Box<dyn Drive> {
    Box::new(JobDriver {
        shared: Arc::downgrade(shared),
        key,
    })
}

/// How callers wake the manager: a byte written to a socket it polls, but only when none is
/// waiting to be read already, so that a burst of commands costs one write, not one each.
pub(crate) struct Waker {
    stream: UnixStream,
    /// Raised by the caller that writes the byte, lowered by the manager once it has read
    /// it.
    woken: Arc<AtomicBool>,
}

impl Waker {
    /// Wakes the manager, after a command sent; never waits, and takes no lock.
    pub(crate) fn wake(&self) {
        // The manager lowers the flag after reading the socket and before taking commands:
        // a caller who finds it up sent its command before then, and the manager takes it.
        if !self.woken.swap(true, Ordering::AcqRel) {
            let _ = (&self.stream).write(&[1]);
        }
    }
}

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

/// A worker as the manager sees it.
struct Worker {
    process: Process,
    /// Names it among the pool's workers, in the epoll set and across a borrow of its
    /// socket (its place in the list may change meanwhile).
    serial: u64,
    /// Borrowed by a thread that waits for the job it runs (see [`Shared::drive`]): only
    /// that thread reads its socket, and the manager leaves it be.
    lent: bool,
    /// What the epoll set watches its socket for.
    armed: EpollFlags,
    /// The out-of-memory killer's count in this program's cgroup when it started, if the
    /// system keeps one.
    oom_kills: Option<u64>,
    /// Its place in the pool's [`Timelines`].
    timeline: usize,
    conn: Connection,
    /// The jobs sent to it, oldest (the one it runs) first; it answers them in order.
    jobs: VecDeque<Sent>,
    /// How many inputs those hold, and how many it may hold.
    ahead: Ahead,
    /// Frames not yet taken by its socket. The manager never waits to write, since the
    /// worker may be waiting for the manager to read.
    outbox: Vec<u8>,
    /// How many jobs it has been sent, and has finished.
    sent: usize,
    finished: usize,
    /// When the job it runs now started, as far as the manager can tell: when it was sent
    /// to an idle worker, or when the job before it was answered.
    started: Instant,
    /// Set once it holds more memory than the pool allows: it takes no more work, and is
    /// told to exit once it has answered what it holds.
    retiring: bool,
    /// Set once it has died, or has done its share and was told to exit: it takes no more
    /// work and is replaced at the top of the manager's next round.
    ended: bool,
}

impl Worker {
    /// The moment its current job passes its time limit, if it runs one that has a limit.
    fn deadline(&self) -> Option<Instant> {
        let front = self.jobs.front().filter(|_| !self.ended)?;
        Some(self.started + front.job.limit?)
    }

    /// Its current job and what it ran, for a diagnosis.
    fn diagnose(&self, status: ExitStatus, now: Instant) -> Diagnosis {
        let mut diagnosis = Diagnosis::new(self.process.name(), status);
        diagnosis.pid = self.process.pid();
        if let Some(front) = self.jobs.front() {
            diagnosis.task = Some(front.job.place);
            diagnosis.ran_for = Some(now.saturating_duration_since(self.started));
        }
        diagnosis
    }
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
            if conn.has_read_ahead() || readable(conn) {
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

    /// Makes the epoll set watch worker `index`'s socket for what it needs now: nothing
    /// while it is lent, replies, and room to write while it has frames waiting.
    fn arm(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        let wanted = if worker.lent || worker.ended {
            EpollFlags::empty()
        } else if worker.outbox.is_empty() {
            EpollFlags::EPOLLIN
        } else {
            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
        };
        if wanted != worker.armed {
            let mut event = EpollEvent::new(wanted, worker.serial);
            if self.epoll.modify(worker.conn.as_fd(), &mut event).is_ok() {
                worker.armed = wanted;
            }
        }
    }

    /// Starts a worker at the end of the list, watched by the epoll set.
    fn add_worker(&mut self) -> Result<()> {
        let worker = self.spawn_worker()?;
        self.workers.push(worker);
        Ok(())
    }

    /// Takes a worker out of the epoll set, before its socket closes.
    fn forget(&self, worker: &Worker) {
        let _ = self.epoll.delete(worker.conn.as_fd());
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
            end(&self.workers[index].process, TERMINATE_GRACE);
            self.timelines
                .update(self.workers[index].timeline, |t| t.end(Instant::now()));
            self.forget(&self.workers[index]);
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
    /// never a job that could still be cancelled, and only as much as its pace allows (see
    /// [`Ahead`]).
    ///
    /// The frames of a round go to each worker's outbox and out in one write per worker.
    fn dispatch(&mut self) {
        while let Some(front) = self.queue.front() {
            let (next, cancellable) = (front.count, front.reply.cancellable());
            let Some(index) = self.least_busy_with_room(next, cancellable) else {
                break;
            };
            let job = self.queue.pop_front().expect("not empty");
            if !job.reply.start() {
                continue;
            }
            let worker = &mut self.workers[index];
            // A limited job is never held back behind another: its clock starts when the
            // one before it is answered.
            let more = job.call.is_some()
                && job.limit.is_none()
                && worker
                    .jobs
                    .back()
                    .is_some_and(|last| last.job.call == job.call);
            let frame = match worker
                .conn
                .frame(&run_frame(&job.task.to_bytes(), &job.args, more))
            {
                Ok(frame) => frame,
                Err(error) => {
                    job.fail(&error);
                    continue;
                }
            };
            if worker.outbox.is_empty() {
                worker.outbox = frame;
            } else {
                worker.outbox.extend_from_slice(&frame);
            }
            worker.ahead.sent(job.count, Instant::now);
            if worker.jobs.is_empty() {
                worker.started = Instant::now();
                self.timelines
                    .update(worker.timeline, |t| t.busy(worker.started));
            }
            worker.jobs.push_back(Sent { job, more });
            worker.sent += 1;
        }
        for index in 0..self.workers.len() {
            self.flush(index);
        }
    }

    /// Writes what the worker's socket takes of its outbox, and has the epoll set watch for
    /// room for the rest; notes it if the worker died.
    fn flush(&mut self, index: usize) {
        self.write_out(index);
        if !self.workers[index].ended {
            self.arm(index);
        }
    }

    /// The worker that holds the fewest inputs and may take `next` more, if any may; only
    /// an idle one for a job that is `cancellable`.
    fn least_busy_with_room(&self, next: usize, cancellable: bool) -> Option<usize> {
        let limit = self.options.maxtasksperchild.unwrap_or(usize::MAX);
        // A worker that may have to be replaced after any task is never sent work ahead.
        let plenty = self.queue.len() > self.workers.len()
            && !cancellable
            && self.options.max_memory_per_child.is_none();
        self.workers
            .iter()
            .enumerate()
            .filter(|(_, worker)| {
                !worker.ended && !worker.lent && !worker.retiring && worker.sent < limit
            })
            .filter(|(_, worker)| worker.jobs.is_empty() || (plenty && worker.ahead.has_room(next)))
            .min_by_key(|(_, worker)| worker.ahead.held())
            .map(|(index, _)| index)
    }

    /// Writes what the worker's socket takes of its outbox. A worker that can no longer be
    /// written to has died: the replies it sent before it did are read first, so that only
    /// the job it was running fails.
    fn write_out(&mut self, index: usize) {
        let worker = &mut self.workers[index];
        while !worker.ended && !worker.outbox.is_empty() {
            match worker.conn.send_some(&worker.outbox) {
                Ok(0) => return,
                Ok(written) => {
                    worker.outbox.drain(..written);
                }
                Err(_) => return self.collect(index),
            }
        }
    }

    /// Reads a worker's replies (all that have arrived), or learns that it died.
    fn collect(&mut self, index: usize) {
        let now = Instant::now();
        let mut answered = 0;
        loop {
            let worker = &mut self.workers[index];
            if worker.ended {
                return;
            }
            let Ok(reply) = worker.conn.recv_bytes() else {
                return self.lost(index);
            };
            worker.finished += 1;
            let sent = worker.jobs.pop_front();
            let count = sent.as_ref().map_or(0, |sent| sent.job.count);
            answered += count;
            worker.started = now;
            let idle = worker.jobs.is_empty();
            // Noted before the result goes out, so that whoever reads it sees it counted.
            self.timelines
                .update(worker.timeline, |t| t.answered(count, now, idle));
            if let Some(sent) = sent {
                sent.job.reply.send(chunk_result(reply));
            }
            if idle
                && let Some(most) = self.options.max_memory_per_child
                && resident(&worker.process).is_some_and(|held| held > most)
            {
                log::info!(
                    "pool worker {} holds more than {}: replacing it",
                    worker.process.name(),
                    crate::diagnosis::bytes(most)
                );
                worker.retiring = true;
            }
            if self.options.maxtasksperchild == Some(worker.finished) || (worker.retiring && idle) {
                let _ = worker.conn.send_bytes(&[EXIT]);
                worker.ended = true;
                return;
            }
            if !worker.conn.has_read_ahead() {
                worker.ahead.answered(answered, now);
                return;
            }
        }
    }

    /// A worker's socket broke: wait for it to end, fail the job it was running, and give
    /// the jobs it had not started to others; or, in a pool that breaks, break it. The
    /// worker is replaced at the top of the next round.
    ///
    /// A worker that ended on `SIGABRT` in a pool with a memory ceiling ran out of room
    /// under it (Rust aborts when an allocation fails): its task fails alone, and the pool
    /// goes on whatever kind it is.
    fn lost(&mut self, index: usize) {
        if self.workers[index].ended {
            return;
        }
        let now = Instant::now();
        let status = self.end_worker(index, now);
        let diagnosis = Box::new(self.diagnose(index, status, now));
        log::warn!("pool worker ended unexpectedly: {diagnosis}");
        let error = match self.options.memory_limit {
            Some(limit)
                if status == ExitStatus::Signaled(libc::SIGABRT)
                    && !self.workers[index].jobs.is_empty() =>
            {
                Error::MemoryLimitExceeded {
                    limit,
                    worker: diagnosis,
                }
            }
            _ if self.options.on_death == OnWorkerDeath::Break => {
                let _ = self.broken.set(Error::BrokenProcessPool(diagnosis));
                return;
            }
            _ => Error::WorkerDied(diagnosis),
        };
        self.fail_running(index, |job| job.fail(&error));
    }

    /// Stops the workers whose job has run past its time limit, or whose caller asked for it
    /// to stop; each such job fails alone, and the worker is replaced at the top of the next
    /// round.
    fn stop_overdue(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            let worker = &self.workers[index];
            let Some(front) = worker.jobs.front().filter(|_| !worker.ended) else {
                continue;
            };
            let overdue = worker.deadline().is_some_and(|deadline| deadline <= now);
            if !overdue && !front.job.reply.stop_requested() {
                continue;
            }
            // A reply that came in meanwhile wins: the job is done, not stopped. (The socket
            // of a lent worker is its borrower's to read.)
            let worker = &self.workers[index];
            if !worker.lent && (worker.conn.has_read_ahead() || readable(&worker.conn)) {
                self.collect(index);
                continue;
            }
            self.stop(index, now, overdue);
        }
    }

    /// Stops a worker in the middle of its job: `SIGTERM`, then `SIGKILL` after a grace
    /// period. The job fails with [`Error::TaskTimedOut`] when it was `overdue`, else as
    /// stopped at its caller's request.
    fn stop(&mut self, index: usize, now: Instant, overdue: bool) {
        let limit = self.workers[index]
            .jobs
            .front()
            .and_then(|sent| sent.job.limit);
        let _ = self.workers[index].process.terminate();
        let status = self.end_worker(index, now);
        let diagnosis = self.diagnose(index, status, now);
        match limit.filter(|_| overdue) {
            Some(limit) => {
                let error = Error::TaskTimedOut {
                    limit,
                    worker: Box::new(diagnosis),
                };
                log::warn!("{error}");
                self.fail_running(index, |job| job.fail(&error));
            }
            None => {
                log::info!("stopped at its caller's request: {diagnosis}");
                self.fail_running(index, |job| job.reply.stopped());
            }
        }
    }

    /// Marks a worker ended, waits for it to end, and notes when; returns how it ended.
    fn end_worker(&mut self, index: usize, now: Instant) -> ExitStatus {
        let worker = &mut self.workers[index];
        worker.ended = true;
        let status = end(&worker.process, TERMINATE_GRACE);
        self.timelines.update(worker.timeline, |t| t.end(now));
        status
    }

    /// What the worker at `index` was doing when it ended `status`, the most memory it
    /// held, and whether the kernel's out-of-memory killer most likely ended it.
    fn diagnose(&self, index: usize, status: ExitStatus, now: Instant) -> Diagnosis {
        let worker = &self.workers[index];
        let mut diagnosis = worker.diagnose(status, now);
        let usage = worker.process.usage();
        diagnosis.peak_memory = usage.map(|usage| usage.peak_rss);
        diagnosis.likely_oom = oom::likely_oom(status, usage, worker.oom_kills, None);
        diagnosis
    }

    /// Ends the jobs of a worker that is gone with `fail`: the job it was running, or a later
    /// one sent as more of that job's call, whose replies it may have held back (those fail
    /// together, which is one failure to the caller, who sees that call's results only all
    /// together). The jobs it had not started go back to the front of the queue.
    fn fail_running(&mut self, index: usize, fail: impl Fn(Job)) {
        let worker = &mut self.workers[index];
        let mut jobs = std::mem::take(&mut worker.jobs);
        let ran = 1 + jobs.iter().skip(1).take_while(|sent| sent.more).count();
        for sent in jobs.drain(..ran.min(jobs.len())) {
            fail(sent.job);
        }
        // A worker answers in order, and sends what it held before it starts a job of
        // another call, so the others were never started.
        for sent in jobs.into_iter().rev() {
            self.queue.push_front(sent.job);
        }
        worker.outbox.clear();
    }

    /// How long `poll` may sleep: until the nearest time limit of a running job, or for good.
    fn poll_timeout(&self) -> PollTimeout {
        let Some(next) = self.workers.iter().filter_map(Worker::deadline).min() else {
            return PollTimeout::NONE;
        };
        // Rounded up, so that the wait never ends just short of the deadline.
        let millis = next
            .saturating_duration_since(Instant::now())
            .as_nanos()
            .div_ceil(1_000_000);
        PollTimeout::try_from(i32::try_from(millis).unwrap_or(i32::MAX)).unwrap_or(PollTimeout::MAX)
    }

    /// Starts a worker, trying again when that fails, up to [`START_TRIES`] times.
    fn start_worker(&mut self) -> Result<Worker> {
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
        for worker in std::mem::take(&mut self.workers) {
            end(&worker.process, TERMINATE_GRACE);
            self.timelines
                .update(worker.timeline, |t| t.end(Instant::now()));
            self.forget(&worker);
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
            end(&worker.process, TERMINATE_GRACE);
            self.timelines
                .update(worker.timeline, |t| t.end(Instant::now()));
            self.forget(&worker);
            for sent in worker.jobs {
                sent.job.fail(error);
            }
        }
        for job in self.queue.drain(..) {
            job.fail(error);
        }
    }

    /// Forks a worker, daemonic and named `ForkPoolWorker-N` or `ForkProcess-N`, as Python's
    /// are.
    fn spawn_worker(&mut self) -> Result<Worker> {
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
        let method = self.options.method;
        let builder = ProcessBuilder::default().daemon(true).start_method(method);
        let name = self.options.on_death.worker_name(method);
        let process = if method == StartMethod::Fork {
            builder.make(name, move || {
                worker_main(worker_end, &inherited, initializer)
            })
        } else {
            // A worker started afresh inherits nothing but the socket it is given.
            builder.pool_worker(name, initializer, worker_end.into())
        };
        process.start()?;
        // Wait for the worker's first word: from then on it is running (its start-up log
        // record is written, its initializer has run), and a worker that cannot even start
        // (an initializer that panics) is reported here, not as a pool that replaces it
        // forever.
        let born = Instant::now();
        let mut conn = conn;
        if let Err(error) = conn.recv_bytes() {
            let status = end(&process, TERMINATE_GRACE);
            log::error!("pool worker {} did not start: {error}", process.name());
            return Err(Error::WorkerDidNotStart {
                worker: process.name(),
                status,
            });
        }
        let ready = Instant::now();
        if let Some(limit) = self.options.memory_limit {
            limit_memory(&process, limit)?;
        }
        let timeline =
            self.timelines
                .add(Timeline::new(process.name(), process.pid(), born, ready));
        let serial = self.next_serial;
        self.next_serial += 1;
        if let Err(errno) = self
            .epoll
            .add(conn.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, serial))
        {
            let _ = process.kill();
            end(&process, TERMINATE_GRACE);
            return Err(Error::os("cannot watch a pool worker")(errno));
        }
        Ok(Worker {
            process,
            serial,
            lent: false,
            armed: EpollFlags::EPOLLIN,
            oom_kills: oom::oom_kills(),
            timeline,
            conn,
            jobs: VecDeque::new(),
            ahead: Ahead::default(),
            outbox: Vec::new(),
            sent: 0,
            finished: 0,
            started: ready,
            retiring: false,
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

/// Whether a worker's reply is waiting to be read, without waiting for one.
fn readable(conn: &Connection) -> bool {
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// How many bytes a live process holds resident now, from `/proc/PID/status`.
fn resident(process: &Process) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.pid()?)).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Caps a worker's heap at `limit` bytes (`RLIMIT_DATA`, which counts the memory a process
/// writes: its heap and private mappings, what it inherited included, but not code, stacks
/// or address space only reserved): an allocation past it fails, which Rust turns into an
/// abort of that worker.
///
/// Set from the pool's side with `prlimit`, once the worker has started and before it runs a
/// task, so that every start method gets it the same way. libc: nix has no `prlimit`.
fn limit_memory(process: &Process, limit: u64) -> Result<()> {
    let Some(pid) = process.pid() else {
        return Ok(());
    };
    let ceiling = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit reads one rlimit through a valid pointer and writes nothing (the old
    // value's pointer is null).
    let result = unsafe {
        libc::prlimit(
            pid.cast_signed(),
            libc::RLIMIT_DATA,
            &ceiling,
            std::ptr::null_mut(),
        )
    };
    nix::errno::Errno::result(result)
        .map(drop)
        .map_err(Error::os("cannot set a pool worker's memory ceiling"))
}
