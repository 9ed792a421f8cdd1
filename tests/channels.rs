//! Channels named from source / medium / campaign / referrer by channel rules
//! (docs/channel-rules.md): `mta attribute` on UTM files in every format, and a service job
//! with inline rules against the local command.

use serde_json::{Value, json};

use crate::service::assert_same_result;
use crate::service_support::{Service, ServiceSpec, without_job_id};
use crate::support::{attribute, attribute_json, credit, failure, workdir, write};

/// Four users, by hand under `ga4`:
/// - a: google/cpc (Paid Search), newsletter/email (Email), converts for 120;
/// - b: facebook/paid_social (Paid Social), a row without source and medium (Direct),
///   converts for 60 on a row tagged Google/Organic (a conversion row: not a touch);
/// - c: partner.example/referral (Referral), converts for 30;
/// - d: one touch from a referrer URL on google.com (Organic Search), never converts.
const UTM: &str = "\
user_id,timestamp,utm_source,utm_medium,utm_campaign,page_referrer,converted,revenue
a,2026-03-01T10:00:00Z,google,cpc,brand,,0,
a,2026-03-02T10:00:00Z,newsletter,email,march,,0,
a,2026-03-03T10:00:00Z,,,,,1,120
b,2026-03-01T09:00:00Z,facebook,paid_social,spring,,0,
b,2026-03-01T12:00:00Z,,,,,0,
b,2026-03-02T09:00:00Z,Google,Organic,,,1,60
c,2026-03-05T08:00:00Z,partner.example,referral,,,0,
c,2026-03-06T08:00:00Z,,,,,1,30
d,2026-03-01T08:00:00Z,,,,https://www.google.com/search?q=shoes,0,
";

/// Rules of our own: paid media, owned media, direct; the rest is Unassigned.
const CUSTOM_RULES: &str = r#"[
  {"channel": "Paid", "when": {"medium": {"regex": "^(cpc|paid.*)$"}}},
  {"channel": "Owned", "when": {"medium": {"in": ["EMAIL", "sms"]}}},
  {"channel": "Direct", "when": {"source": {"equals": "(direct)"}}}
]"#;

