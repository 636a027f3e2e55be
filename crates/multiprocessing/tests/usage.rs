//! What an ended child used, and how its death reads, under `fork`, `spawn` and `forkserver`:
//! peak memory and CPU time from `wait4` (through the fork server's report for its children),
//! and the names of the signals that killed them.

mod common;

multiprocessing::enable_test_support!();

use std::thread::sleep;
use std::time::Duration;

use common::{finish, run, started};
use multiprocessing::{ExitStatus, Process, Signal, StartMethod, Usage};

const MIB: u64 = 1 << 20;

/// Fills `mebibytes` MiB with ones, which touches every page, and lets go of them.
fn allocate(mebibytes: u64) {
    let size = usize::try_from(mebibytes * MIB).expect("fits");
    drop(std::hint::black_box(vec![1_u8; size]));
}

/// Runs on the CPU until this process has used `millis` milliseconds of it.
fn spin(millis: u64) {
    while cpu_time() < Duration::from_millis(millis) {
        std::hint::black_box(());
    }
}

/// The CPU time this process has used so far.
fn cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid, exclusive pointer.
    let done = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(done, 0, "clock_gettime");
    Duration::new(now.tv_sec.unsigned_abs(), now.tv_nsec.unsigned_abs() as u32)
}

/// Dies of `SIGSEGV` the way a crash in C code does: with the default disposition, which
/// the standard library's stack-overflow handler would otherwise stand in front of.
fn segfault(_: ()) {
    // SAFETY: restoring the default disposition installs no handler of ours.
    unsafe { nix::sys::signal::signal(Signal::SIGSEGV, nix::sys::signal::SigHandler::SigDfl) }
        .expect("signal");
    nix::sys::signal::raise(Signal::SIGSEGV).expect("raise");
}

fn nap(seconds: u64) {
    sleep(Duration::from_secs(seconds));
}

/// Runs `func(arg)` as a process started by `method`, and returns how it ended and what it
/// used.
fn usage_of<A>(method: StartMethod, func: fn(A), arg: A) -> (ExitStatus, Usage)
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let p = Process::builder()
        .start_method(method)
        .task(func, arg)
        .expect("task");
    let status = run(&p);
    (status, p.usage().expect("usage once joined"))
}

#[test]
fn peak_memory_counts_what_the_child_touched() {
    for method in StartMethod::ALL {
        let (status, big) = usage_of(method, allocate, 64);
        assert_eq!(status, ExitStatus::Exited(0), "{method}");
        let (_, small) = usage_of(method, allocate, 0);
        assert!(big.peak_rss >= 64 * MIB, "{method}: {big}");
        // Both start from the same pages (the parent's, or the fork server's): the 64 MiB
        // make the difference.
        assert!(
            big.peak_rss >= small.peak_rss + 48 * MIB,
            "{method}: {big} against {small}"
        );
    }
}

#[test]
fn cpu_time_counts_what_the_child_ran() {
    for method in StartMethod::ALL {
        let (_, usage) = usage_of(method, spin, 200);
        let total = usage.user_time + usage.system_time;
        // rusage counts in microseconds, and splits the time between user and system by
        // sampling: only the sum is exact.
        assert!(total >= Duration::from_millis(199), "{method}: {usage}");
    }
}

#[test]
fn usage_is_none_until_the_child_has_ended() {
    for method in StartMethod::ALL {
        let p = Process::builder()
            .start_method(method)
            .task(nap, 60)
            .expect("task");
        assert_eq!(p.usage(), None, "{method}: not started");
        let p = started(p);
        assert_eq!(p.usage(), None, "{method}: running");
        p.kill().expect("kill");
        assert_eq!(finish(&p), ExitStatus::Signaled(libc::SIGKILL));
        assert!(p.usage().is_some(), "{method}: killed and joined");
    }
}

#[test]
fn a_killed_child_is_named_by_its_signal() {
    for method in StartMethod::ALL {
        let p = started(
            Process::builder()
                .start_method(method)
                .task(nap, 60)
                .expect("task"),
        );
        p.kill().expect("kill");
        let status = finish(&p);
        assert_eq!(status.signal_name(), Some("SIGKILL"), "{method}");
        assert_eq!(status.to_string(), "killed by SIGKILL", "{method}");
        assert!(
            p.to_string().ends_with("exitcode=-SIGKILL>"),
            "{method}: {p}"
        );

        let p = Process::builder()
            .start_method(method)
            .task(segfault, ())
            .expect("task");
        let status = run(&p);
        assert_eq!(status, ExitStatus::Signaled(libc::SIGSEGV), "{method}");
        assert_eq!(status.to_string(), "killed by SIGSEGV", "{method}");
        assert!(p.usage().is_some(), "{method}");
    }
}

#[test]
fn a_real_time_signal_keeps_its_name_under_every_method() {
    let signal = libc::SIGRTMIN() + 6;
    for method in StartMethod::ALL {
        let p = started(
            Process::builder()
                .start_method(method)
                .task(nap, 60)
                .expect("task"),
        );
        let pid = p.pid().expect("started").cast_signed();
        // SAFETY: kill only sends a signal, to our child, which sleeps for a minute: it has
        // not ended, so nothing has reaped it and its pid is still its own.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let status = finish(&p);
        assert_eq!(status, ExitStatus::Signaled(signal), "{method}");
        assert_eq!(status.to_string(), "killed by SIGRTMIN+6", "{method}");
    }
}
