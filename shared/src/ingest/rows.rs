//! Turning decoded cells into chunks: the per-row rules for event and path rows, shared by
//! every format. Bad values become located problems; decoding goes on so one run reports
//! up to 100 of them.

use std::borrow::Cow;
use std::io::Write;

use super::columns::{ChannelColumn, ConversionColumn, EventColumns, MAX_BREAKDOWN_LEVELS, PathColumns, TouchColumns};
use super::values::{Cell, read_flag, read_number, read_timestamp};
use super::{Block, Limits, MAX_BATCH_ROWS};
pub use crate::channel_rules::MAX_CHANNEL_NAME_BYTES;
use crate::channel_rules::{ChannelClassifier, ChannelRules, Touch};
use crate::chunk::{ChannelDict, EventChunk, NO_CHANNEL, NO_SEGMENT, PathChunk, push_touch_key, user_key};
use crate::error::{AttributionError, ErrorCode, Problem, Problems};

/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 1024;
/// Longest source, medium, campaign or referrer accepted, in bytes.
pub const MAX_TOUCH_FIELD_BYTES: usize = 8192;

/// Accumulates rows of one kind into blocks.
pub(crate) enum Rows {
    Events(Box<EventRows>),
    Paths(Box<PathRows>),
}

pub(crate) struct EventRows {
    /// Channel id by dictionary key of the current batch ([`NO_CHANNEL`] = not seen yet).
    channel_by_key: Vec<u32>,
    columns: EventColumns,
    names: ColumnNames,
    keep_user_ids: bool,
    chunk: EventChunk,
    shared: Shared,
    /// The channel rules of rows whose channel they name.
    derived: Option<DerivedChannels>,
    /// The current row's touch key, when a breakdown asks for them.
    key: String,
    /// The event names that are conversions (`conversion_types`); empty: the event type
    /// `conversion` is.
    conversion_types: Vec<String>,
}

/// Channel rules at work on the rows of one reader.
struct DerivedChannels {
    classifier: ChannelClassifier,
    /// The current block's channel id of each of the rules' channels ([`NO_CHANNEL`]: not
    /// in the block yet).
    ids: Vec<u32>,
}

pub(crate) struct PathRows {
    columns: PathColumns,
    names: ColumnNames,
    separator: String,
    chunk: PathChunk,
    path: Vec<u32>,
    shared: Shared,
}

/// An event row from typed columns, already known valid except for the channel name
/// (checked once per dictionary key by [`CleanEventSink::push`]).
pub(crate) struct CleanEvent<'a> {
    pub row: u64,
    /// A user id that [`is_plain_text`] accepted (or a formatted integer).
    pub user: &'a [u8],
    pub timestamp: i64,
    /// Dictionary key of the channel; `None` only on a conversion row without a channel.
    pub channel_key: Option<u32>,
    pub is_conversion: bool,
    /// A finite, non-negative value (0 on touches).
    pub value: f64,
}

/// True for text that the per-row rules would keep exactly as it is: not empty, at most
/// `max_bytes`, and without white space to trim at either end (non-ASCII ends are left
/// to the full rules).
pub(crate) fn is_plain_text(text: &str, max_bytes: usize) -> bool {
    let plain_end = |b: u8| b > b' ' && b < 0x7f;
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => bytes.len() <= max_bytes && plain_end(first) && plain_end(last),
        _ => false,
    }
}

/// State both kinds keep: problems, limits, counts, and the running totals of the
/// numbers read, so a sum no `f64` holds is refused at the row where it overflows
/// instead of turning into infinity (and `null` in JSON) later.
struct Shared {
    problems: Problems,
    limits: Limits,
    block_rows: usize,
    rows: u64,
    /// Conversion values (events), or `total_conversion_value` (paths).
    value_sum: f64,
    /// `total_conversions` and `total_null` of path rows.
    conversion_sum: f64,
    null_sum: f64,
    /// (conversions + nulls) × touches of path rows: a bound of every Markov transition count.
    step_sum: f64,
}

