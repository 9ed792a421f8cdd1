//! One typed configuration for every process, read once from the environment.
//!
//! Every variable is documented in `docs/configuration.md`; errors name the variable.
//! Tests build a [`Config`] in code (or set variables on the child processes they spawn).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};

/// Everything the API, the workers and the all-in-one mode need.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`; when absent the all-in-one mode starts a private `redis-server`.
    pub redis_url: Option<String>,
    /// `MTA_STORE`: `file:///path` or `s3://bucket/prefix`; default `file://{data_dir}/store`.
    pub store_url: String,
    /// `MTA_DATA_DIR`: where the embedded defaults keep their files (default `./mta-data`).
    pub data_dir: PathBuf,
    /// `MTA_BIND`: the API's listening address (default `127.0.0.1:8080`).
    pub bind: String,
    /// `MTA_WORKER_BIND`: where a worker serves its health and metrics (default
    /// `127.0.0.1:8081`; `off` for none).
    pub worker_bind: Option<String>,
    /// `MTA_INTERNAL_BIND`: where the API serves `/metrics` and `/health/detailed` (not
    /// served at all when unset or `off`; never on the public `MTA_BIND`).
    pub internal_bind: Option<String>,
    /// `MTA_SHUTDOWN_GRACE_SECS` (default 25): after SIGTERM, how long a worker may finish
    /// its tasks before it exits anyway (they then run again elsewhere).
    pub shutdown_grace: Duration,
    pub queue: QueueConfig,
    pub limits: LimitsConfig,
    pub security: SecurityConfig,
    pub webhooks: crate::webhook::DeliveryConfig,
    /// `MTA_PUBLIC_URL`: the API's address as clients see it (`https://mta.example.com`);
    /// makes the result URL in webhook payloads absolute.
    pub public_url: Option<String>,
    /// `MTA_CACHE_TTL_SECS`: how long identical submissions are answered from the cache (default 3600).
    pub cache_ttl: Duration,
    /// `MTA_RETENTION_SECS` (default 2592000, 30 days): how long everything a job leaves
    /// behind (records, timeline, result, credits, its upload) is kept after its last use;
    /// see `docs/operations.md`.
    pub retention: Duration,
    /// `MTA_DIRECT_UPLOAD_SECS` (default 3600): how long the presigned part URLs of a
    /// direct upload work (S3 stores only); its parts are dropped once this passes
    /// twice without the upload being completed.
    pub direct_upload_lifetime: Duration,
    /// `MTA_IMPORT_PREFIXES` (default none): `tenant=prefix/,…`, the store prefixes under which
    /// each tenant may submit objects already in the store (`POST /v1/uploads/import`).
    pub import_prefixes: std::collections::HashMap<crate::ids::Tenant, Vec<String>>,
    /// `MTA_IDEMPOTENCY_LEASE_SECS` (default 30): how long an `Idempotency-Key` stays claimed
    /// before its job is recorded; a claim whose process died frees itself after this.
    pub idempotency_lease: Duration,
    /// `MTA_ROWS_PER_CHUNK`: rows per attribute chunk the split stage aims for (default 500000).
    pub rows_per_chunk: u64,
    /// `MTA_SPLIT_PARALLELISM`: split tasks per input at most (default 4).
    pub split_parallelism: u32,
    /// `MTA_CSV_RANGE_BYTES`: an uncompressed CSV file is cut into byte ranges of at least
    /// this size, one split task each (default 32 MiB).
    pub csv_range_bytes: u64,
    /// `MTA_WORKER_CONCURRENCY`: tasks one worker process runs at once per stage (default: cores).
    pub worker_concurrency: usize,
    pub faults: Faults,
}

