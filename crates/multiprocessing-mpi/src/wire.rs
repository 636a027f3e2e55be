//! What rank 0 and the other ranks say to each other: commands one way, results the other,
//! each a message of bytes encoded by the runtime's codec.

use mpi::Tag;
use multiprocessing::codec::{self, Bytes};
use multiprocessing::task::TaskRef;
use multiprocessing::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::abort;

/// The tag of a command, from rank 0 to another rank.
pub(crate) const COMMAND: Tag = 1;

/// The tag of a result, from a worker to rank 0.
pub(crate) const RESULT: Tag = 2;

/// What rank 0 tells another rank to do.
#[derive(Serialize, Deserialize)]
pub(crate) enum Command {
    /// Run `task` on `args`, an encoded `Vec` of its arguments, and send back an [`Outcome`].
    Run { task: TaskRef, args: Bytes },
    /// Take part in a scatter, run `task` on the share received, and take part in the
    /// gather of the outcomes: [`World::scatter_gather`](crate::World::scatter_gather).
    Scatter { task: TaskRef },
    /// Stop serving: the program on rank 0 is ending.
    Exit,
}

impl Command {
    /// The command to run `task` on `args`, encoded, ready to send.
    pub(crate) fn run<A: Serialize>(task: TaskRef, args: &[A]) -> Result<Vec<u8>> {
        codec::encode(&Command::Run {
            task,
            args: Bytes(codec::encode(args)?),
        })
    }
}

/// What running a chunk gives: the results as [`TaskRef::run`] encodes them, or why there are
/// none. A panic in a call is not here: it is that call's result.
#[derive(Serialize, Deserialize)]
pub(crate) enum Outcome {
    Results(Bytes),
    /// The arguments could not be decoded (or decoding them panicked).
    NotDecoded(String),
    /// The results could not be encoded.
    NotEncoded(String),
}

impl Outcome {
    /// Runs `task` on `args` here, in this process.
    ///
    /// The panic hook knows it is in a task: a panic is caught, and becomes that call's
    /// result, or the chunk's [`Outcome::NotDecoded`] when the arguments' `Deserialize`
    /// panicked; it does not end the job.
    pub(crate) fn of(task: TaskRef, args: &[u8]) -> Outcome {
        let ran = abort::in_task(|| {
            std::panic::catch_unwind(|| {
                // SAFETY: every rank runs the same executable file (`init` compares them
                // before any task is sent), and `task` was made by `Task::to_ref` on rank 0.
                unsafe { task.run(args) }
            })
        });
        match ran {
            Ok(Ok(results)) => Outcome::Results(Bytes(results)),
            Ok(Err(Error::Encode { message })) => Outcome::NotEncoded(message),
            Ok(Err(error)) => Outcome::NotDecoded(error.to_string()),
            Err(_) => Outcome::NotDecoded("decoding the arguments panicked".into()),
        }
    }

    /// The outcome as it travels.
    pub(crate) fn encode(&self) -> Vec<u8> {
        codec::encode(self).unwrap_or_else(|error| {
            codec::encode(&Outcome::NotEncoded(error.to_string()))
                .expect("an outcome of one string encodes")
        })
    }

    /// The outcome that `bytes` hold: the encoded results, or the error that stands for all
    /// of them.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<u8>> {
        match codec::decode::<Outcome>(bytes)? {
            Outcome::Results(Bytes(results)) => Ok(results),
            Outcome::NotDecoded(message) => Err(Error::Decode { message }),
            Outcome::NotEncoded(message) => Err(Error::Encode { message }),
        }
    }
}
