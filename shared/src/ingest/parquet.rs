//! Parquet input: row groups decoded through Arrow, only the needed columns, any
//! subset of row groups (so callers can decode row groups in parallel).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, DictionaryArray, Float64Array, Int64Array,
    LargeStringArray, StringArray, StringViewArray, StructArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast, single_decimal_to_float_lossy};
use arrow::datatypes::{DataType, Decimal128Type, FieldRef, Int32Type, Schema, TimeUnit, UInt64Type};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

use super::columns::{ChannelColumn, ConversionColumn, EventColumns, Resolver, detect_kind};
use super::rows::{CleanEvent, MAX_USER_ID_BYTES, Rows, format_int, is_plain_text};
use super::text::{RowSink, finish};
use super::values::{Cell, epoch_int_micros, read_flag, read_number, read_timestamp};
use super::{Block, InputSpec, InputSummary, MAX_BATCH_ROWS};
use crate::error::{AttributionError, ErrorCode};
use crate::options::InputKind;

/// Row groups of a Parquet file: `(first row, row count)` each, 0-based rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetLayout {
    pub row_groups: Vec<(u64, u64)>,
    pub total_rows: u64,
}

/// One reader shared by the readers of each row group (`ChunkReader` readers are
/// factories: each read opens its own view).
struct SharedReader<R>(Arc<R>);

impl<R> Clone for SharedReader<R> {
    fn clone(&self) -> Self {
        SharedReader(Arc::clone(&self.0))
    }
}

impl<R: ChunkReader> Length for SharedReader<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for SharedReader<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> parquet::errors::Result<R::T> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        self.0.get_bytes(start, length)
    }
}

impl ParquetLayout {
    fn of(metadata: &ParquetMetaData) -> ParquetLayout {
        let mut row_groups = Vec::new();
        let mut first = 0u64;
        for group in metadata.row_groups() {
            let rows = group.num_rows() as u64;
            row_groups.push((first, rows));
            first += rows;
        }
        ParquetLayout { row_groups, total_rows: first }
    }
}

/// Reads the footer only.
pub fn parquet_layout<R: ChunkReader + 'static>(reader: R) -> Result<ParquetLayout, AttributionError> {
    let metadata = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::new()).map_err(parquet_error)?;
    Ok(ParquetLayout::of(metadata.metadata()))
}

/// Reads the given row groups (all when `None`) in order, handing each full block to `sink`.
/// Row numbers in blocks and errors are 1-based rows of the whole file.
pub fn read_parquet<R: ChunkReader + 'static, E: From<AttributionError>>(
    reader: R,
    spec: &InputSpec,
    row_groups: Option<&[usize]>,
    mut sink: impl FnMut(Block) -> Result<(), E>,
) -> Result<InputSummary, E> {
    let metadata = ArrowReaderMetadata::load(&reader, ArrowReaderOptions::new()).map_err(parquet_error)?;
    let (header, paths) = header_of(metadata.schema());
    let kind = spec.kind.unwrap_or_else(|| detect_kind(&header, &spec.columns));
    let metadata = with_dictionary_channels(metadata, kind, &header, spec)?;
    let layout = ParquetLayout::of(metadata.metadata()).row_groups;
    let selected: Vec<usize> = row_groups.map_or_else(|| (0..layout.len()).collect(), <[usize]>::to_vec);
    let needed = needed_columns(kind, &header, spec)?;
    // Arrow reads whole top-level fields: a struct's, for the fields inside it.
    let mut roots: Vec<usize> = needed.iter().map(|&c| paths[c].root).collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(metadata.parquet_schema(), roots.iter().copied());
    let reader = SharedReader(Arc::new(reader));
    // A batch never spans two row groups: a batch that did would join two column chunks'
    // dictionaries, which Arrow does by decoding every string of the batch and hashing it
    // into a new dictionary (most batches of files with row groups of 122,880 rows).
    let batch_size = spec.block_rows.clamp(1024, MAX_BATCH_ROWS);
    let batches_of = |group: usize| {
        ParquetRecordBatchReaderBuilder::new_with_metadata(reader.clone(), metadata.clone())
            .with_projection(mask.clone())
            .with_row_groups(vec![group])
            .with_batch_size(batch_size)
            .build()
            .map_err(parquet_error)
    };
    let (_, mut rows) = super::text::rows_for(header.clone(), spec)?;
    let event_columns = match kind {
        InputKind::Events => Resolver::new(&header, &spec.columns).events_with(spec.channel_rules.is_some(), spec).ok(),
        InputKind::Paths => None,
    };

    // A named channel of plain strings (a field inside a struct, which keeps its type) is
    // turned into a dictionary per batch, so the fast lane can take its rows.
    let channel_field = event_columns.as_ref().filter(|c| !c.takes_per_row_path()).and_then(|c| c.channel.named());

    // Each emitted row's number in the file.
    let mut numbers: Vec<u64> = Vec::new();
    let mut columns: Vec<Option<Column>> = vec![None; header.len()];
    'batches: for &group in &selected {
        let mut within_group = 0u64;
        for batch in batches_of(group)? {
            let batch = batch.map_err(|e| parquet_error(e.into()))?;
            for &field in &needed {
                let path = &paths[field];
                let position = roots.binary_search(&path.root).expect("every needed root is read");
                let mut array = path.array(batch.column(position));
                if channel_field == Some(field) {
                    array = as_dictionary(array);
                }
                columns[field] = Some(Column::new(&array)?);
            }
            let first = layout[group].0 + within_group + 1;
            numbers.clear();
            numbers.extend(first..first + batch.num_rows() as u64);
            within_group += batch.num_rows() as u64;
            rows.start_batch();
            let lane = event_columns.as_ref().and_then(|c| EventLane::new(&columns, c));
            let mut i = 0;
            while i < batch.num_rows() {
                if let Some(lane) = &lane {
                    i = lane.append(i, &numbers, &mut rows)?;
                    if i == batch.num_rows() {
                        break;
                    }
                }
                rows.push(numbers[i], |c| columns[c].as_ref().map_or(Cell::Null, |column| column.cell(i)))?;
                if rows.should_stop() {
                    break 'batches;
                }
                i += 1;
            }
            if let Some(block) = rows.take_full_block() {
                sink(block)?;
            }
        }
    }
    if selected.is_empty() {
        return Ok(InputSummary { kind, rows: 0 });
    }
    finish(kind, rows, sink)
}

