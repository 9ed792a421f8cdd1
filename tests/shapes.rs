//! The same events in every column shape exports write to Parquet (flags as booleans, integers,
//! floats and strings; values as floats, integers, decimals and strings, null, zero or negative on
//! touches; times as timestamps of every unit, Spark's INT96, dates, epoch numbers and strings;
//! user ids and channels as plain, large, view and dictionary strings, user ids as integers, a
//! channel inside a struct; small and large row groups) give the result of the same rows written
//! as CSV, byte for byte: Parquet rows go through the fast lane of `ingest/parquet.rs` wherever its columns allow,
//! CSV rows through the per-row rules only. A bad row in any shape is reported as CSV reports it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal64Array, Decimal128Array, DictionaryArray, Float64Array, Int8Array,
    Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray, StructArray,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow::datatypes::{DataType, Field, Int8Type, Int32Type};

use crate::service::assert_same_result;
use crate::service_support::sorted;
use crate::support::{attribute, workdir, write};

/// 2026-01-01T00:00:00Z in epoch seconds.
const BASE: i64 = 1_767_225_600;
const CHANNELS: [&str; 6] = ["email", "search", "display", "social", "direct", "affiliate"];

/// A bad cell planted in a row, to be reported as the per-row rules report it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Bad {
    /// Flag 2 (or "2").
    Flag,
    /// A conversion worth -3.
    NegativeValue,
    /// No time.
    NullTime,
    /// A time string that is no time.
    TextTime,
    /// No user id (blank text, or null).
    EmptyUser,
}

#[derive(Debug, Clone)]
struct Event {
    user: u32,
    /// The user id as text carries spaces (the per-row rules trim them).
    pad_user: bool,
    second: i64,
    channel: Option<&'static str>,
    /// The channel carries spaces (trimmed by the per-row rules).
    pad_channel: bool,
    /// None: a null flag (a touch).
    flag: Option<bool>,
    /// A conversion's value (None: empty).
    value: Option<i64>,
    bad: Option<Bad>,
}

