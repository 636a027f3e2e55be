//! The window behind [`Pool::imap`](crate::Pool::imap), `imap_unordered` and the executors'
//! `map`: inputs taken lazily, a chunk at a time, a bounded number of chunks in flight, and
//! the results handed out in input order, or in the order they come in.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::mpsc::{self, Receiver, Sender};
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
    /// Calls `notify` once the results are in, on the thread that delivers them.
    fn on_done(&self, notify: Box<dyn FnOnce() + Send>);
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

    fn on_done(&self, notify: Box<dyn FnOnce() + Send>) {
        self.completion.on_done_inline(notify);
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

    fn on_done(&self, notify: Box<dyn FnOnce() + Send>) {
        self.completion.on_done_inline(notify);
    }
}

/// How a window sends a chunk of inputs off.
pub(crate) type SendChunk<'a, A, R> =
    Box<dyn FnMut(Vec<A>) -> Result<Box<dyn Pending<R> + 'a>> + 'a>;

/// In which order a window hands out results.
enum Order {
    /// In input order: the oldest chunk's results first.
    Input,
    /// As they come in: each chunk, once in, sends its number here.
    Completion {
        sender: Sender<u64>,
        done: Receiver<u64>,
    },
}

/// Inputs in, results out, with `ahead` chunks in flight.
pub(crate) struct Window<'a, A, R, I> {
    inputs: I,
    send: SendChunk<'a, A, R>,
    pub(crate) chunksize: usize,
    ahead: usize,
    /// Inputs to keep in flight besides `ahead` chunks, as whole chunks of `chunksize`.
    inputs_ahead: usize,
    order: Order,
    /// Chunks in flight, oldest first, each with its number.
    pending: VecDeque<(u64, Box<dyn Pending<R> + 'a>)>,
    /// How many chunks have been sent.
    sent: u64,
    /// Results of a chunk in, not yet handed out.
    ready: VecDeque<Result<R>>,
    exhausted: bool,
    /// Set after an error that ends the iteration.
    failed: bool,
    _inputs: PhantomData<fn(A)>,
}

impl<'a, A, R, I: Iterator<Item = A>> Window<'a, A, R, I> {
    /// A window that hands out results in input order.
    pub(crate) fn new(
        inputs: I,
        chunksize: usize,
        ahead: usize,
        send: SendChunk<'a, A, R>,
    ) -> Self {
        Window {
            inputs,
            send,
            chunksize,
            ahead: ahead.max(1),
            inputs_ahead: 0,
            order: Order::Input,
            pending: VecDeque::new(),
            sent: 0,
            ready: VecDeque::new(),
            exhausted: false,
            failed: false,
            _inputs: PhantomData,
        }
    }

    /// A window that hands out each chunk's results as soon as they are in.
    pub(crate) fn unordered(
        inputs: I,
        chunksize: usize,
        ahead: usize,
        send: SendChunk<'a, A, R>,
    ) -> Self {
        let (sender, done) = mpsc::channel();
        Window {
            order: Order::Completion { sender, done },
            ..Window::new(inputs, chunksize, ahead, send)
        }
    }

    /// Keeps as many more chunks in flight as hold `inputs` inputs, in the chunk size it
    /// has when it starts: room for the work a pool sends its workers ahead of need.
    pub(crate) fn with_inputs_ahead(mut self, inputs: usize) -> Self {
        self.inputs_ahead = inputs;
        self
    }

    /// Ends the iteration: later calls give `None`.
    pub(crate) fn fail(&mut self) {
        self.failed = true;
    }

    /// The next result, waiting until `deadline`. When time runs out it gives
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
        if let Err(error) = self.top_up() {
            self.failed = true;
            return Some(Err(error));
        }
        let Some(index) = self.next_in(deadline)? else {
            return Some(Err(Error::Timeout { after }));
        };
        let (_, chunk) = self.pending.remove(index).expect("a chunk in flight");
        self.ready.extend(chunk.results());
        self.ready.pop_front()
    }

    /// Sends chunks until `ahead` are in flight (and those that hold `inputs_ahead`) or the
    /// inputs run out.
    fn top_up(&mut self) -> Result<()> {
        let ahead = self.ahead + self.inputs_ahead / self.chunksize;
        while !self.exhausted && self.pending.len() < ahead {
            let chunk: Vec<A> = self.inputs.by_ref().take(self.chunksize).collect();
            if chunk.is_empty() {
                self.exhausted = true;
                break;
            }
            let pending = (self.send)(chunk)?;
            let number = self.sent;
            self.sent += 1;
            if let Order::Completion { sender, .. } = &self.order {
                let sender = sender.clone();
                pending.on_done(Box::new(move || {
                    let _ = sender.send(number);
                }));
            }
            self.pending.push_back((number, pending));
        }
        Ok(())
    }

    /// Where in `pending` the next chunk to hand out is, once its results are in: `None`
    /// when none is in flight, `Some(None)` when `deadline` passed first.
    fn next_in(&mut self, deadline: Option<Instant>) -> Option<Option<usize>> {
        match &self.order {
            Order::Input => {
                let (_, oldest) = self.pending.front()?;
                Some(oldest.wait(deadline).then_some(0))
            }
            Order::Completion { done, .. } => {
                if self.pending.is_empty() {
                    return None;
                }
                let number = match deadline {
                    None => done.recv().ok(),
                    Some(deadline) => deadline
                        .checked_duration_since(Instant::now())
                        .and_then(|left| done.recv_timeout(left).ok()),
                };
                Some(
                    number.and_then(|number| {
                        self.pending.iter().position(|(sent, _)| *sent == number)
                    }),
                )
            }
        }
    }
}
