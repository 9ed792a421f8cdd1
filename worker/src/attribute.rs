//! Attribute stage: one task per user-hash partition reads that partition's chunk files,
//! builds journeys and writes one partial aggregate. The last partition to finish
//! enqueues the reduce task, exactly once (the ledger's fan-in).

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

/// A partition's rows as stored by one split task: its run in the split's object, or a chunk
/// file of an older worker.
enum Piece {
    Run(ObjectKey, Bytes),
    File(ObjectKey, Bytes),
}

/// Every row of one partition, decoded into one chunk (used again by the credits export):
/// split by split, its run in the split task's object, found through the split's index; for
/// a split made by an older worker (no index), its chunk files of that split.
pub async fn load_partition(
    services: &Services,
    job: &JobRecord,
    partition: u32,
    stop: &StopFlag,
) -> Result<EventChunk, RunError> {
    // An older worker's files are listed only when a split has no index (one LIST, not one
    // per attribute task of every job).
    let mut older: Option<Vec<ObjectKey>> = None;
    let at = u64::from(partition) * chunk_file::INDEX_ENTRY_BYTES;
    let mut pieces: Vec<Piece> = Vec::new();
    for split in 0..job.progress.splits_total as u32 {
        stop.check()?;
        let index = keys::split_index(&job.tenant, &job.id, split);
        match services.storage.get_range_opt(&index, at..at + chunk_file::INDEX_ENTRY_BYTES).await? {
            Some(entry) => {
                let (start, length) = chunk_file::decode_index_entry(index.as_ref(), &entry)?;
                if length > 0 {
                    let key = keys::split_rows(&job.tenant, &job.id, split);
                    let run = services.storage.get_range(&key, start..start + length).await?;
                    pieces.push(Piece::Run(key, run));
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
        let mut chunk = EventChunk::default();
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
