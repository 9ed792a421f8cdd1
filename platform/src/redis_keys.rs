//! The Redis schema in one place: every key the service writes or reads, and every field
//! of the job hash (the one hash that two modules share: the ledger writes the record,
//! the webhook deliveries keep their state beside it). Like [`crate::storage::keys`] for
//! objects, no other module formats a Redis key; this module imports only the ids.
//!
//! Every key starts with the configured prefix `p` (`MTA_QUEUE_PREFIX`). The strings are
//! part of the stored data: changing one orphans what is already in Redis.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `p:job:{id}` | hash | the job record ([`job_field`]) |
//! | `p:job:{id}:splits`, `…:chunks`, `…:reduced` | set | units of a stage that are done |
//! | `p:job:{id}:next:{set}` | string | the task that owns the step after a stage |
//! | `p:job:{id}:owner:{unit}` | string | the task that runs a unit |
//! | `p:job:{id}:starts` | hash | starts per unit |
//! | `p:job:{id}:timeline` | list | task starts and ends |
//! | `p:job:{id}:webhook:attempts` | list | webhook attempt records |
//! | `p:webhooks:due` | sorted set | job ids whose webhook event is due, by time |
//! | `p:upload:{id}` | hash | an upload record |
//! | `p:direct:{id}` | hash | a direct upload the client is still sending to the store |
//! | `p:tenant:{t}:jobs` | sorted set | a tenant's job ids, by creation time |
//! | `p:stats:jobs` | hash | jobs per state |
//! | `p:workers` | sorted set | worker processes, by last beat |
//! | `p:expiries` | sorted set | jobs and uploads ([`Expiring`]) by when the sweep deletes what they left |
//! | `p:sweep:lock` | string | the worker process running the sweep |
//! | `p:result:{id}` | string | a cached result |
//! | `p:cache:{cache_key}` | string | the job whose result answers a cache key |
//! | `p:idem:{t}:{key}` | string | the job holding an idempotency key (a lease until the job is recorded, then 24 h) |
//! | `p:apikey:{sha256}` | string | the key id of an API key's hash |
//! | `p:key:{id}` | hash | an API key's record |
//! | `p:keys` | sorted set | every key id, by creation time |
//! | `p:rate:{key id}`, `p:rate:global`, `p:rate:authfail:{address}` | string | GCRA theoretical arrival times |
//! | `p:quota:{t}:upload-bytes:{day}` | string | bytes a tenant uploaded or reserved for uploads in progress on a UTC day |
//! | `p:audit:{t}`, `p:audit:-` | stream | the audit log of a tenant, of unknown callers |
//! | `p:queue:{stage}` | (apalis) | a stage's task queue; apalis-redis names the keys under it (the ones we trim: [`queue_done`]…) |
//! | `p:queue-wakeups` | pub/sub channel | announcements of new tasks |

use std::fmt;

use chrono::NaiveDate;

use crate::ids::{JobId, KeyId, Tenant, UploadId};

// ---- a job ----

/// The job record: a hash of [`job_field`]s.
pub fn job(prefix: &str, job: &JobId) -> String {
    format!("{prefix}:job:{job}")
}

/// A set of a job's finished units, one per stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneSet {
    Splits,
    Chunks,
    Reduced,
}

impl fmt::Display for DoneSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DoneSet::Splits => "splits",
            DoneSet::Chunks => "chunks",
            DoneSet::Reduced => "reduced",
        })
    }
}

/// The units of one stage of `job` that are done (a set).
pub fn job_done(prefix: &str, job: &JobId, set: DoneSet) -> String {
    format!("{prefix}:job:{job}:{set}")
}

/// The split units of `job` that are done.
pub fn job_splits(prefix: &str, job: &JobId) -> String {
    job_done(prefix, job, DoneSet::Splits)
}

/// The attribute units (chunks) of `job` that are done.
pub fn job_chunks(prefix: &str, job: &JobId) -> String {
    job_done(prefix, job, DoneSet::Chunks)
}

/// The task that owns the step after the stage of `set`.
pub fn job_next(prefix: &str, job: &JobId, set: DoneSet) -> String {
    format!("{prefix}:job:{job}:next:{set}")
}

