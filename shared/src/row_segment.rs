//! Event rows in a compact byte layout, for the hand-overs that store rows once and read
//! them back once: the local command's spill files and the service's chunk files. Pure:
//! it encodes into memory and parses borrowed bytes.
//!
//! A segment is the lengths of its five sections (u64 LE each), then the sections:
//! 1. records, in one of two [`Layout`]s: [`RECORD_BYTES`] per row (user key, u128 LE;
//!    time, i64 LE, UTC microseconds; channel id and conversion flag, a [`TaggedChannel`],
//!    u32 LE), as rows are collected; or packed, a user key once per run of its rows and
//!    times as differences, for the hand-overs whose bytes cost more than their packing;
//! 2. values: the value (f64 LE) of each conversion row, in row order (touches have none);
//! 3. row numbers (u64 LE per row) and 4. user ids (length u32 LE and UTF-8 bytes per
//!    row), both kept only for the per-journey credits, both empty otherwise;
//! 5. segment ids (u32 LE per row) with `segment_by`, empty otherwise.
//!
//! Without row numbers, rows are numbered by their order, which keeps the ties of
//! docs/user-guide.md, "Journeys" when the rows come in file order.

use std::io::Write;

use crate::chunk::{EventChunk, NO_CHANNEL, NO_SEGMENT, TaggedChannel, partition_of};

/// One row's record: user key (16 bytes), time (8), tagged channel (4).
pub const RECORD_BYTES: usize = 28;
const SECTIONS: usize = 5;
/// The section lengths that start a segment.
pub const HEADER_BYTES: usize = 8 * SECTIONS;

/// How a segment's records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// [`RECORD_BYTES`] per row, as a [`SegmentBuffer`] collects them: the local spill's
    /// (its files are written and read back by one process, soon, and packing cost it more
    /// CPU than the bytes it saved: docs/benchmarks.md).
    Fixed,
    /// The row count (u64 LE) and the time unit (u64 LE: microseconds, the largest of
    /// 10^6, 10^3 and 1 that divides every time), then per row: a LEB128 number holding
    /// the channel id plus one (0: no channel) shifted left by two, the conversion flag
    /// (bit 1) and whether a user key follows (bit 0: the row's key differs from the row
    /// before's); that key (u128 LE); and the row's time in units, less the row before's
    /// (0 for the first row), zigzag LEB128. Rows in time order take 18 to 20 bytes in
    /// place of 28, a user's run of rows 2 to 5 after its first, and the bytes written are
    /// most of a hand-over's cost (docs/benchmarks.md).
    Packed,
}

/// Why stored rows could not be read: the bytes are cut short or damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SegmentError(&'static str);

/// One row's record (see [`RECORD_BYTES`]).
pub fn record(key: u128, time: i64, channel: u32, is_conversion: bool) -> [u8; RECORD_BYTES] {
    let tag = TaggedChannel::new(channel, is_conversion).bits();
    let mut record = [0u8; RECORD_BYTES];
    record[..16].copy_from_slice(&key.to_le_bytes());
    record[16..24].copy_from_slice(&time.to_le_bytes());
    record[24..].copy_from_slice(&tag.to_le_bytes());
    record
}

/// Rows being collected in segment layout (the partition buffers of the local spill and of
/// the split stage).
#[derive(Debug, Clone, Default)]
pub struct SegmentBuffer {
    /// Public so that a writer can sort records in bulk and size the buffer itself.
    pub records: Vec<[u8; RECORD_BYTES]>,
    values: Vec<u8>,
    row_numbers: Vec<u8>,
    user_ids: Vec<u8>,
    segment_ids: Vec<u8>,
}

impl SegmentBuffer {
    /// An empty buffer with room for `rows` records.
    pub fn with_capacity(rows: usize) -> SegmentBuffer {
        SegmentBuffer { records: Vec::with_capacity(rows), ..Default::default() }
    }

    pub fn rows(&self) -> usize {
        self.records.len()
    }

    /// Appends one row: its record, and its value when it is a conversion.
    pub fn push_row(&mut self, key: u128, time: i64, channel: u32, is_conversion: bool, value: f64) {
        self.records.push(record(key, time, channel, is_conversion));
        if is_conversion {
            self.push_value(value);
        }
    }

    /// Appends every row of `chunk` (channel and segment ids as they are), with the row
    /// identity when the chunk keeps user ids.
    pub fn push_chunk(&mut self, chunk: &EventChunk) {
        for row in 0..chunk.len() {
            let (channel, is_conversion) = (chunk.channel_ids[row], chunk.is_conversion[row]);
            self.push_row(chunk.user_keys[row], chunk.timestamps[row], channel, is_conversion, chunk.values[row]);
            if let Some(ids) = &chunk.user_ids {
                self.push_identity(chunk.row_numbers[row], &ids[row]);
            }
        }
        for &id in &chunk.segment_ids {
            self.push_segment_id(id);
        }
    }

    /// The value of the next conversion row.
    pub fn push_value(&mut self, value: f64) {
        self.values.extend_from_slice(&value.to_le_bytes());
    }

    /// The next row's number and user id, when they are kept.
    pub fn push_identity(&mut self, row_number: u64, user_id: &str) {
        self.row_numbers.extend_from_slice(&row_number.to_le_bytes());
        self.user_ids.extend_from_slice(&(user_id.len() as u32).to_le_bytes());
        self.user_ids.extend_from_slice(user_id.as_bytes());
    }

