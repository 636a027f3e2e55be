//! What the runtime knows about a worker that ended in the middle of a task, or was stopped
//! in one: the answer to "a worker died and the error does not say why".

use std::fmt;
use std::time::Duration;

use crate::ExitStatus;

/// Which of a call's inputs a worker held when it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskPlace {
    /// The one input of an `apply_async` or a `submit`.
    Call,
    /// A chunk of a map: `count` inputs from the `first` (counted from 0).
    Inputs {
        /// The chunk's first input's place in the map's inputs.
        first: usize,
        /// How many inputs the chunk holds.
        count: usize,
    },
}

impl fmt::Display for TaskPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TaskPlace::Call => write!(f, "its call"),
            TaskPlace::Inputs { first, count: 1 } => write!(f, "input {first} of its map"),
            TaskPlace::Inputs { first, count } => {
                write!(f, "inputs {first} to {} of its map", first + count - 1)
            }
        }
    }
}

/// A worker that ended before it finished its task: who it was, what it ran, and how it
/// ended. Carried by [`Error::WorkerDied`](crate::Error::WorkerDied),
/// [`Error::BrokenProcessPool`](crate::Error::BrokenProcessPool),
/// [`Error::TaskTimedOut`](crate::Error::TaskTimedOut) and
/// [`Error::MemoryLimitExceeded`](crate::Error::MemoryLimitExceeded).
///
/// Its `Display` is one sentence, such as `worker ForkServerPoolWorker-2 (pid 4242) killed
/// by SIGKILL while running input 13 of its map, 0.52 s in; peak memory 1.2 GiB; the
/// kernel's out-of-memory killer most likely killed it`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnosis {
    /// The worker's name, `ForkPoolWorker-N` and the like.
    pub worker: String,
    /// Its process id, when it had started.
    pub pid: Option<u32>,
    /// How it ended.
    pub status: ExitStatus,
    /// What it was running, if anything.
    pub task: Option<TaskPlace>,
    /// How long that task had run when the worker ended (as its pool saw it).
    pub ran_for: Option<Duration>,
    /// The most memory the worker ever held resident, in bytes, where the system says.
    pub peak_memory: Option<u64>,
    /// Killed by `SIGKILL` while the kernel's out-of-memory killer was at work in this
    /// program's control group: most likely the machine, or the group, ran out of memory.
    pub likely_oom: bool,
}

impl Diagnosis {
    /// A worker known only by its name and how it ended.
    pub(crate) fn new(worker: String, status: ExitStatus) -> Diagnosis {
        Diagnosis {
            worker,
            pid: None,
            status,
            task: None,
            ran_for: None,
            peak_memory: None,
            likely_oom: false,
        }
    }

    /// The worker, as "worker NAME (pid N)".
    pub(crate) fn who(&self) -> String {
        match self.pid {
            Some(pid) => format!("worker {} (pid {pid})", self.worker),
            None => format!("worker {}", self.worker),
        }
    }

    /// What it ran and for how long, as " while running input 3 of its map, 0.52 s in".
    fn what(&self) -> String {
        match (self.task, self.ran_for) {
            (Some(task), Some(ran)) => {
                format!(" while running {task}, {:.2} s in", ran.as_secs_f64())
            }
            (Some(task), None) => format!(" while running {task}"),
            (None, _) => String::new(),
        }
    }

    /// The peak memory and the out-of-memory hint, each after "; ".
    fn memory(&self) -> String {
        let mut text = String::new();
        if let Some(peak) = self.peak_memory {
            text.push_str(&format!("; peak memory {}", bytes(peak)));
        }
        if self.likely_oom {
            text.push_str("; the kernel's out-of-memory killer most likely killed it");
        }
        text
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}{}",
            self.who(),
            self.status,
            self.what(),
            self.memory()
        )
    }
}

/// What a worker ran, for the errors that say it was stopped: "input 3 of its map", or "its
/// task" when it is not known.
pub(crate) fn task(diagnosis: &Diagnosis) -> String {
    diagnosis
        .task
        .map_or_else(|| "its task".to_owned(), |task| task.to_string())
}

/// A number of bytes the way people read them: `512 B`, `64.0 MiB`, `1.2 GiB`.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if count < 1024 {
        return format!("{count} B");
    }
    let mut value = count as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnosis_reads_as_one_sentence() {
        let mut diagnosis = Diagnosis::new("ForkPoolWorker-2".into(), ExitStatus::Signaled(9));
        assert_eq!(
            diagnosis.to_string(),
            "worker ForkPoolWorker-2 killed by SIGKILL"
        );
        diagnosis.pid = Some(4242);
        diagnosis.task = Some(TaskPlace::Inputs {
            first: 13,
            count: 1,
        });
        diagnosis.ran_for = Some(Duration::from_millis(520));
        diagnosis.peak_memory = Some(1288 << 20);
        diagnosis.likely_oom = true;
        assert_eq!(
            diagnosis.to_string(),
            "worker ForkPoolWorker-2 (pid 4242) killed by SIGKILL while running input 13 of \
             its map, 0.52 s in; peak memory 1.3 GiB; the kernel's out-of-memory killer most \
             likely killed it"
        );
    }

    #[test]
    fn places_and_sizes_read_naturally() {
        assert_eq!(TaskPlace::Call.to_string(), "its call");
        let chunk = TaskPlace::Inputs { first: 4, count: 4 };
        assert_eq!(chunk.to_string(), "inputs 4 to 7 of its map");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
