//! Partitions of event rows, hash-partitioned by user so that each holds whole users
//! (the local twin of the service's split stage). Every decoding thread buffers rows per
//! partition, each buffer capped at an equal share of the memory budget; a full buffer
//! is appended to the thread's spill file in a temporary directory (one file per thread,
//! with an index of where each partition's pieces are), so memory stays bounded whatever
//! the input size.
//!
//! Rows are buffered in the same compact byte layout the files use (a [`Segment`] of
//! `mta_core::row_segment`), so spilling is a plain write of the buffer and loading decodes
//! files and buffers alike.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};

use anyhow::Context;
use mta_core::chunk::EventChunk;
use mta_core::row_segment::{IdMaps, Layout, PartitionRuns, RECORD_BYTES, Segment, SegmentBuffer};
use rayon::prelude::*;

/// A buffer smaller than this is not worth a write of its own.
const MIN_BUFFER_ROWS: usize = 1024;
/// A buffer's share of the budget up to this many rows (1 MiB) is allocated at its first row.
const WHOLE_SHARE_ROWS: usize = (1 << 20) / RECORD_BYTES;

/// Where partitions live: the spill directory, the buffer size, and what stayed in memory.
pub struct PartitionStore {
    dir: PathBuf,
    partitions: u32,
    /// Row numbers and user id strings are kept only for per-journey credit export;
    /// without them a partition's rows are numbered by their (file) order.
    keep_row_identity: bool,
    buffer_rows: usize,
    /// `in_memory[p]`: the buffers of partition p that writers handed over at the end,
    /// with the writer's id.
    in_memory: Vec<Mutex<Vec<(usize, SegmentBuffer)>>>,
    /// The spill file of each writer that spilled, handed over at the end (then only
    /// read, by every loading thread at once).
    spilled: RwLock<Vec<(usize, SpillFile)>>,
    writers: AtomicUsize,
}

/// One writer's spill file and, per partition, the (offset, length) of its segments in
/// write order.
struct SpillFile {
    path: PathBuf,
    file: File,
    /// Bytes written so far: the offset of the next segment.
    length: u64,
    segments: Vec<Vec<(u64, usize)>>,
}

impl PartitionStore {
    /// `writers`: how many decoding threads will write at once; the budget is split
    /// evenly over their buffers.
    pub fn new(
        dir: &Path,
        partitions: u32,
        keep_row_identity: bool,
        budget_bytes: usize,
        writers: usize,
    ) -> PartitionStore {
        let buffers = partitions as usize * writers.max(1);
        PartitionStore {
            dir: dir.to_owned(),
            partitions,
            keep_row_identity,
            buffer_rows: (budget_bytes / RECORD_BYTES / buffers).max(MIN_BUFFER_ROWS),
            in_memory: (0..partitions).map(|_| Mutex::new(Vec::new())).collect(),
            spilled: RwLock::new(Vec::new()),
            writers: AtomicUsize::new(0),
        }
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// A writer for one decoding thread.
    pub fn writer(&self) -> PartitionWriter<'_> {
        let id = self.writers.fetch_add(1, Ordering::Relaxed);
        PartitionWriter {
            store: self,
            id,
            buffers: (0..self.partitions).map(|_| SegmentBuffer::default()).collect(),
            spill: None,
            runs: PartitionRuns::default(),
        }
    }

    fn spill_path(&self, writer: usize) -> PathBuf {
        self.dir.join(format!("w{writer:02}.rows"))
    }

    /// All rows of partition `p`: its spill files plus what stayed in memory. With
    /// `keep_in_memory` false the in-memory part is handed over (freed once used).
    pub fn load(&self, p: usize, keep_in_memory: bool) -> anyhow::Result<EventChunk> {
        let mut loaded = Loaded::default();
        self.load_into(p, keep_in_memory, &mut loaded)?;
        Ok(loaded.chunk)
    }