/// The refusal of a row at which the running sum of `what` is no longer a finite number.
pub(crate) fn sum_overflows(row: u64, column: &str, what: &str) -> AttributionError {
    AttributionError::new(
        ErrorCode::LimitExceeded,
        format!(
            "the {what} add up to more than the largest finite number (about 1.8e308) at row {row}; \
             are the numbers in the right unit?"
        ),
    )
    .with_details(vec![Problem::new(
        Some(row),
        Some(column),
        format!("the sum of the {what} overflows at this row"),
    )])
}

/// Column names by position, for error details.
pub(crate) struct ColumnNames(pub Vec<String>);

impl ColumnNames {
    fn get(&self, i: usize) -> &str {
        self.0.get(i).map(String::as_str).unwrap_or("?")
    }
}

impl Rows {
    /// Event rows; `rules` name the channels when the columns say they are derived
    /// (`ga4` when absent).
    pub(crate) fn events(
        columns: EventColumns,
        header: Vec<String>,
        keep_user_ids: bool,
        rules: Option<&ChannelRules>,
        limits: Limits,
        block_rows: usize,
    ) -> Rows {
        let derived = match columns.channel {
            ChannelColumn::Named(_) => None,
            ChannelColumn::Derived(_) => Some(DerivedChannels::new(rules.cloned().unwrap_or_else(ChannelRules::ga4))),
        };
        let mut rows = EventRows {
            channel_by_key: Vec::new(),
            columns,
            names: ColumnNames(header),
            keep_user_ids,
            chunk: EventChunk::default(),
            shared: Shared::new(limits, block_rows),
            derived,
            key: String::new(),
            conversion_types: Vec::new(),
        };
        rows.chunk = rows.new_chunk();
        Rows::Events(Box::new(rows))
    }

    pub(crate) fn paths(
        columns: PathColumns,
        header: Vec<String>,
        separator: String,
        limits: Limits,
        block_rows: usize,
    ) -> Rows {
        Rows::Paths(Box::new(PathRows {
            columns,
            names: ColumnNames(header),
            separator,
            chunk: PathChunk::default(),
            path: Vec::new(),
            shared: Shared::new(limits, block_rows),
        }))
    }

    /// Event rows whose event name marks a conversion when it is one of `types` (each such
    /// row then carries its type as its segment id).
    pub(crate) fn with_conversion_types(mut self, types: &[String]) -> Rows {
        if let Rows::Events(rows) = &mut self {
            rows.conversion_types = types.to_vec();
        }
        self
    }

    fn shared(&mut self) -> &mut Shared {
        match self {
            Rows::Events(rows) => &mut rows.shared,
            Rows::Paths(rows) => &mut rows.shared,
        }
    }

    /// Re-resolves columns against a header that gained names (NDJSON keys seen late).
    pub(crate) fn set_header(&mut self, header: Vec<String>, spec: &super::InputSpec) -> Result<(), AttributionError> {
        let resolver = super::columns::Resolver::new(&header, &spec.columns);
        match self {
            // Channels named by rules stay so, though a channel column turns up late.
            Rows::Events(rows) => rows.columns = resolver.events_with(rows.derived.is_some(), spec)?,
            Rows::Paths(rows) => rows.columns = resolver.paths()?,
        }
        let names = match self {
            Rows::Events(rows) => &mut rows.names,
            Rows::Paths(rows) => &mut rows.names,
        };
        names.0 = header;
        Ok(())
    }

    /// Forgets what dictionary keys meant: a new batch may bring a new dictionary.
    pub(crate) fn start_batch(&mut self) {
        if let Rows::Events(rows) = self {
            rows.channel_by_key.clear();
        }
    }

    /// Records a problem found by the decoder itself (a malformed record, bad UTF-8).
    pub(crate) fn problem(&mut self, row: u64, column: &str, problem: impl Into<String>) {
        let shared = self.shared();
        shared.rows += 1;
        shared.problems.push(row, column, problem);
    }

