//! Split stage: read the upload (Parquet row groups in parallel tasks, text as one
//! stream) and hash-partition event rows by user into chunk files, so that no journey
//! crosses chunks. Path rows need no partitioning: each split turns them into a partial.
//!
//! The first task of a job plans: it counts row groups (Parquet) or cuts a large
//! uncompressed CSV file into byte ranges at record boundaries, decides the number of
//! split tasks and partitions, records the plan, and fans out (or does the work itself
//! when the input is one piece). The last split to finish enqueues the attribute tasks.

use mta_core::chunk::{ChannelDict, EventChunk, NO_CHANNEL, partition_of};
use std::io::Read;

use mta_core::ingest::{Block, Format, InputSpec, detect_delimiter, detect_format};
use mta_core::{InputKind, Options, Partial};
use mta_platform::chunk_file;
use mta_platform::input::{CsvRange, Source, plan_csv_ranges};
use mta_platform::ledger::{FanIn, JobRecord, Stage};
use mta_platform::queue::{AttributeTask, ReduceTask, SplitTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::keys;
use object_store::path::Path as Key;

use crate::Services;
use crate::stage::{StageError, StopFlag, block_on, run_unit};

/// Buffered event rows of one split before its partitions are written out.
const FLUSH_ROWS: usize = 1_000_000;
const MAX_PARTITIONS: u64 = 4096;

#[derive(Debug, Clone)]
pub struct SplitHandler(pub Services);

impl StageHandler<SplitTask> for SplitHandler {
    async fn handle(&self, task: SplitTask, info: TaskInfo) -> Result<(), TaskError> {
        let services = self.0.clone();
        let (piece, range) = (task.split, task.range);
        let owner = info.task_id.clone();
        run_unit(&self.0, &task, &info, Stage::Splitting, move |job, stop| {
            split(&services, &job, piece, range, &owner, &stop)
        })
        .await
    }
}

fn split(
    services: &Services,
    job: &JobRecord,
    piece: Option<u32>,
    range: Option<CsvRange>,
    owner: &str,
    stop: &StopFlag,
) -> Result<(), StageError> {
    let scratch = tempfile::Builder::new().prefix("mta-split-").tempdir().map_err(anyhow::Error::from)?;
    let upload = keys::upload(&job.tenant, &job.upload_id);
    let path = match &range {
        Some(r) => {
            block_on(services.storage.local_copy_ranges(&upload, &[0..r.header_end, r.start..r.end], scratch.path()))
        }
        None => block_on(services.storage.local_copy(&upload, scratch.path())),
    }?;
    services.metrics.input_bytes.inc_by(std::fs::metadata(&path).map_or(0, |m| m.len()));
    let spec = job.spec.input_spec(&services.config.limits)?;
    let source = Source::open::<StageError>(&path, spec.format)?;
    let (splits, partitions) = match piece {
        Some(_) => (job.progress.splits_total as u32, job.partitions),
        None => {
            let rows = source.estimated_rows().max(1);
            let partitions = rows.div_ceil(services.config.rows_per_chunk).clamp(1, MAX_PARTITIONS) as u32;
            if let Some(ranges) = csv_ranges(services, &source, &spec, &path)? {
                block_on(services.ledger.set_plan(&job.id, ranges.len() as u32, partitions))?;
                let tasks = ranges
                    .into_iter()
                    .enumerate()
                    .map(|(i, range)| SplitTask { job: job.id, split: Some(i as u32), range: Some(range) })
                    .collect();
                block_on(services.queue.push_all(tasks))?;
                return Ok(());
            }
            let splits = (source.pieces() as u32).clamp(1, services.config.split_parallelism);
            block_on(services.ledger.set_plan(&job.id, splits, partitions))?;
            if splits > 1 {
                let tasks = (0..splits).map(|i| SplitTask { job: job.id, split: Some(i), range: None }).collect();
                block_on(services.queue.push_all(tasks))?;
                return Ok(());
            }
            (splits, partitions)
        }
    };
    let index = piece.unwrap_or(0);
    let row_groups: Option<Vec<usize>> = match source {
        Source::Parquet { row_groups, .. } => {
            let (s, n) = (index as usize, splits as usize);
            Some((s * row_groups / n..(s + 1) * row_groups / n).collect())
        }
        Source::Text { .. } => None,
    };
    let mut splitter = Splitter::new(services, job, &spec, index, partitions, source.estimated_rows(), stop);
    match &range {
        Some(range) => source.read_csv_range(&spec, range, |block| splitter.take(block))?,
        None => source.read(&spec, row_groups.as_deref(), |block| splitter.take(block))?,
    }
    splitter.finish()?;

    if block_on(services.ledger.fan_in(&job.id, Stage::Splitting, &index.to_string(), splits as u64, owner))?
        == FanIn::Complete
    {
        let kind = block_on(services.ledger.job(&job.id))?.and_then(|job| job.kind);
        if kind == Some(InputKind::Events) {
            block_on(services.ledger.mark_running(&job.id, Stage::Attributing))?;
            let tasks = (0..partitions).map(|partition| AttributeTask { job: job.id, partition }).collect();
            block_on(services.queue.push_all(tasks))?;
        } else {
            // Path rows were attributed while splitting (or nothing was read at all).
            block_on(services.ledger.mark_running(&job.id, Stage::Reducing))?;
            block_on(services.queue.push(ReduceTask { job: job.id }))?;
        }
    }
    Ok(())
}

/// Byte ranges for the split tasks of a large uncompressed CSV file (`None`: read it whole).
fn csv_ranges(
    services: &Services,
    source: &Source,
    spec: &InputSpec,
    path: &std::path::Path,
) -> Result<Option<Vec<CsvRange>>, StageError> {
    let Source::Text { format, gzip: false, .. } = source else { return Ok(None) };
    let size = std::fs::metadata(path).map_err(anyhow::Error::from)?.len();
    let pieces = (size / services.config.csv_range_bytes).min(services.config.split_parallelism as u64) as usize;
    if pieces < 2 {
        return Ok(None);
    }
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).map_err(anyhow::Error::from)?;
    let head = &head[..n];
    let is_csv = match format {
        Some(format) => *format == Format::Csv,
        None => detect_format(head).is_ok_and(|format| format == Format::Csv),
    };
    if !is_csv {
        return Ok(None);
    }
    let delimiter = spec.delimiter.unwrap_or_else(|| detect_delimiter(head));
    Ok(plan_csv_ranges(path, delimiter, pieces)?)
}

