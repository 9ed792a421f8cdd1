//! Split stage: read the upload (Parquet row groups in parallel tasks, text as one
//! stream) and hash-partition event rows by user into chunk files, so that no journey
//! crosses chunks. Path rows need no partitioning: each split turns them into a partial.
//!
//! The first task of a job plans: it counts row groups (Parquet) or cuts a large
//! uncompressed CSV file into byte ranges at record boundaries, decides the number of
//! split tasks and partitions, records the plan, and fans out (or does the work itself
//! when the input is one piece). The last split to finish enqueues the attribute tasks.
//!
//! The reader decodes and partitions on a blocking thread (a text input read as one stream,
//! gzip CSV say, is parsed there in pieces by [`text_threads`] threads) and hands full batches of
//! partition buffers over a channel (rows already in the chunk files' row layout); this
//! task encodes them as chunk files (on a second blocking thread) and appends them to a
//! local spill file while the reader goes on. Once the share is read, it stores one object
//! with each partition's chunk files contiguous, and its index (`chunk_file`): two objects
//! per split task, however many partitions and flushes (a file per partition and flush
//! made a job's object count grow with the square of its rows).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;

use mta_core::chunk::{ChannelDict, EventChunk};
use mta_core::ingest::{Block, Format, InputSpec, Limits};
use mta_core::row_segment::{PartitionRuns, SegmentBuffer};
use mta_core::{InputKind, Options, Partial};
use mta_platform::chunk_file;
use mta_platform::input::{CsvRange, Source, parquet_footer_start, parquet_share_ranges, read_cost_table};
use mta_platform::job::{FanIn, JobRecord, Stage};
use mta_platform::queue::{AttributeTask, ReduceTask, SplitTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::{PutStreamError, keys};
use object_store::path::Path as ObjectKey;

use crate::Services;
use crate::stage::{StopFlag, compute, run_unit};
use mta_platform::run_error::RunError;

/// Reads the job's cost table (`spend_upload_id`), if any, so that one that cannot be used
/// fails the job when it starts rather than once every chunk is attributed; the reducer
/// reads it again to join it to the result.
async fn check_cost_table(services: &Services, job: &JobRecord) -> Result<(), RunError> {
    let Some(id) = &job.spec.spend_upload_id else { return Ok(()) };
    let scratch = tempfile::Builder::new().prefix("mta-spend-").tempdir().map_err(anyhow::Error::from)?;
    let path = services.storage.local_copy(&services.upload_object(&job.tenant, id).await?, scratch.path()).await?;
    let limits = services.config.limits.spend();
    let segment_by = job.spec.options.segment_by.clone();
    compute(move || read_cost_table(&path, &limits, segment_by.as_deref()).map(drop)).await?;
    drop(scratch);
    Ok(())
}

/// Buffered event rows of one split before its partitions are written out.
const FLUSH_ROWS: usize = 1_000_000;
const MAX_PARTITIONS: u64 = 4096;

#[derive(Debug, Clone)]
pub struct SplitHandler(pub Services);

impl StageHandler<SplitTask> for SplitHandler {
    async fn handle(&self, task: SplitTask, info: TaskInfo) -> Result<(), TaskError> {
        let owner = info.task_id.clone();
        run_unit(&self.0, &task, &info, Stage::Splitting, |job, stop| {
            split(&self.0, job, task.split, task.range, owner, stop)
        })
        .await
    }
}

async fn split(
    services: &Services,
    job: JobRecord,
    piece: Option<u32>,
    range: Option<CsvRange>,
    owner: String,
    stop: StopFlag,
) -> Result<(), RunError> {
    let scratch = tempfile::Builder::new().prefix("mta-split-").tempdir().map_err(anyhow::Error::from)?;
    let upload = services.upload_object(&job.tenant, &job.upload_id).await?;
    let spec =
        InputSpec { text_threads: text_threads(services), ..job.spec.input_spec(services.config.limits.engine()) };
    let wanted = match piece {
        Some(split) => Wanted::Share { split, splits: job.progress.splits_total as u32 },
        None => Wanted::Plan,
    };
    let mut input = local_input(services, &upload, &spec, range.as_ref(), wanted, scratch.path()).await?;
    let mut source = Source::open(&input.path, spec.format)?;
    let (splits, partitions) = match piece {
        Some(_) => (job.progress.splits_total as u32, job.partitions),
        None => {
            check_cost_table(services, &job).await?;
            let rows = source.estimated_rows().max(1);
            let partitions = rows.div_ceil(services.config.rows_per_chunk).clamp(1, MAX_PARTITIONS) as u32;
            let planned = {
                let (source, spec) = (source.clone(), spec.clone());
                let (range_bytes, parallelism) = (services.config.csv_range_bytes, services.config.split_parallelism);
                compute(move || source.csv_ranges(&spec, range_bytes, parallelism as usize)).await?
            };
            if let Some(ranges) = planned {
                services.ledger.set_plan(&job.id, ranges.len() as u32, partitions).await?;
                let tasks = ranges
                    .into_iter()
                    .enumerate()
                    .map(|(i, range)| SplitTask { job: job.id, split: Some(i as u32), range: Some(range) })
                    .collect();
                services.queue.push_all(tasks).await?;
                return Ok(());
            }
            let splits = (source.pieces() as u32).clamp(1, services.config.split_parallelism);
            services.ledger.set_plan(&job.id, splits, partitions).await?;
            if splits > 1 {
                let tasks = (0..splits).map(|i| SplitTask { job: job.id, split: Some(i), range: None }).collect();
                services.queue.push_all(tasks).await?;
                return Ok(());
            }
            if !input.whole {
                // The planner fetched a remote Parquet object's footer only; it reads all of it.
                let wanted = Wanted::Share { split: 0, splits: 1 };
                input = local_input(services, &upload, &spec, None, wanted, scratch.path()).await?;
                source = Source::open(&input.path, spec.format)?;
            }
            (splits, partitions)
        }
    };
    let index = piece.unwrap_or(0);
    let row_groups: Option<Vec<usize>> = match source {
        Source::Parquet { row_groups, .. } => Some(share_of(index, splits, row_groups).collect()),
        Source::Text { .. } => None,
    };
    let share = Share { source, range, row_groups, split: index, partitions };
    let read = read_and_store(services, &job, &spec, share, scratch.path(), &stop).await?;
    if let Some(partial) = read.path_partial {
        let bytes = compute(move || Ok(mta_platform::partial_file::encode(&partial)?)).await?;
        services.storage.put(&keys::partial(&job.tenant, &job.id, &format!("s{index:04}")), bytes).await?;
    }
    // The first block told the input's kind; its options are stored for the later stages
    // before the fan-in can start them.
    if let Some(options) = read.options
        && job.options.as_ref() != Some(&options)
    {
        services.ledger.set_options(&job.id, &options).await?;
    }
    let fan_in = services.ledger.fan_in(&job.id, Stage::Splitting, &index.to_string(), splits as u64, &owner).await?;
    if fan_in == FanIn::Complete {
        let kind = services.ledger.job(&job.id).await?.and_then(|job| job.kind);
        if kind == Some(InputKind::Events) {
            services.ledger.mark_running(&job.id, Stage::Attributing).await?;
            let tasks = (0..partitions).map(|partition| AttributeTask { job: job.id, partition }).collect();
            services.queue.push_all(tasks).await?;
        } else {
            // Path rows were attributed while splitting (or nothing was read at all).
            services.ledger.mark_running(&job.id, Stage::Reducing).await?;
            services.queue.push(ReduceTask { job: job.id }).await?;
        }
    }
    Ok(())
}

/// The row groups split task `split` of `splits` reads among `row_groups`.
/// Threads that parse a CSV stream one split task reads whole (gzip, or too small to cut into
/// byte ranges): as many as the input could have split tasks, at most the machine's cores.
fn text_threads(services: &Services) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (services.config.split_parallelism as usize).min(cores)
}

