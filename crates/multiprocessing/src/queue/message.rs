//! A message's way through the ring: a frame (its length, then its bytes) copied in under the
//! mutex, or handed to `large.rs`, and copied out under it, the oldest first.

use std::time::Instant;

use super::guard::Guard;
use super::large::LARGE;
use super::ring::LENGTH;
use super::shared::{Inner, State};
use crate::error::{Error, Result};

impl Inner {
    /// Puts one message made of `parts`, one after the other.
    pub(super) fn put_parts(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<()> {
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

    /// Takes the oldest message: `copy` is given its size and copies it out of the ring.
    pub(super) fn get_with<R>(
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
}

/// The oldest message in the ring, read in order under the mutex.
pub(super) struct Frame<'g, 'a> {
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
    pub(super) fn append(&mut self, buffer: &mut Vec<u8>, count: usize) {
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
    use super::LENGTH;
    use crate::Queue;
    use crate::error::Error;

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
