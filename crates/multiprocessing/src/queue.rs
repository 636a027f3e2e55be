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

use std::borrow::Borrow;
use std::cell::{RefCell, UnsafeCell};
use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MRemapFlags, MapFlags, ProtFlags, mmap, mremap, munmap};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, Copied};
use crate::error::{Error, Result};
use crate::shm::Shared;
use crate::start::descriptors::{self, Refused};
use crate::sync::{Acquired, Kind, RawMutex, SharedCondition};

/// The ring's first size; it doubles when a message does not fit. Pages are only
/// allocated when touched.
const INITIAL_CAPACITY: u64 = 1 << 20;

/// The default largest message, encoded: 1 GiB.
const DEFAULT_MAX_MESSAGE: u64 = 1 << 30;

/// Bytes of the length that precedes each message in the ring.
const LENGTH: u64 = size_of::<u64>() as u64;

/// From this many bytes, a frame is copied into the ring with the mutex released, so that
/// getters copy out meanwhile; a smaller one costs less than taking the mutex twice.
const LARGE: u64 = 64 * 1024;

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

/// A queue travels to a child started afresh as the descriptors of its memory; see
/// [`Process::task`](crate::Process::task). Anywhere else, encoding it fails.
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner
            .pass("Queue")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// A queue is decoded only by a child started afresh with it.
impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        let inner = Inner::receive("Queue", passed).map_err(serde::de::Error::custom)?;
        Ok(Queue {
            inner: Arc::new(inner),
            _message: PhantomData,
        })
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

/// A [`Queue`] that counts unfinished tasks: Python's `multiprocessing.JoinableQueue`.
///
/// Every `put` adds a task; every [`task_done`](JoinableQueue::task_done) finishes one, in
/// whichever process; [`join`](JoinableQueue::join) waits until none is left. It is a `Queue`
/// in every other way, and derefs to one.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{JoinableQueue, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let tasks: JoinableQueue<u32> = JoinableQueue::new()?;
/// let worker = {
///     let tasks = tasks.clone();
///     Process::new(move || -> multiprocessing::Result<()> {
///         let n = tasks.get()?;
///         println!("{n} squared is {}", n * n);
///         tasks.task_done()
///     })
/// };
/// worker.start()?;
/// tasks.put(7)?;
/// tasks.join()?; // returns once the worker has called task_done
/// # Ok(())
/// # }
/// ```
pub struct JoinableQueue<T> {
    queue: Queue<T>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

/// As a [`Queue`]'s.
impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue
            .inner
            .pass("JoinableQueue")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// As a [`Queue`]'s.
impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        let inner = Inner::receive("JoinableQueue", passed).map_err(serde::de::Error::custom)?;
        Ok(JoinableQueue {
            queue: Queue {
                inner: Arc::new(inner),
                _message: PhantomData,
            },
        })
    }
}

impl<T> std::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;

    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: Queue::new()?,
        })
    }

    /// A joinable queue built with the given options.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn with(builder: Builder) -> Result<JoinableQueue<T>> {
        Ok(JoinableQueue {
            queue: builder.build()?,
        })
    }
}

impl<T> JoinableQueue<T> {
    /// Marks one task, taken with `get`, as finished.
    ///
    /// # Errors
    ///
    /// [`Error::TaskDoneTooManyTimes`] when there is no unfinished task, [`Error::Os`].
    pub fn task_done(&self) -> Result<()> {
        let mut guard = self.queue.inner.lock(None)?.expect("no deadline");
        let unfinished = guard.state().unfinished;
        if unfinished == 0 {
            return Err(Error::TaskDoneTooManyTimes);
        }
        if unfinished == 1 {
            // Wake the joiners before the count reaches 0 (see `SharedCondition::notify`).
            self.queue.inner.header.all_done.notify();
        }
        guard.state().unfinished = unfinished - 1;
        Ok(())
    }

    /// Waits until every message put has been marked done.
    ///
    /// # Errors
    ///
    /// [`Error::Os`].
    pub fn join(&self) -> Result<()> {
        self.join_until(None).map(drop)
    }

