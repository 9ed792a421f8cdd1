//! Retention (issue 16, item 10): everything a job leaves behind expires. Many jobs run
//! through a real API and worker with a retention of seconds; after it, Redis is back to
//! its key count and memory from before them, the object store holds nothing of theirs,
//! and the API answers 404 for them.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::service_support::{Redis, Service, ServiceSpec};
use crate::support::sample;

const RETENTION_SECS: u64 = 8;
const JOBS: usize = 30;
/// The tenant's audit stream: one entry per job created, capped by count, not by time.
const AUDIT: &str = "mta:audit:t1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_retention_redis_and_the_store_are_back_to_their_baseline() {
    let env = vec![
        ("MTA_RETENTION_SECS", RETENTION_SECS.to_string()),
        ("MTA_ROWS_PER_CHUNK", "300".into()),
        ("MTA_CSV_RANGE_BYTES", "20000".into()),
    ];
    let service = Service::start(ServiceSpec { env, ..ServiceSpec::default() }).await;
    let events = std::fs::read_to_string(sample("events.csv")).unwrap();
    let head: Vec<&str> = events.lines().take(1200).collect();

    // A first round of jobs and its retention set the baseline: what the service keeps
    // whatever runs (keys, quota counters, apalis's live consumers, the audit stream) and
    // Redis' own high-water marks (tables, the script cache).
    let warm_up = run_jobs(&service, &head, JOBS, "warm-up").await;
    wait_until_swept(&service, &warm_up, None).await;
    let (keys_before, memory_before) = (service.redis.dbsize(), service.redis.used_memory());
    let (audit_before, scripts_before) =
        (service.redis.memory_of(AUDIT), service.redis.info_field("memory", "used_memory_scripts_eval"));

    let jobs = run_jobs(&service, &head, JOBS, "job").await;
    let (keys_full, memory_full) = (service.redis.dbsize(), service.redis.used_memory());
    let first = &jobs[0];
    let per_job_keys: Vec<String> =
        service.redis.keys().into_iter().filter(|k| k.contains(&first.job) || k.contains(&first.upload)).collect();
    let store_full = tree_bytes(&service.store_dir().join("tenants"));
    eprintln!(
        "before retention: {keys_full} keys (baseline {keys_before}, {:.1} per job), used_memory {memory_full} B \
         (baseline {memory_before}, {} B per job), store {store_full} B; keys of one job: {per_job_keys:?}",
        (keys_full - keys_before) as f64 / JOBS as f64,
        (memory_full as i64 - memory_before as i64) / JOBS as i64,
    );
    assert!(keys_full > keys_before + JOBS as u64, "the jobs left keys while they lived");
    for key in &per_job_keys {
        let ttl: i64 = service.redis.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > 0, "{key} has no time to live ({ttl})");
    }

    let deadline = wait_until_swept(&service, &jobs, Some(keys_before)).await;
    let (keys_after, memory_after) = (service.redis.dbsize(), service.redis.used_memory());
    eprintln!(
        "after retention ({deadline:?} after the last job ended): {keys_after} keys, used_memory {memory_after} B, \
         store {} B; audit stream {} B (was {audit_before} B), Lua scripts {} B (were {scripts_before} B)",
        tree_bytes(&service.store_dir().join("tenants")),
        service.redis.memory_of(AUDIT),
        service.redis.info_field("memory", "used_memory_scripts_eval"),
    );
    assert!(keys_after <= keys_before, "keys left: {:?}", service.redis.keys());
    // What stays is small and does not grow with the jobs (30 to 75 kB measured after 1 + 30
    // and after 30 + 30 jobs alike, none of it in a key but the audit stream's few kB).
    let grown = memory_after.saturating_sub(memory_before);
    assert!(
        grown < 128 << 10 && grown * 5 < memory_full.saturating_sub(memory_before),
        "used_memory {memory_before} -> {memory_full} -> {memory_after}"
    );
    for job in &jobs {
        let (status, body) = service.get(&format!("/v1/jobs/{}", job.job)).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
        let (status, body) = service.submit(json!({ "upload_id": job.upload })).await;
        assert_eq!(status, 422, "an expired upload is gone: {body}");
    }
    let (_, list) = service.get("/v1/jobs?limit=500").await;
    assert_eq!(list["jobs"], json!([]), "the tenant's job index is trimmed");
}

