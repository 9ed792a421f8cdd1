//! Harness for the service tests: a real `redis-server` on a free port (which a test can
//! kill, restart or stall), the real `mta-api` and `mta-worker` binaries as child
//! processes, and a typed HTTP client over loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The tenant of the admin key every service is started with.
const KEY_TENANT: &str = "t1";

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("address").port()
}

/// Logs of child processes go to the test's stderr only when `TEST_LOG` is set.
fn child_output() -> Stdio {
    if std::env::var_os("TEST_LOG").is_some() { Stdio::inherit() } else { Stdio::null() }
}

/// A private redis-server.
pub(crate) struct Redis {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
    appendonly: bool,
}

impl Redis {
    pub(crate) fn start(appendonly: bool) -> Redis {
        let dir = tempfile::Builder::new().prefix("mta-redis-").tempdir().expect("redis directory");
        let mut redis = Redis { child: None, port: free_port(), dir, appendonly };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--enable-debug-command", "yes", "--appendfsync", "always"])
            .args(["--port", &self.port.to_string(), "--appendonly", if self.appendonly { "yes" } else { "no" }])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(child_output())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command("PING").is_some_and(|reply| reply.starts_with("+PONG")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the first reply line.
    pub(crate) fn command(&self, command: &str) -> Option<String> {
        let mut stream = self.send(command).ok()?;
        let mut buffer = [0u8; 512];
        let n = stream.read(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    }

    /// How many times Redis ran `command` since the server started or `CONFIG RESETSTAT`
    /// (from `INFO commandstats`, read whole: the reply is longer than one read).
    pub(crate) fn calls(&self, command: &str) -> u64 {
        let mut stream = self.send("INFO commandstats").expect("INFO sent");
        let mut reply = Vec::new();
        let mut buffer = [0u8; 4096];
        // A bulk reply: `$<length>\r\n<text>\r\n`.
        while !reply.starts_with(b"$") || reply.len() < bulk_end(&reply) {
            let n = stream.read(&mut buffer).expect("INFO reply");
            assert!(n > 0, "redis closed the connection mid-reply");
            reply.extend_from_slice(&buffer[..n]);
        }
        let text = String::from_utf8_lossy(&reply);
        let prefix = format!("cmdstat_{}:calls=", command.to_lowercase());
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |rest| rest.split(',').next().and_then(|n| n.parse().ok()).expect("a call count"))
    }

    /// A new connection with one inline command sent on it.
    fn send(&self, command: &str) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        Ok(stream)
    }

    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills and starts again on the same port and directory (the append-only file survives).
    pub(crate) fn restart(&mut self, down_for: Duration) {
        self.kill();
        std::thread::sleep(down_for);
        self.spawn();
    }

    /// Blocks the server for `seconds` (a stall, not an outage).
    pub(crate) fn stall(&self, seconds: u32) {
        let _ = self.command(&format!("DEBUG SLEEP {seconds}"));
    }
}

/// The byte length of a whole bulk reply whose header has arrived (`usize::MAX` until then).
fn bulk_end(reply: &[u8]) -> usize {
    let Some(header_end) = reply.windows(2).position(|w| w == b"\r\n") else { return usize::MAX };
    let length: usize = String::from_utf8_lossy(&reply[1..header_end]).parse().expect("bulk length");
    header_end + 2 + length + 2
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings of one service under test.
pub(crate) struct ServiceSpec {
    /// Keep every process's log (`info`, JSON) in a file, for tests that read them.
    pub(crate) logs: bool,
    pub(crate) workers: usize,
    pub(crate) appendonly: bool,
    /// Extra environment for the API and workers (`MTA_*`).
    pub(crate) env: Vec<(&'static str, String)>,
    /// `MTA_STORE`; a fresh local directory when `None`.
    pub(crate) store_url: Option<String>,
    /// Extra environment for S3 access.
    pub(crate) store_env: Vec<(&'static str, String)>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            logs: false,
            workers: 1,
            appendonly: false,
            env: Vec::new(),
            store_url: None,
            store_env: Vec::new(),
        }
    }
}

/// A running service: Redis, API processes, worker processes, and an admin key of
/// tenant `t1` (made with `mta keys create`, as an operator would) that `http` sends.
pub(crate) struct Service {
    pub(crate) redis: Redis,
    pub(crate) base: String,
    /// The API's internal listener (`MTA_INTERNAL_BIND`): `/metrics`, `/health/detailed`.
    pub(crate) internal: String,
    pub(crate) http: reqwest::Client,
    pub(crate) key: String,
    api: Child,
    extra_apis: Vec<Child>,
    /// Health and metrics port of each worker (`MTA_WORKER_BIND`).
    pub(crate) worker_ports: Vec<u16>,
    logs: bool,
    workers: Vec<Child>,
    env: Vec<(String, String)>,
    _data: tempfile::TempDir,
}

impl Service {
    pub(crate) async fn start(spec: ServiceSpec) -> Service {
        let redis = Redis::start(spec.appendonly);
        let data = tempfile::Builder::new().prefix("mta-service-").tempdir().expect("data directory");
        let store = spec.store_url.unwrap_or_else(|| format!("file://{}", data.path().join("store").display()));
        let (port, internal_port) = (free_port(), free_port());
        let mut env: Vec<(String, String)> = vec![
            ("REDIS_URL".into(), redis.url()),
            ("MTA_STORE".into(), store),
            ("MTA_DATA_DIR".into(), data.path().display().to_string()),
            ("MTA_BIND".into(), format!("127.0.0.1:{port}")),
            ("MTA_INTERNAL_BIND".into(), format!("127.0.0.1:{internal_port}")),
            ("RUST_LOG".into(), std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into())),
        ];
        env.extend(spec.env.into_iter().chain(spec.store_env).map(|(k, v)| (k.to_owned(), v)));
        if spec.logs {
            env.extend([("RUST_LOG".into(), "info".into()), ("MTA_LOG_FORMAT".into(), "json".into())]);
        }
        let log = |name: &str| spec.logs.then(|| data.path().join(format!("{name}.log")));
        let api = spawn(env!("CARGO_BIN_EXE_mta-api"), &env, log("api"));
        let worker_ports: Vec<u16> = (0..spec.workers).map(|_| free_port()).collect();
        let workers = worker_ports
            .iter()
            .enumerate()
            .map(|(i, port)| spawn_worker(&env, *port, log(&format!("worker-{i}"))))
            .collect();
        let mut service = Service {
            redis,
            base: format!("http://127.0.0.1:{port}"),
            internal: format!("http://127.0.0.1:{internal_port}"),
            http: client(None),
            key: String::new(),
            api,
            extra_apis: Vec::new(),
            worker_ports,
            logs: spec.logs,
            workers,
            env,
            _data: data,
        };
        // Tests poll often: the harness key gets room for that (quota tests make their own keys).
        service.key = service.create_key(KEY_TENANT, "admin", &["--requests-per-hour", "1000000"]);
        service.http = client(Some(&service.key));
        wait_healthy(&service.base).await;
        service
    }

    /// `mta keys create --tenant T --role R [extra]` against this service's Redis; the secret.
    pub(crate) fn create_key(&self, tenant: &str, role: &str, extra: &[&str]) -> String {
        let output = self
            .keys_command(&["create", "--tenant", tenant, "--role", role, "--name", &format!("{role} key of {tenant}")])
            .args(extra)
            .output()
            .expect("mta keys create runs");
        assert!(output.status.success(), "mta keys create: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned()
    }

    /// An `mta keys ...` command aimed at this service's Redis.
    pub(crate) fn keys_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mta"));
        command.arg("keys").args(args).envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    /// Starts one more API process on this service's Redis and store (with `extra` environment); its base URL.
    pub(crate) async fn start_api(&mut self, extra: &[(&str, &str)]) -> String {
        let port = free_port();
        let mut env = self.env.clone();
        env.retain(|(k, _)| k != "MTA_BIND" && k != "MTA_INTERNAL_BIND");
        env.push(("MTA_BIND".into(), format!("127.0.0.1:{port}")));
        env.push(("MTA_INTERNAL_BIND".into(), format!("127.0.0.1:{}", free_port())));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self.extra_apis.push(spawn(env!("CARGO_BIN_EXE_mta-api"), &env, None));
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(&base).await;
        base
    }

    /// A process's log, `api` or `worker-N` (services started with `logs`).
    pub(crate) fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self._data.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    pub(crate) fn api_pid(&self) -> u32 {
        self.api.id()
    }

    /// Waits up to `timeout` for worker `index` to exit; its exit code.
    pub(crate) fn wait_worker_exit(&mut self, index: usize, timeout: Duration) -> Option<i32> {
        wait_exit(&mut self.workers[index], timeout)
    }

    pub(crate) fn wait_api_exit(&mut self, timeout: Duration) -> Option<i32> {
        wait_exit(&mut self.api, timeout)
    }

    /// The local object store's directory (services started without `store_url`).
    pub(crate) fn store_dir(&self) -> std::path::PathBuf {
        self._data.path().join("store")
    }

    /// Where the local store keeps job `id` of the service key's tenant.
    pub(crate) fn job_dir(&self, id: &str) -> std::path::PathBuf {
        self.store_dir().join("tenants").join(KEY_TENANT).join("jobs").join(id)
    }

    pub(crate) fn worker_count(&self) -> usize {
        self.workers.len()
    }

    pub(crate) fn worker_pid(&self, index: usize) -> u32 {
        self.workers[index].id()
    }

    pub(crate) fn kill_worker(&mut self, index: usize) {
        let _ = self.workers[index].kill();
        let _ = self.workers[index].wait();
    }

    /// Restarts every worker process that has exited (an orchestrator's job); returns how many.
    pub(crate) fn revive_workers(&mut self) -> usize {
        let mut revived = 0;
        for (i, worker) in self.workers.iter_mut().enumerate() {
            if matches!(worker.try_wait(), Ok(Some(_))) {
                self.worker_ports[i] = free_port();
                let log = self.logs.then(|| self._data.path().join(format!("worker-{i}.log")));
                *worker = spawn_worker(&self.env, self.worker_ports[i], log);
                revived += 1;
            }
        }
        revived
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        decode(response).await
    }

    /// A request to this service's first API with `key` (none when `None`): status and body.
    pub(crate) async fn call(&self, key: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = client(key).request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        decode(request.send().await.expect("request")).await
    }

    pub(crate) async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        (response.status().as_u16(), response.bytes().await.expect("body").to_vec())
    }

    pub(crate) async fn upload(&self, body: Vec<u8>) -> String {
        let response = self.http.post(format!("{}/v1/uploads", self.base)).body(body).send().await.expect("upload");
        let (status, body) = decode(response).await;
        assert_eq!(status, 201, "upload: {body}");
        body["upload_id"].as_str().expect("upload id").to_owned()
    }

    pub(crate) async fn upload_file(&self, path: &Path) -> String {
        self.upload(std::fs::read(path).expect("read the test input")).await
    }

    pub(crate) async fn submit(&self, spec: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}/v1/jobs", self.base)).json(&spec).send().await.expect("submit");
        decode(response).await
    }

