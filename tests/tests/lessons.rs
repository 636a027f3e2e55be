//! Runs every lesson and checks it against its recordings, the files the book shows.
//!
//! Each binary under `lessons/` has a row in the `lessons!` table below, and each row becomes a
//! `#[test]` named after the binary (`spawn_args` runs `spawn-args`) that builds the lessons (once
//! per test run), runs the binary in a process group of its own, and checks:
//!
//! 1. stdout against its output recording, `output.txt` or `output-<variant>.txt`, whose line 1
//!    must be the command that runs it (with `--release` after `run` if the lesson is meant to
//!    be run that way, and then it is built that way);
//! 2. stderr against `stderr.txt` / `stderr-<variant>.txt` if that file exists, else that it is
//!    empty;
//! 3. that the lesson exits with code 0;
//! 4. that nothing it started outlives it: once it has exited, its process group is empty.
//!
//! A binary whose recording's line 1 is `$ mpirun -np <N> target/release/<binary>` runs that
//! way instead (`tests::mpirun`), built with its package's `mpi` feature; the test needs Open
//! MPI, so it runs only with this package's `mpi` feature, and is ignored without it.
//!
//! In a recording, `[PID]` stands for one or more digits and `[..]` for any text within a line.
//! Rows marked `AnyOrder` compare lines as a multiset, for lessons whose processes print at the
//! same time; rows marked `Words` compare words as a multiset, and only count the lines, for
//! lessons whose processes write pieces of a line at the same time. Either applies to stdout and
//! stderr alike.
//!
//! What a lesson is (its package, binaries and recordings) comes from the `tests` library,
//! which reads it from `lessons/`; `every_binary_has_a_row` and `lesson_folders_hold_only_lessons`
//! check the table and the folders against it, and `comparisons` checks the patterns and the
//! three ways of comparing output.

use std::collections::{HashMap, HashSet};
use std::env;
use std::fs;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tests::{Binary, Lesson, Recording, relative, workspace};

