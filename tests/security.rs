//! The attack suite: black-box tests of keys, roles, tenant isolation, limits, rate
//! limits, headers and the audit log, against the real `mta-api`, `mta-worker` and
//! `mta keys` binaries and a real redis-server. Every refusal also checks that nothing
//! leaked (bodies carry no data) and nothing changed (objects are as they were).

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::service_support::{Service, ServiceSpec, client, decode};
use crate::support::sample;

/// A request with raw headers: status, body and response headers.
async fn send(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, Value, HeaderMap) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client(None).request(method, format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let headers = response.headers().clone();
    let (status, body) = decode(response).await;
    (status, body, headers)
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `mta keys create ... --json`: (id, secret).
fn operator_key(service: &Service, tenant: &str, role: &str, extra: &[&str]) -> (String, String) {
    let output = service
        .keys_command(&["create", "--tenant", tenant, "--role", role, "--name", "attack suite", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let made: Value = serde_json::from_slice(&output.stdout).unwrap();
    (made["id"].as_str().unwrap().to_owned(), made["key"].as_str().unwrap().to_owned())
}

/// Creates a key of the admin's tenant through the API: (id, secret).
async fn api_key(service: &Service, admin: &str, role: &str) -> (String, String) {
    let (status, made) = service
        .call(Some(admin), "POST", "/v1/admin/keys", Some(json!({ "name": format!("{role} key"), "role": role })))
        .await;
    assert_eq!(status, 201, "{made}");
    (made["id"].as_str().unwrap().to_owned(), made["key"].as_str().unwrap().to_owned())
}

async fn upload_as(service: &Service, key: &str, body: Vec<u8>) -> (u16, Value) {
    let response = client(Some(key)).post(format!("{}/v1/uploads", service.base)).body(body).send().await.unwrap();
    decode(response).await
}

/// Every `/v1` route, with ids that exist nowhere.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/uploads"),
    ("GET", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f"),
    ("DELETE", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f"),
    ("GET", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f/result"),
    ("GET", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f/credits"),
    ("GET", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f/timeline"),
    ("GET", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f/webhooks"),
    ("POST", "/v1/jobs/6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f/webhooks/redeliver"),
    ("GET", "/v1/admin/keys"),
    ("POST", "/v1/admin/keys"),
    ("DELETE", "/v1/admin/keys/key_0123456789abcdef"),
    ("POST", "/v1/admin/keys/key_0123456789abcdef/rotate"),
    ("GET", "/v1/admin/audit"),
    ("PUT", "/v1/admin/keys/key_0123456789abcdef/webhook"),
    ("DELETE", "/v1/admin/keys/key_0123456789abcdef/webhook"),
    ("POST", "/v1/admin/keys/key_0123456789abcdef/webhook/rotate"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_roles_revocation_expiry_headers_and_audit() {
    // Every route with every kind of bad key, from one address: more refusals than the
    // per-address limit allows (its own test is below).
    let env = vec![("MTA_AUTH_FAILURES_PER_MINUTE", "100000".to_owned())];
    let mut service = Service::start(ServiceSpec { logs: true, env, ..ServiceSpec::default() }).await;
    let base = service.base.clone();
    let admin = service.key.clone();
    let unknown = format!("mta_{}", "0".repeat(64));

    // No key, malformed keys, an unknown key: 401 on every route, before anything runs.
    let refused: [&[(&str, &str)]; 6] = [
        &[],
        &[("authorization", "Bearer abc")],
        &[("authorization", &bearer(&"z".repeat(68)))],
        &[("authorization", "Basic dXNlcjpwYXNz")],
        &[("x-api-key", &unknown)],
        &[("authorization", &bearer(&admin[..admin.len() - 1]))],
    ];
    for headers in refused {
        for (method, path) in ROUTES {
            let (status, body, response_headers) = send(&base, method, path, headers).await;
            assert_eq!(status, 401, "{method} {path} with {headers:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized");
            assert_eq!(response_headers["www-authenticate"], "Bearer");
        }
    }
    // Both header forms work.
    assert_eq!(send(&base, "GET", "/v1/jobs", &[("x-api-key", &admin)]).await.0, 200);
    assert_eq!(send(&base, "GET", "/v1/jobs", &[("authorization", &bearer(&admin))]).await.0, 200);

    // A job of the tenant to act on.
    let job = service.run(&sample("events.csv"), json!({})).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(service.get(&format!("/v1/jobs/{job_id}/result")).await.0, 200);

    // Roles: read reads; submit also uploads and cancels; only admin manages keys and reads the audit.
    let (read_id, read) = api_key(&service, &admin, "read").await;
    let (submit_id, submit) = api_key(&service, &admin, "submit").await;
    assert_eq!(service.call(Some(&read), "GET", "/v1/jobs", None).await.0, 200);
    assert_eq!(service.call(Some(&read), "GET", &format!("/v1/jobs/{job_id}/result"), None).await.0, 200);
    for (key, method, path) in [
        (&read, "POST", "/v1/uploads".to_owned()),
        (&read, "POST", "/v1/jobs".to_owned()),
        (&read, "DELETE", format!("/v1/jobs/{job_id}")),
        (&read, "GET", "/v1/admin/keys".to_owned()),
        (&submit, "GET", "/v1/admin/keys".to_owned()),
        (&submit, "POST", "/v1/admin/keys".to_owned()),
        (&submit, "GET", "/v1/admin/audit".to_owned()),
        (&submit, "DELETE", format!("/v1/admin/keys/{read_id}")),
    ] {
        let (status, body, _) = send(&base, method, &path, &[("authorization", &bearer(key))]).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert_eq!(upload_as(&service, &submit, b"a,b\n1,2\n".to_vec()).await.0, 201);
    let (_, after) = service.get(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(after["state"], "succeeded", "a read key's cancel changed nothing");

    // Key requests are validated; the tenant cannot be chosen (it is the admin's own).
    for (body, field) in [
        (json!({ "name": "x", "role": "admin", "tenant": "t2" }), "tenant"),
        (json!({ "name": "x", "role": "superuser" }), "role"),
        (json!({ "name": "", "role": "read" }), "name"),
        (json!({ "name": "x", "role": "read", "expires_at": "2001-01-01T00:00:00Z" }), "expires_at"),
        (json!({ "name": "x", "role": "read", "requests_per_hour": 0 }), "requests_per_hour"),
        (json!({ "name": "x", "role": "read", "requests_per_hour": 1001 }), "requests_per_hour"),
    ] {
        let (status, answer) = service.call(Some(&admin), "POST", "/v1/admin/keys", Some(body)).await;
        assert!(status == 422 || status == 400, "{field}: {status} {answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    let (_, listed) = service.get("/v1/admin/keys").await;
    assert!(listed.to_string().contains(&read_id) && !listed.to_string().contains(&read), "no secrets: {listed}");

    // Revocation reaches every API process on the very next request.
    let second = service.start_api(&[]).await;
    assert_eq!(send(&second, "GET", "/v1/jobs", &[("authorization", &bearer(&read))]).await.0, 200);
    let (status, revoked) = service.call(Some(&admin), "DELETE", &format!("/v1/admin/keys/{read_id}"), None).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    for api in [&base, &second] {
        assert_eq!(send(api, "GET", "/v1/jobs", &[("authorization", &bearer(&read))]).await.0, 401);
    }
    let (status, _) = service.call(Some(&admin), "POST", &format!("/v1/admin/keys/{read_id}/rotate"), None).await;
    assert_eq!(status, 409, "a revoked key stays revoked");

    // Rotation: the new secret works, the old one is dead at once.
    let (status, rotated) =
        service.call(Some(&admin), "POST", &format!("/v1/admin/keys/{submit_id}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let rotated_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(service.call(Some(&rotated_key), "GET", "/v1/jobs", None).await.0, 200);
    assert_eq!(service.call(Some(&submit), "GET", "/v1/jobs", None).await.0, 401);

    // Expiry.
    let made = Instant::now();
    let (expiring_id, expiring) = operator_key(&service, "t1", "read", &["--expires-in", "2s"]);
    assert_eq!(service.call(Some(&expiring), "GET", "/v1/jobs", None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2300).saturating_sub(made.elapsed())).await;
    let (status, body) = service.call(Some(&expiring), "GET", "/v1/jobs", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"));

    // Operator revocation through the CLI, too.
    let revoke = service.keys_command(&["revoke", &expiring_id]).output().unwrap();
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));

    // Security headers on data, refusals and health alike; no CORS unless configured.
    for (path, headers) in [
        ("/v1/jobs", vec![("authorization", bearer(&admin)), ("origin", "https://app.example".to_owned())]),
        ("/v1/jobs", vec![]),
        ("/health", vec![]),
        ("/no-such-route", vec![]),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (_, _, response) = send(&base, "GET", path, &headers).await;
        assert_eq!(response["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(response["x-frame-options"], "DENY");
        assert_eq!(response["referrer-policy"], "no-referrer");
        assert_eq!(response["cache-control"], "no-store");
        assert!(response["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
        assert!(response.get("access-control-allow-origin").is_none(), "CORS is off by default");
        assert!(response.get("strict-transport-security").is_none(), "no HSTS without TLS configured");
    }

    // The audit log has every kind of event, with key ids and never a secret.
    let (status, audit) = service.get("/v1/admin/audit?limit=1000").await;
    assert_eq!(status, 200);
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in ["key.created", "key.rotated", "key.revoked", "auth.refused", "job.created", "result.downloaded"] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    let expired = audit["entries"].as_array().unwrap().iter().find(|e| e["detail"] == "expired key").unwrap();
    assert_eq!(expired["key_id"], expiring_id);
    let secrets = [&admin, &read, &submit, &rotated_key, &expiring];
    let log = service.log("api");
    assert!(log.contains("auth.refused"), "audit events reach the log");
    for secret in secrets {
        assert!(!audit.to_string().contains(secret.as_str()), "a secret in the audit log");
        assert!(!log.contains(secret.as_str()), "a secret in the API log");
        assert!(!log.contains(&secret[4..20]), "part of a secret in the API log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_only_their_own_objects() {
    let service = Service::start(ServiceSpec::default()).await;
    let (_, other) = operator_key(&service, "t2", "admin", &[]);
    let base = service.base.clone();

    // Tenant t1 has a finished job with credits; t2 has none.
    let file = std::fs::read(sample("events.csv")).unwrap();
    let upload = service.upload(file.clone()).await;
    let id = service.submit_ok(json!({ "upload_id": upload, "export_credits": true })).await;
    let job = service.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["tenant"], "t1");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let channel = result["models"]["linear"]["channels"][0]["channel"].as_str().unwrap().to_owned();

    // Every object kind of t1 is a 404 for t2: never 403, never the data.
    for path in [
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/result"),
        format!("/v1/jobs/{id}/result?format=csv"),
        format!("/v1/jobs/{id}/credits"),
        format!("/v1/jobs/{id}/timeline"),
    ] {
        let (status, body, _) = send(&base, "GET", &path, &[("authorization", &bearer(&other))]).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains(&channel), "{path} leaked data: {body}");
    }
    let (_, listed) = service.call(Some(&other), "GET", "/v1/jobs", None).await;
    assert_eq!(listed["jobs"], json!([]), "t2 lists none of t1's jobs");
    let (status, body) = service.call(Some(&other), "POST", "/v1/jobs", Some(json!({ "upload_id": upload }))).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no such upload"), "{body}");

    // A cancel from another tenant is a 404 and changes nothing.
    let second = service.submit_ok(json!({ "upload_id": upload, "options": { "lookback_days": 29 } })).await;
    let (status, _) = service.call(Some(&other), "DELETE", &format!("/v1/jobs/{second}"), None).await;
    assert_eq!(status, 404);
    assert_eq!(service.wait(&second, Duration::from_secs(120)).await["state"], "succeeded");

    // The result cache is per tenant: t2's identical submission is computed afresh.
    let theirs = upload_as(&service, &other, file).await.1["upload_id"].as_str().unwrap().to_owned();
    let (status, job) = service
        .call(Some(&other), "POST", "/v1/jobs", Some(json!({ "upload_id": theirs, "export_credits": true })))
        .await;
    assert_eq!(status, 202, "{job}");
    assert!(job.get("cached_from").is_none(), "t2 was answered from t1's cache: {job}");
    let theirs = job["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    while service.call(Some(&other), "GET", &format!("/v1/jobs/{theirs}"), None).await.1["state"] != "succeeded" {
        assert!(Instant::now() < deadline, "t2's job did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Keys and audit of another tenant are out of reach of its admins too.
    let (_, own_keys) = service.get("/v1/admin/keys").await;
    let t1_key = own_keys["keys"][0]["id"].as_str().unwrap().to_owned();
    for (method, path) in
        [("DELETE", format!("/v1/admin/keys/{t1_key}")), ("POST", format!("/v1/admin/keys/{t1_key}/rotate"))]
    {
        assert_eq!(service.call(Some(&other), method, &path, None).await.0, 404, "{method} {path}");
    }
    assert_eq!(service.call(Some(&service.key), "GET", "/v1/jobs", None).await.0, 200, "t1's key still works");
    let (_, their_keys) = service.call(Some(&other), "GET", "/v1/admin/keys", None).await;
    assert!(their_keys["keys"].as_array().unwrap().iter().all(|k| k["tenant"] == "t2"), "{their_keys}");
    let (_, their_audit) = service.call(Some(&other), "GET", "/v1/admin/audit", None).await;
    assert!(!their_audit.to_string().contains(&id), "t2's audit shows t1's job: {their_audit}");

    // Guessed and hostile ids are the same 404.
    for path in [
        "/v1/jobs/00000000-0000-0000-0000-000000000000".to_owned(),
        format!("/v1/jobs/{}", uuid_like()),
        "/v1/jobs/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/v1/jobs/%2e%2e/result".to_owned(),
        format!("/v1/jobs/{id}%00/result"),
        "/v1/admin/keys/..%2Fkeys/rotate".to_owned(),
    ] {
        let method = if path.contains("/admin/") { "POST" } else { "GET" };
        let (status, body, _) = send(&base, method, &path, &[("authorization", &bearer(&service.key))]).await;
        assert_eq!(status, 404, "{path}: {body}");
    }

    // Names that reach object storage are ours: a hostile multipart file name and upload id go nowhere.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(sample("paths.csv")).unwrap()).file_name("../../../../evil.csv"),
    );
    let response = service.http.post(format!("{base}/v1/jobs")).multipart(form).send().await.unwrap();
    let (status, job) = decode(response).await;
    assert_eq!(status, 202, "{job}");
    let done = service.wait(job["id"].as_str().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    for upload_id in ["../../etc/passwd", "tenants/t2/uploads/x", "%2e%2e"] {
        let (status, body) = service.submit(json!({ "upload_id": upload_id })).await;
        assert_eq!(status, 422, "{upload_id}: {body}");
    }
    // JSON that tries to smuggle a tenant or an unknown option in is refused, naming it.
    for (spec, field) in [
        (json!({ "upload_id": upload, "tenant": "t2" }), "tenant"),
        (json!({ "upload_id": upload, "options": { "models": ["linear\"], \"admin\": [\"x"] } }), "models"),
    ] {
        let (status, body) = service.submit(spec).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    // Header values that are not printable ASCII are refused before they reach Redis.
    for bad in ["ab\tc", "a b"] {
        let (status, body, _) =
            send(&base, "POST", "/v1/jobs", &[("authorization", &bearer(&service.key)), ("idempotency-key", bad)])
                .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    assert_layout(&service.store_dir());
    service.assert_nothing_stuck().await;
}

/// Every stored object sits under `tenants/{t1|t2}/`, and nothing escaped the store.
fn assert_layout(store: &Path) {
    let mut stack = vec![store.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path.strip_prefix(store).unwrap().to_string_lossy().into_owned();
            assert!(relative.starts_with("tenants/t1/") || relative.starts_with("tenants/t2/"), "{relative}");
            assert!(!relative.contains("evil"), "{relative}");
        }
    }
    assert!(!store.parent().unwrap().parent().unwrap().join("evil.csv").exists());
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let hex = format!("{nanos:032x}");
    format!("{}-{}-4{}-8{}-{}", &hex[..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_decompression_and_quota_limits_hold() {
    let env = vec![
        ("MTA_MAX_UPLOAD_BYTES", "1000000".to_owned()),
        ("MTA_MAX_DECOMPRESSED_BYTES", "5000000".to_owned()),
        ("MTA_TENANT_UPLOAD_BYTES_PER_DAY", "3000000".to_owned()),
    ];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let base = service.base.clone();
    let uploads = || std::fs::read_dir(service.store_dir().join("tenants/t1/uploads")).map_or(0, |d| d.count());

    // Over the size limit: refused from Content-Length, and while streaming when there is none.
    let (status, body) = upload_as(&service, &service.key, vec![b'x'; 2_000_000]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("limit_exceeded")), "{body}");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..20).map(|_| Ok(vec![b'x'; 100_000])).collect();
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client(Some(&service.key)).post(format!("{base}/v1/uploads")).body(streamed).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(uploads(), 0, "nothing of a refused upload is kept");

    // A gzip bomb: 60 MB of rows in about 60 kB; the job fails on the decompressed limit.
    let mut text = String::from("user_id,timestamp,channel,conversion,value\n");
    text.push_str(&"u1,2024-01-01,ads,0,0\n".repeat(60_000_000 / 22));
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 200_000);
    let upload = service.upload(bomb).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "limit_exceeded", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("max_decompressed_bytes"), "{job}");

    // The tenant's daily upload quota (3 MB): the fourth 900 kB upload is refused, other tenants are not.
    for _ in 0..3 {
        assert_eq!(upload_as(&service, &service.key, vec![b'x'; 900_000]).await.0, 201);
    }
    let response =
        client(Some(&service.key)).post(format!("{base}/v1/uploads")).body(vec![b'x'; 900_000]).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "retry after {retry} s");
    let (_, other) = operator_key(&service, "t2", "submit", &[]);
    assert_eq!(upload_as(&service, &other, vec![b'x'; 900_000]).await.0, 201);

    // JSON bodies are capped; options are validated with the field named.
    let huge = json!({ "name": "x".repeat(2 << 20), "role": "read" });
    assert_eq!(service.call(Some(&service.key), "POST", "/v1/admin/keys", Some(huge)).await.0, 413);
    let small = service.upload(b"user_id,timestamp,channel,conversion\nu,2024-01-01,a,1\n".to_vec()).await;
    for (options, field) in [
        (json!({ "markov_order": 9 }), "markov_order"),
        (json!({ "lookback_days": -1 }), "lookback_days"),
        (json!({ "models": ["no_such_model"] }), "models"),
    ] {
        let (status, body) = service.submit(json!({ "upload_id": small, "options": options })).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
}

/// Concurrent uploads of one tenant reserve the daily quota before they stream: together
/// they never pass it, whether or not they declare their length, and what a refused
/// upload reserved is given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_pass_the_daily_upload_quota() {
    const QUOTA: u64 = 3_000_000;
    const SIZE: usize = 500_000;
    let env = vec![("MTA_TENANT_UPLOAD_BYTES_PER_DAY", QUOTA.to_string())];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    // Each body trickles in over five pieces, so the uploads overlap; half declare their length.
    let upload = |declared: bool| {
        let pieces = futures_util::stream::iter(0..5).then(|_| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, std::io::Error>(vec![b'x'; SIZE / 5])
        });
        let mut request = client(Some(&service.key))
            .post(format!("{}/v1/uploads", service.base))
            .body(reqwest::Body::wrap_stream(pieces));
        if declared {
            request = request.header("content-length", SIZE.to_string());
        }
        async move { decode(request.send().await.unwrap()).await }
    };
    let answers = futures_util::future::join_all((0..20).map(|i| upload(i % 2 == 0))).await;
    let (mut accepted, mut stored) = (0u64, 0usize);
    for (status, body) in &answers {
        match status {
            201 => {
                accepted += body["size_bytes"].as_u64().unwrap();
                stored += 1;
            }
            429 => assert_eq!(body["error"]["code"], "upload_quota_exceeded", "{body}"),
            _ => panic!("unexpected answer {status}: {body}"),
        }
    }
    assert!(accepted <= QUOTA, "{accepted} bytes accepted on a quota of {QUOTA} bytes per day");
    assert!(stored >= 1 && stored < answers.len(), "{stored} of {} uploads accepted", answers.len());
    let files = std::fs::read_dir(service.store_dir().join("tenants/t1/uploads")).map_or(0, |d| d.count());
    assert_eq!(files, stored, "refused uploads keep nothing");

    // Nothing stays reserved: exactly the rest of the quota can still be uploaded.
    let left = usize::try_from(QUOTA - accepted).unwrap();
    if left > 0 {
        let (status, body) = upload_as(&service, &service.key, vec![b'x'; left]).await;
        assert_eq!(status, 201, "{left} bytes are left: {body}");
    }
    let (status, body) = upload_as(&service, &service.key, vec![b'x'; 1]).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("upload_quota_exceeded")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_by_every_api_process() {
    let mut service = Service::start(ServiceSpec::default()).await;
    let first = service.base.clone();
    let second = service.start_api(&[("MTA_CORS_ORIGINS", "https://app.example")]).await;
    let (_, limited) = operator_key(&service, "t3", "submit", &["--requests-per-hour", "10"]);
    let auth = bearer(&limited);

    // Ten requests, alternating between the two API processes, then the eleventh is refused.
    for i in 0..10u32 {
        let api = if i % 2 == 0 { &first } else { &second };
        let (status, body, headers) = send(api, "GET", "/v1/jobs", &[("authorization", &auth)]).await;
        assert_eq!(status, 200, "request {i}: {body}");
        assert_eq!(headers["ratelimit-limit"], "10");
        assert_eq!(headers["ratelimit-remaining"].to_str().unwrap(), (9 - i).to_string(), "request {i}");
        assert_eq!(headers["ratelimit-policy"], "10;w=3600");
    }
    for api in [&first, &second] {
        let (status, body, headers) = send(api, "GET", "/v1/jobs", &[("authorization", &auth)]).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limited");
        assert_eq!(headers["ratelimit-remaining"], "0");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((300..=400).contains(&retry), "one request per 360 s comes back: retry after {retry}");
    }
    // Another key is not affected.
    assert_eq!(service.call(Some(&service.key), "GET", "/v1/jobs", None).await.0, 200);
    let (_, t3_admin) = operator_key(&service, "t3", "admin", &[]);
    let (_, audit) = service.call(Some(&t3_admin), "GET", "/v1/admin/audit", None).await;
    assert!(audit.to_string().contains("rate_limit.refused"), "{audit}");

    // A global limit counts every key (here a third API process allows 3 per minute).
    let third = service.start_api(&[("MTA_RATE_LIMIT_GLOBAL_PER_MINUTE", "3")]).await;
    let keys: Vec<String> = (0..4).map(|_| operator_key(&service, "t4", "read", &[]).1).collect();
    for (i, key) in keys.iter().enumerate() {
        let (status, body, _) = send(&third, "GET", "/v1/jobs", &[("authorization", &bearer(key))]).await;
        assert_eq!(status, if i < 3 { 200 } else { 429 }, "key {i}: {body}");
    }

    // CORS: only the configured origin, only on the API that configures it.
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization"),
    ];
    let (_, _, headers) = send(&second, "OPTIONS", "/v1/jobs", &preflight).await;
    assert_eq!(headers["access-control-allow-origin"], "https://app.example");
    let evil = [("origin", "https://evil.example"), ("access-control-request-method", "POST")];
    let (_, _, headers) = send(&second, "OPTIONS", "/v1/jobs", &evil).await;
    assert!(headers.get("access-control-allow-origin").is_none());
    let (_, _, headers) = send(&first, "OPTIONS", "/v1/jobs", &preflight).await;
    assert!(headers.get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_document_describes_every_route_and_its_key() {
    let service = Service::start(ServiceSpec::default()).await;
    let (status, document, _) = send(&service.base, "GET", "/openapi.json", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    for (method, path) in ROUTES {
        let template =
            path.replace("6c1f6f0e-1d2b-4c3d-9e4f-5a6b7c8d9e0f", "{id}").replace("key_0123456789abcdef", "{id}");
        let operation = &document["paths"][&template][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {template} is not in /openapi.json");
        assert!(operation["security"].as_array().is_some_and(|s| !s.is_empty()), "{method} {template}: no security");
        assert!(operation["responses"]["401"].is_object() && operation["responses"]["429"].is_object());
    }
    // The human-readable page works offline: everything it loads comes from the API itself.
    let response = client(None).get(format!("{}/docs/", service.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("http"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui") && !page.contains("://"), "the docs page loads something from elsewhere");
}

/// Reads from `stream` until the server closes it (or `limit` passes); how long that took.
fn closed_within(stream: &mut std::net::TcpStream, limit: Duration) -> Option<Duration> {
    use std::io::Read;
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            // A 408 or nothing at all, then the end.
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            Err(_) => return Some(start.elapsed()),
        }
        if start.elapsed() > limit {
            return None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_excess_connections_are_bounded() {
    use std::io::Write;
    let env = vec![
        ("MTA_HEADER_TIMEOUT_SECS", "1".to_owned()),
        ("MTA_IDLE_TIMEOUT_SECS", "2".to_owned()),
        ("MTA_MAX_CONNECTIONS", "4".to_owned()),
    ];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let address = service.base.trim_start_matches("http://").to_owned();
    let connect = || std::net::TcpStream::connect(&address).unwrap();

    // Half a request line, or half the headers: closed once the header timeout passes.
    for partial in ["GET /health/li", "GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: 1"] {
        let mut stream = connect();
        stream.write_all(partial.as_bytes()).unwrap();
        let closed = closed_within(&mut stream, Duration::from_secs(15));
        assert!(closed.is_some_and(|t| t < Duration::from_secs(8)), "{partial:?} kept open: {closed:?}");
    }
    // A kept-alive connection with no next request: closed too.
    let mut stream = connect();
    stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(15));
    assert!(closed.is_some_and(|t| t < Duration::from_secs(8)), "an idle keep-alive connection kept open: {closed:?}");

    // Four silent connections take every slot: the next request waits until they are
    // closed, then is served.
    let silent: Vec<_> = (0..4).map(|_| connect()).collect();
    let start = Instant::now();
    let response = client(None).get(format!("{}/health/live", service.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(500), "a fifth connection was served at once");
    drop(silent);
    assert_eq!(send(&service.base, "GET", "/health/live", &[]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_keys_from_one_address_is_cut_off_without_an_audit_entry_each() {
    let env = vec![("MTA_AUTH_FAILURES_PER_MINUTE", "5".to_owned())];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let audit_len = || {
        let reply = service.redis.command("XLEN mta:audit:-").unwrap();
        reply.trim().trim_start_matches(':').parse::<u64>().unwrap()
    };
    let before = audit_len();
    let mut statuses = Vec::new();
    for i in 0..40 {
        let key = if i % 2 == 0 { "mta_nope".to_owned() } else { format!("mta_{}", "0".repeat(40)) };
        let (status, body, headers) = send(&service.base, "GET", "/v1/jobs", &[("authorization", &bearer(&key))]).await;
        if status == 429 {
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
            assert!(headers.contains_key("retry-after"));
        } else {
            assert_eq!(status, 401, "{body}");
        }
        statuses.push(status);
    }
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    assert!(refused <= 6, "{refused} refusals answered 401: {statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    let audited = audit_len() - before;
    assert!(audited <= 6, "{audited} audit entries for 40 bad keys");
    // The address's valid key still works.
    assert_eq!(service.get("/v1/jobs").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_with_many_keys_cannot_starve_the_others() {
    let mut service = Service::start(ServiceSpec::default()).await;
    let api = service.start_api(&[("MTA_RATE_LIMIT_TENANT_PER_HOUR", "6")]).await;
    // Three keys of one tenant, each allowed 1000 an hour: together they get the tenant's 6.
    let greedy: Vec<String> = (0..3).map(|_| operator_key(&service, "greedy", "read", &[]).1).collect();
    for i in 0..6 {
        let key = &greedy[i % 3];
        let (status, body, headers) = send(&api, "GET", "/v1/jobs", &[("authorization", &bearer(key))]).await;
        assert_eq!(status, 200, "request {i}: {body}");
        // The headers keep reporting the key's own quota.
        assert_eq!(headers["ratelimit-limit"], "1000");
    }
    for key in &greedy {
        let (status, body, headers) = send(&api, "GET", "/v1/jobs", &[("authorization", &bearer(key))]).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limited");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("tenant's") && message.contains("6 requests per 3600 s"), "{message}");
        assert!(headers.contains_key("retry-after"));
    }
    // A fresh key of the same tenant is refused too; another tenant is not affected.
    let (_, fresh) = operator_key(&service, "greedy", "read", &[]);
    assert_eq!(send(&api, "GET", "/v1/jobs", &[("authorization", &bearer(&fresh))]).await.0, 429);
    let (_, other) = operator_key(&service, "patient", "read", &[]);
    assert_eq!(send(&api, "GET", "/v1/jobs", &[("authorization", &bearer(&other))]).await.0, 200);
    // The refusal is audited with the limit that made it (read from Redis: the tenant's own
    // admin would be refused too).
    let newest = service.redis.command("XREVRANGE mta:audit:greedy + - COUNT 1").unwrap();
    assert!(
        newest.contains("rate_limit.refused") && newest.contains("the tenant limit: 6 requests per 3600 s"),
        "{newest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holds_a_bounded_number_of_keys_and_racing_rotations_leave_one_secret() {
    let mut service = Service::start(ServiceSpec::default()).await;
    let api = service.start_api(&[("MTA_MAX_KEYS_PER_TENANT", "3")]).await;
    let (_, admin) = operator_key(&service, "t9", "admin", &[]);
    let create = |name: &str| {
        let body = json!({ "name": name, "role": "read" });
        client(Some(&admin)).post(format!("{api}/v1/admin/keys")).json(&body).send()
    };
    // The admin's own key is one of the three. Concurrent creations never pass the limit.
    let answers = futures_util::future::join_all((0..6).map(|i| create(&format!("k{i}")))).await;
    let mut statuses = Vec::new();
    let mut made = Vec::new();
    for response in answers {
        let (status, body) = decode(response.unwrap()).await;
        if status == 201 {
            made.push(body["id"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(body["error"]["code"], "limit_exceeded", "{body}");
            assert!(body["error"]["message"].as_str().unwrap().contains("limit of 3"), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(made.len(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|&&s| s == 413).count(), 4, "{statuses:?}");
    // Revoking one frees its place; the operator is not held to the limit.
    let (status, _) = service.call(Some(&admin), "DELETE", &format!("/v1/admin/keys/{}", made[0]), None).await;
    assert_eq!(status, 200);
    assert_eq!(decode(create("after revoke").await.unwrap()).await.0, 201);
    assert_eq!(decode(create("one too many").await.unwrap()).await.0, 413);
    operator_key(&service, "t9", "read", &[]);

    // Ten rotations of one key at once: exactly one secret works, and no lookup is left
    // behind for the others (one lookup per live key in Redis).
    let target = &made[1];
    let rotate = || client(Some(&admin)).post(format!("{api}/v1/admin/keys/{target}/rotate")).send();
    let mut secrets = Vec::new();
    for response in futures_util::future::join_all((0..10).map(|_| rotate())).await {
        let (status, body) = decode(response.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        secrets.push(body["key"].as_str().unwrap().to_owned());
    }
    let mut working = 0;
    for secret in &secrets {
        let (status, body, _) = send(&api, "GET", "/v1/jobs", &[("authorization", &bearer(secret))]).await;
        assert!(status == 200 || status == 401, "{body}");
        working += usize::from(status == 200);
    }
    assert_eq!(working, 1, "of ten racing rotations, exactly the last secret works");
    let (_, listed) = service.call(Some(&admin), "GET", "/v1/admin/keys", None).await;
    let live = listed["keys"].as_array().unwrap().iter().filter(|k| k["revoked_at"].is_null()).count();
    // Besides t9's, the only live key is the harness's admin key of t1.
    let lookups = service.redis.command("KEYS mta:apikey:*").unwrap();
    assert!(lookups.starts_with(&format!("*{}\r\n", live + 1)), "lookups: {lookups:?}, live keys of t9: {live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_trickles_below_the_minimum_rate_is_cut_and_gives_its_quota_back() {
    use std::io::{Read, Write};
    let env = vec![("MTA_MIN_UPLOAD_BYTES_PER_SEC", "1000".to_owned())];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let address = service.base.trim_start_matches("http://").to_owned();
    let key = service.key.clone();
    let started = Instant::now();
    // 100 bytes a second of a 1 MB upload, on a plain socket (a client library would not
    // read the answer before it has sent the body).
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let head = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 1000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        while started.elapsed() < Duration::from_secs(40) {
            // Writes fail once the service has answered and closed: then only read.
            let _ = stream.write_all(&[b'x'; 50]);
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("limit_exceeded") && answer.contains("MTA_MIN_UPLOAD_BYTES_PER_SEC"), "{answer}");
    assert!((Duration::from_secs(9)..Duration::from_secs(30)).contains(&elapsed), "cut after {elapsed:?}");
    // Its reservation was given back: today's upload counter holds nothing of it.
    let day = chrono::Utc::now().format("%Y-%m-%d");
    let used = service.redis.command(&format!("GET mta:quota:t1:upload-bytes:{day}")).unwrap_or_default();
    assert!(used.starts_with("$1\r\n0") || used.starts_with("$-1") || used.starts_with(":0"), "{used:?}");
    // A normal upload is not affected.
    assert_eq!(upload_as(&service, &service.key, b"a,b\n1,2\n".to_vec()).await.0, 201);
}
