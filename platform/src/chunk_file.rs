//! The chunk file: event rows of one user-hash partition, as written by a split task and
//! read by the attribute task of that partition (and by the credits export). Written once
//! and read once, soon, so it is the engine's row segment (`mta_core::row_segment`) behind
//! a small header, not a format tools open; docs/operations.md, "Chunk files" gives the
//! layout byte by byte. Files of older workers (Parquet) are still read ([`parquet`]).
//!
//! Layout, little-endian throughout:
//! - magic `MTAC`, format version (u32, 2; workers before packed records wrote 1, still
//!   read), flags (u32; bit 0: the rows keep their row numbers and user ids, for the
//!   per-journey credits);
//! - the channel names, then the segment values (`segment_by`; none otherwise): each list
//!   a count (u32), then per name its length (u32) and UTF-8 bytes;
//! - the rows: row segments up to the end of the file (the split stage writes one),
//!   whose channel and segment ids index the two lists; their records packed in version 2
//!   (`row_segment::Layout::Packed`), 28 bytes a row in version 1.
//!
//! A split task stores all it hands over as one object (`keys::split_rows`) of pieces: a
//! piece is a run of chunk files of one partition, each behind its byte length (u64). On
//! the local store the pieces are in the order they were flushed (a piece per partition
//! and flush); elsewhere each partition's pieces are joined into one, so that a partition
//! costs one ranged request per split. The pieces index (`keys::split_pieces`) says where
//! they are: how many entries each partition has (u64, [`PIECES_HEADER_BYTES`]), then per
//! partition that many (start, length) pairs (u64 each; unused ones (0, 0)). An attribute
//! task reads the count, its entries and its pieces of each split by range, so a job has
//! two objects per split task whatever the number of partitions and flushes. Workers before
//! the pieces index wrote one run per partition and an index of [`INDEX_ENTRY_BYTES`] per
//! partition (`keys::split_index`), still read.

mod parquet;

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use mta_core::chunk::{ChannelDict, EventChunk};
use mta_core::row_segment::{IdMaps, Layout, Segment};

const MAGIC: &[u8; 4] = b"MTAC";
/// The format version written: 2, records packed. Version 1 (28-byte records) is read
/// too: a job split by an older worker may finish after the upgrade.
const VERSION: u32 = 2;
/// Flag: the rows carry their row numbers and user ids.
const KEEPS_IDENTITY: u32 = 1;
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
/// Magic, version and flags.
const HEADER_BYTES: usize = 12;

/// The extension of chunk files; older workers wrote `.parquet` ones.
pub const EXTENSION: &str = "rows";
/// A partition's entry in an older worker's split index: the start and the length of its
/// run (u64 each).
pub const INDEX_ENTRY_BYTES: u64 = 16;
/// The head of a pieces index: how many entries each partition has.
pub const PIECES_HEADER_BYTES: u64 = 8;
/// One entry of a pieces index: a piece's start and length (u64 each).
const PIECE_ENTRY_BYTES: u64 = 16;

/// Appends the chunk file of `rows` to a piece, behind its length: encoded in place, the
/// rows copied once.
pub fn append_to_run(run: &mut Vec<u8>, rows: Segment<'_>, channels: &ChannelDict, segments: &ChannelDict) {
    let length_at = run.len();
    run.extend_from_slice(&0u64.to_le_bytes());
    write_file(run, rows, channels, segments, VERSION);
    let length = (run.len() - length_at - 8) as u64;
    run[length_at..length_at + 8].copy_from_slice(&length.to_le_bytes());
}

/// Decodes a partition's run of chunk files (read from split object `name`) into `into`.
pub fn decode_run_into(name: &str, run: Bytes, into: &mut EventChunk) -> anyhow::Result<()> {
    for file in files_in_run(&run) {
        let file = file.map_err(|problem| anyhow::anyhow!("{name}: {problem}"))?;
        decode_into(name, run.slice(file), into)?;
    }
    Ok(())
}

