//! What the manager does when a worker dies, or must be stopped: the diagnosis, the jobs
//! that fail, and the time limits it sleeps until.

use std::time::Instant;

use nix::poll::PollTimeout;

use super::{Manager, TERMINATE_GRACE, Worker, end, has_reply};
use crate::diagnosis::Diagnosis;
use crate::error::Error;
use crate::pool::OnWorkerDeath;
use crate::pool::job::Job;
use crate::process::ExitStatus;

impl Manager {
    /// A worker's socket broke: wait for it to end, fail the job it was running, and give
    /// the jobs it had not started to others; or, in a pool that breaks, break it. The
    /// worker is replaced at the top of the next round.
    ///
    /// A worker that ended on `SIGABRT` in a pool with a memory ceiling ran out of room
    /// under it (Rust aborts when an allocation fails): its task fails alone, and the pool
    /// goes on whatever kind it is.
    pub(super) fn lost(&mut self, index: usize) {
        if self.workers[index].ended {
            return;
        }
        let diagnosis = Box::new(self.end_worker(index, Instant::now()));
        let status = diagnosis.status;
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
    pub(super) fn stop_overdue(&mut self) {
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
            if !worker.lent && has_reply(&worker.conn) {
                self.collect(index);
                continue;
            }
            self.stop(index, now, overdue);
        }
    }

    /// Stops a worker in the middle of its job: `SIGTERM`, then `SIGKILL` after a grace
    /// period. The job fails with [`Error::TaskTimedOut`] when it was `overdue`, else as
    /// stopped at its caller's request.
    pub(super) fn stop(&mut self, index: usize, now: Instant, overdue: bool) {
        let limit = self.workers[index]
            .jobs
            .front()
            .and_then(|sent| sent.job.limit);
        let _ = self.workers[index].process.terminate();
        let diagnosis = self.end_worker(index, now);
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

    /// Marks a worker ended, waits for it to end, and notes when; returns its diagnosis.
    pub(super) fn end_worker(&mut self, index: usize, now: Instant) -> Diagnosis {
        let worker = &mut self.workers[index];
        worker.ended = true;
        let status = end(&worker.process, TERMINATE_GRACE);
        self.timelines.update(worker.timeline, |t| t.end(now));
        worker.diagnose(status, now)
    }

    /// Ends the jobs of a worker that is gone with `fail`: the job it was running, or a later
    /// one sent as more of that job's call, whose replies it may have held back (those fail
    /// together, which is one failure to the caller, who sees that call's results only all
    /// together). The jobs it had not started go back to the front of the queue.
    pub(super) fn fail_running(&mut self, index: usize, fail: impl Fn(Job)) {
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
    pub(super) fn poll_timeout(&self) -> PollTimeout {
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
}
