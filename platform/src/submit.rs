//! Submitting a job, once its spec, upload and webhook are checked: the idempotency claim,
//! the result cache, the job record, the first task on the queue, and undoing the claim
//! when the submission fails, so a client's retry starts afresh.
//!
//! An idempotency key is first claimed for a short lease (`MTA_IDEMPOTENCY_LEASE_SECS`)
//! and kept for 24 h only once its job is recorded: a process that dies holding a claim
//! (killed mid-request) leaves a key that frees itself within the lease, not one that
//! answers `request_in_progress` for a day with no job behind it.

use mta_core::{AttributionError, ErrorCode};

use crate::config::Faults;
use crate::ids::JobId;
use crate::job::{JobRecord, NewJob, UploadRecord};
use crate::ledger::Ledger;
use crate::metrics::Metrics;
use crate::queue::{Queue, SplitTask};
use crate::spec::JobSpec;
use crate::webhook::JobWebhook;

/// A checked submission.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub upload: &'a UploadRecord,
    /// The cost table's upload, when the spec names one (checked to be the tenant's).
    pub spend_upload: Option<&'a UploadRecord>,
    pub spec: &'a JobSpec,
    pub webhook: Option<&'a JobWebhook>,
    /// The client's `Idempotency-Key`: the same key returns the same job for 24 h.
    pub idempotency_key: Option<&'a str>,
    /// The request that submits, carried into the workers' logs.
    pub request_id: &'a str,
    /// Fault injection of the reliability tests.
    pub faults: &'a Faults,
}

/// How a submission was answered.
#[derive(Debug, Clone)]
pub enum Submitted {
    /// A new job: queued, or already succeeded from the result cache.
    Created(JobRecord),
    /// The job an earlier request with the same idempotency key made.
    Replayed(JobRecord),
}

#[derive(Debug)]
pub enum SubmitError {
    /// The first request with this idempotency key has not recorded its job yet (and its
    /// lease has not run out).
    InProgress,
    /// The job was recorded but could not be queued (it is marked failed).
    NotQueued(anyhow::Error),
    /// Redis failed.
    Ledger(anyhow::Error),
}

impl From<anyhow::Error> for SubmitError {
    fn from(e: anyhow::Error) -> Self {
        SubmitError::Ledger(e)
    }
}

/// Records the job (answered from the cache when possible) and enqueues its first stage.
pub async fn submit(
    ledger: &Ledger,
    queue: &Queue,
    metrics: &Metrics,
    submission: Submission<'_>,
) -> Result<Submitted, SubmitError> {
    let job_id = JobId::random();
    let tenant = &submission.upload.tenant;
    if let Some(key) = submission.idempotency_key
        && let Some(existing) = ledger.claim_idempotency_key(tenant, key, &job_id).await?
    {
        return match ledger.job(&existing).await? {
            Some(job) => Ok(Submitted::Replayed(job)),
            None => Err(SubmitError::InProgress),
        };
    }
    if let Some(key) = submission.idempotency_key
        && submission.faults.abort_after_idempotency_claim.as_deref() == Some(key)
    {
        tracing::error!(job = %job_id, "fault injection: aborting after the idempotency claim");
        std::process::abort();
    }
    let outcome = record_and_enqueue(ledger, queue, metrics, job_id, &submission).await;
    if outcome.is_err()
        && let Some(key) = submission.idempotency_key
    {
        // A failed submission must not pin its key: the client's retry starts afresh.
        let _ = ledger.release_idempotency_key(tenant, key, &job_id).await;
    }
    outcome.map(Submitted::Created)
}

async fn record_and_enqueue(
    ledger: &Ledger,
    queue: &Queue,
    metrics: &Metrics,
    job_id: JobId,
    submission: &Submission<'_>,
) -> Result<JobRecord, SubmitError> {
    let upload = submission.upload;
    let spend_sha256 = submission.spend_upload.map(|u| u.sha256.as_str());
    let cache_key = submission.spec.cache_key(&upload.tenant, &upload.sha256, spend_sha256);
    let new = NewJob {
        id: job_id,
        upload,
        spend_upload: submission.spend_upload,
        spec: submission.spec,
        request_id: submission.request_id,
        webhook: submission.webhook,
    };
    metrics.jobs_submitted.inc();
    if let Some(source) = ledger.cached_job(&cache_key).await? {
        ledger.create_cached_job(&new, &source).await?;
        metrics.cache_hits.inc();
        tracing::info!(job = %job_id, source = %source.id, "job answered from the result cache");
        keep_idempotency_key(ledger, submission, job_id).await;
    } else {
        ledger.create_job(&new, &cache_key).await?;
        keep_idempotency_key(ledger, submission, job_id).await;
        if let Err(e) = queue.push(SplitTask { job: job_id, split: None, range: None }).await {
            let error = AttributionError::new(ErrorCode::Internal, "the job could not be queued");
            let _ = ledger.mark_failed(&job_id, &error).await;
            return Err(SubmitError::NotQueued(e));
        }
        tracing::info!(job = %job_id, upload = %upload.upload_id, tenant = %upload.tenant, "job queued");
    }
    ledger.job(&job_id).await?.ok_or_else(|| SubmitError::Ledger(anyhow::anyhow!("a new job record vanished")))
}

/// Once the job is recorded, its idempotency key is kept for 24 h instead of the lease. A
/// failure here is logged, not returned: the job exists, and the key then lapses with its lease.
async fn keep_idempotency_key(ledger: &Ledger, submission: &Submission<'_>, job_id: JobId) {
    let Some(key) = submission.idempotency_key else { return };
    match ledger.keep_idempotency_key(&submission.upload.tenant, key, &job_id).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(job = %job_id, "the idempotency lease ran out before the job was recorded"),
        Err(e) => tracing::warn!(job = %job_id, error = %format!("{e:#}"), "the idempotency key was not kept"),
    }
}
