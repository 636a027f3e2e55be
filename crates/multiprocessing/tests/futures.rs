//! `ProcessPoolExecutor`, `ThreadPoolExecutor` and `Future` as a user sees them: results,
//! states, cancelling, timeouts, `map`, `wait`, `as_completed`, shutdown, and the broken pool.

mod common;

multiprocessing::enable_test_support!();

use common::{PATIENCE, Touchy, exists, touchy};

use std::collections::HashSet;
use std::sync::mpsc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::futures::{
    ProcessPoolExecutor, ReturnWhen, ThreadPoolExecutor, as_completed, wait,
};
use multiprocessing::{Error, ExitStatus, TaskPlace};

fn square(n: u64) -> u64 {
    n * n
}

fn nap(millis: u64) -> u64 {
    sleep(Duration::from_millis(millis));
    millis
}

fn fail(n: u64) -> u64 {
    panic!("no good: {n}")
}

fn die(_: u64) -> u64 {
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL cannot be caught")
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

/// An initializer that panics, run in a thread: its panic is the executor's error, not printed.
fn panicking_initializer() {
    panic!("cannot initialize");
}

/// An initializer that panics in a worker process, whose stderr it silences first: the
/// worker reports the panic there, and this test expects it.
fn broken_initializer() {
    let null = std::fs::File::create("/dev/null").unwrap();
    nix::unistd::dup2_stderr(&null).unwrap();
    panic!("cannot initialize");
}

/// Waits until `condition` holds, failing the test after [`PATIENCE`].
fn eventually(condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "the condition never held");
        sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_future_runs_then_is_done() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let future = executor.submit(nap, 200).unwrap();
    eventually(|| future.running());
    assert!(!future.done());
    assert_eq!(*future.result_timeout(PATIENCE).unwrap(), 200);
    assert!(future.done() && !future.running() && !future.cancelled());
    assert!(future.exception().is_none());
    assert_eq!(*future.result().unwrap(), 200, "a result can be read again");
}

#[test]
fn result_with_a_timeout_gives_the_runtime_timeout_error() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let future = executor.submit(nap, 300).unwrap();
    assert!(matches!(
        future.result_timeout(Duration::from_millis(10)),
        Err(Error::Timeout { .. })
    ));
    assert!(future.wait(Some(PATIENCE)));
}

#[test]
fn only_a_pending_future_can_be_cancelled() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let busy = executor.submit(nap, 300).unwrap();
    eventually(|| busy.running());
    // Nothing is sent ahead to the busy worker: both calls wait, and either can be cancelled.
    let next = executor.submit(nap, 1).unwrap();
    let pending = executor.submit(nap, 2).unwrap();
    assert!(!next.running());
    assert!(pending.cancel());
    assert!(pending.cancelled() && pending.done());
    assert!(matches!(pending.result(), Err(Error::Cancelled)));
    assert!(matches!(pending.exception(), Some(Error::Cancelled)));
    assert!(!busy.cancel(), "a running call cannot be cancelled");
    assert_eq!(*busy.result().unwrap(), 300);
    assert_eq!(*next.result().unwrap(), 1);
}

#[test]
fn errors_and_callbacks() {
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let failing = executor.submit(fail, 7).unwrap();
    match failing.exception() {
        Some(Error::TaskPanicked { message }) => assert!(message.contains("no good: 7")),
        other => panic!("{other:?}"),
    }
    let (sender, receiver) = mpsc::channel();
    let future = executor.submit(square, 9).unwrap();
    future.add_done_callback(move |done| {
        sender.send(*done.result().unwrap()).unwrap();
    });
    assert_eq!(receiver.recv_timeout(PATIENCE).unwrap(), 81);
    // A callback added once it is done runs at once.
    let (sender, receiver) = mpsc::channel();
    future.add_done_callback(move |_| sender.send(()).unwrap());
    receiver.try_recv().unwrap();
}

