//! Python's `multiprocessing.Pipe`: two connected ends that send each other messages.
//!
//! A pipe is a Unix socket pair. Each message travels as a frame: its length in 8 bytes, then
//! its bytes. The receiving end checks the length against a limit before it allocates
//! anything, tells a closed peer (a clean end of stream) from a frame cut short (a peer that
//! died while sending), and never returns half a message. A message that is a block of bytes
//! ([`send_bytes`](Connection::send_bytes), or [`send`](Connection::send) of a `Vec<u8>` or a
//! [`Bytes`](crate::Bytes)) goes from the sender's own memory to the socket, and from the
//! socket into the receiver's new vector, with no copy in between and no zero-filling.
//!
//! # Which process holds which end
//!
//! Give one end to a child by moving it into the child's closure: the parent's copy of that
//! end is closed when the child starts, so when the child ends (or drops its end), the
//! parent's `recv` reports [`Error::Disconnected`].
//!
//! The other way round, it does not. `fork` gives the child a copy of every descriptor open in
//! the parent, the end the parent kept included, and the child's code has no handle on that
//! copy to drop: the `Connection` that owns it belongs to the parent's code, which never runs
//! in the child.
//! The copy stays open until the child ends, so a child that waits for its parent to close
//! waits forever. CPython behaves the same unless the child calls `parent_conn.close()`. Tell
//! the child that nothing more is coming with a last message, a sentinel like the queue
//! lessons' `-1` and `None`.
//!
//! A child started afresh (`spawn`, `forkserver`) has no such copy. It holds only the end
//! given to it in the argument of [`Process::task`](crate::Process::task), sent to it as a
//! descriptor; the parent's copy of that end is closed once the child has started, as under
//! `fork`. So there, a child that waits for its parent to close its end does see the end of
//! the stream, once no forked process holds a copy either.
//!
//! A process forked while a pipe exists holds copies of both its ends, the end meant for a
//! child not started yet included. A reader sees the end of the stream only once every copy
//! of the other end is closed, so start other processes before making a pipe they do not use,
//! or expect the end of the stream only after they end too.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, sendmsg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, Copied};
use crate::connection::sealed::{Sealed, Watch};
use crate::error::{Error, Result};
use crate::start::descriptors;

/// The default largest message a connection accepts: 1 GiB.
const DEFAULT_MAX_MESSAGE: usize = 1 << 30;

/// How much one read may bring in ahead of need, so that small messages arriving together
/// cost one system call; larger wants are read straight into place.
const READ_AHEAD: usize = 64 * 1024;

/// One end of a [`pipe`]: Python's `multiprocessing.connection.Connection`.
///
/// Sending and receiving take `&mut self`: one end has one user at a time, so frames from two
/// threads can never interleave. Share a [`Queue`](crate::Queue) when many processes write.
#[derive(Debug)]
pub struct Connection {
    stream: UnixStream,
    readable: bool,
    writable: bool,
    max_message: usize,
    /// Bytes read ahead of need; `ahead[start..]` is not consumed yet.
    ahead: Vec<u8>,
    start: usize,
}

/// Makes two connected ends: Python's `Pipe(duplex)`.
///
/// With `duplex`, both ends send and receive. Without, the first end only receives and the
/// second only sends, as in Python.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{Process, pipe};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let (mut parent_conn, mut child_conn) = pipe(true)?;
/// let p = Process::new(move || child_conn.send(&(42, "hello".to_string())));
/// p.start()?;
/// let (number, text): (i32, String) = parent_conn.recv()?;
/// assert_eq!((number, text.as_str()), (42, "hello"));
/// p.join()?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Os`] when the sockets cannot be made (too many open files).
pub fn pipe(duplex: bool) -> Result<(Connection, Connection)> {
    let (first, second) = UnixStream::pair().map_err(Error::io("cannot make a pipe"))?;
    let end = |stream, readable, writable| Connection {
        stream,
        readable,
        writable,
        max_message: DEFAULT_MAX_MESSAGE,
        ahead: Vec::new(),
        start: 0,
    };
    if duplex {
        Ok((end(first, true, true), end(second, true, true)))
    } else {
        let _ = first.shutdown(std::net::Shutdown::Write);
        let _ = second.shutdown(std::net::Shutdown::Read);
        Ok((end(first, true, false), end(second, false, true)))
    }
}

