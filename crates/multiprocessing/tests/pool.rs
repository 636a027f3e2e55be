//! `Pool` as a user sees it: every method against a plain serial `map`, errors, empty and
//! endless inputs, worker recycling, small tasks in batches, and a worker killed in the middle
//! of `map` or of a batch.

mod common;

multiprocessing::enable_test_support!();

use common::{PATIENCE, Touchy, exists, touchy};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::{Error, ExitStatus, Pool, TaskPlace};

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid_of_worker(_: u64) -> u32 {
    std::process::id()
}

fn fail_on_13(x: u64) -> u64 {
    assert_ne!(x, 13, "thirteen is unlucky");
    x
}

fn die_on_13(x: u64) -> u64 {
    if x == 13 {
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    x * 10
}

fn nap(millis: u64) -> u64 {
    sleep(Duration::from_millis(millis));
    millis
}

static INITIALIZED: AtomicBool = AtomicBool::new(false);

fn initialize() {
    INITIALIZED.store(true, Ordering::SeqCst);
}

fn was_initialized(_: ()) -> bool {
    INITIALIZED.load(Ordering::SeqCst)
}

fn serial(inputs: impl Iterator<Item = u64>) -> Vec<u64> {
    inputs.map(square).collect()
}

#[test]
fn map_agrees_with_a_serial_map() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.map(square, 0..1000).unwrap(), serial(0..1000));
    assert_eq!(pool.map_chunked(square, 0..100, 1).unwrap(), serial(0..100));
    assert_eq!(pool.map_chunked(square, 0..100, 7).unwrap(), serial(0..100));
    let pending = pool.map_async(square, 0..50).unwrap();
    assert_eq!(pending.get().unwrap(), serial(0..50));
    assert!(pending.ready());
    assert!(pending.successful().unwrap());
    assert_eq!(
        pool.starmap(add, (0..100).map(|i| (i, 2 * i))).unwrap(),
        (0..100).map(|i| 3 * i).collect::<Vec<_>>()
    );
}

#[test]
fn empty_inputs_give_empty_results() {
    let pool = Pool::new(2).unwrap();
    assert!(pool.map(square, Vec::new()).unwrap().is_empty());
    assert!(pool.starmap(add, Vec::new()).unwrap().is_empty());
    assert_eq!(pool.imap(square, Vec::new()).count(), 0);
    assert_eq!(pool.imap_unordered(square, Vec::new()).count(), 0);
}

#[test]
fn imap_is_ordered_and_lazy_enough_for_an_endless_input() {
    let pool = Pool::new(2).unwrap();
    let results: Vec<u64> = pool
        .imap(square, 0..)
        .take(200)
        .map(Result::unwrap)
        .collect();
    assert_eq!(results, serial(0..200));
    let chunked: Vec<u64> = pool
        .imap_chunked(square, 0..100, 8)
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, serial(0..100));
    let mut unordered: Vec<u64> = pool
        .imap_unordered(square, 0..100)
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, serial(0..100));
}

#[test]
fn apply_and_async_results() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.apply(square, 25).unwrap(), 625);
    let slow = pool.apply_async(nap, 300).unwrap();
    assert!(!slow.ready());
    assert!(matches!(slow.successful(), Err(Error::NotReady)));
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(10)),
        Err(Error::Timeout { .. })
    ));
    assert!(slow.wait(Some(PATIENCE)));
    assert_eq!(slow.get_timeout(PATIENCE).unwrap(), 300);
    assert!(slow.successful().unwrap());
}

#[test]
fn a_panicking_task_is_that_tasks_error_and_the_worker_lives_on() {
    let pool = Pool::new(1).unwrap();
    let before = pool.apply(pid_of_worker, 0).unwrap();
    let error = pool.apply(fail_on_13, 13).unwrap_err();
    match &error {
        Error::TaskPanicked { message } => assert!(message.contains("thirteen is unlucky")),
        other => panic!("{other}"),
    }
    // map reports the first failure; imap reports each item.
    assert!(matches!(
        pool.map(fail_on_13, 0..20),
        Err(Error::TaskPanicked { .. })
    ));
    let items: Vec<_> = pool.imap(fail_on_13, 12..15).collect();
    assert_eq!(items[0].as_ref().unwrap(), &12);
    assert!(items[1].is_err());
    assert_eq!(items[2].as_ref().unwrap(), &14);
    assert_eq!(
        pool.apply(pid_of_worker, 0).unwrap(),
        before,
        "the worker was replaced"
    );
}

