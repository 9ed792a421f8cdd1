//! Partitions of event rows, hash-partitioned by user so that each holds whole users
//! (the local twin of the service's split stage). Rows stay in memory up to a budget
//! shared by all writers; past it, the writer that overflows appends its buffers to
//! per-partition files in a temporary directory, so memory stays bounded whatever
//! the input size.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use mta_core::chunk::{EventChunk, partition_of};

/// One buffered row. Writers append whole rows (one write per row instead of one per
/// column: with hundreds of partitions, column-wise buffers thrash the cache).
#[derive(Debug, Clone, Copy)]
struct PackedRow {
    user_key: u128,
    time: i64,
    row_number: u64,
    value: f64,
    channel: u32,
    is_conversion: bool,
}

/// In-memory size of one buffered row.
const ROW_BYTES: usize = std::mem::size_of::<PackedRow>();
/// A buffer smaller than this is not worth a write when spilling.
const MIN_SPILL_ROWS: usize = 4096;

/// Where partitions live: the spill directory, the memory budget, and what stayed in memory.
pub struct PartitionStore {
    dir: PathBuf,
    partitions: u32,
    keep_user_ids: bool,
    budget_bytes: usize,
    buffered_bytes: AtomicUsize,
    /// `in_memory[p]`: the buffers of partition p that writers handed over at the end,
    /// with the writer's id.
    in_memory: Vec<Mutex<Vec<(usize, Buffer)>>>,
    writers: AtomicUsize,
}

impl PartitionStore {
    pub fn new(dir: &Path, partitions: u32, keep_user_ids: bool, budget_bytes: usize) -> PartitionStore {
        PartitionStore {
            dir: dir.to_owned(),
            partitions,
            keep_user_ids,
            budget_bytes,
            buffered_bytes: AtomicUsize::new(0),
            in_memory: (0..partitions).map(|_| Mutex::new(Vec::new())).collect(),
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
            buffers: (0..self.partitions).map(|_| Buffer::default()).collect(),
            files: (0..self.partitions).map(|_| None).collect(),
            encoded: Vec::new(),
        }
    }

    fn empty_chunk(&self) -> EventChunk {
        EventChunk { user_ids: self.keep_user_ids.then(Vec::new), ..Default::default() }
    }

    fn file(&self, partition: usize, writer: usize) -> PathBuf {
        self.dir.join(format!("p{partition:04}-w{writer:02}.rows"))
    }

    /// All rows of partition `p`: its spill files plus what stayed in memory. With
    /// `keep_in_memory` false the in-memory part is handed over (freed once used).
    pub fn load(&self, p: usize, keep_in_memory: bool) -> anyhow::Result<EventChunk> {
        let mut parts = self.in_memory[p].lock().expect("no panics while locked");
        let mut memory: Vec<(usize, Buffer)> = if keep_in_memory { parts.clone() } else { std::mem::take(&mut *parts) };
        drop(parts);
        memory.sort_by_key(|(writer, _)| *writer);
        let mut chunk = self.empty_chunk();
        // Writer by writer, spilled rows before buffered ones: this is file order when
        // each writer decoded a contiguous range of the input.
        for writer in 0..self.writers.load(Ordering::Relaxed) {
            let path = self.file(p, writer);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    decode(&bytes, &mut chunk).with_context(|| format!("Corrupt spill file {}", path.display()))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("Failed to read spill file {}", path.display())),
            }
            for (_, part) in memory.iter().filter(|(w, _)| *w == writer) {
                part.append_to(&mut chunk);
            }
        }
        Ok(chunk)
    }
}

/// One decoding thread's buffers and spill files, one per partition.
pub struct PartitionWriter<'s> {
    store: &'s PartitionStore,
    id: usize,
    buffers: Vec<Buffer>,
    files: Vec<Option<File>>,
    encoded: Vec<u8>,
}

