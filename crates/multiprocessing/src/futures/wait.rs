//! Waiting for many futures: Python's `concurrent.futures.wait` and `as_completed`.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::future::Future;
use crate::error::{Error, Result};

/// When [`wait`] returns: Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done.
    FirstCompleted,
    /// As soon as any future fails (or all are done).
    FirstException,
    /// When all are done.
    AllCompleted,
}

/// Futures split by [`wait`]: those done, and those not.
#[derive(Debug)]
pub struct Waited<'a, R> {
    /// The futures that are done.
    pub done: Vec<&'a Future<R>>,
    /// The others.
    pub not_done: Vec<&'a Future<R>>,
}

/// Waits for `futures` until `return_when` holds or `timeout` passes: Python's
/// `concurrent.futures.wait`.
///
/// # Example
///
/// ```
/// use multiprocessing::futures::{ReturnWhen, ThreadPoolExecutor, wait};
///
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ThreadPoolExecutor::new(2)?;
/// let futures = vec![executor.submit(square, 2)?, executor.submit(square, 3)?];
/// let waited = wait(&futures, ReturnWhen::AllCompleted, None);
/// assert_eq!(waited.done.len(), 2);
/// # Ok(())
/// # }
/// ```
pub fn wait<R: Send + Sync + 'static>(
    futures: &[Future<R>],
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> Waited<'_, R> {
    let futures = distinct(futures);
    let deadline = timeout.and_then(crate::sync::deadline_after);
    let completions = notify_on_completion(&futures);
    loop {
        let done = futures.iter().filter(|future| future.done()).count();
        // A cancelled future is done, but raised nothing: Python does not count it.
        let failed = futures
            .iter()
            .any(|future| future.done() && !future.cancelled() && future.exception().is_some());
        let satisfied = match return_when {
            ReturnWhen::FirstCompleted => done > 0,
            ReturnWhen::FirstException => failed || done == futures.len(),
            ReturnWhen::AllCompleted => done == futures.len(),
        };
        if satisfied || !receive_until(&completions, deadline) {
            break;
        }
    }
    let (done, not_done) = futures.into_iter().partition(|future| future.done());
    Waited { done, not_done }
}

/// Each future once, in the order of first appearance: Python's functions take a set.
fn distinct<R>(futures: &[Future<R>]) -> Vec<&Future<R>> {
    let mut seen: Vec<&Future<R>> = Vec::with_capacity(futures.len());
    let mut addresses = std::collections::HashSet::with_capacity(futures.len());
    for future in futures {
        if addresses.insert(future.identity()) {
            seen.push(future);
        }
    }
    seen
}

/// Yields `futures` as they complete, then stops: Python's `as_completed`. Once `timeout`
/// has passed, yields one [`Error::Timeout`] and stops.
pub fn as_completed<R: Send + Sync + 'static>(
    futures: &[Future<R>],
    timeout: Option<Duration>,
) -> AsCompleted<'_, R> {
    let futures = distinct(futures);
    AsCompleted {
        completions: notify_on_completion(&futures),
        left: futures.len(),
        futures,
        deadline: timeout.and_then(crate::sync::deadline_after),
        timeout,
    }
}

/// The iterator [`as_completed`] returns.
pub struct AsCompleted<'a, R> {
    /// Each future once.
    futures: Vec<&'a Future<R>>,
    completions: mpsc::Receiver<usize>,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    left: usize,
}

impl<'a, R> Iterator for AsCompleted<'a, R> {
    type Item = Result<&'a Future<R>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let received = match self.deadline {
            None => self.completions.recv().ok(),
            Some(deadline) => deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| self.completions.recv_timeout(left).ok()),
        };
        match received {
            Some(index) => {
                self.left -= 1;
                Some(Ok(self.futures[index]))
            }
            None => {
                self.left = 0;
                Some(Err(Error::Timeout {
                    after: self.timeout.unwrap_or_default(),
                }))
            }
        }
    }
}

/// A channel that receives each future's index once it is done.
fn notify_on_completion<R: Send + Sync + 'static>(futures: &[&Future<R>]) -> mpsc::Receiver<usize> {
    let (sender, receiver) = mpsc::channel();
    for (index, future) in futures.iter().enumerate() {
        let sender = sender.clone();
        future.on_done_inline(move || {
            let _ = sender.send(index);
        });
    }
    receiver
}

/// Waits for one completion until `deadline`; false when time ran out.
fn receive_until(completions: &mpsc::Receiver<usize>, deadline: Option<Instant>) -> bool {
    match deadline {
        None => completions.recv().is_ok(),
        Some(deadline) => deadline
            .checked_duration_since(Instant::now())
            .is_some_and(|left| completions.recv_timeout(left).is_ok()),
    }
}
