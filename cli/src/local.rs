//! `mta attribute`: the whole pipeline on one machine, no server.
//!
//! decode (Parquet row groups, or byte ranges of a large uncompressed CSV, in parallel;
//! other text as a stream) → partition event rows by user hash into spill files → add the
//! partitions, in parallel groups, into a [`Partial`] per group → merge → finish; then, if
//! asked, a second pass over the partitions writes per-journey credits. Path rows need no
//! partitioning: each block becomes a partial.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use mta_core::chunk::{ChannelDict, EventChunk};
use mta_core::error::Problems;
use mta_core::ingest::{Block, InputSpec};
use mta_core::markov::SolveBudget;
use mta_core::spend::SpendLimits;
use mta_core::{AttributionError, AttributionResult, ErrorCode, InputKind, Options, OptionsSpec, Partial};
use mta_platform::input::{CsvRange, NdjsonRanges, Source, read_cost_table};
use mta_platform::run_error::RunError;
use rayon::prelude::*;

use crate::spill::{Loaded, PartitionStore, PartitionWriter};
use mta_platform::credits_file::{CreditRows, CreditsFile};

/// Rows per partition the planner aims for: a partition is loaded whole when attributed,
/// and at this size its table of users stays in the core's own cache.
const ROWS_PER_PARTITION: u64 = 50_000;
const MAX_PARTITIONS: u64 = 4096;

/// What `mta attribute` was asked to do.
#[derive(Debug, Clone)]
pub struct AttributeRequest {
    pub input: PathBuf,
    pub spec: InputSpec,
    pub options: OptionsSpec,
    pub credits: Option<PathBuf>,
    /// A cost table to join to the credits (cost, CPA, ROAS), and its bounds.
    pub spend: Option<PathBuf>,
    pub spend_limits: SpendLimits,
    /// Number of user-hash partitions; planned from the input size when absent.
    pub partitions: Option<u32>,
    /// Decoded rows kept in memory before partitions spill to temporary files.
    pub memory_budget_bytes: usize,
    /// Report stages and their timings on standard error.
    pub verbose: bool,
}

/// Why a local run failed, and the file at fault: the events file, or the cost table of
/// `--spend` (so a message names the file whose row it points at).
#[derive(Debug)]
pub struct RunFailure {
    pub file: PathBuf,
    pub error: RunError,
}

/// Runs attribution over a local file.
pub fn attribute_file(request: &AttributeRequest) -> Result<AttributionResult, RunFailure> {
    fn at(file: &Path) -> impl FnOnce(RunError) -> RunFailure + '_ {
        move |error| RunFailure { file: file.to_owned(), error }
    }
    // Options that are wrong for any kind fail before a byte is read (as the service does).
    request.options.check(request.spec.kind).map_err(|e| at(&request.input)(e.into()))?;
    // So is a cost table that cannot be used: it is small next to the input.
    let costs = match &request.spend {
        Some(path) => {
            let segment_by = request.options.segment_by.as_deref();
            Some(read_cost_table(path, &request.spend_limits, segment_by).map_err(at(path))?)
        }
        None => None,
    };
    let mut result = attribute_events_file(request).map_err(at(&request.input))?;
    if let Some(costs) = &costs {
        result.add_spend(costs);
    }
    Ok(result)
}

fn attribute_events_file(request: &AttributeRequest) -> Result<AttributionResult, RunError> {
    let source = Source::open(&request.input, request.spec.format)?;
    let plan = DecodePlan::new(&source, &request.spec)?;
    match attribute_as_planned(request, &source, &plan)? {
        Some(result) => Ok(result),
        // NDJSON ranges that could not be read apart: read whole, afresh.
        None => Ok(attribute_as_planned(request, &source, &DecodePlan::Whole)?.expect("a whole input is read whole")),
    }
}