impl PartitionWriter<'_> {
    /// Routes every row of `block` to its user's partition; `channel_map` turns the
    /// block's channel ids into global ones.
    pub fn add(&mut self, block: &EventChunk, channel_map: &[u32]) -> anyhow::Result<()> {
        let partitions = self.store.partitions;
        for row in 0..block.len() {
            let p = partition_of(block.user_keys[row], partitions) as usize;
            let to = &mut self.buffers[p];
            let channel = block.channel_ids[row];
            to.rows.push(PackedRow {
                user_key: block.user_keys[row],
                time: block.timestamps[row],
                row_number: block.row_numbers[row],
                value: block.values[row],
                channel: channel_map.get(channel as usize).copied().unwrap_or(channel),
                is_conversion: block.is_conversion[row],
            });
            if let Some(ids) = &block.user_ids {
                to.user_ids.push(ids[row].clone());
            }
        }
        let added = block.len() * ROW_BYTES;
        let total = self.store.buffered_bytes.fetch_add(added, Ordering::Relaxed) + added;
        if total > self.store.budget_bytes {
            self.spill(MIN_SPILL_ROWS)?;
        }
        Ok(())
    }

    /// Appends every buffer of at least `min_rows` rows to its partition file.
    fn spill(&mut self, min_rows: usize) -> anyhow::Result<()> {
        for p in 0..self.buffers.len() {
            let rows = self.buffers[p].rows.len();
            if rows == 0 || rows < min_rows {
                continue;
            }
            self.encoded.clear();
            self.buffers[p].encode(&mut self.encoded);
            if self.files[p].is_none() {
                let path = self.store.file(p, self.id);
                let file =
                    File::create(&path).with_context(|| format!("Failed to create spill file {}", path.display()))?;
                self.files[p] = Some(file);
            }
            let file = self.files[p].as_mut().expect("opened above");
            file.write_all(&self.encoded).context("Failed to write a spill file")?;
            self.buffers[p].rows.clear();
            self.buffers[p].user_ids.clear();
            self.store.buffered_bytes.fetch_sub(rows * ROW_BYTES, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Hands what is still buffered to the store.
    pub fn finish(self) {
        for (p, buffer) in self.buffers.into_iter().enumerate() {
            if !buffer.rows.is_empty() {
                self.store.in_memory[p].lock().expect("no panics while locked").push((self.id, buffer));
            }
        }
    }
}

/// A partition's rows buffered by one writer (user ids only when they are kept).
#[derive(Debug, Clone, Default)]
struct Buffer {
    rows: Vec<PackedRow>,
    user_ids: Vec<String>,
}

impl Buffer {
    fn append_to(&self, chunk: &mut EventChunk) {
        chunk.user_keys.extend(self.rows.iter().map(|r| r.user_key));
        chunk.timestamps.extend(self.rows.iter().map(|r| r.time));
        chunk.channel_ids.extend(self.rows.iter().map(|r| r.channel));
        chunk.is_conversion.extend(self.rows.iter().map(|r| r.is_conversion));
        chunk.values.extend(self.rows.iter().map(|r| r.value));
        chunk.row_numbers.extend(self.rows.iter().map(|r| r.row_number));
        if let Some(ids) = &mut chunk.user_ids {
            ids.extend_from_slice(&self.user_ids);
        }
    }

    /// Record layout: key (16) time (8) channel (4) flags (1) row (8), then the value (8)
    /// only on conversion rows and the user id (4-byte length + bytes) only when kept.
    fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.rows.len() * 38);
        for (i, row) in self.rows.iter().enumerate() {
            out.extend_from_slice(&row.user_key.to_le_bytes());
            out.extend_from_slice(&row.time.to_le_bytes());
            out.extend_from_slice(&row.channel.to_le_bytes());
            out.push(u8::from(row.is_conversion));
            out.extend_from_slice(&row.row_number.to_le_bytes());
            if row.is_conversion {
                out.extend_from_slice(&row.value.to_le_bytes());
            }
            if let Some(id) = self.user_ids.get(i) {
                out.extend_from_slice(&(id.len() as u32).to_le_bytes());
                out.extend_from_slice(id.as_bytes());
            }
        }
    }
}

fn decode(mut bytes: &[u8], chunk: &mut EventChunk) -> anyhow::Result<()> {
    fn take<const N: usize>(bytes: &mut &[u8]) -> anyhow::Result<[u8; N]> {
        let mut out = [0u8; N];
        bytes.read_exact(&mut out).context("record cut short")?;
        Ok(out)
    }
    while !bytes.is_empty() {
        chunk.user_keys.push(u128::from_le_bytes(take(&mut bytes)?));
        chunk.timestamps.push(i64::from_le_bytes(take(&mut bytes)?));
        chunk.channel_ids.push(u32::from_le_bytes(take(&mut bytes)?));
        let conversion = take::<1>(&mut bytes)?[0] != 0;
        chunk.is_conversion.push(conversion);
        chunk.row_numbers.push(u64::from_le_bytes(take(&mut bytes)?));
        chunk.values.push(if conversion { f64::from_le_bytes(take(&mut bytes)?) } else { 0.0 });
        if let Some(ids) = &mut chunk.user_ids {
            let len = u32::from_le_bytes(take(&mut bytes)?) as usize;
            let id = bytes.get(..len).context("user id cut short")?;
            ids.push(String::from_utf8(id.to_vec())?);
            bytes = &bytes[len..];
        }
    }
    Ok(())
}
