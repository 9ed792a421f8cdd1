//! Direct uploads against the real `mta-api` and `mta-worker` processes and the
//! in-process S3 server: parts sent over real HTTP `PUT`s to the presigned URLs, the
//! upload completed, recorded like a streamed one and attributed; parts missing, out of
//! order or of the wrong length refused; the local store refusing the flow; imports.
//! A wrong ETag is the store's to refuse (S3 answers `InvalidPart`); the in-process server
//! does not check ETags, so a part never sent stands in for it here.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::service::assert_same_result;
use crate::service_support::{S3Server, Service, ServiceSpec, client, decode, without_job_id};
use crate::support::{attribute_json, sample, write};

const MIB: usize = 1 << 20;

/// About 12 MiB of events: the sample's rows 20 times over, each copy's users renamed, so
/// that 5 MiB parts make three parts, the last one shorter.
fn large_events(dir: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(sample("events.csv")).unwrap();
    let (header, rows) = text.split_once('\n').unwrap();
    let mut out = format!("{header}\n");
    for copy in 0..20 {
        for row in rows.lines() {
            out.push_str(&format!("c{copy}-{row}\n"));
        }
    }
    write(dir, "large.csv", out)
}

/// Starts a direct upload of `size` bytes in parts of `part_bytes`.
async fn start(service: &Service, size: usize, part_bytes: usize) -> (u16, Value) {
    let body = json!({ "size_bytes": size, "part_bytes": part_bytes });
    service.call(Some(&service.key), "POST", "/v1/uploads/direct", Some(body)).await
}

/// `PUT`s part `number` (from 1) of `bytes` to its presigned URL, with no key: the URL
/// alone lets it in. Answers the status and the ETag.
async fn put_part(started: &Value, bytes: &[u8], number: usize) -> (u16, String) {
    let part = &started["parts"][number - 1];
    let part_bytes = started["part_bytes"].as_u64().unwrap() as usize;
    let from = (number - 1) * part_bytes;
    let to = (from + part_bytes).min(bytes.len());
    put_bytes(part["url"].as_str().unwrap(), bytes[from..to].to_vec()).await
}

async fn put_bytes(url: &str, body: Vec<u8>) -> (u16, String) {
    let response = client(None).put(url).body(body).send().await.expect("PUT a part");
    let status = response.status().as_u16();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    if status != 200 {
        eprintln!("PUT {status}: {}", response.text().await.unwrap_or_default());
    }
    (status, etag)
}

