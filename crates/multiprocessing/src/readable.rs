//! Waiting until a descriptor has something to read, with a deadline that signals and long
//! timeouts do not stretch: what `join` (on a pidfd) and `Connection::poll` share.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};

/// Waits until `fd` is readable (or at its end) or `deadline` passes (never, for `None`);
/// returns whether it is readable. A signal handler that interrupts the wait does not end
/// it, and does not restart its clock.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    deadline: Option<Instant>,
    context: &'static str,
) -> Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
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
        match nix::poll::poll(&mut fds, timeout) {
            Ok(ready) if ready > 0 => return Ok(true),
            Ok(_) if deadline.is_some_and(|deadline| Instant::now() >= deadline) => {
                return Ok(false);
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(Error::Os { context, errno }),
        }
    }
}
