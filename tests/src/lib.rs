//! The lessons as the tests see them, read from the folders under `lessons/`: a [`Lesson`] per
//! package, a [`Binary`] per program in it, and the [`Recording`]s of what each prints.
//!
//! `tests/lessons.rs` runs every binary against its recordings; `tests/book.rs` checks that
//! the book shows every lesson's code and recordings. Both read the lessons from here, so the
//! two cannot disagree about what a lesson is. [`mpirun`] runs a program on the ranks of an
//! MPI job, for the lesson that runs that way and for the tests of `multiprocessing-mpi`.

use std::fs;
use std::path::{Path, PathBuf};

pub mod mpirun;

/// The workspace root: the parent of this `tests` package.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is inside the workspace")
}

/// `path` relative to the workspace root, with `/` separators, for messages.
pub fn relative(path: &Path) -> String {
    let inner = path.strip_prefix(workspace()).unwrap_or(path);
    let parts: Vec<String> = inner
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// A lesson: the package `lesson-<topic>` in the folder `lessons/<topic>/`, explained by the
/// chapter `book/src/<topic>.md`.
#[derive(Debug)]
pub struct Lesson {
    /// The folder's name, which names the package and the chapter.
    pub topic: String,
    /// The folder, `lessons/<topic>`.
    pub dir: PathBuf,
    /// The programs cargo finds in the package: `src/main.rs` first, then the others by name.
    pub binaries: Vec<Binary>,
}

/// One program of a lesson, with the files that record what it prints.
#[derive(Debug)]
pub struct Binary {
    /// Its name: the package's for `src/main.rs`, `<variant>` for `src/bin/<variant>.rs` (or
    /// `src/bin/<variant>/main.rs`).
    pub name: String,
    /// The package it belongs to, `lesson-<topic>`.
    pub package: String,
    /// The file that holds its `main`.
    pub source: PathBuf,
    /// What it prints on stdout: `output.txt` for the default binary, else
    /// `output-<variant>.txt`.
    pub output: PathBuf,
    /// What it prints on stderr: `stderr.txt` or `stderr-<variant>.txt`. A binary without one
    /// prints nothing there.
    pub stderr: PathBuf,
}

impl Lesson {
    /// Every folder under `lessons/` that holds a `Cargo.toml`, sorted by topic.
    pub fn all() -> Vec<Lesson> {
        entries(&workspace().join("lessons"))
            .into_iter()
            .filter(|dir| dir.join("Cargo.toml").is_file())
            .map(Lesson::read)
            .collect()
    }

    fn read(dir: PathBuf) -> Lesson {
        let topic = file_name(&dir);
        let package = format!("lesson-{topic}");
        let binary = |name: String, source: PathBuf, suffix: &str| Binary {
            output: dir.join(format!("output{suffix}.txt")),
            stderr: dir.join(format!("stderr{suffix}.txt")),
            package: package.clone(),
            name,
            source,
        };
        let mut binaries = Vec::new();
        let main = dir.join("src/main.rs");
        if main.is_file() {
            binaries.push(binary(package.clone(), main, ""));
        }
        for path in entries(&dir.join("src/bin")) {
            let source = if path.is_dir() {
                path.join("main.rs")
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                path.clone()
            } else {
                continue;
            };
            if source.is_file() {
                let name = stem(&path);
                let suffix = format!("-{name}");
                binaries.push(binary(name, source, &suffix));
            }
        }
        Lesson {
            topic,
            dir,
            binaries,
        }
    }

    /// `lesson-<topic>`.
    pub fn package(&self) -> String {
        format!("lesson-{}", self.topic)
    }

    /// The chapter that explains the lesson, `book/src/<topic>.md`.
    pub fn chapter(&self) -> PathBuf {
        workspace()
            .join("book/src")
            .join(format!("{}.md", self.topic))
    }

    /// Every `.rs` file under `src/`, sorted: the binaries' sources and any code they share.
    pub fn sources(&self) -> Vec<PathBuf> {
        files_under(&self.dir.join("src"), "rs")
    }

    /// The recordings in the folder, sorted: every `output*.txt` and `stderr*.txt`.
    pub fn recordings(&self) -> Vec<PathBuf> {
        entries(&self.dir)
            .into_iter()
            .filter(|path| path.is_file() && is_recording(path))
            .collect()
    }
}

impl Binary {
    /// The binary called `name`, in whichever lesson has it.
    pub fn named(name: &str) -> Option<Binary> {
        Lesson::all()
            .into_iter()
            .flat_map(|lesson| lesson.binaries)
            .find(|binary| binary.name == name)
    }

    /// The command that runs it, as line 1 of its recordings writes it: `$ cargo run`, then
    /// `--release` if `release`, then `-p <package>`, then `--bin <variant>` for all but the
    /// default binary.
    pub fn command(&self, release: bool) -> String {
        let release = if release { " --release" } else { "" };
        let bin = if self.name == self.package {
            String::new()
        } else {
            format!(" --bin {}", self.name)
        };
        format!("$ cargo run{release} -p {}{bin}", self.package)
    }

    /// The command that runs it on `ranks` ranks of an MPI job, as line 1 of its recordings
    /// writes it: `$ mpirun -np <ranks> target/release/<name>`, once built with
    /// `cargo build --release -p <package> --features mpi`.
    pub fn mpirun_command(&self, ranks: usize) -> String {
        format!("$ mpirun -np {ranks} target/release/{}", self.name)
    }

    /// Its stdout recording, and whether line 1 runs it with `--release` (as it does, under
    /// `mpirun`).
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or its line 1 is not [`command`](Binary::command), with
    /// `--release` or without, nor [`mpirun_command`](Binary::mpirun_command).
    pub fn recording(&self) -> Result<(Recording, bool), String> {
        let recording = Recording::read(&self.output)?;
        if recording.command == self.command(false) {
            Ok((recording, false))
        } else if recording.command == self.command(true) {
            Ok((recording, true))
        } else if let Some(ranks) = recording.ranks()
            && recording.command == self.mpirun_command(ranks)
        {
            Ok((recording, true))
        } else {
            Err(format!(
                "{}: line 1 is `{}`; it should be `{}` (or the same with `--release`)",
                relative(&self.output),
                recording.command,
                self.command(false)
            ))
        }
    }
}

/// A recording of what a binary prints, in the rust-lang/book format: line 1 is the command
/// that runs it, the rest is its output, in which `[PID]` stands for one or more digits and
/// `[..]` for any text within a line.
#[derive(Debug)]
pub struct Recording {
    /// Line 1.
    pub command: String,
    /// Everything after line 1.
    pub output: String,
}

impl Recording {
    /// How many ranks line 1 runs the binary on, when it runs it under `mpirun`.
    pub fn ranks(&self) -> Option<usize> {
        let rest = self.command.strip_prefix("$ mpirun -np ")?;
        rest.split(' ').next()?.parse().ok()
    }

    /// Reads the recording at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, with its name.
    pub fn read(path: &Path) -> Result<Recording, String> {
        let text = fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", relative(path)))?;
        let (command, output) = text.split_once('\n').unwrap_or((&text, ""));
        Ok(Recording {
            command: command.to_owned(),
            output: output.to_owned(),
        })
    }
}

/// Whether `path` is named like a recording: `output*.txt` or `stderr*.txt`.
pub fn is_recording(path: &Path) -> bool {
    let name = file_name(path);
    (name.starts_with("output") || name.starts_with("stderr")) && name.ends_with(".txt")
}

/// The files anywhere under `dir` whose extension is `extension`, sorted.
pub fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in entries(dir) {
        if path.is_dir() {
            files.extend(files_under(&path, extension));
        } else if path.extension().is_some_and(|ext| ext == extension) {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The entries of `dir`, sorted; none if it does not exist.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read_dir) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read_dir
        .map(|entry| entry.expect("a readable directory entry").path())
        .collect();
    paths.sort();
    paths
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("a path with a file name")
        .to_string_lossy()
        .into_owned()
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("a path with a file name")
        .to_string_lossy()
        .into_owned()
}
