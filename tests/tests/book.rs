//! Checks that the book, the README and the lessons agree with each other.
//!
//! mdBook renders an empty block for a missing include or a misspelled anchor and still
//! succeeds, so these tests read the files themselves. Each test collects every problem it
//! finds and reports them all at once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Every chapter listed in `SUMMARY.md` exists, and every page in `book/src` is listed.
#[test]
fn summary_lists_exactly_the_chapters() {
    let root = workspace_root();
    let src = root.join("book/src");
    let listed = summary_chapters(&root);
    let mut problems = Vec::new();
    for chapter in &listed {
        if !src.join(chapter).is_file() {
            problems.push(format!(
                "SUMMARY.md lists `{chapter}`, which does not exist"
            ));
        }
    }
    for page in files_with_extension(&src, "md") {
        let name = relative(&src, &page);
        if name != "SUMMARY.md" && !listed.contains(&name) {
            problems.push(format!("book/src/{name} is not listed in SUMMARY.md"));
        }
    }
    report("the book's table of contents", problems);
}

/// Every include in the book names a file that exists, by anchor and never by line numbers.
#[test]
fn book_includes_resolve() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for page in files_with_extension(&root.join("book/src"), "md") {
        for include in includes(&page) {
            if let Err(problem) = include.check() {
                problems.push(format!("{}: {problem}", include.describe(&root, &page)));
            }
        }
    }
    report("includes in the book", problems);
}

/// In every lesson source, each `ANCHOR` has one matching `ANCHOR_END` after it.
#[test]
fn lesson_anchors_are_paired() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for lesson in lessons(&root) {
        for source in lesson.sources() {
            let anchors = Anchors::parse(&read(&source));
            for problem in anchors.problems {
                problems.push(format!("{}: {problem}", relative(&root, &source)));
            }
        }
    }
    report("anchors in the lessons", problems);
}

/// Every lesson has a chapter that shows all of its code and output, and every binary has an
/// output file that starts with the command that runs it.
#[test]
fn every_lesson_has_a_chapter_and_outputs() {
    let root = workspace_root();
    let listed = summary_chapters(&root);
    let mut problems = Vec::new();
    for lesson in lessons(&root) {
        problems.extend(lesson.check_outputs(&root));
        problems.extend(lesson.check_chapter(&root, &listed));
    }
    report("lessons, chapters and outputs", problems);
}

/// The README has a row for each lesson, linking its chapter, in the order of `SUMMARY.md`.
#[test]
fn readme_table_follows_the_summary() {
    let root = workspace_root();
    let listed = summary_chapters(&root);
    let rows: Vec<String> = read(&root.join("README.md"))
        .lines()
        .filter(|line| line.trim_start().starts_with('|'))
        .map(str::to_owned)
        .collect();
    let mut problems = Vec::new();
    // (position in SUMMARY.md, README row, topic) of each listed lesson that has a row.
    let mut found = Vec::new();
    for lesson in lessons(&root) {
        let package = lesson.package();
        let link = format!("](book/src/{}.md)", lesson.topic);
        let row = rows
            .iter()
            .position(|row| mentions(row, &package) && row.contains(&link));
        let position = listed.iter().position(|page| *page == lesson.chapter());
        match (row, position) {
            (Some(row), Some(position)) => found.push((position, row, lesson.topic)),
            // Not in SUMMARY.md: the chapter checks report it; it has no place to be in.
            (Some(_), None) => {}
            (None, _) => problems.push(format!(
                "README.md has no table row naming `{package}` and linking `book/src/{}.md`",
                lesson.topic
            )),
        }
    }
    found.sort_by_key(|(position, _, _)| *position);
    if !found.is_sorted_by_key(|(_, row, _)| *row) {
        let expected: Vec<String> = found.iter().map(|(_, _, topic)| topic.clone()).collect();
        found.sort_by_key(|(_, row, _)| *row);
        let actual: Vec<String> = found.into_iter().map(|(_, _, topic)| topic).collect();
        problems.push(format!(
            "README.md rows are in the order {actual:?}; SUMMARY.md has {expected:?}"
        ));
    }
    report("the README table", problems);
}

