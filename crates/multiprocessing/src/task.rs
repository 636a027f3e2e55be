//! A function that another process can find again: what Python does when it pickles a
//! function by its module and name.
//!
//! A closure lives in memory, so only a forked child, which starts as a copy of that memory,
//! can run it. A plain `fn` item is code, and code sits at the same place relative to the rest
//! of the binary in every process that runs the binary, forked or started afresh. A [`Task`]
//! is such a `fn` item, with an argument and a result that serde can encode; its [`TaskRef`]
//! names it by offsets from a known function of this crate, which holds in any copy of the same
//! executable. Pools and executors send their work this way, which is what lets a `spawn`
//! start method (a fresh copy of the binary) run the same tasks as `fork`.

use std::os::fd::OwnedFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Outcome;
use crate::codec;
use crate::error::Result;
use crate::start::descriptors::{self, Kinded};

/// A plain function from `A` to `R` that can run in another process.
///
/// # Example
///
/// ```
/// use multiprocessing::task::Task;
///
/// fn doubler(number: i32) -> i32 {
///     number * 2
/// }
///
/// let task = Task::new(doubler);
/// assert_eq!(task.call(25), 50);
/// ```
pub struct Task<A, R> {
    /// The user's function, type-erased.
    func: usize,
    /// Calls `func` on an `A` here, in this process.
    call: fn(usize, A) -> R,
    /// Decodes an `A`, calls `func`, encodes the `R`: what another process runs.
    invoke: Invoke,
}

impl<A, R> Clone for Task<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for Task<A, R> {}

impl<A, R> std::fmt::Debug for Task<A, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task")
            .field("func", &(self.func as *const ()))
            .finish()
    }
}

impl<A, R> Task<A, R>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// Wraps `func`, a `fn` item or a closure that captures nothing.
    pub fn new(func: fn(A) -> R) -> Task<A, R> {
        Task {
            func: func as *const () as usize,
            call: call_one::<A, R>,
            invoke: invoke::<A, R>,
        }
    }

    /// Runs the function here, in this process.
    pub fn call(&self, arg: A) -> R {
        (self.call)(self.func, arg)
    }

    /// The reference to send to another process running the same executable.
    pub fn to_ref(&self) -> TaskRef {
        TaskRef {
            invoke: offset(self.invoke as *const () as usize),
            func: offset(self.func),
        }
    }
}

impl<A, B, R> Task<(A, B), R>
where
    A: Serialize + DeserializeOwned,
    B: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// Wraps a function of two arguments, called with a pair: Python's `starmap` unpacking.
    ///
    /// # Example
    ///
    /// ```
    /// use multiprocessing::task::Task;
    ///
    /// fn power(base: u64, exponent: u32) -> u64 {
    ///     base.pow(exponent)
    /// }
    ///
    /// assert_eq!(Task::pair(power).call((2, 10)), 1024);
    /// ```
    pub fn pair(func: fn(A, B) -> R) -> Task<(A, B), R> {
        Task {
            func: func as *const () as usize,
            call: call_pair::<A, B, R>,
            invoke: invoke_pair::<A, B, R>,
        }
    }
}

/// Calls the `fn(A) -> R` at `func`.
fn call_one<A, R>(func: usize, arg: A) -> R {
    // SAFETY: `Task::new` stores a `fn(A) -> R` in `func` and pairs it with this function.
    let func = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    func(arg)
}

/// Calls the `fn(A, B) -> R` at `func` with the two halves of `arg`.
fn call_pair<A, B, R>(func: usize, (a, b): (A, B)) -> R {
    // SAFETY: `Task::pair` stores a `fn(A, B) -> R` in `func` and pairs it with this one.
    let func = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(func) };
    func(a, b)
}

/// A [`Task`] as it travels: where its code is, relative to this crate's anchor function.
///
/// It means something only in a process running the same executable file as the one that
/// made it, so only executors run one: the runtime's, in the workers of its pools, and those
/// built outside it on [`Promise`](crate::futures::Promise)s, in processes they know to run
/// the same file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// The offset of `invoke::<A, R>`, which decodes, calls and encodes.
    invoke: i64,
    /// The offset of the user's function.
    func: i64,
}

