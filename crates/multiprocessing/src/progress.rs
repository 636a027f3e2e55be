//! Watching a long map: what Python gets from `tqdm(pool.imap(f, xs), total=len(xs))` or
//! mpire's `WorkerPool.map(..., progress_bar=True)`.
//!
//! [`ProgressExt::progress`] wraps any iterator, [`Pool::imap`](crate::Pool::imap),
//! [`Pool::imap_unordered`](crate::Pool::imap_unordered) and the executors'
//! [`map`](crate::futures::Map) included, and reports a [`Progress`] (items done, out of how
//! many, time taken, rate, time left) each time an item comes out. For an eager
//! [`Pool::map`](crate::Pool::map), collect an `imap` instead: the results come back the same,
//! in input order, and the reports come as they are read.
//!
//! The callback runs on the thread that reads the iterator, between two items: it delays the
//! reader, never a worker or the pool's own threads. A callback that panics is logged at
//! error level (as a result's callback is) and not called again; the iteration goes on and
//! loses no result.
//!
//! With the cargo feature `progress-bar`, `ProgressExt::progress_bar` draws the progress as a
//! bar on stderr with `indicatif`, only when stderr is a terminal: piped or redirected, a
//! program's output is exactly what it would be without the bar.

use std::fmt;
use std::time::{Duration, Instant};

use crate::process::catch_task;

/// How far an iteration has come: a snapshot handed to a progress callback.
///
/// Its [`Display`](fmt::Display) is tqdm's: `250/1000 [00:05<00:15, 50.00 items/s]`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use multiprocessing::progress::Progress;
///
/// let progress = Progress::new(250, Some(1000), Duration::from_secs(5));
/// assert_eq!(progress.rate(), 50.0);
/// assert_eq!(progress.remaining(), Some(Duration::from_secs(15)));
/// assert_eq!(progress.to_string(), "250/1000 [00:05<00:15, 50.00 items/s]");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    done: usize,
    total: Option<usize>,
    elapsed: Duration,
}

impl Progress {
    /// `done` items of `total` (if known) after `elapsed`.
    pub fn new(done: usize, total: Option<usize>, elapsed: Duration) -> Progress {
        Progress {
            done,
            total,
            elapsed,
        }
    }

    /// How many items have come out.
    pub fn done(&self) -> usize {
        self.done
    }

    /// How many items are expected, if known.
    pub fn total(&self) -> Option<usize> {
        self.total
    }

    /// The time since the first item was asked for.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Items a second, on average since the start; 0 before any time has passed.
    pub fn rate(&self) -> f64 {
        match self.elapsed.as_secs_f64() {
            0.0 => 0.0,
            seconds => self.done as f64 / seconds,
        }
    }

    /// The time left at the average rate so far: `None` without a total or before the first
    /// item, zero once the total is reached.
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.total?.saturating_sub(self.done);
        match (left, self.done) {
            (0, _) => Some(Duration::ZERO),
            (_, 0) => None,
            (left, done) => Some(self.elapsed.mul_f64(left as f64 / done as f64)),
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let elapsed = Clock(self.elapsed);
        match self.total {
            Some(total) => {
                let left = match self.remaining() {
                    Some(left) => Clock(left).to_string(),
                    None => "?".to_owned(),
                };
                write!(f, "{}/{total} [{elapsed}<{left}, ", self.done)?;
            }
            None => write!(f, "{} [{elapsed}, ", self.done)?,
        }
        write!(f, "{:.2} items/s]", self.rate())
    }
}

/// A duration as tqdm shows one: `mm:ss`, or `h:mm:ss` from an hour on.
struct Clock(Duration);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs_f64().round() as u64;
        let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
        if hours > 0 {
            write!(f, "{hours}:{minutes:02}:{seconds:02}")
        } else {
            write!(f, "{minutes:02}:{seconds:02}")
        }
    }
}