/// One `#[test]` per row: `test_name: Exact | AnyOrder | Words`, where the test's name is the
/// binary's with `_` for `-`, optionally followed by `, may print "<line>"` for a stdout line
/// that a race decides whether it appears (at most once, anywhere). Attributes before a row
/// go to its test.
macro_rules! lessons {
    ($($(#[$attribute:meta])* $test:ident: $order:ident $(, may print $racy:literal)*;)*) => {
        /// The names of the tests, one per row, for `every_binary_has_a_row`.
        const ROWS: &[&str] = &[$(stringify!($test)),*];

        $(
            #[test]
            $(#[$attribute])*
            fn $test() {
                check(stringify!($test), Order::$order, &[$($racy),*]);
            }
        )*
    };
}

lessons! {
    lesson_spawn: AnyOrder;
    spawn_args: AnyOrder;
    spawn_pid: AnyOrder;
    spawn_list_append: Exact;
    lesson_start_methods: Exact;
    fork_threads: Exact;
    lesson_names: AnyOrder;
    lesson_daemon: Exact;
    daemon_join: Exact;
    lesson_join_timeout: AnyOrder;
    lesson_terminate: Exact, may print "Starting worker";
    lesson_exitcode: Exact;
    lesson_logging: AnyOrder;
    get_logger: Exact;
    lesson_queue: Exact;
    queue_fancy: Exact;
    producer_consumer: AnyOrder;
    queue_pipe: Exact;
    lesson_lock: AnyOrder;
    nolock: Words;
    lesson_pool: AnyOrder;
    pool_apply_async: Exact;
    process_vs_pool: Exact;
    lesson_executor: Exact;
    fib_workers: Exact;
    gcd: Exact;
    primes: Exact;
    process_id: Exact;
    threads_vs_processes: Exact;
    cpu_bound: AnyOrder;
    lesson_robust_pool: Exact;
    #[cfg_attr(not(feature = "mpi"), ignore = "runs under mpirun: cargo test -p tests --features mpi")]
    lesson_mpi: Exact;
}

/// How long a lesson may run before it is killed and its test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// How long the output pipes may stay open once the lesson's process group is gone.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// How the lines a lesson prints are compared with the expected ones.
#[derive(Clone, Copy, Debug)]
#[expect(
    clippy::enum_variant_names,
    reason = "the table's rows read best as `Exact`, `AnyOrder` and `Words`"
)]
enum Order {
    /// Line by line, in order.
    Exact,
    /// As a multiset: each expected line matches a distinct printed line, in any order.
    AnyOrder,
    /// As a multiset of words, in as many lines: each expected word matches a distinct printed
    /// word, wherever it is. For writers whose words interleave inside a line.
    Words,
}

/// The name of the binary that the test `test` runs: the test's name with `-` for `_`.
fn binary_name(test: &str) -> String {
    test.replace('_', "-")
}

/// Runs the binary of test `test` and panics with a full report if anything differs from what
/// its recordings say. `racy` lines may appear in stdout or not, each at most once, anywhere,
/// depending on how the lesson's processes race; they are not in the recording.
fn check(test: &str, order: Order, racy: &[&str]) {
    let name = binary_name(test);
    let bin = Binary::named(&name)
        .unwrap_or_else(|| panic!("no lesson under lessons/ has a binary `{name}`"));
    let (expected, release) = bin
        .recording()
        .unwrap_or_else(|problem| panic!("{problem}"));
    let expected_stderr = bin
        .stderr
        .exists()
        .then(|| Recording::read(&bin.stderr).unwrap_or_else(|problem| panic!("{problem}")));
    let (stdout_file, stderr_file) = (relative(&bin.output), relative(&bin.stderr));

    let executable = build(release).binary(&name);
    let run = match expected.ranks() {
        Some(ranks) => run_mpi(executable, ranks),
        None => run(executable, &[]),
    };

    let mut problems = run.problems;
    if run.status.code() != Some(0) {
        problems.push(format!("expected exit code 0, got {}", run.status));
    }
    let stdout = without_racy_lines(&run.stdout, racy);
    if let Some(difference) = compare(&expected.output, &stdout, order) {
        problems.push(format!("stdout differs from {stdout_file}: {difference}"));
    }
    let stderr_output = expected_stderr.as_ref().map_or("", |e| e.output.as_str());
    if let Some(difference) = compare(stderr_output, &run.stderr, order) {
        problems.push(match expected_stderr {
            Some(_) => format!("stderr differs from {stderr_file}: {difference}"),
            None => format!("stderr should be empty, as there is no {stderr_file}: {difference}"),
        });
    }
    if let Some(stderr) = expected_stderr
        .as_ref()
        .filter(|e| e.command != expected.command)
    {
        problems.push(format!(
            "line 1 of {stderr_file} is `{}`, not `{}` as in {stdout_file}",
            stderr.command, expected.command,
        ));
    }

    if !problems.is_empty() {
        let order = match order {
            Order::Exact => "in order",
            Order::AnyOrder => "in any order",
            Order::Words => "word by word, in any order",
        };
        let stderr_source = match expected_stderr {
            Some(_) => format!("{stderr_file}, {order}"),
            None => format!("none: there is no {stderr_file}"),
        };
        panic!(
            "{name} failed:\n- {}\n\ncommand: {}\nran: {}\nexit status: {}\n\n\
             --- expected stdout ({stdout_file}, {order})\n{}\n--- actual stdout\n{}\n\
             --- expected stderr ({stderr_source})\n{}\n--- actual stderr\n{}\n---",
            problems.join("\n- "),
            expected.command,
            executable.display(),
            run.status,
            expected.output.trim_end_matches('\n'),
            run.stdout.trim_end_matches('\n'),
            stderr_output.trim_end_matches('\n'),
            run.stderr.trim_end_matches('\n'),
        );
    }
}

#[test]
fn ctrl_c_ends_every_process_of_a_lesson() {
    // process-id runs four worker processes, then four threads, for seconds each; the
    // daemon lesson has a daemonic child asleep.
    for bin in ["process-id", "lesson-daemon"] {
        let binary = build(false).binary(bin);
        let run = run_interrupted(binary, &[], Some(Duration::from_millis(500)));
        assert_eq!(
            run.status.signal(),
            Some(libc::SIGINT),
            "{bin}: {:?}",
            run.status
        );
        // Everything in the group got the signal and died: nothing is left.
        assert!(run.problems.is_empty(), "{bin}: {:?}", run.problems);
    }
}

#[test]
fn rust_log_overrides_the_level_set_in_code() {
    let binary = build(false).binary("get-logger");
    // The lesson sets INFO; RUST_LOG=warn silences it, RUST_LOG=debug adds DEBUG records.
    let quiet = run(binary, &[("RUST_LOG", "warn")]);
    assert!(
        quiet.status.success() && quiet.problems.is_empty(),
        "{:?}",
        quiet.problems
    );
    assert_eq!(quiet.stderr, "");
    let loud = run(binary, &[("RUST_LOG", "debug")]);
    assert!(
        loud.status.success() && loud.problems.is_empty(),
        "{:?}",
        loud.problems
    );
    let started = "[DEBUG/MainProcess] started Process-1 with pid [PID]";
    assert!(
        loud.stderr.lines().any(|line| line_matches(started, line)),
        "no `{started}` in:\n{}",
        loud.stderr
    );
}

// --- comparing output

/// `output` without the first occurrence of each of the `racy` lines.
fn without_racy_lines(output: &str, racy: &[&str]) -> String {
    let mut lines: Vec<&str> = output.lines().collect();
    for line in racy {
        if let Some(index) = lines.iter().position(|printed| printed == line) {
            lines.remove(index);
        }
    }
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// What differs between the expected and the actual output, if anything.
fn compare(expected: &str, actual: &str, order: Order) -> Option<String> {
    let (expected, actual) = (lines(expected), lines(actual));
    match order {
        Order::Exact => first_difference(&expected, &actual),
        Order::AnyOrder => unmatched(&expected, &actual),
        Order::Words => {
            let count = (expected.len() != actual.len())
                .then(|| format!("expected {} lines, got {}", expected.len(), actual.len()));
            let words = unmatched(&words(&expected), &words(&actual))
                .map(|difference| format!("words {difference}"));
            let differences: Vec<String> = count.into_iter().chain(words).collect();
            (!differences.is_empty()).then(|| differences.join("; "))
        }
    }
}

/// The words of `lines`, in order.
fn words<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    lines
        .iter()
        .flat_map(|line| line.split_whitespace())
        .collect()
}

/// The lines of `text`, however many newlines it ends with.
fn lines(text: &str) -> Vec<&str> {
    let text = text.trim_end_matches('\n');
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    }
}

