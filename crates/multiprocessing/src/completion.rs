//! One result, set once and waited for: what [`AsyncResult`](crate::AsyncResult) and
//! [`Future`](crate::futures::Future) are made of.
//!
//! A [`Completion`] is the waiting side: any number of handles wait for it with a deadline,
//! read it, and register callbacks. Its one [`Completer`] is the setting side. A completer
//! dropped without a value, whatever the reason (a thread that panicked, a queue of jobs
//! dropped on a path nobody thought of), sets [`Error::ResultLost`]: no waiter can be left
//! waiting for a value that will never come.
//!
//! Callbacks are user code, and the runtime's own threads must survive them. Each callback
//! runs under `catch_unwind`; a panic is logged at error level, as CPython logs "exception
//! calling callback", and the other callbacks still run. A completer set by a pool's manager
//! thread hands user callbacks to a [`Dispatcher`], a thread of their own, so that a slow or
//! blocking callback delays other callbacks but never another result.

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::process::catch_task;
use crate::sync::{lock, wait_until};

/// Where a completion is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting to start.
    Pending,
    /// Started: it can no longer be cancelled.
    Running,
    /// Cancelled before it started, or stopped while it ran at its caller's request; its
    /// value is [`Error::Cancelled`].
    Cancelled,
    /// Set.
    Done,
}

impl Phase {
    /// Whether the value is in (set, or cancelled).
    pub(crate) fn is_done(self) -> bool {
        matches!(self, Phase::Done | Phase::Cancelled)
    }
}

/// A callback as stored: user code or the runtime's own.
type Call = Box<dyn FnOnce() + Send>;

/// A callback, and whether it is user code (run by the dispatcher, if there is one) or the
/// runtime's own bookkeeping (run at once, on the thread that sets the value).
struct Callback {
    user: bool,
    call: Call,
}

struct State<T> {
    phase: Phase,
    value: Option<Result<T>>,
    callbacks: Vec<Callback>,
    /// How many threads wait in [`Completion::wait`].
    waiters: usize,
    /// Asked to stop while it runs: see [`Completion::stop`].
    stop: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    /// What can bring the value in on the waiting thread itself, if anything.
    driver: Option<Box<dyn Drive>>,
}

/// Something a waiter can do to bring a value in itself, instead of sleeping until another
/// thread sets it: a pool's job whose worker the waiter can read from directly.
pub(crate) trait Drive: Send + Sync {
    /// Waits at most until `deadline` for the value, doing the work that brings it in;
    /// false when it cannot help now (the waiter then sleeps until the value is set).
    fn drive(&self, deadline: Option<Instant>) -> bool;
}

/// The waiting side of a result that is set once. Clones wait for the same result.
pub(crate) struct Completion<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Completion<T> {
    fn clone(&self) -> Self {
        Completion {
            shared: self.shared.clone(),
        }
    }
}

/// The setting side of a [`Completion`]: set it once, or drop it and let it fail its
/// waiters with [`Error::ResultLost`].
pub(crate) struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
    dispatcher: Option<Dispatcher>,
}

/// A new completion and its completer. User callbacks pending when it is set run on
/// `dispatcher`, or on the setting thread without one.
pub(crate) fn completion<T>(dispatcher: Option<&Dispatcher>) -> (Completion<T>, Completer<T>) {
    driven_completion(dispatcher, None)
}

/// A new completion whose waiters first let `driver` try to bring the value in.
pub(crate) fn driven_completion<T>(
    dispatcher: Option<&Dispatcher>,
    driver: Option<Box<dyn Drive>>,
) -> (Completion<T>, Completer<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            phase: Phase::Pending,
            value: None,
            callbacks: Vec::new(),
            waiters: 0,
            stop: false,
        }),
        changed: Condvar::new(),
        driver,
    });
    (
        Completion {
            shared: shared.clone(),
        },
        Completer {
            shared: Some(shared),
            dispatcher: dispatcher.cloned(),
        },
    )
}

