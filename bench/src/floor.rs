//! The floor the operating system sets: bare `fork` + `waitpid`, bare `posix_spawn` +
//! `waitpid`, a bare pipe and a bare socket pair, with nothing of the runtime in between. The
//! runtime's figures are set against these, measured in the same run.

use std::ffi::CStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, posix_spawn};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe};

use crate::Result;
use crate::measure;

/// Forks a bare child that closes `parents_ends`, runs `body` and ends with `_exit`: code 0 if
/// `body` returned true, 1 otherwise. What `body` captured is closed in the parent when this
/// returns; the parent's ends of the child's pipes must be closed in the child, or it would
/// hold its own input open and never see it end.
fn spawn(parents_ends: &[&File], body: impl FnOnce() -> bool) -> Result<Pid> {
    // SAFETY: the child may run while other threads of the parent held locks at the fork, so
    // it touches no lock: `body` only reads and writes file descriptors it owns, and the
    // child leaves by `_exit`, never returning into the parent's code or destructors.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            for end in parents_ends {
                // SAFETY: the child's copy of a descriptor the parent keeps; its `File` is
                // never used or dropped in the child, which leaves by `_exit`.
                unsafe { libc::close(end.as_raw_fd()) };
            }
            let ok = catch_unwind(AssertUnwindSafe(body)).unwrap_or(false);
            // SAFETY: `_exit` ends the child at once, without the parent's `atexit` handlers.
            unsafe { libc::_exit(i32::from(!ok)) }
        }
    }
}

/// Waits for a bare child and checks that it exited with code 0.
fn reap(child: Pid) -> Result<()> {
    match waitpid(child, None)? {
        WaitStatus::Exited(_, 0) => Ok(()),
        status => Err(format!("a bare child ended badly: {status:?}").into()),
    }
}

/// One `fork` of a child that exits at once, and the parent's `waitpid` for it.
///
/// # Errors
///
/// When `fork` or `waitpid` fails.
// ANCHOR: fork_wait
pub fn fork_wait() -> Result<Duration> {
    let start = Instant::now();
    let child = spawn(&[], || true)?;
    reap(child)?;
    Ok(start.elapsed())
}
// ANCHOR_END: fork_wait

/// How many threads this process has, from `/proc/self/status`. [`fork_wait`] is the floor of
/// a start by the fork server, which has one thread, where this says one too.
///
/// # Errors
///
/// When `/proc/self/status` cannot be read or has no `Threads:` line.
pub fn threads() -> Result<usize> {
    Ok(measure::status("Threads")?.parse()?)
}

/// The trivial program [`spawn_wait`] starts.
const TRUE: &CStr = c"/bin/true";

/// One `posix_spawn` of `/bin/true`, with an empty environment, and the parent's `waitpid`
/// for it.
///
/// # Errors
///
/// When `posix_spawn` or `waitpid` fails, or `/bin/true` does not exit with code 0.
// ANCHOR: spawn_wait
pub fn spawn_wait() -> Result<Duration> {
    let (actions, attributes) = (PosixSpawnFileActions::init()?, PosixSpawnAttr::init()?);
    let start = Instant::now();
    let child = posix_spawn(TRUE, &actions, &attributes, &[TRUE], &[] as &[&CStr])?;
    reap(child)?;
    Ok(start.elapsed())
}
// ANCHOR_END: spawn_wait

/// A bare child that echoes what it reads from one pipe into another, for timing round trips.
pub struct Echo {
    child: Pid,
    /// The CPU that both ends are held to, if any.
    cpu: Option<usize>,
    to_child: File,
    from_child: File,
}

impl Echo {
    /// Forks the echoing child, which runs wherever the scheduler puts it. Fork it before any
    /// process that should not inherit its pipes: it ends when every copy of its input's write
    /// end is closed.
    ///
    /// # Errors
    ///
    /// When the pipes or the child cannot be made.
    pub fn start() -> Result<Echo> {
        Echo::start_on(None)
    }

    /// Forks the echoing child held to this process's first CPU, where each
    /// [`roundtrip`](Echo::roundtrip) also holds the caller.
    ///
    /// Two processes that wake each other on two CPUs pay for waking an idle CPU, which on a
    /// virtual machine costs several times a whole same-CPU round trip, and the scheduler
    /// chooses one way or the other from run to run. On one CPU, the round trip is the best
    /// the system does, and stays put.
    ///
    /// # Errors
    ///
    /// As [`start`](Echo::start), and when the CPUs cannot be read or set.
    pub fn start_on_one_cpu() -> Result<Echo> {
        Echo::start_on(Some(first_cpu()?))
    }

    fn start_on(cpu: Option<usize>) -> Result<Echo> {
        let (down_read, down_write) = pipe()?;
        let (up_read, up_write) = pipe()?;
        let (to_child, from_child) = (File::from(down_write), File::from(up_read));
        let child = spawn(&[&to_child, &from_child], move || {
            cpu.is_none_or(|cpu| set_cpus(&cpu_set(&[cpu])).is_ok()) && echo(down_read, up_write)
        })?;
        Ok(Echo {
            child,
            cpu,
            to_child,
            from_child,
        })
    }