/// Whether `line` matches `pattern`, in which `[PID]` stands for one or more digits and `[..]` for
/// any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    if let Some(rest) = pattern.strip_prefix("[..]") {
        (0..=line.len())
            .filter(|&i| line.is_char_boundary(i))
            .any(|i| line_matches(rest, &line[i..]))
    } else if let Some(rest) = pattern.strip_prefix("[PID]") {
        let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        (1..=digits).any(|n| line_matches(rest, &line[n..]))
    } else if let Some(c) = pattern.chars().next() {
        line.strip_prefix(c)
            .is_some_and(|line| line_matches(&pattern[c.len_utf8()..], line))
    } else {
        line.is_empty()
    }
}

/// The first line where `actual` does not match `expected`, in order.
fn first_difference(expected: &[&str], actual: &[&str]) -> Option<String> {
    let n = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| !line_matches(e, a))
        .unwrap_or(expected.len().min(actual.len()));
    let line = n + 1;
    match (expected.get(n), actual.get(n)) {
        (None, None) => None,
        (Some(e), Some(a)) => Some(format!("line {line}: expected `{e}`, got `{a}`")),
        (Some(e), None) => Some(format!("line {line}: expected `{e}`, got no more lines")),
        (None, Some(a)) => Some(format!("line {line}: expected no more lines, got `{a}`")),
    }
}