/// Each lesson's package is called `lesson-<topic>`, after its folder.
#[test]
fn lesson_packages_are_named_after_their_folder() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for lesson in lessons(&root) {
        let manifest = lesson.dir.join("Cargo.toml");
        let expected = lesson.package();
        match package_name(&read(&manifest)) {
            Some(name) if name == expected => {}
            Some(name) => problems.push(format!(
                "{}: package is `{name}`, expected `{expected}`",
                relative(&root, &manifest)
            )),
            None => problems.push(format!(
                "{}: no `name` in [package]",
                relative(&root, &manifest)
            )),
        }
    }
    report("lesson package names", problems);
}

/// What the header of a lesson that ports no example of the source material says instead.
const BEYOND_THE_SOURCE: &str = "beyond the source material";

/// What the header says when the example it ports has no file name in the source material
/// (a notebook cell, a book's listing); it then names the document instead.
const NO_FILE_NAME: &str = "no file name there";

/// Every lesson source opens with a `//!` header naming its Python example (or saying that it
/// goes beyond the source material) and its command.
#[test]
fn lesson_sources_have_headers() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for lesson in lessons(&root) {
        for source in lesson.sources() {
            let header = module_header(&read(&source));
            let file = relative(&root, &source);
            if header.is_empty() {
                problems.push(format!("{file}: does not start with a `//!` header"));
                continue;
            }
            let excused = header.contains(BEYOND_THE_SOURCE) || header.contains(NO_FILE_NAME);
            if !names_python_file(&header) && !excused {
                problems.push(format!(
                    "{file}: the header names no `.py` example (nor says `{NO_FILE_NAME}` or \
                     that it goes `{BEYOND_THE_SOURCE}`)"
                ));
            }
            if !header.contains("cargo run") {
                problems.push(format!("{file}: the header has no `cargo run` command"));
            }
        }
    }
    report("lesson headers", problems);
}

// ---------------------------------------------------------------------------------------------
// Lessons
// ---------------------------------------------------------------------------------------------

/// A lesson: a folder `lessons/<topic>/` holding package `lesson-<topic>`.
struct Lesson {
    topic: String,
    dir: PathBuf,
}

/// One binary of a lesson, with the output file and the command that go with it.
struct Binary {
    source: PathBuf,
    output: PathBuf,
    /// `--bin <variant>` for an extra binary, empty for the default one.
    bin_flag: String,
}

impl Lesson {
    /// `lesson-<topic>`.
    fn package(&self) -> String {
        format!("lesson-{}", self.topic)
    }

    /// Every `.rs` file under `src/`.
    fn sources(&self) -> Vec<PathBuf> {
        files_with_extension(&self.dir.join("src"), "rs")
    }

    /// `src/main.rs` with `output.txt`, then each `src/bin/<variant>.rs` with
    /// `output-<variant>.txt`.
    fn binaries(&self) -> Vec<Binary> {
        let mut binaries = vec![Binary {
            source: self.dir.join("src/main.rs"),
            output: self.dir.join("output.txt"),
            bin_flag: String::new(),
        }];
        for source in files_in(&self.dir.join("src/bin"), "rs") {
            let variant = stem(&source);
            binaries.push(Binary {
                output: self.dir.join(format!("output-{variant}.txt")),
                bin_flag: format!(" --bin {variant}"),
                source,
            });
        }
        binaries
    }

    /// The recorded files whose name starts with `kind`: `output` or `stderr`.
    fn recorded(&self, kind: &str) -> Vec<PathBuf> {
        files_in(&self.dir, "txt")
            .into_iter()
            .filter(|file| stem(file).starts_with(kind))
            .collect()
    }

    /// The chapter page, relative to `book/src`.
    fn chapter(&self) -> String {
        format!("{}.md", self.topic)
    }

    /// Each binary has an output file whose first line runs it, and each recorded file
    /// belongs to a binary.
    fn check_outputs(&self, root: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        let binaries = self.binaries();
        for binary in &binaries {
            let output = relative(root, &binary.output);
            let Ok(text) = fs::read_to_string(&binary.output) else {
                problems.push(format!(
                    "{}: no output file {output}",
                    relative(root, &binary.source)
                ));
                continue;
            };
            let first = text.lines().next().unwrap_or_default();
            let commands = self.commands(&binary.bin_flag);
            if !commands.iter().any(|command| command == first) {
                problems.push(format!(
                    "{output}: line 1 is `{first}`, expected `{}`",
                    commands[0]
                ));
            }
        }
        for file in [self.recorded("output"), self.recorded("stderr")].concat() {
            let suffix = stem(&file)
                .trim_start_matches("output")
                .trim_start_matches("stderr")
                .to_owned();
            let owner = binaries
                .iter()
                .any(|binary| stem(&binary.output).trim_start_matches("output") == suffix);
            if !owner {
                problems.push(format!(
                    "{}: no binary src/bin/{}.rs to go with it",
                    relative(root, &file),
                    suffix.trim_start_matches('-')
                ));
            }
        }
        problems
    }

