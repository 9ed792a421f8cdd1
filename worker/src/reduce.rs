//! Reduce stage: merge every partial of a job, solve Markov, write the result to object
//! storage and the Redis cache, export per-journey credits when asked, and mark the job
//! succeeded. Idempotent: a re-run rewrites the same objects.

use std::sync::Arc;

use futures_util::StreamExt;

use mta_core::ingest::{Block, Limits};
use mta_core::markov::SolveBudget;
use mta_core::{AttributionError, AttributionResult, ErrorCode, InputKind, Options, Partial};
use mta_platform::credits_file::{CreditRows, CreditsFile};
use mta_platform::input::{Source, read_cost_table};
use mta_platform::job::{JobRecord, Stage};
use mta_platform::partial_file;
use mta_platform::queue::{ReduceTask, StageHandler, TaskError, TaskInfo};
use mta_platform::storage::keys;
use object_store::path::Path as ObjectKey;

use crate::Services;
use crate::attribute::load_partition;
use crate::stage::{StopFlag, compute, run_unit};
use mta_platform::run_error::RunError;

/// Partials fetched and decoded while the one before them is merged, by each of the two
/// running totals: at most this many held beside each.
const DECODE_AHEAD: usize = 1;

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
        run_unit(&self.0, &task, &info, Stage::Reducing, |job, stop| reduce(&self.0, job, stop)).await
    }
}

