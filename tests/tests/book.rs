//! Checks that the book, the README and the lessons agree with each other.
//!
//! mdBook renders an empty block for a missing include or a misspelled anchor and still
//! succeeds, so these tests read the files themselves. The lessons come from the `tests`
//! library, as `tests/lessons.rs` sees them. Each test collects every problem it finds and
//! reports them all at once.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use tests::{Lesson, files_under, is_recording, relative, workspace};

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Every chapter listed in `SUMMARY.md` exists, and every page in `book/src` is listed.
#[test]
fn summary_lists_exactly_the_chapters() {
    let listed = summary_chapters();
    let mut problems = Vec::new();
    for chapter in &listed {
        if !book_src().join(chapter).is_file() {
            problems.push(format!(
                "SUMMARY.md lists `{chapter}`, which does not exist"
            ));
        }
    }
    for page in pages() {
        let name = page_name(&page);
        if name != "SUMMARY.md" && !listed.contains(&name) {
            problems.push(format!("book/src/{name} is not listed in SUMMARY.md"));
        }
    }
    report("the book's table of contents", problems);
}

/// Every include in the book names a file that exists, by anchor and never by line numbers.
#[test]
fn book_includes_resolve() {
    let mut problems = Vec::new();
    for page in pages() {
        for include in includes(&page) {
            if let Err(problem) = include.check() {
                problems.push(format!("{}: {problem}", include.describe(&page)));
            }
        }
    }
    report("includes in the book", problems);
}

/// In every lesson source, each `ANCHOR` has one matching `ANCHOR_END` after it.
#[test]
fn lesson_anchors_are_paired() {
    let mut problems = Vec::new();
    for lesson in Lesson::all() {
        for source in lesson.sources() {
            let anchors = Anchors::parse(&read(&source));
            for problem in anchors.problems {
                problems.push(format!("{}: {problem}", relative(&source)));
            }
        }
    }
    report("anchors in the lessons", problems);
}

/// Every lesson has its chapter, `book/src/<topic>.md`, listed in `SUMMARY.md`, and the chapter
/// includes all of the lesson's code and recordings.
#[test]
fn every_lesson_has_a_chapter() {
    let listed = summary_chapters();
    let mut problems = Vec::new();
    for lesson in Lesson::all() {
        let page = lesson.chapter();
        let chapter = relative(&page);
        if !page.is_file() {
            problems.push(format!("{}: no chapter {chapter}", lesson.package()));
            continue;
        }
        if !listed.contains(&page_name(&page)) {
            problems.push(format!("{chapter} is not listed in SUMMARY.md"));
        }
        let included: Vec<PathBuf> = includes(&page)
            .iter()
            .filter_map(|include| include.target().canonicalize().ok())
            .collect();
        for file in lesson.sources().into_iter().chain(lesson.recordings()) {
            let shown = file
                .canonicalize()
                .is_ok_and(|file| included.contains(&file));
            if !shown {
                problems.push(format!("{chapter} does not include {}", relative(&file)));
            }
        }
    }
    report("lessons and their chapters", problems);
}

