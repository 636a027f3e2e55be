//! The executors' `map`: results in input order, inputs taken lazily.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::window::Window;

/// The results of an executor's `map`, in input order: Python's `Executor.map`.
///
/// Nothing is scheduled until the first result is read; then inputs are taken a bounded
/// number of chunks ahead. Set [`timeout`](Map::timeout) (measured from the first read, as
/// Python measures it from the call) and [`chunksize`](Map::chunksize) before reading.
pub struct Map<'a, A, R, I> {
    window: Window<'a, A, R, I>,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    started: bool,
}

impl<'a, A, R, I: Iterator<Item = A>> Map<'a, A, R, I> {
    pub(super) fn new(window: Window<'a, A, R, I>) -> Self {
        Map {
            window,
            timeout: None,
            deadline: None,
            started: false,
        }
    }

    /// Fails with [`Error::Timeout`] for any result not ready within `timeout` of the first
    /// read, and ends there.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends inputs in chunks of `chunksize` (1 by default), which saves round trips for a
    /// process executor. A `chunksize` of 0 makes the first item
    /// [`Error::InvalidChunksize`], as Python raises `ValueError`.
    #[must_use]
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.window.chunksize = chunksize;
        self
    }
}

impl<A, R, I: Iterator<Item = A>> Iterator for Map<'_, A, R, I> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if !self.started {
            self.started = true;
            self.deadline = self.timeout.and_then(crate::sync::deadline_after);
        }
        let next = self
            .window
            .next_until(self.deadline, self.timeout.unwrap_or_default());
        if let Some(Err(Error::Timeout { .. })) = next {
            self.window.fail();
        }
        next
    }
}
