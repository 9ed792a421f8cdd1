//! The client commands: `mta submit`, `jobs`, `status`, `result`, `credits`, `cancel`,
//! talking to a running service over its HTTP API (`--url`/`MTA_URL`, `--key`/`MTA_API_KEY`).
//!
//! Tables for people, `--json` for scripts. Exit codes: 0 success, 1 the job failed or was
//! cancelled, or the service refused the request; 2 usage error; 3 the service could not be
//! reached or answered with a fault; 130 interrupted while waiting (the job goes on).

use std::path::Path;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use mta_core::AttributionError;
use mta_platform::results::JobResult;
use mta_platform::webhook::WebhookSpec;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::args::{ClientCommand, Connection, SubmitArgs};
use crate::table;

/// How a client command ended, as an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The job failed or was cancelled, or the service refused the request.
    Refused,
    /// Could not reach the service, or it answered with a fault.
    Broken,
    /// Ctrl-C while waiting; the job goes on.
    Interrupted,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Refused => 1,
            Outcome::Broken => 3,
            Outcome::Interrupted => 130,
        }
    }
}

/// A failed command: what to tell the user and how to exit.
#[derive(Debug)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
}

impl Failure {
    fn broken(message: impl Into<String>) -> Failure {
        Failure { outcome: Outcome::Broken, message: message.into() }
    }
}

type Result<T> = std::result::Result<T, Failure>;

pub async fn run(command: ClientCommand) -> Result<Outcome> {
    match command {
        ClientCommand::Submit(args) => submit(*args).await,
        ClientCommand::Jobs { connection, limit } => {
            let api = Api::new(&connection)?;
            let list = api.json(api.get(&format!("/v1/jobs?limit={limit}"))).await?;
            if connection.json {
                print_json(&list);
            } else {
                print!("{}", job_table(list["jobs"].as_array().map(Vec::as_slice).unwrap_or_default()));
            }
            Ok(Outcome::Done)
        }
        ClientCommand::Status { id, connection } => {
            let api = Api::new(&connection)?;
            let job = api.json(api.get(&format!("/v1/jobs/{id}"))).await?;
            if connection.json {
                print_json(&job);
            } else {
                print!("{}", job_details(&job));
            }
            Ok(match job["state"].as_str() {
                Some("failed" | "cancelled") => Outcome::Refused,
                _ => Outcome::Done,
            })
        }
        ClientCommand::Result { id, format, table, connection } => {
            let api = Api::new(&connection)?;
            let format = match (&table, connection.json) {
                (Some(_), _) => "csv",
                (None, true) => "json",
                (None, false) => &format,
            };
            print_result(&api, &id, format, table.as_deref().unwrap_or("channels")).await?;
            Ok(Outcome::Done)
        }
        ClientCommand::Credits { id, output, connection } => {
            let api = Api::new(&connection)?;
            let bytes = download(&api, &format!("/v1/jobs/{id}/credits"), &output).await?;
            eprintln!("wrote {bytes} bytes to {}", output.display());
            Ok(Outcome::Done)
        }
        ClientCommand::Cancel { id, connection } => {
            let api = Api::new(&connection)?;
            let job = api.json(api.http.delete(api.url(&format!("/v1/jobs/{id}")))).await?;
            if connection.json {
                print_json(&job);
            } else {
                println!("job {id} is {}", job["state"].as_str().unwrap_or("?"));
            }
            Ok(Outcome::Done)
        }
    }
}