/// The signature every `invoke::<A, R>` shares once its types are erased.
type Invoke = fn(usize, &[u8]) -> Result<Vec<u8>>;

/// The results of a chunk as [`TaskRef::run`] returns them, encoded: each item's result, or
/// the description of the panic that took its place.
pub type ChunkResults<R> = Vec<std::result::Result<R, String>>;

impl TaskRef {
    /// Runs the task on a chunk of arguments: decodes `args`, an encoded `Vec<A>`, calls the
    /// task on each in turn, and returns the encoded [`ChunkResults<R>`]. A panic in one call
    /// becomes that item's `Err` (its place and message) and the others still run; a whole
    /// chunk travels and is encoded once, however many items it holds.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when `args` is not a `Vec` of the task's
    /// argument type, [`Error::Encode`](crate::Error::Encode) when the results cannot be
    /// encoded.
    ///
    /// # Safety
    ///
    /// `self` must come from [`Task::to_ref`] in a process running the same executable file,
    /// unchanged: this process, its parent, or another process of the same job (an executor
    /// outside this crate sends them so, see [`Promise`](crate::futures::Promise)). Otherwise
    /// the offsets point at arbitrary code.
    pub unsafe fn run(&self, args: &[u8]) -> Result<Vec<u8>> {
        // SAFETY: the caller guarantees that `invoke` is the offset of an `invoke::<A, R>` in
        // this very executable, whose type-erased signature is `Invoke`.
        let invoke: Invoke = unsafe { std::mem::transmute::<usize, Invoke>(address(self.invoke)) };
        invoke(address(self.func), args)
    }

    /// How many bytes [`to_bytes`](TaskRef::to_bytes) gives.
    pub(crate) const BYTES: usize = 16;

    /// The reference as bytes, for a frame that carries it without serde.
    pub(crate) fn to_bytes(self) -> [u8; TaskRef::BYTES] {
        let mut bytes = [0; TaskRef::BYTES];
        bytes[..8].copy_from_slice(&self.invoke.to_le_bytes());
        bytes[8..].copy_from_slice(&self.func.to_le_bytes());
        bytes
    }

    /// The reference from the first [`BYTES`](TaskRef::BYTES) of `bytes`, if there are that
    /// many.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<TaskRef> {
        let invoke = i64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let func = i64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        Some(TaskRef { invoke, func })
    }
}

/// Decodes a `Vec<A>`, calls the `fn(A) -> R` at `func` on each, encodes the results.
fn invoke<A: DeserializeOwned, R: Serialize>(func: usize, args: &[u8]) -> Result<Vec<u8>> {
    run_each(args, |arg| call_one::<A, R>(func, arg))
}

/// Decodes a `Vec<(A, B)>`, calls the `fn(A, B) -> R` at `func` on each, encodes the results.
fn invoke_pair<A, B, R>(func: usize, args: &[u8]) -> Result<Vec<u8>>
where
    A: DeserializeOwned,
    B: DeserializeOwned,
    R: Serialize,
{
    run_each(args, |arg| call_pair::<A, B, R>(func, arg))
}

/// Decodes the arguments, calls `call` on each with panics caught, encodes the results.
fn run_each<A: DeserializeOwned, R: Serialize>(
    args: &[u8],
    call: impl Fn(A) -> R,
) -> Result<Vec<u8>> {
    let args: Vec<A> = codec::decode(args)?;
    let results: ChunkResults<R> = args
        .into_iter()
        .map(|arg| crate::process::catch_task(|| call(arg)))
        .collect();
    codec::encode(&results)
}

/// A function whose address every offset is measured from.
#[inline(never)]
fn anchor() {}

