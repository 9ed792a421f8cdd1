//! `mta attribute` end to end: formats, models, journey rules, partitions, credits, errors.

use std::io::Write;

use crate::service::assert_same_result;
use crate::service_support::sorted;
use crate::support::{
    EVENTS, assert_close, attribute, attribute_json, attribute_peak_memory, credit, events_over_channels, failure,
    inflating, mta, sample, workdir, write, write_batch,
};

#[test]
fn the_shipped_paths_sample_reproduces_the_design_markov_check() {
    let result = attribute_json(&sample("paths.csv"), &[]);
    assert_eq!(result["options"]["kind"], "paths");
    assert_close(result["models"]["markov"]["conversion_probability"].as_f64().unwrap(), 4.0 / 7.0, "P(conv)");
    for (channel, conversions, value) in
        [("c1", 38.0 / 29.0, 14.8295455), ("c2", 33.0 / 29.0, 12.2727273), ("c3", 45.0 / 29.0, 17.8977273)]
    {
        let (got_conversions, got_value) = credit(&result, "markov", channel);
        assert_close(got_conversions, conversions, channel);
        assert!((got_value - value).abs() < 1e-6, "{channel} value {got_value}");
    }
    assert_close(credit(&result, "linear", "c1").0, 11.0 / 6.0, "linear c1");
    assert!(result["models"].get("time_decay").is_none(), "time decay needs timestamps");
}

#[test]
fn event_rows_build_journeys_with_window_split_and_unattributed_conversions() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    let result = attribute_json(&file, &[]);
    let summary = &result["summary"];
    assert_eq!(summary["rows"], 8);
    assert_eq!(summary["conversions"], 3.0);
    assert_eq!(summary["converting_journeys"], 2.0);
    assert_eq!(summary["null_journeys"], 1.0, "u2's display touch after its conversion");
    // u3's only touch is 101 days before its conversion: outside the 30-day window.
    assert_eq!(summary["unattributed_conversions"], 1.0);
    assert_eq!(summary["unattributed_value"], 20.0);
    assert_eq!(credit(&result, "first_touch", "email"), (1.0, 100.0));
    assert_eq!(credit(&result, "first_touch", "search"), (1.0, 50.0));
    assert_eq!(credit(&result, "last_touch", "search"), (2.0, 150.0));
    assert_eq!(credit(&result, "first_touch", "display"), (0.0, 0.0));
    for model in result["models"].as_object().unwrap().values() {
        if model.get("note").is_none() {
            assert_eq!(model["conserves_totals"], true);
        }
    }
}

#[test]
fn an_unlimited_lookback_attributes_old_touches() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    let result = attribute_json(&file, &["--lookback-days", "0", "--models", "first_touch"]);
    assert_eq!(result["summary"]["unattributed_conversions"], 0.0);
    assert_eq!(credit(&result, "first_touch", "display"), (1.0, 20.0));
}

#[test]
fn csv_gzip_ndjson_and_parquet_inputs_give_the_same_result() {
    let dir = workdir();
    let csv = attribute_json(&write(dir.path(), "e.csv", EVENTS), &[]);

    let semicolons = EVENTS.replace(',', ";");
    assert_eq!(attribute_json(&write(dir.path(), "e.ssv", &semicolons), &[])["models"], csv["models"]);
    let tabs = EVENTS.replace(',', "\t");
    assert_eq!(attribute_json(&write(dir.path(), "e.tsv", &tabs), &[])["models"], csv["models"]);

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(EVENTS.as_bytes()).unwrap();
    assert_eq!(attribute_json(&write(dir.path(), "e.csv.gz", gz.finish().unwrap()), &[])["models"], csv["models"]);

    let mut ndjson = String::new();
    let mut lines = EVENTS.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let object: serde_json::Map<String, serde_json::Value> = header
            .iter()
            .zip(&fields)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.parse::<f64>().map_or(serde_json::json!(v), |n| serde_json::json!(n))))
            .collect();
        ndjson.push_str(&serde_json::to_string(&object).unwrap());
        ndjson.push('\n');
    }
    assert_eq!(attribute_json(&write(dir.path(), "e.ndjson", &ndjson), &[])["models"], csv["models"]);

    let parquet = dir.path().join("e.parquet");
    write_events_parquet(&parquet, EVENTS);
    assert_eq!(attribute_json(&parquet, &[])["models"], csv["models"]);
}

/// An NDJSON file past twice the size from which `mta attribute` cuts text into byte ranges
/// (16 MiB, two decoding threads): 36,000 lines of ~1 kB, with blank lines and `\r\n` ends.
/// `line(i)` gives line i's fields beyond user, time, channel and conversion.
fn large_ndjson(line: impl Fn(usize) -> String) -> String {
    let pad = "x".repeat(960);
    let mut text = String::new();
    for i in 0..36_000 {
        let conversion = u8::from(i % 9 == 8);
        text.push_str(&format!(
            "{{\"user_id\":\"u{}\",\"timestamp\":\"2026-{:02}-{:02}T{:02}:00:00Z\",\"channel\":\"c{}\",\"conversion\":{conversion}{},\"note\":\"{pad}\"}}",
            i % 4000,
            i / 4000 % 12 + 1,
            i % 28 + 1,
            i % 24,
            i % 7,
            line(i),
        ));
        text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
        if i % 5000 == 0 {
            text.push_str("\n  \n");
        }
    }
    text
}

/// What `mta attribute` did: exit code, result, and standard error with the file's name left out.
type Run = (Option<i32>, Option<serde_json::Value>, String);

/// `mta attribute` on `file` with `threads` threads.
fn run_with_threads(file: &std::path::Path, threads: usize) -> Run {
    let output =
        mta().env("RAYON_NUM_THREADS", threads.to_string()).arg("attribute").arg(file).output().expect("run mta");
    let result = serde_json::from_slice(&output.stdout).ok().map(sorted);
    (output.status.code(), result, String::from_utf8_lossy(&output.stderr).replace(&file.display().to_string(), "FILE"))
}

/// `text` written plain and gzipped as `name` and `name.gz` into `dir`.
fn plain_and_gzip_files(dir: &std::path::Path, name: &str, text: &str) -> [std::path::PathBuf; 2] {
    let plain = write(dir, name, text);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    [plain, write(dir, &format!("{name}.gz"), gz.finish().unwrap())]
}

/// `mta attribute` on `text` as plain NDJSON (read in byte ranges by two threads) and gzipped
/// (read whole by one).
fn plain_and_gzipped(text: &str) -> [Run; 2] {
    let dir = workdir();
    plain_and_gzip_files(dir.path(), "e.ndjson", text).map(|file| run_with_threads(&file, 2))
}

/// Two runs' results agree: sums may add in another order across threads, so floats to 1e-9,
/// everything else exactly.
fn assert_same_run(got: &Run, want: &Run) {
    assert_eq!((got.0, &got.2), (want.0, &want.2));
    match (&got.1, &want.1) {
        (Some(got), Some(want)) => assert_same_result(got, want, "result"),
        (got, want) => assert_eq!(got, want),
    }
}

