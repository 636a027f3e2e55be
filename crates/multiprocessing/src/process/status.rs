//! How a process ended: Python's `Process.exitcode`, as an enum in the nix style.

use std::fmt;

use nix::sys::signal::Signal;

/// How a child process ended.
///
/// Python folds both cases into one integer, `exitcode`: the code itself when the process
/// exited, minus the signal number when a signal killed it. [`ExitStatus::exitcode`] gives
/// that integer; the enum keeps the two cases apart.
///
/// See also: [`waitpid(2)`](https://man7.org/linux/man-pages/man2/waitpid.2.html).
///
/// # Example
///
/// ```
/// use multiprocessing::ExitStatus;
///
/// assert_eq!(ExitStatus::Exited(1).exitcode(), 1);
/// assert_eq!(ExitStatus::Signaled(15).exitcode(), -15);
/// assert_eq!(ExitStatus::Signaled(15).to_string(), "killed by SIGTERM");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// The process called `_exit` with this code (0 when its target returned normally).
    Exited(i32),
    /// The process was killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// Python's `exitcode`: the exit code, or minus the signal number.
    pub fn exitcode(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => -signal,
        }
    }

    /// True when the process exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The signal that killed the process, when it is one nix knows by name.
    pub fn signal(self) -> Option<Signal> {
        match self {
            ExitStatus::Signaled(number) => Signal::try_from(number).ok(),
            ExitStatus::Exited(_) => None,
        }
    }

    /// Decodes a raw status from `waitpid`; `None` for a stopped or continued process. Any
    /// signal keeps its number, the real-time ones nix has no name for included.
    pub(crate) fn from_raw(status: libc::c_int) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }

    /// The exit code as Python's `Process.__repr__` shows it: `1`, or `-SIGTERM`.
    pub(crate) fn repr(self) -> String {
        match (self, self.signal()) {
            (ExitStatus::Signaled(_), Some(signal)) => format!("-{}", signal.as_str()),
            _ => self.exitcode().to_string(),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.signal()) {
            (ExitStatus::Exited(code), _) => write!(f, "exited with code {code}"),
            (ExitStatus::Signaled(_), Some(signal)) => write!(f, "killed by {}", signal.as_str()),
            (ExitStatus::Signaled(number), None) => write!(f, "killed by signal {number}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_exit_and_signal() {
        // A raw wait status keeps the exit code in bits 8..16 and the signal in bits 0..7.
        assert_eq!(ExitStatus::from_raw(3 << 8), Some(ExitStatus::Exited(3)));
        assert_eq!(ExitStatus::from_raw(9), Some(ExitStatus::Signaled(9)));
        assert_eq!(ExitStatus::from_raw(40), Some(ExitStatus::Signaled(40)));
        // 0x7f in the low bits marks a stopped process, which has not ended.
        assert_eq!(ExitStatus::from_raw((19 << 8) | 0x7f), None);
    }

    #[test]
    fn repr_names_known_signals() {
        assert_eq!(ExitStatus::Signaled(15).repr(), "-SIGTERM");
        assert_eq!(ExitStatus::Exited(0).repr(), "0");
        assert_eq!(ExitStatus::Signaled(40).repr(), "-40");
        assert_eq!(ExitStatus::Signaled(40).to_string(), "killed by signal 40");
        assert_eq!(ExitStatus::Exited(2).to_string(), "exited with code 2");
    }
}