/// Where each chunk file of a run is (after its length), in order; an error where the
/// bytes are cut short, then nothing.
fn files_in_run(run: &[u8]) -> impl Iterator<Item = Result<std::ops::Range<usize>, &'static str>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = run.get(at..).filter(|rest| !rest.is_empty())?;
        let file = match rest.split_first_chunk::<8>() {
            None => Err("a chunk file's length is cut short"),
            Some((length, rest)) => match usize::try_from(u64::from_le_bytes(*length)) {
                Ok(length) if length <= rest.len() => Ok(at + 8..at + 8 + length),
                _ => Err("a chunk file is cut short"),
            },
        };
        at = file.as_ref().map_or(run.len(), |file| file.end);
        Some(file)
    })
}

/// An older worker's split index: each partition's (start, length) in the split's object
/// (the tests write one, to check that it is still read).
#[cfg(test)]
fn encode_index(runs: &[(u64, u64)]) -> Vec<u8> {
    runs.iter().flat_map(|&(start, length)| [start.to_le_bytes(), length.to_le_bytes()]).flatten().collect()
}

/// A split's pieces index: per partition, the (start, length) of its pieces in the split's
/// object, in order.
pub fn encode_pieces(pieces: &[Vec<(u64, u64)>]) -> Vec<u8> {
    let per_partition = pieces.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(8 + pieces.len() * per_partition * PIECE_ENTRY_BYTES as usize);
    out.extend_from_slice(&(per_partition as u64).to_le_bytes());
    for partition in pieces {
        let unused = std::iter::repeat_n(&(0, 0), per_partition - partition.len());
        for &(start, length) in partition.iter().chain(unused) {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&length.to_le_bytes());
        }
    }
    out
}

/// Where `partition`'s entries are in a pieces index (read from `name`) whose head is
/// `header`.
pub fn pieces_entries(name: &str, header: &[u8], partition: u32) -> anyhow::Result<std::ops::Range<u64>> {
    ensure!(header.len() as u64 == PIECES_HEADER_BYTES, "{name}: its head is cut short");
    let per_partition = u64::from_le_bytes(header.try_into().expect("8 bytes"));
    let bytes = per_partition.checked_mul(PIECE_ENTRY_BYTES);
    let start = bytes.and_then(|bytes| bytes.checked_mul(u64::from(partition))?.checked_add(PIECES_HEADER_BYTES));
    match (start, bytes) {
        (Some(start), Some(bytes)) if start.checked_add(bytes).is_some() => Ok(start..start + bytes),
        _ => bail!("{name}: {per_partition} pieces per partition cannot be"),
    }
}

/// A partition's pieces in the split's object from its entries of a pieces index (read
/// from `name`), in order, empty ones left out.
pub fn decode_pieces(name: &str, entries: &[u8], expected: u64) -> anyhow::Result<Vec<std::ops::Range<u64>>> {
    ensure!(entries.len() as u64 == expected, "{name}: a partition's entries are cut short");
    let read = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    let mut pieces = Vec::new();
    for entry in entries.chunks_exact(PIECE_ENTRY_BYTES as usize) {
        let (start, length) = (read(&entry[..8]), read(&entry[8..]));
        let end = start.checked_add(length).with_context(|| format!("{name}: a piece ends past 2^64"))?;
        if length > 0 {
            pieces.push(start..end);
        }
    }
    Ok(pieces)
}

/// One partition's (start, length) from its [`INDEX_ENTRY_BYTES`] of a split's index.
pub fn decode_index_entry(name: &str, bytes: &[u8]) -> anyhow::Result<(u64, u64)> {
    ensure!(bytes.len() as u64 == INDEX_ENTRY_BYTES, "{name}: an index entry is cut short");
    let (start, length) = bytes.split_at(8);
    let read = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    Ok((read(start), read(length)))
}

/// Encodes rows whose channel and segment ids index `channels` and `segments` (the
/// segment values are written only when the rows carry segment ids).
pub fn encode(rows: Segment<'_>, channels: &ChannelDict, segments: &ChannelDict) -> Vec<u8> {
    let mut out = Vec::new();
    write_file(&mut out, rows, channels, segments, VERSION);
    out
}

