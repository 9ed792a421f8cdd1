//! Writers of `mta-gen`: the sorted events as Parquet (snappy, dictionary-encoded, streamed in
//! record batches) or as CSV (optionally gzip-compressed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringBuilder, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::model::{CHANNELS, Event, Model, START_EPOCH_SECS, utm};

/// Rows per Arrow record batch handed to the Parquet writer.
const BATCH_ROWS: usize = 64 * 1024;

/// Which columns name a touch's channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Columns {
    /// A `channel` column.
    Channel,
    /// `source`, `medium` and `campaign` (UTM tags), from which channel rules name the channel.
    Marketing,
}

/// The campaign name of a campaign number of a channel, e.g. `paid_search_07`.
fn campaign_name(channel: usize, campaign: u64, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    write!(out, "{}_{campaign:02}", CHANNELS[channel]).expect("writing to a String cannot fail");
}

/// Writes `events` (already in file order) as Parquet with the given row-group size.
pub(crate) fn write_parquet(
    events: &[Event],
    model: &Model,
    columns_of: Columns,
    row_group_rows: usize,
    path: &Path,
) -> Result<()> {
    let utc: Arc<str> = Arc::from("UTC");
    let mut fields = vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::clone(&utc))), false),
    ];
    match columns_of {
        Columns::Channel => fields.push(Field::new("channel", DataType::Utf8, true)),
        Columns::Marketing => {
            fields.extend(["source", "medium", "campaign"].map(|n| Field::new(n, DataType::Utf8, true)))
        }
    }
    fields.push(Field::new("conversion", DataType::Boolean, false));
    fields.push(Field::new("conversion_value", DataType::Float64, true));
    let schema = Arc::new(Schema::new(fields));
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props))?;

    let (mut user_id, mut campaign) = (String::with_capacity(16), String::new());
    for chunk in events.chunks(BATCH_ROWS) {
        let mut users = StringBuilder::with_capacity(chunk.len(), chunk.len() * 10);
        let mut channels = StringBuilder::with_capacity(chunk.len(), chunk.len() * 8);
        let [mut sources, mut mediums, mut campaigns] =
            std::array::from_fn(|_| StringBuilder::with_capacity(chunk.len(), chunk.len() * 8));
        let mut timestamps = Vec::with_capacity(chunk.len());
        let mut conversions = Vec::with_capacity(chunk.len());
        let mut values = Vec::with_capacity(chunk.len());
        for &event in chunk {
            format_user_id(event.user(), &mut user_id);
            users.append_value(&user_id);
            timestamps.push((START_EPOCH_SECS + i64::from(event.ts())) * 1_000_000);
            match event.channel() {
                Some(channel) => {
                    channels.append_value(CHANNELS[channel]);
                    let (source, medium, number) = utm(event, channel);
                    sources.append_option((!source.is_empty()).then_some(source));
                    mediums.append_option((!medium.is_empty()).then_some(medium));
                    match number {
                        Some(number) => {
                            campaign_name(channel, number, &mut campaign);
                            campaigns.append_value(&campaign);
                        }
                        None => campaigns.append_null(),
                    }
                    conversions.push(false);
                    values.push(None);
                }
                None => {
                    channels.append_null();
                    for column in [&mut sources, &mut mediums, &mut campaigns] {
                        column.append_null();
                    }
                    conversions.push(true);
                    values.push(Some(model.conversion_value(event)));
                }
            }
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(users.finish()),
            Arc::new(TimestampMicrosecondArray::from(timestamps).with_timezone(Arc::clone(&utc))),
        ];
        match columns_of {
            Columns::Channel => columns.push(Arc::new(channels.finish())),
            Columns::Marketing => {
                columns.extend([sources, mediums, campaigns].map(|mut c| Arc::new(c.finish()) as ArrayRef))
            }
        }
        columns.push(Arc::new(BooleanArray::from(conversions)));
        columns.push(Arc::new(Float64Array::from(values)));
        writer.write(&RecordBatch::try_new(Arc::clone(&schema), columns)?)?;
    }
    writer.close()?;
    Ok(())
}

/// Writes `events` (already in file order) as CSV with a header, gzip-compressed if asked.
pub(crate) fn write_csv(events: &[Event], model: &Model, columns_of: Columns, gzip: bool, path: &Path) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    if gzip {
        let mut encoder = GzEncoder::new(out, flate2::Compression::default());
        write_csv_rows(events, model, columns_of, &mut encoder)?;
        encoder.finish()?.flush()?;
    } else {
        let mut out = out;
        write_csv_rows(events, model, columns_of, &mut out)?;
        out.flush()?;
    }
    Ok(())
}

fn write_csv_rows(events: &[Event], model: &Model, columns_of: Columns, out: &mut impl Write) -> Result<()> {
    match columns_of {
        Columns::Channel => writeln!(out, "user_id,timestamp,channel,conversion,conversion_value")?,
        Columns::Marketing => writeln!(out, "user_id,timestamp,source,medium,campaign,conversion,conversion_value")?,
    }
    let (mut user_id, mut timestamp, mut campaign) = (String::new(), String::new(), String::new());
    for &event in events {
        format_user_id(event.user(), &mut user_id);
        format_rfc3339(START_EPOCH_SECS + i64::from(event.ts()), &mut timestamp);
        let touch = match (event.channel(), columns_of) {
            (None, Columns::Channel) => ",1,".to_owned(),
            (None, Columns::Marketing) => ",,,1,".to_owned(),
            (Some(channel), Columns::Channel) => format!("{},0,", CHANNELS[channel]),
            (Some(channel), Columns::Marketing) => {
                let (source, medium, number) = utm(event, channel);
                campaign.clear();
                if let Some(number) = number {
                    campaign_name(channel, number, &mut campaign);
                }
                format!("{source},{medium},{campaign},0,")
            }
        };
        match event.channel() {
            Some(_) => writeln!(out, "{user_id},{timestamp},{touch}")?,
            None => writeln!(out, "{user_id},{timestamp},{touch}{}", model.conversion_value(event))?,
        }
    }
    Ok(())
}

/// `u` followed by the user index zero-padded to 9 digits, e.g. `u000012345`.
fn format_user_id(user: u64, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    write!(out, "u{user:09}").expect("writing to a String cannot fail");
}

/// Formats seconds since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ`.
fn format_rfc3339(epoch_secs: i64, out: &mut String) {
    use std::fmt::Write as _;
    let (days, secs) = (epoch_secs.div_euclid(86_400), epoch_secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    out.clear();
    write!(out, "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
        .expect("writing to a String cannot fail");
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        let mut s = String::new();
        format_rfc3339(START_EPOCH_SECS, &mut s);
        assert_eq!(s, "2026-01-01T00:00:00Z");
        format_rfc3339(START_EPOCH_SECS + 59 * 86_400 + 3 * 3600 + 4 * 60 + 5, &mut s);
        assert_eq!(s, "2026-03-01T03:04:05Z");
        format_rfc3339(951_782_400, &mut s);
        assert_eq!(s, "2000-02-29T00:00:00Z");
        format_rfc3339(0, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_user_ids() {
        let mut s = String::new();
        format_user_id(12_345, &mut s);
        assert_eq!(s, "u000012345");
    }
}