async fn submit(args: SubmitArgs) -> Result<Outcome> {
    let api = Api::new(&args.connection)?;
    // Options are checked before a byte is sent.
    let refused = |e: AttributionError| Failure { outcome: Outcome::Refused, message: e.to_string() };
    let mut spec = args.job.job_spec(None, args.export_credits).map_err(refused)?;
    spec.check().map_err(refused)?;
    spec.webhook = args.webhook.clone().map(|url| WebhookSpec { url, secret: None });
    let upload = upload(&api, &args.file).await?;
    let upload_id = upload["upload_id"].as_str().and_then(|id| id.parse().ok());
    spec.upload_id = Some(upload_id.ok_or_else(|| Failure::broken("the upload has no id"))?);
    if let Some(costs) = &args.spend {
        let costs = self::upload(&api, costs).await?;
        let spend_id = costs["upload_id"].as_str().and_then(|id| id.parse().ok());
        spec.spend_upload_id = Some(spend_id.ok_or_else(|| Failure::broken("the cost table's upload has no id"))?);
    }
    let job = api.json(api.http.post(api.url("/v1/jobs")).json(&spec)).await?;
    let id = job["id"].as_str().ok_or_else(|| Failure::broken("the job has no id"))?.to_owned();
    if let Some(secret) = job["webhook_secret"].as_str() {
        eprintln!("webhook signing secret (shown once): {secret}");
    }
    if !args.wait {
        if args.connection.json {
            print_json(&job);
        } else {
            println!("{id}");
            eprintln!("job {id} is {}; follow it with `mta status {id}`", job["state"].as_str().unwrap_or("?"));
        }
        return Ok(Outcome::Done);
    }
    let ended = tokio::select! {
        ended = follow(&api, &id) => ended?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nstopped waiting; job {id} goes on (see `mta status {id}`, `mta cancel {id}`)");
            return Ok(Outcome::Interrupted);
        }
    };
    match ended["state"].as_str() {
        Some("succeeded") => {
            print_result(&api, &id, if args.connection.json { "json" } else { "table" }, "channels").await?;
            Ok(Outcome::Done)
        }
        Some("failed") => {
            let error = &ended["error"];
            eprintln!("job {id} failed: {}", error["message"].as_str().unwrap_or("(no message)"));
            for detail in error["details"].as_array().into_iter().flatten() {
                eprintln!("  {}", located(detail));
            }
            Ok(Outcome::Refused)
        }
        _ => {
            eprintln!("job {id} was cancelled");
            Ok(Outcome::Refused)
        }
    }
}

/// Uploads `file`, submits it with the default options, waits for the job and reads its
/// result: the whole client flow in one call (`mta demo`).
pub async fn attribute_remotely(connection: &Connection, file: &Path) -> Result<JobResult> {
    let api = Api::new(connection)?;
    let upload = upload(&api, file).await?;
    let job = api.json(api.http.post(api.url("/v1/jobs")).json(&json!({ "upload_id": upload["upload_id"] }))).await?;
    let id = job["id"].as_str().ok_or_else(|| Failure::broken("the job has no id"))?.to_owned();
    eprintln!("job {id} queued");
    let ended = follow(&api, &id).await?;
    if ended["state"] != "succeeded" {
        return Err(Failure { outcome: Outcome::Refused, message: format!("job {id} did not succeed: {ended}") });
    }
    eprintln!("job {id} succeeded");
    api.read(api.get(&format!("/v1/jobs/{id}/result"))).await
}

/// Uploads the file with a progress bar (bytes, rate, ETA): straight to the object store
/// when the service offers direct uploads (an S3 store), else streamed to `POST /v1/uploads`.
async fn upload(api: &Api, path: &Path) -> Result<Value> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Failure { outcome: Outcome::Refused, message: format!("cannot read {}: {e}", path.display()) })?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("uploading {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
            .expect("a valid template"),
    );
    let started = if size > 0 { start_direct(api, size).await? } else { None };
    let upload = match &started {
        Some(started) => upload_direct(api, path, started, &bar).await,
        None => {
            let request = api
                .http
                .post(api.url("/v1/uploads"))
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(read_counted(file, size, bar.clone())));
            api.json(request).await
        }
    };
    bar.finish_and_clear();
    let upload = upload?;
    match started {
        Some(started) => eprintln!(
            "uploaded {} ({} bytes, straight to the object store; parts: {})",
            path.display(),
            upload["size_bytes"],
            started["parts"].as_array().map_or(0, Vec::len)
        ),
        None => eprintln!("uploaded {} ({} bytes)", path.display(), upload["size_bytes"]),
    }
    Ok(upload)
}

/// Starts a direct upload; `None` when the service does not offer them (its store is
/// local, or it predates them).
async fn start_direct(api: &Api, size: u64) -> Result<Option<Value>> {
    // Parts of 64 MiB, smaller for a smaller file so that several go at once, but not under S3's 5 MiB.
    let part_bytes = size.div_ceil(PARTS_IN_FLIGHT as u64).clamp(5 << 20, 64 << 20);
    let body = json!({ "size_bytes": size, "part_bytes": part_bytes });
    let request = api.http.post(api.url("/v1/uploads/direct")).json(&body);
    let response =
        request.send().await.map_err(|e| Failure::broken(format!("cannot reach the service at {}: {e}", api.base)))?;
    let status = response.status();
    if status.is_success() {
        let started = response.json().await.map_err(|e| Failure::broken(format!("invalid JSON: {e}")))?;
        return Ok(Some(started));
    }
    let body: Value = response.json().await.unwrap_or_default();
    match (status.as_u16(), body["error"]["code"].as_str()) {
        (409, Some("direct_upload_unsupported")) | (404, _) | (405, _) => Ok(None),
        _ => Err(Api::failure(status, &body)),
    }
}