/// Reads a whole Parquet file row by row into the sink `start` makes from the header
/// (`start` also names the columns it reads): the reader of side tables such as costs.
/// Date columns are read as their `YYYY-MM-DD` text, so a calendar day stays one.
pub(crate) fn parquet_rows<R: ChunkReader + 'static, S: RowSink>(
    reader: R,
    start: impl FnOnce(&[String]) -> Result<(S, Vec<usize>), AttributionError>,
) -> Result<S, AttributionError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(reader).map_err(parquet_error)?;
    let (header, paths) = header_of(builder.schema());
    let (mut rows, mut needed) = start(&header)?;
    needed.retain(|&c| c < paths.len());
    needed.sort_unstable();
    needed.dedup();
    let mut roots: Vec<usize> = needed.iter().map(|&c| paths[c].root).collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let batches = builder.with_projection(mask).with_batch_size(8192).build().map_err(parquet_error)?;
    let mut columns: Vec<Option<Column>> = vec![None; header.len()];
    let mut row = 0u64;
    for batch in batches {
        let batch = batch.map_err(|e| parquet_error(e.into()))?;
        for &field in &needed {
            let path = &paths[field];
            let position = roots.binary_search(&path.root).expect("every needed root is read");
            let mut array = path.array(batch.column(position));
            if matches!(array.data_type(), DataType::Date32 | DataType::Date64) {
                let as_text = |array: &ArrayRef, to: &DataType| {
                    cast(array, to).map_err(|e| {
                        AttributionError::new(
                            ErrorCode::InvalidValue,
                            format!("cannot read a Parquet date column: {e}"),
                        )
                    })
                };
                array = as_text(&as_text(&array, &DataType::Date32)?, &DataType::Utf8)?;
            }
            columns[field] = Some(Column::new(&array)?);
        }
        for i in 0..batch.num_rows() {
            row += 1;
            rows.push(row, |c| columns[c].as_ref().map_or(Cell::Null, |column| column.cell(i)))?;
            if rows.should_stop() {
                return Ok(rows);
            }
        }
    }
    Ok(rows)
}

/// A plain string array as a dictionary of strings (unchanged when it is not one, or when
/// Arrow cannot cast it: the per-row path then reads it as it is).
fn as_dictionary(array: ArrayRef) -> ArrayRef {
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let plain = match array.data_type() {
        DataType::Utf8 => Ok(Arc::clone(&array)),
        DataType::LargeUtf8 | DataType::Utf8View => cast(&array, &DataType::Utf8),
        _ => return array,
    };
    plain.and_then(|plain| cast(&plain, &dictionary)).unwrap_or(array)
}