/// Queue transport settings (see `docs/queue.md` for why these values).
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `MTA_QUEUE_PREFIX`: prefix of every Redis key the service writes (default `mta`).
    pub prefix: String,
    /// `MTA_HEARTBEAT_SECS` (default 5).
    pub heartbeat: Duration,
    /// `MTA_MISSED_HEARTBEATS` (default 6): a worker silent this many beats is dead and its tasks run elsewhere.
    pub missed_heartbeats: usize,
    /// `MTA_POLL_MS` (default 250): how often an idle worker looks for tasks.
    pub poll_interval: Duration,
    /// `MTA_REDIS_TIMEOUT_MS` (default 5000): Redis response timeout.
    pub redis_timeout: Duration,
    /// `MTA_MAX_STARTS` (default 3, at most 20) and `MTA_GIVE_UP_AFTER_SECS` (default 900):
    /// when a task that keeps not finishing fails its job (`job::UnitStarts::exhausted`).
    pub max_starts: u32,
    pub give_up_after: Duration,
    /// `MTA_TASK_TIME_LIMIT_SECS` (default 600): a task still running after this is stopped
    /// and its job fails with `limit_exceeded`.
    pub task_time_limit: Duration,
}

/// Input limits (DESIGN.md 2.5); each refusal names its limit.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// `MTA_MAX_UPLOAD_BYTES` (default 50 GiB).
    pub max_upload_bytes: u64,
    /// `MTA_MIN_UPLOAD_BYTES_PER_SEC` (default 1024; 0 = off): an upload must bring at least
    /// this many bytes a second, counted over each 10 s, or it is cut (a trickle holds a
    /// connection and a reservation for as long as it likes otherwise).
    pub min_upload_bytes_per_sec: u64,
    /// `MTA_MAX_ROWS` (default unlimited).
    pub max_rows: Option<u64>,
    /// `MTA_MAX_CHANNELS` (default 100000).
    pub max_channels: usize,
    /// `MTA_MARKOV_MAX_CHANNELS` (default 10000): most distinct channels when the Markov model runs.
    pub markov_max_channels: usize,
    /// `MTA_MAX_BREAKDOWN_VALUES` (default 100000): most distinct (channel, breakdown values)
    /// keys of a job with `breakdown`.
    pub max_breakdown_values: usize,
    /// `MTA_MAX_SEGMENTS` (default 1000): most distinct values of a job's `segment_by` column.
    pub max_segments: usize,
    /// `MTA_MAX_DECOMPRESSED_BYTES` (default 200 GiB): what a gzip upload may expand to.
    pub max_decompressed_bytes: u64,
    /// `MTA_MAX_LINE_BYTES` (default 1 MiB): the longest CSV record or NDJSON line, which
    /// bounds what one reader buffers for a row.
    pub max_line_bytes: usize,
    /// `MTA_MAX_REPORT_PATHS` (default 1000000): the highest `max_report_paths` a job gets.
    pub max_report_paths: u32,
    /// `MTA_MAX_INTERVAL_REPLICATES` (default 1000): the most bootstrap replicates a job's `intervals` may ask for.
    pub max_interval_replicates: u32,
    /// `MTA_MAX_REPLICATE_CHANNELS` (default 20000000): the most replicates × channels (× lookback
    /// windows) a job's `intervals` may hold.
    pub max_replicate_channels: u64,
    /// `MTA_MAX_COST_ROWS` (default 1000000): the most rows of a job's cost table.
    pub max_cost_rows: u64,
}