    /// Waits at most `timeout` for every task to be done; returns whether they all were.
    ///
    /// # Errors
    ///
    /// [`Error::Os`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.join_until(crate::sync::deadline_after(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let inner = &self.queue.inner;
        let Some(mut guard) = inner.lock(deadline)? else {
            return Ok(false);
        };
        while guard.state().unfinished > 0 {
            if !guard.wait(&inner.header.all_done, deadline)? {
                return Ok(guard.state().unfinished == 0);
            }
        }
        Ok(true)
    }
}

/// What every process shares: the mutexes, the conditions, and the ring's indices.
struct Header {
    mutex: RawMutex,
    /// Held by the one writer that may copy a large message into the ring without `mutex`;
    /// when that writer dies, the next one learns of it here.
    writer: RawMutex,
    not_empty: SharedCondition,
    not_full: SharedCondition,
    all_done: SharedCondition,
    state: UnsafeCell<State>,
}

/// The ring's bookkeeping, changed only under the mutex. Positions count bytes since the
/// ring last grew; `position % capacity` is where a byte sits.
#[derive(Clone, Copy, Debug)]
struct State {
    head: u64,
    tail: u64,
    count: u64,
    capacity: u64,
    /// Changes whenever the ring grows, telling other processes to map it again.
    generation: u64,
    maxsize: u64,
    max_message: u64,
    /// Messages put and not yet marked done (for `JoinableQueue`).
    unfinished: u64,
    /// Whether a writer is copying a large message in, past `tail`, with the mutex released.
    /// Meanwhile nothing else is written, and the ring neither grows nor starts over. Set and
    /// cleared under both mutexes; left set by a writer that died, until the next one sees it.
    writing: bool,
}

/// A queue as it travels in a task's argument.
#[derive(Serialize, Deserialize)]
struct Passed {
    header: descriptors::Passed,
    ring: descriptors::Passed,
    /// Whether this process had closed it, which a forked child would inherit too.
    closed: bool,
}

/// The kind of descriptor a ring is, for [`descriptors`].
const RING: &str = "queue ring";

/// This process's side of a queue.
struct Inner {
    header: Shared<Header>,
    /// The ring's memory, inherited by forked children as an open file, and sent to children
    /// started afresh.
    ring: OwnedFd,
    /// This process's mapping of the ring; used only under the shared mutex, but for the
    /// copy of a large message, through a pointer taken under it (see `State::writing`).
    view: UnsafeCell<View>,
    /// Set by `close`, for this process.
    closed: AtomicBool,
}

// SAFETY: the only unsynchronised field, `view`, is touched only while the shared mutex is
// held, which excludes every other thread of every process. The memory it maps is copied into
// outside the mutex only by the writer of a large message, in room no one else touches until
// it is done (see `State::writing`).
unsafe impl Sync for Inner {}
// SAFETY: as above; the mapping and the file belong to the process, not to a thread.
unsafe impl Send for Inner {}

/// A mapping of the ring at some generation.
struct View {
    ptr: Option<NonNull<u8>>,
    len: u64,
    generation: u64,
}

impl Inner {
    fn new(options: Builder) -> Result<Inner> {
        let header = Shared::new(Header {
            mutex: RawMutex::new(),
            writer: RawMutex::new(),
            not_empty: SharedCondition::new(),
            not_full: SharedCondition::new(),
            all_done: SharedCondition::new(),
            state: UnsafeCell::new(State {
                head: 0,
                tail: 0,
                count: 0,
                capacity: INITIAL_CAPACITY,
                generation: 1,
                maxsize: options.maxsize,
                max_message: options.max_message,
                unfinished: 0,
                writing: false,
            }),
        })?;
        // SAFETY: the header was just placed in shared memory, where it stays, and no other
        // thread or process can see it yet.
        unsafe {
            header.mutex.init(Kind::Normal)?;
            header.writer.init(Kind::Normal)?;
        }
        let ring = memfd_create("multiprocessing-queue", MFdFlags::MFD_CLOEXEC)
            .map_err(Error::os("cannot make a queue's memory"))?;
        nix::unistd::ftruncate(&ring, INITIAL_CAPACITY as i64)
            .map_err(Error::os("cannot size a queue's memory"))?;
        Ok(Inner {
            header,
            ring,
            view: UnsafeCell::new(View {
                ptr: None,
                len: 0,
                generation: 0,
            }),
            closed: AtomicBool::new(false),
        })
    }

