//! Beyond Python's pool: task time limits that stop only the stuck worker, calls stopped while
//! they run, deaths that say why, memory ceilings, and where each worker's time went.

mod common;

multiprocessing::enable_test_support!();

use common::{PATIENCE, bounded, exists};

use std::collections::HashSet;
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::futures::ProcessPoolExecutor;
use multiprocessing::{Error, ExitStatus, Pool, TaskPlace, WorkerStats};

/// Long enough that a test whose limit failed to stop it would notice, short enough that one
/// that works does not wait for it.
const HANG: u64 = 600_000;

fn nap(millis: u64) -> u64 {
    sleep(Duration::from_millis(millis));
    millis
}

fn hang_on_3(x: u64) -> u64 {
    if x == 3 {
        nap(HANG);
    }
    x * 10
}

fn pid_of_worker(_: u64) -> u32 {
    std::process::id()
}

fn segfault_on_5(x: u64) -> u64 {
    if x == 5 {
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV).unwrap();
    }
    x
}

/// Allocates and touches `mib` MiB, and keeps it (a leak the pool must notice); returns its
/// worker's pid.
fn grow(mib: usize) -> u32 {
    let block = vec![1u8; mib << 20];
    std::hint::black_box(&block);
    std::mem::forget(block);
    std::process::id()
}

/// Waits, at most [`PATIENCE`], until `stats` shows `count` workers running, as a pool shows
/// once it has replaced the workers it stopped; whether it did.
fn runs_workers(stats: impl Fn() -> Vec<WorkerStats>, count: usize) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if stats().iter().filter(|w| !w.ended).count() == count {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(5));
    }
}

/// Whether `pool` runs `count` workers, or comes to within [`PATIENCE`].
fn live_workers(pool: &Pool, count: usize) -> bool {
    runs_workers(|| pool.worker_stats(), count)
}

#[test]
fn a_task_past_its_time_limit_fails_alone_and_the_pool_keeps_its_workers() {
    let (results, workers, stopped) = bounded(|| {
        let pool = Pool::new(2).unwrap();
        let limited = pool.with_task_timeout(Duration::from_millis(500));
        let results: Vec<_> = limited.imap(hang_on_3, 0..8).collect();
        let stopped: Vec<u32> = pool
            .worker_stats()
            .iter()
            .filter(|w| w.ended)
            .filter_map(|w| w.pid)
            .collect();
        // The replacement is in place, and serves.
        assert_eq!(pool.map(hang_on_3, [1, 2]).unwrap(), [10, 20]);
        (results, live_workers(&pool, 2), stopped)
    });
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (3, Err(Error::TaskTimedOut { limit, worker })) => {
                assert_eq!(*limit, Duration::from_millis(500));
                assert_eq!(worker.task, Some(TaskPlace::Inputs { first: 3, count: 1 }));
                assert_eq!(worker.status, ExitStatus::Signaled(libc::SIGTERM));
            }
            (3, other) => panic!("input 3: {other:?}"),
            (i, Ok(value)) => assert_eq!(*value, i as u64 * 10),
            (i, Err(error)) => panic!("input {i}: {error}"),
        }
    }
    assert!(workers, "the pool is back to 2 workers");
    assert_eq!(stopped.len(), 1, "one worker was stopped");
    assert!(!exists(stopped[0]), "the stopped worker is gone");
}