/// Partitions the blocks of one split task.
struct Splitter<'a> {
    services: &'a Services,
    job: &'a JobRecord,
    keep_user_ids: bool,
    split: u32,
    stop: &'a StopFlag,
    options: Option<Options>,
    channels: ChannelDict,
    buffers: Vec<EventChunk>,
    /// Rows a partition's buffer has room for from the start: its expected share of a
    /// flush (user keys are hashes, so partitions fill evenly; a buffer that grew by
    /// doubling copied its rows over and over).
    share: usize,
    buffered: usize,
    /// Next file number per partition: files are named by (split, number), so a re-run
    /// of this task overwrites exactly what an earlier run wrote.
    sequence: Vec<u32>,
    uploader: ChunkUploader,
    path_partial: Option<Partial>,
    rows: u64,
}

impl<'a> Splitter<'a> {
    fn new(
        services: &'a Services,
        job: &'a JobRecord,
        spec: &InputSpec,
        split: u32,
        partitions: u32,
        estimated_rows: u64,
        stop: &'a StopFlag,
    ) -> Self {
        // The file's estimate bounds the first buffers of a small input.
        let flush = estimated_rows.min(FLUSH_ROWS as u64) as usize;
        let share = flush.div_ceil(partitions.max(1) as usize);
        let share = share + share / 16;
        Splitter {
            services,
            job,
            keep_user_ids: spec.keep_user_ids,
            split,
            stop,
            options: None,
            channels: ChannelDict::default(),
            buffers: (0..partitions).map(|_| EventChunk::with_capacity(share, spec.keep_user_ids)).collect(),
            share,
            buffered: 0,
            sequence: vec![0; partitions as usize],
            uploader: ChunkUploader::start(services.clone(), stop.clone()),
            path_partial: None,
            rows: 0,
        }
    }

    fn take(&mut self, block: Block) -> Result<(), StageError> {
        self.stop.check()?;
        let rows_before = self.rows;
        let kind = match &block {
            Block::Events(_) => InputKind::Events,
            Block::Paths(_) => InputKind::Paths,
        };
        if self.options.is_none() {
            self.options = Some(self.job.spec.options.validate(kind)?);
            block_on(self.services.ledger.set_kind(&self.job.id, kind))?;
        }
        match block {
            Block::Events(chunk) => self.partition(&chunk)?,
            Block::Paths(chunk) => {
                self.rows += chunk.len() as u64;
                let partial = Partial::from_paths(&chunk, self.options.as_ref().expect("set above"))?;
                match &mut self.path_partial {
                    Some(total) => total.merge(&partial),
                    None => self.path_partial = Some(partial),
                }
            }
        }
        block_on(self.services.ledger.set_rows(&self.job.id, self.split, self.rows))?;
        self.services.metrics.rows_read.inc_by(self.rows - rows_before);
        Ok(())
    }