/// Where a column of the header is: a top-level field (`children` empty), or a field inside
/// structs, by its index in each.
struct FieldPath {
    root: usize,
    children: Vec<usize>,
}

impl FieldPath {
    /// The column's array within the array of its top-level field.
    fn array(&self, root: &ArrayRef) -> ArrayRef {
        let mut array = Arc::clone(root);
        for &child in &self.children {
            array = match array.as_any().downcast_ref::<StructArray>() {
                Some(parent) => Arc::clone(parent.column(child)),
                None => return array,
            };
        }
        array
    }
}

/// Struct levels whose fields are columns by dotted path, and how many such columns at most.
const NESTED_DEPTH: usize = 3;
const NESTED_COLUMNS: usize = 10_000;

/// The file's columns: its top-level fields (first, so their indexes are the fields'), then
/// the fields inside structs named by their dotted path (`collected_traffic_source.manual_source`),
/// so a nested export is read without flattening it first.
fn header_of(schema: &Schema) -> (Vec<String>, Vec<FieldPath>) {
    let mut names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let mut paths: Vec<FieldPath> = (0..names.len()).map(|root| FieldPath { root, children: Vec::new() }).collect();
    let limit = names.len() + NESTED_COLUMNS;
    for (root, field) in schema.fields().iter().enumerate() {
        let mut path = FieldPath { root, children: Vec::new() };
        add_nested(field.name(), field.data_type(), &mut path, limit, (&mut names, &mut paths));
    }
    (names, paths)
}

/// Names the fields inside `data_type` if it is a struct, depth first, until `limit` columns.
fn add_nested(
    name: &str,
    data_type: &DataType,
    path: &mut FieldPath,
    limit: usize,
    header: (&mut Vec<String>, &mut Vec<FieldPath>),
) {
    let (names, paths) = header;
    let DataType::Struct(fields) = data_type else { return };
    if path.children.len() >= NESTED_DEPTH {
        return;
    }
    for (i, field) in fields.iter().enumerate() {
        if paths.len() >= limit {
            return;
        }
        let dotted = format!("{name}.{}", field.name());
        path.children.push(i);
        names.push(dotted.clone());
        paths.push(FieldPath { root: path.root, children: path.children.clone() });
        add_nested(&dotted, field.data_type(), path, limit, (&mut *names, &mut *paths));
        path.children.pop();
    }
}

/// Asks Arrow to decode the channel column of event data (or the source, medium and
/// campaign that channel rules read) as a dictionary, so rows carry a small key instead of
/// a fresh string (exports dictionary-encode low-cardinality columns).
fn with_dictionary_channels(
    metadata: ArrowReaderMetadata,
    kind: InputKind,
    header: &[String],
    spec: &InputSpec,
) -> Result<ArrowReaderMetadata, AttributionError> {
    if kind != InputKind::Events {
        return Ok(metadata);
    }
    let Ok(columns) = Resolver::new(header, &spec.columns).events_with(spec.channel_rules.is_some(), spec) else {
        return Ok(metadata);
    };
    let schema = metadata.schema();
    // Fields inside structs (header entries past the top level) keep their type.
    let is_text = |i: usize| {
        schema
            .fields()
            .get(i)
            .is_some_and(|f| matches!(f.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
    };
    let mut by_key: Vec<usize> = match columns.channel {
        ChannelColumn::Named(i) => vec![i],
        // Referrers are nearly all different: keys would not spare anything.
        ChannelColumn::Derived(t) => [t.source, t.medium, t.campaign].into_iter().flatten().collect(),
    };
    by_key.extend(columns.breakdown());
    by_key.extend(columns.segment);
    // Flags and event types are a few words: each is read once per batch, not once per row.
    by_key.push(match columns.conversion {
        ConversionColumn::Flag(i) | ConversionColumn::EventType(i) => i,
    });
    // User ids are only hashed and time strings parsed: views into the decoded pages spare
    // copying them.
    let by_view = [columns.user_id, columns.timestamp];
    if !by_key.iter().chain(&by_view).any(|&i| is_text(i)) {
        return Ok(metadata);
    }
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if by_key.contains(&i) && is_text(i) {
                Arc::new(f.as_ref().clone().with_data_type(dictionary.clone()))
            } else if by_view.contains(&i) && is_text(i) {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View))
            } else {
                Arc::clone(f)
            }
        })
        .collect();
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(Arc::clone(metadata.metadata()), ArrowReaderOptions::new().with_schema(hinted))
        .map_err(parquet_error)
}