/// What protects the API when it faces the internet (see `docs/security.md`).
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// `MTA_RATE_LIMIT_PER_HOUR` (default 1000): requests per key per hour, unless the key sets its own.
    pub key_requests_per_hour: u32,
    /// `MTA_RATE_LIMIT_TENANT_PER_HOUR` (default 10000; 0 = off): requests per hour over all keys of one tenant.
    pub tenant_requests_per_hour: u32,
    /// `MTA_RATE_LIMIT_GLOBAL_PER_MINUTE` (default 60000; 0 = off): requests per minute over all keys and pods.
    pub global_requests_per_minute: u32,
    /// `MTA_MAX_KEYS_PER_TENANT` (default 100; 0 = no limit): keys a tenant's admin may hold (revoked ones not counted).
    pub max_keys_per_tenant: u32,
    /// `MTA_TENANT_UPLOAD_BYTES_PER_DAY` (default 500 GiB): bytes one tenant may upload per UTC day.
    pub tenant_upload_bytes_per_day: u64,
    /// `MTA_CORS_ORIGINS`: comma-separated origins allowed to call the API from a browser (default none: CORS off).
    pub cors_origins: Vec<String>,
    /// `MTA_HSTS_SECS`: sends `Strict-Transport-Security` with this max-age; set it when TLS
    /// terminates in front of the API (default off).
    pub hsts_secs: Option<u64>,
    /// `MTA_REQUEST_TIMEOUT_SECS` (default 30): time limit of a request, uploads excepted.
    pub request_timeout: Duration,
    /// `MTA_AUDIT_MAX_ENTRIES` (default 100000): audit entries kept per tenant in Redis.
    pub audit_max_entries: u64,
    /// A request's line and headers must arrive within this (and the next request on a
    /// kept-alive connection must start within it).
    pub header_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Refused authentications per minute from one client address before it gets 429
    /// without an audit entry (0: no limit).
    pub auth_failures_per_minute: u32,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            key_requests_per_hour: 1000,
            tenant_requests_per_hour: 10_000,
            global_requests_per_minute: 60_000,
            max_keys_per_tenant: 100,
            tenant_upload_bytes_per_day: 500 << 30,
            cors_origins: Vec::new(),
            hsts_secs: None,
            request_timeout: Duration::from_secs(30),
            audit_max_entries: 100_000,
            header_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            auth_failures_per_minute: 60,
        }
    }
}

/// Fault injection for the reliability tests; all off unless set.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// `MTA_FAULT_ABORT_ON_CHANNEL`: a worker aborts its process when a chunk holds this channel.
    pub abort_on_channel: Option<String>,
    /// `MTA_FAULT_CHUNK_DELAY_MS`: an attribute task sleeps this long (in slices) before finishing.
    pub chunk_delay: Option<Duration>,
    /// `MTA_FAULT_ABORT_AFTER_IDEMPOTENCY_CLAIM`: an API process aborts right after it claims
    /// this `Idempotency-Key`, before the job is recorded (a process killed mid-request).
    pub abort_after_idempotency_claim: Option<String>,
}

impl Config {
    /// Defaults for one machine, rooted at `data_dir`.
    pub fn local(data_dir: PathBuf) -> Config {
        let store_url = format!("file://{}", data_dir.join("store").display());
        Config {
            redis_url: None,
            store_url,
            data_dir,
            bind: "127.0.0.1:8080".to_owned(),
            worker_bind: Some("127.0.0.1:8081".to_owned()),
            internal_bind: None,
            shutdown_grace: Duration::from_secs(25),
            queue: QueueConfig::default(),
            limits: LimitsConfig::default(),
            security: SecurityConfig::default(),
            webhooks: crate::webhook::DeliveryConfig {
                retry_delays: [5, 300, 1800, 7200, 18_000, 36_000].map(Duration::from_secs).to_vec(),
                connect_timeout: Duration::from_secs(5),
                timeout: Duration::from_secs(15),
                policy: crate::webhook::AddressPolicy::default(),
                secret_overlap: Duration::from_secs(86_400),
            },
            public_url: None,
            cache_ttl: Duration::from_secs(3600),
            retention: Duration::from_secs(30 * 86_400),
            direct_upload_lifetime: Duration::from_secs(3600),
            import_prefixes: std::collections::HashMap::new(),
            idempotency_lease: Duration::from_secs(30),
            rows_per_chunk: 500_000,
            split_parallelism: 4,
            csv_range_bytes: 32 << 20,
            worker_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            faults: Faults::default(),
        }
    }