    /// Adds one row; `cell(i)` reads column i. Fails only when a limit is exceeded.
    pub(crate) fn push<'c>(&mut self, row: u64, cell: impl Fn(usize) -> Cell<'c>) -> Result<(), AttributionError> {
        self.shared().count_row()?;
        match self {
            Rows::Events(rows) => rows.push(row, cell),
            Rows::Paths(rows) => rows.push(row, cell),
        }
    }

    /// A sink for event rows whose cells a columnar reader has already checked (the fast
    /// lane of Parquet); `channel_name(key)` names a key of the batch's dictionary. None
    /// when problems were found earlier: a failing input keeps no rows, so every row
    /// then goes through [`Rows::push`] and its problems are all reported.
    pub(crate) fn clean_event_sink<'n, F: Fn(u32) -> &'n str>(
        &mut self,
        channel_name: F,
    ) -> Option<CleanEventSink<'_, F>> {
        let Rows::Events(rows) = self else { return None };
        let first = rows.chunk.len();
        rows.shared.problems.is_empty().then_some(CleanEventSink { rows, channel_name, taken: 0, first, values: 0.0 })
    }

    /// True once 100 problems are known: reading further would add nothing.
    pub(crate) fn should_stop(&mut self) -> bool {
        self.shared().problems.is_full()
    }

    /// A full block, ready for the sink (never once a problem was found: a failed input
    /// produces no partial output).
    pub(crate) fn take_full_block(&mut self) -> Option<Block> {
        match self {
            Rows::Events(rows) if rows.shared.problems.is_empty() && rows.chunk.len() >= rows.shared.block_rows => {
                let next = rows.new_chunk();
                Some(Block::Events(std::mem::replace(&mut rows.chunk, next)))
            }
            Rows::Paths(rows) if rows.shared.problems.is_empty() && rows.chunk.len() >= rows.shared.block_rows => {
                Some(Block::Paths(std::mem::take(&mut rows.chunk)))
            }
            _ => None,
        }
    }

    /// The last block, or the error carrying every problem found.
    pub(crate) fn finish(self) -> Result<(u64, Option<Block>), AttributionError> {
        let (shared, block) = match self {
            Rows::Events(rows) => (rows.shared, (!rows.chunk.is_empty()).then_some(Block::Events(rows.chunk))),
            Rows::Paths(rows) => (rows.shared, (!rows.chunk.is_empty()).then_some(Block::Paths(rows.chunk))),
        };
        shared.problems.into_result()?;
        Ok((shared.rows, block))
    }
}

impl Shared {
    fn new(limits: Limits, block_rows: usize) -> Shared {
        Shared {
            problems: Problems::default(),
            limits,
            block_rows,
            rows: 0,
            value_sum: 0.0,
            conversion_sum: 0.0,
            null_sum: 0.0,
            step_sum: 0.0,
        }
    }

    /// Records a row's problems; true when the row must not be kept (it had problems, or
    /// earlier rows did and the input will fail anyway).
    fn record(&mut self, row: u64, names: &ColumnNames, found: Vec<(usize, String)>) -> bool {
        let had_problems = !found.is_empty();
        for (column, problem) in found {
            self.problems.push(row, names.get(column), problem);
        }
        had_problems || !self.problems.is_empty()
    }

    /// Counts one more row, refusing it past the row limit.
    fn count_row(&mut self) -> Result<(), AttributionError> {
        self.rows += 1;
        self.limits.check_rows(self.rows)
    }

    fn check_channels(&self, dict: &ChannelDict) -> Result<(), AttributionError> {
        self.limits.check_dict(dict)
    }
}

/// Takes clean event rows one by one with the per-batch work (earlier problems, the row
/// limit) done once; see [`Rows::clean_event_sink`].
pub(crate) struct CleanEventSink<'r, F> {
    rows: &'r mut EventRows,
    channel_name: F,
    taken: u64,
    /// Where this sink's rows start in the block, and the sum of their values.
    first: usize,
    values: f64,
}

