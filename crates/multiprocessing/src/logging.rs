//! Python's `multiprocessing.log_to_stderr()` and `get_logger()`, on the `log` facade.
//!
//! The runtime writes its records with the `log` crate's macros, as every Rust library does,
//! so any logger sees them. [`log_to_stderr`] installs the one Python's users know: an
//! `env_logger` that writes `[LEVEL/ProcessName] message` to stderr, one record per line.
//!
//! Python's levels map onto `log`'s: `DEBUG`, `INFO`, `WARNING` and `ERROR` are
//! [`LevelFilter::Debug`], [`Info`](LevelFilter::Info), [`Warn`](LevelFilter::Warn) and
//! [`Error`](LevelFilter::Error). `log` has no levels between those, so Python's `SUBDEBUG`
//! (below `DEBUG`) is [`LevelFilter::Trace`], printed as `SUBDEBUG`, and `SUBWARNING`
//! (between `INFO` and `WARNING`) is written as `INFO`.
//!
//! The level lives in the process's memory, so a child forked after it is set starts with the
//! same level, as in Python. When `RUST_LOG` is set, it decides what is written, as it does for
//! every program that uses `env_logger`, and the levels set in code are ignored.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use log::LevelFilter;
use log::{Level, Log, Metadata, Record};

/// The variable `env_logger` reads its filters from.
const RUST_LOG: &str = "RUST_LOG";

/// The logger [`log_to_stderr`] installs, once per program.
static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

/// Python's logger for the `multiprocessing` package: a handle to change the level.
///
/// # Example
///
/// ```
/// use multiprocessing::logging::{LevelFilter, get_logger, log_to_stderr};
///
/// log_to_stderr(None);
/// let logger = get_logger();
/// logger.set_level(LevelFilter::Info);
/// assert_eq!(logger.level(), LevelFilter::Info);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Logger(());

impl Logger {
    /// Sets the most detailed level written: Python's `logger.setLevel(level)`.
    ///
    /// Has no effect on what is written while `RUST_LOG` is set.
    pub fn set_level(&self, level: LevelFilter) {
        LEVEL.store(level as usize, Ordering::Relaxed);
        log::set_max_level(effective_max(level));
    }

    /// The level set in code (Python's `logger.level`); `Warn` until one is set, which is the
    /// level Python's logging falls back to.
    pub fn level(&self) -> LevelFilter {
        level_from(LEVEL.load(Ordering::Relaxed))
    }
}

/// The level set in code, as a `LevelFilter` discriminant.
static LEVEL: AtomicUsize = AtomicUsize::new(LevelFilter::Warn as usize);

fn level_from(value: usize) -> LevelFilter {
    LevelFilter::iter()
        .find(|level| *level as usize == value)
        .unwrap_or(LevelFilter::Warn)
}

/// The handle to the logger of this package: Python's `multiprocessing.get_logger()`.
///
/// Records are only written once [`log_to_stderr`] (or another `log` logger) is installed.
pub fn get_logger() -> Logger {
    Logger(())
}

/// Writes records to stderr in Python's format: `multiprocessing.log_to_stderr(level)`.
///
/// Installs, the first time, an `env_logger` that prints `[INFO/Process-1] message`.
/// `level` sets the most detailed level written; `None` keeps the current one (`Warn` at
/// first). Returns the logger, as Python does.
///
/// Each record is written with one `write` call, so records from different processes never
/// mix inside a line (for records shorter than the pipe buffer, 4 KiB on Linux, when stderr
/// is a pipe).
///
/// If the program already has another `log` logger, that one stays, and receives the records.
///
/// # Example
///
/// ```no_run
/// use multiprocessing::Process;
/// use multiprocessing::logging::{LevelFilter, log_to_stderr};
///
/// # fn main() -> multiprocessing::Result<()> {
/// log_to_stderr(Some(LevelFilter::Debug));
/// let p = Process::new(|| println!("Doing some work"));
/// p.start()?; // stderr: [INFO/Process-1] child process calling self.run() ...
/// p.join()?;
/// # Ok(())
/// # }
/// ```
///
/// The lesson `lesson-logging` runs this.
pub fn log_to_stderr(level: Option<LevelFilter>) -> Logger {
    let logger = get_logger();
    let installed = LOGGER.get_or_init(StderrLogger::new);
    if log::set_logger(installed).is_ok() {
        log::set_max_level(effective_max(logger.level()));
    }
    if let Some(level) = level {
        logger.set_level(level);
    }
    logger
}

/// What `log` should let through: everything `RUST_LOG` may ask for when it is set, else the
/// level set in code.
fn effective_max(level: LevelFilter) -> LevelFilter {
    match LOGGER.get() {
        Some(logger) if logger.from_env => logger.inner.filter(),
        _ => level,
    }
}

/// An `env_logger` with Python's format, behind the level set in code.
struct StderrLogger {
    inner: env_logger::Logger,
    /// Whether `RUST_LOG` was set when the logger was made.
    from_env: bool,
}

impl StderrLogger {
    fn new() -> StderrLogger {
        let from_env = std::env::var_os(RUST_LOG).is_some();
        let mut builder = env_logger::Builder::new();
        builder
            .format(|out, record| {
                let name = crate::process::current_name();
                writeln!(
                    out,
                    "[{}/{name}] {}",
                    level_name(record.level()),
                    record.args()
                )
            })
            .target(env_logger::Target::Stderr)
            .write_style(env_logger::WriteStyle::Never);
        if from_env {
            builder.parse_env(RUST_LOG);
        } else {
            // The level set in code does the filtering.
            builder.filter_level(LevelFilter::Trace);
        }
        StderrLogger {
            inner: builder.build(),
            from_env,
        }
    }
}

/// Python's name for a level.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "SUBDEBUG",
    }
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        (self.from_env || metadata.level() <= get_logger().level()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_named_as_in_python() {
        assert_eq!(level_name(Level::Warn), "WARNING");
        assert_eq!(level_name(Level::Trace), "SUBDEBUG");
        for level in LevelFilter::iter() {
            assert_eq!(level_from(level as usize), level);
        }
    }
}
