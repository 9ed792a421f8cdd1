//! The retention sweep: deletes what expired jobs and uploads leave outside their own Redis
//! keys (which expire by themselves, `ledger.rs`): their objects, their entries in the
//! tenant's job index and the webhook due set, and apalis's records of finished tasks.
//!
//! The ledger puts every job and upload in one sorted set by when it expires
//! ([`redis_keys::expiries`]); a sweep takes the due ones in batches. Worker processes run
//! it in turn, one at a time under a lock with a time to live; with nothing due it costs
//! two Redis commands.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::config::QueueConfig;
use crate::queue;
use crate::redis_keys::{self, Expiring};
use crate::storage::{Storage, keys};

/// Entries taken from the expiry set per round trip.
const BATCH: isize = 100;

/// Deletes `KEYS[1]` if `ARGV[1]` holds it.
const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Removes ARGV[1] from KEYS[1] unless its expiry moved past ARGV[2] meanwhile (a job
/// answered from the cache keeps its source's objects).
const FORGET: &str = r#"
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if at and tonumber(at) <= tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
"#;

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub jobs: u64,
    pub uploads: u64,
    /// apalis's records of finished tasks.
    pub tasks: u64,
}

/// The retention sweep over one Redis and one object store.
#[derive(Debug, Clone)]
pub struct Sweeper {
    conn: ConnectionManager,
    storage: Storage,
    queue: QueueConfig,
}

impl Sweeper {
    pub fn new(conn: ConnectionManager, storage: Storage, queue: &QueueConfig) -> Sweeper {
        Sweeper { conn, storage, queue: queue.clone() }
    }

    fn prefix(&self) -> &str {
        &self.queue.prefix
    }

    /// Sweeps once if no other process is sweeping (`None` then); `holder` names this
    /// process in the lock, which lapses after `lease` should the process die mid-sweep.
    pub async fn sweep(&self, holder: &str, lease: Duration) -> anyhow::Result<Option<Swept>> {
        let mut conn = self.conn.clone();
        let lock = redis_keys::sweep_lock(self.prefix());
        let locked: Option<String> = redis::cmd("SET")
            .arg(&lock)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(lease.as_millis().max(1) as u64)
            .query_async(&mut conn)
            .await
            .context("Failed to take the sweep lock")?;
        if locked.is_none() {
            return Ok(None);
        }
        let swept = self.sweep_locked().await;
        let _: redis::RedisResult<i64> =
            redis::Script::new(UNLOCK).key(&lock).arg(holder).invoke_async(&mut conn).await;
        swept.map(Some)
    }

    async fn sweep_locked(&self) -> anyhow::Result<Swept> {
        let mut swept = Swept { tasks: queue::trim_finished(&self.conn, &self.queue).await?, ..Swept::default() };
        let mut conn = self.conn.clone();
        let expiries = redis_keys::expiries(self.prefix());
        loop {
            let now = Utc::now().timestamp_millis();
            let due: Vec<String> = conn
                .zrangebyscore_limit(&expiries, "-inf", now, 0, BATCH)
                .await
                .context("Failed to read the expiry set")?;
            for member in &due {
                match Expiring::parse(member) {
                    Some(Expiring::Job(tenant, job)) => {
                        self.storage.delete_prefix(&keys::job_root(&tenant, &job)).await?;
                        let mut pipe = redis::pipe();
                        pipe.del(redis_keys::job_keys(self.prefix(), &job))
                            .del(redis_keys::result(self.prefix(), &job))
                            .zrem(redis_keys::tenant_jobs(self.prefix(), &tenant), job.to_string())
                            .zrem(redis_keys::webhooks_due(self.prefix()), job.to_string());
                        let _: () = pipe.query_async(&mut conn).await.context("Failed to delete an expired job")?;
                        swept.jobs += 1;
                    }
                    Some(Expiring::Upload(tenant, upload)) => {
                        self.storage.delete(&keys::upload(&tenant, &upload)).await?;
                        let _: () = conn
                            .del(redis_keys::upload(self.prefix(), &upload))
                            .await
                            .context("Failed to delete an expired upload")?;
                        swept.uploads += 1;
                    }
                    Some(Expiring::Direct(tenant, upload, multipart)) => {
                        self.storage.abort_direct(&keys::upload(&tenant, &upload), &multipart).await?;
                        let _: () = conn
                            .del(redis_keys::direct_upload(self.prefix(), &upload))
                            .await
                            .context("Failed to delete an expired direct upload")?;
                        swept.uploads += 1;
                    }
                    None => tracing::warn!(member, "unknown entry in the expiry set; dropped"),
                }
                let _: i64 = redis::Script::new(FORGET)
                    .key(&expiries)
                    .arg(member)
                    .arg(now)
                    .invoke_async(&mut conn)
                    .await
                    .context("Failed to update the expiry set")?;
            }
            if (due.len() as isize) < BATCH {
                return Ok(swept);
            }
        }
    }
}
