//! Opening an input file on local disk and decoding it into blocks: the same reading
//! path for `mta attribute` and for the split stage (which works on a local copy).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mta_core::ingest::{
    Block, Format, InputSpec, RecordScan, detect_delimiter, detect_format, is_gzip, ndjson_header, open_text,
    parquet_layout, read_csv, read_csv_in_pieces, read_ndjson, read_parquet,
};
use mta_core::spend::{CostTable, SpendLimits};
use mta_core::{AttributionError, ErrorCode};
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};

use crate::run_error::RunError;
use serde::{Deserialize, Serialize};

/// An opened input: what can be planned before decoding.
#[derive(Debug, Clone)]
pub enum Source {
    Parquet { path: PathBuf, row_groups: usize, rows: u64 },
    Text { path: PathBuf, format: Option<Format>, gzip: bool },
}

impl Source {
    /// Looks at the first bytes; Parquet is recognised by its magic, anything else is text.
    pub fn open(path: &Path, format: Option<Format>) -> Result<Source, RunError> {
        let mut file = open(path)?;
        let mut head = [0u8; 4];
        let n = file.read(&mut head).with_context(|| format!("Failed to read {}", path.display()))?;
        let parquet = &head[..n] == b"PAR1";
        match format {
            Some(Format::Parquet) | None if parquet => {
                let layout = parquet_layout(open(path)?)?;
                Ok(Source::Parquet {
                    path: path.to_owned(),
                    row_groups: layout.row_groups.len(),
                    rows: layout.total_rows,
                })
            }
            Some(Format::Parquet) => Err(AttributionError::new(
                ErrorCode::UnknownFormat,
                "the input was declared Parquet but does not start with the Parquet magic bytes `PAR1`",
            )
            .into()),
            _ => Ok(Source::Text { path: path.to_owned(), format, gzip: is_gzip(&head[..n]) }),
        }
    }

    /// Rows, exact for Parquet, estimated from the size for text.
    pub fn estimated_rows(&self) -> u64 {
        match self {
            Source::Parquet { rows, .. } => *rows,
            Source::Text { path, gzip, .. } => {
                let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                // About 50 bytes a CSV row; gzip packs text about 6 to 1.
                bytes * if *gzip { 6 } else { 1 } / 50
            }
        }
    }

    /// Pieces that can be decoded independently: Parquet row groups; text is one piece.
    pub fn pieces(&self) -> usize {
        match self {
            Source::Parquet { row_groups, .. } => *row_groups,
            Source::Text { .. } => 1,
        }
    }

    /// Decodes the input (only `row_groups` of a Parquet file, when given) into `sink`.
    pub fn read(
        &self,
        spec: &InputSpec,
        row_groups: Option<&[usize]>,
        sink: impl FnMut(Block) -> Result<(), RunError>,
    ) -> Result<(), RunError> {
        match self {
            Source::Parquet { path, .. } => {
                read_parquet(open(path)?, spec, row_groups, sink)?;
            }
            Source::Text { path, format, .. } => {
                let (format, reader) = open_text(open(path)?, *format, spec.limits.max_decompressed_bytes)?;
                match format {
                    Format::Ndjson => read_ndjson(reader, spec, sink)?,
                    _ => read_csv_in_pieces(reader, spec, spec.text_threads, sink)?,
                };
            }
        }
        Ok(())
    }
}

/// Where the footer of a Parquet object starts, from its last 8 bytes (metadata length,
/// then `PAR1`); `None` when they are not a plain Parquet footer (text, an encrypted
/// footer, a length past the object).
pub fn parquet_footer_start(tail: &[u8], size: u64) -> Option<u64> {
    let last: &[u8; 8] = tail.get(tail.len().checked_sub(8)?..)?.try_into().ok()?;
    let footer = FooterTail::try_new(last).ok().filter(|f| !f.is_encrypted_footer())?;
    size.checked_sub(8 + footer.metadata_length() as u64).filter(|&start| start >= 4)
}

