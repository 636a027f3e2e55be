//! `Queue`: one producer process, the parent reading. Each run makes a new queue and times
//! from the producer's start to the last message read.

use std::time::Duration;

use multiprocessing::{Process, Queue};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Result;
use crate::measure::time;
use crate::process::succeeded;

/// How long one producer takes to send `0..count` as `u64`s to the parent.
///
/// # Errors
///
/// When the queue or the producer fails.
pub fn ints(count: u64) -> Result<Duration> {
    transfer(count, |q: &Queue<u64>, i| q.put(i))
}

/// How long one producer takes to send `count` copies of `payload` (a `Vec<u8>`).
///
/// # Errors
///
/// When the queue or the producer fails.
pub fn bytes(payload: &[u8], count: u64) -> Result<Duration> {
    let payload = payload.to_vec();
    transfer(count, move |q: &Queue<Vec<u8>>, _| q.put(&payload))
}

/// Times a producer that calls `put(q, i)` for each `i` in `0..count` while the parent gets
/// `count` messages.
fn transfer<T, F>(count: u64, put: F) -> Result<Duration>
where
    T: Serialize + DeserializeOwned + 'static,
    F: Fn(&Queue<T>, u64) -> multiprocessing::Result<()> + Send + 'static,
{
    let q: Queue<T> = Queue::new()?;
    let producer = Process::new({
        let q = q.clone();
        move || -> multiprocessing::Result<()> {
            for i in 0..count {
                put(&q, i)?;
            }
            Ok(())
        }
    });
    let (elapsed, ()) = time(|| {
        producer.start()?;
        for _ in 0..count {
            q.get()?;
        }
        Ok(())
    })?;
    succeeded(producer.join()?)?;
    Ok(elapsed)
}
