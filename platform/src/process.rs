//! Process glue shared by every binary: logging setup, the shutdown signal, and the
//! allocator's arena bound of the service processes.

use tokio::sync::watch;

/// glibc's variable for the most malloc arenas a process keeps.
pub const MALLOC_ARENA_MAX: &str = "MALLOC_ARENA_MAX";

/// Makes a service process run with at most two malloc arenas unless its environment says
/// otherwise. glibc gives each thread that allocates an arena of its own, up to eight per
/// core, and each keeps the most its threads ever held, so a worker's memory grew job after
/// job (docs/operations.md, "Memory per task"); glibc reads `MALLOC_ARENA_MAX` only as a
/// program starts, so a process started without it executes itself again at once, with
/// `MALLOC_ARENA_MAX=2`, the same arguments and the same process id. Call it first thing in
/// `main`, before any thread starts. If that fails the process goes on as it is, with a
/// warning. Only where glibc is the allocator (Linux with the GNU C library).
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(MALLOC_ARENA_MAX).is_some() {
            return;
        }
        let program = match std::env::current_exe() {
            Ok(program) => program,
            Err(error) => return warn_unbounded(&error),
        };
        let mut args = std::env::args_os();
        let mut command = std::process::Command::new(program);
        if let Some(name) = args.next() {
            command.arg0(name);
        }
        // `exec` returns only when it failed.
        let error = command.args(args).env(MALLOC_ARENA_MAX, "2").exec();
        warn_unbounded(&error);
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn warn_unbounded(error: &std::io::Error) {
    eprintln!("warning: could not restart with {MALLOC_ARENA_MAX}=2 ({error}); set it to bound this process's memory");
}

/// Logs to standard error: JSON when `MTA_LOG_FORMAT=json`, readable text otherwise;
/// the level comes from `RUST_LOG`, else `default_level` (`info` for services, `warn`
/// for commands a person waits on).
pub fn init_tracing(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = std::env::var("MTA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// A flag that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing in-flight work");
        let _ = sender.send(true);
    });
    receiver
}

/// Resolves when `flag` turns true.
pub async fn until(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|stop| *stop).await;
}
