//! Benchmarks the runtime side by side with the floor the operating system sets (a bare
//! `fork` + `waitpid`, a bare `posix_spawn` + `waitpid`, a bare pipe) and, with `--compare`,
//! with CPython's `multiprocessing` doing the same work (`bench/baseline.py`).
//!
//! Book: "Performance". Run: `cargo run --release -p bench -- --compare`.
//!
//! Each figure is a median over repeated samples after a warm-up, and each runtime figure is
//! sampled in turns with the floor it is set against, so that the ratio between them holds on
//! a busy machine even when both move. [`run`] measures every figure of the
//! [`catalogue`] and prints one `name: value unit` line for each.

pub mod catalogue;
pub mod chart;
pub mod compare;
pub mod cpu;
pub mod floor;
pub mod lock;
pub mod machine;
pub mod measure;
pub mod pipe;
pub mod pool;
pub mod process;
pub mod queue;

use std::time::Duration;

use multiprocessing::futures::{ProcessPoolExecutor, ThreadPoolExecutor};
use multiprocessing::{Pool, StartMethod};

use catalogue::{
    IMAP_PEAK, LOAD, PIPE_1MIB, RAW_BANDWIDTH, RAW_FORK, RAW_ROUNDTRIP, RAW_ROUNDTRIP_PLACED,
    RAW_SPAWN, SIZES,
};
use measure::{Figures, alternate, load_average, median_micros, median_millis, median_rate};

/// What can go wrong: the runtime's errors, the system's, and the benchmark's own messages.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How much work each figure does.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Untimed calls of each contender before the samples.
    pub warmup: usize,
    /// Samples of each single operation (a fork, a round trip).
    pub samples: usize,
    /// Runs of each throughput, wall-clock or speed-up figure.
    pub runs: usize,
    /// Small integers sent through a queue in one run.
    pub ints: u64,
    /// Large messages sent through a queue, a pipe and a bare pipe in one run.
    pub messages: u64,
    /// The size of a large message, in bytes.
    pub message_bytes: usize,
    /// Inputs of `Pool.map` in the default chunk size.
    pub map_inputs: u64,
    /// Inputs of each map in chunks of 1.
    pub chunk1_inputs: u64,
    /// Inputs of `Pool.imap` whose peak memory is measured.
    pub imap_items: u64,
    /// Bytes sent at each payload size in one run of a throughput curve...
    pub size_bytes: usize,
    /// ...in this many messages at most.
    pub size_messages: usize,
    /// Fibonacci calls in each CPU speed-up run, and how long each should take.
    pub fib_calls: usize,
    /// How long one Fibonacci call should take.
    pub fib_time: Duration,
    /// Acquire/release pairs on an uncontended lock, in one run.
    pub lock_pairs: u64,
    /// Acquire/release pairs by each of two processes on a contended lock, in one run.
    pub contended_pairs: u64,
}

impl Scale {
    /// The figures of issue 8: a few minutes, most of them CPython's.
    pub const FULL: Scale = Scale {
        warmup: 100,
        samples: 1000,
        runs: 5,
        ints: 100_000,
        messages: 100,
        message_bytes: 1 << 20,
        map_inputs: 100_000,
        chunk1_inputs: 10_000,
        imap_items: 1_000_000,
        size_bytes: 64 << 20,
        size_messages: 100_000,
        fib_calls: 8,
        fib_time: Duration::from_millis(30),
        lock_pairs: 2_000_000,
        contended_pairs: 1_000_000,
    };

    /// Tiny counts that prove every figure runs, for the smoke test; the values mean nothing.
    pub const SMOKE: Scale = Scale {
        warmup: 1,
        samples: 5,
        runs: 1,
        ints: 100,
        messages: 4,
        message_bytes: 64 << 10,
        map_inputs: 1000,
        chunk1_inputs: 100,
        imap_items: 1000,
        size_bytes: 64 << 10,
        size_messages: 4,
        fib_calls: 8,
        fib_time: Duration::from_millis(1),
        lock_pairs: 1000,
        contended_pairs: 1000,
    };
}

/// Measures every figure, printing each line as it is taken.
///
/// # Errors
///
/// The first failure of the runtime, the system, or a check on a result.
pub fn run(scale: &Scale) -> Result<Figures> {
    let mut figures = Figures::default();
    let [one, five, fifteen] = load_average()?;
    figures.note(format!(
        "load average {one:.2} {five:.2} {fifteen:.2} at the start"
    ));
    forks(scale, &mut figures)?;
    spawns(scale, &mut figures)?;
    pools(scale, &mut figures)?;
    imap_memory(scale, &mut figures)?;
    big_messages(scale, &mut figures)?;
    small_messages(scale, &mut figures)?;
    payload_sizes(scale, &mut figures)?;
    cpu_speedups(scale, &mut figures)?;
    locks(scale, &mut figures)?;
    Ok(figures)
}