#[test]
fn maxtasksperchild_replaces_workers() {
    let pool = Pool::builder()
        .processes(1)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let pids: HashSet<u32> = (0..3)
        .map(|_| pool.apply(pid_of_worker, 0).unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
}

#[test]
fn the_initializer_runs_in_each_worker() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(initialize)
        .build()
        .unwrap();
    assert!(
        pool.map(was_initialized, vec![(); 8])
            .unwrap()
            .iter()
            .all(|&done| done)
    );
    assert!(!INITIALIZED.load(Ordering::SeqCst), "not in the parent");
}

#[test]
fn a_worker_killed_mid_map_fails_its_task_and_the_pool_goes_on() {
    let pool = Pool::new(2).unwrap();
    // Through imap, with one input per chunk, each item reports for itself.
    let items: Vec<_> = pool.imap(die_on_13, 0..30).collect();
    for (i, item) in items.iter().enumerate() {
        match (i, item) {
            (13, Err(Error::WorkerDied(death))) => {
                assert!(death.worker.starts_with("ForkServerPoolWorker-"), "{death}");
                assert_eq!(death.status, ExitStatus::Signaled(libc::SIGKILL));
                assert_eq!(
                    death.task,
                    Some(TaskPlace::Inputs {
                        first: 13,
                        count: 1
                    })
                );
                assert!(death.pid.is_some() && death.ran_for.is_some(), "{death}");
                assert!(death.peak_memory.is_some(), "{death}");
                let message = death.to_string();
                assert!(message.contains("SIGKILL") && message.contains("peak memory"));
            }
            (13, other) => panic!("item 13: {other:?}"),
            (_, Ok(value)) => assert_eq!(*value, i as u64 * 10),
            (_, Err(error)) => panic!("item {i}: {error}"),
        }
    }
    // map fails as a whole, within a bounded time, instead of waiting forever.
    let pending = pool.map_async(die_on_13, 0..30).unwrap();
    match pending.get_timeout(Duration::from_secs(5)) {
        Err(Error::WorkerDied(_)) => {}
        other => panic!("{other:?}"),
    }
    // The replacement serves the next call.
    assert_eq!(pool.map(square, 0..100).unwrap(), serial(0..100));
}

#[test]
fn close_join_and_terminate() {
    assert!(matches!(Pool::new(0), Err(Error::NoWorkers)));
    let pool = Pool::new(2).unwrap();
    assert!(matches!(pool.join(), Err(Error::PoolRunning)));
    let pending = pool.map_async(nap, vec![50; 4]).unwrap();
    pool.close();
    assert!(matches!(pool.apply(square, 2), Err(Error::PoolClosed)));
    pool.join().unwrap();
    assert_eq!(
        pending.get().unwrap(),
        vec![50; 4],
        "work submitted before close finished"
    );

    let pool = Pool::new(1).unwrap();
    let long = pool.apply_async(nap, 60_000).unwrap();
    let queued = pool.apply_async(nap, 1).unwrap();
    sleep(Duration::from_millis(100));
    pool.terminate();
    assert!(matches!(
        long.get_timeout(PATIENCE),
        Err(Error::PoolTerminated)
    ));
    assert!(matches!(
        queued.get_timeout(PATIENCE),
        Err(Error::PoolTerminated)
    ));
}

#[test]
fn no_worker_outlives_the_pool() {
    let pool = Pool::new(2).unwrap();
    let pids: HashSet<u32> = pool
        .map_chunked(pid_of_worker, 0..200, 1)
        .unwrap()
        .into_iter()
        .collect();
    assert!(!pids.is_empty());
    drop(pool);
    for pid in pids {
        assert!(!exists(pid), "worker {pid} outlived the pool");
    }
}

fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

#[test]
fn many_small_tasks_in_chunks_of_one_come_back_in_order() {
    // Small tasks travel in batches, both ways, many frames to a read or a write; frames of
    // many sizes end and start anywhere in a read.
    let inputs: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| vec![i as u8; (i as usize * 37) % 5000])
        .collect();
    for processes in [1, 2] {
        let pool = Pool::new(processes).unwrap();
        assert_eq!(
            pool.map_chunked(square, 0..10_000, 1).unwrap(),
            serial(0..10_000)
        );
        assert_eq!(pool.map_chunked(echo, inputs.clone(), 1).unwrap(), inputs);
        let imapped: Vec<Vec<u8>> = pool
            .imap(echo, inputs.clone())
            .map(Result::unwrap)
            .collect();
        assert_eq!(imapped, inputs);
    }
}

#[test]
fn a_slow_task_does_not_hold_back_a_result_its_worker_has_done() {
    let pool = Pool::new(1).unwrap();
    // While the worker naps, the next two calls are sent ahead to it, and it reads them in
    // one go; the first is answered before the slow one starts.
    let _nap = pool.apply_async(nap, 300).unwrap();
    let before = pool.apply_async(square, 3).unwrap();
    let slow = pool.apply_async(nap, 60_000).unwrap();
    let after = pool.apply_async(square, 4).unwrap();
    assert_eq!(before.get_timeout(PATIENCE).unwrap(), 9);
    assert!(!slow.ready(), "the slow task finished first");
    assert!(!after.ready(), "a task ran before the one sent ahead of it");
    pool.terminate();
    assert!(matches!(
        slow.get_timeout(PATIENCE),
        Err(Error::PoolTerminated)
    ));
}

#[test]
fn a_slow_task_does_not_hold_back_a_map_its_worker_has_done() {
    let pool = Pool::new(1).unwrap();
    // As above, with a map's two chunks before the slow call: the worker may answer the two
    // together, but before the slow one starts.
    let _nap = pool.apply_async(nap, 300).unwrap();
    let map = pool.map_async(square, 0..2).unwrap();
    let slow = pool.apply_async(nap, 60_000).unwrap();
    let _after = pool.apply_async(square, 4).unwrap();
    assert_eq!(map.get_timeout(PATIENCE).unwrap(), [0, 1]);
    assert!(!slow.ready(), "the slow task finished first");
    pool.terminate();
}

/// Notes `x` in the file at `path`, then does what `die_on_13` does.
fn note_and_die_on_13((path, x): (String, u64)) -> u64 {
    use std::io::Write;
    let mut notes = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(notes, "{x}").unwrap();
    die_on_13(x)
}

#[test]
fn a_worker_killed_in_the_middle_of_a_batch_fails_one_call_and_the_rest_complete() {
    let pool = Pool::new(1).unwrap();
    // Submitted together, these may reach the worker in one read.
    let inputs = [1, 2, 13, 3, 4];
    let calls: Vec<_> = inputs
        .iter()
        .map(|&x| pool.apply_async(die_on_13, x).unwrap())
        .collect();
    for (&x, call) in inputs.iter().zip(&calls) {
        match (x, call.get_timeout(PATIENCE)) {
            (13, Err(Error::WorkerDied(death))) => {
                assert_eq!(death.status, ExitStatus::Signaled(libc::SIGKILL));
                assert_eq!(death.task, Some(TaskPlace::Call));
            }
            (13, other) => panic!("the call of 13: {other:?}"),
            (x, result) => assert_eq!(result.unwrap(), x * 10),
        }
    }
    // In a map in chunks of 1, the worker answers many chunks with one write. The map fails,
    // and the task that killed its worker is not run again on the next one.
    let notes = std::env::temp_dir().join(format!("pool-batch-death-{}", std::process::id()));
    let path = notes.to_string_lossy().into_owned();
    let outcome = pool.map_chunked(note_and_die_on_13, (0..40).map(|x| (path.clone(), x)), 1);
    let ran = std::fs::read_to_string(&notes).unwrap_or_default();
    let _ = std::fs::remove_file(&notes);
    assert!(matches!(outcome, Err(Error::WorkerDied(_))), "{outcome:?}");
    let runs = ran.lines().filter(|line| *line == "13").count();
    assert_eq!(runs, 1, "the task that killed its worker ran {runs} times");
    assert_eq!(pool.map_chunked(square, 0..100, 1).unwrap(), serial(0..100));
}

