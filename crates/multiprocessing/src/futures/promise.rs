//! [`Promise`]: the setting side of a [`Future`], for executors built outside this crate, such
//! as one whose workers are the ranks of an MPI job. Python lets an executor do the same with
//! `Future()`, `set_running_or_notify_cancel()`, `set_result()` and `set_exception()`.
//!
//! Such an executor sends a [`TaskRef`](crate::task::TaskRef) and its encoded arguments to a
//! process running the same executable, which calls [`TaskRef::run`](crate::task::TaskRef::run)
//! and sends back the bytes it returns; those bytes are what a promise is kept with. The
//! futures and the [`Map`] behave as the process executor's do: results are decoded on the
//! reader's thread, and user callbacks run on a thread of their own.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use super::future::{Future, Outstanding, Payload};
use super::map::Map;
use crate::completion::{Completer, Dispatcher, completion};
use crate::error::{Error, Result};
use crate::pool::{ChunkResult, decode_results};
use crate::window::{EncodedChunk, Pending, Window};

/// Hands out futures with their promises, and runs the futures' callbacks on a thread of its
/// own, so that the thread keeping the promises never waits for a user's callback.
///
/// # Example
///
/// ```
/// use multiprocessing::codec;
/// use multiprocessing::futures::Promises;
/// use multiprocessing::task::Task;
///
/// fn doubler(number: i32) -> i32 {
///     number * 2
/// }
///
/// let promises = Promises::new();
/// let (future, promise) = promises.future::<i32>();
/// // An executor sends these to a process running this same executable ...
/// let (task, args) = (Task::new(doubler).to_ref(), codec::encode(&vec![25])?);
/// // ... which runs them ...
/// // SAFETY: made by `to_ref` in this very process.
/// let results = unsafe { task.run(&args) }?;
/// // ... and the executor keeps the promise with what came back.
/// assert!(promise.set_running_or_notify_cancel());
/// promise.set_result(results);
/// assert_eq!(*future.result()?, 50);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
#[derive(Default)]
pub struct Promises {
    callbacks: Dispatcher,
    /// The futures handed out, for [`cancel_pending`](Promises::cancel_pending).
    outstanding: Outstanding,
}

impl std::fmt::Debug for Promises {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promises").finish_non_exhaustive()
    }
}

impl Promises {
    /// Promises whose callbacks thread starts when a callback first needs it.
    pub fn new() -> Promises {
        Promises::default()
    }

    /// A future for one call, pending, and the promise that sets it.
    pub fn future<R>(&self) -> (Future<R>, Promise)
    where
        R: DeserializeOwned + Send + Sync + 'static,
    {
        let (completion, completer) = completion(Some(&self.callbacks));
        let future = Future::new(completion);
        self.outstanding.keep(&future);
        (future, Promise(Box::new(Call(completer))))
    }

    /// Cancels every future from [`future`](Promises::future) whose call has not started (its
    /// promise's [`set_running_or_notify_cancel`](Promise::set_running_or_notify_cancel) will
    /// say `false`): what an executor's `shutdown(cancel_futures=True)` does.
    pub fn cancel_pending(&self) {
        self.outstanding.cancel_pending();
    }

    /// Takes no more callbacks, and returns once those already due have run: call it once
    /// every promise is kept, as an executor's `shutdown(wait=true)` does. Callbacks of
    /// futures done later run on the thread that sets them.
    pub fn close(&self) {
        self.callbacks.close(true);
    }
}

/// The setting side of a [`Future`] or of a chunk of a [`Map`]: Python's executor-facing
/// methods of `Future`. Dropped without being kept, it fails its future with
/// [`Error::ResultLost`], so no one waits for ever.
pub struct Promise(Box<dyn Keep>);

impl std::fmt::Debug for Promise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise").finish_non_exhaustive()
    }
}

impl Promise {
    /// Marks the call running, unless its future was cancelled; whether the call may run.
    /// Python's `set_running_or_notify_cancel()`: call it just before handing the call to a
    /// worker, and drop the call if it says `false`.
    pub fn set_running_or_notify_cancel(&self) -> bool {
        self.0.start()
    }

    /// Sets the results: the bytes that [`TaskRef::run`](crate::task::TaskRef::run) returned
    /// for the promised arguments, decoded later by whoever reads them. Python's
    /// `set_result()`.
    pub fn set_result(self, results: Vec<u8>) {
        self.0.set(Ok(results));
    }

    /// Fails the call, or every call of a chunk, with `error`: Python's `set_exception()`.
    pub fn set_exception(self, error: Error) {
        self.0.set(Err(error));
    }
}

/// What a promise sets: a future's completion or a chunk's.
trait Keep: Send {
    fn start(&self) -> bool;
    fn set(self: Box<Self>, result: ChunkResult);
}

/// A future's completion, which decodes its one result when read.
struct Call<R>(Completer<Payload<R>>);

