//! Python's `multiprocessing.Process`: run a closure in a forked child process.
//!
//! A [`Process`] is a handle, like Python's `Process` object: cloning it gives another handle
//! to the same process. Create one from a closure, [`start`](Process::start) it, and
//! [`join`](Process::join) it to learn how it ended.
//!
//! The child is made with `fork`, Python's default start method on Linux: it begins as a copy
//! of the parent, so the closure and everything it captured are simply there. Arguments are
//! captured with `move`, the Rust counterpart of `args=(i,)`; nothing is pickled.
//!
//! # Fork and threads
//!
//! Only the thread that calls [`Process::start`] exists in the child. A lock that another
//! thread held at that moment stays locked in the child forever, so the runtime holds the
//! standard streams' locks across `fork`, keeps none of its own, and builds the child's state
//! before forking. What the child's target touches is its own affair: a `Mutex` that another
//! thread of the parent may hold is not safe to lock there. One such lock is easy to miss:
//! under `cargo test`, `println!` writes to the harness's capture buffer through a lock of
//! its own, so a child that prints while another thread of the same test prints can block.
//! Tests that check what a program prints should run it as a subprocess.

mod child;
pub(crate) mod oom;
mod report;
mod state;
mod status;
mod usage;
mod wait;

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::sync::lock;
pub(crate) use child::catch_task;
pub use child::{Outcome, exit};
pub use status::ExitStatus;
pub use usage::Usage;
use wait::Waiter;

/// How long a daemonic child gets to end after `SIGTERM` at exit, before `SIGKILL`.
const DAEMON_GRACE: Duration = Duration::from_secs(1);

/// The closure a child runs, already wrapped to turn its outcome into an exit code.
pub(crate) type Target = Box<dyn FnOnce() -> i32 + Send>;

/// What a process will run, until `start` takes it.
enum Job {
    /// A closure: only a forked child, a copy of this memory, can run it.
    Closure(Target),
    /// Work that a child started afresh can be told; `fds` go to the child as its own
    /// descriptors.
    Portable {
        work: crate::start::Work,
        fds: Vec<std::os::fd::OwnedFd>,
    },
}

/// A process running a closure: Python's `multiprocessing.Process`.
///
/// Cheap to clone; every clone is a handle to the same process, as every Python reference to
/// a `Process` object is. Methods take `&self`, so one thread can [`join`](Process::join)
/// while another calls [`terminate`](Process::terminate).
///
/// # Example
///
/// ```no_run
/// use multiprocessing::Process;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Process::new(|| println!("Worker"));
/// p.start()?;
/// assert_eq!(p.join()?.exitcode(), 0);
/// # Ok(())
/// # }
/// ```
///
/// The lessons `lesson-spawn`, `lesson-daemon` and `lesson-exitcode` run more.
#[derive(Clone)]
pub struct Process {
    inner: Arc<Inner>,
}

struct Inner {
    /// Python's `_identity`, fixed at creation; gives the default name.
    identity: Vec<u64>,
    /// The pid of the process that created this handle: only it may start, wait for or
    /// signal the child.
    creator: u32,
    /// Name and daemon flag; both can change, the flag only before `start`.
    meta: Mutex<Meta>,
    /// How the child will be started.
    method: crate::start::StartMethod,
    /// What it will run, until `start` takes it.
    target: Mutex<Option<Job>>,
    /// Set once by `start`.
    waiter: OnceLock<Waiter>,
}

struct Meta {
    name: String,
    daemon: bool,
}

/// Names and flags for a [`Process`] before it exists: Python's keyword arguments
/// `name=` and `daemon=`.
///
/// # Example
///
/// ```
/// use multiprocessing::Process;
///
/// let d = Process::builder().name("daemon").daemon(true).target(|| ());
/// assert_eq!(d.name(), "daemon");
/// assert!(d.daemon());
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct Builder {
    name: Option<String>,
    daemon: bool,
    method: Option<crate::start::StartMethod>,
}

