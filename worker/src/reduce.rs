//! Reduce stage: merge every partial of a job, solve Markov, write the result to object
//! storage and the Redis cache, export per-journey credits when asked, and mark the job
//! succeeded. Idempotent: a re-run rewrites the same objects.

use mta_core::ingest::Block;
use mta_core::{AttributionError, AttributionResult, ErrorCode, InputKind, Options, Partial};
use mta_platform::credits_file::{CreditRows, CreditsFile};
use mta_platform::input::Source;
use mta_platform::job::{JobRecord, Stage};
use mta_platform::queue::{ReduceTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::keys;

use crate::Services;
use crate::attribute::load_partition;
use crate::stage::{StageError, StopFlag, block_on, run_unit};

#[derive(Debug, Clone)]
pub struct ReduceHandler(pub Services);

impl StageHandler<ReduceTask> for ReduceHandler {
    async fn handle(&self, task: ReduceTask, info: TaskInfo) -> Result<(), TaskError> {
        // A second reduce task can be pushed when the fan-in's owner re-runs after a crash;
        // only the first one pushed runs (its own re-runs included), so two never overlap.
        let owner = info.task_id.clone();
        match self.0.ledger.claim_unit(&task.job, "reduce", &owner).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(job = %task.job, "duplicate reduce task dropped");
                return Ok(());
            }
            Err(e) => return Err(TaskError::Transient(e)),
        }
        let services = self.0.clone();
        run_unit(&self.0, &task, &info, Stage::Reducing, move |job, stop| reduce(&services, &job, &stop)).await
    }
}

fn reduce(services: &Services, job: &JobRecord, stop: &StopFlag) -> Result<(), StageError> {
    let no_rows = || AttributionError::new(ErrorCode::EmptyInput, "the input has no data rows");
    let kind = job.kind.ok_or_else(no_rows)?;
    let options = job.spec.options.validate(kind)?;
    let mut total: Option<Partial> = None;
    for key in block_on(services.storage.list(&keys::partials(&job.tenant, &job.id)))? {
        stop.check()?;
        let bytes = block_on(services.storage.get(&key))?;
        let partial: Partial =
            serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{key} is unreadable: {e}"))?;
        match &mut total {
            Some(total) => total.merge(&partial),
            None => total = Some(partial),
        }
    }
    let total = total.filter(|t| t.counts.rows > 0).ok_or_else(no_rows)?;
    // Each split task checks the limits on its own share; the whole input is checked here.
    let limits = services.config.limits.engine();
    limits.check_rows(total.counts.rows)?;
    limits.check_channels(total.channels.len())?;
    let result = total.finish(&options)?;
    if job.spec.export_credits {
        export_credits(services, job, &options, &result, stop)?;
    }
    let json = result_json(job, &result)?;
    block_on(services.storage.put(&keys::result(&job.tenant, &job.id), json.clone().into_bytes()))?;
    block_on(services.ledger.cache_result(&job.id, &job.cache_key, &json))?;
    if block_on(services.ledger.mark_succeeded(&job.id))? {
        tracing::info!(job = %job.id, rows = total.counts.rows, "job succeeded");
    }
    // Chunk files are only needed until the result exists.
    if let Err(e) = block_on(services.storage.delete_prefix(&keys::chunks(&job.tenant, &job.id))) {
        tracing::warn!(job = %job.id, error = format!("{e:#}"), "could not delete chunk files");
    }
    Ok(())
}

/// The result of DESIGN.md 5, with the job id first.
fn result_json(job: &JobRecord, result: &AttributionResult) -> Result<String, StageError> {
    let body = serde_json::to_string(result).map_err(anyhow::Error::from)?;
    Ok(format!("{{\"job_id\":\"{}\",{}", job.id, &body[1..]))
}

fn export_credits(
    services: &Services,
    job: &JobRecord,
    options: &Options,
    result: &AttributionResult,
    stop: &StopFlag,
) -> Result<(), StageError> {
    let scratch = tempfile::Builder::new().prefix("mta-credits-").tempdir().map_err(anyhow::Error::from)?;
    let path = scratch.path().join("credits.parquet");
    let mut out = CreditsFile::create(&path)?;
    match options.kind {
        InputKind::Events => {
            for partition in 0..job.partitions {
                let chunk = load_partition(services, job, partition, stop)?;
                out.write(
                    CreditRows::of_events(&chunk, chunk.channels.names(), options, result),
                    chunk.channels.names(),
                )?;
            }
        }
        InputKind::Paths => {
            let input =
                block_on(services.storage.local_copy(&keys::upload(&job.tenant, &job.upload_id), scratch.path()))?;
            let spec = job.spec.input_spec(&services.config.limits)?;
            Source::open::<StageError>(&input, spec.format)?.read(&spec, None, |block| {
                stop.check()?;
                if let Block::Paths(chunk) = block {
                    out.write(CreditRows::of_paths(&chunk, options, result), chunk.channels.names())?;
                }
                Ok::<(), StageError>(())
            })?;
        }
    }
    out.close()?;
    block_on(services.storage.put_file(&keys::credits(&job.tenant, &job.id), &path))?;
    Ok(())
}
