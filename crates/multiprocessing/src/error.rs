//! The runtime's one error type; Python raises `ValueError`, `AssertionError` or `OSError` instead.

use std::fmt;

/// Everything that can go wrong in this crate.
///
/// Every misuse Python reports with an `assert` (and loses under `python -O`) is a variant
/// here, checked every time. Messages are lowercase and say what to do.
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
    /// A thread tried to acquire a lock it already holds, which would wait forever: a
    /// [`Lock`](crate::Lock), or the lock of a [`Value`](crate::Value). Python's `Lock` just
    /// waits.
    WouldDeadlock,
    /// A thread released a lock it does not hold: one that another thread or process holds, or
    /// that no one holds. Python's `RLock` raises `AssertionError`; its `Lock` raises
    /// `ValueError` when no one holds it, and lets anyone release it otherwise.
    NotOwner,
    /// A system call failed.
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

/// The message, as `Display` gives it: `main` returning `Err` prints an error with `Debug`,
/// and a reader should see the sentence, not the variant.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { errno, .. } => Some(errno),
            _ => None,
        }
    }
}