/// The bytes [`append_to_run`] appends for `rows` with 28-byte records: what packing makes
/// smaller on most rows, to reserve memory by.
pub fn run_bytes(rows: Segment<'_>, channels: &ChannelDict, segments: &ChannelDict) -> usize {
    8 + file_bytes(rows, channels, segments)
}

/// The bytes of the chunk file of `rows`.
fn file_bytes(rows: Segment<'_>, channels: &ChannelDict, segments: &ChannelDict) -> usize {
    let names_bytes = |names: &[String]| 4 + names.iter().map(|name| 4 + name.len()).sum::<usize>();
    HEADER_BYTES + names_bytes(channels.names()) + names_bytes(segment_values(rows, segments)) + rows.stored_bytes()
}

/// The segment values a chunk file lists: only when its rows carry segment ids.
fn segment_values<'d>(rows: Segment<'_>, segments: &'d ChannelDict) -> &'d [String] {
    if rows.has_segment_ids() { segments.names() } else { &[] }
}

/// Appends the chunk file of `rows` in format `version` to `out`.
fn write_file(out: &mut Vec<u8>, rows: Segment<'_>, channels: &ChannelDict, segments: &ChannelDict, version: u32) {
    let segment_values = segment_values(rows, segments);
    out.reserve(file_bytes(rows, channels, segments));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    let flags = if rows.keeps_identity() { KEEPS_IDENTITY } else { 0 };
    out.extend_from_slice(&flags.to_le_bytes());
    for names in [channels.names(), segment_values] {
        out.extend_from_slice(&(names.len() as u32).to_le_bytes());
        for name in names {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
    }
    match version {
        1 => rows.write_to(out).expect("writing to memory cannot fail"),
        _ => rows.write_packed(out),
    }
}

/// Decodes chunk file `name` and appends its rows to `into`, mapping channels and segment
/// values into its dictionaries. Rows stored without row numbers are numbered on from the
/// rows before: a partition's files, read in the order of their names, hold its rows in
/// file order (split tasks take consecutive pieces of the input and read them in order).
pub fn decode_into(name: &str, bytes: Bytes, into: &mut EventChunk) -> anyhow::Result<()> {
    let decoded =
        if bytes.starts_with(PARQUET_MAGIC) { parquet::decode_into(bytes, into) } else { decode_rows(&bytes, into) };
    decoded.with_context(|| format!("Failed to read chunk file {name}"))
}

fn decode_rows(bytes: &[u8], into: &mut EventChunk) -> anyhow::Result<()> {
    let mut file = FileParts::parse(bytes)?;
    expect_user_ids(into, file.keeps_identity)?;
    let channels: Vec<u32> = file.channels.iter().map(|name| into.channels.id(name)).collect();
    let segments: Vec<u32> = file.segments.iter().map(|name| into.segments.id(name)).collect();
    let maps = IdMaps { channels: Some(&channels), segments: Some(&segments) };
    while !file.rows.is_empty() {
        Segment::parse(&mut file.rows, file.layout)?.append_to(into, maps)?;
    }
    Ok(())
}

/// How many rows a run of chunk files holds, read from their headers alone: what a
/// partition's chunk is sized by before its rows are decoded. Rows from damaged bytes on
/// are not counted (the decoding reports the damage).
pub fn rows_in_run(run: &[u8]) -> usize {
    files_in_run(run).map_while(Result::ok).map(|file| rows_in_file(&run[file])).sum()
}

/// How many rows chunk file `file` holds, read from its headers alone (none for an older
/// worker's Parquet file, or past damage).
pub fn rows_in_file(file: &[u8]) -> usize {
    let Ok(mut parts) = FileParts::parse(file) else { return 0 };
    let mut rows = 0;
    while let Ok(segment) = Segment::parse(&mut parts.rows, parts.layout) {
        rows += segment.rows();
    }
    rows
}

/// A chunk file's header and dictionaries, and the bytes of its row segments.
struct FileParts<'a> {
    layout: Layout,
    keeps_identity: bool,
    channels: Vec<&'a str>,
    segments: Vec<&'a str>,
    rows: &'a [u8],
}