/// The lines left over when each expected line is paired with a distinct actual line it matches,
/// in any order, pairing as many as possible.
fn unmatched(expected: &[&str], actual: &[&str]) -> Option<String> {
    let candidates: Vec<Vec<usize>> = expected
        .iter()
        .map(|e| {
            (0..actual.len())
                .filter(|&j| line_matches(e, actual[j]))
                .collect()
        })
        .collect();
    let mut owner = vec![None; actual.len()];
    let missing: Vec<&str> = (0..expected.len())
        .filter(|&i| !pair(i, &candidates, &mut owner, &mut vec![false; actual.len()]))
        .map(|i| expected[i])
        .collect();
    let extra: Vec<&str> = (0..actual.len())
        .filter(|&j| owner[j].is_none())
        .map(|j| actual[j])
        .collect();
    let quote = |lines: &[&str]| {
        lines
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut differences = Vec::new();
    if !missing.is_empty() {
        differences.push(format!("expected but not printed: {}", quote(&missing)));
    }
    if !extra.is_empty() {
        differences.push(format!("printed but not expected: {}", quote(&extra)));
    }
    (!differences.is_empty()).then(|| differences.join("; "))
}

/// Pairs expected line `i` with an actual line, moving earlier pairs to other lines if that frees
/// one (an augmenting path, as in Kuhn's matching algorithm). `owner[j]` is the expected line
/// paired with actual line `j`; `seen` marks the actual lines this search has tried.
fn pair(
    i: usize,
    candidates: &[Vec<usize>],
    owner: &mut [Option<usize>],
    seen: &mut [bool],
) -> bool {
    for &j in &candidates[i] {
        if seen[j] {
            continue;
        }
        seen[j] = true;
        let previous = owner[j];
        if previous.is_none_or(|k| pair(k, candidates, owner, seen)) {
            owner[j] = Some(i);
            return true;
        }
    }
    false
}

/// The patterns and both comparisons, on cases small enough to read.
#[test]
fn comparisons() {
    assert_eq!(
        without_racy_lines(
            "a\nStarting worker\nb\nStarting worker\n",
            &["Starting worker"]
        ),
        "a\nb\nStarting worker\n"
    );
    assert_eq!(without_racy_lines("a\nb", &["Starting worker"]), "a\nb\n");
    assert!(line_matches("Worker: [PID]", "Worker: 4242"));
    assert!(!line_matches("Worker: [PID]", "Worker: "));
    assert!(!line_matches("Worker: [PID]", "Worker: 42x"));
    assert!(line_matches("took [..] s", "took  s"));
    assert!(line_matches("[..]: [..]", "a: b: c"));
    assert!(!line_matches("Worker", "Worker "));

    assert_eq!(compare("a\nb\n\n", "a\nb", Order::Exact), None);
    assert_eq!(
        compare("a\nb", "b\na", Order::Exact).as_deref(),
        Some("line 1: expected `a`, got `b`")
    );
    assert_eq!(compare("a\nb", "b\na", Order::AnyOrder), None);
    // `[..]` could take `Worker 1`, which only the second line matches: the pairing moves it.
    assert_eq!(
        compare("[..]\nWorker 1", "Worker 1\nx", Order::AnyOrder),
        None
    );
    assert_eq!(
        compare("a\na", "a\nb", Order::AnyOrder).as_deref(),
        Some("expected but not printed: `a`; printed but not expected: `b`")
    );
    // Words may move between lines; the number of lines stays.
    assert_eq!(compare("a b\nc d", "a c\nd b", Order::Words), None);
    assert_eq!(
        compare("a b\nc d", "a b c d", Order::Words).as_deref(),
        Some("expected 2 lines, got 1")
    );
    assert_eq!(
        compare("a b", "a c", Order::Words).as_deref(),
        Some("words expected but not printed: `b`; printed but not expected: `c`")
    );
}

// --- building the lessons

/// The lesson binaries cargo built, by name, and what it said while building them.
struct Build {
    binaries: HashMap<String, PathBuf>,
    log: String,
}

/// Builds every lesson package once per test run, in the dev profile or with `--release`.
///
/// The build shares the target directory of the `cargo test` that runs this: cargo has released
/// its lock on it by the time tests run, and the lessons' dependencies are already built there.
/// `--keep-going` builds every lesson that compiles even if another does not.
fn build(release: bool) -> &'static Build {
    static DEV: OnceLock<Build> = OnceLock::new();
    static RELEASE: OnceLock<Build> = OnceLock::new();
    let cell = if release { &RELEASE } else { &DEV };
    cell.get_or_init(|| {
        let mut cargo = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo.current_dir(workspace()).args([
            "build",
            "--quiet",
            "--bins",
            "--keep-going",
            "--message-format=json-render-diagnostics",
        ]);
        if release {
            cargo.arg("--release");
        }
        for lesson in Lesson::all() {
            cargo.arg("-p").arg(lesson.package());
            if cfg!(feature = "mpi") && runs_under_mpirun(&lesson) {
                cargo
                    .arg("--features")
                    .arg(format!("{}/mpi", lesson.package()));
            }
        }
        match cargo.output() {
            Ok(out) => Build {
                binaries: executables(&String::from_utf8_lossy(&out.stdout)),
                log: format!(
                    "{cargo:?}: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
            },
            Err(e) => Build {
                binaries: HashMap::new(),
                log: format!("{cargo:?}: {e}"),
            },
        }
    })
}

/// Whether a recording of `lesson` runs it under `mpirun`: then its `mpi` feature builds it.
fn runs_under_mpirun(lesson: &Lesson) -> bool {
    lesson.binaries.iter().any(|binary| {
        binary
            .recording()
            .is_ok_and(|(recording, _)| recording.ranks().is_some())
    })
}

impl Build {
    /// The path of binary `name`, or a panic with what cargo said.
    fn binary(&self, name: &str) -> &Path {
        self.binaries
            .get(name)
            .unwrap_or_else(|| panic!("cargo did not build `{name}`:\n{}", self.log))
    }
}

/// The executables listed in cargo's JSON messages, by file name.
fn executables(messages: &str) -> HashMap<String, PathBuf> {
    messages
        .lines()
        .filter(|m| m.contains(r#""reason":"compiler-artifact""#))
        .filter_map(|m| json_string(m, "executable"))
        .map(PathBuf::from)
        .filter_map(|path| Some((path.file_name()?.to_str()?.to_owned(), path)))
        .collect()
}

/// The string value of `"key"` in a line of JSON, if it is a string. Handles the escapes cargo
/// writes in paths (`\"`, `\\`); paths with control characters are not supported.
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!(r#""{key}":""#))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => value.push(chars.next()?),
            c => value.push(c),
        }
    }
}

// --- running a lesson

/// What happened when a lesson ran.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// What went wrong around the lesson: a timeout, processes left behind, pipes left open.
    problems: Vec<String>,
}