async fn reduce(services: &Services, job: JobRecord, stop: StopFlag) -> Result<(), RunError> {
    let no_rows = || AttributionError::new(ErrorCode::EmptyInput, "the input has no data rows");
    // The first split resolves the options when it reads the first block: none means no rows.
    let options = Arc::new(job.options.clone().ok_or_else(no_rows)?);
    let limits = services.config.limits.engine();
    let mut first = partial_file::files_to_read(services.storage.list(&keys::partials(&job.tenant, &job.id)).await?);
    // Two running totals at once, of the first and the second half of the partials in key
    // order, then added: merging is most of the stage and takes a core. Each half is merged
    // in the same order on every run, so the sums are the same on every run.
    let second = first.split_off(first.len().div_ceil(2));
    let (first, second) = tokio::try_join!(
        merge_partials(services, first, limits, &stop),
        merge_partials(services, second, limits, &stop)
    )?;
    let total = compute(move || {
        let mut total = first;
        if let Some(second) = second {
            merge_checked(&mut total, second, &limits)?;
        }
        Ok(total)
    })
    .await?;
    let total = total.filter(|t| t.counts.rows > 0).ok_or_else(no_rows)?;
    let rows = total.counts.rows;
    let (finishing, solving) = (Arc::clone(&options), stop.clone());
    // The cost table: a copy of its upload on local disk, read with the engine's bounds.
    let costs = match &job.spec.spend_upload_id {
        Some(id) => {
            stop.check()?;
            let scratch = tempfile::Builder::new().prefix("mta-spend-").tempdir().map_err(anyhow::Error::from)?;
            let path =
                services.storage.local_copy(&services.upload_object(&job.tenant, id).await?, scratch.path()).await?;
            let spend_limits = services.config.limits.spend();
            let segment_by = job.spec.options.segment_by.clone();
            let costs = compute(move || read_cost_table(&path, &spend_limits, segment_by.as_deref())).await?;
            drop(scratch);
            Some(costs)
        }
        None => None,
    };
    let result = Arc::new(
        compute(move || {
            // The Markov solve asks between channels, so a cancelled or timed-out task ends soon.
            let stopped = || solving.is_set();
            let budget = SolveBudget { max_channels: limits.markov_max_channels, stop: &stopped };
            match total.finish_within(&finishing, &budget) {
                Err(_) if solving.is_set() => Err(RunError::Stopped),
                Ok(mut result) => {
                    if let Some(costs) = &costs {
                        result.add_spend(costs);
                    }
                    Ok(result)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await?,
    );
    if job.spec.export_credits {
        export_credits(services, &job, &options, &result, &stop).await?;
    }
    // Stored without the job's id, so a job answered from the cache serves it as it is.
    let serialised = Arc::clone(&result);
    let json = compute(move || Ok(serde_json::to_string(&*serialised).map_err(anyhow::Error::from)?)).await?;
    services.storage.put(&keys::result(&job.tenant, &job.id), json.clone().into_bytes()).await?;
    services.ledger.cache_result(&job.id, &job.cache_key, &json).await?;
    if services.ledger.mark_succeeded(&job.id).await? {
        tracing::info!(job = %job.id, rows, "job succeeded");
    }
    // Chunk files are only needed until the result exists.
    if let Err(e) = services.storage.delete_prefix(&keys::chunks(&job.tenant, &job.id)).await {
        tracing::warn!(job = %job.id, error = format!("{e:#}"), "could not delete chunk files");
    }
    Ok(())
}

/// The sum of the partials under `keys`, merged in their order (the next ones fetched and
/// decoded while one is merged), checked against the limits as it grows.
async fn merge_partials(
    services: &Services,
    keys: Vec<ObjectKey>,
    limits: Limits,
    stop: &StopFlag,
) -> Result<Option<Partial>, RunError> {
    let mut total: Option<Partial> = None;
    let mut decoded = futures_util::stream::iter(keys)
        .map(|key| async move {
            let bytes = services.storage.get(&key).await?;
            compute(move || Ok(partial_file::decode(key.as_ref(), &bytes)?)).await
        })
        .buffered(DECODE_AHEAD);
    let mut next = decoded.next().await;
    while let Some(partial) = next {
        stop.check()?;
        let partial = partial?;
        let merged = compute(move || {
            merge_checked(&mut total, partial, &limits)?;
            Ok(total)
        });
        // The next partials are fetched and decoded while this one is merged.
        let (merged, following) = tokio::join!(merged, decoded.next());
        total = merged?;
        next = following;
    }
    Ok(total)
}

/// Adds `partial` to `total` and checks the sum against the limits: each split checked its
/// own share, the union is checked as it grows, so each running total stays within them
/// (the reducer holds two).
fn merge_checked(total: &mut Option<Partial>, partial: Partial, limits: &Limits) -> Result<(), AttributionError> {
    Partial::merge_into(total, partial);
    total.as_ref().map_or(Ok(()), |total| total.check_within(limits))
}

async fn export_credits(
    services: &Services,
    job: &JobRecord,
    options: &Arc<Options>,
    result: &Arc<AttributionResult>,
    stop: &StopFlag,
) -> Result<(), RunError> {
    let scratch = tempfile::Builder::new().prefix("mta-credits-").tempdir().map_err(anyhow::Error::from)?;
    let path = scratch.path().join("credits.parquet");
    let mut out = CreditsFile::create(&path)?;
    match options.kind {
        InputKind::Events => {
            for partition in 0..job.partitions {
                let mut chunk = load_partition(services, job, partition, stop).await?;
                let (options, result) = (Arc::clone(options), Arc::clone(result));
                out = compute(move || {
                    // Credits are per channel: touch keys (a breakdown) give way to their channels.
                    if !options.breakdown.is_empty() {
                        chunk.collapse_touch_keys();
                    }
                    let names = chunk.channels.names();
                    out.write(CreditRows::of_events(&chunk, names, &options, &result), names)?;
                    Ok(out)
                })
                .await?;
            }
        }
        InputKind::Paths => {
            let upload = services.upload_object(&job.tenant, &job.upload_id).await?;
            let input = services.storage.local_copy(&upload, scratch.path()).await?;
            let spec = job.spec.input_spec(services.config.limits.engine());
            let (options, result, stop) = (Arc::clone(options), Arc::clone(result), stop.clone());
            out = compute(move || {
                Source::open(&input, spec.format)?.read(&spec, None, |block| {
                    stop.check()?;
                    if let Block::Paths(chunk) = block {
                        out.write(CreditRows::of_paths(&chunk, &options, &result), chunk.channels.names())?;
                    }
                    Ok(())
                })?;
                Ok(out)
            })
            .await?;
        }
    }
    compute(move || Ok(out.close()?)).await?;
    services.storage.put_file(&keys::credits(&job.tenant, &job.id), &path).await?;
    Ok(())
}
