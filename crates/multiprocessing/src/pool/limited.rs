//! A pool seen through a time limit of its own: [`Pool::with_task_timeout`].

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{AsyncResult, Imap, Pool};
use crate::error::Result;

/// A pool whose calls give each task a time limit of their own: from
/// [`Pool::with_task_timeout`].
#[derive(Clone, Copy, Debug)]
pub struct TimeLimited<'p> {
    pub(super) pool: &'p Pool,
    pub(super) limit: Duration,
}

impl<'p> TimeLimited<'p> {
    /// [`Pool::apply`], with this limit.
    ///
    /// # Errors
    ///
    /// [`Error::TaskTimedOut`](crate::Error::TaskTimedOut), and as [`Pool::apply`].
    pub fn apply<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<R>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, arg)?.get()
    }

    /// [`Pool::apply_async`], with this limit.
    ///
    /// # Errors
    ///
    /// As [`Pool::apply_async`].
    pub fn apply_async<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<AsyncResult<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.pool.apply_limited(f, arg, Some(self.limit))
    }

    /// [`Pool::map`], with this limit for each chunk.
    ///
    /// # Errors
    ///
    /// The first failed chunk's error, [`Error::TaskTimedOut`](crate::Error::TaskTimedOut) among them; read the results
    /// with [`imap`](TimeLimited::imap) to have every other result too.
    pub fn map<A, R>(&self, f: fn(A) -> R, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.pool.map_limited(f, inputs, Some(self.limit))?.get()
    }

    /// [`Pool::imap`], with this limit for each input: an input that runs past it yields
    /// [`Error::TaskTimedOut`](crate::Error::TaskTimedOut), and every other input its result.
    pub fn imap<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Imap<'p, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'p,
        I: IntoIterator<Item = A>,
    {
        self.pool
            .imap_window(true, f, inputs.into_iter(), 1, Some(self.limit))
    }

    /// [`Pool::imap_unordered`], with this limit for each input.
    pub fn imap_unordered<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Imap<'p, A, R, I::IntoIter>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + 'p,
        I: IntoIterator<Item = A>,
    {
        self.pool
            .imap_window(false, f, inputs.into_iter(), 1, Some(self.limit))
    }
}