/// Parts sent at once by a direct upload.
const PARTS_IN_FLIGHT: usize = 4;

/// Sends the parts of the file to their presigned URLs, a few at once (without the API
/// key: the URL is the permission), then has the service complete the upload.
async fn upload_direct(api: &Api, path: &Path, started: &Value, bar: &ProgressBar) -> Result<Value> {
    let malformed = || Failure::broken("the service's direct upload has no parts");
    let part_bytes = started["part_bytes"].as_u64().ok_or_else(malformed)?;
    let mut parts = Vec::new();
    for part in started["parts"].as_array().ok_or_else(malformed)? {
        match (part["part_number"].as_u64(), part["size_bytes"].as_u64(), part["url"].as_str()) {
            (Some(number), Some(len), Some(url)) if number >= 1 => parts.push((number, len, url)),
            _ => return Err(malformed()),
        }
    }
    let etags: Vec<Value> = futures_util::stream::iter(parts)
        .map(|(number, len, url)| async move {
            let etag = put_part(api, path, (number - 1) * part_bytes, len, url, bar).await.map_err(|message| {
                Failure::broken(format!("part {number} did not reach the object store: {message}"))
            })?;
            Ok::<_, Failure>(json!({ "part_number": number, "etag": etag }))
        })
        .buffered(PARTS_IN_FLIGHT)
        .try_collect()
        .await?;
    let complete = started["complete_url"].as_str().ok_or_else(malformed)?;
    api.json(api.http.post(api.url(complete)).json(&json!({ "parts": etags }))).await
}

/// `PUT`s `len` bytes of the file from `offset` to `url`, streamed; answers the ETag.
async fn put_part(
    api: &Api,
    path: &Path,
    offset: u64,
    len: u64,
    url: &str,
    bar: &ProgressBar,
) -> std::result::Result<String, String> {
    use tokio::io::AsyncSeekExt;
    // A file of its own: parts in flight read at their own offsets.
    let mut file = tokio::fs::File::open(path).await.map_err(|e| e.to_string())?;
    file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|e| e.to_string())?;
    let body = reqwest::Body::wrap_stream(read_counted(file, len, bar.clone()));
    let response = api
        .store
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{status}: {}", response.text().await.unwrap_or_default()));
    }
    let etag = response.headers().get(reqwest::header::ETAG).and_then(|v| v.to_str().ok());
    etag.map(str::to_owned).ok_or_else(|| "the store answered no ETag".to_owned())
}

/// The first `len` bytes of `file` from where it stands, in pieces, counted on `bar`.
fn read_counted(
    file: tokio::fs::File,
    len: u64,
    bar: ProgressBar,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buffer = vec![0u8; (256 * 1024).min(left as usize)];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(buffer), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
    .inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            bar.inc(chunk.len() as u64);
        }
    })
}

/// Polls the job until it ends, showing its stage and progress.
async fn follow(api: &Api, id: &str) -> Result<Value> {
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let job = api.json(api.get(&format!("/v1/jobs/{id}"))).await?;
        let state = job["state"].as_str().unwrap_or("?");
        if matches!(state, "succeeded" | "failed" | "cancelled") {
            bar.finish_and_clear();
            return Ok(job);
        }
        bar.set_message(format!("job {id}: {}", progress_line(&job)));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn progress_line(job: &Value) -> String {
    let p = &job["progress"];
    let n = |field: &str| p[field].as_u64().unwrap_or(0);
    let stage = job["stage"].as_str().unwrap_or(job["state"].as_str().unwrap_or("?"));
    format!(
        "{stage}: splits {}/{}, chunks {}/{}, {} rows",
        n("splits_done"),
        n("splits_total"),
        n("chunks_done"),
        n("chunks_total"),
        n("rows")
    )
}

async fn print_result(api: &Api, id: &str, format: &str, csv_table: &str) -> Result<()> {
    match format {
        "csv" => {
            let response = api.send(api.get(&format!("/v1/jobs/{id}/result?format=csv&table={csv_table}"))).await?;
            print!("{}", response.text().await.map_err(|e| Failure::broken(e.to_string()))?);
        }
        "json" => print_json(&api.json(api.get(&format!("/v1/jobs/{id}/result"))).await?),
        _ => {
            let answer: JobResult = api.read(api.get(&format!("/v1/jobs/{id}/result"))).await?;
            print!("{}", table::render(&answer.result));
        }
    }
    Ok(())
}

async fn download(api: &Api, path: &str, output: &Path) -> Result<u64> {
    let response = api.send(api.get(path)).await?;
    let mut stream = response.bytes_stream();
    let mut file = tokio::fs::File::create(output).await.map_err(|e| Failure {
        outcome: Outcome::Refused,
        message: format!("cannot write {}: {e}", output.display()),
    })?;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Failure::broken(format!("the download broke off: {e}")))?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| Failure::broken(format!("cannot write {}: {e}", output.display())))?;
        written += chunk.len() as u64;
    }
    Ok(written)
}