    /// The accepted first lines of an output file: `$ cargo run -p lesson-<topic>`, with
    /// `--release` after `run` or not, followed by `bin_flag`.
    fn commands(&self, bin_flag: &str) -> [String; 2] {
        let package = self.package();
        [
            format!("$ cargo run -p {package}{bin_flag}"),
            format!("$ cargo run --release -p {package}{bin_flag}"),
        ]
    }

    /// The lesson's chapter exists, is listed, and includes every source and output file.
    fn check_chapter(&self, root: &Path, listed: &[String]) -> Vec<String> {
        let chapter = self.chapter();
        let page = root.join("book/src").join(&chapter);
        if !page.is_file() {
            return vec![format!("{}: no chapter book/src/{chapter}", self.package())];
        }
        let mut problems = Vec::new();
        if !listed.contains(&chapter) {
            problems.push(format!("book/src/{chapter} is not listed in SUMMARY.md"));
        }
        let included: Vec<PathBuf> = includes(&page)
            .iter()
            .filter_map(|include| include.target().canonicalize().ok())
            .collect();
        let sources = self.binaries().into_iter().map(|binary| binary.source);
        for file in sources.chain(self.recorded("output")) {
            let shown = file
                .canonicalize()
                .is_ok_and(|file| included.contains(&file));
            if !shown {
                problems.push(format!(
                    "book/src/{chapter} does not include {}",
                    relative(root, &file)
                ));
            }
        }
        problems
    }
}

