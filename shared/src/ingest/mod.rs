//! Decoding touchpoint files (docs/user-guide.md, "Input formats"): CSV (`,` `;` tab; gzip), NDJSON and
//! Parquet, event-level or path-level, into [`Block`]s of columnar rows.
//!
//! Readers are plain `std::io` readers (or a Parquet `ChunkReader`); where the bytes come
//! from (a local file, object storage) is the caller's business.

mod columns;
mod csv_pieces;
mod json_line;
mod ndjson;
mod parquet;
mod rows;
mod text;
pub mod values;

use std::io::{BufRead, BufReader, Read};

pub(crate) use columns::listed;
pub use columns::{Canonical, ColumnMapping, MAX_BREAKDOWN_LEVELS, MAX_COLUMN_NAME_BYTES};
pub use csv_pieces::{PIECE_BYTES, RecordScan, read_csv_in_pieces};
pub use ndjson::{ndjson_header, read_ndjson, read_ndjson_range};
pub(crate) use parquet::parquet_rows;
pub use parquet::{ParquetLayout, parquet_layout, read_parquet};
pub use rows::{MAX_CHANNEL_NAME_BYTES, MAX_TOUCH_FIELD_BYTES, MAX_USER_ID_BYTES};
pub(crate) use rows::{read_breakdown_value, sum_overflows};
pub(crate) use text::{CsvLines, RowSink, csv_rows};
pub use text::{MAX_HEADER_BYTES, detect_delimiter, read_csv};

use crate::channel_rules::ChannelRules;
use crate::chunk::{EventChunk, PathChunk};
use crate::error::{AttributionError, ErrorCode};
use crate::options::{InputKind, ModelId, Options, OptionsSpec};

/// Rows per emitted block.
pub const DEFAULT_BLOCK_ROWS: usize = 65_536;

/// The most rows of a Parquet batch. A block takes a batch whole, so a block not yet full
/// can end up to this many rows past its size.
pub(crate) const MAX_BATCH_ROWS: usize = 65_536;

/// A file format, detected from the content or given by the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Format {
    Csv,
    Ndjson,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = AttributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "csv" => Ok(Format::Csv),
            "ndjson" | "jsonl" => Ok(Format::Ndjson),
            "parquet" => Ok(Format::Parquet),
            other => Err(AttributionError::option(
                "format",
                format!("{} is not csv, parquet or ndjson", crate::error::quoted(other)),
            )),
        }
    }
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
            Format::Parquet => "parquet",
        }
    }
}

impl TryFrom<String> for Format {
    type Error = AttributionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Format> for String {
    fn from(format: Format) -> String {
        format.as_str().to_owned()
    }
}

/// Refusals that protect memory; `None` / large defaults where the caller sets no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub max_rows: Option<u64>,
    pub max_channels: usize,
    /// The most bytes a compressed (gzip) input may expand to: the guard against
    /// decompression bombs.
    pub max_decompressed_bytes: Option<u64>,
    /// The longest CSV record or NDJSON line, in bytes: what one reader buffers at most
    /// for a row, however long the line in the file is.
    pub max_line_bytes: usize,
    /// The most distinct channels an input may have when the Markov model runs: its solve
    /// costs about the square of the channels.
    pub markov_max_channels: usize,
    /// With a breakdown: the most distinct (channel, breakdown values) keys.
    pub max_breakdown_values: usize,
    /// With `segment_by`: the most distinct values of the segment column.
    pub max_segments: usize,
    /// The highest `max_report_paths` a job gets (an operator's cap on the paths a partial
    /// holds): a larger option is lowered to it when the options are resolved.
    pub max_report_paths: u32,
    /// The most bootstrap replicates a job's `intervals` may ask for.
    pub max_interval_replicates: u32,
    /// The most replicates × channels (× lookback windows) a job's `intervals` may hold.
    pub max_replicate_channels: u64,
}

impl Limits {
    pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;
    pub const DEFAULT_MAX_BREAKDOWN_VALUES: usize = 100_000;
    pub const DEFAULT_MAX_SEGMENTS: usize = 1_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rows: None,
            max_channels: 100_000,
            max_decompressed_bytes: None,
            max_line_bytes: Limits::DEFAULT_MAX_LINE_BYTES,
            markov_max_channels: crate::markov::DEFAULT_MAX_CHANNELS,
            max_breakdown_values: Limits::DEFAULT_MAX_BREAKDOWN_VALUES,
            max_segments: Limits::DEFAULT_MAX_SEGMENTS,
            max_report_paths: crate::paths::MAX_MAX_REPORT_PATHS,
            max_interval_replicates: crate::intervals::DEFAULT_MAX_REPLICATES,
            max_replicate_channels: crate::intervals::DEFAULT_MAX_REPLICATE_CHANNELS,
        }
    }
}

