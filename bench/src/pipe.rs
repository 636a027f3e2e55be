//! `Pipe`: one producer process calling `send_bytes`, the parent calling `recv_bytes`. Each run
//! makes a new pipe and times from the producer's start to the last message read.

use std::time::Duration;

use multiprocessing::{Process, pipe};

use crate::Result;
use crate::measure::time;
use crate::process::succeeded;

/// How long one producer takes to send `count` copies of `payload` to the parent.
///
/// # Errors
///
/// When the pipe or the producer fails, or a message arrives with another size.
// ANCHOR: bytes
pub fn bytes(payload: &[u8], count: u64) -> Result<Duration> {
    let (mut reader, mut writer) = pipe(false)?;
    let producer = Process::new({
        let payload = payload.to_vec();
        move || -> multiprocessing::Result<()> {
            for _ in 0..count {
                writer.send_bytes(&payload)?;
            }
            Ok(())
        }
    });
    let (elapsed, ()) = time(|| {
        producer.start()?;
        for _ in 0..count {
            if reader.recv_bytes()?.len() != payload.len() {
                return Err("a message arrived with another size".into());
            }
        }
        Ok(())
    })?;
    succeeded(producer.join()?)?;
    Ok(elapsed)
}
// ANCHOR_END: bytes
