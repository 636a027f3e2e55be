//! Waiting until descriptors have something to read, with a deadline that signals and long
//! timeouts do not stretch: what `join` (on a pidfd) and `connection::wait` share.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};

/// Waits until `fd` is readable (or at its end) or `deadline` passes (never, for `None`);
/// returns whether it is readable.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    context: &'static str,
) -> Result<bool> {
    Ok(!wait_any_readable(&[fd], deadline, context)?.is_empty())
}

/// Waits until one of `fds` is readable (or at its end, or in error) or `deadline` passes
/// (never, for `None`); returns the indices of those that are, none once the deadline has
/// passed. A signal handler that interrupts the wait does not end it, and does not restart
/// its clock. With no descriptors, it sleeps until the deadline.
pub(crate) fn wait_any_readable(
    fds: &[BorrowedFd<'_>],
    deadline: Option<Instant>,
    context: &'static str,
) -> Result<Vec<usize>> {
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up, or a wait shorter than a millisecond would spin; a wait longer
                // than poll can express comes back here and goes on.
                let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128);
                PollTimeout::try_from(millis as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut polled, timeout) {
            Ok(ready) if ready > 0 => {
                return Ok(polled
                    .iter()
                    .enumerate()
                    .filter(|(_, fd)| fd.revents().is_some_and(|events| !events.is_empty()))
                    .map(|(index, _)| index)
                    .collect());
            }
            Ok(_) if deadline.is_some_and(|deadline| Instant::now() >= deadline) => {
                return Ok(Vec::new());
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(Error::Os { context, errno }),
        }
    }
}

/// Growing pauses between two looks at a child, for kernels without pidfds (before Linux
/// 5.3), where nothing can be polled: from 100 µs, doubling, up to 10 ms.
pub(crate) struct Backoff(Duration);

impl Backoff {
    const MAX: Duration = Duration::from_millis(10);

    pub(crate) fn new() -> Backoff {
        Backoff(Duration::from_micros(100))
    }

    /// The next pause.
    pub(crate) fn next(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (pause * 2).min(Backoff::MAX);
        pause
    }
}
