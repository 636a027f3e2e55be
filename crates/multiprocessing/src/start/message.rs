//! Messages with descriptors attached, over a Unix socket: how a child started afresh gets its
//! work and the sockets, pipes and memory it shares with its parent.
//!
//! A message is its length in 8 bytes, then its bytes; the descriptors travel with the first
//! bytes as `SCM_RIGHTS`, and arrive in the receiver as new descriptors of its own.
//!
//! See also: [`unix(7)`](https://man7.org/linux/man-pages/man7/unix.7.html), `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::error::{Error, Result};

/// The most descriptors one message carries: the kernel's limit (`SCM_MAX_FD`).
pub(crate) const MAX_FDS: usize = 253;

/// The largest message a child accepts from its parent: a task's argument, encoded.
const MAX_MESSAGE: u64 = 1 << 30;

/// Sends `bytes` as one message, with `fds` attached.
pub(crate) fn send(stream: &UnixStream, bytes: &[u8], fds: &[RawFd]) -> Result<()> {
    assert!(
        fds.len() <= MAX_FDS,
        "at most {MAX_FDS} descriptors a message"
    );
    let length = (bytes.len() as u64).to_le_bytes();
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    let mut parts = [IoSlice::new(&length), IoSlice::new(bytes)];
    let mut parts = &mut parts[..];
    let mut first = true;
    while !parts.is_empty() {
        let attached = if first { cmsgs } else { &[] };
        let sent = sendmsg::<()>(
            stream.as_raw_fd(),
            parts,
            attached,
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
        match sent {
            Ok(sent) => {
                first = false;
                IoSlice::advance_slices(&mut parts, sent);
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(Error::Disconnected),
            Err(errno) => {
                return Err(Error::Os {
                    context: "cannot send to a child process",
                    errno,
                });
            }
        }
    }
    Ok(())
}

/// Receives one message and the descriptors that came with it.
///
/// # Errors
///
/// [`Error::Disconnected`] when the peer closed before a message began, [`Error::Corrupt`]
/// for one cut short or over the limit.
pub(crate) fn receive(stream: &UnixStream) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut length = [0; 8];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (read, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut length)];
        match recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(message) => {
                let mut fds = Vec::new();
                for cmsg in message
                    .cmsgs()
                    .map_err(Error::os("cannot read descriptors"))?
                {
                    if let ControlMessageOwned::ScmRights(received) = cmsg {
                        // SAFETY: the kernel just installed these descriptors in this process
                        // for this message; nothing else owns them.
                        fds.extend(
                            received
                                .into_iter()
                                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                        );
                    }
                }
                break (message.bytes, fds);
            }
            Err(Errno::EINTR) => {}
            Err(errno) => {
                return Err(Error::Os {
                    context: "cannot receive from the parent process",
                    errno,
                });
            }
        }
    };
    if read == 0 {
        return Err(Error::Disconnected);
    }
    let mut stream = stream;
    stream
        .read_exact(&mut length[read..])
        .map_err(|_| cut_short())?;
    let size = u64::from_le_bytes(length);
    if size > MAX_MESSAGE {
        return Err(Error::Corrupt {
            message: format!("a start-up message claims {size} bytes"),
        });
    }
    let mut bytes = vec![0; size as usize];
    stream.read_exact(&mut bytes).map_err(|_| cut_short())?;
    Ok((bytes, fds))
}

fn cut_short() -> Error {
    Error::Corrupt {
        message: "a start-up message was cut short".into(),
    }
}
