//! Ingest edge cases through the public API (`open_text` → `read_csv` / `read_ndjson`):
//! delimiter detection, gzip, NDJSON, path-level separators, and every located error of
//! docs/user-guide.md, "Bad input".

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use mta_core::chunk::{NO_CHANNEL, user_key};
use mta_core::ingest::{Block, Format, InputSpec, InputSummary, Limits, open_text, read_csv, read_ndjson};
use mta_core::{AttributionError, ErrorCode, EventChunk, InputKind, ModelId, OptionsSpec, Partial, PathChunk};

use crate::helpers::*;

/// Reads text bytes the way a caller does: open (gzip, format detection), then the reader.
fn read(bytes: &[u8], spec: &InputSpec) -> Result<(InputSummary, Vec<Block>), AttributionError> {
    let (format, reader) = open_text(bytes, spec.format, spec.limits.max_decompressed_bytes)?;
    let mut blocks = Vec::new();
    let sink = |block: Block| {
        blocks.push(block);
        Ok::<(), AttributionError>(())
    };
    let summary = match format {
        Format::Ndjson => read_ndjson(reader, spec, sink)?,
        _ => read_csv(reader, spec, sink)?,
    };
    Ok((summary, blocks))
}

fn read_events(bytes: &[u8]) -> EventChunk {
    let (summary, mut blocks) = read(bytes, &InputSpec::default()).expect("input reads");
    assert_eq!(summary.kind, InputKind::Events);
    assert_eq!(blocks.len(), 1);
    match blocks.pop() {
        Some(Block::Events(chunk)) => chunk,
        other => panic!("expected one event block, got {other:?}"),
    }
}

fn read_paths(bytes: &[u8], spec: &InputSpec) -> PathChunk {
    let (summary, mut blocks) = read(bytes, spec).expect("input reads");
    assert_eq!(summary.kind, InputKind::Paths);
    assert_eq!(blocks.len(), 1);
    match blocks.pop() {
        Some(Block::Paths(chunk)) => chunk,
        other => panic!("expected one path block, got {other:?}"),
    }
}

fn read_error(bytes: &[u8]) -> AttributionError {
    read(bytes, &InputSpec::default()).expect_err("input is refused")
}

