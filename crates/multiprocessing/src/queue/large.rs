//! A large message: copied into room reserved under the mutex, with the mutex released, one
//! writer at a time.

use std::time::Instant;

use super::ring::LENGTH;
use super::shared::Inner;
use crate::error::{Error, Result};
use crate::sync::RawMutex;

/// From this many bytes, a frame is copied into the ring with the mutex released, so that
/// getters copy out meanwhile; a smaller one costs less than taking the mutex twice.
pub(super) const LARGE: u64 = 64 * 1024;

impl Inner {
    /// Puts a message as [`put_parts`](Inner::put_parts) does, but copies it in with the
    /// mutex released: getters go on taking the messages before it meanwhile, where under
    /// the mutex they would wait for the whole copy, and would rarely get the mutex between
    /// two puts of a fast writer.
    pub(super) fn put_large(&self, parts: &[&[u8]], deadline: Option<Instant>) -> Result<()> {
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
}

/// The writers' mutex, held; unlocked when dropped.
struct Writer<'a>(&'a RawMutex);

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::LARGE;
    use crate::Queue;
    use crate::error::Error;

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
}
