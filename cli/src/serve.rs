//! The all-in-one mode (`mta serve`, `mta demo`): the API and N workers in one process on
//! the embedded defaults, with a private `redis-server` when no `REDIS_URL` is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use mta_platform::queue::Liveness;
use mta_platform::redis_server::PrivateRedis;
use mta_platform::results::JobResult;
use mta_platform::{Config, process};

use crate::args::Connection;
use crate::client::attribute_remotely;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Runs the service until `shutdown` turns true; `ready` gets the API's address once it listens.
pub async fn run_all_in_one(
    config: Config,
    workers: usize,
    shutdown: watch::Receiver<bool>,
    ready: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<()> {
    let private = match &config.redis_url {
        Some(_) => None,
        None => Some(PrivateRedis::start(&config.data_dir).await?),
    };
    let redis_url = match (&config.redis_url, &private) {
        (Some(url), _) => url.clone(),
        (None, Some(redis)) => redis.url(),
        (None, None) => unreachable!("a private Redis was started"),
    };
    let listener =
        TcpListener::bind(&config.bind).await.with_context(|| format!("Failed to listen on {}", config.bind))?;
    let address = listener.local_addr()?;
    let state = mta_api::AppState::connect(config.clone(), &redis_url).await?;
    if let Some(path) = crate::keys::bootstrap(&state.keys, &config.data_dir).await? {
        eprintln!(
            "mta: first start: an admin key for tenant `default` was written to {} (readable by you only); \
             send it as `Authorization: Bearer <key>`",
            path.display()
        );
    }
    tracing::info!(%address, workers, "all-in-one service listening");
    ready(address);
    let liveness = Arc::new(Liveness::default());
    // One registry for the whole process: the API's /metrics shows the workers' too.
    let metrics = state.metrics.clone();
    let api = mta_api::serve(state, listener, process::until(shutdown.clone()));
    let mut pool = Vec::with_capacity(workers);
    for _ in 0..workers {
        let services = mta_worker::Services::connect(config.clone(), &redis_url, metrics.clone()).await?;
        pool.push(mta_worker::run(services, redis_url.clone(), Arc::clone(&liveness), shutdown.clone()));
    }
    let pool = futures_util::future::join_all(pool);
    let (api, _) = tokio::join!(api, pool);
    if let Some(redis) = private {
        redis.stop().await;
    }
    api
}

/// `mta demo FILE`: starts the service on a free port in a fresh data directory, sends
/// the file through the real HTTP API, waits for the job and returns its result.
pub async fn demo(file: &Path, data_dir: PathBuf, workers: usize) -> anyhow::Result<JobResult> {
    let mut config = Config::from_env()?;
    // The demo is self-contained: its own Redis, store and bootstrap key in a fresh directory.
    config.redis_url = None;
    config.data_dir = data_dir.clone();
    config.store_url = format!("file://{}", data_dir.join("store").display());
    config.bind = "127.0.0.1:0".to_owned();
    config.internal_bind = None;
    let (stop, shutdown) = watch::channel(false);
    let (address_tx, address_rx) = tokio::sync::oneshot::channel();
    let service = run_all_in_one(config, workers, shutdown, move |address| {
        let _ = address_tx.send(address);
    });
    let client = async {
        let address = address_rx.await.context("the service did not start")?;
        let key = std::fs::read_to_string(data_dir.join("admin.key")).context("the demo's admin key is missing")?;
        let connection = Connection { url: format!("http://{address}"), key: Some(key.trim().to_owned()), json: false };
        let outcome = attribute_remotely(&connection, file).await.map_err(|failure| anyhow::anyhow!(failure.message));
        let _ = stop.send(true);
        outcome
    };
    let (service, result) = tokio::join!(service, client);
    service?;
    result
}
