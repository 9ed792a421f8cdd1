//! What every service process connects to from its config: one Redis connection, shared by
//! the ledger, the queue and the webhook deliveries, and the object store.

use anyhow::Context;
use redis::aio::ConnectionManager;

use crate::config::Config;
use crate::ledger::Ledger;
use crate::queue::Queue;
use crate::redis_conn;
use crate::storage::Storage;
use crate::webhook::Deliveries;

#[derive(Debug, Clone)]
pub struct Backends {
    /// The connection behind the others, for the API's key store, quotas and audit log.
    pub redis: ConnectionManager,
    pub ledger: Ledger,
    pub queue: Queue,
    pub storage: Storage,
    pub deliveries: Deliveries,
}

impl Backends {
    pub async fn connect(config: &Config, redis_url: &str) -> anyhow::Result<Backends> {
        let redis = redis_conn::connect(redis_url, config.queue.redis_timeout).await?;
        let storage = Storage::open(&config.store_url).context("Failed to open the object store")?;
        let prefix = &config.queue.prefix;
        Ok(Backends {
            ledger: Ledger::new(redis.clone(), prefix, config.cache_ttl, config.idempotency_lease, config.retention),
            queue: Queue::new(redis.clone(), &config.queue),
            deliveries: Deliveries::new(redis.clone(), prefix),
            storage,
            redis,
        })
    }
}
