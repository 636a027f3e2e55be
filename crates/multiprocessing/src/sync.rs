//! The process-shared primitives underneath `Lock`, `RLock`, `Value` and the queues: POSIX
//! robust mutexes, and conditions to wait for under them, placed in
//! [`Shared`](crate::shm::Shared) memory.
//!
//! A robust mutex is what lets the runtime avoid a trap of Python's: when the process (or
//! thread) holding it dies, the next `lock` does not block forever but succeeds and reports
//! [`Acquired::OwnerDied`], so the caller can repair or report whatever the dead owner left
//! half done.
//!
//! A [`SharedCondition`] does the same for waiting. A process killed while it waits leaves
//! nothing that anyone waits for, where with a process-shared `pthread_cond_t` the next
//! signal or broadcast would wait for the dead process forever, holding the mutex (and in
//! Python, the next `Condition.notify` likewise).
//!
//! See also: [`pthread_mutexattr_setrobust(3)`](https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html),
//! [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
}

/// A condition that processes wait for under a [`RawMutex`], such as "the queue is not
/// empty": what a process-shared condition variable would be, made so that a waiter killed at
/// any instant leaves nothing behind. Same rules as [`RawMutex`]: it lives in shared memory.
///
/// glibc's `pthread_cond_t` cannot be that. It keeps count of the waiters inside each wait
/// (which group each belongs to, how many have yet to leave), and a waiter killed there never
/// leaves: the next `pthread_cond_signal` either spends its wake-up on the dead process or
/// waits forever for it to go, holding the mutex. Here a waiter sleeps on one 32-bit word
/// with a futex, which the kernel forgets when the sleeper dies, and a flag says that someone
/// may be asleep. A waiter that died (or gave up at its deadline) leaves at most that flag
/// set, which costs the next notifier one `FUTEX_WAKE` that finds no one: never a hang.
///
/// A notification wakes every waiter, and a notifier notifies *before* it makes the change
/// visible: so no death, of waiter or notifier, at any instant, leaves a waiter asleep while
/// what it waits for has come. Waking one waiter would not do: the one woken could be killed
/// before it takes the mutex, and the others would sleep on beside a message. See
/// [`notify`](Self::notify).
///
/// See also: [`futex(2)`](https://man7.org/linux/man-pages/man2/futex.2.html).
pub(crate) struct SharedCondition {
    /// Changes at each notification that may find a waiter: a waiter sleeps only while it
    /// still holds the value it read under the mutex, so no notification is missed.
    sequence: AtomicU32,
    /// Whether a process has begun to wait since the last notification; read and written
    /// only under the mutex. It spares `notify` a system call when no one waits.
    waiting: AtomicBool,
}

impl SharedCondition {
    /// A condition no one waits for; ready to use once it is in shared memory.
    pub(crate) const fn new() -> SharedCondition {
        SharedCondition {
            sequence: AtomicU32::new(0),
            waiting: AtomicBool::new(false),
        }
    }

    /// Releases `mutex`, which the caller holds, sleeps until a notification or `deadline`,
    /// and locks `mutex` again. Returns how the mutex was re-acquired and whether time ran
    /// out. Wake-ups can be spurious: callers re-check what they wait for. A signal handled
    /// during the sleep does not end it, nor move its deadline.
    ///
    /// # Errors
    ///
    /// [`Error::NotOwner`] when the caller does not hold `mutex`; [`Error::Os`] when the
    /// futex or the mutex fails, in which case the mutex is held again all the same, unless
    /// locking it is what failed.
    pub(crate) fn wait(
        &self,
        mutex: &RawMutex,
        deadline: Option<Instant>,
    ) -> Result<(Acquired, bool)> {
        if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            return Ok((Acquired::Clean, true));
        }
        // Both under the mutex: a notifier, which holds it too, comes after this, finds
        // `waiting` set and changes `sequence` from the value read here, so the sleep below
        // either ends or never starts.
        self.waiting.store(true, Ordering::Relaxed);
        let sequence = self.sequence.load(Ordering::Relaxed);
        mutex.unlock()?;
        let slept = futex_wait(&self.sequence, sequence, deadline);
        let acquired = mutex.lock(None)?.expect("no deadline");
        Ok((acquired, slept?))
    }

    /// Wakes every process waiting for the condition, if any may be. The caller holds the
    /// mutex, and calls this before it makes the change that the waiters wait for: a
    /// notifier killed after the change has already woken them, and they find the mutex
    /// released by the kernel (`Acquired::OwnerDied`) with the change made. Killed before
    /// it, it leaves them woken for nothing: they look, and wait again.
    pub(crate) fn notify(&self) {
        // A load, not a swap: under the mutex no one else writes the flag, so a put that
        // finds no one waiting costs one plain read.
        if !self.waiting.load(Ordering::Relaxed) {
            return;
        }
        self.waiting.store(false, Ordering::Relaxed);
        // It wraps after 2^32 notifications: a waiter would miss one only if exactly that
        // many came between its reading the word and its sleeping on it.
        self.sequence.fetch_add(1, Ordering::Relaxed);
        // SAFETY: FUTEX_WAKE only reads the address, a live aligned u32 in this mapping. The
        // operation is the shared one (no FUTEX_PRIVATE_FLAG): the waiters are other
        // processes, which map the word at other addresses.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.sequence.as_ptr(),
                libc::FUTEX_WAKE,
                libc::c_int::MAX,
            )
        };
    }
}

/// Sleeps while `word` holds `expected`, until woken or `deadline`; whether time ran out.
/// Returns at once if `word` no longer holds `expected`.
fn futex_wait(word: &AtomicU32, expected: u32, deadline: Option<Instant>) -> Result<bool> {
    // An absolute time on the monotonic clock, so that waking early for a signal and sleeping
    // again keeps the original deadline. FUTEX_WAIT_BITSET without FUTEX_CLOCK_REALTIME
    // measures it on CLOCK_MONOTONIC, the clock of `Instant`.
    let until = deadline.map(|deadline| {
        clock_after(
            libc::CLOCK_MONOTONIC,
            deadline.saturating_duration_since(Instant::now()),
        )
    });
    let until_ptr = until
        .as_ref()
        .map_or(std::ptr::null(), |until| until as *const libc::timespec);
    loop {
        // SAFETY: the kernel reads the aligned u32 at `word`, which stays mapped, and the
        // timespec, which lives on this stack, or none; the second address is unused by
        // FUTEX_WAIT_BITSET. Shared, not private: the wakers are other processes.
        let code = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT_BITSET,
                expected,
                until_ptr,
                std::ptr::null::<u32>(),
                libc::FUTEX_BITSET_MATCH_ANY,
            )
        };
        if code == 0 {
            return Ok(false);
        }
        match Errno::last() {
            // The word changed before we slept: a notification came.
            Errno::EAGAIN => return Ok(false),
            Errno::ETIMEDOUT => return Ok(true),
            Errno::EINTR => continue,
            errno => {
                return Err(Error::Os {
                    context: "cannot wait on a shared condition",
                    errno,
                });
            }
        }
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