    /// Copies of the descriptors, for a child started afresh; `what` names the queue's type.
    fn pass(&self, what: &'static str) -> std::result::Result<Passed, Refused> {
        Ok(Passed {
            header: self.header.pass(what)?,
            ring: descriptors::pass(what, RING, self.ring.as_fd())?,
            closed: self.closed.load(Ordering::Relaxed),
        })
    }

    /// This process's side of a queue its parent passed with [`pass`](Inner::pass). The
    /// header is made already; the ring is mapped on first use.
    fn receive(what: &'static str, passed: Passed) -> std::result::Result<Inner, Refused> {
        Ok(Inner {
            header: Shared::receive(what, passed.header)?,
            ring: descriptors::take(what, RING, passed.ring)?,
            view: UnsafeCell::new(View {
                ptr: None,
                len: 0,
                generation: 0,
            }),
            closed: AtomicBool::new(passed.closed),
        })
    }

    /// Locks the queue until `deadline`; `None` when it passed.
    #[inline]
    fn lock(&self, deadline: Option<Instant>) -> Result<Option<Guard<'_>>> {
        let acquired = self.header.mutex.lock(deadline)?;
        Ok(acquired.map(|acquired| {
            let guard = Guard { inner: self };
            guard.after_acquire(acquired);
            guard
        }))
    }

    /// Puts one message made of `parts`, one after the other.
    fn put_parts(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<()> {
        let size: usize = parts.iter().map(|part| part.len()).sum();
        let max_message = self.header_state_max_message();
        if size as u64 > max_message {
            return Err(Error::MessageTooLarge {
                size,
                limit: max_message as usize,
            });
        }
        let frame = LENGTH + size as u64;
        if frame < LARGE {
            let Some(mut guard) = self.lock(deadline)? else {
                return Err(Error::Full);
            };
            guard.wait_for_room(deadline)?;
            // Unless a large message is being copied in: then wait for its writer, below.
            if !guard.state().writing {
                guard.reserve(frame)?;
                let tail = guard.state().tail;
                guard.write_frame(tail, frame, parts);
                guard.commit(frame);
                return Ok(());
            }
        }
        self.put_large(parts, deadline)
    }

    /// Puts a message as [`put_parts`](Inner::put_parts) does, but copies it in with the
    /// mutex released: getters go on taking the messages before it meanwhile, where under
    /// the mutex they would wait for the whole copy, and would rarely get the mutex between
    /// two puts of a fast writer.
    fn put_large(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<()> {
        let Some(acquired) = self.header.writer.lock(deadline)? else {
            return Err(Error::Full);
        };
        let _writer = Writer(&self.header.writer);
        let Some(mut guard) = self.lock(deadline)? else {
            return Err(Error::Full);
        };
        guard.after_acquire(acquired);
        // No other writer holds the writers' mutex: a copy marked as under way is a dead
        // writer's, and what it copied is not part of any message.
        guard.state().writing = false;
        guard.wait_for_room(deadline)?;
        let frame = LENGTH + parts.iter().map(|part| part.len() as u64).sum::<u64>();
        guard.reserve(frame)?;
        let tail = guard.state().tail;
        guard.state().writing = true;
        let ring = guard.mapped();
        drop(guard);
        // SAFETY: `frame` bytes past `tail` were reserved, and while `writing` is set no one
        // else writes there, reads there (it is past `tail`), moves the data or maps the ring
        // again in this process; the mapping lasts as long as `self`.
        unsafe { ring.write_frame(tail, frame, parts) };
        let mut guard = self.lock(None)?.expect("no deadline");
        guard.state().writing = false;
        guard.commit(frame);
        Ok(())
    }

    /// Takes the oldest message: `copy` is given its size and copies it out of the ring.
    fn get_with<R>(
        &self,
        deadline: Option<Instant>,
        copy: impl FnOnce(usize, &mut Frame<'_, '_>) -> Result<R>,
    ) -> Result<R> {
        let Some(mut guard) = self.lock(deadline)? else {
            return Err(Error::Empty);
        };
        while guard.state().count == 0 {
            if !guard.wait(&self.header.not_empty, deadline)? && guard.state().count == 0 {
                return Err(Error::Empty);
            }
        }
        guard.map_current()?;
        let State {
            head,
            tail,
            max_message,
            ..
        } = *guard.state();
        let mut length = [0; LENGTH as usize];
        guard.read_at(head, &mut length);
        let size = u64::from_le_bytes(length);
        let available = (tail - head).saturating_sub(LENGTH);
        if size > max_message || size > available {
            return Err(Error::Corrupt {
                message: format!(
                    "a message claims {size} bytes; {available} are in the queue, \
                     the limit is {max_message}"
                ),
            });
        }
        let mut frame = Frame {
            guard: &mut guard,
            position: head + LENGTH,
            left: size,
        };
        let copied = copy(size as usize, &mut frame)?;
        if guard.state().maxsize > 0 {
            // Wake the putters before the room is made (see `SharedCondition::notify`).
            self.header.not_full.notify();
        }
        let state = guard.state();
        state.head += LENGTH + size;
        state.count -= 1;
        Ok(copied)
    }

    /// The message limit, which never changes after the queue is made.
    fn header_state_max_message(&self) -> u64 {
        // SAFETY: `max_message` is written once, before the queue is shared, and only read
        // afterwards.
        unsafe { (*self.header.state.get()).max_message }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let view = self.view.get_mut();
        if let Some(ptr) = view.ptr.take() {
            // SAFETY: our own mapping, of this length; nothing else refers to it once the
            // last handle of this process is gone.
            let _ = unsafe { munmap(ptr.cast(), view.len as usize) };
        }
    }
}

/// The shared mutex, held; unlocked when dropped.
struct Guard<'a> {
    inner: &'a Inner,
}

