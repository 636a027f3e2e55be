//! `Lock`, `RLock` and `Value` as a user sees them: no lost update under the lock, timeouts,
//! a dead owner that does not block the next acquirer, the rules of an `RLock`.
//!
//! Every wait here is bounded: a child that waits for a signal gives up after [`PATIENCE`],
//! every join has a timeout, and a child still running when its test fails is killed.

use std::io::Read;
use std::os::fd::AsFd;
use std::thread::sleep;
use std::time::{Duration, Instant};

use multiprocessing::logging::log_to_stderr;
use multiprocessing::{Error, ExitStatus, Lock, Process, RLock, Value};

/// Long enough for anything here; a wait that needs more is a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// A started process that is killed and reaped when dropped, if a test fails before it ends.
struct Started(Process);

impl Started {
    fn new(process: Process) -> Started {
        process.start().expect("start");
        Started(process)
    }

    /// Waits for the process, failing the test instead of hanging.
    fn join(&self) -> ExitStatus {
        let status = self.0.join_timeout(PATIENCE).expect("join");
        status.unwrap_or_else(|| panic!("{} did not end in time", self.0))
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.0.is_alive() {
            let _ = self.0.kill();
            let _ = self.0.join_timeout(PATIENCE);
        }
    }
}

/// Runs `body` in a child process and fails the test if the child fails.
fn in_child<R: multiprocessing::Outcome>(body: impl FnOnce() -> R + Send + 'static) {
    assert_eq!(
        Started::new(Process::new(body)).join(),
        ExitStatus::Exited(0)
    );
}

/// Waits until `condition` holds, panicking after [`PATIENCE`].
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not after {PATIENCE:?}");
        sleep(Duration::from_millis(1));
    }
}

/// A child that holds `lock` until `go` is set.
fn holder(lock: &Lock, go: &Value<u8>) -> Process {
    let (lock, go) = (lock.clone(), go.clone());
    Process::new(move || -> multiprocessing::Result<()> {
        let _guard = lock.acquire()?;
        eventually("the parent's signal", || go.get().unwrap() == 1);
        Ok(())
    })
}

// ANCHOR: count
const PROCESSES: u64 = 4;
const INCREMENTS: u64 = 10_000;

/// Starts [`PROCESSES`] children that each run `increment` [`INCREMENTS`] times.
fn count_in_children(increment: impl Fn() -> multiprocessing::Result<()> + Clone + Send + 'static) {
    let workers: Vec<Started> = (0..PROCESSES)
        .map(|_| {
            let increment = increment.clone();
            Started::new(Process::new(move || {
                (0..INCREMENTS).try_for_each(|_| increment())
            }))
        })
        .collect();
    for worker in &workers {
        assert_eq!(worker.join(), ExitStatus::Exited(0));
    }
}
// ANCHOR_END: count

// ANCHOR: counter
#[test]
fn no_update_is_lost_under_the_lock() {
    let counter = Value::new(0_u64).unwrap();
    count_in_children({
        let counter = counter.clone();
        move || {
            *counter.lock()? += 1;
            Ok(())
        }
    });
    assert_eq!(counter.get().unwrap(), PROCESSES * INCREMENTS);
}
// ANCHOR_END: counter

#[test]
fn a_lock_makes_a_read_and_a_write_one_step() {
    // `get` and `set` each take the value's own lock, but not across the pair: only the
    // outer lock keeps another process from writing in between.
    let lock = Lock::new().unwrap();
    let counter = Value::new(0_u64).unwrap();
    count_in_children({
        let counter = counter.clone();
        move || {
            let _guard = lock.acquire()?;
            counter.set(counter.get()? + 1)
        }
    });
    assert_eq!(counter.get().unwrap(), PROCESSES * INCREMENTS);
}

#[test]
fn timeouts_and_tries_give_none_while_another_process_holds_the_lock() {
    let lock = Lock::new().unwrap();
    let go = Value::new(0_u8).unwrap();
    let child = Started::new(holder(&lock, &go));
    eventually("the child holds the lock", || lock.locked());

    assert!(lock.try_acquire().unwrap().is_none());
    assert!(
        lock.acquire_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none()
    );
    assert!(lock.locked());

    // Once the child lets go, a waiting acquire gets the lock.
    go.set(1).unwrap();
    let guard = lock.acquire_timeout(PATIENCE).unwrap().expect("the lock");
    assert!(!guard.previous_owner_died());
    assert_eq!(child.join(), ExitStatus::Exited(0));
}

