//! The ordered window behind [`Pool::imap`](crate::Pool::imap) and the executors' `map`:
//! inputs taken lazily, a chunk at a time, a bounded number of chunks in flight, and the
//! results handed out in input order.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::completion::Completion;
use crate::error::{Error, Result};
use crate::pool::decode_results;

/// A chunk sent off, whose results come in together.
pub(crate) trait Pending<R> {
    /// Waits until the results are in or `deadline` passes; whether they are in.
    fn wait(&self, deadline: Option<Instant>) -> bool;
    /// The results, one per input, once they are in.
    fn results(self: Box<Self>) -> Vec<Result<R>>;
}

/// A chunk run by worker processes: its results arrive encoded, and are decoded here, on the
/// reader's thread.
pub(crate) struct EncodedChunk<R> {
    pub(crate) completion: Completion<Vec<u8>>,
    pub(crate) count: usize,
    pub(crate) _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned> Pending<R> for EncodedChunk<R> {
    fn wait(&self, deadline: Option<Instant>) -> bool {
        self.completion.wait(deadline)
    }

    fn results(self: Box<Self>) -> Vec<Result<R>> {
        let chunk = self.completion.take().unwrap_or(Err(Error::ResultLost));
        decode_results(&chunk, self.count)
    }
}

/// A chunk run by threads of this process: its results arrive as they are.
pub(crate) struct ValueChunk<R> {
    pub(crate) completion: Completion<Vec<Result<R>>>,
    pub(crate) count: usize,
}

impl<R> Pending<R> for ValueChunk<R> {
    fn wait(&self, deadline: Option<Instant>) -> bool {
        self.completion.wait(deadline)
    }

    fn results(self: Box<Self>) -> Vec<Result<R>> {
        match self.completion.take() {
            Some(Ok(results)) => results,
            Some(Err(error)) => (0..self.count).map(|_| Err(error.clone())).collect(),
            None => (0..self.count).map(|_| Err(Error::ResultLost)).collect(),
        }
    }
}

/// How a window sends a chunk of inputs off.
pub(crate) type Send<'a, A, R> = Box<dyn FnMut(Vec<A>) -> Result<Box<dyn Pending<R> + 'a>> + 'a>;

/// Inputs in, results out in input order, with `ahead` chunks in flight.
pub(crate) struct Window<'a, A, R, I> {
    inputs: I,
    send: Send<'a, A, R>,
    pub(crate) chunksize: usize,
    ahead: usize,
    pending: VecDeque<Box<dyn Pending<R> + 'a>>,
    ready: VecDeque<Result<R>>,
    exhausted: bool,
    /// Set after an error that ends the iteration.
    failed: bool,
    _inputs: PhantomData<fn(A)>,
}

impl<'a, A, R, I: Iterator<Item = A>> Window<'a, A, R, I> {
    pub(crate) fn new(inputs: I, chunksize: usize, ahead: usize, send: Send<'a, A, R>) -> Self {
        Window {
            inputs,
            send,
            chunksize,
            ahead: ahead.max(1),
            pending: VecDeque::new(),
            ready: VecDeque::new(),
            exhausted: false,
            failed: false,
            _inputs: PhantomData,
        }
    }

    /// Ends the iteration: later calls give `None`.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
    }

    /// The next result in input order, waiting until `deadline`. When time runs out it gives
    /// [`Error::Timeout`] (with `after`), and the result can be asked for again.
    pub(crate) fn next_until(
        &mut self,
        deadline: Option<Instant>,
        after: Duration,
    ) -> Option<Result<R>> {
        if self.failed {
            return None;
        }
        if let Some(result) = self.ready.pop_front() {
            return Some(result);
        }
        if self.chunksize == 0 {
            self.failed = true;
            return Some(Err(Error::InvalidChunksize));
        }
        while !self.exhausted && self.pending.len() < self.ahead {
            let chunk: Vec<A> = self.inputs.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.exhausted = true;
                break;
            }
            match (self.send)(chunk) {
                Ok(pending) => self.pending.push_back(pending),
                Err(error) => {
                    self.failed = true;
                    return Some(Err(error));
                }
            }
        }
        let oldest = self.pending.front()?;
        if !oldest.wait(deadline) {
            return Some(Err(Error::Timeout { after }));
        }
        let oldest = self.pending.pop_front().expect("looked at above");
        self.ready.extend(oldest.results());
        self.ready.pop_front()
    }
}