impl Builder {
    /// Names the process; without a name it is called `Process-N`.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Marks the process daemonic: it is terminated, not waited for, when its parent ends.
    pub fn daemon(mut self, daemon: bool) -> Builder {
        self.daemon = daemon;
        self
    }

    /// Starts the process with `method` rather than the program's default
    /// ([`get_start_method`](crate::get_start_method)). A closure needs `fork`; a
    /// [`task`](Builder::task) runs under any method.
    pub fn start_method(mut self, method: crate::start::StartMethod) -> Builder {
        self.method = Some(method);
        self
    }

    /// Creates the process that will call `func(arg)`, a plain `fn` with an argument serde can
    /// encode: what a child started afresh, by `spawn` or `forkserver`, can be told to run,
    /// as Python pickles a target function and its arguments. It does not start yet.
    ///
    /// The argument may hold [`Queue`](crate::Queue)s, [`JoinableQueue`](crate::JoinableQueue)s,
    /// [`Lock`](crate::Lock)s, [`RLock`](crate::RLock)s, [`Value`](crate::Value)s and pipe
    /// ends ([`Connection`](crate::Connection)): the child gets the same objects, shared with
    /// this process, whatever the start method. Under `fork` the argument is simply moved
    /// into the child; under `spawn` and `forkserver` it is encoded here, and those objects
    /// travel as descriptors sent with the child's start-up message (a queue's, lock's or
    /// value's shared memory, a pipe end's socket), never as names. This process's own copy
    /// of a pipe end given to the child is closed once the child has started, as under
    /// `fork`.
    ///
    /// # Example
    ///
    /// ```no_run
    /// use multiprocessing::{Process, StartMethod};
    ///
    /// fn worker(num: i32) {
    ///     println!("Worker: {num}");
    /// }
    ///
    /// fn main() -> multiprocessing::Result<()> {
    ///     multiprocessing::init()?;
    ///     let p = Process::builder().start_method(StartMethod::Spawn).task(worker, 7)?;
    ///     p.start()?;
    ///     p.join()?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// A queue in the argument is the parent's own queue, in a spawned child too:
    ///
    /// ```no_run
    /// use multiprocessing::{Process, Queue, StartMethod};
    ///
    /// fn greet(q: Queue<String>) -> multiprocessing::Result<()> {
    ///     q.put("hello".to_owned())
    /// }
    ///
    /// fn main() -> multiprocessing::Result<()> {
    ///     multiprocessing::init()?;
    ///     let q = Queue::new()?;
    ///     let p = Process::builder().start_method(StartMethod::Spawn).task(greet, q.clone())?;
    ///     p.start()?;
    ///     assert_eq!(q.get()?, "hello");
    ///     p.join()?;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the start method is not `fork` and `arg` cannot be encoded, or
    /// holds more descriptors than one message carries (about 250).
    pub fn task<A, R>(self, func: fn(A) -> R, arg: A) -> Result<Process>
    where
        A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        R: Outcome + 'static,
    {
        let method = self.method.unwrap_or_else(crate::start::get_start_method);
        if method == crate::start::StartMethod::Fork {
            return Ok(self.make("Process", move || func(arg)));
        }
        let (entry, fds) = crate::task::Entry::new(func, &arg)?;
        // The objects in `arg` go now; the copies of their descriptors in `fds` keep them
        // alive until the child has its own.
        drop(arg);
        Ok(self.make_job(
            "Process",
            Job::Portable {
                work: crate::start::Work::Process(Box::new(entry)),
                fds,
            },
        ))
    }

    /// Creates the process that will run `target`. It does not start yet.
    ///
    /// The closure's return value decides the exit code through [`Outcome`]: `()` and `Ok`
    /// give 0, an `Err` is printed and gives 1, as an uncaught exception does in Python.
    pub fn target<F, R>(self, target: F) -> Process
    where
        F: FnOnce() -> R + Send + 'static,
        R: Outcome,
    {
        self.make("Process", target)
    }