async fn complete(service: &Service, started: &Value, parts: Value) -> (u16, Value) {
    let url = started["complete_url"].as_str().unwrap();
    service.call(Some(&service.key), "POST", url, Some(json!({ "parts": parts }))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_upload_in_parts_is_recorded_and_attributed_like_a_streamed_one() {
    let s3 = S3Server::start().await;
    let service = Service::start(s3.spec(ServiceSpec::default(), "tenant-data")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = large_events(dir.path());
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 10 * MIB && bytes.len() < 15 * MIB, "{}", bytes.len());

    let (status, started) = start(&service, bytes.len(), 5 * MIB).await;
    assert_eq!(status, 201, "{started}");
    let parts = started["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{started}");
    assert_eq!(parts[2]["size_bytes"], bytes.len() - 10 * MIB);
    assert!(parts.iter().all(|p| p["method"] == "PUT"));
    // Parts may arrive in any order.
    let mut etags = vec![String::new(); 3];
    for number in [3, 1, 2] {
        let (status, etag) = put_part(&started, &bytes, number).await;
        assert_eq!(status, 200, "part {number}");
        assert!(!etag.is_empty());
        etags[number - 1] = etag;
    }
    let named: Vec<Value> =
        etags.iter().enumerate().map(|(i, etag)| json!({ "part_number": i + 1, "etag": etag })).collect();
    let (status, record) = complete(&service, &started, json!(named)).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["upload_id"], started["upload_id"]);
    assert_eq!(record["size_bytes"], bytes.len());

    // The same bytes streamed through the API: the same size and SHA-256.
    let (status, streamed) =
        decode(service.http.post(format!("{}/v1/uploads", service.base)).body(bytes.clone()).send().await.unwrap())
            .await;
    assert_eq!(status, 201, "{streamed}");
    assert_eq!(record["sha256"], streamed["sha256"]);
    assert_eq!(record["size_bytes"], streamed["size_bytes"]);

    // Completed once: completing again finds nothing.
    let (status, again) = complete(&service, &started, json!(named)).await;
    assert_eq!(status, 404, "{again}");

    let job = service.submit_ok(json!({ "upload_id": record["upload_id"] })).await;
    let job = service.wait(&job, std::time::Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"]["rows"], 240_000);
    let (status, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    assert_same_result(&without_job_id(result), &attribute_json(&file, &[]), "result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_upload_with_a_part_missing_out_of_order_or_of_the_wrong_length_is_refused() {
    let s3 = S3Server::start().await;
    let service = Service::start(s3.spec(ServiceSpec::default(), "tenant-data")).await;
    let bytes: Vec<u8> = (0..6 * MIB).map(|i| b"abcdefgh\n"[i % 9]).collect();
    let (status, started) = start(&service, bytes.len(), 5 * MIB).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["parts"].as_array().unwrap().len(), 2);

    // The URL binds the upload and the part number: another number is refused by the store.
    let url = started["parts"][0]["url"].as_str().unwrap();
    assert!(url.contains("partNumber=1"), "{url}");
    let (status, _) = put_bytes(&url.replace("partNumber=1", "partNumber=2"), bytes[..1024].to_vec()).await;
    assert_eq!(status, 403, "another part number");

    let (status, first) = put_part(&started, &bytes, 1).await;
    assert_eq!(status, 200);
    // One part named of two.
    let (status, body) = complete(&service, &started, json!([{ "part_number": 1, "etag": first }])).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_option", "{body}");
    // Both named, out of order.
    let swapped = json!([{ "part_number": 2, "etag": "x" }, { "part_number": 1, "etag": first }]);
    let (status, body) = complete(&service, &started, swapped).await;
    assert_eq!(status, 422, "{body}");
    // Refused by the API before the store saw anything: sent at last, the upload completes.
    let (status, second) = put_part(&started, &bytes, 2).await;
    assert_eq!(status, 200);
    let both = json!([{ "part_number": 1, "etag": first }, { "part_number": 2, "etag": second }]);
    let (status, record) = complete(&service, &started, both).await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["size_bytes"], 6 * MIB);

    // Both named, but part 2 was never sent: the store refuses to join them.
    let (_, started) = start(&service, bytes.len(), 5 * MIB).await;
    let (_, first) = put_part(&started, &bytes, 1).await;
    let both = json!([{ "part_number": 1, "etag": first }, { "part_number": 2, "etag": "\"0\"" }]);
    let (status, body) = complete(&service, &started, both).await;
    assert_eq!(status, 422, "{body}");

    // A part longer than declared: the completed object has another size, and is refused and deleted.
    let (status, started) = start(&service, bytes.len(), 5 * MIB).await;
    assert_eq!(status, 201, "{started}");
    let (_, first) = put_part(&started, &bytes, 1).await;
    let url = started["parts"][1]["url"].as_str().unwrap();
    let (status, second) = put_bytes(url, bytes[5 * MIB..].iter().chain(b"extra").copied().collect()).await;
    assert_eq!(status, 200);
    let both = json!([{ "part_number": 1, "etag": first }, { "part_number": 2, "etag": second }]);
    let (status, body) = complete(&service, &started, both.clone()).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&format!("{} bytes", 6 * MIB + 5)), "{body}");
    let (status, body) = complete(&service, &started, both).await;
    assert_eq!(status, 404, "{body}");

    // Another tenant's key does not find the upload.
    let other = service.create_key("t2", "submit", &[]);
    let path = started["complete_url"].as_str().unwrap();
    let (status, body) = service.call(Some(&other), "POST", path, Some(json!({ "parts": [] }))).await;
    assert_eq!(status, 404, "{body}");
    // Limits: nothing over MTA_MAX_UPLOAD_BYTES, no empty file, no part under 5 MiB.
    let (status, body) = start(&service, 51 << 30, 64 * MIB).await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = start(&service, 0, 5 * MIB).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = start(&service, 100, MIB).await;
    assert_eq!(status, 422, "{body}");
}

