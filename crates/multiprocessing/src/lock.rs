//! Python's `multiprocessing.Lock` and `multiprocessing.RLock`: locks that a process shares
//! with the children it starts afterwards, and that survive an owner that dies holding them.
//!
//! A [`Lock`] lives in shared memory (a memory file, mapped `MAP_SHARED`), so a child forked
//! after it was made uses the very same lock as its parent, through the handle its closure
//! captured; a child started afresh (`spawn`, `forkserver`) with the lock in the argument of
//! [`Process::task`](crate::Process::task) is sent the memory's descriptor and maps it
//! again. A lock made in a child is shared with that child's own children only. Nothing else
//! can reach it: encoding a `Lock` anywhere else fails, just as Python refuses to pickle one
//! ("Lock objects should only be shared between processes through inheritance").
//!
//! Holding the lock is holding a guard: [`Lock::acquire`] returns a [`LockGuard`], and
//! dropping the guard releases the lock, the Rust counterpart of `with lock:`.
//!
//! # A dead owner does not block the others
//!
//! CPython's `Lock` is a semaphore, which has no owner: when a process dies holding it, every
//! other process that tries to acquire it waits forever (CPython issue 88304). This one is a
//! robust, process-shared pthread mutex. When its owner dies, the next acquire gets the lock
//! and is told: [`LockGuard::previous_owner_died`] is true, and the runtime logs a `WARNING`
//! record. What the dead owner was doing under the lock may be half done; the guard's holder
//! decides how to repair or report it.
//!
//! # Owned by a thread
//!
//! A pthread mutex belongs to the thread that locked it, and only that thread can unlock it.
//! A guard therefore cannot be sent to another thread (it is not `Send`), and
//! [`Lock::release`] from any other thread or process fails with [`Error::NotOwner`]. CPython's
//! `Lock` may be released by any thread or process; code that acquires in one thread and
//! releases in another needs another design here, such as a message on a queue.
//!
//! Acquiring a `Lock` that the calling thread already holds fails with
//! [`Error::WouldDeadlock`], where CPython waits forever. An [`RLock`] may be acquired again
//! by its owner.
//!
//! See also: [`pthread_mutexattr_setrobust(3)`](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html).

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::shm::Shared;
use crate::start::descriptors::{Passed, Refused};
use crate::sync::{Acquired, Kind, RawMutex};

/// A lock shared by the processes started after it is made: Python's `multiprocessing.Lock`.
///
/// Cheap to clone; every clone is a handle to the same lock, usable from any thread of this
/// process and from every child forked after [`Lock::new`]. See the [module](self) for how it
/// differs from Python's: it survives a dead owner, and belongs to the thread that holds it.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{Lock, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let lock = Lock::new()?;
/// let p = Process::new({
///     let lock = lock.clone();
///     move || -> multiprocessing::Result<()> {
///         let _guard = lock.acquire()?; // with lock:
///         println!("Lock acquired via with");
///         Ok(())
///     }
/// });
/// p.start()?;
/// p.join()?;
/// # Ok(())
/// # }
/// ```
///
/// The lesson `lesson-lock` runs this with two processes.
#[derive(Clone)]
pub struct Lock {
    core: Arc<Mapping<Core>>,
}

/// A lock that its owner may acquire again: Python's `multiprocessing.RLock`.
///
/// Each acquire returns a [`LockGuard`] for one level; the lock is free again once every
/// level has been released. Other threads and processes wait as for a [`Lock`], and a dead
/// owner is reported the same way, whatever number of levels it held.
///
/// # Example
///
/// ```
/// use multiprocessing::RLock;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let rlock = RLock::new()?;
/// let outer = rlock.acquire()?;
/// let inner = rlock.acquire()?; // a Lock would fail here with Error::WouldDeadlock
/// drop(inner);
/// drop(outer);
/// assert!(!rlock.locked());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RLock {
    core: Arc<Mapping<Core>>,
}