    /// [`PartitionStore::load`] into `loaded`'s buffers (its chunk's channels are left as
    /// they are): a thread that loads partition after partition reuses their memory.
    pub fn load_into(&self, p: usize, keep_in_memory: bool, loaded: &mut Loaded) -> anyhow::Result<()> {
        let mut parts = self.in_memory[p].lock().expect("no panics while locked");
        let memory: Vec<(usize, SegmentBuffer)> =
            if keep_in_memory { parts.clone() } else { std::mem::take(&mut *parts) };
        drop(parts);
        // Spilled segments of this partition, read into one buffer (grown as needed, never
        // shrunk), writer by writer.
        let spilled = self.spilled.read().expect("no panics while locked");
        let total: usize = spilled.iter().flat_map(|(_, spill)| &spill.segments[p]).map(|&(_, length)| length).sum();
        let bytes = &mut loaded.bytes;
        // Not cleared first: every byte up to `total` is read into below, and zeroing what
        // the last partition left costs a pass over every spilled byte.
        if bytes.len() < total {
            bytes.resize(total, 0);
        }
        let mut pieces: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
        let mut start = 0;
        for (writer, spill) in spilled.iter() {
            for &(offset, length) in &spill.segments[p] {
                spill
                    .file
                    .read_exact_at(&mut bytes[start..start + length], offset)
                    .with_context(|| format!("Failed to read spill file {}", spill.path.display()))?;
                pieces.push((*writer, start..start + length));
                start += length;
            }
        }
        drop(spilled);
        let mut segments: Vec<(usize, Segment<'_>)> = Vec::with_capacity(pieces.len() + memory.len());
        for (writer, range) in pieces {
            let mut piece = &bytes[range];
            segments.push((writer, Segment::parse(&mut piece, Layout::Fixed).context("Corrupt spill file")?));
        }
        // Writer by writer, spilled rows before buffered ones (a stable sort): this is
        // file order when each writer decoded a contiguous range of the input.
        segments.extend(memory.iter().map(|(writer, buffer)| (*writer, buffer.segment())));
        segments.sort_by_key(|(writer, _)| *writer);
        let chunk = &mut loaded.chunk;
        chunk.clear_rows();
        if self.keep_row_identity && chunk.user_ids.is_none() {
            chunk.user_ids = Some(Vec::new());
        }
        for (_, segment) in &segments {
            segment.append_to(chunk, IdMaps::default()).context("Corrupt spill file")?;
        }
        Ok(())
    }

    /// Deletes the spill files, once every partition has been read for the last time, one
    /// thread per file: the kernel takes tens of milliseconds to drop a large file's
    /// cached pages, which the temporary directory's removal would pay file after file.
    pub fn remove_spill_files(&self) -> anyhow::Result<()> {
        let files = std::mem::take(&mut *self.spilled.write().expect("no panics while locked"));
        files.into_par_iter().try_for_each(|(_, spill)| {
            drop(spill.file);
            std::fs::remove_file(&spill.path).with_context(|| format!("Failed to remove {}", spill.path.display()))
        })
    }
}

/// What [`PartitionStore::load_into`] fills: the partition's rows, and the bytes read
/// from spill files on the way.
#[derive(Default)]
pub struct Loaded {
    bytes: Vec<u8>,
    pub chunk: EventChunk,
}

/// One decoding thread's buffers and spill files, one per partition.
pub struct PartitionWriter<'s> {
    store: &'s PartitionStore,
    id: usize,
    buffers: Vec<SegmentBuffer>,
    /// Created at the first spill.
    spill: Option<SpillFile>,
    /// Scratch of [`PartitionWriter::add`], kept between blocks.
    runs: PartitionRuns,
}