/// How long the processes of an interrupted lesson get to be reaped by `init`.
const INTERRUPT_PATIENCE: Duration = Duration::from_secs(10);

/// The CPUs a lesson may run on: two, as on the machine that recorded the outputs, since
/// some lessons print how many workers they start (`cpu_count() * 2` consumers).
const LESSON_CPUS: usize = 2;

/// Runs `binary` from the workspace root in a new process group, on [`LESSON_CPUS`] CPUs, the
/// way `cargo run` would but without the variables that change what Rust programs print
/// (`RUST_BACKTRACE`, `RUST_LOG`), unless `env` sets them.
fn run(binary: &Path, env: &[(&str, &str)]) -> Run {
    run_interrupted(binary, env, None)
}

/// [`run`], sending the process group `SIGINT` (what Ctrl-C sends) after `interrupt`, if set.
fn run_interrupted(binary: &Path, env: &[(&str, &str)], interrupt: Option<Duration>) -> Run {
    let mut command = Command::new(binary);
    // SAFETY: the closure runs in the forked child before exec and only makes system calls
    // (sched_setaffinity), which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let mut cpus: libc::cpu_set_t = std::mem::zeroed();
            for cpu in 0..LESSON_CPUS {
                libc::CPU_SET(cpu, &mut cpus);
            }
            // Where CPUs 0 and 1 are not both allowed, the lesson gets what is (or all).
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &cpus);
            Ok(())
        });
    }
    let mut child = command
        .current_dir(workspace())
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let group = Pid::from_raw(child.id().try_into().expect("a pid fits in pid_t"));
    let stdout = read_in_background(child.stdout.take().expect("stdout is piped"));
    let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
    let exit = wait_in_background(child);
    if let Some(after) = interrupt {
        thread::spawn(move || {
            thread::sleep(after);
            let _ = killpg(group, Signal::SIGINT);
        });
    }

    let mut problems = Vec::new();
    let status = match exit.recv_timeout(TIMEOUT) {
        Ok(status) => {
            let patience = interrupt.map_or(Duration::ZERO, |_| INTERRUPT_PATIENCE);
            problems.extend(leftovers(group, patience));
            status
        }
        Err(_) => {
            kill_group(group);
            problems.push(format!(
                "still running after {TIMEOUT:?}; killed its process group"
            ));
            exit.recv().expect("the waiting thread sends the status")
        }
    };
    let status = status.unwrap_or_else(|e| panic!("cannot wait for {}: {e}", binary.display()));
    let mut collect =
        |name: &str, pipe: Receiver<io::Result<Vec<u8>>>| match pipe.recv_timeout(PIPE_GRACE) {
            Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Err(e)) => {
                problems.push(format!("cannot read {name}: {e}"));
                String::new()
            }
            Err(_) => {
                problems.push(format!(
                    "{name} is still open {PIPE_GRACE:?} after the process group ended: a process \
                     that left the group holds it"
                ));
                String::new()
            }
        };
    Run {
        stdout: collect("stdout", stdout),
        stderr: collect("stderr", stderr),
        status,
        problems,
    }
}

