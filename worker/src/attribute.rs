//! Attribute stage: one task per user-hash partition reads that partition's chunk files,
//! builds journeys and writes one partial aggregate. The last partition to finish
//! enqueues the reduce task, exactly once (the ledger's fan-in).

use std::time::{Duration, Instant};

use anyhow::Context;
use mta_core::Partial;
use mta_core::chunk::EventChunk;
use mta_platform::chunk_file;
use mta_platform::job::{FanIn, JobRecord, Stage};
use mta_platform::queue::{AttributeTask, ReduceTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::keys;

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
        Ok(serde_json::to_vec(&partial).map_err(anyhow::Error::from)?)
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

/// Every chunk file of one partition, decoded into one chunk (used again by the credits export).
pub async fn load_partition(
    services: &Services,
    job: &JobRecord,
    partition: u32,
    stop: &StopFlag,
) -> Result<EventChunk, RunError> {
    let mut files = Vec::new();
    let listed = services.storage.list(&keys::chunk_prefix(&job.tenant, &job.id, partition)).await?;
    for key in chunk_file::files_to_read(listed) {
        stop.check()?;
        let bytes = services.storage.get(&key).await?;
        files.push((key, bytes));
    }
    let stop = stop.clone();
    compute(move || {
        let mut chunk = EventChunk::default();
        for (key, bytes) in files {
            stop.check()?;
            chunk_file::decode_into(key.as_ref(), bytes, &mut chunk)?;
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