#[test]
fn a_process_waiting_with_a_timeout_gets_the_lock_when_it_is_released() {
    let lock = Lock::new().unwrap();
    let go = Value::new(0_u8).unwrap();
    let guard = lock.acquire().unwrap();
    let waiter = Started::new(Process::new({
        let (lock, go) = (lock.clone(), go.clone());
        move || -> multiprocessing::Result<()> {
            go.set(1)?;
            let guard = lock
                .acquire_timeout(PATIENCE)?
                .expect("the lock within the timeout");
            assert!(!guard.previous_owner_died());
            Ok(())
        }
    }));
    eventually("the child is about to wait", || go.get().unwrap() == 1);
    drop(guard);
    assert_eq!(waiter.join(), ExitStatus::Exited(0));
    assert!(!lock.locked());
}

#[test]
fn the_holding_thread_cannot_acquire_a_lock_again() {
    // In a child: if `acquire` waited instead of failing, the join's timeout ends the test.
    in_child(|| {
        let lock = Lock::new().unwrap();
        let guard = lock.acquire().unwrap();
        assert!(matches!(lock.acquire(), Err(Error::WouldDeadlock)));
        assert!(matches!(lock.try_acquire(), Err(Error::WouldDeadlock)));
        assert!(matches!(
            lock.acquire_timeout(Duration::from_millis(10)),
            Err(Error::WouldDeadlock)
        ));
        assert!(lock.locked());
        drop(guard);
        assert!(!lock.locked());
        // An unbounded timeout is a plain wait, not an overflow.
        assert!(lock.acquire_timeout(Duration::MAX).unwrap().is_some());
    });
}

#[test]
fn another_thread_sees_the_lock_held_and_cannot_release_it() {
    let lock = Lock::new().unwrap();
    let guard = lock.acquire().unwrap();
    let other = lock.clone();
    std::thread::spawn(move || {
        assert!(other.locked());
        assert!(other.try_acquire().unwrap().is_none());
        assert!(matches!(other.release(), Err(Error::NotOwner)));
    })
    .join()
    .unwrap();
    drop(guard);
    let other = lock.clone();
    std::thread::spawn(move || assert!(other.try_acquire().unwrap().is_some()))
        .join()
        .unwrap();
}

#[test]
fn release_without_a_guard_pairs_with_a_forgotten_guard() {
    let lock = Lock::new().unwrap();
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
    std::mem::forget(lock.acquire().unwrap());
    assert!(lock.locked());
    lock.release().unwrap();
    assert!(!lock.locked());
    assert!(matches!(lock.release(), Err(Error::NotOwner)));
}

// ANCHOR: dead_owner
#[test]
fn a_killed_owner_does_not_block_the_next_acquirer() {
    let lock = Lock::new().unwrap();
    let child = Started::new(Process::new({
        let lock = lock.clone();
        move || -> multiprocessing::Result<()> {
            let _guard = lock.acquire()?;
            sleep(PATIENCE);
            Ok(())
        }
    }));
    eventually("the child holds the lock", || lock.locked());
    child.0.kill().unwrap();
    assert_eq!(child.join(), ExitStatus::Signaled(9));

    let guard = lock.acquire_timeout(PATIENCE).unwrap().expect("the lock");
    assert!(guard.previous_owner_died());
    drop(guard);
    // Told once: the lock is a plain lock again.
    let again = lock.try_acquire().unwrap().expect("a free lock");
    assert!(!again.previous_owner_died());
}
// ANCHOR_END: dead_owner

#[test]
fn an_owner_that_exits_holding_the_lock_does_not_block_the_next_acquirer() {
    let lock = Lock::new().unwrap();
    in_child({
        let lock = lock.clone();
        move || {
            let guard = lock.acquire().unwrap();
            // Ends the process at once: no destructor runs, so the guard is never dropped.
            std::process::exit(i32::from(guard.previous_owner_died()));
        }
    });
    // `locked` finds the dead owner's lock free, and leaves the news for the next acquirer.
    assert!(!lock.locked());
    let guard = lock.try_acquire().unwrap().expect("a free lock");
    assert!(guard.previous_owner_died());
}

