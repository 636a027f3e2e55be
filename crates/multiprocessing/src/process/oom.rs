//! Whether the kernel's out-of-memory killer ended a child: a hint, read from the counter
//! that the memory cgroup of this process keeps. Python has no counterpart; its pool only
//! sees a worker vanish.
//!
//! The OOM killer ends its victim with `SIGKILL`, which looks like any other `SIGKILL`. What
//! tells them apart is the cgroup's `oom_kill` counter, which counts every process the killer
//! ended in this cgroup and below it, whether the limit reached was the cgroup's own, an
//! enclosing one's, or the whole machine's. Take [`oom_kills`] before a child starts and
//! hand it to [`likely_oom`] once the child has ended: a `SIGKILL` while the counter grew is
//! most likely the killer's. Another process of the cgroup killed meanwhile can make a false
//! positive, hence "likely".
//!
//! The counter is in `memory.events` on cgroup v2 and `memory.oom_control` on cgroup v1
//! (Linux 4.13 or later), under the path `/proc/self/cgroup` names. Where neither can be read
//! (no cgroup file system mounted, a container that hides it, an older kernel),
//! [`oom_kills`] gives `None` and only a memory limit the caller knows is left to judge by.
//!
//! See also: [cgroup v2's `memory.events`](https://docs.kernel.org/admin-guide/cgroup-v2.html#memory-interface-files).

use std::path::PathBuf;

use super::{ExitStatus, Usage};

/// Where the cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// A peak at least this share of a known limit, in percent, counts as having reached it: the
/// limit covers more than resident pages (page tables, kernel memory), so the victim's own
/// peak stops a little short of it.
const NEAR_LIMIT_PERCENT: u64 = 90;

/// How many processes the OOM killer has killed in this process's memory cgroup and those
/// below it, so far; `None` when the counter cannot be read. Never fails otherwise.
pub(crate) fn oom_kills() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    counter_files(&cgroups)
        .into_iter()
        .find_map(|file| oom_kill_count(&std::fs::read_to_string(file).ok()?))
}

/// Whether the OOM killer likely ended a child that ended with `status`: it was killed by
/// `SIGKILL`, and either the [`oom_kills`] counter grew since `kills_before` (taken before
/// the child started, or at least before it ended) or its peak memory reached
/// [`NEAR_LIMIT_PERCENT`] of `limit`, a memory limit in bytes that the caller set. Without
/// a counter reading or a limit, or without `usage`, that evidence counts as absent.
pub(crate) fn likely_oom(
    status: ExitStatus,
    usage: Option<Usage>,
    kills_before: Option<u64>,
    limit: Option<u64>,
) -> bool {
    if status != ExitStatus::Signaled(libc::SIGKILL) {
        return false;
    }
    let counted = kills_before.is_some_and(|before| oom_kills().is_some_and(|now| now > before));
    counted || near_limit(usage.map(|usage| usage.peak_rss), limit)
}

/// Whether `peak` reached [`NEAR_LIMIT_PERCENT`] of `limit`; false when either is unknown.
fn near_limit(peak: Option<u64>, limit: Option<u64>) -> bool {
    match (peak, limit) {
        (Some(peak), Some(limit)) if limit > 0 => {
            u128::from(peak) * 100 >= u128::from(limit) * u128::from(NEAR_LIMIT_PERCENT)
        }
        _ => false,
    }
}

/// The files that may hold the counter, given the text of `/proc/self/cgroup`: cgroup v2's
/// first, then cgroup v1's memory controller's.
fn counter_files(cgroups: &str) -> Vec<PathBuf> {
    let mut v2 = Vec::new();
    let mut v1 = Vec::new();
    for line in cgroups.lines() {
        // hierarchy-id:controllers:path, where the path may itself hold colons.
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            v2.push(PathBuf::from(CGROUP_ROOT).join(path).join("memory.events"));
        } else if controllers
            .split(',')
            .any(|controller| controller == "memory")
        {
            let file = PathBuf::from(CGROUP_ROOT).join("memory").join(path);
            v1.push(file.join("memory.oom_control"));
        }
    }
    v2.extend(v1);
    v2
}

/// The `oom_kill` line's number in a `memory.events` or `memory.oom_control` file.
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("oom_kill")).then(|| words.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_counter_files_of_both_cgroup_versions() {
        assert_eq!(
            counter_files("0::/user.slice/session-2.scope\n"),
            [PathBuf::from(
                "/sys/fs/cgroup/user.slice/session-2.scope/memory.events"
            )]
        );
        assert_eq!(
            counter_files("0::/\n"),
            [PathBuf::from("/sys/fs/cgroup/memory.events")]
        );
        let hybrid = "5:cpu,cpuacct:/\n4:memory:/jobs/42\n1:name=systemd:/\n0::/\n";
        assert_eq!(
            counter_files(hybrid),
            [
                PathBuf::from("/sys/fs/cgroup/memory.events"),
                PathBuf::from("/sys/fs/cgroup/memory/jobs/42/memory.oom_control"),
            ]
        );
        assert!(counter_files("").is_empty());
        assert!(counter_files("garbage\n").is_empty());
    }

    #[test]
    fn reads_the_oom_kill_line_only() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v2), Some(2));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 7\n";
        assert_eq!(oom_kill_count(v1), Some(7));
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), None);
        assert_eq!(oom_kill_count("oom_kill many\n"), None);
        assert_eq!(oom_kill_count(""), None);
    }

    #[test]
    fn the_counter_is_read_or_absent_without_failing() {
        // Whatever this machine mounts, reading twice gives no error and never goes down.
        if let (Some(before), Some(after)) = (oom_kills(), oom_kills()) {
            assert!(after >= before);
        }
    }

    #[test]
    fn only_a_sigkill_with_evidence_is_likely_the_oom_killer() {
        let usage = |peak_rss| {
            Some(Usage {
                peak_rss,
                ..Usage::default()
            })
        };
        let killed = ExitStatus::Signaled(libc::SIGKILL);
        let limit = Some(100 << 20);
        assert!(likely_oom(killed, usage(95 << 20), None, limit));
        assert!(likely_oom(killed, usage(90 << 20), None, limit));
        assert!(!likely_oom(killed, usage(50 << 20), None, limit));
        assert!(!likely_oom(killed, usage(95 << 20), None, None));
        assert!(!likely_oom(killed, None, None, limit));
        assert!(!likely_oom(killed, usage(95 << 20), None, Some(0)));
        // Another way to end, however close to the limit, is not the OOM killer's.
        let aborted = ExitStatus::Signaled(libc::SIGABRT);
        assert!(!likely_oom(aborted, usage(100 << 20), None, limit));
        assert!(!likely_oom(
            ExitStatus::Exited(137),
            usage(100 << 20),
            None,
            limit
        ));
        // A counter that did not grow is no evidence.
        if let Some(now) = oom_kills() {
            assert!(!likely_oom(killed, usage(1 << 20), Some(now), None));
            assert!(likely_oom(killed, usage(1 << 20), now.checked_sub(1), None) == (now > 0));
        }
    }
}