struct Ran {
    job: String,
    upload: String,
}

/// Runs `count` jobs in waves of five and waits for their end: distinct inputs, plus one
/// cache hit, one idempotent submission and one failed job when there are enough.
async fn run_jobs(service: &Service, head: &[&str], count: usize, tag: &str) -> Vec<Ran> {
    let mut ran = Vec::new();
    for wave in (0..count).collect::<Vec<_>>().chunks(5) {
        let mut ids = Vec::new();
        for &i in wave {
            let body = match i {
                // A file the split refuses: a failed job.
                3 => "who,when\nu1,yesterday\n".to_owned(),
                // The same bytes and spec as job 0: answered from the cache.
                5 => input(head, tag, 0),
                _ => input(head, tag, i),
            };
            let upload = service.upload(body.into_bytes()).await;
            let request = service.http.post(format!("{}/v1/jobs", service.base)).json(&json!({ "upload_id": upload }));
            let request = if i == 2 { request.header("Idempotency-Key", format!("{tag}-{i}")) } else { request };
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 202);
            let job: serde_json::Value = response.json().await.unwrap();
            ids.push(Ran { job: job["id"].as_str().unwrap().to_owned(), upload });
        }
        for ran in &ids {
            service.wait(&ran.job, Duration::from_secs(60)).await;
        }
        ran.extend(ids);
    }
    ran
}

/// The first rows of the sample, with one more touch that makes the file `i`'s own.
fn input(head: &[&str], tag: &str, i: usize) -> String {
    let mut text = head.join("\n");
    text.push_str(&format!("\n{tag}-user-{i},2024-01-01T00:00:00Z,email,0,0\n"));
    text
}

/// Waits until the sweep removed the `jobs` (their ids in no key, their objects gone) and,
/// when given, the key count is back to `keys`; how long that took.
async fn wait_until_swept(service: &Service, jobs: &[Ran], keys: Option<u64>) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(RETENTION_SECS * 3 + 20);
    loop {
        let all_keys = service.redis.keys();
        let left: Vec<&String> =
            all_keys.iter().filter(|k| jobs.iter().any(|j| k.contains(&j.job) || k.contains(&j.upload))).collect();
        let files = files_under(&service.store_dir().join("tenants"));
        let count_ok = keys.is_none_or(|keys| service.redis.dbsize() <= keys);
        if left.is_empty() && files.is_empty() && count_ok {
            return started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "not swept: keys {left:?}, files {files:?}, {} keys in all: {all_keys:?}",
            service.redis.dbsize()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.flatten().flat_map(|e| if e.path().is_dir() { files_under(&e.path()) } else { vec![e.path()] }).collect()
}

fn tree_bytes(dir: &std::path::Path) -> u64 {
    files_under(dir).iter().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum()
}

impl Redis {
    fn cli(&self, args: &[&str]) -> String {
        let output =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli runs");
        assert!(output.status.success(), "redis-cli {args:?}");
        String::from_utf8(output.stdout).expect("UTF-8")
    }

    fn dbsize(&self) -> u64 {
        self.cli(&["DBSIZE"]).trim().parse().expect("a key count")
    }

    /// `used_memory`, the least of a few samples over two seconds (what comes and goes with
    /// a request or a sweep in flight is not what stays).
    fn used_memory(&self) -> u64 {
        let samples: Vec<u64> = (0..5)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(400));
                self.info_field("memory", "used_memory")
            })
            .collect();
        samples.into_iter().min().expect("samples")
    }

    fn info_field(&self, section: &str, field: &str) -> u64 {
        let info = self.cli(&["INFO", section]);
        let prefix = format!("{field}:");
        info.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|n| n.trim().parse().ok()).expect("an INFO field")
    }

    /// `MEMORY USAGE` of `key` (0 when it does not exist).
    fn memory_of(&self, key: &str) -> u64 {
        self.cli(&["MEMORY", "USAGE", key]).trim().parse().unwrap_or(0)
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.cli(&["--scan"]).lines().map(str::to_owned).collect();
        keys.sort();
        keys
    }
}