impl Guard<'_> {
    /// Reports an owner that died holding the mutex. The state is consistent: it only changes
    /// after a frame is complete, so the dead process's unfinished message is simply absent.
    fn after_acquire(&self, acquired: Acquired) {
        if acquired == Acquired::OwnerDied {
            log::warn!(
                "a process died while putting into or getting from a queue; \
                 its unfinished message was dropped, the queue is intact"
            );
        }
    }

    /// The shared state, borrowed through the guard: the borrow checker keeps the reference
    /// unique for as long as it lives.
    fn state(&mut self) -> &mut State {
        // SAFETY: every access to the state goes through a guard, and this guard holds the
        // mutex, so no other process or thread has a guard now; the mutex is error-checking,
        // so not even this thread can take a second one. The `&mut self` borrow makes this
        // reference the only one that this guard hands out.
        unsafe { &mut *self.inner.header.state.get() }
    }

    /// This process's mapping of the ring, borrowed through the guard as `state` is.
    fn view(&mut self) -> &mut View {
        // SAFETY: as for `state`: the view is only reached through a guard.
        unsafe { &mut *self.inner.view.get() }
    }

    /// Waits on `condition`; false when `deadline` passed.
    fn wait(&mut self, condition: &SharedCondition, deadline: Option<Instant>) -> Result<bool> {
        let (acquired, timed_out) = condition.wait(&self.inner.header.mutex, deadline)?;
        self.after_acquire(acquired);
        Ok(!timed_out)
    }

    /// Maps the ring as it is now, if the ring grew since this process last mapped it.
    #[inline]
    fn map_current(&mut self) -> Result<()> {
        let State {
            capacity,
            generation,
            ..
        } = *self.state();
        let view = self.view();
        if view.ptr.is_some() && view.generation == generation {
            return Ok(());
        }
        self.map(capacity, generation)
    }

    /// Maps the first `capacity` bytes of the ring as `generation`.
    fn map(&mut self, capacity: u64, generation: u64) -> Result<()> {
        let ring = &self.inner.ring;
        let view = self.view();
        let ptr = match view.ptr {
            // Grow the mapping in place, or move it whole: the pages it has keep their place
            // in the page tables, where a new mapping would fault each one in again.
            // SAFETY: our previous mapping, of `view.len` bytes; no slice into it outlives a
            // guard, so nothing refers to its addresses if it moves. The file is at least
            // `capacity` bytes long, and the mapping is not shrunk.
            Some(old) => unsafe {
                mremap(
                    old.cast(),
                    view.len as usize,
                    capacity as usize,
                    MRemapFlags::MREMAP_MAYMOVE,
                    None,
                )
            },
            // SAFETY: a new shared mapping of the ring file, which is `capacity` bytes long.
            None => unsafe {
                mmap(
                    None,
                    NonZeroUsize::new(capacity as usize).expect("the ring is never empty"),
                    ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                    MapFlags::MAP_SHARED,
                    ring,
                    0,
                )
            },
        }
        .map_err(Error::os("cannot map a queue's memory"))?;
        *view = View {
            ptr: Some(ptr.cast()),
            len: capacity,
            generation,
        };
        Ok(())
    }

    /// Makes room for `needed` more bytes, growing the ring if it must.
    fn reserve(&mut self, needed: u64) -> Result<()> {
        self.map_current()?;
        let state = self.state();
        if state.count == 0 {
            // An empty ring starts over at its beginning, whose pages are mapped and likely in
            // cache, rather than go round touching every page of it. The count alone says
            // whether the ring holds anything, so a writer killed between these two stores
            // leaves nothing wrong: the next one makes them again.
            state.head = 0;
            state.tail = 0;
        }
        let state = *state;
        let used = state.tail - state.head;
        if state.capacity - used >= needed {
            return Ok(());
        }
        let old = state.capacity;
        let new = (old * 2).max((used + needed).next_power_of_two());
        nix::unistd::ftruncate(&self.inner.ring, new as i64)
            .map_err(Error::os("cannot grow a queue's memory"))?;
        // Map the larger file as a generation no process has seen yet; the shared state
        // keeps describing the old ring until the data has moved.
        self.map(new, state.generation + 1)?;
        // Make the data contiguous: the part that wrapped to the start moves past the old end.
        let head = state.head % old;
        if used > 0 && head + used > old {
            let wrapped = (head + used - old) as usize;
            let base = self.mapped().base;
            // SAFETY: both ranges lie inside the new mapping (old + wrapped <= new) and do not
            // overlap (the first ends at `wrapped` <= old).
            unsafe { std::ptr::copy_nonoverlapping(base, base.add(old as usize), wrapped) };
        }
        *self.state() = State {
            head,
            tail: head + used,
            capacity: new,
            generation: state.generation + 1,
            ..state
        };
        Ok(())
    }

    /// Waits until a bounded queue has room for one more message.
    #[inline]
    fn wait_for_room(&mut self, deadline: Option<Instant>) -> Result<()> {
        loop {
            let state = self.state();
            if state.maxsize == 0 || state.count < state.maxsize {
                return Ok(());
            }
            if !self.wait(&self.inner.header.not_full, deadline)? {
                let state = self.state();
                if state.count >= state.maxsize {
                    return Err(Error::Full);
                }
            }
        }
    }

    /// Writes a frame of `frame` bytes (the length of `parts`, then them) into the ring at
    /// `position`, which [`reserve`](Guard::reserve) made room for.
    fn write_frame(&mut self, position: u64, frame: u64, parts: &[&[u8]]) {
        let ring = self.mapped();
        // SAFETY: the room was reserved, and the guard keeps everyone else out of the ring.
        unsafe { ring.write_frame(position, frame, parts) }
    }

    /// Makes the frame of `frame` bytes written at the tail a message.
    #[inline]
    fn commit(&mut self, frame: u64) {
        // Wake the getters before the message counts (see `SharedCondition::notify`).
        self.inner.header.not_empty.notify();
        let state = self.state();
        state.tail += frame;
        state.count += 1;
        state.unfinished += 1;
    }

    /// Copies `bytes` into the ring at `position`: damage, for the tests.
    #[cfg(test)]
    fn write_at(&mut self, position: u64, bytes: &[u8]) {
        let ring = self.mapped();
        // SAFETY: the guard keeps everyone else out of the ring, and the mapping in place.
        unsafe { ring.write_at(position, bytes) }
    }

    /// Copies bytes from the ring at `position` into `bytes`.
    #[inline]
    fn read_at(&mut self, position: u64, bytes: &mut [u8]) {
        let ring = self.mapped();
        // SAFETY: as in `write_at`; `bytes` is memory of ours, outside the ring.
        unsafe { ring.read_into(position, bytes.as_mut_ptr(), bytes.len()) }
    }

    /// This process's mapping of the ring, to copy into and out of.
    #[inline]
    fn mapped(&mut self) -> Ring {
        let view = self.view();
        Ring {
            base: view.ptr.expect("mapped before use").as_ptr(),
            capacity: view.len,
        }
    }
}