/// A held [`Lock`], or one level of a held [`RLock`]; dropping it releases that level.
///
/// It stays on the thread that acquired the lock (it is not `Send`), since only that thread
/// can release it.
///
/// ```compile_fail,E0277
/// let lock = multiprocessing::Lock::new().unwrap();
/// let guard = lock.acquire().unwrap();
/// std::thread::spawn(move || drop(guard)); // error: `*const ()` cannot be sent between threads
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    core: &'a Core,
    previous_owner_died: bool,
    /// Not `Send`, not `Sync`: the guard belongs to the thread that owns the mutex.
    _thread: PhantomData<*const ()>,
}

impl LockGuard<'_> {
    /// Whether the lock was taken from an owner that died holding it.
    ///
    /// Whatever the lock protects may then be half updated. The runtime also logs a
    /// `WARNING` record when this happens, so that it is not missed by code that does not ask.
    ///
    /// # Example
    ///
    /// ```
    /// let lock = multiprocessing::Lock::new()?;
    /// let guard = lock.acquire()?;
    /// assert!(!guard.previous_owner_died());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn previous_owner_died(&self) -> bool {
        self.previous_owner_died
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.core.release() {
            // Only a level already released with `release()` gets here.
            log::warn!("dropping a lock guard: {error}");
        }
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("previous_owner_died", &self.previous_owner_died)
            .finish()
    }
}

impl Lock {
    /// Makes a lock, free, in memory that children forked from now on share.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the shared memory cannot be mapped or the mutex cannot be made.
    ///
    /// # Example
    ///
    /// ```
    /// let lock = multiprocessing::Lock::new()?;
    /// assert!(!lock.locked());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn new() -> Result<Lock> {
        Ok(Lock {
            core: Mapping::new(Core::new(Kind::Normal))?,
        })
    }

    /// Waits until the lock is free, takes it, and returns the guard that holds it:
    /// `lock.acquire()`, or `with lock:` with the guard's scope as the block.
    ///
    /// If the previous owner died holding the lock, this returns at once, with
    /// [`LockGuard::previous_owner_died`] set.
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] when the calling thread already holds it (drop that guard
    /// first), [`Error::Os`] if the mutex fails.
    ///
    /// # Example
    ///
    /// ```
    /// let lock = multiprocessing::Lock::new()?;
    /// {
    ///     let _guard = lock.acquire()?;
    ///     assert!(lock.locked());
    /// } // released here
    /// assert!(!lock.locked());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        self.core.acquire()
    }

    /// Waits at most `timeout` for the lock: `lock.acquire(timeout=t)`.
    ///
    /// `None` when another thread or process still held it after `timeout`, where Python
    /// returns `False`. A zero timeout only tries, as [`try_acquire`](Lock::try_acquire).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Lock::acquire).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lock = multiprocessing::Lock::new()?;
    /// let guard = lock.acquire_timeout(Duration::from_millis(10))?;
    /// assert!(guard.is_some());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        self.core.acquire_within(Wait::until(timeout))
    }

    /// Takes the lock if that needs no waiting: `lock.acquire(block=False)`.
    ///
    /// `None` when another thread or process holds it.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Lock::acquire).
    ///
    /// # Example
    ///
    /// ```
    /// let lock = multiprocessing::Lock::new()?;
    /// let other = lock.clone();
    /// let guard = lock.acquire()?;
    /// let elsewhere = std::thread::spawn(move || other.try_acquire().map(|g| g.is_some()));
    /// assert!(!elsewhere.join().unwrap()?);
    /// drop(guard);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockGuard<'_>>> {
        self.core.acquire_within(Wait::No)
    }

    /// Whether a thread or process holds the lock, the calling thread included.
    ///
    /// A snapshot: by the time it returns, the answer may have changed. It is found by
    /// trying to take the lock and letting it go at once, so a [`try_acquire`] elsewhere in
    /// that instant may find the lock busy. A lock whose owner died is free; the next acquire
    /// is still told that its owner died.
    ///
    /// [`try_acquire`]: Lock::try_acquire
    ///
    /// # Example
    ///
    /// ```
    /// let lock = multiprocessing::Lock::new()?;
    /// let guard = lock.acquire()?;
    /// assert!(lock.locked());
    /// drop(guard);
    /// assert!(!lock.locked());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// Releases the lock without its guard: Python's `lock.release()`.
    ///
    /// Dropping the guard is the usual way to release. This one is for a guard that was given
    /// up with [`std::mem::forget`], to release the lock later in another function, as Python
    /// code that calls `acquire()` and `release()` in different places does. It must be called
    /// from the thread that acquired the lock; a guard still alive would release it again.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread does not hold the lock: another thread or
    /// process holds it (CPython would let it go), or no one does.
    ///
    /// # Example
    ///
    /// ```
    /// use multiprocessing::{Error, Lock};
    ///
    /// let lock = Lock::new()?;
    /// std::mem::forget(lock.acquire()?);
    /// lock.release()?;
    /// assert!(matches!(lock.release(), Err(Error::NotOwner)));
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.core.release()
    }
}