/// The file's columns that the kind of input reads, in file order (Arrow's projection order).
fn needed_columns(kind: InputKind, header: &[String], spec: &InputSpec) -> Result<Vec<usize>, AttributionError> {
    let resolver = Resolver::new(header, &spec.columns);
    let mut needed = match kind {
        InputKind::Events => {
            let c = resolver.events_with(spec.channel_rules.is_some(), spec)?;
            let conversion = match c.conversion {
                ConversionColumn::Flag(i) | ConversionColumn::EventType(i) => i,
            };
            let mut v = vec![c.user_id, c.timestamp, conversion];
            v.extend(c.channel.columns());
            v.extend(c.conversion_value);
            v.extend(c.breakdown());
            v.extend(c.segment);
            v
        }
        InputKind::Paths => {
            let c = resolver.paths()?;
            let mut v = vec![c.path, c.total_conversions];
            v.extend(c.total_conversion_value);
            v.extend(c.total_null);
            v
        }
    };
    needed.sort_unstable();
    needed.dedup();
    Ok(needed)
}

/// One Arrow column, normalised to the few physical types cells come from.
#[derive(Clone)]
enum Column {
    Utf8(StringArray),
    LargeUtf8(LargeStringArray),
    Utf8View(StringViewArray),
    Dictionary(DictionaryArray<Int32Type>, Arc<StringArray>),
    Int(Int64Array),
    Float(Float64Array),
    /// Decimals with their scale, read as doubles cell by cell: a value column is read on
    /// conversion rows only, a few in a hundred, so casting every row of a batch would be
    /// wasted work.
    Decimal(Decimal128Array, i8),
    Bool(BooleanArray),
    Micros(TimestampMicrosecondArray),
    /// A column of Arrow's null type (pyarrow writes one for a column with no value at all).
    Null,
    Unsupported,
}

impl Column {
    fn new(array: &ArrayRef) -> Result<Column, AttributionError> {
        let cast_to = |to: &DataType| {
            cast(array, to).map_err(|e| {
                AttributionError::new(ErrorCode::InvalidValue, format!("cannot read a Parquet column: {e}"))
            })
        };
        Ok(match array.data_type() {
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => Column::LargeUtf8(array.as_string::<i64>().clone()),
            DataType::Utf8View => Column::Utf8View(array.as_string_view().clone()),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                Column::Utf8(cast_to(&DataType::Utf8)?.as_string::<i32>().clone())
            }
            DataType::Dictionary(_, value) if value.is_string() || **value == DataType::Binary => {
                let dict = cast_to(&DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)))?;
                let dict = dict.as_dictionary::<Int32Type>().clone();
                let values = Arc::new(dict.values().as_string::<i32>().clone());
                Column::Dictionary(dict, values)
            }
            // Dictionaries of other values (a pandas categorical of numbers, say): their
            // values, unpacked, read as a column of that type.
            DataType::Dictionary(_, value) => Column::new(&cast_to(value)?)?,
            DataType::Boolean => Column::Bool(array.as_boolean().clone()),
            DataType::UInt64 if arrow::compute::max(array.as_primitive::<UInt64Type>()) > Some(i64::MAX as u64) => {
                // A cast to Int64 would make the largest values nulls (hashed ids exported as
                // UInt64, as ClickHouse writes them): such a batch is read as the decimal text a
                // CSV of it holds.
                Column::Utf8(cast_to(&DataType::Utf8)?.as_string::<i32>().clone())
            }
            t if t.is_integer() => Column::Int(cast_to(&DataType::Int64)?.as_primitive().clone()),
            DataType::Decimal128(_, scale) => Column::Decimal(array.as_primitive().clone(), *scale),
            t if t.is_floating() || t.is_decimal() => {
                Column::Float(cast_to(&DataType::Float64)?.as_primitive().clone())
            }
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
                // Arrow timestamps are UTC instants; a timestamp without a zone is read as UTC.
                Column::Micros(cast_to(&DataType::Timestamp(TimeUnit::Microsecond, None))?.as_primitive().clone())
            }
            DataType::Null => Column::Null,
            _ => Column::Unsupported,
        })
    }

    fn cell(&self, i: usize) -> Cell<'_> {
        macro_rules! value_or_null {
            ($array:expr, $wrap:expr) => {
                if $array.is_null(i) { Cell::Null } else { $wrap($array.value(i)) }
            };
        }
        match self {
            Column::Utf8(a) => value_or_null!(a, Cell::Str),
            Column::LargeUtf8(a) => value_or_null!(a, Cell::Str),
            Column::Utf8View(a) => value_or_null!(a, Cell::Str),
            Column::Dictionary(a, values) => {
                if a.is_null(i) {
                    Cell::Null
                } else {
                    let key = a.keys().value(i) as usize;
                    Cell::Dict(key as u32, values.value(key))
                }
            }
            Column::Int(a) => value_or_null!(a, Cell::Int),
            Column::Float(a) => value_or_null!(a, Cell::Float),
            Column::Decimal(a, scale) => value_or_null!(a, |x| Cell::Float(decimal_f64(x, *scale))),
            Column::Bool(a) => value_or_null!(a, Cell::Bool),
            Column::Micros(a) => value_or_null!(a, Cell::Micros),
            Column::Null => Cell::Null,
            Column::Unsupported => Cell::Nested,
        }
    }
}