/// This process's mapping of the ring, as raw memory, to copy with; positions wrap at the
/// end.
#[derive(Clone, Copy)]
struct Ring {
    base: *mut u8,
    capacity: u64,
}

impl Ring {
    /// Where `position` is in the mapping, and how many of `count` bytes from there fit
    /// before the end; the rest wrap to the start.
    ///
    /// # Panics
    ///
    /// If `count` is over the capacity: the bytes would overlap themselves.
    #[inline]
    fn split(self, position: u64, count: usize) -> (usize, usize) {
        assert!(
            count as u64 <= self.capacity,
            "more bytes than the ring holds"
        );
        let start = (position % self.capacity) as usize;
        (start, count.min(self.capacity as usize - start))
    }

    /// Copies `bytes` into the ring at `position`.
    ///
    /// # Safety
    ///
    /// The mapping must still be in place, and those bytes of the ring the caller's to write:
    /// no one else reads or writes them meanwhile.
    #[inline]
    unsafe fn write_at(self, position: u64, bytes: &[u8]) {
        let (start, first) = self.split(position, bytes.len());
        // SAFETY: `start + first <= capacity` and `bytes.len() - first <= start` (as
        // `bytes.len() <= capacity`), all inside the mapping, which does not overlap `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(start), first);
            if first < bytes.len() {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(first),
                    self.base,
                    bytes.len() - first,
                );
            }
        }
    }

    /// Writes a frame of `frame` bytes at `position`: the length of `parts`, then them, one
    /// after the other.
    ///
    /// # Safety
    ///
    /// As [`write_at`](Ring::write_at), for the whole frame; `frame` must be the length and
    /// the parts.
    unsafe fn write_frame(self, mut position: u64, frame: u64, parts: &[&[u8]]) {
        // SAFETY: each piece lies within the frame, which the caller may write.
        unsafe {
            self.write_at(position, &(frame - LENGTH).to_le_bytes());
            position += LENGTH;
            for part in parts.iter().filter(|part| !part.is_empty()) {
                self.write_at(position, part);
                position += part.len() as u64;
            }
        }
    }

    /// Copies `count` bytes from the ring at `position` to `destination`.
    ///
    /// # Safety
    ///
    /// The mapping must still be in place, and no one write those bytes of the ring
    /// meanwhile; `destination` must be valid for writing `count` bytes, outside the ring.
    #[inline]
    unsafe fn read_into(self, position: u64, destination: *mut u8, count: usize) {
        let (start, first) = self.split(position, count);
        // SAFETY: as in `write_at`, the other way; the destination is the caller's.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(start), destination, first);
            if first < count {
                std::ptr::copy_nonoverlapping(self.base, destination.add(first), count - first);
            }
        }
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.inner.header.mutex.unlock();
    }
}

