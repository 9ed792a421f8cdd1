//! The job ledger in Redis: the source of truth for jobs, uploads, progress, the result
//! cache and idempotency keys. The queue only carries "run this unit"; whether a job is
//! cancelled, how far it got and how it ended live here (research note: queue metadata
//! is never the user-facing state).
//!
//! State changes that race (a cancel against the last chunk, two copies of one task) go
//! through small Lua scripts so that each is atomic. The job types are in `job.rs`; the
//! keys and the job hash's fields are named in `redis_keys.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use mta_core::{AttributionError, InputKind, Options};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::ids::{JobId, Tenant, UploadId, now};
use crate::job::{
    DirectUpload, FanIn, JobRecord, JobState, NewJob, Progress, Stage, StageSpan, Timeline, TimelineEvent, UnitStarts,
    UploadRecord,
};
use crate::redis_keys::{self, DoneSet, Expiring, job_field as field};
use crate::spec::JobSpec;
use crate::webhook::JobWebhook;

/// Idempotency keys whose job was recorded are remembered this long (or the retention, if shorter).
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// The longest retried error kept per unit (characters).
pub const ERROR_TEXT_CHARS: usize = 500;
/// Entries kept in a job's timeline (task starts and ends).
const TIMELINE_LEN: isize = 1000;

#[derive(Clone)]
pub struct Ledger {
    conn: ConnectionManager,
    prefix: String,
    cache_ttl: Duration,
    idempotency_lease: Duration,
    /// How long a job's keys, its upload and its objects are kept after the job ends.
    retention: Duration,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Sets the job's state unless it already ended, and moves it between the per-state
/// counts in KEYS[2]; a job that ends with a webhook is put in the due set KEYS[3] in the
/// same step. ARGV: state, stage ('' = leave), now, finished ('' = no), error ('' = none), now in ms.
/// A job that ends also starts its retention in the same step: its keys (KEYS[6..]) expire
/// after ARGV[7] ms, and the sweep's set KEYS[4] gets the job (ARGV[8]) and its upload
/// (ARGV[9], whose record KEYS[5] is kept as long) at the same time.
/// Its field names come from [`field`], so the job hash has one schema; the webhook's
/// fields are among them because the delivery is queued in the same atomic step.
static TRANSITION: LazyLock<String> = LazyLock::new(|| {
    use field::{ERROR, FINISHED_AT, STAGE, STATE, UPDATED_AT, WEBHOOK_STATE, WEBHOOK_URL};
    format!(
        r#"
local state = redis.call('HGET', KEYS[1], '{STATE}')
if not state then return -1 end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then return 0 end
if state ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[2], state, -1)
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
redis.call('HSET', KEYS[1], '{STATE}', ARGV[1], '{UPDATED_AT}', ARGV[3])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], '{STAGE}', ARGV[2]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], '{FINISHED_AT}', ARGV[3]) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], '{ERROR}', ARGV[5]) end
if ARGV[4] ~= '' then
  local hook = redis.call('HGET', KEYS[1], '{WEBHOOK_URL}')
  if hook and hook ~= '' then
    redis.call('HSET', KEYS[1], '{WEBHOOK_STATE}', 'pending')
    redis.call('ZADD', KEYS[3], ARGV[6], KEYS[1]:match('([^:]+)$'))
  end
  for i = 6, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
  local expires = tonumber(ARGV[6]) + tonumber(ARGV[7])
  if ARGV[8] ~= '' then redis.call('ZADD', KEYS[4], expires, ARGV[8]) end
  if ARGV[9] ~= '' then
    redis.call('PEXPIRE', KEYS[5], ARGV[7])
    redis.call('ZADD', KEYS[4], 'GT', expires, ARGV[9])
  end
end
return 1
"#
    )
});

/// Marks a unit done; when all are done, the task named in ARGV[3] owns the next step.
/// The owner is remembered so that a re-run of the same task (its push may have been
/// lost in a crash) owns it again, while any other copy does not. Both keys expire after
/// ARGV[4] seconds unless the job's end gave them a time to live already.
const FAN_IN: &str = r#"
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4], 'NX')
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[3], 'NX') then
  redis.call('EXPIRE', KEYS[2], ARGV[4], 'NX')
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[3] then return 1 end
return 0
"#;