/// The byte ranges of a Parquet object of `size` bytes that a reader of some of its row
/// groups touches: the leading magic, those row groups' column chunks and the footer
/// (`footer`, the object's bytes from `footer_start` on). `share` picks the row groups from
/// their count. `None` when the footer is not one a reader could use or its offsets point
/// outside the row groups' part of the object (the whole object is then fetched, and the
/// reader says what is wrong).
pub fn parquet_share_ranges(
    footer: &[u8],
    size: u64,
    footer_start: u64,
    share: impl FnOnce(usize) -> Range<usize>,
) -> Option<Vec<Range<u64>>> {
    let metadata = ParquetMetaDataReader::decode_metadata(footer.get(..footer.len().checked_sub(8)?)?).ok()?;
    // The leading magic, which the reader checks.
    let magic = 0..4;
    let mut ranges = vec![magic];
    for group in metadata.row_groups().get(share(metadata.num_row_groups()))? {
        for column in group.columns() {
            let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
            let (start, length) = (u64::try_from(start).ok()?, u64::try_from(column.compressed_size()).ok()?);
            let end = start.checked_add(length).filter(|&end| start >= 4 && end <= footer_start)?;
            ranges.push(start..end);
        }
    }
    ranges.push(footer_start..size);
    ranges.sort_by_key(|r| r.start);
    // Adjacent column chunks are fetched as one range.
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    Some(merged)
}

/// Reads a local cost table (CSV, gzip CSV or Parquet, told apart by their first bytes),
/// with the segment column of the job's `segment_by` if it has one; an error says it is
/// about the cost table.
pub fn read_cost_table(path: &Path, limits: &SpendLimits, segment_by: Option<&str>) -> Result<CostTable, RunError> {
    let mut file = open(path)?;
    let mut head = [0u8; 4];
    let n = file.read(&mut head).with_context(|| format!("Failed to read {}", path.display()))?;
    let read = if &head[..n] == b"PAR1" {
        CostTable::read_parquet(open(path)?, limits, segment_by)
    } else {
        CostTable::read_csv(open(path)?, limits, segment_by)
    };
    read.map_err(|e| {
        RunError::Input(AttributionError { message: format!("the cost table: {}", e.message), ..e }.bounded())
    })
}

/// A piece of a CSV file that can be parsed on its own: its header (bytes
/// `0..header_end`) followed by the records in `start..end`, whose first data row is
/// `first_row` of the whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvRange {
    pub header_end: u64,
    pub start: u64,
    pub end: u64,
    pub first_row: u64,
}

/// What a planning scan reads at a time: small enough to stay in the core's cache between the
/// kernel's copy and the scan (8 MiB at a time, the scan of a 1.3 GB NDJSON file took 0.6 to
/// 0.8 s instead of 0.2 s).
const SCAN_BUFFER_BYTES: usize = 256 * 1024;