impl<'a> FileParts<'a> {
    fn parse(mut bytes: &'a [u8]) -> anyhow::Result<FileParts<'a>> {
        let header = take(&mut bytes, HEADER_BYTES)?;
        ensure!(header[..4] == MAGIC[..], "it is not a chunk file");
        let layout = match u32_at(header, 4) {
            1 => Layout::Fixed,
            VERSION => Layout::Packed,
            version => bail!("its format version {version} is not one this worker reads (1 or {VERSION})"),
        };
        let keeps_identity = u32_at(header, 8) & KEEPS_IDENTITY != 0;
        let channels = read_names(&mut bytes)?;
        let segments = read_names(&mut bytes)?;
        Ok(FileParts { layout, keeps_identity, channels, segments, rows: bytes })
    }
}

/// Every file of a partition keeps user ids or none does; the first decides.
fn expect_user_ids(into: &mut EventChunk, keeps_user_ids: bool) -> anyhow::Result<()> {
    if keeps_user_ids != into.user_ids.is_some() && !(into.is_empty() && into.user_ids.is_none()) {
        bail!("the chunk files of one partition disagree on carrying user ids");
    }
    if keeps_user_ids && into.user_ids.is_none() {
        into.user_ids = Some(Vec::new());
    }
    Ok(())
}

fn take<'a>(bytes: &mut &'a [u8], length: usize) -> anyhow::Result<&'a [u8]> {
    let (taken, rest) = bytes.split_at_checked(length).context("it is cut short")?;
    *bytes = rest;
    Ok(taken)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The names of a count-prefixed list.
fn read_names<'a>(bytes: &mut &'a [u8]) -> anyhow::Result<Vec<&'a str>> {
    let count = u32_at(take(bytes, 4)?, 0);
    (0..count)
        .map(|_| {
            let length = u32_at(take(bytes, 4)?, 0) as usize;
            std::str::from_utf8(take(bytes, length)?).context("a name is not UTF-8")
        })
        .collect()
}