/// Runs `binary` on `ranks` ranks under `mpirun`, with the same deadline as any lesson: each
/// rank is a process of its own, so the run ends when all have, and none may be left.
fn run_mpi(binary: &Path, ranks: usize) -> Run {
    let run = tests::mpirun::mpirun(binary, ranks, &[], &[], TIMEOUT);
    Run {
        status: run.status,
        stdout: run.stdout,
        stderr: run.stderr,
        problems: run.problems,
    }
}

/// Reads `pipe` to its end on another thread, so that neither pipe fills up and blocks the lesson.
fn read_in_background(mut pipe: impl Read + Send + 'static) -> Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = tx.send(pipe.read_to_end(&mut bytes).map(|_| bytes));
    });
    rx
}

/// Waits for `child` on another thread, so that the caller can wait with a timeout.
fn wait_in_background(mut child: Child) -> Receiver<io::Result<ExitStatus>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx
}

/// Checks that process group `group` is empty now that its leader has exited. If it is not, kills
/// it and says who was left.
///
/// The runtime reaps every child before its parent ends, so after a normal run the group is
/// empty the moment the lesson has been waited for: a zombie left in it is a child nobody
/// reaped. After an interrupt, every process dies at once and the children become zombies
/// for `init` to reap: then the group gets `patience` to empty.
fn leftovers(group: Pid, patience: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + patience;
    while killpg(group, None) != Err(Errno::ESRCH) {
        if std::time::Instant::now() >= deadline {
            return report_leftovers(group);
        }
        thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Kills what is left in `group` and says what it was.
fn report_leftovers(group: Pid) -> Option<String> {
    let members = group_members(group);
    kill_group(group);
    if members.is_empty() {
        // It emptied between the two looks.
        return None;
    }
    let members: Vec<String> = members.iter().map(Member::to_string).collect();
    Some(format!(
        "left processes in its group (running, or zombies nobody reaped), now killed: [{}]",
        members.join(", ")
    ))
}

/// Sends SIGKILL to every process in `group`.
fn kill_group(group: Pid) {
    match killpg(group, Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => panic!("cannot kill process group {group}: {e}"),
    }
}

/// A process, as `/proc/<pid>/stat` shows it.
struct Member {
    pid: String,
    name: String,
    state: char,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (state {})", self.pid, self.name, self.state)
    }
}

/// The processes in `group`, from `/proc/<pid>/stat` (`pid (name) state ppid pgrp ...`).
fn group_members(group: Pid) -> Vec<Member> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| {
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let (head, tail) = stat.rsplit_once(") ")?;
            let (pid, name) = head.split_once(" (")?;
            let mut fields = tail.split(' ');
            let state = fields.next()?.chars().next()?;
            let pgrp: i32 = fields.nth(1)?.parse().ok()?;
            (pgrp == group.as_raw()).then(|| Member {
                pid: pid.to_owned(),
                name: name.to_owned(),
                state,
            })
        })
        .collect()
}

