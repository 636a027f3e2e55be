//! The queue's mutex, held: a guard through which alone the shared state and this process's
//! mapping are reached, which waits on the conditions and makes a written frame a message.

use std::time::Instant;

use super::shared::{Inner, State, View};
use crate::error::{Error, Result};
use crate::sync::{Acquired, SharedCondition};

impl Inner {
    /// Locks the queue until `deadline`; `None` when it passed.
    #[inline]
    pub(super) fn lock(&self, deadline: Option<Instant>) -> Result<Option<Guard<'_>>> {
        let acquired = self.header.mutex.lock(deadline)?;
        Ok(acquired.map(|acquired| {
            let guard = Guard { inner: self };
            guard.after_acquire(acquired);
            guard
        }))
    }
}

/// The shared mutex, held; unlocked when dropped.
pub(super) struct Guard<'a> {
    pub(super) inner: &'a Inner,
}

impl Guard<'_> {
    /// Reports an owner that died holding the mutex. The state is consistent: it only changes
    /// after a frame is complete, so the dead process's unfinished message is simply absent.
    pub(super) fn after_acquire(&self, acquired: Acquired) {
        if acquired == Acquired::OwnerDied {
            log::warn!(
                "a process died while putting into or getting from a queue; \
                 its unfinished message was dropped, the queue is intact"
            );
        }
    }

    /// The shared state, borrowed through the guard: the borrow checker keeps the reference
    /// unique for as long as it lives.
    pub(super) fn state(&mut self) -> &mut State {
        // SAFETY: every access to the state goes through a guard, and this guard holds the
        // mutex, so no other process or thread has a guard now; the mutex is error-checking,
        // so not even this thread can take a second one. The `&mut self` borrow makes this
        // reference the only one that this guard hands out.
        unsafe { &mut *self.inner.header.state.get() }
    }

    /// This process's mapping of the ring, borrowed through the guard as `state` is.
    pub(super) fn view(&mut self) -> &mut View {
        // SAFETY: as for `state`: the view is only reached through a guard.
        unsafe { &mut *self.inner.view.get() }
    }

    /// Waits on `condition`; false when `deadline` passed.
    pub(super) fn wait(
        &mut self,
        condition: &SharedCondition,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let (acquired, timed_out) = condition.wait(&self.inner.header.mutex, deadline)?;
        self.after_acquire(acquired);
        Ok(!timed_out)
    }

    /// Waits until a bounded queue has room for one more message.
    #[inline]
    pub(super) fn wait_for_room(&mut self, deadline: Option<Instant>) -> Result<()> {
        loop {
            let state = self.state();
            if state.maxsize == 0 || state.count < state.maxsize {
                return Ok(());
            }
            if !self.wait(&self.inner.header.not_full, deadline)? {
                let state = self.state();
                if state.count >= state.maxsize {
                    return Err(Error::Full);
                }
            }
        }
    }

    /// Makes the frame of `frame` bytes written at the tail a message.
    #[inline]
    pub(super) fn commit(&mut self, frame: u64) {
        // Wake the getters before the message counts (see `SharedCondition::notify`).
        self.inner.header.not_empty.notify();
        let state = self.state();
        state.tail += frame;
        state.count += 1;
        state.unfinished += 1;
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        let _ = self.inner.header.mutex.unlock();
    }
}
