//! The stream that both lock lessons write to, `multiprocessing_lock.py` and
//! `multiprocessing_nolock.py`: a slow one, so that two writers can meet inside a line.
//!
//! Book: `book/src/lock.md`. Run: `cargo run -p lesson-lock`,
//! `cargo run -p lesson-lock --bin nolock`.
//!
//! Notice: `write_all` calls `write` until the text is through, so the text goes out a word at
//! a time, with a pause after each word, and another writer can come in between.

use std::io::{self, Write};
use std::thread::sleep;
use std::time::Duration;

/// How long the stream pauses after each word.
const PAUSE: Duration = Duration::from_millis(10);

// ANCHOR: slow
/// A stream that takes one word per `write`, passes it on at once, then pauses: a long
/// text on a busy stream, made visible.
pub struct Slow<W>(pub W);

impl<W: Write> Write for Slow<W> {
    fn write(&mut self, text: &[u8]) -> io::Result<usize> {
        let word = text
            .iter()
            .position(|&byte| byte == b' ')
            .map_or(text.len(), |space| space + 1);
        self.0.write_all(&text[..word])?;
        self.0.flush()?;
        sleep(PAUSE);
        Ok(word)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
// ANCHOR_END: slow