#[test]
fn map_is_ordered_chunked_and_bounded_by_its_timeout() {
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let serial: Vec<u64> = (0..50).map(square).collect();
    let results: Vec<u64> = executor.map(square, 0..50).map(Result::unwrap).collect();
    assert_eq!(results, serial);
    let chunked: Vec<u64> = executor
        .map(square, 0..50)
        .chunksize(7)
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, serial);
    let endless: Vec<u64> = executor
        .map(square, 0..)
        .take(20)
        .map(Result::unwrap)
        .collect();
    assert_eq!(endless, serial[..20]);
    let mut slow = executor
        .map(nap, [1, 2_000])
        .timeout(Duration::from_millis(500));
    assert_eq!(slow.next().unwrap().unwrap(), 1);
    assert!(matches!(slow.next(), Some(Err(Error::Timeout { .. }))));
    assert!(slow.next().is_none());
}

#[test]
fn a_map_of_many_small_calls_comes_back_in_order() {
    // Many calls in flight at once, in batches to each worker and back.
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let serial: Vec<u64> = (0..5000).map(square).collect();
    let results: Vec<u64> = executor.map(square, 0..5000).map(Result::unwrap).collect();
    assert_eq!(results, serial);
    let chunked: Vec<u64> = executor
        .map(square, 0..5000)
        .chunksize(3)
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, serial);
}

#[test]
fn wait_and_as_completed() {
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let futures = vec![
        executor.submit(nap, 1_000).unwrap(),
        executor.submit(nap, 10).unwrap(),
    ];
    let first = wait(&futures, ReturnWhen::FirstCompleted, Some(PATIENCE));
    assert_eq!(first.done.len(), 1);
    assert_eq!(*first.done[0].result().unwrap(), 10);
    let order: Vec<u64> = as_completed(&futures, Some(PATIENCE))
        .map(|future| *future.unwrap().result().unwrap())
        .collect();
    assert_eq!(order, [10, 1_000]);
    let all = wait(&futures, ReturnWhen::AllCompleted, None);
    assert_eq!((all.done.len(), all.not_done.len()), (2, 0));

    let mixed = vec![
        executor.submit(nap, 2_000).unwrap(),
        executor.submit(fail, 1).unwrap(),
    ];
    let failed = wait(&mixed, ReturnWhen::FirstException, Some(PATIENCE));
    assert_eq!(failed.done.len(), 1);
    assert!(failed.done[0].exception().is_some());
    let timed_out = wait(
        &mixed,
        ReturnWhen::AllCompleted,
        Some(Duration::from_millis(10)),
    );
    assert_eq!(timed_out.not_done.len(), 1);
    let mut completed = as_completed(&mixed[..1], Some(Duration::from_millis(10)));
    assert!(matches!(completed.next(), Some(Err(Error::Timeout { .. }))));
    assert!(completed.next().is_none());
}

#[test]
fn shutdown_finishes_or_cancels_pending_work_and_refuses_more() {
    let mut executor = ProcessPoolExecutor::new(1).unwrap();
    let futures: Vec<_> = (0..4).map(|_| executor.submit(nap, 50).unwrap()).collect();
    executor.shutdown(true, false);
    assert!(futures.iter().all(|future| *future.result().unwrap() == 50));
    assert!(matches!(executor.submit(square, 1), Err(Error::Shutdown)));

    let mut executor = ProcessPoolExecutor::new(1).unwrap();
    let running = executor.submit(nap, 200).unwrap();
    eventually(|| running.running());
    let queued: Vec<_> = (0..4)
        .map(|_| executor.submit(nap, 5_000).unwrap())
        .collect();
    executor.shutdown(true, true);
    assert_eq!(*running.result().unwrap(), 200);
    // None was sent ahead to the busy worker, so every one was cancelled.
    let cancelled = queued.iter().filter(|future| future.cancelled()).count();
    assert_eq!(cancelled, 4, "{cancelled} of 4 cancelled");
}

