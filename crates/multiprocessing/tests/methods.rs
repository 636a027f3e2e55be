//! The runtime's processes, queues, pipes, locks, values, pools and executors under each start
//! method, `fork`, `spawn` and `forkserver`: one test body per behaviour, run once per method.
//!
//! Under `fork` a task's argument is moved into the child; under `spawn` and `forkserver` it
//! is encoded, and the queues, pipe ends, locks and values in it reach the child as
//! descriptors sent with its start-up message. The same bodies pass either way.

mod common;

multiprocessing::enable_test_support!();

use std::io::{BufRead, Write};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::PATIENCE;
use multiprocessing::{
    Connection, Error, ExitStatus, JoinableQueue, Lock, Process, Queue, RLock, StartMethod, Value,
    current_process, get_context, pipe,
};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

type Result<T> = multiprocessing::Result<T>;

/// Makes, for each named body `fn(StartMethod)`, a module of the same name with one test per
/// start method: `body::fork`, `body::spawn`, `body::forkserver`.
macro_rules! under_every_method {
    ($($body:ident),* $(,)?) => {
        $(
            mod $body {
                use multiprocessing::StartMethod;

                #[test]
                fn fork() {
                    super::$body(StartMethod::Fork);
                }

                #[test]
                fn spawn() {
                    super::$body(StartMethod::Spawn);
                }

                #[test]
                fn forkserver() {
                    super::$body(StartMethod::Forkserver);
                }
            }
        )*
    };
}

under_every_method!(
    a_task_process_has_its_exit_code_and_name,
    a_child_puts_into_queues_the_parent_reads,
    a_joinable_queue_is_joined_once_a_child_has_done_every_task,
    pipe_ends_given_to_a_child_talk_to_the_parent,
    a_lock_held_by_a_child_blocks_the_parent_until_the_child_dies,
    a_value_is_incremented_by_several_children_under_its_lock,
    a_pool_maps_applies_and_imaps,
    an_executor_submits_and_maps,
);

/// A task process under `method`.
fn task<A, R>(method: StartMethod, func: fn(A) -> R, arg: A) -> Process
where
    A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    R: multiprocessing::Outcome + 'static,
{
    get_context(method).process(func, arg).expect("task")
}

fn exit_with(code: i32) {
    multiprocessing::exit(code)
}

fn report_name(names: Queue<String>) -> Result<()> {
    names.put(current_process().name().to_owned())
}

fn a_task_process_has_its_exit_code_and_name(method: StartMethod) {
    let failing = task(method, exit_with, 3);
    assert_eq!(common::run(&failing), ExitStatus::Exited(3));
    assert_eq!(failing.exitcode(), Some(3));

    let names = Queue::new().unwrap();
    let default = task(method, report_name, names.clone());
    let named = Process::builder()
        .name("Reporter")
        .start_method(method)
        .task(report_name, names.clone())
        .unwrap();
    for p in [&default, &named] {
        p.start().unwrap();
        assert_eq!(names.get_timeout(PATIENCE).unwrap(), p.name());
        assert_eq!(common::finish(p), ExitStatus::Exited(0));
    }
    assert!(default.name().starts_with("Process-"), "{}", default.name());
}

/// Larger than a queue's ring at first, so the ring grows while a child started afresh has it
/// mapped, and the parent maps it again.
const LARGE: usize = 3 << 20;

fn produce((numbers, large): (Queue<u64>, Queue<Vec<u8>>)) -> Result<()> {
    for n in 0..1000 {
        numbers.put(n)?;
    }
    large.put(vec![7; LARGE])
}

fn a_child_puts_into_queues_the_parent_reads(method: StartMethod) {
    let numbers = Queue::new().unwrap();
    let large = Queue::new().unwrap();
    let producer = task(method, produce, (numbers.clone(), large.clone()));
    producer.start().unwrap();
    let got: Vec<u64> = (0..1000)
        .map(|_| numbers.get_timeout(PATIENCE).unwrap())
        .collect();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    let message = large.get_timeout(PATIENCE).unwrap();
    assert!(message.len() == LARGE && message.iter().all(|&byte| byte == 7));
    assert_eq!(common::finish(&producer), ExitStatus::Exited(0));
    assert!(numbers.empty().unwrap() && large.empty().unwrap());
}