/// Attributes the input decoded as `plan` says; `None` when NDJSON ranges could not be read
/// apart (see [`DecodePlan`]).
fn attribute_as_planned(
    request: &AttributeRequest,
    source: &Source,
    plan: &DecodePlan,
) -> Result<Option<AttributionResult>, RunError> {
    let partitions = request.partitions.unwrap_or_else(|| plan_partitions(source.estimated_rows()));
    let spill_dir = tempfile::Builder::new()
        .prefix("mta-partitions-")
        .tempdir()
        .context("Failed to create a temporary directory")?;
    let keep_row_identity = request.credits.is_some();
    let run = Run {
        request,
        store: PartitionStore::new(
            spill_dir.path(),
            partitions,
            keep_row_identity,
            request.memory_budget_bytes,
            plan.threads(),
        ),
        channels: Arc::new(Mutex::new(ChannelDict::default())),
        segments: Mutex::new(ChannelDict::default()),
        progress: Progress::new(request.verbose),
    };
    let started = std::time::Instant::now();
    let Some(decoded) = run.decode(source, plan)? else { return Ok(None) };
    run.progress.stage("decoded and partitioned", started);
    let options = decoded.options;
    let budget = SolveBudget { max_channels: request.spec.limits.markov_max_channels, ..SolveBudget::default() };
    let result = match decoded.kind {
        InputKind::Events => {
            let channels = ChannelOrder::new(&run.channels.lock().expect("no panics while locked"));
            // Refused before attribution rather than after it, when the solve would be refused.
            let distinct = run.channels.lock().expect("no panics while locked").channel_count();
            request.spec.limits.check_markov_channels(distinct, &options)?;
            request.spec.limits.check_intervals(distinct, &options)?;
            let partial = run.attribute_partitions(&channels, &options)?;
            run.progress.stage("attributed", started);
            let result = partial.finish_within(&options, &budget)?;
            run.progress.stage("finished", started);
            if let Some(path) = &request.credits {
                run.export_event_credits(path, &channels, &options, &result)?;
            }
            run.store.remove_spill_files()?;
            result
        }
        InputKind::Paths => {
            let partial = decoded.path_partial.expect("a paths input yields a partial");
            let result = partial.finish_within(&options, &budget)?;
            if let Some(path) = &request.credits {
                run.export_path_credits(path, source, &options, &result)?;
            }
            result
        }
    };
    run.progress.done();
    Ok(Some(result))
}

/// A text file is cut into byte ranges for the decoding threads only from this size on each:
/// below it, the planning scan costs more than the second thread saves.
const TEXT_RANGE_BYTES: u64 = 16 << 20;

/// How the input is decoded: Parquet row groups by every core at once, uncompressed CSV in
/// byte ranges by every core at once (cut at record boundaries, `plan_csv_ranges`), so is
/// uncompressed NDJSON (cut at line ends) unless a line holds a key its first lines do not,
/// other text by one thread (CSV read by it is parsed in pieces by every core, `read_csv_in_pieces`).
enum DecodePlan {
    RowGroups { threads: usize, row_groups: usize },
    CsvRanges(Vec<CsvRange>),
    NdjsonRanges(NdjsonRanges),
    Whole,
}

impl DecodePlan {
    fn new(source: &Source, spec: &InputSpec) -> Result<DecodePlan, RunError> {
        let cores = rayon::current_num_threads();
        Ok(match source {
            Source::Parquet { row_groups, .. } => {
                DecodePlan::RowGroups { threads: cores.min(*row_groups).max(1), row_groups: *row_groups }
            }
            Source::Text { .. } => match source.csv_ranges(spec, TEXT_RANGE_BYTES, cores)? {
                Some(ranges) => DecodePlan::CsvRanges(ranges),
                None => match source.ndjson_ranges(spec, TEXT_RANGE_BYTES, cores)? {
                    Some(ranges) => DecodePlan::NdjsonRanges(ranges),
                    None => DecodePlan::Whole,
                },
            },
        })
    }

    fn threads(&self) -> usize {
        match self {
            DecodePlan::RowGroups { threads, .. } => *threads,
            DecodePlan::CsvRanges(ranges) => ranges.len(),
            DecodePlan::NdjsonRanges(ranges) => ranges.ranges.len(),
            DecodePlan::Whole => 1,
        }
    }
}

fn plan_partitions(estimated_rows: u64) -> u32 {
    estimated_rows.div_ceil(ROWS_PER_PARTITION).clamp(1, MAX_PARTITIONS) as u32
}

struct Run<'a> {
    request: &'a AttributeRequest,
    store: PartitionStore,
    channels: Arc<Mutex<ChannelDict>>,
    /// With `segment_by`: the segment values of every block, numbered as met.
    segments: Mutex<ChannelDict>,
    progress: Progress,
}

struct Decoded {
    kind: InputKind,
    options: Options,
    path_partial: Option<Partial>,
}

/// What one decoding thread does with its blocks.
struct Collector<'a> {
    run: &'a Run<'a>,
    options: Option<Options>,
    writer: PartitionWriter<'a>,
    path_partial: Option<Partial>,
}