/// Every folder under `lessons/` that holds a `Cargo.toml`, sorted by topic.
fn lessons(root: &Path) -> Vec<Lesson> {
    entries(&root.join("lessons"))
        .into_iter()
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .map(|dir| Lesson {
            topic: file_name(&dir),
            dir,
        })
        .collect()
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

/// The text of the leading `//!` lines of a source file; empty if it has none.
fn module_header(source: &str) -> String {
    source
        .lines()
        .map_while(|line| line.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` names a Python file: a word ending in `.py`.
fn names_python_file(text: &str) -> bool {
    text.match_indices(".py").any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + 3..].chars().next();
        before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}

// ---------------------------------------------------------------------------------------------
// The book
// ---------------------------------------------------------------------------------------------

/// The pages linked from `SUMMARY.md`, relative to `book/src`, in reading order.
fn summary_chapters(root: &Path) -> Vec<String> {
    let summary = read(&root.join("book/src/SUMMARY.md"));
    summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')'))
        .map(|(target, _)| target.trim().to_owned())
        .filter(|target| !target.is_empty())
        .collect()
}

/// One `{{#include ...}}` or `{{#rustdoc_include ...}}` in a page.
struct Include {
    /// The whole directive, as written.
    directive: String,
    /// The page's folder, which the path is relative to.
    base: PathBuf,
    /// The path, without its selector.
    path: String,
    /// What follows the first `:` of the argument, if anything: an anchor or line numbers.
    selector: Option<String>,
}

impl Include {
    /// The file it points at.
    fn target(&self) -> PathBuf {
        self.base.join(&self.path)
    }

    /// `page: {{#include ...}}`, for messages.
    fn describe(&self, root: &Path, page: &Path) -> String {
        format!("{}: {}", relative(root, page), self.directive)
    }

    /// The file exists, and the selector, if any, is an anchor that the file defines.
    fn check(&self) -> Result<(), String> {
        let target = self.target();
        let Ok(text) = fs::read_to_string(&target) else {
            return Err(format!("no such file: {}", self.path));
        };
        let Some(selector) = &self.selector else {
            return Ok(());
        };
        let first = selector.split(':').next().unwrap_or_default();
        if first.is_empty() || first.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "`{selector}` selects lines by number; mark an anchor instead"
            ));
        }
        if Anchors::parse(&text).spans.contains_key(first) {
            Ok(())
        } else {
            Err(format!(
                "no `ANCHOR: {first}` ... `ANCHOR_END: {first}` pair in {}",
                self.path
            ))
        }
    }
}

/// Every include directive in `page`, skipping those escaped as `\{{#include ...}}`.
fn includes(page: &Path) -> Vec<Include> {
    let text = read(page);
    let base = page.parent().expect("a page is in a folder").to_path_buf();
    let mut found = Vec::new();
    for (start, _) in text.match_indices("{{#") {
        if text[..start].ends_with('\\') {
            continue;
        }
        let Some(len) = text[start..].find("}}") else {
            continue;
        };
        let directive = &text[start..start + len + 2];
        let inner = directive[3..len].trim();
        let Some((kind, argument)) = inner.split_once(char::is_whitespace) else {
            continue;
        };
        if kind != "include" && kind != "rustdoc_include" {
            continue;
        }
        let argument = argument.trim();
        let (path, selector) = match argument.split_once(':') {
            Some((path, selector)) if !selector.is_empty() => (path, Some(selector.to_owned())),
            Some((path, _)) => (path, None),
            None => (argument, None),
        };
        found.push(Include {
            directive: directive.to_owned(),
            base: base.clone(),
            path: path.to_owned(),
            selector,
        });
    }
    found
}

/// The anchors of a source file: mdBook's `ANCHOR: name` ... `ANCHOR_END: name` markers.
struct Anchors {
    /// Each well-formed anchor, with the line (1-based) of its first `ANCHOR:` marker.
    spans: BTreeMap<String, usize>,
    /// What is wrong: unmatched or repeated markers.
    problems: Vec<String>,
}

impl Anchors {
    fn parse(text: &str) -> Anchors {
        let mut open: BTreeMap<String, usize> = BTreeMap::new();
        let mut spans = BTreeMap::new();
        let mut problems = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            if let Some(name) = marker(line, "ANCHOR_END:") {
                match open.remove(&name) {
                    Some(start) => {
                        spans.entry(name).or_insert(start);
                    }
                    None => problems.push(format!(
                        "line {number}: `ANCHOR_END: {name}` without an open `ANCHOR: {name}`"
                    )),
                }
            } else if let Some(name) = marker(line, "ANCHOR:") {
                if let Some(start) = open.get(&name) {
                    problems.push(format!(
                        "line {number}: `ANCHOR: {name}` again, already open since line {start}"
                    ));
                } else {
                    if let Some(start) = spans.get(&name) {
                        problems.push(format!(
                            "line {number}: anchor `{name}` repeated, first used at line {start}"
                        ));
                    }
                    open.insert(name, number);
                }
            }
        }
        for (name, start) in open {
            problems.push(format!(
                "line {start}: `ANCHOR: {name}` has no `ANCHOR_END: {name}`"
            ));
        }
        Anchors { spans, problems }
    }
}

/// The anchor name after `tag` in `line`, as mdBook reads it: `tag`, optional spaces, then
/// letters, digits, `_` and `-`.
fn marker(line: &str, tag: &str) -> Option<String> {
    let (_, rest) = line.split_once(tag)?;
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|&c| is_name_char(c))
        .collect();
    (!name.is_empty()).then_some(name)
}

// ---------------------------------------------------------------------------------------------
// Files and text
// ---------------------------------------------------------------------------------------------

/// The workspace root: the parent of this `tests` package.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is inside the workspace")
        .to_path_buf()
}

/// Fails with every problem found, one per line, or passes if there are none.
fn report(subject: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} problem(s) with {subject}:\n  - {}\n",
        problems.len(),
        problems.join("\n  - ")
    );
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
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

/// The files directly in `dir` whose extension is `extension`, sorted.
fn files_in(dir: &Path, extension: &str) -> Vec<PathBuf> {
    entries(dir)
        .into_iter()
        .filter(|path| path.is_file() && path.extension().is_some_and(|e| e == extension))
        .collect()
}

/// The files anywhere under `dir` whose extension is `extension`, sorted.
fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = files_in(dir, extension);
    for sub in entries(dir).into_iter().filter(|path| path.is_dir()) {
        files.extend(files_with_extension(&sub, extension));
    }
    files.sort();
    files
}

/// `path` relative to `base`, with `/` separators, for messages and for SUMMARY.md links.
fn relative(base: &Path, path: &Path) -> String {
    let inner = path.strip_prefix(base).unwrap_or(path);
    let parts: Vec<String> = inner
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
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

/// A character that can be part of a name: an anchor, a package, a file name.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Whether `text` contains `word` with no name character directly before or after it, so
/// that `lesson-join` is not found in `lesson-join-timeout`.
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_name_char) && !after.is_some_and(is_name_char)
    })
}