/// A process's work as it travels to a child started afresh: a `fn(A) -> R` whose result
/// decides the exit code, and its argument, encoded. The queues, pipes, locks and values in
/// the argument travel beside it, as descriptors (see [`descriptors`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The offset of `enter::<A, R>`, which decodes the argument and calls the function.
    enter: i64,
    /// The offset of the user's function.
    func: i64,
    arg: Vec<u8>,
    /// The kind of each descriptor that goes with the entry, in order.
    kinds: Vec<String>,
}

/// The signature every `enter::<A, R>` shares once its types are erased.
type Enter = fn(usize, &[u8], Vec<Kinded<String>>) -> i32;

impl Entry {
    /// `func(arg)`, to be run in another copy of this executable, and the descriptors that
    /// must go with it, in order.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`](crate::Error::Encode) when `arg` cannot be encoded, or holds more
    /// descriptors than a message carries.
    pub(crate) fn new<A, R>(func: fn(A) -> R, arg: &A) -> Result<(Entry, Vec<OwnedFd>)>
    where
        A: Serialize + DeserializeOwned,
        R: Outcome,
    {
        let (arg, passed) = descriptors::collecting(|| codec::encode(arg));
        let (fds, kinds) = passed
            .into_iter()
            .map(|(fd, kind)| (fd, kind.to_owned()))
            .unzip();
        let entry = Entry {
            enter: offset(enter::<A, R> as *const () as usize),
            func: offset(func as *const () as usize),
            arg: arg?,
            kinds,
        };
        Ok((entry, fds))
    }

    /// Runs the function, with `fds`, the descriptors that came with the entry, for its
    /// argument; returns the exit code its result stands for.
    ///
    /// # Safety
    ///
    /// As [`TaskRef::run`]: `self` was made by [`Entry::new`] in a process running this same
    /// executable file, and `fds` are the descriptors it gave, in order.
    pub(crate) unsafe fn run(self, fds: Vec<OwnedFd>) -> i32 {
        // SAFETY: the caller guarantees that `enter` is the offset of an `enter::<A, R>` in
        // this very executable, whose type-erased signature is `Enter`.
        let enter: Enter = unsafe { std::mem::transmute::<usize, Enter>(address(self.enter)) };
        // A descriptor missing, or one too many, has no kind and cannot be taken.
        let fds = fds.into_iter().zip(self.kinds).collect();
        enter(address(self.func), &self.arg, fds)
    }
}

/// Decodes an `A`, with `fds` for the objects in it that stand on descriptors, calls the
/// `fn(A) -> R` at `func` with it, and returns the exit code.
fn enter<A: DeserializeOwned, R: Outcome>(
    func: usize,
    arg: &[u8],
    fds: Vec<Kinded<String>>,
) -> i32 {
    match descriptors::receiving(fds, || codec::decode::<A>(arg)) {
        Ok(arg) => call_one::<A, R>(func, arg).exit_code(),
        Err(error) => Err::<(), _>(error).exit_code(),
    }
}

/// A plain `fn()` as it travels to a child started afresh, such as a pool's initializer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FnRef(i64);

impl FnRef {
    pub(crate) fn new(func: fn()) -> FnRef {
        FnRef(offset(func as *const () as usize))
    }

    /// The function again.
    ///
    /// # Safety
    ///
    /// `self` was made by [`FnRef::new`] in a process running this same executable file.
    pub(crate) unsafe fn get(self) -> fn() {
        // SAFETY: per the contract, the offset names a `fn()` in this executable.
        unsafe { std::mem::transmute::<usize, fn()>(address(self.0)) }
    }
}

fn base() -> usize {
    anchor as *const () as usize
}

fn offset(address: usize) -> i64 {
    address as i64 - base() as i64
}