#[test]
fn ndjson_read_in_byte_ranges_gives_what_it_gives_read_whole() {
    let values = |i: usize| if i % 9 == 8 { format!(",\"value\":{}.25", i % 100) } else { String::new() };
    let [ranges, whole] = plain_and_gzipped(&large_ndjson(values));
    assert_eq!(ranges.0, Some(0), "{}", ranges.2);
    let with_values = ranges.1.clone().unwrap();
    assert_eq!(with_values["summary"]["rows"], 36_000, "{with_values}");
    assert_eq!(with_values["summary"]["conversion_value"], 199_000.0, "{with_values}");
    assert_same_run(&ranges, &whole);

    // `value` is the value column until a line past the first thousand (in the first range) holds
    // `conversion_value`, which names it better: from there on `value` is not read. A byte range
    // after that line, read with the first lines' names alone, would read it: the ranges are
    // given up and the file read whole.
    let renamed = |i: usize| match i {
        10_000 => ",\"conversion_value\":1".to_owned(),
        _ => values(i),
    };
    let [ranges, whole] = plain_and_gzipped(&large_ndjson(renamed));
    assert_eq!(ranges.0, Some(0), "{}", ranges.2);
    assert_same_run(&ranges, &whole);
    let renamed = ranges.1.unwrap();
    assert!(
        renamed["summary"]["conversion_value"].as_f64() < with_values["summary"]["conversion_value"].as_f64(),
        "{renamed}"
    );

    // Bad lines in both ranges are reported together, in line order, as when read whole.
    let broken = |i: usize| match i {
        100 | 30_000 => ",\"conversion\":\"maybe\"".to_owned(),
        31_000 => ",]".to_owned(),
        _ => values(i),
    };
    let [ranges, whole] = plain_and_gzipped(&large_ndjson(broken));
    assert_eq!(ranges.0, Some(1), "{}", ranges.2);
    assert_same_run(&ranges, &whole);
    // Line numbers count blank lines: two after every 5,000th.
    for line in ["row 103", "row 30013", "row 31015"] {
        assert!(ranges.2.contains(line), "{line}: {}", ranges.2);
    }
}

/// A CSV file of 36 MB, past four of the pieces (8 MiB) in which a gzip CSV stream is parsed by
/// several threads: 36,000 rows of ~1 kB (quoted fields with delimiters, quotes and newlines in
/// them, `\r\n` ends on every third row, blank and `""` lines); `line(i)` gives row i's
/// conversion flag and value fields.
fn large_csv(line: impl Fn(usize) -> String) -> String {
    let pad = "x".repeat(960);
    let mut text = String::from("user_id,timestamp,channel,conversion,value,note\n");
    for i in 0..36_000 {
        let channel = if i % 5 == 0 { format!("\"c{}, \"\"quoted\"\"\nline\"", i % 7) } else { format!("c{}", i % 7) };
        let time = format!("2026-{:02}-{:02}T{:02}:00:00Z", i / 4000 % 12 + 1, i % 28 + 1, i % 24);
        text.push_str(&format!("u{},{time},{channel},{},\"{pad}\"", i % 4000, line(i)));
        text.push_str(if i % 3 == 0 { "\r\n" } else { "\n" });
        if i % 5000 == 0 {
            text.push_str("\n\"\"\n");
        }
    }
    text
}

#[test]
fn gzip_csv_parsed_in_pieces_by_two_threads_gives_what_one_thread_and_byte_ranges_give() {
    let flags = |i: usize| if i % 9 == 8 { format!("1,{}.25", i % 100) } else { "0,".to_owned() };
    let dir = workdir();
    let [plain, gzip] = plain_and_gzip_files(dir.path(), "e.csv", &large_csv(flags));
    let pieces = run_with_threads(&gzip, 2);
    assert_eq!(pieces.0, Some(0), "{}", pieces.2);
    let result = pieces.1.clone().unwrap();
    assert_eq!(result["summary"]["rows"], 36_000, "{result}");
    assert_eq!(result["summary"]["conversion_value"], 199_000.0, "{result}");
    assert_same_run(&pieces, &run_with_threads(&gzip, 1));
    assert_same_run(&pieces, &run_with_threads(&plain, 2));

    // Bad rows in several pieces are reported together, in row order, as read by one thread.
    let broken = |i: usize| match i {
        100 | 20_000 => "maybe,".to_owned(),
        35_000 => "1,-3".to_owned(),
        _ => flags(i),
    };
    let [plain, gzip] = plain_and_gzip_files(dir.path(), "broken.csv", &large_csv(broken));
    let pieces = run_with_threads(&gzip, 2);
    assert_eq!(pieces.0, Some(1), "{}", pieces.2);
    assert_same_run(&pieces, &run_with_threads(&gzip, 1));
    assert_same_run(&pieces, &run_with_threads(&plain, 2));
    for row in ["row 101", "row 20001", "row 35001"] {
        assert!(pieces.2.contains(row), "{row}: {}", pieces.2);
    }
}

/// One event row for [`write_typed_parquet`]: user, epoch micros, channel, conversion, value.
type TypedRow<'a> = (Option<&'a str>, Option<i64>, Option<&'a str>, Option<bool>, Option<f64>);

/// Writes rows with the column types exports usually have (dictionary-friendly strings,
/// UTC timestamps, booleans, doubles), `rows_per_group` rows per row group.
fn write_typed_parquet(path: &std::path::Path, rows: &[TypedRow<'_>], rows_per_group: usize) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0)))),
        ("timestamp", Arc::new(TimestampMicrosecondArray::from_iter(rows.iter().map(|r| r.1)).with_timezone("UTC"))),
        ("channel", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2)))),
        ("conversion", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.3)))),
        ("conversion_value", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.4)))),
    ];
    write_batch(path, &RecordBatch::try_from_iter(columns).unwrap(), rows_per_group);
}

#[test]
fn parquet_read_in_parallel_and_spilled_equals_the_same_rows_as_csv() {
    let dir = workdir();
    // 20,000 rows of 1,500 users in time order: every user's rows spread over many row
    // groups (read by both cores) and, with no memory budget, over many spilled pieces.
    // Every 37th user id carries spaces to trim: the fast lane stops at such a row, the
    // per-row rules take it, and the lane resumes within the same batch.
    let channels = ["email", "search", "display", "social", "direct", "affiliate"];
    let ids: Vec<String> = (0..20_000usize)
        .map(|i| {
            let user = (i * 7_919) % 1_500;
            if i % 37 == 0 { format!(" u{user} ") } else { format!("u{user}") }
        })
        .collect();
    let mut rows: Vec<TypedRow<'_>> = Vec::new();
    let mut csv = String::from("user_id,timestamp,channel,conversion,conversion_value\n");
    for i in 0..20_000usize {
        let user = (i * 7_919) % 1_500;
        let micros = 1_767_225_600_000_000 + i as i64 * 60_000_000 - (i % 3) as i64; // ties and near-ties
        let conversion = i % 13 == 0;
        let channel = (!conversion || i % 2 == 0).then_some(channels[(i * 31 + user) % channels.len()]);
        let value = conversion.then_some((i % 97) as f64 + 0.25);
        rows.push((Some(&ids[i]), Some(micros), channel, Some(conversion), value));
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            ids[i],
            micros,
            channel.unwrap_or(""),
            u8::from(conversion),
            value.map_or(String::new(), |v| v.to_string())
        ));
    }
    let parquet = dir.path().join("many.parquet");
    write_typed_parquet(&parquet, &rows, 700);
    let from_csv = attribute_json(&write(dir.path(), "many.csv", &csv), &["--threads", "1"]);
    for args in [&["--threads", "2"][..], &["--threads", "2", "--memory-budget-mb", "0", "--partitions", "3"]] {
        let from_parquet = attribute_json(&parquet, args);
        assert_eq!(from_parquet["summary"], from_csv["summary"], "{args:?}");
        for (model, result) in from_csv["models"].as_object().unwrap() {
            for channel in result["channels"].as_array().unwrap() {
                let name = channel["channel"].as_str().unwrap();
                let ((a, av), (b, bv)) = (credit(&from_csv, model, name), credit(&from_parquet, model, name));
                assert_close(b, a, &format!("{model}/{name} {args:?}"));
                assert_close(bv, av, &format!("{model}/{name} value {args:?}"));
            }
        }
    }
}

