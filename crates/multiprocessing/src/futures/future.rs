//! [`Future`]: the eventual result of a call, and the executors' record of the futures they
//! may have to cancel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::completion::{Completion, Phase};
use crate::error::{Error, Result};
use crate::pool::{ChunkResult, Waker};
use crate::sync::lock;

/// What a finished call leaves: its value, as a thread returned it, or as a worker process
/// encoded it, with the function that decodes it.
pub(super) enum Payload<R> {
    Value(R),
    Encoded(Vec<u8>, fn(ChunkResult) -> Result<R>),
}

struct FutureInner<R> {
    completion: Completion<Payload<R>>,
    /// The outcome, decoded on first read by whichever thread reads it first; never by an
    /// executor's own thread.
    outcome: OnceLock<Result<R>>,
    /// For a call run by a worker process: what wakes the pool's manager to stop it.
    stopper: Option<Arc<Waker>>,
}

/// The eventual result of a call submitted to an executor: Python's `Future`.
///
/// A cheap handle; clones refer to the same future.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::futures::ProcessPoolExecutor;
///
/// fn fib(n: u64) -> u64 {
///     if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ProcessPoolExecutor::new(1)?;
/// let future = executor.submit(fib, 30)?;
/// assert_eq!(*future.result()?, 832_040);
/// assert!(future.done());
/// # Ok(())
/// # }
/// ```
pub struct Future<R> {
    inner: Arc<FutureInner<R>>,
}

impl<R> Clone for Future<R> {
    fn clone(&self) -> Self {
        Future {
            inner: self.inner.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Future<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Future")
            .field("state", &self.inner.completion.phase())
            .finish()
    }
}

impl<R> Future<R> {
    pub(super) fn new(completion: Completion<Payload<R>>) -> Future<R> {
        Future::with_stopper(completion, None)
    }

    /// A future whose running call can be stopped by waking the pool manager `stopper`.
    pub(super) fn with_stopper(
        completion: Completion<Payload<R>>,
        stopper: Option<Arc<Waker>>,
    ) -> Future<R> {
        Future {
            inner: Arc::new(FutureInner {
                completion,
                outcome: OnceLock::new(),
                stopper,
            }),
        }
    }

    fn phase(&self) -> Phase {
        self.inner.completion.phase()
    }

    /// Whether a worker is running the call now.
    pub fn running(&self) -> bool {
        self.phase() == Phase::Running
    }

    /// Whether the call has finished or was cancelled.
    pub fn done(&self) -> bool {
        self.phase().is_done()
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.phase() == Phase::Cancelled
    }

    /// Cancels the call if it has not started; returns whether the future is now cancelled
    /// (false when it is running or done): Python's `cancel()`. A call waiting in a process
    /// executor's queue is never sent ahead to a busy worker, so it stays cancellable until
    /// a worker starts it.
    pub fn cancel(&self) -> bool {
        self.inner.completion.cancel()
    }

    /// Cancels the call even if it is running; returns whether it is cancelled, or being
    /// stopped, now (false once it is done). Python has no counterpart: its `cancel()`
    /// refuses a running call, and nothing stops one.
    ///
    /// A call that has not started is cancelled as by [`cancel`](Future::cancel). A running
    /// call of a [`ProcessPoolExecutor`](super::ProcessPoolExecutor) has its worker stopped
    /// (`SIGTERM`, then `SIGKILL` a second later) and replaced, and the future ends
    /// cancelled ([`Error::Cancelled`]), unless the call finished first; the executor does
    /// not break, and every other call goes on. A thread cannot be stopped from outside, so
    /// for a [`ThreadPoolExecutor`](super::ThreadPoolExecutor)'s running call this returns
    /// false and changes nothing.
    pub fn terminate(&self) -> bool {
        match &self.inner.stopper {
            None => self.cancel(),
            Some(manager) => {
                let stopping = self.inner.completion.stop();
                if stopping {
                    manager.wake();
                }
                stopping
            }
        }
    }

    /// Waits for the call and returns its result: Python's `result()`.
    ///
    /// # Errors
    ///
    /// The call's error ([`Error::TaskPanicked`], [`Error::BrokenProcessPool`], ...),
    /// [`Error::Cancelled`], or [`Error::Decode`] when the result cannot be decoded (its
    /// `Deserialize` failed or panicked).
    pub fn result(&self) -> Result<&R> {
        self.inner.completion.wait(None);
        self.outcome()
    }

