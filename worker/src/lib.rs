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
pub mod http;
pub mod reduce;
pub mod split;
pub mod stage;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mta_platform::backends::Backends;
use mta_platform::health::Probe;
use mta_platform::metrics::Metrics;
use mta_platform::queue::{self, AttributeTask, Liveness, ReduceTask, SplitTask};
use mta_platform::retention::{Sweeper, Swept};
use mta_platform::webhook::Deliveries;
use mta_platform::{Config, Ledger, Queue, Storage};
use tokio::sync::watch;

/// How long a sweep may hold its lock: should this process die mid-sweep, another takes over after this.
const SWEEP_LEASE: Duration = Duration::from_secs(300);

/// What every stage handler needs.
#[derive(Debug, Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub ledger: Ledger,
    pub queue: Queue,
    pub storage: Storage,
    pub metrics: Metrics,
    pub deliveries: Deliveries,
    pub sweeper: Sweeper,
}

impl Services {
    /// Where upload `id`'s bytes are in the store (an imported object is read in place).
    pub async fn upload_object(
        &self,
        tenant: &mta_platform::ids::Tenant,
        id: &mta_platform::ids::UploadId,
    ) -> anyhow::Result<object_store::path::Path> {
        let upload = self.ledger.upload(tenant, id).await?.with_context(|| format!("The upload {id} is gone"))?;
        Ok(mta_platform::storage::keys::upload_object(&upload))
    }

    pub async fn connect(config: Config, redis_url: &str, metrics: Metrics) -> anyhow::Result<Services> {
        let Backends { ledger, queue, storage, deliveries, redis } =
            Backends::connect(&config, redis_url).await.context("Failed to start the worker")?;
        let sweeper = Sweeper::new(redis, storage.clone(), &config.queue);
        Ok(Services { ledger, queue, storage, deliveries, sweeper, metrics, config: Arc::new(config) })
    }

    /// What the health endpoints of this worker probe.
    pub fn probe(&self) -> Probe {
        Probe::new("worker", self.ledger.clone(), self.queue.clone(), self.storage.clone(), &self.config.queue)
    }
}

/// Runs the consumers of every stage until `shutdown` turns true; in-flight tasks finish
/// (or are handed back) before it returns.
pub async fn run(services: Services, redis_url: String, liveness: Arc<Liveness>, shutdown: watch::Receiver<bool>) {
    let presence = announce(services.clone(), Arc::clone(&liveness), shutdown.clone());
    let webhooks = webhook::dispatch(services.clone(), shutdown.clone());
    let sweeps = sweep(services.clone(), shutdown.clone());
    let concurrency = services.config.worker_concurrency;
    let queue_config = services.config.queue.clone();
    let wakeups = queue::relay_wakeups(redis_url.clone(), queue_config.clone(), shutdown.clone());
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
    // Each consumer is a task of its own, on this thread (apalis's worker future is not
    // `Send`: a higher-ranked lifetime in its panic layer; CPU work runs on blocking threads
    // anyway). Not one `join!`: that polls every branch whenever any one is woken, and
    // apalis fetches from Redis each time it is polled, so each fetch's reply set off fetches
    // on the other queues — about 1,750 a second from one busy process instead of 4 per queue.
    let consumers = tokio::task::LocalSet::new();
    consumers
        .run_until(async move {
            let tasks = [
                tokio::task::spawn_local(splits),
                tokio::task::spawn_local(chunks),
                tokio::task::spawn_local(reduces),
                tokio::task::spawn_local(presence),
                tokio::task::spawn_local(webhooks),
                tokio::task::spawn_local(wakeups),
                tokio::task::spawn_local(sweeps),
            ];
            for task in tasks {
                if let Err(e) = task.await
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        })
        .await;
}

/// Tells the service this worker process is alive (for `live_workers` in health and
/// metrics) while its queue consumers beat, and that it is gone when it stops.
async fn announce(services: Services, liveness: Arc<Liveness>, mut shutdown: watch::Receiver<bool>) {
    let name = format!("{}-{}", queue::hostname(), std::process::id());
    let heartbeat = services.config.queue.heartbeat;
    loop {
        // Before the first queue heartbeat the worker is starting, and counted as alive.
        if liveness.silence().is_none_or(|silence| silence < heartbeat * 3) {
            let _ = services.ledger.worker_beat(&name).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(heartbeat) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    let _ = services.ledger.worker_gone(&name).await;
}

/// Runs the retention sweep every tenth of the retention (between 1 s and 10 min), when no
/// other worker process is running it.
async fn sweep(services: Services, mut shutdown: watch::Receiver<bool>) {
    let every = (services.config.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let holder = format!("{}-{}", queue::hostname(), std::process::id());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        match services.sweeper.sweep(&holder, SWEEP_LEASE).await {
            Ok(Some(swept)) if swept != Swept::default() => {
                tracing::info!(jobs = swept.jobs, uploads = swept.uploads, tasks = swept.tasks, "retention sweep");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "retention sweep failed; it runs again later"),
        }
    }
}