    /// Creates the process that will call `runner.run()`; without a name it is called after
    /// the type, `Consumer-N` for a `Consumer`, as Python names a subclass's processes.
    pub fn run<T: Run>(self, runner: T) -> Process {
        self.make(short_type_name::<T>(), move || runner.run())
    }

    /// Creates the process; without a name it is called `{prefix}-N`.
    pub(crate) fn make<F, R>(self, prefix: &str, target: F) -> Process
    where
        F: FnOnce() -> R + Send + 'static,
        R: Outcome,
    {
        self.make_job(prefix, Job::Closure(Box::new(move || target().exit_code())))
    }

    /// Creates a pool's worker to be started afresh: it serves the pool on `socket` after
    /// running `initializer`.
    pub(crate) fn pool_worker(
        self,
        prefix: &str,
        initializer: Option<fn()>,
        socket: std::os::fd::OwnedFd,
    ) -> Process {
        self.make_job(
            prefix,
            Job::Portable {
                work: crate::start::Work::PoolWorker {
                    initializer: initializer.map(crate::task::FnRef::new),
                },
                fds: vec![socket],
            },
        )
    }

    fn make_job(self, prefix: &str, job: Job) -> Process {
        let state = state::current();
        let identity = state.next_identity();
        let name = self.name.unwrap_or_else(|| default_name(prefix, &identity));
        Process {
            inner: Arc::new(Inner {
                identity,
                creator: state.pid,
                meta: Mutex::new(Meta {
                    name,
                    daemon: self.daemon,
                }),
                // A closure can only be forked; portable work follows the program's default.
                method: self.method.unwrap_or_else(|| match job {
                    Job::Closure(_) => crate::start::StartMethod::Fork,
                    Job::Portable { .. } => crate::start::get_start_method(),
                }),
                target: Mutex::new(Some(job)),
                waiter: OnceLock::new(),
            }),
        }
    }
}

/// `Process-1`, `Process-1:2`, ... as Python names them (with the class name as `prefix`).
fn default_name(prefix: &str, identity: &[u64]) -> String {
    let numbers: Vec<String> = identity.iter().map(u64::to_string).collect();
    format!("{prefix}-{}", numbers.join(":"))
}

/// `Consumer` for `my_crate::Consumer<T>`: the name Python would print for a class.
fn short_type_name<T>() -> &'static str {
    let path = std::any::type_name::<T>();
    let path = path.split('<').next().unwrap_or(path);
    path.rsplit("::").next().unwrap_or(path)
}

/// What a type does as a process: the Rust counterpart of subclassing Python's `Process` and
/// overriding `run`.
///
/// The value is moved into the child, which calls `run` once. Its processes are named after
/// the type: `Consumer-1`, `Consumer-2`, ..., counted with the other processes of the parent.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{Process, Run, current_process};
///
/// struct Greeter {
///     greeting: String,
/// }
///
/// impl Run for Greeter {
///     type Output = ();
///
///     fn run(self) {
///         println!("{} from {}", self.greeting, current_process().name());
///     }
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Process::from_run(Greeter { greeting: "Hello".into() });
/// assert_eq!(p.name(), "Greeter-1");
/// p.start()?; // prints "Hello from Greeter-1"
/// p.join()?;
/// # Ok(())
/// # }
/// ```
pub trait Run: Send + 'static {
    /// What `run` returns: `()`, or a `Result` whose error is reported, as for a closure.
    type Output: Outcome;

    /// The work of the process, in the child.
    fn run(self) -> Self::Output;
}