impl Connection {
    /// Sends `value`, encoded: Python's `send(obj)`.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`], [`Error::MessageTooLarge`] over this end's limit,
    /// [`Error::Disconnected`] when the other end is closed, [`Error::OneWay`] on a receiving
    /// end, [`Error::Os`].
    pub fn send<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let mut scratch = Vec::new();
        let parts = codec::encode_parts(&mut scratch, value)?;
        self.send_parts(&parts)
    }

    /// Receives a value of type `T`: Python's `recv()`. Waits for one.
    ///
    /// # Errors
    ///
    /// As [`recv_bytes`](Connection::recv_bytes), and [`Error::Decode`] when the message is
    /// not a `T`.
    pub fn recv<T: DeserializeOwned>(&mut self) -> Result<T> {
        let size = self.recv_length()?;
        let mut scratch = Vec::new();
        let mut done = 0;
        let copied = codec::copy_out(size, &mut scratch, |buffer, count| {
            self.append_message(buffer, count, &mut done, size)
        })?;
        match copied {
            Copied::Value(value) => Ok(value),
            Copied::Encoded => codec::decode(&scratch),
        }
    }

    /// Sends `bytes` as one message: Python's `send_bytes`.
    ///
    /// # Errors
    ///
    /// As [`send`](Connection::send), but for encoding.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.send_parts(&[bytes])
    }

    /// Sends `parts`, one after the other, as one message, without joining them first.
    pub(crate) fn send_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        if !self.writable {
            return Err(Error::OneWay { receives: true });
        }
        let size = self.check_size(parts)?;
        let length = (size as u64).to_le_bytes();
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
        slices.push(IoSlice::new(&length));
        slices.extend(parts.iter().map(|part| IoSlice::new(part)));
        let mut parts = &mut slices[..];
        while !parts.is_empty() {
            match self.send_vectored(parts, MsgFlags::empty()) {
                Ok(0) => return Err(Error::Disconnected),
                Ok(written) => IoSlice::advance_slices(&mut parts, written),
                Err(errno) => return Err(os_error(errno, "cannot send a message")),
            }
        }
        Ok(())
    }

    /// Receives one message's bytes: Python's `recv_bytes`. Waits for one.
    ///
    /// # Errors
    ///
    /// [`Error::Disconnected`] when the other end closed between messages,
    /// [`Error::Corrupt`] when it closed in the middle of one, [`Error::MessageTooLarge`]
    /// when a length is over this end's limit (nothing is allocated for it, and the stream
    /// cannot be trusted after it), [`Error::OneWay`] on a sending end, [`Error::Os`].
    pub fn recv_bytes(&mut self) -> Result<Vec<u8>> {
        let size = self.recv_length()?;
        let mut bytes = Vec::new();
        self.append_message(&mut bytes, size, &mut 0, size)?;
        Ok(bytes)
    }

    /// Receives the length of the next message, and checks it against this end's limit.
    fn recv_length(&mut self) -> Result<usize> {
        if !self.readable {
            return Err(Error::OneWay { receives: false });
        }
        let mut length = [MaybeUninit::uninit(); 8];
        match self.read_full(&mut length)? {
            0 => return Err(Error::Disconnected),
            8 => {}
            got => {
                return Err(Error::Corrupt {
                    message: format!("the stream ended {got} bytes into a message's length"),
                });
            }
        }
        // SAFETY: all eight bytes were read.
        let size = u64::from_le_bytes(length.map(|byte| unsafe { byte.assume_init() }));
        if size > self.max_message as u64 {
            return Err(Error::MessageTooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
                limit: self.max_message,
            });
        }
        Ok(size as usize)
    }

    /// Appends the next `count` bytes of a `size`-byte message to `buffer`; `done` counts the
    /// bytes of the message read so far.
    fn append_message(
        &mut self,
        buffer: &mut Vec<u8>,
        count: usize,
        done: &mut usize,
        size: usize,
    ) -> Result<()> {
        buffer.reserve(count);
        let got = self.read_full(&mut buffer.spare_capacity_mut()[..count])?;
        // SAFETY: `read_full` initialised the first `got` bytes after the buffer's length.
        unsafe { buffer.set_len(buffer.len() + got) };
        *done += got;
        if got < count {
            return Err(Error::Corrupt {
                message: format!("the stream ended {done} bytes into a {size}-byte message"),
            });
        }
        Ok(())
    }

    /// `parts` as one frame (length, then the parts' bytes), to be written with
    /// [`send_some`](Connection::send_some).
    pub(crate) fn frame(&self, parts: &[&[u8]]) -> Result<Vec<u8>> {
        let size = self.check_size(parts)?;
        let mut frame = Vec::with_capacity(8 + size);
        frame.extend_from_slice(&(size as u64).to_le_bytes());
        for part in parts {
            frame.extend_from_slice(part);
        }
        Ok(frame)
    }

    /// The size of a message made of `parts`, if it is within this end's limit.
    fn check_size(&self, parts: &[&[u8]]) -> Result<usize> {
        let size = parts.iter().map(|part| part.len()).sum();
        if size > self.max_message {
            return Err(Error::MessageTooLarge {
                size,
                limit: self.max_message,
            });
        }
        Ok(size)
    }

    /// Writes as much of `bytes` as the socket takes without waiting; returns how much (0
    /// when it is full). For a caller that must never block on a slow reader.
    pub(crate) fn send_some(&mut self, bytes: &[u8]) -> Result<usize> {
        match self.send_vectored(&[IoSlice::new(bytes)], MsgFlags::MSG_DONTWAIT) {
            Ok(written) => Ok(written),
            Err(Errno::EAGAIN) => Ok(0),
            Err(errno) => Err(os_error(errno, "cannot send a message")),
        }
    }

    /// `sendmsg` with `MSG_NOSIGNAL` (and `flags`), retried when a signal interrupts it: a
    /// closed peer gives `EPIPE`, never a `SIGPIPE` that would kill the process whatever its
    /// signal settings.
    ///
    /// See also: [`sendmsg(2)`](https://man7.org/linux/man-pages/man2/sendmsg.2.html).
    fn send_vectored(&self, parts: &[IoSlice<'_>], flags: MsgFlags) -> nix::Result<usize> {
        loop {
            let fd = self.stream.as_raw_fd();
            match sendmsg::<()>(fd, parts, &[], MsgFlags::MSG_NOSIGNAL | flags, None) {
                Err(Errno::EINTR) => {}
                result => return result,
            }
        }
    }

    /// Reads until `buffer` is full or the stream ends; returns how much was read, from the
    /// start of `buffer`. Serves bytes read ahead first, and reads ahead when what is missing
    /// is small. Nothing is zero-filled first: the buffers are memory to write into.
    fn read_full(&mut self, buffer: &mut [MaybeUninit<u8>]) -> Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            if self.start < self.ahead.len() {
                let count = (buffer.len() - filled).min(self.ahead.len() - self.start);
                buffer[filled..filled + count]
                    .write_copy_of_slice(&self.ahead[self.start..self.start + count]);
                self.start += count;
                filled += count;
                continue;
            }
            if buffer.len() - filled >= READ_AHEAD {
                match read_some(&self.stream, &mut buffer[filled..])? {
                    0 => break,
                    count => filled += count,
                }
            } else {
                self.ahead.clear();
                self.ahead.reserve(READ_AHEAD);
                self.start = 0;
                let spare = &mut self.ahead.spare_capacity_mut()[..READ_AHEAD];
                let count = read_some(&self.stream, spare)?;
                // SAFETY: `read_some` initialised the first `count` bytes.
                unsafe { self.ahead.set_len(count) };
                if count == 0 {
                    break;
                }
            }
        }
        Ok(filled)
    }

    /// Whether bytes read ahead are waiting: then a receive needs no system call to start,
    /// and the socket itself may not look readable.
    pub(crate) fn has_read_ahead(&self) -> bool {
        self.start < self.ahead.len()
    }

    /// Whether a message (or the end of the stream) is waiting, after waiting at most
    /// `timeout` (`None`: as long as it takes): Python's `poll(timeout)`.
    ///
    /// A message read ahead into this end's buffer counts. To wait on several ends at once,
    /// or on processes too, use [`connection::wait`](crate::connection::wait).
    ///
    /// # Errors
    ///
    /// [`Error::OneWay`] on a sending end, [`Error::Os`].
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool> {
        Ok(!crate::connection::wait(&[self], timeout)?.is_empty())
    }

    /// Sets the largest message this end sends or accepts (1 GiB by default).
    pub fn set_max_message(&mut self, bytes: usize) {
        self.max_message = bytes;
    }

    /// The underlying socket, for an event loop of your own.
    ///
    /// The socket cannot see what [`recv`](Connection::recv) has already read ahead into this
    /// end's buffer: several small messages that arrived together come in with one read, so
    /// after a `recv` the next message may be waiting here while the socket looks idle, and a
    /// `poll` of it would wait for nothing. [`poll`](Connection::poll) and
    /// [`connection::wait`](crate::connection::wait) count buffered messages; wait with those.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Sealed for Connection {
    fn watch(&self) -> Result<Watch<'_>> {
        if !self.readable {
            return Err(Error::OneWay { receives: false });
        }
        if self.has_read_ahead() {
            return Ok(Watch::Ready);
        }
        Ok(Watch::Readable(self.stream.as_fd()))
    }
}

