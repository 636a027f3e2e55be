//! Python's `multiprocessing.connection`: the ends of a pipe, and [`wait`] for whichever of
//! several connections and processes is ready.

use std::time::{Duration, Instant};

use crate::error::Result;
pub use crate::pipe::{Connection, pipe};
use crate::readable::{Backoff, wait_any_readable};
use sealed::Watch;

/// Something [`wait`] can watch: a [`Connection`], ready when a message or the end of the
/// stream is waiting, or a [`Process`](crate::Process), ready once it has ended (where Python
/// passes the process's `sentinel`).
///
/// References are waitable too, so a list can hold `&Connection`s, or `&dyn Waitable`s to mix
/// connections and processes. The trait is sealed: only this crate's types implement it.
pub trait Waitable: sealed::Sealed {}

impl Waitable for Connection {}
impl Waitable for crate::Process {}
impl<T: Waitable + ?Sized> Waitable for &T {}

/// What [`wait`] asks of each object, implemented beside each type's internals; outside
/// this crate the trait cannot be named, so [`Waitable`] cannot be implemented there.
pub(crate) mod sealed {
    use std::os::fd::BorrowedFd;

    use crate::error::Result;

    /// How to learn that an object is ready.
    pub trait Sealed {
        /// What to watch right now, or why this object cannot be waited for.
        fn watch(&self) -> Result<Watch<'_>>;
    }

    impl<T: Sealed + ?Sized> Sealed for &T {
        fn watch(&self) -> Result<Watch<'_>> {
            (**self).watch()
        }
    }

    /// The answer of [`Sealed::watch`].
    pub enum Watch<'a> {
        /// Ready now: a message read ahead, a process known to have ended.
        Ready,
        /// Ready once this descriptor is readable (or at its end).
        Readable(BorrowedFd<'a>),
        /// Not ready, with nothing to poll (a process, on a kernel without pidfds): look
        /// again in a moment.
        LookAgain,
    }
}

/// Waits until some of `objects` are ready, or `timeout` passes; returns the indices of
/// those that are ready, in order: Python's `multiprocessing.connection.wait(object_list,
/// timeout)`.
///
/// A [`Connection`] is ready when [`recv`](Connection::recv) would not wait: a message has
/// arrived, or the other end is closed (then `recv` gives [`Error::Disconnected`]). A message
/// already read ahead into the connection's buffer counts, though its socket looks idle; a
/// `poll` of [`Connection::as_fd`] would miss it. A [`Process`](crate::Process) is ready once
/// it has ended, so that [`join`](crate::Process::join) returns at once.
///
/// `timeout` `None` waits as long as it takes, [`Duration::ZERO`] only looks, and a timeout
/// too long to count is a wait without end. When it passes with nothing ready, the list is
/// empty. An empty `objects` returns an empty list at once, where Python sleeps out the
/// timeout (forever, without one).
///
/// Python returns the objects themselves; indices leave the caller free to borrow a
/// connection mutably to receive from it. Visit them backwards to remove finished ones
/// without shifting those still to visit, as the example does.
///
/// # Example
///
/// Python's documented example, in one process: read from each pipe until its writer is gone.
///
/// ```
/// use multiprocessing::connection::{pipe, wait};
/// use multiprocessing::Error;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let mut readers = Vec::new();
/// for i in 0..3 {
///     let (reader, mut writer) = pipe(false)?;
///     writer.send(&i)?;
///     readers.push(reader); // `writer` is dropped here: its reader sees the end after `i`
/// }
/// let mut got = Vec::new();
/// while !readers.is_empty() {
///     for index in wait(&readers, None)?.into_iter().rev() {
///         match readers[index].recv::<i32>() {
///             Ok(number) => got.push(number),
///             Err(Error::Disconnected) => drop(readers.remove(index)),
///             Err(error) => return Err(error),
///         }
///     }
/// }
/// got.sort();
/// assert_eq!(got, [0, 1, 2]);
/// # Ok(())
/// # }
/// ```
///
/// Connections and processes together, as `&dyn Waitable`:
///
/// ```no_run
/// use std::time::Duration;
///
/// use multiprocessing::connection::{Waitable, pipe, wait};
/// use multiprocessing::Process;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Process::new(|| std::thread::sleep(Duration::from_millis(100)));
/// p.start()?;
/// let (reader, _writer) = pipe(false)?;
/// let objects: [&dyn Waitable; 2] = [&reader, &p];
/// assert_eq!(wait(&objects, None)?, [1]); // nothing is sent; the process ends
/// p.join()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::OneWay`] for the sending end of a one-way pipe, which can never be ready (Python
/// waits on it without complaint); [`Error::NotStarted`] for a process not started (Python's
/// `ValueError`); [`Error::NotAChild`] for a process another process started; [`Error::Os`]
/// if the wait itself fails.
///
/// [`Error::Disconnected`]: crate::Error::Disconnected
/// [`Error::OneWay`]: crate::Error::OneWay
/// [`Error::NotStarted`]: crate::Error::NotStarted
/// [`Error::NotAChild`]: crate::Error::NotAChild
/// [`Error::Os`]: crate::Error::Os
pub fn wait<T: Waitable>(objects: &[T], timeout: Option<Duration>) -> Result<Vec<usize>> {
    if objects.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = timeout.and_then(crate::sync::deadline_after);
    let mut backoff = Backoff::new();
    loop {
        let mut ready = Vec::new();
        let mut watched = Vec::new();
        let mut fds = Vec::new();
        let mut look_again = false;
        for (index, object) in objects.iter().enumerate() {
            match object.watch()? {
                Watch::Ready => ready.push(index),
                Watch::Readable(fd) => {
                    watched.push(index);
                    fds.push(fd);
                }
                Watch::LookAgain => look_again = true,
            }
        }
        // With something ready already, only look at the others, to report them too.
        let until = if !ready.is_empty() {
            Some(Instant::now())
        } else if look_again {
            let soon = Instant::now() + backoff.next();
            Some(deadline.map_or(soon, |deadline| deadline.min(soon)))
        } else {
            deadline
        };
        let readable = wait_any_readable(&fds, until, "cannot wait for connections or processes")?;
        ready.extend(readable.into_iter().map(|i| watched[i]));
        if !ready.is_empty() || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            ready.sort_unstable();
            return Ok(ready);
        }
    }
}