impl Collector<'_> {
    fn take(&mut self, block: Block) -> Result<(), RunError> {
        if self.options.is_none() {
            self.options = Some(block.options(&self.run.request.options)?);
        }
        let options = self.options.as_ref().expect("set above");
        match block {
            Block::Events(chunk) => {
                let channel_map = self.run.global_channels(&chunk.channels)?;
                let segment_map = self.run.global_segments(&chunk.segments)?;
                self.run.progress.add(chunk.len() as u64);
                self.writer.add(&chunk, &channel_map, &segment_map)?;
            }
            Block::Paths(chunk) => {
                self.run.progress.add(chunk.len() as u64);
                self.run.request.spec.limits.check_intervals(chunk.channels.len(), options)?;
                let partial = Partial::from_paths(&chunk, options)?;
                Partial::merge_into(&mut self.path_partial, partial);
            }
        }
        Ok(())
    }
}

impl Run<'_> {
    fn collector(&self) -> Collector<'_> {
        Collector { run: self, options: None, writer: self.store.writer(), path_partial: None }
    }

    /// User id strings are only carried (and spilled) when credits are exported.
    fn keeps_user_ids(&self) -> bool {
        self.request.credits.is_some()
    }

    fn spec(&self) -> InputSpec {
        let text_threads = rayon::current_num_threads();
        InputSpec { keep_user_ids: self.keeps_user_ids(), text_threads, ..self.request.spec.clone() }
    }

    /// Maps block-local channel ids (touch keys with a breakdown) to global ones, enforcing
    /// the channel and breakdown limits.
    fn global_channels(&self, block: &ChannelDict) -> Result<Vec<u32>, RunError> {
        let mut dict = self.channels.lock().expect("no panics while locked");
        let map = dict.ids_of(block);
        self.request.spec.limits.check_dict(&dict)?;
        Ok(map)
    }

    /// Maps block-local segment ids to global ones, enforcing the segment limit.
    fn global_segments(&self, block: &ChannelDict) -> Result<Vec<u32>, RunError> {
        if block.is_empty() {
            return Ok(Vec::new());
        }
        let mut dict = self.segments.lock().expect("no panics while locked");
        let map = dict.ids_of(block);
        self.request.spec.limits.check_segments(dict.len())?;
        Ok(map)
    }

    /// Decodes and partitions the input; `None` when NDJSON ranges could not be read apart.
    fn decode(&self, source: &Source, plan: &DecodePlan) -> Result<Option<Decoded>, RunError> {
        let spec = self.spec();
        // Writers are made in input order, before the threads start: a partition's rows are
        // read back writer by writer, so they keep the file's order whichever thread ends first.
        let collectors: Vec<Collector> = (0..plan.threads()).map(|_| self.collector()).collect();
        let results = collectors
            .into_par_iter()
            .enumerate()
            .map(|(t, mut collector)| {
                let sink = |block| collector.take(block);
                let mut read_apart = true;
                match plan {
                    DecodePlan::RowGroups { threads, row_groups } => {
                        // Contiguous ranges keep each user's rows in file order within a partition,
                        // which spares the per-user sort for time-ordered exports.
                        let groups: Vec<usize> = (t * row_groups / threads..(t + 1) * row_groups / threads).collect();
                        read_source(source, &spec, Some(&groups), sink)?;
                    }
                    DecodePlan::CsvRanges(ranges) => source.read_csv_range(&spec, &ranges[t], sink)?,
                    DecodePlan::NdjsonRanges(ranges) => {
                        read_apart = source.read_ndjson_range(&spec, ranges, t, sink)?
                    }
                    DecodePlan::Whole => read_source(source, &spec, None, sink)?,
                }
                Ok((collector, read_apart))
            })
            .collect::<Vec<Result<(Collector, bool), RunError>>>();
        // Before the problems: a range that stopped early did not report those of its later lines.
        if results.iter().any(|result| matches!(result, Ok((_, false)))) {
            return Ok(None);
        }
        let mut collectors: Vec<Collector> =
            either_all_or_every_problem(results)?.into_iter().map(|(collector, _)| collector).collect();
        let Some(options) = collectors.iter().find_map(|c| c.options.clone()) else {
            return Err(AttributionError::new(ErrorCode::EmptyInput, "the input has no data rows").into());
        };
        let mut path_partial: Option<Partial> = None;
        for collector in collectors.drain(..) {
            if let Some(partial) = collector.path_partial {
                Partial::merge_into(&mut path_partial, partial);
            }
            collector.writer.finish();
        }
        Ok(Some(Decoded { kind: options.kind, options, path_partial }))
    }

    fn attribute_partitions(&self, channels: &ChannelOrder, options: &Options) -> Result<Partial, RunError> {
        // With credits to export, partitions are read twice, so what is in memory stays there.
        let keep = self.keeps_user_ids();
        let partitions = self.store.partitions() as usize;
        if !Partial::adds_events(options) {
            return self.attribute_partitions_apart(partitions, keep, channels, options);
        }
        // Every partition is numbered in name order, so partitions add straight into a
        // partial without a merge each. Partition p goes to group p mod `groups`, each group
        // adds its partitions in order, and the groups are merged in order: the same bytes
        // on every run with the same thread count, a few partials in memory (a partial holds
        // up to `max_report_paths` paths), and no merge per partition.
        let names = channels.by_name.names();
        let groups = (2 * rayon::current_num_threads()).clamp(1, partitions.max(1));
        let partials = (0..groups)
            .into_par_iter()
            .map_init(Loaded::default, |loaded, group| {
                let mut partial = Partial::new(options, names);
                for p in (group..partitions).step_by(groups) {
                    self.store.load_into(p, keep, loaded)?;
                    channels.apply(&mut loaded.chunk);
                    partial.add_events(&loaded.chunk, options)?;
                }
                Ok(partial)
            })
            .collect::<Result<Vec<Partial>, RunError>>()?;
        let mut total = Partial::new(options, names);
        for partial in &partials {
            total.merge(partial);
        }
        Ok(total)
    }

    /// With a breakdown, segments or conversion types (numbered per partition), a partial
    /// per partition: a window of partitions at a time, merged in partition order.
    fn attribute_partitions_apart(
        &self,
        partitions: usize,
        keep: bool,
        channels: &ChannelOrder,
        options: &Options,
    ) -> Result<Partial, RunError> {
        let partitions: Vec<usize> = (0..partitions).collect();
        let mut total = Partial::for_dictionary(options, channels.by_name.names());
        let segments = self.segments.lock().expect("no panics while locked").clone();
        // A window of partitions at a time, merged in partition order: the same bytes on
        // every run, and no more partials in memory than the window (a partial holds up to
        // `max_report_paths` paths, and with periods and a breakdown can hold megabytes).
        for window in partitions.chunks(2 * rayon::current_num_threads().max(1)) {
            let partials = window
                .par_iter()
                .map_init(Loaded::default, |loaded, &p| {
                    self.store.load_into(p, keep, loaded)?;
                    channels.apply(&mut loaded.chunk);
                    if loaded.chunk.segments != segments {
                        loaded.chunk.segments = segments.clone();
                    }
                    Ok(Partial::from_events(&loaded.chunk, options)?)
                })
                .collect::<Result<Vec<Partial>, RunError>>()?;
            for partial in &partials {
                total.merge(partial);
            }
        }
        Ok(total)
    }

    fn export_event_credits(
        &self,
        path: &Path,
        channels: &ChannelOrder,
        options: &Options,
        result: &AttributionResult,
    ) -> Result<(), RunError> {
        let mut out = CreditsFile::create(path)?;
        let partitions: Vec<usize> = (0..self.store.partitions() as usize).collect();
        // Credits are per channel: touch keys (a breakdown) give way to their channels.
        let keyed = !options.breakdown.is_empty();
        let mut names = EventChunk { channels: channels.by_name.clone(), ..EventChunk::default() };
        if keyed {
            names.collapse_touch_keys();
        }
        let channels_by_id = names.channels.names();
        for window in partitions.chunks(rayon::current_num_threads().max(1)) {
            let batches = window
                .par_iter()
                .map(|&p| {
                    let mut chunk = self.store.load(p, false)?;
                    channels.apply(&mut chunk);
                    if keyed {
                        chunk.collapse_touch_keys();
                    }
                    Ok(CreditRows::of_events(&chunk, channels_by_id, options, result))
                })
                .collect::<Result<Vec<_>, RunError>>()?;
            for rows in batches {
                out.write(rows, channels_by_id)?;
            }
        }
        out.close()?;
        Ok(())
    }

    fn export_path_credits(
        &self,
        path: &Path,
        source: &Source,
        options: &Options,
        result: &AttributionResult,
    ) -> Result<(), RunError> {
        let mut out = CreditsFile::create(path)?;
        read_source(source, &self.spec(), None, |block: Block| write_path_block(&mut out, block, options, result))?;
        out.close()?;
        Ok(())
    }
}