fn share_of(split: u32, splits: u32, row_groups: usize) -> std::ops::Range<usize> {
    let (s, n) = (split as usize, splits.max(1) as usize);
    s * row_groups / n..(s + 1) * row_groups / n
}

/// What a split task needs of the input.
#[derive(Debug, Clone, Copy)]
enum Wanted {
    /// What planning reads: of a Parquet object its footer (row groups and rows); all of a
    /// text file (cutting it into byte ranges reads it).
    Plan,
    /// The rows of split task `split` of `splits`.
    Share { split: u32, splits: u32 },
}

/// The input on local disk, as a reader sees it.
struct LocalInput {
    path: std::path::PathBuf,
    /// False when only some byte ranges of the object are there.
    whole: bool,
}

/// The last bytes of a remote object fetched to find a Parquet footer: most footers fit,
/// so one request finds and holds it.
const FOOTER_GUESS_BYTES: u64 = 64 * 1024;

/// The input on local disk, as much of it as this task reads: the local store's file itself;
/// of a remote object, a CSV range task's header and range, or a Parquet object's footer and
/// this task's row groups (a planner's footer only), each at its own offset of a sparse file
/// (a file of row groups split over many tasks is then fetched about once in all, not once
/// per task); otherwise the whole object. Counts the bytes fetched (`mta_input_bytes`).
async fn local_input(
    services: &Services,
    upload: &ObjectKey,
    spec: &InputSpec,
    range: Option<&CsvRange>,
    wanted: Wanted,
    scratch: &Path,
) -> Result<LocalInput, RunError> {
    let storage = &services.storage;
    let fetched = |path: std::path::PathBuf, whole: bool| {
        services.metrics.input_bytes.inc_by(std::fs::metadata(&path).map_or(0, |m| m.len()));
        LocalInput { path, whole }
    };
    if let Some(path) = storage.local_path(upload) {
        return Ok(fetched(path, true));
    }
    if let Some(r) = range {
        let ranges = [0..r.header_end, r.start..r.end];
        let path = storage.local_copy_ranges(upload, &ranges, scratch).await?;
        services.metrics.input_bytes.inc_by(ranges.iter().map(|r| r.end - r.start).sum());
        return Ok(LocalInput { path, whole: false });
    }
    if matches!(spec.format, None | Some(Format::Parquet)) {
        let (size, tail) = storage.get_tail(upload, FOOTER_GUESS_BYTES).await?;
        services.metrics.input_bytes.inc_by(tail.len() as u64);
        if let Some(footer_start) = parquet_footer_start(&tail, size) {
            let footer = match usize::try_from(size - footer_start).ok().and_then(|n| tail.len().checked_sub(n)) {
                Some(at) => tail.slice(at..),
                None => storage.get_range(upload, footer_start..size).await?,
            };
            let share = |row_groups| match wanted {
                Wanted::Plan => 0..0,
                Wanted::Share { split, splits } => share_of(split, splits, row_groups),
            };
            if let Some(mut ranges) = parquet_share_ranges(&footer, size, footer_start, share) {
                let whole = ranges.len() == 1 && ranges[0] == (0..size);
                // The footer is in hand: fetch the rest, then write it at its place.
                if let Some(last) = ranges.last_mut() {
                    last.end = footer_start;
                }
                ranges.retain(|range| !range.is_empty());
                let path = storage.local_copy_ranges(upload, &ranges, scratch).await?;
                services.metrics.input_bytes.inc_by(ranges.iter().map(|r| r.end - r.start).sum());
                write_at(&path, footer_start, &footer).await.map_err(anyhow::Error::from)?;
                return Ok(LocalInput { path, whole });
            }
        }
    }
    Ok(fetched(storage.local_copy(upload, scratch).await?, true))
}

