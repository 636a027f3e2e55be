//! What callers do themselves: hand a job to an idle worker, and read the reply to the job
//! they wait for from its worker's socket; and how they wake the manager thread.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use nix::sys::epoll::Epoll;

use super::Manager;
use crate::completion::Drive;
use crate::error::{Error, Result};
use crate::pool::job::{Job, JobKey};
use crate::readable::wait_readable;
use crate::sync::lock;

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
    pub(super) manager: Mutex<Manager>,
    pub(super) epoll: Arc<Epoll>,
    /// Wakes the manager thread from its sleep; never blocks.
    pub(in crate::pool) wake: Arc<Waker>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Manager> {
        lock(&self.manager)
    }

    /// Queues `job`, and sends it to an idle worker at once if one is free.
    ///
    /// # Errors
    ///
    /// The error that broke the pool, or [`Error::PoolClosed`] once the manager has ended.
    pub(in crate::pool) fn submit(&self, job: Job) -> Result<()> {
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
    /// thread alone. It sleeps on the worker's duplicate of the socket, which it holds a share
    /// of, so that it stays open whatever the manager does meanwhile: stop the worker for a
    /// time limit, or terminate the pool.
    pub(super) fn drive(&self, key: JobKey, deadline: Option<Instant>) -> bool {
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
            let socket = manager.workers[index].watch.clone();
            manager.workers[index].lent = true;
            manager.arm(index);
            (manager.workers[index].serial, socket)
        };
        let waited = wait_readable(socket.as_fd(), deadline, "cannot wait for a pool worker");
        let ready = matches!(waited, Ok(true));
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
        // A wait that failed leaves the reply to the manager thread, and the waiter to sleep
        // until it comes.
        waited.is_ok()
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
pub(in crate::pool) fn driver(shared: &Arc<Shared>, key: JobKey) -> Box<dyn Drive> {
    Box::new(JobDriver {
        shared: Arc::downgrade(shared),
        key,
    })
}

/// How callers wake the manager: a byte written to a socket it polls, but only when none is
/// waiting to be read already, so that a burst of commands costs one write, not one each.
pub(crate) struct Waker {
    pub(super) stream: UnixStream,
    /// Raised by the caller that writes the byte, lowered by the manager once it has read
    /// it.
    pub(super) woken: Arc<AtomicBool>,
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
