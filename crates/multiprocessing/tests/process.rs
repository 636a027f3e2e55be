//! `Process` as a user sees it: starting, joining, exit codes, names, daemons, errors.
//!
//! Tests in one binary run on parallel threads of one process, which shares one list of
//! children. A test that looks at that list (`active_children`, the exit handler) therefore
//! runs its body in a child process, which starts with a list of its own, via [`isolated`].

mod common;

use common::{PATIENCE, exists, run};

use std::io::{Read, Write};
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::{
    Error, ExitStatus, Process, Signal, active_children, current_process, exit, parent_process,
};
use nix::errno::Errno;

/// Runs `body` in a child process and fails the test if the body panics there.
fn isolated(body: impl FnOnce() + Send + 'static) {
    assert_eq!(run(&Process::new(body)), ExitStatus::Exited(0));
}

/// Runs `body` in a child that reports through a pipe; returns everything it wrote.
fn output_of(body: impl FnOnce(&mut std::io::PipeWriter) + Send + 'static) -> String {
    let (mut reader, mut writer) = std::io::pipe().expect("pipe");
    let p = Process::new(move || body(&mut writer));
    assert_eq!(run(&p), ExitStatus::Exited(0));
    let mut text = String::new();
    reader.read_to_string(&mut text).expect("read");
    text
}

/// Runs `body` with stderr pointed at `/dev/null`, for a child whose report is expected.
fn quietly<R>(body: impl FnOnce() -> R) -> R {
    let null = std::fs::File::create("/dev/null").unwrap();
    nix::unistd::dup2_stderr(&null).unwrap();
    body()
}

fn sleeper() -> Process {
    Process::new(|| sleep(Duration::from_secs(60)))
}

#[test]
fn exit_codes_follow_python() {
    assert_eq!(run(&Process::new(|| ())), ExitStatus::Exited(0));
    assert_eq!(run(&Process::new(|| exit(3))), ExitStatus::Exited(3));
    assert_eq!(
        run(&Process::new(|| quietly(|| panic!("boom")))),
        ExitStatus::Exited(1)
    );
    let failing = Process::new(|| quietly(|| Err::<(), _>("bad input")));
    assert_eq!(run(&failing), ExitStatus::Exited(1));
    assert_eq!(failing.exitcode(), Some(1));
    let succeeding = Process::new(|| Ok::<(), String>(()));
    assert_eq!(run(&succeeding), ExitStatus::Exited(0));
}

#[test]
fn signals_give_negative_exit_codes() {
    let p = sleeper();
    p.start().unwrap();
    p.terminate().unwrap();
    assert_eq!(p.join().unwrap(), ExitStatus::Signaled(15));
    assert_eq!(p.exitcode(), Some(-15));
    assert_eq!(
        p.status().and_then(ExitStatus::signal),
        Some(Signal::SIGTERM)
    );

    let p = sleeper();
    p.start().unwrap();
    p.kill().unwrap();
    assert_eq!(p.join().unwrap().exitcode(), -9);
    // Signalling a process that has ended does nothing.
    p.terminate().unwrap();
    p.kill().unwrap();
}

#[test]
fn exit_runs_destructors_on_the_way_out() {
    struct Farewell(std::io::PipeWriter);
    impl Drop for Farewell {
        fn drop(&mut self) {
            self.0.write_all(b"dropped").unwrap();
        }
    }
    let (mut reader, writer) = std::io::pipe().unwrap();
    let p = Process::new(move || {
        let _farewell = Farewell(writer);
        exit(4);
    });
    assert_eq!(run(&p), ExitStatus::Exited(4));
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "dropped");
}

#[test]
fn a_panic_is_reported_with_the_process_name() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let p = Process::builder().name("raises").target(move || {
        // Point this child's stderr at the pipe, then panic.
        nix::unistd::dup2_stderr(&writer).unwrap();
        drop(writer);
        panic!("There was an error!");
    });
    assert_eq!(run(&p), ExitStatus::Exited(1));
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("Process raises:\npanicked at "), "{text}");
    assert!(text.contains("\nThere was an error!\n"), "{text}");
}

