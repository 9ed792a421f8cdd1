//! The chunk file: event rows of one user-hash partition, as written by a split task and
//! read by the attribute task of that partition. Parquet, so an operator can open one
//! with any tool; channel ids index the channel names kept in the file's metadata.

use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::array::{UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, UInt32Type, UInt64Type};
use bytes::Bytes;
use mta_core::chunk::EventChunk;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

const CHANNELS_KEY: &str = "mta.channels";
/// With `segment_by`: the segment values the `segment_id` column indexes.
const SEGMENTS_KEY: &str = "mta.segments";

fn schema(with_user_ids: bool, with_segments: bool) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("user_key_hi", DataType::UInt64, false),
        Field::new("user_key_lo", DataType::UInt64, false),
        Field::new("timestamp_us", DataType::Int64, false),
        Field::new("channel_id", DataType::UInt32, false),
        Field::new("conversion", DataType::Boolean, false),
        Field::new("value", DataType::Float64, false),
        Field::new("row", DataType::UInt64, false),
    ];
    if with_user_ids {
        fields.push(Field::new("user_id", DataType::Utf8, false));
    }
    if with_segments {
        fields.push(Field::new("segment_id", DataType::UInt32, false));
    }
    Arc::new(Schema::new(fields))
}

/// Encodes a chunk as Parquet bytes (LZ4: chunk files are written once and read once, soon).
pub fn encode(chunk: &EventChunk) -> anyhow::Result<Vec<u8>> {
    let with_user_ids = chunk.user_ids.is_some();
    let with_segments = chunk.has_segments();
    let schema = schema(with_user_ids, with_segments);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(chunk.user_keys.iter().map(|k| (k >> 64) as u64))),
        Arc::new(UInt64Array::from_iter_values(chunk.user_keys.iter().map(|&k| k as u64))),
        Arc::new(Int64Array::from(chunk.timestamps.clone())),
        Arc::new(UInt32Array::from(chunk.channel_ids.clone())),
        Arc::new(BooleanArray::from(chunk.is_conversion.clone())),
        Arc::new(Float64Array::from(chunk.values.clone())),
        Arc::new(UInt64Array::from(chunk.row_numbers.clone())),
    ];
    if let Some(ids) = &chunk.user_ids {
        columns.push(Arc::new(StringArray::from_iter_values(ids.iter())));
    }
    let mut metadata = vec![KeyValue::new(CHANNELS_KEY.to_owned(), serde_json::to_string(chunk.channels.names())?)];
    if with_segments {
        columns.push(Arc::new(UInt32Array::from(chunk.segment_ids.clone())));
        metadata.push(KeyValue::new(SEGMENTS_KEY.to_owned(), serde_json::to_string(chunk.segments.names())?));
    }
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).context("Failed to build a chunk batch")?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        // Keys, times and row numbers are nearly unique: dictionary attempts only cost time.
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, schema, Some(properties)).context("Failed to start a chunk file")?;
    writer.write(&batch).context("Failed to write a chunk file")?;
    writer.close().context("Failed to finish a chunk file")?;
    Ok(out)
}