/// Writes `bytes` at `offset` of the file at `path`.
async fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let mut file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    file.write_all(bytes).await?;
    file.flush().await
}

/// What the reader of one split hands back when it is done.
struct ReadOutcome {
    /// The options resolved for the kind of the first block (`None`: no block was read).
    options: Option<Options>,
    /// Path rows, attributed as they were read.
    path_partial: Option<Partial>,
}

/// What one split task reads, and into how many partitions.
struct Share {
    source: Source,
    /// The CSV byte range of this task, or
    range: Option<CsvRange>,
    /// the Parquet row groups of this task (neither: the whole text input).
    row_groups: Option<Vec<usize>>,
    split: u32,
    partitions: u32,
}

/// Reads this split's share of the input on a blocking thread while this task encodes the
/// batches of partition buffers it hands over, stores them as the split's object and
/// records the rows read so far; then stores the split's pieces index.
async fn read_and_store(
    services: &Services,
    job: &JobRecord,
    spec: &InputSpec,
    share: Share,
    scratch: &Path,
    stop: &StopFlag,
) -> Result<ReadOutcome, RunError> {
    let Share { source, range, row_groups, split, partitions } = share;
    let (batches, batches_received) = tokio::sync::mpsc::channel::<Batch>(1);
    let (rows_sender, rows) = tokio::sync::watch::channel(0u64);
    let mut splitter = Splitter {
        limits: services.config.limits.engine(),
        job_options: job.options.clone(),
        job_spec_options: job.spec.options.clone(),
        keep_user_ids: spec.keep_user_ids,
        stop: stop.clone(),
        options: None,
        channels: ChannelDict::default(),
        segments: ChannelDict::default(),
        buffers: Vec::new(),
        runs: PartitionRuns::default(),
        share: 0,
        buffered: 0,
        batches,
        path_partial: None,
        rows: 0,
        rows_sender,
    };
    // The file's estimate bounds the first buffers of a small input.
    let flush = source.estimated_rows().min(FLUSH_ROWS as u64) as usize;
    let share = flush.div_ceil(partitions.max(1) as usize);
    splitter.share = share + share / 16;
    splitter.buffers = (0..partitions).map(|_| SegmentBuffer::with_capacity(splitter.share)).collect();
    let spec = spec.clone();
    let reader = compute(move || {
        match &range {
            Some(range) => source.read_csv_range(&spec, range, |block| splitter.take(block))?,
            None => source.read(&spec, row_groups.as_deref(), |block| splitter.take(block))?,
        }
        splitter.finish()
    });
    // Owns the receiving end: when storing fails, the channel closes and the reader stops
    // at its next batch (and the first error is the one reported).
    let encoded = futures_util::stream::unfold(batches_received, move |mut received| async move {
        let batch = received.recv().await?;
        let encoded = match stop.check() {
            Ok(()) => compute(move || Ok(encode_batch(batch))).await,
            Err(stopped) => Err(stopped),
        };
        Some((encoded, received))
    });
    // The split's object, and each partition's pieces in it; either way a re-run of the task
    // writes the same bytes under the same key.
    let rows_key = keys::split_rows(&job.tenant, &job.id, split);
    let store = async {
        if services.storage.local_path(&rows_key).is_some() {
            append_as_read(services, &rows_key, encoded, partitions).await
        } else {
            spill_then_join(services, &rows_key, encoded, partitions, scratch).await
        }
    };
    let (read, pieces, ()) = tokio::try_join!(reader, store, record_rows(services, job, split, rows))?;
    stop.check()?;
    services.storage.put(&keys::split_pieces(&job.tenant, &job.id, split), chunk_file::encode_pieces(&pieces)).await?;
    Ok(read)
}