/// The service, with the key on every request.
struct Api {
    http: reqwest::Client,
    /// Without the key: for the object store's presigned URLs, which must not see it.
    store: reqwest::Client,
    base: String,
}

impl Api {
    fn new(connection: &Connection) -> Result<Api> {
        let key = connection.key.as_deref().ok_or_else(|| Failure {
            outcome: Outcome::Refused,
            message: "no API key: pass --key or set MTA_API_KEY".to_owned(),
        })?;
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {key}").parse().map_err(|_| Failure {
            outcome: Outcome::Refused,
            message: "the API key holds characters a header cannot carry".to_owned(),
        })?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::broken(e.to_string()))?;
        let store = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Failure::broken(e.to_string()))?;
        Ok(Api { http, store, base: connection.url.trim_end_matches('/').to_owned() })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.url(path))
    }

    /// Sends; a non-2xx answer becomes a failure worded from the API's error body.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .map_err(|e| Failure::broken(format!("cannot reach the service at {}: {e}", self.base)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or_default();
        Err(Api::failure(status, &body))
    }

    /// A failure worded from the API's error body.
    fn failure(status: reqwest::StatusCode, body: &Value) -> Failure {
        let error = &body["error"];
        let mut message =
            format!("{} ({status})", error["message"].as_str().unwrap_or("the service refused the request"));
        for detail in error["details"].as_array().into_iter().flatten() {
            message.push_str(&format!("\n  {}", located(detail)));
        }
        let outcome = if status.is_server_error() { Outcome::Broken } else { Outcome::Refused };
        Failure { outcome, message }
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        self.read(request).await
    }

    /// The answer read as `T`, the type the service writes it from.
    async fn read<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        response.json().await.map_err(|e| Failure::broken(format!("the service answered with invalid JSON: {e}")))
    }
}

/// `row 5321, column channel: …` from an error detail.
fn located(detail: &Value) -> String {
    let mut place = Vec::new();
    if let Some(row) = detail["row"].as_u64() {
        place.push(format!("row {row}"));
    }
    if let Some(column) = detail["column"].as_str() {
        place.push(format!("column {column}"));
    }
    let problem = detail["problem"].as_str().unwrap_or_default();
    if place.is_empty() { problem.to_owned() } else { format!("{}: {problem}", place.join(", ")) }
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialise"));
}

fn job_table(jobs: &[Value]) -> String {
    let mut out =
        format!("{:<36}  {:<9}  {:<11}  {:>11}  {:>10}  {}\n", "ID", "STATE", "STAGE", "CHUNKS", "ROWS", "CREATED");
    for job in jobs {
        let p = &job["progress"];
        let chunks = format!("{}/{}", p["chunks_done"].as_u64().unwrap_or(0), p["chunks_total"].as_u64().unwrap_or(0));
        out.push_str(&format!(
            "{:<36}  {:<9}  {:<11}  {:>11}  {:>10}  {}\n",
            job["id"].as_str().unwrap_or("?"),
            job["state"].as_str().unwrap_or("?"),
            job["stage"].as_str().unwrap_or("-"),
            chunks,
            p["rows"].as_u64().unwrap_or(0),
            job["created_at"].as_str().unwrap_or("")
        ));
    }
    out
}

fn job_details(job: &Value) -> String {
    let mut out = String::new();
    let field = |name: &str| job[name].as_str().unwrap_or("-").to_owned();
    for (label, value) in [
        ("job", field("id")),
        ("state", field("state")),
        ("progress", progress_line(job)),
        ("created", field("created_at")),
        ("finished", field("finished_at")),
    ] {
        out.push_str(&format!("{label:<9} {value}\n"));
    }
    if let Some(source) = job["cached_from"].as_str() {
        out.push_str(&format!("{:<9} answered from the cache (job {source})\n", "cache"));
    }
    if job["error"].is_object() {
        out.push_str(&format!("{:<9} {}\n", "error", job["error"]["message"].as_str().unwrap_or("?")));
        for detail in job["error"]["details"].as_array().into_iter().flatten() {
            out.push_str(&format!("          {}\n", located(detail)));
        }
    }
    out
}