#[test]
fn large_arguments_and_results_in_flight_both_ways_do_not_deadlock() {
    // Several 256 KiB inputs go out to each worker while 256 KiB results come back: more than
    // a socket holds in either direction.
    let pool = Pool::new(2).unwrap();
    let inputs: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 256 << 10]).collect();
    let pending = pool.map_async(echo, inputs.clone()).unwrap();
    assert_eq!(pending.get_timeout(PATIENCE).unwrap(), inputs);
    let chunked: Vec<Vec<u8>> = pool
        .imap(echo, inputs.clone())
        .map(Result::unwrap)
        .collect();
    assert_eq!(chunked, inputs);
}

fn broken_initializer() {
    // The worker reports the panic on stderr; this test expects it, so keep it quiet.
    let null = std::fs::File::create("/dev/null").unwrap();
    nix::unistd::dup2_stderr(&null).unwrap();
    panic!("cannot initialize");
}

#[test]
fn a_failing_initializer_is_reported_by_new_not_retried_forever() {
    let result = Pool::builder()
        .processes(1)
        .initializer(broken_initializer)
        .build();
    match result {
        Err(Error::WorkerDidNotStart { status, .. }) => assert_eq!(status, ExitStatus::Exited(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn daemons_and_pool_workers_die_with_a_parent_killed_outright() {
    use std::io::{BufRead, Write};

    // A supervisor adopts the orphans (a child subreaper), so that it can see how they end.
    let supervisor = multiprocessing::Process::new(|| {
        // SAFETY: this prctl only sets an attribute of the calling process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        let main = multiprocessing::Process::new(move || {
            let daemon = multiprocessing::Process::builder()
                .daemon(true)
                .target(|| sleep(Duration::from_secs(60)));
            daemon.start().unwrap();
            // Forked workers are this parent's children; `tests/methods.rs` kills the parent of
            // children of every method.
            let pool = Pool::builder()
                .processes(2)
                .start_method(multiprocessing::StartMethod::Fork)
                .build()
                .unwrap();
            let mut pids: Vec<u32> = pool.map_chunked(pid_of_worker, 0..50, 1).unwrap();
            pids.sort_unstable();
            pids.dedup();
            pids.push(daemon.pid().unwrap());
            writeln!(writer, "{pids:?}").unwrap();
            drop(writer);
            sleep(Duration::from_secs(60));
        });
        main.start().unwrap();
        // One line: the daemon and the workers keep copies of the pipe, so it stays open.
        let mut report = String::new();
        std::io::BufReader::new(&mut reader)
            .read_line(&mut report)
            .unwrap();
        let pids: Vec<i32> = report
            .trim()
            .trim_matches(['[', ']'])
            .split(", ")
            .map(|pid| pid.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 3, "two workers and a daemon: {report}");
        main.kill().unwrap();
        main.join().unwrap();
        // Each one ends at once; 10 s is far below the 60 s the daemon would sleep.
        let deadline = Instant::now() + Duration::from_secs(10);
        for pid in pids {
            let pid = nix::unistd::Pid::from_raw(pid);
            loop {
                match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    // Killed with its parent; or, for a pool worker, ended on its own
                    // when it found its socket to the dead parent closed, whichever first.
                    Ok(nix::sys::wait::WaitStatus::Signaled(_, signal, _)) => {
                        assert_eq!(signal, nix::sys::signal::Signal::SIGKILL);
                        break;
                    }
                    Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => break,
                    Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                        assert!(Instant::now() < deadline, "{pid} outlived its parent");
                        sleep(Duration::from_millis(10));
                    }
                    other => panic!("{pid}: {other:?}"),
                }
            }
        }
    });
    assert_eq!(common::run(&supervisor), ExitStatus::Exited(0));
}

