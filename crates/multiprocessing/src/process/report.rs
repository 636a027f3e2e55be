//! How a reaped child ended and what it used, and the fork server's report of it: the wire
//! format between the server and the parent.

use std::time::Duration;

use super::Usage;

/// A child just reaped: its raw wait status, and what `wait4` said it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reaped {
    /// The status as `wait4` gives it; [`ExitStatus::from_raw`](super::ExitStatus::from_raw)
    /// decodes it.
    pub(crate) raw: libc::c_int,
    pub(crate) usage: Usage,
}

// A pipe writes and reads up to PIPE_BUF bytes at once, whole.
const _: () = assert!(Reaped::WIRE_LEN <= libc::PIPE_BUF);

impl Reaped {
    /// The size of a report: the raw status (`i32`), then the peak memory in bytes, the user
    /// CPU time and the system CPU time in microseconds (three `u64`), all little-endian.
    /// Fewer than `PIPE_BUF` bytes, so a report is written and read whole, never in parts.
    pub(crate) const WIRE_LEN: usize = 4 + 3 * 8;

    /// The report the fork server writes on the child's pipe.
    pub(crate) fn to_wire(self) -> [u8; Reaped::WIRE_LEN] {
        let micros = |time: Duration| u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
        let mut wire = [0; Reaped::WIRE_LEN];
        wire[..4].copy_from_slice(&self.raw.to_le_bytes());
        wire[4..12].copy_from_slice(&self.usage.peak_rss.to_le_bytes());
        wire[12..20].copy_from_slice(&micros(self.usage.user_time).to_le_bytes());
        wire[20..].copy_from_slice(&micros(self.usage.system_time).to_le_bytes());
        wire
    }

    /// The report read back.
    pub(crate) fn from_wire(wire: &[u8; Reaped::WIRE_LEN]) -> Reaped {
        let word =
            |at: usize| u64::from_le_bytes(wire[at..at + 8].try_into().expect("eight bytes"));
        Reaped {
            raw: libc::c_int::from_le_bytes(wire[..4].try_into().expect("four bytes")),
            usage: Usage {
                peak_rss: word(4),
                user_time: Duration::from_micros(word(12)),
                system_time: Duration::from_micros(word(20)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_written() {
        let reaped = Reaped {
            raw: libc::SIGKILL,
            usage: Usage {
                peak_rss: 64 << 20,
                user_time: Duration::from_micros(1_234_567),
                system_time: Duration::from_micros(89),
            },
        };
        let wire = reaped.to_wire();
        assert_eq!(Reaped::from_wire(&wire), reaped);
        // The layout is fixed: status, peak, user, system, little-endian.
        assert_eq!(wire[..4], [9, 0, 0, 0]);
        assert_eq!(wire[4..12], [0, 0, 0, 4, 0, 0, 0, 0]);
        assert_eq!(wire[12..20], 1_234_567_u64.to_le_bytes());
        assert_eq!(wire[20..], 89_u64.to_le_bytes());
        // An exit code sits in bits 8..16 of the status.
        let exited = Reaped {
            raw: 3 << 8,
            usage: Usage::default(),
        };
        assert_eq!(Reaped::from_wire(&exited.to_wire()), exited);
    }
}
