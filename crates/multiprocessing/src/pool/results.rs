//! What a pool hands back: [`AsyncResult`] for `apply_async` and `map_async`, the iterators
//! of `imap` and `imap_unordered`, and the decoding of the results the workers encoded, which
//! happens here, on the reader's thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::codec;
use crate::completion::Completion;
use crate::error::{Error, Result};
use crate::process::catch_task;
use crate::sync::lock;
use crate::task::ChunkResults;
use crate::window::Window;

/// What came back for a chunk: its results as the worker encoded them (a
/// [`ChunkResults`]), or why the whole chunk has none (its worker
/// died, the pool was terminated, its arguments could not be decoded).
pub(crate) type ChunkResult = std::result::Result<Vec<u8>, Error>;

/// A chunk's results, decoded: each item's value, or why it has none. A result type whose
/// decoding panics fails its items with [`Error::Decode`]; the panic goes no further.
pub(crate) fn decode_results<R: DeserializeOwned>(
    chunk: &ChunkResult,
    count: usize,
) -> Vec<Result<R>> {
    let decoded = chunk.as_ref().map_err(Error::clone).and_then(|bytes| {
        catch_task(|| codec::decode::<ChunkResults<R>>(bytes)).unwrap_or_else(|panic| {
            Err(Error::Decode {
                message: format!("decoding a result panicked: {panic}"),
            })
        })
    });
    match decoded {
        Ok(items) => items
            .into_iter()
            .map(|item| item.map_err(|message| Error::TaskPanicked { message }))
            .collect(),
        Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
    }
}

/// One chunk of a submission: where its encoded results arrive, and how many they are.
#[derive(Clone)]
pub(super) struct Part {
    pub(super) completion: Completion<Vec<u8>>,
    pub(super) count: usize,
}

/// Every item's result, decoded, in order; the parts must all be in.
fn decode_parts<R: DeserializeOwned>(parts: &[Part]) -> Vec<Result<R>> {
    parts
        .iter()
        .flat_map(|part| {
            part.completion
                .read(|chunk| decode_results(chunk, part.count))
                .unwrap_or_else(|| (0..part.count).map(|_| Err(Error::ResultLost)).collect())
        })
        .collect()
}

pub(super) fn finish_one<R: DeserializeOwned>(parts: &[Part]) -> Result<R> {
    decode_parts(parts)
        .into_iter()
        .next()
        .unwrap_or(Err(Error::ResultLost))
}

pub(super) fn finish_all<R: DeserializeOwned>(parts: &[Part]) -> Result<Vec<R>> {
    decode_parts(parts).into_iter().collect()
}

/// The result of [`Pool::apply_async`](super::Pool::apply_async) or [`Pool::map_async`](super::Pool::map_async), once it is ready: Python's
/// `AsyncResult`.
pub struct AsyncResult<R> {
    pub(super) parts: Vec<Part>,
    pub(super) finish: fn(&[Part]) -> Result<R>,
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    /// Waits for the result: Python's `get()`. It can be asked for again.
    ///
    /// # Errors
    ///
    /// The first failed task's error: [`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// [`Error::PoolTerminated`], [`Error::Decode`].
    pub fn get(&self) -> Result<R> {
        self.wait_until(None);
        (self.finish)(&self.parts)
    }

    /// Waits at most `timeout` for the result: Python's `get(timeout)`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not ready in time (it may still come; ask again), and
    /// as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        if !self.wait_until(crate::sync::deadline_after(timeout)) {
            return Err(Error::Timeout { after: timeout });
        }
        (self.finish)(&self.parts)
    }

    /// Waits at most `timeout` (`None`: as long as it takes); returns whether it is ready.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.wait_until(timeout.and_then(crate::sync::deadline_after))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> bool {
        // The last part first: parts finish about in order, so the others are in by then,
        // and the wait is one wake-up, not one for each part that comes in after it began.
        self.parts
            .iter()
            .rev()
            .all(|part| part.completion.wait(deadline))
    }

    /// Whether the result is in: Python's `ready()`.
    pub fn ready(&self) -> bool {
        self.parts.iter().all(|part| part.completion.is_done())
    }

    /// Whether it is in and no task failed: Python's `successful()`.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] before it is in, as Python raises `ValueError`.
    pub fn successful(&self) -> Result<bool> {
        if !self.ready() {
            return Err(Error::NotReady);
        }
        Ok((self.finish)(&self.parts).is_ok())
    }
}

