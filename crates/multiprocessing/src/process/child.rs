//! The fork itself and the child's life: Python's `Popen._launch` and `Process._bootstrap`.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid};

use super::state::{self, State};
use super::{Target, finish_children};

thread_local! {
    /// True on the thread that runs a child's target, while it runs.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    /// While a pool task runs: where the panic hook leaves its description instead of
    /// printing it, since the panic is the task's result, reported to whoever asked for it.
    static TASK_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// True while a pool task runs on this thread.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Set in a child made by [`fork`]: a copy of one thread of a parent that may have had others,
/// any of which may have held, at the moment of the fork, a lock that capturing a backtrace
/// takes (the standard library's, or the dynamic loader's), and would wait for forever.
static FORKED: AtomicBool = AtomicBool::new(false);

/// Runs a pool task: a panic becomes `Err` with its description (where, and the message),
/// and is not printed. [`exit`] inside the task still ends the process.
pub(crate) fn catch_task<R>(task: impl FnOnce() -> R) -> Result<R, String> {
    install_panic_hook();
    let outer = IN_TASK.replace(true);
    let result = panic::catch_unwind(AssertUnwindSafe(task));
    IN_TASK.set(outer);
    result.map_err(|payload| {
        if payload.is::<ExitRequest>() {
            panic::resume_unwind(payload);
        }
        TASK_PANIC
            .take()
            .unwrap_or_else(|| payload_text(payload.as_ref()).to_owned())
    })
}

/// The payload [`exit`] unwinds with, caught by the child's bootstrap.
struct ExitRequest(i32);

/// What a target's return value means for the exit code.
///
/// Python ignores a target's return value and turns an uncaught exception into exit code 1.
/// Here `()` gives 0, `Ok` gives what its value gives, and `Err` prints
/// `Process <name>:` and the error on stderr and gives 1. A panic is reported the same way.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::Process;
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Process::new(|| "x".parse::<i32>().map(drop));
/// p.start()?;
/// assert_eq!(p.join()?.exitcode(), 1); // stderr: Process Process-1: / Error: ParseIntError ...
/// # Ok(())
/// # }
/// ```
pub trait Outcome {
    /// The exit code this value stands for, after reporting it if it is an error.
    fn exit_code(self) -> i32;
}

impl Outcome for () {
    fn exit_code(self) -> i32 {
        0
    }
}

/// Names the type `!` on stable Rust, through the return type of a function pointer.
/// Public only so that the impl below may use it; this module does not export it.
pub trait Returns {
    /// What the function returns.
    type Output;
}

impl<T> Returns for fn() -> T {
    /// `T`.
    type Output = T;
}

/// `!`, the type of a closure that never returns, such as `|| exit(1)`.
type Never = <fn() -> ! as Returns>::Output;

impl Outcome for Never {
    fn exit_code(self) -> i32 {
        self
    }
}

impl<T: Outcome, E: fmt::Debug> Outcome for Result<T, E> {
    fn exit_code(self) -> i32 {
        match self {
            Ok(value) => value.exit_code(),
            Err(error) => {
                report(&format!("Error: {error:?}\n"));
                1
            }
        }
    }
}

/// Ends the current process with `code`: Python's `sys.exit(code)`.
///
/// In a child's target, it unwinds to the runtime (running destructors on the way, as
/// `sys.exit` runs `finally` blocks), which waits for the child's own children and exits
/// with `code`. Elsewhere, including the main program, it is `std::process::exit`, and the
/// runtime's exit handler still terminates daemonic children and joins the others.
///
/// The operating system keeps only the low 8 bits: use codes from 0 to 255.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::{exit, Process};
///
/// # fn main() -> multiprocessing::Result<()> {
/// let p = Process::new(|| exit(1));
/// p.start()?;
/// assert_eq!(p.join()?.exitcode(), 1);
/// # Ok(())
/// # }
/// ```
pub fn exit(code: i32) -> ! {
    if IN_TARGET.get() {
        panic::resume_unwind(Box::new(ExitRequest(code)))
    }
    std::process::exit(code)
}

/// Forks a child that runs `target` and never returns; returns the child's pid.
///
/// On error nothing was started and `target` is still in place for another try.
pub(super) fn fork(target: &mut Option<Target>, child_state: Box<State>) -> nix::Result<Pid> {
    install_panic_hook();
    install_exit_handler();
    // Hold the standard streams' locks across fork, so that no other thread of ours is in
    // the middle of writing (holding them) when the child is made. Flush what is buffered
    // first, or the child would print it a second time.
    let mut stdout = io::stdout().lock();
    let stderr = io::stderr().lock();
    let _ = stdout.flush();
    // SAFETY: the child starts with only this thread. It must not touch anything another
    // thread may have held locked at the moment of the fork. It uses: the stdout/stderr
    // locks (held by this thread, so free for it), the allocator (glibc makes malloc safe
    // across fork), and its own freshly built `State` (allocated here, never locked); its
    // panics are reported without a backtrace, whose capture takes locks (`FORKED`). It
    // never returns from this function: it ends with `_exit`, so no parent code runs in it.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => {
            target.take();
            Ok(child)
        }
        ForkResult::Child => {
            FORKED.store(true, Ordering::Relaxed);
            drop(stderr);
            drop(stdout);
            let target = target.take().expect("the target is present until the fork");
            let parent = child_state.parent.as_ref().map_or(0, |(_, pid)| *pid);
            bootstrap(target, child_state, parent)
        }
    }
}

