//! Runs a program under Open MPI's `mpirun`, as the tests of MPI programs do: under a deadline
//! that kills `mpirun` and every rank, and checking that none is left afterwards.
//!
//! `mpirun` puts each rank in a process group of its own, so killing its group would leave
//! the ranks running. It is started in a session of its own instead (`setsid`), which its
//! ranks stay in: the session is what gets killed, and what must be empty at the end.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::workspace;

/// What Open MPI needs to run here: as root (CI's user), and with more ranks than cores
/// (4 ranks on 2 cores).
pub const OPEN_MPI_ENV: [(&str, &str); 3] = [
    ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
    ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
    ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
];

/// How long the ranks of a finished `mpirun` get to be reaped, and its pipes to close.
const GRACE: Duration = Duration::from_secs(10);

/// What happened when `mpirun` ran.
#[derive(Debug)]
pub struct MpiRun {
    /// How `mpirun` ended.
    pub status: ExitStatus,
    /// What the ranks printed on stdout, as `mpirun` forwarded it.
    pub stdout: String,
    /// What the ranks and `mpirun` printed on stderr.
    pub stderr: String,
    /// What went wrong around the run: the deadline, processes left behind, pipes left open.
    pub problems: Vec<String>,
}

/// Runs `mpirun -np <ranks> <program> <args>` from the workspace root, with
/// [`OPEN_MPI_ENV`] and `env`, and without the variables that change what Rust programs print
/// (`RUST_BACKTRACE`, `RUST_LOG`). Past `deadline` it kills `mpirun` and its ranks and says
/// so in [`MpiRun::problems`]; the deadline only stops a hang, it measures nothing.
///
/// # Panics
///
/// When `mpirun` cannot be started (is Open MPI installed?).
pub fn mpirun(
    program: &Path,
    ranks: usize,
    args: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> MpiRun {
    let mut command = Command::new("mpirun");
    command
        .arg("-np")
        .arg(ranks.to_string())
        .arg(program)
        .args(args)
        .current_dir(workspace())
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .envs(OPEN_MPI_ENV)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and makes one system call,
    // setsid, which is async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start mpirun (is Open MPI installed?): {e}"));
    let session = Pid::from_raw(child.id().try_into().expect("a pid fits in pid_t"));
    let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
    let (sender, exit) = mpsc::channel();
    thread::spawn(move || {
        let _ = sender.send(child.wait());
    });

    let mut problems = Vec::new();
    let status = match exit.recv_timeout(deadline) {
        Ok(status) => status,
        Err(_) => {
            kill_session(session);
            problems.push(format!(
                "still running after {deadline:?}; killed mpirun and its ranks"
            ));
            exit.recv().expect("the waiting thread sends the status")
        }
    };
    let status = status.unwrap_or_else(|e| panic!("cannot wait for mpirun: {e}"));
    problems.extend(leftovers(session));
    let mut collect =
        |name: &str, pipe: Receiver<io::Result<Vec<u8>>>| match pipe.recv_timeout(GRACE) {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Err(e)) => {
                problems.push(format!("cannot read {name}: {e}"));
                String::new()
            }
            Err(_) => {
                problems.push(format!("{name} is still open {GRACE:?} after mpirun ended"));
                String::new()
            }
        };
    MpiRun {
        stdout: collect("stdout", stdout),
        stderr: collect("stderr", stderr),
        status,
        problems,
    }
}

/// Reads `pipe` to its end on another thread.
fn read_in_background(mut pipe: impl Read + Send + 'static) -> Receiver<io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = sender.send(pipe.read_to_end(&mut bytes).map(|_| bytes));
    });
    receiver
}

/// What is left of `session` once `mpirun` has exited, after [`GRACE`] for the ranks it
/// killed to be reaped; those left are killed, and named.
fn leftovers(session: Pid) -> Option<String> {
    let deadline = Instant::now() + GRACE;
    loop {
        let members = session_members(session);
        if members.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            kill_session(session);
            return Some(format!(
                "left processes in mpirun's session (running, or zombies nobody reaped), now \
                 killed: [{}]",
                members.join(", ")
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGKILL to every process in `session`.
fn kill_session(session: Pid) {
    for pid in session_pids(session) {
        let _ = kill(pid, Signal::SIGKILL);
    }
}

/// The processes of `session`, as `pid name (state)`, zombies left out once their parent is
/// `init`, which reaps them.
fn session_members(session: Pid) -> Vec<String> {
    stats()
        .filter(|stat| stat.session == session.as_raw())
        .filter(|stat| !(stat.state == 'Z' && stat.parent == 1))
        .map(|stat| format!("{} {} ({})", stat.pid, stat.name, stat.state))
        .collect()
}

fn session_pids(session: Pid) -> Vec<Pid> {
    stats()
        .filter(|stat| stat.session == session.as_raw())
        .map(|stat| Pid::from_raw(stat.pid))
        .collect()
}

/// A process, as `/proc/<pid>/stat` shows it.
struct Stat {
    pid: i32,
    name: String,
    state: char,
    parent: i32,
    session: i32,
}

/// Every process, from `/proc/<pid>/stat` (`pid (name) state ppid pgrp session ...`).
fn stats() -> impl Iterator<Item = Stat> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (head, tail) = stat.rsplit_once(") ")?;
            let (_, name) = head.split_once(" (")?;
            let mut fields = tail.split(' ');
            let state = fields.next()?.chars().next()?;
            let parent = fields.next()?.parse().ok()?;
            let session = fields.nth(1)?.parse().ok()?;
            Some(Stat {
                pid,
                name: name.to_owned(),
                state,
                parent,
                session,
            })
        })
}