/// `rows` events of 250 users; with `days`, every time is a midnight (for date columns).
fn events(rows: usize, days: bool) -> Vec<Event> {
    (0..rows)
        .map(|i| {
            let user = ((i * 7_919) % 250) as u32;
            let second = if days { BASE + (i / 40) as i64 * 86_400 } else { BASE + i as i64 * 53 - (i % 3) as i64 };
            let conversion = i % 11 == 0;
            let flag = if conversion {
                Some(true)
            } else if i % 7 == 0 {
                None
            } else {
                Some(false)
            };
            let channel = (!conversion || i % 2 == 1).then_some(CHANNELS[(i * 31 + user as usize) % CHANNELS.len()]);
            let value = (conversion && i % 5 != 0).then_some((i % 97) as i64 + 1);
            Event { user, pad_user: i % 37 == 0, second, channel, pad_channel: i % 41 == 0, flag, value, bad: None }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum User {
    Utf8,
    Large,
    View,
    Dict,
    Int64,
    Int32,
}

#[derive(Debug, Clone, Copy)]
enum Time {
    Seconds,
    Millis,
    /// Microseconds without a time zone (read as UTC).
    Micros,
    Nanos,
    /// Int64 epoch numbers in this many units per second.
    Epoch(i64),
    EpochInt32,
    EpochFloat,
    Text,
    Date,
    /// Spark's default (`spark.sql.parquet.outputTimestampType`): Julian day and nanoseconds
    /// of the day in 12 bytes, written by parquet's column writers (Arrow's writer has none).
    Int96,
}

#[derive(Debug, Clone, Copy)]
enum Flag {
    Bool,
    Int8,
    Int32,
    Int64,
    Float,
    Text,
    DictText,
}

#[derive(Debug, Clone, Copy)]
enum Value {
    Float,
    Int64,
    Int32,
    Decimal,
    /// Arrow's 64-bit decimal, as pyarrow's `decimal64` writes it.
    Decimal64,
    Text,
}

/// What touches carry in the value column (the rules never read it).
#[derive(Debug, Clone, Copy)]
enum TouchValue {
    Null,
    Zero,
    Negative,
}

#[derive(Debug, Clone, Copy)]
enum Channel {
    Utf8,
    Large,
    View,
    Dict,
    /// A field `channel` inside a struct column `ctx`.
    Nested,
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    user: User,
    time: Time,
    flag: Flag,
    value: Value,
    touch_value: TouchValue,
    channel: Channel,
    group_rows: usize,
}

/// The user id as text; padded ids are other users than unpadded ones (ids are not trimmed),
/// so integer ids are compared with CSV without padding (`pad` false).
fn user_text(e: &Event, pad: bool) -> Option<String> {
    match e.bad {
        Some(Bad::EmptyUser) => Some("  ".to_owned()),
        _ if e.pad_user && pad => Some(format!(" {} ", e.user)),
        _ => Some(e.user.to_string()),
    }
}

fn user_array(shape: User, events: &[Event]) -> ArrayRef {
    let texts: Vec<Option<String>> = events.iter().map(|e| user_text(e, true)).collect();
    let numbers = events.iter().map(|e| (e.bad != Some(Bad::EmptyUser)).then_some(e.user));
    match shape {
        User::Utf8 => Arc::new(StringArray::from_iter(texts)),
        User::Large => Arc::new(LargeStringArray::from_iter(texts)),
        User::View => Arc::new(StringViewArray::from_iter(texts)),
        User::Dict => Arc::new(texts.iter().map(Option::as_deref).collect::<DictionaryArray<Int32Type>>()),
        User::Int64 => Arc::new(Int64Array::from_iter(numbers.map(|u| u.map(i64::from)))),
        User::Int32 => Arc::new(Int32Array::from_iter(numbers.map(|u| u.map(|u| u as i32)))),
    }
}

fn time_text(i: usize, second: i64) -> String {
    let at = chrono::DateTime::from_timestamp(second, 0).unwrap();
    match i % 4 {
        0 => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        1 => at.format("%Y-%m-%d %H:%M:%S").to_string(),
        2 => (at + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M:%S+02:00").to_string(),
        _ => format!(" {second} "),
    }
}

fn time_array(shape: Time, events: &[Event]) -> ArrayRef {
    let seconds = || events.iter().map(|e| (e.bad != Some(Bad::NullTime)).then_some(e.second));
    match shape {
        Time::Seconds => Arc::new(TimestampSecondArray::from_iter(seconds()).with_timezone("UTC")),
        Time::Millis => Arc::new(TimestampMillisecondArray::from_iter(seconds().map(|s| s.map(|s| s * 1_000)))),
        Time::Micros => Arc::new(TimestampMicrosecondArray::from_iter(seconds().map(|s| s.map(|s| s * 1_000_000)))),
        Time::Nanos => Arc::new(
            TimestampNanosecondArray::from_iter(seconds().map(|s| s.map(|s| s * 1_000_000_000)))
                .with_timezone("+00:00"),
        ),
        Time::Epoch(unit) => Arc::new(Int64Array::from_iter(seconds().map(|s| s.map(|s| s * unit)))),
        Time::EpochInt32 => Arc::new(Int32Array::from_iter(seconds().map(|s| s.map(|s| s as i32)))),
        Time::EpochFloat => Arc::new(Float64Array::from_iter(seconds().map(|s| s.map(|s| s as f64)))),
        Time::Text => Arc::new(StringArray::from_iter(events.iter().enumerate().map(|(i, e)| match e.bad {
            Some(Bad::NullTime) => None,
            Some(Bad::TextTime) => Some("yesterday".to_owned()),
            _ => Some(time_text(i, e.second)),
        }))),
        Time::Date => Arc::new(Date32Array::from_iter(seconds().map(|s| s.map(|s| (s / 86_400) as i32)))),
        Time::Int96 => unreachable!("written by `write_spark_shape`"),
    }
}

const TRUE_WORDS: [&str; 7] = ["1", "true", "TRUE", " yes ", "t", "Y", "1.0"];
const FALSE_WORDS: [&str; 7] = ["0", "false", "F", "no", " n ", "0.0", ""];

fn flag_array(shape: Flag, events: &[Event]) -> ArrayRef {
    let numbers = || events.iter().map(|e| if e.bad == Some(Bad::Flag) { Some(2) } else { e.flag.map(i64::from) });
    let words: Vec<Option<&str>> = events
        .iter()
        .enumerate()
        .map(|(i, e)| match (e.bad, e.flag) {
            (Some(Bad::Flag), _) => Some("2"),
            (_, Some(true)) => Some(TRUE_WORDS[i % TRUE_WORDS.len()]),
            (_, Some(false)) => Some(FALSE_WORDS[i % FALSE_WORDS.len()]),
            (_, None) => None,
        })
        .collect();
    match shape {
        Flag::Bool => Arc::new(BooleanArray::from_iter(events.iter().map(|e| e.flag))),
        Flag::Int8 => Arc::new(Int8Array::from_iter(numbers().map(|f| f.map(|f| f as i8)))),
        Flag::Int32 => Arc::new(Int32Array::from_iter(numbers().map(|f| f.map(|f| f as i32)))),
        Flag::Int64 => Arc::new(Int64Array::from_iter(numbers())),
        Flag::Float => Arc::new(Float64Array::from_iter(numbers().map(|f| f.map(|f| f as f64)))),
        Flag::Text => Arc::new(StringArray::from_iter(words)),
        Flag::DictText => Arc::new(words.into_iter().collect::<DictionaryArray<Int8Type>>()),
    }
}

/// The value column's number of a row: the conversion's value, or what touches carry.
fn value_of(e: &Event, touch: TouchValue) -> Option<i64> {
    if e.bad == Some(Bad::NegativeValue) {
        return Some(-3);
    }
    match (e.flag, touch) {
        (Some(true), _) => e.value,
        (_, TouchValue::Null) => None,
        (_, TouchValue::Zero) => Some(0),
        (_, TouchValue::Negative) => Some(-4),
    }
}

fn value_array(shape: Value, touch: TouchValue, events: &[Event]) -> ArrayRef {
    let values = || events.iter().map(|e| value_of(e, touch));
    match shape {
        Value::Float => Arc::new(Float64Array::from_iter(values().map(|v| v.map(|v| v as f64)))),
        Value::Int64 => Arc::new(Int64Array::from_iter(values())),
        Value::Int32 => Arc::new(Int32Array::from_iter(values().map(|v| v.map(|v| v as i32)))),
        Value::Decimal => Arc::new(
            Decimal128Array::from_iter(values().map(|v| v.map(|v| i128::from(v) * 100)))
                .with_precision_and_scale(12, 2)
                .unwrap(),
        ),
        Value::Decimal64 => Arc::new(
            Decimal64Array::from_iter(values().map(|v| v.map(|v| v * 100))).with_precision_and_scale(12, 2).unwrap(),
        ),
        Value::Text => Arc::new(StringArray::from_iter(
            values().enumerate().map(|(i, v)| v.map(|v| if i % 3 == 0 { format!(" {v} ") } else { v.to_string() })),
        )),
    }
}

fn channel_array(shape: Channel, events: &[Event]) -> ArrayRef {
    let names: Vec<Option<String>> =
        events.iter().map(|e| e.channel.map(|c| if e.pad_channel { format!(" {c} ") } else { c.to_owned() })).collect();
    match shape {
        Channel::Utf8 => Arc::new(StringArray::from_iter(names)),
        Channel::Large => Arc::new(LargeStringArray::from_iter(names)),
        Channel::View => Arc::new(StringViewArray::from_iter(names)),
        Channel::Dict => Arc::new(names.iter().map(Option::as_deref).collect::<DictionaryArray<Int32Type>>()),
        Channel::Nested => {
            let inner: ArrayRef = Arc::new(StringArray::from_iter(names));
            let other: ArrayRef = Arc::new(Int32Array::from_iter_values(0..events.len() as i32));
            Arc::new(StructArray::from(vec![
                (Arc::new(Field::new("other", DataType::Int32, false)), other),
                (Arc::new(Field::new("channel", DataType::Utf8, true)), inner),
            ]))
        }
    }
}

/// Writes the events in `shape` to `dir/events.parquet`.
fn write_shape(dir: &Path, shape: &Shape, events: &[Event]) -> PathBuf {
    if matches!(shape.time, Time::Int96) {
        return write_spark_shape(dir, shape, events);
    }
    let channel_name = match shape.channel {
        Channel::Nested => "ctx",
        _ => "channel",
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", user_array(shape.user, events)),
        (channel_name, channel_array(shape.channel, events)),
        ("timestamp", time_array(shape.time, events)),
        ("conversion", flag_array(shape.flag, events)),
        ("conversion_value", value_array(shape.value, shape.touch_value, events)),
    ];
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(shape.group_rows))
        .build();
    let path = dir.join("events.parquet");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), Some(properties))
            .unwrap();
    // Several batches, so the file's row groups and Arrow's batches do not line up.
    let mut offset = 0;
    while offset < batch.num_rows() {
        let length = 1_500.min(batch.num_rows() - offset);
        writer.write(&batch.slice(offset, length)).unwrap();
        offset += length;
    }
    writer.close().unwrap();
    path
}

/// The events as Spark writes them by default: strings, INT96 times, booleans and doubles, each
/// column through parquet's own writer (definition level 0: null).
fn write_spark_shape(dir: &Path, shape: &Shape, events: &[Event]) -> PathBuf {
    use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int96, Int96Type};
    assert!(matches!(
        (shape.user, shape.flag, shape.value, shape.channel),
        (User::Utf8, Flag::Bool, Value::Float, Channel::Utf8)
    ));
    let schema = "message spark_schema { optional binary user_id (STRING); optional binary channel (STRING); \
                  optional int96 timestamp; optional boolean conversion; optional double conversion_value; }";
    let schema = Arc::new(parquet::schema::parser::parse_message_type(schema).unwrap());
    let path = dir.join("events.parquet");
    let properties = Arc::new(parquet::file::properties::WriterProperties::builder().build());
    let mut writer =
        parquet::file::writer::SerializedFileWriter::new(std::fs::File::create(&path).unwrap(), schema, properties)
            .unwrap();
    // Definition levels and the non-null values of one column.
    fn present<T>(cells: impl Iterator<Item = Option<T>>) -> (Vec<i16>, Vec<T>) {
        let (mut levels, mut values) = (Vec::new(), Vec::new());
        for cell in cells {
            levels.push(i16::from(cell.is_some()));
            values.extend(cell);
        }
        (levels, values)
    }
    const JULIAN_DAY_OF_EPOCH: i64 = 2_440_588;
    let int96 = |second: i64| {
        let nanos = second.rem_euclid(86_400) * 1_000_000_000;
        let mut time = Int96::new();
        time.set_data(nanos as u32, (nanos >> 32) as u32, (second.div_euclid(86_400) + JULIAN_DAY_OF_EPOCH) as u32);
        time
    };
    let text = |text: Option<String>| text.map(|t| ByteArray::from(t.as_str()));
    for group in events.chunks(shape.group_rows) {
        let mut row_group = writer.next_row_group().unwrap();
        let users = present(group.iter().map(|e| text(user_text(e, true))));
        let channels = present(
            group.iter().map(|e| text(e.channel.map(|c| if e.pad_channel { format!(" {c} ") } else { c.to_owned() }))),
        );
        let times = present(group.iter().map(|e| (e.bad != Some(Bad::NullTime)).then(|| int96(e.second))));
        let flags = present(group.iter().map(|e| e.flag));
        let values = present(group.iter().map(|e| value_of(e, shape.touch_value).map(|v| v as f64)));
        for (levels, values) in [users, channels] {
            let mut column = row_group.next_column().unwrap().unwrap();
            column.typed::<ByteArrayType>().write_batch(&values, Some(&levels), None).unwrap();
            column.close().unwrap();
        }
        let mut column = row_group.next_column().unwrap().unwrap();
        column.typed::<Int96Type>().write_batch(&times.1, Some(&times.0), None).unwrap();
        column.close().unwrap();
        let mut column = row_group.next_column().unwrap().unwrap();
        column.typed::<BoolType>().write_batch(&flags.1, Some(&flags.0), None).unwrap();
        column.close().unwrap();
        let mut column = row_group.next_column().unwrap().unwrap();
        column.typed::<DoubleType>().write_batch(&values.1, Some(&values.0), None).unwrap();
        column.close().unwrap();
        row_group.close().unwrap();
    }
    writer.close().unwrap();
    path
}