/// Cuts an uncompressed CSV file into about `pieces` ranges at record boundaries, in one
/// fast pass that follows quoting as the CSV reader does (a quote opens a quoted field
/// only at the start of a field; `""` inside one is a literal quote; a newline inside
/// quotes does not end a record) and counts data rows as the reader does (blank lines
/// and lines holding only `""` are not rows). Returns `None` when the file cannot be
/// cut safely (a lone carriage return as line end, an unterminated quote) or holds too
/// few rows: it is then read as one piece.
pub fn plan_csv_ranges(path: &Path, delimiter: u8, pieces: usize) -> anyhow::Result<Option<Vec<CsvRange>>> {
    let size = std::fs::metadata(path).with_context(|| format!("Failed to read {}", path.display()))?.len();
    if pieces < 2 {
        return Ok(None);
    }
    let mut reader = open(path)?;
    let mut buffer = vec![0u8; SCAN_BUFFER_BYTES];
    let targets: Vec<u64> = (1..pieces as u64).map(|k| size * k / pieces as u64).collect();
    let mut scan = RecordScan::new(delimiter);
    let mut cuts: Vec<(u64, u64)> = Vec::new(); // (byte offset, data rows before it)
    loop {
        let n = reader.read(&mut buffer).with_context(|| format!("Failed to read {}", path.display()))?;
        if n == 0 {
            break;
        }
        let safe = scan.buffer(&buffer[..n], |end, rows, header_seen| {
            if header_seen && cuts.len() < targets.len() && end >= targets[cuts.len()] {
                cuts.push((end, rows));
            }
        });
        if !safe {
            return Ok(None);
        }
    }
    let Some(header_end) = scan.finish() else { return Ok(None) };
    let rows = scan.rows();
    // Every piece must hold at least one row: the reader refuses a piece without one.
    let mut kept: Vec<(u64, u64)> = Vec::new();
    for (at, before) in cuts {
        if before > 0 && before < rows && kept.last().is_none_or(|&(_, last)| before > last) {
            kept.push((at, before));
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let mut ranges = Vec::with_capacity(kept.len() + 1);
    let (mut start, mut first_row) = (header_end, 1);
    for (at, before) in kept {
        ranges.push(CsvRange { header_end, start, end: at, first_row });
        (start, first_row) = (at, before + 1);
    }
    ranges.push(CsvRange { header_end, start, end: size, first_row });
    Ok(Some(ranges))
}

impl Source {
    /// Byte ranges of an uncompressed CSV input of at least 2 × `range_bytes`, at most
    /// `pieces` of them, each parsable on its own (`None`: read it whole: not CSV,
    /// compressed, small, or not safely cut; see [`plan_csv_ranges`]).
    pub fn csv_ranges(
        &self,
        spec: &InputSpec,
        range_bytes: u64,
        pieces: usize,
    ) -> Result<Option<Vec<CsvRange>>, RunError> {
        let Some(input) = self.to_cut(Format::Csv, range_bytes, pieces)? else { return Ok(None) };
        let delimiter = spec.delimiter.unwrap_or_else(|| detect_delimiter(&input.head));
        Ok(plan_csv_ranges(input.path, delimiter, input.pieces)?)
    }

    /// An uncompressed text input in `wanted` format (given, else detected) of at least two
    /// ranges of `range_bytes`, to be cut into at most `pieces`; `None` otherwise.
    fn to_cut(&self, wanted: Format, range_bytes: u64, pieces: usize) -> Result<Option<ToCut<'_>>, RunError> {
        let Source::Text { path, format, gzip: false } = self else { return Ok(None) };
        let size = std::fs::metadata(path).with_context(|| format!("Failed to read {}", path.display()))?.len();
        let pieces = (size / range_bytes.max(1)).min(pieces as u64) as usize;
        if pieces < 2 {
            return Ok(None);
        }
        let mut head = vec![0u8; 64 * 1024];
        let n = open(path)?.read(&mut head).with_context(|| format!("Failed to read {}", path.display()))?;
        head.truncate(n);
        let is_wanted = match format {
            Some(format) => *format == wanted,
            None => detect_format(&head).is_ok_and(|format| format == wanted),
        };
        Ok(is_wanted.then_some(ToCut { path, size, pieces, head }))
    }

    /// Decodes one range of a CSV file (see [`plan_csv_ranges`]) into `sink`.
    pub fn read_csv_range(
        &self,
        spec: &InputSpec,
        range: &CsvRange,
        sink: impl FnMut(Block) -> Result<(), RunError>,
    ) -> Result<(), RunError> {
        let Source::Text { path, .. } = self else {
            return Err(anyhow::anyhow!("byte ranges apply to text inputs only").into());
        };
        let header = open(path)?.take(range.header_end);
        let mut body = open(path)?;
        body.seek(SeekFrom::Start(range.start)).with_context(|| format!("Failed to read {}", path.display()))?;
        let reader = BufReader::with_capacity(256 * 1024, header.chain(body.take(range.end - range.start)));
        let spec = InputSpec { first_row: range.first_row, ..spec.clone() };
        read_csv(reader, &spec, sink)?;
        Ok(())
    }
}

/// A text input [`Source::to_cut`] found worth cutting into byte ranges.
struct ToCut<'a> {
    path: &'a Path,
    size: u64,
    /// How many ranges to cut (at least 2).
    pieces: usize,
    /// Its first 64 kB.
    head: Vec<u8>,
}