impl<'n, F: Fn(u32) -> &'n str> CleanEventSink<'_, F> {
    /// Adds one row; false, adding nothing, when its channel name is one this batch has
    /// not seen and that is not plainly valid (the per-row rules then say what is wrong).
    #[inline]
    pub(crate) fn push(&mut self, event: CleanEvent<'_>) -> Result<bool, AttributionError> {
        let rows = &mut *self.rows;
        let channel = match event.channel_key {
            None => NO_CHANNEL,
            Some(key) => match rows.channel_by_key.get(key as usize) {
                Some(&id) if id != NO_CHANNEL => id,
                _ => {
                    let name = (self.channel_name)(key);
                    if !is_plain_text(name, MAX_CHANNEL_NAME_BYTES) {
                        return Ok(false);
                    }
                    rows.intern_channel(name, Some(key))?
                }
            },
        };
        self.taken += 1;
        self.values += event.value;
        rows.append(event.row, event.user, event.timestamp, channel, event.is_conversion, event.value);
        Ok(true)
    }

    /// Counts the rows taken, refusing them past the row limit or where their values'
    /// running sum overflows.
    pub(crate) fn finish(self) -> Result<(), AttributionError> {
        let rows = self.rows;
        let shared = &mut rows.shared;
        shared.rows += self.taken;
        shared.limits.check_rows(shared.rows)?;
        if (shared.value_sum + self.values).is_finite() {
            shared.value_sum += self.values;
            return Ok(());
        }
        // Summed again in row order to find the row (and so that the order of additions
        // is the per-row rules' own).
        let chunk = &rows.chunk;
        for (&value, &row) in chunk.values[self.first..].iter().zip(&chunk.row_numbers[self.first..]) {
            shared.value_sum += value;
            if !shared.value_sum.is_finite() {
                let column = rows.columns.conversion_value.map_or("conversion_value", |i| rows.names.get(i));
                return Err(sum_overflows(row, column, "conversion values"));
            }
        }
        Ok(())
    }
}

/// A block's columns sized for a full block up front, and for the one Parquet batch that may
/// take it past full (row groups that are no multiple of the batch size, such as DuckDB's
/// 122,880 rows, end in a short batch): growing six vectors by doubling, block after block,
/// costs more than the rows' own decoding.
fn new_event_chunk(keep_user_ids: bool, rows: usize) -> EventChunk {
    EventChunk::with_capacity(rows.min(1 << 20) + rows.clamp(1024, MAX_BATCH_ROWS), keep_user_ids)
}

impl DerivedChannels {
    fn new(rules: ChannelRules) -> DerivedChannels {
        DerivedChannels { ids: vec![NO_CHANNEL; rules.channels().len()], classifier: ChannelClassifier::new(rules) }
    }
}

impl EventRows {
    /// An empty block, saying which rules name its channels; the rules' channels get ids
    /// in it as they are met.
    fn new_chunk(&mut self) -> EventChunk {
        let mut chunk = new_event_chunk(self.keep_user_ids, self.shared.block_rows);
        if self.columns.breakdown().next().is_some() {
            chunk.channels = ChannelDict::of_touch_keys();
        }
        if let Some(derived) = &mut self.derived {
            derived.ids.fill(NO_CHANNEL);
            chunk.channel_rules = Some(derived.classifier.rules().applied());
        }
        chunk
    }