    /// The next row's segment id (`segment_by`).
    pub fn push_segment_id(&mut self, id: u32) {
        self.segment_ids.extend_from_slice(&id.to_le_bytes());
    }

    /// Removes every row, keeping the memory.
    pub fn clear(&mut self) {
        self.records.clear();
        self.values.clear();
        self.row_numbers.clear();
        self.user_ids.clear();
        self.segment_ids.clear();
    }

    pub fn segment(&self) -> Segment<'_> {
        Segment {
            sections: [self.records.as_flattened(), &self.values, &self.row_numbers, &self.user_ids, &self.segment_ids],
            layout: Layout::Fixed,
            rows: self.records.len(),
        }
    }
}

/// A block's records sorted by partition with a counting sort into a staging area that
/// stays in the core's own cache, so that each partition's rows are then appended with one
/// copy: writing rows one by one to a hundred or a thousand far-apart buffers stalls on
/// memory. The block is staged a slice of rows at a time ([`staged_rows`]): a whole block's
/// records (1.8 MB at 65,536 rows) outgrow the cache, and the scattered writes into it were
/// most of the sort's time. Kept from block to block (the local spill's writers and the
/// split stage).
#[derive(Debug, Clone, Default)]
pub struct PartitionRuns {
    /// The partition of each row of the block last routed, in row order.
    partition_of_row: Vec<u32>,
    /// The block's rows in each partition.
    rows: Vec<u32>,
    /// Run p of `staging` is `run_starts[p]..run_starts[p + 1]`.
    run_starts: Vec<u32>,
    cursor: Vec<u32>,
    staging: Vec<[u8; RECORD_BYTES]>,
}

/// Bytes of records staged at once: well inside a core's own cache (512 KiB to 2 MiB).
const STAGED_BYTES: usize = 256 << 10;

/// Rows staged at once among `partitions`: [`STAGED_BYTES`] of records, but at least 16 rows
/// a partition on average, so that a run's copy is not mostly the call's own cost.
fn staged_rows(partitions: usize) -> usize {
    (STAGED_BYTES / RECORD_BYTES).max(partitions * 16)
}

impl PartitionRuns {
    /// Finds the partition among `partitions` of each row of `block` by its user's key.
    pub fn route(&mut self, block: &EventChunk, partitions: u32) {
        self.partition_of_row.clear();
        self.partition_of_row.extend(block.user_keys.iter().map(|&key| partition_of(key, partitions)));
        self.rows.clear();
        self.rows.resize(partitions as usize, 0);
        for &p in &self.partition_of_row {
            self.rows[p as usize] += 1;
        }
    }

    /// How many rows of the block last routed are partition `p`'s.
    pub fn rows_of(&self, p: usize) -> usize {
        self.rows[p] as usize
    }

    /// Hands `append` each partition's records of the block last routed, in row order
    /// (a partition's rows may come in several runs, one per staged slice of the block);
    /// `channel_map` turns the block's channel ids into global ones (ids it does not cover,
    /// such as [`NO_CHANNEL`], are kept).
    pub fn for_each_run(
        &mut self,
        block: &EventChunk,
        channel_map: &[u32],
        mut append: impl FnMut(usize, &[[u8; RECORD_BYTES]]),
    ) {
        let partitions = self.rows.len();
        let step = staged_rows(partitions);
        let mut first = 0;
        while first < block.len() {
            let end = (first + step).min(block.len());
            let slice = &self.partition_of_row[first..end];
            self.run_starts.clear();
            self.run_starts.resize(partitions + 1, 0);
            for &p in slice {
                self.run_starts[p as usize + 1] += 1;
            }
            for p in 0..partitions {
                self.run_starts[p + 1] += self.run_starts[p];
            }
            self.cursor.clone_from(&self.run_starts);
            // Every slot below the slice's length is written below: only growth needs filling.
            if self.staging.len() < slice.len() {
                self.staging.resize(slice.len(), [0; RECORD_BYTES]);
            }
            for (row, &p) in (first..end).zip(slice) {
                let channel = block.channel_ids[row];
                let channel = channel_map.get(channel as usize).copied().unwrap_or(channel);
                let slot = &mut self.cursor[p as usize];
                self.staging[*slot as usize] =
                    record(block.user_keys[row], block.timestamps[row], channel, block.is_conversion[row]);
                *slot += 1;
            }
            for p in 0..partitions {
                let run = &self.staging[self.run_starts[p] as usize..self.run_starts[p + 1] as usize];
                if !run.is_empty() {
                    append(p, run);
                }
            }
            first = end;
        }
    }

    /// Appends to each row's partition buffer what the row carries besides its record (a
    /// conversion's value; with `keep_identity` its row number and user id; with segments
    /// its segment id, mapped by `segment_map`), in row order, which is each partition's
    /// order too. `block` is the block last routed.
    pub fn push_extras(
        &self,
        block: &EventChunk,
        buffers: &mut [SegmentBuffer],
        keep_identity: bool,
        segment_map: &[u32],
    ) {
        let has_segments = block.has_segments();
        for (row, &p) in self.partition_of_row.iter().enumerate() {
            if !keep_identity && !has_segments && !block.is_conversion[row] {
                continue; // most rows: nothing beyond the record
            }
            let buffer = &mut buffers[p as usize];
            if block.is_conversion[row] {
                buffer.push_value(block.values[row]);
            }
            if keep_identity {
                let id = block.user_ids.as_ref().map_or("", |ids| ids[row].as_str());
                buffer.push_identity(block.row_numbers[row], id);
            }
            if has_segments {
                let segment = block.segment_ids[row];
                buffer.push_segment_id(segment_map.get(segment as usize).copied().unwrap_or(NO_SEGMENT));
            }
        }
    }
}