/// The one task that runs `unit` (`split:plan`, `attribute:7`) of `job`.
pub fn job_owner(prefix: &str, job: &JobId, unit: &str) -> String {
    format!("{prefix}:job:{job}:owner:{unit}")
}

/// Starts per unit of `job` (a hash): field `{unit}` counts them, and the fields
/// `{unit}{suffix}` of [`start_field`] say how the earlier attempts went.
pub fn job_starts(prefix: &str, job: &JobId) -> String {
    format!("{prefix}:job:{job}:starts")
}

/// Suffixes of the fields kept per unit in [`job_starts`], after the unit's name.
pub mod start_field {
    /// When the unit was first started (ms on Redis' clock).
    pub const FIRST: &str = "@first";
    /// The worker running the current attempt; still set at the next start when that
    /// worker went away before the attempt ended.
    pub const OPEN: &str = "@open";
    /// Attempts whose worker went away, and the last such worker.
    pub const LOST: &str = "@lost";
    pub const LOST_ON: &str = "@lost_on";
    /// Attempts that ended with an error to retry, and the last such error.
    pub const FAILED: &str = "@failed";
    pub const ERROR: &str = "@error";
}

/// The timeline of `job` (a list of JSON entries).
pub fn timeline(prefix: &str, job: &JobId) -> String {
    format!("{prefix}:job:{job}:timeline")
}

/// What the timeline of `job` has counted since its first entry, kept however many entries
/// the list drops (a hash of [`timeline_field`]s).
pub fn timeline_stages(prefix: &str, job: &JobId) -> String {
    format!("{prefix}:job:{job}:timeline:stages")
}

/// The fields of [`timeline_stages`]: entries logged, and per stage (a unit's name up to
/// its first `:`) a suffix after the stage's name.
pub mod timeline_field {
    /// Entries ever appended to the timeline.
    pub const EVENTS: &str = "events";
    /// Starts and ends of the stage's units.
    pub const STARTED: &str = "@started";
    pub const ENDED: &str = "@ended";
    /// The earliest start and the latest end (ms since the epoch, the workers' clocks).
    pub const FIRST_START: &str = "@first_start";
    pub const LAST_END: &str = "@last_end";
}

/// The webhook attempt records of `job` (a list of JSON entries).
pub fn webhook_attempts(prefix: &str, job: &JobId) -> String {
    format!("{prefix}:job:{job}:webhook:attempts")
}

/// Every key of `job` named after it whose unit is fixed (all but [`job_owner`], which
/// expires by itself): what the end of a job gives a time to live, and the sweep deletes.
pub fn job_keys(prefix: &str, job: &JobId) -> Vec<String> {
    let sets = [DoneSet::Splits, DoneSet::Chunks, DoneSet::Reduced];
    let mut keys = vec![
        self::job(prefix, job),
        job_starts(prefix, job),
        timeline(prefix, job),
        timeline_stages(prefix, job),
        webhook_attempts(prefix, job),
    ];
    keys.extend(sets.iter().map(|set| job_done(prefix, job, *set)));
    keys.extend(sets.iter().map(|set| job_next(prefix, job, *set)));
    keys
}

/// The sorted set of due webhook deliveries: job ids scored by when the next attempt is due.
pub fn webhooks_due(prefix: &str) -> String {
    format!("{prefix}:webhooks:due")
}

/// The fields of the job hash ([`job`]).
pub mod job_field {
    pub const STATE: &str = "state";
    pub const STAGE: &str = "stage";
    pub const TENANT: &str = "tenant";
    pub const REQUEST_ID: &str = "request_id";
    pub const UPLOAD_ID: &str = "upload_id";
    pub const SPEC: &str = "spec";
    pub const KIND: &str = "kind";
    /// The spec's options resolved for the input's kind (JSON), stored by the first split.
    pub const OPTIONS: &str = "options";
    pub const ERROR: &str = "error";
    pub const CACHE_KEY: &str = "cache_key";
    pub const CACHED_FROM: &str = "cached_from";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const FINISHED_AT: &str = "finished_at";
    pub const SPLITS_TOTAL: &str = "splits_total";
    pub const CHUNKS_TOTAL: &str = "chunks_total";
    /// Rows read: one field per split task ([`rows`]), summed when read.
    pub const ROWS_PREFIX: &str = "rows:";
    /// The rows of a job answered from the cache (its source's count).
    pub const ROWS_CACHED: &str = "rows:cached";
    pub const WEBHOOK_URL: &str = "webhook_url";
    pub const WEBHOOK_SECRET: &str = "webhook_secret";
    pub const WEBHOOK_KEY: &str = "webhook_key";
    /// `pending`, `delivered`, `failed` or `gone`; absent until the job ends.
    pub const WEBHOOK_STATE: &str = "webhook_state";
    pub const WEBHOOK_ATTEMPTS: &str = "webhook_attempts";
    pub const WEBHOOK_GENERATION: &str = "webhook_generation";
    pub const WEBHOOK_BODY: &str = "webhook_body";

