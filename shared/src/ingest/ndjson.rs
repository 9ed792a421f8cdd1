//! NDJSON (one JSON object per line), read as a stream, or in byte ranges read apart.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::ops::Range;

use super::columns::Canonical;
use super::json_line::{JsonObject, json_cell};
use super::rows::Rows;
use super::text::{MAX_HEADER_BYTES, finish, line_too_long, rows_for};
use super::values::Cell;
use super::{Block, InputSpec, InputSummary, io_error};
use crate::error::{AttributionError, ErrorCode, Problem};

/// NDJSON column names are the keys seen in this many first objects.
const NDJSON_HEADER_LINES: usize = 1000;

/// The distinct keys of all lines together (the column names) are at most this many, and
/// at most [`MAX_HEADER_BYTES`] of names (a CSV header line's limit): every new name makes the
/// columns be resolved again over all names, so a file of ever new keys costs time quadratic
/// in them (a line of 50,000 keys took 17 s; 10,000 lines of one new key each, 4 minutes in a
/// debug build) and memory without bound. Wide exports have hundreds of columns.
const MAX_NDJSON_COLUMNS: usize = 2_000;

/// Lines read ahead to learn the column names (at most [`NDJSON_HEADER_LINES`]) stop
/// after this many bytes. Only their bytes are held (they are parsed again in turn), so
/// reading ahead costs at most this much memory.
const NDJSON_HEADER_BYTES: usize = 8 << 20;

/// Reads NDJSON (one JSON object per line), handing each full block to `sink`.
///
/// Column names are the union of the keys seen so far: the first objects decide the kind
/// and the required columns; a key first seen later (a `conversion_value` that only rare
/// conversion rows carry) is added when it appears. No line is buffered beyond
/// `limits.max_line_bytes`.
pub fn read_ndjson<E: From<AttributionError>>(
    reader: impl BufRead,
    spec: &InputSpec,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let mut lines = NdjsonLines::new(reader, spec, 1);
    let mut columns = Columns::new(spec);
    let ahead = LookAhead::read(&mut lines, &mut columns)?;
    let (kind, mut rows) = rows_for(columns.header.clone(), spec)?;
    for (row, range) in ahead.lines {
        if rows.should_stop() {
            break;
        }
        columns.take(&mut rows, row, &ahead.bytes[range], Grow::Yes)?;
        hand_over_full_block(&mut rows, &mut sink)?;
    }
    drop(ahead.bytes);
    while !rows.should_stop() {
        let Some(row) = lines.next()? else { break };
        columns.take(&mut rows, row, &lines.line, Grow::Yes)?;
        hand_over_full_block(&mut rows, &mut sink)?;
    }
    finish(kind, rows, sink)
}

/// The column names of an NDJSON input: the keys of its first lines, as [`read_ndjson`] learns
/// them before it reads its first row.
pub fn ndjson_header(reader: impl BufRead, spec: &InputSpec) -> Result<Vec<String>, AttributionError> {
    let mut columns = Columns::new(spec);
    LookAhead::read(&mut NdjsonLines::new(reader, spec, 1), &mut columns)?;
    Ok(columns.header)
}

/// Reads the lines of one byte range of a larger NDJSON input (the first numbered
/// `first_line`) with the column names of the whole input's first lines ([`ndjson_header`]).
/// `Ok(None)` as soon as a line holds a key those names lack: the whole input's reader adds
/// such a key from the line where it first appears in the whole input, which may change
/// which key a column is read from in the lines after it, so the range cannot be read apart
/// from the lines before it; the caller reads the whole input instead. A range of blank
/// lines is no rows, not an error.
pub fn read_ndjson_range<E: From<AttributionError>>(
    reader: impl BufRead,
    header: &[String],
    first_line: u64,
    spec: &InputSpec,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<Option<InputSummary>, E> {
    let mut lines = NdjsonLines::new(reader, spec, first_line);
    let mut columns = Columns::new(spec);
    for name in header {
        columns.push_name(name, first_line)?;
    }
    let (kind, mut rows) = rows_for(columns.header.clone(), spec)?;
    while !rows.should_stop() {
        let Some(row) = lines.next()? else { break };
        if !columns.take(&mut rows, row, &lines.line, Grow::No)? {
            return Ok(None);
        }
        hand_over_full_block(&mut rows, &mut sink)?;
    }
    let (count, last) = rows.finish()?;
    if let Some(block) = last {
        sink(block)?;
    }
    Ok(Some(InputSummary { kind, rows: count }))
}

fn hand_over_full_block<E>(rows: &mut Rows, sink: &mut impl FnMut(Block) -> Result<(), E>) -> Result<(), E> {
    match rows.take_full_block() {
        Some(block) => sink(block),
        None => Ok(()),
    }
}

/// Whether a key not yet among the column names becomes one.
#[derive(Clone, Copy, PartialEq)]
enum Grow {
    Yes,
    /// No: the line is refused (a byte range read with the whole input's first names).
    No,
}

/// The column names so far, and the dotted paths into nested objects that may add to them.
struct Columns<'s> {
    header: Vec<String>,
    /// The names of `header`, and their bytes.
    names: HashSet<String>,
    header_bytes: usize,
    /// The keys of the line last looked at, and where each name is among them (its last
    /// occurrence, as a JSON map keeps it; `None` for a dotted path or a key it lacks).
    last_keys: Vec<String>,
    at: Vec<Option<usize>>,
    /// Nested values are columns when a mapping, an alias, a breakdown or the segment column
    /// names them by dotted path.
    dotted: Vec<&'s str>,
    spec: &'s InputSpec,
}

