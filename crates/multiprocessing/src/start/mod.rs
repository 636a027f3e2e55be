//! Python's start methods, `fork`, `spawn` and `forkserver`, and [`init`], the Rust
//! counterpart of `if __name__ == '__main__':`.
//!
//! - **fork** makes the child a copy of the parent, at once: closures, globals, open files,
//!   everything. It copies only the thread that forks, with every lock the other threads held
//!   at that instant, so in a multi-threaded parent the child may find a lock that no one will
//!   ever release.
//! - **spawn** starts a fresh copy of the executable (`posix_spawn` of `/proc/self/exe`). The
//!   child inherits only what it is given: a `fn` item and its argument (a [`Task`]), and the
//!   descriptors passed to it, among them those of the queues, pipe ends, locks and values in
//!   the argument ([`descriptors`]). It is slower, and safe whatever the parent's threads
//!   hold.
//! - **forkserver** spawns, once, a small single-threaded server, which forks every later
//!   child on request: as safe as spawn, and nearly as fast as fork.
//!
//! A child started afresh runs `main` again from the top, so `main` must hand it its work
//! before doing anything else: that is [`init`]. Test binaries, whose `main` belongs to the
//! test harness, use [`enable_test_support!`](crate::enable_test_support) instead.
//!
//! [`Task`]: crate::task::Task

pub(crate) mod descriptors;
mod forkserver;
mod message;
mod spawn;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::task::{Entry, FnRef};

pub(crate) use forkserver::Server;
pub(crate) use forkserver::launch as forkserver_launch;
pub(crate) use spawn::launch as spawn_launch;

/// How a child process is started: Python's `'fork'`, `'spawn'` and `'forkserver'`.
///
/// # Example
///
/// ```
/// use multiprocessing::StartMethod;
///
/// let method: StartMethod = "forkserver".parse()?;
/// assert_eq!(method, StartMethod::Forkserver);
/// assert_eq!(method.to_string(), "forkserver");
/// # Ok::<(), multiprocessing::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StartMethod {
    /// A copy of the parent, made by `fork`.
    Fork,
    /// A fresh copy of the executable.
    Spawn,
    /// A fork of a single-threaded server, itself spawned on first use.
    Forkserver,
}

impl StartMethod {
    /// Every start method, in the order Python lists them on Linux.
    pub const ALL: [StartMethod; 3] = [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ];

