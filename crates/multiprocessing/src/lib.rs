//! Python's `multiprocessing`, in Rust.
//!
//! The runtime behind the lessons of this workspace: each module ports one part of Python's
//! `multiprocessing` package and keeps its names and semantics, edge cases included, while
//! fixing its known traps. Every misuse is a typed [`Error`], never an `assert` that
//! `python -O` removes.
//!
//! | Python | here |
//! | --- | --- |
//! | `Process(target=f, args=(i,))` | [`Process::new`]`(move \|\| f(i))` |
//! | `Process(name=..., daemon=...)` | [`Process::builder`] |
//! | `get_context('spawn').Process(target=f, args=(q, lock))` | [`Context::process`]`(f, (q, lock))`, [`Process::task`] |
//! | `p.exitcode` | [`Process::exitcode`], [`ExitStatus`] |
//! | `class Consumer(Process)` with `run` | a type that implements [`Run`] |
//! | `sys.exit(n)` in a child | [`exit`] |
//! | `current_process()`, `parent_process()` | [`current_process`], [`parent_process`] |
//! | `active_children()`, `cpu_count()` | [`active_children`], [`cpu_count`] |
//! | `log_to_stderr(level)`, `get_logger()` | [`logging::log_to_stderr`], [`logging::get_logger`] |
//! | `Queue(maxsize)`, `JoinableQueue()` | [`Queue`], [`JoinableQueue`] |
//! | `Pipe(duplex)` | [`pipe()`], [`Connection`] |
//! | `multiprocessing.connection.wait(objects, timeout)` | [`connection::wait`] |
//! | `Lock()`, `RLock()` | [`Lock::new`], [`RLock::new`] |
//! | `with lock:` | `let _guard = lock.acquire()?;` (a [`LockGuard`]) |
//! | `lock.acquire(timeout=t)`, `lock.acquire(False)`, `lock.release()` | [`Lock::acquire_timeout`], [`Lock::try_acquire`], [`Lock::release`] |
//! | `Value('i', 0)` | [`Value::new`]`(0_i32)` |
//! | `with v.get_lock(): v.value += 1` | `*v.lock()? += 1` (a [`ValueGuard`]) |
//! | `Pool(processes, initializer)`, `map`, `apply_async` | [`Pool`], [`AsyncResult`] |
//! | `apply_async(..., callback=, error_callback=)` | [`AsyncResult::callback`], [`AsyncResult::error_callback`] |
//! | `pool.imap(...).next(timeout)` | [`pool::Imap::next_timeout`] |
//! | `if __name__ == '__main__':` | [`init`] first thing in `main` ([`enable_test_support!`] in tests) |
//! | `get_context('spawn')`, `set_start_method('forkserver')` | [`get_context`], [`set_start_method`], [`StartMethod`] |
//! | `concurrent.futures.ProcessPoolExecutor`, `ThreadPoolExecutor` | [`futures`] |
//! | `tqdm(pool.imap(f, xs), total=n)`, mpire's `progress_bar=True` | [`ProgressExt::progress`], [`progress`] |
//! | pebble's `schedule(f, timeout=t)`, billiard's time limits | [`pool::Builder::task_timeout`], [`Pool::with_task_timeout`], [`futures::Future::terminate`] |
//! | billiard's `max_memory_per_child`, a hard ceiling | [`pool::Builder::max_memory_per_child`], [`pool::Builder::memory_limit`] |
//! | "a process in the process pool was terminated abruptly" | [`Error::WorkerDied`] and [`Diagnosis`]: pid, task, signal, peak memory |
//! | mpire's worker insights | [`Pool::worker_stats`], [`WorkerStats`] |
//!
//! # Example
//!
//! ```no_run
//! use multiprocessing::Process;
//!
//! fn worker(num: i32) {
//!     println!("Worker: {num}");
//! }
//!
//! fn main() -> multiprocessing::Result<()> {
//!     let jobs: Vec<Process> = (0..5).map(|i| Process::new(move || worker(i))).collect();
//!     for p in &jobs {
//!         p.start()?;
//!     }
//!     for p in &jobs {
//!         p.join()?;
//!     }
//!     Ok(())
//! }
//! ```

pub mod codec;
mod completion;
pub mod connection;
mod diagnosis;
pub mod error;
pub mod futures;
pub mod lock;
pub mod logging;
pub mod pipe;
pub mod pool;
pub mod process;
pub mod progress;
pub mod queue;
mod readable;
mod shm;
mod start;
mod sync;
pub mod task;
pub mod value;
mod window;

pub use codec::Bytes;
pub use diagnosis::{Diagnosis, TaskPlace};
pub use error::{Error, Result};
pub use lock::{Lock, LockGuard, RLock};
/// Signals, for [`Process::signal`] and [`ExitStatus::signal`].
pub use nix::sys::signal::Signal;
pub use pipe::{Connection, pipe};
pub use pool::{AsyncResult, Pool, WorkerStats};
pub use process::{
    Builder, CurrentProcess, ExitStatus, Outcome, ParentProcess, Process, Run, Usage,
    active_children, cpu_count, current_process, exit, parent_process,
};
pub use progress::{Progress, ProgressExt};
pub use queue::{JoinableQueue, Queue};
pub use start::{Context, StartMethod, get_context, get_start_method, init, set_start_method};
pub use value::{Plain, Value, ValueGuard};