#[test]
fn a_large_csv_read_in_byte_ranges_by_two_threads_gives_the_result_and_problems_of_one_reader() {
    let dir = workdir();
    // Past twice the 16 MiB a byte range needs, so two threads each parse a range of it.
    let channels = ["email", "search", "display", "social"];
    let mut body = String::new();
    let mut i = 0usize;
    while body.len() < 36 << 20 {
        let user = (i * 7_919) % 200_000;
        let conversion = i.is_multiple_of(11);
        let value = if conversion { "9.5" } else { "" };
        let channel = channels[(i + user) % channels.len()];
        body.push_str(&format!("u{user},{},{channel},{},{value}\n", 1_767_225_600 + i, u8::from(conversion)));
        i += 1;
    }
    let header = "user_id,timestamp,channel,conversion,conversion_value\n";
    let file = write(dir.path(), "large.csv", format!("{header}{body}"));
    let one = attribute_json(&file, &["--threads", "1"]);
    let two = attribute_json(&file, &["--threads", "2"]);
    assert_eq!(two["summary"], one["summary"]);
    for (model, result) in one["models"].as_object().unwrap() {
        for channel in result["channels"].as_array().unwrap() {
            let name = channel["channel"].as_str().unwrap();
            let ((a, av), (b, bv)) = (credit(&one, model, name), credit(&two, model, name));
            assert_close(b, a, &format!("{model}/{name}"));
            assert_close(bv, av, &format!("{model}/{name} value"));
        }
    }
    // A bad row in each half: both are reported, with the row numbers of the whole file.
    let bad = write(dir.path(), "bad.csv", format!("{header}u1,not a time,email,0,\n{body}u2,1767225600,email,1,-3\n"));
    let (code_one, one) = failure(&attribute(&bad, &["--threads", "1"]));
    let (code_two, two) = failure(&attribute(&bad, &["--threads", "2"]));
    assert_eq!((code_one, code_two), (1, 1));
    assert_eq!(two, one);
    assert!(one.contains("row 1,") && one.contains(&format!("row {},", i + 2)), "{one}");
}

#[test]
fn parquet_rows_outside_the_fast_lane_follow_the_same_rules() {
    let dir = workdir();
    let t = |minute: i64| Some(1_767_225_600_000_000 + minute * 60_000_000);
    // White space around ids and channels is the per-row rules' business; so are empty
    // channels on touches, negative and non-finite values, and missing timestamps.
    let good: Vec<TypedRow<'_>> = vec![
        (Some(" padded "), t(0), Some(" email "), Some(false), None),
        (Some(" padded "), t(1), None, Some(true), Some(5.0)),
        (Some("plain"), t(0), Some("email"), None, None),
        (Some("plain"), t(2), Some("search"), Some(true), None),
    ];
    let path = dir.path().join("good.parquet");
    write_typed_parquet(&path, &good, 2);
    let result = attribute_json(&path, &["--models", "last_touch"]);
    assert_eq!(result["summary"]["conversions"], 2.0);
    // " email " is trimmed into the same channel; a conversion row's channel is no touch.
    assert_eq!(credit(&result, "last_touch", "email"), (2.0, 5.0));
    let names: Vec<&str> = result["models"]["last_touch"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&" email "), "{names:?}");

    let bad: Vec<TypedRow<'_>> = vec![
        (Some("a"), t(0), Some("email"), Some(false), None),
        (Some("a"), t(1), None, Some(false), None),
        (Some("a"), t(2), None, Some(true), Some(-3.0)),
        (Some("  "), t(3), Some("email"), Some(false), None),
        (Some("b"), None, Some("email"), Some(false), None),
        (Some("b"), t(4), Some("email"), Some(true), Some(f64::NAN)),
    ];
    let path = dir.path().join("bad.parquet");
    write_typed_parquet(&path, &bad, 4);
    let (code, stderr) = failure(&attribute(&path, &[]));
    assert_eq!(code, 1, "{stderr}");
    for expected in [
        "row 2, column `channel`",
        "row 3, column `conversion_value`",
        "row 4, column `user_id`",
        "row 5, column `timestamp`",
        "row 6, column `conversion_value`",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
    assert!(!stderr.contains("row 1,"), "{stderr}");
}

/// Writes the CSV events as Parquet with native types (timestamp, boolean, double).
fn write_events_parquet(path: &std::path::Path, csv: &str) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let micros = |s: &str| chrono_free_micros(s);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("cookie", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[0])))),
        (
            "time",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(r[1]))).with_timezone("UTC"),
            ),
        ),
        ("conversion", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r[3] == "1"))))),
        ("conversion_value", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r[4].parse::<f64>().ok())))),
        ("channel", Arc::new(StringArray::from_iter(rows.iter().map(|r| (!r[5].is_empty()).then_some(r[5]))))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// `YYYY-MM-DDTHH:MM:SSZ` to epoch microseconds (days from civil, no date library needed).
fn chrono_free_micros(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000_000 + n(17, 19) * 1_000_000
}

#[test]
fn results_do_not_depend_on_the_number_of_partitions() {
    let dir = workdir();
    // 300 users with overlapping channels, so every partition count splits journeys differently.
    let mut csv = String::from("user_id,timestamp,channel,conversion,conversion_value\n");
    let channels = ["email", "search", "display", "social", "direct"];
    for user in 0..300 {
        for touch in 0..(user % 5 + 1) {
            let channel = channels[(user * 7 + touch * 3) % channels.len()];
            csv.push_str(&format!("user{user},2026-02-{:02}T0{}:00:00Z,{channel},0,\n", 1 + touch, user % 10));
        }
        if user % 3 != 0 {
            csv.push_str(&format!("user{user},2026-02-10T00:00:00Z,,1,{}\n", 10 + user % 17));
        }
    }
    let file = write(dir.path(), "many.csv", &csv);
    let one = attribute_json(&file, &["--partitions", "1"]);
    for partitions in ["2", "7"] {
        let other = attribute_json(&file, &["--partitions", partitions]);
        for (model, result) in one["models"].as_object().unwrap() {
            for channel in result["channels"].as_array().unwrap() {
                let name = channel["channel"].as_str().unwrap();
                let (a, av) = credit(&one, model, name);
                let (b, bv) = credit(&other, model, name);
                assert_close(b, a, &format!("{model}/{name} with {partitions} partitions"));
                assert_close(bv, av, &format!("{model}/{name} value with {partitions} partitions"));
            }
        }
        assert_eq!(one["summary"], other["summary"]);
    }
}

#[test]
fn credits_export_has_a_row_per_journey_channel_and_model_that_adds_up() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    let credits = dir.path().join("credits.parquet");
    let result = attribute_json(
        &file,
        &["--credits", credits.to_str().unwrap(), "--models", "linear,first_touch,markov,shao_li"],
    );
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&credits).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let mut sums = std::collections::HashMap::<(String, String), (f64, f64)>::new();
    let mut users = std::collections::HashSet::new();
    for batch in reader {
        let batch = batch.unwrap();
        use arrow::array::AsArray;
        let column = |name: &str| std::sync::Arc::clone(batch.column(batch.schema().index_of(name).unwrap()));
        let (user, model, channel) = (column("user_id"), column("model"), column("channel"));
        let (conv, value) = (column("conversions"), column("value"));
        for i in 0..batch.num_rows() {
            users.insert(user.as_string::<i32>().value(i).to_owned());
            let key = (model.as_string::<i32>().value(i).to_owned(), channel.as_string::<i32>().value(i).to_owned());
            let entry = sums.entry(key).or_default();
            entry.0 += conv.as_primitive::<arrow::datatypes::Float64Type>().value(i);
            entry.1 += value.as_primitive::<arrow::datatypes::Float64Type>().value(i);
        }
    }
    assert_eq!(users, ["u1", "u2"].map(String::from).into_iter().collect());
    for model in ["linear", "first_touch"] {
        for channel in ["email", "search"] {
            let (conversions, value) = sums[&(model.to_owned(), channel.to_owned())];
            assert_close(conversions, credit(&result, model, channel).0, &format!("{model}/{channel}"));
            assert_close(value, credit(&result, model, channel).1, &format!("{model}/{channel} value"));
        }
    }
    let markov_total: f64 = sums.iter().filter(|((m, _), _)| m == "markov").map(|(_, (c, _))| c).sum();
    assert_close(markov_total, 2.0, "markov rows split each journey's conversion");
    // shao_li splits each journey over its channels in proportion to their credit.
    let shao_li_total: f64 = sums.iter().filter(|((m, _), _)| m == "shao_li").map(|(_, (c, _))| c).sum();
    assert_close(shao_li_total, 2.0, "shao_li rows split each journey's conversion");
    let shao_li_value: f64 = sums.iter().filter(|((m, _), _)| m == "shao_li").map(|(_, (_, v))| v).sum();
    assert_close(shao_li_value, 150.0, "and its value");
}