/// Appends the entry ARGV[1] to the timeline list KEYS[1], keeping its last ARGV[2] entries,
/// and counts it in the hash KEYS[2]: entries ever logged, and for the stage ARGV[3] its
/// starts or ends (the event ARGV[4]) and its earliest start or latest end (ARGV[5], ms).
/// Both keys get the time to live ARGV[6] of a job that has not ended, unless they have one.
static LOG_TIMELINE: LazyLock<String> = LazyLock::new(|| {
    use redis_keys::timeline_field::{ENDED, EVENTS, FIRST_START, LAST_END, STARTED};
    format!(
        r#"
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('HINCRBY', KEYS[2], '{EVENTS}', 1)
local stage, at = ARGV[3], tonumber(ARGV[5])
local function keep(field, better)
  local old = redis.call('HGET', KEYS[2], stage .. field)
  if not old or better(at, tonumber(old)) then redis.call('HSET', KEYS[2], stage .. field, ARGV[5]) end
end
if ARGV[4] == 'start' then
  redis.call('HINCRBY', KEYS[2], stage .. '{STARTED}', 1)
  keep('{FIRST_START}', function(a, b) return a < b end)
else
  redis.call('HINCRBY', KEYS[2], stage .. '{ENDED}', 1)
  keep('{LAST_END}', function(a, b) return a > b end)
end
redis.call('EXPIRE', KEYS[1], ARGV[6], 'NX')
redis.call('EXPIRE', KEYS[2], ARGV[6], 'NX')
"#
    )
});

/// Counts a start of unit ARGV[1] on worker ARGV[2] in the starts hash KEYS[1] (given the
/// time to live ARGV[3] of a job that has not ended, unless it has one). Returns
/// the starts, ms since the first, attempts that lost their worker (this start finds the
/// previous one still open) and the last such worker, failed attempts and the last error.
static START: LazyLock<String> = LazyLock::new(|| {
    use redis_keys::start_field::{ERROR, FAILED, FIRST, LOST, LOST_ON, OPEN};
    format!(
        r#"
local unit, worker = ARGV[1], ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local starts = redis.call('HINCRBY', KEYS[1], unit, 1)
redis.call('HSETNX', KEYS[1], unit .. '{FIRST}', now)
local first = tonumber(redis.call('HGET', KEYS[1], unit .. '{FIRST}'))
local open = redis.call('HGET', KEYS[1], unit .. '{OPEN}')
if open then
  redis.call('HINCRBY', KEYS[1], unit .. '{LOST}', 1)
  redis.call('HSET', KEYS[1], unit .. '{LOST_ON}', open)
end
redis.call('HSET', KEYS[1], unit .. '{OPEN}', worker)
redis.call('EXPIRE', KEYS[1], ARGV[3], 'NX')
local function get(suffix, default) return redis.call('HGET', KEYS[1], unit .. suffix) or default end
return {{starts, math.max(now - first, 0), tonumber(get('{LOST}', '0')), get('{LOST_ON}', ''),
  tonumber(get('{FAILED}', '0')), get('{ERROR}', '')}}
"#
    )
});

/// Claims KEYS[1] for ARGV[1] (or confirms ARGV[1] already holds it); ARGV[2] = TTL seconds.
const CLAIM: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
"#;

/// Sets KEYS[1] to expire in ARGV[2] seconds if ARGV[1] holds it.
const EXTEND: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// Deletes KEYS[1] if ARGV[1] holds it.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

impl Ledger {
    /// `idempotency_lease`: how long a claimed idempotency key stays held before its job is
    /// recorded (so a claim dies with the process that made it). `retention`: how long a
    /// job's keys, its upload and its objects are kept after the job ends.
    pub fn new(
        conn: ConnectionManager,
        prefix: &str,
        cache_ttl: Duration,
        idempotency_lease: Duration,
        retention: Duration,
    ) -> Ledger {
        Ledger { conn, prefix: prefix.to_owned(), cache_ttl, idempotency_lease, retention }
    }

