//! How jobs reach the workers and replies come back: dispatch, writes that never wait, reads
//! of every reply that has arrived, and what the epoll set watches each socket for.

use std::time::Instant;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::Manager;
use super::workers::resident;
use crate::pipe::Connection;
use crate::pool::job::Sent;
use crate::pool::worker::{EXIT, chunk_result, run_frame};

impl Manager {
    /// Makes the epoll set watch worker `index`'s socket for what it needs now: nothing
    /// while it is lent, replies, and room to write while it has frames waiting.
    pub(super) fn arm(&mut self, index: usize) {
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

    /// Gives queued jobs to workers with room for them, the least busy first. A busy worker
    /// is sent work ahead only while there is more queued than there are workers, so that
    /// a job never waits behind another on one worker while a second worker could be idle,
    /// never a job that could still be cancelled, and only as much as its pace allows (see
    /// [`Ahead`](crate::pool::ahead::Ahead)).
    ///
    /// The frames of a round go to each worker's outbox and out in one write per worker.
    pub(super) fn dispatch(&mut self) {
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
    pub(super) fn flush(&mut self, index: usize) {
        self.write_out(index);
        if !self.workers[index].ended {
            self.arm(index);
        }
    }

    /// The worker that holds the fewest inputs and may take `next` more, if any may, the one
    /// sent the fewest jobs among equals; only an idle one for a job that is `cancellable`.
    pub(super) fn least_busy_with_room(&self, next: usize, cancellable: bool) -> Option<usize> {
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
            // Among equals, the one sent the fewest jobs: a caller that hands jobs over one
            // at a time spreads them over the idle workers, not all to the first.
            .min_by_key(|(_, worker)| (worker.ahead.held(), worker.sent))
            .map(|(index, _)| index)
    }

    /// Writes what the worker's socket takes of its outbox. A worker that can no longer be
    /// written to has died: the replies it sent before it did are read first, so that only
    /// the job it was running fails.
    pub(super) fn write_out(&mut self, index: usize) {
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
    pub(super) fn collect(&mut self, index: usize) {
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
}

/// Whether a worker's reply (or the end of its socket) is waiting to be read, read ahead
/// already or in the socket, without waiting for one.
pub(super) fn has_reply(conn: &Connection) -> bool {
    if conn.has_read_ahead() {
        return true;
    }
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}
