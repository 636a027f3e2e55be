//! What the runtime knows about the process it runs in: Python's `_current_process` and
//! `_children`, one value per process.
//!
//! A forked child must not touch a lock that another thread of its parent may have held at
//! the moment of `fork`: that thread does not exist in the child, so the lock would never be
//! released. The state is therefore never reset in place. The parent builds the child's
//! state before `fork` (fresh, unlocked), and the child installs it with one atomic store,
//! leaving its copy of the parent's state untouched.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::Process;

/// The name Python gives the main program's process.
const MAIN_NAME: &str = "MainProcess";

/// Identity and children of the current process.
pub(crate) struct State {
    /// The name this process goes by (`MainProcess`, `Process-1`, ...).
    pub(crate) name: String,
    /// The process id, read when the state is installed.
    pub(crate) pid: u32,
    /// Whether this process is daemonic (then it may not start children).
    pub(crate) daemon: bool,
    /// Python's `_identity`: `[]` in the main process, `[1]` in `Process-1`, `[1, 2]` in
    /// `Process-1:2`. A child's default name extends it with the next count.
    pub(crate) identity: Vec<u64>,
    /// The parent's name and pid; `None` in the main process.
    pub(crate) parent: Option<(String, u32)>,
    /// How many `Process` values this process has created, for default names.
    counter: AtomicU64,
    /// Started children not yet known to have ended (Python's `_children`).
    children: Mutex<Vec<Process>>,
    /// This process's fork server, once started; a forked child starts its own.
    pub(crate) forkserver: Mutex<Option<crate::start::Server>>,
}

static STATE: AtomicPtr<State> = AtomicPtr::new(std::ptr::null_mut());

impl State {
    fn main() -> State {
        State::new(MAIN_NAME.to_owned(), false, Vec::new(), None)
    }

    /// The state a child starts with, built by its parent before `fork`.
    pub(crate) fn child(process: &Process, parent: &State) -> State {
        let (name, daemon) = process.meta();
        State::new(
            name,
            daemon,
            process.inner.identity.clone(),
            Some((parent.name.clone(), parent.pid)),
        )
    }

    /// The state of a child started afresh, as its start-up message describes it.
    pub(crate) fn started(
        name: String,
        daemon: bool,
        identity: Vec<u64>,
        parent: (String, u32),
    ) -> State {
        State::new(name, daemon, identity, Some(parent))
    }

    fn new(name: String, daemon: bool, identity: Vec<u64>, parent: Option<(String, u32)>) -> State {
        State {
            name,
            pid: std::process::id(),
            daemon,
            identity,
            parent,
            counter: AtomicU64::new(0),
            children: Mutex::new(Vec::new()),
            forkserver: Mutex::new(None),
        }
    }

    /// The identity of the next `Process` this process creates.
    pub(crate) fn next_identity(&self) -> Vec<u64> {
        let count = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let mut identity = self.identity.clone();
        identity.push(count);
        identity
    }

    /// The registry of started children. A poisoned lock only means a panic elsewhere; the
    /// list itself is always valid, so it is used as is.
    pub(crate) fn children(&self) -> MutexGuard<'_, Vec<Process>> {
        crate::sync::lock(&self.children)
    }
}

/// The current process's state, made for the main process on first use.
pub(crate) fn current() -> &'static State {
    let existing = STATE.load(Ordering::Acquire);
    if !existing.is_null() {
        // SAFETY: a non-null pointer in STATE always comes from `Box::into_raw` below or in
        // `install`, and is never freed, so it is valid for the rest of the program.
        return unsafe { &*existing };
    }
    let fresh = Box::into_raw(Box::new(State::main()));
    match STATE.compare_exchange(
        std::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // SAFETY: we just published `fresh`, which is leaked on purpose (see above).
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // SAFETY: `fresh` was never shared, so we still own it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: `winner` was published by another thread and is never freed.
            unsafe { &*winner }
        }
    }
}

/// Installs a forked child's state. Called once, first thing in the child, when it is the
/// only thread; the parent's copy is left as it was (and leaked), so no lock in it is used.
pub(crate) fn install(mut state: Box<State>) {
    state.pid = std::process::id();
    STATE.store(Box::into_raw(state), Ordering::Release);
}