impl Process {
    /// Creates a process that will run `target`, named `Process-N`, not daemonic.
    ///
    /// Equivalent to `Process::builder().target(target)`.
    ///
    /// # Example
    ///
    /// ```
    /// use multiprocessing::Process;
    ///
    /// let num = 3;
    /// let p = Process::new(move || println!("Worker: {num}"));
    /// assert!(p.name().starts_with("Process-"));
    /// ```
    pub fn new<F, R>(target: F) -> Process
    where
        F: FnOnce() -> R + Send + 'static,
        R: Outcome,
    {
        Builder::default().target(target)
    }

    /// Creates a process that will call `func(arg)`, which any start method can run; see
    /// [`Builder::task`].
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when `arg` cannot be encoded.
    pub fn task<A, R>(func: fn(A) -> R, arg: A) -> Result<Process>
    where
        A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        R: Outcome + 'static,
    {
        Builder::default().task(func, arg)
    }

    /// Creates a process that will call `runner.run()`, named after `T`.
    ///
    /// Equivalent to `Process::builder().run(runner)`; see [`Run`].
    pub fn from_run<T: Run>(runner: T) -> Process {
        Builder::default().run(runner)
    }

    /// Starts building a process with a name or the daemon flag.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Forks the child, which runs the target and then ends.
    ///
    /// Before forking, finished children of this process are reaped, as Python does on every
    /// `start`.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyStarted`] the second time, [`Error::NotAChild`] when called in another
    /// process than the one that created the handle, [`Error::DaemonicChildren`] in a
    /// daemonic process, [`Error::Os`] when `fork` fails (too many processes, no memory).
    pub fn start(&self) -> Result<()> {
        let state = state::current();
        self.check_creator()?;
        if state.daemon {
            return Err(Error::DaemonicChildren);
        }
        let Some(job) = lock(&self.inner.target).take() else {
            return Err(Error::AlreadyStarted { name: self.name() });
        };
        reap_finished(state);
        let waiter = match self.launch(job, state) {
            Ok(waiter) => waiter,
            Err((job, error)) => {
                // Nothing started: put the work back, so a later start can try again.
                *lock(&self.inner.target) = Some(job);
                return Err(error);
            }
        };
        let pid = waiter.pid();
        // `start` took the target under its lock, so only one call gets here.
        let _ = self.inner.waiter.set(waiter);
        state.children().push(self.clone());
        log::debug!("started {} with pid {pid}", self.name());
        Ok(())
    }

    /// Starts the child by this process's method; on failure, hands the job back.
    fn launch(&self, job: Job, state: &state::State) -> std::result::Result<Waiter, (Job, Error)> {
        use crate::start::{Boot, StartMethod};
        child::install_exit_handler();
        let child_state = Box::new(state::State::child(self, state));
        match (self.inner.method, job) {
            (StartMethod::Fork, Job::Closure(target)) => {
                let mut target = Some(target);
                match child::fork(&mut target, child_state) {
                    Ok(pid) => Ok(Waiter::new(pid)),
                    Err(errno) => Err((
                        Job::Closure(target.expect("handed back on failure")),
                        Error::os("cannot fork a child")(errno),
                    )),
                }
            }
            (method, Job::Portable { work, fds }) if method != StartMethod::Fork => {
                let boot = Boot {
                    name: child_state.name.clone(),
                    daemon: child_state.daemon,
                    identity: child_state.identity.clone(),
                    parent: (state.name.clone(), state.pid),
                    work,
                };
                // The child gets its own copies as they are sent; ours close with the job.
                let launched = if method == StartMethod::Spawn {
                    crate::start::spawn_launch(&boot, &fds).map(Waiter::new)
                } else {
                    crate::start::forkserver_launch(&boot, &fds)
                        .map(|(pid, report)| Waiter::remote(pid, report))
                };
                launched.map_err(|error| {
                    (
                        Job::Portable {
                            work: boot.work,
                            fds,
                        },
                        error,
                    )
                })
            }
            (method, job) => Err((
                job,
                Error::NeedsFork {
                    name: self.name(),
                    method,
                },
            )),
        }
    }