    fn partition(&mut self, chunk: &EventChunk) -> Result<(), StageError> {
        let map: Vec<u32> = chunk.channels.names().iter().map(|name| self.channels.id(name)).collect();
        self.services.config.limits.engine().check_channels(self.channels.len())?;
        let partitions = self.buffers.len() as u32;
        for row in 0..chunk.len() {
            let key = chunk.user_keys[row];
            let buffer = &mut self.buffers[partition_of(key, partitions) as usize];
            buffer.user_keys.push(key);
            buffer.timestamps.push(chunk.timestamps[row]);
            let channel = chunk.channel_ids[row];
            buffer.channel_ids.push(if channel == NO_CHANNEL { NO_CHANNEL } else { map[channel as usize] });
            buffer.is_conversion.push(chunk.is_conversion[row]);
            buffer.values.push(chunk.values[row]);
            buffer.row_numbers.push(chunk.row_numbers[row]);
            if self.keep_user_ids
                && let (Some(into), Some(from)) = (buffer.user_ids.as_mut(), chunk.user_ids.as_ref())
            {
                into.push(from[row].clone());
            }
        }
        self.rows += chunk.len() as u64;
        self.buffered += chunk.len();
        if self.buffered >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands every non-empty partition buffer to the uploader and starts new buffers.
    fn flush(&mut self) -> Result<(), StageError> {
        let mut batch = Vec::new();
        for (partition, buffer) in self.buffers.iter_mut().enumerate() {
            if buffer.is_empty() {
                continue;
            }
            let mut chunk = std::mem::replace(buffer, EventChunk::with_capacity(self.share, self.keep_user_ids));
            chunk.channels = self.channels.clone();
            batch.push((
                keys::chunk(&self.job.tenant, &self.job.id, partition as u32, self.split, self.sequence[partition]),
                chunk,
            ));
            self.sequence[partition] += 1;
        }
        self.buffered = 0;
        self.uploader.send(batch)
    }

    fn finish(mut self) -> Result<(), StageError> {
        self.flush()?;
        self.uploader.finish()?;
        if let Some(partial) = &self.path_partial {
            // Merged over blocks: a sum may have overflowed only now.
            partial.check_finite(self.options.as_ref().expect("set with the first block"))?;
            let key = keys::partial(&self.job.tenant, &self.job.id, &format!("s{:04}", self.split));
            block_on(self.services.storage.put(&key, serde_json::to_vec(partial).map_err(anyhow::Error::from)?))?;
        }
        Ok(())
    }
}

/// Encodes and stores chunk files on a second thread while the split keeps decoding, so
/// parsing and Parquet encoding use two cores. At most one batch waits in between, which
/// bounds memory to about two flushes of rows.
struct ChunkUploader {
    sender: Option<std::sync::mpsc::SyncSender<Vec<(Key, EventChunk)>>>,
    thread: Option<std::thread::JoinHandle<Result<(), StageError>>>,
}

impl ChunkUploader {
    fn start(services: Services, stop: StopFlag) -> ChunkUploader {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<(Key, EventChunk)>>(1);
        let runtime = tokio::runtime::Handle::current();
        let thread = std::thread::spawn(move || {
            for batch in receiver {
                for (key, chunk) in batch {
                    stop.check()?;
                    let bytes = chunk_file::encode(&chunk)?;
                    runtime.block_on(services.storage.put(&key, bytes))?;
                }
            }
            Ok(())
        });
        ChunkUploader { sender: Some(sender), thread: Some(thread) }
    }

    fn send(&mut self, batch: Vec<(Key, EventChunk)>) -> Result<(), StageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let sent = self.sender.as_ref().is_some_and(|sender| sender.send(batch).is_ok());
        // A closed channel means the uploader stopped on an error: report that error.
        if sent { Ok(()) } else { self.finish() }
    }

    /// Waits for every batch to be stored.
    fn finish(&mut self) -> Result<(), StageError> {
        self.sender = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(StageError::Other(anyhow::anyhow!("the chunk uploader thread panicked"))),
            None => Err(StageError::Other(anyhow::anyhow!("the chunk uploader already stopped"))),
        }
    }
}
