//! Command-line arguments of `mta`, turned into the engine's input spec and options,
//! with those of the client commands (run by `client.rs`, which shares `JobOptionArgs`
//! with `attribute`, so its arguments are defined here rather than there).

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mta_core::error::quoted;
use mta_core::ingest::{ColumnMapping, Limits, PathSeparator};
use mta_core::intervals::IntervalsSpec;
use mta_core::spend::SpendLimits;
use mta_core::{AttributionError, ChannelRules, LookbackDays, OptionsSpec, PositionWeights};
use mta_platform::JobSpec;
use mta_platform::ids::UploadId;

use crate::local::AttributeRequest;

#[derive(Debug, Parser)]
#[command(
    name = "mta",
    version,
    about = "Multi-touch attribution: how much each marketing channel contributed to conversions and revenue"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attribute a local file (CSV, gzip CSV, Parquet or NDJSON) under every model, no server needed.
    Attribute(Box<AttributeArgs>),
    /// Run the whole service in one process: the API and N workers, on the embedded defaults
    /// (local object store under MTA_DATA_DIR, a private redis-server unless REDIS_URL is set).
    Serve(ServeArgs),
    /// Start the all-in-one service on a free port, send FILE through its HTTP API, print the result, stop.
    Demo(DemoArgs),
    /// Manage API keys straight in the service's Redis (operator access; see docs/security.md).
    #[command(subcommand)]
    Keys(crate::keys::KeysCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Worker instances in this process (each runs every stage).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Listen address (default MTA_BIND or 127.0.0.1:8080).
    #[arg(long)]
    pub bind: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The touchpoint file to send (default: the shipped sample).
    #[arg(default_value = "samples/events.csv")]
    pub file: PathBuf,
    /// Worker instances.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Print the result JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Where the service is and which key to use.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The service's base URL.
    #[arg(long, env = "MTA_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API key (`mta_…`).
    #[arg(long, env = "MTA_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Upload FILE, submit a job for it, and (with --wait) follow it and print the result.
    Submit(Box<SubmitArgs>),
    /// List your jobs, newest first.
    Jobs {
        #[command(flatten)]
        connection: Connection,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one job: state, stage, progress, error.
    Status {
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Print a succeeded job's result.
    Result {
        id: String,
        /// `table`, `json` or `csv`.
        #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
        format: String,
        /// Print this tidy table as CSV: `channels` (what `--format csv` prints), `periods`,
        /// `segments`, `segment_periods`, `segment_breakdown`, `path_length`, `time_lag`, `positions`, `breakdown`, `period_breakdown`,
        /// `breakdown_positions`, `breakdown_paths`, `paths`, `transitions`, `windows`, `unmatched_cost`, `markov_pairs`,
        /// `intervals` or the intervals per part (`period_intervals`, `segment_intervals`,
        /// `segment_period_intervals`, `window_intervals`) or breakdown row (`breakdown_intervals`, and per
        /// period and segment `period_breakdown_intervals`, `segment_breakdown_intervals`), or a journey
        /// report per part: `period_`, `segment_`, `segment_period_` or `window_` followed by `path_length`,
        /// `time_lag`, `positions`, `paths`, `transitions`, `breakdown_positions` or `breakdown_paths`.
        #[arg(
            long,
            value_parser = clap::builder::PossibleValuesParser::new(mta_core::result::Table::names()),
            conflicts_with = "format"
        )]
        table: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
    /// Download a job's per-journey credits (Parquet).
    Credits {
        id: String,
        /// Where to write the Parquet file.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Cancel a job.
    Cancel {
        id: String,
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The touchpoint file (CSV, gzip CSV, Parquet or NDJSON).
    pub file: PathBuf,
    #[command(flatten)]
    pub job: JobOptionArgs,
    /// Also export per-journey credits (download them with `mta credits`).
    #[arg(long)]
    pub export_credits: bool,
    /// A cost table to upload with the file (CSV or Parquet: date, channel, optional
    /// campaign, cost): the result gains cost, CPA and ROAS.
    #[arg(long, value_name = "COSTS.csv")]
    pub spend: Option<PathBuf>,
    /// Announce the job's end to this URL (a signed webhook; its secret is printed once).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Follow the job until it ends, then print the result. Ctrl-C stops following, not the job.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// How to read the input and which models to run: shared by `mta attribute` and `mta submit`.
#[derive(Debug, Clone, Args)]
pub struct JobOptionArgs {
    /// `events` (one row per touch/conversion) or `paths` (ChannelAttribution format); detected from the columns when absent.
    #[arg(long)]
    pub kind: Option<String>,
    /// `csv`, `parquet` or `ndjson`; detected from the content when absent.
    #[arg(long)]
    pub format: Option<String>,
    /// CSV delimiter: `,` `;` `\t` (or `tab`); detected from the header when absent.
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Channel separator in paths (may be several characters).
    #[arg(long, default_value = ">")]
    pub separator: String,
    /// Comma-separated model ids, or `all` (every model that applies to the input).
    #[arg(long, default_value = "all")]
    pub models: String,
    /// Markov chain order, 1 to 4, or `auto` (chosen by held-out fit among 1 to 4).
    #[arg(long, value_name = "1-4|auto")]
    pub markov_order: Option<String>,
    /// Also report the Markov removal effects of pairs of the top channels (table `markov_pairs`).
    #[arg(long)]
    pub markov_pair_effects: bool,
    /// Lookback window before each conversion, in days (0 = unlimited; default 30); a
    /// comma-separated list (`7,14,30,90`, at most 8) compares the windows in one pass, the
    /// first giving the top-level figures; with `--conversion-types`, a window per type
    /// (`purchase=30,sign_up=7`).
    #[arg(long, allow_hyphen_values = true, value_name = "DAYS[,DAYS...]")]
    pub lookback_days: Option<String>,
    /// Time-decay half-life in days (default 7).
    #[arg(long, allow_negative_numbers = true)]
    pub half_life_days: Option<f64>,
    /// Position-based weights `F,M,L` (default 0.4,0.2,0.4), normalised to sum to 1.
    #[arg(long, allow_hyphen_values = true)]
    pub position_weights: Option<String>,
    /// Channels that `last_non_direct` skips, comma-separated, any case (default `direct`).
    #[arg(long)]
    pub direct_channels: Option<String>,
    /// Count a conversion row that carries a channel as the last touch of its journey.
    #[arg(long)]
    pub conversion_touch: bool,
    /// Keep at most this many (most recent) touches per journey (default 10000).
    #[arg(long)]
    pub max_journey_touches: Option<u32>,
    /// Map a column: `canonical=file_column`, e.g. `user_id=cookie` (repeatable).
    #[arg(long = "column", value_name = "CANONICAL=COLUMN")]
    pub columns: Vec<String>,
    /// Name each touch's channel from its source, medium, campaign and referrer: `ga4`
    /// (Google Analytics 4's default channel group) or a JSON file of rules (see
    /// docs/channel-rules.md). The rules win over a channel column; without this flag a file
    /// with source/medium columns and no channel column gets `ga4`.
    #[arg(long, value_name = "ga4|FILE.json")]
    pub channel_rules: Option<String>,
    /// Also credit per `day`, `week` (ISO, named by its Monday) or `month` of the conversions' dates.
    #[arg(long)]
    pub period: Option<String>,
    /// The IANA time zone of the periods' dates, e.g. `Europe/Berlin` (default UTC).
    #[arg(long)]
    pub timezone: Option<String>,
    /// Also break each channel's credit down by this touch column: `campaign` (found by its
    /// aliases such as `utm_campaign`), or any column by name or dotted path, e.g. `ad_group`.
    /// Repeat for a second level.
    #[arg(long, value_name = "COLUMN")]
    pub breakdown: Vec<String>,
    /// One complete attribution per value of this column (any column by name or dotted path,
    /// e.g. `country`): a journey counts in the segment of its last row.
    #[arg(long, value_name = "COLUMN")]
    pub segment_by: Option<String>,
    /// Rows whose event name (`event_name`, `event_type` or `interaction` column) is one of
    /// these are conversions, and each type is also attributed on its own (comma-separated,
    /// e.g. `purchase,sign_up`); `--lookback-days purchase=30,sign_up=7` gives each its window.
    #[arg(long, value_name = "TYPES")]
    pub conversion_types: Option<String>,
    /// Converting and non-converting paths listed in the reports (default 50, at most 1000).
    #[arg(long)]
    pub top_paths: Option<u32>,
    /// Distinct paths counted exactly (default 100000); past it the top paths are estimates
    /// within a reported error bound.
    #[arg(long)]
    pub max_report_paths: Option<u32>,
    /// Bootstrap intervals of every model's channel credits, with this many replicates (e.g.
    /// 200): each channel's interval of conversions, value and share, and its rank
    /// probabilities (see docs/user-guide.md, "Intervals").
    #[arg(long, value_name = "REPLICATES")]
    pub intervals: Option<u32>,
    /// The intervals' confidence level (default 0.9).
    #[arg(long, requires = "intervals")]
    pub level: Option<f64>,
    /// Seeds the intervals' replicates (default 0): the same seed gives the same intervals.
    #[arg(long, requires = "intervals")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct AttributeArgs {
    /// The touchpoint file.
    pub file: PathBuf,
    #[command(flatten)]
    pub job: JobOptionArgs,
    /// Also write per-journey credits (journey × channel × model) to this Parquet file.
    #[arg(long, value_name = "OUT.parquet")]
    pub credits: Option<PathBuf>,
    /// A cost table (CSV or Parquet: date, channel, optional campaign, cost): each model's
    /// channels gain cost, CPA and ROAS (see docs/user-guide.md, "Spend").
    #[arg(long, value_name = "COSTS.csv")]
    pub spend: Option<PathBuf>,
    /// Refuse cost tables (`--spend`) with more rows than this.
    #[arg(long, default_value_t = SpendLimits::DEFAULT_MAX_ROWS)]
    pub max_cost_rows: u64,
    /// Write the result JSON here instead of standard output.
    #[arg(long, short, value_name = "OUT.json")]
    pub output: Option<PathBuf>,
    /// Print readable tables instead of JSON (JSON still goes to --output if given).
    #[arg(long)]
    pub table: bool,
    /// Also write each tidy CSV table of the result into this directory (`channels.csv`, the
    /// reports, `periods.csv` with `--period`, `windows.csv` with several `--lookback-days`,
    /// `breakdown.csv`, `breakdown_positions.csv` and `breakdown_paths.csv` with `--breakdown`, `segments.csv` with `--segment-by` or `--conversion-types` (and `segment_periods.csv` with `--period`, `segment_breakdown.csv` with `--breakdown`), `unmatched_cost.csv` with `--spend`,
    /// `markov_pairs.csv` with `--markov-pair-effects`, `intervals.csv` with `--intervals` (and
    /// `period_intervals.csv`, `segment_intervals.csv`, `segment_period_intervals.csv`,
    /// `window_intervals.csv` per part, `breakdown_intervals.csv` with `--breakdown`, and
    /// `period_breakdown_intervals.csv`, `segment_breakdown_intervals.csv` with it per part); and the
    /// reports of each part: `period_paths.csv` ... with `--period`, `segment_paths.csv` ... with segments,
    /// `segment_period_paths.csv` ... with both, `window_paths.csv` ... with several windows).
    #[arg(long, value_name = "DIR")]
    pub csv_dir: Option<PathBuf>,
    /// Also write the Markov transition table (`from,to,count,probability`) to this CSV file.
    #[arg(long, value_name = "OUT.csv")]
    pub transitions: Option<PathBuf>,
    /// Refuse inputs with more distinct channels than this.
    #[arg(long, default_value_t = Limits::default().max_channels)]
    pub max_channels: usize,
    /// Refuse inputs with more distinct channels than this when the Markov model runs (its solve costs about the square of the channels).
    #[arg(long, default_value_t = Limits::default().markov_max_channels)]
    pub markov_max_channels: usize,
    /// With `--breakdown`: refuse inputs with more distinct (channel, breakdown values) than this.
    #[arg(long, default_value_t = Limits::default().max_breakdown_values)]
    pub max_breakdown_values: usize,
    /// With `--segment-by`: refuse inputs with more distinct segment values than this.
    #[arg(long, default_value_t = Limits::default().max_segments)]
    pub max_segments: usize,
    /// With `--intervals`: refuse more bootstrap replicates than this.
    #[arg(long, default_value_t = Limits::default().max_interval_replicates)]
    pub max_interval_replicates: u32,
    /// With `--intervals`: refuse more replicates × channels (× lookback windows) than this.
    #[arg(long, default_value_t = Limits::default().max_replicate_channels)]
    pub max_replicate_channels: u64,
    /// Refuse CSV records and NDJSON lines longer than this, in bytes (bounds the memory one row may take).
    #[arg(long, default_value_t = Limits::DEFAULT_MAX_LINE_BYTES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_line_bytes: u64,
    /// User-hash partitions (planned from the input size when absent; results do not depend on it).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Memory for decoded rows before partitions spill to temporary files, in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory_budget_mb: usize,
    /// Report stages and their timings on standard error.
    #[arg(long, short)]
    pub verbose: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl JobOptionArgs {
    /// The engine's options, naming the first bad one.
    pub fn options_spec(&self) -> Result<OptionsSpec, AttributionError> {
        Ok(OptionsSpec {
            models: Some(split_list(&self.models)),
            markov_order: self.markov_order.as_deref().map(str::parse).transpose()?,
            markov_pair_effects: self.markov_pair_effects.then_some(true),
            lookback_days: self.lookback_days.as_deref().map(LookbackDays::parse).transpose()?,
            half_life_days: self.half_life_days,
            position_weights: self.position_weights.as_deref().map(PositionWeights::parse).transpose()?,
            direct_channels: self.direct_channels.as_deref().map(split_list),
            conversion_row_is_touch: Some(self.conversion_touch),
            max_journey_touches: self.max_journey_touches,
            channel_rules: self.channel_rules.as_deref().map(read_channel_rules).transpose()?,
            period: self.period.as_deref().map(str::parse).transpose()?,
            timezone: self.timezone.as_deref().map(str::parse).transpose()?,
            breakdown: (!self.breakdown.is_empty()).then(|| self.breakdown.clone()),
            segment_by: self.segment_by.clone(),
            conversion_types: self.conversion_types.as_deref().map(split_list),
            top_paths: self.top_paths,
            max_report_paths: self.max_report_paths,
            intervals: self.intervals.map(|replicates| IntervalsSpec {
                replicates,
                level: self.level,
                seed: self.seed,
            }),
        })
    }

    /// The job spec these flags ask for: the type the service takes, so `mta attribute` and
    /// `mta submit` read flags the same way. The error names the first bad flag.
    pub fn job_spec(&self, upload_id: Option<UploadId>, export_credits: bool) -> Result<JobSpec, AttributionError> {
        let path_separator = PathSeparator::try_from(self.separator.clone())
            .map_err(|_| AttributionError::option("separator", "must not be empty"))?;
        Ok(JobSpec {
            upload_id,
            kind: self.kind.as_deref().map(str::parse).transpose()?,
            format: self.format.as_deref().map(str::parse).transpose()?,
            delimiter: self.delimiter.as_deref().map(str::parse).transpose()?,
            path_separator: Some(path_separator),
            columns: ColumnMapping::parse(self.columns.iter().map(String::as_str))?,
            options: self.options_spec()?,
            export_credits,
            spend_upload_id: None,
            webhook: None,
        })
    }
}

impl AttributeArgs {
    /// Turns the arguments into a request, naming the first bad one.
    pub fn to_request(&self) -> Result<AttributeRequest, AttributionError> {
        let job = self.job.job_spec(None, false)?;
        let limits = Limits {
            max_channels: self.max_channels,
            markov_max_channels: self.markov_max_channels,
            max_breakdown_values: self.max_breakdown_values,
            max_segments: self.max_segments,
            max_interval_replicates: self.max_interval_replicates,
            max_replicate_channels: self.max_replicate_channels,
            max_line_bytes: usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX),
            ..Limits::default()
        };
        let spec = job.input_spec(limits);
        let options = job.options;
        if let Some(path) = &self.spend
            && !path.is_file()
        {
            let shown = quoted(&path.display().to_string());
            return Err(AttributionError::option("spend", format!("{shown} is not a file that can be read")));
        }
        if self.partitions == Some(0) {
            return Err(AttributionError::option("partitions", "must be at least 1"));
        }
        let models = options.models.as_deref().unwrap_or_default();
        if self.transitions.is_some() && !models.iter().any(|m| m == "markov" || m == "all") {
            return Err(AttributionError::option("transitions", "the transition table is the `markov` model's"));
        }
        Ok(AttributeRequest {
            input: self.file.clone(),
            spec,
            options,
            credits: self.credits.clone(),
            spend: self.spend.clone(),
            spend_limits: SpendLimits { max_rows: self.max_cost_rows, ..SpendLimits::beside(&limits) },
            partitions: self.partitions,
            memory_budget_bytes: self.memory_budget_mb.saturating_mul(1024 * 1024),
            verbose: self.verbose,
        })
    }
}

/// The largest channel rules file read, in bytes.
const MAX_RULES_FILE_BYTES: u64 = 16 << 20;

/// `ga4`, or the rules in a JSON file (an array of rules, or the name of a built-in set).
fn read_channel_rules(given: &str) -> Result<ChannelRules, AttributionError> {
    if given == "ga4" {
        return ChannelRules::named(given);
    }
    let refused = |problem: String| AttributionError::option("channel_rules", problem);
    let file = std::fs::File::open(given).map_err(|e| {
        refused(format!("{} is neither `ga4` nor a file of rules that can be read ({e})", quoted(given)))
    })?;
    let mut text = String::new();
    file.take(MAX_RULES_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| refused(format!("cannot read {}: {e}", quoted(given))))?;
    if text.len() as u64 > MAX_RULES_FILE_BYTES {
        return Err(refused(format!("{} is larger than {MAX_RULES_FILE_BYTES} bytes", quoted(given))));
    }
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| refused(format!("{} is not JSON: {e}", quoted(given))))?;
    ChannelRules::from_json(&value)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()
}
