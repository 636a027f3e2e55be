//! A worker as the manager sees it, and how one is started, watched and ended.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::{Manager, START_TRIES, TERMINATE_GRACE};
use crate::diagnosis::Diagnosis;
use crate::error::{Error, Result};
use crate::pipe::{Connection, pipe};
use crate::pool::ahead::Ahead;
use crate::pool::job::Sent;
use crate::pool::stats::Timeline;
use crate::pool::worker::worker_main;
use crate::process::{Builder as ProcessBuilder, ExitStatus, Process, oom};
use crate::start::StartMethod;

/// A worker as the manager sees it.
pub(super) struct Worker {
    pub(super) process: Process,
    /// Names it among the pool's workers, in the epoll set and across a borrow of its
    /// socket (its place in the list may change meanwhile).
    pub(super) serial: u64,
    /// Borrowed by a thread that waits for the job it runs (see [`Shared::drive`](super::Shared::drive)): only
    /// that thread reads its socket, and the manager leaves it be.
    pub(super) lent: bool,
    /// What the epoll set watches its socket for.
    pub(super) armed: EpollFlags,
    /// The out-of-memory killer's count in this program's cgroup when it started, if the
    /// system keeps one.
    pub(super) oom_kills: Option<u64>,
    /// Its place in the pool's [`Timelines`](crate::pool::stats::Timelines).
    pub(super) timeline: usize,
    pub(super) conn: Connection,
    /// A duplicate of its socket, made once, for a waiter to sleep on while it borrows the
    /// socket (see [`Shared::drive`](super::Shared::drive)): shared, so that it stays open as long as
    /// the waiter sleeps, even if the worker is gone by then.
    pub(super) watch: Arc<OwnedFd>,
    /// The jobs sent to it, oldest (the one it runs) first; it answers them in order.
    pub(super) jobs: VecDeque<Sent>,
    /// How many inputs those hold, and how many it may hold.
    pub(super) ahead: Ahead,
    /// Frames not yet taken by its socket. The manager never waits to write, since the
    /// worker may be waiting for the manager to read.
    pub(super) outbox: Vec<u8>,
    /// How many jobs it has been sent, and has finished.
    pub(super) sent: usize,
    pub(super) finished: usize,
    /// When the job it runs now started, as far as the manager can tell: when it was sent
    /// to an idle worker, or when the job before it was answered.
    pub(super) started: Instant,
    /// Set once it holds more memory than the pool allows: it takes no more work, and is
    /// told to exit once it has answered what it holds.
    pub(super) retiring: bool,
    /// Set once it has died, or has done its share and was told to exit: it takes no more
    /// work and is replaced at the top of the manager's next round.
    pub(super) ended: bool,
}

impl Worker {
    /// The moment its current job passes its time limit, if it runs one that has a limit.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let front = self.jobs.front().filter(|_| !self.ended)?;
        Some(self.started + front.job.limit?)
    }

    /// Why it ended `status` at `now`: its current job and how long that had run, the most
    /// memory it held, and whether the kernel's out-of-memory killer most likely ended it.
    pub(super) fn diagnose(&self, status: ExitStatus, now: Instant) -> Diagnosis {
        let mut diagnosis = Diagnosis::new(self.process.name(), status);
        diagnosis.pid = self.process.pid();
        if let Some(front) = self.jobs.front() {
            diagnosis.task = Some(front.job.place);
            diagnosis.ran_for = Some(now.saturating_duration_since(self.started));
        }
        let usage = self.process.usage();
        diagnosis.peak_memory = usage.map(|usage| usage.peak_rss);
        diagnosis.likely_oom = oom::likely_oom(status, usage, self.oom_kills, None);
        diagnosis
    }
}

impl Manager {
    /// Starts a worker at the end of the list, watched by the epoll set.
    pub(super) fn add_worker(&mut self) -> Result<()> {
        let worker = self.spawn_worker()?;
        self.workers.push(worker);
        Ok(())
    }

    /// Waits for a worker leaving the pool to end (killing it after [`TERMINATE_GRACE`]),
    /// notes when, and takes it out of the epoll set before its socket closes.
    pub(super) fn bury(&self, worker: &Worker) {
        end(&worker.process, TERMINATE_GRACE);
        self.timelines
            .update(worker.timeline, |t| t.end(Instant::now()));
        let _ = self.epoll.delete(worker.conn.as_fd());
    }

    /// Starts a worker, trying again when that fails, up to [`START_TRIES`] times.
    pub(super) fn start_worker(&mut self) -> Result<Worker> {
        let mut tries = 1;
        loop {
            match self.spawn_worker() {
                Ok(worker) => return Ok(worker),
                Err(error) if tries == START_TRIES => return Err(error),
                Err(_) => tries += 1,
            }
        }
    }

    /// Forks a worker, daemonic and named `ForkPoolWorker-N` or `ForkProcess-N`, as Python's
    /// are.
    pub(super) fn spawn_worker(&mut self) -> Result<Worker> {
        let (conn, worker_end) = pipe(true)?;
        // What the worker must close: the other workers' sockets (and their duplicates), the
        // wake-up pair and the epoll set, so that each socket's only holders are the pool and
        // its own worker.
        let mut inherited: Vec<RawFd> = self
            .workers
            .iter()
            .flat_map(|worker| [worker.conn.as_fd().as_raw_fd(), worker.watch.as_raw_fd()])
            .collect();
        inherited.push(self.wake.as_raw_fd());
        inherited.push(self.wake_writer_fd);
        inherited.push(self.epoll.0.as_raw_fd());
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
        let serial = self.next_serial;
        // The rest of its set-up; a worker it fails for is ended here, not left running.
        let watch = self.watch(&process, &conn, serial).inspect_err(|_| {
            let _ = process.kill();
            end(&process, TERMINATE_GRACE);
        })?;
        self.next_serial += 1;
        let timeline =
            self.timelines
                .add(Timeline::new(process.name(), process.pid(), born, ready));
        Ok(Worker {
            process,
            serial,
            watch,
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

    /// Caps a new worker's memory if the pool has a ceiling, and has the epoll set watch its
    /// socket under `serial`; returns the duplicate of the socket a waiter sleeps on.
    fn watch(&self, process: &Process, conn: &Connection, serial: u64) -> Result<Arc<OwnedFd>> {
        if let Some(limit) = self.options.memory_limit {
            limit_memory(process, limit)?;
        }
        let watch = conn
            .as_fd()
            .try_clone_to_owned()
            .map_err(Error::io("cannot watch a pool worker"))?;
        self.epoll
            .add(conn.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, serial))
            .map_err(Error::os("cannot watch a pool worker"))?;
        Ok(Arc::new(watch))
    }
}

/// Waits up to `grace` for `process` to end, then kills it; returns how it ended.
pub(super) fn end(process: &Process, grace: Duration) -> ExitStatus {
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

/// How many bytes a live process holds resident now, from `/proc/PID/status`.
pub(super) fn resident(process: &Process) -> Option<u64> {
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
pub(super) fn limit_memory(process: &Process, limit: u64) -> Result<()> {
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