/// The writers' mutex, held; unlocked when dropped.
struct Writer<'a>(&'a RawMutex);

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The oldest message in the ring, read in order under the mutex.
struct Frame<'g, 'a> {
    guard: &'g mut Guard<'a>,
    /// Where the next byte to read sits.
    position: u64,
    /// Bytes of the message not read yet.
    left: u64,
}

impl Frame<'_, '_> {
    /// Appends the next `count` bytes of the message to `buffer`.
    ///
    /// # Panics
    ///
    /// If fewer than `count` bytes of the message are left.
    #[inline]
    fn append(&mut self, buffer: &mut Vec<u8>, count: usize) {
        assert!(count as u64 <= self.left, "read past the end of a message");
        buffer.reserve(count);
        let spare = &mut buffer.spare_capacity_mut()[..count];
        let ring = self.guard.mapped();
        // SAFETY: the guard keeps writers out of the message, and the mapping in place;
        // `spare` is `count` bytes of the buffer's own memory, which is not the ring.
        unsafe { ring.read_into(self.position, spare.as_mut_ptr().cast(), count) };
        // SAFETY: the copy initialised the `count` bytes after the buffer's length.
        unsafe { buffer.set_len(buffer.len() + count) };
        self.position += count as u64;
        self.left -= count as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Overwrites the length in front of the oldest message, as damage would.
    fn damage_length(queue: &Queue<u64>, length: u64) {
        let mut guard = queue.inner.lock(None).unwrap().expect("no deadline");
        guard.map_current().unwrap();
        let head = guard.state().head;
        guard.write_at(head, &length.to_le_bytes());
    }

    #[test]
    fn a_damaged_length_is_refused_before_anything_is_allocated() {
        let queue: Queue<u64> = Queue::new().unwrap();
        queue.put(7).unwrap();
        damage_length(&queue, u64::MAX);
        let error = queue.get().unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");

        let queue: Queue<u64> = Queue::new().unwrap();
        queue.put(7).unwrap();
        // Longer than what the queue holds, though under the limit.
        damage_length(&queue, 1000);
        assert!(matches!(queue.get(), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn a_block_that_claims_more_than_its_message_is_refused_and_consumed() {
        let queue: Queue<Vec<u8>> = Queue::new().unwrap();
        queue.put(vec![0; 20]).unwrap();
        queue.put(vec![4]).unwrap();
        {
            // The first message's block now claims 2^60 bytes (a length marker, then a u64),
            // where it said 20.
            let mut guard = queue.inner.lock(None).unwrap().expect("no deadline");
            let head = guard.state().head;
            guard.write_at(head + LENGTH, &[0xfd]);
            guard.write_at(head + LENGTH + 1, &(1u64 << 60).to_le_bytes());
        }
        let error = queue.get().unwrap_err();
        assert!(matches!(error, Error::Decode { .. }), "{error}");
        assert_eq!(queue.get().unwrap(), [4]);
    }

    #[test]
    fn a_large_copy_left_unfinished_is_no_message_and_blocks_nothing() {
        let queue: Queue<Vec<u8>> = Queue::new().unwrap();
        queue.put(vec![1]).unwrap();
        {
            // What a writer killed while it copies a large message in leaves: the flag set,
            // part of a frame past the tail.
            let mut guard = queue.inner.lock(None).unwrap().expect("no deadline");
            guard.state().writing = true;
            let tail = guard.state().tail;
            guard.write_at(tail, &(LARGE * 2).to_le_bytes());
        }
        assert_eq!(queue.get().unwrap(), [1]);
        // The unfinished frame is no message.
        assert!(matches!(queue.try_get(), Err(Error::Empty)));
        queue.put(vec![2]).unwrap();
        queue.put(vec![3; LARGE as usize]).unwrap();
        assert_eq!(queue.get().unwrap(), [2]);
        assert_eq!(queue.get().unwrap(), vec![3; LARGE as usize]);
        assert!(queue.empty().unwrap());
    }

    #[test]
    fn an_emptied_ring_starts_over_at_its_beginning() {
        let queue: Queue<u64> = Queue::new().unwrap();
        queue.put(1).unwrap();
        queue.put(2).unwrap();
        assert_eq!(queue.get().unwrap(), 1);
        assert_eq!(queue.get().unwrap(), 2);
        queue.put(3).unwrap();
        let ends = |queue: &Queue<u64>| {
            let mut guard = queue.inner.lock(None).unwrap().expect("no deadline");
            let state = guard.state();
            (state.head, state.tail)
        };
        assert_eq!(
            ends(&queue),
            (0, LENGTH + 1),
            "the third message starts at 0"
        );
        assert_eq!(queue.get().unwrap(), 3);
        // Half of a start over, as a writer killed between its two stores leaves it.
        queue
            .inner
            .lock(None)
            .unwrap()
            .expect("no deadline")
            .state()
            .tail = 0;
        queue.put(4).unwrap();
        assert_eq!(ends(&queue), (0, LENGTH + 1));
        assert_eq!(queue.get().unwrap(), 4);
    }

    #[test]
    fn garbage_in_a_message_is_a_decode_error() {
        let queue: Queue<u64> = Queue::new().unwrap();
        queue.put(7).unwrap();
        // A one-byte message whose byte starts a longer integer than there is.
        damage_length(&queue, 1);
        {
            let mut guard = queue.inner.lock(None).unwrap().expect("no deadline");
            let head = guard.state().head;
            guard.write_at(head + LENGTH, &[0xff]);
        }
        assert!(matches!(queue.get(), Err(Error::Decode { .. })));
    }
}
