//! The queue seam: stage tasks travel between processes through apalis + apalis-redis,
//! and nothing outside this module names apalis.
//!
//! apalis is used as a thin at-least-once transport with the guardrails of the research
//! note (`docs/queue.md`): unique worker names per start, batch size 1 (no hoarding),
//! a poll interval (no 30 s pickup), heartbeat 5 s × 6 missed (≈30 s crash recovery),
//! a 5 s Redis response timeout, our own restart loop with backoff, a watchdog on
//! heartbeats, panics caught. Correctness never rests on apalis's status, retries or
//! fan-in: the [`Ledger`](crate::Ledger) counts starts and finished units itself.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use apalis::prelude::*;
use apalis_redis::{Config as ApalisConfig, RedisStorage};
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::config::QueueConfig;
use crate::ids::JobId;
use crate::input::CsvRange;
use crate::redis_conn;
use crate::redis_keys;

/// Split the upload of `job`: `split: None` plans (and, for a one-piece input, does the
/// work); `Some(i)` reads piece `i` of the plan: a share of the Parquet row groups, or
/// the byte `range` of a CSV file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitTask {
    pub job: JobId,
    pub split: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<CsvRange>,
}

/// Attribute one user-hash partition of `job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeTask {
    pub job: JobId,
    pub partition: u32,
}

/// Merge the partials of `job` and write its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReduceTask {
    pub job: JobId,
}

/// A queue stage: its task type and queue name.
pub trait StageTask: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;
    fn job(&self) -> JobId;
    /// The unit of work inside the job, for start counts and the timeline (`split:plan`, `attribute:7`).
    fn unit(&self) -> String;
}

impl StageTask for SplitTask {
    const QUEUE: &'static str = "split";
    fn job(&self) -> JobId {
        self.job
    }
    fn unit(&self) -> String {
        self.split.map_or_else(|| "split:plan".to_owned(), |s| format!("split:{s}"))
    }
}

impl StageTask for AttributeTask {
    const QUEUE: &'static str = "attribute";
    fn job(&self) -> JobId {
        self.job
    }
    fn unit(&self) -> String {
        format!("attribute:{}", self.partition)
    }
}

impl StageTask for ReduceTask {
    const QUEUE: &'static str = "reduce";
    fn job(&self) -> JobId {
        self.job
    }
    fn unit(&self) -> String {
        "reduce".to_owned()
    }
}

/// Every stage's queue name, for depth gauges.
pub const STAGES: [&str; 3] = [SplitTask::QUEUE, AttributeTask::QUEUE, ReduceTask::QUEUE];

/// How a task ended badly.
#[derive(Debug)]
pub enum TaskError {
    /// Retrying cannot help (the job was failed in the ledger already): drop the task.
    Permanent(anyhow::Error),
    /// A fault that may pass (Redis or storage hiccup): run the task again later.
    Transient(anyhow::Error),
}

/// What a handler learns about the task it runs.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// Stable across re-runs of the same task.
    pub task_id: String,
    pub worker: String,
}

/// A stage's work; implemented by the worker crate.
pub trait StageHandler<T: StageTask>: Clone + Send + Sync + 'static {
    fn handle(&self, task: T, info: TaskInfo) -> impl Future<Output = Result<(), TaskError>> + Send;
}

/// The producing side, used by the API and by stages that fan out.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    config: QueueConfig,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("prefix", &self.config.prefix).finish_non_exhaustive()
    }
}

impl Queue {
    pub fn new(conn: ConnectionManager, config: &QueueConfig) -> Queue {
        Queue { conn, config: config.clone() }
    }

    fn storage<T: StageTask>(&self) -> RedisStorage<T> {
        RedisStorage::new(self.conn.clone()).with_config(apalis_config::<T>(&self.config))
    }

