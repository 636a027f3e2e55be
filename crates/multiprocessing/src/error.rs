//! The runtime's one error type; Python raises `ValueError`, `AssertionError` or `OSError` instead.

use std::fmt;

/// Everything that can go wrong in this crate.
///
/// Every misuse Python reports with an `assert` (and loses under `python -O`) is a variant
/// here, checked every time. `Display` gives the message, lowercase, saying what to do;
/// `Debug` gives the variant and its fields, as a derived `Debug` does, so `main` returning
/// `Err` shows which error it was (print it with `{}` for the sentence).
///
/// # Example
///
/// ```
/// use multiprocessing::{Error, Process};
///
/// let p = Process::new(|| ());
/// // Joining a process that was never started is refused, not ignored.
/// assert!(matches!(p.join(), Err(Error::NotStarted { .. })));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Error {
    /// `start` was called on a process that had already been started.
    AlreadyStarted {
        /// The process's name.
        name: String,
    },
    /// The process has not been started, so it cannot be joined, signalled or waited for.
    NotStarted {
        /// The process's name.
        name: String,
    },
    /// The process was started by another process; only its parent can wait for it.
    NotAChild {
        /// The process's name.
        name: String,
    },
    /// A daemonic process tried to start a child.
    DaemonicChildren,
    /// The daemon flag was changed after `start`.
    DaemonAfterStart {
        /// The process's name.
        name: String,
    },
    /// A value could not be encoded to cross to another process.
    Encode {
        /// What the encoder said.
        message: String,
    },
    /// Bytes from another process are not the value they should be.
    Decode {
        /// What the decoder said.
        message: String,
    },
    /// A bounded queue had no room, now or within the timeout.
    Full,
    /// A queue had no message, now or within the timeout.
    Empty,
    /// This process closed the queue.
    Closed,
    /// A message is larger than the limit it was sent under.
    MessageTooLarge {
        /// The message's encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A queue's or pipe's bytes do not form messages: they were damaged, or a writer died
    /// in the middle of one.
    Corrupt {
        /// What is wrong.
        message: String,
    },
    /// The other end of a pipe is closed: between messages when receiving, at any time when
    /// sending. Python raises `EOFError` and `BrokenPipeError`.
    Disconnected,
    /// A one-way pipe's end was used the other way.
    OneWay {
        /// Whether this end is the receiving one.
        receives: bool,
    },
    /// `task_done` was called more times than messages were put.
    TaskDoneTooManyTimes,
    /// A task panicked in a worker; the worker lives on.
    TaskPanicked {
        /// Where it panicked, and the panic message.
        message: String,
    },
    /// The worker running a task ended before finishing it: who it was, what it ran, how it
    /// ended and how much memory it had held.
    WorkerDied(Box<crate::Diagnosis>),
    /// A task ran past its time limit: its worker was stopped (`SIGTERM`, then `SIGKILL`) and
    /// replaced, and every other task goes on.
    TaskTimedOut {
        /// The limit it ran past.
        limit: std::time::Duration,
        /// The worker that ran it, and how it ended.
        worker: Box<crate::Diagnosis>,
    },
    /// A task went past its pool's memory ceiling: its worker's allocation failed, the worker
    /// ended, and the pool replaced it; every other task goes on.
    MemoryLimitExceeded {
        /// The ceiling, in bytes.
        limit: u64,
        /// The worker that ran it, and how it ended.
        worker: Box<crate::Diagnosis>,
    },
    /// A pool worker ended before it was ready to take work (its initializer panicked, or it
    /// was killed while starting).
    WorkerDidNotStart {
        /// The worker's name.
        worker: String,
        /// How it ended.
        status: crate::ExitStatus,
    },
    /// A worker of a process pool executor ended abruptly, which breaks the executor, as in
    /// Python: every pending future fails with this error, and so does every later submit.
    BrokenProcessPool(Box<crate::Diagnosis>),
    /// A thread pool executor's initializer panicked: Python's `BrokenThreadPool`.
    BrokenThreadPool {
        /// Where it panicked, and the panic message.
        message: String,
    },
    /// The future was cancelled before it ran, or stopped while it ran with
    /// [`Future::terminate`](crate::futures::Future::terminate).
    Cancelled,
    /// A call was submitted to an executor after `shutdown`.
    Shutdown,
    /// Work was given to a pool after `close` or `terminate`.
    PoolClosed,
    /// The pool was terminated before the task finished.
    PoolTerminated,
    /// `join` was called on a pool that is neither closed nor terminated.
    PoolRunning,
    /// A pool was asked for 0 workers (or 0 tasks per worker).
    NoWorkers,
    /// A result was asked whether it succeeded before it was ready.
    NotReady,
    /// A chunk size of 0 was asked for; Python raises `ValueError`.
    InvalidChunksize,
    /// A process executor was asked for `max_tasks_per_child` with the `fork` start method,
    /// which Python refuses too.
    MaxTasksUnderFork,
    /// A start method's name is not `fork`, `spawn` or `forkserver`.
    UnknownStartMethod {
        /// The name given.
        name: String,
    },
    /// `set_start_method` was called after the start method was set or first used; Python
    /// raises `RuntimeError: context has already been set`.
    StartMethodAlreadySet {
        /// The start method in force.
        method: crate::StartMethod,
    },
    /// A child was to be started afresh (`spawn`, `forkserver`), but the program did not call
    /// `multiprocessing::init()` first thing in `main`, or the child's did not.
    NotInitialized {
        /// The start method asked for.
        method: crate::StartMethod,
    },
    /// A process whose target is a closure was to be started with a method other than
    /// `fork`: only a copy of this memory can run a closure.
    NeedsFork {
        /// The process's name.
        name: String,
        /// The start method asked for.
        method: crate::StartMethod,
    },
    /// The runtime dropped a task's result without setting it. Nothing in the runtime should
    /// let this happen; the error stands where a wait without end would otherwise be.
    ResultLost,
    /// A wait ran out of time; the runtime's one timeout error.
    Timeout {
        /// How long it waited.
        after: std::time::Duration,
    },
    /// A thread tried to acquire a lock it already holds, which would wait forever: a
    /// [`Lock`](crate::Lock), or the lock of a [`Value`](crate::Value). Python's `Lock` just
    /// waits.
    WouldDeadlock,
    /// A thread released a lock it does not hold: one that another thread or process holds, or
    /// that no one holds. Python's `RLock` raises `AssertionError`; its `Lock` raises
    /// `ValueError` when no one holds it, and lets anyone release it otherwise.
    NotOwner,
    /// A system call failed.
    ///
    /// Its message is the context and then the errno's description, `cannot make a pipe: Too
    /// many open files`, and it has no [`source`](std::error::Error::source): the errno is
    /// in the message already, and a reporter that prints the chain of sources would show it
    /// twice. The errno itself is the `errno` field.
    Os {
        /// What the runtime was doing.
        context: &'static str,
        /// The error the kernel returned.
        errno: nix::Error,
    },
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps a failed system call with what the runtime was doing.
    pub(crate) fn os(context: &'static str) -> impl FnOnce(nix::Error) -> Error {
        move |errno| Error::Os { context, errno }
    }

    /// Wraps a failed standard-library I/O call the same way (`EIO` if it carries no errno).
    pub(crate) fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |error| Error::Os {
            context,
            errno: error
                .raw_os_error()
                .map_or(nix::Error::EIO, nix::Error::from_raw),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::AlreadyStarted { name } => {
                write!(
                    f,
                    "cannot start a process twice: {name} was already started"
                )
            }
            Error::NotStarted { name } => {
                write!(f, "process {name} has not been started: call start() first")
            }
            Error::NotAChild { name } => write!(
                f,
                "process {name} is not a child of this process: only its parent can wait for it or signal it"
            ),
            Error::DaemonicChildren => {
                write!(f, "daemonic processes are not allowed to have children")
            }
            Error::DaemonAfterStart { name } => write!(
                f,
                "cannot change the daemon flag of {name} after it has started: set it before start()"
            ),
            Error::Encode { message } => write!(f, "cannot encode a message: {message}"),
            Error::Decode { message } => write!(f, "cannot decode a message: {message}"),
            Error::Full => write!(f, "the queue is full: get from it or wait longer"),
            Error::Empty => write!(f, "the queue is empty: put into it or wait longer"),
            Error::Closed => write!(f, "the queue was closed by this process"),
            Error::MessageTooLarge { size, limit } => write!(
                f,
                "a message of {size} bytes is over the limit of {limit}: send it in parts or raise the limit"
            ),
            Error::Corrupt { message } => write!(f, "corrupt message stream: {message}"),
            Error::Disconnected => write!(f, "the other end of the pipe is closed"),
            Error::OneWay { receives: true } => {
                write!(
                    f,
                    "this end of a one-way pipe only receives: send on the other end"
                )
            }
            Error::OneWay { receives: false } => {
                write!(
                    f,
                    "this end of a one-way pipe only sends: receive on the other end"
                )
            }
            Error::TaskDoneTooManyTimes => {
                write!(f, "task_done() called more times than there were tasks")
            }
            Error::TaskPanicked { message } => write!(f, "the task panicked: {message}"),
            Error::WorkerDied(diagnosis) => {
                write!(f, "{diagnosis}; the pool replaced it")
            }
            Error::TaskTimedOut { limit, worker } => write!(
                f,
                "{} ran {} past its time limit of {limit:?} and was stopped; the pool replaced it",
                worker.who(),
                crate::diagnosis::task(worker)
            ),
            Error::MemoryLimitExceeded { limit, worker } => write!(
                f,
                "{} went past the memory ceiling of {} while running {} ({}); the pool \
                 replaced it",
                worker.who(),
                crate::diagnosis::bytes(*limit),
                crate::diagnosis::task(worker),
                worker.status
            ),
            Error::WorkerDidNotStart { worker, status } => write!(
                f,
                "pool worker {worker} {status} before it was ready: did its initializer panic?"
            ),
            Error::BrokenProcessPool(diagnosis) => write!(
                f,
                "the process pool is broken: {diagnosis}; make a new executor"
            ),
            Error::BrokenThreadPool { message } => {
                write!(
                    f,
                    "the thread pool is broken: an initializer panicked: {message}"
                )
            }
            Error::Cancelled => write!(f, "the future was cancelled"),
            Error::Shutdown => write!(f, "cannot schedule new calls after shutdown"),
            Error::PoolClosed => write!(f, "the pool is closed: it accepts no more work"),
            Error::PoolTerminated => write!(f, "the pool was terminated before the task finished"),
            Error::PoolRunning => {
                write!(
                    f,
                    "the pool is still running: call close() or terminate() before join()"
                )
            }
            Error::NoWorkers => write!(f, "a pool needs at least 1 process and 1 task per child"),
            Error::NotReady => write!(f, "the result is not ready yet: wait() for it first"),
            Error::InvalidChunksize => write!(f, "a chunk size must be at least 1"),
            Error::MaxTasksUnderFork => write!(
                f,
                "max_tasks_per_child cannot be used with the fork start method: use spawn or \
                 forkserver"
            ),
            Error::UnknownStartMethod { name } => write!(
                f,
                "cannot find a start method called {name:?}: use fork, spawn or forkserver"
            ),
            Error::StartMethodAlreadySet { method } => write!(
                f,
                "the start method is already set ({method}): set it once, before starting anything"
            ),
            Error::NotInitialized { method } => write!(
                f,
                "the {method} start method needs multiprocessing::init() called first thing in \
                 main (Python's `if __name__ == '__main__':`), or enable_test_support!() in a \
                 test crate"
            ),
            Error::NeedsFork { name, method } => write!(
                f,
                "process {name} runs a closure, which only fork can start, not {method}: make it \
                 with Process::task(fn, arg), or use the fork context"
            ),
            Error::ResultLost => write!(
                f,
                "the task's result was lost inside the runtime; please report this as a bug"
            ),
            Error::Timeout { after } => write!(f, "timed out after {after:?}"),
            Error::WouldDeadlock => write!(
                f,
                "this thread already holds the lock, so acquiring it again would wait forever: \
                 drop the guard first, or use an RLock"
            ),
            Error::NotOwner => write!(
                f,
                "cannot release a lock that this thread does not hold: release it once per \
                 acquire, in the thread that acquired it"
            ),
            Error::Os { context, errno } => write!(f, "{context}: {}", errno.desc()),
        }
    }
}

/// No variant has a source: each message is whole, [`Error::Os`]'s errno included.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn debug_shows_the_variant_and_display_the_sentence() {
        let error = Error::Os {
            context: "cannot make a pipe",
            errno: nix::Error::EMFILE,
        };
        assert_eq!(
            format!("{error:?}"),
            r#"Os { context: "cannot make a pipe", errno: EMFILE }"#
        );
        assert_eq!(error.to_string(), "cannot make a pipe: Too many open files");
        assert_eq!(format!("{:?}", Error::Disconnected), "Disconnected");
    }

    #[test]
    fn a_chain_of_sources_names_the_errno_once() {
        let error = Error::os("cannot make a pipe")(nix::Error::EMFILE);
        let mut chain = vec![error.to_string()];
        let mut source = error.source();
        while let Some(inner) = source {
            chain.push(inner.to_string());
            source = inner.source();
        }
        assert_eq!(chain.join(": "), "cannot make a pipe: Too many open files");
    }
}
