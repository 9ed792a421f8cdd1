//! The webhook deliveries in Redis: the due set with leases, each job's delivery fields
//! (beside the job record, in the job hash), the attempt records and redelivery.
//!
//! When a job with a webhook ends, the ledger's transition script puts the job id into
//! the due set (score = when the next attempt is due) in the same atomic step, so no end
//! is ever missed. Workers claim due entries with a lease (the score moves past the
//! attempt's timeout), so a worker that dies mid-delivery only delays the event until the
//! lease ends, when another worker sends it again with the same `webhook-id`.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::signing::Secret;
use crate::access::KeyStore;
use crate::ids::{JobId, KeyId, now};
use crate::redis_keys::{self, job_field as field};

/// Attempt records kept per job.
const MAX_ATTEMPTS_KEPT: isize = 100;

/// One recorded attempt, as `GET /v1/jobs/{id}/webhooks` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub attempt: u32,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// A job's webhook delivery as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub url: String,
    /// `pending`, `delivered`, `failed` (schedule spent or refused address) or `gone` (410).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `webhook-id` every attempt of this event carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    pub attempts: Vec<Attempt>,
}

/// What a worker needs to attempt a delivery.
#[derive(Debug, Clone)]
pub struct Pending {
    pub job: JobId,
    pub url: String,
    /// Every secret that signs now (two while a key's rotated secret overlaps).
    pub secrets: Vec<Secret>,
    pub event: String,
    /// The body, fixed at the first attempt so every retry is byte-identical.
    pub body: Option<String>,
    pub webhook_id: String,
    pub attempts: u32,
    /// Bumped by each redelivery request: an attempt of an older generation records nothing.
    pub generation: u64,
}

/// Records one attempt, unless the delivery moved on meanwhile (a redelivery was asked for:
/// the generation differs; or another worker recorded this attempt first after a lease
/// ran out: the attempt count differs). KEYS: job hash, attempts list, due set. ARGV:
/// generation, attempts before this one, attempt JSON, attempt number, state, due ms ('' =
/// no more attempts), job id, attempts kept. Nothing is written for a job that expired, and
/// the attempts expire with the job's record.
static RECORD: LazyLock<String> = LazyLock::new(|| {
    use field::{WEBHOOK_ATTEMPTS, WEBHOOK_GENERATION, WEBHOOK_STATE};
    format!(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if (redis.call('HGET', KEYS[1], '{WEBHOOK_GENERATION}') or '0') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], '{WEBHOOK_ATTEMPTS}') or '0') ~= ARGV[2] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('HSET', KEYS[1], '{WEBHOOK_ATTEMPTS}', ARGV[4], '{WEBHOOK_STATE}', ARGV[5])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7]) else redis.call('ZREM', KEYS[3], ARGV[7]) end
return 1
"#
    )
});

/// Moves up to ARGV[3] due entries of KEYS[1] (score <= ARGV[1]) to ARGV[2] (the lease end).
const CLAIM_DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"#;

/// The deliveries in Redis: the due set and each job's webhook fields.
#[derive(Clone)]
pub struct Deliveries {
    conn: ConnectionManager,
    prefix: String,
    keys: KeyStore,
}

