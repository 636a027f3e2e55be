//! Python's `multiprocessing.Queue` and `JoinableQueue`: messages between processes.
//!
//! A queue is a ring of bytes in memory shared by every process forked after it was made,
//! with a robust process-shared mutex beside it and a futex word for each thing a process
//! may wait for: a message, room, every task done. [`Queue::put`] encodes the message (with
//! [`codec`]) and copies the frame into the ring; [`Queue::get`] copies the oldest frame out
//! under the mutex and decodes it once the mutex is released. A small frame is copied in under
//! the mutex. A large one (64 KiB or more) is copied into room reserved under the mutex, with
//! the mutex released, so that getters take the messages before it meanwhile; a second
//! robust mutex lets one writer at a time do that. A message that is a block of bytes (a
//! `Vec<u8>`, a [`Bytes`](crate::Bytes)) is not encoded at all: it is copied from the sender's
//! vector into the ring, then from the ring into the receiver's new vector, a copy in and a
//! copy out. What this design buys, compared with Python's pipe and feeder thread:
//!
//! - **Nothing is sent late.** `put` encodes at once, so an error is returned by `put` itself;
//!   Python pickles on a background thread and reports the error there, later.
//! - **No joining trap.** Python's feeder thread keeps a process that has put data alive until
//!   the data is read (CPython issue 73983), so joining a producer before reading deadlocks.
//!   Here `put` never waits on a reader unless the queue was made with a `maxsize`: the ring
//!   grows instead, and a producer can end as soon as `put` returns.
//! - **A message is whole or absent.** The ring's indices move only after a frame is fully
//!   copied. A writer killed in the middle of a message leaves nothing behind it; a reader
//!   killed in the middle leaves the message for the next reader. Whoever takes the mutex next
//!   (for a large message copied outside it, the writers' mutex) is told (a WARNING log
//!   record) and carries on.
//! - **A killed waiter leaves nothing behind.** A process killed at any instant of `get`,
//!   `put` or [`JoinableQueue::join`], waiting or not, leaves the queue working for every
//!   other process. A wait sleeps on a futex, which the kernel forgets when the sleeper dies;
//!   a pthread condition variable would keep the dead waiter's place, and the next `put` would
//!   wake the dead process instead of a live one, or wait for it forever. In Python, a
//!   consumer killed in `get` takes the queue's read lock with it, and a process killed in
//!   `join` hangs the next `task_done`.
//! - **Any size.** A message larger than the ring grows the ring; the limit is
//!   [`Builder::max_message`], checked by `put` before anything is copied.
//!
//! Both the ring and its header live in memory files. A child forked after the queue was made
//! inherits them; a child started afresh with the queue in the argument of
//! [`Process::task`](crate::Process::task) is sent their descriptors and maps them again.
//! Nothing else can carry a queue: encoding one anywhere else (to put it in another queue, or
//! to send it to a pool) fails with [`Error::Encode`], as Python refuses to pickle one.
//!
//! A message's way through the files below: [`Queue`] (here) encodes it and hands the bytes
//! to this process's side of the queue, whose memory (the header every process shares, and
//! the ring) is laid out in `shared.rs`. `message.rs` copies a frame (its length, then its
//! bytes) in and out under the mutex, and `large.rs` copies a large one in with the mutex
//! released. The mutex, held, is a guard (`guard.rs`), which also waits on the conditions;
//! through it, `ring.rs` maps the ring, grows it, and copies bytes in and out, wrapping at its
//! end. [`JoinableQueue`] is in `joinable.rs`, and how a queue travels to a child started
//! afresh is in `passing.rs`.

mod guard;
mod joinable;
mod large;
mod message;
mod passing;
mod ring;
mod shared;

use std::borrow::Borrow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, Copied};
use crate::error::{Error, Result};
use shared::Inner;

pub use joinable::JoinableQueue;

/// The default largest message, encoded: 1 GiB.
const DEFAULT_MAX_MESSAGE: u64 = 1 << 30;

/// A first-in, first-out queue of `T` between processes: Python's `multiprocessing.Queue`.
///
/// Make it before starting the processes that use it; every process forked afterwards shares
/// it, and so does every child given it in the argument of
/// [`Process::task`](crate::Process::task), whatever the start method. Any number of them
/// (and of their threads) may put and get at once. Messages from one producer arrive in the
/// order it put them; none is lost or delivered twice. Cloning gives another handle to the
/// same queue.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{Process, Queue};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let q: Queue<i32> = Queue::new()?;
/// let producer = {
///     let q = q.clone();
///     Process::new(move || q.put(5))
/// };
/// producer.start()?;
/// assert_eq!(q.get()?, 5);
/// producer.join()?;
/// # Ok(())
/// # }
/// ```
///
/// The lesson `lesson-queue` runs more.
pub struct Queue<T> {
    inner: Arc<Inner>,
    _message: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
            _message: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize().ok())
            .finish_non_exhaustive()
    }
}

/// Options for a [`Queue`]: Python's `Queue(maxsize)`, and a limit on message size.
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct Builder {
    maxsize: u64,
    max_message: u64,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            maxsize: 0,
            max_message: DEFAULT_MAX_MESSAGE,
        }
    }
}

