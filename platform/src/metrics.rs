//! Prometheus metrics (OpenMetrics text at `/metrics` on the API and on every worker).
//!
//! Each process records what it does (the API: HTTP, refusals, submissions, cache hits,
//! upload bytes; a worker: tasks, durations, retries, rows and bytes); the gauges that
//! describe the whole service (queue depth, jobs by state, live workers) are read from
//! Redis when scraped, so every process reports the same values for them.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route template (`/v1/jobs/{id}`), never the raw path, to bound cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub stage: String,
    /// `ok`, `input_error` (the job failed on its input), `retry`, `stopped`, `dead`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

/// Every metric of the service, registered once per process.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub auth_refusals: Family<ReasonLabels, Counter>,
    pub rate_limit_refusals: Family<ReasonLabels, Counter>,
    pub jobs_submitted: Counter,
    pub cache_hits: Counter,
    pub upload_bytes: Counter,
    pub tasks: Family<TaskLabels, Counter>,
    pub task_duration: Family<StageLabels, Histogram>,
    pub task_retries: Family<StageLabels, Counter>,
    pub rows_read: Counter,
    pub input_bytes: Counter,
    pub queue_depth: Family<StageLabels, Gauge>,
    pub jobs: Family<StateLabels, Gauge>,
    pub live_workers: Gauge,
    pub webhook_deliveries: Family<OutcomeLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered`, `retry`, `failed` (schedule spent or address refused), `gone` (410).
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("mta");
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.5, 12))
        });
        let task_duration = Family::<StageLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.5, 14))
        });
        let metrics = Metrics {
            registry: Arc::new(Registry::default()),
            http_requests: Family::default(),
            http_duration,
            auth_refusals: Family::default(),
            rate_limit_refusals: Family::default(),
            jobs_submitted: Counter::default(),
            cache_hits: Counter::default(),
            upload_bytes: Counter::default(),
            tasks: Family::default(),
            task_duration,
            task_retries: Family::default(),
            rows_read: Counter::default(),
            input_bytes: Counter::default(),
            queue_depth: Family::default(),
            jobs: Family::default(),
            live_workers: Gauge::default(),
            webhook_deliveries: Family::default(),
        };
        let r = &mut registry;
        r.register("http_requests", "HTTP requests answered, by route and status", metrics.http_requests.clone());
        r.register("http_request_duration_seconds", "HTTP request latency by route", metrics.http_duration.clone());
        r.register("auth_refusals", "Requests refused for their API key, by reason", metrics.auth_refusals.clone());
        r.register(
            "rate_limit_refusals",
            "Requests refused by a quota (rate, upload)",
            metrics.rate_limit_refusals.clone(),
        );
        r.register("jobs_submitted", "Jobs accepted by the API (cache hits included)", metrics.jobs_submitted.clone());
        r.register("cache_hits", "Submissions answered from the result cache", metrics.cache_hits.clone());
        r.register("upload_bytes", "Bytes uploaded and stored", metrics.upload_bytes.clone());
        r.register("tasks", "Stage tasks run by this worker, by outcome", metrics.tasks.clone());
        r.register("task_duration_seconds", "Stage task run time", metrics.task_duration.clone());
        r.register(
            "task_retries",
            "Task starts after the first (crash or failure recovery)",
            metrics.task_retries.clone(),
        );
        r.register("rows_read", "Input rows decoded by split tasks", metrics.rows_read.clone());
        r.register("input_bytes", "Input bytes fetched by split tasks", metrics.input_bytes.clone());
        r.register("queue_depth", "Tasks waiting per stage queue (whole service)", metrics.queue_depth.clone());
        r.register("jobs", "Jobs by state (whole service)", metrics.jobs.clone());
        r.register(
            "live_workers",
            "Worker processes with a recent heartbeat (whole service)",
            metrics.live_workers.clone(),
        );
        r.register("webhook_attempts", "Webhook delivery attempts, by outcome", metrics.webhook_deliveries.clone());
        Metrics { registry: Arc::new(registry), ..metrics }
    }

    /// The OpenMetrics text of every metric, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn task(&self, stage: &str, outcome: &str) {
        self.tasks.get_or_create(&TaskLabels { stage: stage.to_owned(), outcome: outcome.to_owned() }).inc();
    }

    pub fn webhook(&self, outcome: &str) {
        self.webhook_deliveries.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    pub fn refusal(family: &Family<ReasonLabels, Counter>, reason: &str) {
        family.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }
}
