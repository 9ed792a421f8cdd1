//! Event rows in a compact byte layout, for the hand-overs that store rows once and read
//! them back once: the local command's spill files and the service's chunk files. Pure:
//! it encodes into memory and parses borrowed bytes.
//!
//! A segment is the lengths of its five sections (u64 LE each), then the sections:
//! 1. records, [`RECORD_BYTES`] per row: user key (u128 LE), time (i64 LE, UTC
//!    microseconds), channel id and conversion flag (a [`TaggedChannel`], u32 LE);
//! 2. values: the value (f64 LE) of each conversion row, in row order (touches have none);
//! 3. row numbers (u64 LE per row) and 4. user ids (length u32 LE and UTF-8 bytes per
//!    row), both kept only for the per-journey credits, both empty otherwise;
//! 5. segment ids (u32 LE per row) with `segment_by`, empty otherwise.
//!
//! Without row numbers, rows are numbered by their order, which keeps the ties of
//! docs/user-guide.md, "Journeys" when the rows come in file order.

use std::io::Write;

use crate::chunk::{EventChunk, NO_CHANNEL, NO_SEGMENT, TaggedChannel};

/// One row's record: user key (16 bytes), time (8), tagged channel (4).
pub const RECORD_BYTES: usize = 28;
const SECTIONS: usize = 5;
/// The section lengths that start a segment.
pub const HEADER_BYTES: usize = 8 * SECTIONS;

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
}

impl<'a> Segment<'a> {
    /// Writes the segment: its section lengths, then each section whole.
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

    /// Bytes the segment takes once written.
    pub fn stored_bytes(&self) -> usize {
        HEADER_BYTES + self.sections.iter().map(|section| section.len()).sum::<usize>()
    }

