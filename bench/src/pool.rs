//! `Pool` and `ProcessPoolExecutor`: one call's round trip, and `map` over many small calls.
//! The pools are made and warmed up by the caller; only the calls are timed.

use std::ops::Range;
use std::time::Duration;

use multiprocessing::Pool;
use multiprocessing::futures::ProcessPoolExecutor;

use crate::Result;
use crate::measure::time;

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