/// A direct upload left uncompleted for twice its URLs' lifetime is aborted by the
/// retention sweep: its parts leave the store and it can no longer be completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_upload_never_completed_is_aborted_and_its_parts_dropped() {
    let s3 = S3Server::start().await;
    let mut spec = s3.spec(ServiceSpec::default(), "tenant-data");
    spec.env = vec![("MTA_DIRECT_UPLOAD_SECS", "3".into()), ("MTA_RETENTION_SECS", "10".into())];
    let service = Service::start(spec).await;
    let (status, started) = start(&service, 6 * MIB, 5 * MIB).await;
    assert_eq!(status, 201, "{started}");
    let url = started["parts"][0]["url"].as_str().unwrap();
    // A short part is enough to leave a part file in the store (and is quick, well within the URL's life).
    let (status, _) = put_bytes(url, vec![b'x'; 1024]).await;
    assert_eq!(status, 200);
    let multipart = url.split("uploadId=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let leftovers = || {
        std::fs::read_dir(s3.root())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(&multipart))
            .count()
    };
    assert!(leftovers() >= 2, "the store holds the upload in progress and its part");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while leftovers() > 0 {
        assert!(std::time::Instant::now() < deadline, "the uncompleted upload was not aborted");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let parts = json!([{ "part_number": 1, "etag": "\"a\"" }, { "part_number": 2, "etag": "\"b\"" }]);
    let (status, body) = complete(&service, &started, parts).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_store_refuses_direct_uploads_and_mta_submit_streams_instead() {
    let service = Service::start(ServiceSpec { logs: true, ..ServiceSpec::default() }).await;
    let (status, body) = start(&service, 6 * MIB, 5 * MIB).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "direct_upload_unsupported", "{body}");

    let output = mta_submit(&service, &sample("events.csv"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("uploaded") && !stderr.contains("straight"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("paid_search"));
    assert!(!service.log("api").contains(r#""via":"direct""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mta_submit_sends_the_file_straight_to_an_s3_store() {
    let s3 = S3Server::start().await;
    let service = Service::start(s3.spec(ServiceSpec { logs: true, ..ServiceSpec::default() }, "tenant-data")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = large_events(dir.path());
    let output = mta_submit(&service, &file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // About 12 MiB: three parts of at least 5 MiB, sent at once.
    assert!(stderr.contains("straight to the object store; parts: 3"), "{stderr}");
    let (_, jobs) = service.get("/v1/jobs").await;
    let job = &jobs["jobs"][0];
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"]["rows"], 240_000);
    let log = service.log("api");
    let stored = log.lines().find(|line| line.contains("upload stored")).expect("an upload in the API's log");
    assert!(stored.contains(r#""via":"direct""#) && stored.contains(job["upload_id"].as_str().unwrap()), "{stored}");
}

/// `mta submit FILE --wait` against `service`.
fn mta_submit(service: &Service, file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mta"))
        .args(["submit", file.to_str().unwrap(), "--wait"])
        .env("MTA_URL", &service.base)
        .env("MTA_API_KEY", &service.key)
        .output()
        .expect("mta runs")
}

/// An operator lets tenant `t1` import objects under `exports/t1/`: one there is read in
/// place, recorded and attributed; keys elsewhere, climbing out or of another tenant are
/// refused, and both outcomes are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_imports_an_object_under_its_allowed_prefix_only() {
    let s3 = S3Server::start().await;
    let mut spec = s3.spec(ServiceSpec::default(), "tenant-data");
    spec.env = vec![("MTA_IMPORT_PREFIXES", "t1=exports/t1, t2=exports/t2/".into())];
    let service = Service::start(spec).await;
    // Objects put in the bucket by someone else (the S3 server keeps objects as files).
    let exports = s3.root().join(S3Server::BUCKET).join("tenant-data/exports");
    let events = std::fs::read(sample("events.csv")).unwrap();
    for tenant in ["t1", "t2"] {
        std::fs::create_dir_all(exports.join(tenant)).unwrap();
        std::fs::write(exports.join(tenant).join("events.csv"), &events).unwrap();
    }
    let import =
        |key: &'static str| service.call(Some(&service.key), "POST", "/v1/uploads/import", Some(json!({ "key": key })));

    let (status, record) = import("exports/t1/events.csv").await;
    assert_eq!(status, 201, "{record}");
    assert_eq!(record["imported_from"], "exports/t1/events.csv");
    assert_eq!(record["size_bytes"], events.len());
    let streamed = service.upload(events.clone()).await;
    let (_, job) = service.submit(json!({ "upload_id": streamed, "options": { "models": ["linear"] } })).await;
    let job = service.wait(job["id"].as_str().unwrap(), std::time::Duration::from_secs(60)).await;
    let (_, streamed_result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    // Another spec than the streamed job's, so that the imported object is read, not the cache.
    let id = service.submit_ok(json!({ "upload_id": record["upload_id"] })).await;
    let job = service.wait(&id, std::time::Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job.get("cached_from").is_none(), "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_same_result(&without_job_id(result.clone()), &attribute_json(&sample("events.csv"), &[]), "result");
    assert_same_result(&result["models"]["linear"], &streamed_result["models"]["linear"], "linear");

    for (key, want) in [
        ("exports/t2/events.csv", 403),
        ("exports/t1/../t2/events.csv", 403),
        ("exports/t1//events.csv", 403),
        ("/exports/t1/events.csv", 403),
        ("tenants/t1/uploads/x", 403),
        ("exports/t1", 403),
        ("exports/t1/missing.csv", 404),
    ] {
        let (status, body) = import(key).await;
        assert_eq!(status, want, "{key}: {body}");
    }
    // Tenant t3 has no prefix at all.
    let other = service.create_key("t3", "submit", &[]);
    let body = json!({ "key": "exports/t1/events.csv" });
    let (status, _) = service.call(Some(&other), "POST", "/v1/uploads/import", Some(body)).await;
    assert_eq!(status, 403);

    let (_, audit) = service.get("/v1/admin/audit").await;
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "upload.imported").count(), 1, "{audit}");
    assert_eq!(actions.iter().filter(|a| **a == "upload.import_refused").count(), 6, "{audit}");
}
