//! How queues, pipes, locks and values reach a child started afresh: as descriptors sent with
//! its start-up message (`SCM_RIGHTS`), never as paths or names.
//!
//! While the parent encodes a task's argument ([`collecting`]), the `Serialize` impls of those
//! types put a copy of each descriptor they stand on in a table of this thread, with its kind
//! (a socket, the memory of a lock, ...), and write its place in the table ([`Passed`]). The
//! table goes with the start-up message: the descriptors attached, their kinds beside the
//! argument. While the child decodes the argument ([`receiving`]), their `Deserialize` impls
//! take each descriptor back from its place, if it is of the kind they expect, and rebuild the
//! object: a socket, or shared memory mapped again.
//!
//! Anywhere else, such an object cannot be encoded. Sending a `Queue` through another queue,
//! a pipe or a pool would copy its bytes, not share it, so it is refused, as Python refuses to
//! pickle one: "Queue objects should only be shared between processes through inheritance".

use std::cell::RefCell;
use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};

use serde::{Deserialize, Serialize};

use super::message::MAX_FDS;
use crate::error::Error;

/// The most descriptors one task's argument may carry: what a message carries, less the one
/// the fork server's request adds.
pub(crate) const MAX_PASSED: usize = MAX_FDS - 1;

/// A descriptor and its kind, as the table holds them.
pub(crate) type Kinded<K> = (OwnedFd, K);

/// What this thread is doing with descriptors, if anything.
enum Table {
    /// Encoding a task's argument: the copies to send, in order.
    Collecting(Vec<Kinded<&'static str>>),
    /// Decoding it: the descriptors received, each taken once.
    Receiving(Vec<Option<Kinded<String>>>),
}

thread_local! {
    static TABLE: RefCell<Option<Table>> = const { RefCell::new(None) };
}

/// Puts a table in place for as long as it lives, and what was there before back afterwards,
/// panic or not.
struct Scope {
    /// What to put back; `None` once put back.
    previous: Option<Option<Table>>,
}

impl Scope {
    fn enter(table: Table) -> Scope {
        Scope {
            previous: Some(TABLE.replace(Some(table))),
        }
    }

    /// Ends the scope, handing back its table.
    fn exit(mut self) -> Option<Table> {
        TABLE.replace(self.previous.take().expect("put back only here or on drop"))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            TABLE.set(previous);
        }
    }
}

/// Runs `encode` with a table that collects the descriptors the encoded objects stand on;
/// returns its result and those descriptors with their kinds, in the order their [`Passed`]
/// places name.
pub(crate) fn collecting<R>(encode: impl FnOnce() -> R) -> (R, Vec<Kinded<&'static str>>) {
    let scope = Scope::enter(Table::Collecting(Vec::new()));
    let result = encode();
    match scope.exit() {
        Some(Table::Collecting(fds)) => (result, fds),
        _ => unreachable!("the scope's own table"),
    }
}

/// Runs `decode` with `fds`, the descriptors sent with the start-up message and their kinds,
/// for the decoded objects to take; those not taken are closed afterwards.
pub(crate) fn receiving<R>(fds: Vec<Kinded<String>>, decode: impl FnOnce() -> R) -> R {
    let scope = Scope::enter(Table::Receiving(fds.into_iter().map(Some).collect()));
    let result = decode();
    drop(scope.exit());
    result
}

/// A descriptor as it travels inside a task's argument: its place among those sent with the
/// start-up message. The table, not the argument, says what kind of descriptor is there.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Passed {
    index: u32,
}

/// Why an object could not be encoded or decoded with its descriptors.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Encoded outside a task's argument.
    NotInATask { what: &'static str },
    /// Decoded outside a child's start-up.
    NotAtStartUp { what: &'static str },
    /// More descriptors than one message carries.
    TooMany,
    /// The place is empty, or holds another kind of descriptor.
    Missing { what: &'static str, index: u32 },
    /// The system refused, or the descriptor was not what it should be.
    Failed(Error),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotInATask { what } => write!(
                f,
                "{what} objects should only be shared between processes through inheritance: \
                 pass it in the argument of Process::task, or capture it in a forked child's \
                 closure"
            ),
            Refused::NotAtStartUp { what } => write!(
                f,
                "a {what} can only be decoded by the process it was passed to, as it starts"
            ),
            Refused::TooMany => write!(
                f,
                "a task's argument can carry at most {MAX_PASSED} descriptors (a queue takes \
                 two; a lock, a value or a pipe end one)"
            ),
            Refused::Missing { what, index } => write!(
                f,
                "the parent process did not send the descriptor of a {what} (place {index})"
            ),
            Refused::Failed(error) => write!(f, "{error}"),
        }
    }
}

impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused::Failed(error)
    }
}

/// Puts a copy of `fd`, the descriptor of a `what`, in the table of the task being encoded,
/// as a descriptor of `kind` (which of its descriptors it is, and of what type).
///
/// Only the runtime names kinds: a kind taken for shared memory holding a `T` must be put only
/// with the memory file of a `Shared<T>`, since [`take`] vouches for it.
///
/// # Errors
///
/// [`Refused::NotInATask`] outside [`collecting`], [`Refused::TooMany`] past
/// [`MAX_PASSED`], [`Refused::Failed`] when the copy cannot be made.
pub(crate) fn pass(
    what: &'static str,
    kind: &'static str,
    fd: BorrowedFd<'_>,
) -> Result<Passed, Refused> {
    TABLE.with_borrow_mut(|table| {
        let Some(Table::Collecting(fds)) = table else {
            return Err(Refused::NotInATask { what });
        };
        if fds.len() >= MAX_PASSED {
            return Err(Refused::TooMany);
        }
        let copy = fd
            .try_clone_to_owned()
            .map_err(Error::io("cannot copy a descriptor for a new process"))?;
        fds.push((copy, kind));
        Ok(Passed {
            index: (fds.len() - 1) as u32,
        })
    })
}

/// Takes the descriptor that `passed` names from the table of the argument being decoded, if
/// the parent put it there as a descriptor of `kind`.
///
/// # Errors
///
/// [`Refused::NotAtStartUp`] outside [`receiving`]; [`Refused::Missing`] when the place is
/// empty, taken already, or holds another kind of descriptor (which stays there).
pub(crate) fn take(what: &'static str, kind: &str, passed: Passed) -> Result<OwnedFd, Refused> {
    TABLE.with_borrow_mut(|table| {
        let Some(Table::Receiving(fds)) = table else {
            return Err(Refused::NotAtStartUp { what });
        };
        let place = fds
            .get_mut(passed.index as usize)
            .filter(|place| place.as_ref().is_some_and(|(_, there)| there == kind));
        match place.and_then(Option::take) {
            Some((fd, _)) => Ok(fd),
            None => Err(Refused::Missing {
                what,
                index: passed.index,
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn descriptors_pass_only_inside_a_task_and_are_taken_once() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let refused = pass("Thing", "pipe", reader.as_fd()).unwrap_err();
        assert!(
            refused.to_string().starts_with(
                "Thing objects should only be shared between processes through inheritance"
            ),
            "{refused}"
        );
        let (passed, fds) = collecting(|| pass("Thing", "pipe", reader.as_fd()).unwrap());
        assert_eq!(fds.len(), 1);
        // Outside the scope, nothing is collected any more.
        assert!(matches!(
            pass("Thing", "pipe", reader.as_fd()),
            Err(Refused::NotInATask { .. })
        ));
        let encoded = crate::codec::encode(&passed).unwrap();
        let fds = fds
            .into_iter()
            .map(|(fd, kind)| (fd, kind.to_owned()))
            .collect();
        receiving(fds, || {
            // Asked for as another kind, it stays where it is.
            let wrong: Passed = crate::codec::decode(&encoded).unwrap();
            assert!(matches!(
                take("Thing", "socket", wrong),
                Err(Refused::Missing { .. })
            ));
            let right: Passed = crate::codec::decode(&encoded).unwrap();
            take("Thing", "pipe", right).unwrap();
            let again: Passed = crate::codec::decode(&encoded).unwrap();
            assert!(matches!(
                take("Thing", "pipe", again),
                Err(Refused::Missing { .. })
            ));
        });
        let passed: Passed = crate::codec::decode(&encoded).unwrap();
        assert!(matches!(
            take("Thing", "pipe", passed),
            Err(Refused::NotAtStartUp { .. })
        ));
    }

    #[test]
    fn one_argument_carries_at_most_what_one_message_can() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let (refused, fds) = collecting(|| {
            for _ in 0..MAX_PASSED {
                pass("Thing", "pipe", reader.as_fd()).unwrap();
            }
            pass("Thing", "pipe", reader.as_fd()).unwrap_err()
        });
        assert_eq!(fds.len(), MAX_PASSED);
        assert!(matches!(refused, Refused::TooMany), "{refused}");
    }

    #[test]
    fn a_panic_inside_a_scope_leaves_no_table_behind() {
        let (reader, _writer) = std::io::pipe().unwrap();
        let panicked = std::panic::catch_unwind(|| collecting(|| panic!("while encoding")));
        assert!(panicked.is_err());
        assert!(matches!(
            pass("Thing", "pipe", reader.as_fd()),
            Err(Refused::NotInATask { .. })
        ));
    }
}