/// The child's whole life: become the new process, run the target, wait for our own
/// children, flush, and `_exit` without running the parent's exit handlers. A daemonic child
/// dies with the process `watch`, its parent (for a fork server's child, the server).
pub(super) fn bootstrap(target: Target, child_state: Box<State>, watch: u32) -> ! {
    install_panic_hook();
    let daemon = child_state.daemon.then_some(watch);
    state::install(child_state);
    if let Some(parent) = daemon {
        die_with_parent(parent);
    }
    redirect_stdin();
    log::info!("child process calling self.run()");
    IN_TARGET.set(true);
    let result = panic::catch_unwind(AssertUnwindSafe(target));
    IN_TARGET.set(false);
    let code = match result {
        Ok(code) => code,
        Err(payload) => match payload.downcast_ref::<ExitRequest>() {
            Some(ExitRequest(code)) => *code,
            // The panic hook has already reported it.
            None => 1,
        },
    };
    finish_children();
    log::info!("process exiting with exitcode {code}");
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: `_exit` ends the process at once; it is the only way out of a forked child
    // that does not run the parent's `atexit` handlers and destructors a second time. (Neither
    // the standard library nor nix wraps it.)
    unsafe { libc::_exit(code) }
}

/// Makes a daemonic child end with its parent, even a parent killed by `SIGKILL`, which runs
/// no exit handler: Linux then sends the child `SIGKILL` too. Strictly, the signal comes when
/// the *thread* that started the child ends; see [`Process::set_daemon`](super::Process::set_daemon).
///
/// See also: [`PR_SET_PDEATHSIG`](https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html).
fn die_with_parent(parent: u32) {
    // It fails only for an invalid signal; SIGKILL is valid.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    // A parent that died before the call sent nothing: then this process has been adopted.
    if nix::unistd::getppid().as_raw().unsigned_abs() != parent {
        let _ = nix::sys::signal::raise(Signal::SIGKILL);
    }
}

/// Points the child's stdin at `/dev/null`, as Python does, so that children do not compete
/// with the parent for its input.
fn redirect_stdin() {
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // fd 0 is replaced atomically; if that fails, the child keeps the parent's stdin.
        let _ = nix::unistd::dup2_stdin(&null);
    }
}

/// Writes `Process <name>:` and `body` to stderr in one write, as Python prints
/// `Process <name>:` before a child's traceback.
fn report(body: &str) {
    let name = state::current().name.clone();
    let text = format!("Process {name}:\n{body}");
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// Installs, once, a panic hook that reports a panic in a child's target the way Python
/// reports an exception, and leaves every other panic to the hook that was there before.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TASK.get() {
                TASK_PANIC.set(Some(describe_panic(info).trim_end().to_owned()));
            } else if IN_TARGET.get() {
                report(&describe_panic(info));
            } else if FORKED.load(Ordering::Relaxed) {
                // The default hook would capture a backtrace too.
                let thread = std::thread::current();
                let name = thread.name().unwrap_or("<unnamed>");
                let text = format!("thread '{name}' {}", describe_panic(info));
                let _ = io::stderr().lock().write_all(text.as_bytes());
            } else {
                previous(info);
            }
        }));
    });
}

/// `panicked at src/main.rs:3:5:`, the message, and a backtrace if `RUST_BACKTRACE` asks,
/// except in a child made by [`fork`] (see [`FORKED`]).
fn describe_panic(info: &PanicHookInfo<'_>) -> String {
    let mut text = String::from("panicked");
    if let Some(location) = info.location() {
        text.push_str(&format!(" at {location}"));
    }
    text.push_str(&format!(":\n{}\n", payload_text(info.payload())));
    if FORKED.load(Ordering::Relaxed) {
        return text;
    }
    let backtrace = Backtrace::capture();
    if backtrace.status() == BacktraceStatus::Captured {
        text.push_str(&format!("stack backtrace:\n{backtrace}\n"));
    }
    text
}

fn payload_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "Box<dyn Any>"
    }
}

/// Registers, once, the handler that runs when this program exits normally.
pub(super) fn install_exit_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `at_exit` is a plain `extern "C"` function that never unwinds.
        unsafe { libc::atexit(at_exit) };
    });
}

/// Python's `_exit_function`: terminate daemonic children, join the others. Also runs in a
/// child that calls `std::process::exit`, for that child's own children.
extern "C" fn at_exit() {
    let _ = panic::catch_unwind(finish_children);
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::{ExitStatus, Process};

    /// Starts `process` and waits for it, killing it if it has not ended within a minute.
    fn run(process: &Process) -> Option<ExitStatus> {
        process.start().unwrap();
        let status = process.join_timeout(Duration::from_secs(60)).unwrap();
        if status.is_none() {
            let _ = process.kill();
            let _ = process.join();
        }
        status
    }

    #[test]
    fn a_child_reads_its_stdin_from_dev_null() {
        let p = Process::new(|| {
            let stdin = std::fs::read_link("/proc/self/fd/0").ok();
            assert_eq!(stdin.as_deref(), Some(Path::new("/dev/null")));
        });
        assert_eq!(run(&p), Some(ExitStatus::Exited(0)));
    }

    #[test]
    fn a_daemonic_child_asks_for_sigkill_when_its_parent_dies() {
        let p = Process::builder().daemon(true).target(|| {
            assert_eq!(prctl::get_pdeathsig(), Ok(Some(Signal::SIGKILL)));
        });
        assert_eq!(run(&p), Some(ExitStatus::Exited(0)));
        let p = Process::new(|| assert_eq!(prctl::get_pdeathsig(), Ok(None)));
        assert_eq!(run(&p), Some(ExitStatus::Exited(0)));
    }
}
