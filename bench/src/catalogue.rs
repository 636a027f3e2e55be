//! Every figure the benchmark prints: its name, its unit, the floor it is set against and the
//! targets of issue 8. The Rust run, the Python baseline and the comparison table all follow
//! this list, so a name is spelled once.

/// Which way a figure is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    /// A time: smaller is better.
    Lower,
    /// A rate or a speed-up: larger is better.
    Higher,
    /// Context, such as the load average: not better either way.
    Neither,
}

/// A goal a figure should reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// A time at most this many times its floor.
    WithinFloor(f64),
    /// A rate at least this share of its floor.
    ShareOfFloor(f64),
    /// At least this many times better than CPython.
    TimesPython(f64),
    /// A value of at least this much.
    AtLeast(f64),
}

/// One figure.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// The name printed before the colon.
    pub name: &'static str,
    /// The unit printed after the value.
    pub unit: &'static str,
    /// Which way it is better.
    pub better: Better,
    /// The floor it is compared with: the name of a `raw_` figure.
    pub floor: Option<&'static str>,
    /// The goals it should reach.
    pub targets: &'static [Target],
}

const fn spec(name: &'static str, unit: &'static str, better: Better) -> Spec {
    Spec {
        name,
        unit,
        better,
        floor: None,
        targets: &[],
    }
}

impl Spec {
    const fn floor(mut self, floor: &'static str) -> Spec {
        self.floor = Some(floor);
        self
    }

    const fn targets(mut self, targets: &'static [Target]) -> Spec {
        self.targets = targets;
        self
    }

    /// `value` as the figure's line shows it: one decimal for times and sizes, two for ratios,
    /// whole numbers for rates from 100 up and one decimal below.
    pub fn format(&self, value: f64) -> String {
        match self.unit {
            "µs" | "ms" | "MiB" => format!("{value:.1}"),
            "x" | "" => format!("{value:.2}"),
            _ if value < 100.0 => format!("{value:.1}"),
            _ => format!("{value:.0}"),
        }
    }

    /// The figure's line: `name: value unit`.
    pub fn line(&self, value: f64) -> String {
        format!("{}: {} {}", self.name, self.format(value), self.unit)
            .trim_end()
            .to_owned()
    }
}

/// The bare `fork` + `waitpid` floor, forked from this process while it has one thread: the
/// floor of `fork`, and of `forkserver`, whose single-threaded server forks each child.
pub const RAW_FORK: &str = "raw_fork_wait_median";
/// The bare `posix_spawn` + `waitpid` floor, of `/bin/true`: the floor of `spawn`.
pub const RAW_SPAWN: &str = "raw_posix_spawn_wait_median";
/// The bare pipe round-trip floor, both ends held to one CPU.
pub const RAW_ROUNDTRIP: &str = "raw_pipe_roundtrip_median";
/// The bare pipe round trip with the ends where the scheduler puts them.
pub const RAW_ROUNDTRIP_PLACED: &str = "raw_pipe_roundtrip_placed_median";
/// The bare pipe bandwidth floor.
pub const RAW_BANDWIDTH: &str = "raw_pipe_bandwidth";
/// The machine's load average over the last minute, printed beside the CPU speed-ups.
pub const LOAD: &str = "load_average_1min";

/// 1 MiB messages through `Connection::send_bytes` and `recv_bytes`.
pub const PIPE_1MIB: &str = "pipe_1mib_throughput";
/// The peak resident memory of a process reading a million results of `Pool::imap`.
pub const IMAP_PEAK: &str = "pool_imap_1m_items_peak_rss";

/// One payload size of the throughput curves, and the names of its figures, each in MiB/s.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    /// The payload, in bytes.
    pub bytes: usize,
    /// The size as the chart's axis shows it: `64 B`.
    pub label: &'static str,
    /// A bare pipe: the floor of the other three.
    pub floor: &'static str,
    /// `Queue::put` and `get` of a `Vec<u8>`.
    pub queue: &'static str,
    /// `Connection::send_bytes` and `recv_bytes`.
    pub pipe: &'static str,
    /// `Pool::map` of the identity on `Vec<u8>`s.
    pub pool: &'static str,
}

/// The payload sizes of the throughput curves, 64 times apart.
pub const SIZES: [Size; 4] = [
    Size {
        bytes: 64,
        label: "64 B",
        floor: "raw_pipe_throughput_64b",
        queue: "queue_throughput_64b",
        pipe: "pipe_throughput_64b",
        pool: "pool_map_throughput_64b",
    },
    Size {
        bytes: 4 << 10,
        label: "4 KiB",
        floor: "raw_pipe_throughput_4kib",
        queue: "queue_throughput_4kib",
        pipe: "pipe_throughput_4kib",
        pool: "pool_map_throughput_4kib",
    },
    Size {
        bytes: 256 << 10,
        label: "256 KiB",
        floor: "raw_pipe_throughput_256kib",
        queue: "queue_throughput_256kib",
        pipe: "pipe_throughput_256kib",
        pool: "pool_map_throughput_256kib",
    },
    Size {
        bytes: 16 << 20,
        label: "16 MiB",
        floor: "raw_pipe_throughput_16mib",
        queue: "queue_throughput_16mib",
        pipe: "pipe_throughput_16mib",
        pool: "pool_map_throughput_16mib",
    },
];

