//! Progress reports as a user sees them: over `imap`, `imap_unordered` and the executors'
//! `map`, every item reported once with the right total, a panicking callback costing no
//! result, and the bar drawing nothing when stderr is not a terminal.

mod common;

multiprocessing::enable_test_support!();

use common::{bounded, exists};

use std::collections::HashSet;

use multiprocessing::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
use multiprocessing::progress::{Progress, ProgressExt, Watch};
use multiprocessing::{Pool, Result};

fn square(x: u64) -> u64 {
    x * x
}

fn square_in(x: u64) -> (u64, u32) {
    (x * x, std::process::id())
}

/// What a watch was told, in order.
#[derive(Default)]
struct Log {
    starts: Vec<usize>,
    items: Vec<Progress>,
    finishes: Vec<usize>,
}

impl Watch for Log {
    fn start(&mut self, progress: &Progress) {
        self.starts.push(progress.done());
    }

    fn item(&mut self, progress: &Progress) {
        self.items.push(*progress);
    }

    fn finish(&mut self, progress: &Progress) {
        self.finishes.push(progress.done());
    }
}

impl Log {
    /// Checks that it was told of one start, `n` items each once (done counting 1 to `n`, the
    /// total `n` each time, time never going back) and one finish.
    fn assert_complete(&self, n: usize) {
        assert_eq!(self.starts, [0]);
        let done: Vec<usize> = self.items.iter().map(Progress::done).collect();
        assert_eq!(done, (1..=n).collect::<Vec<_>>());
        assert!(self.items.iter().all(|p| p.total() == Some(n)));
        assert!(self.items.is_sorted_by_key(Progress::elapsed));
        assert_eq!(self.finishes, [n]);
    }
}

/// Reads `results` to the end with a [`Log`] watching, checks that it was told of all `n`
/// items, and returns them.
fn watched<T>(results: impl Iterator<Item = Result<T>>, n: usize) -> Vec<T> {
    let mut results = results.progress_with(n, Log::default());
    let values = results.by_ref().collect::<Result<Vec<T>>>().unwrap();
    // Asked again after the end, it reports nothing more.
    assert!(results.next().is_none());
    results
        .watch()
        .expect("a watch that never panicked")
        .assert_complete(n);
    values
}

#[test]
fn imap_reports_every_item_once_and_leaves_nothing_running() {
    let pids = bounded(|| {
        let pool = Pool::new(2).unwrap();
        let results = watched(pool.imap_chunked(square_in, 0..300, 7), 300);
        let squares: Vec<u64> = results.iter().map(|&(square, _)| square).collect();
        assert_eq!(squares, (0..300).map(square).collect::<Vec<_>>());
        results
            .into_iter()
            .map(|(_, pid)| pid)
            .collect::<HashSet<u32>>()
    });
    assert!(!pids.is_empty());
    assert!(
        pids.iter().all(|&pid| !exists(pid)),
        "a worker outlived its pool"
    );
}

#[test]
fn imap_unordered_reports_every_item_once() {
    bounded(|| {
        let pool = Pool::new(3).unwrap();
        for chunksize in [1, 5] {
            let results = watched(pool.imap_unordered_chunked(square, 0..200, chunksize), 200);
            let mut sorted = results;
            sorted.sort_unstable();
            assert_eq!(sorted, (0..200).map(square).collect::<Vec<_>>());
        }
    });
}

#[test]
fn executor_map_reports_every_item_once() {
    bounded(|| {
        let processes = ProcessPoolExecutor::new(2).unwrap();
        let results = watched(processes.map(square, 0..150).chunksize(4), 150);
        assert_eq!(results, (0..150).map(square).collect::<Vec<_>>());

        let threads = ThreadPoolExecutor::new(3).unwrap();
        let results = watched(threads.map(square, 0..150), 150);
        assert_eq!(results, (0..150).map(square).collect::<Vec<_>>());
    });
}

#[test]
fn a_callback_sees_done_rate_and_time_left() {
    bounded(|| {
        let pool = Pool::new(2).unwrap();
        let mut seen = Vec::new();
        let results: Vec<u64> = pool
            .imap(square, 0..40)
            .progress(40, |progress| seen.push(*progress))
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(results.len(), 40);
        assert_eq!(seen.len(), 40);
        let last = seen.last().unwrap();
        assert_eq!((last.done(), last.total()), (40, Some(40)));
        assert_eq!(last.remaining(), Some(std::time::Duration::ZERO));
        assert!(
            seen.iter()
                .all(|p| p.rate() >= 0.0 && p.remaining().is_some())
        );
    });
}

#[test]
fn a_panicking_callback_costs_no_result_and_is_not_called_again() {
    bounded(|| {
        let pool = Pool::new(2).unwrap();
        let mut calls = 0;
        let mut results = pool.imap(square, 0..100).progress(100, |progress| {
            calls += 1;
            assert!(progress.done() < 10, "careless callback");
        });
        let squares = results.by_ref().collect::<Result<Vec<u64>>>().unwrap();
        assert!(
            results.watch().is_none(),
            "a callback that panicked is dropped"
        );
        drop(results);
        assert_eq!(squares, (0..100).map(square).collect::<Vec<_>>());
        assert_eq!(calls, 10);
        // The pool is as good as before.
        assert_eq!(
            pool.map(square, 0..10).unwrap(),
            (0..10).map(square).collect::<Vec<_>>()
        );
    });
}

#[test]
fn a_map_left_early_is_not_finished_and_stops_cleanly() {
    let pids = bounded(|| {
        let pool = Pool::new(2).unwrap();
        let mut results = pool
            .imap(square_in, 0..1_000_000)
            .progress_with(None, Log::default());
        let pids: HashSet<u32> = results.by_ref().take(50).map(|r| r.unwrap().1).collect();
        let log = results.watch().unwrap();
        assert_eq!(log.items.len(), 50);
        assert!(log.items.iter().all(|p| p.total().is_none()));
        assert!(log.finishes.is_empty());
        pids
    });
    assert!(
        pids.iter().all(|&pid| !exists(pid)),
        "a worker outlived its pool"
    );
}

/// Set in the copy of this test binary that `a_bar_draws_nothing_where_stderr_is_not_a_terminal`
/// runs with stderr on a pipe.
#[cfg(feature = "progress-bar")]
const BAR_CHILD: &str = "MULTIPROCESSING_TEST_BAR_CHILD";

#[cfg(feature = "progress-bar")]
#[test]
fn a_bar_draws_nothing_where_stderr_is_not_a_terminal() {
    use multiprocessing::progress::Bar;

    if std::env::var_os(BAR_CHILD).is_some() {
        // The copy: its stderr is a pipe.
        assert!(!Bar::new().is_drawn());
        let pool = Pool::new(2).unwrap();
        let mut results = pool.imap(square, 0..100).progress_bar(100);
        assert_eq!(results.by_ref().count(), 100);
        assert!(!results.watch().unwrap().is_drawn());
        return;
    }
    let output = bounded(|| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_bar_draws_nothing_where_stderr_is_not_a_terminal",
            ])
            .env(BAR_CHILD, "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the copy failed: {stdout}");
    assert!(
        stdout.contains("1 passed"),
        "the copy ran no test: {stdout}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}