#[test]
fn an_error_result_is_reported_with_the_process_name() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let p = Process::builder().name("fails").target(move || {
        nix::unistd::dup2_stderr(&writer).unwrap();
        drop(writer);
        "x".parse::<i32>().map(drop)
    });
    assert_eq!(run(&p), ExitStatus::Exited(1));
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert!(
        text.starts_with("Process fails:\nError: ParseIntError"),
        "{text}"
    );
}

#[test]
fn join_with_timeout_returns_while_the_process_runs() {
    let p = sleeper();
    p.start().unwrap();
    let started = Instant::now();
    assert_eq!(p.join_timeout(Duration::from_millis(200)).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    p.terminate().unwrap();
    assert_eq!(
        p.join_timeout(PATIENCE).unwrap(),
        Some(ExitStatus::Signaled(15))
    );
    assert!(!p.is_alive());
}

#[test]
fn a_zero_timeout_only_polls() {
    let p = Process::new(|| ());
    p.start().unwrap();
    // Polling eventually sees the end, and every later call gives the same answer.
    while p.join_timeout(Duration::ZERO).unwrap().is_none() {
        sleep(Duration::from_millis(1));
    }
    assert_eq!(p.join().unwrap(), ExitStatus::Exited(0));
    assert_eq!(
        p.join_timeout(Duration::ZERO).unwrap(),
        Some(ExitStatus::Exited(0))
    );
}

#[test]
fn misuse_is_an_error() {
    let p = Process::new(|| ());
    assert!(matches!(p.join(), Err(Error::NotStarted { .. })));
    assert!(matches!(p.terminate(), Err(Error::NotStarted { .. })));
    assert!(!p.is_alive());
    assert_eq!(p.pid(), None);
    assert_eq!(p.exitcode(), None);
    p.start().unwrap();
    let error = p.start().unwrap_err();
    assert!(matches!(error, Error::AlreadyStarted { .. }));
    assert!(
        error
            .to_string()
            .starts_with("cannot start a process twice")
    );
    assert!(matches!(
        p.set_daemon(true),
        Err(Error::DaemonAfterStart { .. })
    ));
    p.join().unwrap();
}

#[test]
fn only_the_parent_may_wait_for_or_signal_a_child() {
    let sibling = sleeper();
    sibling.start().unwrap();
    let handle = sibling.clone();
    isolated(move || {
        assert!(matches!(handle.join(), Err(Error::NotAChild { .. })));
        assert!(matches!(handle.terminate(), Err(Error::NotAChild { .. })));
        assert!(matches!(handle.start(), Err(Error::NotAChild { .. })));
        // Whether it runs can still be asked.
        assert!(handle.is_alive());
    });
    sibling.kill().unwrap();
    sibling.join().unwrap();
}

#[test]
fn current_process_in_a_child() {
    let p = Process::builder().name("worker").target(|| ());
    let report = output_of(|out| {
        let me = current_process();
        let parent = parent_process().expect("a child has a parent");
        write!(
            out,
            "{} {} {} {} {}",
            me.name(),
            me.pid() == std::process::id(),
            me.daemon(),
            parent.name(),
            parent.pid()
        )
        .unwrap();
    });
    // The child was named by default; only its pid check and its parent matter here.
    let fields: Vec<&str> = report.split(' ').collect();
    assert!(fields[0].starts_with("Process-"), "{report}");
    assert_eq!(&fields[1..4], ["true", "false", "MainProcess"]);
    assert_eq!(fields[4], std::process::id().to_string());
    drop(p);

    let main = current_process();
    assert_eq!(main.name(), "MainProcess");
    assert_eq!(main.pid(), std::process::id());
    assert_eq!(
        main.to_string(),
        "<_MainProcess name='MainProcess' parent=None started>"
    );
    assert!(parent_process().is_none());
}

#[test]
fn the_child_sees_its_own_name_and_pid() {
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    let p = Process::builder().name("Test").target(move || {
        write!(
            writer,
            "{} {}",
            current_process().name(),
            std::process::id()
        )
    });
    run(&p);
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, format!("Test {}", p.pid().unwrap()));
}

