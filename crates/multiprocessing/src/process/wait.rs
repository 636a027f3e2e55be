//! Waiting for a child with a deadline: Python's `Popen.wait(timeout)`.
//!
//! Linux gives a child a file descriptor (a pidfd) that becomes readable when it ends, so a
//! join with a timeout is one `poll`. The child is reaped with `waitpid(WNOHANG)` under a
//! lock, by whichever thread sees it first; its status is kept, so every later call gets the
//! same answer. Until it is reaped its pid cannot be reused, which makes signalling it safe.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::ExitStatus;
use crate::connection::sealed::Watch;
use crate::error::{Error, Result};
use crate::readable::{Backoff, wait_readable};

/// A started child, until and after it ends.
pub(super) struct Waiter {
    pid: Pid,
    /// Readable once the child has ended; `None` on kernels older than Linux 5.3.
    pidfd: Option<OwnedFd>,
    /// For a child of the fork server, which reaps it: the pipe on which the server sends
    /// its raw exit status, non-blocking. Readable once the status is there.
    report: Option<OwnedFd>,
    /// How it ended, once reaped.
    status: Mutex<Option<ExitStatus>>,
}

impl Waiter {
    pub(super) fn new(pid: Pid) -> Waiter {
        Waiter {
            pid,
            pidfd: pidfd_open(pid),
            report: None,
            status: Mutex::new(None),
        }
    }

    /// A child that the fork server reaps, reporting its status on `report`.
    pub(super) fn remote(pid: Pid, report: OwnedFd) -> Waiter {
        Waiter {
            pid,
            pidfd: None,
            report: Some(report),
            status: Mutex::new(None),
        }
    }

    /// What becomes readable once the child has ended.
    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.report
            .as_ref()
            .or(self.pidfd.as_ref())
            .map(AsFd::as_fd)
    }

    pub(super) fn pid(&self) -> Pid {
        self.pid
    }

    fn status(&self) -> MutexGuard<'_, Option<ExitStatus>> {
        crate::sync::lock(&self.status)
    }

    /// How the child ended, reaping it if it just did; `None` while it runs.
    pub(super) fn poll(&self) -> Result<Option<ExitStatus>> {
        let mut status = self.status();
        if status.is_none() {
            *status = match &self.report {
                None => reap(self.pid)?,
                Some(report) => read_report(report, self.pid)?,
            };
        }
        Ok(*status)
    }

    /// Waits until the child ends or `deadline` passes (never, for `None`).
    pub(super) fn wait(&self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        let mut backoff = Backoff::new();
        loop {
            if let Some(status) = self.poll()? {
                return Ok(Some(status));
            }
            let left = match deadline {
                None => None,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
            };
            match self.readiness() {
                Some(fd) => {
                    wait_readable(fd, deadline, "cannot wait for the process")?;
                }
                None => {
                    let pause = backoff.next();
                    std::thread::sleep(left.map_or(pause, |left| left.min(pause)));
                }
            }
        }
    }

    /// What [`connection::wait`](crate::connection::wait) watches to learn that the child has
    /// ended: nothing once it has, else its pidfd, or, without pidfds, another look later.
    pub(super) fn watch(&self) -> Result<Watch<'_>> {
        if self.poll()?.is_some() {
            return Ok(Watch::Ready);
        }
        Ok(match self.readiness() {
            Some(fd) => Watch::Readable(fd),
            None => Watch::LookAgain,
        })
    }

    /// Sends `signal`, unless the child has already been reaped.
    pub(super) fn signal(&self, signal: Signal) -> Result<()> {
        // Holding the status lock keeps other threads from reaping the child meanwhile, so
        // the pid still names our child when the signal is sent.
        let status = self.status();
        if status.is_some() {
            return Ok(());
        }
        match nix::sys::signal::kill(self.pid, signal) {
            // A child that ended but is not reaped yet is a zombie; kill succeeds on it.
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(errno) => Err(Error::Os {
                context: "cannot signal the process",
                errno,
            }),
        }
    }
}

/// `waitpid(pid, WNOHANG)`: the status if the child has ended, `None` if it runs.
fn reap(pid: Pid) -> Result<Option<ExitStatus>> {
    match reap_raw(pid) {
        Ok(raw) => Ok(raw.and_then(ExitStatus::from_raw)),
        Err(errno) => Err(Error::Os {
            context: "cannot wait for the process (was it reaped by someone else?)",
            errno,
        }),
    }
}

/// `waitpid(pid, WNOHANG)`, retried when a signal interrupts it: the child's raw status once
/// it has ended (exited or killed), `None` while it runs or is only stopped.
///
/// This calls libc, not `nix::sys::wait::waitpid`: nix decodes the status into its `Signal`,
/// which has no variant for the real-time signals, so for a child killed by one it reaps the
/// child and then fails with `EINVAL`, and how the child ended is lost for good.
/// [`ExitStatus::from_raw`] keeps any signal's number.
pub(crate) fn reap_raw(pid: Pid) -> nix::Result<Option<libc::c_int>> {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid writes one int through a valid pointer.
        let reaped = unsafe { libc::waitpid(pid.as_raw(), &mut raw, libc::WNOHANG) };
        match Errno::result(reaped) {
            Ok(0) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
            // Stopped and continued children have not ended: keep waiting.
            Ok(_) => return Ok(ExitStatus::from_raw(raw).map(|_| raw)),
        }
    }
}

/// The status the fork server sent for its child `pid`: `None` while none has come. A server
/// that ended first (its program is ending) sent nothing; the child was then killed with it,
/// if daemonic, and is reported as killed by `SIGKILL` once it is gone.
fn read_report(report: &OwnedFd, pid: Pid) -> Result<Option<ExitStatus>> {
    let mut raw = [0; 4];
    match nix::unistd::read(report, &mut raw) {
        Ok(4) => Ok(ExitStatus::from_raw(i32::from_le_bytes(raw))),
        Ok(0) if nix::sys::signal::kill(pid, None) == Err(Errno::ESRCH) => {
            Ok(Some(ExitStatus::Signaled(libc::SIGKILL)))
        }
        Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => Ok(None),
        Err(errno) => Err(Error::Os {
            context: "cannot read how the process ended",
            errno,
        }),
    }
}

/// A pidfd for `pid`, or `None` where the kernel has none (before Linux 5.3). A raw system
/// call, since neither nix nor the libc crate wraps it.
///
/// See also: [`pidfd_open(2)`](https://man7.org/linux/man-pages/man2/pidfd_open.2.html).
pub(crate) fn pidfd_open(pid: Pid) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this descriptor (close-on-exec); nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Process;

    #[test]
    fn a_child_killed_by_a_real_time_signal_keeps_its_number() {
        let p = Process::new(|| std::thread::sleep(Duration::from_secs(60)));
        p.start().unwrap();
        let signal = libc::SIGRTMIN() + 6;
        let pid = p.pid().unwrap().cast_signed();
        // SAFETY: kill only sends a signal, to our child, which cannot be reaped (and its pid
        // reused) before the join below.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = p.join_timeout(Duration::from_secs(60)).unwrap();
        if status.is_none() {
            let _ = p.kill();
            let _ = p.join();
        }
        assert_eq!(status, Some(ExitStatus::Signaled(signal)));
        assert_eq!(p.exitcode(), Some(-signal));
    }
}
