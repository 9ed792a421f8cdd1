//! Partition files: event rows hash-partitioned by user and spilled to a temporary
//! directory, so that memory stays bounded whatever the input size and every
//! partition holds whole users (the local twin of the service's split stage).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use mta_core::chunk::{EventChunk, partition_of};

/// Rows a partition buffers in memory before they are appended to its file.
const FLUSH_ROWS: usize = 16_384;

/// One writer's files, one per partition.
pub struct PartitionWriter {
    dir: PathBuf,
    writer_id: usize,
    keep_user_ids: bool,
    buffers: Vec<EventChunk>,
    files: Vec<Option<BufWriter<File>>>,
}

impl PartitionWriter {
    pub fn new(dir: &Path, writer_id: usize, partitions: u32, keep_user_ids: bool) -> PartitionWriter {
        let empty = || EventChunk { user_ids: keep_user_ids.then(Vec::new), ..Default::default() };
        PartitionWriter {
            dir: dir.to_owned(),
            writer_id,
            keep_user_ids,
            buffers: (0..partitions).map(|_| empty()).collect(),
            files: (0..partitions).map(|_| None).collect(),
        }
    }

    /// Routes every row of `block` to its user's partition; `channel_map` turns the
    /// block's channel ids into global ones.
    pub fn add(&mut self, block: &EventChunk, channel_map: &[u32]) -> anyhow::Result<()> {
        let partitions = self.buffers.len() as u32;
        for row in 0..block.len() {
            let p = partition_of(block.user_keys[row], partitions) as usize;
            let buffer = &mut self.buffers[p];
            buffer.user_keys.push(block.user_keys[row]);
            if let (Some(to), Some(from)) = (&mut buffer.user_ids, &block.user_ids) {
                to.push(from[row].clone());
            }
            buffer.timestamps.push(block.timestamps[row]);
            let channel = block.channel_ids[row];
            buffer.channel_ids.push(channel_map.get(channel as usize).copied().unwrap_or(channel));
            buffer.is_conversion.push(block.is_conversion[row]);
            buffer.values.push(block.values[row]);
            buffer.row_numbers.push(block.row_numbers[row]);
            if buffer.len() >= FLUSH_ROWS {
                self.flush(p)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, p: usize) -> anyhow::Result<()> {
        if self.buffers[p].is_empty() {
            return Ok(());
        }
        if self.files[p].is_none() {
            let path = partition_file(&self.dir, p, self.writer_id);
            let file =
                File::create(&path).with_context(|| format!("Failed to create spill file {}", path.display()))?;
            self.files[p] = Some(BufWriter::with_capacity(256 * 1024, file));
        }
        let out = self.files[p].as_mut().expect("opened above");
        let buffer = &mut self.buffers[p];
        for row in 0..buffer.len() {
            out.write_all(&buffer.user_keys[row].to_le_bytes())?;
            out.write_all(&buffer.timestamps[row].to_le_bytes())?;
            out.write_all(&buffer.channel_ids[row].to_le_bytes())?;
            out.write_all(&[u8::from(buffer.is_conversion[row])])?;
            out.write_all(&buffer.values[row].to_le_bytes())?;
            out.write_all(&buffer.row_numbers[row].to_le_bytes())?;
            if let Some(ids) = &buffer.user_ids {
                let id = ids[row].as_bytes();
                out.write_all(&(id.len() as u32).to_le_bytes())?;
                out.write_all(id)?;
            }
        }
        let keep = self.keep_user_ids;
        *buffer = EventChunk { user_ids: keep.then(Vec::new), ..Default::default() };
        Ok(())
    }

    /// Writes out what is still buffered and closes the files.
    pub fn finish(mut self) -> anyhow::Result<()> {
        for p in 0..self.buffers.len() {
            self.flush(p)?;
            if let Some(file) = self.files[p].take() {
                file.into_inner().map_err(|e| e.into_error()).context("Failed to write a spill file")?;
            }
        }
        Ok(())
    }
}

fn partition_file(dir: &Path, partition: usize, writer_id: usize) -> PathBuf {
    dir.join(format!("p{partition:04}-w{writer_id:02}.rows"))
}

/// Loads partition `p` (all writers' files) as one chunk.
pub fn read_partition(dir: &Path, partition: usize, writers: usize, keep_user_ids: bool) -> anyhow::Result<EventChunk> {
    let mut chunk = EventChunk { user_ids: keep_user_ids.then(Vec::new), ..Default::default() };
    for writer_id in 0..writers {
        let path = partition_file(dir, partition, writer_id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("Failed to open spill file {}", path.display())),
        };
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut record = [0u8; 45];
        loop {
            match input.read_exact(&mut record) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e).context("Failed to read a spill file"),
            }
            chunk.user_keys.push(u128::from_le_bytes(record[0..16].try_into()?));
            chunk.timestamps.push(i64::from_le_bytes(record[16..24].try_into()?));
            chunk.channel_ids.push(u32::from_le_bytes(record[24..28].try_into()?));
            chunk.is_conversion.push(record[28] != 0);
            chunk.values.push(f64::from_le_bytes(record[29..37].try_into()?));
            chunk.row_numbers.push(u64::from_le_bytes(record[37..45].try_into()?));
            if let Some(ids) = &mut chunk.user_ids {
                let mut len = [0u8; 4];
                input.read_exact(&mut len)?;
                let mut id = vec![0u8; u32::from_le_bytes(len) as usize];
                input.read_exact(&mut id)?;
                ids.push(String::from_utf8(id)?);
            }
        }
    }
    Ok(chunk)
}
