//! The `forkserver` start method: a single-threaded server, spawned once per program, that
//! forks each child on request.
//!
//! The server has one thread and holds no lock, so its forks are safe whatever the program's
//! own threads hold. A request is a child's start-up message with its descriptors, and one
//! more: the writing end of a pipe on which the server reports, once it has reaped the child,
//! how it ended and what it used (`process::Reaped::to_wire` gives the layout). The server
//! answers with the child's pid. It ends when the program does: it watches a pipe whose
//! writing end only the program holds.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::unistd::{ForkResult, Pid};

use super::{Boot, StartMethod, Work, check_initialized, message, spawn};
use crate::codec;
use crate::error::{Error, Result};
use crate::sync::lock;

/// How long the fork server gets to end once told to, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// The program's way to its fork server.
pub(crate) struct Server {
    requests: UnixStream,
    /// The writing end of the pipe the server watches; it closes when this process ends.
    alive: OwnedFd,
    pid: Pid,
}

impl Server {
    /// Tells the server to end (it sees its pipe close), waits for it a moment, kills it if
    /// it is still there (a forked child of this program may hold the pipe open), and reaps it.
    pub(crate) fn stop(self) {
        let Server {
            requests,
            alive,
            pid,
        } = self;
        drop((requests, alive));
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(nix::sys::wait::WaitStatus::StillAlive) => {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                    return;
                }
                Err(Errno::EINTR) => {}
                _ => return,
            }
        }
    }
}

/// Starts a child through this process's fork server, spawning the server first if need be.
/// Returns the child's pid and the pipe on which the report of its end will come.
///
/// # Errors
///
/// [`Error::NotInitialized`] without [`init`](super::init); [`Error::Os`] when the server
/// cannot fork or cannot be started.
pub(crate) fn launch(boot: &Boot, fds: &[OwnedFd]) -> Result<(Pid, OwnedFd)> {
    check_initialized(StartMethod::Forkserver)?;
    let message = codec::encode(boot)?;
    let (report, report_writer) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(Error::os("cannot make a pipe for a new process"))?;
    let state = crate::process::current_state();
    let mut server = lock(&state.forkserver);
    if server.is_none() {
        *server = Some(start_server()?);
    }
    let requests = &server.as_ref().expect("started above").requests;
    let mut raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    raw.push(report_writer.as_raw_fd());
    let answer = message::send(requests, &message, &raw).and_then(|()| {
        let mut pid = [0; 4];
        (&*requests)
            .read_exact(&mut pid)
            .map_err(Error::io("the fork server did not answer"))?;
        Ok(i32::from_le_bytes(pid))
    });
    match answer {
        Ok(pid) if pid > 0 => Ok((Pid::from_raw(pid), report)),
        Ok(errno) => Err(Error::Os {
            context: "the fork server cannot fork",
            errno: Errno::from_raw(-errno),
        }),
        Err(error) => {
            // A server that failed once is not trusted again: the next launch starts another.
            if let Some(failed) = server.take() {
                failed.stop();
            }
            Err(error)
        }
    }
}

/// Spawns the fork server.
fn start_server() -> Result<Server> {
    let (requests, theirs) =
        UnixStream::pair().map_err(Error::io("cannot make the fork server's socket"))?;
    let (alive_reader, alive) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(Error::os("cannot make the fork server's pipe"))?;
    let parent = crate::process::current_state();
    let boot = Boot {
        name: "ForkServer".into(),
        daemon: false,
        identity: Vec::new(),
        parent: (parent.name.clone(), parent.pid),
        work: Work::Forkserver,
    };
    let pid = spawn::launch(&boot, &[OwnedFd::from(theirs), alive_reader])?;
    log::debug!("started the fork server with pid {pid}");
    Ok(Server {
        requests,
        alive,
        pid,
    })
}

/// A child of the server, until it is reaped.
struct Child {
    pid: Pid,
    /// Readable once the child has ended; `None` on kernels without pidfds.
    pidfd: Option<OwnedFd>,
    /// Where the report of its end goes.
    report: OwnedFd,
}

/// The server's life: fork on request, report each child's end, and stop when the program
/// is gone. Never returns.
pub(super) fn serve(fds: Vec<OwnedFd>) -> ! {
    let mut fds = fds.into_iter();
    let (Some(requests), Some(alive)) = (fds.next(), fds.next()) else {
        std::process::exit(1)
    };
    let requests = UnixStream::from(requests);
    let mut children: Vec<Child> = Vec::new();
    loop {
        let polling_without_pidfd = children.iter().any(|child| child.pidfd.is_none());
        let (requests_ready, alive_ready, ended) = {
            let mut polled = vec![
                PollFd::new(requests.as_fd(), PollFlags::POLLIN),
                PollFd::new(alive.as_fd(), PollFlags::POLLIN),
            ];
            polled.extend(
                children
                    .iter()
                    .filter_map(|child| child.pidfd.as_ref())
                    .map(|pidfd| PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)),
            );
            let timeout = if polling_without_pidfd {
                PollTimeout::from(50_u8)
            } else {
                PollTimeout::NONE
            };
            match nix::poll::poll(&mut polled, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => std::process::exit(1),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|events| !events.is_empty());
            (
                ready(&polled[0]),
                ready(&polled[1]),
                polled[2..].iter().any(ready),
            )
        };
        if alive_ready {
            // The program has ended: so does the server. Daemonic children die with it.
            std::process::exit(0);
        }
        if ended || polling_without_pidfd {
            children.retain(|child| !reaped(child));
        }
        if requests_ready {
            match message::receive(&requests) {
                Ok((bytes, fds)) => {
                    if let Some(child) = fork_child(&requests, &alive, &mut children, &bytes, fds) {
                        children.push(child);
                    }
                }
                Err(_) => std::process::exit(0),
            }
        }
    }
}

/// Reports how the child ended and what it used, if it has ended; whether it has.
fn reaped(child: &Child) -> bool {
    match crate::process::reap_raw(child.pid) {
        Ok(Some(reaped)) => {
            // One write of fewer than PIPE_BUF bytes: the parent reads the report whole.
            let _ = nix::unistd::write(&child.report, &reaped.to_wire());
            true
        }
        Ok(None) => false,
        Err(errno) => errno == Errno::ECHILD,
    }
}

/// Forks the child a request asks for and answers with its pid (or minus the errno).
fn fork_child(
    requests: &UnixStream,
    alive: &OwnedFd,
    children: &mut Vec<Child>,
    bytes: &[u8],
    mut fds: Vec<OwnedFd>,
) -> Option<Child> {
    let report = fds.pop()?;
    let boot: Boot = codec::decode(bytes).ok()?;
    let server = std::process::id();
    // SAFETY: the server has one thread and holds no lock, so the child may do anything. It
    // closes the server's descriptors and becomes the child; it never returns here.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            // The server's descriptors are not the child's: close them.
            // SAFETY: these are this process's copies of the server's descriptors, which
            // nothing in the child uses; closing them leaves the server's own open.
            unsafe {
                libc::close(requests.as_raw_fd());
                libc::close(alive.as_raw_fd());
            }
            for child in children.drain(..) {
                drop(child);
            }
            drop(report);
            spawn::become_boot(boot, fds, server)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = (&*requests).write_all(&child.as_raw().to_le_bytes());
            Some(Child {
                pid: child,
                pidfd: crate::process::pidfd_open(child),
                report,
            })
        }
        Err(errno) => {
            let _ = (&*requests).write_all(&(-(errno as i32)).to_le_bytes());
            None
        }
    }
}
