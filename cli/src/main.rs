//! The `mta` binary: parses arguments, runs the command, maps the outcome to an exit code
//! (0 success, 1 the input or options were refused or a job failed, 2 usage error, 3 anything
//! else; 130 when a client command's wait is interrupted).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use mta_cli::args::{AttributeArgs, Cli, Command, DemoArgs, ServeArgs};
use mta_cli::local::{RunFailure, attribute_file};
use mta_cli::table;
use mta_core::ErrorCode;
use mta_platform::run_error::RunError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Attribute(args) => attribute(&args),
        Command::Serve(args) => {
            mta_platform::process::bound_malloc_arenas();
            service("info", || serve(args))
        }
        Command::Demo(args) => {
            mta_platform::process::bound_malloc_arenas();
            service("warn", || demo(args))
        }
        Command::Keys(command) => service("warn", || mta_cli::keys::run(command)),
        Command::Client(command) => client(command),
    }
}

/// Runs an async service command on a runtime; failures exit with 3.
fn service<F: Future<Output = anyhow::Result<()>>>(log_level: &str, command: impl FnOnce() -> F) -> ExitCode {
    mta_platform::process::init_tracing(log_level);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mta: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(command()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mta: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// A client command against a running service; see `mta_cli::client` for the exit codes.
fn client(command: mta_cli::args::ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mta: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(mta_cli::client::run(command)) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(failure) => {
            eprintln!("mta: {}", failure.message);
            ExitCode::from(failure.outcome.code())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = mta_platform::Config::from_env()?;
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    let shutdown = mta_platform::process::shutdown_on_signal();
    mta_cli::serve::run_all_in_one(config, args.workers.max(1), shutdown, |address| {
        eprintln!("mta: serving on http://{address} (Ctrl-C to stop)");
    })
    .await
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = tempfile::Builder::new().prefix("mta-demo-").tempdir()?;
    let result = mta_cli::serve::demo(&args.file, data_dir.path().to_owned(), args.workers.max(1)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", table::render(&result.result));
    }
    Ok(())
}

fn attribute(args: &AttributeArgs) -> ExitCode {
    if let Some(threads) = args.threads
        && let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build_global()
    {
        eprintln!("mta: cannot start {threads} threads: {e}");
        return ExitCode::from(3);
    }
    let request = match args.to_request() {
        Ok(request) => request,
        Err(e) => {
            eprintln!("mta: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match attribute_file(&request) {
        Ok(result) => result,
        Err(RunFailure { error: RunError::Input(e), .. }) if e.code == ErrorCode::InvalidOption => {
            eprintln!("mta: {e}");
            return ExitCode::from(2);
        }
        Err(RunFailure { file, error: RunError::Input(e) }) => {
            eprintln!("mta: {}: {e}", file.display());
            return ExitCode::from(1);
        }
        Err(RunFailure { error: RunError::Other(e), .. }) => {
            eprintln!("mta: {e:#}");
            return ExitCode::from(3);
        }
        // Nothing stops a local run from outside; Ctrl-C ends the process.
        Err(RunFailure { error: RunError::Stopped, .. }) => return ExitCode::from(3),
    };
    let json = serde_json::to_string_pretty(&result).expect("results serialise");
    let written = match &args.output {
        Some(path) => std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display())),
        None if !args.table => {
            writeln!(std::io::stdout(), "{json}").map_err(|e| format!("cannot write the result: {e}"))
        }
        None => Ok(()),
    };
    let written = written.and_then(|()| match &args.csv_dir {
        Some(dir) => write_csv_tables(dir, &result),
        None => Ok(()),
    });
    let written = written.and_then(|()| match &args.transitions {
        Some(path) => std::fs::write(path, mta_core::result::Table::Transitions.csv(&result))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => Ok(()),
    });
    if let Err(e) = written {
        eprintln!("mta: {e}");
        return ExitCode::from(3);
    }
    if args.table {
        print!("{}", table::render(&result));
    }
    ExitCode::SUCCESS
}

/// `--csv-dir`: one tidy CSV file per table the result has (`channels.csv`, `periods.csv`,
/// `path_length.csv`, `time_lag.csv`, `positions.csv`, `paths.csv`, `transitions.csv`, `windows.csv`,
/// `unmatched_cost.csv`, `markov_pairs.csv`, `intervals.csv`, `window_intervals.csv`, ...).
fn write_csv_tables(dir: &std::path::Path, result: &mta_core::AttributionResult) -> Result<(), String> {
    use mta_core::result::Table;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    for table in Table::all().filter(|t| t.applies_to(result)) {
        let path = dir.join(format!("{}.csv", table.as_str()));
        std::fs::write(&path, table.csv(result)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
