//! The executors' API on MPI: the same program on every host of a cluster, rank 0 handing out
//! the calls. Python's counterpart is `mpi4py.futures`.
//!
//! Everything here needs the crate's `mpi` feature, which builds the `mpi` crate (rsmpi)
//! against the system's MPI library (Open MPI: `libopenmpi-dev`); without it the crate is
//! empty, so that a plain build of the workspace needs no MPI. Run a program with
//! `mpirun -np 4 target/release/<program>`.
//!
//! | Python (`mpi4py`) | here |
//! | --- | --- |
//! | `python -m mpi4py.futures program.py` | `init()` first thing in `main` |
//! | `MPI.COMM_WORLD.Get_size()` | `World::size` |
//! | `comm.scatter(chunks)`, `f` on each, `comm.gather(results)` | `World::scatter_gather(f, inputs)` |
//! | `MPIPoolExecutor()`, `submit`, `map`, `shutdown` | `MpiPoolExecutor::new(&mut world)`, the same methods |
//!
//! Rank 0 runs the program; every other rank calls `init()`, which does not return there: it
//! serves rank 0's calls until rank 0's `World` is dropped, then ends the process. A call
//! travels as a [`TaskRef`](multiprocessing::task::TaskRef), the place of a plain `fn` in the
//! executable file, which holds on every rank since every rank runs the same file (`init`
//! checks it); its argument and result are encoded by the runtime's `codec`. Futures and the
//! lazy `map` are the runtime's own, made through its `Promises`.
//!
//! A panic in a call is that call's error. A rank that panics outside a call, on any thread,
//! or dies, ends the whole job at once: `mpirun` then exits with a non-zero code, and no rank
//! is left waiting.

#[cfg(feature = "mpi")]
mod abort;
#[cfg(feature = "mpi")]
mod executor;
#[cfg(feature = "mpi")]
mod wire;
#[cfg(feature = "mpi")]
mod world;

#[cfg(feature = "mpi")]
pub use executor::MpiPoolExecutor;
#[cfg(feature = "mpi")]
pub use world::{World, init};