/// A lock travels to a child started afresh as the descriptor of its memory; see
/// [`Process::task`](crate::Process::task). Anywhere else, encoding it fails, as Python refuses
/// to pickle one.
impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.core
            .pass("Lock")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// A lock is decoded only by a child started afresh with it.
impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        Ok(Lock {
            core: Mapping::receive("Lock", passed).map_err(serde::de::Error::custom)?,
        })
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

impl RLock {
    /// Makes a recursive lock, free, in memory that children forked from now on share.
    ///
    /// # Errors
    ///
    /// As [`Lock::new`].
    ///
    /// # Example
    ///
    /// ```
    /// let rlock = multiprocessing::RLock::new()?;
    /// assert!(!rlock.locked());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn new() -> Result<RLock> {
        Ok(RLock {
            core: Mapping::new(Core::new(Kind::Recursive))?,
        })
    }

    /// Takes one level of the lock, waiting while another thread or process holds it.
    ///
    /// The owner gets another level at once. As [`Lock::acquire`] otherwise, dead owner
    /// included.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the mutex fails.
    ///
    /// # Example
    ///
    /// ```
    /// let rlock = multiprocessing::RLock::new()?;
    /// let first = rlock.acquire()?;
    /// let second = rlock.acquire()?;
    /// drop(second);
    /// assert!(rlock.locked()); // one level is still held
    /// drop(first);
    /// assert!(!rlock.locked());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn acquire(&self) -> Result<LockGuard<'_>> {
        self.core.acquire()
    }

    /// Takes one level, waiting at most `timeout` while someone else holds the lock; `None`
    /// if they still did. As [`Lock::acquire_timeout`].
    ///
    /// # Errors
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rlock = multiprocessing::RLock::new()?;
    /// let _outer = rlock.acquire()?;
    /// assert!(rlock.acquire_timeout(Duration::ZERO)?.is_some()); // the owner never waits
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard<'_>>> {
        self.core.acquire_within(Wait::until(timeout))
    }

    /// Takes one level if that needs no waiting; `None` when someone else holds the lock.
    ///
    /// # Errors
    ///
    /// As [`acquire`](RLock::acquire).
    ///
    /// # Example
    ///
    /// ```
    /// let rlock = multiprocessing::RLock::new()?;
    /// assert!(rlock.try_acquire()?.is_some());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn try_acquire(&self) -> Result<Option<LockGuard<'_>>> {
        self.core.acquire_within(Wait::No)
    }

    /// Whether a thread or process holds at least one level, the calling thread included. A
    /// snapshot, found as [`Lock::locked`] finds it.
    ///
    /// # Example
    ///
    /// ```
    /// let rlock = multiprocessing::RLock::new()?;
    /// let _guard = rlock.acquire()?;
    /// assert!(rlock.locked());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn locked(&self) -> bool {
        self.core.locked()
    }

    /// Releases one level without its guard: Python's `rlock.release()`. As
    /// [`Lock::release`]: for a guard given up with [`std::mem::forget`].
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the calling thread holds no level: another thread or process
    /// owns the lock, or no one does. Python raises `AssertionError` for both.
    ///
    /// # Example
    ///
    /// ```
    /// use multiprocessing::{Error, RLock};
    ///
    /// let rlock = RLock::new()?;
    /// let other = rlock.clone();
    /// std::mem::forget(rlock.acquire()?);
    /// let elsewhere = std::thread::spawn(move || other.release());
    /// assert!(matches!(elsewhere.join().unwrap(), Err(Error::NotOwner)));
    /// rlock.release()?;
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn release(&self) -> Result<()> {
        self.core.release()
    }
}

