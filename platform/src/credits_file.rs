//! The per-journey credit export (`mta attribute --credits`, the `export_credits` job
//! option): one row per converting journey × channel × model, written as Parquet to a
//! local file.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mta_core::chunk::{EventChunk, PathChunk};
use mta_core::credits::{CreditSplitter, JourneyCredit};
use mta_core::journey::{Journey, JourneyOrigin, for_each_event_journey, for_each_path_journey};
use mta_core::{AttributionResult, ModelId, Options};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Credit rows of some journeys, columnar.
#[derive(Default)]
pub struct CreditRows {
    user_id: Vec<Option<String>>,
    path_row: Vec<Option<u64>>,
    conversion_time: Vec<Option<i64>>,
    model: Vec<ModelId>,
    channel: Vec<u32>,
    conversions: Vec<f64>,
    value: Vec<f64>,
    scratch: Vec<JourneyCredit>,
}

impl CreditRows {
    /// Adds the rows of one journey, identified by its user (events) or its path row.
    pub fn add_journey(
        &mut self,
        splitter: &mut CreditSplitter,
        journey: &Journey<'_>,
        options: &Options,
        user_id: Option<&str>,
        path_row: Option<u64>,
    ) {
        self.scratch.clear();
        splitter.split(journey, options, &mut self.scratch);
        for credit in &self.scratch {
            self.user_id.push(user_id.map(str::to_owned));
            self.path_row.push(path_row);
            self.conversion_time.push(journey.conversion_time);
            self.model.push(credit.model);
            self.channel.push(credit.channel);
            self.conversions.push(credit.conversions);
            self.value.push(credit.value);
        }
    }
}

impl CreditRows {
    /// Rows of every converting journey of an event chunk that kept its user ids;
    /// `channels` are the names the chunk's channel ids (and `result`) refer to.
    pub fn of_events(chunk: &EventChunk, channels: &[String], options: &Options, result: &AttributionResult) -> Self {
        let mut splitter = CreditSplitter::new(options, channels, result);
        let mut rows = CreditRows::default();
        let user_ids = chunk.user_ids.as_deref().unwrap_or_default();
        for_each_event_journey(chunk, options, |journey, origin| {
            let JourneyOrigin::EventRow { row, .. } = origin else { return };
            rows.add_journey(&mut splitter, journey, options, user_ids.get(row).map(String::as_str), None);
        });
        rows
    }

    /// Rows of every converting path row of a chunk, named by their row number.
    pub fn of_paths(chunk: &PathChunk, options: &Options, result: &AttributionResult) -> Self {
        let mut splitter = CreditSplitter::new(options, chunk.channels.names(), result);
        let mut rows = CreditRows::default();
        for_each_path_journey(chunk, options, |journey, origin| {
            let JourneyOrigin::PathRow(row) = origin else { return };
            rows.add_journey(&mut splitter, journey, options, None, Some(chunk.row_numbers[row]));
        });
        rows
    }
}

/// An open credits file.
pub struct CreditsFile {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
}

impl CreditsFile {
    pub fn create(path: &Path) -> anyhow::Result<CreditsFile> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Utf8, true),
            Field::new("path_row", DataType::UInt64, true),
            Field::new("conversion_time", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("model", DataType::Utf8, false),
            Field::new("channel", DataType::Utf8, false),
            Field::new("conversions", DataType::Float64, false),
            Field::new("value", DataType::Float64, false),
        ]));
        let file = File::create(path).with_context(|| format!("Failed to create {}", path.display()))?;
        let properties = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties))
            .context("Failed to start the credits file")?;
        Ok(CreditsFile { writer, schema })
    }

    /// Writes rows whose channel ids index `channels`.
    pub fn write(&mut self, rows: CreditRows, channels: &[String]) -> anyhow::Result<()> {
        if rows.model.is_empty() {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(rows.user_id)),
            Arc::new(UInt64Array::from(rows.path_row)),
            Arc::new(TimestampMicrosecondArray::from(rows.conversion_time).with_timezone("UTC")),
            Arc::new(StringArray::from_iter_values(rows.model.iter().map(|m| m.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.channel.iter().map(|&c| channels[c as usize].as_str()))),
            Arc::new(Float64Array::from(rows.conversions)),
            Arc::new(Float64Array::from(rows.value)),
        ];
        let batch =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).context("Failed to build a credits batch")?;
        self.writer.write(&batch).context("Failed to write credits")?;
        Ok(())
    }

    pub fn close(self) -> anyhow::Result<()> {
        self.writer.close().context("Failed to finish the credits file")?;
        Ok(())
    }
}