fn square_tasks((tasks, results): (JoinableQueue<u64>, Queue<u64>)) -> Result<()> {
    for _ in 0..10 {
        let n = tasks.get_timeout(PATIENCE)?;
        results.put(n * n)?;
        tasks.task_done()?;
    }
    Ok(())
}

fn a_joinable_queue_is_joined_once_a_child_has_done_every_task(method: StartMethod) {
    let tasks = JoinableQueue::new().unwrap();
    let results = Queue::new().unwrap();
    let worker = task(method, square_tasks, (tasks.clone(), results.clone()));
    worker.start().unwrap();
    for n in 0..10 {
        tasks.put(n).unwrap();
    }
    assert!(tasks.join_timeout(PATIENCE).unwrap(), "every task done");
    let mut squares: Vec<u64> = (0..10)
        .map(|_| results.get_timeout(PATIENCE).unwrap())
        .collect();
    squares.sort_unstable();
    assert_eq!(squares, (0..10).map(|n| n * n).collect::<Vec<_>>());
    assert_eq!(common::finish(&worker), ExitStatus::Exited(0));
    assert!(matches!(
        tasks.task_done(),
        Err(Error::TaskDoneTooManyTimes)
    ));
}

fn multiply(mut conn: Connection) -> Result<()> {
    let first: u64 = conn.recv()?;
    let second: u64 = conn.recv()?;
    conn.send(&(first * second))
}

fn send_hello(mut conn: Connection) -> Result<()> {
    conn.send("hello")?;
    // A sending end cannot receive: the one-way flag came along.
    match conn.recv::<String>() {
        Err(Error::OneWay { receives: false }) => Ok(()),
        other => panic!("{other:?}"),
    }
}

fn pipe_ends_given_to_a_child_talk_to_the_parent(method: StartMethod) {
    let (mut ours, mut theirs) = pipe(true).unwrap();
    ours.send(&1_u64).unwrap();
    ours.send(&2_u64).unwrap();
    // Both are in the socket: this reads the second ahead into `theirs`, which keeps it for
    // the child.
    assert_eq!(theirs.recv::<u64>().unwrap(), 1);
    let multiplier = task(method, multiply, theirs);
    multiplier.start().unwrap();
    ours.send(&21_u64).unwrap();
    assert!(ours.poll(Some(PATIENCE)).unwrap());
    assert_eq!(ours.recv::<u64>().unwrap(), 42);
    assert_eq!(common::finish(&multiplier), ExitStatus::Exited(0));
    // This process's copy of the child's end closed when the child started, and the child's
    // with the child: the end of the stream comes, once any process forked meanwhile by
    // another test has ended too.
    assert!(ours.poll(Some(PATIENCE)).unwrap());
    assert!(matches!(ours.recv::<u64>(), Err(Error::Disconnected)));

    let (mut reader, writer) = pipe(false).unwrap();
    let hello = task(method, send_hello, writer);
    hello.start().unwrap();
    assert!(reader.poll(Some(PATIENCE)).unwrap());
    assert_eq!(reader.recv::<String>().unwrap(), "hello");
    assert_eq!(common::finish(&hello), ExitStatus::Exited(0));
}

fn hold_until_killed((lock, held): (Lock, Queue<()>)) -> Result<()> {
    let _guard = lock.acquire()?;
    held.put(())?;
    loop {
        sleep(Duration::from_secs(3600));
    }
}

fn hold_twice((rlock, held): (RLock, Queue<()>)) -> Result<()> {
    let _outer = rlock.acquire()?;
    let _inner = rlock.acquire()?;
    held.put(())
}