/// As a [`Lock`]'s.
impl Serialize for RLock {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.core
            .pass("RLock")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// As a [`Lock`]'s.
impl<'de> Deserialize<'de> for RLock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        Ok(RLock {
            core: Mapping::receive("RLock", passed).map_err(serde::de::Error::custom)?,
        })
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock").finish_non_exhaustive()
    }
}

/// How long an acquire may wait.
#[derive(Clone, Copy, Debug)]
enum Wait {
    Forever,
    Until(Instant),
    No,
}

impl Wait {
    /// At most `timeout` from now; a timeout too long to add to the clock waits forever.
    fn until(timeout: Duration) -> Wait {
        crate::sync::deadline_after(timeout).map_or(Wait::Forever, Wait::Until)
    }
}

/// What trying to take a lock, and letting it go at once, found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// No one held it.
    Free,
    /// The calling thread holds this `RLock`.
    HeldHere,
    /// It could not be taken: another thread or process holds it, or, for a `Lock`, maybe
    /// the calling thread.
    Busy,
}

/// What a [`Lock`], an [`RLock`] or a [`Value`](crate::Value) keeps in shared memory.
pub(crate) struct Core {
    mutex: RawMutex,
    /// Whether the owner may lock it again.
    kind: Kind,
    /// For a recursive mutex, how many levels the owner holds (0 when free), which only the
    /// thread that holds the mutex reads or writes: the mutex orders every access, so
    /// `Relaxed` is enough. Unused for a normal mutex.
    levels: AtomicU32,
    /// Set when a probe took the mutex from a dead owner and let it go again, so that the next
    /// acquirer is still told. Also accessed only under the mutex.
    owner_died: AtomicBool,
}

impl Core {
    /// A lock of `kind`, to be placed in shared memory by [`Mapping::new`].
    pub(crate) fn new(kind: Kind) -> Core {
        Core {
            mutex: RawMutex::new(),
            kind,
            levels: AtomicU32::new(0),
            owner_died: AtomicBool::new(false),
        }
    }

    /// Makes the mutex, in place.
    ///
    /// # Safety
    ///
    /// As [`RawMutex::init`]: once, at the final address in shared memory, before anyone
    /// else can see it.
    unsafe fn init(&self) -> Result<()> {
        // SAFETY: this function's contract is the mutex's.
        unsafe { self.mutex.init(self.kind) }
    }