/// A bare fork + waitpid and a `Process` start + join by `fork` and by `forkserver`, in turns.
/// The fork server is spawned in the warm-up; it has one thread, and so has this process when
/// it forks the floor, which a note says.
fn forks(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let [raw, fork, forkserver] = alternate(
        scale.warmup,
        scale.samples,
        [
            &mut floor::fork_wait,
            &mut || process::start_join(StartMethod::Fork),
            &mut || process::start_join(StartMethod::Forkserver),
        ],
    )?;
    let threads = match floor::threads()? {
        1 => "1 thread".to_owned(),
        n => format!("{n} threads"),
    };
    figures.note(format!(
        "bare fork + waitpid forked from a process of {threads} (the fork server has 1)"
    ));
    figures.record(RAW_FORK, median_micros(&raw, 1));
    figures.record("process_fork_start_join_median", median_micros(&fork, 1));
    figures.record(
        "process_forkserver_start_join_median",
        median_micros(&forkserver, 1),
    );
    Ok(())
}

/// A bare posix_spawn + waitpid of `/bin/true` and a `Process` start + join by `spawn`, in
/// turns.
fn spawns(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let [raw, spawn] = alternate(
        scale.warmup,
        scale.samples,
        [&mut floor::spawn_wait, &mut || {
            process::start_join(StartMethod::Spawn)
        }],
    )?;
    figures.record(RAW_SPAWN, median_micros(&raw, 1));
    figures.record("process_spawn_start_join_median", median_micros(&spawn, 1));
    Ok(())
}

/// The round trips against a bare pipe's, then the maps, on one `Pool(2)` and one
/// `ProcessPoolExecutor(2)`. The floor is the bare round trip with both ends on one CPU; the
/// same left to the scheduler is a note.
fn pools(scale: &Scale, figures: &mut Figures) -> Result<()> {
    // The echoing children come first and end last, in the reverse order: each process forked
    // after one of them holds a copy of its input, which it only sees end once all are closed.
    let mut pinned = floor::Echo::start_on_one_cpu()?;
    let mut placed = floor::Echo::start()?;
    let pool = Pool::new(2)?;
    let executor = ProcessPoolExecutor::new(2)?;
    let [raw, scheduled, apply, submit] = alternate(
        scale.warmup,
        scale.samples,
        [
            &mut || pinned.roundtrip(),
            &mut || placed.roundtrip(),
            &mut || pool::apply_async_get(&pool),
            &mut || pool::submit_result(&executor),
        ],
    )?;
    figures.record(RAW_ROUNDTRIP_PLACED, median_micros(&scheduled, 1));
    figures.record(RAW_ROUNDTRIP, median_micros(&raw, 1));
    figures.record("pool_apply_async_get_median", median_micros(&apply, 1));
    figures.record("ppe_submit_result_median", median_micros(&submit, 1));
    // The same calls with the caller, the pool's threads and its workers on the CPU of the
    // pinned floor, where no wake-up has to cross to another CPU: forked, so that the
    // workers are children of the pinned manager thread.
    let [apply, submit] = floor::on_one_cpu(|| {
        let pool = Pool::builder()
            .processes(2)
            .start_method(StartMethod::Fork)
            .build()?;
        let executor = ProcessPoolExecutor::builder()
            .max_workers(2)
            .start_method(StartMethod::Fork)
            .processes()?;
        alternate(
            scale.warmup,
            scale.samples,
            [&mut || pool::apply_async_get(&pool), &mut || {
                pool::submit_result(&executor)
            }],
        )
    })?;
    figures.record(
        "pool_apply_async_get_one_cpu_median",
        median_micros(&apply, 1),
    );
    figures.record(
        "ppe_submit_result_one_cpu_median",
        median_micros(&submit, 1),
    );

    let n = scale.chunk1_inputs;
    let [default, chunk1, executor_map] = alternate(
        1,
        scale.runs,
        [
            &mut || pool::map_default(&pool, scale.map_inputs),
            &mut || pool::map_chunksize1(&pool, n),
            &mut || pool::executor_map(&executor, n),
        ],
    )?;
    figures.record("pool_map_default_chunksize_wall", median_millis(&default));
    figures.record("pool_map_chunksize1_per_task", median_micros(&chunk1, n));
    figures.record(
        "ppe_map_chunksize1_per_item",
        median_micros(&executor_map, n),
    );
    drop((pool, executor));
    placed.finish()?;
    pinned.finish()
}

