//! Timing on a noisy machine: warm up, take turns, keep the median.
//!
//! The machines this runs on are shared, so a figure taken alone drifts with whatever else
//! runs. Two figures measured turn about, sample by sample, see the same disturbances, and
//! their ratio holds still even when both move. [`alternate`] does that; [`median`] keeps the
//! middle sample, which one slow sample cannot drag.

use std::time::{Duration, Instant};

use crate::Result;
use crate::catalogue;

/// How long `work` takes, and what it returned.
///
/// # Errors
///
/// What `work` returns.
pub fn time<T>(work: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let start = Instant::now();
    let value = work()?;
    Ok((start.elapsed(), value))
}

/// Something measured in turns with others: one call takes one sample and says how long the
/// part that counts took.
pub type Contender<'a> = &'a mut dyn FnMut() -> Result<Duration>;

/// Calls each contender `warmup` times untimed, then `samples` times, all of them taking turns
/// call by call; returns each one's samples, in the order given.
///
/// # Errors
///
/// The first error a contender returns.
// ANCHOR: alternate
pub fn alternate<const N: usize>(
    warmup: usize,
    samples: usize,
    mut contenders: [Contender<'_>; N],
) -> Result<[Vec<Duration>; N]> {
    for _ in 0..warmup {
        for contender in contenders.iter_mut() {
            contender()?;
        }
    }
    let mut taken: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(samples));
    for _ in 0..samples {
        for (contender, taken) in contenders.iter_mut().zip(taken.iter_mut()) {
            taken.push(contender()?);
        }
    }
    Ok(taken)
}
// ANCHOR_END: alternate

/// The middle value (the mean of the two middle ones for an even count).
///
/// # Panics
///
/// If `values` is empty.
pub fn median(mut values: Vec<f64>) -> f64 {
    assert!(!values.is_empty(), "the median of nothing");
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if !values.len().is_multiple_of(2) {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// The median of `samples`, each divided by `per` (the items one sample covers), in
/// microseconds.
pub fn median_micros(samples: &[Duration], per: u64) -> f64 {
    median(samples.iter().map(|d| micros(*d) / per as f64).collect())
}

/// The median of `samples` in milliseconds.
pub fn median_millis(samples: &[Duration]) -> f64 {
    median(samples.iter().map(|d| micros(*d) / 1e3).collect())
}

/// The median rate when each sample handled `count` items.
pub fn median_rate(samples: &[Duration], count: f64) -> f64 {
    median(samples.iter().map(|d| count / d.as_secs_f64()).collect())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

/// The load average over the last 1, 5 and 15 minutes, from `/proc/loadavg`.
///
/// # Errors
///
/// When `/proc/loadavg` cannot be read or parsed.
pub fn load_average() -> Result<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg")?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let mut next = || -> Result<f64> { Ok(fields.next().ok_or("/proc/loadavg is empty")??) };
    Ok([next()?, next()?, next()?])
}

/// The value after `field:` in `/proc/self/status`, trimmed: `12` for `Threads`, `3180 kB` for
/// `VmHWM`.
///
/// # Errors
///
/// When `/proc/self/status` cannot be read or has no such line.
pub fn status(field: &str) -> Result<String> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .ok_or_else(|| format!("/proc/self/status has no {field}: line"))?;
    Ok(value.trim().to_owned())
}

/// The figures of one run, printed as they are recorded, and notes on how it went.
#[derive(Debug, Default)]
pub struct Figures {
    values: Vec<(String, f64)>,
    notes: Vec<String>,
}

impl Figures {
    /// Records a figure and prints its line.
    ///
    /// # Panics
    ///
    /// If `name` is not in the [`catalogue`].
    pub fn record(&mut self, name: &str, value: f64) {
        println!("{}", catalogue::find(name).line(value));
        self.values.push((name.to_owned(), value));
    }

    /// Records a note, such as the load average at the start, and prints it as a `#` line.
    pub fn note(&mut self, note: String) {
        println!("# {note}");
        self.notes.push(note);
    }

    /// Reads what a run printed: the figure lines (`name: value unit`) whose name the
    /// catalogue knows, and the `# ` notes.
    pub fn parse(text: &str) -> Figures {
        let mut figures = Figures::default();
        for line in text.lines() {
            if let Some(note) = line.strip_prefix("# ") {
                figures.notes.push(note.to_owned());
            } else if let Some((name, rest)) = line.split_once(':')
                && let Some(Ok(value)) = rest.split_whitespace().next().map(str::parse)
                && catalogue::FIGURES.iter().any(|spec| spec.name == name)
            {
                figures.values.push((name.to_owned(), value));
            }
        }
        figures
    }

    /// The notes, in the order they were made.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The value recorded as `name`, if any.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(recorded, _)| recorded == name)
            .map(|(_, value)| *value)
    }
}