/// What watches an iteration: told when it starts, after each item, and when it ends.
///
/// Every `FnMut(&Progress)` is one, called after each item; a type of its own (a progress
/// bar, a log line every tenth of the way) also gets [`start`](Watch::start) and
/// [`finish`](Watch::finish).
///
/// # Example
///
/// ```
/// use multiprocessing::progress::{Progress, ProgressExt, Watch};
///
/// /// Says when each tenth of the items is done.
/// struct Tenths(Vec<usize>);
///
/// impl Watch for Tenths {
///     fn item(&mut self, progress: &Progress) {
///         let total = progress.total().unwrap_or(0).max(1);
///         if progress.done() * 10 % total == 0 {
///             self.0.push(progress.done() * 10 / total);
///         }
///     }
/// }
///
/// let mut squares = (0..20).map(|x| x * x).progress_with(20, Tenths(Vec::new()));
/// assert_eq!(squares.by_ref().count(), 20);
/// assert_eq!(squares.watch().unwrap().0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
/// ```
pub trait Watch {
    /// Before the first item is waited for (`done` is 0).
    fn start(&mut self, progress: &Progress) {
        let _ = progress;
    }

    /// After each item, before the reader gets it.
    fn item(&mut self, progress: &Progress);

    /// Once, when the iterator has run out; not when it is dropped before that.
    fn finish(&mut self, progress: &Progress) {
        let _ = progress;
    }
}

impl<F: FnMut(&Progress)> Watch for F {
    fn item(&mut self, progress: &Progress) {
        self(progress)
    }
}

/// Progress reports for any iterator: `.progress(total, callback)`.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::Pool;
/// use multiprocessing::progress::ProgressExt;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let pool = Pool::new(4)?;
/// let inputs: Vec<u64> = (0..1000).collect();
/// // Pool::map, with a report after each result.
/// let squares: Vec<u64> = pool
///     .imap_chunked(square, inputs, 10)
///     .progress(1000, |progress| eprintln!("{progress}"))
///     .collect::<multiprocessing::Result<_>>()?;
/// assert_eq!(squares[999], 998_001);
/// # Ok(())
/// # }
/// ```
///
/// The lesson `lesson-executor` (`--bin threads-vs-processes`) shows a bar.
pub trait ProgressExt: Iterator + Sized {
    /// Calls `callback` with a [`Progress`] after each item, before the reader gets it.
    /// `total` is how many items are expected (`None`: unknown); when it is `None` and the
    /// iterator knows its exact length, that is the total.
    ///
    /// A callback that panics is logged at error level and not called again; the items go
    /// on coming.
    fn progress<F: FnMut(&Progress)>(
        self,
        total: impl Into<Option<usize>>,
        callback: F,
    ) -> WithProgress<Self, F> {
        self.progress_with(total, callback)
    }

    /// As [`progress`](ProgressExt::progress), told also when the iteration starts and ends.
    fn progress_with<W: Watch>(
        self,
        total: impl Into<Option<usize>>,
        watch: W,
    ) -> WithProgress<Self, W> {
        let total = total.into().or_else(|| match self.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(upper),
            _ => None,
        });
        WithProgress {
            inner: self,
            watch: Some(watch),
            total,
            done: 0,
            started: None,
            finished: false,
        }
    }

    /// As [`progress`](ProgressExt::progress), drawn as a [`Bar`] on stderr when stderr is a
    /// terminal; otherwise it draws nothing.
    #[cfg(feature = "progress-bar")]
    fn progress_bar(self, total: impl Into<Option<usize>>) -> WithProgress<Self, Bar> {
        self.progress_with(total, Bar::new())
    }
}

impl<I: Iterator> ProgressExt for I {}

/// The iterator [`ProgressExt::progress`] returns: the same items, reported as they come out.
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct WithProgress<I, W> {
    inner: I,
    /// `None` once it has panicked.
    watch: Option<W>,
    total: Option<usize>,
    done: usize,
    started: Option<Instant>,
    finished: bool,
}

impl<I, W: Watch> WithProgress<I, W> {
    /// The progress so far.
    pub fn snapshot(&self) -> Progress {
        let elapsed = self
            .started
            .map(|start| start.elapsed())
            .unwrap_or_default();
        Progress::new(self.done, self.total, elapsed)
    }

    /// What is watching, unless it panicked.
    pub fn watch(&self) -> Option<&W> {
        self.watch.as_ref()
    }

    /// Calls `tell` on the watch, unless it panicked before; a panic now is logged, and it is
    /// called no more.
    fn tell(&mut self, tell: fn(&mut W, &Progress)) {
        let progress = self.snapshot();
        let Some(watch) = &mut self.watch else {
            return;
        };
        if let Err(message) = catch_task(|| tell(watch, &progress)) {
            log::error!("exception calling progress callback: {message}");
            self.watch = None;
        }
    }
}

