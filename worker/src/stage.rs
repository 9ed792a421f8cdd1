//! What every stage task does around its work: count the start (a task that keeps not
//! finishing fails its job, `UnitStarts::exhausted`, with the reason), skip jobs that already
//! ended, watch for cancellation, and turn the outcome into the ledger's state and the
//! queue's ack. Stages are plain async code that sends its CPU work to blocking threads
//! with [`compute`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mta_core::{AttributionError, ErrorCode};
use mta_platform::ids::Tenant;
use mta_platform::job::{JobRecord, JobState, Stage, UnitStarts};
use mta_platform::metrics::StageLabels;
use mta_platform::queue::{StageTask, TaskError, TaskInfo};
use mta_platform::run_error::RunError;
use mta_platform::storage::keys;
use tracing::Instrument;

use crate::Services;

/// Set when the work should stop between blocks: the job was cancelled, or the task
/// future was dropped (its consumer restarted) while computation it started still runs.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub fn check(&self) -> Result<(), RunError> {
        if self.is_set() { Err(RunError::Stopped) } else { Ok(()) }
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

struct SetOnDrop(StopFlag);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// Runs one unit of a job's stage. `work` gets the job record and a stop flag; it is plain
/// async code that sends its CPU work to [`compute`].
pub async fn run_unit<T, W, F>(
    services: &Services,
    task: &T,
    info: &TaskInfo,
    stage: Stage,
    work: W,
) -> Result<(), TaskError>
where
    T: StageTask,
    W: FnOnce(JobRecord, StopFlag) -> F,
    F: Future<Output = Result<(), RunError>>,
{
    let job_id = task.job();
    let unit = task.unit();
    let ledger = &services.ledger;
    let transient = |e: anyhow::Error| TaskError::Transient(e);
    let starts = ledger.start_unit(&job_id, &unit, &info.worker).await.map_err(transient)?;
    let Some(job) = ledger.job(&job_id).await.map_err(transient)? else {
        tracing::warn!(job = %job_id, unit, "task for an unknown job dropped");
        return Ok(());
    };
    if job.state.is_terminal() {
        return Ok(());
    }
    // Every log line of the task carries the job, its tenant and the request that made it.
    let span = tracing::info_span!(
        "task",
        job = %job_id,
        unit,
        tenant = %job.tenant,
        request_id = job.request_id.as_deref().unwrap_or_default(),
    );
    let started = std::time::Instant::now();
    let queue = &services.config.queue;
    let exhausted = starts.exhausted(queue.max_starts, queue.give_up_after);
    let outcome = run_started(services, job, unit.clone(), &starts, info, stage, work).instrument(span).await;
    let retried = match &outcome {
        Err(TaskError::Transient(e)) => Some(format!("{e:#}")),
        _ => None,
    };
    let _ = ledger.end_unit(&job_id, &unit, retried.as_deref()).await;
    let metrics = &services.metrics;
    let label = match &outcome {
        Ok(Outcome::Done) => "ok",
        Ok(Outcome::Stopped) => "stopped",
        Err(TaskError::Permanent(_)) if exhausted => "dead",
        Err(TaskError::Permanent(_)) => "input_error",
        Err(TaskError::Transient(_)) => "retry",
    };
    metrics.task(T::QUEUE, label);
    metrics
        .task_duration
        .get_or_create(&StageLabels { stage: T::QUEUE.to_owned() })
        .observe(started.elapsed().as_secs_f64());
    if starts.starts > 1 {
        metrics.task_retries.get_or_create(&StageLabels { stage: T::QUEUE.to_owned() }).inc();
    }
    outcome.map(drop)
}

/// How a task that ran ended (its errors are the `Err` side).
enum Outcome {
    Done,
    Stopped,
}

