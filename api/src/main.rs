//! `mta-api`: the HTTP API process. Configuration comes from the environment
//! (`docs/configuration.md`); `REDIS_URL` is required here.

use anyhow::Context;
use mta_platform::{Config, process};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::init_tracing("info");
    let config = Config::from_env()?;
    let redis_url =
        config.redis_url.clone().context("REDIS_URL is required for mta-api (e.g. redis://127.0.0.1:6379)")?;
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("Failed to listen on {}", config.bind))?;
    tracing::info!(address = %listener.local_addr()?, "API listening");
    let state = mta_api::AppState::connect(config, &redis_url).await?;
    let shutdown = process::shutdown_on_signal();
    mta_api::serve(state, listener, process::until(shutdown)).await
}