    /// Reads the environment over the defaults.
    pub fn from_env() -> anyhow::Result<Config> {
        let data_dir = PathBuf::from(var("MTA_DATA_DIR")?.unwrap_or_else(|| "mta-data".to_owned()));
        let data_dir = std::path::absolute(&data_dir).context("Failed to resolve MTA_DATA_DIR")?;
        let mut config = Config::local(data_dir);
        config.redis_url = var("REDIS_URL")?;
        if let Some(url) = var("MTA_STORE")? {
            config.store_url = url;
        }
        if let Some(bind) = var("MTA_BIND")? {
            config.bind = bind;
        }
        if let Some(bind) = var("MTA_WORKER_BIND")? {
            config.worker_bind = (bind != "off").then_some(bind);
        }
        if let Some(bind) = var("MTA_INTERNAL_BIND")? {
            config.internal_bind = (bind != "off").then_some(bind);
        }
        config.shutdown_grace =
            parsed::<u64>("MTA_SHUTDOWN_GRACE_SECS")?.map_or(config.shutdown_grace, Duration::from_secs);
        let q = &mut config.queue;
        if let Some(prefix) = var("MTA_QUEUE_PREFIX")? {
            q.prefix = prefix;
        }
        q.heartbeat = parsed::<u64>("MTA_HEARTBEAT_SECS")?.map_or(q.heartbeat, Duration::from_secs);
        q.missed_heartbeats = parsed("MTA_MISSED_HEARTBEATS")?.unwrap_or(q.missed_heartbeats);
        q.poll_interval = parsed::<u64>("MTA_POLL_MS")?.map_or(q.poll_interval, Duration::from_millis);
        q.redis_timeout = parsed::<u64>("MTA_REDIS_TIMEOUT_MS")?.map_or(q.redis_timeout, Duration::from_millis);
        q.max_starts = parsed("MTA_MAX_STARTS")?.unwrap_or(q.max_starts);
        q.give_up_after = parsed::<u64>("MTA_GIVE_UP_AFTER_SECS")?.map_or(q.give_up_after, Duration::from_secs);
        q.task_time_limit = parsed::<u64>("MTA_TASK_TIME_LIMIT_SECS")?.map_or(q.task_time_limit, Duration::from_secs);
        let l = &mut config.limits;
        l.max_upload_bytes = parsed("MTA_MAX_UPLOAD_BYTES")?.unwrap_or(l.max_upload_bytes);
        l.min_upload_bytes_per_sec = parsed("MTA_MIN_UPLOAD_BYTES_PER_SEC")?.unwrap_or(l.min_upload_bytes_per_sec);
        l.max_rows = parsed("MTA_MAX_ROWS")?.or(l.max_rows);
        l.max_channels = parsed("MTA_MAX_CHANNELS")?.unwrap_or(l.max_channels);
        l.markov_max_channels = parsed("MTA_MARKOV_MAX_CHANNELS")?.unwrap_or(l.markov_max_channels);
        l.max_breakdown_values = parsed("MTA_MAX_BREAKDOWN_VALUES")?.unwrap_or(l.max_breakdown_values);
        l.max_segments = parsed("MTA_MAX_SEGMENTS")?.unwrap_or(l.max_segments);
        l.max_decompressed_bytes = parsed("MTA_MAX_DECOMPRESSED_BYTES")?.unwrap_or(l.max_decompressed_bytes);
        l.max_line_bytes = parsed("MTA_MAX_LINE_BYTES")?.unwrap_or(l.max_line_bytes);
        l.max_report_paths = parsed("MTA_MAX_REPORT_PATHS")?.unwrap_or(l.max_report_paths);
        l.max_cost_rows = parsed("MTA_MAX_COST_ROWS")?.unwrap_or(l.max_cost_rows);
        l.max_interval_replicates = parsed("MTA_MAX_INTERVAL_REPLICATES")?.unwrap_or(l.max_interval_replicates);
        l.max_replicate_channels = parsed("MTA_MAX_REPLICATE_CHANNELS")?.unwrap_or(l.max_replicate_channels);
        let s = &mut config.security;
        s.key_requests_per_hour = parsed("MTA_RATE_LIMIT_PER_HOUR")?.unwrap_or(s.key_requests_per_hour);
        s.tenant_requests_per_hour = parsed("MTA_RATE_LIMIT_TENANT_PER_HOUR")?.unwrap_or(s.tenant_requests_per_hour);
        s.global_requests_per_minute =
            parsed("MTA_RATE_LIMIT_GLOBAL_PER_MINUTE")?.unwrap_or(s.global_requests_per_minute);
        s.max_keys_per_tenant = parsed("MTA_MAX_KEYS_PER_TENANT")?.unwrap_or(s.max_keys_per_tenant);
        s.tenant_upload_bytes_per_day =
            parsed("MTA_TENANT_UPLOAD_BYTES_PER_DAY")?.unwrap_or(s.tenant_upload_bytes_per_day);
        if let Some(origins) = var("MTA_CORS_ORIGINS")? {
            s.cors_origins = origins.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        }
        s.hsts_secs = parsed("MTA_HSTS_SECS")?.or(s.hsts_secs);
        s.request_timeout = parsed::<u64>("MTA_REQUEST_TIMEOUT_SECS")?.map_or(s.request_timeout, Duration::from_secs);
        s.audit_max_entries = parsed("MTA_AUDIT_MAX_ENTRIES")?.unwrap_or(s.audit_max_entries);
        s.header_timeout = parsed::<u64>("MTA_HEADER_TIMEOUT_SECS")?.map_or(s.header_timeout, Duration::from_secs);
        s.idle_timeout = parsed::<u64>("MTA_IDLE_TIMEOUT_SECS")?.map_or(s.idle_timeout, Duration::from_secs);
        s.max_connections = parsed("MTA_MAX_CONNECTIONS")?.unwrap_or(s.max_connections);
        s.auth_failures_per_minute = parsed("MTA_AUTH_FAILURES_PER_MINUTE")?.unwrap_or(s.auth_failures_per_minute);
        let w = &mut config.webhooks;
        if let Some(delays) = var("MTA_WEBHOOK_RETRY_SECS")? {
            w.retry_delays = delays
                .split(',')
                .map(|d| d.trim().parse::<f64>().map(Duration::from_secs_f64))
                .collect::<Result<_, _>>()
                .context("MTA_WEBHOOK_RETRY_SECS must be comma-separated seconds")?;
        }
        w.timeout = parsed::<u64>("MTA_WEBHOOK_TIMEOUT_SECS")?.map_or(w.timeout, Duration::from_secs);
        w.secret_overlap =
            parsed::<u64>("MTA_WEBHOOK_SECRET_OVERLAP_SECS")?.map_or(w.secret_overlap, Duration::from_secs);
        let allow_http = parsed::<bool>("MTA_WEBHOOK_ALLOW_HTTP")?.unwrap_or(false);
        w.policy = crate::webhook::AddressPolicy::parse(&var("MTA_WEBHOOK_ALLOW")?.unwrap_or_default(), allow_http)
            .map_err(|e| anyhow::anyhow!("MTA_WEBHOOK_ALLOW: {e}"))?;
        config.public_url = var("MTA_PUBLIC_URL")?.map(|u| u.trim_end_matches('/').to_owned());
        config.cache_ttl = parsed::<u64>("MTA_CACHE_TTL_SECS")?.map_or(config.cache_ttl, Duration::from_secs);
        config.retention = parsed::<u64>("MTA_RETENTION_SECS")?.map_or(config.retention, Duration::from_secs);
        config.direct_upload_lifetime =
            parsed::<u64>("MTA_DIRECT_UPLOAD_SECS")?.map_or(config.direct_upload_lifetime, Duration::from_secs);
        if let Some(prefixes) = var("MTA_IMPORT_PREFIXES")? {
            config.import_prefixes = import_prefixes(&prefixes).context("MTA_IMPORT_PREFIXES")?;
        }
        config.idempotency_lease =
            parsed::<u64>("MTA_IDEMPOTENCY_LEASE_SECS")?.map_or(config.idempotency_lease, Duration::from_secs);
        config.rows_per_chunk = parsed("MTA_ROWS_PER_CHUNK")?.unwrap_or(config.rows_per_chunk);
        config.split_parallelism = parsed("MTA_SPLIT_PARALLELISM")?.unwrap_or(config.split_parallelism);
        config.csv_range_bytes = parsed("MTA_CSV_RANGE_BYTES")?.unwrap_or(config.csv_range_bytes).max(1);
        config.worker_concurrency = parsed("MTA_WORKER_CONCURRENCY")?.unwrap_or(config.worker_concurrency);
        config.faults.abort_on_channel = var("MTA_FAULT_ABORT_ON_CHANNEL")?;
        config.faults.chunk_delay = parsed::<u64>("MTA_FAULT_CHUNK_DELAY_MS")?.map(Duration::from_millis);
        config.faults.abort_after_idempotency_claim = var("MTA_FAULT_ABORT_AFTER_IDEMPOTENCY_CLAIM")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.queue.missed_heartbeats < 2 {
            bail!("MTA_MISSED_HEARTBEATS must be at least 2");
        }
        if self.queue.heartbeat.is_zero() {
            bail!("MTA_HEARTBEAT_SECS must be at least 1");
        }
        if !(1..=20).contains(&self.queue.max_starts) {
            // apalis drops a task that failed 25 times; the job must be failed before that.
            bail!("MTA_MAX_STARTS must be between 1 and 20");
        }
        if self.queue.task_time_limit.is_zero() {
            bail!("MTA_TASK_TIME_LIMIT_SECS must be at least 1");
        }
        if self.security.key_requests_per_hour == 0 {
            bail!("MTA_RATE_LIMIT_PER_HOUR must be at least 1");
        }
        if self.security.request_timeout.is_zero() {
            bail!("MTA_REQUEST_TIMEOUT_SECS must be at least 1");
        }
        if self.security.header_timeout.is_zero() || self.security.idle_timeout.is_zero() {
            bail!("MTA_HEADER_TIMEOUT_SECS and MTA_IDLE_TIMEOUT_SECS must be at least 1");
        }
        if self.security.max_connections == 0 {
            bail!("MTA_MAX_CONNECTIONS must be at least 1");
        }
        if self.retention.is_zero() {
            bail!("MTA_RETENTION_SECS must be at least 1");
        }
        // SigV4 presigned URLs are valid for at most seven days.
        if !(1..=604_800).contains(&self.direct_upload_lifetime.as_secs()) {
            bail!("MTA_DIRECT_UPLOAD_SECS must be between 1 and 604800");
        }
        if self.idempotency_lease.is_zero() {
            bail!("MTA_IDEMPOTENCY_LEASE_SECS must be at least 1");
        }
        if self.limits.max_line_bytes == 0 {
            bail!("MTA_MAX_LINE_BYTES must be at least 1");
        }
        if self.limits.max_report_paths < mta_core::paths::MIN_MAX_REPORT_PATHS {
            bail!("MTA_MAX_REPORT_PATHS must be at least {}", mta_core::paths::MIN_MAX_REPORT_PATHS);
        }
        if self.rows_per_chunk == 0 || self.split_parallelism == 0 || self.worker_concurrency == 0 {
            bail!("MTA_ROWS_PER_CHUNK, MTA_SPLIT_PARALLELISM and MTA_WORKER_CONCURRENCY must be at least 1");
        }
        Ok(())
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            prefix: "mta".to_owned(),
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 6,
            poll_interval: Duration::from_millis(250),
            redis_timeout: Duration::from_secs(5),
            max_starts: 3,
            give_up_after: Duration::from_secs(900),
            task_time_limit: Duration::from_secs(600),
        }
    }
}

