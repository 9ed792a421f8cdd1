//! The job ledger in Redis: the source of truth for jobs, uploads, progress, the result
//! cache and idempotency keys. The queue only carries "run this unit"; whether a job is
//! cancelled, how far it got and how it ended live here (research note: queue metadata
//! is never the user-facing state).
//!
//! State changes that race (a cancel against the last chunk, two copies of one task) go
//! through small Lua scripts so that each is atomic.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use mta_core::{AttributionError, InputKind, Options};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::access::Tenant;
use crate::spec::JobSpec;
use crate::webhook::{Deliveries, JobWebhook};

/// Idempotency keys are remembered this long.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Entries kept in a job's timeline (task starts and ends).
const TIMELINE_LEN: isize = 1000;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of ", $what, ": a random UUID, never taken from a request.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn random() -> Self {
                $name(uuid::Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::try_parse(s).map($name)
            }
        }
    };
}

uuid_id!(JobId, "a job");
uuid_id!(UploadId, "an upload");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }

    fn parse(s: &str) -> Option<JobState> {
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Splitting,
    Attributing,
    Reducing,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Splitting => "splitting",
            Stage::Attributing => "attributing",
            Stage::Reducing => "reducing",
        }
    }

    fn parse(s: &str) -> Option<Stage> {
        [Stage::Splitting, Stage::Attributing, Stage::Reducing].into_iter().find(|stage| stage.as_str() == s)
    }
}

/// A stored upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "upload_id": "3f0c8a52-6d1e-4f7a-9a43-2b8e1c5d7f90", "tenant": "acme", "size_bytes": 613527,
    "sha256": "9b1e5c0f7d4a2e8b6c3f1a0d9e7b5c4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c", "created_at": "2026-11-25T10:00:00.000Z"
}))]
pub struct UploadRecord {
    pub upload_id: UploadId,
    pub tenant: Tenant,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: String,
}

/// A job as clients see it (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobRecord {
    pub id: JobId,
    pub tenant: Tenant,
    /// The id of the request that created the job (in the API's and the workers' logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    pub upload_id: UploadId,
    pub spec: JobSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<InputKind>,
    /// The spec's options resolved for the input's kind by the first split that read a
    /// block; later stages use them as they are.
    #[serde(skip)]
    pub options: Option<Options>,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AttributionError>,
    /// Set when the result was answered from the cache: the job that computed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<JobId>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub cache_key: String,
    #[serde(skip)]
    pub partitions: u32,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Progress {
    pub splits_done: u64,
    pub splits_total: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Input rows read so far.
    pub rows: u64,
}

impl JobRecord {
    /// The job whose stored result and credits this job serves.
    pub fn result_owner(&self) -> JobId {
        self.cached_from.unwrap_or(self.id)
    }
}

/// What every new job record holds, whether it will run or is answered from the cache.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub id: JobId,
    pub upload: &'a UploadRecord,
    pub spec: &'a JobSpec,
    /// The request that created it, carried into the workers' logs.
    pub request_id: &'a str,
    pub webhook: Option<&'a JobWebhook>,
}

/// What a fan-in step reports to the task that completed a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanIn {
    /// Other units are still running.
    Waiting,
    /// Every unit is done and this task owns the next step (again, if it is a re-run).
    Complete,
}

#[derive(Clone)]
pub struct Ledger {
    conn: ConnectionManager,
    prefix: String,
    cache_ttl: Duration,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Sets the job's state unless it already ended, and moves it between the per-state
/// counts in KEYS[2]; a job that ends with a webhook is put in the due set KEYS[3] in the
/// same step. ARGV: state, stage ('' = leave), now, finished ('' = no), error ('' = none), now in ms.
const TRANSITION: &str = r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return -1 end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
if state ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[2], state, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_at', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'stage', ARGV[2]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[3]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[5]) end
if ARGV[4] ~= '' then
  local hook = redis.call('HGET', KEYS[1], 'webhook_url')
  if hook and hook ~= '' then
    redis.call('HSET', KEYS[1], 'webhook_state', 'pending')
    redis.call('ZADD', KEYS[3], ARGV[6], KEYS[1]:match('([^:]+)$'))
  end
end
return 1
"#;

/// Marks a unit done; when all are done, the task named in ARGV[3] owns the next step.
/// The owner is remembered so that a re-run of the same task (its push may have been
/// lost in a crash) owns it again, while any other copy does not.
const FAN_IN: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[3], 'NX') then return 1 end
if redis.call('GET', KEYS[2]) == ARGV[3] then return 1 end
return 0
"#;

