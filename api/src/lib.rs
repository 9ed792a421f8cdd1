//! # mta-api: the HTTP API
//!
//! Thin axum handlers over the platform: [`uploads`] streams bodies into object storage
//! while hashing them, [`jobs`] records jobs in the ledger and enqueues their first
//! stage, and serves progress, results and credits. The API never computes attribution.
//! Every error goes through [`error::ApiError`], the one mapping to HTTP.

pub mod error;
pub mod health;
pub mod jobs;
pub mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use mta_platform::{Config, Ledger, Queue, Storage, ledger};
use tokio::net::TcpListener;

/// JSON request bodies larger than this are refused (uploads stream and have their own limit).
pub(crate) const JSON_BODY_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub ledger: Ledger,
    pub queue: Queue,
    pub storage: Storage,
}

impl AppState {
    pub async fn connect(config: Config, redis_url: &str) -> anyhow::Result<AppState> {
        let conn = ledger::connect(redis_url, config.queue.redis_timeout).await?;
        Ok(AppState {
            ledger: Ledger::new(conn.clone(), &config.queue.prefix, config.cache_ttl),
            queue: Queue::new(conn, &config.queue),
            storage: Storage::open(&config.store_url)?,
            config: Arc::new(config),
        })
    }
}

pub fn router(state: AppState) -> Router {
    let streamed = Router::new()
        .route("/v1/uploads", post(uploads::create))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route("/v1/jobs/{id}/credits", get(jobs::credits))
        .route("/v1/jobs/{id}/timeline", get(jobs::timeline))
        .route("/health", get(health::summary))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .merge(streamed)
        .fallback(|| async { error::ApiError::not_found("route") })
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then drains open connections.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}
