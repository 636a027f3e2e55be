//! Memory that processes share: what Python's `multiprocessing.heap` gives `Value` and the
//! synchronisation primitives.
//!
//! A [`Shared<T>`] is a `T` in a memory file (`memfd_create`), mapped `MAP_SHARED`. A child
//! forked afterwards inherits the mapping, so parent and child see the same pages; a child
//! started afresh is sent the file's descriptor (see [`descriptors`]) and maps it again, at
//! another address. Either way a value placed there is one value for all of them. Only types
//! made for it belong there: plain data, atomics, and process-shared mutexes, with no pointer
//! into one process's private memory.
//!
//! See also: [`memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html).
//!
//! [`descriptors`]: crate::start::descriptors

use std::mem::ManuallyDrop;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

use crate::error::{Error, Result};
use crate::start::descriptors::{self, Passed, Refused};

/// A `T` in shared memory, for this process, the children it forks from now on, and the
/// children started afresh that are sent its descriptor.
///
/// Each process unmaps its view when its handle is dropped; `T`'s destructor never runs,
/// since no one process owns the value.
pub(crate) struct Shared<T> {
    ptr: NonNull<T>,
    /// The memory file, kept to be passed to children started afresh.
    file: OwnedFd,
}

// SAFETY: `Shared<T>` is a pointer to a `T` that every thread may read through `&T`; that is
// sound exactly when `T` itself may be shared between threads.
unsafe impl<T: Sync> Sync for Shared<T> {}
// SAFETY: moving the handle to another thread only moves the pointer and the descriptor; see
// `Sync`.
unsafe impl<T: Sync> Send for Shared<T> {}

/// How many bytes a `T` takes in its file: at least one, since a mapping cannot be empty.
const fn length<T>() -> usize {
    if size_of::<T>() == 0 {
        1
    } else {
        size_of::<T>()
    }
}

impl<T> Shared<T> {
    /// Makes a memory file of a `T`'s size, maps it, and moves `value` into it.
    pub(crate) fn new(value: T) -> Result<Shared<T>> {
        const {
            assert!(
                align_of::<T>() <= 4096,
                "a mapping is only page-aligned: 4096 bytes on the smallest pages"
            )
        };
        let file = memfd_create("multiprocessing-shared", MFdFlags::MFD_CLOEXEC)
            .map_err(Error::os("cannot make shared memory"))?;
        nix::unistd::ftruncate(&file, length::<T>() as i64)
            .map_err(Error::os("cannot size shared memory"))?;
        let ptr = map::<T>(&file)?;
        // SAFETY: the mapping is page-aligned (enough for T, as checked above) and at least
        // size_of::<T>() bytes long; the file is new, so no one has read it yet.
        unsafe { ptr.as_ptr().write(value) };
        Ok(Shared { ptr, file })
    }

    /// Maps the `T` that another handle placed in `file`.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the file is too small to hold a `T`, [`Error::Os`] when it
    /// cannot be mapped.
    ///
    /// # Safety
    ///
    /// `file` must be the memory file of a `Shared<T>` (of this very `T`) made by
    /// [`Shared::new`] in a process running this same executable: its bytes are then a `T`
    /// that lives in shared memory, as `T`'s own invariants need.
    pub(crate) unsafe fn from_file(file: OwnedFd) -> Result<Shared<T>> {
        let size = nix::sys::stat::fstat(&file)
            .map_err(Error::os("cannot look at shared memory"))?
            .st_size;
        if !usize::try_from(size).is_ok_and(|size| size >= length::<T>()) {
            return Err(Error::Corrupt {
                message: format!(
                    "shared memory of {size} bytes cannot hold the {} bytes expected",
                    length::<T>()
                ),
            });
        }
        let ptr = map::<T>(&file)?;
        Ok(Shared { ptr, file })
    }

    /// Puts a copy of the memory file in the table of the task argument being encoded, for a
    /// child started afresh; `what` names the object it belongs to, for errors.
    ///
    /// # Errors
    ///
    /// As [`descriptors::pass`].
    pub(crate) fn pass(&self, what: &'static str) -> std::result::Result<Passed, Refused> {
        descriptors::pass(what, std::any::type_name::<T>(), self.file.as_fd())
    }

    /// Maps the memory of a `T` that a parent passed with [`pass`](Shared::pass), taken from
    /// the table of the task argument being decoded.
    ///
    /// # Errors
    ///
    /// As [`descriptors::take`], and [`Refused::Failed`] when the memory cannot be mapped.
    pub(crate) fn receive(
        what: &'static str,
        passed: Passed,
    ) -> std::result::Result<Shared<T>, Refused> {
        let file = descriptors::take(what, std::any::type_name::<T>(), passed)?;
        // SAFETY: a table to take from exists only while a child started afresh decodes its
        // argument. It holds the descriptors its parent, running this same executable, sent
        // with it, each with the kind the parent's table gave it (not the argument's bytes).
        // The kind named after `T` is given only here, in `Shared::<T>::pass`, to the memory
        // file of a `Shared<T>`.
        Ok(unsafe { Shared::from_file(file) }?)
    }

    /// Closes the descriptor but leaves the value mapped for the rest of this process's life.
    pub(crate) fn leak(self) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the descriptor is moved out of it exactly once;
        // the mapping it also holds is left in place on purpose.
        drop(unsafe { std::ptr::read(&this.file) });
    }
}

/// Maps all of `file`'s `T`, shared.
fn map<T>(file: &OwnedFd) -> Result<NonNull<T>> {
    let length = NonZeroUsize::new(length::<T>()).expect("at least one byte");
    // SAFETY: a new mapping, at an address the kernel chooses, aliases no memory this
    // process already uses; the file is at least `length` bytes long.
    let memory = unsafe {
        mmap(
            None,
            length,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            file,
            0,
        )
    }
    .map_err(Error::os("cannot map shared memory"))?;
    Ok(memory.cast::<T>())
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the value was written in `new` (by this process or the one that sent the
        // file) and stays mapped until this handle drops.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: this handle's mapping, made with this length; no reference to the value
        // outlives the handle.
        let _ = unsafe { munmap(self.ptr.cast(), length::<T>()) };
    }
}