/// Set in the parent once a pool is built: workers forked afterwards refuse to start.
static REFUSE_TO_START: AtomicBool = AtomicBool::new(false);

fn refuse_when_told() {
    if REFUSE_TO_START.load(Ordering::SeqCst) {
        broken_initializer();
    }
}

fn die(_: u64) -> u64 {
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("SIGKILL cannot be caught")
}

#[test]
fn a_pool_that_cannot_replace_its_workers_fails_work_instead_of_queueing_it() {
    // One test sets the flag, so the two cases run in turn, each in a child of its own.
    for processes in [1, 2] {
        let case = multiprocessing::Process::new(move || {
            // Only a forked worker sees the flag its parent sets after the pool starts.
            let pool = Pool::builder()
                .processes(processes)
                .initializer(refuse_when_told)
                .start_method(multiprocessing::StartMethod::Fork)
                .build()
                .unwrap();
            REFUSE_TO_START.store(true, Ordering::SeqCst);
            // Every worker dies, at about the same time; no replacement can start.
            let died = pool.map_chunked(die, 0..processes as u64, 1);
            assert!(matches!(died, Err(Error::WorkerDied(_))), "{died:?}");
            // Work is refused or failed with the reason, never queued for no one.
            let later = pool
                .apply_async(square, 2)
                .and_then(|result| result.get_timeout(PATIENCE));
            match later {
                Err(Error::WorkerDidNotStart { worker, status }) => {
                    assert!(worker.starts_with("ForkPoolWorker-"), "{worker}");
                    assert_eq!(status, ExitStatus::Exited(1));
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                pool.map(square, 0..10),
                Err(Error::WorkerDidNotStart { .. })
            ));
        });
        assert_eq!(
            common::run(&case),
            ExitStatus::Exited(0),
            "{processes} workers"
        );
    }
}

#[test]
fn a_result_whose_decoding_panics_is_a_decode_error() {
    let pool = Pool::new(1).unwrap();
    let bad = pool.apply_async(touchy, 13).unwrap();
    match bad.get_timeout(PATIENCE) {
        Err(Error::Decode { message }) => assert!(message.contains("Touchy cannot hold 13")),
        other => panic!("{other:?}"),
    }
    let mut items = pool.imap(touchy, 12..15);
    let items: Vec<_> = (0..3)
        .map(|_| items.next_timeout(PATIENCE).unwrap())
        .collect();
    assert!(matches!(items[1], Err(Error::Decode { .. })), "{items:?}");
    let good = pool.apply_async(touchy, 2).unwrap();
    assert_eq!(good.get_timeout(PATIENCE).unwrap(), Touchy(2));
}

#[test]
fn async_results_call_their_callbacks_off_the_callers_thread() {
    use std::sync::mpsc;
    let pool = Pool::new(2).unwrap();
    let (sender, received) = mpsc::channel();
    let caller = std::thread::current().id();
    let ok = sender.clone();
    let _ = pool
        .apply_async(nap, 50)
        .unwrap()
        .callback(move |value| {
            ok.send(format!(
                "callback {value} {}",
                std::thread::current().id() != caller
            ))
            .unwrap()
        })
        .error_callback(|error| panic!("no error expected: {error}"));
    let failed = sender.clone();
    let _ = pool
        .map_async(fail_on_13, 10..20)
        .unwrap()
        .callback(|values| panic!("no values expected: {values:?}"))
        .error_callback(move |error| {
            failed
                .send(format!(
                    "error_callback {}",
                    matches!(error, Error::TaskPanicked { .. })
                ))
                .unwrap()
        });
    let all = sender.clone();
    let _ = pool
        .starmap_async(add, (0..10).map(|i| (i, i)))
        .unwrap()
        .callback(move |values| all.send(format!("starmap {values:?}")).unwrap());
    // A callback that panics costs nothing but itself.
    let _ = pool
        .apply_async(square, 3)
        .unwrap()
        .callback(|_| panic!("careless callback"));
    pool.close();
    pool.join().unwrap();
    let mut messages: Vec<String> = received.try_iter().collect();
    messages.sort();
    assert_eq!(
        messages,
        [
            "callback 50 true",
            "error_callback true",
            "starmap [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]",
        ],
        "join returns once every callback has run"
    );
    // A callback added to a result already in runs at once.
    let pool = Pool::new(1).unwrap();
    let done = pool.apply_async(square, 4).unwrap();
    assert!(done.wait(Some(PATIENCE)));
    let (sender, received) = mpsc::channel();
    let _ = done.callback(move |value| sender.send(value).unwrap());
    assert_eq!(received.try_recv().unwrap(), 16);
}