    /// The rows read by split task `split`.
    pub fn rows(split: u32) -> String {
        format!("{ROWS_PREFIX}{split}")
    }
}

// ---- uploads, tenants, the service ----

/// An upload record (a hash).
pub fn upload(prefix: &str, upload: &UploadId) -> String {
    format!("{prefix}:upload:{upload}")
}

/// A direct upload not yet completed (a hash: tenant, the store's multipart id, sizes).
pub fn direct_upload(prefix: &str, upload: &UploadId) -> String {
    format!("{prefix}:direct:{upload}")
}

/// `tenant`'s job ids by creation time (a sorted set).
pub fn tenant_jobs(prefix: &str, tenant: &Tenant) -> String {
    format!("{prefix}:tenant:{tenant}:jobs")
}

/// Jobs per state over the whole service (a hash; the transition script keeps it).
pub fn stats_jobs(prefix: &str) -> String {
    format!("{prefix}:stats:jobs")
}

/// Worker processes by their last beat (a sorted set).
pub fn workers(prefix: &str) -> String {
    format!("{prefix}:workers")
}

/// What the retention sweep deletes, by when: members of [`expiries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiring {
    /// The job's objects, its index entries and any of its keys still there.
    Job(Tenant, JobId),
    /// The upload's file and record.
    Upload(Tenant, UploadId),
    /// A direct upload whose URLs expired: its multipart upload (the store's id last) is
    /// aborted, so parts sent but never completed do not stay in the store.
    Direct(Tenant, UploadId, String),
}

impl Expiring {
    /// The member of [`expiries`]: `job:{tenant}:{id}` or `upload:{tenant}:{id}`.
    pub fn member(&self) -> String {
        match self {
            Expiring::Job(tenant, job) => format!("job:{tenant}:{job}"),
            Expiring::Upload(tenant, upload) => format!("upload:{tenant}:{upload}"),
            Expiring::Direct(tenant, upload, multipart) => format!("direct:{tenant}:{upload}:{multipart}"),
        }
    }

    pub fn parse(member: &str) -> Option<Expiring> {
        let mut parts = member.splitn(3, ':');
        let (kind, tenant, id) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?);
        match kind {
            "job" => Some(Expiring::Job(tenant, id.parse().ok()?)),
            "upload" => Some(Expiring::Upload(tenant, id.parse().ok()?)),
            "direct" => {
                let (upload, multipart) = id.split_once(':')?;
                Some(Expiring::Direct(tenant, upload.parse().ok()?, multipart.to_owned()))
            }
            _ => None,
        }
    }
}

/// Jobs and uploads scored by when (ms) the sweep deletes what they left behind.
pub fn expiries(prefix: &str) -> String {
    format!("{prefix}:expiries")
}

/// Held (with a time to live) by the one worker process that runs the retention sweep.
pub fn sweep_lock(prefix: &str) -> String {
    format!("{prefix}:sweep:lock")
}

// ---- result cache and idempotency ----

/// The cached result of `job`.
pub fn result(prefix: &str, job: &JobId) -> String {
    format!("{prefix}:result:{job}")
}

/// The job whose result answers `cache_key` (a hash of the input and the spec).
pub fn cache(prefix: &str, cache_key: &str) -> String {
    format!("{prefix}:cache:{cache_key}")
}