/// Ids of stored rows in the dictionaries of the chunk they are read into: the id of each
/// stored name, by stored id (`None`: the ids are already the chunk's).
#[derive(Debug, Clone, Copy, Default)]
pub struct IdMaps<'m> {
    pub channels: Option<&'m [u32]>,
    pub segments: Option<&'m [u32]>,
}

/// Maps `id` through `map` (`none`, the id of no name, maps to itself); `None` when the
/// id names nothing the map knows.
fn mapped(id: u32, none: u32, map: Option<&[u32]>) -> Option<u32> {
    match map {
        Some(map) if id != none => map.get(id as usize).copied(),
        _ => Some(id),
    }
}

/// Rows in their stored form, borrowed from the bytes they were read from or from a
/// [`SegmentBuffer`].
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    sections: [&'a [u8]; SECTIONS],
    layout: Layout,
    rows: usize,
}

impl<'a> Segment<'a> {
    /// Writes the segment as it is: its section lengths, then each section whole.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut header = [0u8; HEADER_BYTES];
        for (slot, section) in header.chunks_exact_mut(8).zip(self.sections) {
            slot.copy_from_slice(&(section.len() as u64).to_le_bytes());
        }
        out.write_all(&header)?;
        for section in self.sections {
            out.write_all(section)?;
        }
        Ok(())
    }

    /// Appends the segment to `out` with its records [`Layout::Packed`].
    pub fn write_packed(&self, out: &mut Vec<u8>) {
        let Layout::Fixed = self.layout else {
            return self.write_to(out).expect("writing to memory cannot fail");
        };
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_BYTES]);
        pack_records(self.sections[0], out);
        let packed = out.len() - start - HEADER_BYTES;
        let lengths = std::iter::once(packed).chain(self.sections[1..].iter().map(|section| section.len()));
        for (slot, length) in out[start..start + HEADER_BYTES].chunks_exact_mut(8).zip(lengths) {
            slot.copy_from_slice(&(length as u64).to_le_bytes());
        }
        for section in &self.sections[1..] {
            out.extend_from_slice(section);
        }
    }

    /// Bytes the segment takes once written as it is.
    pub fn stored_bytes(&self) -> usize {
        HEADER_BYTES + self.sections.iter().map(|section| section.len()).sum::<usize>()
    }

    /// Reads the segment at the start of `bytes`, its records in `layout`, and advances
    /// past it.
    pub fn parse(bytes: &mut &'a [u8], layout: Layout) -> Result<Segment<'a>, SegmentError> {
        let (header, mut rest) =
            bytes.split_at_checked(HEADER_BYTES).ok_or(SegmentError("segment header cut short"))?;
        let mut sections = [&[][..]; SECTIONS];
        for (section, length) in sections.iter_mut().zip(header.chunks_exact(8)) {
            let length = usize::try_from(u64::from_le_bytes(length.try_into().expect("8 bytes")))
                .map_err(|_| SegmentError("segment cut short"))?;
            let (taken, after) = rest.split_at_checked(length).ok_or(SegmentError("segment cut short"))?;
            *section = taken;
            rest = after;
        }
        let rows = match layout {
            Layout::Fixed => sections[0].len() / RECORD_BYTES,
            Layout::Packed => {
                let head = sections[0].get(..PACKED_HEAD_BYTES).ok_or(SegmentError("record section cut short"))?;
                let rows = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
                // Each packed row takes two bytes at least: a count past that is damage,
                // and must not size the chunk.
                let most = (sections[0].len() - PACKED_HEAD_BYTES) / 2;
                usize::try_from(rows)
                    .ok()
                    .filter(|&rows| rows <= most)
                    .ok_or(SegmentError("too many rows for the records"))?
            }
        };
        *bytes = rest;
        Ok(Segment { sections, layout, rows })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// True when the rows carry their row numbers and user ids.
    pub fn keeps_identity(&self) -> bool {
        !self.sections[2].is_empty()
    }

    /// True when the rows carry segment ids (`segment_by`).
    pub fn has_segment_ids(&self) -> bool {
        !self.sections[4].is_empty()
    }

    /// Appends the rows to `chunk`, their ids mapped by `maps`. User ids are read when the
    /// chunk keeps them. On an error the chunk holds part of the rows: drop it.
    pub fn append_to(&self, chunk: &mut EventChunk, maps: IdMaps<'_>) -> Result<(), SegmentError> {
        let [records, values, row_numbers, user_ids, segment_ids] = self.sections;
        let rows = self.rows();
        let check = |ok: bool, problem: &'static str| if ok { Ok(()) } else { Err(SegmentError(problem)) };
        check(self.layout == Layout::Packed || records.len() % RECORD_BYTES == 0, "record section cut short")?;
        check(values.len() % 8 == 0, "value section cut short")?;
        check(
            row_numbers.is_empty() || row_numbers.len() == rows * 8,
            "row number section does not match the records",
        )?;
        check(
            segment_ids.is_empty() || segment_ids.len() == rows * 4,
            "segment id section does not match the records",
        )?;
        check(
            rows == 0 || segment_ids.is_empty() == chunk.segment_ids.is_empty() || chunk.is_empty(),
            "rows with and without segment ids in one partition",
        )?;
        chunk.user_keys.reserve(rows);
        chunk.timestamps.reserve(rows);
        chunk.channel_ids.reserve(rows);
        chunk.is_conversion.reserve(rows);
        chunk.values.reserve(rows);
        let mut values = values.chunks_exact(8).map(|v| f64::from_le_bytes(v.try_into().expect("8 bytes")));
        match self.layout {
            Layout::Fixed => {
                for record in records.chunks_exact(RECORD_BYTES) {
                    let (key, time, tag) = fields(record);
                    push_row(chunk, &mut values, maps, (key, time, tag.channel(), tag.is_conversion()))?;
                }
            }
            Layout::Packed => {
                let mut packed = PackedRecords::new(records)?;
                for _ in 0..rows {
                    push_row(chunk, &mut values, maps, packed.next()?)?;
                }
                check(packed.bytes.is_empty(), "more records than rows")?;
            }
        }
        check(values.next().is_none(), "more values than conversion rows")?;
        if row_numbers.is_empty() {
            // Numbered on from the rows before, so rows read with their numbers (an older
            // chunk file) and rows numbered by their order keep one order.
            let first = chunk.row_numbers.last().map_or(Some(1), |last| last.checked_add(1));
            let end = first.and_then(|first| first.checked_add(rows as u64));
            let (Some(first), Some(end)) = (first, end) else { return Err(SegmentError("row numbers out of range")) };
            chunk.row_numbers.extend(first..end);
        } else {
            chunk.row_numbers.extend(row_numbers.chunks_exact(8).map(|n| u64::from_le_bytes(n.try_into().expect("8"))));
        }
        chunk.segment_ids.reserve(segment_ids.len() / 4);
        for id in segment_ids.chunks_exact(4) {
            let id = u32::from_le_bytes(id.try_into().expect("4 bytes"));
            chunk.segment_ids.push(mapped(id, NO_SEGMENT, maps.segments).ok_or(SegmentError("unknown segment id"))?);
        }
        if let Some(ids) = &mut chunk.user_ids {
            ids.reserve(rows);
            let mut rest = user_ids;
            for _ in 0..rows {
                let (length, after) = rest.split_at_checked(4).ok_or(SegmentError("user id cut short"))?;
                let length = u32::from_le_bytes(length.try_into().expect("4 bytes")) as usize;
                let (id, after) = after.split_at_checked(length).ok_or(SegmentError("user id cut short"))?;
                ids.push(std::str::from_utf8(id).map_err(|_| SegmentError("user id is not UTF-8"))?.to_owned());
                rest = after;
            }
            check(rest.is_empty(), "more user ids than rows")?;
        }
        Ok(())
    }
}

/// The row count and the time unit that start packed records.
const PACKED_HEAD_BYTES: usize = 16;
/// Bit 0 of a packed row's first number: a user key follows.
const NEW_KEY: u64 = 1;
/// Bit 1: the row is a conversion.
const PACKED_CONVERSION: u64 = 2;

/// Appends a row given as (user key, time, channel id, conversion flag) to `chunk`, its
/// channel mapped by `maps` and its value the next of `values` when it is a conversion.
#[inline(always)]
fn push_row(
    chunk: &mut EventChunk,
    values: &mut impl Iterator<Item = f64>,
    maps: IdMaps<'_>,
    (key, time, channel, is_conversion): (u128, i64, u32, bool),
) -> Result<(), SegmentError> {
    let channel = mapped(channel, NO_CHANNEL, maps.channels).ok_or(SegmentError("unknown channel id"))?;
    chunk.user_keys.push(key);
    chunk.timestamps.push(time);
    chunk.channel_ids.push(channel);
    chunk.is_conversion.push(is_conversion);
    let value = if is_conversion { values.next().ok_or(SegmentError("conversion value missing"))? } else { 0.0 };
    chunk.values.push(value);
    Ok(())
}

/// A fixed record's user key, time and tagged channel.
fn fields(record: &[u8]) -> (u128, i64, TaggedChannel) {
    let (key, rest) = record.split_at(16);
    let (time, tag) = rest.split_at(8);
    (
        u128::from_le_bytes(key.try_into().expect("16 bytes")),
        i64::from_le_bytes(time.try_into().expect("8 bytes")),
        TaggedChannel::from_bits(u32::from_le_bytes(tag.try_into().expect("4 bytes"))),
    )
}

/// Appends fixed `records` to `out` in [`Layout::Packed`].
fn pack_records(records: &[u8], out: &mut Vec<u8>) {
    let divides = |unit: i64| records.chunks_exact(RECORD_BYTES).all(|record| fields(record).1 % unit == 0);
    // Each unit is a constant of its own loop, so that the division of every time by it is
    // a multiplication: a division instruction per row was half of the packing's time.
    if divides(1_000_000) {
        pack_records_in::<1_000_000>(records, out)
    } else if divides(1_000) {
        pack_records_in::<1_000>(records, out)
    } else {
        pack_records_in::<1>(records, out)
    }
}

/// [`pack_records`] with times in units of `UNIT` microseconds, which divides every time.
fn pack_records_in<const UNIT: i64>(records: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&((records.len() / RECORD_BYTES) as u64).to_le_bytes());
    out.extend_from_slice(&(UNIT as u64).to_le_bytes());
    let (mut last_key, mut last_time) = (None, 0i64);
    for record in records.chunks_exact(RECORD_BYTES) {
        let (key, time, tag) = fields(record);
        let channel = if tag.channel() == NO_CHANNEL { 0 } else { u64::from(tag.channel()) + 1 };
        let new_key = last_key != Some(key);
        let flags = if tag.is_conversion() { PACKED_CONVERSION } else { 0 } | if new_key { NEW_KEY } else { 0 };
        put_number(out, (channel << 2) | flags);
        if new_key {
            out.extend_from_slice(&key.to_le_bytes());
            last_key = Some(key);
        }
        let time = time / UNIT;
        let step = time.wrapping_sub(last_time);
        put_number(out, ((step << 1) ^ (step >> 63)) as u64);
        last_time = time;
    }
}

