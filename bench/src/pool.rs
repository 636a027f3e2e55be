//! `Pool` and `ProcessPoolExecutor`: one call's round trip, `map` over many small calls and
//! over large payloads, and the memory `imap` holds. The pools are made and warmed up by the
//! caller; only the calls are timed.

use std::ops::Range;
use std::time::Duration;

use multiprocessing::futures::ProcessPoolExecutor;
use multiprocessing::{Connection, Pool, StartMethod, get_context, pipe};

use crate::Result;
use crate::measure::{self, time};
use crate::process::succeeded;

/// The task of every pool figure: as small as a call gets, so the figures time the pool.
pub fn square(x: u64) -> u64 {
    x * x
}

/// An error unless `results` are the squares of `inputs`, so that no figure counts work that
/// was skipped or lost.
fn check_squares(results: &[u64], inputs: Range<u64>) -> Result<()> {
    if results.iter().copied().eq(inputs.clone().map(square)) {
        Ok(())
    } else {
        Err(format!("the squares of {inputs:?} came back wrong").into())
    }
}

/// One `apply_async(square, 7).get()` round trip.
///
/// # Errors
///
/// When the pool fails.
// ANCHOR: apply_async
pub fn apply_async_get(pool: &Pool) -> Result<Duration> {
    let (elapsed, result) = time(|| Ok(pool.apply_async(square, 7)?.get()?))?;
    check_squares(&[result], 7..8)?;
    Ok(elapsed)
}
// ANCHOR_END: apply_async

/// One `submit(square, 7).result()` round trip.
///
/// # Errors
///
/// When the executor fails.
pub fn submit_result(executor: &ProcessPoolExecutor) -> Result<Duration> {
    let (elapsed, result) = time(|| Ok(*executor.submit(square, 7)?.result()?))?;
    check_squares(&[result], 7..8)?;
    Ok(elapsed)
}

/// `pool.map(square, 0..n)`, in the default chunk size.
///
/// # Errors
///
/// When the pool fails.
pub fn map_default(pool: &Pool, n: u64) -> Result<Duration> {
    let (elapsed, results) = time(|| Ok(pool.map(square, 0..n)?))?;
    check_squares(&results, 0..n)?;
    Ok(elapsed)
}

/// `pool.map` of `square` over `0..n` in chunks of 1.
///
/// # Errors
///
/// When the pool fails.
pub fn map_chunksize1(pool: &Pool, n: u64) -> Result<Duration> {
    let (elapsed, results) = time(|| Ok(pool.map_chunked(square, 0..n, 1)?))?;
    check_squares(&results, 0..n)?;
    Ok(elapsed)
}

/// `executor.map(square, 0..n)`, read to the end; its chunk size is 1 unless set.
///
/// # Errors
///
/// When the executor fails.
pub fn executor_map(executor: &ProcessPoolExecutor, n: u64) -> Result<Duration> {
    let (elapsed, results) = time(|| {
        let results: multiprocessing::Result<Vec<u64>> = executor.map(square, 0..n).collect();
        Ok(results?)
    })?;
    check_squares(&results, 0..n)?;
    Ok(elapsed)
}

/// The task of the throughput figures: a payload goes to a worker and comes back as it is.
pub fn identity(payload: Vec<u8>) -> Vec<u8> {
    payload
}

/// `pool.map(identity, ...)` over `count` copies of `payload`, in the default chunk size; the
/// copies are made before the clock starts.
///
/// # Errors
///
/// When the pool fails, or a payload comes back changed.
pub fn map_identity(pool: &Pool, payload: &[u8], count: usize) -> Result<Duration> {
    let inputs = vec![payload.to_vec(); count];
    let (elapsed, results) = time(|| Ok(pool.map(identity, inputs)?))?;
    if results.len() == count && results.iter().all(|result| result == payload) {
        Ok(elapsed)
    } else {
        Err("the payloads came back changed".into())
    }
}

/// The peak resident memory, in MiB, of a process that reads the squares of `0..count` from
/// `Pool::imap` as they come: a child started afresh by `spawn`, so that nothing this process
/// did before counts. The pool's workers are processes of their own, and do not count either.
///
/// # Errors
///
/// When the child cannot be started or fails, or sends no figure back.
pub fn imap_peak_rss(count: u64) -> Result<f64> {
    let (mut reader, writer) = pipe(false)?;
    let child = get_context(StartMethod::Spawn).process(imap_then_report, (count, writer))?;
    child.start()?;
    succeeded(child.join()?)?;
    Ok(reader.recv()?)
}

/// The child of [`imap_peak_rss`]: reads every result of the `imap`, then sends back its
/// `VmHWM`, the most memory it has held at once.
// ANCHOR: imap
fn imap_then_report((count, mut report): (u64, Connection)) -> Result<()> {
    let pool = Pool::new(2)?;
    for (input, result) in (0..count).zip(pool.imap(square, 0..count)) {
        check_squares(&[result?], input..input + 1)?;
    }
    let kib: f64 = measure::status("VmHWM")?
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    report.send(&(kib / 1024.0))?;
    Ok(())
}
// ANCHOR_END: imap