/// The job holding `tenant`'s idempotency key `key`.
pub fn idempotency(prefix: &str, tenant: &Tenant, key: &str) -> String {
    format!("{prefix}:idem:{tenant}:{key}")
}

// ---- API keys and quotas ----

/// The lookup every request makes: an API key's SHA-256 → its key id.
pub fn api_key_lookup(prefix: &str, hash: &str) -> String {
    format!("{prefix}:apikey:{hash}")
}

/// An API key's record (a hash).
pub fn api_key(prefix: &str, id: &KeyId) -> String {
    format!("{prefix}:key:{id}")
}

/// Every key id by creation time (a sorted set).
pub fn api_keys(prefix: &str) -> String {
    format!("{prefix}:keys")
}

/// The request rate of key `id` (a GCRA arrival time).
pub fn rate(prefix: &str, id: &KeyId) -> String {
    format!("{prefix}:rate:{id}")
}

/// Refused authentications from one client address (`client` is its text form).
pub fn rate_auth_failures(prefix: &str, client: &str) -> String {
    format!("{prefix}:rate:authfail:{client}")
}

/// The request rate of every key of `tenant` together.
pub fn rate_tenant(prefix: &str, tenant: &Tenant) -> String {
    format!("{prefix}:rate:tenant:{tenant}")
}

/// The ids of `tenant`'s keys that are not revoked (a set), counted against the key limit.
pub fn tenant_keys(prefix: &str, tenant: &Tenant) -> String {
    format!("{prefix}:tenant:{tenant}:keys")
}

/// The service-wide request rate.
pub fn rate_global(prefix: &str) -> String {
    format!("{prefix}:rate:global")
}

/// The bytes `tenant` uploaded on the UTC day `day`.
pub fn upload_bytes(prefix: &str, tenant: &Tenant, day: NaiveDate) -> String {
    format!("{prefix}:quota:{tenant}:upload-bytes:{}", day.format("%Y-%m-%d"))
}

// ---- audit ----

/// The audit stream of `tenant`, or of refusals whose tenant is unknown (`None`).
pub fn audit(prefix: &str, tenant: Option<&Tenant>) -> String {
    format!("{prefix}:audit:{}", tenant.map_or("-", Tenant::as_str))
}

// ---- queues ----

/// The apalis namespace of a stage's queue (`split`, `attribute`, `reduce`).
pub fn queue(prefix: &str, stage: &str) -> String {
    format!("{prefix}:queue:{stage}")
}

/// The tasks waiting in `queue` (a list apalis-redis keeps; we only count it).
pub fn queue_active(queue: &str) -> String {
    format!("{queue}:active")
}

/// The tasks of `queue` scheduled for later, retries among them (a sorted set apalis-redis keeps).
pub fn queue_scheduled(queue: &str) -> String {
    format!("{queue}:scheduled")
}

/// The finished tasks of `queue` (a set apalis-redis keeps and never trims; the sweep does).
pub fn queue_done(queue: &str) -> String {
    format!("{queue}:done")
}

/// The tasks of `queue` that failed for good (a set apalis-redis keeps; the sweep trims it).
pub fn queue_dead(queue: &str) -> String {
    format!("{queue}:dead")
}

/// The payload of every task of `queue` by task id (a hash apalis-redis keeps).
pub fn queue_data(queue: &str) -> String {
    format!("{queue}:data")
}

/// The prefix of the per-task metadata hashes of `queue` (`{queue}:meta:{task id}`, and
/// `{queue}:meta:result`), as apalis-redis names them.
pub fn queue_meta(queue: &str) -> String {
    format!("{queue}:meta")
}

/// The metadata hash apalis-redis writes for each consumer `worker` of `queue` it registers.
pub fn queue_worker_metadata(queue: &str, worker: &str) -> String {
    format!("{queue}:workers:metadata:{worker}")
}

