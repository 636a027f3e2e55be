//! The ring: mapping it in this process, growing it when a message does not fit, and copying
//! bytes in and out of it, wrapping at its end.

use std::num::NonZeroUsize;

use nix::sys::mman::{MRemapFlags, MapFlags, ProtFlags, mmap, mremap};

use super::guard::Guard;
use super::shared::{State, View};
use crate::error::{Error, Result};

/// Bytes of the length that precedes each message in the ring.
pub(super) const LENGTH: u64 = size_of::<u64>() as u64;

impl Guard<'_> {
    /// Maps the ring as it is now, if the ring grew since this process last mapped it.
    #[inline]
    pub(super) fn map_current(&mut self) -> Result<()> {
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
    pub(super) fn reserve(&mut self, needed: u64) -> Result<()> {
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

    /// Writes a frame of `frame` bytes (the length of `parts`, then them) into the ring at
    /// `position`, which [`reserve`](Guard::reserve) made room for.
    pub(super) fn write_frame(&mut self, position: u64, frame: u64, parts: &[&[u8]]) {
        let ring = self.mapped();
        // SAFETY: the room was reserved, and the guard keeps everyone else out of the ring.
        unsafe { ring.write_frame(position, frame, parts) }
    }

    /// Copies `bytes` into the ring at `position`: damage, for the tests.
    #[cfg(test)]
    pub(super) fn write_at(&mut self, position: u64, bytes: &[u8]) {
        let ring = self.mapped();
        // SAFETY: the guard keeps everyone else out of the ring, and the mapping in place.
        unsafe { ring.write_at(position, bytes) }
    }

    /// Copies bytes from the ring at `position` into `bytes`.
    #[inline]
    pub(super) fn read_at(&mut self, position: u64, bytes: &mut [u8]) {
        let ring = self.mapped();
        // SAFETY: as in `write_at`; `bytes` is memory of ours, outside the ring.
        unsafe { ring.read_into(position, bytes.as_mut_ptr(), bytes.len()) }
    }

    /// This process's mapping of the ring, to copy into and out of.
    #[inline]
    pub(super) fn mapped(&mut self) -> Ring {
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
pub(super) struct Ring {
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
    pub(super) unsafe fn write_frame(self, mut position: u64, frame: u64, parts: &[&[u8]]) {
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
    pub(super) unsafe fn read_into(self, position: u64, destination: *mut u8, count: usize) {
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

#[cfg(test)]
mod tests {
    use super::LENGTH;
    use crate::Queue;

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
}
