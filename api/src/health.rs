//! Health endpoints: liveness (the process answers) and readiness (Redis and the object
//! store answer within a short timeout).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[utoipa::path(get, path = "/health/live", operation_id = "health_live", tag = "health",
    responses((status = 200, description = "The process answers", body = Object)))]
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/health/ready", operation_id = "health_ready", tag = "health", responses(
    (status = 200, description = "Redis and the object store answer", body = Object),
    (status = 503, description = "A dependency does not answer", body = Object),
))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (redis, store) = tokio::join!(check(state.ledger.ping()), check(state.storage.check()));
    let ok = redis["status"] == "ok" && store["status"] == "ok";
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "status": if ok { "ok" } else { "unavailable" }, "redis": redis, "object_store": store })))
}

/// Readiness plus the version and the tasks waiting in each stage's queue.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "health", responses(
    (status = 200, description = "Ready; version and queue depth per stage", body = Object),
    (status = 503, description = "A dependency does not answer", body = Object),
))]
pub async fn summary(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let depths = tokio::time::timeout(CHECK_TIMEOUT, state.queue.depths()).await;
    let (status, Json(mut body)) = ready(State(state)).await;
    body["version"] = json!(env!("CARGO_PKG_VERSION"));
    if let Ok(Ok(depths)) = depths {
        body["queue_depth"] = depths.into_iter().map(|(stage, depth)| (stage.to_owned(), json!(depth))).collect();
    }
    (status, Json(body))
}

async fn check(probe: impl Future<Output = anyhow::Result<()>>) -> Value {
    let started = Instant::now();
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => json!({ "status": "ok", "latency_ms": started.elapsed().as_secs_f64() * 1e3 }),
        Ok(Err(e)) => json!({ "status": "error", "error": format!("{e:#}") }),
        Err(_) => json!({ "status": "error", "error": "timed out" }),
    }
}
