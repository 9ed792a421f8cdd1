//! # mta-worker: the queue consumers
//!
//! A worker process consumes the three stage queues: [`split`] (upload → user-hash
//! partitioned chunk files), [`attribute`] (one chunk → one partial aggregate) and
//! [`reduce`] (partials → result, cache, credits). Every stage goes through
//! [`stage::run_unit`], which counts starts, honours cancellation and keeps CPU work off
//! the async threads so queue heartbeats keep flowing.
//!
//! Any number of worker processes share the queues; the ledger in Redis decides what a
//! job's state is, never the queue.

pub mod attribute;
pub mod reduce;
pub mod split;
pub mod stage;

use std::sync::Arc;

use anyhow::Context;
use mta_platform::queue::{self, AttributeTask, Liveness, ReduceTask, SplitTask};
use mta_platform::{Config, Ledger, Queue, Storage, ledger};
use tokio::sync::watch;

/// What every stage handler needs.
#[derive(Debug, Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub ledger: Ledger,
    pub queue: Queue,
    pub storage: Storage,
}

impl Services {
    pub async fn connect(config: Config, redis_url: &str) -> anyhow::Result<Services> {
        let conn = ledger::connect(redis_url, config.queue.redis_timeout).await?;
        let storage = Storage::open(&config.store_url)?;
        Ok(Services {
            ledger: Ledger::new(conn.clone(), &config.queue.prefix, config.cache_ttl),
            queue: Queue::new(conn, &config.queue),
            storage,
            config: Arc::new(config),
        })
    }
}

/// Runs the consumers of every stage until `shutdown` turns true; in-flight tasks finish
/// (or are handed back) before it returns.
pub async fn run(
    config: Config,
    redis_url: String,
    liveness: Arc<Liveness>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let services = Services::connect(config, &redis_url).await.context("Failed to start the worker")?;
    let concurrency = services.config.worker_concurrency;
    let queue_config = services.config.queue.clone();
    // Polled together in this task rather than spawned: apalis's worker future is not
    // `Send` (a higher-ranked lifetime in its panic layer), and all CPU work runs on
    // blocking threads anyway.
    let splits = queue::consume::<SplitTask, _>(
        redis_url.clone(),
        queue_config.clone(),
        split::SplitHandler(services.clone()),
        concurrency,
        Arc::clone(&liveness),
        shutdown.clone(),
    );
    let chunks = queue::consume::<AttributeTask, _>(
        redis_url.clone(),
        queue_config.clone(),
        attribute::AttributeHandler(services.clone()),
        concurrency,
        Arc::clone(&liveness),
        shutdown.clone(),
    );
    let reduces = queue::consume::<ReduceTask, _>(
        redis_url,
        queue_config,
        reduce::ReduceHandler(services),
        concurrency,
        liveness,
        shutdown,
    );
    tokio::join!(splits, chunks, reduces);
    Ok(())
}