/// A pipe end as it travels in a task's argument.
#[derive(Serialize, Deserialize)]
struct Passed {
    socket: descriptors::Passed,
    readable: bool,
    writable: bool,
    max_message: u64,
    /// Bytes this end had read ahead and not yet given out: they are the child's now.
    ahead: Vec<u8>,
}

/// The kind of descriptor a pipe end is, for [`descriptors`].
const SOCKET: &str = "socket";

/// A pipe end travels to a child started afresh as its socket; see
/// [`Process::task`](crate::Process::task). Anywhere else, encoding it fails: a pipe end
/// reaches only the children started with it.
impl Serialize for Connection {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let socket = descriptors::pass("Connection", SOCKET, self.stream.as_fd())
            .map_err(serde::ser::Error::custom)?;
        Passed {
            socket,
            readable: self.readable,
            writable: self.writable,
            max_message: self.max_message as u64,
            ahead: self.ahead[self.start..].to_vec(),
        }
        .serialize(serializer)
    }
}

/// A pipe end is decoded only by a child started afresh with it.
impl<'de> Deserialize<'de> for Connection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let passed = Passed::deserialize(deserializer)?;
        let socket = descriptors::take("Connection", SOCKET, passed.socket)
            .map_err(serde::de::Error::custom)?;
        Ok(Connection {
            stream: UnixStream::from(socket),
            readable: passed.readable,
            writable: passed.writable,
            max_message: usize::try_from(passed.max_message).unwrap_or(usize::MAX),
            ahead: passed.ahead,
            start: 0,
        })
    }
}

