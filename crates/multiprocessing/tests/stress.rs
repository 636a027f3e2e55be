//! Many processes, and signals in the middle of waits: nothing leaked, nothing left, nothing
//! cut short.
//!
//! Each test runs in a child of its own, whose descriptors and children are its own to count.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::run;
use multiprocessing::connection::{self, Waitable};
use multiprocessing::{Error, ExitStatus, Lock, Process, Queue};
use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};

/// How many descriptors this process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Fails unless this process has no child left, running or zombie.
fn assert_no_children() {
    let reaped = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    assert_eq!(reaped, Err(Errno::ECHILD), "a child was left behind");
}

/// Runs `body` in a child of its own and fails if it fails there.
fn isolated(body: impl FnOnce() + Send + 'static) {
    assert_eq!(run(&Process::new(body)), ExitStatus::Exited(0));
}

#[test]
fn a_thousand_processes_one_after_another_leave_nothing_behind() {
    isolated(|| {
        let before = open_descriptors();
        for i in 0..1000 {
            let p = Process::new(move || {
                if i % 2 == 1 {
                    multiprocessing::exit(3);
                }
            });
            p.start().unwrap();
            let expected = if i % 2 == 1 { 3 } else { 0 };
            assert_eq!(p.join().unwrap().exitcode(), expected);
        }
        assert_eq!(open_descriptors(), before, "a descriptor leaked");
        assert!(multiprocessing::active_children().is_empty());
        assert_no_children();
    });
}

#[test]
fn two_hundred_processes_at_once_leave_nothing_behind() {
    isolated(|| {
        let before = open_descriptors();
        let processes: Vec<Process> = (0..200)
            .map(|_| Process::new(|| sleep(Duration::from_millis(50))))
            .collect();
        for p in &processes {
            p.start().unwrap();
        }
        for p in &processes {
            assert!(p.join().unwrap().success());
        }
        drop(processes);
        assert_eq!(open_descriptors(), before, "a descriptor leaked");
        assert_no_children();
    });
}

/// Sends `SIGUSR1`, which has a handler that does nothing and does not restart system calls,
/// to `thread` every millisecond until `stop` is set.
fn pester(thread: libc::pthread_t, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let handler = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: `ignore` does nothing, which is async-signal-safe.
    unsafe { nix::sys::signal::sigaction(Signal::SIGUSR1, &handler) }.unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: `thread` is the thread that waits below, alive until `stop` is set.
            unsafe { libc::pthread_kill(thread, libc::SIGUSR1) };
            sleep(Duration::from_millis(1));
        }
    })
}

extern "C" fn ignore(_: libc::c_int) {}

#[test]
fn waits_interrupted_by_signals_resume_and_keep_their_timeouts() {
    isolated(|| {
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: pthread_self has no preconditions.
        let pesterer = pester(unsafe { libc::pthread_self() }, stop.clone());
        let wait = Duration::from_millis(200);

        let sleeper = Process::new(|| sleep(Duration::from_secs(60)));
        sleeper.start().unwrap();
        let started = Instant::now();
        assert_eq!(sleeper.join_timeout(wait).unwrap(), None);
        assert!(started.elapsed() >= wait, "the join returned early");
        sleeper.kill().unwrap();
        assert_eq!(sleeper.join().unwrap(), ExitStatus::Signaled(9));

        let quick = Process::new(|| sleep(Duration::from_millis(100)));
        quick.start().unwrap();
        assert!(quick.join().unwrap().success());

        let queue: Queue<u32> = Queue::new().unwrap();
        let started = Instant::now();
        assert!(matches!(queue.get_timeout(wait), Err(Error::Empty)));
        assert!(started.elapsed() >= wait, "the get returned early");
        let producer = {
            let queue = queue.clone();
            Process::new(move || {
                sleep(Duration::from_millis(100));
                queue.put(7).unwrap();
            })
        };
        producer.start().unwrap();
        assert_eq!(queue.get().unwrap(), 7);
        producer.join().unwrap();

        let lock = Lock::new().unwrap();
        let holder = {
            let lock = lock.clone();
            Process::new(move || {
                let _guard = lock.acquire().unwrap();
                sleep(Duration::from_secs(60));
            })
        };
        holder.start().unwrap();
        while !lock.locked() {
            sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        assert!(lock.acquire_timeout(wait).unwrap().is_none());
        assert!(started.elapsed() >= wait, "the acquire returned early");
        holder.kill().unwrap();
        holder.join().unwrap();

        stop.store(true, Ordering::Relaxed);
        pesterer.join().unwrap();
    });
}

#[test]
fn a_poll_interrupted_by_signals_keeps_its_timeout() {
    isolated(|| {
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: pthread_self has no preconditions.
        let pesterer = pester(unsafe { libc::pthread_self() }, stop.clone());
        let (reader, _writer) = multiprocessing::pipe(false).unwrap();
        let wait = Duration::from_millis(200);
        let started = Instant::now();
        assert!(!reader.poll(Some(wait)).unwrap());
        let waited = started.elapsed();
        assert!(waited >= wait, "the poll returned early");
        // Restarting the full timeout after each of ~200 signals would take far longer.
        assert!(
            waited < Duration::from_secs(30),
            "the poll restarted its clock"
        );
        stop.store(true, Ordering::Relaxed);
        pesterer.join().unwrap();
    });
}

#[test]
fn a_wait_on_a_connection_and_a_process_interrupted_by_signals_keeps_its_timeout() {
    isolated(|| {
        let stop = Arc::new(AtomicBool::new(false));
        // SAFETY: pthread_self has no preconditions.
        let pesterer = pester(unsafe { libc::pthread_self() }, stop.clone());
        let (reader, _writer) = multiprocessing::pipe(false).unwrap();
        let sleeper = Process::new(|| sleep(Duration::from_secs(60)));
        sleeper.start().unwrap();
        let objects: [&dyn Waitable; 2] = [&reader, &sleeper];
        let wait = Duration::from_millis(200);
        let started = Instant::now();
        assert!(connection::wait(&objects, Some(wait)).unwrap().is_empty());
        let waited = started.elapsed();
        assert!(waited >= wait, "the wait returned early");
        assert!(
            waited < Duration::from_secs(30),
            "the wait restarted its clock"
        );
        sleeper.kill().unwrap();
        assert_eq!(sleeper.join().unwrap(), ExitStatus::Signaled(9));
        stop.store(true, Ordering::Relaxed);
        pesterer.join().unwrap();
    });
}
