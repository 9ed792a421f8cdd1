//! The worker's small HTTP port (`MTA_WORKER_BIND`): health for the orchestrator's probes
//! and `/metrics` for Prometheus. Liveness fails when the queue heartbeats stop, which is
//! how a worker whose consumers hang gets restarted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mta_platform::health::Probe;
use mta_platform::metrics::{self, Metrics};
use mta_platform::queue::Liveness;
use serde_json::json;
use tokio::net::TcpListener;

#[derive(Clone)]
struct WorkerState {
    probe: Probe,
    metrics: Metrics,
    liveness: Arc<Liveness>,
    /// Heartbeats older than this mean the consumers are stuck.
    stale_after: Duration,
    started: Instant,
}

impl WorkerState {
    /// Seconds since the last queue heartbeat, or why the worker is not alive.
    fn heartbeat(&self) -> Result<Option<Duration>, String> {
        match self.liveness.silence() {
            Some(silence) if silence > self.stale_after => {
                Err(format!("no queue heartbeat for {:.0} s", silence.as_secs_f64()))
            }
            None if self.started.elapsed() > self.stale_after => Err("no queue heartbeat since start".to_owned()),
            silence => Ok(silence),
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    probe: Probe,
    metrics: Metrics,
    liveness: Arc<Liveness>,
    heartbeat: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = WorkerState { probe, metrics, liveness, stale_after: heartbeat * 3, started: Instant::now() };
    let router = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(detailed))
        .route("/health/detailed", get(detailed))
        .route("/metrics", get(metrics_text))
        .with_state(state);
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

async fn live(State(state): State<WorkerState>) -> Response {
    match state.heartbeat() {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "stuck", "error": reason }))).into_response()
        }
    }
}

async fn ready(State(state): State<WorkerState>) -> Response {
    let readiness = state.probe.ready().await;
    let status = if readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(readiness)).into_response()
}

async fn detailed(State(state): State<WorkerState>) -> Response {
    let heartbeat = state.heartbeat();
    let mut detailed = state.probe.detailed(heartbeat.clone().ok().flatten()).await;
    if heartbeat.is_err() {
        detailed.status = "stuck";
    }
    let status = if detailed.status == "ok" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(detailed)).into_response()
}

async fn metrics_text(State(state): State<WorkerState>) -> Response {
    state.probe.refresh(&state.metrics).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode()).into_response()
}
