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

/// In-memory size of one buffered row (key, time, channel, flag, value, row number).
const ROW_BYTES: usize = 16 + 8 + 4 + 1 + 8 + 8;
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
    in_memory: Vec<Mutex<Vec<(usize, EventChunk)>>>,
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
            buffers: (0..self.partitions).map(|_| self.empty_chunk()).collect(),
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
        let mut memory: Vec<(usize, EventChunk)> =
            if keep_in_memory { parts.clone() } else { std::mem::take(&mut *parts) };
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
            for (_, part) in memory.iter_mut().filter(|(w, _)| *w == writer) {
                if chunk.is_empty() {
                    std::mem::swap(&mut chunk, part);
                } else {
                    append(&mut chunk, part);
                }
            }
        }
        Ok(chunk)
    }
}

/// One decoding thread's buffers and spill files, one per partition.
pub struct PartitionWriter<'s> {
    store: &'s PartitionStore,
    id: usize,
    buffers: Vec<EventChunk>,
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
            to.user_keys.push(block.user_keys[row]);
            to.timestamps.push(block.timestamps[row]);
            let channel = block.channel_ids[row];
            to.channel_ids.push(channel_map.get(channel as usize).copied().unwrap_or(channel));
            to.is_conversion.push(block.is_conversion[row]);
            to.values.push(block.values[row]);
            to.row_numbers.push(block.row_numbers[row]);
            if let (Some(to_ids), Some(from_ids)) = (&mut to.user_ids, &block.user_ids) {
                to_ids.push(from_ids[row].clone());
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
            let rows = self.buffers[p].len();
            if rows == 0 || rows < min_rows {
                continue;
            }
            self.encoded.clear();
            encode(&self.buffers[p], &mut self.encoded);
            if self.files[p].is_none() {
                let path = self.store.file(p, self.id);
                let file =
                    File::create(&path).with_context(|| format!("Failed to create spill file {}", path.display()))?;
                self.files[p] = Some(file);
            }
            let file = self.files[p].as_mut().expect("opened above");
            file.write_all(&self.encoded).context("Failed to write a spill file")?;
            clear(&mut self.buffers[p]);
            self.store.buffered_bytes.fetch_sub(rows * ROW_BYTES, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Hands what is still buffered to the store.
    pub fn finish(self) {
        for (p, buffer) in self.buffers.into_iter().enumerate() {
            if !buffer.is_empty() {
                self.store.in_memory[p].lock().expect("no panics while locked").push((self.id, buffer));
            }
        }
    }
}

/// Appends every row of `from` to `to` (same channel ids).
fn append(to: &mut EventChunk, from: &EventChunk) {
    to.user_keys.extend_from_slice(&from.user_keys);
    to.timestamps.extend_from_slice(&from.timestamps);
    to.channel_ids.extend_from_slice(&from.channel_ids);
    to.is_conversion.extend_from_slice(&from.is_conversion);
    to.values.extend_from_slice(&from.values);
    to.row_numbers.extend_from_slice(&from.row_numbers);
    if let (Some(to_ids), Some(from_ids)) = (&mut to.user_ids, &from.user_ids) {
        to_ids.extend_from_slice(from_ids);
    }
}

fn clear(chunk: &mut EventChunk) {
    chunk.user_keys.clear();
    chunk.timestamps.clear();
    chunk.channel_ids.clear();
    chunk.is_conversion.clear();
    chunk.values.clear();
    chunk.row_numbers.clear();
    if let Some(ids) = &mut chunk.user_ids {
        ids.clear();
    }
}

/// Record layout: key (16) time (8) channel (4) flags (1) row (8), then the value (8)
/// only on conversion rows and the user id (4-byte length + bytes) only when kept.
fn encode(chunk: &EventChunk, out: &mut Vec<u8>) {
    out.reserve(chunk.len() * 38);
    for row in 0..chunk.len() {
        out.extend_from_slice(&chunk.user_keys[row].to_le_bytes());
        out.extend_from_slice(&chunk.timestamps[row].to_le_bytes());
        out.extend_from_slice(&chunk.channel_ids[row].to_le_bytes());
        let conversion = chunk.is_conversion[row];
        out.push(u8::from(conversion));
        out.extend_from_slice(&chunk.row_numbers[row].to_le_bytes());
        if conversion {
            out.extend_from_slice(&chunk.values[row].to_le_bytes());
        }
        if let Some(ids) = &chunk.user_ids {
            out.extend_from_slice(&(ids[row].len() as u32).to_le_bytes());
            out.extend_from_slice(ids[row].as_bytes());
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