    /// How long what a job leaves behind is kept after the job ends.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    fn retention_ms(&self) -> i64 {
        self.retention.as_millis().max(1) as i64
    }

    /// The time to live of a job's keys until the job ends: twice the retention, so a job
    /// that never ends (its workers all lost, its queue flushed) is forgotten too.
    fn open_ttl_secs(&self) -> u64 {
        self.retention.as_secs().max(1) * 2
    }

    /// A time to live no longer than the retention: nothing outlives the job it serves.
    fn within_retention(&self, ttl: Duration) -> u64 {
        ttl.min(self.retention).as_secs().max(1)
    }

    fn job_key(&self, job: &JobId) -> String {
        redis_keys::job(&self.prefix, job)
    }

    /// Runs `pipe` (writes to `key`, a key of a job), then gives `key` the time to live of a
    /// job that has not ended unless it has one: a write never leaves a job's key without
    /// one, even a write that comes after the job expired.
    async fn write_expiring<T: redis::FromRedisValue>(
        &self,
        mut pipe: redis::Pipeline,
        key: &str,
    ) -> redis::RedisResult<T> {
        pipe.cmd("EXPIRE").arg(key).arg(self.open_ttl_secs()).arg("NX").ignore();
        pipe.query_async(&mut self.conn.clone()).await
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await.context("Redis did not answer PING")?;
        Ok(())
    }

    // ---- uploads ----

    pub async fn put_upload(&self, upload: &UploadRecord) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = redis_keys::upload(&self.prefix, &upload.upload_id);
        let expiring = Expiring::Upload(upload.tenant.clone(), upload.upload_id);
        let expires = Utc::now().timestamp_millis() + self.retention_ms();
        let mut fields = vec![
            ("tenant", upload.tenant.to_string()),
            ("size_bytes", upload.size_bytes.to_string()),
            ("sha256", upload.sha256.clone()),
            ("created_at", upload.created_at.clone()),
        ];
        if let Some(key) = &upload.imported_from {
            fields.push(("imported_from", key.clone()));
        }
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .pexpire(&key, self.retention_ms())
            .zadd(redis_keys::expiries(&self.prefix), expiring.member(), expires)
            .query_async(&mut conn)
            .await
            .context("Failed to record the upload")?;
        Ok(())
    }

    /// The upload `id` of `tenant`; another tenant's upload is `None`, as if it did not exist.
    pub async fn upload(&self, tenant: &Tenant, id: &UploadId) -> anyhow::Result<Option<UploadRecord>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> =
            conn.hgetall(redis_keys::upload(&self.prefix, id)).await.context("Failed to read an upload")?;
        if map.get("tenant").map(String::as_str) != Some(tenant.as_str()) {
            return Ok(None);
        }
        Ok(Some(UploadRecord {
            upload_id: *id,
            tenant: tenant.clone(),
            size_bytes: map.get("size_bytes").and_then(|s| s.parse().ok()).unwrap_or(0),
            sha256: map.get("sha256").cloned().unwrap_or_default(),
            created_at: map.get("created_at").cloned().unwrap_or_default(),
            imported_from: map.get("imported_from").cloned(),
        }))
    }

    /// Records a direct upload until `keep` has passed; then the retention sweep aborts
    /// its multipart upload unless it was completed first.
    pub async fn put_direct(&self, direct: &DirectUpload, keep: Duration) -> anyhow::Result<()> {
        let key = redis_keys::direct_upload(&self.prefix, &direct.upload_id);
        let keep_ms = keep.as_millis() as i64;
        let _: () = redis::pipe()
            .atomic()
            .hset_multiple(
                &key,
                &[
                    ("tenant", direct.tenant.to_string()),
                    ("multipart_id", direct.multipart_id.clone()),
                    ("size_bytes", direct.size_bytes.to_string()),
                    ("part_bytes", direct.part_bytes.to_string()),
                    ("expires_at", direct.expires_at.clone()),
                ],
            )
            .pexpire(&key, keep_ms)
            .zadd(
                redis_keys::expiries(&self.prefix),
                Self::direct_member(direct),
                Utc::now().timestamp_millis() + keep_ms,
            )
            .query_async(&mut self.conn.clone())
            .await
            .context("Failed to record a direct upload")?;
        Ok(())
    }

    /// The direct upload `id` of `tenant` not yet completed; another tenant's is `None`.
    pub async fn direct(&self, tenant: &Tenant, id: &UploadId) -> anyhow::Result<Option<DirectUpload>> {
        let map: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(redis_keys::direct_upload(&self.prefix, id))
            .await
            .context("Failed to read a direct upload")?;
        if map.get("tenant").map(String::as_str) != Some(tenant.as_str()) {
            return Ok(None);
        }
        let number = |name: &str| map.get(name).and_then(|s| s.parse::<u64>().ok()).filter(|n| *n > 0);
        let (Some(multipart_id), Some(size_bytes), Some(part_bytes)) =
            (map.get("multipart_id"), number("size_bytes"), number("part_bytes"))
        else {
            anyhow::bail!("The record of direct upload {id} is incomplete");
        };
        Ok(Some(DirectUpload {
            upload_id: *id,
            tenant: tenant.clone(),
            multipart_id: multipart_id.clone(),
            size_bytes,
            part_bytes,
            expires_at: map.get("expires_at").cloned().unwrap_or_default(),
        }))
    }

    /// Forgets a direct upload whose multipart upload the store completed (or that was
    /// refused for good): it is no longer there to abort.
    pub async fn forget_direct(&self, direct: &DirectUpload) -> anyhow::Result<()> {
        let _: () = redis::pipe()
            .atomic()
            .del(redis_keys::direct_upload(&self.prefix, &direct.upload_id))
            .zrem(redis_keys::expiries(&self.prefix), Self::direct_member(direct))
            .query_async(&mut self.conn.clone())
            .await
            .context("Failed to forget a direct upload")?;
        Ok(())
    }

    fn direct_member(direct: &DirectUpload) -> String {
        Expiring::Direct(direct.tenant.clone(), direct.upload_id, direct.multipart_id.clone()).member()
    }

    // ---- jobs ----

    /// Records a new queued job.
    pub async fn create_job(&self, job: &NewJob<'_>, cache_key: &str) -> anyhow::Result<()> {
        self.insert_job(job, JobState::Queued, &[(field::CACHE_KEY, cache_key)]).await
    }

    /// Records a job answered from the cache: already succeeded, serving `source`'s result.
    pub async fn create_cached_job(&self, job: &NewJob<'_>, source: &JobRecord) -> anyhow::Result<()> {
        let progress = &source.progress;
        let extra = [
            (field::CACHE_KEY, source.cache_key.as_str()),
            (field::CACHED_FROM, &source.result_owner().to_string()),
            (field::KIND, source.kind.map_or("", InputKind::as_str)),
            (field::SPLITS_TOTAL, &progress.splits_total.to_string()),
            (field::CHUNKS_TOTAL, &progress.chunks_total.to_string()),
            (field::ROWS_CACHED, &progress.rows.to_string()),
        ];
        // The source's objects hold this job's result: they stay as long as this job does.
        let source = Expiring::Job(source.tenant.clone(), source.result_owner());
        self.insert_job(job, JobState::Succeeded, &extra).await?;
        let mut conn = self.conn.clone();
        let expires = Utc::now().timestamp_millis() + self.retention_ms();
        let _: () = redis::cmd("ZADD")
            .arg(redis_keys::expiries(&self.prefix))
            .arg("GT")
            .arg(expires)
            .arg(source.member())
            .query_async(&mut conn)
            .await
            .context("Failed to keep a cached result")?;
        Ok(())
    }

    /// Writes a new job record in `state` (with the fields every job has, then `extra`),
    /// lists it under its tenant and counts its state, in one transaction. The record
    /// expires (and the sweep removes what the job leaves) the retention after a job born
    /// finished, twice the retention after one that is queued (its end sets the retention
    /// again); its upload is kept at least the retention from now.
    async fn insert_job(&self, job: &NewJob<'_>, state: JobState, extra: &[(&str, &str)]) -> anyhow::Result<()> {
        let (now, upload_id, spec) = (now(), job.upload.upload_id.to_string(), serde_json::to_string(job.spec)?);
        let (webhook_url, webhook_secret, webhook_key) = JobWebhook::fields(job.webhook);
        let mut fields = vec![
            (field::STATE, state.as_str()),
            (field::TENANT, job.upload.tenant.as_str()),
            (field::REQUEST_ID, job.request_id),
            (field::UPLOAD_ID, &upload_id),
            (field::SPEC, &spec),
            (field::WEBHOOK_URL, webhook_url),
            (field::WEBHOOK_SECRET, webhook_secret),
            (field::WEBHOOK_KEY, webhook_key),
            (field::CREATED_AT, &now),
            (field::UPDATED_AT, &now),
        ];
        if state.is_terminal() {
            fields.push((field::FINISHED_AT, &now));
        }
        fields.extend_from_slice(extra);
        let (now_ms, kept_ms) = (Utc::now().timestamp_millis(), self.retention_ms());
        let job_ttl_ms = if state.is_terminal() { kept_ms } else { self.open_ttl_secs() as i64 * 1000 };
        let expiring_job = Expiring::Job(job.upload.tenant.clone(), job.id);
        let expiring_upload = Expiring::Upload(job.upload.tenant.clone(), job.upload.upload_id);
        let expiries = redis_keys::expiries(&self.prefix);
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD").arg(&expiries).arg("GT").arg(now_ms + kept_ms).arg(expiring_upload.member()).ignore();
        // A cost table is kept like the input: its job reads it when it reduces.
        if let Some(spend) = job.spend_upload {
            let expiring_spend = Expiring::Upload(spend.tenant.clone(), spend.upload_id);
            pipe.cmd("ZADD").arg(&expiries).arg("GT").arg(now_ms + kept_ms).arg(expiring_spend.member()).ignore();
            pipe.pexpire(redis_keys::upload(&self.prefix, &spend.upload_id), kept_ms).ignore();
        }
        // A job born finished (a cache hit) announces its end at once.
        if job.webhook.is_some() && state.is_terminal() {
            pipe.zadd(redis_keys::webhooks_due(&self.prefix), job.id.to_string(), Utc::now().timestamp_millis())
                .ignore();
        }
        let _: () = pipe
            .atomic()
            .hset_multiple(self.job_key(&job.id), &fields)
            .pexpire(self.job_key(&job.id), job_ttl_ms)
            .zadd(&expiries, expiring_job.member(), now_ms + job_ttl_ms)
            .pexpire(redis_keys::upload(&self.prefix, &job.upload.upload_id), kept_ms)
            .hincr(redis_keys::stats_jobs(&self.prefix), state.as_str(), 1)
            .zadd(
                redis_keys::tenant_jobs(&self.prefix, &job.upload.tenant),
                job.id.to_string(),
                Utc::now().timestamp_millis(),
            )
            .query_async(&mut conn)
            .await
            .context("Failed to record the job")?;
        Ok(())
    }

    pub async fn job(&self, id: &JobId) -> anyhow::Result<Option<JobRecord>> {
        let mut conn = self.conn.clone();
        let (map, splits_done, chunks_done): (HashMap<String, String>, u64, u64) = redis::pipe()
            .hgetall(self.job_key(id))
            .scard(redis_keys::job_splits(&self.prefix, id))
            .scard(redis_keys::job_chunks(&self.prefix, id))
            .query_async(&mut conn)
            .await
            .context("Failed to read a job")?;
        if map.is_empty() {
            return Ok(None);
        }
        let text = |name: &str| map.get(name).filter(|v| !v.is_empty());
        let number = |name: &str| text(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let state = text(field::STATE).and_then(|s| JobState::parse(s)).context("A job record has no valid state")?;
        let rows = map
            .iter()
            .filter(|(k, _)| k.starts_with(field::ROWS_PREFIX))
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum();
        let spec: JobSpec =
            serde_json::from_str(text(field::SPEC).map_or("{}", |s| s)).context("A stored job spec is invalid")?;
        let cached = text(field::CACHED_FROM).and_then(|s| s.parse().ok());
        let splits_total = number(field::SPLITS_TOTAL);
        let chunks_total = number(field::CHUNKS_TOTAL);
        let tenant = text(field::TENANT).context("A job record has no tenant")?;
        Ok(Some(JobRecord {
            id: *id,
            tenant: tenant.parse().map_err(anyhow::Error::msg)?,
            request_id: text(field::REQUEST_ID).cloned(),
            state,
            stage: text(field::STAGE).and_then(|s| Stage::parse(s)),
            upload_id: text(field::UPLOAD_ID).and_then(|s| s.parse().ok()).context("A job record has no upload")?,
            spec,
            kind: text(field::KIND).and_then(|k| k.parse().ok()),
            options: text(field::OPTIONS)
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
            error: text(field::ERROR).and_then(|e| serde_json::from_str(e).ok()),
            cached_from: cached,
            created_at: text(field::CREATED_AT).cloned().unwrap_or_default(),
            updated_at: text(field::UPDATED_AT).cloned().unwrap_or_default(),
            finished_at: text(field::FINISHED_AT).cloned(),
            cache_key: text(field::CACHE_KEY).cloned().unwrap_or_default(),
            partitions: number(field::CHUNKS_TOTAL) as u32,
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
            .zrevrange(redis_keys::tenant_jobs(&self.prefix, tenant), 0, limit.saturating_sub(1) as isize)
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
        let transition = redis::Script::new(&TRANSITION);
        let mut script = transition.prepare_invoke();
        script
            .key(self.job_key(job))
            .key(redis_keys::stats_jobs(&self.prefix))
            .key(redis_keys::webhooks_due(&self.prefix));
        // What the end of the job starts the retention of (read first: the script's keys are named here).
        let (mut expiring_job, mut expiring_upload) = (String::new(), String::new());
        if state.is_terminal() {
            let (tenant, upload): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(self.job_key(job))
                .arg(field::TENANT)
                .arg(field::UPLOAD_ID)
                .query_async(&mut conn)
                .await
                .context("Failed to read a job")?;
            let (tenant, upload) = (tenant.and_then(|t| t.parse::<Tenant>().ok()), upload.and_then(|u| u.parse().ok()));
            script.key(redis_keys::expiries(&self.prefix));
            script.key(upload.map_or_else(|| self.job_key(job), |u| redis_keys::upload(&self.prefix, &u)));
            for key in redis_keys::job_keys(&self.prefix, job) {
                script.key(key);
            }
            if let Some(tenant) = tenant {
                expiring_job = Expiring::Job(tenant.clone(), *job).member();
                expiring_upload = upload.map(|u| Expiring::Upload(tenant, u).member()).unwrap_or_default();
            }
        }
        let changed: i64 = script
            .arg(state.as_str())
            .arg(stage.map_or("", Stage::as_str))
            .arg(now())
            .arg(if state.is_terminal() { "1" } else { "" })
            .arg(error)
            .arg(Utc::now().timestamp_millis())
            .arg(self.retention_ms())
            .arg(expiring_job)
            .arg(expiring_upload)
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
        let state: Option<String> = conn.hget(self.job_key(job), field::STATE).await.context("Failed to read a job")?;
        Ok(state.and_then(|s| JobState::parse(&s)))
    }

    /// Records the plan made by the first split task.
    pub async fn set_plan(&self, job: &JobId, splits: u32, partitions: u32) -> anyhow::Result<()> {
        let fields = [(field::SPLITS_TOTAL, splits.to_string()), (field::CHUNKS_TOTAL, partitions.to_string())];
        let mut pipe = redis::pipe();
        pipe.hset_multiple(self.job_key(job), &fields).ignore();
        let _: () = self.write_expiring(pipe, &self.job_key(job)).await.context("Failed to record the job plan")?;
        Ok(())
    }

    /// Records the kind of input the split found and the options resolved for it.
    pub async fn set_options(&self, job: &JobId, options: &Options) -> anyhow::Result<()> {
        let fields =
            [(field::KIND, options.kind.as_str().to_owned()), (field::OPTIONS, serde_json::to_string(options)?)];
        let mut pipe = redis::pipe();
        pipe.hset_multiple(self.job_key(job), &fields).ignore();
        let _: () =
            self.write_expiring(pipe, &self.job_key(job)).await.context("Failed to record the resolved options")?;
        Ok(())
    }

    /// Rows read by one split task so far (a re-run overwrites, never adds).
    pub async fn set_rows(&self, job: &JobId, split: u32, rows: u64) -> anyhow::Result<()> {
        let mut pipe = redis::pipe();
        pipe.hset(self.job_key(job), field::rows(split), rows).ignore();
        let _: () = self.write_expiring(pipe, &self.job_key(job)).await.context("Failed to record progress")?;
        Ok(())
    }

    /// Counts a start of `unit` on `worker`, crashes included, and says how the earlier
    /// attempts went: an attempt still open at the next start lost its worker.
    pub async fn start_unit(&self, job: &JobId, unit: &str, worker: &str) -> anyhow::Result<UnitStarts> {
        let mut conn = self.conn.clone();
        let (starts, since_first_ms, lost, lost_on, failed, last_error): (u32, u64, u32, String, u32, String) =
            redis::Script::new(&START)
                .key(redis_keys::job_starts(&self.prefix, job))
                .arg(unit)
                .arg(worker)
                .arg(self.open_ttl_secs())
                .invoke_async(&mut conn)
                .await
                .context("Failed to count a task start")?;
        let text = |s: String| Some(s).filter(|s| !s.is_empty());
        Ok(UnitStarts {
            starts,
            since_first: Duration::from_millis(since_first_ms),
            lost,
            lost_on: text(lost_on),
            failed,
            last_error: text(last_error),
        })
    }

    /// Ends the attempt at `unit` that [`Ledger::start_unit`] counted; `error` when it
    /// failed and will be retried (kept, cut to [`ERROR_TEXT_CHARS`], for the job's error
    /// should the unit be given up).
    pub async fn end_unit(&self, job: &JobId, unit: &str, error: Option<&str>) -> anyhow::Result<()> {
        use redis_keys::start_field::{ERROR, FAILED, OPEN};
        let key = redis_keys::job_starts(&self.prefix, job);
        let mut pipe = redis::pipe();
        pipe.hdel(&key, format!("{unit}{OPEN}")).ignore();
        if let Some(error) = error {
            let cut: String = error.chars().take(ERROR_TEXT_CHARS).collect();
            pipe.hincr(&key, format!("{unit}{FAILED}"), 1).ignore();
            pipe.hset(&key, format!("{unit}{ERROR}"), cut).ignore();
        }
        let _: () = self.write_expiring(pipe, &key).await.context("Failed to record the end of a task")?;
        Ok(())
    }

    /// Appends to the job's timeline (which worker started or ended which unit, when) and
    /// counts the entry in its stage's span.
    pub async fn log_timeline(&self, job: &JobId, event: &str, unit: &str, worker: &str) -> anyhow::Result<()> {
        let entry = TimelineEvent {
            at_ms: Utc::now().timestamp_millis(),
            event: event.to_owned(),
            unit: unit.to_owned(),
            worker: worker.to_owned(),
        };
        let stage = unit.split(':').next().unwrap_or(unit);
        let mut conn = self.conn.clone();
        let _: () = redis::Script::new(&LOG_TIMELINE)
            .key(redis_keys::timeline(&self.prefix, job))
            .key(redis_keys::timeline_stages(&self.prefix, job))
            .arg(serde_json::to_string(&entry)?)
            .arg(TIMELINE_LEN)
            .arg(stage)
            .arg(event)
            .arg(entry.at_ms)
            .arg(self.open_ttl_secs())
            .invoke_async(&mut conn)
            .await
            .context("Failed to write the job timeline")?;
        Ok(())
    }

    pub async fn timeline(&self, job: &JobId) -> anyhow::Result<Timeline> {
        use redis_keys::timeline_field::{ENDED, EVENTS, FIRST_START, LAST_END, STARTED};
        let mut conn = self.conn.clone();
        let (entries, counts): (Vec<String>, HashMap<String, i64>) = redis::pipe()
            .atomic()
            .lrange(redis_keys::timeline(&self.prefix, job), 0, -1)
            .hgetall(redis_keys::timeline_stages(&self.prefix, job))
            .query_async(&mut conn)
            .await
            .context("Failed to read a timeline")?;
        let mut stages: BTreeMap<String, StageSpan> = BTreeMap::new();
        for (field, value) in &counts {
            let Some((stage, suffix)) = field.find('@').map(|at| field.split_at(at)) else { continue };
            let span = stages.entry(stage.to_owned()).or_default();
            match suffix {
                STARTED => span.units_started = *value as u64,
                ENDED => span.units_ended = *value as u64,
                FIRST_START => span.first_start_ms = Some(*value),
                LAST_END => span.last_end_ms = Some(*value),
                _ => {}
            }
        }
        Ok(Timeline {
            job_id: *job,
            events: entries.iter().filter_map(|e| serde_json::from_str(e).ok()).collect(),
            events_total: counts.get(EVENTS).map_or(0, |&n| n as u64),
            stages,
        })
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
            Stage::Splitting => DoneSet::Splits,
            Stage::Attributing => DoneSet::Chunks,
            Stage::Reducing => DoneSet::Reduced,
        };
        let mut conn = self.conn.clone();
        let complete: i64 = redis::Script::new(FAN_IN)
            .key(redis_keys::job_done(&self.prefix, job, set))
            .key(redis_keys::job_next(&self.prefix, job, set))
            .arg(unit)
            .arg(total)
            .arg(owner)
            .arg(self.open_ttl_secs())
            .invoke_async(&mut conn)
            .await
            .context("Failed to record a finished unit")?;
        Ok(if complete == 1 { FanIn::Complete } else { FanIn::Waiting })
    }

    // ---- service-wide figures (health and metrics) ----

    /// Jobs per state over the whole service.
    pub async fn job_counts(&self) -> anyhow::Result<HashMap<String, i64>> {
        let mut conn = self.conn.clone();
        conn.hgetall(redis_keys::stats_jobs(&self.prefix)).await.context("Failed to read the job counts")
    }

    /// Records that worker process `name` is alive now.
    pub async fn worker_beat(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.zadd(redis_keys::workers(&self.prefix), name, Utc::now().timestamp_millis()).await?;
        Ok(())
    }

    pub async fn worker_gone(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.zrem(redis_keys::workers(&self.prefix), name).await?;
        Ok(())
    }

    /// Worker processes that beat within `window` (older entries are dropped).
    pub async fn live_workers(&self, window: Duration) -> anyhow::Result<u64> {
        let since = Utc::now().timestamp_millis() - window.as_millis() as i64;
        let mut conn = self.conn.clone();
        let (_, live): ((), u64) = redis::pipe()
            .zrembyscore(redis_keys::workers(&self.prefix), "-inf", format!("({since}"))
            .zcount(redis_keys::workers(&self.prefix), since, "+inf")
            .query_async(&mut conn)
            .await
            .context("Failed to count live workers")?;
        Ok(live)
    }

    // ---- result cache and idempotency ----

    /// Keeps a finished result in Redis for the cache TTL, and the cache entry pointing at its job.
    pub async fn cache_result(&self, job: &JobId, cache_key: &str, result_json: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let ttl = self.within_retention(self.cache_ttl);
        let _: () = redis::pipe()
            .set_ex(redis_keys::result(&self.prefix, job), result_json, ttl)
            .set_ex(redis_keys::cache(&self.prefix, cache_key), job.to_string(), ttl)
            .query_async(&mut conn)
            .await
            .context("Failed to cache the result")?;
        Ok(())
    }

    pub async fn cached_result(&self, job: &JobId) -> anyhow::Result<Option<String>> {
        let mut conn = self.conn.clone();
        conn.get(redis_keys::result(&self.prefix, job)).await.context("Failed to read the result cache")
    }

    /// The succeeded job that computed the same input with the same spec within the TTL.
    pub async fn cached_job(&self, cache_key: &str) -> anyhow::Result<Option<JobRecord>> {
        let mut conn = self.conn.clone();
        let id: Option<String> =
            conn.get(redis_keys::cache(&self.prefix, cache_key)).await.context("Failed to read the result cache")?;
        let Some(id) = id.and_then(|id| id.parse::<JobId>().ok()) else { return Ok(None) };
        Ok(self.job(&id).await?.filter(|job| job.state == JobState::Succeeded))
    }

    /// Claims `tenant`'s idempotency key for `job` for the idempotency lease only; returns the
    /// job that already holds it, if any. A claim whose job is never recorded (its process
    /// died) expires with the lease; [`Ledger::keep_idempotency_key`] keeps it for 24 h.
    pub async fn claim_idempotency_key(
        &self,
        tenant: &Tenant,
        key: &str,
        job: &JobId,
    ) -> anyhow::Result<Option<JobId>> {
        let mut conn = self.conn.clone();
        let redis_key = redis_keys::idempotency(&self.prefix, tenant, key);
        let claimed: bool = redis::cmd("SET")
            .arg(&redis_key)
            .arg(job.to_string())
            .arg("NX")
            .arg("EX")
            .arg(self.idempotency_lease.as_secs().max(1))
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

    /// Keeps `tenant`'s idempotency key for 24 h once `job`, its holder, is recorded; `false`
    /// when `job` no longer holds it (its lease ran out first and another request took it).
    pub async fn keep_idempotency_key(&self, tenant: &Tenant, key: &str, job: &JobId) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let kept: i64 = redis::Script::new(EXTEND)
            .key(redis_keys::idempotency(&self.prefix, tenant, key))
            .arg(job.to_string())
            .arg(self.within_retention(IDEMPOTENCY_TTL))
            .invoke_async(&mut conn)
            .await
            .context("Failed to keep an idempotency key")?;
        Ok(kept == 1)
    }

    /// Frees an idempotency key that `job` holds (its submission failed, so a retry must start afresh).
    pub async fn release_idempotency_key(&self, tenant: &Tenant, key: &str, job: &JobId) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(RELEASE)
            .key(redis_keys::idempotency(&self.prefix, tenant, key))
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
            .key(redis_keys::job_owner(&self.prefix, job, unit))
            .arg(owner)
            .arg(self.within_retention(IDEMPOTENCY_TTL))
            .invoke_async(&mut conn)
            .await
            .context("Failed to claim a unit of work")?;
        Ok(claimed == 1)
    }
}