impl<R: DeserializeOwned + Send + 'static> Keep for Call<R> {
    fn start(&self) -> bool {
        self.0.start()
    }

    fn set(self: Box<Self>, result: ChunkResult) {
        self.0
            .set(result.map(|bytes| Payload::Encoded(bytes, decode_one::<R>)));
    }
}

/// A one-call chunk's result, decoded.
fn decode_one<R: DeserializeOwned>(chunk: ChunkResult) -> Result<R> {
    decode_results(&chunk, 1)
        .into_iter()
        .next()
        .unwrap_or(Err(Error::ResultLost))
}

impl Keep for Completer<Vec<u8>> {
    fn start(&self) -> bool {
        Completer::start(self)
    }

    fn set(self: Box<Self>, result: ChunkResult) {
        Completer::set(*self, result);
    }
}

impl<'a, A: 'a, R: DeserializeOwned + 'a, I: Iterator<Item = A>> Map<'a, A, R, I> {
    /// An executor's `map` whose chunks `send` hands to workers: each chunk of inputs comes
    /// with the promise to keep with its results. The returned [`Map`] takes its inputs
    /// lazily, keeping `ahead` chunks in flight (twice the workers, say) and as many more as
    /// hold `inputs_ahead` inputs, so that a slow call at the head does not leave the workers
    /// idle; [`timeout`](Map::timeout) and [`chunksize`](Map::chunksize) work as for the
    /// runtime's executors. An error from `send` is the next item, and ends the iteration.
    pub fn promised(
        inputs: impl IntoIterator<IntoIter = I>,
        ahead: usize,
        inputs_ahead: usize,
        mut send: impl FnMut(Vec<A>, Promise) -> Result<()> + 'a,
    ) -> Self {
        let send = move |chunk: Vec<A>| -> Result<Box<dyn Pending<R> + 'a>> {
            let count = chunk.len();
            let (completion, completer) = completion::<Vec<u8>>(None);
            send(chunk, Promise(Box::new(completer)))?;
            Ok(Box::new(EncodedChunk {
                completion,
                count,
                _result: PhantomData,
            }))
        };
        Map::new(
            Window::new(inputs.into_iter(), 1, ahead, Box::new(send))
                .with_inputs_ahead(inputs_ahead),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::codec;
    use crate::task::Task;

    fn square(n: u64) -> u64 {
        n * n
    }

    fn fail(n: u64) -> u64 {
        panic!("no {n}")
    }

    #[test]
    fn a_promise_kept_with_a_tasks_bytes_gives_its_result() {
        let promises = Promises::new();
        let (future, promise) = promises.future::<u64>();
        let (sender, called) = mpsc::channel();
        future.add_done_callback(move |future| {
            let _ = sender.send(*future.result().unwrap());
        });
        assert!(!future.running());
        assert!(promise.set_running_or_notify_cancel());
        assert!(future.running());
        let task = Task::new(square).to_ref();
        // SAFETY: made by `to_ref` in this process.
        let bytes = unsafe { task.run(&codec::encode(&vec![12_u64]).unwrap()) }.unwrap();
        promise.set_result(bytes);
        assert_eq!(*future.result().unwrap(), 144);
        assert_eq!(called.recv_timeout(Duration::from_secs(60)), Ok(144));
        promises.close();
    }

    #[test]
    fn a_cancelled_future_does_not_run_and_a_dropped_promise_fails_its_future() {
        let promises = Promises::new();
        let (future, promise) = promises.future::<u64>();
        assert!(future.cancel());
        assert!(!promise.set_running_or_notify_cancel());
        assert!(matches!(future.result(), Err(Error::Cancelled)));
        let (future, promise) = promises.future::<u64>();
        drop(promise);
        assert!(matches!(future.result(), Err(Error::ResultLost)));
        let (future, promise) = promises.future::<u64>();
        promise.set_exception(Error::Shutdown);
        assert!(matches!(future.result(), Err(Error::Shutdown)));
    }

    #[test]
    fn a_promised_map_runs_its_chunks_where_they_are_sent() {
        let task = Task::new(square).to_ref();
        let mut chunks = Vec::new();
        let answers: Vec<u64> = Map::promised(1..=10, 2, 0, |chunk: Vec<u64>, promise| {
            chunks.push(chunk.len());
            // SAFETY: made by `to_ref` in this process.
            promise.set_result(unsafe { task.run(&codec::encode(&chunk)?) }?);
            Ok(())
        })
        .chunksize(4)
        .collect::<Result<_>>()
        .unwrap();
        assert_eq!(answers, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
        assert_eq!(chunks, [4, 4, 2]);
        let task = Task::new(fail).to_ref();
        let answers: Vec<Result<u64>> = Map::promised([1, 2], 2, 0, |chunk: Vec<u64>, promise| {
            // SAFETY: made by `to_ref` in this process.
            promise.set_result(unsafe { task.run(&codec::encode(&chunk)?) }?);
            Ok(())
        })
        .collect();
        assert!(
            matches!(&answers[..], [Err(Error::TaskPanicked { message }), Err(_)] if message.contains("no 1")),
            "{answers:?}"
        );
    }
}
