//! The start methods as a user sees them: the names of pool and executor workers under
//! `fork`, `spawn` and `forkserver`, what each refuses, and what a worker started afresh does
//! not inherit. `methods.rs` runs the rest of the runtime under each method.

mod common;

multiprocessing::enable_test_support!();

use common::PATIENCE;

use std::sync::Mutex;

use multiprocessing::futures::ProcessPoolExecutor;
use multiprocessing::{Error, Process, StartMethod, current_process, get_context};

fn name(_: ()) -> String {
    current_process().name().to_owned()
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn pool_and_executor_workers_have_pythons_names_under_every_method() {
    let names = [
        (StartMethod::Fork, "ForkPoolWorker-", "ForkProcess-"),
        (StartMethod::Spawn, "SpawnPoolWorker-", "SpawnProcess-"),
        (
            StartMethod::Forkserver,
            "ForkServerPoolWorker-",
            "ForkServerProcess-",
        ),
    ];
    for (method, pool_name, executor_name) in names {
        let ctx = get_context(method);
        let pool = ctx.pool(1).unwrap();
        let worker = pool
            .apply_async(name, ())
            .unwrap()
            .get_timeout(PATIENCE)
            .unwrap();
        assert!(worker.starts_with(pool_name), "{method}: {worker}");
        let executor = ctx.executor_builder().max_workers(1).processes().unwrap();
        let worker = executor.submit(name, ()).unwrap();
        let worker = worker.result_timeout(PATIENCE).unwrap();
        assert!(worker.starts_with(executor_name), "{method}: {worker}");
    }
}

#[test]
fn a_closure_needs_fork() {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let p = Process::builder().start_method(method).target(|| ());
        assert!(
            matches!(p.start(), Err(Error::NeedsFork { .. })),
            "{method}"
        );
    }
    assert!(matches!(
        "thread".parse::<StartMethod>(),
        Err(Error::UnknownStartMethod { .. })
    ));
}

#[test]
fn max_tasks_per_child_replaces_workers_and_is_refused_under_fork() {
    let executor = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .processes()
        .unwrap();
    let pids: std::collections::HashSet<u32> = (0..3)
        .map(|i| {
            *executor
                .submit(pid, i)
                .unwrap()
                .result_timeout(PATIENCE)
                .unwrap()
        })
        .collect();
    assert_eq!(pids.len(), 3, "each call in a fresh worker");
    let refused = ProcessPoolExecutor::builder()
        .max_tasks_per_child(1)
        .start_method(StartMethod::Fork)
        .processes();
    assert!(matches!(refused, Err(Error::MaxTasksUnderFork)));
}

/// Held by a thread of the test's process while a pool starts.
static HELD: Mutex<()> = Mutex::new(());

fn take_the_lock(_: ()) -> bool {
    drop(HELD.lock().unwrap());
    true
}

#[test]
fn a_lock_held_by_another_thread_does_not_follow_spawned_or_served_workers_nor_the_default() {
    let (locked, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let _guard = HELD.lock().unwrap();
            locked.wait();
            release.wait();
        });
        locked.wait();
        for method in [StartMethod::Spawn, StartMethod::Forkserver] {
            let pool = get_context(method).pool(1).unwrap();
            let taken = pool.apply_async(take_the_lock, ()).unwrap();
            assert!(taken.get_timeout(PATIENCE).unwrap(), "{method}");
        }
        // The default is safe in a program with threads too.
        let pool = multiprocessing::Pool::new(1).unwrap();
        let taken = pool.apply_async(take_the_lock, ()).unwrap();
        assert!(
            taken.get_timeout(PATIENCE).unwrap(),
            "the default start method"
        );
        let executor = multiprocessing::futures::ProcessPoolExecutor::new(1).unwrap();
        let taken = executor.submit(take_the_lock, ()).unwrap();
        assert!(
            *taken.result_timeout(PATIENCE).unwrap(),
            "the executor's default"
        );
        release.wait();
    });
}
