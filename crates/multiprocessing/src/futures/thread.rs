//! [`ThreadPoolExecutor`]: calls run by threads of this process, with the same methods.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::future::{Future, Outstanding, Payload};
use super::{Builder, Map};
use crate::completion::completion;
use crate::error::{Error, Result};
use crate::process::catch_task;
use crate::sync::{lock, wait_until};
use crate::window::{Pending, ValueChunk, Window};

/// A job for a thread worker.
type ThreadJob = Box<dyn FnOnce() + Send>;

struct ThreadQueue {
    jobs: VecDeque<ThreadJob>,
    open: bool,
}

struct ThreadShared {
    queue: Mutex<ThreadQueue>,
    available: Condvar,
}

/// Runs calls in threads of this process: Python's `concurrent.futures.ThreadPoolExecutor`,
/// with the same methods as [`ProcessPoolExecutor`](super::ProcessPoolExecutor).
///
/// Rust threads run in parallel: there is no GIL to take turns on. What threads lack is the
/// wall between workers that processes give.
///
/// # Example
///
/// ```
/// use multiprocessing::futures::ThreadPoolExecutor;
///
/// fn square(n: u64) -> u64 {
///     n * n
/// }
///
/// # fn main() -> multiprocessing::Result<()> {
/// let executor = ThreadPoolExecutor::new(2)?;
/// assert_eq!(*executor.submit(square, 12)?.result()?, 144);
/// # Ok(())
/// # }
/// ```
pub struct ThreadPoolExecutor {
    shared: Arc<ThreadShared>,
    threads: Vec<JoinHandle<()>>,
    outstanding: Outstanding,
}

impl std::fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolExecutor")
            .field("workers", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl ThreadPoolExecutor {
    /// An executor with `max_workers` threads.
    ///
    /// # Errors
    ///
    /// As [`Builder::threads`].
    pub fn new(max_workers: usize) -> Result<ThreadPoolExecutor> {
        Builder::default().max_workers(max_workers).threads()
    }

    /// Options: `max_workers` (the CPU count by default) and an initializer.
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub(super) fn start(workers: usize, initializer: Option<fn()>) -> Result<ThreadPoolExecutor> {
        let shared = Arc::new(ThreadShared {
            queue: Mutex::new(ThreadQueue {
                jobs: VecDeque::new(),
                open: true,
            }),
            available: Condvar::new(),
        });
        let (ready, reports) = mpsc::channel();
        let mut executor = ThreadPoolExecutor {
            shared,
            threads: Vec::new(),
            outstanding: Outstanding::default(),
        };
        for index in 0..workers {
            let (shared, ready) = (executor.shared.clone(), ready.clone());
            let thread = std::thread::Builder::new()
                .name(format!("ThreadPoolExecutor-0_{index}"))
                .spawn(move || thread_worker(&shared, initializer, &ready))
                .map_err(Error::io("cannot start an executor thread"))?;
            executor.threads.push(thread);
        }
        // Every thread reports its initializer; one that panicked breaks the executor now,
        // where Python would fail each later call with `BrokenThreadPool`.
        for _ in 0..workers {
            if let Ok(Err(message)) = reports.recv() {
                return Err(Error::BrokenThreadPool { message });
            }
        }
        Ok(executor)
    }

    /// Schedules `f(arg)` and returns its future: Python's `submit`.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](ThreadPoolExecutor::shutdown).
    /// Schedules `f(arg)` and returns its future: Python's `submit`.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after [`shutdown`](ThreadPoolExecutor::shutdown).
    pub fn submit<A, R>(&self, f: fn(A) -> R, arg: A) -> Result<Future<R>>
    where
        A: Send + 'static,
        R: Send + Sync + 'static,
    {
        let (completion, completer) = completion(None);
        let future = Future::new(completion);
        self.outstanding.track(&future)?;
        self.push(Box::new(move || {
            if completer.start() {
                completer.set(run_here(f, arg).map(Payload::Value));
            }
        }))?;
        Ok(future)
    }

    fn push(&self, job: ThreadJob) -> Result<()> {
        let mut queue = lock(&self.shared.queue);
        if !queue.open {
            return Err(Error::Shutdown);
        }
        queue.jobs.push_back(job);
        self.shared.available.notify_one();
        Ok(())
    }

    /// Calls `f` on each input and yields the results in input order: Python's `map`.
    pub fn map<'a, A, R, I>(&'a self, f: fn(A) -> R, inputs: I) -> Map<'a, A, R, I::IntoIter>
    where
        A: Send + 'static,
        R: Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let send = move |chunk: Vec<A>| -> Result<Box<dyn Pending<R> + 'a>> {
            self.outstanding.check_open()?;
            let count = chunk.len();
            let (completion, completer) = completion(None);
            self.push(Box::new(move || {
                completer.set(Ok(chunk.into_iter().map(|arg| run_here(f, arg)).collect()));
            }))?;
            Ok(Box::new(ValueChunk { completion, count }))
        };
        Map::new(Window::new(
            inputs.into_iter(),
            1,
            2 * self.threads.len().max(1),
            Box::new(send),
        ))
    }

    /// Stops taking calls: Python's `shutdown(wait, cancel_futures)`; see
    /// [`ProcessPoolExecutor::shutdown`](super::ProcessPoolExecutor::shutdown).
    pub fn shutdown(&mut self, wait: bool, cancel_futures: bool) {
        self.outstanding.shut_down(cancel_futures);
        lock(&self.shared.queue).open = false;
        self.shared.available.notify_all();
        if wait {
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ThreadPoolExecutor {
    fn drop(&mut self) {
        self.shutdown(true, false);
    }
}

/// Runs `f(arg)` on this thread; a panic becomes [`Error::TaskPanicked`].
fn run_here<A, R>(f: fn(A) -> R, arg: A) -> Result<R> {
    catch_task(|| f(arg)).map_err(|message| Error::TaskPanicked { message })
}

/// A thread worker: run the initializer, then jobs until the queue closes and empties.
fn thread_worker(
    shared: &ThreadShared,
    initializer: Option<fn()>,
    ready: &mpsc::Sender<std::result::Result<(), String>>,
) {
    let initialized = catch_task(|| {
        if let Some(initializer) = initializer {
            initializer();
        }
    });
    let failed = initialized.is_err();
    let _ = ready.send(initialized);
    if failed {
        return;
    }
    loop {
        let queue = lock(&shared.queue);
        let mut queue = wait_until(&shared.available, queue, None, |queue| {
            !queue.jobs.is_empty() || !queue.open
        })
        .expect("no deadline");
        let Some(job) = queue.jobs.pop_front() else {
            return;
        };
        drop(queue);
        job();
    }
}
