//! The `mta` binary: parses arguments, runs the command, maps the outcome to an exit code
//! (0 success, 1 the input or options were refused, 2 usage error, 3 anything else).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use mta_cli::args::{AttributeArgs, Cli, Command};
use mta_cli::local::{RunError, attribute_file};
use mta_cli::table;
use mta_core::ErrorCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Attribute(args) => attribute(&args),
    }
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
        Err(RunError::Input(e)) if e.code == ErrorCode::InvalidOption => {
            eprintln!("mta: {e}");
            return ExitCode::from(2);
        }
        Err(RunError::Input(e)) => {
            eprintln!("mta: {}: {e}", args.file.display());
            return ExitCode::from(1);
        }
        Err(RunError::Other(e)) => {
            eprintln!("mta: {e:#}");
            return ExitCode::from(3);
        }
    };
    let json = serde_json::to_string_pretty(&result).expect("results serialise");
    let written = match &args.output {
        Some(path) => std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display())),
        None if !args.table => {
            writeln!(std::io::stdout(), "{json}").map_err(|e| format!("cannot write the result: {e}"))
        }
        None => Ok(()),
    };
    if let Err(e) = written {
        eprintln!("mta: {e}");
        return ExitCode::from(3);
    }
    if args.table {
        print!("{}", table::render(&result));
    }
    ExitCode::SUCCESS
}
