//! CSV (delimiter detected or given), read as a stream, and what the readers of every format share.

use std::cell::Cell as ByteCell;
use std::io::{BufRead, Read};

use super::columns::{Resolver, detect_kind};
use super::rows::Rows;
use super::values::Cell;
use super::{Block, InputSpec, InputSummary, io_error};
use crate::error::{AttributionError, ErrorCode, Problem};
use crate::options::InputKind;

/// Reads CSV rows, handing each full block to `sink`; no record is buffered beyond
/// `limits.max_line_bytes` (see [`csv_rows`]).
pub fn read_csv<E: From<AttributionError>>(
    reader: impl BufRead,
    spec: &InputSpec,
    sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let lines =
        CsvLines { delimiter: spec.delimiter, max_line_bytes: spec.limits.max_line_bytes, first_row: spec.first_row };
    read_csv_lines(reader, spec, lines, sink)
}

/// [`read_csv`] with the lines' delimiter and first row number given apart from `spec`.
pub(super) fn read_csv_lines<E: From<AttributionError>>(
    reader: impl BufRead,
    spec: &InputSpec,
    lines: CsvLines,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let mut kind = InputKind::Events;
    let rows = csv_rows(
        reader,
        lines,
        |header| {
            let (found, rows) = rows_for(header, spec)?;
            kind = found;
            Ok(rows)
        },
        |rows: &mut Rows| match rows.take_full_block() {
            Some(block) => sink(block),
            None => Ok(()),
        },
    )?;
    finish(kind, rows, sink)
}

/// What a consumer of decoded rows does with them: [`Rows`] for attribution input, other
/// tables (a cost table) through their own rules, all read by the same decoders.
pub(crate) trait RowSink {
    /// Records a problem found by the decoder itself (a malformed record, bad UTF-8).
    fn problem(&mut self, row: u64, column: &str, problem: String);
    /// Adds one row; `cell(i)` reads column i. Fails only when a limit is exceeded.
    fn push<'c>(&mut self, row: u64, cell: impl Fn(usize) -> Cell<'c>) -> Result<(), AttributionError>;
    /// True once reading further would add nothing (enough problems are known).
    fn should_stop(&mut self) -> bool;
}

impl RowSink for Rows {
    fn problem(&mut self, row: u64, column: &str, problem: String) {
        Rows::problem(self, row, column, problem);
    }
    fn push<'c>(&mut self, row: u64, cell: impl Fn(usize) -> Cell<'c>) -> Result<(), AttributionError> {
        Rows::push(self, row, cell)
    }
    fn should_stop(&mut self) -> bool {
        Rows::should_stop(self)
    }
}

/// How to read the lines of a CSV file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CsvLines {
    /// Detected from the header line when absent.
    pub delimiter: Option<u8>,
    pub max_line_bytes: usize,
    /// Number of the first data row (1, or later for a byte range of a larger file).
    pub first_row: u64,
}

/// Reads CSV records into the sink `start` makes from the header, calling `after_row`
/// after each row; returns the sink.
///
/// No record is buffered beyond `max_line_bytes`, nor the header beyond
/// [`MAX_HEADER_BYTES`]: the parser reads through a [`RecordGate`], which stops handing
/// it bytes that far past the start of the record being read.
pub(crate) fn csv_rows<S: RowSink, E: From<AttributionError>>(
    mut reader: impl BufRead,
    lines: CsvLines,
    start: impl FnOnce(Vec<String>) -> Result<S, AttributionError>,
    mut after_row: impl FnMut(&mut S) -> Result<(), E>,
) -> Result<S, E> {
    let delimiter = match lines.delimiter {
        Some(d) => d,
        None => detect_delimiter(reader.fill_buf().map_err(io_error)?),
    };
    let max_line = lines.max_line_bytes as u64;
    let header_too_long = || {
        AttributionError::new(
            ErrorCode::LimitExceeded,
            format!("the header line is longer than {MAX_HEADER_BYTES} bytes, the limit of a header"),
        )
    };
    // One byte past the limit: a last record without a line end needs to see the end.
    let gate = RecordGate { inner: reader, handed: 0, end: ByteCell::new(MAX_HEADER_BYTES as u64 + 1) };
    let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(gate);
    let mut record = csv::StringRecord::new();
    match csv.read_record(&mut record) {
        Ok(true) if csv.position().byte() > MAX_HEADER_BYTES as u64 => return Err(header_too_long().into()),
        Ok(true) => {}
        Ok(false) => return Err(AttributionError::new(ErrorCode::EmptyInput, "the input is empty").into()),
        Err(error) if is_too_long(&error) => return Err(header_too_long().into()),
        Err(error) => return Err(header_error(error).into()),
    }
    let mut header: Vec<String> = record.iter().map(|f| f.trim().to_owned()).collect();
    if let Some(first) = header.first_mut() {
        *first = first.trim_start_matches('\u{feff}').to_owned();
    }
    let mut rows = start(header)?;
    let width = record.len();
    let mut row = lines.first_row.saturating_sub(1);
    loop {
        let start = csv.position().byte();
        csv.get_ref().end.set(start + max_line + 1);
        match csv.read_record(&mut record) {
            // The gate bounds memory; this makes the limit exact (the parser reads ahead).
            Ok(true) if csv.position().byte() - start > max_line => {
                return Err(line_too_long(row + 1, "(row)", max_line).into());
            }
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => match error.kind() {
                csv::ErrorKind::Utf8 { err, .. } => {
                    row += 1;
                    rows.problem(row, &format!("#{}", err.field() + 1), "value is not valid UTF-8".to_owned());
                    continue;
                }
                _ if is_too_long(&error) => return Err(line_too_long(row + 1, "(row)", max_line).into()),
                _ => return Err(csv_error(error).into()),
            },
        }
        row += 1;
        if record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
            row -= 1; // A blank line.
            continue;
        }
        if record.len() != width {
            rows.problem(row, "(row)", format!("row has {} fields, the header has {width}", record.len()));
        } else {
            rows.push(row, |i| match &record[i] {
                "" => Cell::Null,
                text => Cell::Str(text),
            })?;
        }
        if rows.should_stop() {
            break;
        }
        after_row(&mut rows)?;
    }
    Ok(rows)
}

