//! Ending the whole job when a rank panics outside a task, so that no rank waits for ever for
//! one that is gone: `MPI_Abort` from a panic hook.

use std::cell::Cell;
use std::panic;
use std::sync::atomic::{AtomicBool, Ordering};

use mpi::topology::SimpleCommunicator;
use mpi::traits::Communicator;

/// The exit code a job aborted by a panic ends with: Rust's own for a panic.
const PANIC_CODE: i32 = 101;

/// Whether MPI is up: between `init` and finalizing, when `MPI_Abort` may be called.
static LIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// True on a thread while it runs a task for rank 0.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook: a panic on any thread, outside a task, is reported as Rust reports it,
/// then aborts every rank of the job. Call it before anything else sets a hook (the runtime
/// sets its own when it first runs a task, and leaves to this one every panic that is not a
/// task's).
pub(crate) fn install() {
    LIVE.store(true, Ordering::SeqCst);
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        previous(info);
        if !IN_TASK.get() && LIVE.load(Ordering::SeqCst) {
            eprintln!("a rank panicked outside a task: ending the whole job");
            SimpleCommunicator::world().abort(PANIC_CODE);
        }
    }));
}

/// From now on a panic is an ordinary one: MPI is about to be finalized.
pub(crate) fn finish() {
    LIVE.store(false, Ordering::SeqCst);
}

/// Runs `task` with the hook told that a panic there is the task's own, to be caught.
pub(crate) fn in_task<T>(task: impl FnOnce() -> T) -> T {
    let outer = IN_TASK.replace(true);
    let result = task();
    IN_TASK.set(outer);
    result
}
