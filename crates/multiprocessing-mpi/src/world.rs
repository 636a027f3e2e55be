//! [`init`] and [`World`]: the job as rank 0 sees it, and the loop every other rank serves in.

use std::fs::File;
use std::hash::Hasher;
use std::io::Read;
use std::thread::JoinHandle;

use mpi::Count;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, Destination, Root, Source};
use mpi::{Rank, Threading};
use multiprocessing::codec;
use multiprocessing::task::{ChunkResults, Task};
use multiprocessing::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abort;
use crate::wire::{COMMAND, Command, Outcome, RESULT};

/// Starts MPI in this process; on rank 0, returns the [`World`] the program uses, and on every
/// other rank serves rank 0's work until rank 0's `World` is dropped, then ends the process.
/// The counterpart of `multiprocessing::init()` for an MPI job: call it first thing in `main`,
/// since on all ranks but 0 nothing after it runs.
///
/// It checks that every rank runs the same executable file, which is what lets a plain `fn`
/// travel as a [`TaskRef`](multiprocessing::task::TaskRef), and installs a panic hook: a panic outside a task, on any rank and
/// any thread, ends the whole job with `MPI_Abort` instead of leaving the other ranks waiting.
///
/// # Example
///
/// ```no_run
/// fn main() -> multiprocessing::Result<()> {
///     let world = multiprocessing_mpi::init();
///     println!("{} ranks", world.size());
///     Ok(())
/// }
/// ```
///
/// The lesson `lesson-mpi` runs more.
///
/// # Panics
///
/// When MPI was initialised in this process already (it can be, once), or cannot run a
/// program with threads. On any rank, a different executable file from rank 0's aborts the
/// job.
pub fn init() -> World {
    let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
        .expect("MPI is initialised once per process: call multiprocessing_mpi::init() once");
    abort::install();
    assert!(
        threading >= Threading::Serialized,
        "this MPI library lets only one thread call it ({threading:?}); an executor needs two"
    );
    let world = universe.world();
    check_same_executable(&world);
    if world.rank() != 0 {
        serve(&world);
        abort::finish();
        drop(universe);
        std::process::exit(0);
    }
    World {
        size: world.size(),
        manager: None,
        _universe: universe,
    }
}

