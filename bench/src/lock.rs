//! `Lock`: acquire and release pairs, alone and with two processes taking turns.

use std::time::Duration;

use multiprocessing::{Lock, Process};

use crate::Result;
use crate::measure::time;
use crate::process::succeeded;

/// `pairs` acquire/release pairs on a lock no one else wants.
///
/// # Errors
///
/// When the lock fails.
pub fn uncontended(pairs: u64) -> Result<Duration> {
    let lock = Lock::new()?;
    let (elapsed, ()) = time(|| {
        for _ in 0..pairs {
            drop(lock.acquire()?);
        }
        Ok(())
    })?;
    Ok(elapsed)
}

/// Two processes doing `pairs` acquire/release pairs each on one lock, timed from the first
/// start to the second join; the two forks are a small part of it.
///
/// # Errors
///
/// When the lock or a process fails.
pub fn contended(pairs: u64) -> Result<Duration> {
    let lock = Lock::new()?;
    let workers: Vec<Process> = (0..2)
        .map(|_| {
            let lock = lock.clone();
            Process::new(move || -> multiprocessing::Result<()> {
                for _ in 0..pairs {
                    drop(lock.acquire()?);
                }
                Ok(())
            })
        })
        .collect();
    let (elapsed, statuses) = time(|| {
        for worker in &workers {
            worker.start()?;
        }
        let statuses: multiprocessing::Result<Vec<_>> = workers.iter().map(Process::join).collect();
        Ok(statuses?)
    })?;
    statuses.into_iter().try_for_each(succeeded)?;
    Ok(elapsed)
}