/// Records the rows a split has read in the ledger and the metrics as the reader counts
/// them, until it is done.
async fn record_rows(
    services: &Services,
    job: &JobRecord,
    split: u32,
    mut rows: tokio::sync::watch::Receiver<u64>,
) -> Result<(), RunError> {
    let mut recorded = 0u64;
    loop {
        // An error: the reader is done, and its last count is there.
        let done = rows.changed().await.is_err();
        let now = *rows.borrow_and_update();
        if now != recorded {
            services.ledger.set_rows(&job.id, split, now).await?;
            services.metrics.rows_read.inc_by(now - recorded);
            recorded = now;
        }
        if done {
            return Ok(());
        }
    }
}

/// One batch encoded: each non-empty partition's chunk file behind its length, one after
/// another, and each partition's byte length there.
struct Encoded {
    bytes: Bytes,
    lengths: Vec<(u32, u64)>,
}

fn encode_batch(batch: Batch) -> Encoded {
    let Batch { dictionaries, buffers } = batch;
    let (channels, segments) = &*dictionaries;
    let size = buffers.iter().map(|(_, rows)| chunk_file::run_bytes(rows.segment(), channels, segments)).sum();
    let mut bytes = Vec::with_capacity(size);
    let mut lengths = Vec::with_capacity(buffers.len());
    for (partition, rows) in buffers {
        let before = bytes.len();
        chunk_file::append_to_run(&mut bytes, rows.segment(), channels, segments);
        lengths.push((partition, (bytes.len() - before) as u64));
    }
    Encoded { bytes: Bytes::from(bytes), lengths }
}