impl<'s> Columns<'s> {
    fn new(spec: &'s InputSpec) -> Columns<'s> {
        let aliases = Canonical::ALL.into_iter().flat_map(|c| c.aliases().iter().copied());
        let breakdown = spec.breakdown.iter().chain(&spec.segment_by).map(|b| b.trim()).filter(|b| b.contains('.'));
        let dotted = spec.columns.dotted().chain(aliases.filter(|a| a.contains('.'))).chain(breakdown).collect();
        Columns {
            header: Vec::new(),
            names: HashSet::new(),
            header_bytes: 0,
            last_keys: Vec::new(),
            at: Vec::new(),
            dotted,
            spec,
        }
    }

    /// Only a dotted path reads into a nested object.
    fn keep_nested(&self) -> bool {
        !self.dotted.is_empty()
    }

    /// Adds one line to `rows` (or its problem); false when it holds a key the names lack and
    /// `grow` says they may not grow.
    fn take(&mut self, rows: &mut Rows, row: u64, line: &[u8], grow: Grow) -> Result<bool, AttributionError> {
        match parse_line(line, self.keep_nested()) {
            Ok(object) => {
                if self.add_new_keys(&object, row)? {
                    if grow == Grow::No {
                        return Ok(false);
                    }
                    rows.set_header(self.header.clone(), self.spec)?;
                }
                rows.push(row, |i| self.cell(&object, i))?;
            }
            Err(problem) => rows.problem(row, "(line)", problem),
        }
        Ok(true)
    }

    /// Appends the object's keys that the names lack, and the dotted paths (a column
    /// mapping's `a.b`) that lead to a value in it; true if there were any. Lines of an
    /// export mostly repeat the keys of the line before, in order: then neither is looked for
    /// again, unless the line has nested objects, and where each name is stays known (`at`).
    /// Fails on line `row` past [`MAX_NDJSON_COLUMNS`] names.
    fn add_new_keys(&mut self, object: &JsonObject, row: u64) -> Result<bool, AttributionError> {
        let before = self.header.len();
        let same_keys = object.keys().eq(self.last_keys.iter().map(String::as_str));
        if !same_keys {
            for key in object.keys() {
                if !self.names.contains(key) {
                    self.push_name(key, row)?;
                }
            }
            self.last_keys.clear();
            self.last_keys.extend(object.keys().map(str::to_owned));
        }
        // A dotted path is a key of its own (seen with these keys before) or leads into an object.
        if !same_keys || object.has_objects() {
            for i in 0..self.dotted.len() {
                let path = self.dotted[i];
                if !self.names.contains(path) && object.field(path).is_some() {
                    self.push_name(path, row)?;
                }
            }
        }
        let grew = self.header.len() > before;
        if grew || !same_keys {
            // The last occurrence of a key written twice, as a JSON map keeps it.
            let positions: HashMap<&str, usize> = object.keys().enumerate().map(|(i, key)| (key, i)).collect();
            self.at = self.header.iter().map(|name| positions.get(name.as_str()).copied()).collect();
        }
        Ok(grew)
    }

    /// Adds a column name, refused on line `row` past [`MAX_NDJSON_COLUMNS`] names or
    /// [`MAX_HEADER_BYTES`] of them.
    fn push_name(&mut self, name: &str, row: u64) -> Result<(), AttributionError> {
        self.header_bytes += name.len();
        if self.header.len() >= MAX_NDJSON_COLUMNS || self.header_bytes > MAX_HEADER_BYTES {
            let problem = format!("brings the keys of the lines past {MAX_NDJSON_COLUMNS} or {MAX_HEADER_BYTES} bytes");
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "line {row} brings the distinct keys of the NDJSON lines past {MAX_NDJSON_COLUMNS} (or their names \
                     past {MAX_HEADER_BYTES} bytes), the limit of the column names"
                ),
            )
            .with_details(vec![Problem::new(Some(row), Some("(line)"), problem)]));
        }
        self.names.insert(name.to_owned());
        self.header.push(name.to_owned());
        Ok(())
    }

    /// The value of column `i` in `object`, a line with the keys last given to [`Self::add_new_keys`].
    fn cell<'o>(&self, object: &'o JsonObject, i: usize) -> Cell<'o> {
        json_cell(match self.at.get(i).copied().flatten() {
            Some(position) => Some(object.value(position)),
            None => object.field(&self.header[i]),
        })
    }
}