impl<T> Completion<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.shared.state)
    }

    /// Where it is in its life.
    pub(crate) fn phase(&self) -> Phase {
        self.state().phase
    }

    /// Whether the value is in.
    pub(crate) fn is_done(&self) -> bool {
        self.phase().is_done()
    }

    /// Waits until the value is in or `deadline` passes (never, for `None`); whether it is in.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        if let Some(driver) = &self.shared.driver {
            while !self.is_done() {
                if !driver.drive(deadline) {
                    break;
                }
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return self.is_done();
                }
            }
        }
        let mut state = self.state();
        if state.phase.is_done() {
            return true;
        }
        // Counted, so that a value set with nobody waiting costs no wake-up, a system call.
        state.waiters += 1;
        let woken = wait_until(&self.shared.changed, state, deadline, |state| {
            state.phase.is_done()
        });
        let done = woken.is_some();
        woken.unwrap_or_else(|| self.state()).waiters -= 1;
        done
    }

    /// Calls `read` with the value, if it is in and not taken.
    pub(crate) fn read<U>(&self, read: impl FnOnce(&Result<T>) -> U) -> Option<U> {
        self.state().value.as_ref().map(read)
    }

    /// Takes the value out, if it is in; for a completion with a single reader.
    pub(crate) fn take(&self) -> Option<Result<T>> {
        self.state().value.take()
    }

    /// Cancels it if it has not started; whether it is cancelled now.
    pub(crate) fn cancel(&self) -> bool {
        let mut state = self.state();
        match state.phase {
            Phase::Cancelled => true,
            Phase::Running | Phase::Done => false,
            Phase::Pending => {
                state.phase = Phase::Cancelled;
                state.value = Some(Err(Error::Cancelled));
                let callbacks = std::mem::take(&mut state.callbacks);
                drop(state);
                self.shared.changed.notify_all();
                run_all(callbacks.into_iter().map(|callback| callback.call));
                true
            }
        }
    }

    /// Cancels it if it has not started, or asks whoever runs it to stop it if it has (its
    /// completer then ends it with [`Completer::cancel`]); false once it is done.
    pub(crate) fn stop(&self) -> bool {
        let mut state = self.state();
        match state.phase {
            Phase::Running => {
                state.stop = true;
                true
            }
            Phase::Done => false,
            Phase::Pending | Phase::Cancelled => {
                drop(state);
                self.cancel()
            }
        }
    }

    /// Runs `callback` once the value is in: at once on this thread if it is, else on the
    /// thread (or dispatcher) that sets it. A panic in it is logged, never propagated.
    pub(crate) fn on_done(&self, callback: impl FnOnce() + Send + 'static) {
        self.add(true, Box::new(callback));
    }

    /// Runs `notify` once the value is in, on the thread that sets it; for the runtime's own
    /// bookkeeping, which must not wait behind user callbacks.
    pub(crate) fn on_done_inline(&self, notify: impl FnOnce() + Send + 'static) {
        self.add(false, Box::new(notify));
    }

    fn add(&self, user: bool, call: Call) {
        let mut state = self.state();
        if state.phase.is_done() {
            drop(state);
            run_all([call]);
        } else {
            state.callbacks.push(Callback { user, call });
        }
    }
}

impl<T> Completer<T> {
    /// Marks it running, unless it was cancelled; whether it may run.
    pub(crate) fn start(&self) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let mut state = lock(&shared.state);
        match state.phase {
            Phase::Pending => {
                state.phase = Phase::Running;
                true
            }
            Phase::Running => true,
            Phase::Cancelled | Phase::Done => false,
        }
    }

    /// Sets the value (unless it was cancelled), wakes the waiters, and runs the callbacks.
    pub(crate) fn set(mut self, value: Result<T>) {
        self.finish(Phase::Done, value);
    }

    /// Whether its caller asked, with [`Completion::stop`], for it to be stopped.
    pub(crate) fn stop_requested(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|shared| lock(&shared.state).stop)
    }

    /// Ends it as cancelled: it was stopped while it ran.
    pub(crate) fn cancel(mut self) {
        self.finish(Phase::Cancelled, Err(Error::Cancelled));
    }

    fn finish(&mut self, phase: Phase, value: Result<T>) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let mut state = lock(&shared.state);
        if state.phase.is_done() {
            return;
        }
        state.phase = phase;
        state.value = Some(value);
        let callbacks = std::mem::take(&mut state.callbacks);
        let waiting = state.waiters > 0;
        // Wake the waiters after letting go of the lock, or they wake only to wait for it.
        drop(state);
        if waiting {
            shared.changed.notify_all();
        }
        let (user, inline): (Vec<_>, Vec<_>) =
            callbacks.into_iter().partition(|callback| callback.user);
        run_all(inline.into_iter().map(|callback| callback.call));
        let user = user.into_iter().map(|callback| callback.call);
        match &self.dispatcher {
            Some(dispatcher) if user.len() > 0 => dispatcher.run(user.collect()),
            _ => run_all(user),
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.finish(Phase::Done, Err(Error::ResultLost));
    }
}

/// Runs each callback, logging any panic instead of letting it end the thread.
fn run_all(callbacks: impl IntoIterator<Item = Call>) {
    for callback in callbacks {
        if let Err(message) = catch_task(callback) {
            log::error!("exception calling callback: {message}");
        }
    }
}

/// A thread that runs the user callbacks of a pool's results, in the order they became due,
/// started when first needed. It ends once [`close`](Dispatcher::close)d and drained.
#[derive(Clone, Default)]
pub(crate) struct Dispatcher {
    inner: Arc<Mutex<DispatcherState>>,
}