/// The fast lane for event rows: string, dictionary or integer user ids, dictionary-encoded
/// channels (plain strings are turned into one per batch), and flags, timestamps and values
/// of any type. Native types are read straight from the typed arrays (boolean and integer
/// flags, timestamps, integer epoch numbers, float and decimal values), the integers as the
/// per-row rules read them; any other type is read cell by cell with the per-row rules' own
/// functions ([`read_flag`], [`read_timestamp`], [`read_number`]), so float flags, float
/// epochs and strings take the lane without a rule of their own. A row with anything unusual in it (a null, a flag or time those functions
/// refuse, a negative or non-finite value, white space to trim) is left to the per-row
/// rules of [`Rows::push`], so both lanes keep the same rows and report the same problems.
struct EventLane<'a> {
    users: &'a Column,
    times: Times<'a>,
    channel_keys: &'a DictionaryArray<Int32Type>,
    channel_names: &'a StringArray,
    flags: Flags<'a>,
    values: Option<Values<'a>>,
}

/// The timestamps of a batch: native microseconds, integer epoch numbers (read as
/// [`read_timestamp`] reads them, without a cell per row), or cells read by [`read_timestamp`].
enum Times<'a> {
    Micros(&'a TimestampMicrosecondArray),
    Epoch(&'a Int64Array),
    Cells(&'a Column),
}

/// The conversion flags of a batch: booleans, integers (0 and 1, as [`read_flag`] reads
/// them), words of a dictionary (each word read by [`read_flag`] once, `by_key`), or cells
/// read by [`read_flag`].
enum Flags<'a> {
    Bool(&'a BooleanArray),
    Int(&'a Int64Array),
    Dictionary { keys: &'a DictionaryArray<Int32Type>, by_key: Vec<Option<bool>> },
    Cells(&'a Column),
}

/// The conversion values of a batch: doubles, decimals (with their scale), or cells read by
/// [`read_number`].
enum Values<'a> {
    Float(&'a Float64Array),
    Decimal(&'a Decimal128Array, i8),
    Cells(&'a Column),
}

/// A decimal as a double: Arrow's own conversion of one value, the double its cast to
/// `Float64` gives (a unit test compares them).
#[inline]
fn decimal_f64(unscaled: i128, scale: i8) -> f64 {
    single_decimal_to_float_lossy::<Decimal128Type, _>(&|x: i128| x as f64, unscaled, scale.into())
}

impl Times<'_> {
    /// Row `i`'s time, `None` when the per-row rules must decide.
    #[inline]
    fn at(&self, i: usize) -> Option<i64> {
        match self {
            Times::Micros(a) => a.is_valid(i).then(|| a.value(i)),
            Times::Epoch(a) => a.is_valid(i).then(|| epoch_int_micros(a.value(i))).flatten(),
            Times::Cells(c) => read_timestamp(c.cell(i)),
        }
    }
}

impl Flags<'_> {
    /// Row `i`'s flag (null is "not a conversion"), `None` when the per-row rules must decide.
    #[inline]
    fn at(&self, i: usize) -> Option<bool> {
        match self {
            Flags::Bool(a) => Some(a.is_valid(i) && a.value(i)),
            Flags::Int(a) if a.is_null(i) => Some(false),
            Flags::Int(a) => match a.value(i) {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            },
            Flags::Dictionary { keys, .. } if keys.is_null(i) => Some(false),
            Flags::Dictionary { keys, by_key } => by_key[keys.keys().value(i) as usize],
            Flags::Cells(c) => read_flag(c.cell(i)),
        }
    }
}

impl Values<'_> {
    /// A conversion row's value (0 when empty), `None` when the per-row rules must decide
    /// (negative, not finite, unreadable).
    #[inline]
    fn at(&self, i: usize) -> Option<f64> {
        let value = match self {
            Values::Float(a) if a.is_null(i) => 0.0,
            Values::Float(a) => a.value(i),
            Values::Decimal(a, _) if a.is_null(i) => 0.0,
            Values::Decimal(a, scale) => decimal_f64(a.value(i), *scale),
            Values::Cells(c) => read_number(c.cell(i)).ok()?.unwrap_or(0.0),
        };
        (value.is_finite() && value >= 0.0).then_some(value)
    }
}

impl<'a> EventLane<'a> {
    fn new(columns: &'a [Option<Column>], c: &EventColumns) -> Option<EventLane<'a>> {
        let column = |i: usize| columns.get(i).and_then(Option::as_ref);
        let users = column(c.user_id)?;
        if !matches!(
            users,
            Column::Utf8(_) | Column::LargeUtf8(_) | Column::Utf8View(_) | Column::Dictionary(..) | Column::Int(_)
        ) {
            return None;
        }
        let times = match column(c.timestamp)? {
            Column::Micros(times) => Times::Micros(times),
            Column::Int(times) => Times::Epoch(times),
            other => Times::Cells(other),
        };
        // Channels that rules name from other columns, and rows that carry touch keys (a
        // breakdown) or segment values, take the per-row path.
        if c.takes_per_row_path() {
            return None;
        }
        let Column::Dictionary(channel_keys, channel_names) = column(c.channel.named()?)? else { return None };
        // Flags from an event type column take the per-row path.
        let ConversionColumn::Flag(flag) = c.conversion else { return None };
        let flags = match column(flag)? {
            Column::Bool(flags) => Flags::Bool(flags),
            Column::Int(flags) => Flags::Int(flags),
            Column::Dictionary(keys, words) => Flags::Dictionary {
                keys,
                by_key: words.iter().map(|word| read_flag(word.map_or(Cell::Null, Cell::Str))).collect(),
            },
            other => Flags::Cells(other),
        };
        let values = match c.conversion_value {
            None => None,
            Some(i) => match column(i)? {
                Column::Float(values) => Some(Values::Float(values)),
                Column::Decimal(values, scale) => Some(Values::Decimal(values, *scale)),
                other => Some(Values::Cells(other)),
            },
        };
        Some(EventLane { users, times, channel_keys, channel_names, flags, values })
    }

    /// Appends the batch's rows from `from` on, up to the first that needs the per-row
    /// rules; returns that row's index (the batch's length when every row was taken).
    fn append(&self, from: usize, numbers: &[u64], rows: &mut Rows) -> Result<usize, AttributionError> {
        match self.users {
            Column::Utf8(a) => {
                self.append_with(from, numbers, rows, |i| a.is_valid(i).then(|| UserCell::Text(a.value(i))))
            }
            Column::LargeUtf8(a) => {
                self.append_with(from, numbers, rows, |i| a.is_valid(i).then(|| UserCell::Text(a.value(i))))
            }
            Column::Utf8View(a) => {
                self.append_with(from, numbers, rows, |i| a.is_valid(i).then(|| UserCell::Text(a.value(i))))
            }
            Column::Dictionary(a, values) => self.append_with(from, numbers, rows, |i| {
                a.is_valid(i).then(|| UserCell::Text(values.value(a.keys().value(i) as usize)))
            }),
            Column::Int(a) => {
                self.append_with(from, numbers, rows, |i| a.is_valid(i).then(|| UserCell::Int(a.value(i))))
            }
            _ => Ok(from),
        }
    }

    /// [`EventLane::append`] for one type of user id column: a loop per batch, so the
    /// type is matched once rather than once per row.
    fn append_with<'u>(
        &self,
        from: usize,
        numbers: &[u64],
        rows: &mut Rows,
        user: impl Fn(usize) -> Option<UserCell<'u>>,
    ) -> Result<usize, AttributionError> {
        let Some(mut sink) = rows.clean_event_sink(|key| self.channel_names.value(key as usize)) else {
            return Ok(from);
        };
        let channel_keys = self.channel_keys.keys().values();
        let mut number = [0u8; 24];
        let mut i = from;
        while i < numbers.len() {
            let user = match user(i) {
                Some(UserCell::Text(text)) if is_plain_text(text, MAX_USER_ID_BYTES) => text.as_bytes(),
                Some(UserCell::Int(value)) => format_int(value, &mut number),
                _ => break,
            };
            let Some(timestamp) = self.times.at(i) else { break };
            let Some(is_conversion) = self.flags.at(i) else { break };
            let channel_key = if self.channel_keys.is_null(i) {
                // A touch needs a channel; the per-row rules say so.
                if !is_conversion {
                    break;
                }
                None
            } else {
                Some(channel_keys[i] as u32)
            };
            // Values of touches are not read, as by the per-row rules.
            let value = match &self.values {
                Some(values) if is_conversion => match values.at(i) {
                    Some(value) => value,
                    None => break,
                },
                _ => 0.0,
            };
            let event = CleanEvent { row: numbers[i], user, timestamp, channel_key, is_conversion, value };
            if !sink.push(event)? {
                break;
            }
            i += 1;
        }
        sink.finish()?;
        Ok(i)
    }
}

/// A user id cell as the fast lane reads it.
enum UserCell<'a> {
    Text(&'a str),
    Int(i64),
}

fn parquet_error(error: parquet::errors::ParquetError) -> AttributionError {
    AttributionError::new(
        ErrorCode::TruncatedInput,
        format!("cannot read the Parquet file ({error}); is it complete and a valid Parquet file?"),
    )
}

#[cfg(test)]
mod tests {
    use arrow::array::{NullArray, RecordBatch, UInt64Array};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::chunk::EventChunk;

    /// 2026-01-01T00:00:00Z in microseconds.
    const BASE_MICROS: i64 = 1_767_225_600_000_000;

    /// Events whose time is their 0-based row in seconds past [`BASE_MICROS`], in row groups
    /// of `group_rows`.
    fn parquet_file(rows: usize, group_rows: usize) -> bytes::Bytes {
        let users: Vec<String> = (0..rows).map(|i| format!("u{}", i % 97)).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user_id", Arc::new(StringArray::from(users))),
            (
                "timestamp",
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..rows as i64).map(|i| BASE_MICROS + i * 1_000_000),
                )),
            ),
            (
                "channel",
                Arc::new(StringArray::from_iter_values((0..rows).map(|i| ["email", "search", "display"][i % 3]))),
            ),
            ("conversion", Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 13 == 0))))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(group_rows)).build();
        written(&batch, Some(properties))
    }

    /// `batch` as a Parquet file.
    fn written(batch: &RecordBatch, properties: Option<WriterProperties>) -> bytes::Bytes {
        let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), properties).unwrap();
        writer.write(batch).unwrap();
        bytes::Bytes::from(writer.into_inner().unwrap())
    }

    /// Every event block of a whole file read with the default spec.
    fn event_chunks(file: bytes::Bytes) -> Vec<EventChunk> {
        let mut chunks = Vec::new();
        read_parquet::<_, AttributionError>(file, &InputSpec::default(), None, |block| {
            let Block::Events(chunk) = block else { panic!("event rows") };
            chunks.push(chunk);
            Ok(())
        })
        .unwrap();
        chunks
    }

    #[test]
    fn a_decimal_read_cell_by_cell_is_the_double_arrows_cast_gives() {
        // Exact and inexact quotients, values past 2^53 (rounded once from their text), and
        // scales past the powers of ten a double holds exactly.
        let unscaled = [0, 1, -1, 5, 12_345, 10_001, 999_999_999, 9_007_199_254_740_993, -(1i128 << 70), i128::MAX / 3];
        for scale in [0i8, 1, 2, 7, 18, 23, 30, -3] {
            let precision = 38;
            let array = Decimal128Array::from_iter_values(unscaled).with_precision_and_scale(precision, scale).unwrap();
            let cast = cast(&array, &DataType::Float64).unwrap();
            let cast = cast.as_primitive::<arrow::datatypes::Float64Type>();
            let column = Column::new(&(Arc::new(array) as ArrayRef)).unwrap();
            for (i, &x) in unscaled.iter().enumerate() {
                let Cell::Float(read) = column.cell(i) else { panic!("a decimal is read as a double") };
                assert_eq!(read.to_bits(), cast.value(i).to_bits(), "{x} at scale {scale}");
            }
        }
    }

    #[test]
    fn unsigned_user_ids_past_the_signed_range_are_read_as_their_decimal_text() {
        let ids = [u64::MAX, 1 << 63, 5];
        let rows = ids.len() * 4;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user_id", Arc::new(UInt64Array::from_iter_values((0..rows).map(|i| ids[i % ids.len()])))),
            ("timestamp", Arc::new(Int64Array::from_iter_values((0..rows as i64).map(|i| 1_767_225_600 + i)))),
            ("channel", Arc::new(StringArray::from_iter_values((0..rows).map(|_| "email")))),
            ("conversion", Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 5 == 0))))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let chunks = event_chunks(written(&batch, None));
        let keys: Vec<u128> = chunks.iter().flat_map(|chunk| chunk.user_keys.iter().copied()).collect();
        let expected: Vec<u128> =
            (0..rows).map(|i| crate::chunk::user_key(ids[i % ids.len()].to_string().as_bytes())).collect();
        assert_eq!(keys, expected);
    }

    #[test]
    fn dictionaries_of_numbers_are_read_as_their_values() {
        // A pandas categorical of integers, as pyarrow writes it: user ids and 0/1 flags.
        let rows = 40usize;
        let dictionary = |values: ArrayRef, key: &dyn Fn(usize) -> i8| -> ArrayRef {
            let keys = arrow::array::Int8Array::from_iter_values((0..rows).map(key));
            Arc::new(DictionaryArray::<arrow::datatypes::Int8Type>::try_new(keys, values).unwrap())
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("user_id", dictionary(Arc::new(Int64Array::from(vec![7, 1 << 40, -3])), &|i| (i % 3) as i8)),
            ("timestamp", Arc::new(Int64Array::from_iter_values((0..rows as i64).map(|i| 1_767_225_600 + i)))),
            ("channel", Arc::new(StringArray::from_iter_values((0..rows).map(|_| "email")))),
            ("conversion", dictionary(Arc::new(Int64Array::from(vec![0, 1])), &|i| i8::from(i % 4 == 3))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let chunks = event_chunks(written(&batch, None));
        let keys: Vec<u128> = chunks.iter().flat_map(|chunk| chunk.user_keys.iter().copied()).collect();
        let conversions: usize = chunks.iter().map(|chunk| chunk.is_conversion.iter().filter(|&&c| c).count()).sum();
        let ids = ["7", "1099511627776", "-3"];
        let expected: Vec<u128> = (0..rows).map(|i| crate::chunk::user_key(ids[i % 3].as_bytes())).collect();
        assert_eq!(keys, expected);
        assert_eq!(conversions, rows / 4);
    }

    #[test]
    fn a_value_column_of_the_null_type_gives_conversions_no_value() {
        let file = parquet_file(100, 1_000);
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let batch = reader.into_iter().next().unwrap().unwrap();
        let mut columns: Vec<(String, ArrayRef, bool)> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, column)| (f.name().clone(), Arc::clone(column), f.is_nullable()))
            .collect();
        // A null array counts no nulls of its own: its field is made nullable by hand.
        columns.push(("conversion_value".to_owned(), Arc::new(NullArray::new(100)), true));
        let batch = RecordBatch::try_from_iter_with_nullable(columns).unwrap();
        let chunks = event_chunks(written(&batch, None));
        assert!(chunks.iter().all(|chunk| chunk.values.iter().all(|&v| v == 0.0)));
        let conversions: usize = chunks.iter().map(|chunk| chunk.is_conversion.iter().filter(|&&c| c).count()).sum();
        assert_eq!(conversions, 8);
    }

    #[test]
    fn rows_are_numbered_by_their_place_in_the_file_whatever_the_batches_and_row_groups() {
        // Row groups of 3,000 rows read in batches of 1,024: each group takes three batches,
        // the last one short, and no batch spans two groups.
        let file = parquet_file(7_000, 3_000);
        let spec = InputSpec { block_rows: 1_024, ..Default::default() };
        for (groups, expected) in [(vec![1, 2], 3_001..=7_000u64), (vec![0], 1..=3_000), (vec![2], 6_001..=7_000)] {
            let mut numbers = Vec::new();
            read_parquet::<_, AttributionError>(file.clone(), &spec, Some(&groups), |block| {
                let Block::Events(chunk) = block else { panic!("event rows") };
                for (row, &number) in chunk.row_numbers.iter().enumerate() {
                    // Each row's number is the one its time was written with.
                    assert_eq!(chunk.timestamps[row], BASE_MICROS + (number as i64 - 1) * 1_000_000, "row {number}");
                    numbers.push(number);
                }
                Ok(())
            })
            .unwrap();
            numbers.sort_unstable();
            assert_eq!(numbers, expected.collect::<Vec<_>>(), "row groups {groups:?}");
        }
    }
}
