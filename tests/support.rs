//! Helpers for black-box tests: run `mta`, write inputs, read results.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `mta` binary cargo built for this test run.
pub(crate) fn mta() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mta"))
}

/// A fresh temporary directory, removed on drop.
pub(crate) fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("mta-test-").tempdir().expect("temporary directory")
}

/// Writes `contents` to `dir/name` and returns the path.
pub(crate) fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write test input");
    path
}

/// Path of a file shipped in `samples/`.
pub(crate) fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

/// Runs `mta attribute FILE ARGS...`.
pub(crate) fn attribute(file: &Path, args: &[&str]) -> Output {
    mta().arg("attribute").arg(file).args(args).output().expect("run mta")
}

/// Runs `mta attribute` and parses the JSON result, failing the test with stderr if it fails.
pub(crate) fn attribute_json(file: &Path, args: &[&str]) -> Value {
    let output = attribute(file, args);
    assert!(output.status.success(), "mta failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("result is JSON")
}

/// `model`'s credit to `channel`: (conversions, value).
pub(crate) fn credit(result: &Value, model: &str, channel: &str) -> (f64, f64) {
    let channels = result["models"][model]["channels"].as_array().unwrap_or_else(|| panic!("no model {model}"));
    let entry =
        channels.iter().find(|c| c["channel"] == channel).unwrap_or_else(|| panic!("no channel {channel} in {model}"));
    (entry["conversions"].as_f64().unwrap(), entry["value"].as_f64().unwrap())
}

pub(crate) fn assert_close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{what}: got {got}, want {want}");
}

/// The exit code and standard error of a run that must fail.
pub(crate) fn failure(output: &Output) -> (i32, String) {
    assert!(!output.status.success(), "expected failure, stdout: {}", String::from_utf8_lossy(&output.stdout));
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}
