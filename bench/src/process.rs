//! `Process`: start and join, by each start method, against the bare `fork` + `waitpid` of
//! [`floor::fork_wait`] (`fork`, and `forkserver`, whose server forks each child) or the bare
//! `posix_spawn` + `waitpid` of [`floor::spawn_wait`] (`spawn`).
//!
//! [`floor::fork_wait`]: crate::floor::fork_wait
//! [`floor::spawn_wait`]: crate::floor::spawn_wait

use std::time::Duration;

use multiprocessing::{ExitStatus, StartMethod, get_context};

use crate::Result;
use crate::measure::time;

/// The target of every start: a plain `fn` that does nothing, which any start method can run.
fn empty(_: ()) {}

/// `Process` start + join of an empty `fn` by `method`; the `Process` is made before the clock
/// starts.
///
/// # Errors
///
/// When the process cannot start, or does not exit with code 0.
// ANCHOR: start_join
pub fn start_join(method: StartMethod) -> Result<Duration> {
    let p = get_context(method).process(empty, ())?;
    let (elapsed, status) = time(|| {
        p.start()?;
        Ok(p.join()?)
    })?;
    succeeded(status)?;
    Ok(elapsed)
}
// ANCHOR_END: start_join

/// An error unless the process exited with code 0.
///
/// # Errors
///
/// When it did not, naming how it ended.
pub fn succeeded(status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("a child process ended with exit code {}", status.exitcode()).into())
    }
}