/// Decodes a chunk file and appends its rows to `into`, mapping channels into its dictionary.
pub fn decode_into(bytes: Bytes, into: &mut EventChunk) -> anyhow::Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).context("A chunk file is not valid Parquet")?;
    let listed = |key: &str| -> anyhow::Result<Option<Vec<String>>> {
        builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.as_deref())
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("A chunk file's {key} list is invalid"))
    };
    let names = listed(CHANNELS_KEY)?.context("A chunk file has no channel list")?;
    let map: Vec<u32> = names.iter().map(|name| into.channels.id(name)).collect();
    let segment_map: Option<Vec<u32>> =
        listed(SEGMENTS_KEY)?.map(|values| values.iter().map(|value| into.segments.id(value)).collect());
    let schema = builder.schema();
    let with_user_ids = schema.field_with_name("user_id").is_ok();
    let segment_column = schema.index_of("segment_id").ok();
    if with_user_ids != into.user_ids.is_some() && !(into.is_empty() && into.user_ids.is_none()) {
        bail!("chunk files of one partition disagree on carrying user ids");
    }
    if with_user_ids && into.user_ids.is_none() {
        into.user_ids = Some(Vec::new());
    }
    for batch in builder.build().context("Failed to read a chunk file")? {
        let batch = batch.context("Failed to read a chunk file")?;
        let hi = batch.column(0).as_primitive::<UInt64Type>();
        let lo = batch.column(1).as_primitive::<UInt64Type>();
        into.user_keys.extend(hi.values().iter().zip(lo.values()).map(|(&h, &l)| (h as u128) << 64 | l as u128));
        into.timestamps.extend_from_slice(batch.column(2).as_primitive::<Int64Type>().values());
        let channel_ids = batch.column(3).as_primitive::<UInt32Type>();
        into.channel_ids.extend(channel_ids.values().iter().map(|&c| map.get(c as usize).copied().unwrap_or(c)));
        into.is_conversion.extend(batch.column(4).as_boolean().iter().map(|b| b.unwrap_or(false)));
        into.values.extend_from_slice(batch.column(5).as_primitive::<Float64Type>().values());
        into.row_numbers.extend_from_slice(batch.column(6).as_primitive::<UInt64Type>().values());
        if let Some(ids) = into.user_ids.as_mut() {
            let column = batch.column(7).as_string::<i32>();
            ids.extend((0..column.len()).map(|i| column.value(i).to_owned()));
        }
        if let (Some(column), Some(map)) = (segment_column, &segment_map) {
            let segments = batch.column(column).as_primitive::<UInt32Type>();
            into.segment_ids.extend(segments.values().iter().map(|&s| map.get(s as usize).copied().unwrap_or(s)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_channels_are_remapped() {
        let mut a = EventChunk::default();
        let x = a.channels.id("x");
        let y = a.channels.id("y");
        a.user_keys = vec![1 << 70 | 5, 7];
        a.timestamps = vec![10, 20];
        a.channel_ids = vec![y, mta_core::chunk::NO_CHANNEL];
        a.is_conversion = vec![false, true];
        a.values = vec![0.0, 2.5];
        a.row_numbers = vec![3, 9];
        let _ = x;
        let mut into = EventChunk::default();
        into.channels.id("y");
        decode_into(Bytes::from(encode(&a).unwrap()), &mut into).unwrap();
        assert_eq!(into.user_keys, a.user_keys);
        assert_eq!(into.channel_ids, vec![0, mta_core::chunk::NO_CHANNEL]);
        assert_eq!(into.channels.name(0), "y");
        assert_eq!(into.values, a.values);
        assert_eq!(into.row_numbers, a.row_numbers);
        assert!(into.user_ids.is_none());
        assert!(!into.has_segments());
    }

    #[test]
    fn segment_ids_round_trip_and_are_remapped() {
        let mut a = EventChunk::default();
        let y = a.channels.id("y");
        let (de, fr) = (a.segments.id("DE"), a.segments.id("FR"));
        a.user_keys = vec![1, 2, 3];
        a.timestamps = vec![10, 20, 30];
        a.channel_ids = vec![y, y, y];
        a.is_conversion = vec![false, true, false];
        a.values = vec![0.0, 1.0, 0.0];
        a.row_numbers = vec![1, 2, 3];
        a.segment_ids = vec![fr, mta_core::chunk::NO_SEGMENT, de];
        let mut into = EventChunk::default();
        into.segments.id("FR");
        into.segments.id("IT");
        decode_into(Bytes::from(encode(&a).unwrap()), &mut into).unwrap();
        let values: Vec<Option<&str>> = (0..3).map(|row| into.segment_of(row)).collect();
        assert_eq!(values, [Some("FR"), None, Some("DE")]);
        assert_eq!(into.segment_ids[0], 0, "FR keeps its id in the partition's dictionary");
    }
}
