//! Black-box tests of what operators rely on: health (API and workers), metrics, request
//! ids carried from the API into the workers' logs, and graceful shutdown on SIGTERM.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::service_support::{Service, ServiceSpec, client, free_port, terminate, wait_healthy};
use crate::support::sample;

pub(crate) async fn get_text(url: &str) -> (u16, String, reqwest::header::HeaderMap) {
    let response = client(None).get(url).send().await.expect("GET");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.text().await.expect("body"), headers)
}

/// The value of the sample `name` (exact text before the value) in OpenMetrics text.
pub(crate) fn sample_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_request_ids_describe_the_service() {
    let service = Service::start(ServiceSpec { logs: true, ..ServiceSpec::default() }).await;

    // A job submitted under a request id of the caller's choosing.
    let upload = service.upload_file(&sample("events.csv")).await;
    let response = service
        .http
        .post(format!("{}/v1/jobs", service.base))
        .header("x-request-id", "trace-42-abc")
        .json(&json!({ "upload_id": upload }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42-abc");
    let job: Value = response.json().await.unwrap();
    assert_eq!(job["request_id"], "trace-42-abc");
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(service.wait(&id, Duration::from_secs(120)).await["state"], "succeeded");

    // Every response has an id; an error body names it; a hostile id is replaced.
    let (status, body) = service.get("/v1/jobs/no-such-job").await;
    assert_eq!(status, 404);
    assert!(body["error"]["request_id"].as_str().is_some_and(|r| r.len() == 36), "{body}");
    let response = service.http.get(format!("{}/v1/jobs", service.base)).header("x-request-id", "a b\"<>").send().await;
    let generated = response.unwrap().headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(generated, "a b\"<>");

    // The worker's log lines for that job carry the request id, the job and the tenant.
    let log = service.log("worker-0");
    let tagged: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.to_string().contains("trace-42-abc"))
        .collect();
    assert!(!tagged.is_empty(), "no worker log line carries the request id:\n{log}");
    let span = &tagged[0]["span"];
    assert_eq!((span["job"].as_str(), span["tenant"].as_str()), (Some(id.as_str()), Some("t1")), "{}", tagged[0]);
    assert!(service.log("api").contains("trace-42-abc"), "the API's log carries the request id");

    // API health: the detailed view and the metrics only on the internal port, the probes on both.
    for path in ["/health/detailed", "/metrics"] {
        assert_eq!(service.get(path).await.0, 404, "the public port serves {path}");
    }
    let (status, detailed, _) = get_text(&format!("{}/health/detailed", service.internal)).await;
    assert_eq!(status, 200, "{detailed}");
    let detailed: Value = serde_json::from_str(&detailed).unwrap();
    assert_eq!(detailed["process"], "api");
    for component in ["redis", "object_store"] {
        assert_eq!(detailed["components"][component]["status"], "ok");
        assert!(detailed["components"][component]["latency_ms"].as_f64().is_some());
    }
    assert_eq!(detailed["queue_depth"], json!({ "attribute": 0, "reduce": 0, "split": 0 }));
    assert_eq!(detailed["jobs"]["succeeded"], 1, "{detailed}");
    assert_eq!(detailed["live_workers"], 1);
    assert!(detailed["version"].is_string());
    for path in ["/health", "/health/live", "/health/ready"] {
        assert_eq!(service.get(path).await.0, 200, "{path}");
        assert_eq!(get_text(&format!("{}{path}", service.internal)).await.0, 200, "internal {path}");
    }

    // Worker health.
    let worker = format!("http://127.0.0.1:{}", service.worker_ports[0]);
    let (status, body, _) = get_text(&format!("{worker}/health/detailed")).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["process"], "worker");
    assert!(body["last_heartbeat_secs"].as_f64().is_some_and(|s| s < 10.0), "{body}");
    assert_eq!(get_text(&format!("{worker}/health/live")).await.0, 200);
    assert_eq!(get_text(&format!("{worker}/health/ready")).await.0, 200);

    // Metrics: the API counts requests by route template and status; the worker counts tasks and rows.
    let (status, metrics, headers) = get_text(&format!("{}/metrics", service.internal)).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(metrics.trim_end().ends_with("# EOF"));
    let get_job = r#"mta_http_requests_total{method="GET",route="/v1/jobs/{id}",status="200"}"#;
    assert!(sample_value(&metrics, get_job).is_some_and(|n| n >= 1.0), "{metrics}");
    assert_eq!(sample_value(&metrics, r#"mta_jobs{state="succeeded"}"#), Some(1.0), "{metrics}");
    assert_eq!(sample_value(&metrics, "mta_live_workers"), Some(1.0));
    assert_eq!(sample_value(&metrics, "mta_jobs_submitted_total"), Some(1.0));
    assert!(metrics.contains("mta_http_request_duration_seconds_bucket"));
    assert!(!metrics.contains(&service.key), "no secret in metrics");
    let (_, worker_metrics, _) = get_text(&format!("{worker}/metrics")).await;
    assert!(sample_value(&worker_metrics, r#"mta_tasks_total{stage="split",outcome="ok"}"#).is_some_and(|n| n >= 1.0));
    assert!(sample_value(&worker_metrics, r#"mta_tasks_total{stage="reduce",outcome="ok"}"#) == Some(1.0));
    assert!(sample_value(&worker_metrics, "mta_rows_read_total").is_some_and(|n| n > 10_000.0), "{worker_metrics}");

    // A made-up method is one `other` series, not a new series per word.
    let odd = reqwest::Method::from_bytes(b"RANDOM123").unwrap();
    let _ = client(None).request(odd, format!("{}/health", service.base)).send().await.unwrap();
    let (_, metrics, _) = get_text(&format!("{}/metrics", service.internal)).await;
    assert!(metrics.contains(r#"method="other""#) && !metrics.contains("RANDOM123"), "{metrics}");

    // A refused key shows up in the refusal counters.
    assert_eq!(service.call(Some("mta_nope"), "GET", "/v1/jobs", None).await.0, 401);
    let (_, metrics, _) = get_text(&format!("{}/metrics", service.internal)).await;
    assert_eq!(sample_value(&metrics, r#"mta_auth_refusals_total{reason="malformed"}"#), Some(1.0));
}

/// One slow worker (each attribute task holds its chunk for a while).
fn slow(grace_secs: u64, delay_ms: u64) -> ServiceSpec {
    let env = vec![
        ("MTA_FAULT_CHUNK_DELAY_MS", delay_ms.to_string()),
        ("MTA_SHUTDOWN_GRACE_SECS", grace_secs.to_string()),
        ("MTA_ROWS_PER_CHUNK", "4000".to_owned()),
        ("MTA_HEARTBEAT_SECS", "1".to_owned()),
        ("MTA_MISSED_HEARTBEATS", "3".to_owned()),
    ];
    ServiceSpec { workers: 1, env, ..ServiceSpec::default() }
}

/// Submits the sample and waits until an attribute task has started; the job id and the unit.
async fn attribute_running(service: &Service) -> (String, String) {
    let upload = service.upload_file(&sample("events.csv")).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, timeline) = service.get(&format!("/v1/jobs/{id}/timeline")).await;
        let started = timeline["events"].as_array().into_iter().flatten().find_map(|e| {
            let unit = e["unit"].as_str()?;
            (e["event"] == "start" && unit.starts_with("attribute:")).then(|| unit.to_owned())
        });
        if let Some(unit) = started {
            return (id, unit);
        }
        assert!(Instant::now() < deadline, "no attribute task started: {timeline}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_worker_finish_its_task_and_exit() {
    let mut service = Service::start(slow(20, 2000)).await;
    let (id, unit) = attribute_running(&service).await;
    let signalled = Instant::now();
    terminate(service.worker_pid(0));
    let code = service.wait_worker_exit(0, Duration::from_secs(20)).expect("the worker exits within its grace period");
    assert_eq!(code, 0, "a clean exit");
    let (_, timeline) = service.get(&format!("/v1/jobs/{id}/timeline")).await;
    let ended = timeline["events"].as_array().unwrap().iter().any(|e| e["event"] == "end" && e["unit"] == unit);
    assert!(ended, "the running task finished before the exit: {timeline}");
    assert!(signalled.elapsed() < Duration::from_secs(20));
    // The rest of the job is done by a new worker, as an orchestrator would start one.
    service.revive_workers();
    assert_eq!(service.wait(&id, Duration::from_secs(120)).await["state"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_past_its_grace_period_exits_and_its_task_runs_again() {
    let mut service = Service::start(slow(1, 30_000)).await;
    let (id, unit) = attribute_running(&service).await;
    let signalled = Instant::now();
    terminate(service.worker_pid(0));
    service.wait_worker_exit(0, Duration::from_secs(10)).expect("the worker exits soon after its grace period");
    assert!(signalled.elapsed() < Duration::from_secs(10), "took {:?}", signalled.elapsed());
    service.revive_workers();
    // The abandoned task is recovered once its consumer's heartbeat is stale, and runs again.
    let restarted = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, timeline) = service.get(&format!("/v1/jobs/{id}/timeline")).await;
        let starts =
            timeline["events"].as_array().unwrap().iter().filter(|e| e["event"] == "start" && e["unit"] == unit);
        if starts.count() >= 2 {
            break;
        }
        assert!(Instant::now() < restarted, "the abandoned task did not run again: {timeline}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = service.call(Some(&service.key), "DELETE", &format!("/v1/jobs/{id}"), None).await;
    assert_eq!(status, 200, "the job is still alive (cancelled here to keep the test short)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_api_finish_a_request_in_flight() {
    let mut service = Service::start(ServiceSpec::default()).await;
    // An upload whose body arrives slowly: SIGTERM lands while it streams.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(receiver));
    let url = format!("{}/v1/uploads", service.base);
    let key = service.key.clone();
    let upload = tokio::spawn(async move { client(Some(&key)).post(url).body(body).send().await });
    sender.send(Ok(b"user_id,timestamp,channel,conversion\n".to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    terminate(service.api_pid());
    tokio::time::sleep(Duration::from_millis(500)).await;
    sender.send(Ok(b"u1,2024-01-01,ads,1\n".to_vec())).await.unwrap();
    drop(sender);
    let response = upload.await.unwrap().expect("the upload in flight is answered");
    assert_eq!(response.status(), 201);
    let code = service.wait_api_exit(Duration::from_secs(10)).expect("the API exits once drained");
    assert_eq!(code, 0);
    assert!(client(None).get(format!("{}/health/live", service.base)).send().await.is_err(), "no longer listening");
}

/// A stream of the chunks sent into `receiver`.
fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// glibc's `MALLOC_ARENA_MAX` in the starting environment of process `pid` (what glibc read).
fn malloc_arena_max_of(pid: u32) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the process's environment");
    environ
        .split(|&byte| byte == 0)
        .find_map(|entry| entry.strip_prefix(b"MALLOC_ARENA_MAX="))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// A service process started without `MALLOC_ARENA_MAX` runs with two malloc arenas, the same
/// process executed again (its memory grew job after job with glibc's default:
/// docs/operations.md, "Memory per task"); a value the operator set is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_processes_run_with_two_malloc_arenas_unless_told_otherwise() {
    // The harness's workers inherit this process's environment.
    let inherited = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".to_owned());
    let service = Service::start(ServiceSpec::default()).await;
    wait_healthy(&format!("http://127.0.0.1:{}", service.worker_ports[0])).await;
    assert_eq!(malloc_arena_max_of(service.worker_pid(0)).as_deref(), Some(inherited.as_str()), "mta-worker");
    let told =
        Service::start(ServiceSpec { env: vec![("MALLOC_ARENA_MAX", "5".into())], ..ServiceSpec::default() }).await;
    wait_healthy(&format!("http://127.0.0.1:{}", told.worker_ports[0])).await;
    assert_eq!(malloc_arena_max_of(told.worker_pid(0)).as_deref(), Some("5"), "mta-worker keeps the operator's value");

    // The all-in-one `mta serve`, with its private Redis.
    for (given, expected) in [(None, "2"), (Some("3"), "3")] {
        let data = tempfile::Builder::new().prefix("mta-serve-").tempdir().expect("data directory");
        let port = free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mta"));
        command
            .args(["serve", "--workers", "1"])
            .env("MTA_DATA_DIR", data.path())
            .env("MTA_BIND", format!("127.0.0.1:{port}"))
            .env_remove("REDIS_URL")
            .env_remove("MALLOC_ARENA_MAX")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(value) = given {
            command.env("MALLOC_ARENA_MAX", value);
        }
        let serve = StoppedOnDrop(command.spawn().expect("mta serve starts"));
        wait_healthy(&format!("http://127.0.0.1:{port}")).await;
        let seen = malloc_arena_max_of(serve.0.id());
        drop(serve);
        assert_eq!(seen.as_deref(), Some(expected), "mta serve with MALLOC_ARENA_MAX {given:?}");
    }
}

/// A child process sent SIGTERM and waited for when dropped, also when a test fails half way
/// (`mta serve` then stops its private Redis too).
struct StoppedOnDrop(std::process::Child);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}
