//! Invariants of the code base that `cargo test` enforces (ARCHITECTURE.md).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["shared/src", "shared/tests", "cli/src", "bench/src", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let undocumented: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).expect("utf-8 source").trim_start().starts_with("//!"))
        .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
        .collect();
    assert!(undocumented.is_empty(), "files without a leading `//!` comment: {undocumented:?}");
}

#[test]
fn the_engine_has_no_io_runtime_dependencies() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("shared/Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dependencies]").nth(1).unwrap().split("\n[").next().unwrap();
    for forbidden in ["tokio", "redis", "object_store", "axum", "reqwest", "apalis", "hyper"] {
        assert!(
            !dependencies.lines().any(|line| line.trim_start().starts_with(forbidden)),
            "mta-core must stay free of I/O runtimes, found `{forbidden}`"
        );
    }
}