async fn run_started<W, F>(
    services: &Services,
    job: JobRecord,
    unit: String,
    starts: &UnitStarts,
    info: &TaskInfo,
    stage: Stage,
    work: W,
) -> Result<Outcome, TaskError>
where
    W: FnOnce(JobRecord, StopFlag) -> F,
    F: Future<Output = Result<(), RunError>>,
{
    let job_id = job.id;
    let ledger = &services.ledger;
    let transient = |e: anyhow::Error| TaskError::Transient(e);
    let queue = &services.config.queue;
    if starts.exhausted(queue.max_starts, queue.give_up_after) {
        let error = AttributionError::new(ErrorCode::Internal, starts.reason(&unit));
        ledger.mark_failed(&job_id, &error).await.map_err(transient)?;
        tracing::error!(job = %job_id, unit, starts = starts.starts, lost = starts.lost, failed = starts.failed,
            "start budget exhausted; job failed");
        remove_chunks(services, &job.tenant, &job_id).await;
        return Err(TaskError::Permanent(anyhow::anyhow!(error.message)));
    }
    if !ledger.mark_running(&job_id, stage).await.map_err(transient)? {
        return Ok(Outcome::Stopped);
    }
    let _ = ledger.log_timeline(&job_id, "start", &unit, &info.worker).await;
    tracing::info!(job = %job_id, unit, worker = %info.worker, attempt = starts.starts, "task started");

    let stop = StopFlag::default();
    let _stop_when_dropped = SetOnDrop(stop.clone());
    // Aborted when this future ends or is dropped (its consumer restarted).
    let _watcher = AbortOnDrop(watch_for_cancel(services.clone(), job_id, stop.clone()));
    let tenant = job.tenant.clone();
    let time_limit = services.config.queue.task_time_limit;
    let outcome = match tokio::time::timeout(time_limit, work(job, stop.clone())).await {
        Ok(outcome) => outcome,
        Err(_) => {
            // Work still running on a blocking thread sees the flag at its next check.
            stop.set();
            tracing::warn!(job = %job_id, unit, limit_secs = time_limit.as_secs(), "task ran out of time");
            Err(RunError::Input(out_of_time(&unit, stage, time_limit)))
        }
    };
    let _ = ledger.log_timeline(&job_id, "end", &unit, &info.worker).await;
    match outcome {
        Ok(()) => Ok(Outcome::Done),
        Err(RunError::Stopped) => {
            tracing::info!(job = %job_id, unit, "task stopped: job cancelled");
            remove_chunks(services, &tenant, &job_id).await;
            Ok(Outcome::Stopped)
        }
        Err(RunError::Input(error)) => {
            tracing::info!(job = %job_id, unit, code = error.code.as_str(), "job failed on its input");
            ledger.mark_failed(&job_id, &error).await.map_err(transient)?;
            remove_chunks(services, &tenant, &job_id).await;
            Err(TaskError::Permanent(anyhow::anyhow!(error.message)))
        }
        Err(RunError::Other(e)) => {
            tracing::warn!(job = %job_id, unit, error = format!("{e:#}"), "task failed; it will be retried");
            Err(TaskError::Transient(e))
        }
    }
}

/// The error of a task stopped by `MTA_TASK_TIME_LIMIT_SECS`: the job fails, as it would
/// run as long again on any worker.
fn out_of_time(unit: &str, stage: Stage, limit: Duration) -> AttributionError {
    AttributionError::new(
        ErrorCode::LimitExceeded,
        format!(
            "the {} task `{unit}` ran longer than the time limit of {} s per task (MTA_TASK_TIME_LIMIT_SECS) \
             and was stopped",
            stage.as_str(),
            limit.as_secs()
        ),
    )
}

/// Chunk files of a job that ended without a result are no longer needed (best effort:
/// a task still stopping may add a file afterwards).
async fn remove_chunks(services: &Services, tenant: &Tenant, job: &mta_platform::JobId) {
    if let Err(e) = services.storage.delete_prefix(&keys::chunks(tenant, job)).await {
        tracing::warn!(job = %job, error = format!("{e:#}"), "could not delete chunk files");
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls the ledger while work runs and raises the stop flag when the job ends elsewhere.
fn watch_for_cancel(services: Services, job: mta_platform::JobId, stop: StopFlag) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            match services.ledger.state(&job).await {
                Ok(Some(JobState::Cancelled | JobState::Failed)) | Ok(None) => {
                    stop.set();
                    return;
                }
                Ok(Some(JobState::Succeeded)) => return,
                _ => {}
            }
        }
    })
}

/// Runs CPU work on a blocking thread, inside the task's span: the stages' own code runs on
/// the consumers' thread, which must stay free for I/O, leases and heartbeats.
pub async fn compute<T, W>(work: W) -> Result<T, RunError>
where
    T: Send + 'static,
    W: FnOnce() -> Result<T, RunError> + Send + 'static,
{
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(outcome) => outcome,
        Err(e) => Err(RunError::Other(anyhow::anyhow!("the task's thread failed: {e}"))),
    }
}
