//! What a queue is made of: the header every process shares (the mutexes, the conditions, the
//! ring's bookkeeping), and this process's side, with its mapping of the ring.

use std::cell::UnsafeCell;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::AtomicBool;

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::munmap;

use super::Builder;
use crate::error::{Error, Result};
use crate::shm::Shared;
use crate::sync::{Kind, RawMutex, SharedCondition};

/// The ring's first size; it doubles when a message does not fit. Pages are only
/// allocated when touched.
const INITIAL_CAPACITY: u64 = 1 << 20;

/// What every process shares: the mutexes, the conditions, and the ring's indices.
pub(super) struct Header {
    pub(super) mutex: RawMutex,
    /// Held by the one writer that may copy a large message into the ring without `mutex`;
    /// when that writer dies, the next one learns of it here.
    pub(super) writer: RawMutex,
    pub(super) not_empty: SharedCondition,
    pub(super) not_full: SharedCondition,
    pub(super) all_done: SharedCondition,
    pub(super) state: UnsafeCell<State>,
}

/// The ring's bookkeeping, changed only under the mutex. Positions count bytes since the
/// ring last grew; `position % capacity` is where a byte sits.
#[derive(Clone, Copy, Debug)]
pub(super) struct State {
    pub(super) head: u64,
    pub(super) tail: u64,
    pub(super) count: u64,
    pub(super) capacity: u64,
    /// Changes whenever the ring grows, telling other processes to map it again.
    pub(super) generation: u64,
    pub(super) maxsize: u64,
    pub(super) max_message: u64,
    /// Messages put and not yet marked done (for `JoinableQueue`).
    pub(super) unfinished: u64,
    /// Whether a writer is copying a large message in, past `tail`, with the mutex released.
    /// Meanwhile nothing else is written, and the ring neither grows nor starts over. Set and
    /// cleared under both mutexes; left set by a writer that died, until the next one sees it.
    pub(super) writing: bool,
}

/// This process's side of a queue.
pub(super) struct Inner {
    pub(super) header: Shared<Header>,
    /// The ring's memory, inherited by forked children as an open file, and sent to children
    /// started afresh.
    pub(super) ring: OwnedFd,
    /// This process's mapping of the ring; used only under the shared mutex, but for the
    /// copy of a large message, through a pointer taken under it (see `State::writing`).
    pub(super) view: UnsafeCell<View>,
    /// Set by `close`, for this process.
    pub(super) closed: AtomicBool,
}

// SAFETY: the only unsynchronised field, `view`, is touched only while the shared mutex is
// held, which excludes every other thread of every process. The memory it maps is copied into
// outside the mutex only by the writer of a large message, in room no one else touches until
// it is done (see `State::writing`).
unsafe impl Sync for Inner {}
// SAFETY: as above; the mapping and the file belong to the process, not to a thread.
unsafe impl Send for Inner {}

/// A mapping of the ring at some generation; by default, none yet.
#[derive(Default)]
pub(super) struct View {
    pub(super) ptr: Option<NonNull<u8>>,
    pub(super) len: u64,
    pub(super) generation: u64,
}

impl Inner {
    pub(super) fn new(options: Builder) -> Result<Inner> {
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
            view: UnsafeCell::new(View::default()),
            closed: AtomicBool::new(false),
        })
    }

    /// The message limit, which never changes after the queue is made.
    pub(super) fn header_state_max_message(&self) -> u64 {
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