/// The run's channels in name order. Decoding threads number channels in the order they
/// meet them, which varies from run to run; sums over channels (and the Markov solve) are
/// done in name order so that the same input always gives the same result, to the bit.
struct ChannelOrder {
    by_name: ChannelDict,
    /// The name-order id of each decoding-time id.
    id_of_decoded: Vec<u32>,
}

impl ChannelOrder {
    fn new(decoded: &ChannelDict) -> ChannelOrder {
        let mut names = decoded.names().to_vec();
        names.sort_unstable();
        let mut by_name = ChannelDict::default();
        for name in &names {
            by_name.id(name);
        }
        let id_of_decoded = decoded.names().iter().map(|name| by_name.id(name)).collect();
        ChannelOrder { by_name, id_of_decoded }
    }

    /// Renumbers a loaded partition's channels (decoding-time ids) in name order.
    fn apply(&self, chunk: &mut EventChunk) {
        for id in &mut chunk.channel_ids {
            if let Some(&named) = self.id_of_decoded.get(*id as usize) {
                *id = named;
            }
        }
        if chunk.channels != self.by_name {
            chunk.channels = self.by_name.clone();
        }
    }
}

/// What every decoding thread returned, or the error: the problems that threads found in
/// their parts of the input are reported together, in row order.
fn either_all_or_every_problem<T>(results: Vec<Result<T, RunError>>) -> Result<Vec<T>, RunError> {
    let mut returned = Vec::with_capacity(results.len());
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(value) => returned.push(value),
            Err(RunError::Input(error)) => problems.push(error),
            Err(other) => return Err(other),
        }
    }
    match Problems::combine(problems) {
        Some(error) => Err(error.into()),
        None => Ok(returned),
    }
}

