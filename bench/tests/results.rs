//! The recorded results: `bench/results.md` has a row for every figure, and the README shows
//! it unchanged (the book includes the file itself).

use std::fs;
use std::path::Path;

use bench::catalogue::FIGURES;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn the_recorded_table_has_every_figure() {
    let results = read("results.md");
    let missing: Vec<&str> = FIGURES
        .iter()
        .map(|spec| spec.name)
        .filter(|name| !results.contains(&format!("| `{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "bench/results.md has no row for {missing:?}"
    );
}

#[test]
fn the_readme_shows_the_recorded_results() {
    let results = read("results.md");
    assert!(
        read("../README.md").contains(results.trim()),
        "README.md does not contain bench/results.md as it is; copy it again"
    );
}