/// The first lines (at most [`NDJSON_HEADER_LINES`] and [`NDJSON_HEADER_BYTES`]), read to
/// learn the column names before the first row is taken.
struct LookAhead {
    lines: Vec<(u64, Range<usize>)>,
    bytes: Vec<u8>,
}

impl LookAhead {
    fn read(lines: &mut NdjsonLines<impl BufRead>, columns: &mut Columns) -> Result<LookAhead, AttributionError> {
        let mut ahead = LookAhead { lines: Vec::new(), bytes: Vec::new() };
        while ahead.lines.len() < NDJSON_HEADER_LINES && ahead.bytes.len() < NDJSON_HEADER_BYTES {
            let Some(number) = lines.next()? else { break };
            if let Ok(object) = parse_line(&lines.line, columns.keep_nested()) {
                columns.add_new_keys(&object, number)?;
            }
            let start = ahead.bytes.len();
            ahead.bytes.extend_from_slice(&lines.line);
            ahead.lines.push((number, start..ahead.bytes.len()));
        }
        if ahead.lines.is_empty() {
            return Err(AttributionError::new(ErrorCode::EmptyInput, "the input is empty"));
        }
        Ok(ahead)
    }
}

/// NDJSON lines of a stream, each at most `max` bytes, blank ones skipped.
struct NdjsonLines<R> {
    reader: R,
    /// The current line, without its line end.
    line: Vec<u8>,
    /// The number of the line last read.
    number: u64,
    max: usize,
}

impl<R: BufRead> NdjsonLines<R> {
    /// Lines numbered from `first_line` (1, or later for a byte range of a larger input).
    fn new(reader: R, spec: &InputSpec, first_line: u64) -> NdjsonLines<R> {
        NdjsonLines { reader, line: Vec::new(), number: first_line - 1, max: spec.limits.max_line_bytes }
    }

    /// Reads the next line that is not blank into `self.line`; its 1-based line number,
    /// or `None` at the end.
    fn next(&mut self) -> Result<Option<u64>, AttributionError> {
        loop {
            self.line.clear();
            let more = read_line(&mut self.reader, &mut self.line, self.max)
                .map_err(|e| e.unwrap_or_else(|| line_too_long(self.number + 1, "(line)", self.max as u64)))?;
            if !more {
                return Ok(None);
            }
            self.number += 1;
            let blank = match self.line.iter().find(|b| !b.is_ascii_whitespace()) {
                None => true,
                Some(b) if b.is_ascii() => false,
                // Other white space (a no-break space) is blank too.
                Some(_) => std::str::from_utf8(&self.line).is_ok_and(|text| text.trim().is_empty()),
            };
            if !blank {
                return Ok(Some(self.number));
            }
        }
    }
}

/// One NDJSON line as an object (nested objects' fields kept when `keep_nested`), or why it is
/// not one.
fn parse_line(line: &[u8], keep_nested: bool) -> Result<JsonObject<'_>, String> {
    let text = std::str::from_utf8(line).map_err(|_| "line is not valid UTF-8".to_owned())?;
    JsonObject::parse(text, keep_nested).map_err(|e| format!("not a JSON object: {}", serde_error(&e)))
}

/// A serde_json error as a problem: syntax errors as serde_json says them; errors of
/// type without the value they would quote (a whole string of the line).
fn serde_error(error: &serde_json::Error) -> String {
    match error.classify() {
        serde_json::error::Category::Data => format!("another kind of JSON value at column {}", error.column()),
        _ => error.to_string(),
    }
}

/// Reads one line (its end, `\n` or `\r\n`, left out) into `line`; false at the end of
/// the input. `Err(None)` once the line passes `max` bytes, without reading the rest.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> Result<bool, Option<AttributionError>> {
    let mut any = false;
    loop {
        let buffer = reader.fill_buf().map_err(|e| Some(io_error(e)))?;
        if buffer.is_empty() {
            return if line.len() > max { Err(None) } else { Ok(any) };
        }
        any = true;
        let (take, done) = match memchr::memchr(b'\n', buffer) {
            Some(i) => (i, true),
            None => (buffer.len(), false),
        };
        // One byte more than the limit: a `\r` before the `\n` is not part of the line.
        if line.len() + take > max.saturating_add(1) {
            return Err(None);
        }
        line.extend_from_slice(&buffer[..take]);
        reader.consume(take + usize::from(done));
        if done {
            if line.ends_with(b"\r") {
                line.pop();
            }
            return if line.len() > max { Err(None) } else { Ok(true) };
        }
    }
}