    /// Waits until the process ends and returns how it ended.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`] before `start`, [`Error::NotAChild`] in another process than
    /// the parent, [`Error::Os`] if the wait fails.
    pub fn join(&self) -> Result<ExitStatus> {
        let status = self.wait_until(None)?;
        Ok(status.expect("a wait without deadline returns only when the process has ended"))
    }

    /// Waits at most `timeout` for the process to end: Python's `join(timeout)`.
    ///
    /// Returns `Some` with how it ended, or `None` when it is still running after `timeout`
    /// (Python returns nothing and leaves you to call `is_alive()`). To wait for the first of
    /// several processes to end, or for a process and a message at once, use
    /// [`connection::wait`](crate::connection::wait).
    ///
    /// # Errors
    ///
    /// As [`join`](Process::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.wait_until(crate::sync::deadline_after(timeout))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<Option<ExitStatus>> {
        let waiter = self.waiter()?;
        let status = waiter.wait(deadline)?;
        if let Some(status) = status {
            log::debug!("joined {}: {status}", self.name());
            let state = state::current();
            state
                .children()
                .retain(|child| !Arc::ptr_eq(&child.inner, &self.inner));
        }
        Ok(status)
    }

    /// Whether the process has started and not yet ended.
    ///
    /// A process that has ended is reaped here, so it does not stay a zombie.
    /// In a process other than the parent, the answer comes from `kill(pid, 0)`.
    pub fn is_alive(&self) -> bool {
        let Some(waiter) = self.inner.waiter.get() else {
            return false;
        };
        if self.check_creator().is_err() {
            return nix::sys::signal::kill(waiter.pid(), None).is_ok();
        }
        matches!(waiter.poll(), Ok(None))
    }

    /// Sends `SIGTERM`, as Python's `terminate()` does on Unix.
    ///
    /// The child dies at once unless it handles the signal: its destructors do not run, and
    /// its own children are left running, as in Python. Does nothing if it has already ended.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`], [`Error::NotAChild`], or [`Error::Os`] if `kill` fails.
    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// Sends `SIGKILL`, which the child cannot handle: Python's `kill()`.
    ///
    /// # Errors
    ///
    /// As [`terminate`](Process::terminate).
    pub fn kill(&self) -> Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// Sends `signal` to the child, unless it has already ended.
    ///
    /// See also: [`kill(2)`](https://man7.org/linux/man-pages/man2/kill.2.html).
    ///
    /// # Errors
    ///
    /// As [`terminate`](Process::terminate).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let waiter = self.waiter()?;
        log::debug!("sending {} to {}", signal.as_str(), self.name());
        waiter.signal(signal)
    }

    /// The child's process id, once started.
    pub fn pid(&self) -> Option<u32> {
        self.inner
            .waiter
            .get()
            .map(|waiter| waiter.pid().as_raw().unsigned_abs())
    }

    /// Python's `exitcode`: `None` while running or before `start`, then the exit code, or
    /// minus the number of the signal that killed it.
    pub fn exitcode(&self) -> Option<i32> {
        self.status().map(ExitStatus::exitcode)
    }

    /// How the process ended, if it has; reaps it if it just did.
    pub fn status(&self) -> Option<ExitStatus> {
        let waiter = self.inner.waiter.get()?;
        if self.check_creator().is_err() {
            return None;
        }
        waiter.poll().ok().flatten()
    }

    /// What the process used, once it has ended: its peak memory and CPU time, under every
    /// start method; reaps it if it just ended. `None` before `start`, while it runs, in
    /// another process than the parent, and for a child of the fork server when the server
    /// ended before it (then [`status`](Process::status) says `SIGKILL`).
    ///
    /// # Example
    ///
    /// ```no_run
    /// use multiprocessing::Process;
    ///
    /// # fn main() -> multiprocessing::Result<()> {
    /// let p = Process::new(|| ());
    /// p.start()?;
    /// let status = p.join()?;
    /// if let Some(usage) = p.usage() {
    ///     println!("{status}; {usage}"); // exited with code 0; peak memory 2.1 MiB, CPU ...
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn usage(&self) -> Option<Usage> {
        let waiter = self.inner.waiter.get()?;
        if self.check_creator().is_err() {
            return None;
        }
        waiter.usage().ok().flatten()
    }

    /// The process's name.
    pub fn name(&self) -> String {
        lock(&self.inner.meta).name.clone()
    }

    /// Renames the process; in the child, `current_process().name()` gives the name it had
    /// when it was started.
    pub fn set_name(&self, name: impl Into<String>) {
        lock(&self.inner.meta).name = name.into();
    }

    /// Whether the process is daemonic.
    pub fn daemon(&self) -> bool {
        lock(&self.inner.meta).daemon
    }

    /// Sets the daemon flag: Python's `p.daemon = True`.
    ///
    /// A daemonic process is terminated when its parent exits normally, as in Python, and
    /// also when the parent is killed outright (`SIGKILL`, the out-of-memory killer), which
    /// Python does not manage: Linux kills it when the thread that started it ends. So start
    /// a long-lived daemonic process from the main thread, or from a thread that outlives it.
    ///
    /// # Errors
    ///
    /// [`Error::DaemonAfterStart`] once the process has been started.
    pub fn set_daemon(&self, daemon: bool) -> Result<()> {
        if self.inner.waiter.get().is_some() || lock(&self.inner.target).is_none() {
            return Err(Error::DaemonAfterStart { name: self.name() });
        }
        lock(&self.inner.meta).daemon = daemon;
        Ok(())
    }

    /// Name and daemon flag, read together.
    fn meta(&self) -> (String, bool) {
        let meta = lock(&self.inner.meta);
        (meta.name.clone(), meta.daemon)
    }

    fn waiter(&self) -> Result<&Waiter> {
        self.check_creator()?;
        self.inner
            .waiter
            .get()
            .ok_or_else(|| Error::NotStarted { name: self.name() })
    }

    fn check_creator(&self) -> Result<()> {
        if self.inner.creator == std::process::id() {
            Ok(())
        } else {
            Err(Error::NotAChild { name: self.name() })
        }
    }
}