#[test]
fn a_killed_worker_breaks_the_executor() {
    let mut executor = ProcessPoolExecutor::new(2).unwrap();
    let pids: HashSet<u32> = (0..20)
        .map(|i| *executor.submit(pid, i).unwrap().result().unwrap())
        .collect();
    let slow = executor.submit(nap, 5_000).unwrap();
    let victim = executor.submit(die, 0).unwrap();
    match victim.result_timeout(PATIENCE) {
        Err(Error::BrokenProcessPool(death)) => {
            assert!(death.worker.starts_with("ForkServerProcess-"), "{death}");
            assert_eq!(death.status, ExitStatus::Signaled(libc::SIGKILL));
            assert_eq!(death.task, Some(TaskPlace::Call), "{death}");
            assert!(death.pid.is_some(), "{death}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        slow.result_timeout(PATIENCE),
        Err(Error::BrokenProcessPool(_))
    ));
    assert!(matches!(
        executor.submit(square, 2),
        Err(Error::BrokenProcessPool(_))
    ));
    executor.shutdown(true, false);
    for pid in pids {
        assert!(!exists(pid), "worker {pid} outlived the executor");
    }
}

#[test]
fn a_failing_initializer_breaks_the_executor_at_once() {
    let result = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(broken_initializer)
        .processes();
    assert!(
        matches!(result, Err(Error::BrokenProcessPool(_))),
        "{result:?}"
    );
    let threads = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(panicking_initializer)
        .threads();
    assert!(
        matches!(threads, Err(Error::BrokenThreadPool { .. })),
        "{threads:?}"
    );
    assert!(matches!(ProcessPoolExecutor::new(0), Err(Error::NoWorkers)));
    assert!(matches!(ThreadPoolExecutor::new(0), Err(Error::NoWorkers)));
}

#[test]
fn threads_have_the_same_api() {
    let mut executor = ThreadPoolExecutor::new(2).unwrap();
    assert_eq!(*executor.submit(square, 12).unwrap().result().unwrap(), 144);
    assert_eq!(
        *executor.submit(pid, 0).unwrap().result().unwrap(),
        std::process::id(),
        "threads run in this process"
    );
    let results: Vec<u64> = executor
        .map(square, 0..30)
        .chunksize(4)
        .map(Result::unwrap)
        .collect();
    assert_eq!(results, (0..30).map(square).collect::<Vec<_>>());
    assert!(matches!(
        executor.submit(fail, 3).unwrap().exception(),
        Some(Error::TaskPanicked { .. })
    ));
    let pending: Vec<_> = (0..3).map(|_| executor.submit(nap, 20).unwrap()).collect();
    executor.shutdown(true, false);
    assert!(pending.iter().all(|future| future.done()));
    assert!(matches!(executor.submit(square, 1), Err(Error::Shutdown)));
}

#[test]
fn a_short_call_does_not_wait_behind_a_long_one_while_a_worker_is_free() {
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = [600, 50, 150]
        .into_iter()
        .map(|millis| executor.submit(nap, millis).unwrap())
        .collect();
    let order: Vec<u64> = as_completed(&futures, Some(PATIENCE))
        .map(|future| *future.unwrap().result().unwrap())
        .collect();
    assert_eq!(order, [50, 150, 600]);
}

#[test]
fn a_done_callback_that_submits_does_not_deadlock_the_executor() {
    let executor = std::sync::Arc::new(ProcessPoolExecutor::new(1).unwrap());
    let (finished, outcome) = mpsc::channel();
    let submitter = {
        let executor = executor.clone();
        std::thread::spawn(move || {
            let first = executor.submit(square, 2).unwrap();
            let (sender, resubmitted) = mpsc::channel();
            let inner = executor.clone();
            first.add_done_callback(move |_| {
                sleep(Duration::from_millis(20));
                let _ = sender.send(
                    inner
                        .submit(square, 3)
                        .map(|future| future.wait(Some(PATIENCE))),
                );
            });
            let futures: Vec<_> = (0..1_000)
                .map(|i| executor.submit(square, i).unwrap())
                .collect();
            let sum: u64 = futures.iter().map(|future| *future.result().unwrap()).sum();
            let _ = finished.send((sum, resubmitted.recv_timeout(PATIENCE)));
        })
    };
    let (sum, resubmitted) = outcome
        .recv_timeout(PATIENCE)
        .expect("submit deadlocked with a callback that submits");
    assert_eq!(sum, (0..1_000u64).map(square).sum::<u64>());
    assert!(matches!(resubmitted, Ok(Ok(true))), "{resubmitted:?}");
    submitter.join().unwrap();
}

#[test]
fn a_panicking_callback_is_logged_and_everything_goes_on() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let (sender, received) = mpsc::channel();
    let future = executor.submit(nap, 50).unwrap();
    future.add_done_callback(|_| panic!("careless callback"));
    future.add_done_callback(move |done| sender.send(*done.result().unwrap()).unwrap());
    assert_eq!(
        received.recv_timeout(PATIENCE).unwrap(),
        50,
        "the next callback ran"
    );
    assert_eq!(
        *executor
            .submit(square, 5)
            .unwrap()
            .result_timeout(PATIENCE)
            .unwrap(),
        25
    );

    // On a thread executor, the callback runs on the worker, which must survive it.
    let threads = ThreadPoolExecutor::new(1).unwrap();
    let future = threads.submit(nap, 10).unwrap();
    future.add_done_callback(|_| panic!("careless callback"));
    future.wait(Some(PATIENCE));
    assert_eq!(
        *threads
            .submit(square, 6)
            .unwrap()
            .result_timeout(PATIENCE)
            .unwrap(),
        36
    );
}