impl Limits {
    /// Refuses more than `max_rows` rows, naming the limit.
    pub fn check_rows(&self, rows: u64) -> Result<(), AttributionError> {
        match self.max_rows {
            Some(max) if rows > max => Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!("the input has more than {max} rows, the configured limit (max_rows)"),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses more than `max_channels` distinct channels, naming the limit.
    pub fn check_channels(&self, channels: usize) -> Result<(), AttributionError> {
        if channels > self.max_channels {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the input has more than {} distinct channels, the configured limit (max_channels)",
                    self.max_channels
                ),
            ));
        }
        Ok(())
    }

    /// Refuses a dictionary of more than `max_channels` distinct channels or, when its names
    /// are touch keys (a breakdown), more than `max_breakdown_values` keys.
    pub fn check_dict(&self, dict: &crate::chunk::ChannelDict) -> Result<(), AttributionError> {
        self.check_channels(dict.channel_count())?;
        if dict.has_touch_keys() {
            self.check_breakdown_values(dict.len())?;
        }
        Ok(())
    }

    /// Refuses more than `max_breakdown_values` distinct (channel, breakdown values) keys.
    pub fn check_breakdown_values(&self, keys: usize) -> Result<(), AttributionError> {
        if keys > self.max_breakdown_values {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the input has more than {} distinct channel and breakdown values, the configured limit \
                     (max_breakdown_values); break down by a column with fewer distinct values or raise the limit",
                    self.max_breakdown_values
                ),
            ));
        }
        Ok(())
    }

    /// Refuses `intervals` of more than `max_interval_replicates` replicates, or of so many
    /// replicates × `channels` (× lookback windows) that their sums would not fit the memory
    /// they are given (`max_replicate_channels`), naming the limit: checked before any row is
    /// attributed, and again as channels are met.
    pub fn check_intervals(&self, channels: usize, options: &Options) -> Result<(), AttributionError> {
        let Some(intervals) = options.intervals else { return Ok(()) };
        if intervals.replicates > self.max_interval_replicates {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "`intervals` asks for {} replicates, more than the configured limit of {} \
                     (max_interval_replicates)",
                    intervals.replicates, self.max_interval_replicates
                ),
            ));
        }
        // Each lookback window holds replicates of its own.
        let windows = options.lookback_windows.len().max(1) as u64;
        let cells = intervals.replicates as u64 * channels as u64 * windows;
        if cells > self.max_replicate_channels {
            let over = if windows > 1 { format!(" under {windows} lookback windows") } else { String::new() };
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "`intervals` of {} replicates over {channels} channels{over} would hold more than {} replicate \
                     sums, the configured limit (max_replicate_channels); ask for fewer replicates",
                    intervals.replicates, self.max_replicate_channels
                ),
            ));
        }
        Ok(())
    }

    /// Refuses more than `max_segments` distinct values of the `segment_by` column (the rows
    /// without one are a segment beyond them), naming the limit.
    pub fn check_segments(&self, segments: usize) -> Result<(), AttributionError> {
        if segments > self.max_segments {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the input has more than {} distinct segments, the configured limit (max_segments); \
                     segment by a column with fewer distinct values or raise the limit",
                    self.max_segments
                ),
            ));
        }
        Ok(())
    }

    /// Refuses more than `markov_max_channels` distinct channels when `options` ask for the
    /// Markov model, naming the limit: checked as channels are met, before any solve.
    pub fn check_markov_channels(&self, channels: usize, options: &Options) -> Result<(), AttributionError> {
        if options.wants(ModelId::Markov) && channels > self.markov_max_channels {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the input has more than {} distinct channels, the limit for the Markov model \
                     (markov_max_channels); leave out `markov` or raise the limit",
                    self.markov_max_channels
                ),
            ));
        }
        Ok(())
    }
}

/// A CSV field delimiter the user gave: `,` `;` `\t` (or `tab`), or any single ASCII character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Delimiter(pub u8);

impl std::str::FromStr for Delimiter {
    type Err = AttributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "\\t" | "tab" | "\t" => Ok(Delimiter(b'\t')),
            one if one.len() == 1 && one.is_ascii() => Ok(Delimiter(one.as_bytes()[0])),
            other => Err(AttributionError::option(
                "delimiter",
                format!("{} is not a single ASCII character", crate::error::quoted(other)),
            )),
        }
    }
}