/// Appends `value` as LEB128: seven bits a byte, low bits first, the top bit set on every
/// byte but the last.
fn put_number(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The largest stored channel (a channel id plus one) of a packed row: ids stay below
/// 2^31 - 1, the stored form of "no channel" in a [`TaggedChannel`].
const MAX_PACKED_CHANNEL: u64 = (NO_CHANNEL >> 1) as u64;

/// A reader of packed records, after their row count and time unit.
struct PackedRecords<'a> {
    bytes: &'a [u8],
    unit: i64,
    /// The user key of the row before; `None` before the first.
    key: Option<u128>,
    time: i64,
}

impl<'a> PackedRecords<'a> {
    /// `records` holds a head (checked by [`Segment::parse`]).
    fn new(records: &'a [u8]) -> Result<PackedRecords<'a>, SegmentError> {
        let unit = u64::from_le_bytes(records[8..PACKED_HEAD_BYTES].try_into().expect("8 bytes"));
        let unit = i64::try_from(unit).ok().filter(|&unit| unit > 0).ok_or(SegmentError("time unit out of range"))?;
        Ok(PackedRecords { bytes: &records[PACKED_HEAD_BYTES..], unit, key: None, time: 0 })
    }

    /// The next row's user key, time, channel id and conversion flag.
    #[inline(always)]
    fn next(&mut self) -> Result<(u128, i64, u32, bool), SegmentError> {
        let head = self.number()?;
        let key = if head & NEW_KEY != 0 {
            let (key, rest) = self.bytes.split_first_chunk::<16>().ok_or(SegmentError("user key cut short"))?;
            self.bytes = rest;
            *self.key.insert(u128::from_le_bytes(*key))
        } else {
            self.key.ok_or(SegmentError("the first record has no user key"))?
        };
        let channel = match head >> 2 {
            0 => NO_CHANNEL,
            stored @ 1..=MAX_PACKED_CHANNEL => (stored - 1) as u32,
            _ => return Err(SegmentError("channel id out of range")),
        };
        let step = self.number()?;
        self.time = self.time.wrapping_add(((step >> 1) as i64) ^ -((step & 1) as i64));
        let time = self.time.checked_mul(self.unit).ok_or(SegmentError("time out of range"))?;
        Ok((key, time, channel, head & PACKED_CONVERSION != 0))
    }

    /// The next LEB128 number.
    #[inline(always)]
    fn number(&mut self) -> Result<u64, SegmentError> {
        match self.bytes.split_first() {
            // Most numbers are below 128: channel ids, and times a few seconds apart.
            Some((&byte, rest)) if byte < 0x80 => {
                self.bytes = rest;
                Ok(u64::from(byte))
            }
            _ => self.long_number(),
        }
    }

    fn long_number(&mut self) -> Result<u64, SegmentError> {
        let mut value = 0u64;
        for (at, &byte) in self.bytes.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * at);
            if byte < 0x80 {
                self.bytes = &self.bytes[at + 1..];
                return Ok(value);
            }
        }
        Err(SegmentError("packed number cut short"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five rows over three users; conversions carry values, one row has no channel and
    /// one no segment.
    fn sample(keep_identity: bool, with_segments: bool) -> EventChunk {
        let mut chunk = EventChunk::with_capacity(5, keep_identity);
        for (row, (user, channel, is_conversion)) in
            [(1u128 << 100, 0, false), (2, 1, false), (1 << 100, NO_CHANNEL, true), (3, 2, true), (2, 0, false)]
                .into_iter()
                .enumerate()
        {
            chunk.user_keys.push(user);
            chunk.timestamps.push(-5 + row as i64 * 1_000_000);
            chunk.channel_ids.push(channel);
            chunk.is_conversion.push(is_conversion);
            chunk.values.push(if is_conversion { 2.5 * row as f64 } else { 0.0 });
            chunk.row_numbers.push(10 + 3 * row as u64);
            if let Some(ids) = &mut chunk.user_ids {
                ids.push(format!("user-{user}-ü"));
            }
            if with_segments {
                chunk.segment_ids.push(if row == 1 { NO_SEGMENT } else { row as u32 % 2 });
            }
        }
        chunk
    }

    const LAYOUTS: [Layout; 2] = [Layout::Fixed, Layout::Packed];

    /// `chunk` as one segment at the end of `out`.
    fn encode_chunk(chunk: &EventChunk, out: &mut Vec<u8>, layout: Layout) {
        let mut buffer = SegmentBuffer::default();
        buffer.push_chunk(chunk);
        match layout {
            Layout::Fixed => buffer.segment().write_to(out).unwrap(),
            Layout::Packed => buffer.segment().write_packed(out),
        }
    }

    fn decode(bytes: &[u8], keep_identity: bool, maps: IdMaps<'_>, layout: Layout) -> Result<EventChunk, SegmentError> {
        let mut chunk = EventChunk::with_capacity(0, keep_identity);
        let mut rest = bytes;
        while !rest.is_empty() {
            Segment::parse(&mut rest, layout)?.append_to(&mut chunk, maps)?;
        }
        Ok(chunk)
    }

    fn assert_same_rows(a: &EventChunk, b: &EventChunk) {
        assert_eq!(a.user_keys, b.user_keys);
        assert_eq!(a.timestamps, b.timestamps);
        assert_eq!(a.channel_ids, b.channel_ids);
        assert_eq!(a.is_conversion, b.is_conversion);
        assert_eq!(a.values, b.values);
        assert_eq!(a.user_ids, b.user_ids);
        assert_eq!(a.segment_ids, b.segment_ids);
    }

    #[test]
    fn chunks_round_trip_with_and_without_identity_and_segments() {
        let cases = [false, true].into_iter().flat_map(|identity| [(identity, false), (identity, true)]);
        for ((keep_identity, with_segments), layout) in cases.flat_map(|case| LAYOUTS.map(|layout| (case, layout))) {
            let chunk = sample(keep_identity, with_segments);
            let mut bytes = Vec::new();
            encode_chunk(&chunk, &mut bytes, layout);
            let back = decode(&bytes, keep_identity, IdMaps::default(), layout).unwrap();
            assert_same_rows(&back, &chunk);
            let numbers = if keep_identity { chunk.row_numbers.clone() } else { (1..=5).collect() };
            assert_eq!(back.row_numbers, numbers, "without identity, rows are numbered by their order");
        }
    }

    /// `rows` rows of keys spread over the partitions (every 7th row a conversion, every
    /// 5th without a channel).
    fn spread(rows: usize) -> EventChunk {
        let mut chunk = EventChunk::with_capacity(rows, false);
        for row in 0..rows as u64 {
            chunk.user_keys.push(crate::chunk::user_key(&(row % 977).to_le_bytes()));
            chunk.timestamps.push(row as i64 * 3 - 1_000);
            chunk.channel_ids.push(if row.is_multiple_of(5) { NO_CHANNEL } else { (row % 3) as u32 });
            chunk.is_conversion.push(row.is_multiple_of(7));
            chunk.values.push(0.0);
            chunk.row_numbers.push(row + 1);
        }
        chunk
    }

    #[test]
    fn partition_runs_hold_each_partitions_records_in_row_order_with_channels_mapped() {
        let mut runs = PartitionRuns::default();
        let global = |channel: u32| if channel == NO_CHANNEL { NO_CHANNEL } else { 20 + channel };
        // Blocks of one staged slice and of several (the last one short), a larger block
        // first: the staging area it leaves behind is written over, not read.
        for (partitions, rows) in [(3, 5), (3, 2 * staged_rows(3) + 17), (3, 40), (700, 3 * staged_rows(700) - 1)] {
            let chunk = if rows == 5 { sample(false, false) } else { spread(rows) };
            runs.route(&chunk, partitions);
            let mut got: Vec<Vec<[u8; RECORD_BYTES]>> = vec![Vec::new(); partitions as usize];
            runs.for_each_run(&chunk, &[20, 21, 22], |p, records| {
                assert!(!records.is_empty(), "no empty runs");
                got[p].extend_from_slice(records);
            });
            for (p, got) in got.iter().enumerate() {
                let want: Vec<[u8; RECORD_BYTES]> = (0..chunk.len())
                    .filter(|&row| partition_of(chunk.user_keys[row], partitions) == p as u32)
                    .map(|row| {
                        let channel = global(chunk.channel_ids[row]);
                        record(chunk.user_keys[row], chunk.timestamps[row], channel, chunk.is_conversion[row])
                    })
                    .collect();
                assert_eq!(got, &want, "{rows} rows, partition {p}");
                assert_eq!(runs.rows_of(p), want.len());
            }
            let of_rows: Vec<u32> = chunk.user_keys.iter().map(|&key| partition_of(key, partitions)).collect();
            assert_eq!(runs.partition_of_row, of_rows);
        }
    }

    #[test]
    fn a_buffer_says_what_it_carries_and_how_many_bytes_it_takes() {
        for keep_identity in [false, true] {
            for with_segments in [false, true] {
                let mut buffer = SegmentBuffer::with_capacity(5);
                buffer.push_chunk(&sample(keep_identity, with_segments));
                let segment = buffer.segment();
                assert_eq!((segment.keeps_identity(), segment.has_segment_ids()), (keep_identity, with_segments));
                let mut written = Vec::new();
                segment.write_to(&mut written).unwrap();
                assert_eq!(written.len(), segment.stored_bytes());
                buffer.clear();
                assert_eq!((buffer.rows(), buffer.segment().stored_bytes()), (0, HEADER_BYTES));
            }
        }
    }

    #[test]
    fn ids_are_mapped_and_numbering_goes_on_from_the_rows_before() {
        for layout in LAYOUTS {
            let chunk = sample(false, true);
            let mut bytes = Vec::new();
            encode_chunk(&chunk, &mut bytes, layout);
            encode_chunk(&chunk, &mut bytes, layout);
            let maps = IdMaps { channels: Some(&[7, 8, 9]), segments: Some(&[4, 3]) };
            let back = decode(&bytes, false, maps, layout).unwrap();
            assert_eq!(back.channel_ids[..5], [7, 8, NO_CHANNEL, 9, 7]);
            assert_eq!(back.segment_ids[..5], [4, NO_SEGMENT, 4, 3, 4]);
            assert_eq!(back.row_numbers, (1..=10).collect::<Vec<_>>());
            let mut after_numbered = EventChunk::default();
            after_numbered.row_numbers.push(41);
            after_numbered.user_keys.push(0);
            after_numbered.segment_ids.push(0);
            let segment = Segment::parse(&mut &bytes[..], layout).unwrap();
            segment.append_to(&mut after_numbered, IdMaps::default()).unwrap();
            assert_eq!(after_numbered.row_numbers, [41, 42, 43, 44, 45, 46]);
        }
    }

    #[test]
    fn ids_outside_the_maps_and_inconsistent_sections_are_errors() {
        for layout in LAYOUTS {
            let chunk = sample(false, true);
            let mut bytes = Vec::new();
            encode_chunk(&chunk, &mut bytes, layout);
            let short_channels = IdMaps { channels: Some(&[0, 1]), segments: None };
            assert_eq!(decode(&bytes, false, short_channels, layout).unwrap_err(), SegmentError("unknown channel id"));
            let short_segments = IdMaps { channels: None, segments: Some(&[0]) };
            assert_eq!(decode(&bytes, false, short_segments, layout).unwrap_err(), SegmentError("unknown segment id"));
            // The same rows without segment ids, after rows with them.
            let mut mixed = bytes.clone();
            encode_chunk(&sample(false, false), &mut mixed, layout);
            let error = SegmentError("rows with and without segment ids in one partition");
            assert_eq!(decode(&mixed, false, IdMaps::default(), layout).unwrap_err(), error);
            // User ids asked of rows stored without them.
            let error = SegmentError("user id cut short");
            assert_eq!(decode(&bytes, true, IdMaps::default(), layout).unwrap_err(), error);
        }
        // A conversion flag set on a touch (row 0) or cleared on a conversion (row 2): the
        // values no longer match the conversion rows.
        let mut bytes = Vec::new();
        encode_chunk(&sample(false, true), &mut bytes, Layout::Fixed);
        let flag_of_row = |row: usize| HEADER_BYTES + row * RECORD_BYTES + RECORD_BYTES - 1;
        for (row, problem) in [(0, "conversion value missing"), (2, "more values than conversion rows")] {
            let mut flipped = bytes.clone();
            flipped[flag_of_row(row)] ^= 0x80;
            assert_eq!(decode(&flipped, false, IdMaps::default(), Layout::Fixed).unwrap_err(), SegmentError(problem));
        }
    }

    /// The packed bytes of rows given as (user key, time, channel, conversion), no values.
    fn packed(rows: &[(u128, i64, u32, bool)]) -> Vec<u8> {
        let mut buffer = SegmentBuffer::default();
        for &(key, time, channel, is_conversion) in rows {
            buffer.push_row(key, time, channel, is_conversion, 1.0);
        }
        let mut bytes = Vec::new();
        buffer.segment().write_packed(&mut bytes);
        bytes
    }

    #[test]
    fn packed_rows_keep_a_key_once_per_run_and_times_in_the_largest_unit_that_divides_them() {
        let second = 1_000_000;
        // Time order, a new user on most rows, whole seconds: key, one byte of head, one
        // of time (after the first row's).
        let time_ordered: Vec<_> = (0..1_000)
            .map(|row| (row as u128 * 7 % 13, 1_767_225_600 * second + row * 30 * second, 3, false))
            .collect();
        // One user's run at a time, times going back between users: no key after a
        // user's first row, one byte of head and one of time.
        let user_runs: Vec<_> = (0..1_000)
            .map(|row| ((row / 50) as u128, (row % 50) * 60 * second + (row / 50) * 7 * second, 3, false))
            .collect();
        let values = |rows: &[(u128, i64, u32, bool)]| rows.iter().filter(|row| row.3).count() * 8;
        for (rows, most_per_row) in [(&time_ordered, 19), (&user_runs, 3)] {
            let bytes = packed(rows);
            let records = bytes.len() - HEADER_BYTES - PACKED_HEAD_BYTES - values(rows);
            assert!(records <= most_per_row * rows.len() + 32, "{records} bytes for {} rows", rows.len());
            let back = decode(&bytes, false, IdMaps::default(), Layout::Packed).unwrap();
            assert_eq!(back.user_keys, rows.iter().map(|row| row.0).collect::<Vec<_>>());
            assert_eq!(back.timestamps, rows.iter().map(|row| row.1).collect::<Vec<_>>());
        }
        // The unit is the largest that divides every time: one time in microseconds makes
        // the others take more bytes, not lose any.
        for (last, unit) in [(5 * second, 1_000_000u64), (5_000, 1_000), (5, 1)] {
            let bytes = packed(&[(1, 10 * second, 0, false), (1, last, 0, false)]);
            let at = HEADER_BYTES + 8;
            assert_eq!(u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()), unit);
            let back = decode(&bytes, false, IdMaps::default(), Layout::Packed).unwrap();
            assert_eq!(back.timestamps, [10 * second, last]);
        }
    }

    #[test]
    fn damaged_packed_records_are_errors() {
        let rows = [(9, 0, 2, false), (9, 1, NO_CHANNEL, true)];
        let good = packed(&rows);
        let first_head = HEADER_BYTES + PACKED_HEAD_BYTES;
        let decode_packed = |bytes: &[u8]| decode(bytes, false, IdMaps::default(), Layout::Packed).unwrap_err();
        // The row count: more rows than the bytes could hold, or one row more than stored.
        for (count, problem) in [(u64::MAX, "too many rows for the records"), (3, "packed number cut short")] {
            let mut bytes = good.clone();
            bytes[HEADER_BYTES..HEADER_BYTES + 8].copy_from_slice(&count.to_le_bytes());
            assert_eq!(decode_packed(&bytes), SegmentError(problem));
        }
        let mut fewer = good.clone();
        fewer[HEADER_BYTES..HEADER_BYTES + 8].copy_from_slice(&1u64.to_le_bytes());
        assert_eq!(decode_packed(&fewer), SegmentError("more records than rows"));
        // A first row without its key, a time unit of 0, a time past i64 once scaled.
        let mut keyless = good.clone();
        keyless[first_head] &= !1;
        assert_eq!(decode_packed(&keyless), SegmentError("the first record has no user key"));
        let mut no_unit = good.clone();
        no_unit[HEADER_BYTES + 8..first_head].fill(0);
        assert_eq!(decode_packed(&no_unit), SegmentError("time unit out of range"));
        let mut scaled = packed(&[(1, i64::MAX / 1_000_000 * 1_000_000, 0, false)]);
        scaled[HEADER_BYTES + 8..first_head].copy_from_slice(&2_000_000u64.to_le_bytes());
        assert_eq!(decode_packed(&scaled), SegmentError("time out of range"));
        // A channel id of 2^31 - 1 (the stored form of "no channel").
        let mut bytes = good[..first_head].to_vec();
        put_number(&mut bytes, ((MAX_PACKED_CHANNEL + 1) << 2) | NEW_KEY);
        bytes.extend_from_slice(&good[first_head + 1..]);
        let grown = (bytes.len() - good.len()) as u64;
        let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) + grown;
        bytes[..8].copy_from_slice(&length.to_le_bytes());
        assert_eq!(decode_packed(&bytes), SegmentError("channel id out of range"));
    }

