//! Memory that a process shares with the children it forks afterwards: what Python's
//! `multiprocessing.heap` gives `Value` and the synchronisation primitives.
//!
//! An anonymous `MAP_SHARED` mapping is not copied by `fork`: parent and children see the
//! same pages. A value placed there before `start` is one value for all of them. Only types
//! made for it belong there: plain data, atomics, and process-shared mutexes, with no pointer
//! into one process's private memory.

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

use crate::error::{Error, Result};

/// A `T` in shared memory, for this process and the children it forks from now on.
///
/// Each process unmaps its view when its handle is dropped; `T`'s destructor never runs,
/// since no one process owns the value.
pub(crate) struct Shared<T> {
    ptr: NonNull<T>,
}

// SAFETY: `Shared<T>` is a pointer to a `T` that every thread may read through `&T`; that is
// sound exactly when `T` itself may be shared between threads.
unsafe impl<T: Sync> Sync for Shared<T> {}
// SAFETY: moving the handle to another thread only moves the pointer; see `Sync`.
unsafe impl<T: Sync> Send for Shared<T> {}

impl<T> Shared<T> {
    /// Maps a page-rounded region and moves `value` into it.
    pub(crate) fn new(value: T) -> Result<Shared<T>> {
        const {
            assert!(
                align_of::<T>() <= 4096,
                "a mapping is only page-aligned: 4096 bytes on the smallest pages"
            )
        };
        let length = NonZeroUsize::new(size_of::<T>().max(1)).expect("at least one byte");
        // SAFETY: a fresh anonymous mapping aliases no existing memory.
        let memory = unsafe {
            mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(Error::os("cannot map shared memory"))?;
        let ptr = memory.cast::<T>();
        // SAFETY: the mapping is page-aligned (enough for T, as checked above) and at least
        // size_of::<T>() bytes long; nothing has read it yet.
        unsafe { ptr.as_ptr().write(value) };
        Ok(Shared { ptr })
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the value was written in `new` and stays mapped until this handle drops.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: this handle's mapping, made in `new` with this length; no reference to the
        // value outlives the handle.
        let _ = unsafe { munmap(self.ptr.cast(), size_of::<T>().max(1)) };
    }
}