/// The peak memory of a process reading `Pool::imap`'s results, and the same for a hundredth
/// of the inputs as a note: the look-ahead bounds what it holds, so the two should be close.
fn imap_memory(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let few = scale.imap_items / 100;
    figures.note(format!(
        "peak memory reading {few} results of Pool.imap: {:.1} MiB",
        pool::imap_peak_rss(few)?
    ));
    figures.record(IMAP_PEAK, pool::imap_peak_rss(scale.imap_items)?);
    Ok(())
}

/// Large messages through a bare pipe, a bare socket pair, a `Queue` and a `Pipe`, in turns.
fn big_messages(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let payload: Vec<u8> = (0..scale.message_bytes).map(|i| i as u8).collect();
    let count = scale.messages;
    let [raw, socket, queue, pipe] = alternate(
        1,
        scale.runs,
        [
            &mut || floor::pipe_bandwidth(&payload, count as usize),
            &mut || floor::socket_bandwidth(&payload, count as usize),
            &mut || queue::bytes(&payload, count),
            &mut || pipe::bytes(&payload, count),
        ],
    )?;
    let mib = (count as usize * scale.message_bytes) as f64 / f64::from(1 << 20);
    figures.note(format!(
        "bare Unix socket pair bandwidth, which a Pipe is made of: {:.0} MiB/s",
        median_rate(&socket, mib)
    ));
    figures.record(RAW_BANDWIDTH, median_rate(&raw, mib));
    figures.record("queue_1mib_throughput", median_rate(&queue, mib));
    figures.record(PIPE_1MIB, median_rate(&pipe, mib));
    Ok(())
}

/// Small integers through a `Queue`.
fn small_messages(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let [ints] = alternate(1, scale.runs, [&mut || queue::ints(scale.ints)])?;
    figures.record(
        "queue_ints_throughput",
        median_rate(&ints, scale.ints as f64),
    );
    Ok(())
}

/// Each payload size of the curves through a bare pipe, a `Queue`, a `Pipe` and a `Pool(2)`'s
/// `map`, in turns; the number of messages makes `size_bytes`, within `size_messages`.
fn payload_sizes(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let pool = Pool::new(2)?;
    for size in SIZES {
        let payload: Vec<u8> = (0..size.bytes).map(|i| i as u8).collect();
        let count = (scale.size_bytes / size.bytes).clamp(1, scale.size_messages);
        let [raw, queue, pipe, map] = alternate(
            1,
            scale.runs,
            [
                &mut || floor::pipe_bandwidth(&payload, count),
                &mut || queue::bytes(&payload, count as u64),
                &mut || pipe::bytes(&payload, count as u64),
                &mut || pool::map_identity(&pool, &payload, count),
            ],
        )?;
        let mib = (count * size.bytes) as f64 / f64::from(1 << 20);
        figures.record(size.floor, median_rate(&raw, mib));
        figures.record(size.queue, median_rate(&queue, mib));
        figures.record(size.pipe, median_rate(&pipe, mib));
        figures.record(size.pool, median_rate(&map, mib));
    }
    Ok(())
}

/// Fibonacci calls one after the other, then on two processes and on two threads, in turns;
/// the load average beside them.
fn cpu_speedups(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let n = cpu::calibrate(scale.fib_time);
    let expected = cpu::fib(n);
    let calls = vec![n; scale.fib_calls];
    let processes = ProcessPoolExecutor::new(2)?;
    let threads = ThreadPoolExecutor::new(2)?;
    figures.record(LOAD, load_average()?[0]);
    let [sequential, on_processes, on_threads] = alternate(
        1,
        scale.runs,
        [
            &mut || Ok(cpu::sequential(n, calls.len())),
            &mut || cpu::read_all(processes.map(cpu::fib, calls.clone()), expected),
            &mut || cpu::read_all(threads.map(cpu::fib, calls.clone()), expected),
        ],
    )?;
    let sequential = median_millis(&sequential);
    figures.note(format!(
        "{} calls of fib({n}): {sequential:.0} ms one after the other",
        calls.len()
    ));
    let speedup = |samples: &[Duration]| sequential / median_millis(samples);
    figures.record("cpu_speedup_process_pool2", speedup(&on_processes));
    figures.record("cpu_speedup_thread_pool2", speedup(&on_threads));
    Ok(())
}

/// Acquire/release pairs on a `Lock`: alone, and two processes at once.
fn locks(scale: &Scale, figures: &mut Figures) -> Result<()> {
    let [alone, two] = alternate(
        1,
        scale.runs,
        [&mut || lock::uncontended(scale.lock_pairs), &mut || {
            lock::contended(scale.contended_pairs)
        }],
    )?;
    figures.record(
        "mp_lock_uncontended_pairs_per_s",
        median_rate(&alone, scale.lock_pairs as f64),
    );
    figures.record(
        "mp_lock_contended_2proc_pairs_per_s",
        median_rate(&two, 2.0 * scale.contended_pairs as f64),
    );
    Ok(())
}