impl Connection {
    /// A duplex end made of a socket received from another process.
    pub(crate) fn from_socket(socket: OwnedFd) -> Connection {
        Connection {
            stream: UnixStream::from(socket),
            readable: true,
            writable: true,
            max_message: DEFAULT_MAX_MESSAGE,
            ahead: Vec::new(),
            start: 0,
        }
    }
}

impl From<Connection> for OwnedFd {
    fn from(connection: Connection) -> OwnedFd {
        connection.stream.into()
    }
}

/// One `read` into `buffer`, retried when a signal interrupts it; returns how many bytes it
/// wrote, from the start, 0 at the end of the stream. nix reads only into initialised memory;
/// this reads into memory that was never written, so that a large message costs no zero-fill.
///
/// See also: [`read(2)`](https://man7.org/linux/man-pages/man2/read.2.html).
fn read_some(stream: &UnixStream, buffer: &mut [MaybeUninit<u8>]) -> Result<usize> {
    loop {
        // SAFETY: `read` writes at most `buffer.len()` bytes at the start of `buffer`, which
        // is ours to write, and nothing else.
        let read =
            unsafe { libc::read(stream.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        match usize::try_from(read) {
            Ok(count) => return Ok(count),
            Err(_) => match Errno::last() {
                Errno::EINTR => {}
                errno => return Err(os_error(errno, "cannot receive a message")),
            },
        }
    }
}

/// Maps a broken connection to [`Error::Disconnected`], anything else to [`Error::Os`].
fn os_error(errno: Errno, context: &'static str) -> Error {
    match errno {
        Errno::EPIPE | Errno::ECONNRESET => Error::Disconnected,
        errno => Error::Os { context, errno },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_some_takes_what_fits_then_reports_a_closed_peer() {
        let (mut sender, receiver) = pipe(true).unwrap();
        let chunk = vec![0; 64 * 1024];
        let mut sent = 0;
        // A socket's buffer is a few hundred KiB: it fills long before this bound.
        for _ in 0..1024 {
            match sender.send_some(&chunk).unwrap() {
                0 => break,
                written => sent += written,
            }
        }
        assert!(sent > 0, "the empty socket took nothing");
        assert_eq!(
            sender.send_some(&chunk).unwrap(),
            0,
            "a full socket took more"
        );
        drop(receiver);
        assert!(matches!(sender.send_some(&chunk), Err(Error::Disconnected)));
    }
}