    /// Submits and expects 202; returns the job id.
    pub(crate) async fn submit_ok(&self, spec: Value) -> String {
        let (status, job) = self.submit(spec).await;
        assert_eq!(status, 202, "submit: {job}");
        job["id"].as_str().expect("job id").to_owned()
    }

    /// Polls until the job ends; panics after `timeout`.
    pub(crate) async fn wait(&self, id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, job) = self.get(&format!("/v1/jobs/{id}")).await;
            // 503 is the honest answer while Redis is down (the outage tests); keep polling.
            assert!(status == 200 || status == 503, "job {id}: {status} {job}");
            if status == 200 && matches!(job["state"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not end within {timeout:?}: {job}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads `path`, submits it with `spec` extras, and waits for the end.
    pub(crate) async fn run(&self, path: &Path, extra: Value) -> Value {
        let upload = self.upload_file(path).await;
        let mut spec = json!({ "upload_id": upload });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let id = self.submit_ok(spec).await;
        self.wait(&id, Duration::from_secs(120)).await
    }

    /// The end-of-test check: every job in the ledger has ended.
    pub(crate) async fn assert_nothing_stuck(&self) {
        let (status, list) = self.get("/v1/jobs?limit=500").await;
        assert_eq!(status, 200);
        for job in list["jobs"].as_array().expect("jobs") {
            let state = job["state"].as_str().unwrap_or_default();
            assert!(matches!(state, "succeeded" | "failed" | "cancelled"), "job stuck in {state}: {job}");
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for child in self.workers.iter_mut().chain(&mut self.extra_apis).chain(std::iter::once(&mut self.api)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client that sends `key` as a Bearer token on every request.
pub(crate) fn client(key: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = key {
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().expect("header value"));
    }
    reqwest::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers).build().expect("client")
}

pub(crate) async fn wait_healthy(base: &str) {
    let http = client(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(format!("{base}/health/live")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the API at {base} did not become healthy");
}

fn spawn_worker(env: &[(String, String)], port: u16, log: Option<std::path::PathBuf>) -> Child {
    let mut env = env.to_vec();
    env.push(("MTA_WORKER_BIND".into(), format!("127.0.0.1:{port}")));
    spawn(env!("CARGO_BIN_EXE_mta-worker"), &env, log)
}

/// Starts `binary`; its output goes to `log` (appended) when given.
fn spawn(binary: &str, env: &[(String, String)], log: Option<std::path::PathBuf>) -> Child {
    let (stdout, stderr) = match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("log file");
            (Stdio::from(file.try_clone().expect("log file")), Stdio::from(file))
        }
        None => (child_output(), child_output()),
    };
    Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"))
}

/// Sends SIGTERM (what an orchestrator sends first) to `pid`.
pub(crate) fn terminate(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -TERM {pid}");
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

pub(crate) async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// The rows of a result's `windows` table: one per model, channel and window that ranks it.
pub(crate) fn ranked_window_rows(result: &Value) -> usize {
    result["window_ranks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["channels"].as_array().unwrap())
        .map(|c| c["rank"].as_array().unwrap().iter().filter(|r| !r.is_null()).count())
        .sum()
}

/// `result` with every breakdown sorted by channel and campaign (rows whose credits differ
/// by rounding only may sort either way) and every channel list by name.
pub(crate) fn sorted(mut result: Value) -> Value {
    fn sort(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(rows)) = map.get_mut("breakdown") {
                    rows.sort_by_key(|r| {
                        (r["channel"].as_str().map(str::to_owned), r["campaign"].as_str().map(str::to_owned))
                    });
                }
                if let Some(Value::Array(channels)) = map.get_mut("channels") {
                    channels.sort_by_key(|c| c["channel"].as_str().map(str::to_owned));
                }
                map.values_mut().for_each(sort);
            }
            Value::Array(items) => items.iter_mut().for_each(sort),
            _ => {}
        }
    }
    sort(&mut result);
    result
}

/// The result JSON without its `job_id`, for comparison with `mta attribute`.
pub(crate) fn without_job_id(mut result: Value) -> Value {
    if let Some(object) = result.as_object_mut() {
        object.shift_remove("job_id");
    }
    result
}

/// An S3-compatible server (s3s-fs) in this test process, on a free port, with one bucket.
pub(crate) struct S3Server {
    pub(crate) endpoint: String,
    _root: tempfile::TempDir,
}

impl S3Server {
    pub(crate) const BUCKET: &str = "mta-test";

    pub(crate) async fn start() -> S3Server {
        let root = tempfile::Builder::new().prefix("mta-s3-").tempdir().expect("s3 root");
        std::fs::create_dir(root.path().join(Self::BUCKET)).expect("bucket directory");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single("test-key", "test-secret"));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        S3Server { endpoint, _root: root }
    }

    /// The server's files: buckets as folders, multipart uploads in progress as `.upload*` files.
    pub(crate) fn root(&self) -> &Path {
        self._root.path()
    }

    /// A service spec that stores everything in this server under `prefix`.
    pub(crate) fn spec(&self, mut spec: ServiceSpec, prefix: &str) -> ServiceSpec {
        spec.store_url = Some(format!("s3://{}/{prefix}", Self::BUCKET));
        spec.store_env = vec![
            ("AWS_ACCESS_KEY_ID", "test-key".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test-secret".to_owned()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ];
        spec
    }
}
