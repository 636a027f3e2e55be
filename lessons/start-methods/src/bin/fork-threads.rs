//! A thread of the parent holds a `Mutex` while a pool starts, and the pool's task takes that
//! mutex: under `fork` the worker waits forever, under `spawn` and `forkserver` it goes on.
//! It ports the warning, in the source's list of start methods, that forking a multithreaded
//! process is problematic (prose, no file name there).
//!
//! Book: `book/src/start-methods.md`. Run:
//! `cargo run -p lesson-start-methods --bin fork-threads`.
//!
//! Notice: the wait is bounded with `get_timeout`, so the stuck worker costs two seconds, and
//! dropping its pool terminates it.

use std::sync::{Barrier, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::Duration;

use multiprocessing::{Error, StartMethod, get_context};

// ANCHOR: task
/// State that a thread of the parent guards.
static STATE: Mutex<u64> = Mutex::new(7);

/// The task: read the state, under its lock.
fn take_lock((): ()) -> u64 {
    *STATE.lock().unwrap_or_else(PoisonError::into_inner)
}
// ANCHOR_END: task

// ANCHOR: main
fn main() -> multiprocessing::Result<()> {
    multiprocessing::init()?;
    let locked = &Barrier::new(2);
    thread::scope(|s| {
        let (release, released) = mpsc::channel::<()>();
        s.spawn(move || {
            let _guard = STATE.lock();
            locked.wait();
            let _ = released.recv(); // holds the lock until `release` is dropped
        });
        locked.wait();
        println!("A thread of the parent holds STATE's lock while each pool starts.");

        for method in StartMethod::ALL {
            let pool = get_context(method).pool(1)?;
            let result = pool.apply_async(take_lock, ())?;
            let name = method.name();
            match result.get_timeout(Duration::from_secs(2)) {
                Ok(state) => println!("{name:<10}  the task read {state}"),
                Err(Error::Timeout { after }) => println!(
                    "{name:<10}  no result after {after:?}: the worker is stuck; dropping the \
                     pool terminates it"
                ),
                Err(error) => return Err(error),
            }
        }
        drop(release);
        Ok(())
    })
}
// ANCHOR_END: main
