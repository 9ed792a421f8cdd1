//! A private `redis-server` for the all-in-one mode when no `REDIS_URL` is configured:
//! it listens on a unix socket under the data directory only (no TCP port), keeps an
//! append-only file there, and stops with the process that started it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A running private Redis; killed when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    socket: PathBuf,
}

impl PrivateRedis {
    /// Starts `redis-server` with its files under `data_dir/redis`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<PrivateRedis> {
        let dir = data_dir.join("redis");
        std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create {}", dir.display()))?;
        let socket = dir.join("redis.sock");
        let _ = std::fs::remove_file(&socket);
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--unixsocketperm", "700", "--appendonly", "yes", "--save", ""])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "No REDIS_URL is set and `redis-server` is not installed. Either install Redis \
                 (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) \
                 or point REDIS_URL at a running server, e.g. REDIS_URL=redis://127.0.0.1:6379"
            ),
            Err(e) => return Err(e).context("Failed to start redis-server"),
        };
        let redis = PrivateRedis { child, socket };
        redis.wait_ready().await?;
        Ok(redis)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        socket_url(&self.socket)
    }

    /// The URL of the private Redis that an all-in-one service on `data_dir` runs, if one does.
    pub fn running_under(data_dir: &Path) -> Option<String> {
        let socket = data_dir.join("redis").join("redis.sock");
        socket.exists().then(|| socket_url(&socket))
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).context("Invalid private Redis URL")?;
        while Instant::now() < deadline {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the private redis-server did not answer within 10 s (socket {})", self.socket.display())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn socket_url(socket: &Path) -> String {
    format!("redis+unix://{}", socket.display())
}
