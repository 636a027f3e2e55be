"""The CPython baseline of the `bench` package: the same figures, measured the same way, with
CPython's `multiprocessing` and `concurrent.futures` (start method `fork`, the runtime's
default, except where a figure names `spawn` or `forkserver`) and the standard library only.

Prints one `name: value unit` line per figure, the names of `bench/src/catalogue.rs`, and `#`
comment lines. `cargo run --release -p bench -- --compare` runs it after the Rust figures and
prints a table of both; run alone: `python3 bench/baseline.py [--smoke]`.

Children started by `spawn` and `forkserver` import this script again, as `__mp_main__`: only
definitions run at the top level, and the work stays under the `__main__` guard at the end.
"""

import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import sys
import time

CTX = multiprocessing.get_context("fork")
SPAWN = multiprocessing.get_context("spawn")
FORKSERVER = multiprocessing.get_context("forkserver")

# The counts of `Scale::FULL` and `Scale::SMOKE` in bench/src/lib.rs, and two of this script's
# own: a start by spawn takes CPython tens of milliseconds, so the starts by spawn and
# forkserver take fewer samples here than the runtime's, which share `warmup` and `samples`.
FULL = dict(warmup=100, samples=1000, runs=5, ints=100_000, messages=100,
            message_bytes=1 << 20, map_inputs=100_000, chunk1_inputs=10_000,
            imap_items=1_000_000, size_bytes=64 << 20, size_messages=100_000,
            fib_calls=8, fib_time=0.030, lock_pairs=2_000_000, contended_pairs=1_000_000,
            start_warmup=5, start_samples=100)
SMOKE = dict(warmup=1, samples=5, runs=1, ints=100, messages=4, message_bytes=64 << 10,
             map_inputs=1000, chunk1_inputs=100, imap_items=1000, size_bytes=64 << 10,
             size_messages=4, fib_calls=8, fib_time=0.001,
             lock_pairs=1000, contended_pairs=1000, start_warmup=1, start_samples=1)

# The payload sizes of the throughput curves and their names' endings (`SIZES` in
# bench/src/catalogue.rs).
SIZES = [(64, "64b"), (4 << 10, "4kib"), (256 << 10, "256kib"), (16 << 20, "16mib")]

UNITS = {"ms": "{:.1f}", "µs": "{:.1f}", "MiB": "{:.1f}", "x": "{:.2f}", "": "{:.2f}"}


def record(name, value, unit):
    """Prints one figure's line, formatted as the Rust side formats it."""
    number = UNITS.get(unit, "{:.1f}" if value < 100 else "{:.0f}").format(value)
    print(f"{name}: {number} {unit}".rstrip(), flush=True)


# --- Timing: warm up, take turns, keep the median (bench/src/measure.rs) ---------------------

def alternate(warmup, samples, *contenders):
    """Calls each contender `warmup` times, then `samples` times, taking turns call by call;
    each call returns the seconds that count. Returns one list of samples per contender."""
    for _ in range(warmup):
        for contender in contenders:
            contender()
    taken = [[] for _ in contenders]
    for _ in range(samples):
        for contender, samples_of in zip(contenders, taken):
            samples_of.append(contender())
    return taken


def timed(work):
    """Seconds that `work()` takes, and what it returned."""
    start = time.perf_counter()
    value = work()
    return time.perf_counter() - start, value


def median_micros(samples, per=1):
    return statistics.median(samples) * 1e6 / per


def median_millis(samples):
    return statistics.median(samples) * 1e3


def median_rate(samples, count):
    return statistics.median(count / s for s in samples)


def succeeded(process):
    if process.exitcode != 0:
        raise RuntimeError(f"a child process ended with exit code {process.exitcode}")


# --- The floor (bench/src/floor.rs), through os.fork, os.posix_spawn and os.pipe --------------

def fork_wait():
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return time.perf_counter() - start


def spawn_wait():
    start = time.perf_counter()
    pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"/bin/true ended with status {status}")
    return elapsed