impl PartitionWriter<'_> {
    /// Routes every row of `block` to its user's partition; `channel_map` turns the
    /// block's channel ids into global ones, and `segment_map` its segment ids.
    pub fn add(&mut self, block: &EventChunk, channel_map: &[u32], segment_map: &[u32]) -> anyhow::Result<()> {
        self.runs.route(block, self.store.partitions);
        let partitions = self.store.partitions as usize;
        // Spill first the buffers this block would push past their share (a run longer
        // than the share itself is taken whole).
        for p in 0..partitions {
            let (rows, more) = (self.buffers[p].rows(), self.runs.rows_of(p));
            if rows > 0 && more > 0 && rows + more > self.store.buffer_rows {
                self.spill(p)?;
            }
        }
        self.runs.push_extras(block, &mut self.buffers, self.store.keep_row_identity, segment_map);
        for (p, to) in self.buffers.iter_mut().enumerate() {
            reserve(to, self.runs.rows_of(p), self.store.buffer_rows);
        }
        let buffers = &mut self.buffers;
        self.runs.for_each_run(block, channel_map, |p, records| buffers[p].records.extend_from_slice(records));
        Ok(())
    }

    /// Appends partition `p`'s buffer to this writer's spill file and empties it (keeping
    /// its memory).
    fn spill(&mut self, p: usize) -> anyhow::Result<()> {
        let spill = match &mut self.spill {
            Some(spill) => spill,
            None => {
                let path = self.store.spill_path(self.id);
                let file = File::options()
                    .read(true)
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("Failed to create spill file {}", path.display()))?;
                let segments = vec![Vec::new(); self.buffers.len()];
                self.spill.insert(SpillFile { path, file, length: 0, segments })
            }
        };
        let segment = self.buffers[p].segment();
        segment.write_to(&mut spill.file).context("Failed to write a spill file")?;
        spill.segments[p].push((spill.length, segment.stored_bytes()));
        spill.length += segment.stored_bytes() as u64;
        self.buffers[p].clear();
        Ok(())
    }

    /// Hands what is still buffered to the store.
    pub fn finish(self) {
        for (p, buffer) in self.buffers.into_iter().enumerate() {
            if buffer.rows() > 0 {
                self.store.in_memory[p].lock().expect("no panics while locked").push((self.id, buffer));
            }
        }
        if let Some(spill) = self.spill {
            self.store.spilled.write().expect("no panics while locked").push((self.id, spill));
        }
    }
}