/// An uncompressed NDJSON input cut at line ends into byte ranges, read apart with the column
/// names of its first lines (see [`mta_core::ingest::read_ndjson_range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdjsonRanges {
    pub header: Vec<String>,
    /// Each range's bytes and the number of its first line in the whole input.
    pub ranges: Vec<(Range<u64>, u64)>,
}

impl Source {
    /// Byte ranges of an uncompressed NDJSON input of at least 2 × `range_bytes`, at most
    /// `pieces` of them (`None`: read it whole: not NDJSON, compressed or small).
    pub fn ndjson_ranges(
        &self,
        spec: &InputSpec,
        range_bytes: u64,
        pieces: usize,
    ) -> Result<Option<NdjsonRanges>, RunError> {
        let Some(ToCut { path, size, pieces, .. }) = self.to_cut(Format::Ndjson, range_bytes, pieces)? else {
            return Ok(None);
        };
        let header = ndjson_header(BufReader::with_capacity(256 * 1024, open(path)?), spec)?;
        let ranges = plan_line_ranges(path, size, pieces)?;
        Ok((ranges.len() > 1).then_some(NdjsonRanges { header, ranges }))
    }

    /// Decodes range `index` of an NDJSON input into `sink`; false when a line holds a key the
    /// first lines do not (the input must then be read whole, see
    /// [`mta_core::ingest::read_ndjson_range`]).
    pub fn read_ndjson_range(
        &self,
        spec: &InputSpec,
        ranges: &NdjsonRanges,
        index: usize,
        sink: impl FnMut(Block) -> Result<(), RunError>,
    ) -> Result<bool, RunError> {
        let Source::Text { path, .. } = self else {
            return Err(anyhow::anyhow!("byte ranges apply to text inputs only").into());
        };
        let (bytes, first_line) = &ranges.ranges[index];
        let mut body = open(path)?;
        body.seek(SeekFrom::Start(bytes.start)).with_context(|| format!("Failed to read {}", path.display()))?;
        let reader = BufReader::with_capacity(256 * 1024, body.take(bytes.end - bytes.start));
        let read = mta_core::ingest::read_ndjson_range(reader, &ranges.header, *first_line, spec, sink)?;
        Ok(read.is_some())
    }
}

/// Cuts a file of `size` bytes into about `pieces` ranges that end just after a line end,
/// each with the number of its first line (one pass that counts line ends, a buffer at a
/// time: memchr counts them without visiting each).
fn plan_line_ranges(path: &Path, size: u64, pieces: usize) -> anyhow::Result<Vec<(Range<u64>, u64)>> {
    let mut targets = (1..pieces as u64).map(|k| size * k / pieces as u64).peekable();
    let mut file = open(path)?;
    let mut buffer = vec![0u8; SCAN_BUFFER_BYTES];
    let (mut offset, mut lines) = (0u64, 0u64);
    let mut ranges = Vec::with_capacity(pieces);
    let (mut start, mut first_line) = (0u64, 1u64);
    loop {
        let n = file.read(&mut buffer).with_context(|| format!("Failed to read {}", path.display()))?;
        if n == 0 {
            break;
        }
        let chunk = &buffer[..n];
        // Line ends before `counted` are in `lines`.
        let mut counted = 0;
        while let Some(&target) = targets.peek() {
            // A range ends at the first line end at or after its target.
            let from = (target.saturating_sub(offset) as usize).max(counted);
            let Some(line_end) = chunk.get(from..).and_then(|rest| memchr::memchr(b'\n', rest)).map(|i| from + i)
            else {
                break;
            };
            lines += memchr::memchr_iter(b'\n', &chunk[counted..=line_end]).count() as u64;
            counted = line_end + 1;
            let end = offset + counted as u64;
            if end < size {
                ranges.push((start..end, first_line));
                (start, first_line) = (end, lines + 1);
            }
            while targets.next_if(|&target| end > target).is_some() {}
        }
        lines += memchr::memchr_iter(b'\n', &chunk[counted..]).count() as u64;
        offset += n as u64;
    }
    ranges.push((start..size, first_line));
    Ok(ranges)
}