#[test]
fn a_pool_wide_limit_covers_apply_async_and_map() {
    let pool = Pool::builder()
        .processes(2)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let stuck = pool.apply_async(nap, HANG).unwrap();
    let quick = pool.apply_async(nap, 1).unwrap();
    match stuck.get_timeout(PATIENCE) {
        Err(Error::TaskTimedOut { worker, .. }) => {
            assert_eq!(worker.task, Some(TaskPlace::Call));
            assert!(worker.ran_for.unwrap() >= Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(quick.get_timeout(PATIENCE).unwrap(), 1);
    // A map fails as a whole with the error of its stuck chunk, and in bounded time.
    let map = pool.map_async(hang_on_3, 0..4).unwrap();
    assert!(matches!(
        map.get_timeout(PATIENCE),
        Err(Error::TaskTimedOut { .. })
    ));
    // The stopped workers are replaced, and the pool serves.
    assert_eq!(pool.map(hang_on_3, [1, 2]).unwrap(), [10, 20]);
    assert!(live_workers(&pool, 2));
}

#[test]
fn an_executor_call_past_its_limit_fails_alone_and_the_executor_does_not_break() {
    let executor = ProcessPoolExecutor::builder()
        .max_workers(2)
        .task_timeout(Duration::from_millis(300))
        .processes()
        .unwrap();
    let stuck = executor.submit(nap, HANG).unwrap();
    assert!(matches!(
        stuck.result_timeout(PATIENCE),
        Err(Error::TaskTimedOut { .. })
    ));
    assert_eq!(*executor.submit(nap, 5).unwrap().result().unwrap(), 5);
    let limited = executor.with_task_timeout(Duration::from_millis(200));
    let results: Vec<_> = limited.map(hang_on_3, 0..6).collect();
    assert!(matches!(results[3], Err(Error::TaskTimedOut { .. })));
    let others: Vec<u64> = results
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, r)| r.unwrap())
        .collect();
    assert_eq!(others, [0, 10, 20, 40, 50]);
}

#[test]
fn terminating_a_running_future_stops_its_worker_only() {
    let executor = ProcessPoolExecutor::new(2).unwrap();
    let stuck = executor.submit(nap, HANG).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !stuck.running() {
        assert!(Instant::now() < deadline, "the call never started");
        sleep(Duration::from_millis(5));
    }
    assert!(
        !stuck.cancel(),
        "cancel refuses a running call, as in Python"
    );
    assert!(stuck.terminate());
    assert!(matches!(
        stuck.result_timeout(PATIENCE),
        Err(Error::Cancelled)
    ));
    assert!(stuck.cancelled());
    // The executor is not broken, and still has two workers.
    let answers: Vec<u64> = executor
        .map(hang_on_3, [1, 2, 4])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(answers, [10, 20, 40]);
    assert!(runs_workers(|| executor.worker_stats(), 2));
    let stats = executor.worker_stats();
    let stopped: Vec<u32> = stats
        .iter()
        .filter(|w| w.ended)
        .filter_map(|w| w.pid)
        .collect();
    assert_eq!(stopped.len(), 1);
    assert!(!exists(stopped[0]));
    // A finished future cannot be terminated.
    let done = executor.submit(nap, 1).unwrap();
    done.result().unwrap();
    assert!(!done.terminate());
}

#[test]
fn a_segfaulting_worker_is_diagnosed() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<_> = pool.imap(segfault_on_5, 0..8).collect();
    match &results[5] {
        Err(Error::WorkerDied(death)) => {
            assert_eq!(death.status, ExitStatus::Signaled(libc::SIGSEGV));
            assert_eq!(death.task, Some(TaskPlace::Inputs { first: 5, count: 1 }));
            let pid = death.pid.expect("a pid");
            assert!(!exists(pid));
            let message = results[5].as_ref().unwrap_err().to_string();
            assert!(message.contains("SIGSEGV"), "{message}");
            assert!(message.contains(&format!("pid {pid}")), "{message}");
            assert!(message.contains("input 5 of its map"), "{message}");
            // A worker holds at least its program's code and stack.
            assert!(
                death.peak_memory.is_some_and(|peak| peak > 100 << 10),
                "{death}"
            );
            assert!(message.contains("peak memory"), "{message}");
            assert!(!death.likely_oom, "a segfault is not the OOM killer's");
        }
        other => panic!("{other:?}"),
    }
    for (i, result) in results.iter().enumerate().filter(|(i, _)| *i != 5) {
        assert_eq!(*result.as_ref().unwrap(), i as u64);
    }
}

#[test]
fn a_task_past_the_memory_ceiling_fails_alone() {
    let pool = Pool::builder()
        .processes(2)
        .memory_limit(1 << 30)
        .build()
        .unwrap();
    let small = pool.apply_async(grow, 16).unwrap();
    let huge = pool.apply_async(grow, 4096).unwrap();
    assert!(small.get_timeout(PATIENCE).is_ok());
    match huge.get_timeout(PATIENCE) {
        Err(Error::MemoryLimitExceeded { limit, worker }) => {
            assert_eq!(limit, 1 << 30);
            assert_eq!(worker.status, ExitStatus::Signaled(libc::SIGABRT));
            assert_eq!(worker.task, Some(TaskPlace::Call));
        }
        other => panic!("{other:?}"),
    }
    // The executor's kind of pool does not break on it either.
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .memory_limit(1 << 30)
        .processes()
        .unwrap();
    let huge = executor.submit(grow, 4096).unwrap();
    assert!(matches!(
        huge.result_timeout(PATIENCE),
        Err(Error::MemoryLimitExceeded { .. })
    ));
    assert!(executor.submit(grow, 1).unwrap().result().is_ok());
    assert!(pool.apply(grow, 1).is_ok());
    assert!(live_workers(&pool, 2));
}

#[test]
fn a_worker_grown_past_max_memory_is_replaced_before_its_next_task() {
    let pool = Pool::builder()
        .processes(1)
        .max_memory_per_child(200 << 20)
        .build()
        .unwrap();
    let first = pool.apply(pid_of_worker, 0).unwrap();
    assert_eq!(pool.apply(grow, 8).unwrap(), first, "a small leak is kept");
    assert_eq!(pool.apply(grow, 300).unwrap(), first);
    let next = pool.apply(pid_of_worker, 0).unwrap();
    assert_ne!(next, first, "the grown worker was replaced");
    let deadline = Instant::now() + PATIENCE;
    while exists(first) {
        assert!(Instant::now() < deadline, "the grown worker did not end");
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn worker_stats_account_for_every_input() {
    let pool = Pool::new(2).unwrap();
    pool.map_chunked(nap, [20; 10], 1).unwrap();
    let stats = pool.worker_stats();
    assert_eq!(stats.len(), 2);
    assert_eq!(stats.iter().map(|w| w.tasks).sum::<usize>(), 10);
    let pids: HashSet<_> = stats.iter().filter_map(|w| w.pid).collect();
    assert_eq!(pids.len(), 2);
    for worker in &stats {
        assert!(!worker.ended);
        assert!(worker.startup > Duration::ZERO, "{worker:?}");
        // Each ran at least one 20 ms nap, and working time is what the manager saw.
        assert!(worker.working >= Duration::from_millis(20), "{worker:?}");
    }
    drop(pool);
    for pid in pids {
        let deadline = Instant::now() + PATIENCE;
        while exists(pid) {
            assert!(Instant::now() < deadline, "worker {pid} outlived its pool");
            sleep(Duration::from_millis(10));
        }
    }
}
