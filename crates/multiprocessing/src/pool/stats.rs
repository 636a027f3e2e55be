//! Where each worker's time goes: starting, working, and waiting for work.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How one worker of a pool spent its life, up to now or to its end: mpire's "insights".
///
/// From [`Pool::worker_stats`](crate::Pool::worker_stats) and
/// [`ProcessPoolExecutor::worker_stats`](crate::futures::ProcessPoolExecutor::worker_stats),
/// one per worker the pool ever had, replaced ones included, in the order they started.
/// Times are as the pool's manager saw them: a worker is working from the moment it is sent
/// a task while idle until it has answered everything it was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's name.
    pub name: String,
    /// Its process id.
    pub pid: Option<u32>,
    /// From asking for it to its first word, its initializer included.
    pub startup: Duration,
    /// Time it held work.
    pub working: Duration,
    /// Time it was ready and held none.
    pub waiting: Duration,
    /// How many inputs it answered.
    pub tasks: usize,
    /// Whether it has ended (replaced, retired, or its pool closed).
    pub ended: bool,
}

impl WorkerStats {
    /// The sums over `workers`: how long they took to start, worked and waited between them,
    /// and how many inputs they answered; named `all`, with no pid, ended if all have.
    ///
    /// ```no_run
    /// # use multiprocessing::{Pool, WorkerStats};
    /// # fn main() -> multiprocessing::Result<()> {
    /// let pool = Pool::new(2)?;
    /// pool.map(|x: u64| x + 1, 0..100)?;
    /// let all = WorkerStats::total(&pool.worker_stats());
    /// println!("{:?} working, {:?} waiting", all.working, all.waiting);
    /// # Ok(())
    /// # }
    /// ```
    pub fn total(workers: &[WorkerStats]) -> WorkerStats {
        let sum = |part: fn(&WorkerStats) -> Duration| workers.iter().map(part).sum();
        WorkerStats {
            name: "all".to_owned(),
            pid: None,
            startup: sum(|w| w.startup),
            working: sum(|w| w.working),
            waiting: sum(|w| w.waiting),
            tasks: workers.iter().map(|w| w.tasks).sum(),
            ended: workers.iter().all(|w| w.ended),
        }
    }
}

/// One worker's record, as the manager keeps it.
#[derive(Clone, Debug)]
pub(super) struct Timeline {
    name: String,
    pid: Option<u32>,
    born: Instant,
    ready: Instant,
    ended: Option<Instant>,
    working: Duration,
    /// Since when it has held work, while it does.
    busy_since: Option<Instant>,
    tasks: usize,
}

impl Timeline {
    /// A worker asked for at `born` that reported ready at `ready`.
    pub(super) fn new(name: String, pid: Option<u32>, born: Instant, ready: Instant) -> Timeline {
        Timeline {
            name,
            pid,
            born,
            ready,
            ended: None,
            working: Duration::ZERO,
            busy_since: None,
            tasks: 0,
        }
    }

    /// It was sent work while it held none.
    pub(super) fn busy(&mut self, now: Instant) {
        self.busy_since.get_or_insert(now);
    }

    /// It answered a chunk of `count` inputs; `idle` if it holds no more work.
    pub(super) fn answered(&mut self, count: usize, now: Instant, idle: bool) {
        self.tasks += count;
        if idle {
            self.rest(now);
        }
    }

    /// It ended.
    pub(super) fn end(&mut self, now: Instant) {
        if self.ended.is_none() {
            self.rest(now);
            self.ended = Some(now);
        }
    }

    fn rest(&mut self, now: Instant) {
        if let Some(since) = self.busy_since.take() {
            self.working += now.saturating_duration_since(since);
        }
    }

    /// The record as of `now`.
    fn stats(&self, now: Instant) -> WorkerStats {
        let until = self.ended.unwrap_or(now);
        let working = self.working
            + self.busy_since.map_or(Duration::ZERO, |since| {
                until.saturating_duration_since(since)
            });
        let alive = until.saturating_duration_since(self.ready);
        WorkerStats {
            name: self.name.clone(),
            pid: self.pid,
            startup: self.ready.saturating_duration_since(self.born),
            working,
            waiting: alive.saturating_sub(working),
            tasks: self.tasks,
            ended: self.ended.is_some(),
        }
    }
}

/// Every worker's record, shared by the manager, which writes them, and the pool, which
/// reads them.
#[derive(Clone, Default)]
pub(super) struct Timelines(Arc<Mutex<Vec<Timeline>>>);

impl Timelines {
    /// Adds a worker's record; its place, for [`update`](Timelines::update).
    pub(super) fn add(&self, timeline: Timeline) -> usize {
        let mut all = lock(&self.0);
        all.push(timeline);
        all.len() - 1
    }

    /// Changes the record at `index`.
    pub(super) fn update(&self, index: usize, change: impl FnOnce(&mut Timeline)) {
        if let Some(timeline) = lock(&self.0).get_mut(index) {
            change(timeline);
        }
    }

    /// Every record as of now.
    pub(super) fn stats(&self) -> Vec<WorkerStats> {
        let now = Instant::now();
        lock(&self.0).iter().map(|t| t.stats(now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_and_waiting_split_a_workers_life() {
        let born = Instant::now();
        let ready = born + Duration::from_millis(30);
        let mut timeline = Timeline::new("ForkPoolWorker-1".into(), Some(7), born, ready);
        let at = |ms| ready + Duration::from_millis(ms);
        timeline.busy(at(10));
        timeline.answered(4, at(40), false);
        timeline.answered(4, at(70), true);
        timeline.busy(at(100));
        timeline.end(at(120));
        let stats = timeline.stats(at(500));
        assert_eq!(stats.startup, Duration::from_millis(30));
        assert_eq!(stats.working, Duration::from_millis(80));
        assert_eq!(stats.waiting, Duration::from_millis(40));
        assert_eq!(stats.tasks, 8);
        assert!(stats.ended);
        let all = WorkerStats::total(&[stats.clone(), stats]);
        assert_eq!(all.working, Duration::from_millis(160));
        assert_eq!(all.tasks, 16);
    }
}