    #[test]
    fn every_cut_short_segment_is_an_error() {
        for layout in LAYOUTS {
            let mut bytes = Vec::new();
            encode_chunk(&sample(true, true), &mut bytes, layout);
            for end in 0..bytes.len() {
                let cut = &bytes[..end];
                assert!(decode(cut, true, IdMaps::default(), layout).is_err() || cut.is_empty(), "cut at {end}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Random bytes, or a valid segment with bits flipped past its header (conversion
        /// flags, channel and segment ids, lengths of user ids): an error or rows, never a
        /// panic.
        #[test]
        fn damaged_bytes_never_panic(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            flips in proptest::collection::vec((0usize..4_000, 0u32..8), 1..8),
            keep_identity in proptest::prelude::any::<bool>(),
            packed in proptest::prelude::any::<bool>(),
        ) {
            let layout = if packed { Layout::Packed } else { Layout::Fixed };
            let maps = IdMaps { channels: Some(&[0, 1, 2]), segments: Some(&[0, 1]) };
            let _ = decode(&noise, keep_identity, maps, layout);
            let mut bytes = Vec::new();
            encode_chunk(&sample(true, true), &mut bytes, layout);
            let body = bytes.len() - HEADER_BYTES;
            for (at, bit) in flips {
                bytes[HEADER_BYTES + at % body] ^= 1 << bit;
            }
            let _ = decode(&bytes, keep_identity, maps, layout);
        }

        #[test]
        fn random_chunks_round_trip(
            rows in proptest::collection::vec(
                (
                    // Few users, so that packed rows have runs of one key; times in
                    // microseconds, or whole seconds at any distance.
                    proptest::prop_oneof![proptest::prelude::any::<u128>(), 0u128..3],
                    proptest::prop_oneof![
                        proptest::prelude::any::<i64>(),
                        proptest::prelude::Strategy::prop_map(proptest::num::i64::ANY, |time| time / 1_000_000 * 1_000_000),
                    ],
                    proptest::prop_oneof![0u32..1_000, proptest::strategy::Just(NO_CHANNEL)],
                    proptest::prelude::any::<bool>(),
                    -1e300f64..1e300,
                    proptest::prelude::any::<u64>(),
                    ".{0,6}",
                    proptest::prop_oneof![0u32..9, proptest::strategy::Just(NO_SEGMENT)],
                ),
                0..40,
            ),
            keep_identity in proptest::prelude::any::<bool>(),
            with_segments in proptest::prelude::any::<bool>(),
            packed in proptest::prelude::any::<bool>(),
        ) {
            let layout = if packed { Layout::Packed } else { Layout::Fixed };
            let mut chunk = EventChunk::with_capacity(rows.len(), keep_identity);
            for (key, time, channel, is_conversion, value, number, id, segment) in rows {
                chunk.user_keys.push(key);
                chunk.timestamps.push(time);
                chunk.channel_ids.push(channel);
                chunk.is_conversion.push(is_conversion);
                chunk.values.push(if is_conversion { value } else { 0.0 });
                chunk.row_numbers.push(number);
                if let Some(ids) = &mut chunk.user_ids {
                    ids.push(id);
                }
                if with_segments {
                    chunk.segment_ids.push(segment);
                }
            }
            let mut bytes = Vec::new();
            encode_chunk(&chunk, &mut bytes, layout);
            let back = decode(&bytes, keep_identity, IdMaps::default(), layout).unwrap();
            assert_same_rows(&back, &chunk);
            if keep_identity {
                proptest::prop_assert_eq!(back.row_numbers, chunk.row_numbers);
            }
        }
    }
}