    /// Python's name for it.
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::Forkserver => "forkserver",
        }
    }

    /// The prefix of a pool worker's name: `ForkPoolWorker`, `SpawnPoolWorker`,
    /// `ForkServerPoolWorker`.
    pub(crate) fn pool_worker(self) -> &'static str {
        match self {
            StartMethod::Fork => "ForkPoolWorker",
            StartMethod::Spawn => "SpawnPoolWorker",
            StartMethod::Forkserver => "ForkServerPoolWorker",
        }
    }

    /// The prefix of a process executor's worker's name: `ForkProcess`, `SpawnProcess`,
    /// `ForkServerProcess`.
    pub(crate) fn executor_worker(self) -> &'static str {
        match self {
            StartMethod::Fork => "ForkProcess",
            StartMethod::Spawn => "SpawnProcess",
            StartMethod::Forkserver => "ForkServerProcess",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StartMethod {
    type Err = Error;

    fn from_str(name: &str) -> Result<StartMethod> {
        StartMethod::ALL
            .into_iter()
            .find(|method| method.name() == name)
            .ok_or_else(|| Error::UnknownStartMethod { name: name.into() })
    }
}

/// The start method set for this program, once.
static DEFAULT: OnceLock<StartMethod> = OnceLock::new();

/// Sets the start method of pools, executors and task processes made without a [`Context`]:
/// Python's `set_start_method`. It can be set once, before it is first used. (A process
/// whose target is a closure is always forked: only a copy of this memory can run it.)
///
/// # Errors
///
/// [`Error::StartMethodAlreadySet`] the second time, or after the default was used.
pub fn set_start_method(method: StartMethod) -> Result<()> {
    DEFAULT
        .set(method)
        .map_err(|_| Error::StartMethodAlreadySet {
            method: get_start_method(),
        })
}

/// The start method of pools, executors and task processes made without a [`Context`]:
/// Python's `get_start_method`. It is `forkserver` unless [`set_start_method`] said
/// otherwise: safe in a program with threads, as CPython 3.14 chose on Linux, and nearly as
/// quick to start a process as `fork`. It needs [`init`] first thing in `main`.
pub fn get_start_method() -> StartMethod {
    *DEFAULT.get_or_init(|| StartMethod::Forkserver)
}

/// A start method and what is made with it: Python's `get_context(method)`.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{StartMethod, get_context};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> multiprocessing::Result<()> {
///     multiprocessing::init()?;
///     let ctx = get_context(StartMethod::Spawn);
///     let pool = ctx.pool(2)?;
///     assert_eq!(pool.map(square, 0..4)?, [0, 1, 4, 9]);
///     Ok(())
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// The context of `method`.
pub fn get_context(method: StartMethod) -> Context {
    Context { method }
}

impl Context {
    /// Its start method.
    pub fn start_method(&self) -> StartMethod {
        self.method
    }

    /// A process that will call `func(arg)`, started with this context's method.
    pub fn process<A, R>(&self, func: fn(A) -> R, arg: A) -> Result<crate::Process>
    where
        A: Serialize + serde::de::DeserializeOwned + Send + 'static,
        R: crate::Outcome + 'static,
    {
        crate::Process::builder()
            .start_method(self.method)
            .task(func, arg)
    }

    /// Options for a pool whose workers start with this context's method.
    pub fn pool_builder(&self) -> crate::pool::Builder {
        crate::Pool::builder().start_method(self.method)
    }

    /// A pool of `processes` workers started with this context's method.
    ///
    /// # Errors
    ///
    /// As [`pool::Builder::build`](crate::pool::Builder::build).
    pub fn pool(&self, processes: usize) -> Result<crate::Pool> {
        self.pool_builder().processes(processes).build()
    }

    /// Options for a process executor whose workers start with this context's method.
    pub fn executor_builder(&self) -> crate::futures::Builder {
        crate::futures::ProcessPoolExecutor::builder().start_method(self.method)
    }

    /// Python's `ctx.Queue()`. A queue is the same under every method: a child started
    /// afresh gets it as part of its task's argument; see [`Process::task`](crate::Process::task).
    ///
    /// # Errors
    ///
    /// As [`Queue::new`](crate::Queue::new).
    pub fn queue<T: Serialize + serde::de::DeserializeOwned>(&self) -> Result<crate::Queue<T>> {
        crate::Queue::new()
    }

    /// Python's `ctx.JoinableQueue()`; see [`queue`](Context::queue).
    ///
    /// # Errors
    ///
    /// As [`JoinableQueue::new`](crate::JoinableQueue::new).
    pub fn joinable_queue<T: Serialize + serde::de::DeserializeOwned>(
        &self,
    ) -> Result<crate::JoinableQueue<T>> {
        crate::JoinableQueue::new()
    }

    /// Python's `ctx.Pipe(duplex)`; see [`queue`](Context::queue).
    ///
    /// # Errors
    ///
    /// As [`pipe`](crate::pipe()).
    pub fn pipe(&self, duplex: bool) -> Result<(crate::Connection, crate::Connection)> {
        crate::pipe(duplex)
    }

    /// Python's `ctx.Lock()`; see [`queue`](Context::queue).
    ///
    /// # Errors
    ///
    /// As [`Lock::new`](crate::Lock::new).
    pub fn lock(&self) -> Result<crate::Lock> {
        crate::Lock::new()
    }

    /// Python's `ctx.RLock()`; see [`queue`](Context::queue).
    ///
    /// # Errors
    ///
    /// As [`RLock::new`](crate::RLock::new).
    pub fn rlock(&self) -> Result<crate::RLock> {
        crate::RLock::new()
    }

    /// Python's `ctx.Value(typecode, value)`; see [`queue`](Context::queue).
    ///
    /// # Errors
    ///
    /// As [`Value::new`](crate::Value::new).
    pub fn value<T: crate::Plain>(&self, value: T) -> Result<crate::Value<T>> {
        crate::Value::new(value)
    }
}

/// Whether [`init`] has run in this process.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The environment variable that tells a child started afresh where its start-up message
/// is: the number of an inherited socket.
const BOOT_VARIABLE: &str = "MULTIPROCESSING_BOOT";

/// Hands a child started by `spawn` or `forkserver` its work, and returns at once in any
/// other process: call it first thing in `main`, as Python programs put their work under
/// `if __name__ == '__main__':`.
///
/// In a child it never returns: it runs the child's work, then ends the process. In the main
/// program it returns `Ok(())` and allows `spawn` and `forkserver` from then on; without it
/// they fail with [`Error::NotInitialized`], since a child would run `main` from the top.
///
/// # Example
///
/// ```no_run
/// fn main() -> multiprocessing::Result<()> {
///     multiprocessing::init()?;
///     // ... the program, which may start processes with any method
///     Ok(())
/// }
/// ```
///
/// # Errors
///
/// In a child whose start-up message cannot be read: [`Error::Os`], [`Error::Corrupt`].
pub fn init() -> Result<()> {
    INITIALIZED.store(true, Ordering::SeqCst);
    let Some(fd) = std::env::var_os(BOOT_VARIABLE) else {
        return Ok(());
    };
    // SAFETY: `init` runs first thing in `main` (or before it, for a test binary), while the
    // process has one thread; nothing reads the environment concurrently.
    unsafe { std::env::remove_var(BOOT_VARIABLE) };
    spawn::become_child(&fd)
}

/// Fails with [`Error::NotInitialized`] unless [`init`] has run.
pub(crate) fn check_initialized(method: StartMethod) -> Result<()> {
    if INITIALIZED.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err(Error::NotInitialized { method })
    }
}

