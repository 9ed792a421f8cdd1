//! `mta-worker`: a queue consumer process. Any number of them share the queues.
//! Configuration comes from the environment (`docs/configuration.md`); `REDIS_URL` is required here.

use std::sync::Arc;

use anyhow::Context;
use mta_platform::queue::Liveness;
use mta_platform::{Config, process};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    process::init_tracing("info");
    let config = Config::from_env()?;
    let redis_url =
        config.redis_url.clone().context("REDIS_URL is required for mta-worker (e.g. redis://127.0.0.1:6379)")?;
    let shutdown = process::shutdown_on_signal();
    mta_worker::run(config, redis_url, Arc::new(Liveness::default()), shutdown).await
}