/// The files to read among a partition's keys, sorted: each once. A split task re-run
/// after an upgrade rewrites an older worker's `sSSSS-QQQQQ.parquet` as
/// `sSSSS-QQQQQ.rows` (the same rows: a split writes the same files on every run), so a
/// `.parquet` file with a `.rows` twin is left out.
pub fn files_to_read<K: AsRef<str>>(keys: Vec<K>) -> Vec<K> {
    let current = |key: &K| key.as_ref().strip_suffix(EXTENSION).map(str::to_owned);
    let rewritten: std::collections::HashSet<String> = keys.iter().filter_map(current).collect();
    keys.into_iter()
        .filter(|key| key.as_ref().strip_suffix("parquet").is_none_or(|stem| !rewritten.contains(stem)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::chunk::{NO_CHANNEL, NO_SEGMENT};
    use mta_core::row_segment::SegmentBuffer;

    /// Four rows of two users; with `segment_by`, one row has no value.
    fn sample(keep_user_ids: bool, with_segments: bool) -> EventChunk {
        let mut chunk = EventChunk::with_capacity(4, keep_user_ids);
        let (x, y) = (chunk.channels.id("x"), chunk.channels.id("y"));
        let (de, fr) = (chunk.segments.id("DE"), chunk.segments.id("FR"));
        for (row, (user, channel, is_conversion, segment)) in [
            (1u128 << 70 | 5, y, false, fr),
            (7, x, false, NO_SEGMENT),
            (1 << 70 | 5, NO_CHANNEL, true, de),
            (7, y, true, fr),
        ]
        .into_iter()
        .enumerate()
        {
            chunk.user_keys.push(user);
            chunk.timestamps.push(10 * row as i64);
            chunk.channel_ids.push(channel);
            chunk.is_conversion.push(is_conversion);
            chunk.values.push(if is_conversion { 2.5 + row as f64 } else { 0.0 });
            chunk.row_numbers.push(3 + 2 * row as u64);
            if let Some(ids) = &mut chunk.user_ids {
                ids.push(format!("u{user}"));
            }
            if with_segments {
                chunk.segment_ids.push(segment);
            }
        }
        chunk
    }

    /// What the split stage writes for `chunk`.
    fn encode_chunk(chunk: &EventChunk) -> Vec<u8> {
        let mut rows = SegmentBuffer::default();
        rows.push_chunk(chunk);
        encode(rows.segment(), &chunk.channels, &chunk.segments)
    }

    /// A partition's dictionaries that already know some names, in another order.
    fn partition_chunk() -> EventChunk {
        let mut into = EventChunk::default();
        into.channels.id("y");
        into.segments.id("FR");
        into.segments.id("IT");
        into
    }

    fn channel_names(chunk: &EventChunk) -> Vec<Option<&str>> {
        chunk.channel_ids.iter().map(|&id| (id != NO_CHANNEL).then(|| chunk.channels.name(id))).collect()
    }

    fn segment_values(chunk: &EventChunk) -> Vec<Option<&str>> {
        (0..chunk.len()).map(|row| chunk.segment_of(row)).collect()
    }

    fn assert_same_rows(read: &EventChunk, written: &EventChunk) {
        assert_eq!(read.user_keys, written.user_keys);
        assert_eq!(read.timestamps, written.timestamps);
        assert_eq!(read.is_conversion, written.is_conversion);
        assert_eq!(read.values, written.values);
        assert_eq!(read.user_ids, written.user_ids);
        assert_eq!(channel_names(read), channel_names(written));
        assert_eq!(segment_values(read), segment_values(written));
        assert_eq!(read.has_segments(), written.has_segments());
    }

    #[test]
    fn chunks_round_trip_into_the_partitions_dictionaries() {
        for keep_user_ids in [false, true] {
            for with_segments in [false, true] {
                let written = sample(keep_user_ids, with_segments);
                let mut read = partition_chunk();
                decode_into("p", Bytes::from(encode_chunk(&written)), &mut read).unwrap();
                assert_same_rows(&read, &written);
                assert_eq!(read.channel_ids[0], 0, "y keeps its id in the partition's dictionary");
                if with_segments {
                    assert_eq!(read.segment_ids[0], 0, "FR keeps its id in the partition's dictionary");
                }
                let numbers = if keep_user_ids { written.row_numbers.clone() } else { vec![1, 2, 3, 4] };
                assert_eq!(read.row_numbers, numbers, "without user ids, rows are numbered by their order");
            }
        }
    }

    #[test]
    fn files_of_older_workers_still_decode_and_numbering_follows_them() {
        for keep_user_ids in [false, true] {
            for with_segments in [false, true] {
                let written = sample(keep_user_ids, with_segments);
                let old = parquet::encode(&written);
                assert!(old.starts_with(PARQUET_MAGIC));
                let mut read = partition_chunk();
                decode_into("old", Bytes::from(old), &mut read).unwrap();
                assert_same_rows(&read, &written);
                assert_eq!(read.row_numbers, written.row_numbers);
                // Version 1, 28-byte records, before and after packed ones in a partition.
                let mut rows = SegmentBuffer::default();
                rows.push_chunk(&written);
                let mut version_1 = Vec::new();
                write_file(&mut version_1, rows.segment(), &written.channels, &written.segments, 1);
                assert_eq!(u32_at(&version_1, 4), 1);
                let mut alone = partition_chunk();
                decode_into("v1", Bytes::from(version_1.clone()), &mut alone).unwrap();
                assert_same_rows(&alone, &written);
                let mut read_1 = partition_chunk();
                for file in [version_1.clone(), encode_chunk(&written), version_1] {
                    decode_into("v1", Bytes::from(file), &mut read_1).unwrap();
                }
                assert_eq!(read_1.timestamps, written.timestamps.repeat(3));
                if keep_user_ids {
                    assert_eq!(read_1.row_numbers, written.row_numbers.repeat(3));
                    continue;
                }
                assert_eq!(read_1.row_numbers, (1..=12).collect::<Vec<u64>>());
                // A split re-run after the upgrade: new files after old ones number on.
                decode_into("new", Bytes::from(encode_chunk(&written)), &mut read).unwrap();
                assert_eq!(read.row_numbers[4..], [10, 11, 12, 13]);
            }
        }
    }

    /// Where partition `p`'s pieces are, read from a pieces index the way an attribute task does.
    fn pieces_of(index: &[u8], partition: u32) -> Vec<std::ops::Range<u64>> {
        let entries = pieces_entries("s.pieces", &index[..PIECES_HEADER_BYTES as usize], partition).unwrap();
        let bytes = &index[entries.start as usize..(entries.end as usize).min(index.len())];
        decode_pieces("s.pieces", bytes, entries.end - entries.start).unwrap()
    }

    #[test]
    fn a_split_object_holds_pieces_of_partitions_and_its_index_finds_them_in_order() {
        // Two partitions of one split, two flushes each (the second partition empty in the
        // first), laid out in flush order as on the local store, and joined per partition as
        // elsewhere (and by older workers, whose index is still read).
        let flushes = [sample(false, true), sample(false, true)];
        let shifted = |partition: i64, flush: &EventChunk| {
            let mut rows = flush.clone();
            rows.timestamps.iter_mut().for_each(|t| *t += partition);
            let mut buffer = SegmentBuffer::default();
            buffer.push_chunk(&rows);
            buffer
        };
        let has_rows = |partition: i64, flush: usize| flush == 1 || partition == 0;
        let (mut in_flush_order, mut flush_pieces) = (Vec::new(), vec![Vec::new(), Vec::new()]);
        for (f, flush) in flushes.iter().enumerate() {
            for partition in (0..2).filter(|&p| has_rows(p, f)) {
                let start = in_flush_order.len() as u64;
                append_to_run(
                    &mut in_flush_order,
                    shifted(partition, flush).segment(),
                    &flush.channels,
                    &flush.segments,
                );
                flush_pieces[partition as usize].push((start, in_flush_order.len() as u64 - start));
            }
        }
        let (mut joined, mut runs) = (Vec::new(), Vec::new());
        for partition in 0..2 {
            let start = joined.len() as u64;
            for (_, flush) in flushes.iter().enumerate().filter(|&(f, _)| has_rows(partition, f)) {
                append_to_run(&mut joined, shifted(partition, flush).segment(), &flush.channels, &flush.segments);
            }
            runs.push((start, joined.len() as u64 - start));
        }
        let older_index = encode_index(&runs);
        assert_eq!(older_index.len() as u64, 2 * INDEX_ENTRY_BYTES);
        let joined_pieces: Vec<Vec<(u64, u64)>> = runs.iter().map(|&run| vec![run]).collect();
        for (object, index) in [(in_flush_order, encode_pieces(&flush_pieces)), (joined, encode_pieces(&joined_pieces))]
        {
            let object = Bytes::from(object);
            for partition in 0..2u32 {
                let mut read = partition_chunk();
                for piece in pieces_of(&index, partition) {
                    decode_run_into("s", object.slice(piece.start as usize..piece.end as usize), &mut read).unwrap();
                }
                let flushes_of = if partition == 0 { &flushes[..] } else { &flushes[1..] };
                assert_eq!(read.len(), 4 * flushes_of.len(), "every flush of partition {partition}");
                let expected: Vec<i64> =
                    flushes_of.iter().flat_map(|f| f.timestamps.iter().map(|t| t + i64::from(partition))).collect();
                assert_eq!(read.timestamps, expected);
                assert_eq!(read.row_numbers, (1..=read.len() as u64).collect::<Vec<u64>>(), "numbered on");
            }
        }
        let at = INDEX_ENTRY_BYTES as usize;
        let (start, length) = decode_index_entry("s", &older_index[at..2 * at]).unwrap();
        assert_eq!((start, length), runs[1]);
        let whole = Bytes::from(encode_pieces(&joined_pieces));
        assert!(pieces_entries("s0003.pieces", &whole[..7], 0).unwrap_err().to_string().contains("s0003.pieces"));
        assert!(pieces_entries("s", &u64::MAX.to_le_bytes(), 2).is_err(), "a damaged count is no range");
        assert!(decode_pieces("s0003.pieces", &whole[8..23], 16).unwrap_err().to_string().contains("s0003.pieces"));
        let mut past_the_end = [0u8; 16];
        past_the_end[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        past_the_end[8..].copy_from_slice(&1u64.to_le_bytes());
        assert!(decode_pieces("s", &past_the_end, 16).is_err());
        assert!(decode_index_entry("s0003.index", &older_index[..15]).unwrap_err().to_string().contains("s0003.index"));
        let mut cut_run = Vec::new();
        let rows = shifted(0, &flushes[0]);
        append_to_run(&mut cut_run, rows.segment(), &flushes[0].channels, &flushes[0].segments);
        let unpacked = run_bytes(rows.segment(), &flushes[0].channels, &flushes[0].segments);
        assert!(cut_run.len() < unpacked, "packed records take fewer bytes: {} of {unpacked}", cut_run.len());
        let cut_run = Bytes::from(cut_run);
        let two_files = [&cut_run[..], &cut_run[..]].concat();
        assert_eq!((rows_in_run(&cut_run), rows_in_run(&two_files)), (4, 8));
        assert_eq!((rows_in_file(&cut_run[8..]), rows_in_file(&parquet::encode(&flushes[0]))), (4, 0));
        for cut in [1, 7, 9, cut_run.len() - 1] {
            assert_eq!(rows_in_run(&cut_run[..cut]), 0, "damage counts no rows");
            let error = decode_run_into("s0003.rows", cut_run.slice(..cut), &mut EventChunk::default()).unwrap_err();
            assert!(format!("{error:#}").contains("s0003.rows"), "{error:#}");
        }
    }

    #[test]
    fn damaged_files_are_errors_naming_the_file() {
        let bytes = encode_chunk(&sample(true, true));
        let mut other_version = bytes.clone();
        other_version[4] = 3;
        let mut unknown_channel = sample(false, false);
        unknown_channel.channel_ids[1] = 2;
        let mut bad_name = encode_chunk(&sample(false, false));
        bad_name[HEADER_BYTES + 8] = 0xff;
        for (damaged, why) in [
            (bytes[..bytes.len() - 1].to_vec(), "cut short"),
            (bytes[..HEADER_BYTES + 6].to_vec(), "cut short"),
            (b"PAR1 but not Parquet".to_vec(), "not valid Parquet"),
            (b"text".to_vec(), "cut short"),
            (b"MTAX\x01\0\0\0\0\0\0\0".to_vec(), "not a chunk file"),
            (other_version, "version 3"),
            (encode_chunk(&unknown_channel), "unknown channel id"),
            (bad_name, "not UTF-8"),
        ] {
            let error = decode_into("p00001/s0002-00003.rows", Bytes::from(damaged), &mut EventChunk::default())
                .expect_err(why);
            let message = format!("{error:#}");
            assert!(message.contains("p00001/s0002-00003.rows") && message.contains(why), "{message}");
        }
    }

    #[test]
    fn files_of_one_partition_agree_on_user_ids() {
        let mut read = EventChunk::default();
        decode_into("a", Bytes::from(encode_chunk(&sample(false, false))), &mut read).unwrap();
        let error = decode_into("b", Bytes::from(encode_chunk(&sample(true, false))), &mut read).unwrap_err();
        assert!(format!("{error:#}").contains("disagree"), "{error:#}");
    }

    #[test]
    fn a_rewritten_older_file_is_read_once() {
        let keys =
            vec!["p0/s0000-00000.rows", "p0/s0000-00001.parquet", "p0/s0001-00000.parquet", "p0/s0001-00000.rows"];
        assert_eq!(files_to_read(keys), ["p0/s0000-00000.rows", "p0/s0000-00001.parquet", "p0/s0001-00000.rows"]);
    }
}