/// Where each partition's pieces are in a split's object (or its spill file), as batches
/// are placed one after another.
struct Placement {
    pieces: Vec<Vec<(u64, u64)>>,
    written: u64,
}

impl Placement {
    fn new(partitions: u32) -> Placement {
        Placement { pieces: vec![Vec::new(); partitions as usize], written: 0 }
    }

    /// Places a batch's pieces after the ones before; returns where the batch starts.
    fn place(&mut self, lengths: Vec<(u32, u64)>) -> u64 {
        let start = self.written;
        for (partition, length) in lengths {
            self.pieces[partition as usize].push((self.written, length));
            self.written += length;
        }
        start
    }
}

/// On the local store: each batch appended to the object as it comes (a piece per partition
/// and flush: a piece costs one read of a local file).
async fn append_as_read(
    services: &Services,
    key: &ObjectKey,
    encoded: impl futures_util::Stream<Item = Result<Encoded, RunError>> + Send,
    partitions: u32,
) -> Result<Vec<Vec<(u64, u64)>>, RunError> {
    let mut placement = Placement::new(partitions);
    let body = encoded.map(|batch| {
        batch.map(|Encoded { bytes, lengths }| {
            placement.place(lengths);
            bytes
        })
    });
    put_stream(services, key, body.boxed()).await?;
    Ok(placement.pieces)
}

/// Elsewhere: batches spilled to a file in `scratch` first and each partition's pieces then
/// stored together, so that an attribute task makes one ranged request per split, not one
/// per flush.
async fn spill_then_join(
    services: &Services,
    key: &ObjectKey,
    encoded: impl futures_util::Stream<Item = Result<Encoded, RunError>> + Send,
    partitions: u32,
    scratch: &Path,
) -> Result<Vec<Vec<(u64, u64)>>, RunError> {
    let spill_path = scratch.join("partitions.spill");
    let spill = Arc::new(
        File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&spill_path)
            .with_context(|| format!("Failed to create {}", spill_path.display()))?,
    );
    let mut placement = Placement::new(partitions);
    let mut encoded = std::pin::pin!(encoded);
    while let Some(batch) = encoded.next().await {
        let Encoded { bytes, lengths } = batch?;
        let (file, at) = (Arc::clone(&spill), placement.place(lengths));
        compute(move || Ok(file.write_all_at(&bytes, at).context("Failed to write a spill file")?)).await?;
    }
    let mut runs = Vec::with_capacity(placement.pieces.len());
    let mut start = 0u64;
    for partition in &placement.pieces {
        let length: u64 = partition.iter().map(|&(_, length)| length).sum();
        runs.push(if length > 0 { vec![(start, length)] } else { Vec::new() });
        start += length;
    }
    let run_of = move |partition: Vec<(u64, u64)>| {
        let spill = Arc::clone(&spill);
        async move {
            compute(move || {
                let mut run = vec![0u8; partition.iter().map(|&(_, length)| length as usize).sum()];
                let mut at = 0;
                for (offset, length) in partition {
                    let length = length as usize;
                    spill.read_exact_at(&mut run[at..at + length], offset).context("Failed to read a spill file")?;
                    at += length;
                }
                Ok(Bytes::from(run))
            })
            .await
        }
    };
    let partitions = placement.pieces.into_iter().filter(|partition| !partition.is_empty());
    put_stream(services, key, futures_util::stream::iter(partitions).then(run_of).boxed()).await?;
    std::fs::remove_file(&spill_path).with_context(|| format!("Failed to remove {}", spill_path.display()))?;
    Ok(runs)
}

/// The store's streamed put, its errors as a run's.
async fn put_stream(
    services: &Services,
    key: &ObjectKey,
    body: futures_util::stream::BoxStream<'_, Result<Bytes, RunError>>,
) -> Result<(), RunError> {
    services.storage.put_stream(key, body, |_| Ok(())).await.map(drop).map_err(|e| match e {
        PutStreamError::Body(e) => e,
        PutStreamError::Store(e) => RunError::Other(e),
    })
}

/// One flush: the non-empty partition buffers, by partition, and the channel names and
/// segment values their ids index.
struct Batch {
    dictionaries: Arc<(ChannelDict, ChannelDict)>,
    buffers: Vec<(u32, SegmentBuffer)>,
}