/// The README has a row for each lesson, linking its chapter, in the order of `SUMMARY.md`.
#[test]
fn readme_table_follows_the_summary() {
    let listed = summary_chapters();
    let rows: Vec<String> = read(&workspace().join("README.md"))
        .lines()
        .filter(|line| line.trim_start().starts_with('|'))
        .map(str::to_owned)
        .collect();
    let mut problems = Vec::new();
    // (position in SUMMARY.md, README row, topic) of each listed lesson that has a row.
    let mut found = Vec::new();
    for lesson in Lesson::all() {
        let package = lesson.package();
        let chapter = relative(&lesson.chapter());
        let link = format!("]({chapter})");
        let row = rows
            .iter()
            .position(|row| mentions(row, &package) && row.contains(&link));
        let position = listed
            .iter()
            .position(|page| *page == page_name(&lesson.chapter()));
        match (row, position) {
            (Some(row), Some(position)) => found.push((position, row, lesson.topic)),
            // Not in SUMMARY.md: the chapter checks report it; it has no place to be in.
            (Some(_), None) => {}
            (None, _) => problems.push(format!(
                "README.md has no table row naming `{package}` and linking `{chapter}`"
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

/// What the header of a lesson that ports no example of the source material says instead.
const BEYOND_THE_SOURCE: &str = "beyond the source material";

/// What the header says when the example it ports has no file name in the source material
/// (a notebook cell, a book's listing); it then names the document instead.
const NO_FILE_NAME: &str = "no file name there";

/// Every lesson source opens with a `//!` header that names its Python example (or says that
/// it goes beyond the source material), its chapter by path (`book/src/<topic>.md`, the page
/// that includes the lesson), and the command that runs it: for a binary, the one on line 1 of
/// its recording, which the tests run.
#[test]
fn lesson_sources_have_headers() {
    let mut problems = Vec::new();
    for lesson in Lesson::all() {
        let chapter = relative(&lesson.chapter());
        for source in lesson.sources() {
            let header = module_header(&read(&source));
            let file = relative(&source);
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
            let named = book_paths(&header);
            if named.is_empty() {
                problems.push(format!(
                    "{file}: the header names no chapter; it should name `{chapter}`"
                ));
            }
            for path in named {
                if !workspace().join(&path).is_file() {
                    problems.push(format!(
                        "{file}: the header names `{path}`, which does not exist"
                    ));
                } else if path != chapter {
                    problems.push(format!(
                        "{file}: the header names `{path}`; the lesson's chapter is `{chapter}`"
                    ));
                }
            }
            match lesson
                .binaries
                .iter()
                .find(|binary| binary.source == source)
            {
                Some(binary) => {
                    // A recording it cannot read is for the binary's own test to report.
                    if let Ok((recording, _)) = binary.recording() {
                        let command = recording.command.trim_start_matches("$ ");
                        if !header.contains(&format!("`{command}`")) {
                            problems.push(format!(
                                "{file}: the header does not give the command `{command}`, \
                                 as {} does",
                                relative(&binary.output)
                            ));
                        }
                    }
                }
                None if !header.contains("cargo run") => {
                    problems.push(format!("{file}: the header has no `cargo run` command"));
                }
                None => {}
            }
        }
    }
    report("lesson headers", problems);
}

/// The book shows a command only as line 1 of a recording, which the tests run: no page types
/// a `$ ` command line of its own, and each recording stands alone in a `console` block.
#[test]
fn commands_come_from_recordings() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = read(&page);
        let name = relative(&page);
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("$ ") {
                problems.push(format!(
                    "{name}:{}: `{}` is typed into the page; include the lesson's recording, \
                     whose line 1 is the command its test runs",
                    index + 1,
                    line.trim()
                ));
            }
        }
        let base = page.parent().expect("a page is in a folder");
        let mut in_blocks = 0;
        for block in blocks(&text) {
            let recordings = parse_includes(&block.lines.join("\n"), base)
                .iter()
                .filter(|include| include.is_recording())
                .count();
            in_blocks += recordings;
            if recordings > 0 && (block.info != "console" || block.lines.len() != 1) {
                problems.push(format!(
                    "{name}:{}: a recording is included in a `{}` block of {} line(s); give it \
                     a `console` block of its own",
                    block.line,
                    block.info,
                    block.lines.len()
                ));
            }
        }
        let everywhere = includes(&page)
            .iter()
            .filter(|include| include.is_recording())
            .count();
        if everywhere != in_blocks {
            problems.push(format!(
                "{name}: a recording is included outside a code block"
            ));
        }
    }
    report("commands in the book", problems);
}

/// Every `cargo run -p lesson-<topic>` that a page mentions in its prose, where it cannot come
/// from a recording, names a lesson package and, with or without `--bin`, one of its binaries.
#[test]
fn commands_in_the_prose_name_lessons() {
    let lessons = Lesson::all();
    let mut problems = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (at, _) in text.match_indices("cargo run") {
            // To the end of the code span, which may wrap, or of the paragraph.
            let rest = &text[at..];
            let end = [rest.find('`'), rest.find("\n\n")]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(rest.len());
            let command = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
            let words: Vec<&str> = command.split(' ').collect();
            let after = |flag: &str| {
                let index = words.iter().position(|word| *word == flag)?;
                words.get(index + 1).copied()
            };
            let Some(package) = after("-p").filter(|package| package.starts_with("lesson-")) else {
                continue;
            };
            let binary = after("--bin").unwrap_or(package);
            let known = lessons.iter().any(|lesson| {
                lesson.package() == package
                    && lesson.binaries.iter().any(|known| known.name == binary)
            });
            if !known {
                problems.push(format!(
                    "{}: `{command}` runs no lesson binary: there is no `{binary}` in `{package}`",
                    relative(&page)
                ));
            }
        }
    }
    report("commands in the book's prose", problems);
}

// ---------------------------------------------------------------------------------------------
// Lesson sources
// ---------------------------------------------------------------------------------------------

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

/// The paths of book pages that `text` names: `book/src/<page>.md`.
fn book_paths(text: &str) -> Vec<String> {
    text.match_indices("book/src/")
        .map(|(at, _)| {
            let path: String = text[at..]
                .chars()
                .take_while(|&c| is_name_char(c) || c == '/' || c == '.')
                .collect();
            path.trim_end_matches('.').to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The book
// ---------------------------------------------------------------------------------------------

/// The pages linked from `SUMMARY.md`, relative to `book/src`, in reading order.
fn summary_chapters() -> Vec<String> {
    let summary = read(&book_src().join("SUMMARY.md"));
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
    fn describe(&self, page: &Path) -> String {
        format!("{}: {}", relative(page), self.directive)
    }

    /// Whether it includes a lesson's recording, `lessons/<topic>/output*.txt` or `stderr*.txt`.
    fn is_recording(&self) -> bool {
        self.path.contains("lessons/") && is_recording(Path::new(&self.path))
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
    parse_includes(&read(page), page.parent().expect("a page is in a folder"))
}

/// The include directives in `text`, whose paths are relative to `base`.
fn parse_includes(text: &str, base: &Path) -> Vec<Include> {
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
            base: base.to_path_buf(),
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

/// `book/src`.
fn book_src() -> PathBuf {
    workspace().join("book/src")
}

/// Every page of the book, `SUMMARY.md` included, sorted.
fn pages() -> Vec<PathBuf> {
    files_under(&book_src(), "md")
}

/// A page's path relative to `book/src`, as `SUMMARY.md` links it.
fn page_name(page: &Path) -> String {
    relative(page)
        .strip_prefix("book/src/")
        .map_or_else(|| relative(page), str::to_owned)
}

/// A fenced code block: its info string (`console`, `rust,ignore`, ...), the line of the page
/// it opens on, and the lines between its fences.
struct Block {
    info: String,
    line: usize,
    lines: Vec<String>,
}

/// The fenced code blocks of a page, in order.
fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    line: index + 1,
                    lines: Vec::new(),
                });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                blocks.extend(open.take());
            }
            (Some(block), _) => block.lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    blocks
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
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", relative(path)))
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
