//! The text formats: CSV (delimiter detected or given) and NDJSON, read as a stream.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::columns::{Resolver, detect_kind};
use super::rows::Rows;
use super::values::Cell;
use super::{Block, InputSpec, InputSummary, io_error};
use crate::error::{AttributionError, ErrorCode};
use crate::options::InputKind;

/// NDJSON column names are the keys seen in this many first objects.
const NDJSON_HEADER_LINES: usize = 1000;

/// Reads CSV rows, handing each full block to `sink`.
pub fn read_csv<E: From<AttributionError>>(
    mut reader: impl BufRead,
    spec: &InputSpec,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let delimiter = match spec.delimiter {
        Some(d) => d,
        None => detect_delimiter(reader.fill_buf().map_err(io_error)?),
    };
    let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(reader);
    let mut record = csv::StringRecord::new();
    if !csv.read_record(&mut record).map_err(csv_error)? {
        return Err(AttributionError::new(ErrorCode::EmptyInput, "the input is empty").into());
    }
    let mut header: Vec<String> = record.iter().map(|f| f.trim().to_owned()).collect();
    if let Some(first) = header.first_mut() {
        *first = first.trim_start_matches('\u{feff}').to_owned();
    }
    let (kind, mut rows) = rows_for(header, spec)?;
    let width = record.len();
    let mut row = spec.first_row.saturating_sub(1);
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => match error.kind() {
                csv::ErrorKind::Utf8 { err, .. } => {
                    row += 1;
                    rows.problem(row, &format!("#{}", err.field() + 1), "value is not valid UTF-8");
                    continue;
                }
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
        if let Some(block) = rows.take_full_block() {
            sink(block)?;
        }
    }
    finish(kind, rows, sink)
}

/// One NDJSON line: its 1-based line number and the object, or why it is not one.
type ParsedLine = (u64, Result<Map<String, Value>, String>);

/// Reads NDJSON (one JSON object per line), handing each full block to `sink`.
///
/// Column names are the union of the keys seen so far: the first objects decide the kind
/// and the required columns; a key first seen later (a `conversion_value` that only rare
/// conversion rows carry) is added when it appears.
pub fn read_ndjson<E: From<AttributionError>>(
    reader: impl BufRead,
    spec: &InputSpec,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let mut lines = reader.lines().enumerate().filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()));
    let parse = |line_no: usize, line: std::io::Result<String>| -> Result<ParsedLine, AttributionError> {
        let line = line.map_err(io_error)?;
        let parsed = serde_json::from_str::<Map<String, Value>>(&line).map_err(|e| format!("not a JSON object: {e}"));
        Ok((line_no as u64 + 1, parsed))
    };
    let mut buffered: Vec<ParsedLine> = Vec::new();
    let mut header: Vec<String> = Vec::new();
    for (line_no, line) in lines.by_ref() {
        let parsed = parse(line_no, line)?;
        if let Ok(object) = &parsed.1 {
            add_new_keys(&mut header, object);
        }
        buffered.push(parsed);
        if buffered.len() >= NDJSON_HEADER_LINES {
            break;
        }
    }
    if buffered.is_empty() {
        return Err(AttributionError::new(ErrorCode::EmptyInput, "the input is empty").into());
    }
    let (kind, mut rows) = rows_for(header.clone(), spec)?;
    let streamed = lines.map(|(line_no, line)| parse(line_no, line));
    for parsed in buffered.into_iter().map(Ok).chain(streamed) {
        if rows.should_stop() {
            break;
        }
        let (row, parsed) = parsed?;
        match parsed {
            Ok(object) => {
                if add_new_keys(&mut header, &object) {
                    rows.set_header(header.clone(), spec)?;
                }
                rows.push(row, |i| json_cell(object.get(&header[i])))?;
            }
            Err(problem) => rows.problem(row, "(line)", problem),
        }
        if let Some(block) = rows.take_full_block() {
            sink(block)?;
        }
    }
    finish(kind, rows, sink)
}

/// Appends the object's keys that `header` lacks; true if there were any.
fn add_new_keys(header: &mut Vec<String>, object: &Map<String, Value>) -> bool {
    let before = header.len();
    for key in object.keys() {
        if !header.contains(key) {
            header.push(key.clone());
        }
    }
    header.len() > before
}

fn json_cell(value: Option<&Value>) -> Cell<'_> {
    match value {
        None | Some(Value::Null) => Cell::Null,
        Some(Value::String(s)) if s.is_empty() => Cell::Null,
        Some(Value::String(s)) => Cell::Str(s),
        Some(Value::Bool(b)) => Cell::Bool(*b),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => n.as_f64().map_or(Cell::Nested, Cell::Float),
        },
        Some(Value::Array(_) | Value::Object(_)) => Cell::Nested,
    }
}

/// Resolves the kind and columns for a header.
pub(super) fn rows_for(header: Vec<String>, spec: &InputSpec) -> Result<(InputKind, Rows), AttributionError> {
    let kind = spec.kind.unwrap_or_else(|| detect_kind(&header, &spec.columns));
    let resolver = Resolver::new(&header, &spec.columns);
    let rows = match kind {
        InputKind::Events => {
            let columns = resolver.events()?;
            Rows::events(columns, header, spec.keep_user_ids, spec.limits, spec.block_rows)
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