impl crate::connection::sealed::Sealed for Process {
    fn watch(&self) -> Result<crate::connection::sealed::Watch<'_>> {
        self.waiter()?.watch()
    }
}

impl fmt::Display for Process {
    /// Python's `repr`: `<Process name='Process-1' pid=42 parent=41 stopped exitcode=-SIGTERM>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, daemon) = self.meta();
        write!(f, "<Process name='{name}'")?;
        if let Some(pid) = self.pid() {
            write!(f, " pid={pid}")?;
        }
        write!(f, " parent={}", self.inner.creator)?;
        match (self.pid(), self.status()) {
            (None, _) => write!(f, " initial")?,
            (Some(_), None) => write!(f, " started")?,
            (Some(_), Some(status)) => write!(f, " stopped exitcode={}", status.repr())?,
        }
        if daemon {
            write!(f, " daemon")?;
        }
        write!(f, ">")
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Reaps children that have ended and drops them from the registry (Python's `_cleanup`).
fn reap_finished(state: &state::State) {
    state.children().retain(Process::is_alive);
}

/// What the current process knows about itself: Python's `current_process()`.
///
/// # Example
///
/// ```
/// let me = multiprocessing::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// assert!(!me.daemon());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
    parent: Option<u32>,
}

impl CurrentProcess {
    /// `MainProcess` in the main program, the name it was started with in a child.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, as `std::process::id()` gives it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this process is daemonic (then it cannot start children).
    pub fn daemon(&self) -> bool {
        self.daemon
    }
}

impl fmt::Display for CurrentProcess {
    /// `<_MainProcess name='MainProcess' parent=None started>` in the main program.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parent {
            None => write!(f, "<_MainProcess name='{}' parent=None started>", self.name),
            Some(parent) => {
                let daemon = if self.daemon { " daemon" } else { "" };
                write!(
                    f,
                    "<Process name='{}' pid={} parent={parent} started{daemon}>",
                    self.name, self.pid
                )
            }
        }
    }
}

