//! Black-box tests of the client commands (`mta submit`, `jobs`, `status`, `result`,
//! `credits`, `cancel`) against a running service: output, files and exit codes.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::service_support::{Service, ServiceSpec, ranked_window_rows};
use crate::support::{sample, workdir, write};

fn mta(service: &Service, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mta"))
        .args(args)
        .env("MTA_URL", &service.base)
        .env("MTA_API_KEY", &service.key)
        .output()
        .expect("mta runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_flow_submits_follows_and_fetches() {
    let service = Service::start(ServiceSpec::default()).await;
    let events = sample("events.csv");
    let events = events.to_str().unwrap();

    // submit --wait: upload, follow, print the result table.
    let output = mta(&service, &["submit", events, "--models", "linear,markov", "--export-credits", "--wait"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(table.contains("linear") && table.contains("markov") && table.contains("paid_search"), "{table}");
    assert!(text(&output.stderr).contains("uploaded"), "{}", text(&output.stderr));

    // jobs / status / result in every format, with --json for scripts.
    let output = mta(&service, &["jobs", "--json"]);
    let jobs: Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(jobs["jobs"][0]["state"], "succeeded");
    assert!(text(&mta(&service, &["jobs"]).stdout).contains(&id));
    let status = text(&mta(&service, &["status", &id]).stdout);
    assert!(status.contains("succeeded") && status.contains("chunks"), "{status}");
    let json: Value = serde_json::from_slice(&mta(&service, &["result", &id, "--format", "json"]).stdout).unwrap();
    assert_eq!(json["job_id"], id.as_str());
    let csv = text(&mta(&service, &["result", &id, "--format", "csv"]).stdout);
    assert!(csv.starts_with("model,channel,conversions"), "{csv}");

    // credits to a file.
    let dir = workdir();
    let out = dir.path().join("credits.parquet");
    let output = mta(&service, &["credits", &id, "-o", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(&std::fs::read(&out).unwrap()[..4], b"PAR1");

    // Exit codes: a finished job cannot be cancelled (1); a failed job (1, with row/column);
    // a bad key (1); an unreachable service (3); a usage error (2).
    let output = mta(&service, &["cancel", &id]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("already ended"), "{}", text(&output.stderr));
    let bad = write(dir.path(), "bad.csv", "user_id,timestamp,channel,conversion\nu1,not-a-time,ads,0\n");
    let output = mta(&service, &["submit", bad.to_str().unwrap(), "--wait"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("row 1, column timestamp"), "{}", text(&output.stderr));
    let output = mta(&service, &["jobs", "--key", "mta_nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("API key"), "{}", text(&output.stderr));
    let output = mta(&service, &["jobs", "--url", "http://127.0.0.1:9"]);
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert_eq!(mta(&service, &["submit"]).status.code(), Some(2));
    assert_eq!(mta(&service, &["submit", events, "--markov-order", "9"]).status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookback_windows_go_through_submit_and_come_back_as_tables() {
    let service = Service::start(ServiceSpec::default()).await;
    let events = sample("events.csv");
    let events = events.to_str().unwrap();
    let output =
        mta(&service, &["submit", events, "--models", "linear,first_touch", "--lookback-days", "7,30", "--wait"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let table = text(&output.stdout);
    assert!(table.contains("lookback windows") && table.contains("rank spread") && table.contains("30d"), "{table}");
    let jobs: Value = serde_json::from_slice(&mta(&service, &["jobs", "--json"]).stdout).unwrap();
    let id = jobs["jobs"][0]["id"].as_str().unwrap().to_owned();
    let json: Value = serde_json::from_slice(&mta(&service, &["result", &id, "--format", "json"]).stdout).unwrap();
    assert_eq!(json["options"]["lookback_windows"], serde_json::json!([7.0, 30.0]));
    let csv = text(&mta(&service, &["result", &id, "--table", "windows"]).stdout);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("model,channel,lookback_days,conversions,value,share,rank"), "{csv}");
    let ranked = ranked_window_rows(&json);
    assert_eq!(lines.count(), ranked);
    // Refused before the upload, naming the option.
    let output = mta(&service, &["submit", events, "--lookback-days", "1,2,3,4,5,6,7,8,9"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(text(&output.stderr).contains("at most 8 windows"), "{}", text(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_waiting_but_not_the_job() {
    let spec = ServiceSpec { env: vec![("MTA_FAULT_CHUNK_DELAY_MS", "1500".to_owned())], ..ServiceSpec::default() };
    let service = Service::start(spec).await;
    let events = sample("events.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_mta"))
        .args(["submit", events.to_str().unwrap(), "--wait"])
        .env("MTA_URL", &service.base)
        .env("MTA_API_KEY", &service.key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the job exists and runs, interrupt the waiting client.
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let (_, list) = service.get("/v1/jobs").await;
        if let Some(job) = list["jobs"].as_array().and_then(|jobs| jobs.first()) {
            break job["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no job was submitted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("goes on"), "{}", text(&output.stderr));
    assert_eq!(service.wait(&id, Duration::from_secs(120)).await["state"], "succeeded", "the job was not cancelled");
}
