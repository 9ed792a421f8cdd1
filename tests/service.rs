//! Black-box tests of the job pipeline: real redis-server, real `mta-api` and
//! `mta-worker` processes, real HTTP over loopback, the local-filesystem object store.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::service_support::{S3Server, Service, ServiceSpec, decode, ranked_window_rows, sorted, without_job_id};
use crate::support::{attribute_json, credit, events_over_channels, inflating, sample, workdir, write};

/// Small chunks and byte ranges so the 12k-row sample (about 600 kB) is split by four
/// tasks into several partitions.
fn chunked(workers: usize) -> ServiceSpec {
    let env = vec![("MTA_ROWS_PER_CHUNK", "2000".into()), ("MTA_CSV_RANGE_BYTES", "100000".into())];
    ServiceSpec { workers, env, ..ServiceSpec::default() }
}

/// Equal up to float rounding (partials merge in a different order than one local pass).
pub(crate) fn assert_same_result(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Number(g), Value::Number(w)) => {
            let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
            assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{path}: got {g}, want {w}");
        }
        (Value::Object(g), Value::Object(w)) => {
            assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{path}: keys differ");
            for (key, value) in w {
                assert_same_result(&g[key], value, &format!("{path}.{key}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: lengths differ");
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                assert_same_result(g, w, &format!("{path}[{i}]"));
            }
        }
        (g, w) => assert_eq!(g, w, "{path}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_end_to_end_and_matches_the_local_command() {
    end_to_end(chunked(2)).await;
}

/// An idle worker asks Redis for work at its poll interval (4 times a second per stage
/// queue), not each time one of its consumers wakes: polled together, every fetch's reply
/// made the other queues fetch, hundreds of times a second per idle process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_asks_for_work_at_its_poll_interval_not_in_a_loop() {
    let service = Service::start(ServiceSpec::default()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    service.redis.command("CONFIG RESETSTAT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // 3 queues × 4 fetches a second × 3 s = 36, plus heartbeats and the webhook loop's claims.
    let scripts = service.redis.calls("evalsha");
    assert!((10..=120).contains(&scripts), "{scripts} scripts in 3 s of idling");
}

/// A stage that ends hands its job to the next stage's consumers at once, in every worker
/// process (announced through Redis), not at their next poll: with a 5 s poll interval,
/// each hand-over would otherwise wait up to 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_hand_over_at_once_not_at_the_next_poll() {
    let mut spec = chunked(2);
    spec.env.push(("MTA_POLL_MS", "5000".into()));
    let service = Service::start(spec).await;
    // Let both workers' consumers start and subscribe.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let job = service.run(&sample("events.csv"), json!({})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let runs = intervals(&service, job["id"].as_str().unwrap()).await;
    let of = |prefix: &'static str| runs.iter().filter(move |r| r.0.starts_with(prefix));
    let splits_end = of("split:").filter_map(|r| r.3).max().unwrap();
    let attributes_start = of("attribute:").map(|r| r.2).min().unwrap();
    let attributes_end = of("attribute:").filter_map(|r| r.3).max().unwrap();
    let reduce_start = of("reduce").map(|r| r.2).min().unwrap();
    assert!(of("attribute:").map(|r| &r.1).collect::<std::collections::HashSet<_>>().len() == 2, "{runs:?}");
    for (gap, what) in
        [(attributes_start - splits_end, "split → attribute"), (reduce_start - attributes_end, "attribute → reduce")]
    {
        assert!(gap < 1_500, "{what} took {gap} ms: {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_end_to_end_over_s3() {
    let s3 = S3Server::start().await;
    end_to_end(s3.spec(chunked(2), "tenant-data")).await;
}

/// A Parquet object in S3 split over several tasks: each task fetches the footer and its
/// own row groups, not the whole object (nor does the planner), so the input is fetched
/// about once in all however many tasks share it; the result is the local command's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_tasks_fetch_only_their_row_groups_of_a_parquet_object_in_s3() {
    use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
    let dir = workdir();
    let rows = 240_000usize;
    let user = |i: usize| format!("user-{:08x}", (i / 4).wrapping_mul(2_654_435_761) % 1_000_003);
    let converts = |i: usize| i % 4 == 3 && i % 12 != 3;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", std::sync::Arc::new(StringArray::from_iter_values((0..rows).map(user)))),
        (
            "timestamp",
            std::sync::Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..rows).map(|i| 1_767_225_600_000_000 + i as i64 * 1_000_003),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "channel",
            std::sync::Arc::new(StringArray::from_iter((0..rows).map(|i| {
                // Channels of unequal weight, so that no two tie in any model's ranking.
                let pick = (i.wrapping_mul(2_654_435_761) >> 9) % 15;
                (!converts(i)).then(|| {
                    ["search", "email", "social", "display", "affiliate"]
                        [[0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4][pick]]
                })
            }))),
        ),
        ("conversion", std::sync::Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(converts(i)))))),
        (
            "conversion_value",
            std::sync::Arc::new(Float64Array::from_iter(
                (0..rows).map(|i| converts(i).then_some((i % 97) as f64 + 0.99)),
            )),
        ),
    ];
    let file = dir.path().join("events.parquet");
    crate::support::write_batch(&file, &RecordBatch::try_from_iter(columns).unwrap(), rows / 8);
    let size = std::fs::metadata(&file).unwrap().len() as f64;
    assert!(size > 1_000_000.0, "{size}: large beside a footer and the first fetch of its tail");

    let s3 = S3Server::start().await;
    let env = vec![("MTA_SPLIT_PARALLELISM", "4".into()), ("MTA_ROWS_PER_CHUNK", "50000".into())];
    let service = Service::start(s3.spec(ServiceSpec { env, ..ServiceSpec::default() }, "tenant-data")).await;
    let job = service.run(&file, json!({})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"]["splits_total"], 4, "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    assert_same_result(&without_job_id(result), &attribute_json(&file, &[]), "result");

    let worker = format!("http://127.0.0.1:{}", service.worker_ports[0]);
    let (_, metrics, _) = crate::operations::get_text(&format!("{worker}/metrics")).await;
    let fetched = crate::operations::sample_value(&metrics, "mta_input_bytes_total").expect("a counter");
    // Each of the five tasks (the planner and four splits) once fetched the whole object.
    assert!(fetched < 1.5 * size, "{fetched} bytes fetched of a {size}-byte object");
}