class Echo:
    """A bare child that echoes 8-byte messages back; with `one_cpu`, the child and each round
    trip are held to this process's first CPU (moving there is not timed)."""

    def __init__(self, one_cpu=False):
        self.cpu = min(os.sched_getaffinity(0)) if one_cpu else None
        down_read, self.to_child = os.pipe()
        self.from_child, up_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.to_child)
            os.close(self.from_child)
            if self.cpu is not None:
                os.sched_setaffinity(0, {self.cpu})
            while data := os.read(down_read, 8):
                os.write(up_write, data)
            os._exit(0)
        os.close(down_read)
        os.close(up_write)

    def roundtrip(self):
        if self.cpu is None:
            return self.timed_roundtrip()
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.cpu})
        try:
            return self.timed_roundtrip()
        finally:
            os.sched_setaffinity(0, before)

    def timed_roundtrip(self):
        start = time.perf_counter()
        os.write(self.to_child, b"\1" * 8)
        reply = b""
        while len(reply) < 8:
            reply += os.read(self.from_child, 8 - len(reply))
        return time.perf_counter() - start

    def finish(self):
        os.close(self.to_child)
        os.waitpid(self.pid, 0)


def read_exact(fd, view):
    got = 0
    while got < len(view):
        count = os.readv(fd, [view[got:]])
        if count == 0:
            raise RuntimeError("the pipe ended early")
        got += count


def pipe_bandwidth(payload, messages):
    read_end, write_end = os.pipe()
    buffer = memoryview(bytearray(len(payload)))
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        with open(write_end, "wb", buffering=0) as output:
            for _ in range(messages):
                output.write(payload)
        os._exit(0)
    os.close(write_end)
    for _ in range(messages):
        read_exact(read_end, buffer)
    elapsed = time.perf_counter() - start
    os.close(read_end)
    os.waitpid(pid, 0)
    return elapsed


# --- multiprocessing and concurrent.futures ---------------------------------------------------

def empty():
    pass


def start_join(ctx=CTX):
    p = ctx.Process(target=empty)
    elapsed, _ = timed(lambda: (p.start(), p.join()))
    succeeded(p)
    return elapsed


def put_ints(q, count):
    for i in range(count):
        q.put(i)


def put_payload(q, payload, count):
    for _ in range(count):
        q.put(payload)


def send_payload(conn, payload, count):
    for _ in range(count):
        conn.send_bytes(payload)


def pipe_bytes(payload, count):
    """Seconds from a producer's start until the parent has received `count` messages with
    `recv_bytes`."""
    reader, writer = CTX.Pipe(duplex=False)
    producer = CTX.Process(target=send_payload, args=(writer, payload, count))

    def work():
        producer.start()
        for _ in range(count):
            if len(reader.recv_bytes()) != len(payload):
                raise RuntimeError("a message arrived with another size")

    elapsed, _ = timed(work)
    producer.join()
    succeeded(producer)
    writer.close()
    reader.close()
    return elapsed


def transfer(count, target, *args):
    """Seconds from a producer's start until the parent has got `count` messages."""
    q = CTX.Queue()
    producer = CTX.Process(target=target, args=(q, *args))

    def work():
        producer.start()
        for _ in range(count):
            q.get()

    elapsed, _ = timed(work)
    producer.join()
    succeeded(producer)
    return elapsed


def square(x):
    return x * x


def check_squares(results, inputs):
    if list(results) != [square(x) for x in inputs]:
        raise RuntimeError(f"the squares of {inputs} came back wrong")


def checked(work, inputs):
    elapsed, results = timed(work)
    check_squares(results, inputs)
    return elapsed


def identity(payload):
    return payload


def map_identity(pool, payload, count):
    # Distinct copies: pickle writes an object it meets again in one chunk as a reference.
    inputs = [bytes(bytearray(payload)) for _ in range(count)]
    elapsed, results = timed(lambda: pool.map(identity, inputs))
    if results != inputs:
        raise RuntimeError("the payloads came back changed")
    return elapsed