impl LimitsConfig {
    /// The limits the engine enforces while decoding.
    pub fn engine(&self) -> mta_core::ingest::Limits {
        mta_core::ingest::Limits {
            max_rows: self.max_rows,
            max_channels: self.max_channels,
            markov_max_channels: self.markov_max_channels,
            max_breakdown_values: self.max_breakdown_values,
            max_segments: self.max_segments,
            max_decompressed_bytes: Some(self.max_decompressed_bytes),
            max_line_bytes: self.max_line_bytes,
            max_report_paths: self.max_report_paths,
            max_interval_replicates: self.max_interval_replicates,
            max_replicate_channels: self.max_replicate_channels,
        }
    }

    /// The limits of a job's cost table (`spend_upload_id`).
    pub fn spend(&self) -> mta_core::spend::SpendLimits {
        mta_core::spend::SpendLimits {
            max_rows: self.max_cost_rows,
            ..mta_core::spend::SpendLimits::beside(&self.engine())
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_upload_bytes: 50 << 30,
            min_upload_bytes_per_sec: 1024,
            max_rows: None,
            max_channels: 100_000,
            markov_max_channels: mta_core::markov::DEFAULT_MAX_CHANNELS,
            max_breakdown_values: mta_core::ingest::Limits::DEFAULT_MAX_BREAKDOWN_VALUES,
            max_segments: mta_core::ingest::Limits::DEFAULT_MAX_SEGMENTS,
            max_decompressed_bytes: 200 << 30,
            max_line_bytes: mta_core::ingest::Limits::DEFAULT_MAX_LINE_BYTES,
            max_report_paths: mta_core::paths::MAX_MAX_REPORT_PATHS,
            max_cost_rows: mta_core::spend::SpendLimits::DEFAULT_MAX_ROWS,
            max_interval_replicates: mta_core::intervals::DEFAULT_MAX_REPLICATES,
            max_replicate_channels: mta_core::intervals::DEFAULT_MAX_REPLICATE_CHANNELS,
        }
    }
}