impl<R: 'static> AsyncResult<R> {
    /// Calls `callback` with the result once it is in, if every task succeeded: Python's
    /// `callback=` argument. It runs on the pool's callback thread, after the callbacks of
    /// results that came in before (at once, on this thread, if the result is in already).
    /// A callback that panics is logged and costs nothing else.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use multiprocessing::Pool;
    ///
    /// fn double(x: i32) -> i32 {
    ///     x * 2
    /// }
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let pool = Pool::new(2)?;
    /// pool.apply_async(double, 21)?
    ///     .callback(|value| println!("got {value}"))
    ///     .error_callback(|error| eprintln!("failed: {error}"));
    /// pool.close();
    /// pool.join()?; // every callback has run
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "the result still holds the outcome; drop it with `let _ =` if only the callback matters"]
    pub fn callback(self, callback: impl FnOnce(R) + Send + 'static) -> Self {
        self.when_ready(move |outcome| {
            if let Ok(value) = outcome {
                callback(value);
            }
        });
        self
    }

    /// Calls `callback` with the error once the result is in, if a task failed: Python's
    /// `error_callback=` argument. It runs as [`callback`](AsyncResult::callback) does.
    #[must_use = "the result still holds the outcome; drop it with `let _ =` if only the callback matters"]
    pub fn error_callback(self, callback: impl FnOnce(Error) + Send + 'static) -> Self {
        self.when_ready(move |outcome| {
            if let Err(error) = outcome {
                callback(error);
            }
        });
        self
    }

    /// Calls `then` with the outcome once every part is in.
    fn when_ready(&self, then: impl FnOnce(Result<R>) + Send + 'static) {
        let finish = self.finish;
        if self.parts.is_empty() {
            return then(finish(&self.parts));
        }
        let left = Arc::new(AtomicUsize::new(self.parts.len()));
        let then = Arc::new(Mutex::new(Some(then)));
        for part in &self.parts {
            let (left, then, parts) = (left.clone(), then.clone(), self.parts.clone());
            part.completion.on_done(move || {
                if left.fetch_sub(1, Ordering::AcqRel) == 1
                    && let Some(then) = lock(&then).take()
                {
                    then(finish(&parts));
                }
            });
        }
    }
}

/// The iterator [`Pool::imap`](super::Pool::imap) and [`Pool::imap_unordered`](super::Pool::imap_unordered) return: each item is an input's
/// result, in input order or in the order they come in.
pub struct Imap<'a, A, R, I> {
    pub(super) window: Window<'a, A, R, I>,
}

/// The iterator [`Pool::imap_unordered`](super::Pool::imap_unordered) returns: an [`Imap`] that yields results as they
/// come in.
pub type ImapUnordered<'a, A, R, I> = Imap<'a, A, R, I>;

impl<A, R, I: Iterator<Item = A>> Imap<'_, A, R, I> {
    /// The next result, waiting at most `timeout` for it: Python's `next(timeout)`.
    /// `Some(Err(Error::Timeout))` when it is not ready in time; it can be asked for again.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<R>> {
        self.window
            .next_until(crate::sync::deadline_after(timeout), timeout)
    }
}

impl<A, R, I: Iterator<Item = A>> Iterator for Imap<'_, A, R, I> {
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        self.window.next_until(None, Duration::ZERO)
    }
}
