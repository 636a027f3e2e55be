//! How much work a worker is sent ahead of its results: enough that a worker running small
//! tasks need not sit idle while its results travel back and the next inputs travel out, and
//! little enough that inputs sent ahead do not wait long behind a busy worker while another
//! one could run them.

use std::time::{Duration, Instant};

/// The fewest inputs a worker may hold, the ones it runs included, whatever its pace. A
/// larger chunk still goes to a worker once it is idle: large chunks go one at a time, which
/// keeps the load balanced.
const LEAST: usize = 4;

/// How many inputs a worker may hold at most, however fast it runs them.
pub(crate) const MOST: usize = 64;

/// How much work, at the pace a worker has shown, it may hold: the longest an input sent
/// ahead should wait there.
const WORK: Duration = Duration::from_millis(1);

/// One worker's inputs in hand, and its pace.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// Inputs sent to it and not answered yet.
    held: usize,
    /// When it began on the oldest of them, as near as the manager can tell: when they were
    /// sent to it idle, or when the answers before them came in. `None` while it is idle.
    since: Option<Instant>,
    /// How long an input takes it lately, averaged; `None` until it has answered one.
    per_input: Option<Duration>,
}

impl Ahead {
    /// How many inputs it holds.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// Whether it may be sent `count` more inputs.
    pub(super) fn has_room(&self, count: usize) -> bool {
        self.held + count <= self.most()
    }

    /// How many inputs it may hold: as many as it runs in [`WORK`], within [`LEAST`] and
    /// [`MOST`].
    fn most(&self) -> usize {
        let Some(per_input) = self.per_input else {
            return LEAST;
        };
        let fit = WORK.as_nanos() / per_input.as_nanos().max(1);
        usize::try_from(fit).unwrap_or(MOST).clamp(LEAST, MOST)
    }

    /// `count` inputs were sent to it; `now` tells the time, asked only if it was idle.
    pub(super) fn sent(&mut self, count: usize, now: impl FnOnce() -> Instant) {
        if self.held == 0 {
            self.since = Some(now());
        }
        self.held += count;
    }

    /// Answers to `count` inputs came in at `now`.
    pub(super) fn answered(&mut self, count: usize, now: Instant) {
        if count == 0 {
            return;
        }
        if let Some(since) = self.since {
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            let per_input = now.saturating_duration_since(since) / count;
            // Each new measure counts for a quarter: one slow moment does not swing it.
            self.per_input = Some(match self.per_input {
                Some(before) => (before * 3 + per_input) / 4,
                None => per_input,
            });
        }
        self.held = self.held.saturating_sub(count);
        self.since = (self.held > 0).then_some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_worker_may_hold_the_most_and_a_slow_one_the_least() {
        let start = Instant::now();
        let mut fast = Ahead::default();
        assert!(
            fast.has_room(LEAST) && !fast.has_room(LEAST + 1),
            "before any answer"
        );
        fast.sent(4, || start);
        fast.answered(4, start + Duration::from_micros(8));
        assert!(fast.has_room(MOST) && !fast.has_room(MOST + 1));

        let mut slow = Ahead::default();
        slow.sent(2, || start);
        slow.answered(1, start + Duration::from_millis(50));
        assert!(slow.has_room(LEAST - 1), "one of the two is answered");
        assert!(!slow.has_room(LEAST));
    }
}
