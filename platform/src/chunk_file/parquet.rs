//! Chunk files as workers before the row-segment format wrote them: Parquet, one column per
//! field (user key as two u64, time, channel id, conversion flag, value, row number, then
//! `user_id` and `segment_id` when carried), the channel names and segment values as JSON
//! lists in the file's metadata. Still read, so that a job split by an older worker runs
//! on after an upgrade.

use anyhow::Context;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, UInt32Type, UInt64Type};
use bytes::Bytes;
use mta_core::chunk::EventChunk;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

const CHANNELS_KEY: &str = "mta.channels";
const SEGMENTS_KEY: &str = "mta.segments";

/// Appends the rows of a Parquet chunk file to `into`, mapping channels and segment values
/// into its dictionaries.
pub(super) fn decode_into(bytes: Bytes, into: &mut EventChunk) -> anyhow::Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).context("not valid Parquet")?;
    let listed = |key: &str| -> anyhow::Result<Option<Vec<String>>> {
        builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == key))
            .and_then(|kv| kv.value.as_deref())
            .map(serde_json::from_str)
            .transpose()
            .with_context(|| format!("its {key} list is invalid"))
    };
    let names = listed(CHANNELS_KEY)?.context("it has no channel list")?;
    let map: Vec<u32> = names.iter().map(|name| into.channels.id(name)).collect();
    let segment_map: Option<Vec<u32>> =
        listed(SEGMENTS_KEY)?.map(|values| values.iter().map(|value| into.segments.id(value)).collect());
    let schema = builder.schema();
    super::expect_user_ids(into, schema.field_with_name("user_id").is_ok())?;
    let segment_column = schema.index_of("segment_id").ok();
    for batch in builder.build().context("not readable")? {
        let batch = batch.context("not readable")?;
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

/// The encoder of the older workers, kept to test that their files still decode.
#[cfg(test)]
pub(super) fn encode(chunk: &EventChunk) -> Vec<u8> {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::array::{UInt32Array, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;

    let mut fields = vec![
        Field::new("user_key_hi", DataType::UInt64, false),
        Field::new("user_key_lo", DataType::UInt64, false),
        Field::new("timestamp_us", DataType::Int64, false),
        Field::new("channel_id", DataType::UInt32, false),
        Field::new("conversion", DataType::Boolean, false),
        Field::new("value", DataType::Float64, false),
        Field::new("row", DataType::UInt64, false),
    ];
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
        fields.push(Field::new("user_id", DataType::Utf8, false));
        columns.push(Arc::new(StringArray::from_iter_values(ids.iter())));
    }
    let channels = serde_json::to_string(chunk.channels.names()).unwrap();
    let mut metadata = vec![KeyValue::new(CHANNELS_KEY.to_owned(), channels)];
    if chunk.has_segments() {
        fields.push(Field::new("segment_id", DataType::UInt32, false));
        columns.push(Arc::new(UInt32Array::from(chunk.segment_ids.clone())));
        metadata.push(KeyValue::new(SEGMENTS_KEY.to_owned(), serde_json::to_string(chunk.segments.names()).unwrap()));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    let properties = WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_dictionary_enabled(false)
        .set_key_value_metadata(Some(metadata))
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}
