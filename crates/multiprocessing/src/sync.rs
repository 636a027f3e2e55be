//! The process-shared primitives underneath `Lock`, `RLock`, `Value` and the queues: POSIX
//! robust mutexes and condition variables, placed in [`Shared`](crate::shm::Shared) memory.
//!
//! A robust mutex is what lets the runtime avoid a trap of Python's: when the process (or
//! thread) holding it dies, the next `lock` does not block forever but succeeds and reports
//! [`Acquired::OwnerDied`], so the caller can repair or report whatever the dead owner left
//! half done.
//!
//! See also: [`pthread_mutexattr_setrobust(3)`](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html).

use std::cell::UnsafeCell;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// How a lock was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// From an owner that released it, or from no owner.
    Clean,
    /// From an owner that died holding it. The mutex is usable again, but what it protects
    /// may be half updated.
    OwnerDied,
}

/// Whether a mutex may be locked again by the thread that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Locking it twice from one thread is an error (`EDEADLK`), not a deadlock.
    Normal,
    /// The owner may lock it again; it is released when unlocked as many times.
    Recursive,
}

/// A robust, process-shared pthread mutex. It must live in shared memory, and must not move
/// once [`init`](RawMutex::init) has run.
pub(crate) struct RawMutex {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: a pthread mutex is made to be used from many threads at once, through its pointer.
unsafe impl Sync for RawMutex {}
// SAFETY: as above; the value itself is never moved after `init`.
unsafe impl Send for RawMutex {}

/// Turns a pthread return code into a `Result`.
fn check(code: libc::c_int, context: &'static str) -> Result<()> {
    match code {
        0 => Ok(()),
        errno => Err(Error::Os {
            context,
            errno: Errno::from_raw(errno),
        }),
    }
}

/// Locks `mutex`, waiting until `deadline` on the monotonic clock, the clock of `Instant`;
/// returns the pthread code.
///
/// `pthread_mutex_timedlock` measures its deadline on `CLOCK_REALTIME`, which jumps when the
/// system time is set: a wait of a second could last an hour, or end at once. glibc 2.30 and
/// later take the clock as an argument.
#[cfg(target_env = "gnu")]
fn lock_until(mutex: *mut libc::pthread_mutex_t, deadline: Instant) -> libc::c_int {
    unsafe extern "C" {
        fn pthread_mutex_clocklock(
            mutex: *mut libc::pthread_mutex_t,
            clock: libc::clockid_t,
            abstime: *const libc::timespec,
        ) -> libc::c_int;
    }
    let at = clock_after(
        libc::CLOCK_MONOTONIC,
        deadline.saturating_duration_since(Instant::now()),
    );
    // SAFETY: the caller passes an initialised mutex that stays mapped; `at` is a valid
    // timespec on the clock named with it.
    unsafe { pthread_mutex_clocklock(mutex, libc::CLOCK_MONOTONIC, &at) }
}

/// Without glibc: `pthread_mutex_timedlock`, on the real-time clock.
#[cfg(not(target_env = "gnu"))]
fn lock_until(mutex: *mut libc::pthread_mutex_t, deadline: Instant) -> libc::c_int {
    let at = clock_after(
        libc::CLOCK_REALTIME,
        deadline.saturating_duration_since(Instant::now()),
    );
    // SAFETY: as above, on the clock `pthread_mutex_timedlock` uses.
    unsafe { libc::pthread_mutex_timedlock(mutex, &at) }
}

/// The time on `clock` that is `left` from now.
fn clock_after(clock: libc::clockid_t, left: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(clock, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
    libc::timespec {
        tv_sec: now
            .tv_sec
            .saturating_add(left.as_secs().min(i64::MAX as u64 / 2) as libc::time_t)
            .saturating_add((nanos / 1_000_000_000) as libc::time_t),
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

impl RawMutex {
    /// An uninitialised mutex, to be placed in shared memory and then [`init`](Self::init)ed.
    pub(crate) fn new() -> RawMutex {
        RawMutex {
            // SAFETY: all-zero bytes are a valid (default, unlocked) pthread_mutex_t on Linux;
            // `init` sets the attributes before any use.
            mutex: UnsafeCell::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Makes the mutex robust and process-shared, in place.
    ///
    /// # Safety
    ///
    /// Call once, before any other method, at the mutex's final address (in shared memory),
    /// while no other thread or process can see it.
    pub(crate) unsafe fn init(&self, kind: Kind) -> Result<()> {
        let kind = match kind {
            Kind::Normal => libc::PTHREAD_MUTEX_ERRORCHECK,
            Kind::Recursive => libc::PTHREAD_MUTEX_RECURSIVE,
        };
        // SAFETY: the attribute object is initialised before use and destroyed after; the
        // mutex pointer is valid and, per this function's contract, not yet shared.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            check(
                libc::pthread_mutexattr_init(&mut attr),
                "cannot make a mutex",
            )?;
            let result = check(
                libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                "cannot share a mutex between processes",
            )
            .and_then(|()| {
                check(
                    libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                    "cannot make a mutex robust",
                )
            })
            .and_then(|()| {
                check(
                    libc::pthread_mutexattr_settype(&mut attr, kind),
                    "cannot set a mutex type",
                )
            })
            .and_then(|()| {
                check(
                    libc::pthread_mutex_init(self.mutex.get(), &attr),
                    "cannot make a mutex",
                )
            });
            libc::pthread_mutexattr_destroy(&mut attr);
            result
        }
    }

    /// Locks, waiting until `deadline` (forever for `None`); `Ok(None)` when it passed.
    pub(crate) fn lock(&self, deadline: Option<Instant>) -> Result<Option<Acquired>> {
        let code = match deadline {
            // SAFETY: the mutex was initialised (the contract of `init`) and stays mapped.
            None => unsafe { libc::pthread_mutex_lock(self.mutex.get()) },
            Some(deadline) => lock_until(self.mutex.get(), deadline),
        };
        self.acquired(code)
    }

    /// Locks if that needs no waiting; `Ok(None)` when another thread or process holds it.
    pub(crate) fn try_lock(&self) -> Result<Option<Acquired>> {
        // SAFETY: the mutex was initialised and stays mapped.
        let code = unsafe { libc::pthread_mutex_trylock(self.mutex.get()) };
        self.acquired(code)
    }

    /// Interprets the return code of a lock call.
    ///
    /// A [`Kind::Normal`] mutex that the calling thread already holds gives
    /// [`Error::WouldDeadlock`] from `lock`, timed or not, and on glibc from `try_lock` too.
    fn acquired(&self, code: libc::c_int) -> Result<Option<Acquired>> {
        match code {
            0 => Ok(Some(Acquired::Clean)),
            libc::ETIMEDOUT | libc::EBUSY => Ok(None),
            libc::EDEADLK => Err(Error::WouldDeadlock),
            libc::EOWNERDEAD => {
                // SAFETY: we hold the mutex (EOWNERDEAD means it is ours now); marking it
                // consistent lets it be used again after we unlock it.
                let code = unsafe { libc::pthread_mutex_consistent(self.mutex.get()) };
                if let Err(error) = check(code, "cannot recover a mutex whose owner died") {
                    // Do not keep a mutex we cannot use: unlocked while inconsistent, it
                    // makes every later lock fail (ENOTRECOVERABLE) instead of wait forever.
                    let _ = self.unlock();
                    return Err(error);
                }
                Ok(Some(Acquired::OwnerDied))
            }
            errno => Err(Error::Os {
                context: "cannot lock a mutex",
                errno: Errno::from_raw(errno),
            }),
        }
    }

    /// Unlocks; [`Error::NotOwner`] when the calling thread does not hold it.
    pub(crate) fn unlock(&self) -> Result<()> {
        // SAFETY: the mutex was initialised and stays mapped; an error-checking or recursive
        // mutex refuses an unlock by a thread that does not own it.
        let code = unsafe { libc::pthread_mutex_unlock(self.mutex.get()) };
        match code {
            libc::EPERM => Err(Error::NotOwner),
            code => check(code, "cannot unlock a mutex"),
        }
    }

    fn as_ptr(&self) -> *mut libc::pthread_mutex_t {
        self.mutex.get()
    }
}

/// A process-shared pthread condition variable, measured on the monotonic clock. Same rules
/// as [`RawMutex`]: shared memory, `init` once, never moved.
pub(crate) struct RawCondvar {
    cond: UnsafeCell<libc::pthread_cond_t>,
}

// SAFETY: a pthread condition variable is made to be used from many threads at once.
unsafe impl Sync for RawCondvar {}
// SAFETY: as above; never moved after `init`.
unsafe impl Send for RawCondvar {}

impl RawCondvar {
    /// An uninitialised condition variable, to be placed and then [`init`](Self::init)ed.
    pub(crate) fn new() -> RawCondvar {
        RawCondvar {
            // SAFETY: all-zero bytes are a valid default pthread_cond_t on Linux; `init`
            // sets the attributes before use.
            cond: UnsafeCell::new(unsafe { std::mem::zeroed() }),
        }
    }

    /// Makes it process-shared and monotonic, in place.
    ///
    /// # Safety
    ///
    /// As [`RawMutex::init`].
    pub(crate) unsafe fn init(&self) -> Result<()> {
        // SAFETY: as in `RawMutex::init`.
        unsafe {
            let mut attr: libc::pthread_condattr_t = std::mem::zeroed();
            check(
                libc::pthread_condattr_init(&mut attr),
                "cannot make a condition",
            )?;
            let result = check(
                libc::pthread_condattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
                "cannot share a condition between processes",
            )
            .and_then(|()| {
                check(
                    libc::pthread_condattr_setclock(&mut attr, libc::CLOCK_MONOTONIC),
                    "cannot set a condition's clock",
                )
            })
            .and_then(|()| {
                check(
                    libc::pthread_cond_init(self.cond.get(), &attr),
                    "cannot make a condition",
                )
            });
            libc::pthread_condattr_destroy(&mut attr);
            result
        }
    }

    /// Releases `mutex` (which the caller holds), waits for a notification or `deadline`,
    /// and locks it again. Returns how the mutex was re-acquired and whether time ran out.
    /// Wake-ups can be spurious: callers re-check their condition.
    pub(crate) fn wait(
        &self,
        mutex: &RawMutex,
        deadline: Option<Instant>,
    ) -> Result<(Acquired, bool)> {
        let code = match deadline {
            // SAFETY: both objects were initialised and stay mapped; the caller holds `mutex`.
            None => unsafe { libc::pthread_cond_wait(self.cond.get(), mutex.as_ptr()) },
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let at = clock_after(libc::CLOCK_MONOTONIC, left);
                // SAFETY: as above; `at` is a valid timespec on the condition's clock.
                unsafe { libc::pthread_cond_timedwait(self.cond.get(), mutex.as_ptr(), &at) }
            }
        };
        match code {
            0 => Ok((Acquired::Clean, false)),
            libc::ETIMEDOUT => Ok((Acquired::Clean, true)),
            other => mutex
                .acquired(other)
                .map(|acquired| (acquired.expect("a wait returns with the mutex held"), false)),
        }
    }

    /// Wakes one waiter.
    pub(crate) fn notify_one(&self) {
        // SAFETY: initialised and mapped.
        unsafe { libc::pthread_cond_signal(self.cond.get()) };
    }

    /// Wakes every waiter.
    pub(crate) fn notify_all(&self) {
        // SAFETY: initialised and mapped.
        unsafe { libc::pthread_cond_broadcast(self.cond.get()) };
    }
}

/// When a wait of `timeout` from now ends; `None` (no end) for a timeout too long to count.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Locks an in-process mutex whose data stays valid even if a holder panicked.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` until `done` holds or `deadline` passes (never, for `None`); the
/// guard if `done` holds.
pub(crate) fn wait_until<'a, T>(
    condvar: &Condvar,
    mut guard: MutexGuard<'a, T>,
    deadline: Option<Instant>,
    mut done: impl FnMut(&mut T) -> bool,
) -> Option<MutexGuard<'a, T>> {
    while !done(&mut guard) {
        guard = match deadline {
            None => condvar.wait(guard).unwrap_or_else(PoisonError::into_inner),
            Some(deadline) => {
                let left = deadline.checked_duration_since(Instant::now())?;
                condvar
                    .wait_timeout(guard, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
    Some(guard)
}