impl<I: Iterator, W: Watch> Iterator for WithProgress<I, W> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if self.started.is_none() {
            self.started = Some(Instant::now());
            self.tell(W::start);
        }
        let item = self.inner.next();
        if item.is_some() {
            self.done += 1;
            self.tell(W::item);
        } else if !self.finished {
            self.finished = true;
            self.tell(W::finish);
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A progress bar on stderr, drawn with `indicatif` when stderr is a terminal: a
/// [`Watch`] for [`ProgressExt::progress_with`], or `.progress_bar(total)` for short.
///
/// When stderr is not a terminal (piped to a file, or read by a test), it draws nothing, so a
/// program's output is the same with the bar as without. It needs the cargo feature
/// `progress-bar`.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::futures::ProcessPoolExecutor;
/// use multiprocessing::progress::ProgressExt;
///
/// fn is_prime(n: u64) -> bool {
///     n > 1 && (2..n).take_while(|i| i * i <= n).all(|i| n % i != 0)
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ProcessPoolExecutor::new(4)?;
/// let primes: Vec<bool> = executor
///     .map(is_prime, 1..=1000)
///     .progress_bar(1000)
///     .collect::<multiprocessing::Result<_>>()?;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "progress-bar")]
#[derive(Debug)]
pub struct Bar {
    /// `None` when stderr is not a terminal, or until the iteration starts.
    bar: Option<indicatif::ProgressBar>,
    drawn: bool,
}

#[cfg(feature = "progress-bar")]
impl Bar {
    /// A bar, drawn only if stderr is a terminal now.
    pub fn new() -> Bar {
        use std::io::IsTerminal;
        Bar {
            bar: None,
            drawn: std::io::stderr().is_terminal(),
        }
    }

    /// Whether it draws: whether stderr was a terminal when it was made.
    pub fn is_drawn(&self) -> bool {
        self.drawn
    }
}

#[cfg(feature = "progress-bar")]
impl Default for Bar {
    fn default() -> Bar {
        Bar::new()
    }
}

#[cfg(feature = "progress-bar")]
impl Watch for Bar {
    fn start(&mut self, progress: &Progress) {
        use indicatif::{ProgressBar, ProgressStyle};
        if !self.drawn {
            return;
        }
        let (bar, template) = match progress.total() {
            Some(total) => (ProgressBar::new(total as u64), "{bar:40} {msg}"),
            None => (ProgressBar::new_spinner(), "{spinner} {msg}"),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("#>-"));
        }
        bar.set_message(progress.to_string());
        self.bar = Some(bar);
    }

    fn item(&mut self, progress: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_position(progress.done() as u64);
            bar.set_message(progress.to_string());
        }
    }

    fn finish(&mut self, progress: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_message(progress.to_string());
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_tqdm_shows_them() {
        assert_eq!(Clock(Duration::from_secs(0)).to_string(), "00:00");
        assert_eq!(Clock(Duration::from_secs(75)).to_string(), "01:15");
        assert_eq!(Clock(Duration::from_secs(3725)).to_string(), "1:02:05");
    }

    #[test]
    fn rate_and_time_left_before_during_and_after() {
        let start = Progress::new(0, Some(10), Duration::ZERO);
        assert_eq!((start.rate(), start.remaining()), (0.0, None));
        assert_eq!(start.to_string(), "0/10 [00:00<?, 0.00 items/s]");
        let half = Progress::new(5, Some(10), Duration::from_secs(2));
        assert_eq!(half.rate(), 2.5);
        assert_eq!(half.remaining(), Some(Duration::from_secs(2)));
        let end = Progress::new(10, Some(10), Duration::from_secs(4));
        assert_eq!(end.remaining(), Some(Duration::ZERO));
        let unknown = Progress::new(3, None, Duration::from_secs(1));
        assert_eq!(unknown.remaining(), None);
        assert_eq!(unknown.to_string(), "3 [00:01, 3.00 items/s]");
    }

    #[test]
    fn the_total_is_the_exact_length_unless_given() {
        let mut totals = Vec::new();
        let _: Vec<_> = (0..4).progress(None, |p| totals.push(p.total())).collect();
        let _: Vec<_> = (0..4)
            .filter(|_| true)
            .progress(None, |p| totals.push(p.total()))
            .collect();
        let _: Vec<_> = (0..4).progress(9, |p| totals.push(p.total())).collect();
        assert_eq!(totals[..4], [Some(4); 4]);
        assert_eq!(totals[4..8], [None; 4]);
        assert_eq!(totals[8..], [Some(9); 4]);
    }
}