/// Without per-journey credits, chunk files keep no row numbers: a partition's rows are
/// numbered by their order, which must be file order across split tasks and flushes, since
/// ties in time are broken by file order. Every touch here is at one instant, each user's
/// rows spread over the whole file: first touch must credit `a`, last touch `z`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_in_time_are_broken_by_file_order_across_split_tasks() {
    let dir = workdir();
    let mut csv = String::from("user_id,timestamp,channel,conversion\n");
    let passes = ["a", "m1", "m2", "m3", "m4", "z"];
    for channel in passes {
        for user in 0..2_000 {
            csv.push_str(&format!("u{user},2026-01-01T00:00:00Z,{channel},0\n"));
        }
    }
    for user in (0..2_000).step_by(2) {
        csv.push_str(&format!("u{user},2026-01-01T01:00:00Z,,1\n"));
    }
    let file = write(dir.path(), "ties.csv", csv);
    let service = Service::start(chunked(2)).await;
    let models = "first_touch,last_touch,position_based";
    let job = service.run(&file, json!({ "options": { "models": models.split(',').collect::<Vec<_>>() } })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(job["progress"]["splits_total"].as_u64().unwrap() > 1, "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    let local = attribute_json(&file, &["--models", models]);
    assert_eq!(credit(&local, "first_touch", "a").0, 1_000.0);
    assert_eq!(credit(&local, "last_touch", "z").0, 1_000.0);
    assert_same_result(&without_job_id(result), &local, "result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_csv_split_in_pieces_by_several_threads_keeps_file_order_and_row_numbers() {
    // 13 MB of CSV (rows padded to ~1 kB), more than one piece of 8 MiB: ties in time broken by
    // file order across pieces, and a bad row in the second piece named by its row.
    let gzip_csv = |bad_row: Option<usize>| {
        let pad = "x".repeat(1_000);
        let mut csv = String::from("user_id,timestamp,channel,conversion,note\n");
        for (pass, channel) in ["a", "m1", "m2", "m3", "m4", "z"].iter().enumerate() {
            for user in 0..2_000 {
                let row = pass * 2_000 + user + 1;
                let time = if bad_row == Some(row) { "soon" } else { "2026-01-01T00:00:00Z" };
                csv.push_str(&format!("u{user},{time},\"{channel}\",0,{pad}\n"));
            }
        }
        for user in (0..2_000).step_by(2) {
            csv.push_str(&format!("u{user},2026-01-01T01:00:00Z,,1,\n"));
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, csv.as_bytes()).unwrap();
        (csv, gz.finish().unwrap())
    };
    let dir = workdir();
    let (csv, gz) = gzip_csv(None);
    let (plain, gzip) = (write(dir.path(), "ties.csv", csv), write(dir.path(), "ties.csv.gz", gz));
    let service = Service::start(chunked(1)).await;
    let models = "first_touch,last_touch,position_based";
    let job = service.run(&gzip, json!({ "options": { "models": models.split(',').collect::<Vec<_>>() } })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    let local = attribute_json(&plain, &["--models", models]);
    assert_eq!(credit(&local, "first_touch", "a").0, 1_000.0);
    assert_eq!(credit(&local, "last_touch", "z").0, 1_000.0);
    assert_same_result(&without_job_id(result), &local, "result");

    let (_, gz) = gzip_csv(Some(9_876));
    let job = service.run(&write(dir.path(), "bad.csv.gz", gz), json!({})).await;
    assert_eq!((&job["state"], &job["error"]["code"]), (&json!("failed"), &json!("invalid_value")), "{job}");
    assert_eq!(
        (&job["error"]["details"][0]["row"], &job["error"]["details"][0]["column"]),
        (&json!(9_876), &json!("timestamp"))
    );
}

/// Upload, split, attribute, reduce, result, CSV, credits, cache and idempotency.
async fn end_to_end(spec: ServiceSpec) {
    let service = Service::start(spec).await;
    let job = service.run(&sample("events.csv"), json!({ "export_credits": true })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let progress = &job["progress"];
    assert_eq!(progress["splits_total"], 4, "the CSV is cut into byte ranges: {progress}");
    assert_eq!(progress["splits_done"], 4);
    assert!(progress["chunks_total"].as_u64().unwrap() > 1, "{progress}");
    assert_eq!(progress["chunks_done"], progress["chunks_total"]);
    assert_eq!(progress["rows"], 12_000);

    let (status, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!(status, 200);
    assert_eq!(result["job_id"], id);
    assert_same_result(&without_job_id(result.clone()), &attribute_json(&sample("events.csv"), &[]), "result");

    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("model,channel,conversions,value,share"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("markov,paid_search,")), "{csv}");

    let (status, credits) = service.get_bytes(&format!("/v1/jobs/{id}/credits")).await;
    assert_eq!(status, 200);
    assert!(credits.starts_with(b"PAR1") && credits.len() > 1000);

    let (_, list) = service.get("/v1/jobs").await;
    assert!(list["jobs"].as_array().unwrap().iter().any(|j| j["id"] == id));

    let timeline = finished_timeline(&service, id).await;
    assert_eq!(timeline["events_total"], timeline["events"].as_array().unwrap().len(), "{timeline}");
    assert_eq!(timeline["stages"].as_object().unwrap().keys().collect::<Vec<_>>(), ["attribute", "reduce", "split"]);

    // The same bytes with the same spec: answered from the cache at once.
    let again = service.upload_file(&sample("events.csv")).await;
    let (status, cached) = service.submit(json!({ "upload_id": again, "export_credits": true })).await;
    assert_eq!(status, 202);
    assert_eq!(cached["state"], "succeeded", "{cached}");
    assert_eq!(cached["cached_from"], id);
    let cached_id = cached["id"].as_str().unwrap();
    let (_, cached_result) = service.get(&format!("/v1/jobs/{cached_id}/result")).await;
    assert_eq!(cached_result["job_id"], cached_id);
    assert_eq!(without_job_id(cached_result), without_job_id(result));

    // A retried submission with the same Idempotency-Key gets the same job.
    let spec = json!({ "upload_id": again, "options": { "models": ["linear"] } });
    let submit = || {
        service
            .http
            .post(format!("{}/v1/jobs", service.base))
            .header("Idempotency-Key", "retry-me-1")
            .json(&spec)
            .send()
    };
    let first: Value = submit().await.unwrap().json().await.unwrap();
    let second = submit().await.unwrap();
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    service.wait(first["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_submission_uploads_and_submits_in_one_request() {
    let service = Service::start(ServiceSpec::default()).await;
    let form = reqwest::multipart::Form::new()
        .text("spec", r#"{"kind": "paths", "options": {"models": ["markov", "linear"]}}"#)
        .part("file", reqwest::multipart::Part::bytes(std::fs::read(sample("paths.csv")).unwrap()));
    let response = service.http.post(format!("{}/v1/jobs", service.base)).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 202);
    assert!(response.headers()["location"].to_str().unwrap().starts_with("/v1/jobs/"));
    let job: Value = response.json().await.unwrap();
    let job = service.wait(job["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    // The tiny Markov case of docs/user-guide.md, "Models".
    assert!((result["models"]["markov"]["conversion_probability"].as_f64().unwrap() - 4.0 / 7.0).abs() < 1e-12);
    let (status, health) = service.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        (health["redis"]["status"].as_str(), health["object_store"]["status"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert_eq!(health["queue_depth"]["attribute"], 0, "{health}");
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_its_job_with_row_details_and_nothing_answers_5xx() {
    let service = Service::start(chunked(1)).await;
    let dir = workdir();
    let bad = write(
        dir.path(),
        "bad.csv",
        "user_id,timestamp,channel,conversion\nu1,2024-01-01T00:00:00Z,email,0\nu1,yesterday-ish,email,0\nu1,2024-01-02T00:00:00Z,,1\n",
    );
    let job = service.run(&bad, json!({})).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "invalid_value");
    let detail = &job["error"]["details"][0];
    assert_eq!(detail["row"], 2, "{job}");
    assert_eq!(detail["column"], "timestamp");
    let id = job["id"].as_str().unwrap();
    let (status, body) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("job_failed")));

    // A bad row deep in a file that is split by byte ranges keeps its own row number.
    let mut long = String::from("user_id,timestamp,channel,conversion\n");
    for i in 1..=6000 {
        let time = if i == 5321 { "not-a-time".to_owned() } else { format!("2026-01-01T00:00:{:02}Z", i % 60) };
        long.push_str(&format!("user-{i},{time},\"quoted,\nchannel\",0\n"));
    }
    let job = service.run(&write(dir.path(), "long.csv", long), json!({})).await;
    assert!(job["progress"]["splits_total"].as_u64().unwrap() > 1, "{job}");
    assert_eq!(job["error"]["details"][0]["row"], 5321, "{job}");
    assert_eq!(job["error"]["details"][0]["column"], "timestamp");

    let missing = write(dir.path(), "missing.csv", "who,when\na,1\n");
    let job = service.run(&missing, json!({})).await;
    assert_eq!(job["error"]["code"], "missing_columns", "{job}");

    let upload = service.upload(b"user_id,timestamp,channel,conversion\n".to_vec()).await;
    let (status, body) = service.submit(json!({ "upload_id": upload, "options": { "markov_order": 9 } })).await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["details"][0]["column"], "markov_order");
    let (status, body) = service.submit(json!({ "upload_id": upload, "modles": ["linear"] })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("modles"));
    let (status, body) = service.submit(json!({ "upload_id": "00000000-0000-4000-8000-000000000000" })).await;
    assert_eq!((status, body["error"]["details"][0]["column"].as_str()), (422, Some("upload_id")));
    let (status, _) = service.submit(json!({ "upload_id": "../../etc/passwd" })).await;
    assert_eq!(status, 422);
    let response = service
        .http
        .post(format!("{}/v1/jobs", service.base))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = service.http.post(format!("{}/v1/uploads", service.base)).body(Vec::new()).send().await.unwrap();
    assert_eq!(response.status(), 422);
    // Job specs are small: a huge JSON body is refused, not buffered. (Its own client: the
    // server closes a connection whose body it did not read, and a pooled one would race that.)
    let huge = format!("{{\"upload_id\": \"{upload}\", \"columns\": {{\"user_id\": \"{}\"}}}}", "x".repeat(2 << 20));
    let response = crate::service_support::client(Some(&service.key))
        .post(format!("{}/v1/jobs", service.base))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let (status, _) = service.get("/v1/jobs/not-a-job").await;
    assert_eq!(status, 404);
    let job = service.run(&write(dir.path(), "header.csv", "user_id,timestamp,channel,conversion\n"), json!({})).await;
    assert_eq!(job["error"]["code"], "empty_input", "{job}");
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_leave_small_errors_in_the_job_record_and_the_api() {
    let service = Service::start(chunked(1)).await;
    let dir = workdir();
    // A 100 kB gzip whose first line is 64 MiB of column names: refused as a header too
    // long, not stored as a 64 MB `missing_columns` message.
    let header = write(dir.path(), "header.csv.gz", inflating("", "column,", 64, "\nu1\n"));
    let job = service.run(&header, json!({})).await;
    assert_eq!((job["state"].as_str(), job["error"]["code"].as_str()), (Some("failed"), Some("limit_exceeded")));
    assert!(job.to_string().len() < 2048, "{} bytes of job", job.to_string().len());
    let info = service.redis.command("INFO memory").expect("INFO answered");
    let used: u64 = info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.parse().ok()).unwrap();
    assert!(used < 32 << 20, "Redis holds {} MiB", used >> 20);

    // A 1 MB column name in the spec's mapping: refused at submission, shortened.
    let upload = service.upload(b"user_id,timestamp,channel,conversion\nu1,2026-01-01,a,1\n".to_vec()).await;
    let (status, body) =
        service.submit(json!({ "upload_id": upload, "columns": { "user_id": "c".repeat(1_000_000) } })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_option")), "{body}");
    assert_eq!(body["error"]["details"][0]["column"], "columns");
    assert!(body.to_string().len() < 1024, "{} bytes of error", body.to_string().len());
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markov_over_more_channels_than_its_limit_fails_the_job_naming_the_limit() {
    let env = vec![("MTA_MARKOV_MAX_CHANNELS", "50".into())];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let upload = service.upload(events_over_channels(60, 3).into_bytes()).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("limit_exceeded")),
        "{job}"
    );
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("more than 50 distinct channels") && message.contains("markov_max_channels"), "{job}");
    // The limit is Markov's: the other models attribute the same file.
    let id = service.submit_ok(json!({ "upload_id": upload, "options": { "models": ["linear"] } })).await;
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_the_time_limit_fails_its_job_and_the_worker_takes_the_next() {
    let env = vec![("MTA_TASK_TIME_LIMIT_SECS", "2".into()), ("MTA_MARKOV_MAX_CHANNELS", "100000".into())];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    // An order-2 Markov solve over thousands of channels: far longer than 2 s in any build.
    let upload = service.upload(events_over_channels(SLOW_MARKOV_CHANNELS, 4).into_bytes()).await;
    let started = Instant::now();
    let options = json!({ "models": ["markov"], "markov_order": 2 });
    let id = service.submit_ok(json!({ "upload_id": upload, "options": options })).await;
    let job = service.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("limit_exceeded")),
        "{job}"
    );
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("reducing task `reduce`") && message.contains("MTA_TASK_TIME_LIMIT_SECS"), "{job}");
    assert!(started.elapsed() < Duration::from_secs(20), "failed after {:?}", started.elapsed());

    // The solve stopped between channels: the same worker is healthy and runs the next job.
    let worker = format!("http://127.0.0.1:{}/health/live", service.worker_ports[0]);
    assert_eq!(service.http.get(&worker).send().await.unwrap().status(), 200);
    let small = service.upload(events_over_channels(20, 3).into_bytes()).await;
    let id = service.submit_ok(json!({ "upload_id": small })).await;
    let job = service.wait(&id, Duration::from_secs(30)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    service.assert_nothing_stuck().await;
}

/// Channels whose order-2 Markov solve takes well over 2 s even in a release build.
const SLOW_MARKOV_CHANNELS: usize = 4_000;

/// Workers that hold each chunk for a while, so tests can act mid-chunk.
fn slow_chunks(workers: usize, delay_ms: u64) -> ServiceSpec {
    let mut spec = chunked(workers);
    spec.env.push(("MTA_FAULT_CHUNK_DELAY_MS", delay_ms.to_string()));
    spec
}

/// A service whose one worker holds each chunk `delay_ms`, and the sample's job once it is
/// attributing (its chunk objects in the store).
async fn job_while_attributing(delay_ms: u64) -> (Service, String) {
    let service = Service::start(slow_chunks(1, delay_ms)).await;
    let upload = service.upload_file(&sample("events.csv")).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    wait_for_stage(&service, &id, "attributing").await;
    (service, id)
}

async fn wait_for_stage(service: &Service, id: &str, stage: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = service.get(&format!("/v1/jobs/{id}")).await;
        if job["stage"] == stage {
            return;
        }
        assert!(Instant::now() < deadline, "job never reached {stage}: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_job_and_it_stays_cancelled() {
    let (service, id) = job_while_attributing(2_000).await;
    let chunks = service.job_dir(&id).join("chunks");
    // (The local store removes files and leaves their empty directories.)
    let files = |dir: &std::path::Path| -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_dir(e.path()).map_or(1, |d| d.count()))
            .sum()
    };
    assert!(files(&chunks) > 0, "no chunk files while attributing: {}", chunks.display());
    let response = service.http.delete(format!("{}/v1/jobs/{id}", service.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let job = service.wait(&id, Duration::from_secs(10)).await;
    assert_eq!(job["state"], "cancelled");
    // The running chunk stops and the job's chunk files are removed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while files(&chunks) > 0 {
        assert!(Instant::now() < deadline, "chunk files of a cancelled job remain: {}", chunks.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, job) = service.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["state"], "cancelled", "a cancelled job must not come back: {job}");
    let response = service.http.delete(format!("{}/v1/jobs/{id}", service.base)).send().await.unwrap();
    assert_eq!(response.status(), 409);
    service.assert_nothing_stuck().await;
}

/// A split task stores what it hands over as one object and its index, whatever the number
/// of partitions and flushes: the job's store holds two chunk objects per split task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stores_two_chunk_objects_per_split_task_whatever_its_partitions() {
    let (service, id) = job_while_attributing(1_000).await;
    let (_, job) = service.get(&format!("/v1/jobs/{id}")).await;
    let splits = job["progress"]["splits_total"].as_u64().unwrap();
    assert!(splits > 1 && job["progress"]["chunks_total"].as_u64().unwrap() > splits, "{job}");
    let chunks = service.job_dir(&id).join("chunks");
    let mut names: Vec<String> =
        std::fs::read_dir(&chunks).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let expected: Vec<String> =
        (0..splits).flat_map(|s| [format!("s{s:04}.pieces"), format!("s{s:04}.rows")]).collect();
    assert_eq!(names, expected, "{}", chunks.display());
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_same_result(&without_job_id(result), &attribute_json(&sample("events.csv"), &[]), "result");
}

/// Each partition's pieces of a split object, as its pieces index gives them.
fn split_pieces(chunks: &std::path::Path, split: u32) -> Vec<Vec<u8>> {
    use mta_platform::chunk_file::{PIECES_HEADER_BYTES, decode_pieces, pieces_entries};
    let name = format!("s{split:04}.pieces");
    let index = std::fs::read(chunks.join(&name)).unwrap();
    let rows = std::fs::read(chunks.join(format!("s{split:04}.rows"))).unwrap();
    let per_partition = u64::from_le_bytes(index[..8].try_into().unwrap()) as usize;
    let partitions = (index.len() - PIECES_HEADER_BYTES as usize) / (16 * per_partition.max(1));
    (0..partitions as u32)
        .map(|partition| {
            let entries = pieces_entries(&name, &index[..8], partition).unwrap();
            let pieces =
                decode_pieces(&name, &index[entries.start as usize..entries.end as usize], 16 * per_partition as u64);
            pieces
                .unwrap()
                .into_iter()
                .flat_map(|piece| rows[piece.start as usize..piece.end as usize].to_vec())
                .collect()
        })
        .collect()
}

/// A job split by older workers still finishes after an upgrade: a split stored as a chunk
/// file per partition and flush (no split object), or as one run per partition with an index
/// of 16 bytes per partition (no pieces index), is read as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_stored_by_older_workers_as_files_or_runs_are_still_read() {
    let (service, id) = job_while_attributing(1_000).await;
    // Splits 0 and 1 rewritten the way older workers stored them, while the partitions are attributed.
    let chunks = service.job_dir(&id).join("chunks");
    let (files_split, runs_split) = (split_pieces(&chunks, 0), split_pieces(&chunks, 1));
    let mut files = 0;
    for (partition, mut run) in files_split.iter().map(Vec::as_slice).enumerate() {
        let dir = chunks.join(format!("p{partition:05}"));
        std::fs::create_dir_all(&dir).unwrap();
        for flush in 0.. {
            if run.is_empty() {
                break;
            }
            let n = u64::from_le_bytes(run[..8].try_into().unwrap()) as usize;
            std::fs::write(dir.join(format!("s0000-{flush:05}.rows")), &run[8..8 + n]).unwrap();
            run = &run[8 + n..];
            files += 1;
        }
    }
    assert!(files > 1, "{files} chunk files");
    let (mut object, mut index) = (Vec::new(), Vec::new());
    for run in &runs_split {
        index.extend_from_slice(&(object.len() as u64).to_le_bytes());
        index.extend_from_slice(&(run.len() as u64).to_le_bytes());
        object.extend_from_slice(run);
    }
    assert!(runs_split.iter().filter(|run| !run.is_empty()).count() > 1);
    for name in ["s0000.pieces", "s0000.rows", "s0001.pieces"] {
        std::fs::remove_file(chunks.join(name)).unwrap();
    }
    std::fs::write(chunks.join("s0001.rows"), object).unwrap();
    std::fs::write(chunks.join("s0001.index"), index).unwrap();
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_same_result(&without_job_id(result), &attribute_json(&sample("events.csv"), &[]), "result");
}

/// A job's timeline once its reduce unit's end is logged (after the job succeeds), checked:
/// when it holds every entry, each stage's span and counts are the ones its entries give.
async fn finished_timeline(service: &Service, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, timeline) = service.get(&format!("/v1/jobs/{id}/timeline")).await;
        assert_eq!(status, 200, "{timeline}");
        if timeline["stages"]["reduce"]["units_ended"] == 1 {
            let events = timeline["events"].as_array().unwrap();
            if timeline["events_total"] == events.len() {
                for (stage, span) in timeline["stages"].as_object().unwrap() {
                    let of = |kind: &'static str| {
                        events.iter().filter(move |e| {
                            e["event"] == kind && e["unit"].as_str().unwrap().split(':').next() == Some(stage.as_str())
                        })
                    };
                    let at = |e: &Value| e["at_ms"].as_i64().unwrap();
                    assert_eq!(span["units_started"], of("start").count(), "{stage}: {timeline}");
                    assert_eq!(span["units_ended"], of("end").count(), "{stage}: {timeline}");
                    assert_eq!(span["first_start_ms"], of("start").map(at).min().unwrap(), "{stage}: {timeline}");
                    assert_eq!(span["last_end_ms"], of("end").map(at).max().unwrap(), "{stage}: {timeline}");
                }
            }
            return timeline;
        }
        assert!(Instant::now() < deadline, "the reduce unit's end was never logged: {timeline}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The timeline lists its latest 1,000 entries; a job of more units than that (about 600
/// partitions here) still shows when each stage began and ended and how many units it
/// ran, counted over every entry: the split's entries are long gone from the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_keeps_each_stages_span_past_the_entries_it_lists() {
    let env = vec![("MTA_ROWS_PER_CHUNK", "20".into()), ("MTA_CSV_RANGE_BYTES", "100000".into())];
    let service = Service::start(ServiceSpec { workers: 2, env, ..ServiceSpec::default() }).await;
    let job = service.run(&sample("events.csv"), json!({})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let chunks = job["progress"]["chunks_total"].as_u64().unwrap();
    assert!(chunks > 500, "partitions are planned from the file's size: {job}");
    let timeline = finished_timeline(&service, job["id"].as_str().unwrap()).await;
    let (events, stages) = (timeline["events"].as_array().unwrap(), &timeline["stages"]);
    assert_eq!(events.len(), 1000);
    assert!(events.iter().all(|e| !e["unit"].as_str().unwrap().starts_with("split")), "{timeline}");
    // The plan and its four byte ranges, each started and ended once; every partition; the reduce.
    let count = |stage: &str, what: &str| stages[stage][what].as_u64().unwrap();
    assert_eq!((count("split", "units_started"), count("split", "units_ended")), (5, 5), "{stages}");
    assert_eq!((count("attribute", "units_started"), count("attribute", "units_ended")), (chunks, chunks));
    assert_eq!((count("reduce", "units_started"), count("reduce", "units_ended")), (1, 1));
    assert_eq!(timeline["events_total"], 2 * (5 + chunks + 1), "{timeline}");
    let at = |stage: &str, what: &str| stages[stage][what].as_i64().unwrap();
    assert!(at("split", "first_start_ms") <= at("split", "last_end_ms"));
    assert!(at("split", "first_start_ms") <= at("attribute", "first_start_ms"));
    assert!(at("attribute", "first_start_ms") < at("attribute", "last_end_ms"));
    assert!(at("attribute", "first_start_ms") <= at("reduce", "first_start_ms"));
    let oldest_listed = events.iter().map(|e| e["at_ms"].as_i64().unwrap()).min().unwrap();
    assert!(at("split", "first_start_ms") <= oldest_listed, "{timeline}");
}

/// `(unit, worker, start_ms, end_ms)` from a job's timeline; an open interval ends at `None`.
async fn intervals(service: &Service, id: &str) -> Vec<(String, String, i64, Option<i64>)> {
    let (_, timeline) = service.get(&format!("/v1/jobs/{id}/timeline")).await;
    let mut open: Vec<(String, String, i64, Option<i64>)> = Vec::new();
    for event in timeline["events"].as_array().unwrap() {
        let (unit, worker, at) =
            (event["unit"].as_str().unwrap(), event["worker"].as_str().unwrap(), event["at_ms"].as_i64().unwrap());
        if event["event"] == "start" {
            open.push((unit.to_owned(), worker.to_owned(), at, None));
        } else if let Some(interval) =
            open.iter_mut().rev().find(|(u, w, _, end)| u == unit && w == worker && end.is_none())
        {
            interval.3 = Some(at);
        }
    }
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_chunk_loses_nothing_and_nothing_runs_twice_at_once() {
    let mut service = Service::start(slow_chunks(2, 3_000)).await;
    let upload = service.upload_file(&sample("events.csv")).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    wait_for_stage(&service, &id, "attributing").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Kill the worker process that is running an attribute chunk right now.
    let running = intervals(&service, &id).await;
    let victim_pid = service.worker_pid(0);
    assert!(
        running.iter().any(|(unit, worker, _, end)| unit.starts_with("attribute:")
            && end.is_none()
            && worker.contains(&format!("-{victim_pid}-"))),
        "worker 0 should be mid-chunk: {running:?}"
    );
    let killed_at = chrono::Utc::now().timestamp_millis();
    service.kill_worker(0);
    let job = service.wait(&id, Duration::from_secs(90)).await;
    let recovered_after = chrono::Utc::now().timestamp_millis() - killed_at;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(recovered_after < 60_000, "recovery took {recovered_after} ms");

    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_same_result(&without_job_id(result), &attribute_json(&sample("events.csv"), &[]), "result");

    // No unit ran on two live workers at once: every start of a unit begins after the
    // previous run of it ended (the killed worker's open run ends at the kill).
    let mut runs = intervals(&service, &id).await;
    runs.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.0 == b.0 {
            let a_end = a.3.unwrap_or(killed_at);
            assert!(b.2 >= a_end, "{} ran twice at once: {a:?} and {b:?}", a.0);
        }
    }
    assert!(runs.iter().any(|r| r.3.is_none()), "the killed run stays open in the timeline");
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_crashes_its_worker_every_time_fails_the_job_after_k_starts() {
    let mut spec = chunked(1);
    spec.env.extend([
        ("MTA_FAULT_ABORT_ON_CHANNEL", "push".to_owned()),
        ("MTA_HEARTBEAT_SECS", "1".to_owned()),
        ("MTA_MISSED_HEARTBEATS", "2".to_owned()),
        ("MTA_MAX_STARTS", "3".to_owned()),
        ("MTA_GIVE_UP_AFTER_SECS", "4".to_owned()),
    ]);
    let mut service = Service::start(spec).await;
    let upload = service.upload_file(&sample("events.csv")).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut crashes = 0;
    let job = loop {
        crashes += service.revive_workers();
        let (_, job) = service.get(&format!("/v1/jobs/{id}")).await;
        if job["state"] != "running" && job["state"] != "queued" {
            break job;
        }
        assert!(Instant::now() < deadline, "the crash loop was never stopped: {job}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "internal");
    // Given up once it was started more than 3 times and first started over 4 s ago, and
    // the error says how the attempts ended.
    let message = job["error"]["message"].as_str().unwrap();
    let attempts: u32 = message.split("started ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(attempts >= 3, "{message}");
    let seconds: u64 = message.split(" over ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(seconds >= 4, "{message}");
    // Every crash takes the units running beside it too: the unit given up may be another
    // one, and an attempt of it may have finished before its worker crashed (not acked).
    assert!(message.contains("its worker went away while running it"), "{message}");
    assert!(crashes >= 3, "the worker crashed {crashes} times");
    service.revive_workers();
    service.assert_nothing_stuck().await;
}

/// The live worker to kill: of those running units, the one running the unit started most
/// often (so the churn keeps hitting the same work), then the one running most units; and
/// how often any unit of the jobs was started.
async fn busiest_worker(service: &Service, jobs: &[String]) -> (Option<usize>, usize) {
    let pids: Vec<String> = (0..service.worker_count()).map(|i| format!("-{}-", service.worker_pid(i))).collect();
    let mut load = vec![(0usize, 0usize); pids.len()];
    let mut most_starts = 0;
    for id in jobs {
        let runs = intervals(service, id).await;
        let starts = |unit: &str| runs.iter().filter(|r| r.0 == unit).count();
        most_starts = most_starts.max(runs.iter().map(|r| starts(&r.0)).max().unwrap_or(0));
        for (unit, worker, _, end) in &runs {
            if let (None, Some(index)) = (end, pids.iter().position(|p| worker.contains(p.as_str()))) {
                load[index].0 += 1;
                load[index].1 = load[index].1.max(starts(unit));
            }
        }
    }
    let busiest = (0..load.len()).filter(|&i| load[i].0 > 0).max_by_key(|&i| (load[i].1, load[i].0));
    (busiest, most_starts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_busiest_worker_every_few_seconds_still_finishes_every_job() {
    // Defaults for the start budget (3 starts, 15 min): a unit killed with its worker more
    // than three times must not fail its job.
    // Chunks take 3 s, so the worker running the most restarted unit is killed before it ends.
    let mut spec = slow_chunks(3, 3_000);
    spec.env.extend([("MTA_HEARTBEAT_SECS", "1".to_owned()), ("MTA_MISSED_HEARTBEATS", "2".to_owned())]);
    let mut service = Service::start(spec).await;
    let file = sample("events.csv");
    let upload = service.upload_file(&file).await;
    let lookbacks = ["30", "14", "7"];
    let mut ids = Vec::new();
    for days in lookbacks {
        let options = json!({ "lookback_days": days.parse::<f64>().unwrap() });
        ids.push(service.submit_ok(json!({ "upload_id": upload, "options": options })).await);
    }
    let churn_until = Instant::now() + Duration::from_secs(90);
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut kills, mut most_starts) = (0, 0);
    loop {
        service.revive_workers();
        let mut ended = 0;
        for id in &ids {
            let (_, job) = service.get(&format!("/v1/jobs/{id}")).await;
            ended += usize::from(job["state"] != "running" && job["state"] != "queued");
        }
        if ended == ids.len() {
            break;
        }
        assert!(Instant::now() < deadline, "the jobs did not finish under churn ({kills} kills)");
        let (busiest, starts) = busiest_worker(&service, &ids).await;
        most_starts = most_starts.max(starts);
        // The churn stops once some unit has been started well past the old budget.
        if let Some(index) = busiest.filter(|_| most_starts < 6 && Instant::now() < churn_until) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            service.kill_worker(index);
            kills += 1;
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for id in &ids {
        let (_, job) = service.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    eprintln!("churn: {kills} kills; a unit was started {most_starts} times");
    assert!(most_starts > 3, "the churn never started a unit more than 3 times ({kills} kills)");
    for (id, days) in ids.iter().zip(lookbacks) {
        let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
        assert_same_result(&without_job_id(result), &attribute_json(&file, &["--lookback-days", days]), "result");
    }
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_and_a_stall_mid_job_are_survived() {
    let mut spec = slow_chunks(2, 1_500);
    spec.appendonly = true;
    let mut service = Service::start(spec).await;
    let upload = service.upload_file(&sample("events.csv")).await;
    let id = service.submit_ok(json!({ "upload_id": upload })).await;
    wait_for_stage(&service, &id, "attributing").await;
    service.redis.restart(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(2)).await;
    service.redis.stall(2);
    let job = service.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    assert_same_result(&without_job_id(result), &attribute_json(&sample("events.csv"), &[]), "result");
    // The API recovered too: a new job goes through.
    let job = service.run(&sample("paths.csv"), json!({})).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    service.assert_nothing_stuck().await;
}

/// An API process killed while it holds an `Idempotency-Key` claim (before it recorded the
/// job) must not pin the key: the claim is a short lease, so the client's retry makes the
/// job once the lease runs out. A key whose job was recorded is kept well past the lease
/// and still replays that job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_claim_does_not_outlive_the_process_that_made_it() {
    const LEASE_SECS: u64 = 2;
    let env = vec![("MTA_IDEMPOTENCY_LEASE_SECS", LEASE_SECS.to_string())];
    let mut service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let doomed = service.start_api(&[("MTA_FAULT_ABORT_AFTER_IDEMPOTENCY_CLAIM", "dies-1")]).await;
    let upload = service.upload_file(&sample("events.csv")).await;
    let spec = json!({ "upload_id": upload, "options": { "models": ["linear"] } });
    let submit = |base: String, key: &'static str| {
        service.http.post(format!("{base}/v1/jobs")).header("Idempotency-Key", key).json(&spec).send()
    };
    let ttl = |key: &str| -> i64 {
        let tenant: mta_platform::ids::Tenant = "t1".parse().unwrap();
        let name = mta_platform::redis_keys::idempotency("mta", &tenant, key);
        let reply = service.redis.command(&format!("TTL {name}")).expect("TTL answered");
        reply.trim().trim_start_matches(':').parse().expect("an integer reply")
    };

    // The doomed API claims the key, then dies before it records a job.
    assert!(submit(doomed, "dies-1").await.is_err(), "the API aborted mid-request");
    let (status, body) = decode(submit(service.base.clone(), "dies-1").await.unwrap()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("request_in_progress")), "{body}");
    let left = ttl("dies-1");
    assert!((1..=LEASE_SECS as i64).contains(&left), "the dead claim lapses with its lease, not in {left} s");

    // Once the lease ran out, the retry makes the job; a duplicate of the retry replays it.
    tokio::time::sleep(Duration::from_secs(LEASE_SECS) + Duration::from_millis(500)).await;
    let retried = submit(service.base.clone(), "dies-1").await.unwrap();
    assert_eq!(retried.status(), 202);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    let retried: Value = retried.json().await.unwrap();
    assert!(ttl("dies-1") > 3600, "a recorded job keeps its key for 24 h");

    // A live key outlasts the lease: a duplicate after it still gets the same job.
    let first: Value = submit(service.base.clone(), "lives-1").await.unwrap().json().await.unwrap();
    tokio::time::sleep(Duration::from_secs(LEASE_SECS) + Duration::from_millis(500)).await;
    for (key, want) in [("lives-1", &first), ("dies-1", &retried)] {
        let again = submit(service.base.clone(), key).await.unwrap();
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let again: Value = again.json().await.unwrap();
        assert_eq!(again["id"], want["id"], "{key}");
    }
    assert_ne!(first["id"], retried["id"]);
    for job in [&first, &retried] {
        let done = service.wait(job["id"].as_str().unwrap(), Duration::from_secs(60)).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    service.assert_nothing_stuck().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_per_period_over_chunks_equals_the_local_command_and_has_its_csv_table() {
    let service = Service::start(chunked(2)).await;
    let file = sample("events.csv");
    let options = json!({ "period": "day", "timezone": "America/New_York", "models": ["linear", "markov", "shapley"] });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local = attribute_json(
        &file,
        &["--period", "day", "--timezone", "America/New_York", "--models", "linear,markov,shapley"],
    );
    assert!(local["periods"].as_array().unwrap().len() > 1, "the sample spans several days");
    // Compared channel by channel: in a period, credits that differ only by rounding
    // (near-zero Markov shares) may sort either way.
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");

    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=periods")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    let rows: usize = result["periods"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["models"].as_object().unwrap().values())
        .map(|m| m["channels"].as_array().unwrap().len())
        .sum();
    assert_eq!(csv.lines().count(), rows + 1, "{csv}");
    assert!(csv.starts_with("period,model,channel,"));
    // The journey reports are tables too.
    for (table, lines) in [("path_length", 11), ("time_lag", 9)] {
        let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table={table}")).await;
        assert_eq!((status, String::from_utf8(csv).unwrap().lines().count()), (200, lines), "{table}");
    }
    let channels = result["reports"]["positions"].as_array().unwrap().len();
    let (_, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=positions")).await;
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), channels + 1);
    // `table` is for CSV; an unknown table or period is refused, naming it.
    let (status, body) = service.get(&format!("/v1/jobs/{id}/result?table=periods")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_option")), "{body}");
    let (status, _) = service.get(&format!("/v1/jobs/{id}/result?format=csv&table=nope")).await;
    assert!(status == 400 || status == 422, "{status}");
    let upload = service.upload_file(&file).await;
    let (status, body) = service.submit(json!({ "upload_id": upload, "options": { "period": "fortnight" } })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("period"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shao_li_auto_markov_order_and_pair_effects_over_chunks_equal_the_local_command() {
    let service = Service::start(chunked(2)).await;
    let file = sample("events.csv");
    let options = json!({ "models": ["markov", "shao_li"], "markov_order": "auto", "markov_pair_effects": true });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local =
        attribute_json(&file, &["--models", "markov,shao_li", "--markov-order", "auto", "--markov-pair-effects"]);
    // The held-out split is by user, so the chunks choose the same order with the same scores.
    let markov = &result["models"]["markov"];
    assert_eq!(markov["order_selection"]["chosen"], local["models"]["markov"]["order_selection"]["chosen"]);
    assert!(markov["order_selection"]["held_out_journeys"].as_f64().unwrap() > 0.0, "{markov}");
    assert_eq!(markov["pairs"].as_array().unwrap().len(), 45, "the pairs of the top 10 channels");
    assert_same_result(&without_job_id(result.clone()), &local, "result");

    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=markov_pairs")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("channel_a,channel_b,removal_effect,removal_effect_value,overlap\n"), "{csv}");
    assert_eq!(csv.lines().count(), 46, "{csv}");
    let first = csv.lines().nth(1).unwrap();
    let pair = &markov["pairs"][0];
    assert!(first.starts_with(&format!(
        "{},{},",
        pair["channel_a"].as_str().unwrap(),
        pair["channel_b"].as_str().unwrap()
    )));

    // A job without pair effects has no such table; a bad order is refused naming it.
    let plain = service.run(&file, json!({ "options": { "models": ["shao_li"] } })).await;
    let plain_id = plain["id"].as_str().unwrap();
    let (_, plain_result) = service.get(&format!("/v1/jobs/{plain_id}/result")).await;
    let local_plain = attribute_json(&file, &["--models", "shao_li"]);
    assert_same_result(&without_job_id(plain_result), &local_plain, "shao_li result");
    let upload = service.upload_file(&file).await;
    let (status, body) = service.submit(json!({ "upload_id": upload, "options": { "markov_order": "best" } })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("markov_order"), "{body}");
}

/// `result` without the ranks of `markov` in `window_ranks`: near-zero Markov credits that
/// differ only by rounding may sort either way (their shares are still compared).
fn without_markov_ranks(mut result: Value) -> Value {
    for ranks in result["window_ranks"].as_array_mut().into_iter().flatten() {
        if ranks["model"] == "markov" {
            for channel in ranks["channels"].as_array_mut().unwrap() {
                let channel = channel.as_object_mut().unwrap();
                channel.remove("rank");
                channel.remove("rank_spread");
            }
        }
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookback_windows_over_chunks_equal_the_local_command_and_have_their_csv_table() {
    let service = Service::start(chunked(2)).await;
    let file = sample("events.csv");
    let models = ["first_touch", "linear", "markov", "shapley"];
    let options = json!({ "lookback_days": [14, 3, 0], "models": models });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["spec"]["options"]["lookback_days"], json!([14.0, 3.0, 0.0]));
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let models = models.join(",");
    let local = attribute_json(&file, &["--lookback-days", "14,3,0", "--models", &models]);
    let days: Vec<f64> =
        result["windows"].as_array().unwrap().iter().map(|w| w["lookback_days"].as_f64().unwrap()).collect();
    assert_eq!(days, [14.0, 3.0, 0.0]);
    assert_eq!(result["options"]["lookback_windows"], json!([14.0, 3.0, 0.0]));
    assert_eq!(result["window_ranks"].as_array().unwrap().len(), 4, "one per model");
    let comparable = |r: Value| sorted(without_markov_ranks(r));
    assert_same_result(&comparable(without_job_id(result.clone())), &comparable(local), "result");
    // The windows really differ (the sample's touches reach back weeks), and the top level is
    // the first window, as a job with that window alone.
    let unattributed = |w: &Value| w["summary"]["unattributed_conversions"].as_f64().unwrap();
    let windows = result["windows"].as_array().unwrap();
    assert!(unattributed(&windows[1]) > unattributed(&windows[0]), "3 days leave more conversions without a touch");
    assert!(unattributed(&windows[2]) <= unattributed(&windows[0]), "the unlimited window reaches further back");
    let alone = attribute_json(&file, &["--lookback-days", "14", "--models", &models]);
    assert_same_result(&sorted(result["models"].clone()), &sorted(alone["models"].clone()), "top");
    assert!(alone.get("windows").is_none() && alone["options"].get("lookback_windows").is_none());

    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=windows")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("model,channel,lookback_days,conversions,value,share,rank\n"), "{csv}");
    let ranked = ranked_window_rows(&result);
    assert_eq!(csv.lines().count(), ranked + 1);
    assert!(csv.lines().any(|l| l.starts_with("first_touch,") && l.contains(",3,")), "{csv}");

    // Refused: more than 8 windows and windows with a period at once; a list on path rows
    // fails the job once the split sees them, naming the option.
    let upload = service.upload_file(&file).await;
    for (options, needle) in [
        (json!({ "lookback_days": [1, 2, 3, 4, 5, 6, 7, 8, 9] }), "at most 8 windows"),
        (json!({ "lookback_days": [7, 30], "period": "week" }), "does not combine with `period`"),
        (json!({ "lookback_days": [7, 7] }), "listed twice"),
    ] {
        let (status, body) = service.submit(json!({ "upload_id": upload, "options": options })).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains("lookback_days") && body.to_string().contains(needle), "{body}");
    }
    let job = service.run(&sample("paths.csv"), json!({ "options": { "lookback_days": [7, 30] } })).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("invalid_option")),
        "{job}"
    );
    assert!(job["error"]["message"].as_str().unwrap().contains("path rows have no times"), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_with_shao_li_auto_markov_order_and_spend_over_chunks_equal_the_local_command() {
    let service = Service::start(chunked(2)).await;
    let (file, costs) = (sample("events.csv"), sample("costs.csv"));
    let options = json!({
        "models": ["linear", "markov", "shao_li"],
        "markov_order": "auto",
        "markov_pair_effects": true,
        "lookback_days": [14, 3, 0],
    });
    let upload = service.upload_file(&file).await;
    let spend_upload = service.upload_file(&costs).await;
    let id =
        service.submit_ok(json!({ "upload_id": upload, "spend_upload_id": spend_upload, "options": options })).await;
    let job = service.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local = attribute_json(
        &file,
        &[
            "--models",
            "linear,markov,shao_li",
            "--markov-order",
            "auto",
            "--markov-pair-effects",
            "--lookback-days",
            "14,3,0",
            "--spend",
            costs.to_str().unwrap(),
        ],
    );
    let comparable = |r: Value| sorted(without_markov_ranks(r));
    assert_same_result(&comparable(without_job_id(result.clone())), &comparable(local), "result");

    // Spend reaches the shao_li rows: cost, and CPA = cost / credited conversions.
    let shao_li = result["models"]["shao_li"]["channels"].as_array().unwrap();
    let paid = shao_li.iter().find(|c| c["channel"] == "paid_search").expect("paid_search is credited");
    let (cost, conversions) = (paid["cost"].as_f64().unwrap(), paid["conversions"].as_f64().unwrap());
    assert!(cost > 0.0 && conversions > 0.0, "{paid}");
    assert!((paid["cpa"].as_f64().unwrap() - cost / conversions).abs() <= 1e-9 * cost / conversions, "{paid}");
    // Every window solves Markov at the order chosen for the top level, which alone (with its
    // first window) reports the choice and the pair effects; shao_li conserves in each.
    let order = &result["models"]["markov"]["order"];
    assert_eq!(order, &result["models"]["markov"]["order_selection"]["chosen"]);
    assert_eq!(&result["reports"]["transitions"]["order"], order, "the transitions of the chain chosen");
    for (i, window) in result["windows"].as_array().unwrap().iter().enumerate() {
        let markov = &window["models"]["markov"];
        assert_eq!(&markov["order"], order, "window {i}");
        assert_eq!((markov.get("pairs").is_some(), markov.get("order_selection").is_some()), (i == 0, i == 0));
        assert_eq!(window["models"]["shao_li"]["conserves_totals"], true, "window {i}");
    }
    let ranked: Vec<&str> =
        result["window_ranks"].as_array().unwrap().iter().map(|r| r["model"].as_str().unwrap()).collect();
    assert_eq!(ranked, ["linear", "markov", "shao_li"]);
    for (table, header) in [
        ("windows", "model,channel,lookback_days,"),
        ("markov_pairs", "channel_a,channel_b,"),
        ("transitions", "from,to,count,probability\n"),
        ("unmatched_cost", "channel,cost,rows\n"),
        ("channels", "model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas\n"),
    ] {
        let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table={table}")).await;
        assert_eq!(status, 200, "{table}");
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with(header), "{table}: {csv}");
        if table == "channels" {
            assert!(csv.lines().any(|l| l.starts_with("shao_li,paid_search,")), "{csv}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_paths_and_transitions_over_chunks_equal_the_local_command_and_degrade_past_the_limit() {
    let service = Service::start(chunked(2)).await;
    let file = sample("events.csv");
    let dir = crate::support::workdir();
    let tables = dir.path().join("tables");
    let local = attribute_json(
        &file,
        &[
            "--models",
            "linear,markov",
            "--markov-order",
            "2",
            "--top-paths",
            "20",
            "--csv-dir",
            tables.to_str().unwrap(),
        ],
    );
    let options = json!({ "models": ["linear", "markov"], "markov_order": 2, "top_paths": 20 });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let progress = &job["progress"];
    assert!(progress["chunks_total"].as_u64().unwrap() > 1, "{progress}");
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    // Paths merge by channel name over the chunks: the same lists and figures as one local pass.
    let (paths, transitions) = (&result["reports"]["paths"], &result["reports"]["transitions"]);
    assert_eq!(paths["exact"], true, "{paths}");
    assert_eq!(paths["converting"].as_array().unwrap().len(), 20);
    assert_eq!(transitions["order"], 2);
    assert_same_result(paths, &local["reports"]["paths"], "paths");
    assert_same_result(transitions, &local["reports"]["transitions"], "transitions");
    // The tables: the service's CSV is the local command's (counts are whole, so to the byte).
    for table in ["paths", "transitions"] {
        let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table={table}")).await;
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(status, 200, "{csv}");
        let want = std::fs::read_to_string(tables.join(format!("{table}.csv"))).unwrap();
        if table == "transitions" {
            assert_eq!(csv, want);
        } else {
            assert_eq!(csv.lines().count(), want.lines().count());
            assert_eq!(csv.lines().nth(1).unwrap().split(',').nth(2), want.lines().nth(1).unwrap().split(',').nth(2));
        }
    }
    let rows = transitions["rows"].as_array().unwrap().len();
    assert_eq!(rows as u64, transitions["total"].as_u64().unwrap(), "the whole table");

    // With a limit of 4 distinct paths every chunk summarises: estimates within the bound.
    let options = json!({ "models": ["linear"], "max_report_paths": 4, "top_paths": 20 });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, small) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    let paths = &small["reports"]["paths"];
    assert_eq!((paths["exact"].as_bool(), paths["distinct_paths"].is_null()), (Some(false), true), "{paths}");
    assert_eq!(small["options"]["max_report_paths"], 4);
    let bound = paths["error_bound"]["conversions"].as_f64().unwrap();
    assert!(bound > 0.0);
    let exact = attribute_json(&file, &["--models", "linear", "--top-paths", "1000"]);
    let truth = exact["reports"]["paths"]["converting"].as_array().unwrap();
    for row in paths["converting"].as_array().unwrap() {
        let want = truth.iter().find(|r| r["path"] == row["path"]).map_or(0.0, |r| r["conversions"].as_f64().unwrap());
        let got = row["conversions"].as_f64().unwrap();
        assert!(got <= want + 1e-9 && got >= want - bound - 1e-9, "{row} vs {want} (bound {bound})");
    }
    // Out of range is refused before any row is read, naming the option.
    let upload = service.upload_file(&file).await;
    let (status, body) = service.submit(json!({ "upload_id": upload, "options": { "top_paths": 0 } })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("top_paths"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operators_cap_on_report_paths_lowers_the_jobs_limit() {
    let mut spec = chunked(1);
    spec.env.push(("MTA_MAX_REPORT_PATHS", "16".into()));
    let service = Service::start(spec).await;
    let job = service.run(&sample("events.csv"), json!({ "options": { "models": ["linear"] } })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, result) = service.get(&format!("/v1/jobs/{}/result", job["id"].as_str().unwrap())).await;
    assert_eq!(result["options"]["max_report_paths"], 16, "the default 100000 is lowered to the cap");
    let paths = &result["reports"]["paths"];
    assert_eq!(paths["exact"], false, "the sample has more than 16 distinct paths: {paths}");
    assert!(paths["error_bound"]["null_journeys"].as_f64().unwrap() > 0.0, "{paths}");
}