/// The longest CSV header line read, whatever `max_line_bytes` says: no real header comes
/// near it, and the header's names end up in error messages.
pub const MAX_HEADER_BYTES: usize = 1 << 20;

/// What the CSV parser reads through: it hands over no byte at or past `end` (the start
/// of the record being read plus the line limit), so a record too long fails once that
/// much of it is buffered rather than once all of it is.
struct RecordGate<R> {
    inner: R,
    /// Bytes handed to the parser so far.
    handed: u64,
    end: ByteCell<u64>,
}

/// The marker error of [`RecordGate`].
#[derive(Debug)]
struct RecordTooLong;

impl std::fmt::Display for RecordTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a record is longer than the line limit")
    }
}

impl std::error::Error for RecordTooLong {}

impl<R: Read> Read for RecordGate<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let allowed = self.end.get().saturating_sub(self.handed);
        if allowed == 0 {
            return Err(std::io::Error::other(RecordTooLong));
        }
        let take = buf.len().min(allowed.try_into().unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        self.handed += n as u64;
        Ok(n)
    }
}

fn is_too_long(error: &csv::Error) -> bool {
    matches!(error.kind(), csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|e| e.is::<RecordTooLong>()))
}

/// The refusal of a row (or NDJSON line) longer than `max_line_bytes`.
pub(super) fn line_too_long(row: u64, column: &str, max: u64) -> AttributionError {
    let problem = format!("longer than {max} bytes");
    AttributionError::new(
        ErrorCode::LimitExceeded,
        format!("row {row} is longer than {max} bytes, the configured limit (max_line_bytes)"),
    )
    .with_details(vec![Problem::new(Some(row), Some(column), problem)])
}

/// Resolves the kind and columns for a header.
pub(super) fn rows_for(header: Vec<String>, spec: &InputSpec) -> Result<(InputKind, Rows), AttributionError> {
    let kind = spec.kind.unwrap_or_else(|| detect_kind(&header, &spec.columns));
    let resolver = Resolver::new(&header, &spec.columns);
    let rows = match kind {
        InputKind::Events => {
            let columns = resolver.events_with(spec.channel_rules.is_some(), spec)?;
            let rules = spec.channel_rules.as_ref();
            let rows = Rows::events(columns, header, spec.keep_user_ids, rules, spec.limits, spec.block_rows);
            rows.with_conversion_types(&spec.conversion_types)
        }
        InputKind::Paths => {
            let columns = resolver.paths()?;
            Rows::paths(columns, header, spec.path_separator.clone(), spec.limits, spec.block_rows)
        }
    };
    Ok((kind, rows))
}

/// Hands over the last block, or fails with every problem found.
pub(super) fn finish<E: From<AttributionError>>(
    kind: InputKind,
    rows: Rows,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let (count, last) = rows.finish()?;
    if count == 0 {
        return Err(AttributionError::new(ErrorCode::EmptyInput, "the input has a header but no data rows").into());
    }
    if let Some(block) = last {
        sink(block)?;
    }
    Ok(InputSummary { kind, rows: count })
}

/// The candidate (`,` `;` tab) seen most often in the first line outside quotes; `,` if none.
pub fn detect_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
    if counts[best] == 0 { b',' } else { [b',', b';', b'\t'][best] }
}

/// A header that cannot be read: invalid UTF-8 names the field; the rest as [`csv_error`].
fn header_error(error: csv::Error) -> AttributionError {
    if let csv::ErrorKind::Utf8 { err, .. } = error.kind() {
        let column = format!("#{}", err.field() + 1);
        return AttributionError::new(
            ErrorCode::InvalidValue,
            "the header holds a column name that is not valid UTF-8",
        )
        .with_details(vec![Problem::new(None, Some(&column), "column name is not valid UTF-8")]);
    }
    csv_error(error)
}

fn csv_error(error: csv::Error) -> AttributionError {
    match error.into_kind() {
        csv::ErrorKind::Io(io) => io_error(io),
        other => AttributionError::new(ErrorCode::InvalidValue, format!("malformed CSV: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_detected_outside_quotes() {
        assert_eq!(detect_delimiter(b"a,b,c\n1;2"), b',');
        assert_eq!(detect_delimiter(b"path;total_conversions\n"), b';');
        assert_eq!(detect_delimiter(b"\"a,b\"\tc\td\n"), b'\t');
        assert_eq!(detect_delimiter(b"single\n"), b',');
    }
}