impl Builder {
    /// The defaults: no `maxsize`, messages up to 1 GiB.
    ///
    /// # Example
    ///
    /// ```
    /// use multiprocessing::Queue;
    /// use multiprocessing::queue::Builder;
    ///
    /// let q: Queue<Vec<u8>> = Builder::new().maxsize(10).max_message(1 << 20).build()?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// The most messages the queue holds; `put` waits (or fails, without blocking) while it
    /// is full. 0, the default, means no limit.
    pub fn maxsize(mut self, maxsize: usize) -> Builder {
        self.maxsize = maxsize as u64;
        self
    }

    /// The largest message, in encoded bytes, that `put` accepts and `get` believes (1 GiB
    /// by default).
    pub fn max_message(mut self, bytes: usize) -> Builder {
        self.max_message = bytes as u64;
        self
    }

    /// Makes the queue.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn build<T: Serialize + DeserializeOwned>(self) -> Result<Queue<T>> {
        Ok(Queue {
            inner: Arc::new(Inner::new(self)?),
            _message: PhantomData,
        })
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the shared memory cannot be made.
    pub fn new() -> Result<Queue<T>> {
        Builder::default().build()
    }

    /// A queue that holds at most `maxsize` messages (0: no limit): Python's
    /// `Queue(maxsize)`.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn with_maxsize(maxsize: usize) -> Result<Queue<T>> {
        Builder::default().maxsize(maxsize).build()
    }

    /// Puts a message, waiting for room if the queue is bounded and full.
    ///
    /// Takes the message or a reference to it; pass a reference to keep it when the queue
    /// refuses it.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the message cannot be encoded, [`Error::MessageTooLarge`] over
    /// the limit, [`Error::Closed`] after [`close`](Queue::close), [`Error::Os`].
    pub fn put(&self, item: impl Borrow<T>) -> Result<()> {
        self.put_until(item.borrow(), None)
    }

    /// Puts a message, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when there was no room in time, and as [`put`](Queue::put).
    pub fn put_timeout(&self, item: impl Borrow<T>, timeout: Duration) -> Result<()> {
        self.put_until(item.borrow(), crate::sync::deadline_after(timeout))
    }

    /// Puts a message only if there is room now: Python's `put(item, block=False)`.
    ///
    /// # Errors
    ///
    /// [`Error::Full`] when there is no room, and as [`put`](Queue::put).
    pub fn try_put(&self, item: impl Borrow<T>) -> Result<()> {
        self.put_until(item.borrow(), Some(Instant::now()))
    }

    fn put_until(&self, item: &T, deadline: Option<Instant>) -> Result<()> {
        self.check_open()?;
        SCRATCH.with_borrow_mut(|scratch| {
            let parts = codec::encode_parts(scratch, item)?;
            self.inner.put_parts(&parts, deadline)
        })
    }

    /// Takes the oldest message, waiting for one.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the message is not a `T` (it is consumed),
    /// [`Error::Closed`] after [`close`](Queue::close), [`Error::Corrupt`], [`Error::Os`].
    pub fn get(&self) -> Result<T> {
        self.get_until(None)
    }

    /// Takes the oldest message, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when none came in time, and as [`get`](Queue::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(crate::sync::deadline_after(timeout))
    }

    /// Takes the oldest message if there is one now: Python's `get(block=False)`.
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] when there is none, and as [`get`](Queue::get).
    pub fn try_get(&self) -> Result<T> {
        self.get_until(Some(Instant::now()))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<T> {
        self.check_open()?;
        SCRATCH.with_borrow_mut(|scratch| {
            let copied = self.inner.get_with(deadline, |size, frame| {
                codec::copy_out(size, scratch, |buffer, count| {
                    frame.append(buffer, count);
                    Ok(())
                })
            })?;
            // Decoding runs the message type's own code: never under the mutex.
            match copied {
                Copied::Value(value) => Ok(value),
                Copied::Encoded => codec::decode(scratch),
            }
        })
    }
}

impl<T> Queue<T> {
    /// How many messages are in the queue now; others may change it at once.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the queue's mutex fails.
    pub fn qsize(&self) -> Result<usize> {
        Ok(self.inner.lock(None)?.expect("no deadline").state().count as usize)
    }

    /// Whether the queue is empty now; a snapshot, like [`qsize`](Queue::qsize).
    ///
    /// # Errors
    ///
    /// As [`qsize`](Queue::qsize).
    pub fn empty(&self) -> Result<bool> {
        Ok(self.qsize()? == 0)
    }

    /// Whether a bounded queue is full now; always false without a `maxsize`.
    ///
    /// # Errors
    ///
    /// As [`qsize`](Queue::qsize).
    pub fn full(&self) -> Result<bool> {
        let mut guard = self.inner.lock(None)?.expect("no deadline");
        let state = guard.state();
        Ok(state.maxsize > 0 && state.count >= state.maxsize)
    }

    /// Says that this process will put and get no more: Python's `close()`. The queue
    /// stays usable by the other processes; here, every handle to it refuses `put` and `get`
    /// from now on.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}

thread_local! {
    /// Each thread's buffer for encoding and decoding, reused from message to message.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}