    /// Waits at most `timeout` for the result: Python's `result(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not done in time, and as [`result`](Future::result).
    pub fn result_timeout(&self, timeout: Duration) -> Result<&R> {
        if !self.wait(Some(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        self.outcome()
    }

    /// Waits for the call and returns its error, or `None` when it succeeded: Python's
    /// `exception()`. A cancelled future gives [`Error::Cancelled`].
    pub fn exception(&self) -> Option<Error> {
        self.inner.completion.wait(None);
        self.outcome().err()
    }

    /// Waits at most `timeout` for the call and returns its error, or `None` when it
    /// succeeded: Python's `exception(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not done in time.
    pub fn exception_timeout(&self, timeout: Duration) -> Result<Option<Error>> {
        if !self.wait(Some(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        Ok(self.outcome().err())
    }

    /// Waits at most `timeout` (`None`: as long as it takes); returns whether it is done.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.inner
            .completion
            .wait(timeout.and_then(crate::sync::deadline_after))
    }

    /// Calls `callback` with this future once it is done: Python's `add_done_callback`.
    ///
    /// A future that is done already calls it at once, on this thread. Otherwise a process
    /// executor's future calls it on the executor's callback thread, after the callbacks of
    /// futures done before, and a thread executor's on the worker thread that ran the call.
    /// A callback that panics is logged at error level and costs nothing else; one that
    /// blocks delays only the callbacks behind it, never a result.
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<R>) + Send + 'static)
    where
        R: Send + Sync + 'static,
    {
        let future = self.clone();
        self.inner.completion.on_done(move || callback(&future));
    }

    /// Calls `notify` once the future is done, on the thread that completes it: for the
    /// runtime's own bookkeeping, which must never wait behind a user's callback.
    pub(super) fn on_done_inline(&self, notify: impl FnOnce() + Send + 'static)
    where
        R: Send + Sync + 'static,
    {
        self.inner.completion.on_done_inline(notify);
    }

    /// What tells this future apart from every other: clones share it.
    pub(super) fn identity(&self) -> *const () {
        Arc::as_ptr(&self.inner).cast()
    }

    fn outcome(&self) -> Result<&R> {
        let outcome = self
            .inner
            .outcome
            .get_or_init(|| match self.inner.completion.take() {
                Some(Ok(Payload::Value(value))) => Ok(value),
                Some(Ok(Payload::Encoded(bytes, decode))) => decode(Ok(bytes)),
                Some(Err(error)) => Err(error),
                None => Err(Error::ResultLost),
            });
        outcome.as_ref().map_err(Error::clone)
    }
}

/// What the executor keeps of a future it may have to cancel at shutdown.
trait Cancel: Send + Sync {
    fn cancel(&self) -> bool;
    fn done(&self) -> bool;
}

impl<R: Send + Sync + 'static> Cancel for Future<R> {
    fn cancel(&self) -> bool {
        Future::cancel(self)
    }

    fn done(&self) -> bool {
        Future::done(self)
    }
}

/// The futures an executor has handed out and not seen done, for `shutdown(cancel_futures)`.
#[derive(Default)]
pub(super) struct Outstanding {
    futures: Mutex<Tracked>,
    shut_down: AtomicBool,
}

#[derive(Default)]
struct Tracked {
    futures: Vec<Box<dyn Cancel>>,
    /// The length at which the done ones are next dropped: twice what was left last time,
    /// so that a burst of submissions costs constant time each, not a scan of all.
    prune_at: usize,
}

impl Outstanding {
    pub(super) fn track<R: Send + Sync + 'static>(&self, future: &Future<R>) -> Result<()> {
        self.check_open()?;
        self.keep(future);
        Ok(())
    }

    /// Keeps `future` to cancel later, open or not.
    pub(super) fn keep<R: Send + Sync + 'static>(&self, future: &Future<R>) {
        let mut tracked = lock(&self.futures);
        if tracked.futures.len() >= tracked.prune_at {
            tracked.futures.retain(|future| !future.done());
            tracked.prune_at = (2 * tracked.futures.len()).max(64);
        }
        tracked.futures.push(Box::new(future.clone()));
    }

    pub(super) fn check_open(&self) -> Result<()> {
        if self.shut_down.load(Ordering::SeqCst) {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    /// Refuses new work from now on; with `cancel`, cancels what has not started.
    pub(super) fn shut_down(&self, cancel: bool) {
        self.shut_down.store(true, Ordering::SeqCst);
        if cancel {
            self.cancel_pending();
        }
    }

    /// Cancels every future kept that has not started, and forgets them all.
    pub(super) fn cancel_pending(&self) {
        for future in lock(&self.futures).futures.drain(..) {
            future.cancel();
        }
    }
}