#[test]
fn a_result_whose_decoding_panics_fails_that_future_only() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let bad = executor.submit(touchy, 13).unwrap();
    let good = executor.submit(touchy, 12).unwrap();
    match bad.result_timeout(PATIENCE) {
        Err(Error::Decode { message }) => assert!(message.contains("Touchy cannot hold 13")),
        other => panic!("{other:?}"),
    }
    assert_eq!(*good.result_timeout(PATIENCE).unwrap(), Touchy(12));
    assert_eq!(
        *executor
            .submit(touchy, 2)
            .unwrap()
            .result_timeout(PATIENCE)
            .unwrap(),
        Touchy(2)
    );
    let mapped: Vec<_> = executor.map(touchy, 12..15).collect();
    assert!(matches!(mapped[1], Err(Error::Decode { .. })), "{mapped:?}");
}

#[test]
fn a_blocked_callback_delays_no_other_result() {
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let (release, blocked) = mpsc::channel::<()>();
    // A call that takes a while, so that the callback is added before it is done: the
    // callback of a future done already runs at once, on the thread that adds it.
    let first = executor.submit(nap, 300).unwrap();
    first.add_done_callback(move |_| {
        let _ = blocked.recv_timeout(PATIENCE);
    });
    first.wait(Some(PATIENCE));
    // The callback is still blocked; other calls come and go.
    let results: Vec<u64> = (2..6)
        .map(|i| {
            *executor
                .submit(square, i)
                .unwrap()
                .result_timeout(PATIENCE)
                .unwrap()
        })
        .collect();
    assert_eq!(results, [4, 9, 16, 25]);
    release.send(()).unwrap();
}

#[test]
fn wait_and_as_completed_take_each_future_once_and_ignore_cancelled_ones() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let a = executor.submit(nap, 10).unwrap();
    let b = executor.submit(nap, 20).unwrap();
    let listed = vec![a.clone(), a.clone(), b.clone()];
    assert_eq!(as_completed(&listed, Some(PATIENCE)).count(), 2);
    let all = wait(&listed, ReturnWhen::AllCompleted, Some(PATIENCE));
    assert_eq!((all.done.len(), all.not_done.len()), (2, 0));

    // A cancelled future raised nothing: FIRST_EXCEPTION waits for the others.
    let busy = executor.submit(nap, 200).unwrap();
    eventually(|| busy.running());
    let pending = executor.submit(nap, 1).unwrap();
    assert!(pending.cancel());
    let both = [pending, busy];
    let waited = wait(&both, ReturnWhen::FirstException, Some(PATIENCE));
    assert_eq!((waited.done.len(), waited.not_done.len()), (2, 0));
}

#[test]
fn exception_with_a_timeout_and_a_zero_chunksize() {
    let executor = ProcessPoolExecutor::new(1).unwrap();
    let slow = executor.submit(nap, 300).unwrap();
    assert!(matches!(
        slow.exception_timeout(Duration::from_millis(10)),
        Err(Error::Timeout { .. })
    ));
    assert!(matches!(slow.exception_timeout(PATIENCE), Ok(None)));
    let failing = executor.submit(fail, 1).unwrap();
    assert!(matches!(
        failing.exception_timeout(PATIENCE),
        Ok(Some(Error::TaskPanicked { .. }))
    ));
    let mut zero = executor.map(square, 0..3).chunksize(0);
    assert!(matches!(zero.next(), Some(Err(Error::InvalidChunksize))));
    assert!(zero.next().is_none());
    let threads = ThreadPoolExecutor::new(1).unwrap();
    let mut zero = threads.map(square, 0..3).chunksize(0);
    assert!(matches!(zero.next(), Some(Err(Error::InvalidChunksize))));
}
