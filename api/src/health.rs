//! Health and metrics endpoints (no key): liveness, readiness (Redis and the object store
//! answer within a short timeout), a summary, the detailed view, and `/metrics`. The last
//! two are served on the internal listener only (`crate::internal_router`).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use mta_platform::health::{Detailed, Readiness};
use mta_platform::metrics;
use serde_json::{Value, json};

use crate::AppState;

#[utoipa::path(get, path = "/health/live", operation_id = "health_live", tag = "health",
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/health/ready", operation_id = "health_ready", tag = "health", responses(
    (status = 200, description = "Redis and the object store answer", body = Readiness),
    (status = 503, description = "A dependency does not answer", body = Readiness),
))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let readiness = state.probe.ready().await;
    (status_of(readiness.is_ready()), Json(readiness))
}

/// Readiness (each dependency's status) plus the version and the tasks waiting per stage.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "health", responses(
    (status = 200, description = "Ready; version and queue depth per stage", body = Object),
    (status = 503, description = "A dependency does not answer", body = Object),
))]
pub async fn summary(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let detailed = state.probe.detailed(None).await;
    let body = json!({
        "status": detailed.status,
        "version": detailed.version,
        "redis": detailed.components["redis"],
        "object_store": detailed.components["object_store"],
        "queue_depth": detailed.queue_depth,
    });
    (status_of(detailed.status == "ok"), Json(body))
}

/// Every component with its latency, queue depth per stage, jobs by state, live workers.
#[utoipa::path(get, path = "/health/detailed", operation_id = "health_detailed", tag = "health", responses(
    (status = 200, description = "Everything answers", body = Detailed),
    (status = 503, description = "A dependency does not answer", body = Detailed),
))]
pub async fn detailed(State(state): State<AppState>) -> (StatusCode, Json<Detailed>) {
    let detailed = state.probe.detailed(None).await;
    (status_of(detailed.status == "ok"), Json(detailed))
}

/// Prometheus metrics, OpenMetrics text.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health", responses(
    (status = 200, description = "OpenMetrics text", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.probe.refresh(&state.metrics).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode())
}

fn status_of(ok: bool) -> StatusCode {
    if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
}
