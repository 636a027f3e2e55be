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
/// assert_eq!(ExitStatus::Signaled(libc::SIGRTMIN() + 6).to_string(), "killed by SIGRTMIN+6");
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

    /// The name of the signal that killed the process, as `kill -l` gives it: `SIGKILL`,
    /// `SIGSEGV`, and for the real-time signals, which have no names of their own,
    /// `SIGRTMIN`, `SIGRTMIN+1`, ... `SIGRTMAX`. `None` when the process exited, or for a
    /// number that names no signal (such as the two the C library keeps for itself, just
    /// below `SIGRTMIN`).
    ///
    /// See also: [`signal(7)`](https://man7.org/linux/man-pages/man7/signal.7.html).
    ///
    /// # Example
    ///
    /// ```
    /// use multiprocessing::ExitStatus;
    ///
    /// assert_eq!(ExitStatus::Signaled(9).signal_name(), Some("SIGKILL"));
    /// assert_eq!(ExitStatus::Signaled(libc::SIGRTMIN() + 2).signal_name(), Some("SIGRTMIN+2"));
    /// assert_eq!(ExitStatus::Signaled(libc::SIGRTMAX()).signal_name(), Some("SIGRTMAX"));
    /// assert_eq!(ExitStatus::Exited(9).signal_name(), None);
    /// ```
    pub fn signal_name(self) -> Option<&'static str> {
        let ExitStatus::Signaled(number) = self else {
            return None;
        };
        if let Some(signal) = self.signal() {
            return Some(signal.as_str());
        }
        if number == libc::SIGRTMAX() {
            return Some("SIGRTMAX");
        }
        if !(libc::SIGRTMIN()..libc::SIGRTMAX()).contains(&number) {
            return None;
        }
        REAL_TIME
            .get(usize::try_from(number - libc::SIGRTMIN()).ok()?)
            .copied()
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

/// The names of the real-time signals below `SIGRTMAX`, counted from `SIGRTMIN`: Linux has 33
/// of them (32 to 64), and the C library keeps the first two or three for itself.
const REAL_TIME: [&str; 32] = [
    "SIGRTMIN",
    "SIGRTMIN+1",
    "SIGRTMIN+2",
    "SIGRTMIN+3",
    "SIGRTMIN+4",
    "SIGRTMIN+5",
    "SIGRTMIN+6",
    "SIGRTMIN+7",
    "SIGRTMIN+8",
    "SIGRTMIN+9",
    "SIGRTMIN+10",
    "SIGRTMIN+11",
    "SIGRTMIN+12",
    "SIGRTMIN+13",
    "SIGRTMIN+14",
    "SIGRTMIN+15",
    "SIGRTMIN+16",
    "SIGRTMIN+17",
    "SIGRTMIN+18",
    "SIGRTMIN+19",
    "SIGRTMIN+20",
    "SIGRTMIN+21",
    "SIGRTMIN+22",
    "SIGRTMIN+23",
    "SIGRTMIN+24",
    "SIGRTMIN+25",
    "SIGRTMIN+26",
    "SIGRTMIN+27",
    "SIGRTMIN+28",
    "SIGRTMIN+29",
    "SIGRTMIN+30",
    "SIGRTMIN+31",
];

impl fmt::Display for ExitStatus {
    /// `exited with code 1`, `killed by SIGKILL`, `killed by SIGRTMIN+6`, or, for a number that
    /// names no signal, `killed by signal 32`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.signal_name()) {
            (ExitStatus::Exited(code), _) => write!(f, "exited with code {code}"),
            (ExitStatus::Signaled(_), Some(name)) => write!(f, "killed by {name}"),
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
        assert_eq!(ExitStatus::Exited(2).to_string(), "exited with code 2");
    }

    #[test]
    fn names_standard_and_real_time_signals() {
        let named = |number| ExitStatus::Signaled(number).signal_name();
        assert_eq!(named(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(named(libc::SIGSEGV), Some("SIGSEGV"));
        assert_eq!(named(libc::SIGTERM), Some("SIGTERM"));
        assert_eq!(named(libc::SIGABRT), Some("SIGABRT"));
        assert_eq!(named(libc::SIGRTMIN()), Some("SIGRTMIN"));
        assert_eq!(named(libc::SIGRTMIN() + 1), Some("SIGRTMIN+1"));
        assert_eq!(
            named(libc::SIGRTMAX() - 1).map(|name| name.starts_with("SIGRTMIN+")),
            Some(true)
        );
        assert_eq!(named(libc::SIGRTMAX()), Some("SIGRTMAX"));
        // Every real-time signal has a name of its own.
        let names: std::collections::HashSet<_> = (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .map(|number| named(number).expect("a real-time signal has a name"))
            .collect();
        assert_eq!(
            names.len(),
            (libc::SIGRTMAX() - libc::SIGRTMIN() + 1) as usize
        );
        // The C library's own signals below SIGRTMIN, and numbers past SIGRTMAX, have none.
        assert_eq!(named(libc::SIGRTMIN() - 1), None);
        assert_eq!(named(libc::SIGRTMAX() + 1), None);
        assert_eq!(named(0), None);
        assert_eq!(named(-3), None);
        assert_eq!(ExitStatus::Exited(9).signal_name(), None);
    }

    #[test]
    fn display_names_the_signal() {
        assert_eq!(ExitStatus::Signaled(9).to_string(), "killed by SIGKILL");
        assert_eq!(ExitStatus::Signaled(11).to_string(), "killed by SIGSEGV");
        let sixth = libc::SIGRTMIN() + 6;
        assert_eq!(
            ExitStatus::Signaled(sixth).to_string(),
            "killed by SIGRTMIN+6"
        );
        let reserved = libc::SIGRTMIN() - 1;
        assert_eq!(
            ExitStatus::Signaled(reserved).to_string(),
            format!("killed by signal {reserved}")
        );
    }
}