    /// One round trip: 8 bytes to the child and 8 bytes back; on the child's CPU, if it is held
    /// to one (moving there is not timed).
    ///
    /// # Errors
    ///
    /// When the child is gone, or the CPUs cannot be set.
    pub fn roundtrip(&mut self) -> Result<Duration> {
        match self.cpu {
            None => self.timed_roundtrip(),
            Some(cpu) => {
                let before = cpus()?;
                set_cpus(&cpu_set(&[cpu]))?;
                let result = self.timed_roundtrip();
                set_cpus(&before)?;
                result
            }
        }
    }

    // ANCHOR: roundtrip
    fn timed_roundtrip(&mut self) -> Result<Duration> {
        let mut reply = [0; 8];
        let start = Instant::now();
        self.to_child.write_all(&[1; 8])?;
        self.from_child.read_exact(&mut reply)?;
        Ok(start.elapsed())
    }
    // ANCHOR_END: roundtrip

    /// Closes the child's input and waits for it to end.
    ///
    /// # Errors
    ///
    /// When it ended badly.
    pub fn finish(self) -> Result<()> {
        drop(self.to_child);
        reap(self.child)
    }
}

/// The echoing child's loop: until its input ends.
fn echo(input: OwnedFd, output: OwnedFd) -> bool {
    let (mut input, mut output) = (File::from(input), File::from(output));
    let mut buffer = [0; 8];
    loop {
        match input.read(&mut buffer) {
            Ok(0) => return true,
            Ok(count) if output.write_all(&buffer[..count]).is_ok() => {}
            _ => return false,
        }
    }
}

/// How long a bare child takes to send `messages` copies of `payload` through a pipe, read by
/// the parent one message at a time into a buffer of the payload's size.
///
/// # Errors
///
/// When the pipe or the child fails, or fewer bytes arrive than were sent.
pub fn pipe_bandwidth(payload: &[u8], messages: usize) -> Result<Duration> {
    let (read_end, write_end) = pipe()?;
    bandwidth(read_end, write_end, payload, messages)
}

/// [`pipe_bandwidth`] through a Unix socket pair, which is what a `Pipe` of the runtime is,
/// instead of a pipe.
///
/// # Errors
///
/// As [`pipe_bandwidth`].
pub fn socket_bandwidth(payload: &[u8], messages: usize) -> Result<Duration> {
    let (read_end, write_end) = UnixStream::pair()?;
    bandwidth(read_end.into(), write_end.into(), payload, messages)
}

fn bandwidth(
    read_end: OwnedFd,
    write_end: OwnedFd,
    payload: &[u8],
    messages: usize,
) -> Result<Duration> {
    let mut input = File::from(read_end);
    let mut buffer = vec![0; payload.len()];
    let start = Instant::now();
    let child = spawn(&[&input], move || {
        let mut output = File::from(write_end);
        (0..messages).all(|_| output.write_all(payload).is_ok())
    })?;
    for _ in 0..messages {
        input.read_exact(&mut buffer)?;
    }
    let elapsed = start.elapsed();
    reap(child)?;
    Ok(elapsed)
}

/// Runs `work` with this thread held to its first CPU, and lets it go back after: threads it
/// starts meanwhile, and processes they fork, stay on that CPU.
///
/// # Errors
///
/// When the CPUs cannot be read or set, and as `work`.
pub fn on_one_cpu<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    let before = cpus()?;
    set_cpus(&cpu_set(&[first_cpu()?]))?;
    let outcome = work();
    set_cpus(&before)?;
    outcome
}

/// The CPUs this thread may run on.
fn cpus() -> Result<libc::cpu_set_t> {
    let mut set = cpu_set(&[]);
    // SAFETY: writes one `cpu_set_t` of the size given, which is ours.
    match unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) } {
        0 => Ok(set),
        _ => Err(std::io::Error::last_os_error().into()),
    }
}

/// The lowest-numbered CPU this thread may run on.
fn first_cpu() -> Result<usize> {
    let set = cpus()?;
    // SAFETY: `CPU_ISSET` reads the set at an index below `CPU_SETSIZE`.
    (0..libc::CPU_SETSIZE as usize)
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .ok_or_else(|| "this thread may run on no CPU".into())
}

/// A set of the CPUs `cpus`, each below `CPU_SETSIZE`.
fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: all-zero bytes are a valid, empty `cpu_set_t`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `CPU_SET` writes the set at an index below `CPU_SETSIZE`, as the callers
        // promise.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

/// Lets this thread run on the CPUs of `set` only; the kernel moves it at once if it must.
fn set_cpus(set: &libc::cpu_set_t) -> Result<()> {
    // SAFETY: reads one `cpu_set_t` of the size given.
    match unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), set) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error().into()),
    }
}