#[derive(Default)]
struct DispatcherState {
    /// `None` before the thread starts and after `close`.
    sender: Option<Sender<Vec<Call>>>,
    thread: Option<JoinHandle<()>>,
    closed: bool,
}

impl Dispatcher {
    /// Hands `callbacks` to the thread, starting it if need be; runs them here once closed,
    /// or when no thread can be started.
    fn run(&self, callbacks: Vec<Call>) {
        let mut state = lock(&self.inner);
        if state.sender.is_none() && !state.closed {
            let (sender, receiver) = mpsc::channel::<Vec<Call>>();
            let spawned = std::thread::Builder::new()
                .name("pool-callbacks".into())
                .spawn(move || {
                    for batch in receiver {
                        run_all(batch);
                    }
                });
            match spawned {
                Ok(thread) => {
                    state.sender = Some(sender);
                    state.thread = Some(thread);
                }
                Err(error) => log::error!("cannot start a thread for callbacks: {error}"),
            }
        }
        let callbacks = match &state.sender {
            Some(sender) => match sender.send(callbacks) {
                Ok(()) => return,
                Err(mpsc::SendError(callbacks)) => callbacks,
            },
            None => callbacks,
        };
        drop(state);
        run_all(callbacks);
    }

    /// Takes no more callbacks; with `wait`, returns once those handed over have run (at
    /// once, when called from a callback, which cannot wait for itself).
    pub(crate) fn close(&self, wait: bool) {
        let thread = {
            let mut state = lock(&self.inner);
            state.closed = true;
            state.sender = None;
            state.thread.take()
        };
        if let Some(thread) = thread
            && wait
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_completer_dropped_unset_fails_its_waiters() {
        let (completion, completer) = super::completion::<u32>(None);
        let waiter = {
            let completion = completion.clone();
            std::thread::spawn(move || {
                completion.wait(None);
                completion.take()
            })
        };
        drop(completer);
        let outcome = waiter.join().unwrap();
        assert!(
            matches!(outcome, Some(Err(Error::ResultLost))),
            "{outcome:?}"
        );
    }

    #[test]
    fn a_waiter_is_counted_while_it_waits_and_woken_by_the_value() {
        let (completion, completer) = super::completion::<u32>(None);
        assert!(!completion.wait(Some(Instant::now() + Duration::from_millis(1))));
        assert_eq!(
            completion.state().waiters,
            0,
            "a wait that timed out is not counted"
        );
        let (sender, woken) = mpsc::channel();
        let waiter = {
            let completion = completion.clone();
            std::thread::spawn(move || sender.send(completion.wait(None)))
        };
        let counted = Instant::now() + Duration::from_secs(60);
        while completion.state().waiters == 0 {
            assert!(Instant::now() < counted, "the waiter was never counted");
            std::thread::sleep(Duration::from_millis(1));
        }
        completer.set(Ok(5));
        assert_eq!(woken.recv_timeout(Duration::from_secs(60)), Ok(true));
        waiter.join().unwrap().unwrap();
        assert_eq!(completion.state().waiters, 0);
    }

    #[test]
    fn a_panicking_callback_does_not_stop_the_others_or_the_setter() {
        let (completion, completer) = super::completion::<u32>(None);
        let (sender, received) = mpsc::channel();
        completion.on_done(|| panic!("careless callback"));
        completion.on_done(move || sender.send("ran").unwrap());
        completer.set(Ok(7));
        assert_eq!(received.try_recv().unwrap(), "ran");
        assert!(matches!(
            completion.read(|value| value.clone()),
            Some(Ok(7))
        ));
    }

    #[test]
    fn user_callbacks_go_to_the_dispatcher_and_bookkeeping_runs_at_once() {
        let dispatcher = Dispatcher::default();
        let (completion, completer) = super::completion::<u32>(Some(&dispatcher));
        let (release, blocked) = mpsc::channel::<()>();
        let (sender, received) = mpsc::channel();
        completion.on_done(move || {
            let _ = blocked.recv_timeout(Duration::from_secs(60));
        });
        completion.on_done_inline(move || sender.send(std::thread::current().id()).unwrap());
        // The setter is not held up by the blocked user callback.
        completer.set(Ok(1));
        assert_eq!(received.try_recv().unwrap(), std::thread::current().id());
        release.send(()).unwrap();
        dispatcher.close(true);
    }

    #[test]
    fn only_a_pending_completion_can_be_cancelled() {
        let (completion, completer) = super::completion::<u32>(None);
        assert!(completion.cancel());
        assert!(!completer.start(), "a cancelled job does not run");
        assert_eq!(completion.phase(), Phase::Cancelled);
        let (completion, completer) = super::completion::<u32>(None);
        assert!(completer.start());
        assert!(!completion.cancel());
        completer.set(Ok(3));
        assert_eq!(completion.phase(), Phase::Done);
    }
}