#[test]
fn iterators_wait_with_a_timeout_and_may_be_asked_again() {
    let pool = Pool::new(1).unwrap();
    let mut ordered = pool.imap(nap, [300, 1]);
    assert!(matches!(
        ordered.next_timeout(Duration::from_millis(10)),
        Some(Err(Error::Timeout { .. }))
    ));
    assert_eq!(ordered.next_timeout(PATIENCE).unwrap().unwrap(), 300);
    assert_eq!(ordered.next_timeout(PATIENCE).unwrap().unwrap(), 1);
    assert!(ordered.next_timeout(PATIENCE).is_none());

    let mut unordered = pool.imap_unordered(nap, [300]);
    assert!(matches!(
        unordered.next_timeout(Duration::from_millis(10)),
        Some(Err(Error::Timeout { .. }))
    ));
    assert_eq!(unordered.next_timeout(PATIENCE).unwrap().unwrap(), 300);
    assert!(unordered.next_timeout(PATIENCE).is_none());
}

#[test]
fn chunk_sizes_for_every_map_and_zero_refused() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.starmap_chunked(add, (0..50).map(|i| (i, 2 * i)), 7)
            .unwrap(),
        (0..50).map(|i| 3 * i).collect::<Vec<_>>()
    );
    let mut unordered: Vec<u64> = pool
        .imap_unordered_chunked(square, 0..100, 9)
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, serial(0..100));
    assert!(matches!(
        pool.map_chunked(square, 0..10, 0),
        Err(Error::InvalidChunksize)
    ));
    assert!(matches!(
        pool.starmap_chunked(add, [(1, 2)], 0),
        Err(Error::InvalidChunksize)
    ));
    let mut zero = pool.imap_chunked(square, 0..10, 0);
    assert!(matches!(zero.next(), Some(Err(Error::InvalidChunksize))));
    assert!(zero.next().is_none());
    let mut zero = pool.imap_unordered_chunked(square, 0..10, 0);
    assert!(matches!(zero.next(), Some(Err(Error::InvalidChunksize))));
    assert!(zero.next().is_none());
}

#[test]
fn a_waiter_that_gives_up_leaves_the_reply_to_the_pool() {
    let pool = Pool::new(1).unwrap();
    let slow = pool.apply_async(nap, 300).unwrap();
    // The waiter reads the worker's socket itself while it waits, and gives it back when its
    // time is up; the reply then comes in through the pool's manager thread.
    assert!(matches!(
        slow.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout { .. })
    ));
    // With nobody waiting, the manager thread takes the reply in.
    let deadline = Instant::now() + PATIENCE;
    while !slow.ready() {
        assert!(Instant::now() < deadline, "nobody took the reply in");
        sleep(Duration::from_millis(5));
    }
    assert_eq!(slow.get_timeout(PATIENCE).unwrap(), 300);
    assert_eq!(pool.apply(square, 7).unwrap(), 49);
}

#[test]
fn terminating_a_pool_ends_a_wait_on_its_worker() {
    let pool = std::sync::Arc::new(Pool::new(1).unwrap());
    let long = pool.apply_async(nap, 600_000).unwrap();
    let waiter = std::thread::spawn(move || long.get());
    sleep(Duration::from_millis(100));
    pool.terminate();
    let (sender, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(waiter.join().unwrap()));
    assert!(matches!(
        outcome.recv_timeout(PATIENCE),
        Ok(Err(Error::PoolTerminated))
    ));
}