/// Claims KEYS[1] for ARGV[1] (or confirms ARGV[1] already holds it); ARGV[2] = TTL seconds.
const CLAIM: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"#;

/// Deletes KEYS[1] if ARGV[1] holds it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

impl Ledger {
    pub fn new(conn: ConnectionManager, prefix: &str, cache_ttl: Duration) -> Ledger {
        Ledger { conn, prefix: prefix.to_owned(), cache_ttl }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{}", self.prefix, rest)
    }

    fn job_key(&self, job: &JobId) -> String {
        self.key(&format!("job:{job}"))
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.context("Redis did not answer PING")?;
        Ok(())
    }

    // ---- uploads ----

    pub async fn put_upload(&self, upload: &UploadRecord) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = self.key(&format!("upload:{}", upload.upload_id));
        let _: () = conn
            .hset_multiple(
                &key,
                &[
                    ("tenant", upload.tenant.to_string()),
                    ("size_bytes", upload.size_bytes.to_string()),
                    ("sha256", upload.sha256.clone()),
                    ("created_at", upload.created_at.clone()),
                ],
            )
            .await
            .context("Failed to record the upload")?;
        Ok(())
    }

    /// The upload `id` of `tenant`; another tenant's upload is `None`, as if it did not exist.
    pub async fn upload(&self, tenant: &Tenant, id: &UploadId) -> anyhow::Result<Option<UploadRecord>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> =
            conn.hgetall(self.key(&format!("upload:{id}"))).await.context("Failed to read an upload")?;
        if map.get("tenant").map(String::as_str) != Some(tenant.as_str()) {
            return Ok(None);
        }
        Ok(Some(UploadRecord {
            upload_id: *id,
            tenant: tenant.clone(),
            size_bytes: map.get("size_bytes").and_then(|s| s.parse().ok()).unwrap_or(0),
            sha256: map.get("sha256").cloned().unwrap_or_default(),
            created_at: map.get("created_at").cloned().unwrap_or_default(),
        }))
    }

    // ---- jobs ----

    /// Records a new queued job.
    pub async fn create_job(&self, job: &NewJob<'_>, cache_key: &str) -> anyhow::Result<()> {
        self.insert_job(job, JobState::Queued, &[("cache_key", cache_key)]).await
    }

    /// Records a job answered from the cache: already succeeded, serving `source`'s result.
    pub async fn create_cached_job(&self, job: &NewJob<'_>, source: &JobRecord) -> anyhow::Result<()> {
        let progress = &source.progress;
        let extra = [
            ("cache_key", source.cache_key.as_str()),
            ("cached_from", &source.result_owner().to_string()),
            ("kind", source.kind.map_or("", InputKind::as_str)),
            ("splits_total", &progress.splits_total.to_string()),
            ("chunks_total", &progress.chunks_total.to_string()),
            ("rows:cached", &progress.rows.to_string()),
        ];
        self.insert_job(job, JobState::Succeeded, &extra).await
    }

    fn tenant_jobs_key(&self, tenant: &Tenant) -> String {
        self.key(&format!("tenant:{tenant}:jobs"))
    }

    /// Writes a new job record in `state` (with the fields every job has, then `extra`),
    /// lists it under its tenant and counts its state, in one transaction.
    async fn insert_job(&self, job: &NewJob<'_>, state: JobState, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        let (now, upload_id, spec) = (now(), job.upload.upload_id.to_string(), serde_json::to_string(job.spec)?);
        let (webhook_url, webhook_secret, webhook_key) = JobWebhook::fields(job.webhook);
        let mut fields = vec![
            ("state", state.as_str()),
            ("tenant", job.upload.tenant.as_str()),
            ("request_id", job.request_id),
            ("upload_id", &upload_id),
            ("spec", &spec),
            ("webhook_url", webhook_url),
            ("webhook_secret", webhook_secret),
            ("webhook_key", webhook_key),
            ("created_at", &now),
            ("updated_at", &now),
        ];
        if state.is_terminal() {
            fields.push(("finished_at", &now));
        }
        fields.extend_from_slice(extra);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        // A job born finished (a cache hit) announces its end at once.
        if job.webhook.is_some() && state.is_terminal() {
            pipe.zadd(Deliveries::due_key(&self.prefix), job.id.to_string(), Utc::now().timestamp_millis()).ignore();
        }
        let _: () = pipe
            .atomic()
            .hset_multiple(self.job_key(&job.id), &fields)
            .hincr(self.key("stats:jobs"), state.as_str(), 1)
            .zadd(self.tenant_jobs_key(&job.upload.tenant), job.id.to_string(), Utc::now().timestamp_millis())
            .query_async(&mut conn)
            .await
            .context("Failed to record the job")?;
        Ok(())
    }

    pub async fn job(&self, id: &JobId) -> anyhow::Result<Option<JobRecord>> {
        let mut conn = self.conn.clone();
        let (map, splits_done, chunks_done): (HashMap<String, String>, u64, u64) = redis::pipe()
            .hgetall(self.job_key(id))
            .scard(self.key(&format!("job:{id}:splits")))
            .scard(self.key(&format!("job:{id}:chunks")))
            .query_async(&mut conn)
            .await
            .context("Failed to read a job")?;
        if map.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| map.get(name).filter(|v| !v.is_empty());
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let state = field("state").and_then(|s| JobState::parse(s)).context("A job record has no valid state")?;
        let rows = map.iter().filter(|(k, _)| k.starts_with("rows:")).filter_map(|(_, v)| v.parse::<u64>().ok()).sum();
        let spec: JobSpec =
            serde_json::from_str(field("spec").map_or("{}", |s| s)).context("A stored job spec is invalid")?;
        let cached = field("cached_from").and_then(|s| s.parse().ok());
        let splits_total = number("splits_total");
        let chunks_total = number("chunks_total");
        let tenant = field("tenant").context("A job record has no tenant")?;
        Ok(Some(JobRecord {
            id: *id,
            tenant: tenant.parse().map_err(anyhow::Error::msg)?,
            request_id: field("request_id").cloned(),
            state,
            stage: field("stage").and_then(|s| Stage::parse(s)),
            upload_id: field("upload_id").and_then(|s| s.parse().ok()).context("A job record has no upload")?,
            spec,
            kind: field("kind").and_then(|k| k.parse().ok()),
            options: field("options")
                .map(|o| serde_json::from_str(o))
                .transpose()
                .context("Stored options are invalid")?,
            progress: Progress {
                // A cached job did all of its source's work at once.
                splits_done: if cached.is_some() { splits_total } else { splits_done },
                splits_total,
                chunks_done: if cached.is_some() { chunks_total } else { chunks_done },
                chunks_total,
                rows,
            },
            error: field("error").and_then(|e| serde_json::from_str(e).ok()),
            cached_from: cached,
            created_at: field("created_at").cloned().unwrap_or_default(),
            updated_at: field("updated_at").cloned().unwrap_or_default(),
            finished_at: field("finished_at").cloned(),
            cache_key: field("cache_key").cloned().unwrap_or_default(),
            partitions: number("chunks_total") as u32,
        }))
    }

    /// The job `id` of `tenant`; another tenant's job is `None`, as if it did not exist.
    pub async fn tenant_job(&self, tenant: &Tenant, id: &JobId) -> anyhow::Result<Option<JobRecord>> {
        Ok(self.job(id).await?.filter(|job| job.tenant == *tenant))
    }

    /// `tenant`'s newest jobs first, at most `limit`.
    pub async fn list_jobs(&self, tenant: &Tenant, limit: usize) -> anyhow::Result<Vec<JobRecord>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrevrange(self.tenant_jobs_key(tenant), 0, limit.saturating_sub(1) as isize)
            .await
            .context("Failed to list jobs")?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(id) = id.parse()
                && let Some(job) = self.job(&id).await?
            {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    async fn transition(
        &self,
        job: &JobId,
        state: JobState,
        stage: Option<Stage>,
        error: Option<&AttributionError>,
    ) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let error = error.map(|e| serde_json::to_string(e).expect("errors serialise")).unwrap_or_default();
        let changed: i64 = redis::Script::new(TRANSITION)
            .key(self.job_key(job))
            .key(self.key("stats:jobs"))
            .key(Deliveries::due_key(&self.prefix))
            .arg(state.as_str())
            .arg(stage.map_or("", Stage::as_str))
            .arg(now())
            .arg(if state.is_terminal() { "1" } else { "" })
            .arg(error)
            .arg(Utc::now().timestamp_millis())
            .invoke_async(&mut conn)
            .await
            .context("Failed to update a job")?;
        Ok(changed == 1)
    }

    /// `false` when the job already ended (cancelled, failed): the caller stops.
    pub async fn mark_running(&self, job: &JobId, stage: Stage) -> anyhow::Result<bool> {
        self.transition(job, JobState::Running, Some(stage), None).await
    }

    pub async fn mark_succeeded(&self, job: &JobId) -> anyhow::Result<bool> {
        self.transition(job, JobState::Succeeded, None, None).await
    }

    pub async fn mark_failed(&self, job: &JobId, error: &AttributionError) -> anyhow::Result<bool> {
        self.transition(job, JobState::Failed, None, Some(error)).await
    }

    /// `true` if the job was still running or queued.
    pub async fn cancel(&self, job: &JobId) -> anyhow::Result<bool> {
        self.transition(job, JobState::Cancelled, None, None).await
    }

    pub async fn state(&self, job: &JobId) -> anyhow::Result<Option<JobState>> {
        let mut conn = self.conn.clone();
        let state: Option<String> = conn.hget(self.job_key(job), "state").await.context("Failed to read a job")?;
        Ok(state.and_then(|s| JobState::parse(&s)))
    }

    /// Records the plan made by the first split task.
    pub async fn set_plan(&self, job: &JobId, splits: u32, partitions: u32) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn
            .hset_multiple(
                self.job_key(job),
                &[("splits_total", splits.to_string()), ("chunks_total", partitions.to_string())],
            )
            .await
            .context("Failed to record the job plan")?;
        Ok(())
    }

    /// Records the kind of input the split found and the options resolved for it.
    pub async fn set_options(&self, job: &JobId, options: &Options) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let fields = [("kind", options.kind.as_str().to_owned()), ("options", serde_json::to_string(options)?)];
        let _: () =
            conn.hset_multiple(self.job_key(job), &fields).await.context("Failed to record the resolved options")?;
        Ok(())
    }

    /// Rows read by one split task so far (a re-run overwrites, never adds).
    pub async fn set_rows(&self, job: &JobId, split: u32, rows: u64) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () =
            conn.hset(self.job_key(job), format!("rows:{split}"), rows).await.context("Failed to record progress")?;
        Ok(())
    }

    /// Counts a start of one unit of work, crashes included; returns the count so far.
    pub async fn count_start(&self, job: &JobId, unit: &str) -> anyhow::Result<u32> {
        let mut conn = self.conn.clone();
        let n: u32 = conn
            .hincr(self.key(&format!("job:{job}:starts")), unit, 1)
            .await
            .context("Failed to count a task start")?;
        Ok(n)
    }

    /// Appends to the job's timeline: which worker started or ended which unit, when.
    pub async fn log_timeline(&self, job: &JobId, event: &str, unit: &str, worker: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let entry = serde_json::json!({
            "at_ms": Utc::now().timestamp_millis(), "event": event, "unit": unit, "worker": worker,
        });
        let key = self.key(&format!("job:{job}:timeline"));
        let _: () = redis::pipe()
            .rpush(&key, entry.to_string())
            .ltrim(&key, -TIMELINE_LEN, -1)
            .ignore()
            .query_async(&mut conn)
            .await
            .context("Failed to write the job timeline")?;
        Ok(())
    }

    pub async fn timeline(&self, job: &JobId) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut conn = self.conn.clone();
        let entries: Vec<String> =
            conn.lrange(self.key(&format!("job:{job}:timeline")), 0, -1).await.context("Failed to read a timeline")?;
        Ok(entries.iter().filter_map(|e| serde_json::from_str(e).ok()).collect())
    }

    /// Marks `unit` of `stage` done; `total` units make the stage complete.
    pub async fn fan_in(
        &self,
        job: &JobId,
        stage: Stage,
        unit: &str,
        total: u64,
        owner: &str,
    ) -> anyhow::Result<FanIn> {
        let set = match stage {
            Stage::Splitting => "splits",
            Stage::Attributing => "chunks",
            Stage::Reducing => "reduced",
        };
        let mut conn = self.conn.clone();
        let complete: i64 = redis::Script::new(FAN_IN)
            .key(self.key(&format!("job:{job}:{set}")))
            .key(self.key(&format!("job:{job}:next:{set}")))
            .arg(unit)
            .arg(total)
            .arg(owner)
            .invoke_async(&mut conn)
            .await
            .context("Failed to record a finished unit")?;
        Ok(if complete == 1 { FanIn::Complete } else { FanIn::Waiting })
    }

    // ---- service-wide figures (health and metrics) ----

    /// Jobs per state over the whole service.
    pub async fn job_counts(&self) -> anyhow::Result<HashMap<String, i64>> {
        let mut conn = self.conn.clone();
        conn.hgetall(self.key("stats:jobs")).await.context("Failed to read the job counts")
    }

    /// Records that worker process `name` is alive now.
    pub async fn worker_beat(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.zadd(self.key("workers"), name, Utc::now().timestamp_millis()).await?;
        Ok(())
    }

    pub async fn worker_gone(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.zrem(self.key("workers"), name).await?;
        Ok(())
    }

    /// Worker processes that beat within `window` (older entries are dropped).
    pub async fn live_workers(&self, window: Duration) -> anyhow::Result<u64> {
        let since = Utc::now().timestamp_millis() - window.as_millis() as i64;
        let mut conn = self.conn.clone();
        let (_, live): ((), u64) = redis::pipe()
            .zrembyscore(self.key("workers"), "-inf", format!("({since}"))
            .zcount(self.key("workers"), since, "+inf")
            .query_async(&mut conn)
            .await
            .context("Failed to count live workers")?;
        Ok(live)
    }

    // ---- result cache and idempotency ----

    /// Keeps a finished result in Redis for the cache TTL, and the cache entry pointing at its job.
    pub async fn cache_result(&self, job: &JobId, cache_key: &str, result_json: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let ttl = self.cache_ttl.as_secs().max(1);
        let _: () = redis::pipe()
            .set_ex(self.key(&format!("result:{job}")), result_json, ttl)
            .set_ex(self.key(&format!("cache:{cache_key}")), job.to_string(), ttl)
            .query_async(&mut conn)
            .await
            .context("Failed to cache the result")?;
        Ok(())
    }

    pub async fn cached_result(&self, job: &JobId) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        conn.get(self.key(&format!("result:{job}"))).await.context("Failed to read the result cache")
    }

    /// The succeeded job that computed the same input with the same spec within the TTL.
    pub async fn cached_job(&self, cache_key: &str) -> anyhow::Result<Option<JobRecord>> {
        let mut conn = self.conn.clone();
        let id: Option<String> =
            conn.get(self.key(&format!("cache:{cache_key}"))).await.context("Failed to read the result cache")?;
        let Some(id) = id.and_then(|id| id.parse::<JobId>().ok()) else { return Ok(None) };
        Ok(self.job(&id).await?.filter(|job| job.state == JobState::Succeeded))
    }

    /// Claims `tenant`'s idempotency key for `job`; returns the job that already holds it, if any.
    pub async fn claim_idempotency_key(
        &self,
        tenant: &Tenant,
        key: &str,
        job: &JobId,
    ) -> anyhow::Result<Option<JobId>> {
        let mut conn = self.conn.clone();
        let redis_key = self.key(&format!("idem:{tenant}:{key}"));
        let claimed: bool = redis::cmd("SET")
            .arg(&redis_key)
            .arg(job.to_string())
            .arg("NX")
            .arg("EX")
            .arg(IDEMPOTENCY_TTL.as_secs())
            .query_async::<Option<String>>(&mut conn)
            .await
            .context("Failed to claim an idempotency key")?
            .is_some();
        if claimed {
            return Ok(None);
        }
        let holder: Option<String> = conn.get(&redis_key).await.context("Failed to read an idempotency key")?;
        Ok(holder.and_then(|h| h.parse().ok()))
    }

    /// Frees an idempotency key that `job` holds (its submission failed, so a retry must start afresh).
    pub async fn release_idempotency_key(&self, tenant: &Tenant, key: &str, job: &JobId) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(RELEASE)
            .key(self.key(&format!("idem:{tenant}:{key}")))
            .arg(job.to_string())
            .invoke_async(&mut conn)
            .await
            .context("Failed to release an idempotency key")?;
        Ok(())
    }

    /// Makes `owner` the one task that runs `unit` of `job` (true also when it already is):
    /// a copy of the task pushed twice under another id then does nothing.
    pub async fn claim_unit(&self, job: &JobId, unit: &str, owner: &str) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let claimed: i64 = redis::Script::new(CLAIM)
            .key(self.key(&format!("job:{job}:owner:{unit}")))
            .arg(owner)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .invoke_async(&mut conn)
            .await
            .context("Failed to claim a unit of work")?;
        Ok(claimed == 1)
    }
}

/// `delay` from now, written like [`now`].
pub fn timestamp_in(delay: Duration) -> String {
    let now = Utc::now();
    let at = chrono::Duration::from_std(delay).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now);
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time as the ledger writes it (RFC 3339, milliseconds, UTC).
pub fn now() -> String {
    let now: DateTime<Utc> = Utc::now();
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Connects with the response timeout of the config: long enough to ride out a stalled
/// Redis (the 500 ms default turns a 2 s stall into a fatal error, research note E26).
pub async fn connect(url: &str, response_timeout: Duration) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("REDIS_URL `{}` is invalid", redact(url)))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(6)
        .set_max_delay(Duration::from_secs(2));
    client
        .get_connection_manager_with_config(config)
        .await
        .with_context(|| format!("Failed to connect to Redis at {}", redact(url)))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
