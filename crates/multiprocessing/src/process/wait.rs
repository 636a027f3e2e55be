//! Waiting for a child with a deadline: Python's `Popen.wait(timeout)`.
//!
//! Linux gives a child a file descriptor (a pidfd) that becomes readable when it ends, so a
//! join with a timeout is one `poll`. The child is reaped with `wait4(WNOHANG)` under a lock,
//! by whichever thread sees it first; its status and what it used are kept, so every later
//! call gets the same answer. Until it is reaped its pid cannot be reused, which makes
//! signalling it safe.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::report::Reaped;
use super::{ExitStatus, Usage};
use crate::connection::sealed::Watch;
use crate::error::{Error, Result};
use crate::readable::{Backoff, wait_readable};

/// A started child, until and after it ends.
pub(super) struct Waiter {
    pid: Pid,
    /// Readable once the child has ended; `None` on kernels older than Linux 5.3.
    pidfd: Option<OwnedFd>,
    /// For a child of the fork server, which reaps it: the pipe on which the server sends
    /// its report ([`Reaped`]), non-blocking. Readable once the report is there.
    report: Option<OwnedFd>,
    /// How it ended, once reaped.
    ended: Mutex<Option<Ended>>,
}

/// How a reaped child ended, and what it used when that is known.
#[derive(Clone, Copy)]
struct Ended {
    status: ExitStatus,
    /// `None` for a child of a fork server that ended before it could report.
    usage: Option<Usage>,
}

impl Waiter {
    pub(super) fn new(pid: Pid) -> Waiter {
        Waiter {
            pid,
            pidfd: pidfd_open(pid),
            report: None,
            ended: Mutex::new(None),
        }
    }

    /// A child that the fork server reaps, reporting its status on `report`.
    pub(super) fn remote(pid: Pid, report: OwnedFd) -> Waiter {
        Waiter {
            pid,
            pidfd: None,
            report: Some(report),
            ended: Mutex::new(None),
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

    fn ended(&self) -> MutexGuard<'_, Option<Ended>> {
        crate::sync::lock(&self.ended)
    }

    /// How the child ended, reaping it if it just did; `None` while it runs.
    pub(super) fn poll(&self) -> Result<Option<ExitStatus>> {
        Ok(self.poll_ended()?.map(|ended| ended.status))
    }

    /// What the child used, reaping it if it just ended; `None` while it runs, or when the
    /// fork server that reaped it ended before it could report.
    pub(super) fn usage(&self) -> Result<Option<Usage>> {
        Ok(self.poll_ended()?.and_then(|ended| ended.usage))
    }

    fn poll_ended(&self) -> Result<Option<Ended>> {
        let mut ended = self.ended();
        if ended.is_none() {
            *ended = match &self.report {
                None => reap(self.pid)?,
                Some(report) => read_report(report, self.pid)?,
            };
        }
        Ok(*ended)
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
        // Holding the lock keeps other threads from reaping the child meanwhile, so the pid
        // still names our child when the signal is sent.
        let ended = self.ended();
        if ended.is_some() {
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

/// `wait4(pid, WNOHANG)`: how the child ended if it has, `None` if it runs.
fn reap(pid: Pid) -> Result<Option<Ended>> {
    match reap_raw(pid) {
        Ok(reaped) => Ok(reaped.and_then(Ended::from_reaped)),
        Err(errno) => Err(Error::Os {
            context: "cannot wait for the process (was it reaped by someone else?)",
            errno,
        }),
    }
}

impl Ended {
    /// How a reaped child ended; `None` for a raw status that says it has not.
    fn from_reaped(reaped: Reaped) -> Option<Ended> {
        Some(Ended {
            status: ExitStatus::from_raw(reaped.raw)?,
            usage: Some(reaped.usage),
        })
    }
}

/// `wait4(pid, WNOHANG)`, retried when a signal interrupts it: the child's raw status and
/// what it used, once it has ended (exited or killed); `None` while it runs or is only
/// stopped.
///
/// This calls libc, not `nix::sys::wait::waitpid`: nix decodes the status into its `Signal`,
/// which has no variant for the real-time signals, so for a child killed by one it reaps the
/// child and then fails with `EINVAL`, and how the child ended is lost for good.
/// [`ExitStatus::from_raw`] keeps any signal's number. nix has no `wait4` either.
///
/// See also: [`wait4(2)`](https://man7.org/linux/man-pages/man2/wait4.2.html).
pub(crate) fn reap_raw(pid: Pid) -> nix::Result<Option<Reaped>> {
    loop {
        let mut raw = 0;
        // SAFETY: rusage is plain integers, for which all zeros is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes one int and one rusage through valid, exclusive pointers.
        let reaped = unsafe { libc::wait4(pid.as_raw(), &mut raw, libc::WNOHANG, &mut usage) };
        match Errno::result(reaped) {
            Ok(0) => return Ok(None),
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno),
            // Stopped and continued children have not ended: keep waiting.
            Ok(_) if ExitStatus::from_raw(raw).is_none() => return Ok(None),
            Ok(_) => {
                return Ok(Some(Reaped {
                    raw,
                    usage: Usage::from_rusage(&usage),
                }));
            }
        }
    }
}

/// How the fork server's child `pid` ended, from the server's report: `None` while none has
/// come. A server that ended first (its program is ending) sent nothing; the child was then
/// killed with it, if daemonic, and is reported as killed by `SIGKILL`, with no usage, once
/// it is gone.
fn read_report(report: &OwnedFd, pid: Pid) -> Result<Option<Ended>> {
    let mut wire = [0; Reaped::WIRE_LEN];
    match nix::unistd::read(report, &mut wire) {
        Ok(Reaped::WIRE_LEN) => Ok(Ended::from_reaped(Reaped::from_wire(&wire))),
        Ok(0) if nix::sys::signal::kill(pid, None) == Err(Errno::ESRCH) => Ok(Some(Ended {
            status: ExitStatus::Signaled(libc::SIGKILL),
            usage: None,
        })),
        Ok(0) | Err(Errno::EAGAIN | Errno::EINTR) => Ok(None),
        // The server writes a report whole, in one write of less than PIPE_BUF bytes.
        Ok(short) => Err(Error::Corrupt {
            message: format!(
                "the fork server's report on process {pid} has {short} bytes, not {}",
                Reaped::WIRE_LEN
            ),
        }),
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