/// Each detail as (row, column).
fn located(error: &AttributionError) -> Vec<(Option<u64>, Option<&str>)> {
    error.details.iter().map(|d| (d.row, d.column.as_deref())).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    // The best level: a bomb packs as tightly as an attacker would pack it, whatever the backend.
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const SECOND: i64 = 1_000_000;
/// 2024-01-01T00:00:00Z.
const JAN_1: i64 = 1_704_067_200 * SECOND;

const EVENTS_CSV: &str = "\
user_id,timestamp,channel,conversion,conversion_value
u1,2024-01-01T00:00:00Z,search,0,
u1,2024-01-02T00:00:00Z,email,0,
u1,2024-01-03T00:00:00Z,,1,19.5
u2,1704067200,Paid > Search,0,
u2,1704153600000,,true,5
";

#[track_caller]
fn assert_events_csv_chunk(chunk: &EventChunk) {
    assert_eq!(chunk.channels.names(), ["search", "email", "Paid > Search"]);
    assert_eq!(chunk.timestamps, [JAN_1, JAN_1 + DAY, JAN_1 + 2 * DAY, JAN_1, JAN_1 + DAY]);
    assert_eq!(chunk.channel_ids, [0, 1, NO_CHANNEL, 2, NO_CHANNEL]);
    assert_eq!(chunk.is_conversion, [false, false, true, false, true]);
    assert_eq!(chunk.values, [0.0, 0.0, 19.5, 0.0, 5.0]);
    assert_eq!(chunk.row_numbers, [1, 2, 3, 4, 5]);
    let (u1, u2) = (user_key(b"u1"), user_key(b"u2"));
    assert_eq!(chunk.user_keys, [u1, u1, u1, u2, u2]);
}

#[test]
fn comma_separated_events_are_read_exactly() {
    assert_events_csv_chunk(&read_events(EVENTS_CSV.as_bytes()));
}

#[test]
fn semicolon_and_tab_delimiters_are_detected() {
    for delimiter in [";", "\t"] {
        let text = EVENTS_CSV.replace(',', delimiter);
        assert_events_csv_chunk(&read_events(text.as_bytes()));
    }
}

#[test]
fn a_given_delimiter_overrides_detection() {
    // Detection would fall back to `,` (no candidate in the header); the file uses `|`.
    let text = "user_id|timestamp|channel|conversion\nu1|2024-01-01|a,b,c|0\n";
    let spec = InputSpec { delimiter: Some(b'|'), ..Default::default() };
    let (_, blocks) = read(text.as_bytes(), &spec).unwrap();
    let Block::Events(chunk) = &blocks[0] else { panic!("events expected") };
    assert_eq!(chunk.channels.names(), ["a,b,c"]);
}

#[test]
fn gzip_compressed_csv_is_read_like_plain_csv() {
    assert_events_csv_chunk(&read_events(&gzip(EVENTS_CSV.as_bytes())));
}

#[test]
fn concatenated_gzip_members_are_read_as_one_file() {
    let (head, tail) = EVENTS_CSV.split_at(EVENTS_CSV.find("u1,2024-01-03").unwrap());
    let mut bytes = gzip(head.as_bytes());
    bytes.extend(gzip(tail.as_bytes()));
    assert_events_csv_chunk(&read_events(&bytes));
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_tolerated() {
    let text = format!("\u{feff}{}", EVENTS_CSV.replace('\n', "\r\n"));
    assert_events_csv_chunk(&read_events(text.as_bytes()));
}

#[test]
fn event_channel_names_containing_the_path_separator_are_kept_whole() {
    let chunk = read_events(EVENTS_CSV.as_bytes());
    let options = event_options(OptionsSpec::default());
    let result = Partial::from_events(&chunk, &options).unwrap().finish(&options).unwrap();
    // u1: search, email → 19.5; u2: Paid > Search → 5.
    assert_credits(
        &result,
        ModelId::LastTouch,
        &[("email", 1.0, 19.5), ("Paid > Search", 1.0, 5.0), ("search", 0.0, 0.0)],
    );
}

#[test]
fn small_blocks_carry_on_the_row_numbers() {
    let spec = InputSpec { block_rows: 2, ..Default::default() };
    let (summary, blocks) = read(EVENTS_CSV.as_bytes(), &spec).unwrap();
    assert_eq!(summary.rows, 5);
    let rows: Vec<Vec<u64>> = blocks
        .iter()
        .map(|b| match b {
            Block::Events(chunk) => chunk.row_numbers.clone(),
            Block::Paths(_) => panic!("events expected"),
        })
        .collect();
    assert_eq!(rows, [vec![1, 2], vec![3, 4], vec![5]]);
}

#[test]
fn ndjson_conversion_value_on_conversion_rows_only_is_found() {
    let text = r#"{"user_id":"u1","timestamp":"2024-01-01T00:00:00Z","channel":"search","conversion":0}
{"user_id":"u1","timestamp":1704153600,"channel":"email","conversion":false}

{"user_id":"u1","timestamp":"2024-01-03T00:00:00Z","conversion":1,"conversion_value":19.5}
{"user_id":"u2","timestamp":"2024-01-03T00:00:00Z","conversion":true,"conversion_value":"2.25"}
"#;
    let chunk = read_events(text.as_bytes());
    assert_eq!(chunk.channels.names(), ["search", "email"]);
    assert_eq!(chunk.timestamps, [JAN_1, JAN_1 + DAY, JAN_1 + 2 * DAY, JAN_1 + 2 * DAY]);
    assert_eq!(chunk.is_conversion, [false, false, true, true]);
    assert_eq!(chunk.values, [0.0, 0.0, 19.5, 2.25]);
    assert_eq!(chunk.channel_ids[2], NO_CHANNEL);
}

#[test]
fn an_ndjson_line_that_is_not_an_object_is_located() {
    let text = "{\"user_id\":\"u1\",\"timestamp\":\"2024-01-01\",\"channel\":\"a\",\"conversion\":0}\nnot json\n";
    let error = read_error(text.as_bytes());
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert_eq!(located(&error), [(Some(2), Some("(line)"))]);
}

#[test]
fn an_interaction_column_marks_conversions_through_aliases() {
    let text = "cookie,time,interaction,channel,revenue\nu1,2024-01-01,impression,a,3\nu1,2024-01-02,Conversion,,7\n";
    let chunk = read_events(text.as_bytes());
    assert_eq!(chunk.is_conversion, [false, true]);
    // A touch's value is not read, only a conversion's.
    assert_eq!(chunk.values, [0.0, 7.0]);
}

// ---- refusals ----------------------------------------------------------------------------

#[test]
fn a_file_with_a_header_only_is_empty_input() {
    assert_eq!(read_error(b"user_id,timestamp,channel,conversion\n").code, ErrorCode::EmptyInput);
    assert_eq!(read_error(b"path,total_conversions\n").code, ErrorCode::EmptyInput);
    assert_eq!(read_error(b"").code, ErrorCode::EmptyInput);
    assert_eq!(read_error(&gzip(b"")).code, ErrorCode::EmptyInput);
}

#[test]
fn missing_columns_are_named_in_the_details() {
    let error = read_error(b"user_id,when,origin\nu1,2024-01-01,a\n");
    assert_eq!(error.code, ErrorCode::MissingColumns);
    let columns: Vec<&str> = error.details.iter().filter_map(|d| d.column.as_deref()).collect();
    assert_eq!(
        columns,
        [
            "timestamp",
            "channel (or source and medium, named by channel rules)",
            "conversion (or an event_type/interaction column)"
        ]
    );
    assert!(error.message.contains("user_id, when, origin"), "{}", error.message);
    // A `source` column is not a channel column, but channel rules (`ga4`) read it.
    let error = read_error(b"user_id,when,source\nu1,2024-01-01,a\n");
    let columns: Vec<&str> = error.details.iter().filter_map(|d| d.column.as_deref()).collect();
    assert_eq!(columns, ["timestamp", "conversion (or an event_type/interaction column)"]);
}

#[test]
fn missing_path_columns_are_named_too() {
    let spec = InputSpec { kind: Some(InputKind::Paths), ..Default::default() };
    let error = read(b"route,conversions\na>b,1\n", &spec).unwrap_err();
    assert_eq!(error.code, ErrorCode::MissingColumns);
    assert_eq!(located(&error), [(None, Some("path"))]);
}

#[test]
fn unreadable_values_are_located_by_row_and_file_column_name() {
    let text = "\
Cookie,Time,Channel,Conversion,Revenue
u1,2024-01-01,a,0,
u1,yesterday,a,0,
u1,2024-01-02,a,maybe,
u1,2024-01-03,,1,abc
u1,2024-01-04,,1,NaN
u1,2024-01-05,,1,-3
u1,2024-01-06,,0,
";
    let error = read_error(text.as_bytes());
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert_eq!(
        located(&error),
        [
            (Some(2), Some("Time")),
            (Some(3), Some("Conversion")),
            (Some(4), Some("Revenue")),
            (Some(5), Some("Revenue")),
            (Some(6), Some("Revenue")),
            (Some(7), Some("Channel")),
        ]
    );
    assert!(error.details[0].problem.contains("`yesterday`"), "{}", error.details[0].problem);
    assert!(error.details[3].problem.contains("not a finite number"), "{}", error.details[3].problem);
    assert!(error.details[4].problem.contains("negative"), "{}", error.details[4].problem);
    assert!(error.details[5].problem.contains("channel is empty"), "{}", error.details[5].problem);
}

#[test]
fn more_than_a_hundred_bad_rows_give_exactly_a_hundred_details() {
    let mut text = String::from("user_id,timestamp,channel,conversion\n");
    for i in 0..150 {
        text.push_str(&format!("u{i},never,a,0\n"));
    }
    let error = read_error(text.as_bytes());
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert_eq!(error.details.len(), 100);
    let rows: Vec<u64> = error.details.iter().map(|d| d.row.unwrap()).collect();
    assert_eq!(rows, (1..=100).collect::<Vec<_>>());
    assert!(error.details.iter().all(|d| d.column.as_deref() == Some("timestamp")));
}

#[test]
fn a_row_with_the_wrong_number_of_fields_is_located() {
    let text = "user_id,timestamp,channel,conversion\nu1,2024-01-01,a,0\nu1,2024-01-02,a,0,extra\nu1,2024-01-03\n";
    let error = read_error(text.as_bytes());
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert_eq!(located(&error), [(Some(2), Some("(row)")), (Some(3), Some("(row)"))]);
    assert!(error.details[0].problem.contains("5 fields"), "{}", error.details[0].problem);
    assert!(error.details[1].problem.contains("2 fields"), "{}", error.details[1].problem);
}

#[test]
fn a_truncated_gzip_stream_is_truncated_input() {
    let mut text = String::from("user_id,timestamp,channel,conversion\n");
    for i in 0..5000 {
        text.push_str(&format!(
            "user-{},{},channel-{},{}\n",
            i * 7919 % 1013,
            1_700_000_000 + i * 37,
            i % 17,
            i % 5 == 0
        ));
    }
    let compressed = gzip(text.as_bytes());
    assert!(compressed.len() > 1000);
    // Whole: fine. Cut mid-stream, or in the 8-byte trailer: truncated.
    assert!(read(&compressed, &InputSpec::default()).is_ok());
    for cut in [compressed.len() / 2, compressed.len() - 4, compressed.len() - 1] {
        let error = read(&compressed[..cut], &InputSpec::default()).expect_err("truncated stream is refused");
        assert_eq!(error.code, ErrorCode::TruncatedInput, "cut at {cut} of {}: {error}", compressed.len());
    }
}

#[test]
fn binary_garbage_is_an_unknown_format() {
    assert_eq!(read_error(&[0u8, 159, 146, 150, 0xff, 0xfe, 0, 1]).code, ErrorCode::UnknownFormat);
}

#[test]
fn a_row_limit_is_enforced_and_named() {
    let spec = InputSpec { limits: Limits { max_rows: Some(3), ..Default::default() }, ..Default::default() };
    let error = read(EVENTS_CSV.as_bytes(), &spec).unwrap_err();
    assert_eq!(error.code, ErrorCode::LimitExceeded);
    assert!(error.message.contains("max_rows"), "{}", error.message);
}

#[test]
fn a_gzip_bomb_stops_at_the_decompressed_limit() {
    // 50 MB of one repeated row packs into about 50 kB: the classic bomb shape.
    let mut text = String::from("user_id,timestamp,channel,conversion,value\n");
    text.push_str(&"u1,2024-01-01,ads,0,0\n".repeat(50_000_000 / 22));
    let bomb = gzip(text.as_bytes());
    assert!(bomb.len() < 200_000, "{} bytes compressed", bomb.len());
    let limits = Limits { max_decompressed_bytes: Some(1 << 20), ..Default::default() };
    let error = read(&bomb, &InputSpec { limits, ..Default::default() }).unwrap_err();
    assert_eq!(error.code, ErrorCode::LimitExceeded);
    assert!(error.message.contains("max_decompressed_bytes"), "{}", error.message);
    // The same limit does not touch an input that stays below it.
    let small = gzip(EVENTS_CSV.as_bytes());
    assert!(read(&small, &InputSpec { limits, ..Default::default() }).is_ok());
}

// ---- path-level input ----------------------------------------------------------------------

fn path_names(chunk: &PathChunk) -> Vec<Vec<&str>> {
    (0..chunk.len()).map(|row| chunk.path(row).iter().map(|&c| chunk.channels.name(c)).collect()).collect()
}

#[test]
fn a_multi_character_path_separator_splits_and_skips_empty_tokens() {
    let text = "\
path,total_conversions,total_conversion_value,total_null
a -> b,1,10,0
 -> a ->  -> Paid > Search -> ,2,5,1
c,0,,3
";
    let spec = InputSpec { path_separator: " -> ".to_owned(), ..Default::default() };
    let chunk = read_paths(text.as_bytes(), &spec);
    assert_eq!(path_names(&chunk), [vec!["a", "b"], vec!["a", "Paid > Search"], vec!["c"]]);
    assert_eq!(chunk.conversions, [1.0, 2.0, 0.0]);
    assert_eq!(chunk.values, [10.0, 5.0, 0.0]);
    assert_eq!(chunk.nulls, [0.0, 1.0, 3.0]);
    assert_eq!(chunk.row_numbers, [1, 2, 3]);
}

#[test]
fn the_default_separator_trims_tokens_and_skips_empty_ones() {
    let text = "path,total_conversions\na >> b,1\n > c>a > ,1\n";
    let chunk = read_paths(text.as_bytes(), &InputSpec::default());
    assert_eq!(path_names(&chunk), [vec!["a", "b"], vec!["c", "a"]]);
}

#[test]
fn fractional_total_conversions_are_kept_exactly() {
    let text = "path;total_conversions\na>b;0.5\na;1.25\n;0.125\n";
    let chunk = read_paths(text.as_bytes(), &InputSpec::default());
    assert_eq!(chunk.conversions, [0.5, 1.25, 0.125]);
    let options = path_options(OptionsSpec::default());
    let result = Partial::from_paths(&chunk, &options).unwrap().finish(&options).unwrap();
    assert_eq!(result.summary.conversions, 1.875);
    assert_eq!(result.summary.unattributed_conversions, 0.125);
    assert_credits(&result, ModelId::FirstTouch, &[("a", 1.75, 0.0), ("b", 0.0, 0.0)]);
    assert_credits(&result, ModelId::Linear, &[("a", 1.5, 0.0), ("b", 0.25, 0.0)]);
}

#[test]
fn bad_path_numbers_are_located() {
    let text = "path,total_conversions,total_null\na,1,0\nb,,0\nc,-1,0\nd,2,x\n";
    let error = read(text.as_bytes(), &InputSpec::default()).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert_eq!(
        located(&error),
        [(Some(2), Some("total_conversions")), (Some(3), Some("total_conversions")), (Some(4), Some("total_null"))]
    );
}

/// `read_ndjson` takes its column names from the keys of the first 1000 objects only, so a
/// `conversion_value` key first seen later is silently ignored (its revenue read as 0).
#[test]

fn ndjson_conversion_value_first_seen_after_a_thousand_lines_is_still_read() {
    let mut text = String::new();
    for i in 0..1200 {
        text.push_str(&format!(
            "{{\"user_id\":\"u{i}\",\"timestamp\":{},\"channel\":\"a\",\"conversion\":0}}\n",
            1_700_000_000 + i
        ));
    }
    text.push_str("{\"user_id\":\"u1\",\"timestamp\":1800000000,\"conversion\":1,\"conversion_value\":7.5}\n");
    let chunk = read_events(text.as_bytes());
    assert_eq!(chunk.len(), 1201);
    assert!(chunk.is_conversion[1200]);
    assert_eq!(chunk.values[1200], 7.5);
}

// ---- hostile input -------------------------------------------------------------------------

fn with_line_limit(max_line_bytes: usize) -> InputSpec {
    InputSpec { limits: Limits { max_line_bytes, ..Default::default() }, ..Default::default() }
}

#[test]
fn a_record_past_the_line_limit_is_refused_naming_its_row() {
    let long = "x".repeat(2 << 20);
    let text = format!(
        "user_id,timestamp,channel,conversion\nu1,2024-01-01,a,0\n\nu1,2024-01-02,{long},0\nu1,2024-01-03,a,0\n"
    );
    let error = read_error(text.as_bytes());
    assert_eq!(error.code, ErrorCode::LimitExceeded, "{error}");
    assert_eq!(located(&error), [(Some(2), Some("(row)"))]);
    assert!(error.message.contains("max_line_bytes"), "{}", error.message);
    // A quoted field of line ends is one record, bounded the same way.
    let newlines = "\n".repeat(2 << 20);
    let quoted = format!("user_id,timestamp,channel,conversion\nu1,2024-01-01,\"{newlines}\",0\n");
    assert_eq!(located(&read_error(quoted.as_bytes())), [(Some(1), Some("(row)"))]);
    // Records up to the limit are read; the limit is configurable.
    let row = "u1,2024-01-01,a,0";
    let text = format!("user_id,timestamp,channel,conversion\n{row}\n{row}\n");
    assert_eq!(read(text.as_bytes(), &with_line_limit(row.len() + 1)).unwrap().0.rows, 2);
    let error = read(text.as_bytes(), &with_line_limit(row.len() - 1)).unwrap_err();
    assert_eq!(located(&error), [(Some(1), Some("(row)"))]);
}

#[test]
fn a_header_past_its_limit_is_refused_without_repeating_it() {
    let header: String = (0..300_000).map(|i| format!("column_{i},")).collect();
    let text = format!("{header}\nu1\n");
    for bytes in [text.as_bytes().to_vec(), gzip(text.as_bytes())] {
        let error = read_error(&bytes);
        assert_eq!(error.code, ErrorCode::LimitExceeded, "{error}");
        assert!(error.message.contains("header"), "{}", error.message);
        assert!(error.size() < 1024, "{} bytes", error.size());
    }
}

#[test]
fn missing_columns_of_a_wide_header_give_a_bounded_error() {
    // Just under the header limit: 60,000 columns, one of them 200 kB long.
    let mut header: String = (0..60_000).map(|i| format!("c{i},")).collect();
    header.push_str(&"n".repeat(200_000));
    let error = read_error(format!("{header}\nx\n").as_bytes());
    assert_eq!(error.code, ErrorCode::MissingColumns);
    assert!(error.size() <= mta_core::error::MAX_ERROR_BYTES, "{} bytes", error.size());
    assert!(error.message.contains("c0, c1, c2"), "{}", error.message);
    assert!(error.message.contains(" more]; map columns"), "{}", error.message);
}

#[test]
fn long_values_and_names_are_shortened_in_problems() {
    let name = "T".repeat(1000);
    let mut text = format!("user_id,{name},channel,conversion\n");
    let value = "v".repeat(50_000);
    for _ in 0..100 {
        text.push_str(&format!("u1,{value},a,0\n"));
    }
    let error = read(text.as_bytes(), &InputSpec { columns: mapping(&[("timestamp", &name)]), ..Default::default() })
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidValue);
    assert!(error.size() <= mta_core::error::MAX_ERROR_BYTES, "{} bytes", error.size());
    let first = &error.details[0];
    assert!(first.column.as_deref().unwrap().ends_with("… (1000 bytes)"), "{first:?}");
    assert!(first.problem.contains("…` (50000 bytes)"), "{first:?}");
    assert_eq!(error.details.len(), 100, "short problems are all kept");
}

fn mapping(pairs: &[(&str, &str)]) -> mta_core::ingest::ColumnMapping {
    let pairs: Vec<String> = pairs.iter().map(|(c, f)| format!("{c}={f}")).collect();
    mta_core::ingest::ColumnMapping::parse(pairs.iter().map(String::as_str)).unwrap()
}

#[test]
fn an_ndjson_line_past_the_line_limit_is_refused_naming_its_line() {
    let first = r#"{"user_id":"u1","timestamp":"2024-01-01","channel":"a","conversion":0}"#;
    let long = format!("{{\"user_id\":\"{}\"}}", "u".repeat(2 << 20));
    for at in [2, 1500] {
        let mut text = format!("{first}\n").repeat(at - 1);
        text.push_str(&format!("{long}\n{first}\n"));
        let error = read_error(text.as_bytes());
        assert_eq!(error.code, ErrorCode::LimitExceeded, "{error}");
        assert_eq!(located(&error), [(Some(at as u64), Some("(line)"))]);
    }
    // CRLF line ends do not count against the limit.
    let text = format!("{first}\r\n{first}\r\n");
    assert_eq!(read(text.as_bytes(), &with_line_limit(first.len())).unwrap().0.rows, 2);
}

#[test]
fn an_ndjson_line_with_invalid_utf8_is_located() {
    let mut text = b"{\"user_id\":\"u1\",\"timestamp\":\"2024-01-01\",\"channel\":\"a\",\"conversion\":0}\n".to_vec();
    text.extend_from_slice(
        b"{\"user_id\":\"M\xfcller\",\"timestamp\":\"2024-01-01\",\"channel\":\"a\",\"conversion\":0}\n",
    );
    let error = read_error(&text);
    assert_eq!(error.code, ErrorCode::InvalidValue, "{error}");
    assert_eq!(located(&error), [(Some(2), Some("(line)"))]);
}

#[test]
fn a_latin1_byte_in_the_first_row_is_an_invalid_value_of_that_row() {
    let text = b"user_id,timestamp,channel,conversion\nM\xfcller,2024-01-01,caf\xe9,0\nu2,2024-01-02,a,0\n";
    let error = read_error(text);
    assert_eq!(error.code, ErrorCode::InvalidValue, "{error}");
    assert_eq!(error.details[0].row, Some(1));
    assert!(error.details[0].problem.contains("UTF-8"), "{error}");
    // In the header, the column is named.
    let error = read_error(b"user_id,timestamp,chann\xe9l,conversion\nu1,2024-01-01,a,0\n");
    assert_eq!(error.code, ErrorCode::InvalidValue, "{error}");
    assert_eq!(located(&error), [(None, Some("#3"))]);
}

#[test]
fn conversion_values_whose_sum_overflows_are_refused_at_that_row() {
    let text = "user_id,timestamp,channel,conversion,revenue\nu1,2024-01-01,a,0,\nu1,2024-01-02,,1,1e308\nu2,2024-01-02,a,1,1e308\nu3,2024-01-02,a,1,1\n";
    let error = read_error(text.as_bytes());
    assert_eq!(error.code, ErrorCode::LimitExceeded, "{error}");
    assert_eq!(located(&error), [(Some(3), Some("revenue"))]);
}

#[test]
fn path_totals_whose_sum_overflows_are_refused_at_that_row() {
    for (text, row, column) in [
        ("path,total_conversions\na,1e308\nb,1e308\n", 2, "total_conversions"),
        ("path,total_conversions,value\na,1,1e308\nb,1,1e308\n", 2, "value"),
        ("path,total_conversions,total_null\na,1,1e308\nb,1,1e308\n", 2, "total_null"),
        // Each Markov transition count is finite only if (conversions + nulls) × touches is.
        ("path,total_conversions,total_null\na>b>a>b,1e308,0\n", 1, "path"),
    ] {
        let error = read_error(text.as_bytes());
        assert_eq!(error.code, ErrorCode::LimitExceeded, "{text}: {error}");
        assert_eq!(located(&error), [(Some(row), Some(column))], "{text}");
    }
}

#[test]
fn sums_that_overflow_only_once_merged_are_refused_by_finish() {
    let options = OptionsSpec::default().validate(InputKind::Paths).unwrap();
    let one = read_paths(b"path,total_conversions\na,1e308\nb,1\n", &InputSpec::default());
    let mut total = Partial::from_paths(&one, &options).unwrap();
    total.merge(&Partial::from_paths(&one, &options).unwrap());
    let error = total.finish(&options).unwrap_err();
    assert_eq!(error.code, ErrorCode::LimitExceeded, "{error}");
    assert_eq!(located(&error), [(None, Some("total_conversions"))]);
}

/// The channel of every row of every block, by name (`-` for none).
fn channel_names(blocks: &[Block]) -> Vec<String> {
    let mut names = Vec::new();
    for block in blocks {
        let Block::Events(chunk) = block else { panic!("expected event blocks") };
        for &id in &chunk.channel_ids {
            names.push(if id == NO_CHANNEL { "-".to_owned() } else { chunk.channels.name(id).to_owned() });
        }
    }
    names
}

#[test]
fn channel_rules_name_each_rows_channel_across_blocks_and_say_so_in_the_options() {
    let text = b"user_id,timestamp,utm_source,utm_medium,utm_campaign,conversion\n\
        u1,2026-01-01,google,cpc,,0\n\
        u1,2026-01-02,,,,0\n\
        u1,2026-01-03,Google,CPC,,0\n\
        u1,2026-01-04,,,,1\n\
        u2,2026-01-01,newsletter,email,,0\n\
        u2,2026-01-02,google,cpc,,1\n\
        u2,2026-01-03,google,cpc,pmax cross-network,0\n";
    // Two rows a block: each block interns only the channels it has, whatever the rules
    // remembered from earlier blocks.
    let spec = InputSpec { block_rows: 2, ..Default::default() };
    let (summary, blocks) = read(text, &spec).unwrap();
    assert_eq!(summary.rows, 7);
    assert_eq!(
        channel_names(&blocks),
        ["Paid Search", "Direct", "Paid Search", "-", "Email", "Paid Search", "Cross-network"]
    );
    for block in &blocks {
        let Block::Events(chunk) = block else { unreachable!() };
        let mut names = chunk.channels.names().to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), chunk.channels.len(), "{names:?}");
    }
    let options = blocks[0].options(&OptionsSpec::default()).unwrap();
    let applied = options.channel_rules.expect("the rules are reported");
    assert_eq!(serde_json::to_value(applied).unwrap(), serde_json::json!({"name": "ga4", "rules": 28}));

    // Given rules win over a channel column; without them the column is read as it is.
    let with_channel = b"user_id,timestamp,channel,source,medium,conversion\nu1,2026-01-01,tv,google,cpc,0\n";
    assert_eq!(channel_names(&read(with_channel, &InputSpec::default()).unwrap().1), ["tv"]);
    let rules: mta_core::ChannelRules =
        serde_json::from_value(serde_json::json!([{"channel": "Ads", "when": {"medium": {"equals": "cpc"}}}])).unwrap();
    let spec = InputSpec { channel_rules: Some(rules), ..Default::default() };
    let (_, blocks) = read(with_channel, &spec).unwrap();
    assert_eq!(channel_names(&blocks), ["Ads"]);
    let applied = blocks[0].options(&OptionsSpec::default()).unwrap().channel_rules.unwrap();
    assert_eq!(serde_json::to_value(applied).unwrap(), serde_json::json!({"name": "custom", "rules": 1}));
    let plain = read(with_channel, &InputSpec::default()).unwrap().1;
    assert!(plain[0].options(&OptionsSpec::default()).unwrap().channel_rules.is_none());
}

#[test]
fn touch_fields_that_cannot_be_read_are_located_problems() {
    let long = "x".repeat(mta_core::ingest::MAX_TOUCH_FIELD_BYTES + 1);
    let ndjson = format!(
        "{{\"user_id\": \"u\", \"timestamp\": \"2026-01-01\", \"source\": [1], \"conversion\": 0}}\n\
         {{\"user_id\": \"u\", \"timestamp\": \"2026-01-01\", \"source\": \"a\", \"medium\": \"{long}\", \"conversion\": 0}}\n\
         {{\"user_id\": \"u\", \"timestamp\": \"2026-01-01\", \"source\": 7, \"medium\": \"cpc\", \"conversion\": 1}}\n"
    );
    let error = read_error(ndjson.as_bytes());
    let problems: Vec<(Option<u64>, Option<&str>, &str)> =
        error.details.iter().map(|d| (d.row, d.column.as_deref(), d.problem.as_str())).collect();
    assert_eq!(
        problems,
        [
            (Some(1), Some("source"), "cannot read a nested or binary value as a source"),
            (Some(2), Some("medium"), "medium longer than 8192 bytes"),
        ]
    );
}
