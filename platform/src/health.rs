//! What the health endpoints of the API and the workers report: each dependency probed
//! with a short timeout, and the service-wide figures (queue depth per stage, jobs by
//! state, live workers) that `/health/detailed` shows and `/metrics` exports.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use crate::config::QueueConfig;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, StageLabels, StateLabels};
use crate::queue::Queue;
use crate::storage::Storage;

/// Each probe gives up after this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One dependency's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Component {
    /// `ok` or `error`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Component {
    fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// `/health/ready`: may this process take traffic?
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub redis: Component,
    pub object_store: Component,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ok"
    }
}

/// `/health/detailed`: every component and the service's figures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Detailed {
    pub status: &'static str,
    /// `api` or `worker`.
    pub process: &'static str,
    pub version: &'static str,
    pub components: BTreeMap<&'static str, Component>,
    /// Tasks waiting per stage (`split`, `attribute`, `reduce`).
    pub queue_depth: BTreeMap<String, u64>,
    /// Jobs per state over the whole service.
    pub jobs: BTreeMap<String, i64>,
    /// Worker processes with a heartbeat within `MTA_HEARTBEAT_SECS × MTA_MISSED_HEARTBEATS`.
    pub live_workers: u64,
    /// A worker's own queue heartbeat: seconds since the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_secs: Option<f64>,
}

/// Probes the dependencies of one process.
#[derive(Debug, Clone)]
pub struct Probe {
    process: &'static str,
    ledger: Ledger,
    queue: Queue,
    storage: Storage,
    /// How recent a worker's heartbeat must be to count as live.
    live_window: Duration,
}

impl Probe {
    pub fn new(process: &'static str, ledger: Ledger, queue: Queue, storage: Storage, config: &QueueConfig) -> Probe {
        let live_window = config.heartbeat * config.missed_heartbeats as u32;
        Probe { process, ledger, queue, storage, live_window }
    }

    pub async fn ready(&self) -> Readiness {
        let (redis, object_store) = tokio::join!(probe(self.ledger.ping()), probe(self.storage.check()));
        let status = if redis.ok() && object_store.ok() { "ok" } else { "unavailable" };
        Readiness { status, redis, object_store }
    }

    pub async fn detailed(&self, last_heartbeat: Option<Duration>) -> Detailed {
        let (ready, figures) = tokio::join!(self.ready(), self.figures());
        let (queue_depth, jobs, live_workers) = figures.unwrap_or_default();
        Detailed {
            status: ready.status,
            process: self.process,
            version: env!("CARGO_PKG_VERSION"),
            components: BTreeMap::from([("redis", ready.redis), ("object_store", ready.object_store)]),
            queue_depth,
            jobs,
            live_workers,
            last_heartbeat_secs: last_heartbeat.map(|d| d.as_secs_f64()),
        }
    }

    /// Sets the service-wide gauges of `metrics` from Redis (before a scrape is encoded).
    pub async fn refresh(&self, metrics: &Metrics) {
        let Some((depths, jobs, live)) = self.figures().await else { return };
        for (stage, depth) in depths {
            metrics.queue_depth.get_or_create(&StageLabels { stage }).set(depth as i64);
        }
        // Every state is exported, at 0 when no job is in it, so alerts can rely on the series.
        for state in ["queued", "running", "succeeded", "failed", "cancelled"] {
            let count = jobs.get(state).copied().unwrap_or(0);
            metrics.jobs.get_or_create(&StateLabels { state: state.to_owned() }).set(count);
        }
        metrics.live_workers.set(live as i64);
    }

    async fn figures(&self) -> Option<(BTreeMap<String, u64>, BTreeMap<String, i64>, u64)> {
        let read = async {
            let depths = self.queue.depths().await?;
            let jobs = self.ledger.job_counts().await?;
            let live = self.ledger.live_workers(self.live_window).await?;
            let depths = depths.into_iter().map(|(stage, depth)| (stage.to_owned(), depth)).collect();
            anyhow::Ok((depths, jobs.into_iter().collect(), live))
        };
        match tokio::time::timeout(PROBE_TIMEOUT, read).await {
            Ok(Ok(figures)) => Some(figures),
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "service figures unavailable");
                None
            }
            Err(_) => None,
        }
    }
}

async fn probe(check: impl Future<Output = anyhow::Result<()>>) -> Component {
    let started = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => Component { status: "ok", latency_ms: Some(started.elapsed().as_secs_f64() * 1e3), error: None },
        Ok(Err(e)) => Component { status: "error", latency_ms: None, error: Some(format!("{e:#}")) },
        Err(_) => Component { status: "error", latency_ms: None, error: Some("timed out".to_owned()) },
    }
}
