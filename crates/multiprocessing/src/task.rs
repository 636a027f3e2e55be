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

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::Result;

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
    func: fn(A) -> R,
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
            .field("func", &(self.func as usize as *const ()))
            .finish()
    }
}

impl<A, R> Task<A, R>
where
    A: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// Wraps `func`, a `fn` item or a closure that captures nothing.
    pub const fn new(func: fn(A) -> R) -> Task<A, R> {
        Task { func }
    }

    /// Runs the function here, in this process.
    pub fn call(&self, arg: A) -> R {
        (self.func)(arg)
    }

    /// The reference to send to another process running the same executable.
    pub fn to_ref(&self) -> TaskRef {
        TaskRef {
            invoke: offset(invoke::<A, R> as *const () as usize),
            func: offset(self.func as *const () as usize),
        }
    }
}

/// A [`Task`] as it travels: where its code is, relative to this crate's anchor function.
///
/// It means something only in a process running the same executable file as the one that
/// made it; [`TaskRef::run`] is `unsafe` for that reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// The offset of `invoke::<A, R>`, which decodes, calls and encodes.
    invoke: i64,
    /// The offset of the user's function.
    func: i64,
}

/// The signature every `invoke::<A, R>` shares once its types are erased.
type Invoke = fn(usize, &[u8]) -> Result<Vec<u8>>;

impl TaskRef {
    /// Decodes `arg`, runs the task on it, and returns the encoded result.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`](crate::Error::Decode) when `arg` is not the task's argument type,
    /// [`Error::Encode`](crate::Error::Encode) when the result cannot be encoded.
    ///
    /// # Panics
    ///
    /// When the task panics; pools catch that and report it as the task's error.
    ///
    /// # Safety
    ///
    /// `self` must come from [`Task::to_ref`] in a process running the same executable file,
    /// unchanged: this process or its parent. Otherwise the offsets point at arbitrary code.
    pub unsafe fn run(&self, arg: &[u8]) -> Result<Vec<u8>> {
        // SAFETY: the caller guarantees that `invoke` is the offset of an `invoke::<A, R>` in
        // this very executable, whose type-erased signature is `Invoke`.
        let invoke: Invoke = unsafe { std::mem::transmute::<usize, Invoke>(address(self.invoke)) };
        invoke(address(self.func), arg)
    }
}

/// Decodes an `A`, calls the `fn(A) -> R` at `func`, encodes the `R`.
fn invoke<A: DeserializeOwned, R: Serialize>(func: usize, arg: &[u8]) -> Result<Vec<u8>> {
    // SAFETY: `TaskRef::run` pairs this `invoke::<A, R>` only with the `fn(A) -> R` recorded
    // beside it by `Task::<A, R>::to_ref`.
    let func = unsafe { std::mem::transmute::<usize, fn(A) -> R>(func) };
    let arg = codec::decode(arg)?;
    codec::encode(&func(arg))
}

/// A function whose address every offset is measured from.
#[inline(never)]
fn anchor() {}

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
    use super::*;
    use crate::Error;

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
        // SAFETY: made by `to_ref` in this process.
        let result = unsafe { task.run(&codec::encode(&25).unwrap()) }.unwrap();
        assert_eq!(codec::decode::<i32>(&result).unwrap(), 50);

        let task = Task::new(greet).to_ref();
        // SAFETY: as above.
        let result = unsafe { task.run(&codec::encode("Rust").unwrap()) }.unwrap();
        assert_eq!(codec::decode::<String>(&result).unwrap(), "Hello, Rust!");
    }

    #[test]
    fn a_wrong_argument_is_a_decode_error() {
        let task = Task::new(doubler).to_ref();
        // SAFETY: made by `to_ref` in this process.
        let result = unsafe { task.run(&[]) };
        assert!(matches!(result, Err(Error::Decode { .. })), "{result:?}");
    }

    #[test]
    fn different_tasks_have_different_refs() {
        assert_ne!(
            Task::new(doubler).to_ref(),
            Task::new(|n: i32| n + 1).to_ref()
        );
        assert_eq!(Task::new(doubler).to_ref(), Task::new(doubler).to_ref());
    }
}
