//! Attribute stage: one task per user-hash partition reads that partition's chunk files,
//! builds journeys and writes one partial aggregate. The last partition to finish
//! enqueues the reduce task, exactly once (the ledger's fan-in).

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use mta_core::Partial;
use mta_core::chunk::EventChunk;
use mta_platform::job::{FanIn, JobRecord, Stage};
use mta_platform::queue::{AttributeTask, ReduceTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::keys;
use mta_platform::{chunk_file, partial_file};
use object_store::path::Path as ObjectKey;

use crate::Services;
use crate::stage::{StopFlag, compute, run_unit};
use mta_platform::run_error::RunError;

#[derive(Debug, Clone)]
pub struct AttributeHandler(pub Services);

impl StageHandler<AttributeTask> for AttributeHandler {
    async fn handle(&self, task: AttributeTask, info: TaskInfo) -> Result<(), TaskError> {
        let services = &self.0;
        let owner = info.task_id.clone();
        run_unit(services, &task, &info, Stage::Attributing, |job, stop| {
            attribute(services, job, task.partition, owner, stop)
        })
        .await
    }
}

async fn attribute(
    services: &Services,
    job: JobRecord,
    partition: u32,
    owner: String,
    stop: StopFlag,
) -> Result<(), RunError> {
    let options = job.options.clone().context("the job's options were not resolved by its split")?;
    let started = Instant::now();
    let chunk = load_partition(services, &job, partition, &stop).await?;
    let loaded = started.elapsed();
    inject_faults(services, &chunk, &stop).await?;
    let rows = chunk.len();
    let partial = compute(move || {
        let partial = Partial::from_events(&chunk, &options)?;
        Ok(partial_file::encode(&partial)?)
    })
    .await?;
    let computed = started.elapsed();
    let key = keys::partial(&job.tenant, &job.id, &format!("p{partition:05}"));
    services.storage.put(&key, partial).await?;
    tracing::debug!(
        job = %job.id, partition, rows,
        load_ms = loaded.as_millis() as u64,
        compute_ms = (computed - loaded).as_millis() as u64,
        store_ms = (started.elapsed() - computed).as_millis() as u64,
        "partition attributed"
    );
    let total = job.partitions as u64;
    let fan_in = services.ledger.fan_in(&job.id, Stage::Attributing, &partition.to_string(), total, &owner).await?;
    if fan_in == FanIn::Complete {
        services.ledger.mark_running(&job.id, Stage::Reducing).await?;
        services.queue.push(ReduceTask { job: job.id }).await?;
    }
    Ok(())
}

/// Some of a partition's rows as stored by one split task: a piece of the split's object (a
/// run of chunk files), or a chunk file of an older worker.
enum Piece {
    Run(ObjectKey, Bytes),
    File(ObjectKey, Bytes),
}

/// Every row of one partition, decoded into one chunk (used again by the credits export):
/// split by split, its pieces of the split task's object, found through the split's index;
/// for a split made by an older worker (no index), its chunk files of that split.
pub async fn load_partition(
    services: &Services,
    job: &JobRecord,
    partition: u32,
    stop: &StopFlag,
) -> Result<EventChunk, RunError> {
    // An older worker's files are listed only when a split has no index (one LIST, not one
    // per attribute task of every job).
    let mut older: Option<Vec<ObjectKey>> = None;
    let mut pieces: Vec<Piece> = Vec::new();
    for split in 0..job.progress.splits_total as u32 {
        stop.check()?;
        match pieces_in_split(services, job, split, partition).await? {
            Some(ranges) => {
                if !ranges.is_empty() {
                    let key = keys::split_rows(&job.tenant, &job.id, split);
                    let runs = services.storage.get_ranges(&key, &ranges).await?;
                    pieces.extend(runs.into_iter().map(|run| Piece::Run(key.clone(), run)));
                }
            }
            None => {
                if older.is_none() {
                    let listed = services.storage.list(&keys::chunk_prefix(&job.tenant, &job.id, partition)).await?;
                    older = Some(chunk_file::files_to_read(listed));
                }
                let of_split = format!("s{split:04}-");
                for key in
                    older.iter().flatten().filter(|key| key.filename().is_some_and(|name| name.starts_with(&of_split)))
                {
                    stop.check()?;
                    pieces.push(Piece::File(key.clone(), services.storage.get(key).await?));
                }
            }
        }
    }
    let stop = stop.clone();
    compute(move || {
        // Room for every row at once, counted from the pieces' headers: grown piece by
        // piece, the columns of half a million rows were copied over and over.
        let rows = pieces.iter().map(|piece| match piece {
            Piece::Run(_, run) => chunk_file::rows_in_run(run),
            Piece::File(_, file) => chunk_file::rows_in_file(file),
        });
        let mut chunk = EventChunk::with_capacity(rows.sum(), false);
        for piece in pieces {
            stop.check()?;
            match piece {
                Piece::Run(key, run) => chunk_file::decode_run_into(key.as_ref(), run, &mut chunk)?,
                Piece::File(key, file) => chunk_file::decode_into(key.as_ref(), file, &mut chunk)?,
            }
        }
        Ok(chunk)
    })
    .await
}

/// Where `partition`'s pieces are in split `split`'s object, in order: from the split's
/// pieces index, or from the index of an older worker (one run per partition); `None` when
/// the split has neither (an older worker's files per partition and flush).
async fn pieces_in_split(
    services: &Services,
    job: &JobRecord,
    split: u32,
    partition: u32,
) -> Result<Option<Vec<Range<u64>>>, RunError> {
    let storage = &services.storage;
    let index = keys::split_pieces(&job.tenant, &job.id, split);
    if let Some(header) = storage.get_range_opt(&index, 0..chunk_file::PIECES_HEADER_BYTES).await? {
        let entries = chunk_file::pieces_entries(index.as_ref(), &header, partition)?;
        let expected = entries.end - entries.start;
        let bytes = if expected == 0 { Bytes::new() } else { storage.get_range(&index, entries).await? };
        return Ok(Some(chunk_file::decode_pieces(index.as_ref(), &bytes, expected)?));
    }
    let index = keys::split_index(&job.tenant, &job.id, split);
    let at = u64::from(partition) * chunk_file::INDEX_ENTRY_BYTES;
    let Some(entry) = storage.get_range_opt(&index, at..at + chunk_file::INDEX_ENTRY_BYTES).await? else {
        return Ok(None);
    };
    let (start, length) = chunk_file::decode_index_entry(index.as_ref(), &entry)?;
    Ok(Some(std::iter::once(start..start + length).filter(|run| !run.is_empty()).collect()))
}

/// The reliability tests' hooks (off unless configured): crash on a marked channel, or
/// stay busy long enough to be killed mid-chunk.
async fn inject_faults(services: &Services, chunk: &EventChunk, stop: &StopFlag) -> Result<(), RunError> {
    let faults = &services.config.faults;
    if let Some(channel) = &faults.abort_on_channel
        && chunk.channels.get(channel).is_some()
    {
        eprintln!("fault injection: aborting on channel `{channel}` (MTA_FAULT_ABORT_ON_CHANNEL)");
        std::process::abort();
    }
    if let Some(delay) = faults.chunk_delay {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            stop.check()?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
