//! Repository rules no compiler checks: every Rust file opens with a `//!` line saying what it is for,
//! and no source file grows past the size where it should be split.

use std::path::{Path, PathBuf};

use messaging_integration_tests::repo_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "node_modules" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_says_what_it_is_for_and_stays_small() {
    let mut files = Vec::new();
    for top in ["crates", "services", "proto", "integration-tests"] {
        rust_files(&repo_root().join(top), &mut files);
    }
    assert!(files.len() > 30, "found only {} files", files.len());
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.starts_with("//!") {
            problems.push(format!("{}: does not open with a //! line", file.display()));
        }
        let lines = text.lines().count();
        if lines > 500 {
            problems.push(format!("{}: {lines} lines; split it", file.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