fn open(path: &Path) -> anyhow::Result<File> {
    File::open(path).with_context(|| format!("Failed to open {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (row number, user key, channel) a read produces.
    fn rows_of(read: impl FnOnce(&mut dyn FnMut(Block) -> Result<(), RunError>)) -> Vec<(u64, u128, String)> {
        let mut rows = Vec::new();
        read(&mut |block| {
            if let Block::Events(chunk) = block {
                for i in 0..chunk.len() {
                    let channel = chunk.channel_ids[i];
                    let name =
                        if channel == u32::MAX { String::new() } else { chunk.channels.name(channel).to_owned() };
                    rows.push((chunk.row_numbers[i], chunk.user_keys[i], name));
                }
            }
            Ok(())
        });
        rows
    }

    /// `text` written to `dir/name`, opened, and its rows read whole.
    fn read_whole(dir: &Path, name: &str, text: &str) -> (PathBuf, Source, Vec<(u64, u128, String)>) {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let source = Source::open(&path, None).unwrap();
        let whole = rows_of(|sink| source.read(&InputSpec::default(), None, sink).unwrap());
        (path, source, whole)
    }

    #[test]
    fn ranges_of_a_csv_read_like_the_whole_file() {
        // A byte order mark and a blank line before the header (the reader drops both).
        let mut text = String::from("\u{feff}\r\nuser_id,timestamp,channel,conversion\r\n");
        for i in 0..500 {
            // Quoted channels with separators, newlines and escaped quotes; stray quotes inside
            // unquoted fields (literal for the reader); blank and `""` lines.
            let channel = match i % 7 {
                0 => format!("\"paid\nsearch, \"\"{i}\"\"\""),
                3 => format!("tv 5\" spot {i}"),
                _ => format!("c{}", i % 5),
            };
            text.push_str(&format!("u{},2026-01-{:02}T00:00:00Z,{channel},{}\r\n", i % 40, i % 28 + 1, i % 11 / 10));
            if i % 50 == 0 {
                text.push_str("\r\n\"\"\r\n");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (path, source, whole) = read_whole(dir.path(), "events.csv", &text);
        let spec = InputSpec::default();
        let ranges = plan_csv_ranges(&path, b',', 4).unwrap().expect("the file can be cut");
        assert_eq!(ranges.len(), 4);
        let mut pieces = Vec::new();
        for range in &ranges {
            pieces.extend(rows_of(|sink| source.read_csv_range(&spec, range, sink).unwrap()));
        }
        assert_eq!(pieces, whole);
        assert_eq!(whole.len(), 500);
        assert_eq!(whole.last().unwrap().0, 500);
    }

    #[test]
    fn files_that_cannot_be_cut_safely_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let lone_cr = dir.path().join("cr.csv");
        std::fs::write(&lone_cr, "a,b\ru1,1\ru2,2\r".repeat(50)).unwrap();
        assert_eq!(plan_csv_ranges(&lone_cr, b',', 4).unwrap(), None);
        let unbalanced = dir.path().join("quote.csv");
        std::fs::write(&unbalanced, format!("a,b\n{}\"open\n", "x,1\n".repeat(100))).unwrap();
        assert_eq!(plan_csv_ranges(&unbalanced, b',', 4).unwrap(), None);
        let header_only = dir.path().join("header.csv");
        std::fs::write(&header_only, "a,b\n\n\n").unwrap();
        assert_eq!(plan_csv_ranges(&header_only, b',', 4).unwrap(), None);
    }

    #[test]
    fn ranges_of_an_ndjson_read_like_the_whole_file_until_a_key_comes_late() {
        let mut text = String::from("\n");
        for i in 0..2400 {
            let line = format!(
                "{{\"user_id\":\"u{}\",\"timestamp\":\"2026-01-{:02}T00:00:00Z\",\"channel\":\"c{}\",\"conversion\":{}}}",
                i % 40,
                i % 28 + 1,
                i % 5,
                i % 11 / 10
            );
            text.push_str(&line);
            text.push_str(if i % 2 == 0 { "\r\n" } else { "\n" });
            if i % 50 == 0 {
                text.push_str(" \n\n");
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (path, source, whole) = read_whole(dir.path(), "events.ndjson", &text);
        let spec = InputSpec::default();
        assert_eq!(whole.len(), 2400);
        let ranges = source.ndjson_ranges(&spec, text.len() as u64 / 4, 4).unwrap().expect("the file can be cut");
        assert_eq!(ranges.ranges.len(), 4);
        assert_eq!(ranges.header, ["user_id", "timestamp", "channel", "conversion"]);
        for (bytes, first_line) in &ranges.ranges {
            let before = &text.as_bytes()[..bytes.start as usize];
            assert!(before.is_empty() || before.ends_with(b"\n"));
            assert_eq!(*first_line, before.iter().filter(|&&b| b == b'\n').count() as u64 + 1);
        }
        let mut pieces = Vec::new();
        for index in 0..ranges.ranges.len() {
            pieces.extend(rows_of(|sink| assert!(source.read_ndjson_range(&spec, &ranges, index, sink).unwrap())));
        }
        assert_eq!(pieces, whole);

        // A key the first thousand lines lack, on line 1,250 or so: its range cannot be read apart.
        let late = ranges.ranges[2].0.start as usize + 10;
        let at = late + text[late..].find('}').unwrap();
        text.insert_str(at, ",\"revenue\":5");
        std::fs::write(&path, &text).unwrap();
        let ranges = source.ndjson_ranges(&spec, text.len() as u64 / 4, 4).unwrap().unwrap();
        let holding = ranges.ranges.iter().position(|(bytes, _)| bytes.contains(&(at as u64))).unwrap();
        assert!(holding > 0 && !ranges.header.contains(&"revenue".to_owned()), "{holding} {ranges:?}");
        for index in 0..ranges.ranges.len() {
            let read_apart = source.read_ndjson_range(&spec, &ranges, index, |_| Ok(())).unwrap();
            assert_eq!(read_apart, index != holding, "range {index}");
        }

        // Gzip is read whole, and so is a file too small for two ranges.
        assert_eq!(source.ndjson_ranges(&spec, text.len() as u64, 4).unwrap(), None);
        let gzip = Source::Text { path, format: None, gzip: true };
        assert_eq!(gzip.ndjson_ranges(&spec, 1, 4).unwrap(), None);
    }

    #[test]
    fn line_ranges_end_at_the_first_line_end_at_or_past_each_target_across_read_buffers() {
        // Lines from 1 byte to 300 kB, so targets and line ends fall on both sides of the
        // scan's buffer boundaries, and some targets share a line.
        let mut text = Vec::new();
        for i in 0..400u64 {
            let length = (i * i * 7919) % 300_000 * u64::from(i % 5 == 0) + i % 13;
            text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, length as usize));
            text.push(b'\n');
        }
        text.extend_from_slice(b"no line end at the end");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.ndjson");
        std::fs::write(&path, &text).unwrap();
        let size = text.len() as u64;
        for pieces in [2, 7, 64] {
            let mut expected = Vec::new();
            let (mut start, mut first_line) = (0u64, 1u64);
            for k in 1..pieces as u64 {
                let target = size * k / pieces as u64;
                let Some(line_end) = text.iter().skip(target as usize).position(|&b| b == b'\n') else { break };
                let end = target + line_end as u64 + 1;
                if end > start && end < size {
                    expected.push((start..end, first_line));
                    first_line += text[start as usize..end as usize].iter().filter(|&&b| b == b'\n').count() as u64;
                    start = end;
                }
            }
            expected.push((start..size, first_line));
            assert_eq!(plan_line_ranges(&path, size, pieces).unwrap(), expected, "{pieces} pieces");
        }
    }

    /// A Parquet file of events in four row groups.
    fn parquet_events(dir: &Path) -> PathBuf {
        use arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
        let rows = 4_000;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user_id", std::sync::Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("u{}", i / 3))))),
            (
                "timestamp",
                std::sync::Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("2026-01-01T00:{:02}:{:02}Z", i / 60 % 60, i % 60)),
                )),
            ),
            ("channel", std::sync::Arc::new(StringArray::from_iter_values((0..rows).map(|i| format!("c{}", i % 7))))),
            ("conversion", std::sync::Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 3 == 2))))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let path = dir.join("events.parquet");
        let properties =
            parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(1_000)).build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(File::create(&path).unwrap(), batch.schema(), Some(properties))
                .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    /// The file's bytes in `ranges`, zeros elsewhere: what a split task has on disk.
    fn sparse_copy(bytes: &[u8], ranges: &[Range<u64>], path: &Path) {
        let mut sparse = vec![0u8; bytes.len()];
        for range in ranges {
            let (start, end) = (range.start as usize, range.end as usize);
            sparse[start..end].copy_from_slice(&bytes[start..end]);
        }
        std::fs::write(path, sparse).unwrap();
    }

    #[test]
    fn a_parquet_files_footer_and_row_groups_alone_read_like_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = parquet_events(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let size = bytes.len() as u64;
        let footer_start = parquet_footer_start(&bytes[bytes.len() - 100..], size).expect("a footer");
        let footer = &bytes[footer_start as usize..];
        let spec = InputSpec::default();
        let source = Source::open(&path, None).unwrap();
        assert_eq!(source.pieces(), 4);
        let whole = rows_of(|sink| source.read(&spec, Some(&[1, 2]), sink).unwrap());
        assert_eq!(whole.len(), 2_000);

        let ranges = parquet_share_ranges(footer, size, footer_start, |groups| {
            assert_eq!(groups, 4);
            1..3
        })
        .expect("ranges");
        let fetched: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        assert!(fetched < size * 3 / 4, "{ranges:?} of {size} bytes");
        let share = dir.path().join("share.parquet");
        sparse_copy(&bytes, &ranges, &share);
        let read = rows_of(|sink| Source::open(&share, None).unwrap().read(&spec, Some(&[1, 2]), sink).unwrap());
        assert_eq!(read, whole);

        // A planner's footer alone tells the row groups and rows.
        let plan = parquet_share_ranges(footer, size, footer_start, |_| 0..0).expect("ranges");
        assert_eq!(plan, vec![0..4, footer_start..size]);
        sparse_copy(&bytes, &plan, &share);
        let planned = Source::open(&share, None).unwrap();
        assert_eq!((planned.pieces(), planned.estimated_rows()), (4, 4_000));
    }

    #[test]
    fn what_is_not_a_usable_parquet_footer_asks_for_the_whole_object() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(parquet_events(dir.path())).unwrap();
        let size = bytes.len() as u64;
        assert_eq!(parquet_footer_start(b"user_id,channel\nu1,PAR1", 24), None);
        assert_eq!(parquet_footer_start(&bytes[bytes.len() - 4..], size), None, "shorter than a footer's tail");
        let mut past = bytes[bytes.len() - 8..].to_vec();
        past[..4].copy_from_slice(&(size as u32).to_le_bytes());
        assert_eq!(parquet_footer_start(&past, size), None, "a metadata length past the object");
        let footer_start = parquet_footer_start(&bytes, size).unwrap();
        let footer = &bytes[footer_start as usize..];
        assert_eq!(parquet_share_ranges(&footer[1..], size, footer_start + 1, |_| 0..1), None, "damaged metadata");
        assert_eq!(parquet_share_ranges(footer, size, footer_start, |_| 3..5), None, "row groups it does not have");
        // Column chunks said to lie in the footer: not offsets a reader could use.
        assert_eq!(parquet_share_ranges(footer, size, 100, |_| 0..4), None);
    }
}