    fn push<'c>(&mut self, row: u64, cell: impl Fn(usize) -> Cell<'c>) -> Result<(), AttributionError> {
        let c = self.columns;
        let mut found: Vec<(usize, String)> = Vec::new();
        let mut bad = |column: usize, problem: String| found.push((column, problem));

        let mut number = [0u8; 24];
        let channel_column = c.channel.named();
        let channel_cell = channel_column.map_or(Cell::Null, &cell);
        let touch = match c.channel {
            ChannelColumn::Derived(columns) => Some(read_touch(columns, &cell, &mut bad)),
            ChannelColumn::Named(_) => None,
        };
        // With a breakdown, a row's id is its touch key: values of other columns count too.
        let keyed = c.breakdown[0].is_some();
        let mut values: [Option<Cow<'_, str>>; MAX_BREAKDOWN_LEVELS] = Default::default();
        for (value, column) in values.iter_mut().zip(c.breakdown()) {
            *value = read_breakdown_value(column, cell(column), "breakdown", &mut bad);
        }
        let segment = c.segment.and_then(|column| read_breakdown_value(column, cell(column), "segment", &mut bad));
        // A dictionary key seen before in this batch: its channel is known and valid.
        let known_channel = match channel_cell {
            Cell::Dict(key, _) if !keyed => {
                self.channel_by_key.get(key as usize).copied().filter(|&id| id != NO_CHANNEL)
            }
            _ => None,
        };
        let user_cell = cell(c.user_id).plain();
        let user: &[u8] = match user_cell {
            Cell::Str(s) if !s.trim().is_empty() && s.len() <= MAX_USER_ID_BYTES => s.as_bytes(),
            Cell::Str(s) if s.len() > MAX_USER_ID_BYTES => {
                bad(c.user_id, format!("user id longer than {MAX_USER_ID_BYTES} bytes"));
                b""
            }
            Cell::Int(i) => format_int(i, &mut number),
            Cell::Null | Cell::Str(_) => {
                bad(c.user_id, "user id is empty".to_owned());
                b""
            }
            other => {
                bad(c.user_id, format!("cannot read {} as a user id", other.display()));
                b""
            }
        };

        let time_cell = cell(c.timestamp).plain();
        let timestamp = read_timestamp(time_cell).unwrap_or_else(|| {
            let problem = if time_cell.is_blank() {
                "timestamp is empty".to_owned()
            } else {
                format!(
                    "cannot read {} as a timestamp (expected RFC 3339 / ISO 8601 such as 2026-01-31T12:00:00Z, or epoch seconds/milliseconds)",
                    time_cell.display()
                )
            };
            bad(c.timestamp, problem);
            0
        });

        // With `conversion_types`: which of them the row is.
        let mut conversion_type = None;
        let is_conversion = match c.conversion {
            ConversionColumn::Flag(i) => {
                let flag_cell = cell(i);
                read_flag(flag_cell).unwrap_or_else(|| {
                    bad(
                        i,
                        format!(
                            "cannot read {} as a conversion flag (expected 0/1 or true/false)",
                            flag_cell.display()
                        ),
                    );
                    false
                })
            }
            ConversionColumn::EventType(i) if !self.conversion_types.is_empty() => {
                conversion_type = match cell(i).plain() {
                    Cell::Str(s) => self.conversion_types.iter().position(|t| t.eq_ignore_ascii_case(s.trim())),
                    _ => None,
                };
                conversion_type.is_some()
            }
            ConversionColumn::EventType(i) => match cell(i).plain() {
                Cell::Str(s) => s.trim().eq_ignore_ascii_case("conversion"),
                _ => false,
            },
        };

        let channel_name: Option<Cow<'_, str>> = match channel_cell.plain() {
            _ if known_channel.is_some() => None,
            Cell::Str(s) if !s.trim().is_empty() => Some(Cow::Borrowed(s.trim())),
            Cell::Null | Cell::Str(_) => None,
            Cell::Int(i) => Some(Cow::Owned(i.to_string())),
            other => {
                bad(channel_column.unwrap_or(usize::MAX), format!("cannot read {} as a channel name", other.display()));
                None
            }
        };
        if let Some(name) = &channel_name
            && name.len() > MAX_CHANNEL_NAME_BYTES
        {
            bad(
                channel_column.unwrap_or(usize::MAX),
                format!("channel name longer than {MAX_CHANNEL_NAME_BYTES} bytes"),
            );
        }
        if let Some(channel_column) = channel_column
            && known_channel.is_none()
            && channel_name.is_none()
            && !is_conversion
            && !matches!(channel_cell, Cell::Nested | Cell::Bool(_) | Cell::Float(_) | Cell::Micros(_))
        {
            bad(channel_column, "channel is empty on a touch row".to_owned());
        }

        let mut value = 0.0;
        if is_conversion && let Some(i) = c.conversion_value {
            match read_number(cell(i)) {
                Ok(Some(v)) if v < 0.0 => bad(
                    i,
                    format!("negative conversion value {v} (refunds are not supported: send them as 0 or drop them)"),
                ),
                Ok(Some(v)) => value = v,
                Ok(None) => {}
                Err(problem) => bad(i, problem),
            }
        }

        if self.shared.record(row, &self.names, found) {
            return Ok(());
        }
        let channel = match (&touch, &channel_name) {
            _ if keyed => {
                let name = match (&touch, &channel_name) {
                    (Some(touch), _) => self.derived_channel_name(touch, is_conversion),
                    (None, name) => name.clone(),
                };
                match name {
                    Some(name) => self.intern_touch_key(&name, &values)?,
                    None => NO_CHANNEL,
                }
            }
            (Some(touch), _) => self.derived_channel(touch, is_conversion)?,
            _ if known_channel.is_some() => known_channel.unwrap_or(NO_CHANNEL),
            (None, Some(name)) => {
                let key = match channel_cell {
                    Cell::Dict(key, _) => Some(key),
                    _ => None,
                };
                self.intern_channel(name, key)?
            }
            (None, None) => NO_CHANNEL,
        };
        self.shared.value_sum += value;
        if !self.shared.value_sum.is_finite()
            && let Some(i) = c.conversion_value
        {
            return Err(sum_overflows(row, self.names.get(i), "conversion values"));
        }
        self.append(row, user, timestamp, channel, is_conversion, value);
        if c.segment.is_some() {
            let id = match segment {
                Some(segment) => self.intern_segment(&segment)?,
                None => NO_SEGMENT,
            };
            self.chunk.segment_ids.push(id);
        } else if !self.conversion_types.is_empty() {
            // A conversion's type, as the job named it (bounded by the types' count).
            let id = conversion_type.map_or(NO_SEGMENT, |t| self.chunk.segments.id(&self.conversion_types[t]));
            self.chunk.segment_ids.push(id);
        }
        Ok(())
    }

    /// The id of a segment value in the block. Fails past the segment limit.
    fn intern_segment(&mut self, value: &str) -> Result<u32, AttributionError> {
        let before = self.chunk.segments.len();
        let id = self.chunk.segments.id(value);
        if self.chunk.segments.len() > before {
            self.shared.limits.check_segments(self.chunk.segments.len())?;
        }
        Ok(id)
    }

    /// The id of the channel the rules name for a touch; a conversion row that names none
    /// of the touch's fields has no channel, as with an empty channel column.
    fn derived_channel(&mut self, touch: &[Cow<'_, str>; 4], is_conversion: bool) -> Result<u32, AttributionError> {
        let [source, medium, campaign, referrer] = touch.each_ref().map(|f| f.as_ref());
        let touch = Touch { source, medium, campaign, referrer };
        if is_conversion && touch.is_empty() {
            return Ok(NO_CHANNEL);
        }
        let derived = self.derived.as_mut().expect("rows with derived channels have rules");
        let index = derived.classifier.channel_index(&touch) as usize;
        if derived.ids[index] == NO_CHANNEL {
            derived.ids[index] = self.chunk.channels.id(&derived.classifier.rules().channels()[index]);
            self.shared.check_channels(&self.chunk.channels)?;
        }
        Ok(derived.ids[index])
    }

    /// The name of the channel the rules name for a touch (as [`EventRows::derived_channel`]).
    fn derived_channel_name(&mut self, touch: &[Cow<'_, str>; 4], is_conversion: bool) -> Option<Cow<'static, str>> {
        let [source, medium, campaign, referrer] = touch.each_ref().map(|f| f.as_ref());
        let touch = Touch { source, medium, campaign, referrer };
        if is_conversion && touch.is_empty() {
            return None;
        }
        let derived = self.derived.as_mut().expect("rows with derived channels have rules");
        let index = derived.classifier.channel_index(&touch) as usize;
        Some(Cow::Owned(derived.classifier.rules().channels()[index].clone()))
    }

    /// The id of the touch key of channel `name` and the row's breakdown values. Fails past
    /// the channel or breakdown limit.
    fn intern_touch_key(&mut self, name: &str, values: &[Option<Cow<'_, str>>]) -> Result<u32, AttributionError> {
        let levels = self.columns.breakdown().count();
        self.key.clear();
        let values: [Option<&str>; MAX_BREAKDOWN_LEVELS] = std::array::from_fn(|i| values[i].as_deref());
        push_touch_key(&mut self.key, name, &values[..levels]);
        let before = self.chunk.channels.len();
        let id = self.chunk.channels.id(&self.key);
        if self.chunk.channels.len() > before {
            self.shared.check_channels(&self.chunk.channels)?;
        }
        Ok(id)
    }

    /// The id of channel `name`, remembered for dictionary key `key` of the current batch
    /// when the name came from one. Fails past the channel limit.
    fn intern_channel(&mut self, name: &str, key: Option<u32>) -> Result<u32, AttributionError> {
        let id = self.chunk.channels.id(name);
        self.shared.check_channels(&self.chunk.channels)?;
        if let Some(key) = key {
            let key = key as usize;
            if self.channel_by_key.len() <= key {
                self.channel_by_key.resize(key + 1, NO_CHANNEL);
            }
            self.channel_by_key[key] = id;
        }
        Ok(id)
    }

    /// Appends a row that passed every rule to the block.
    fn append(&mut self, row: u64, user: &[u8], timestamp: i64, channel: u32, is_conversion: bool, value: f64) {
        let chunk = &mut self.chunk;
        chunk.user_keys.push(user_key(user));
        if let Some(ids) = &mut chunk.user_ids {
            ids.push(String::from_utf8_lossy(user).into_owned());
        }
        chunk.timestamps.push(timestamp);
        chunk.channel_ids.push(channel);
        chunk.is_conversion.push(is_conversion);
        chunk.values.push(value);
        chunk.row_numbers.push(row);
    }
}

impl PathRows {
    fn push<'c>(&mut self, row: u64, cell: impl Fn(usize) -> Cell<'c>) -> Result<(), AttributionError> {
        let c = self.columns;
        let mut found: Vec<(usize, String)> = Vec::new();
        let mut bad = |column: usize, problem: String| found.push((column, problem));
        let mut non_negative = |column: Option<usize>, required: bool| -> f64 {
            let Some(i) = column else { return 0.0 };
            match read_number(cell(i)) {
                Ok(Some(v)) if v < 0.0 => {
                    bad(i, format!("negative number {v}"));
                    0.0
                }
                Ok(Some(v)) => v,
                Ok(None) if required => {
                    bad(i, "value is empty".to_owned());
                    0.0
                }
                Ok(None) => 0.0,
                Err(problem) => {
                    bad(i, problem);
                    0.0
                }
            }
        };
        let conversions = non_negative(Some(c.total_conversions), true);
        let value = non_negative(c.total_conversion_value, false);
        let nulls = non_negative(c.total_null, false);
        if conversions == 0.0
            && value > 0.0
            && let Some(i) = c.total_conversion_value
        {
            bad(i, format!("value {value} on a path without conversions (value belongs to conversions)"));
        }
        let path_cell = cell(c.path).plain();
        let path_text = match path_cell {
            Cell::Str(s) => s,
            Cell::Null => "",
            other => {
                bad(c.path, format!("cannot read {} as a path", other.display()));
                ""
            }
        };
        if self.shared.record(row, &self.names, found) {
            return Ok(());
        }
        self.path.clear();
        for token in path_text.split(self.separator.as_str()).map(str::trim).filter(|t| !t.is_empty()) {
            if token.len() > MAX_CHANNEL_NAME_BYTES {
                self.shared.problems.push(
                    row,
                    self.names.get(c.path),
                    format!("channel name longer than {MAX_CHANNEL_NAME_BYTES} bytes"),
                );
                return Ok(());
            }
            self.path.push(self.chunk.channels.id(token));
        }
        self.shared.check_channels(&self.chunk.channels)?;
        let shared = &mut self.shared;
        shared.conversion_sum += conversions;
        shared.value_sum += value;
        shared.null_sum += nulls;
        shared.step_sum += (conversions + nulls) * self.path.len() as f64;
        let overflow = [
            (shared.conversion_sum, Some(c.total_conversions), "conversions"),
            (shared.value_sum, c.total_conversion_value, "conversion values"),
            (shared.null_sum, c.total_null, "non-conversions"),
            (shared.step_sum, Some(c.path), "conversions and non-conversions counted at every touch of their path"),
        ]
        .into_iter()
        .find(|(sum, ..)| !sum.is_finite());
        if let Some((_, column, what)) = overflow {
            return Err(sum_overflows(row, column.map_or("?", |i| self.names.get(i)), what));
        }
        self.chunk.push(&self.path, conversions, value, nulls, row);
        Ok(())
    }
}

/// The source, medium, campaign and referrer of a row (empty where the file has no such
/// column or the cell is empty).
fn read_touch<'c>(
    columns: TouchColumns,
    cell: &impl Fn(usize) -> Cell<'c>,
    bad: &mut impl FnMut(usize, String),
) -> [Cow<'c, str>; 4] {
    let fields = [
        ("source", columns.source),
        ("medium", columns.medium),
        ("campaign", columns.campaign),
        ("referrer", columns.referrer),
    ];
    fields.map(|(name, column)| {
        let Some(i) = column else { return Cow::Borrowed("") };
        match cell(i).plain() {
            Cell::Null => Cow::Borrowed(""),
            Cell::Str(s) if s.len() > MAX_TOUCH_FIELD_BYTES => {
                bad(i, format!("{name} longer than {MAX_TOUCH_FIELD_BYTES} bytes"));
                Cow::Borrowed("")
            }
            Cell::Str(s) => Cow::Borrowed(s),
            Cell::Int(n) => Cow::Owned(n.to_string()),
            other => {
                bad(i, format!("cannot read {} as a {name}", other.display()));
                Cow::Borrowed("")
            }
        }
    })
}

/// A row's value in a breakdown or segment column (`what`): `None` when empty (shown as `(none)`).
pub(crate) fn read_breakdown_value<'c>(
    column: usize,
    cell: Cell<'c>,
    what: &str,
    bad: &mut impl FnMut(usize, String),
) -> Option<Cow<'c, str>> {
    match cell.plain() {
        Cell::Null => None,
        Cell::Str(s) if s.trim().len() > MAX_TOUCH_FIELD_BYTES => {
            bad(column, format!("{what} value longer than {MAX_TOUCH_FIELD_BYTES} bytes"));
            None
        }
        Cell::Str(s) => Some(Cow::Borrowed(s.trim())).filter(|s| !s.is_empty()),
        Cell::Int(n) => Some(Cow::Owned(n.to_string())),
        Cell::Float(x) => Some(Cow::Owned(x.to_string())),
        Cell::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
        Cell::Micros(m) => Some(Cow::Owned(
            chrono::DateTime::from_timestamp_micros(m).map_or_else(|| m.to_string(), |t| t.to_rfc3339()),
        )),
        other => {
            bad(column, format!("cannot read {} as a {what} value", other.display()));
            None
        }
    }
}

pub(crate) fn format_int(i: i64, buffer: &mut [u8; 24]) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    write!(cursor, "{i}").expect("an i64 fits in 24 bytes");
    let len = cursor.position() as usize;
    &buffer[..len]
}