    pub async fn push<T: StageTask>(&self, task: T) -> anyhow::Result<()> {
        let mut storage = self.storage::<T>();
        storage.push(task).await.map_err(|e| anyhow::anyhow!("Failed to enqueue a {} task: {e}", T::QUEUE))?;
        self.announce::<T>().await;
        Ok(())
    }

    pub async fn push_all<T: StageTask>(&self, tasks: Vec<T>) -> anyhow::Result<()> {
        let mut storage = self.storage::<T>();
        storage.push_bulk(tasks).await.map_err(|e| anyhow::anyhow!("Failed to enqueue {} tasks: {e}", T::QUEUE))?;
        self.announce::<T>().await;
        Ok(())
    }

    /// Tells consumers, in this process and (through [`relay_wakeups`]) in every worker
    /// process, that `T`'s queue has new tasks, so they fetch now rather than at their next
    /// poll. Best effort: a lost announcement only delays the pickup to that poll.
    async fn announce<T: StageTask>(&self) {
        let queue = queue_name(&self.config, T::QUEUE);
        local_wakeup(&queue).notify_one();
        let mut conn = self.conn.clone();
        let published: redis::RedisResult<i64> =
            redis::cmd("PUBLISH").arg(wakeup_channel(&self.config)).arg(&queue).query_async(&mut conn).await;
        if let Err(e) = published {
            tracing::debug!(queue, error = %e, "could not announce new tasks; consumers will find them by polling");
        }
    }

    /// Tasks waiting per stage (due now or scheduled for a retry).
    pub async fn depths(&self) -> anyhow::Result<Vec<(&'static str, u64)>> {
        let mut conn = self.conn.clone();
        let mut depths = Vec::new();
        for stage in STAGES {
            let name = queue_name(&self.config, stage);
            let (active, scheduled): (u64, u64) = redis::pipe()
                .llen(redis_keys::queue_active(&name))
                .zcard(redis_keys::queue_scheduled(&name))
                .query_async(&mut conn)
                .await?;
            depths.push((stage, active + scheduled));
        }
        Ok(depths)
    }
}

/// Removes up to ARGV[1] tasks from each of the sets of finished tasks (KEYS[1] done, KEYS[2]
/// dead) with their payloads (hash KEYS[3]) and metadata (`KEYS[4]:{id}`, `KEYS[4]:result`),
/// the records apalis-redis keeps of every task forever; returns how many.
const TRIM_FINISHED: &str = r#"
local removed = 0
for _, set in ipairs({KEYS[1], KEYS[2]}) do
  for _, id in ipairs(redis.call('SPOP', set, tonumber(ARGV[1]))) do
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[4] .. ':result', id)
    redis.call('DEL', KEYS[4] .. ':' .. id)
    removed = removed + 1
  end
end
return removed
"#;

/// Removes what apalis keeps of finished tasks, on every stage's queue, in batches. Once a
/// task is acked nothing reads them: a job's history is the ledger's timeline.
pub async fn trim_finished(conn: &ConnectionManager, config: &QueueConfig) -> anyhow::Result<u64> {
    const BATCH: u64 = 500;
    let mut conn = conn.clone();
    let mut removed = 0;
    for stage in STAGES {
        let queue = queue_name(config, stage);
        loop {
            let n: u64 = redis::Script::new(TRIM_FINISHED)
                .key(redis_keys::queue_done(&queue))
                .key(redis_keys::queue_dead(&queue))
                .key(redis_keys::queue_data(&queue))
                .key(redis_keys::queue_meta(&queue))
                .arg(BATCH)
                .invoke_async(&mut conn)
                .await
                .with_context(|| format!("Failed to trim the finished tasks of {queue}"))?;
            removed += n;
            if n < BATCH {
                break;
            }
        }
    }
    Ok(removed)
}

fn queue_name(config: &QueueConfig, stage: &str) -> String {
    redis_keys::queue(&config.prefix, stage)
}

/// The Redis channel on which producers announce new tasks; each message is a queue name.
fn wakeup_channel(config: &QueueConfig) -> String {
    redis_keys::queue_wakeups(&config.prefix)
}

