//! Python's `multiprocessing.Value`: plain data in shared memory, with a lock of its own.
//!
//! A [`Value`] made before `start` is one value for the process and all the children it forks
//! afterwards, or is given in the argument of [`Process::task`](crate::Process::task) under
//! any start method; what one of them writes, the others read. Every access takes the value's lock,
//! which is a [`Lock`](crate::Lock) in all but name: a dead holder does not block the others,
//! and the next one is told ([`ValueGuard::previous_owner_died`]).
//!
//! Only [`Plain`] data can live there: numbers, and arrays of them. That is what Python's
//! `Value` holds too (`'i'`, `'d'`, ... are C numbers), and it is what makes sharing safe: a
//! `String` or a `Vec` points into the private memory of the process that made it.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::lock::{Core, LockGuard, Mapping};
use crate::start::descriptors::Passed;
use crate::sync::Kind;

/// Data that can live in memory shared between processes: numbers and arrays of numbers.
///
/// # Safety
///
/// Implement it only for a `Copy` type that
///
/// - holds no reference or pointer: another process could not follow it (a `&'static str`
///   can point into the heap of the process that stored it), and
/// - is valid for every bit pattern (no `bool`, `char`, enum or reference inside): a process
///   that dies while writing a value may leave part old bytes and part new ones.
///
/// `#[repr(C)]` structs of numbers qualify. Use `u8` where Python's `Value` has `'c'` or `'?'`.
///
/// # Example
///
/// ```
/// use multiprocessing::{Plain, Value};
///
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Point {
///     x: f64,
///     y: f64,
/// }
///
/// // SAFETY: two numbers; any bit pattern is a point.
/// unsafe impl Plain for Point {}
///
/// let point = Value::new(Point { x: 1.0, y: 2.0 })?;
/// point.lock()?.x += 1.0;
/// assert_eq!(point.get()?.x, 2.0);
/// # Ok::<(), multiprocessing::Error>(())
/// ```
pub unsafe trait Plain: Copy + Send + 'static {}

macro_rules! plain {
    ($($number:ty),*) => {
        $(
            // SAFETY: a number: no pointer, and every bit pattern is one.
            unsafe impl Plain for $number {}
        )*
    };
}

plain!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

// SAFETY: an array of plain values has no pointer and no invalid bit pattern either.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// A `T` in shared memory, with its own lock: Python's `multiprocessing.Value`.
///
/// Cheap to clone; every clone is a handle to the same value, usable from any thread of this
/// process and from every child forked after [`Value::new`].
///
/// # Example
///
/// A shared counter, incremented by four processes:
///
/// ```no_run
/// use multiprocessing::{Process, Value};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let counter = Value::new(0_u64)?;
/// let workers: Vec<Process> = (0..4)
///     .map(|_| {
///         let counter = counter.clone();
///         Process::new(move || -> multiprocessing::Result<()> {
///             for _ in 0..10_000 {
///                 *counter.lock()? += 1; // with counter.get_lock(): counter.value += 1
///             }
///             Ok(())
///         })
///     })
///     .collect();
/// for w in &workers {
///     w.start()?;
/// }
/// for w in &workers {
///     w.join()?;
/// }
/// assert_eq!(counter.get()?, 40_000);
/// # Ok(())
/// # }
/// ```
pub struct Value<T: Plain> {
    slot: Arc<Mapping<Slot<T>>>,
}

/// The lock and the value, side by side in one shared mapping.
struct Slot<T> {
    core: Core,
    value: UnsafeCell<T>,
}

impl<T> AsRef<Core> for Slot<T> {
    fn as_ref(&self) -> &Core {
        &self.core
    }
}

// SAFETY: the value is only reached through a `ValueGuard`, which holds the lock, so one
// thread at a time uses it; moving a `T` between threads needs `T: Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

/// The value, locked: it derefs to the `T`, and releases the lock when dropped.
///
/// Like [`LockGuard`], it stays on the thread that took it.
#[must_use = "the value's lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    guard: LockGuard<'a>,
    value: &'a UnsafeCell<T>,
}