impl TryFrom<String> for Delimiter {
    type Error = AttributionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Delimiter> for String {
    fn from(delimiter: Delimiter) -> String {
        char::from(delimiter.0).to_string()
    }
}

/// The separator of channels in a path-level row (may be several characters, never none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathSeparator(String);

impl PathSeparator {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for PathSeparator {
    fn default() -> Self {
        PathSeparator(">".to_owned())
    }
}

impl TryFrom<String> for PathSeparator {
    type Error = AttributionError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s.is_empty() {
            return Err(AttributionError::option("path_separator", "must not be empty"));
        }
        Ok(PathSeparator(s))
    }
}

impl From<PathSeparator> for String {
    fn from(separator: PathSeparator) -> String {
        separator.0
    }
}

/// How to read an input: everything optional is detected.
#[derive(Debug, Clone)]
pub struct InputSpec {
    pub kind: Option<InputKind>,
    pub format: Option<Format>,
    /// CSV field delimiter; detected from the header line when absent.
    pub delimiter: Option<u8>,
    /// Separator of channels in a path (may be several characters).
    pub path_separator: String,
    pub columns: ColumnMapping,
    /// Rules naming event rows' channels from their source, medium, campaign and referrer
    /// (they win over a channel column); without them, `ga4` applies to files that have
    /// such columns and no channel column.
    pub channel_rules: Option<ChannelRules>,
    /// The columns whose values break each channel's credit down (`options.breakdown`, as
    /// the user named them): event rows then carry touch keys (`chunk::touch_key`).
    pub breakdown: Vec<String>,
    /// The column whose value on each row is carried with it (`options.segment_by`, as the
    /// user named it): event chunks then hold segment ids.
    pub segment_by: Option<String>,
    /// The event names that are conversions (`options.conversion_types`): event chunks then
    /// hold each conversion row's type as its segment id.
    pub conversion_types: Vec<String>,
    /// Keep user id strings on event chunks (needed for per-journey credit export).
    pub keep_user_ids: bool,
    pub limits: Limits,
    pub block_rows: usize,
    /// Number of the first data row: 1, or later for a byte range of a larger CSV file
    /// (so rows keep their numbers in error details and as the tie-breaker).
    pub first_row: u64,
    /// Threads that parse a CSV stream read whole (gzip, or too small to cut into byte
    /// ranges), in pieces ([`read_csv_in_pieces`]); 1 parses it on the calling thread.
    pub text_threads: usize,
}

impl Default for InputSpec {
    fn default() -> Self {
        InputSpec {
            kind: None,
            format: None,
            delimiter: None,
            path_separator: ">".to_owned(),
            columns: ColumnMapping::default(),
            channel_rules: None,
            breakdown: Vec::new(),
            segment_by: None,
            conversion_types: Vec::new(),
            keep_user_ids: false,
            limits: Limits::default(),
            block_rows: DEFAULT_BLOCK_ROWS,
            first_row: 1,
            text_threads: 1,
        }
    }
}

/// A decoded block of rows.
#[derive(Debug)]
pub enum Block {
    Events(EventChunk),
    Paths(PathChunk),
}

impl Block {
    pub fn kind(&self) -> InputKind {
        match self {
            Block::Events(_) => InputKind::Events,
            Block::Paths(_) => InputKind::Paths,
        }
    }

    /// The options for the input this block starts: `spec` validated for the block's kind,
    /// with the channel rules that named its channels (`ga4` on a file with source and
    /// medium columns and no channel column, though the spec named none).
    pub fn options(&self, spec: &OptionsSpec) -> Result<Options, AttributionError> {
        let mut options = spec.validate(self.kind())?;
        if let Block::Events(chunk) = self {
            options.channel_rules = chunk.channel_rules;
        }
        Ok(options)
    }
}

/// What a whole input turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSummary {
    pub kind: InputKind,
    pub rows: u64,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Detects the format from the first bytes: Parquet magic, a JSON object, else CSV when
/// the bytes look like text. Gzip is looked through by [`open_text`], not here.
pub fn detect_format(head: &[u8]) -> Result<Format, AttributionError> {
    if head.starts_with(PARQUET_MAGIC) {
        return Ok(Format::Parquet);
    }
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(AttributionError::new(ErrorCode::EmptyInput, "the input is empty")),
        Some(b'{') => Ok(Format::Ndjson),
        Some(_) if !looks_like_text(&head[..head.len().min(4096)]) => Err(AttributionError::new(
            ErrorCode::UnknownFormat,
            "the input is not CSV, NDJSON or Parquet (it is not text and has no Parquet magic bytes)",
        )),
        Some(_) => Ok(Format::Csv),
    }
}

