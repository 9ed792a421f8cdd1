//! The all-in-one mode (`mta serve`, `mta demo`): the API and N workers in one process on
//! the embedded defaults, with a private `redis-server` when no `REDIS_URL` is set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use mta_platform::queue::Liveness;
use mta_platform::redis_server::PrivateRedis;
use mta_platform::{Config, process};
use serde_json::{Value, json};
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
pub async fn demo(file: &Path, data_dir: PathBuf, workers: usize) -> anyhow::Result<Value> {
    let mut config = Config::from_env()?;
    // The demo is self-contained: its own Redis, store and bootstrap key in a fresh directory.
    config.redis_url = None;
    config.data_dir = data_dir.clone();
    config.store_url = format!("file://{}", data_dir.join("store").display());
    config.bind = "127.0.0.1:0".to_owned();
    let (stop, shutdown) = watch::channel(false);
    let (address_tx, address_rx) = tokio::sync::oneshot::channel();
    let service = run_all_in_one(config, workers, shutdown, move |address| {
        let _ = address_tx.send(address);
    });
    let client = async {
        let address = address_rx.await.context("the service did not start")?;
        let key = std::fs::read_to_string(data_dir.join("admin.key")).context("the demo's admin key is missing")?;
        let outcome = submit_and_wait(&format!("http://{address}"), key.trim(), file).await;
        let _ = stop.send(true);
        outcome
    };
    let (service, result) = tokio::join!(service, client);
    service?;
    result
}

async fn submit_and_wait(base: &str, key: &str, file: &Path) -> anyhow::Result<Value> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse()?);
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let body = tokio::fs::read(file).await.with_context(|| format!("Failed to read {}", file.display()))?;
    eprintln!("uploading {} ({} bytes) to {base}", file.display(), body.len());
    let upload: Value = checked(http.post(format!("{base}/v1/uploads")).body(body).send().await?).await?;
    let job: Value =
        checked(http.post(format!("{base}/v1/jobs")).json(&json!({ "upload_id": upload["upload_id"] })).send().await?)
            .await?;
    let id = job["id"].as_str().context("the job has no id")?.to_owned();
    eprintln!("job {id} queued");
    loop {
        let job: Value = checked(http.get(format!("{base}/v1/jobs/{id}")).send().await?).await?;
        match job["state"].as_str() {
            Some("succeeded") => break,
            Some("failed") => bail!("the job failed: {}", job["error"]),
            Some("cancelled") => bail!("the job was cancelled"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    eprintln!("job {id} succeeded");
    checked(http.get(format!("{base}/v1/jobs/{id}/result")).send().await?).await
}

async fn checked(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.context("the service answered with invalid JSON")?;
    if !status.is_success() {
        bail!("the service answered {status}: {}", body["error"]);
    }
    Ok(body)
}