/// The ranks of the job, as rank 0 sees them: runs a map over all of them with one scatter
/// and one gather, or lends them to an [`MpiPoolExecutor`](crate::MpiPoolExecutor). Dropping
/// it tells the other ranks to end, then finalizes MPI.
pub struct World {
    size: Rank,
    /// The manager of an executor shut down without waiting, still finishing its calls.
    manager: Option<JoinHandle<()>>,
    /// Last: finalizes MPI when dropped, after the other ranks are told to end.
    _universe: Universe,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl World {
    /// How many ranks the job has, rank 0 included: `mpirun -np`'s number, MPI's
    /// `MPI_Comm_size`.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// Calls `f` on each input on every rank at once and returns the results in input order:
    /// `Pool.map` with one large chunk per rank. The inputs are cut into as many shares as
    /// there are ranks, of sizes that differ by one at most; one scatter gives each rank its
    /// share (rank 0 keeps the first), each runs it, and one gather brings the results back.
    ///
    /// # Example
    ///
    /// ```no_run
    /// fn square(n: u64) -> u64 {
    ///     n * n
    /// }
    ///
    /// fn main() -> multiprocessing::Result<()> {
    ///     let mut world = multiprocessing_mpi::init();
    ///     assert_eq!(world.scatter_gather(square, [1, 2, 3])?, [1, 4, 9]);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// The first call's error, in input order: [`Error::TaskPanicked`] for a panic;
    /// [`Error::Encode`], [`Error::Decode`]; [`Error::MessageTooLarge`] when the inputs come
    /// to 2 GiB or more encoded, which one scatter cannot carry.
    ///
    /// # Panics
    ///
    /// When the results come to 2 GiB or more encoded; that panic ends the job.
    pub fn scatter_gather<A, R>(
        &mut self,
        f: fn(A) -> R,
        inputs: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>>
    where
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.finish_manager();
        let task = Task::new(f).to_ref();
        let inputs: Vec<A> = inputs.into_iter().collect();
        let shares = shares(inputs.len(), self.size());
        let mut encoded = Vec::new();
        let mut start = 0;
        for len in shares {
            encoded.push(codec::encode(&inputs[start..start + len])?);
            start += len;
        }
        let counts = counts(&encoded)?;
        drop(inputs);

        let world = SimpleCommunicator::world();
        let command = codec::encode(&Command::Scatter { task })?;
        for rank in 1..self.size {
            world
                .process_at_rank(rank)
                .send_with_tag(&command[..], COMMAND);
        }
        let root = world.process_at_rank(0);
        let mut count: Count = 0;
        root.scatter_into_root(&counts[..], &mut count);
        let mut share = vec![0; count as usize];
        let all = encoded.concat();
        let starts = displacements(&counts);
        let partition = Partition::new(&all[..], &counts[..], &starts[..]);
        root.scatter_varcount_into_root(&partition, &mut share[..]);
        drop((all, encoded));
        let outcomes = gather_root(&world, &Outcome::of(task, &share).encode());

        let mut results = Vec::new();
        for outcome in outcomes {
            let chunk: ChunkResults<R> = codec::decode(&Outcome::decode(&outcome)?)?;
            for result in chunk {
                results.push(result.map_err(|message| Error::TaskPanicked { message })?);
            }
        }
        Ok(results)
    }

    /// Keeps the manager of an executor that was shut down without waiting, for the next
    /// user of the ranks to wait for.
    pub(crate) fn leave_manager(&mut self, manager: JoinHandle<()>) {
        self.manager = Some(manager);
    }

    /// Waits for the manager of an executor shut down without waiting, if there is one: until
    /// it ends, the other ranks are its.
    pub(crate) fn finish_manager(&mut self) {
        if let Some(manager) = self.manager.take() {
            let _ = manager.join();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.finish_manager();
        let world = SimpleCommunicator::world();
        let exit = codec::encode(&Command::Exit).expect("a command without fields encodes");
        for rank in 1..self.size {
            world
                .process_at_rank(rank)
                .send_with_tag(&exit[..], COMMAND);
        }
        abort::finish();
    }
}

// ANCHOR: serve
/// Every rank but 0: runs what rank 0 sends, until it says to stop.
fn serve(world: &SimpleCommunicator) {
    let root = world.process_at_rank(0);
    loop {
        let (message, _) = root.receive_vec_with_tag::<u8>(COMMAND);
        let command: Command =
            codec::decode(&message).expect("rank 0 sends commands that every rank reads");
        match command {
            Command::Run { task, args } => {
                let outcome = Outcome::of(task, &args).encode();
                root.send_with_tag(&outcome[..], RESULT);
            }
            Command::Scatter { task } => {
                let mut count: Count = 0;
                root.scatter_into(&mut count);
                let mut share = vec![0; count as usize];
                root.scatter_varcount_into(&mut share[..]);
                let outcome = Outcome::of(task, &share).encode();
                let count = counts(std::slice::from_ref(&outcome))
                    .expect("a share's results fit in one message")[0];
                root.gather_into(&count);
                root.gather_varcount_into(&outcome[..]);
            }
            Command::Exit => return,
        }
    }
}
// ANCHOR_END: serve

/// Rank 0's part of a gather of one message from each rank, its own `mine` first.
fn gather_root(world: &SimpleCommunicator, mine: &[u8]) -> Vec<Vec<u8>> {
    let root = world.process_at_rank(0);
    let mut counts = vec![0 as Count; world.size() as usize];
    let own = counts_of(mine.len()).expect("a share's results fit in one message");
    root.gather_into_root(&own, &mut counts[..]);
    let total: usize = counts.iter().map(|&count| count as usize).sum();
    assert!(
        counts_of(total).is_some(),
        "the results come to {total} bytes, too many for one gather; use an MpiPoolExecutor"
    );
    let mut all = vec![0; total];
    let displacements = displacements(&counts);
    let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displacements[..]);
    root.gather_varcount_into_root(mine, &mut partition);
    let mut rest = &all[..];
    counts
        .iter()
        .map(|&count| {
            let (message, after) = rest.split_at(count as usize);
            rest = after;
            message.to_vec()
        })
        .collect()
}

/// How many inputs each of `ranks` ranks gets: `len` split into parts that differ by one at
/// most, the larger ones first.
fn shares(len: usize, ranks: usize) -> impl Iterator<Item = usize> {
    (0..ranks).map(move |rank| len / ranks + usize::from(rank < len % ranks))
}

/// The lengths of `messages` as MPI counts, if each fits, and so does their sum: the offsets
/// of a scatter are counts too.
fn counts(messages: &[Vec<u8>]) -> Result<Vec<Count>> {
    let total: usize = messages.iter().map(Vec::len).sum();
    let counts: Option<Vec<Count>> = messages
        .iter()
        .map(|message| counts_of(message.len()))
        .collect();
    match (counts, counts_of(total)) {
        (Some(counts), Some(_)) => Ok(counts),
        _ => Err(Error::MessageTooLarge {
            size: total,
            limit: Count::MAX as usize,
        }),
    }
}

/// `len` as an MPI count, if it fits.
fn counts_of(len: usize) -> Option<Count> {
    Count::try_from(len).ok()
}

/// Where each message starts when they are laid end to end.
fn displacements(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |start, &count| {
            let here = *start;
            *start += count;
            Some(here)
        })
        .collect()
}

/// Aborts the job unless every rank runs the same executable file as rank 0, byte for byte:
/// a `TaskRef` names a function by its place in the file, and means nothing in another.
fn check_same_executable(world: &SimpleCommunicator) {
    let mut fingerprint = executable_fingerprint();
    let mine = fingerprint;
    world.process_at_rank(0).broadcast_into(&mut fingerprint);
    assert_eq!(
        mine,
        fingerprint,
        "rank {} runs another executable file than rank 0; run the same file on every host",
        world.rank()
    );
}

/// A hash of this process's executable file.
fn executable_fingerprint() -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    let mut file = std::env::current_exe()
        .and_then(File::open)
        .expect("a process can read its own executable file");
    let mut buffer = vec![0; 1 << 16];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.write(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => panic!("cannot read this process's executable file: {error}"),
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_inputs_in_parts_that_differ_by_one_at_most() {
        assert_eq!(shares(10, 4).collect::<Vec<_>>(), [3, 3, 2, 2]);
        assert_eq!(shares(2, 4).collect::<Vec<_>>(), [1, 1, 0, 0]);
        assert_eq!(shares(8, 4).collect::<Vec<_>>(), [2, 2, 2, 2]);
        assert_eq!(shares(0, 1).collect::<Vec<_>>(), [0]);
        assert_eq!(displacements(&[3, 0, 2]), [0, 3, 3]);
    }

    #[test]
    fn messages_of_2_gib_do_not_fit_a_scatter() {
        assert_eq!(counts(&[vec![0; 3], vec![]]).unwrap(), [3, 0]);
        assert_eq!(counts_of(Count::MAX as usize), Some(Count::MAX));
        assert_eq!(counts_of(Count::MAX as usize + 1), None);
    }
}