    /// Takes one level, waiting as long as it takes.
    pub(crate) fn acquire(&self) -> Result<LockGuard<'_>> {
        let guard = self.acquire_within(Wait::Forever)?;
        Ok(guard.expect("a wait without deadline returns with the lock"))
    }

    /// Takes one level, waiting as `wait` says; `None` when it would have to wait longer.
    fn acquire_within(&self, wait: Wait) -> Result<Option<LockGuard<'_>>> {
        let acquired = match wait {
            Wait::Forever => self.mutex.lock(None)?,
            Wait::Until(deadline) => self.mutex.lock(Some(deadline))?,
            Wait::No => self.mutex.try_lock()?,
        };
        let Some(acquired) = acquired else {
            return Ok(None);
        };
        // From here on this thread holds the mutex.
        let died = acquired == Acquired::OwnerDied || self.owner_died.load(Relaxed);
        if died {
            // The dead owner's levels died with it.
            self.levels.store(0, Relaxed);
            self.owner_died.store(false, Relaxed);
            log::warn!(
                "acquired a lock whose previous owner died holding it: \
                 what the lock protects may be half updated"
            );
        }
        if self.kind == Kind::Recursive {
            self.levels.fetch_add(1, Relaxed);
        }
        Ok(Some(LockGuard {
            core: self,
            previous_owner_died: died,
            _thread: PhantomData,
        }))
    }

    /// Whether anyone holds the lock; see [`Lock::locked`].
    pub(crate) fn locked(&self) -> bool {
        // A mutex that cannot even be tried cannot be acquired either.
        !matches!(self.probe(), Ok(Probe::Free))
    }

    /// Releases one level held by the calling thread, or fails with [`Error::NotOwner`].
    ///
    /// The guard's drop comes here too, rather than unlocking blindly, in case its level was
    /// already released with `release()`.
    pub(crate) fn release(&self) -> Result<()> {
        if self.kind == Kind::Normal {
            // The mutex knows its owner, and refuses anyone else.
            return self.mutex.unlock();
        }
        // `levels` may only change under the mutex: make sure this thread holds it first.
        if self.probe()? != Probe::HeldHere {
            return Err(Error::NotOwner);
        }
        self.levels.fetch_sub(1, Relaxed);
        self.mutex.unlock()
    }

    /// Tries to take the lock, and lets it go at once if that worked.
    fn probe(&self) -> Result<Probe> {
        match self.mutex.try_lock() {
            // glibc says `WouldDeadlock` for a normal mutex that this thread holds.
            Ok(None) | Err(Error::WouldDeadlock) => Ok(Probe::Busy),
            Ok(Some(acquired)) => {
                if acquired == Acquired::OwnerDied {
                    // The next acquirer is the one to tell.
                    self.levels.store(0, Relaxed);
                    self.owner_died.store(true, Relaxed);
                }
                // A recursive mutex that this thread already held has levels besides this
                // probe's, which it does not count.
                let here = self.kind == Kind::Recursive && self.levels.load(Relaxed) > 0;
                self.mutex.unlock()?;
                Ok(if here { Probe::HeldHere } else { Probe::Free })
            }
            Err(error) => Err(error),
        }
    }
}

impl AsRef<Core> for Core {
    fn as_ref(&self) -> &Core {
        self
    }
}

/// The shared memory of a lock: unmapped with the last handle of this process, unless the lock
/// is held.
///
/// A robust mutex is robust only while it is mapped. When a thread dies holding one, the kernel
/// finds it through that thread's list of held mutexes, in the memory of the thread's process;
/// a mutex that the process has unmapped is out of its reach, and stays locked forever. A thread
/// can hold a lock without a handle, through a guard given up with `std::mem::forget`, so the
/// last handle leaves a held lock mapped (by this process or another: nothing tells which),
/// which costs a page until the process ends (but not a descriptor).
pub(crate) struct Mapping<T: AsRef<Core>> {
    shared: ManuallyDrop<Shared<T>>,
}

impl<T: AsRef<Core>> Mapping<T> {
    /// Places `value` in shared memory and makes its lock there.
    pub(crate) fn new(value: T) -> Result<Arc<Mapping<T>>> {
        let shared = Shared::new(value)?;
        // SAFETY: the core is at its final address, in shared memory, and no other thread or
        // process has seen it yet.
        unsafe { (*shared).as_ref().init()? };
        Ok(Arc::new(Mapping {
            shared: ManuallyDrop::new(shared),
        }))
    }
}

impl<T: AsRef<Core>> Mapping<T> {
    /// A copy of the memory's descriptor, for a child started afresh; `what` names the type
    /// that holds it, for errors.
    pub(crate) fn pass(&self, what: &'static str) -> std::result::Result<Passed, Refused> {
        self.shared.pass(what)
    }

    /// The memory of a lock its parent passed with [`pass`](Mapping::pass); its mutex is made
    /// already.
    pub(crate) fn receive(
        what: &'static str,
        passed: Passed,
    ) -> std::result::Result<Arc<Mapping<T>>, Refused> {
        Ok(Arc::new(Mapping {
            shared: ManuallyDrop::new(Shared::receive(what, passed)?),
        }))
    }
}

impl<T: AsRef<Core>> Deref for Mapping<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.shared
    }
}

impl<T: AsRef<Core>> Drop for Mapping<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and never used again.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        if (*shared).as_ref().locked() {
            // Its descriptor goes; the mapping stays.
            shared.leak();
        }
    }
}