/// `tenant=prefix/,…` → each tenant's prefixes, each ending in `/`. A prefix may not
/// reach the service's own objects (`tenants/…`) nor climb (`..`).
fn import_prefixes(text: &str) -> anyhow::Result<std::collections::HashMap<crate::ids::Tenant, Vec<String>>> {
    let mut map: std::collections::HashMap<crate::ids::Tenant, Vec<String>> = std::collections::HashMap::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (tenant, prefix) = entry.split_once('=').with_context(|| format!("`{entry}` is not tenant=prefix/"))?;
        let tenant: crate::ids::Tenant =
            tenant.trim().parse().map_err(|e| anyhow::anyhow!("`{tenant}` is not a tenant: {e}"))?;
        let prefix = format!("{}/", prefix.trim().trim_end_matches('/'));
        let segments: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
        if prefix.starts_with('/') || segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            bail!("`{prefix}` must be a relative prefix of the store, without empty, `.` or `..` segments");
        }
        if matches!(segments[0], "tenants" | "health") {
            bail!("`{prefix}` would reach the service's own objects");
        }
        map.entry(tenant).or_default().push(prefix);
    }
    Ok(map)
}

fn var(name: &str) -> anyhow::Result<Option<String>> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{name} is not valid UTF-8"),
    }
}

fn parsed<T: FromStr>(name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    var(name)?.map(|v| v.trim().parse::<T>().map_err(|e| anyhow::anyhow!("{name}=`{v}` is invalid: {e}"))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_prefixes_end_in_a_slash_and_never_reach_the_service_s_own_objects() {
        let map = import_prefixes(" acme=exports/acme , acme=shared/x/,beta=b/").unwrap();
        let acme: crate::ids::Tenant = "acme".parse().unwrap();
        assert_eq!(map[&acme], ["exports/acme/", "shared/x/"]);
        assert_eq!(map.len(), 2);
        for bad in
            ["acme", "acme=/abs/", "acme=a/../b", "acme=a//b", "acme=tenants/acme/", "acme=health", "Bad Tenant=x/"]
        {
            assert!(import_prefixes(bad).is_err(), "{bad}");
        }
    }
}