/// The same events as CSV: ids and channels as in string columns, epoch seconds, 0/1 flags.
fn write_csv(dir: &Path, events: &[Event], pad_users: bool) -> PathBuf {
    let mut csv = String::from("user_id,channel,timestamp,conversion,conversion_value\n");
    for e in events {
        let user = user_text(e, pad_users).unwrap_or_default();
        let channel = e.channel.map_or(String::new(), |c| if e.pad_channel { format!(" {c} ") } else { c.to_owned() });
        let time = match e.bad {
            Some(Bad::NullTime) => String::new(),
            Some(Bad::TextTime) => "yesterday".to_owned(),
            _ => e.second.to_string(),
        };
        let flag = match (e.bad, e.flag) {
            (Some(Bad::Flag), _) => "2",
            (_, Some(true)) => "1",
            (_, Some(false)) => "0",
            (_, None) => "",
        };
        let value = match e.bad {
            Some(Bad::NegativeValue) => "-3".to_owned(),
            _ if e.flag == Some(true) => e.value.map_or(String::new(), |v| v.to_string()),
            _ => String::new(),
        };
        csv.push_str(&format!("{user},{channel},{time},{flag},{value}\n"));
    }
    write(dir, &format!("events-{pad_users}.csv"), csv)
}

fn args(shape: &Shape) -> Vec<&'static str> {
    let mut args = vec!["--models", "all"];
    if matches!(shape.channel, Channel::Nested) {
        args.extend(["--column", "channel=ctx.channel"]);
    }
    args
}

