//! The `spawn` start method: a fresh copy of this executable, told what to do through a
//! socket it inherits, and [`init`](super::init)'s side of it in the child.

use std::ffi::{CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, posix_spawn};
use nix::unistd::Pid;

use super::{BOOT_VARIABLE, Boot, StartMethod, Work, check_initialized, forkserver, message};
use crate::codec;
use crate::error::{Error, Result};
use crate::pipe::Connection;
use crate::readable::wait_readable;

/// How long a child started afresh has to reach [`init`](super::init) and read its work
/// before its start counts as failed.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Where the child finds its start-up socket, unless that number is taken by the socket
/// itself in the parent (then the next one).
const BOOT_FD: RawFd = 3;

/// Starts a fresh copy of this executable that becomes the child `boot` describes, with
/// `fds` as its descriptors; returns its pid once it has its work.
///
/// # Errors
///
/// [`Error::NotInitialized`] when this program did not call [`init`](super::init), or the
/// child did not (it ended without reading its work); [`Error::Os`] when it cannot start.
pub(crate) fn launch(boot: &Boot, fds: &[OwnedFd]) -> Result<Pid> {
    check_initialized(StartMethod::Spawn)?;
    let message = codec::encode(boot)?;
    let (ours, theirs) =
        UnixStream::pair().map_err(Error::io("cannot make a socket for a new process"))?;
    let target = if theirs.as_raw_fd() == BOOT_FD {
        BOOT_FD + 1
    } else {
        BOOT_FD
    };
    let mut actions = PosixSpawnFileActions::init().map_err(Error::os("cannot spawn"))?;
    // dup2 onto another number clears close-on-exec for the copy only: no other child, and
    // no other thread's child, can inherit the socket.
    actions
        .add_dup2(theirs.as_raw_fd(), target)
        .map_err(Error::os("cannot spawn"))?;
    let attributes = PosixSpawnAttr::init().map_err(Error::os("cannot spawn"))?;
    let program = CString::new("/proc/self/exe").expect("no NUL inside");
    let name = std::env::args_os()
        .next()
        .and_then(|arg| CString::new(arg.as_bytes()).ok())
        .unwrap_or_else(|| program.clone());
    let mut environment: Vec<CString> = std::env::vars_os()
        .filter(|(key, _)| key != BOOT_VARIABLE)
        .filter_map(|(key, value)| {
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            CString::new(pair).ok()
        })
        .collect();
    environment.push(CString::new(format!("{BOOT_VARIABLE}={target}")).expect("no NUL inside"));
    let pid = posix_spawn(
        program.as_c_str(),
        &actions,
        &attributes,
        &[name],
        &environment,
    )
    .map_err(Error::os("cannot spawn a process"))?;
    drop(theirs);
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let started = message::send(&ours, &message, &raw).and_then(|()| acknowledged(&ours));
    if let Err(error) = started {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(error);
    }
    Ok(pid)
}

/// Waits for the child's word that it has its work.
fn acknowledged(ours: &UnixStream) -> Result<()> {
    let deadline = crate::sync::deadline_after(START_PATIENCE);
    let not_initialized = Error::NotInitialized {
        method: StartMethod::Spawn,
    };
    if !wait_readable(ours.as_fd(), deadline, "cannot wait for a new process")? {
        return Err(not_initialized);
    }
    let mut word = [0];
    match (&*ours).read(&mut word) {
        Ok(1) => Ok(()),
        // It ended without reading its work: its `main` never called `init`.
        _ => Err(not_initialized),
    }
}

/// The child's side, from [`init`](super::init): read the work from the inherited socket
/// numbered `fd`, say so, and do it. Returns only with an error before the work starts.
pub(super) fn become_child(fd: &OsStr) -> Result<()> {
    let fd: RawFd = fd
        .to_str()
        .and_then(|fd| fd.parse().ok())
        .ok_or_else(|| Error::Corrupt {
            message: format!("{BOOT_VARIABLE} is not a descriptor number"),
        })?;
    // SAFETY: the parent put this socket at this number for this process alone (dup2 in
    // `launch`), and nothing else in this fresh process refers to it.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = UnixStream::from(socket);
    let (bytes, fds) = message::receive(&socket)?;
    let boot: Boot = codec::decode(&bytes)?;
    (&socket)
        .write_all(&[1])
        .map_err(Error::io("cannot answer the parent process"))?;
    drop(socket);
    let parent = boot.parent.1;
    become_boot(boot, fds, parent)
}

/// Becomes the child `boot` describes, with the descriptors `fds`; `watch` is the pid whose
/// end a daemonic child must not outlive.
pub(super) fn become_boot(boot: Boot, fds: Vec<OwnedFd>, watch: u32) -> ! {
    let mut fds = fds.into_iter();
    let target: crate::process::Target = match boot.work {
        Work::Process(entry) => {
            let fds = fds.collect();
            // SAFETY: the entry was made by the parent, which runs this same executable, and
            // sent with the descriptors it gave, in order.
            Box::new(move || unsafe { (*entry).run(fds) })
        }
        Work::PoolWorker { initializer } => {
            let Some(socket) = fds.next() else {
                missing("a pool worker's socket")
            };
            let conn = Connection::from_socket(socket);
            Box::new(move || crate::pool::spawned_worker(conn, initializer))
        }
        Work::Forkserver => forkserver::serve(fds.collect()),
    };
    crate::process::become_started(
        boot.name,
        boot.daemon,
        boot.identity,
        boot.parent,
        watch,
        target,
    )
}

/// Ends a child whose parent forgot to send it something it needs.
fn missing(what: &str) -> ! {
    eprintln!("multiprocessing: the parent process did not send {what}");
    std::process::exit(1)
}