#[test]
fn default_names_count_per_parent_and_nest() {
    isolated(|| {
        // A fresh child has created no process yet.
        let me = current_process().name().to_owned();
        let first = Process::new(|| ());
        let second = Process::new(|| ());
        assert_eq!(first.name(), format!("{me}:1"));
        assert_eq!(second.name(), format!("{me}:2"));
        // Its child's children are named one level deeper.
        let grandchild_name = output_of(|out| {
            write!(out, "{}", Process::new(|| ()).name()).unwrap();
        });
        assert_eq!(grandchild_name, format!("{me}:3:1"));
    });
}

#[test]
fn display_follows_python_repr() {
    let p = Process::builder()
        .name("shown")
        .target(|| sleep(Duration::from_secs(60)));
    let me = std::process::id();
    assert_eq!(
        p.to_string(),
        format!("<Process name='shown' parent={me} initial>")
    );
    p.start().unwrap();
    let pid = p.pid().unwrap();
    assert_eq!(
        p.to_string(),
        format!("<Process name='shown' pid={pid} parent={me} started>")
    );
    p.terminate().unwrap();
    p.join().unwrap();
    assert_eq!(
        p.to_string(),
        format!("<Process name='shown' pid={pid} parent={me} stopped exitcode=-SIGTERM>")
    );

    let d = Process::builder().name("d").daemon(true).target(|| exit(2));
    run(&d);
    assert!(
        d.to_string().ends_with(" stopped exitcode=2 daemon>"),
        "{d}"
    );
}

#[test]
fn a_daemonic_process_cannot_have_children() {
    let d = Process::builder().daemon(true).target(|| {
        let result = Process::new(|| ()).start();
        assert!(matches!(result, Err(Error::DaemonicChildren)), "{result:?}");
    });
    assert_eq!(run(&d), ExitStatus::Exited(0));
}

#[test]
fn a_child_ends_by_terminating_daemons_and_joining_the_rest() {
    // The child starts a daemonic grandchild that would sleep for a minute and a
    // non-daemonic one that writes after a short nap, then returns without joining either.
    let report = output_of(|out| {
        let daemon = Process::builder()
            .daemon(true)
            .target(|| sleep(Duration::from_secs(60)));
        let (reader, mut writer) = std::io::pipe().unwrap();
        let worker = Process::new(move || {
            sleep(Duration::from_millis(200));
            writer.write_all(b"done").unwrap();
        });
        daemon.start().unwrap();
        worker.start().unwrap();
        drop(reader);
        write!(out, "{} {}", daemon.pid().unwrap(), worker.pid().unwrap()).unwrap();
    });
    let pids: Vec<u32> = report.split(' ').map(|pid| pid.parse().unwrap()).collect();
    // Both grandchildren were reaped by the child before it ended.
    assert!(
        !exists(pids[0]),
        "the daemonic grandchild outlived its parent"
    );
    assert!(!exists(pids[1]), "the grandchild was not joined");
}

#[test]
fn the_worker_of_a_child_that_returns_is_waited_for() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    isolated(move || {
        let worker = Process::new(move || {
            let mut writer = writer;
            sleep(Duration::from_millis(200));
            writer.write_all(b"done").unwrap();
        });
        worker.start().unwrap();
    });
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "done");
}

#[test]
fn std_process_exit_in_a_child_still_runs_the_exit_handler() {
    let report = output_of(|out| {
        let daemon = Process::builder()
            .daemon(true)
            .target(|| sleep(Duration::from_secs(60)));
        daemon.start().unwrap();
        write!(out, "{}", daemon.pid().unwrap()).unwrap();
        out.flush().unwrap();
        std::process::exit(0);
    });
    let pid: u32 = report.parse().unwrap();
    assert!(
        !exists(pid),
        "the daemonic grandchild outlived std::process::exit"
    );
}

