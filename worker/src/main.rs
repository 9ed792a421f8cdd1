//! `mta-worker`: a queue consumer process. Any number of them share the queues.
//! Configuration comes from the environment (`docs/configuration.md`); `REDIS_URL` is required here.
//!
//! On SIGTERM it stops fetching, lets its tasks finish for up to `MTA_SHUTDOWN_GRACE_SECS`,
//! and exits; a task still running then is run again by another worker.

use std::sync::Arc;

use anyhow::Context;
use mta_platform::metrics::Metrics;
use mta_platform::queue::Liveness;
use mta_platform::{Config, process};

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads start: it may execute the program again.
    process::bound_malloc_arenas();
    tokio::runtime::Runtime::new().context("Failed to start the async runtime")?.block_on(run_until_stopped())
}

async fn run_until_stopped() -> anyhow::Result<()> {
    process::init_tracing("info");
    let config = Config::from_env()?;
    let redis_url =
        config.redis_url.clone().context("REDIS_URL is required for mta-worker (e.g. redis://127.0.0.1:6379)")?;
    let shutdown = process::shutdown_on_signal();
    let liveness = Arc::new(Liveness::default());
    let services = mta_worker::Services::connect(config.clone(), &redis_url, Metrics::new()).await?;
    let http = match &config.worker_bind {
        Some(bind) => {
            let listener =
                tokio::net::TcpListener::bind(bind).await.with_context(|| format!("Failed to listen on {bind}"))?;
            tracing::info!(address = %listener.local_addr()?, "worker health and metrics listening");
            let serve = mta_worker::http::serve(
                listener,
                services.probe(),
                services.metrics.clone(),
                Arc::clone(&liveness),
                config.queue.heartbeat,
                process::until(shutdown.clone()),
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let grace = config.shutdown_grace;
    let mut stopping = shutdown.clone();
    let work = mta_worker::run(services, redis_url, liveness, shutdown);
    let deadline = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        tracing::info!(grace_secs = grace.as_secs(), "stopping: no new tasks; waiting for running ones");
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = work => {}
        () = deadline => tracing::warn!("grace period over; exiting with tasks still running (they will run again elsewhere)"),
    }
    if let Some(http) = http {
        http.abort();
    }
    tracing::info!("worker stopped");
    Ok(())
}