fn address(offset: i64) -> usize {
    (base() as i64 + offset) as usize
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::Error;

    /// Where the parent puts the encoded task and argument for the fresh copy.
    const TASK_VAR: &str = "MULTIPROCESSING_TEST_TASK";

    fn doubler(number: i32) -> i32 {
        number * 2
    }

    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }

    #[test]
    fn a_task_ref_survives_encoding_and_runs() {
        let wire = codec::encode(&Task::new(doubler).to_ref()).unwrap();
        let task: TaskRef = codec::decode(&wire).unwrap();
        assert_eq!(TaskRef::from_bytes(&task.to_bytes()), Some(task));
        // SAFETY: made by `to_ref` in this process.
        let result = unsafe { task.run(&codec::encode(&vec![25, 4]).unwrap()) }.unwrap();
        assert_eq!(
            codec::decode::<ChunkResults<i32>>(&result).unwrap(),
            [Ok(50), Ok(8)]
        );

        let task = Task::new(greet).to_ref();
        // SAFETY: as above.
        let result = unsafe { task.run(&codec::encode(&vec!["Rust"]).unwrap()) }.unwrap();
        assert_eq!(
            codec::decode::<ChunkResults<String>>(&result).unwrap(),
            [Ok("Hello, Rust!".to_owned())]
        );
    }

    fn fail_on_13(n: i32) -> i32 {
        assert_ne!(n, 13, "unlucky");
        n
    }

    #[test]
    fn a_panic_is_one_items_result() {
        let task = Task::new(fail_on_13).to_ref();
        // SAFETY: made by `to_ref` in this process.
        let result = unsafe { task.run(&codec::encode(&vec![12, 13, 14]).unwrap()) }.unwrap();
        let results = codec::decode::<ChunkResults<i32>>(&result).unwrap();
        assert_eq!(results[0], Ok(12));
        assert!(results[1].as_ref().unwrap_err().contains("unlucky"));
        assert_eq!(results[2], Ok(14));
    }

    #[test]
    fn a_wrong_argument_is_a_decode_error() {
        let task = Task::new(doubler).to_ref();
        // SAFETY: made by `to_ref` in this process.
        let result = unsafe { task.run(&[]) };
        assert!(matches!(result, Err(Error::Decode { .. })), "{result:?}");
    }

    fn power(base: u64, exponent: u32) -> u64 {
        base.pow(exponent)
    }

    #[test]
    fn a_pair_task_unpacks_its_argument() {
        let task = Task::pair(power).to_ref();
        // SAFETY: made by `to_ref` in this process.
        let result = unsafe { task.run(&codec::encode(&vec![(3u64, 4u32)]).unwrap()) }.unwrap();
        assert_eq!(
            codec::decode::<ChunkResults<u64>>(&result).unwrap(),
            [Ok(81)]
        );
    }

    #[test]
    fn different_tasks_have_different_refs() {
        assert_ne!(
            Task::new(doubler).to_ref(),
            Task::new(|n: i32| n + 1).to_ref()
        );
        assert_eq!(Task::new(doubler).to_ref(), Task::new(doubler).to_ref());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A `TaskRef` made in one process runs in a fresh copy of the same executable, as a
    /// future `spawn` start method needs: the test binary runs itself again, with the encoded
    /// reference and argument in its environment, and that copy runs only the half that
    /// executes them.
    #[test]
    fn a_task_ref_runs_in_a_fresh_copy_of_the_binary() {
        let arg = codec::encode(&vec![25]).unwrap();
        let message = codec::encode(&(Task::new(doubler).to_ref(), arg)).unwrap();
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "task::tests::fresh_copy_runs_the_task",
                "--ignored",
                "--nocapture",
            ])
            .env(TASK_VAR, hex(&message))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.contains("result=50\n"), "{stdout}");
    }

    /// The half that runs in the fresh copy, started by the test above.
    #[test]
    #[ignore = "runs only in the copy that a_task_ref_runs_in_a_fresh_copy_of_the_binary starts"]
    fn fresh_copy_runs_the_task() {
        let message = std::env::var(TASK_VAR).expect("started by the test above");
        let (task, arg): (TaskRef, Vec<u8>) = codec::decode(&unhex(&message)).unwrap();
        // SAFETY: the reference was made by this same test executable, run by its parent.
        let result = unsafe { task.run(&arg) }.unwrap();
        let results: ChunkResults<i32> = codec::decode(&result).unwrap();
        println!("result={}", results[0].as_ref().unwrap());
    }
}