fn a_lock_held_by_a_child_blocks_the_parent_until_the_child_dies(method: StartMethod) {
    let lock = Lock::new().unwrap();
    let held = Queue::new().unwrap();
    let holder = task(method, hold_until_killed, (lock.clone(), held.clone()));
    holder.start().unwrap();
    held.get_timeout(PATIENCE).unwrap();
    // The child holds it until it is killed, however long this waits.
    assert!(lock.locked());
    assert!(
        lock.acquire_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    holder.kill().unwrap();
    assert_eq!(
        common::finish(&holder),
        ExitStatus::Signaled(Signal::SIGKILL as i32)
    );
    let guard = lock.acquire_timeout(PATIENCE).unwrap().expect("acquired");
    assert!(guard.previous_owner_died());
    drop(guard);

    let rlock = RLock::new().unwrap();
    let reentrant = task(method, hold_twice, (rlock.clone(), held.clone()));
    assert_eq!(common::run(&reentrant), ExitStatus::Exited(0));
    held.get_timeout(PATIENCE).unwrap();
    let guard = rlock.acquire_timeout(PATIENCE).unwrap().expect("released");
    assert!(!guard.previous_owner_died());
}

const INCREMENTS: u64 = 1000;

fn increment(counter: Value<u64>) -> Result<()> {
    for _ in 0..INCREMENTS {
        *counter.lock()? += 1;
    }
    Ok(())
}

fn a_value_is_incremented_by_several_children_under_its_lock(method: StartMethod) {
    let counter = Value::new(0_u64).unwrap();
    let workers: Vec<Process> = (0..3)
        .map(|_| common::started(task(method, increment, counter.clone())))
        .collect();
    for worker in &workers {
        assert_eq!(common::finish(worker), ExitStatus::Exited(0));
    }
    assert_eq!(counter.get().unwrap(), 3 * INCREMENTS);
}

fn square(x: u64) -> u64 {
    x * x
}

fn a_pool_maps_applies_and_imaps(method: StartMethod) {
    let pool = get_context(method).pool(2).unwrap();
    let mapped = pool.map_async(square, 0..100).unwrap();
    assert_eq!(
        mapped.get_timeout(PATIENCE).unwrap(),
        (0..100).map(square).collect::<Vec<_>>()
    );
    let applied = pool.apply_async(square, 12).unwrap();
    assert_eq!(applied.get_timeout(PATIENCE).unwrap(), 144);
    let mut imap = pool.imap(square, 0..20);
    let imapped: Vec<u64> = std::iter::from_fn(|| imap.next_timeout(PATIENCE))
        .map(|result| result.unwrap())
        .collect();
    assert_eq!(imapped, (0..20).map(square).collect::<Vec<_>>());
}

fn an_executor_submits_and_maps(method: StartMethod) {
    let executor = get_context(method)
        .executor_builder()
        .max_workers(2)
        .processes()
        .unwrap();
    let future = executor.submit(square, 9).unwrap();
    assert_eq!(*future.result_timeout(PATIENCE).unwrap(), 81);
    let mapped: Result<Vec<u64>> = executor.map(square, 0..20).timeout(PATIENCE).collect();
    assert_eq!(mapped.unwrap(), (0..20).map(square).collect::<Vec<_>>());
}

/// Whether `error` is the refusal to encode a `what` outside a task's argument.
fn refused(error: &Error, what: &str) -> bool {
    matches!(error, Error::Encode { message } if message.starts_with(&format!(
        "{what} objects should only be shared between processes through inheritance"
    )))
}

fn count(queue: Queue<u64>) -> usize {
    queue.qsize().unwrap_or_default()
}

fn get_five(queue: Queue<u64>) -> Result<()> {
    assert_eq!(queue.get_timeout(PATIENCE)?, 5);
    Ok(())
}

#[test]
fn queues_locks_values_and_pipe_ends_travel_only_to_the_children_started_with_them() {
    let queue: Queue<u64> = Queue::new().unwrap();
    let queues: Queue<Queue<u64>> = Queue::new().unwrap();
    let error = queues.put(&queue).unwrap_err();
    assert!(refused(&error, "Queue"), "{error}");
    assert!(queues.empty().unwrap(), "nothing was put");

    let (mut ours, theirs) = pipe(true).unwrap();
    let error = ours.send(&Lock::new().unwrap()).unwrap_err();
    assert!(refused(&error, "Lock"), "{error}");
    let error = ours.send(&theirs).unwrap_err();
    assert!(refused(&error, "Connection"), "{error}");
    let error = ours.send(&Value::new(1_u8).unwrap()).unwrap_err();
    assert!(refused(&error, "Value"), "{error}");
    let error = ours.send(&JoinableQueue::<u8>::new().unwrap()).unwrap_err();
    assert!(refused(&error, "JoinableQueue"), "{error}");

    let pool = get_context(StartMethod::Fork).pool(1).unwrap();
    let error = pool.apply_async(count, queue.clone()).unwrap_err();
    assert!(refused(&error, "Queue"), "{error}");
    // Under fork a task's argument is not encoded at all: it is simply there in the child.
    queue.put(5).unwrap();
    let forked = task(StartMethod::Fork, get_five, queue);
    assert_eq!(common::run(&forked), ExitStatus::Exited(0));
}

fn sleep_forever(_: ()) {
    loop {
        sleep(Duration::from_secs(3600));
    }
}

/// Waits until our child `pid` has ended, or, for a process not (yet) our child, until it is
/// gone; false if it still runs at `deadline`.
fn ends_before(pid: Pid, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                assert_eq!(signal, Signal::SIGKILL, "{pid}");
                return true;
            }
            Ok(WaitStatus::StillAlive) => {}
            // Not adopted yet: a fork server's child, until the server ends.
            Err(nix::errno::Errno::ECHILD) if common::exists(pid.as_raw() as u32) => {}
            Err(nix::errno::Errno::ECHILD) => return true,
            other => panic!("{pid}: {other:?}"),
        }
        sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_daemonic_child_of_any_method_does_not_outlive_a_parent_killed_outright() {
    // A supervisor adopts the orphans (a child subreaper), so that it can see how they end.
    let supervisor = Process::new(|| {
        // SAFETY: this prctl only sets an attribute of the calling process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
        let (reader, mut writer) = std::io::pipe().unwrap();
        let parent = Process::new(move || {
            let pids: Vec<String> = StartMethod::ALL
                .into_iter()
                .map(|method| {
                    let daemon = Process::builder()
                        .daemon(true)
                        .start_method(method)
                        .task(sleep_forever, ())
                        .unwrap();
                    daemon.start().unwrap();
                    daemon.pid().unwrap().to_string()
                })
                .collect();
            writeln!(writer, "{}", pids.join(" ")).unwrap();
            drop(writer);
            sleep_forever(());
        });
        parent.start().unwrap();
        // One line: the forked daemon keeps a copy of the pipe, so it stays open.
        let mut report = String::new();
        std::io::BufReader::new(reader)
            .read_line(&mut report)
            .unwrap();
        let pids: Vec<Pid> = report
            .split_whitespace()
            .map(|pid| Pid::from_raw(pid.parse().unwrap()))
            .collect();
        assert_eq!(pids.len(), 3, "a daemon of each method: {report}");
        parent.kill().unwrap();
        parent.join().unwrap();
        // A daemon that sleeps forever ends only with its parent: the forked and spawned ones
        // at once, the served one when the fork server sees its program gone and ends.
        let deadline = Instant::now() + Duration::from_secs(20);
        let outlived: Vec<(StartMethod, Pid)> = StartMethod::ALL
            .into_iter()
            .zip(pids)
            .filter(|&(_, pid)| !ends_before(pid, deadline))
            .collect();
        for (_, pid) in &outlived {
            let _ = nix::sys::signal::kill(*pid, Signal::SIGKILL);
        }
        assert!(outlived.is_empty(), "outlived their parent: {outlived:?}");
    });
    assert_eq!(common::run(&supervisor), ExitStatus::Exited(0));
}