/// Makes room in `buffer` for `more` records. A small share (a large input over many
/// buffers) is taken whole at once: growing by doubling would copy each buffer's rows over
/// and over. A large one grows by doubling, but not past `max_rows` unless needed (doubling
/// alone could leave every buffer with twice the memory it is allowed).
fn reserve(buffer: &mut SegmentBuffer, more: usize, max_rows: usize) {
    let records = &mut buffer.records;
    let needed = records.len() + more;
    if needed <= records.capacity() {
        return;
    }
    let doubled = if max_rows <= WHOLE_SHARE_ROWS { max_rows } else { records.len() * 2 };
    let target = doubled.clamp(MIN_BUFFER_ROWS, max_rows).max(needed);
    records.reserve_exact(target - records.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::chunk::{NO_CHANNEL, NO_SEGMENT, partition_of};

    /// `rows` rows of `users` users in file order, every seventh a conversion without a channel.
    fn block(first_row: u64, rows: usize, users: u128, keep: bool) -> EventChunk {
        let mut chunk = EventChunk::with_capacity(rows, keep);
        for i in 0..rows {
            let row = first_row + i as u64;
            let user = u128::from(row as u32) % users;
            let conversion = row.is_multiple_of(7);
            chunk.user_keys.push(mta_core::chunk::user_key(&user.to_le_bytes()));
            if let Some(ids) = &mut chunk.user_ids {
                ids.push(format!("user-{user}"));
            }
            chunk.timestamps.push(row as i64 * 1_000);
            chunk.channel_ids.push(if conversion { NO_CHANNEL } else { (row % 5) as u32 });
            chunk.is_conversion.push(conversion);
            chunk.values.push(if conversion { row as f64 / 4.0 } else { 0.0 });
            chunk.row_numbers.push(row);
            // Every eleventh row has no segment value.
            chunk.segment_ids.push(if row.is_multiple_of(11) { NO_SEGMENT } else { (row % 3) as u32 });
        }
        chunk
    }

    /// Writes 20,000 rows through two writers (each a contiguous half, as the decoder
    /// does) with a budget that forces many spills, and reads every partition back.
    fn round_trip(keep: bool, budget_bytes: usize) -> (Vec<EventChunk>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = PartitionStore::new(dir.path(), 3, keep, budget_bytes, 2);
        for (first, last) in [(1u64, 10_000u64), (10_001, 20_000)] {
            let mut writer = store.writer();
            let mut row = first;
            while row <= last {
                let rows = 3_000.min((last - row + 1) as usize);
                writer.add(&block(row, rows, 997, keep), &[0, 1, 2, 3, 4], &[10, 11, 12]).unwrap();
                row += rows as u64;
            }
            writer.finish();
        }
        let chunks = (0..3).map(|p| store.load(p, false).unwrap()).collect();
        (chunks, dir)
    }

    #[test]
    fn rows_come_back_whole_and_in_file_order_after_spilling() {
        let (chunks, dir) = round_trip(true, 0);
        assert!(std::fs::read_dir(dir.path()).unwrap().count() == 2, "both writers spilled");
        let expected = block(1, 20_000, 997, true);
        let mut seen = 0;
        for (p, chunk) in chunks.iter().enumerate() {
            assert!(chunk.row_numbers.is_sorted(), "partition {p} keeps file order");
            for i in 0..chunk.len() {
                let row = chunk.row_numbers[i] as usize - 1;
                assert_eq!(partition_of(chunk.user_keys[i], 3), p as u32);
                assert_eq!(chunk.user_keys[i], expected.user_keys[row]);
                assert_eq!(chunk.timestamps[i], expected.timestamps[row]);
                assert_eq!(chunk.channel_ids[i], expected.channel_ids[row]);
                assert_eq!(chunk.is_conversion[i], expected.is_conversion[row]);
                assert_eq!(chunk.values[i], expected.values[row]);
                let segment = expected.segment_ids[row];
                assert_eq!(chunk.segment_ids[i], if segment == NO_SEGMENT { NO_SEGMENT } else { segment + 10 });
                assert_eq!(chunk.user_ids.as_ref().unwrap()[i], expected.user_ids.as_ref().unwrap()[row]);
            }
            seen += chunk.len();
        }
        assert_eq!(seen, 20_000);
    }

    #[test]
    fn without_kept_identity_rows_are_numbered_by_their_order() {
        let (spilled, _dir) = round_trip(false, 0);
        let (in_memory, dir) = round_trip(false, 1 << 30);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "a large budget spills nothing");
        for (a, b) in spilled.iter().zip(&in_memory) {
            assert_eq!(a.user_keys, b.user_keys);
            assert_eq!(a.timestamps, b.timestamps);
            assert_eq!(a.values, b.values);
            assert_eq!(a.row_numbers, (1..=a.len() as u64).collect::<Vec<_>>());
            assert!(a.user_ids.is_none());
        }
    }

    #[test]
    fn spill_files_are_gone_once_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = PartitionStore::new(dir.path(), 1, false, 0, 1);
        let mut writer = store.writer();
        for first in [1, 1_001] {
            writer.add(&block(first, 1_000, 10, false), &[0, 1, 2, 3, 4], &[0, 1, 2]).unwrap();
        }
        writer.finish();
        assert!(store.spill_path(0).exists());
        let rows = store.load(0, true).unwrap().len();
        store.remove_spill_files().unwrap();
        assert!(!store.spill_path(0).exists());
        assert!(store.load(0, true).unwrap().len() < rows, "only the rows kept in memory are left");
    }

    #[test]
    fn a_damaged_spill_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = PartitionStore::new(dir.path(), 1, false, 0, 1);
        let mut writer = store.writer();
        for first in [1, 1_001, 2_001] {
            writer.add(&block(first, 1_000, 10, false), &[0, 1, 2, 3, 4], &[0, 1, 2]).unwrap();
        }
        writer.finish();
        let path = store.spill_path(0);
        let length = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(length - 3).unwrap();
        assert!(store.load(0, false).is_err());
    }
}
