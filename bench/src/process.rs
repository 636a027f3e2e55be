//! `Process`: start and join, against the bare `fork` + `waitpid` of [`floor::fork_wait`].
//!
//! [`floor::fork_wait`]: crate::floor::fork_wait

use std::time::Duration;

use multiprocessing::{ExitStatus, Process};

use crate::Result;
use crate::measure::time;

/// `Process` start + join of an empty target; the `Process` is made before the clock starts.
///
/// # Errors
///
/// When the process cannot start, or does not exit with code 0.
// ANCHOR: start_join
pub fn start_join() -> Result<Duration> {
    let p = Process::new(|| ());
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