/// Wakes this process's consumer of `queue`: when work is announced for it, a stage's
/// hand-over to the next happens at once instead of at the consumer's next poll (up to
/// `poll_interval` later, per hand-over and per worker process).
fn local_wakeup(queue: &str) -> Arc<Notify> {
    static WAKEUPS: LazyLock<Mutex<HashMap<String, Arc<Notify>>>> = LazyLock::new(Default::default);
    let mut wakeups = WAKEUPS.lock().expect("no panics while locked");
    Arc::clone(wakeups.entry(queue.to_owned()).or_default())
}

/// Relays task announcements from every process to this process's consumers until
/// `shutdown` turns true, resubscribing with backoff when Redis goes away. Polling stays
/// the fallback: a dropped subscription only delays pickups to the next poll.
pub async fn relay_wakeups(redis_url: String, config: QueueConfig, mut shutdown: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(250);
    while !*shutdown.borrow() {
        let relay = async {
            let client = redis::Client::open(redis_url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(wakeup_channel(&config)).await?;
            backoff = Duration::from_millis(250);
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                if let Ok(queue) = message.get_payload::<String>() {
                    local_wakeup(&queue).notify_one();
                }
            }
            anyhow::Ok(())
        };
        tokio::select! {
            outcome = relay => {
                if let Err(e) = outcome {
                    tracing::debug!(error = %e, "task announcements unavailable; consumers poll meanwhile");
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn apalis_config<T: StageTask>(config: &QueueConfig) -> ApalisConfig {
    ApalisConfig::default()
        .queue(queue_name(config, T::QUEUE))
        // One task per fetch: a worker never holds tasks it has no free slot for (E9).
        .batch_size(1)
        .heartbeat_interval(config.heartbeat)
        .missed_heartbeats(config.missed_heartbeats)
}

/// Liveness of a process's consumers: the newest heartbeat any of them sent.
#[derive(Debug, Default)]
pub struct Liveness {
    last_beat_ms: AtomicI64,
}

impl Liveness {
    fn beat(&self) {
        self.last_beat_ms.store(epoch_ms(), Ordering::Relaxed);
    }

    /// Time since the last heartbeat (`None` before the first).
    pub fn silence(&self) -> Option<Duration> {
        match self.last_beat_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis((epoch_ms() - ms).max(0) as u64)),
        }
    }
}

fn epoch_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Consumes one stage's queue until `shutdown` turns true.
///
/// The consumer is rebuilt under a fresh name whenever it fails (Redis restarted or
/// stalled: apalis returns an error, E19/E26) or its heartbeats stop (the silent hang
/// of E27), with exponential backoff between rebuilds. Tasks it held are recovered by
/// another consumer's orphan check after `heartbeat × missed_heartbeats`.
pub async fn consume<T, H>(
    redis_url: String,
    config: QueueConfig,
    handler: H,
    concurrency: usize,
    liveness: Arc<Liveness>,
    mut shutdown: watch::Receiver<bool>,
) where
    T: StageTask,
    H: StageHandler<T>,
{
    let mut backoff = Duration::from_millis(250);
    while !*shutdown.borrow() {
        let started = Instant::now();
        // No race against `shutdown` here: the consumer watches it itself and stops
        // gracefully (in-flight tasks finish, buffered ones go back to the queue).
        let outcome =
            consume_once::<T, H>(&redis_url, &config, handler.clone(), concurrency, &liveness, shutdown.clone()).await;
        let stopped = match outcome {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(stage = T::QUEUE, error = %e, "queue consumer stopped; restarting");
                false
            }
        };
        if stopped && *shutdown.borrow() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(250);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn consume_once<T, H>(
    redis_url: &str,
    config: &QueueConfig,
    handler: H,
    concurrency: usize,
    liveness: &Arc<Liveness>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()>
where
    T: StageTask,
    H: StageHandler<T>,
{
    let conn = redis_conn::connect(redis_url, config.redis_timeout).await?;
    // A fresh name on every start: a reused name is refused while its old heartbeat is
    // recent and breaks orphan recovery (research note, upstream apalis#504).
    let name = format!("{}-{}-{}-{}", T::QUEUE, hostname(), std::process::id(), ulid::Ulid::generate());
    let mut metadata_conn = conn.clone();
    let storage = RedisStorage::<T>::new(conn).with_config(apalis_config::<T>(config));
    let beat = Arc::new(Liveness::default());
    beat.beat();
    let process_beat = Arc::clone(liveness);
    let worker_beat = Arc::clone(&beat);
    let context = HandlerContext { handler, worker: name.clone() };
    let worker = WorkerBuilder::new(name.as_str())
        .backend(storage.poll_with_interval(config.poll_interval))
        .catch_panic()
        .concurrency(concurrency)
        .data(context)
        .on_event(move |_, event| {
            if matches!(event, Event::HeartBeat) {
                worker_beat.beat();
                process_beat.beat();
            }
        })
        .build(run_task::<T, H>);
    let signal = async move {
        let _ = stop.wait_for(|stop| *stop).await;
        Ok::<(), std::io::Error>(())
    };
    let stale_after = config.heartbeat * 3;
    // Wakes this task every poll interval, and when new tasks are announced for the queue.
    // `select!` then polls the consumer beside it, and each poll is what makes apalis
    // fetch. Its own interval strategy does not keep its timer armed between fetches (its
    // next wake-up can be the heartbeat, 5 s later): measured pickups up to 2.8 s late once
    // nothing else woke the consumer.
    let wakeup = local_wakeup(&queue_name(config, T::QUEUE));
    // apalis-redis writes a metadata hash per consumer it registers and never deletes it;
    // kept alive here while the consumer beats, it expires after the consumer is gone.
    let metadata = redis_keys::queue_worker_metadata(&queue_name(config, T::QUEUE), &name);
    let metadata_ttl = (config.heartbeat * config.missed_heartbeats as u32 * 2).as_secs().max(1);
    let watchdog = async {
        let mut refreshed: Option<Instant> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(config.poll_interval) => {}
                () = wakeup.notified() => {}
            }
            if beat.silence().is_some_and(|silence| silence > stale_after) {
                return;
            }
            if refreshed.is_none_or(|at| at.elapsed() >= config.heartbeat) {
                let expired: redis::RedisResult<i64> =
                    redis::cmd("EXPIRE").arg(&metadata).arg(metadata_ttl).query_async(&mut metadata_conn).await;
                refreshed = expired.is_ok().then(Instant::now).or(refreshed);
            }
        }
    };
    tracing::info!(stage = T::QUEUE, worker = %name, "queue consumer started");
    tokio::select! {
        outcome = worker.run_until(signal) => outcome.map_err(|e| anyhow::anyhow!("{e}")),
        () = watchdog => anyhow::bail!("no heartbeat for {stale_after:?}: the consumer is stuck"),
    }
}

#[derive(Clone)]
struct HandlerContext<H> {
    handler: H,
    worker: String,
}

async fn run_task<T, H>(task: T, task_id: TaskId, context: Data<HandlerContext<H>>) -> Result<(), BoxDynError>
where
    T: StageTask,
    H: StageHandler<T>,
{
    let info = TaskInfo { task_id: task_id.to_string(), worker: context.worker.clone() };
    match context.handler.handle(task, info).await {
        Ok(()) => Ok(()),
        Err(TaskError::Permanent(e)) => Err(AbortError::new(DisplayError(format!("{e:#}"))).into()),
        Err(TaskError::Transient(e)) => Err(DisplayError(format!("{e:#}")).into()),
    }
}

#[derive(Debug)]
struct DisplayError(String);

impl std::fmt::Display for DisplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DisplayError {}

/// This machine's name (the pod name in Kubernetes), for worker names.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}