impl<T: Plain> Value<T> {
    /// Puts `value` in memory that children forked from now on share: `Value(typecode, value)`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`](crate::Error::Os) when the shared memory cannot be mapped or the lock
    /// cannot be made.
    ///
    /// # Example
    ///
    /// ```
    /// let pi = multiprocessing::Value::new(3.14_f64)?;
    /// assert_eq!(pi.get()?, 3.14);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Value<T>> {
        // Not recursive: two guards in one thread would give two `&mut T` to one value.
        let slot = Mapping::new(Slot {
            core: Core::new(Kind::Normal),
            value: UnsafeCell::new(value),
        })?;
        Ok(Value { slot })
    }

    /// Takes the value's lock, waiting while another thread or process holds it, and gives
    /// the value: `with v.get_lock():` and `v.value` inside.
    ///
    /// A read-modify-write such as `+= 1` is only safe under one guard; `set(get()? + 1)`
    /// takes the lock twice and can lose updates made in between.
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`](crate::Error::WouldDeadlock) when the calling thread already
    /// holds the lock, [`Error::Os`](crate::Error::Os) if the mutex fails.
    ///
    /// # Example
    ///
    /// ```
    /// let counter = multiprocessing::Value::new(0_i32)?;
    /// *counter.lock()? += 1;
    /// assert_eq!(*counter.lock()?, 1);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn lock(&self) -> Result<ValueGuard<'_, T>> {
        Ok(ValueGuard {
            guard: self.slot.core.acquire()?,
            value: &self.slot.value,
        })
    }

    /// Reads the value under its lock: `v.value`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Value::lock).
    ///
    /// # Example
    ///
    /// ```
    /// let v = multiprocessing::Value::new([1_u8, 2, 3])?;
    /// assert_eq!(v.get()?, [1, 2, 3]);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn get(&self) -> Result<T> {
        Ok(*self.lock()?)
    }

    /// Writes the value under its lock: `v.value = x`.
    ///
    /// # Errors
    ///
    /// As [`lock`](Value::lock).
    ///
    /// # Example
    ///
    /// ```
    /// let v = multiprocessing::Value::new(0_u32)?;
    /// v.set(7)?;
    /// assert_eq!(v.get()?, 7);
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn set(&self, value: T) -> Result<()> {
        *self.lock()? = value;
        Ok(())
    }
}

impl<T: Plain> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            slot: Arc::clone(&self.slot),
        }
    }
}

/// A value travels to a child started afresh as the descriptor of its memory; see
/// [`Process::task`](crate::Process::task). Anywhere else, encoding it fails: send
/// [`get`](Value::get)'s copy instead.
impl<T: Plain> Serialize for Value<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.slot
            .pass("Value")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// A value is decoded only by a child started afresh with it.
impl<'de, T: Plain> Deserialize<'de> for Value<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        Ok(Value {
            slot: Mapping::receive("Value", passed).map_err(serde::de::Error::custom)?,
        })
    }
}

impl<T: Plain> fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Value").finish_non_exhaustive()
    }
}

impl<T> ValueGuard<'_, T> {
    /// Whether the lock was taken from a holder that died with it: the value may then be
    /// half updated. As [`LockGuard::previous_owner_died`], a `WARNING` record is logged too.
    ///
    /// # Example
    ///
    /// ```
    /// let v = multiprocessing::Value::new(0_u8)?;
    /// assert!(!v.lock()?.previous_owner_died());
    /// # Ok::<(), multiprocessing::Error>(())
    /// ```
    pub fn previous_owner_died(&self) -> bool {
        self.guard.previous_owner_died()
    }
}

impl<T> Deref for ValueGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the value's lock, so no other thread or process writes it
        // while this borrow lives.
        unsafe { &*self.value.get() }
    }
}

impl<T> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; and `&mut self` makes this the only borrow through this
        // guard, the only guard of this non-recursive lock.
        unsafe { &mut *self.value.get() }
    }
}

impl<T: fmt::Debug> fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