/// Makes a test binary able to start children with `spawn` and `forkserver`: use it once, at
/// the root of each test crate (a file in `tests/`) that starts such children.
///
/// A test binary's `main` belongs to the test harness, which cannot call [`init`]. This macro
/// calls it before `main`, from the binary's list of initialisers, as C++ runs the
/// constructors of globals; a child started afresh then does its work and ends there, before
/// the harness runs any test.
///
/// # Example
///
/// ```ignore
/// // tests/spawned.rs
/// multiprocessing::enable_test_support!();
///
/// fn double(x: i32) -> i32 {
///     x * 2
/// }
///
/// #[test]
/// fn a_spawned_pool_works() {
///     let ctx = multiprocessing::get_context(multiprocessing::StartMethod::Spawn);
///     assert_eq!(ctx.pool(1).unwrap().apply(double, 21).unwrap(), 42);
/// }
/// ```
#[macro_export]
macro_rules! enable_test_support {
    () => {
        #[used]
        #[unsafe(link_section = ".init_array")]
        static __MULTIPROCESSING_INIT: extern "C" fn() = {
            extern "C" fn init() {
                if let Err(error) = $crate::init() {
                    eprintln!("multiprocessing: {error}");
                    ::std::process::exit(1);
                }
            }
            init
        };
    };
}

/// Who a child started afresh is: the identity a forked child inherits, written down.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Boot {
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) identity: Vec<u64>,
    /// The name and pid of the process that asked for it.
    pub(crate) parent: (String, u32),
    pub(crate) work: Work,
}

/// What a child started afresh does.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Work {
    /// Calls a function on its argument: a [`Process`](crate::Process) made with `task`.
    Process(Box<Entry>),
    /// Serves a pool, whose socket is the first descriptor sent with the message.
    PoolWorker { initializer: Option<FnRef> },
    /// Forks children on request: the requests' socket and the parent's liveness pipe are the
    /// descriptors sent with the message.
    Forkserver,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing((): ()) {}

    #[test]
    fn starting_afresh_without_init_is_a_typed_error() {
        // No unit test of this crate calls `init`, so this process has not.
        for method in [StartMethod::Spawn, StartMethod::Forkserver] {
            let p = get_context(method).process(nothing, ()).unwrap();
            assert!(
                matches!(p.start(), Err(Error::NotInitialized { method: m }) if m == method),
                "{method}"
            );
            let pool = get_context(method).pool(1);
            assert!(
                matches!(pool, Err(Error::NotInitialized { .. })),
                "{method}"
            );
        }
    }
}