/// The process this code runs in: Python's `multiprocessing.current_process()`.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{current_process, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Process::builder()
///     .name("Test")
///     .target(|| assert_eq!(current_process().name(), "Test"));
/// p.start()?;
/// p.join()?;
/// # Ok(())
/// # }
/// ```
pub fn current_process() -> CurrentProcess {
    let state = state::current();
    CurrentProcess {
        name: state.name.clone(),
        pid: state.pid,
        daemon: state.daemon,
        parent: state.parent.as_ref().map(|(_, pid)| *pid),
    }
}

/// The parent of the current process, as Python's `parent_process()` gives it.
///
/// `None` in the main program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentProcess {
    name: String,
    pid: u32,
}

impl ParentProcess {
    /// The parent's name (`MainProcess` for the main program).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parent's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the parent is still running: once it ends, the child is adopted by another
    /// process and its parent id changes.
    pub fn is_alive(&self) -> bool {
        nix::unistd::getppid() == Pid::from_raw(self.pid.cast_signed())
    }
}

/// The process that started this one; `None` in the main program.
///
/// # Example
///
/// ```
/// assert!(multiprocessing::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    let (name, pid) = state::current().parent.clone()?;
    Some(ParentProcess { name, pid })
}

/// The children of this process that are still running: Python's `active_children()`.
///
/// Children that have ended are reaped on the way.
///
/// # Example
///
/// ```
/// // A program that started nothing has no children.
/// assert!(multiprocessing::active_children().is_empty());
/// ```
pub fn active_children() -> Vec<Process> {
    let state = state::current();
    reap_finished(state);
    state.children().clone()
}

/// The number of CPUs this process may run on, as `std::thread::available_parallelism`
/// counts them (it honours CPU affinity and cgroup quotas; Python's `cpu_count()` does not).
///
/// # Example
///
/// ```
/// assert!(multiprocessing::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What Python's exit handler does, for the current process: terminate the daemonic
/// children, then wait for all of them. A daemonic child that outlives `SIGTERM` by
/// [`DAEMON_GRACE`] is killed.
pub(crate) fn finish_children() {
    log::info!("process shutting down");
    let children = active_children();
    for child in children.iter().filter(|child| child.daemon()) {
        log::info!("calling terminate() for daemon {}", child.name());
        let _ = child.terminate();
    }
    for child in &children {
        log::info!("calling join() for process {}", child.name());
        let ended = if child.daemon() {
            child.join_timeout(DAEMON_GRACE)
        } else {
            child.join().map(Some)
        };
        if matches!(ended, Ok(None)) {
            log::warn!(
                "daemon {} still runs {DAEMON_GRACE:?} after SIGTERM: killing it",
                child.name()
            );
            let _ = child.kill();
            let _ = child.join();
        }
    }
    let server = lock(&state::current().forkserver).take();
    if let Some(server) = server {
        server.stop();
    }
}

/// This process's state: its identity, children and fork server.
pub(crate) fn current_state() -> &'static state::State {
    state::current()
}

pub(crate) use wait::{pidfd_open, reap_raw};

/// Becomes the child a process started afresh was asked to be, and runs `target`; `watch` is
/// the pid whose end a daemonic child must not outlive. Never returns.
pub(crate) fn become_started(
    name: String,
    daemon: bool,
    identity: Vec<u64>,
    parent: (String, u32),
    watch: u32,
    target: Target,
) -> ! {
    let state = Box::new(state::State::started(name, daemon, identity, parent));
    child::bootstrap(target, state, watch)
}

/// The current process's name, for log records.
pub(crate) fn current_name() -> &'static str {
    &state::current().name
}