#[test]
fn an_owner_that_dropped_its_last_handle_while_holding_still_tells_the_next_acquirer() {
    // The kernel finds a dead owner's mutex in the dead process's memory: a process that gives
    // its guard up and drops its last handle must not unmap the lock it holds.
    let lock = Lock::new().unwrap();
    let held = Value::new(0_u8).unwrap();
    let next = Started::new(Process::new({
        let (lock, held) = (lock.clone(), held.clone());
        move || {
            eventually("the other child holds the lock", || {
                held.get().unwrap() == 1
            });
            let guard = lock.acquire_timeout(PATIENCE).unwrap().expect("the lock");
            assert!(guard.previous_owner_died());
        }
    }));
    // This child gets the only handle left here, so its own drop is its last.
    let owner = Started::new(Process::new(move || {
        std::mem::forget(lock.acquire().unwrap());
        held.set(1).unwrap();
    }));
    assert_eq!(owner.join(), ExitStatus::Exited(0));
    assert_eq!(next.join(), ExitStatus::Exited(0));
}

#[test]
fn a_dead_owner_is_logged_as_a_warning() {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let lock = Lock::new().unwrap();
    let acquirer = Process::builder().name("acquirer").target(move || {
        nix::unistd::dup2_stderr(writer.as_fd()).unwrap();
        drop(writer);
        log_to_stderr(None);
        in_child({
            let lock = lock.clone();
            move || std::mem::forget(lock.acquire().unwrap())
        });
        let _guard = lock.acquire_timeout(PATIENCE).unwrap().expect("the lock");
    });
    assert_eq!(Started::new(acquirer).join(), ExitStatus::Exited(0));
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert_eq!(
        text,
        "[WARNING/acquirer] acquired a lock whose previous owner died holding it: \
         what the lock protects may be half updated\n"
    );
}

#[test]
fn an_rlock_is_recursive_for_its_owner_only() {
    let rlock = RLock::new().unwrap();
    let mut levels = vec![rlock.acquire().unwrap()];
    for _ in 0..2 {
        let level = rlock.acquire_timeout(PATIENCE).unwrap();
        levels.push(level.expect("the owner never waits"));
    }
    assert!(
        rlock.try_acquire().unwrap().is_some(),
        "the owner never waits"
    );
    let other = rlock.clone();
    let busy = move || {
        let other = other.clone();
        std::thread::spawn(move || other.try_acquire().unwrap().is_none())
            .join()
            .unwrap()
    };
    for level in levels {
        assert!(busy(), "released before its last level");
        drop(level);
    }
    assert!(!busy(), "still held after its last level");
    assert!(!rlock.locked());
}

#[test]
fn an_rlock_cannot_be_released_by_another_thread_or_process() {
    let rlock = RLock::new().unwrap();
    let guard = rlock.acquire().unwrap();
    let other = rlock.clone();
    let from_thread = std::thread::spawn(move || other.release()).join().unwrap();
    assert!(matches!(from_thread, Err(Error::NotOwner)));
    let other = rlock.clone();
    in_child(move || assert!(matches!(other.release(), Err(Error::NotOwner))));
    assert!(rlock.locked());
    drop(guard);
    // Released once per acquire, no more.
    assert!(matches!(rlock.release(), Err(Error::NotOwner)));
}

#[test]
fn an_rlock_whose_owner_died_with_levels_is_free_after_one_release() {
    let rlock = RLock::new().unwrap();
    in_child({
        let rlock = rlock.clone();
        move || {
            for _ in 0..3 {
                std::mem::forget(rlock.acquire().unwrap());
            }
        }
    });
    let guard = rlock.acquire_timeout(PATIENCE).unwrap().expect("the lock");
    assert!(guard.previous_owner_died());
    drop(guard);
    assert!(!rlock.locked());
}

#[test]
fn a_value_is_shared_with_the_children_started_after_it() {
    let value = Value::new([0_i32; 3]).unwrap();
    in_child({
        let value = value.clone();
        move || value.set([1, 2, 3])
    });
    assert_eq!(value.get().unwrap(), [1, 2, 3]);
    // Its lock is not recursive: a second guard in one thread would alias the value. In a
    // child, in case `get` waits instead of failing.
    in_child(move || {
        let guard = value.lock().unwrap();
        assert!(matches!(value.get(), Err(Error::WouldDeadlock)));
        drop(guard);
    });
}

#[test]
fn a_value_whose_holder_died_tells_the_next_one() {
    let value = Value::new(0_u32).unwrap();
    in_child({
        let value = value.clone();
        move || -> multiprocessing::Result<()> {
            let mut guard = value.lock()?;
            *guard = 7;
            std::mem::forget(guard);
            Ok(())
        }
    });
    // `lock` has no timeout: a child bounds the wait.
    in_child(move || {
        let guard = value.lock().unwrap();
        assert!(guard.previous_owner_died());
        assert_eq!(*guard, 7);
    });
}