/// Shapes over events with times of any second.
fn shapes() -> Vec<Shape> {
    use {Channel as C, Flag as F, Time as T, TouchValue as TV, User as U, Value as V};
    let shape = |user, time, flag, value, touch_value, channel, group_rows| Shape {
        user,
        time,
        flag,
        value,
        touch_value,
        channel,
        group_rows,
    };
    vec![
        // mta-gen's own shape.
        shape(U::Utf8, T::Micros, F::Bool, V::Float, TV::Null, C::Utf8, 1 << 20),
        // A pyarrow / warehouse export: int flags, zero values on touches.
        shape(U::Utf8, T::Micros, F::Int32, V::Float, TV::Zero, C::Utf8, 500),
        shape(U::Dict, T::Millis, F::Int8, V::Int64, TV::Negative, C::Dict, 97),
        shape(U::Large, T::Nanos, F::Int64, V::Decimal, TV::Zero, C::Large, 1_000),
        shape(U::View, T::Text, F::Text, V::Text, TV::Null, C::View, 333),
        shape(U::Int64, T::Epoch(1_000), F::DictText, V::Int32, TV::Zero, C::Nested, 128),
        shape(U::Int32, T::Epoch(1), F::Float, V::Float, TV::Negative, C::Utf8, 4_096),
        shape(U::Utf8, T::Epoch(1_000_000), F::Bool, V::Decimal, TV::Null, C::Dict, 97),
        shape(U::Utf8, T::EpochInt32, F::Int32, V::Float, TV::Zero, C::Utf8, 1 << 20),
        shape(U::Utf8, T::EpochFloat, F::Bool, V::Float, TV::Null, C::Large, 700),
        shape(U::View, T::Seconds, F::Int64, V::Int64, TV::Zero, C::View, 250),
        shape(U::Int64, T::Micros, F::Int8, V::Decimal64, TV::Zero, C::Dict, 2_000),
        // Spark's default layout: INT96 times.
        shape(U::Utf8, T::Int96, F::Bool, V::Float, TV::Null, C::Utf8, 1_000),
    ]
}