#[test]
fn the_table_view_lists_every_channel_and_model() {
    let output = attribute(&sample("paths.csv"), &["--table"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in ["conversions credited", "value credited", "markov order 1", "c1", "c2", "c3", "shapley", "0.571429"]
    {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[test]
fn bad_values_fail_with_row_and_column_and_exit_code_1() {
    let dir = workdir();
    let file = write(
        dir.path(),
        "bad.csv",
        "user_id,timestamp,channel,conversion,conversion_value\n\
         u1,2026-01-01T00:00:00Z,email,0,\n\
         u1,yesterday,email,0,\n\
         u1,2026-01-02T00:00:00Z,,0,\n\
         u1,2026-01-03T00:00:00Z,,maybe,\n\
         u1,2026-01-03T00:00:00Z,,1,NaN\n\
         u1,2026-01-03T00:00:00Z,,1,-5\n\
         u1,2026-01-03T00:00:00Z,email\n",
    );
    let (code, stderr) = failure(&attribute(&file, &[]));
    assert_eq!(code, 1);
    for needle in [
        "invalid_value",
        "row 2, column `timestamp`: cannot read `yesterday` as a timestamp",
        "row 3, column `channel`: channel is empty on a touch row",
        "row 4, column `conversion`: cannot read `maybe` as a conversion flag",
        "row 5, column `conversion_value`: `NaN` is not a finite number",
        "row 6, column `conversion_value`: negative conversion value -5",
        "row 7, column `(row)`: row has 3 fields, the header has 5",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in:\n{stderr}");
    }
}

#[test]
fn structural_problems_have_their_own_error_codes() {
    let dir = workdir();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty.csv", b"".to_vec(), "empty_input"),
        ("header.csv", b"user_id,timestamp,channel,conversion\n".to_vec(), "empty_input"),
        ("cols.csv", b"who,when\na,b\n".to_vec(), "missing_columns"),
        ("binary.bin", vec![0, 159, 146, 150, 255, 254, 0, 1], "unknown_format"),
        (
            "cut.csv.gz",
            {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(EVENTS.repeat(50).as_bytes()).unwrap();
                let bytes = gz.finish().unwrap();
                bytes[..bytes.len() / 2].to_vec()
            },
            "truncated_input",
        ),
        (
            "cut.parquet",
            {
                let path = dir.path().join("full.parquet");
                write_events_parquet(&path, EVENTS);
                let bytes = std::fs::read(&path).unwrap();
                bytes[..bytes.len() - 20].to_vec()
            },
            "truncated_input",
        ),
    ];
    for (name, bytes, code) in cases {
        let file = write(dir.path(), name, bytes);
        let (exit, stderr) = failure(&attribute(&file, &[]));
        assert_eq!(exit, 1, "{name}: {stderr}");
        assert!(stderr.contains(code), "{name}: expected {code} in {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn invalid_options_are_usage_errors_naming_the_option() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    for (args, field) in [
        (vec!["--markov-order", "7"], "markov_order"),
        (vec!["--models", "first_touch,psychic"], "models"),
        (vec!["--half-life-days", "-1"], "half_life_days"),
        (vec!["--position-weights", "1,2"], "position_weights"),
        (vec!["--column", "colour=x"], "columns"),
        (vec!["--delimiter", "::"], "delimiter"),
    ] {
        let (exit, stderr) = failure(&attribute(&file, &args));
        assert_eq!(exit, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }
    let paths = sample("paths.csv");
    let (exit, stderr) = failure(&attribute(&paths, &["--models", "time_decay"]));
    assert_eq!(exit, 2);
    assert!(stderr.contains("not offered on path-level input"), "{stderr}");
}

#[test]
fn path_input_accepts_any_separator_and_keeps_fractions() {
    let dir = workdir();
    let file = write(
        dir.path(),
        "paths.tsv",
        "journey\tconversions\tnulls\na -> b ->  -> a\t0.5\t1\nb\t1.25\t0\n -> \t2\t0\n",
    );
    let result = attribute_json(&file, &["--separator=->", "--models", "linear,first_touch"]);
    assert_eq!(result["summary"]["conversions"], 3.75);
    assert_eq!(result["summary"]["unattributed_conversions"], 2.0, "an empty path cannot be credited");
    assert_close(credit(&result, "first_touch", "a").0, 0.5, "first a");
    assert_close(credit(&result, "linear", "a").0, 0.5 * 2.0 / 3.0, "linear a");
    assert_close(credit(&result, "linear", "b").0, 0.5 / 3.0 + 1.25, "linear b");
}

#[test]
fn explicit_column_mapping_reads_unusual_names() {
    let dir = workdir();
    let file =
        write(dir.path(), "odd.csv", "who;at;via;goal;amount\nx;1767225600;Email;0;\nx;1767312000;Email;1;12.5\n");
    let result = attribute_json(
        &file,
        &[
            "--column",
            "user_id=who",
            "--column",
            "timestamp=at",
            "--column",
            "channel=via",
            "--column",
            "conversion=goal",
            "--column",
            "conversion_value=amount",
        ],
    );
    assert_eq!(credit(&result, "last_touch", "Email"), (1.0, 12.5));
}

#[test]
fn a_path_row_with_value_but_no_conversions_is_refused() {
    let dir = workdir();
    let file = write(dir.path(), "paths.csv", "path,total_conversions,total_conversion_value\na>b,0,50\nb,1,5\n");
    let (exit, stderr) = failure(&attribute(&file, &[]));
    assert_eq!(exit, 1);
    assert!(
        stderr.contains("row 1, column `total_conversion_value`: value 50 on a path without conversions"),
        "{stderr}"
    );
}

// ---- hostile input -------------------------------------------------------------------------

#[test]
fn a_line_that_inflates_to_hundreds_of_mebibytes_is_refused_in_bounded_memory() {
    let dir = workdir();
    let csv = inflating("user_id,timestamp,channel,conversion\nu1,2026-01-01,a,0\nu1,2026-01-02,", "x", 512, ",0\n");
    let csv = write(dir.path(), "long-line.csv.gz", csv);
    let first = r#"{"user_id":"u1","timestamp":"2026-01-01","channel":"a","conversion":0}"#;
    let ndjson = inflating(&format!("{first}\n{{\"user_id\":\"u1\",\"channel\":\""), "x", 512, "\"}\n");
    let ndjson = write(dir.path(), "long-line.ndjson.gz", ndjson);
    for (file, located) in [(&csv, "row 2, column `(row)`"), (&ndjson, "row 2, column `(line)`")] {
        let (output, peak) = attribute_peak_memory(file, &[]);
        let (exit, stderr) = failure(&output);
        assert_eq!(exit, 1, "{stderr}");
        assert!(stderr.contains("limit_exceeded") && stderr.contains(located), "{stderr}");
        assert!(stderr.contains("max_line_bytes"), "{stderr}");
        assert!(peak < 96 << 20, "{}: peak RSS {} MiB", file.display(), peak >> 20);
    }
    // The limit is the user's: a row within a raised limit is read (and here refused for its content).
    let short = inflating("user_id,timestamp,channel,conversion\nu1,", "x", 2, ",a,0\n");
    let (exit, stderr) =
        failure(&attribute(&write(dir.path(), "2mib.csv.gz", short), &["--max-line-bytes", "3000000"]));
    assert_eq!(exit, 1);
    assert!(stderr.contains("row 1, column `timestamp`: cannot read `xxx"), "{stderr}");
    assert!(stderr.contains("…` (2097152 bytes)"), "{stderr}");
}

#[test]
fn a_huge_header_gives_a_small_error() {
    let dir = workdir();
    // 64 MiB of column names in a 100 kB file: refused as the header line it is, not repeated.
    let huge = write(dir.path(), "header.csv.gz", inflating("", "column,", 64, "\nu1\n"));
    let (output, peak) = attribute_peak_memory(&huge, &[]);
    let (exit, stderr) = failure(&output);
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("header line"), "{stderr}");
    assert!(stderr.len() < 1024, "{} bytes of error", stderr.len());
    assert!(peak < 96 << 20, "peak RSS {} MiB", peak >> 20);

    // Under the header limit, columns are listed (shortened) up to a bound.
    let mut header: String = (0..50_000).map(|i| format!("column_{i},")).collect();
    header.push_str(&"n".repeat(300_000));
    let wide = write(dir.path(), "wide.csv", format!("{header}\nx\n"));
    let (exit, stderr) = failure(&attribute(&wide, &[]));
    assert_eq!(exit, 1);
    assert!(stderr.contains("missing_columns") && stderr.contains("column_0, column_1"), "{stderr}");
    assert!(stderr.len() < 8 * 1024, "{} bytes of error", stderr.len());

    // NDJSON lines of ever new keys (25,000 each, 400 kB a line) are refused at the column
    // names' limit, on the line that passes it (a line of 50,000 keys took 17 s alone before).
    let wide: String = (0..20)
        .map(|line| {
            let keys: String = (0..25_000).map(|k| format!(",\"k{line}_{k}\":1")).collect();
            format!("{{\"user_id\":\"u1\",\"timestamp\":\"2026-01-01T00:00:00Z\",\"channel\":\"a\",\"conversion\":0{keys}}}\n")
        })
        .collect();
    let (exit, stderr) = failure(&attribute(&write(dir.path(), "wide.ndjson", wide), &[]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("line 1 brings the distinct keys"), "{stderr}");
    assert!(stderr.len() < 1024, "{} bytes of error", stderr.len());

    // A column mapping of an absurd name is refused naming the option, the name shortened.
    let file = write(dir.path(), "events.csv", EVENTS);
    let mapping = format!("user_id={}", "c".repeat(100_000));
    let (exit, stderr) = failure(&attribute(&file, &["--column", &mapping]));
    assert_eq!(exit, 2, "{stderr}");
    assert!(stderr.contains("invalid_option") && stderr.contains("`columns`"), "{stderr}");
    assert!(stderr.contains("…` (100000 bytes)") && stderr.len() < 1024, "{stderr}");
}

#[test]
fn markov_over_more_channels_than_its_limit_is_refused_before_it_solves() {
    let dir = workdir();
    let file = write(dir.path(), "wide.csv", events_over_channels(60, 3));
    let (exit, stderr) = failure(&attribute(&file, &["--markov-max-channels", "50"]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("more than 50 distinct channels"), "{stderr}");
    assert!(stderr.contains("markov_max_channels"), "{stderr}");
    // The limit is Markov's: other models attribute the same file, and Markov does within the limit.
    let linear = attribute_json(&file, &["--markov-max-channels", "50", "--models", "linear"]);
    assert_eq!(linear["summary"]["channels"], 60, "{linear}");
    let markov = attribute_json(&file, &["--markov-max-channels", "60", "--models", "markov"]);
    assert_close(markov["models"]["markov"]["total_conversions"].as_f64().unwrap(), 30.0, "markov conversions");

    // By default a file with more channels than a solve can afford is refused at once.
    let wide = write(dir.path(), "wider.csv", events_over_channels(10_001, 2));
    let started = std::time::Instant::now();
    let (exit, stderr) = failure(&attribute(&wide, &["--models", "markov"]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("more than 10000 distinct channels") && stderr.contains("markov_max_channels"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "refused after {:?}", started.elapsed());
}

#[test]
fn sums_past_the_float_range_are_refused_naming_column_and_row() {
    let dir = workdir();
    let events = write(
        dir.path(),
        "big.csv",
        "user_id,timestamp,channel,conversion,revenue\n\
         u1,2026-01-01,a,0,\nu1,2026-01-02,,1,1e308\nu2,2026-01-01,b,0,\nu2,2026-01-02,,1,1e308\n",
    );
    let paths = write(dir.path(), "big-paths.csv", "path,total_conversions\na,1e308\nb,1e308\n");
    for (file, located) in [(&events, "row 4, column `revenue`"), (&paths, "row 2, column `total_conversions`")] {
        let (exit, stderr) = failure(&attribute(file, &[]));
        assert_eq!(exit, 1, "{stderr}");
        assert!(stderr.contains("limit_exceeded") && stderr.contains(located), "{stderr}");
    }
    let parquet = dir.path().join("big.parquet");
    write_typed_parquet(
        &parquet,
        &[
            (Some("u1"), Some(1_000), Some("a"), Some(false), None),
            (Some("u1"), Some(2_000), None, Some(true), Some(1e308)),
            (Some("u2"), Some(1_000), Some("a"), Some(false), None),
            (Some("u2"), Some(2_000), None, Some(true), Some(1e308)),
        ],
        4,
    );
    let (exit, stderr) = failure(&attribute(&parquet, &[]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("row 4, column `conversion_value`"), "{stderr}");
}

#[test]
fn position_weights_of_any_magnitude_credit_every_conversion() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    let models = ["--models", "position_based"];
    let weights = attribute_json(&file, &[&models[..], &["--position-weights", "1e308,1e308,1e308"]].concat());
    let thirds = attribute_json(&file, &[&models[..], &["--position-weights", "1,1,1"]].concat());
    assert_eq!(weights["models"], thirds["models"]);
    let model = &weights["models"]["position_based"];
    assert_eq!(model["conserves_totals"], true, "{model}");
    assert_close(model["total_conversions"].as_f64().unwrap(), 2.0, "credited");
}

#[test]
fn a_latin1_byte_in_the_first_row_is_reported_on_that_row() {
    let dir = workdir();
    let text = b"user_id,timestamp,channel,conversion\nM\xfcller,2026-01-01,caf\xe9,0\nu2,2026-01-02,a,1\n";
    let file = write(dir.path(), "latin1.csv", text);
    let (exit, stderr) = failure(&attribute(&file, &[]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(
        stderr.contains("invalid_value") && stderr.contains("row 1, column `#1`: value is not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn credit_per_week_follows_the_conversion_date_in_the_time_zone_and_adds_up() {
    let dir = workdir();
    // u4 converts on Sunday 2026-01-04 at 23:30 UTC: Monday 00:30 in Berlin, a new ISO week there.
    let events =
        format!("{EVENTS}u4,2026-01-04T20:00:00Z,impression,0,,search\nu4,2026-01-04T23:30:00Z,conversion,1,10,\n");
    let file = write(dir.path(), "events.csv", &events);
    let models = ["--models", "first_touch,linear,markov", "--period", "week"];
    let utc = attribute_json(&file, &models);
    let weeks = |result: &serde_json::Value| -> Vec<String> {
        result["periods"].as_array().unwrap().iter().map(|p| p["period"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(weeks(&utc), ["2025-12-29", "2026-01-05"]);
    assert_eq!(utc["options"]["period"], "week");
    assert_eq!(utc["options"]["timezone"], "UTC");
    let first = &utc["periods"][0];
    assert_eq!(first["summary"]["conversions"], 2.0, "u1 on Saturday and u4 on Sunday: {first}");
    assert_eq!(first["models"]["first_touch"]["channels"][0]["channel"], "email");
    let second = &utc["periods"][1];
    assert_eq!(second["summary"]["conversions"], 2.0, "u2 on Monday, u3 (unattributed) on Saturday");
    assert_eq!(second["summary"]["null_journeys"], 1.0, "u2's touch after its conversion, by its date");
    assert_eq!(second["summary"]["unattributed_value"], 20.0);

    let berlin_dir = dir.path().join("tables");
    let mut args = models.to_vec();
    args.extend(["--timezone", "Europe/Berlin", "--csv-dir", berlin_dir.to_str().unwrap()]);
    let berlin = attribute_json(&file, &args);
    assert_eq!(berlin["periods"][0]["summary"]["conversions"], 1.0, "u4 moved to the next week in Berlin");
    assert_eq!(berlin["periods"][1]["summary"]["conversions"], 3.0);
    // Every rule model's periods add up to its whole-file credit.
    for result in [&utc, &berlin] {
        for model in ["first_touch", "linear"] {
            for channel in ["email", "search"] {
                let whole = credit(result, model, channel).0;
                let mut sum = 0.0;
                for period in result["periods"].as_array().unwrap() {
                    let channels = period["models"][model]["channels"].as_array().unwrap();
                    sum += channels
                        .iter()
                        .filter(|c| c["channel"] == channel)
                        .map(|c| c["conversions"].as_f64().unwrap())
                        .sum::<f64>();
                }
                assert_close(sum, whole, &format!("{model} {channel}"));
            }
        }
    }
    // The tidy tables: channels.csv as ever, and periods.csv with a period column.
    let periods = std::fs::read_to_string(berlin_dir.join("periods.csv")).unwrap();
    let mut lines = periods.lines();
    assert_eq!(lines.next(), Some("period,model,channel,conversions,value,share,removal_effect,removal_effect_value"));
    assert!(lines.clone().any(|l| l.starts_with("2026-01-05,markov,search,")), "{periods}");
    let rows_per_period = |week: &str| lines.clone().filter(|l| l.starts_with(week)).count();
    assert_eq!(rows_per_period("2025-12-29"), 6, "u1's email and search under three models: {periods}");
    assert!(std::fs::read_to_string(berlin_dir.join("channels.csv")).unwrap().starts_with("model,channel,"));
    // Each week's journey reports, with a period column first.
    let lengths = std::fs::read_to_string(berlin_dir.join("period_path_length.csv")).unwrap();
    assert_eq!(lengths.lines().next(), Some("period,bucket,conversions,value"));
    assert_eq!(lengths.lines().count(), 1 + 10 * berlin["periods"].as_array().unwrap().len());
    for period in berlin["periods"].as_array().unwrap() {
        let converted: f64 = period["reports"]["path_length"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["conversions"].as_f64().unwrap())
            .sum();
        let s = &period["summary"];
        assert_eq!(converted, s["conversions"].as_f64().unwrap() - s["unattributed_conversions"].as_f64().unwrap());
    }
    assert!(berlin_dir.join("period_paths.csv").exists() && !berlin_dir.join("segment_paths.csv").exists());

    // Bad period options are refused before the file is read, naming the option.
    let refused = attribute(&file, &["--period", "fortnight"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("period"), "{refused:?}");
    let refused = attribute(&file, &["--timezone", "Europe/Berlin"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("applies only with `period`"), "{refused:?}");
}

#[test]
fn journey_reports_count_lengths_lags_and_positions_of_converting_journeys() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    let tables = dir.path().join("tables");
    let result = attribute_json(&file, &["--models", "linear", "--csv-dir", tables.to_str().unwrap()]);
    let reports = &result["reports"];
    let bucket = |table: &str, name: &str| {
        let row = reports[table].as_array().unwrap().iter().find(|b| b["bucket"] == name).unwrap().clone();
        (row["conversions"].as_f64().unwrap(), row["value"].as_f64().unwrap())
    };
    // u1: email, search, converts 2 days after its first touch for 100; u2: search only,
    // converts 4 days later for 50; u3's conversion has no touch in its window.
    assert_eq!(bucket("path_length", "1"), (1.0, 50.0));
    assert_eq!(bucket("path_length", "2"), (1.0, 100.0));
    assert_eq!(bucket("path_length", "10+"), (0.0, 0.0));
    assert_eq!(bucket("time_lag", "2-3"), (1.0, 100.0));
    assert_eq!(bucket("time_lag", "4-7"), (1.0, 50.0));
    assert_eq!(reports["path_length"].as_array().unwrap().len(), 10);
    assert_eq!(reports["time_lag"].as_array().unwrap().len(), 8);
    let positions = reports["positions"].as_array().unwrap();
    let of = |channel: &str| positions.iter().find(|p| p["channel"] == channel).unwrap().clone();
    assert_eq!(
        of("email"),
        serde_json::json!({"channel": "email", "only": 0.0, "first": 1.0, "middle": 0.0, "last": 0.0})
    );
    assert_eq!(
        of("search"),
        serde_json::json!({"channel": "search", "only": 1.0, "first": 0.0, "middle": 0.0, "last": 1.0})
    );
    assert_eq!(of("display")["only"], 0.0, "display is only in a journey that did not convert");
    // Each report is a tidy CSV table too.
    let read = |name: &str| std::fs::read_to_string(tables.join(name)).unwrap();
    assert!(read("path_length.csv").starts_with("bucket,conversions,value\n1,1,50\n2,1,100\n"));
    assert_eq!(read("time_lag.csv").lines().count(), 9);
    assert!(read("positions.csv").starts_with("channel,only,first,middle,last\n"));
    assert!(read("positions.csv").contains("\nsearch,1,0,0,1\n"));
    // Path rows have no times: no time lag.
    let paths = attribute_json(&sample("paths.csv"), &[]);
    assert_eq!(paths["reports"]["time_lag"], serde_json::json!([]));
    assert!(paths["reports"]["path_length"].as_array().unwrap().iter().any(|b| b["conversions"].as_f64() > Some(0.0)));
}

#[test]
fn shao_li_auto_markov_order_and_pair_effects_from_the_command_line() {
    let dir = workdir();
    let tables = dir.path().join("tables");
    let args = ["--markov-order", "auto", "--markov-pair-effects", "--csv-dir", tables.to_str().unwrap()];
    let result = attribute_json(&sample("paths.csv"), &args);
    // docs/user-guide.md, "Shao & Li": the design example by hand.
    for (channel, conversions, value) in
        [("c1", 96.0 / 65.0, 24.0), ("c2", 98.0 / 65.0, 7.5), ("c3", 66.0 / 65.0, 13.5)]
    {
        let (got, got_value) = credit(&result, "shao_li", channel);
        assert_close(got, conversions, channel);
        assert_close(got_value, value, channel);
    }
    assert_eq!(result["options"]["markov_order"], "auto");
    assert_eq!(result["options"]["markov_pair_effects"], true);
    let markov = &result["models"]["markov"];
    let selection = &markov["order_selection"];
    assert_eq!(markov["order"], selection["chosen"], "{markov}");
    assert_eq!(selection["criterion"], "held_out_outcome_log_likelihood");
    let orders: Vec<u64> =
        selection["scores"].as_array().unwrap().iter().map(|s| s["order"].as_u64().unwrap()).collect();
    assert_eq!(orders, [1, 2, 3, 4]);
    let pairs = markov["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "{markov}");
    let csv = std::fs::read_to_string(tables.join("markov_pairs.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("channel_a,channel_b,removal_effect,removal_effect_value,overlap"));
    for (line, pair) in lines.zip(pairs) {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!((fields[0], fields[1]), (pair["channel_a"].as_str().unwrap(), pair["channel_b"].as_str().unwrap()));
        assert_close(fields[2].parse().unwrap(), pair["removal_effect"].as_f64().unwrap(), line);
        assert_close(fields[4].parse().unwrap(), pair["overlap"].as_f64().unwrap(), line);
    }
    assert!(tables.join("channels.csv").exists());

    let output = attribute(&sample("paths.csv"), &["--markov-order", "auto", "--markov-pair-effects", "--table"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in ["shao_li", "markov order chosen", "log-likelihood", "markov pair removal effects", "overlap"] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Without the option, no pairs and no table file.
    let plain_dir = dir.path().join("plain");
    let plain = attribute_json(&sample("paths.csv"), &["--csv-dir", plain_dir.to_str().unwrap()]);
    assert!(
        plain["models"]["markov"].get("pairs").is_none() && plain["models"]["markov"].get("order_selection").is_none()
    );
    assert!(!plain_dir.join("markov_pairs.csv").exists());

    // Refusals name the option.
    for (args, option) in [
        (vec!["--markov-order", "best"], "markov_order"),
        (vec!["--markov-pair-effects", "--models", "linear"], "markov_pair_effects"),
    ] {
        let (exit, stderr) = failure(&attribute(&sample("paths.csv"), &args));
        assert_eq!(exit, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(option), "{args:?}: {stderr}");
    }
}

#[test]
fn shao_li_over_too_many_channel_pairs_is_refused_naming_the_model() {
    let dir = workdir();
    // One journey over 2,001 distinct channels: 2,001,000 pairs, past the limit of 2,000,000.
    let mut csv = String::from("user_id,timestamp,channel,conversion\n");
    for c in 0..2001 {
        csv.push_str(&format!("u1,2026-01-01T{:02}:{:02}:{:02}Z,c{c},0\n", c / 3600, c / 60 % 60, c % 60));
    }
    csv.push_str("u1,2026-01-02T00:00:00Z,,1\n");
    let file = write(dir.path(), "wide.csv", &csv);
    let (exit, stderr) = failure(&attribute(&file, &["--models", "linear,shao_li"]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("shao_li") && stderr.contains("2000000"), "{stderr}");
    let linear = attribute_json(&file, &["--models", "linear"]);
    assert_close(linear["models"]["linear"]["total_conversions"].as_f64().unwrap(), 1.0, "linear");
}

#[test]
fn lookback_windows_compare_in_one_run_with_their_table_and_csv() {
    let dir = workdir();
    let file = write(dir.path(), "events.csv", EVENTS);
    let tables = dir.path().join("tables");
    let models = ["--models", "first_touch,linear"];
    let mut args = vec!["--lookback-days", "1.5,7,0", "--csv-dir", tables.to_str().unwrap()];
    args.extend(models);
    let result = attribute_json(&file, &args);
    // Each window is the run with that window alone; the top level is the first.
    let windows = result["windows"].as_array().unwrap();
    for (window, days) in windows.iter().zip(["1.5", "7", "0"]) {
        let mut alone = vec!["--lookback-days", days];
        alone.extend(models);
        let alone = attribute_json(&file, &alone);
        assert_eq!(window["lookback_days"].as_f64().unwrap(), days.parse::<f64>().unwrap());
        assert_eq!((&window["summary"], &window["models"]), (&alone["summary"], &alone["models"]), "{days} days");
        // Its journey reports too: its paths are the journeys' under that window.
        assert_eq!(&window["reports"], &alone["reports"], "{days} days' reports");
    }
    let paths = std::fs::read_to_string(tables.join("window_paths.csv")).unwrap();
    assert!(paths.starts_with("lookback_days,list,rank,path,"), "{paths}");
    assert!(paths.contains("\n7,converting,1,email > search,"), "{paths}");
    assert_eq!((&result["summary"], &result["models"]), (&windows[0]["summary"], &windows[0]["models"]));
    assert_eq!(result["options"]["lookback_days"], 1.5);
    // By hand: within 1.5 days u1 has search only and u2 nothing (its search is 4 days old);
    // within 7 days u1 is email → search; unlimited adds u3's display of 101 days before.
    let unattributed: Vec<f64> =
        windows.iter().map(|w| w["summary"]["unattributed_conversions"].as_f64().unwrap()).collect();
    assert_eq!(unattributed, [2.0, 1.0, 0.0]);
    let first_touch = &result["window_ranks"][0];
    assert_eq!(first_touch["model"], "first_touch");
    let ranks: Vec<(String, serde_json::Value, u64)> = first_touch["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["channel"].as_str().unwrap().to_owned(), c["rank"].clone(), c["rank_spread"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        ranks,
        [
            ("search".to_owned(), serde_json::json!([1, 2, 3]), 2),
            ("display".to_owned(), serde_json::json!([2, 3, 1]), 2),
            ("email".to_owned(), serde_json::json!([null, 1, 2]), 1),
        ]
    );
    let csv = std::fs::read_to_string(tables.join("windows.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "model,channel,lookback_days,conversions,value,share,rank");
    assert_eq!(
        &lines[1..4],
        [
            "first_touch,search,1.5,1,100,1,1",
            "first_touch,search,7,1,50,0.5,2",
            "first_touch,search,0,1,50,0.3333333333333333,3"
        ]
    );
    assert_eq!(lines.len(), 1 + 16, "two models × (3 + 3 + 2) ranked channel windows: {csv}");

    // `--table` shows share (rank) under every window.
    let mut args = vec!["--lookback-days", "1.5,7,0", "--table"];
    args.extend(models);
    let output = attribute(&file, &args);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in ["lookback windows", "1.5d", "7d", "unlimited", "rank spread", "100.0% (1)", "50.0% (2)"] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // One number keeps the plain result.
    let plain = attribute_json(&file, &["--lookback-days", "7"]);
    assert!(plain.get("windows").is_none() && plain.get("window_ranks").is_none());

    // Refused before the file is read, naming the option (exit 2).
    for (args, needle) in [
        (vec!["--lookback-days", "1,2,3,4,5,6,7,8,9"], "at most 8"),
        (vec!["--lookback-days", "7,7"], "listed twice"),
        (vec!["--lookback-days", "7,-1"], "must be a number >= 0"),
        (vec!["--lookback-days", "7,soon"], "comma-separated"),
        (vec!["--lookback-days", "7,30", "--period", "week"], "does not combine with `period`"),
    ] {
        let (exit, stderr) = failure(&attribute(&file, &args));
        assert_eq!(exit, 2, "{args:?}: {stderr}");
        assert!(stderr.contains("lookback_days") && stderr.contains(needle), "{args:?}: {stderr}");
    }
    let (exit, stderr) = failure(&attribute(&sample("paths.csv"), &["--lookback-days", "7,30"]));
    assert_eq!(exit, 2, "{stderr}");
    assert!(stderr.contains("path rows have no times"), "{stderr}");
}

#[test]
fn top_paths_and_the_transition_table_are_exact_escaped_and_written_as_tables() {
    let dir = workdir();
    // Channel names that hold the path separator, the escape character, a comma and a state name.
    let events = "\
cookie,time,conversion,conversion_value,channel
u1,2026-01-01T10:00:00Z,0,,\"paid > search\"
u1,2026-01-02T10:00:00Z,0,,back\\slash
u1,2026-01-03T10:00:00Z,1,100,
u2,2026-01-01T10:00:00Z,0,,\"paid > search\"
u2,2026-01-02T10:00:00Z,0,,back\\slash
u2,2026-01-03T10:00:00Z,1,20,
u3,2026-01-01T10:00:00Z,0,,\"news, letter\"
u3,2026-01-02T10:00:00Z,1,5,
u4,2026-01-01T10:00:00Z,0,,(null)
u4,2026-01-02T10:00:00Z,0,,\"news, letter\"
";
    let file = write(dir.path(), "events.csv", events);
    let tables = dir.path().join("tables");
    let transitions = dir.path().join("transitions.csv");
    let args = ["--models", "linear,markov", "--csv-dir", tables.to_str().unwrap(), "--transitions"];
    let result = attribute_json(&file, &[&args[..], &[transitions.to_str().unwrap()]].concat());
    let paths = &result["reports"]["paths"];
    assert_eq!(paths["exact"], true);
    assert_eq!(paths["distinct_paths"], 3);
    assert_eq!(paths["error_bound"], serde_json::json!({"conversions": 0.0, "value": 0.0, "null_journeys": 0.0}));
    let path = |list: &str, i: usize| paths[list][i]["path"].as_str().unwrap().to_owned();
    assert_eq!(path("converting", 0), "paid \\> search > back\\\\slash");
    assert_eq!(
        paths["converting"][0],
        serde_json::json!({"path": "paid \\> search > back\\\\slash", "touches": 2, "journeys": 2.0,
                           "conversions": 2.0, "value": 120.0, "null_journeys": 0.0})
    );
    assert_eq!(path("converting", 1), "news, letter");
    assert_eq!(path("non_converting", 0), "\\(null) > news, letter");
    assert_eq!(paths["non_converting"].as_array().unwrap().len(), 1);
    // The transition table: the channel called (null) is escaped, never the null state.
    let rows = result["reports"]["transitions"]["rows"].as_array().unwrap();
    let step = |from: &str, to: &str| {
        rows.iter().find(|r| r["from"] == from && r["to"] == to).map(|r| (r["count"].clone(), r["probability"].clone()))
    };
    assert_eq!(step("(start)", "paid \\> search"), Some((2.0.into(), 0.5.into())));
    assert_eq!(step("\\(null)", "news, letter"), Some((1.0.into(), 1.0.into())));
    assert_eq!(step("news, letter", "(conversion)"), Some((1.0.into(), 0.5.into())));
    assert_eq!(step("news, letter", "(null)"), Some((1.0.into(), 0.5.into())));
    assert_eq!(result["reports"]["transitions"]["order"], 1);
    assert_eq!(result["reports"]["transitions"]["truncated"], false);
    // The tables, CSV-quoted where needed; --transitions writes the same table.
    let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap();
    let paths_csv = read(&tables.join("paths.csv"));
    assert!(
        paths_csv.starts_with(
            "list,rank,path,touches,journeys,conversions,value,null_journeys,exact\n\
             converting,1,paid \\> search > back\\\\slash,2,2,2,120,0,true\n\
             converting,2,\"news, letter\",1,1,1,5,0,true\n\
             non_converting,1,\"\\(null) > news, letter\",2,1,0,0,1,true\n"
        ),
        "{paths_csv}"
    );
    let transitions_csv = read(&transitions);
    assert_eq!(transitions_csv, read(&tables.join("transitions.csv")));
    assert!(transitions_csv.starts_with("from,to,count,probability\n"), "{transitions_csv}");
    assert!(transitions_csv.contains("\n\\(null),\"news, letter\",1,1\n"), "{transitions_csv}");
    assert_eq!(transitions_csv.lines().count(), rows.len() + 1);
    // --top-paths cuts the lists; --table shows the sections.
    let top = attribute_json(&file, &["--models", "linear", "--top-paths", "1"]);
    assert_eq!(top["reports"]["paths"]["converting"].as_array().unwrap().len(), 1);
    assert!(top["reports"].get("transitions").is_none(), "no markov, no transitions");
    let table = attribute(&file, &["--models", "linear,markov", "--table"]);
    let text = String::from_utf8(table.stdout).unwrap();
    for section in ["top converting paths", "top non-converting paths", "markov transitions", "touch positions"] {
        assert!(text.contains(section), "{section}: {text}");
    }
    assert!(text.contains("paid \\> search > back\\\\slash"), "{text}");
    // The transition table is the markov model's: asking for it without markov is a usage error.
    let refused = attribute(&file, &["--models", "linear", "--transitions", transitions.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("transitions"), "{refused:?}");
}

#[test]
fn past_max_report_paths_the_top_paths_are_estimates_within_a_reported_bound() {
    let dir = workdir();
    // 200 users on 100 distinct converting paths, and one path taken by 60 users.
    let mut events = String::from("cookie,time,conversion,conversion_value,channel\n");
    for u in 0..200 {
        let (a, b) = (u % 100, (u * 7 + 1) % 100);
        events.push_str(&format!("u{u},2026-01-01T10:00:00Z,0,,c{a}\nu{u},2026-01-02T10:00:00Z,0,,d{b}\n"));
        events.push_str(&format!("u{u},2026-01-03T10:00:00Z,1,1,\n"));
    }
    for u in 0..60 {
        events.push_str(&format!("h{u},2026-01-01T10:00:00Z,0,,heavy\nh{u},2026-01-02T10:00:00Z,1,2,\n"));
    }
    let file = write(dir.path(), "events.csv", &events);
    let exact = attribute_json(&file, &["--models", "linear", "--partitions", "3", "--top-paths", "1000"]);
    assert_eq!(exact["reports"]["paths"]["exact"], true);
    assert_eq!(exact["reports"]["paths"]["distinct_paths"], 101);
    let tables = dir.path().join("tables");
    let args = ["--models", "linear", "--partitions", "3", "--max-report-paths", "8", "--csv-dir"];
    let result = attribute_json(&file, &[&args[..], &[tables.to_str().unwrap()]].concat());
    let paths = &result["reports"]["paths"];
    assert_eq!(paths["exact"], false, "{paths}");
    assert_eq!(paths["distinct_paths"], serde_json::Value::Null);
    let bound = paths["error_bound"]["conversions"].as_f64().unwrap();
    assert!(bound > 0.0 && bound <= 260.0 / 3.0, "{bound}");
    // Every figure is at most the bound below the exact one, never above it.
    let exact_rows = exact["reports"]["paths"]["converting"].as_array().unwrap();
    for row in paths["converting"].as_array().unwrap() {
        let truth =
            exact_rows.iter().find(|r| r["path"] == row["path"]).map_or(0.0, |r| r["conversions"].as_f64().unwrap());
        let got = row["conversions"].as_f64().unwrap();
        assert!(got <= truth + 1e-9 && got >= truth - bound - 1e-9, "{row} vs {truth}");
    }
    assert_eq!(paths["converting"][0]["path"], "heavy", "the heavy hitter is found");
    let csv = std::fs::read_to_string(tables.join("paths.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().ends_with(",false"), "{csv}");
    // The limit is an option like the others: out of range is a usage error naming it.
    let refused = attribute(&file, &["--max-report-paths", "2"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("max_report_paths"), "{refused:?}");
}