/// The pub/sub channel on which producers announce new tasks; each message is a queue name.
pub fn queue_wakeups(prefix: &str) -> String {
    format!("{prefix}:queue-wakeups")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings are stored data: this pins each one to the bytes it had before it was named here.
    #[test]
    fn keys_keep_their_bytes() {
        let (p, j) = ("mta", "0f8fad5b-d9cb-469f-a165-70867728950e".parse::<JobId>().unwrap());
        let u = "7c9e6679-7425-40de-944b-e07fc1f90ae7".parse::<UploadId>().unwrap();
        let (t, k) = ("acme".parse::<Tenant>().unwrap(), "key_0123456789abcdef".parse::<KeyId>().unwrap());
        let day = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        for (key, expected) in [
            (job(p, &j), format!("mta:job:{j}")),
            (job_splits(p, &j), format!("mta:job:{j}:splits")),
            (job_chunks(p, &j), format!("mta:job:{j}:chunks")),
            (job_done(p, &j, DoneSet::Reduced), format!("mta:job:{j}:reduced")),
            (job_next(p, &j, DoneSet::Chunks), format!("mta:job:{j}:next:chunks")),
            (job_owner(p, &j, "attribute:7"), format!("mta:job:{j}:owner:attribute:7")),
            (job_starts(p, &j), format!("mta:job:{j}:starts")),
            (rate_tenant(p, &t), "mta:rate:tenant:acme".to_owned()),
            (tenant_keys(p, &t), "mta:tenant:acme:keys".to_owned()),
            (timeline(p, &j), format!("mta:job:{j}:timeline")),
            (timeline_stages(p, &j), format!("mta:job:{j}:timeline:stages")),
            (webhook_attempts(p, &j), format!("mta:job:{j}:webhook:attempts")),
            (webhooks_due(p), "mta:webhooks:due".to_owned()),
            (upload(p, &u), format!("mta:upload:{u}")),
            (tenant_jobs(p, &t), "mta:tenant:acme:jobs".to_owned()),
            (stats_jobs(p), "mta:stats:jobs".to_owned()),
            (workers(p), "mta:workers".to_owned()),
            (result(p, &j), format!("mta:result:{j}")),
            (cache(p, "abc"), "mta:cache:abc".to_owned()),
            (idempotency(p, &t, "k-1"), "mta:idem:acme:k-1".to_owned()),
            (api_key_lookup(p, "ff00"), "mta:apikey:ff00".to_owned()),
            (api_key(p, &k), "mta:key:key_0123456789abcdef".to_owned()),
            (api_keys(p), "mta:keys".to_owned()),
            (rate(p, &k), "mta:rate:key_0123456789abcdef".to_owned()),
            (rate_global(p), "mta:rate:global".to_owned()),
            (upload_bytes(p, &t, day), "mta:quota:acme:upload-bytes:2026-01-05".to_owned()),
            (audit(p, Some(&t)), "mta:audit:acme".to_owned()),
            (audit(p, None), "mta:audit:-".to_owned()),
            (queue(p, "split"), "mta:queue:split".to_owned()),
            (queue_active("mta:queue:split"), "mta:queue:split:active".to_owned()),
            (queue_scheduled("mta:queue:split"), "mta:queue:split:scheduled".to_owned()),
            (queue_wakeups(p), "mta:queue-wakeups".to_owned()),
            (expiries(p), "mta:expiries".to_owned()),
            (sweep_lock(p), "mta:sweep:lock".to_owned()),
            (Expiring::Job(t.clone(), j).member(), format!("job:acme:{j}")),
            (Expiring::Upload(t.clone(), u).member(), format!("upload:acme:{u}")),
            (Expiring::Direct(t.clone(), u, "a:b".into()).member(), format!("direct:acme:{u}:a:b")),
            (direct_upload(p, &u), format!("mta:direct:{u}")),
            (queue_done("q"), "q:done".to_owned()),
            (queue_dead("q"), "q:dead".to_owned()),
            (queue_data("q"), "q:data".to_owned()),
            (queue_meta("q"), "q:meta".to_owned()),
            (queue_worker_metadata("q", "w1"), "q:workers:metadata:w1".to_owned()),
            (job_field::rows(3), "rows:3".to_owned()),
        ] {
            assert_eq!(key, expected);
        }
        for member in
            [Expiring::Job(t.clone(), j), Expiring::Upload(t.clone(), u), Expiring::Direct(t, u, "a:b".into())]
        {
            assert_eq!(Expiring::parse(&member.member()), Some(member));
        }
        assert_eq!(job_keys(p, &j).len(), 11);
    }
}