impl fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliveries").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Deliveries {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Deliveries {
        Deliveries { keys: KeyStore::new(conn.clone(), prefix), conn, prefix: prefix.to_owned() }
    }

    /// The sorted set of due deliveries (the ledger's transition script adds to it).
    fn due_key(&self) -> String {
        redis_keys::webhooks_due(&self.prefix)
    }

    fn job_key(&self, job: &JobId) -> String {
        redis_keys::job(&self.prefix, job)
    }

    fn attempts_key(&self, job: &JobId) -> String {
        redis_keys::webhook_attempts(&self.prefix, job)
    }

    /// Claims up to `max` due deliveries for `lease`.
    pub async fn claim_due(&self, lease: Duration, max: usize) -> anyhow::Result<Vec<JobId>> {
        let now = Utc::now().timestamp_millis();
        let mut conn = self.conn.clone();
        let due: Vec<String> = redis::Script::new(CLAIM_DUE)
            .key(self.due_key())
            .arg(now)
            .arg(now + lease.as_millis() as i64)
            .arg(max)
            .invoke_async(&mut conn)
            .await
            .context("Failed to claim webhook deliveries")?;
        Ok(due.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// The delivery of `job`, if it has a webhook that is due for an event.
    pub async fn pending(&self, job: &JobId) -> anyhow::Result<Option<Pending>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = conn.hgetall(self.job_key(job)).await?;
        let text = |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned();
        let (Some(url), Some(state)) = (text(field::WEBHOOK_URL), text(field::STATE)) else { return Ok(None) };
        // A job's own secret, or the secrets of the key whose default webhook it uses.
        let own_key = text(field::WEBHOOK_KEY).and_then(|k| k.parse::<KeyId>().ok());
        let secrets = match (text(field::WEBHOOK_SECRET), own_key) {
            (Some(secret), _) => vec![secret],
            (None, Some(key)) => self.keys.webhook_secrets(&key).await?,
            (None, None) => Vec::new(),
        };
        let secrets: Vec<Secret> = secrets.iter().filter_map(|s| Secret::parse(s).ok()).collect();
        if secrets.is_empty() {
            return Ok(None);
        }
        let Some(event) = event_of(&state) else { return Ok(None) };
        Ok(Some(Pending {
            job: *job,
            url,
            secrets,
            event: event.to_owned(),
            body: text(field::WEBHOOK_BODY),
            webhook_id: webhook_id(job),
            attempts: text(field::WEBHOOK_ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
            generation: text(field::WEBHOOK_GENERATION).and_then(|g| g.parse().ok()).unwrap_or(0),
        }))
    }

    /// Fixes the body of the event before its first attempt.
    pub async fn set_body(&self, job: &JobId, body: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.hset(self.job_key(job), field::WEBHOOK_BODY, body).await?;
        Ok(())
    }

    /// Records an attempt of `pending`; schedules the next one at `next` or ends the
    /// delivery in the given final state. `false` when the delivery moved on meanwhile (see
    /// [`RECORD`]) and nothing was written.
    pub async fn record(
        &self,
        pending: &Pending,
        attempt: &Attempt,
        next: Result<Duration, &str>,
    ) -> anyhow::Result<bool> {
        let (state, due) = match next {
            Ok(delay) => ("pending", (Utc::now().timestamp_millis() + delay.as_millis() as i64).to_string()),
            Err(final_state) => (final_state, String::new()),
        };
        let job = &pending.job;
        let mut conn = self.conn.clone();
        let recorded: i64 = redis::Script::new(&RECORD)
            .key(self.job_key(job))
            .key(self.attempts_key(job))
            .key(self.due_key())
            .arg(pending.generation)
            .arg(pending.attempts)
            .arg(serde_json::to_string(attempt)?)
            .arg(attempt.attempt)
            .arg(state)
            .arg(due)
            .arg(job.to_string())
            .arg(MAX_ATTEMPTS_KEPT)
            .invoke_async(&mut conn)
            .await
            .context("Failed to record a webhook attempt")?;
        Ok(recorded == 1)
    }

    /// Drops a due entry that has nothing to deliver.
    pub async fn drop_due(&self, job: &JobId) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.zrem(self.due_key(), job.to_string()).await?;
        Ok(())
    }

    /// What the job's owner sees.
    pub async fn delivery(&self, job: &JobId) -> anyhow::Result<Option<Delivery>> {
        let mut conn = self.conn.clone();
        let (map, attempts): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.job_key(job))
            .lrange(self.attempts_key(job), 0, -1)
            .query_async(&mut conn)
            .await?;
        let text = |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned();
        let Some(url) = text(field::WEBHOOK_URL) else { return Ok(None) };
        let event = text(field::STATE).as_deref().and_then(event_of);
        Ok(Some(Delivery {
            url,
            state: text(field::WEBHOOK_STATE).unwrap_or_else(|| "waiting for the job to end".to_owned()),
            event: event.map(str::to_owned),
            webhook_id: event.map(|_| webhook_id(job)),
            attempts: attempts.iter().filter_map(|a| serde_json::from_str(a).ok()).collect(),
        }))
    }

    /// Queues the event again now (the owner asked for a redelivery). `false` when the job has not ended.
    pub async fn redeliver(&self, job: &JobId) -> anyhow::Result<bool> {
        if self.pending(job).await?.is_none() {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .hset(self.job_key(job), field::WEBHOOK_ATTEMPTS, 0)
            .hset(self.job_key(job), field::WEBHOOK_STATE, "pending")
            .hincr(self.job_key(job), field::WEBHOOK_GENERATION, 1)
            .zadd(self.due_key(), job.to_string(), Utc::now().timestamp_millis())
            .query_async(&mut conn)
            .await?;
        Ok(true)
    }
}

/// The event a job in `state` announces, if it has ended.
fn event_of(state: &str) -> Option<&'static str> {
    match state {
        "succeeded" => Some("job.succeeded"),
        "failed" => Some("job.failed"),
        "cancelled" => Some("job.cancelled"),
        _ => None,
    }
}

/// The `webhook-id` of a job's event, the same on every attempt.
fn webhook_id(job: &JobId) -> String {
    format!("msg_{job}")
}

/// An attempt record stamped now.
pub fn attempt_now(attempt: u32, status: Option<u16>, latency: Duration, error: Option<String>) -> Attempt {
    Attempt { attempt, at: now(), status, latency_ms: latency.as_secs_f64() * 1e3, error, next_attempt_at: None }
}