// --- the lessons on disk

/// Every binary under `lessons/` has a row in the table, and every row a binary; no two lessons
/// have a binary of the same name, since the table and `cargo run --bin` find them by name.
#[test]
fn every_binary_has_a_row() {
    let mut problems = Vec::new();
    let mut seen = HashMap::new();
    for lesson in Lesson::all() {
        for binary in lesson.binaries {
            let test = binary.name.replace('-', "_");
            if !ROWS.contains(&test.as_str()) {
                problems.push(format!(
                    "{}: binary `{}` has no row `{test}` in the table",
                    binary.package, binary.name
                ));
            }
            if let Some(other) = seen.insert(binary.name.clone(), binary.package.clone()) {
                problems.push(format!(
                    "binary `{}` is in both {other} and {}",
                    binary.name, binary.package
                ));
            }
        }
    }
    for row in ROWS {
        let name = binary_name(row);
        if !seen.contains_key(&name) {
            problems.push(format!(
                "the table's row `{row}` runs `{name}`, which no lesson has"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the lessons table in {} disagrees with lessons/:\n- {}",
        file!(),
        problems.join("\n- ")
    );
}

/// Each lesson's package is called `lesson-<topic>`, after its folder, and every recording in
/// its folder belongs to one of its binaries.
#[test]
fn lesson_folders_hold_only_lessons() {
    let mut problems = Vec::new();
    for lesson in Lesson::all() {
        let manifest = lesson.dir.join("Cargo.toml");
        let expected = lesson.package();
        match package_name(&fs::read_to_string(&manifest).unwrap_or_default()) {
            Some(name) if name == expected => {}
            Some(name) => problems.push(format!(
                "{}: the package is `{name}`; it should be `{expected}`",
                relative(&manifest)
            )),
            None => problems.push(format!("{}: no `name` in [package]", relative(&manifest))),
        }
        let known: HashSet<&PathBuf> = lesson
            .binaries
            .iter()
            .flat_map(|binary| [&binary.output, &binary.stderr])
            .collect();
        for recording in lesson.recordings() {
            if !known.contains(&recording) {
                problems.push(format!(
                    "{} belongs to no binary: `output-<variant>.txt` and \
                     `stderr-<variant>.txt` go with `src/bin/<variant>.rs`",
                    relative(&recording)
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "lessons/ holds what is not a lesson:\n- {}",
        problems.join("\n- ")
    );
}

/// The value of `name` in the `[package]` table of a `Cargo.toml`.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}