def peak_rss_mib():
    """VmHWM from /proc/self/status: the most memory this process has held at once."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM: line")


def imap_then_report(count, report):
    with CTX.Pool(2) as pool:
        for i, result in enumerate(pool.imap(square, range(count))):
            if result != square(i):
                raise RuntimeError(f"the square of {i} came back wrong")
    report.send(peak_rss_mib())


def imap_peak_rss(count):
    """The peak memory of a child started by spawn (so that nothing this process did counts)
    that reads the results of `imap` as they come."""
    reader, writer = SPAWN.Pipe(duplex=False)
    child = SPAWN.Process(target=imap_then_report, args=(count, writer))
    child.start()
    writer.close()
    child.join()
    succeeded(child)
    return reader.recv()


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def calibrate(target):
    n = 1
    while timed(lambda: fib(n))[0] < target:
        n += 1
    return n


def lock_pairs(lock, pairs):
    for _ in range(pairs):
        lock.acquire()
        lock.release()


def uncontended(pairs):
    lock = CTX.Lock()
    return timed(lambda: lock_pairs(lock, pairs))[0]


def contended(pairs):
    lock = CTX.Lock()
    workers = [CTX.Process(target=lock_pairs, args=(lock, pairs)) for _ in range(2)]

    def work():
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    elapsed, _ = timed(work)
    for w in workers:
        succeeded(w)
    return elapsed


# --- The groups, in the order of bench/src/lib.rs ---------------------------------------------

def forks(s):
    raw, process = alternate(s["warmup"], s["samples"], fork_wait, start_join)
    record("raw_fork_wait_median", median_micros(raw), "µs")
    record("process_fork_start_join_median", median_micros(process), "µs")


def fresh_starts(s):
    """The starts by spawn and forkserver, with the counts of their own (see FULL), in turns
    with the bare posix_spawn. The Rust side samples forkserver with `forks`; the table sets it
    against the Rust floors only, so here it needs no fork of its own beside it."""
    raw, spawn, forkserver = alternate(
        s["start_warmup"], s["start_samples"],
        spawn_wait,
        lambda: start_join(SPAWN),
        lambda: start_join(FORKSERVER),
    )
    record("raw_posix_spawn_wait_median", median_micros(raw), "µs")
    record("process_spawn_start_join_median", median_micros(spawn), "µs")
    record("process_forkserver_start_join_median", median_micros(forkserver), "µs")


def pools(s):
    # The echoing children end last, in the reverse order of their start (see lib.rs).
    pinned, placed = Echo(one_cpu=True), Echo()
    with CTX.Pool(2) as pool, concurrent.futures.ProcessPoolExecutor(2, mp_context=CTX) as ex:
        raw, scheduled, apply, submit = alternate(
            s["warmup"], s["samples"],
            pinned.roundtrip,
            placed.roundtrip,
            lambda: checked(lambda: [pool.apply_async(square, (7,)).get()], range(7, 8)),
            lambda: checked(lambda: [ex.submit(square, 7).result()], range(7, 8)),
        )
        record("raw_pipe_roundtrip_placed_median", median_micros(scheduled), "µs")
        record("raw_pipe_roundtrip_median", median_micros(raw), "µs")
        record("pool_apply_async_get_median", median_micros(apply), "µs")
        record("ppe_submit_result_median", median_micros(submit), "µs")
        # The same calls with this process, the pool's threads and its workers on the CPU of
        # the pinned floor.
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})
        try:
            with CTX.Pool(2) as one_pool, \
                    concurrent.futures.ProcessPoolExecutor(2, mp_context=CTX) as one_ex:
                apply, submit = alternate(
                    s["warmup"], s["samples"],
                    lambda: checked(lambda: [one_pool.apply_async(square, (7,)).get()],
                                    range(7, 8)),
                    lambda: checked(lambda: [one_ex.submit(square, 7).result()], range(7, 8)),
                )
        finally:
            os.sched_setaffinity(0, before)
        record("pool_apply_async_get_one_cpu_median", median_micros(apply), "µs")
        record("ppe_submit_result_one_cpu_median", median_micros(submit), "µs")

        n, big = s["chunk1_inputs"], s["map_inputs"]
        default, chunk1, ex_map = alternate(
            1, s["runs"],
            lambda: checked(lambda: pool.map(square, range(big)), range(big)),
            lambda: checked(lambda: pool.map(square, range(n), chunksize=1), range(n)),
            lambda: checked(lambda: list(ex.map(square, range(n))), range(n)),
        )
        record("pool_map_default_chunksize_wall", median_millis(default), "ms")
        record("pool_map_chunksize1_per_task", median_micros(chunk1, n), "µs")
        record("ppe_map_chunksize1_per_item", median_micros(ex_map, n), "µs")
    placed.finish()
    pinned.finish()


def imap_memory(s):
    few = s["imap_items"] // 100
    print(f"# peak memory reading {few} results of Pool.imap: {imap_peak_rss(few):.1f} MiB",
          flush=True)
    record("pool_imap_1m_items_peak_rss", imap_peak_rss(s["imap_items"]), "MiB")


def big_messages(s):
    payload = bytes(i % 256 for i in range(s["message_bytes"]))
    count = s["messages"]
    raw, queue, pipe = alternate(
        1, s["runs"],
        lambda: pipe_bandwidth(payload, count),
        lambda: transfer(count, put_payload, payload, count),
        lambda: pipe_bytes(payload, count),
    )
    mib = count * len(payload) / (1 << 20)
    record("raw_pipe_bandwidth", median_rate(raw, mib), "MiB/s")
    record("queue_1mib_throughput", median_rate(queue, mib), "MiB/s")
    record("pipe_1mib_throughput", median_rate(pipe, mib), "MiB/s")


def small_messages(s):
    count = s["ints"]
    (ints,) = alternate(1, s["runs"], lambda: transfer(count, put_ints, count))
    record("queue_ints_throughput", median_rate(ints, count), "msgs/s")


def payload_sizes(s):
    with CTX.Pool(2) as pool:
        for size, ending in SIZES:
            payload = bytes(i % 256 for i in range(size))
            count = min(max(s["size_bytes"] // size, 1), s["size_messages"])
            raw, queue, pipe, pool_map = alternate(
                1, s["runs"],
                lambda: pipe_bandwidth(payload, count),
                lambda: transfer(count, put_payload, payload, count),
                lambda: pipe_bytes(payload, count),
                lambda: map_identity(pool, payload, count),
            )
            mib = count * size / (1 << 20)
            record(f"raw_pipe_throughput_{ending}", median_rate(raw, mib), "MiB/s")
            record(f"queue_throughput_{ending}", median_rate(queue, mib), "MiB/s")
            record(f"pipe_throughput_{ending}", median_rate(pipe, mib), "MiB/s")
            record(f"pool_map_throughput_{ending}", median_rate(pool_map, mib), "MiB/s")


def cpu_speedups(s):
    n = calibrate(s["fib_time"])
    calls = [n] * s["fib_calls"]
    expected = fib(n)

    def read_all(executor):
        elapsed, results = timed(lambda: list(executor.map(fib, calls)))
        if results != [expected] * len(calls):
            raise RuntimeError("a Fibonacci call returned a wrong result")
        return elapsed

    with concurrent.futures.ProcessPoolExecutor(2, mp_context=CTX) as processes, \
            concurrent.futures.ThreadPoolExecutor(2) as threads:
        record("load_average_1min", os.getloadavg()[0], "")
        sequential, on_processes, on_threads = alternate(
            1, s["runs"],
            lambda: timed(lambda: [fib(c) for c in calls])[0],
            lambda: read_all(processes),
            lambda: read_all(threads),
        )
    sequential = median_millis(sequential)
    print(f"# {len(calls)} calls of fib({n}): {sequential:.0f} ms one after the other", flush=True)
    record("cpu_speedup_process_pool2", sequential / median_millis(on_processes), "x")
    record("cpu_speedup_thread_pool2", sequential / median_millis(on_threads), "x")


def locks(s):
    alone, two = alternate(
        1, s["runs"],
        lambda: uncontended(s["lock_pairs"]),
        lambda: contended(s["contended_pairs"]),
    )
    record("mp_lock_uncontended_pairs_per_s", median_rate(alone, s["lock_pairs"]), "pairs/s")
    record("mp_lock_contended_2proc_pairs_per_s",
           median_rate(two, 2 * s["contended_pairs"]), "pairs/s")


def main():
    sys.stdout.reconfigure(encoding="utf-8")
    scale = SMOKE if "--smoke" in sys.argv[1:] else FULL
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# CPython {platform.python_version()}", flush=True)
    print(f"# load average {load} at the start", flush=True)
    for group in (forks, fresh_starts, pools, imap_memory, big_messages, small_messages,
                  payload_sizes, cpu_speedups, locks):
        group(scale)


if __name__ == "__main__":
    main()