/// True for bytes that read as text: no NUL, and at most one byte in eight that is a
/// control character or not part of valid UTF-8. A CSV file with a stray Latin-1 byte
/// (or a character cut at the window's end) is text, and its rows say what is wrong;
/// binary data has NULs or invalid sequences throughout.
fn looks_like_text(window: &[u8]) -> bool {
    if window.contains(&0) {
        return false;
    }
    let control = |b: &u8| b.is_ascii_control() && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c);
    let odd: usize =
        window.utf8_chunks().map(|chunk| chunk.invalid().len() + chunk.valid().bytes().filter(control).count()).sum();
    odd * 8 <= window.len()
}

/// True if the bytes start like a gzip stream.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&GZIP_MAGIC)
}

/// Wraps a text input, decompressing gzip when its magic bytes say so, and detects CSV or
/// NDJSON (unless `format` is given). Parquet is refused here: it needs random access.
pub fn open_text<'r>(
    reader: impl Read + 'r,
    format: Option<Format>,
    max_decompressed_bytes: Option<u64>,
) -> Result<(Format, Box<dyn BufRead + 'r>), AttributionError> {
    let mut reader = BufReader::with_capacity(256 * 1024, reader);
    let head = reader.fill_buf().map_err(io_error)?;
    let mut reader: Box<dyn BufRead + 'r> = if is_gzip(head) {
        let decoded = flate2::bufread::MultiGzDecoder::new(reader);
        let capped = Capped { inner: decoded, left: max_decompressed_bytes.unwrap_or(u64::MAX) };
        Box::new(BufReader::with_capacity(256 * 1024, capped))
    } else {
        Box::new(reader)
    };
    let head = reader.fill_buf().map_err(io_error)?;
    let detected = detect_format(head)?;
    let format = format.unwrap_or(detected);
    if format == Format::Parquet || detected == Format::Parquet {
        return Err(AttributionError::new(
            ErrorCode::UnknownFormat,
            "Parquet must be read from a seekable file, not a stream (and cannot be gzip-compressed)",
        ));
    }
    Ok((format, reader))
}

/// A decompressed stream that fails once it yields more than its allowance.
struct Capped<R> {
    inner: R,
    left: u64,
}

/// The marker error of [`Capped`], told apart from other read failures by [`io_error`].
#[derive(Debug)]
struct DecompressedTooLarge;

impl std::fmt::Display for DecompressedTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the decompressed input exceeds its limit")
    }
}

impl std::error::Error for DecompressedTooLarge {}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| std::io::Error::other(DecompressedTooLarge))?;
        Ok(n)
    }
}

/// Maps a read failure to the error the user should see: a cut-off stream is
/// `truncated_input`; anything else is reported as it is.
pub(crate) fn io_error(error: std::io::Error) -> AttributionError {
    if error.get_ref().is_some_and(|e| e.is::<DecompressedTooLarge>()) {
        return AttributionError::new(
            ErrorCode::LimitExceeded,
            "the compressed input expands beyond the configured limit (max_decompressed_bytes)",
        );
    }
    match error.kind() {
        std::io::ErrorKind::UnexpectedEof => AttributionError::new(
            ErrorCode::TruncatedInput,
            "the input ends unexpectedly (truncated file or compressed stream)",
        ),
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => AttributionError::new(
            ErrorCode::TruncatedInput,
            format!("the input cannot be decoded ({error}); is the file complete and of the format it claims?"),
        ),
        _ => AttributionError::new(ErrorCode::Internal, format!("reading the input failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_from_content() {
        assert_eq!(detect_format(b"PAR1...").unwrap(), Format::Parquet);
        assert_eq!(detect_format(b"  {\"a\":1}\n").unwrap(), Format::Ndjson);
        assert_eq!(detect_format(b"\xEF\xBB\xBFuser_id,timestamp\n").unwrap(), Format::Csv);
        assert_eq!(detect_format(b"  \n ").unwrap_err().code, ErrorCode::EmptyInput);
        assert_eq!(detect_format(&[0u8, 159, 146, 150, 0xff, 0xfe]).unwrap_err().code, ErrorCode::UnknownFormat);
        let binary: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 0x80).collect();
        assert_eq!(detect_format(&binary).unwrap_err().code, ErrorCode::UnknownFormat);
    }

    #[test]
    fn a_stray_latin1_byte_leaves_text_text() {
        let head = b"user_id,timestamp,channel,conversion\nM\xfcller,2026-01-01,caf\xe9,0\n";
        assert_eq!(detect_format(head).unwrap(), Format::Csv);
        assert_eq!(detect_format(b"user_id,timestamp\n\xe9").unwrap(), Format::Csv);
    }
}