/// Shapes over events at midnights (a date column holds days).
fn day_shapes() -> Vec<Shape> {
    use {Channel as C, Flag as F, Time as T, TouchValue as TV, User as U, Value as V};
    vec![
        Shape {
            user: U::Utf8,
            time: T::Date,
            flag: F::Bool,
            value: V::Float,
            touch_value: TV::Null,
            channel: C::Utf8,
            group_rows: 1 << 20,
        },
        Shape {
            user: U::Int64,
            time: T::Date,
            flag: F::Int32,
            value: V::Decimal,
            touch_value: TV::Zero,
            channel: C::Dict,
            group_rows: 97,
        },
        Shape {
            user: U::Dict,
            time: T::Text,
            flag: F::Text,
            value: V::Int32,
            touch_value: TV::Null,
            channel: C::Nested,
            group_rows: 300,
        },
    ]
}

fn stdout_of(file: &Path, args: &[&str]) -> Vec<u8> {
    let output = attribute(file, args);
    assert!(output.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[test]
fn every_parquet_shape_gives_the_result_bytes_of_the_same_csv_rows() {
    let dir = workdir();
    for (events, shapes) in [(events(4_000, false), shapes()), (events(4_000, true), day_shapes())] {
        let [padded, plain] =
            [true, false].map(|pad| stdout_of(&write_csv(dir.path(), &events, pad), &["--models", "all"]));
        assert_ne!(padded, plain, "padded user ids are users of their own");
        let result: serde_json::Value = serde_json::from_slice(&padded).unwrap();
        assert_eq!(result["summary"]["rows"], 4_000);
        assert!(result["summary"]["conversions"].as_f64().unwrap() > 300.0, "{}", result["summary"]);
        assert!(result["summary"]["conversion_value"].as_f64().unwrap() > 10_000.0, "{}", result["summary"]);
        for (i, shape) in shapes.iter().enumerate() {
            let want = if matches!(shape.user, User::Int64 | User::Int32) { &plain } else { &padded };
            let shape_dir = dir.path().join(format!("shape{i}"));
            std::fs::create_dir_all(&shape_dir).unwrap();
            let file = write_shape(&shape_dir, shape, &events);
            let got = stdout_of(&file, &args(shape));
            // Row groups decode in parallel, so sums may add in another order: floats agree to
            // 1e-9 (one row taken or lost moves them by far more), everything else exactly.
            let [got, want] = [&got, want].map(|bytes| sorted(serde_json::from_slice(bytes).unwrap()));
            assert_same_result(&got, &want, &format!("{shape:?}"));
        }
    }
}

/// The problems of a failed run, without the file's name.
fn problems_of(file: &Path, args: &[&str]) -> String {
    let output = attribute(file, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{}: {stderr}", file.display());
    // A nested channel column is named by its dotted path.
    stderr.replacen(&file.display().to_string(), "FILE", 1).replace("`ctx.channel`", "`channel`")
}

#[test]
fn a_bad_row_in_any_parquet_shape_is_reported_as_in_csv() {
    let dir = workdir();
    let mut checked = 0;
    for (bad, shapes) in [
        (Bad::Flag, shapes().into_iter().filter(|s| !matches!(s.flag, Flag::Bool)).collect::<Vec<_>>()),
        (Bad::NegativeValue, shapes()),
        (Bad::NullTime, shapes()),
        (Bad::TextTime, shapes().into_iter().filter(|s| matches!(s.time, Time::Text)).collect()),
        (Bad::EmptyUser, shapes()),
    ] {
        // Bad rows early in a batch, late in it, and on a touch and a conversion.
        let mut events = events(1_500, false);
        for row in [10, 1_100, 1_101] {
            events[row].bad = Some(bad);
            if bad == Bad::NegativeValue {
                events[row].flag = Some(true);
            }
        }
        let case_dir = dir.path().join(format!("{bad:?}"));
        std::fs::create_dir_all(&case_dir).unwrap();
        let want = problems_of(&write_csv(&case_dir, &events, true), &["--models", "all"]);
        for row in [11, 1_101, 1_102] {
            assert!(want.contains(&format!("row {row}, column")), "{bad:?}: {want}");
        }
        for (i, shape) in shapes.iter().enumerate() {
            let shape_dir = case_dir.join(format!("shape{i}"));
            std::fs::create_dir_all(&shape_dir).unwrap();
            let got = problems_of(&write_shape(&shape_dir, shape, &events), &args(shape));
            assert_eq!(got, want, "{bad:?} in {shape:?}");
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked}");
}