fn channels(result: &Value, model: &str) -> Vec<String> {
    result["models"][model]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_utm_file_without_a_channel_column_gets_the_ga4_channels() {
    let dir = workdir();
    let result = attribute_json(&write(dir.path(), "utm.csv", UTM), &[]);
    assert_eq!(result["options"]["channel_rules"], json!({"name": "ga4", "rules": 28}));
    assert_eq!(result["summary"]["null_journeys"], 1.0, "d's organic search touch");
    for (channel, conversions, value) in [("Email", 1.0, 120.0), ("Direct", 1.0, 60.0), ("Referral", 1.0, 30.0)] {
        assert_eq!(credit(&result, "last_touch", channel), (conversions, value), "last touch {channel}");
    }
    for (channel, conversions, value) in
        [("Paid Search", 1.0, 120.0), ("Paid Social", 1.0, 60.0), ("Referral", 1.0, 30.0)]
    {
        assert_eq!(credit(&result, "first_touch", channel), (conversions, value), "first touch {channel}");
    }
    // `Direct` is a direct channel for last_non_direct, whatever its case.
    assert_eq!(credit(&result, "last_non_direct", "Paid Social"), (1.0, 60.0));
    for (channel, conversions, value) in [
        ("Paid Search", 0.5, 60.0),
        ("Email", 0.5, 60.0),
        ("Paid Social", 0.5, 30.0),
        ("Direct", 0.5, 30.0),
        ("Referral", 1.0, 30.0),
    ] {
        assert_eq!(credit(&result, "linear", channel), (conversions, value), "linear {channel}");
    }
    // d's touch (a referrer from google) opens a null journey; b's conversion row is no touch.
    assert_eq!(credit(&result, "linear", "Organic Search"), (0.0, 0.0));

    // A conversion row that names its source is a touch with --conversion-touch; one that
    // names nothing has no channel, as with an empty channel cell.
    let touching = attribute_json(&write(dir.path(), "utm.csv", UTM), &["--conversion-touch"]);
    assert_eq!(credit(&touching, "last_touch", "Organic Search"), (1.0, 60.0));
    assert_eq!(credit(&touching, "last_touch", "Email"), (1.0, 120.0));
}

#[test]
fn custom_rules_from_a_file_name_the_channels_and_win_over_a_channel_column() {
    let dir = workdir();
    let rules = write(dir.path(), "rules.json", CUSTOM_RULES);
    let rules = rules.to_str().unwrap();
    let result = attribute_json(&write(dir.path(), "utm.csv", UTM), &["--channel-rules", rules]);
    assert_eq!(result["options"]["channel_rules"], json!({"name": "custom", "rules": 3}));
    assert_eq!(credit(&result, "linear", "Paid"), (1.0, 90.0));
    assert_eq!(credit(&result, "linear", "Owned"), (0.5, 60.0));
    assert_eq!(credit(&result, "linear", "Direct"), (0.5, 30.0));
    assert_eq!(credit(&result, "linear", "Unassigned"), (1.0, 30.0));

    // With a channel column, the column names the channels unless rules are given.
    let mut both = String::new();
    for (i, line) in UTM.lines().enumerate() {
        both.push_str(&format!("{line},{}\n", if i == 0 { "channel" } else { "col" }));
    }
    let file = write(dir.path(), "both.csv", &both);
    let plain = attribute_json(&file, &[]);
    assert!(plain["options"].get("channel_rules").is_none(), "{}", plain["options"]);
    assert_eq!(channels(&plain, "linear"), ["col"]);
    let ruled = attribute_json(&file, &["--channel-rules", rules]);
    assert_eq!(ruled["models"], result["models"]);
    let ga4 = attribute_json(&file, &["--channel-rules", "ga4"]);
    assert_eq!(ga4["models"], attribute_json(&write(dir.path(), "utm.csv", UTM), &[])["models"]);
}

#[test]
fn bad_rules_are_refused_before_reading_naming_the_rule_and_field() {
    let dir = workdir();
    let file = write(dir.path(), "utm.csv", UTM);
    for (rules, words) in [
        (
            r#"[{"channel": "A"}, {"channel": "B", "when": {"mediun": {"equals": "x"}}}]"#,
            "channel_rules[1].when.mediun",
        ),
        (r#"[{"channel": "A", "when": {"medium": {"regex": "(cpc"}}}]"#, "channel_rules[0].when.medium.regex"),
        (r#"[{"channel": "", "when": {"medium": {"equals": "x"}}}]"#, "channel_rules[0].channel"),
        (r#"[{"channel": "A", "when": {"medium": {"like": "x"}}}]"#, "is not an operator"),
        ("{not json", "is not JSON"),
    ] {
        let path = write(dir.path(), "rules.json", rules);
        let (exit, stderr) = failure(&attribute(&file, &["--channel-rules", path.to_str().unwrap()]));
        assert_eq!(exit, 2, "{rules}: {stderr}");
        assert!(stderr.contains(words), "{rules}: {stderr}");
    }
    let (exit, stderr) = failure(&attribute(&file, &["--channel-rules", "ga5"]));
    assert_eq!(exit, 2);
    assert!(stderr.contains("neither `ga4` nor a file of rules"), "{stderr}");

    // Rules on a file without source, medium or referrer name the file's columns.
    let plain = write(dir.path(), "plain.csv", "user_id,timestamp,campaign,converted\nu,2026-01-01,x,1\n");
    let (exit, stderr) = failure(&attribute(&plain, &["--channel-rules", "ga4"]));
    assert_eq!(exit, 1, "{stderr}");
    assert!(stderr.contains("source or medium"), "{stderr}");
    assert!(stderr.contains("user_id, timestamp, campaign, converted"), "{stderr}");
}

#[test]
fn utm_columns_read_the_same_from_csv_ndjson_and_parquet() {
    let dir = workdir();
    let csv = attribute_json(&write(dir.path(), "utm.csv", UTM), &[]);

    let mut lines = UTM.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut ndjson = String::new();
    for row in &rows {
        let object: serde_json::Map<String, Value> = header
            .iter()
            .zip(row)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.parse::<f64>().map_or(json!(v), |n| json!(n))))
            .collect();
        ndjson.push_str(&serde_json::to_string(&object).unwrap());
        ndjson.push('\n');
    }
    assert_eq!(attribute_json(&write(dir.path(), "utm.ndjson", &ndjson), &[])["models"], csv["models"]);

    let parquet = dir.path().join("utm.parquet");
    write_utm_parquet(&parquet, &header, &rows);
    let from_parquet = attribute_json(&parquet, &[]);
    assert_eq!(from_parquet["models"], csv["models"]);
    assert_eq!(from_parquet["options"], csv["options"]);
}

/// The UTM rows as Parquet with native types: strings for the touch fields (dictionary
/// encoded by the writer), a UTC timestamp, a boolean and a double.
fn write_utm_parquet(path: &std::path::Path, header: &[&str], rows: &[Vec<&str>]) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    let text = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| (!r[i].is_empty()).then_some(r[i]))))
    };
    let micros = |s: &str| {
        let day: i64 = s[8..10].parse().unwrap();
        let hour: i64 = s[11..13].parse().unwrap();
        // 2026-03-01T00:00:00Z is 1772323200 s after the epoch.
        (1_772_323_200 + (day - 1) * 86_400 + hour * 3_600) * 1_000_000
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (header[0], text(0)),
        (
            header[1],
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(r[1]))).with_timezone("UTC"),
            ),
        ),
        (header[2], text(2)),
        (header[3], text(3)),
        (header[4], text(4)),
        (header[5], text(5)),
        (header[6], Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r[6] == "1"))))),
        (header[7], Arc::new(Float64Array::from_iter(rows.iter().map(|r| r[7].parse::<f64>().ok())))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// A job with rules inline runs split → attribute → reduce and equals `mta attribute` with
/// the same rules from a file; without rules both apply `ga4`; bad rules answer 422 naming
/// the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_inline_rules_equals_the_local_run() {
    let dir = workdir();
    // Enough users that the job is cut into several byte ranges and partitions.
    let mut utm = String::from(UTM);
    for copy in 0..300 {
        for line in UTM.lines().skip(1) {
            utm.push_str(&format!("{copy}{line}\n"));
        }
    }
    let file = write(dir.path(), "utm.csv", &utm);
    let rules_file = write(dir.path(), "rules.json", CUSTOM_RULES);
    let env = vec![("MTA_ROWS_PER_CHUNK", "500".into()), ("MTA_CSV_RANGE_BYTES", "40000".into())];
    let service = Service::start(ServiceSpec { workers: 2, env, ..ServiceSpec::default() }).await;

    let rules: Value = serde_json::from_str(CUSTOM_RULES).unwrap();
    let job = service.run(&file, json!({"options": {"channel_rules": rules}})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["progress"]["splits_total"].as_u64().unwrap() > 1, "{}", job["progress"]);
    let (status, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    let local = attribute_json(&file, &["--channel-rules", rules_file.to_str().unwrap()]);
    assert_eq!(result["options"]["channel_rules"], json!({"name": "custom", "rules": 3}));
    assert_same_result(&without_job_id(result), &local, "result");

    let job = service.run(&file, json!({})).await;
    let (_, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    assert_eq!(result["options"]["channel_rules"], json!({"name": "ga4", "rules": 28}));
    assert_same_result(&without_job_id(result), &attribute_json(&file, &[]), "ga4 result");

    let upload = service.upload_file(&file).await;
    let bad = json!([{"channel": "Paid"}, {"channel": "X", "when": {"medium": {"regex": "(cpc"}}}]);
    let (status, body) = service.submit(json!({"upload_id": upload, "options": {"channel_rules": bad}})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_option", "{body}");
    assert_eq!(body["error"]["details"][0]["column"], "options.channel_rules", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("channel_rules[1].when.medium.regex"), "{body}");
    let (status, body) =
        service.submit(json!({"upload_id": upload, "kind": "paths", "options": {"channel_rules": "ga4"}})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("path-level input"), "{body}");
    service.assert_nothing_stuck().await;
}

/// GA4's BigQuery export keeps an event's source, medium and campaign in a struct,
/// `collected_traffic_source`: read as it is from Parquet (struct fields) and NDJSON (nested
/// objects), by their dotted aliases or an explicit mapping, it equals the flat file.
#[test]
fn nested_source_medium_and_campaign_read_by_dotted_path_equal_the_flat_file() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field};
    let dir = workdir();
    let flat = attribute_json(&write(dir.path(), "utm.csv", UTM), &[]);
    let mut lines = UTM.lines();
    lines.next();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let text = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| (!r[i].is_empty()).then_some(r[i]))))
    };
    let traffic = StructArray::from(vec![
        (Arc::new(Field::new("manual_source", DataType::Utf8, true)), text(2)),
        (Arc::new(Field::new("manual_medium", DataType::Utf8, true)), text(3)),
        (Arc::new(Field::new("manual_campaign_name", DataType::Utf8, true)), text(4)),
    ]);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_pseudo_id", text(0)),
        ("event_time", text(1)),
        ("collected_traffic_source", Arc::new(traffic)),
        ("page_referrer", text(5)),
        ("converted", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r[6] == "1"))))),
        ("revenue", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r[7].parse::<f64>().ok())))),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let parquet = dir.path().join("ga4.parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&parquet).unwrap(), batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let nested = attribute_json(&parquet, &[]);
    assert_eq!(nested["models"], flat["models"], "Parquet struct fields by their dotted aliases");

    // The same in NDJSON under other names, by an explicit mapping of dotted paths.
    let mut ndjson = String::new();
    for r in &rows {
        let optional = |v: &str| if v.is_empty() { Value::Null } else { json!(v) };
        let line = json!({
            "uid": r[0], "at": r[1], "page_referrer": optional(r[5]), "converted": r[6] == "1",
            "revenue": r[7].parse::<f64>().ok(),
            "traffic": {"utm": {"src": optional(r[2]), "med": optional(r[3])}, "campaign": optional(r[4])},
        });
        ndjson.push_str(&line.to_string());
        ndjson.push('\n');
    }
    let mapped = attribute_json(
        &write(dir.path(), "ga4.ndjson", &ndjson),
        &[
            "--column",
            "user_id=uid",
            "--column",
            "timestamp=at",
            "--column",
            "source=traffic.utm.src",
            "--column",
            "medium=traffic.utm.med",
            "--column",
            "campaign=traffic.campaign",
        ],
    );
    assert_eq!(mapped["models"], flat["models"], "NDJSON nested objects by mapped dotted paths");
    // A dotted path that leads nowhere is a missing column, named as given.
    let missing = attribute(&parquet, &["--column", "source=collected_traffic_source.nope"]);
    assert_eq!(missing.status.code(), Some(1), "{}", String::from_utf8_lossy(&missing.stderr));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("collected_traffic_source.nope"));
}