    /// Reads the segment at the start of `bytes` and advances past it.
    pub fn parse(bytes: &mut &'a [u8]) -> Result<Segment<'a>, SegmentError> {
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
        *bytes = rest;
        Ok(Segment { sections })
    }

    pub fn rows(&self) -> usize {
        self.sections[0].len() / RECORD_BYTES
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
        check(records.len() % RECORD_BYTES == 0, "record section cut short")?;
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
        for record in records.chunks_exact(RECORD_BYTES) {
            let (key, rest) = record.split_at(16);
            let (time, tag) = rest.split_at(8);
            let tag = TaggedChannel::from_bits(u32::from_le_bytes(tag.try_into().expect("4 bytes")));
            let channel = mapped(tag.channel(), NO_CHANNEL, maps.channels).ok_or(SegmentError("unknown channel id"))?;
            let is_conversion = tag.is_conversion();
            chunk.user_keys.push(u128::from_le_bytes(key.try_into().expect("16 bytes")));
            chunk.timestamps.push(i64::from_le_bytes(time.try_into().expect("8 bytes")));
            chunk.channel_ids.push(channel);
            chunk.is_conversion.push(is_conversion);
            let value =
                if is_conversion { values.next().ok_or(SegmentError("conversion value missing"))? } else { 0.0 };
            chunk.values.push(value);
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

    /// `chunk` as one segment at the end of `out`.
    fn encode_chunk(chunk: &EventChunk, out: &mut Vec<u8>) {
        let mut buffer = SegmentBuffer::default();
        buffer.push_chunk(chunk);
        buffer.segment().write_to(out).unwrap();
    }

    fn decode(bytes: &[u8], keep_identity: bool, maps: IdMaps<'_>) -> Result<EventChunk, SegmentError> {
        let mut chunk = EventChunk::with_capacity(0, keep_identity);
        let mut rest = bytes;
        while !rest.is_empty() {
            Segment::parse(&mut rest)?.append_to(&mut chunk, maps)?;
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
        for keep_identity in [false, true] {
            for with_segments in [false, true] {
                let chunk = sample(keep_identity, with_segments);
                let mut bytes = Vec::new();
                encode_chunk(&chunk, &mut bytes);
                let back = decode(&bytes, keep_identity, IdMaps::default()).unwrap();
                assert_same_rows(&back, &chunk);
                let numbers = if keep_identity { chunk.row_numbers.clone() } else { (1..=5).collect() };
                assert_eq!(back.row_numbers, numbers, "without identity, rows are numbered by their order");
            }
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
        let chunk = sample(false, true);
        let mut bytes = Vec::new();
        encode_chunk(&chunk, &mut bytes);
        encode_chunk(&chunk, &mut bytes);
        let maps = IdMaps { channels: Some(&[7, 8, 9]), segments: Some(&[4, 3]) };
        let back = decode(&bytes, false, maps).unwrap();
        assert_eq!(back.channel_ids[..5], [7, 8, NO_CHANNEL, 9, 7]);
        assert_eq!(back.segment_ids[..5], [4, NO_SEGMENT, 4, 3, 4]);
        assert_eq!(back.row_numbers, (1..=10).collect::<Vec<_>>());
        let mut after_numbered = EventChunk::default();
        after_numbered.row_numbers.push(41);
        after_numbered.user_keys.push(0);
        after_numbered.segment_ids.push(0);
        Segment::parse(&mut &bytes[..]).unwrap().append_to(&mut after_numbered, IdMaps::default()).unwrap();
        assert_eq!(after_numbered.row_numbers, [41, 42, 43, 44, 45, 46]);
    }

    #[test]
    fn ids_outside_the_maps_and_inconsistent_sections_are_errors() {
        let chunk = sample(false, true);
        let mut bytes = Vec::new();
        encode_chunk(&chunk, &mut bytes);
        let short_channels = IdMaps { channels: Some(&[0, 1]), segments: None };
        assert_eq!(decode(&bytes, false, short_channels).unwrap_err(), SegmentError("unknown channel id"));
        let short_segments = IdMaps { channels: None, segments: Some(&[0]) };
        assert_eq!(decode(&bytes, false, short_segments).unwrap_err(), SegmentError("unknown segment id"));
        // The same rows without segment ids, after rows with them.
        let mut mixed = bytes.clone();
        encode_chunk(&sample(false, false), &mut mixed);
        let error = SegmentError("rows with and without segment ids in one partition");
        assert_eq!(decode(&mixed, false, IdMaps::default()).unwrap_err(), error);
        // User ids asked of rows stored without them.
        assert_eq!(decode(&bytes, true, IdMaps::default()).unwrap_err(), SegmentError("user id cut short"));
        // A conversion flag set on a touch (row 0) or cleared on a conversion (row 2): the
        // values no longer match the conversion rows.
        let flag_of_row = |row: usize| HEADER_BYTES + row * RECORD_BYTES + RECORD_BYTES - 1;
        for (row, problem) in [(0, "conversion value missing"), (2, "more values than conversion rows")] {
            let mut flipped = bytes.clone();
            flipped[flag_of_row(row)] ^= 0x80;
            assert_eq!(decode(&flipped, false, IdMaps::default()).unwrap_err(), SegmentError(problem));
        }
    }

    #[test]
    fn every_cut_short_segment_is_an_error() {
        let mut bytes = Vec::new();
        encode_chunk(&sample(true, true), &mut bytes);
        for end in 0..bytes.len() {
            let cut = &bytes[..end];
            assert!(decode(cut, true, IdMaps::default()).is_err() || cut.is_empty(), "cut at {end}");
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
        ) {
            let maps = IdMaps { channels: Some(&[0, 1, 2]), segments: Some(&[0, 1]) };
            let _ = decode(&noise, keep_identity, maps);
            let mut bytes = Vec::new();
            encode_chunk(&sample(true, true), &mut bytes);
            let body = bytes.len() - HEADER_BYTES;
            for (at, bit) in flips {
                bytes[HEADER_BYTES + at % body] ^= 1 << bit;
            }
            let _ = decode(&bytes, keep_identity, maps);
        }

        #[test]
        fn random_chunks_round_trip(
            rows in proptest::collection::vec(
                (
                    proptest::prelude::any::<u128>(),
                    proptest::prelude::any::<i64>(),
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
        ) {
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
            encode_chunk(&chunk, &mut bytes);
            let back = decode(&bytes, keep_identity, IdMaps::default()).unwrap();
            assert_same_rows(&back, &chunk);
            if keep_identity {
                proptest::prop_assert_eq!(back.row_numbers, chunk.row_numbers);
            }
        }
    }
}
