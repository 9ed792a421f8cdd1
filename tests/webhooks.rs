//! Black-box tests of webhooks: a real HTTP receiver on loopback that records what it gets
//! and answers as it is told (fail, 410, slow, not listening at all); signatures checked
//! by an independent implementation (Python's hmac); retries, Retry-After, redelivery,
//! a worker killed mid-delivery, and the address guard.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::service_support::{Service, ServiceSpec, free_port};
use crate::support::{sample, workdir, write};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    RetryAfter(u16, u64),
    /// Answers 200 after this long.
    Slow(Duration),
}

#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: String,
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    /// Once `answers` is used up.
    otherwise: Option<Answer>,
    received: Vec<Received>,
}

#[derive(Clone)]
struct Receiver {
    script: Arc<Mutex<Script>>,
    address: SocketAddr,
}

impl Receiver {
    /// Listens on `port` (a free one when 0) and answers with `answers`, then 200 (or `otherwise`).
    async fn start(port: u16, answers: Vec<Answer>, otherwise: Option<Answer>) -> Receiver {
        let script = Arc::new(Mutex::new(Script { answers: answers.into(), otherwise, received: Vec::new() }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the receiver");
        let address = listener.local_addr().unwrap();
        let app = Router::new().fallback(receive).with_state(Arc::clone(&script));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { script, address }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/mta", self.address)
    }

    fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(Instant::now() < deadline, "{} of {count} deliveries within {timeout:?}", received.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(script): State<Arc<Mutex<Script>>>, headers: HeaderMap, body: String) -> Response {
    let answer = {
        let mut script = script.lock().unwrap();
        script.received.push(Received { at: Instant::now(), headers, body });
        script.answers.pop_front().or_else(|| script.otherwise.clone()).unwrap_or(Answer::Status(200))
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::RetryAfter(code, secs) => {
            (StatusCode::from_u16(code).unwrap(), [("retry-after", secs.to_string())]).into_response()
        }
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
    }
}

/// Checks a delivery's signature with Python's hmac, not with our code.
fn signature_verifies(secret: &str, received: &Received) -> bool {
    let dir = workdir();
    let body = write(dir.path(), "body", &received.body);
    let header = |name: &str| received.headers[name].to_str().unwrap().to_owned();
    let script = "import sys, hmac, hashlib, base64\n\
        secret, msg_id, stamp, path, header = sys.argv[1:]\n\
        key = base64.b64decode(secret.split('_', 1)[1])\n\
        signed = (msg_id + '.' + stamp + '.').encode() + open(path, 'rb').read()\n\
        expected = 'v1,' + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()\n\
        sys.exit(0 if any(hmac.compare_digest(expected, s) for s in header.split(' ')) else 1)\n";
    std::process::Command::new("python3")
        .args(["-c", script, secret, &header("webhook-id"), &header("webhook-timestamp")])
        .arg(&body)
        .arg(header("webhook-signature"))
        .status()
        .expect("python3 runs")
        .success()
}

fn webhook_service(extra: &[(&'static str, &str)]) -> ServiceSpec {
    let mut env = vec![
        ("MTA_WEBHOOK_ALLOW", "127.0.0.1/32".to_owned()),
        ("MTA_WEBHOOK_ALLOW_HTTP", "true".to_owned()),
        ("MTA_WEBHOOK_RETRY_SECS", "1,2,2".to_owned()),
        ("MTA_WEBHOOK_TIMEOUT_SECS", "2".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    ServiceSpec { env, ..ServiceSpec::default() }
}

async fn submit_with_webhook(service: &Service, file: Vec<u8>, webhook: Value) -> (String, Value) {
    let upload = service.upload(file).await;
    let (status, job) = service.submit(json!({ "upload_id": upload, "webhook": webhook })).await;
    assert_eq!(status, 202, "{job}");
    (job["id"].as_str().unwrap().to_owned(), job)
}

async fn delivery(service: &Service, id: &str, until: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, delivery) = service.get(&format!("/v1/jobs/{id}/webhooks")).await;
        assert_eq!(status, 200, "{delivery}");
        if delivery["state"] == until {
            return delivery;
        }
        assert!(Instant::now() < deadline, "delivery never became {until}: {delivery}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_retried_on_schedule_and_recorded() {
    let service = Service::start(webhook_service(&[])).await;
    let receiver =
        Receiver::start(0, vec![Answer::Status(500), Answer::RetryAfter(503, 3), Answer::Status(200)], None).await;
    let file = std::fs::read(sample("events.csv")).unwrap();
    let (id, job) = submit_with_webhook(&service, file, json!({ "url": receiver.url() })).await;
    let secret = job["webhook_secret"].as_str().expect("a generated secret, shown once").to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, again) = service.get(&format!("/v1/jobs/{id}")).await;
    assert!(again.get("webhook_secret").is_none() && !again.to_string().contains(&secret), "{again}");

    let got = receiver.wait_for(3, Duration::from_secs(60)).await;
    let ids: Vec<&str> = got.iter().map(|r| r.headers["webhook-id"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one webhook-id across retries: {ids:?}");
    for received in &got {
        assert!(signature_verifies(&secret, received), "signature of {:?}", received.headers);
    }
    // 500 → retry after ~1 s (±10%); 503 with Retry-After: 3 → at least 3 s, though the schedule says 2.
    let first_gap = (got[1].at - got[0].at).as_secs_f64();
    let second_gap = (got[2].at - got[1].at).as_secs_f64();
    eprintln!("webhook retry gaps: {first_gap:.3} s, {second_gap:.3} s");
    assert!((0.85..2.5).contains(&first_gap), "first retry after {first_gap:.2} s");
    assert!((2.95..5.0).contains(&second_gap), "Retry-After honoured: {second_gap:.2} s");
    let event: Value = serde_json::from_str(&got[2].body).unwrap();
    assert_eq!(event["type"], "job.succeeded");
    assert_eq!(event["data"]["job_id"], id.as_str());
    assert_eq!(event["data"]["result_url"], format!("/v1/jobs/{id}/result"));
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!(event["data"]["summary"], result["summary"]);
    assert!(got.windows(2).all(|w| w[0].body == w[1].body), "retries send the same body");

    let recorded = delivery(&service, &id, "delivered").await;
    let statuses: Vec<u64> =
        recorded["attempts"].as_array().unwrap().iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [500, 503, 200], "{recorded}");
    assert!(
        recorded["attempts"][0]["next_attempt_at"].is_string() && recorded["attempts"][0]["latency_ms"].is_number()
    );

    // The owner asks for a redelivery: the same event comes again under the same id.
    let (status, _) =
        service.call(Some(&service.key), "POST", &format!("/v1/jobs/{id}/webhooks/redeliver"), None).await;
    assert_eq!(status, 202);
    let got = receiver.wait_for(4, Duration::from_secs(30)).await;
    assert_eq!(got[3].headers["webhook-id"].to_str().unwrap(), ids[0]);
    assert!(signature_verifies(&secret, &got[3]));

    // A failed job and a cancelled one announce themselves too, with a secret of the client's choosing.
    let own_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (failed, _) = submit_with_webhook(
        &service,
        b"user_id,timestamp,channel,conversion\n".to_vec(),
        json!({ "url": receiver.url(), "secret": own_secret }),
    )
    .await;
    let got = receiver.wait_for(5, Duration::from_secs(30)).await;
    let event: Value = serde_json::from_str(&got[4].body).unwrap();
    assert_eq!((event["type"].as_str(), event["data"]["job_id"].as_str()), (Some("job.failed"), Some(failed.as_str())));
    assert_eq!(event["data"]["error"]["code"], "empty_input");
    assert!(signature_verifies(own_secret, &got[4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_stops_at_once_and_a_spent_schedule_fails() {
    let service = Service::start(webhook_service(&[("MTA_FAULT_CHUNK_DELAY_MS", "3000")])).await;
    let gone = Receiver::start(0, Vec::new(), Some(Answer::Status(410))).await;
    let failing = Receiver::start(0, Vec::new(), Some(Answer::Status(500))).await;
    // Event-level input goes through slow attribute tasks, so the cancel lands mid-job.
    let file = std::fs::read(sample("events.csv")).unwrap();
    let (first, _) = submit_with_webhook(&service, file.clone(), json!({ "url": gone.url() })).await;
    // A cancelled job announces job.cancelled.
    let (status, _) = service.call(Some(&service.key), "DELETE", &format!("/v1/jobs/{first}"), None).await;
    assert_eq!(status, 200);
    let recorded = delivery(&service, &first, "gone").await;
    assert_eq!(recorded["attempts"].as_array().unwrap().len(), 1, "410 stops the retries: {recorded}");
    assert_eq!(recorded["event"], "job.cancelled");
    let event: Value = serde_json::from_str(&gone.received()[0].body).unwrap();
    assert_eq!(event["type"], "job.cancelled");

    // A receiver cannot park an event for ages or break a worker with a huge Retry-After: it is capped at a day.
    let parking = Receiver::start(0, vec![Answer::RetryAfter(503, 100_000_000_000_000)], None).await;
    let (parked, _) = submit_with_webhook(&service, file.clone(), json!({ "url": parking.url() })).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let next = loop {
        let (_, recorded) = service.get(&format!("/v1/jobs/{parked}/webhooks")).await;
        if let Some(next) = recorded["attempts"][0]["next_attempt_at"].as_str() {
            break chrono::DateTime::parse_from_rfc3339(next).unwrap();
        }
        assert!(Instant::now() < deadline, "{recorded}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hours = (next.timestamp() - chrono::Utc::now().timestamp()) as f64 / 3600.0;
    assert!((23.0..=24.1).contains(&hours), "next attempt in {hours:.1} h");

    let (second, _) = submit_with_webhook(&service, file, json!({ "url": failing.url() })).await;
    let recorded = delivery(&service, &second, "failed").await;
    assert_eq!(recorded["attempts"].as_array().unwrap().len(), 4, "1 attempt + 3 retries: {recorded}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(failing.received().len(), 4, "nothing after the schedule is spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_or_a_receiver_that_is_down_loses_no_event() {
    let mut service = Service::start(webhook_service(&[])).await;
    // The receiver holds the first request long enough for the worker to be killed meanwhile.
    let slow = Receiver::start(0, vec![Answer::Slow(Duration::from_secs(3))], None).await;
    let file = std::fs::read(sample("paths.csv")).unwrap();
    let (id, _) = submit_with_webhook(&service, file.clone(), json!({ "url": slow.url() })).await;
    slow.wait_for(1, Duration::from_secs(60)).await;
    service.kill_worker(0);
    service.revive_workers();
    // The lease (connect 5 s + timeout 2 s + 5 s) ends and another worker sends it again.
    let got = slow.wait_for(2, Duration::from_secs(40)).await;
    eprintln!("redelivered {:.1} s after the first attempt", (got[1].at - got[0].at).as_secs_f64());
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(got[0].body, got[1].body);
    delivery(&service, &id, "delivered").await;

    // Nothing listens on the port at first; the receiver comes up a few seconds later.
    let port = free_port();
    let late = format!("http://127.0.0.1:{port}/hooks/mta");
    let (id, _) = submit_with_webhook(&service, file, json!({ "url": late })).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let receiver = Receiver::start(port, Vec::new(), None).await;
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    let recorded = delivery(&service, &id, "delivered").await;
    assert!(recorded["attempts"].as_array().unwrap().len() >= 2, "{recorded}");
    assert!(recorded["attempts"][0]["error"].as_str().is_some(), "{recorded}");
    assert!(got.iter().all(|r| r.headers["webhook-id"] == got[0].headers["webhook-id"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_local_targets_are_refused() {
    // No allow-list: the operator's defaults.
    let service = Service::start(ServiceSpec::default()).await;
    let upload = service.upload(std::fs::read(sample("paths.csv")).unwrap()).await;
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
    ] {
        let (status, body) = service.submit(json!({ "upload_id": upload, "webhook": { "url": url } })).await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["details"][0]["column"], "webhook.url", "{url}: {body}");
    }
    let (status, body) = service
        .submit(json!({ "upload_id": upload, "webhook": { "url": "https://example.com/h", "secret": "abc" } }))
        .await;
    assert_eq!((status, body["error"]["details"][0]["column"].as_str()), (422, Some("webhook.secret")), "{body}");

    // A name that resolves to loopback passes the submission check but never gets a request.
    let receiver = Receiver::start(0, Vec::new(), None).await;
    let url = format!("https://localhost:{}/hooks/mta", receiver.address.port());
    let (status, job) = service.submit(json!({ "upload_id": upload, "webhook": { "url": url } })).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    let recorded = delivery(&service, id, "failed").await;
    let error = recorded["attempts"][0]["error"].as_str().unwrap();
    assert!(error.contains("loopback") && error.contains("refused"), "{error}");
    assert_eq!(recorded["attempts"].as_array().unwrap().len(), 1, "a refused address is not retried");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_default_webhook_signs_with_both_secrets_while_a_rotation_overlaps() {
    let service = Service::start(webhook_service(&[("MTA_WEBHOOK_SECRET_OVERLAP_SECS", "3")])).await;
    let receiver = Receiver::start(0, Vec::new(), None).await;
    let (_, keys) = service.get("/v1/admin/keys").await;
    let key_id = keys["keys"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/admin/keys/{key_id}/webhook");
    let (status, set) = service.call(Some(&service.key), "PUT", &path, Some(json!({ "url": receiver.url() }))).await;
    assert_eq!(status, 200, "{set}");
    let first = set["secret"].as_str().unwrap().to_owned();
    let (_, keys) = service.get("/v1/admin/keys").await;
    assert_eq!(keys["keys"][0]["webhook_url"], receiver.url().as_str());
    assert!(!keys.to_string().contains(&first), "secrets are never listed");

    // A job that names no webhook uses the key's.
    let file = std::fs::read(sample("paths.csv")).unwrap();
    let upload = service.upload(file.clone()).await;
    service.submit_ok(json!({ "upload_id": upload })).await;
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert!(signature_verifies(&first, &got[0]));

    // After a rotation both secrets sign until the overlap ends, then only the new one.
    let (status, rotated) = service.call(Some(&service.key), "POST", &format!("{path}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert!(rotated["previous_secret_valid_until"].is_string());
    let upload = service.upload(file.clone()).await;
    service.submit_ok(json!({ "upload_id": upload, "options": { "models": ["linear"] } })).await;
    let got = receiver.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(got[1].headers["webhook-signature"].to_str().unwrap().split(' ').count(), 2);
    assert!(signature_verifies(&first, &got[1]) && signature_verifies(&second, &got[1]));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let upload = service.upload(file).await;
    service.submit_ok(json!({ "upload_id": upload, "options": { "models": ["first_touch"] } })).await;
    let got = receiver.wait_for(3, Duration::from_secs(30)).await;
    assert!(signature_verifies(&second, &got[2]) && !signature_verifies(&first, &got[2]));

    // Removing it stops the announcements of later jobs.
    let (status, _) = service.call(Some(&service.key), "DELETE", &path, None).await;
    assert_eq!(status, 200);
    let upload = service.upload(b"path,total_conversions\na > b,1\n".to_vec()).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(service.get(&format!("/v1/jobs/{id}/webhooks")).await.0, 404);
}
