//! Attribute stage: one task per user-hash partition reads that partition's chunk files,
//! builds journeys and writes one partial aggregate. The last partition to finish
//! enqueues the reduce task, exactly once (the ledger's fan-in).

use std::time::{Duration, Instant};

use mta_core::chunk::EventChunk;
use mta_core::{InputKind, Partial};
use mta_platform::chunk_file;
use mta_platform::ledger::{FanIn, JobRecord, Stage};
use mta_platform::queue::{AttributeTask, ReduceTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::keys;

use crate::Services;
use crate::stage::{StageError, StopFlag, block_on, run_unit};

#[derive(Debug, Clone)]
pub struct AttributeHandler(pub Services);

impl StageHandler<AttributeTask> for AttributeHandler {
    async fn handle(&self, task: AttributeTask, info: TaskInfo) -> Result<(), TaskError> {
        let services = self.0.clone();
        let partition = task.partition;
        let owner = info.task_id.clone();
        run_unit(&self.0, &task, &info, Stage::Attributing, move |job, stop| {
            attribute(&services, &job, partition, &owner, &stop)
        })
        .await
    }
}

fn attribute(
    services: &Services,
    job: &JobRecord,
    partition: u32,
    owner: &str,
    stop: &StopFlag,
) -> Result<(), StageError> {
    let options = job.spec.options.validate(InputKind::Events)?;
    let started = Instant::now();
    let chunk = load_partition(services, job, partition, stop)?;
    let loaded = started.elapsed();
    inject_faults(services, &chunk, stop)?;
    let partial = Partial::from_events(&chunk, &options)?;
    let computed = started.elapsed();
    let key = keys::partial(&job.tenant, &job.id, &format!("p{partition:05}"));
    block_on(services.storage.put(&key, serde_json::to_vec(&partial).map_err(anyhow::Error::from)?))?;
    tracing::debug!(
        job = %job.id, partition, rows = chunk.len(),
        load_ms = loaded.as_millis() as u64,
        compute_ms = (computed - loaded).as_millis() as u64,
        store_ms = (started.elapsed() - computed).as_millis() as u64,
        "partition attributed"
    );
    let total = job.partitions as u64;
    if block_on(services.ledger.fan_in(&job.id, Stage::Attributing, &partition.to_string(), total, owner))?
        == FanIn::Complete
    {
        block_on(services.ledger.mark_running(&job.id, Stage::Reducing))?;
        block_on(services.queue.push(ReduceTask { job: job.id }))?;
    }
    Ok(())
}

/// Every chunk file of one partition, decoded into one chunk (used again by the credits export).
pub fn load_partition(
    services: &Services,
    job: &JobRecord,
    partition: u32,
    stop: &StopFlag,
) -> Result<EventChunk, StageError> {
    let mut chunk = EventChunk::default();
    for key in block_on(services.storage.list(&keys::chunk_prefix(&job.tenant, &job.id, partition)))? {
        stop.check()?;
        let bytes = block_on(services.storage.get(&key))?;
        chunk_file::decode_into(bytes, &mut chunk)?;
    }
    Ok(chunk)
}

/// The reliability tests' hooks (off unless configured): crash on a marked channel, or
/// stay busy long enough to be killed mid-chunk.
fn inject_faults(services: &Services, chunk: &EventChunk, stop: &StopFlag) -> Result<(), StageError> {
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
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}
