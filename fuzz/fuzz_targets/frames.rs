//! Whatever bytes a broken or hostile peer writes, a pipe's reader returns whole messages and
//! then an error: never a panic, a hang, or an allocation over its limit. Each message is
//! then decoded as a typical value, which must fail cleanly too.
//!
//! Run: `cargo fuzz run frames` in `fuzz/` (see `fuzz/README.md`).

#![no_main]

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;

/// The reader's limit: a length prefix over it must be refused before any allocation.
const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let (mut reader, writer) = multiprocessing::pipe(false).expect("a socket pair");
    reader.set_max_message(LIMIT);
    let mut raw = UnixStream::from(OwnedFd::from(writer));
    // Inputs are small (libFuzzer's default is 4 KiB), well within a socket's buffer.
    raw.write_all(data).expect("the socket takes the input");
    drop(raw);
    while let Ok(message) = reader.recv_bytes() {
        assert!(message.len() <= LIMIT);
        let _ = multiprocessing::codec::decode::<(u64, String, Vec<i32>, Option<bool>)>(&message);
    }
});