/// Decodes `source` (only `row_groups` of a Parquet file, when given) into `sink`.
fn read_source(
    source: &Source,
    spec: &InputSpec,
    row_groups: Option<&[usize]>,
    sink: impl FnMut(Block) -> Result<(), RunError>,
) -> Result<(), RunError> {
    source.read(spec, row_groups, sink)
}

fn write_path_block(
    out: &mut CreditsFile,
    block: Block,
    options: &Options,
    result: &AttributionResult,
) -> Result<(), RunError> {
    let Block::Paths(chunk) = block else { return Ok(()) };
    out.write(CreditRows::of_paths(&chunk, options, result), chunk.channels.names())?;
    Ok(())
}

/// Rows read so far, shown on a terminal for long inputs; stage timings with `--verbose`.
struct Progress {
    rows: AtomicU64,
    enabled: bool,
    verbose: bool,
}

impl Progress {
    const EVERY: u64 = 5_000_000;

    fn new(verbose: bool) -> Progress {
        Progress { rows: AtomicU64::new(0), enabled: std::io::stderr().is_terminal() && !verbose, verbose }
    }

    fn stage(&self, name: &str, started: std::time::Instant) {
        if self.verbose {
            let rows = self.rows.load(Ordering::Relaxed);
            eprintln!("mta: {name} after {:.3} s ({rows} rows)", started.elapsed().as_secs_f64());
        }
    }

    fn add(&self, rows: u64) {
        let before = self.rows.fetch_add(rows, Ordering::Relaxed);
        if self.enabled && (before + rows) / Self::EVERY > before / Self::EVERY {
            eprint!("\rmta: {} rows read", before + rows);
        }
    }

    fn done(&self) {
        if self.enabled && self.rows.load(Ordering::Relaxed) >= Self::EVERY {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mta_core::chunk::NO_CHANNEL;

    #[test]
    fn channels_are_numbered_by_name_whatever_order_threads_met_them_in() {
        let mut chunks = Vec::new();
        for met in [["search", "email", "display"], ["display", "search", "email"]] {
            let mut decoded = ChannelDict::default();
            let mut chunk = EventChunk::default();
            for name in met {
                chunk.channel_ids.push(decoded.id(name));
            }
            chunk.channel_ids.push(NO_CHANNEL);
            let order = ChannelOrder::new(&decoded);
            order.apply(&mut chunk);
            let names: Vec<&str> = chunk.channel_ids[..3].iter().map(|&id| chunk.channels.name(id)).collect();
            assert_eq!(names, met, "every row keeps its channel");
            assert_eq!(chunk.channel_ids[3], NO_CHANNEL);
            chunks.push(chunk);
        }
        assert_eq!(chunks[0].channels.names(), ["display", "email", "search"]);
        assert_eq!(chunks[0].channels, chunks[1].channels);
    }
}
