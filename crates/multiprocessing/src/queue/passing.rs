//! How a queue travels to a child started afresh: as the descriptors of its memory, in the
//! argument of [`Process::task`](crate::Process::task). Anywhere else, encoding it fails.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::shared::{Inner, View};
use super::{JoinableQueue, Queue};
use crate::shm::Shared;
use crate::start::descriptors::{self, Refused};

/// A queue as it travels in a task's argument.
#[derive(Serialize, Deserialize)]
struct Passed {
    header: descriptors::Passed,
    ring: descriptors::Passed,
    /// Whether this process had closed it, which a forked child would inherit too.
    closed: bool,
}

/// The kind of descriptor a ring is, for [`descriptors`].
const RING: &str = "queue ring";

/// A queue travels to a child started afresh as the descriptors of its memory; see
/// [`Process::task`](crate::Process::task). Anywhere else, encoding it fails.
impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.inner
            .pass("Queue")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// A queue is decoded only by a child started afresh with it.
impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        let inner = Inner::receive("Queue", passed).map_err(serde::de::Error::custom)?;
        Ok(Queue {
            inner: Arc::new(inner),
            _message: PhantomData,
        })
    }
}

/// As a [`Queue`]'s.
impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.queue
            .inner
            .pass("JoinableQueue")
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// As a [`Queue`]'s.
impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        let inner = Inner::receive("JoinableQueue", passed).map_err(serde::de::Error::custom)?;
        Ok(JoinableQueue {
            queue: Queue {
                inner: Arc::new(inner),
                _message: PhantomData,
            },
        })
    }
}

impl Inner {
    /// Copies of the descriptors, for a child started afresh; `what` names the queue's type.
    fn pass(&self, what: &'static str) -> std::result::Result<Passed, Refused> {
        Ok(Passed {
            header: self.header.pass(what)?,
            ring: descriptors::pass(what, RING, self.ring.as_fd())?,
            closed: self.closed.load(Ordering::Relaxed),
        })
    }

    /// This process's side of a queue its parent passed with [`pass`](Inner::pass). The
    /// header is made already; the ring is mapped on first use.
    fn receive(what: &'static str, passed: Passed) -> std::result::Result<Inner, Refused> {
        Ok(Inner {
            header: Shared::receive(what, passed.header)?,
            ring: descriptors::take(what, RING, passed.ring)?,
            view: UnsafeCell::new(View::default()),
            closed: AtomicBool::new(passed.closed),
        })
    }
}
