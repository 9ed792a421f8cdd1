//! Every request, observed once: its request id (taken from a sane `x-request-id`, else
//! generated) is returned in `x-request-id`, put on the request's log span and in error
//! bodies, and recorded with the job a request creates so the workers' logs carry it;
//! its route, status and latency go to the metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use mta_platform::metrics::{HttpLabels, RouteLabels};
use tracing::Instrument;

use crate::AppState;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled (inside [`observe`]).
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(String::clone).ok()
}

/// Outermost middleware of the router.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    // Only the standard methods become label values: any other word a client sends would
    // otherwise add a series that lives for ever.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %route, tenant = tracing::field::Empty);
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).instrument(span.clone()).await;
    let status = response.status().as_u16();
    if route != "/metrics" {
        span.in_scope(|| tracing::debug!(status, ms = started.elapsed().as_secs_f64() * 1e3, "request done"));
    }
    let metrics = &state.metrics;
    metrics.http_requests.get_or_create(&HttpLabels { method: method.clone(), route: route.clone(), status }).inc();
    metrics.http_duration.get_or_create(&RouteLabels { method, route }).observe(started.elapsed().as_secs_f64());
    response.headers_mut().insert("x-request-id", HeaderValue::from_str(&id).expect("checked characters"));
    response
}