/// Partitions the blocks of one split task (on the reader's thread).
struct Splitter {
    limits: Limits,
    /// Options an earlier split stored with the job, if any.
    job_options: Option<Options>,
    job_spec_options: mta_core::OptionsSpec,
    keep_user_ids: bool,
    stop: StopFlag,
    options: Option<Options>,
    channels: ChannelDict,
    /// With `segment_by`: the segment values of this split task's rows.
    segments: ChannelDict,
    buffers: Vec<SegmentBuffer>,
    /// Each block's rows sorted by partition before they are appended to the buffers.
    runs: PartitionRuns,
    /// Rows a partition's buffer has room for from the start: its expected share of a
    /// flush (user keys are hashes, so partitions fill evenly; a buffer that grew by
    /// doubling copied its rows over and over).
    share: usize,
    buffered: usize,
    /// At most one batch waits to be stored, which bounds memory to about two flushes.
    batches: tokio::sync::mpsc::Sender<Batch>,
    path_partial: Option<Partial>,
    rows: u64,
    rows_sender: tokio::sync::watch::Sender<u64>,
}

impl Splitter {
    fn take(&mut self, block: Block) -> Result<(), RunError> {
        self.stop.check()?;
        if self.options.is_none() {
            self.options = Some(match &self.job_options {
                Some(options) if options.kind == block.kind() => options.clone(),
                // The first block of the input tells its kind (and which channel rules
                // named its channels): the spec's options are resolved for it here, once,
                // with the paths a partial may hold under the operator's cap.
                _ => {
                    let mut options = block.options(&self.job_spec_options)?;
                    options.max_report_paths = options.max_report_paths.min(self.limits.max_report_paths);
                    options
                }
            });
        }
        match block {
            Block::Events(chunk) => self.partition(&chunk)?,
            Block::Paths(chunk) => {
                self.rows += chunk.len() as u64;
                let options = self.options.as_ref().expect("set above");
                self.limits.check_intervals(chunk.channels.len(), options)?;
                let partial = Partial::from_paths(&chunk, options)?;
                Partial::merge_into(&mut self.path_partial, partial);
            }
        }
        self.rows_sender.send_replace(self.rows);
        Ok(())
    }

    fn partition(&mut self, chunk: &EventChunk) -> Result<(), RunError> {
        let map = self.channels.ids_of(&chunk.channels);
        self.limits.check_dict(&self.channels)?;
        let options = self.options.as_ref().expect("resolved before the first block is partitioned");
        self.limits.check_markov_channels(self.channels.channel_count(), options)?;
        let segment_map = self.segments.ids_of(&chunk.segments);
        self.limits.check_segments(self.segments.len())?;
        self.limits.check_intervals(self.channels.channel_count(), options)?;
        self.runs.route(chunk, self.buffers.len() as u32);
        self.runs.push_extras(chunk, &mut self.buffers, self.keep_user_ids, &segment_map);
        let buffers = &mut self.buffers;
        self.runs.for_each_run(chunk, &map, |p, records| buffers[p].records.extend_from_slice(records));
        self.rows += chunk.len() as u64;
        self.buffered += chunk.len();
        if self.buffered >= FLUSH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands every non-empty partition buffer to the storing task and starts new buffers.
    fn flush(&mut self) -> Result<(), RunError> {
        let mut buffers = Vec::new();
        for (partition, buffer) in self.buffers.iter_mut().enumerate() {
            if buffer.rows() == 0 {
                continue;
            }
            buffers.push((partition as u32, std::mem::replace(buffer, SegmentBuffer::with_capacity(self.share))));
        }
        self.buffered = 0;
        if buffers.is_empty() {
            return Ok(());
        }
        let batch = Batch { dictionaries: Arc::new((self.channels.clone(), self.segments.clone())), buffers };
        // A closed channel means storing failed: that error is the one reported.
        self.batches.blocking_send(batch).map_err(|_| RunError::Stopped)
    }

    fn finish(mut self) -> Result<ReadOutcome, RunError> {
        self.flush()?;
        if let (Some(partial), Some(options)) = (&self.path_partial, &self.options) {
            // Merged over blocks: a sum may have overflowed only now.
            partial.check_finite(options)?;
        }
        Ok(ReadOutcome { options: self.options, path_partial: self.path_partial })
    }
}
