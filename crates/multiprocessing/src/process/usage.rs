//! What an ended child used: Python's `resource.getrusage(RUSAGE_CHILDREN)`, for one child.

use std::fmt;
use std::time::Duration;

/// What a child process used over its life: its peak memory and its CPU time, as the kernel
/// reports them when the child is reaped.
///
/// [`Process::usage`](crate::Process::usage) gives it once the child has ended, whatever
/// the start method. The figures cover the child and those of its own children that it
/// waited for, as `getrusage(RUSAGE_CHILDREN)` would in its parent.
///
/// `peak_rss` counts every page the child had in memory at once, shared ones included. A
/// child made by `fork` starts with its parent's pages mapped, and one started by `spawn`
/// comes from a `vfork` of its parent, so their peak is at least what the parent held at the
/// start; a child of the fork server starts from the server's few pages.
///
/// See also: [`getrusage(2)`](https://man7.org/linux/man-pages/man2/getrusage.2.html),
/// [`wait4(2)`](https://man7.org/linux/man-pages/man2/wait4.2.html).
///
/// # Example
///
/// ```no_run
/// use multiprocessing::Process;
///
/// # fn main() -> multiprocessing::Result<()> {
/// // Fills 64 MiB with ones, so that every page is touched.
/// let p = Process::new(|| drop(std::hint::black_box(vec![1_u8; 64 << 20])));
/// p.start()?;
/// assert!(p.usage().is_none());
/// p.join()?;
/// let usage = p.usage().expect("joined");
/// assert!(usage.peak_rss >= 64 << 20);
/// println!("{usage}");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Usage {
    /// The most memory the child had resident at once, in bytes (`ru_maxrss`, which Linux
    /// counts in KiB).
    pub peak_rss: u64,
    /// CPU time spent running the child's own code (`ru_utime`).
    pub user_time: Duration,
    /// CPU time the kernel spent working for the child (`ru_stime`).
    pub system_time: Duration,
}

impl Usage {
    /// The part of `rusage` that is kept.
    pub(crate) fn from_rusage(usage: &libc::rusage) -> Usage {
        Usage {
            peak_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
            user_time: duration(usage.ru_utime),
            system_time: duration(usage.ru_stime),
        }
    }
}

/// A `timeval` as a `Duration`; a negative field, which the kernel never gives, counts as 0.
fn duration(time: libc::timeval) -> Duration {
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u64::try_from(time.tv_usec).unwrap_or(0);
    Duration::from_secs(seconds) + Duration::from_micros(micros)
}

impl fmt::Display for Usage {
    /// `peak memory 64.9 MiB, CPU 0.120s user + 0.031s system`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mebibytes = self.peak_rss as f64 / f64::from(1 << 20);
        write!(
            f,
            "peak memory {mebibytes:.1} MiB, CPU {:.3}s user + {:.3}s system",
            self.user_time.as_secs_f64(),
            self.system_time.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_kibibytes_and_timevals() {
        // SAFETY: rusage is plain integers, for which all zeros is a valid value.
        let mut raw: libc::rusage = unsafe { std::mem::zeroed() };
        raw.ru_maxrss = 2048;
        raw.ru_utime = libc::timeval {
            tv_sec: 1,
            tv_usec: 250_000,
        };
        raw.ru_stime = libc::timeval {
            tv_sec: 0,
            tv_usec: 7,
        };
        let usage = Usage::from_rusage(&raw);
        assert_eq!(usage.peak_rss, 2 << 20);
        assert_eq!(usage.user_time, Duration::from_millis(1250));
        assert_eq!(usage.system_time, Duration::from_micros(7));
        assert_eq!(
            usage.to_string(),
            "peak memory 2.0 MiB, CPU 1.250s user + 0.000s system"
        );
    }
}