/// A throughput in MiB/s, as every figure of the curves is.
const fn rate(name: &'static str) -> Spec {
    spec(name, "MiB/s", Better::Higher)
}

/// Every figure, in the order of the issue and of the table.
pub const FIGURES: &[Spec] = &[
    spec(RAW_FORK, "µs", Better::Lower),
    spec(RAW_SPAWN, "µs", Better::Lower),
    spec(RAW_ROUNDTRIP, "µs", Better::Lower),
    spec(RAW_ROUNDTRIP_PLACED, "µs", Better::Lower),
    spec(RAW_BANDWIDTH, "MiB/s", Better::Higher),
    spec("process_fork_start_join_median", "µs", Better::Lower)
        .floor(RAW_FORK)
        .targets(&[Target::WithinFloor(1.5), Target::TimesPython(10.0)]),
    spec("process_spawn_start_join_median", "µs", Better::Lower)
        .floor(RAW_SPAWN)
        .targets(&[Target::TimesPython(10.0)]),
    spec("process_forkserver_start_join_median", "µs", Better::Lower)
        .floor(RAW_FORK)
        .targets(&[Target::TimesPython(10.0)]),
    spec("queue_ints_throughput", "msgs/s", Better::Higher)
        .targets(&[Target::AtLeast(1e6), Target::TimesPython(20.0)]),
    spec("queue_1mib_throughput", "MiB/s", Better::Higher)
        .floor(RAW_BANDWIDTH)
        .targets(&[Target::ShareOfFloor(0.7)]),
    spec(PIPE_1MIB, "MiB/s", Better::Higher)
        .floor(RAW_BANDWIDTH)
        .targets(&[Target::ShareOfFloor(0.9)]),
    spec("pool_map_default_chunksize_wall", "ms", Better::Lower),
    spec("pool_map_chunksize1_per_task", "µs", Better::Lower).targets(&[Target::TimesPython(10.0)]),
    spec("pool_apply_async_get_median", "µs", Better::Lower)
        .floor(RAW_ROUNDTRIP_PLACED)
        .targets(&[Target::WithinFloor(3.0)]),
    spec("ppe_submit_result_median", "µs", Better::Lower)
        .floor(RAW_ROUNDTRIP_PLACED)
        .targets(&[Target::WithinFloor(3.0)]),
    spec("pool_apply_async_get_one_cpu_median", "µs", Better::Lower)
        .floor(RAW_ROUNDTRIP)
        .targets(&[Target::WithinFloor(3.0)]),
    spec("ppe_submit_result_one_cpu_median", "µs", Better::Lower)
        .floor(RAW_ROUNDTRIP)
        .targets(&[Target::WithinFloor(3.0)]),
    spec("ppe_map_chunksize1_per_item", "µs", Better::Lower).targets(&[Target::TimesPython(10.0)]),
    spec(IMAP_PEAK, "MiB", Better::Lower),
    spec(LOAD, "", Better::Neither),
    spec("cpu_speedup_process_pool2", "x", Better::Higher).targets(&[Target::AtLeast(1.8)]),
    spec("cpu_speedup_thread_pool2", "x", Better::Higher).targets(&[Target::AtLeast(1.8)]),
    spec("mp_lock_uncontended_pairs_per_s", "pairs/s", Better::Higher)
        .targets(&[Target::AtLeast(1e7)]),
    spec(
        "mp_lock_contended_2proc_pairs_per_s",
        "pairs/s",
        Better::Higher,
    ),
    rate(SIZES[0].floor),
    rate(SIZES[0].queue).floor(SIZES[0].floor),
    rate(SIZES[0].pipe).floor(SIZES[0].floor),
    rate(SIZES[0].pool).floor(SIZES[0].floor),
    rate(SIZES[1].floor),
    rate(SIZES[1].queue).floor(SIZES[1].floor),
    rate(SIZES[1].pipe).floor(SIZES[1].floor),
    rate(SIZES[1].pool).floor(SIZES[1].floor),
    rate(SIZES[2].floor),
    rate(SIZES[2].queue).floor(SIZES[2].floor),
    rate(SIZES[2].pipe).floor(SIZES[2].floor),
    rate(SIZES[2].pool).floor(SIZES[2].floor),
    rate(SIZES[3].floor),
    rate(SIZES[3].queue).floor(SIZES[3].floor),
    rate(SIZES[3].pipe).floor(SIZES[3].floor),
    rate(SIZES[3].pool).floor(SIZES[3].floor),
];

/// The figure called `name`.
///
/// # Panics
///
/// If there is none: every name the benchmark records is in [`FIGURES`].
pub fn find(name: &str) -> &'static Spec {
    FIGURES
        .iter()
        .find(|spec| spec.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not in the catalogue"))
}
