//! `mta-gen`: a deterministic generator of synthetic touchpoint data for benchmarking `mta`.
//!
//! It writes `--rows` rows of `user_id, timestamp, channel, conversion, conversion_value`
//! (with `--schema marketing`, `source, medium, campaign` in place of `channel`), ordered by
//! timestamp like a warehouse export, as Parquet or CSV. The same `--seed` and
//! `--rows` always give a byte-identical file. See `bench/README.md` for the data model.
//!
//! Memory: every row is first drawn as one packed `u64` (8 bytes per row), the rows are sorted,
//! then streamed out in record batches, so 50 million rows need well under 1 GiB.

mod model;
mod output;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};

use model::{MAX_USERS, Model, Scratch};

/// Output file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Parquet,
    Csv,
}

/// Generates deterministic synthetic touchpoint data (users' journeys of channel touches and
/// their conversions over 90 days from 2026-01-01), ordered by timestamp.
#[derive(Debug, Parser)]
#[command(name = "mta-gen", version)]
struct Args {
    /// Number of rows to write (touches plus conversions).
    #[arg(long)]
    rows: u64,
    /// Seed of the random streams; the same seed and row count give the same bytes.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Parquet)]
    format: Format,
    /// Gzip-compress the output (CSV only).
    #[arg(long)]
    gzip: bool,
    /// Output file; written under a temporary name and renamed when complete.
    #[arg(long)]
    out: PathBuf,
    /// Rows per Parquet row group.
    #[arg(long, default_value = "1000000")]
    row_group_rows: NonZeroUsize,
    /// `channel`: a channel column; `marketing`: UTM `source`, `medium` and `campaign`
    /// columns instead (304 campaigns), which `mta` names channels from by the `ga4` rules.
    #[arg(long = "schema", value_enum, default_value_t = output::Columns::Channel)]
    columns: output::Columns,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.gzip && args.format == Format::Parquet {
        Args::command()
            .error(ErrorKind::ArgumentConflict, "--gzip applies to --format csv only (Parquet is snappy-compressed)")
            .exit();
    }
    let rows = usize::try_from(args.rows).context("--rows does not fit in memory")?;
    let started = Instant::now();

    let model = Model::new(args.seed);
    let mut events = Vec::new();
    events.try_reserve_exact(rows).with_context(|| format!("cannot hold {rows} packed rows in memory"))?;
    let (mut users, mut conversions) = (0_u64, 0_u64);
    let (mut scratch, mut user_events) = (Scratch::default(), Vec::new());
    while events.len() < rows {
        ensure!(users < MAX_USERS, "too many rows: at most {MAX_USERS} users are supported");
        user_events.clear();
        model.user_events(users, &mut scratch, &mut user_events);
        // The last user is cut short so that exactly `rows` rows are written.
        let take = user_events.len().min(rows - events.len());
        let kept = &user_events[..take];
        conversions += kept.iter().filter(|e| e.channel().is_none()).count() as u64;
        events.extend_from_slice(kept);
        users += 1;
    }
    events.sort_unstable();

    let tmp = {
        let mut name = args.out.clone().into_os_string();
        name.push(".tmp");
        PathBuf::from(name)
    };
    match args.format {
        Format::Parquet => output::write_parquet(&events, &model, args.columns, args.row_group_rows.get(), &tmp)?,
        Format::Csv => output::write_csv(&events, &model, args.columns, args.gzip, &tmp)?,
    }
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), args.out.display()))?;

    eprintln!(
        "mta-gen: rows={} users={users} conversions={conversions} seed={} -> {} ({:.1}s)",
        events.len(),
        args.seed,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
