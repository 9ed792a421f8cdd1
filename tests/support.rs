//! Helpers for black-box tests: run `mta`, write inputs, read results.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// u1: email, search → 100 on 2026-01-03; u2: search → 50 on 2026-01-05, then display
/// (a null journey); u3's conversion has no touch in its window.
pub(crate) const EVENTS: &str = "\
cookie,time,interaction,conversion,conversion_value,channel
u1,2026-01-01T10:00:00Z,impression,0,,email
u1,2026-01-02T10:00:00Z,impression,0,,search
u1,2026-01-03T10:00:00Z,conversion,1,100,
u2,2026-01-01T09:00:00Z,impression,0,,search
u2,2026-01-05T09:00:00Z,conversion,1,50,
u2,2026-01-06T09:00:00Z,impression,0,,display
u3,2025-10-01T00:00:00Z,impression,0,,display
u3,2026-01-10T00:00:00Z,conversion,1,20,
";

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

/// `bytes`, gzip-compressed.
/// Writes `batch` as a Parquet file, with row groups of at most `rows_per_group` rows.
pub(crate) fn write_batch(path: &Path, batch: &arrow::array::RecordBatch, rows_per_group: usize) {
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, bytes).expect("compress");
    encoder.finish().expect("compress")
}

/// A gzip stream of `before`, then `mebibytes` MiB of `filler` repeated, then `after`:
/// concatenated members (read as one stream), the filler's member written again and
/// again, so hundreds of MiB of one line take a few hundred kB on disk.
pub(crate) fn inflating(before: &str, filler: &str, mebibytes: usize, after: &str) -> Vec<u8> {
    let member = gzip(filler.repeat((1 << 20) / filler.len()).as_bytes());
    let mut bytes = gzip(before.as_bytes());
    for _ in 0..mebibytes {
        bytes.extend_from_slice(&member);
    }
    bytes.extend(gzip(after.as_bytes()));
    bytes
}

/// Path of a file shipped in `samples/`.
pub(crate) fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

/// Runs `mta attribute FILE ARGS...`.
pub(crate) fn attribute(file: &Path, args: &[&str]) -> Output {
    mta().arg("attribute").arg(file).args(args).output().expect("run mta")
}

/// Runs `mta attribute FILE ARGS...` and samples its peak resident memory (the kernel's
/// high-water mark, `VmHWM` in `/proc/PID/status`) every few milliseconds while it runs;
/// returns the output and the largest sample in bytes. A spike in the process's last
/// milliseconds may be missed, never one that takes time to build up.
pub(crate) fn attribute_peak_memory(file: &Path, args: &[&str]) -> (Output, u64) {
    let mut child = mta()
        .arg("attribute")
        .arg(file)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mta");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).expect("read the child's output");
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for mta") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let output =
        Output { status, stdout: stdout.join().expect("stdout reader"), stderr: stderr.join().expect("stderr reader") };
    (output, peak_kib * 1024)
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

/// Event rows over `channels` distinct channels: one user per channel, whose journey
/// touches it and `touches - 1` others (spread by multiplying the index), every other
/// user converting. The Markov chain has every channel in it, with a few transitions each.
pub(crate) fn events_over_channels(channels: usize, touches: usize) -> String {
    let mut csv = String::from("user_id,timestamp,channel,conversion\n");
    for user in 0..channels {
        for touch in 0..touches {
            let channel = (user + touch * (user * 7 + 13)) % channels;
            csv.push_str(&format!("u{user},2026-01-01T00:{touch:02}:00Z,c{channel},0\n"));
        }
        if user % 2 == 0 {
            csv.push_str(&format!("u{user},2026-01-01T01:00:00Z,,1\n"));
        }
    }
    csv
}