#[test]
fn active_children_lists_running_children_and_reaps_the_rest() {
    isolated(|| {
        assert!(active_children().is_empty());
        let quick: Vec<Process> = (0..3).map(|_| Process::new(|| ())).collect();
        for p in &quick {
            p.start().unwrap();
        }
        let slow = Process::new(|| sleep(Duration::from_secs(60)));
        slow.start().unwrap();
        // Wait until only the slow one is left; each call reaps what has ended.
        let deadline = Instant::now() + PATIENCE;
        while active_children().len() > 1 {
            assert!(
                Instant::now() < deadline,
                "finished children were not reaped"
            );
            sleep(Duration::from_millis(5));
        }
        assert_eq!(active_children()[0].pid(), slow.pid());
        slow.terminate().unwrap();
        slow.join().unwrap();
        assert!(active_children().is_empty());
        // Nothing is left to reap: no zombie.
        let reaped = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        assert_eq!(reaped, Err(Errno::ECHILD));
    });
}

#[test]
fn one_thread_joins_while_another_terminates() {
    let p = sleeper();
    p.start().unwrap();
    let joiner = {
        let p = p.clone();
        std::thread::spawn(move || p.join_timeout(PATIENCE).unwrap())
    };
    sleep(Duration::from_millis(50));
    p.terminate().unwrap();
    assert_eq!(joiner.join().unwrap(), Some(ExitStatus::Signaled(15)));
    assert_eq!(p.join().unwrap(), ExitStatus::Signaled(15));
}

#[test]
fn forking_from_many_threads_while_others_print() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let printer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // The stream locks, not `println!`: in a test that goes through the harness's
            // capture buffer, whose lock no runtime can hold across fork (see the docs of
            // the `process` module).
            // Taking the locks is what matters; writing nothing keeps the test output clean.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::io::stdout().lock().write_all(b"");
                let _ = std::io::stderr().lock().write_all(b"");
            }
        })
    };
    let forkers: Vec<_> = (0..4)
        .map(|thread| {
            std::thread::spawn(move || {
                for i in 0..20 {
                    let p = Process::new(move || println!("child {thread}.{i}"));
                    assert_eq!(run(&p), ExitStatus::Exited(0));
                }
            })
        })
        .collect();
    for forker in forkers {
        forker.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    printer.join().unwrap();
}

#[test]
fn a_renamed_process_starts_under_its_new_name() {
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    let p = Process::new(move || write!(writer, "{}", current_process().name()));
    p.set_name("renamed");
    run(&p);
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(text, "renamed");
    assert_eq!(p.name(), "renamed");
}

#[test]
fn a_daemon_that_ignores_sigterm_is_killed_at_exit() {
    let report = output_of(|out| {
        let stubborn = Process::builder().daemon(true).target(|| {
            // SAFETY: SIG_IGN is not a handler function; nothing runs on delivery.
            unsafe {
                nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn)
            }
            .unwrap();
            sleep(Duration::from_secs(60));
        });
        stubborn.start().unwrap();
        // Give it time to ignore SIGTERM before the exit handler sends it.
        sleep(Duration::from_millis(100));
        write!(out, "{}", stubborn.pid().unwrap()).unwrap();
    });
    let pid: u32 = report.parse().unwrap();
    assert!(
        !exists(pid),
        "the daemon that ignored SIGTERM outlived its parent"
    );
}

/// A type that runs as a process, as a Python subclass of `Process` does.
struct Consumer {
    out: std::io::PipeWriter,
}

impl multiprocessing::Run for Consumer {
    type Output = std::io::Result<()>;

    fn run(mut self) -> std::io::Result<()> {
        write!(self.out, "{} ran", current_process().name())
    }
}

#[test]
fn a_run_type_is_named_after_itself_and_counted_with_the_others() {
    isolated(|| {
        let me = current_process().name().to_owned();
        let (mut reader, out) = std::io::pipe().unwrap();
        let plain = Process::new(|| ());
        let consumer = Process::from_run(Consumer { out });
        assert_eq!(plain.name(), format!("{me}:1"));
        let suffix = me.strip_prefix("Process").unwrap();
        assert_eq!(consumer.name(), format!("Consumer{suffix}:2"));
        assert_eq!(run(&consumer), ExitStatus::Exited(0));
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, format!("Consumer{suffix}:2 ran"));
    });
}

#[test]
fn a_timeout_too_long_to_count_means_no_timeout() {
    let p = Process::new(|| ());
    p.start().unwrap();
    assert_eq!(
        p.join_timeout(Duration::MAX).unwrap(),
        Some(ExitStatus::Exited(0))
    );
}
