//! Partial aggregates: everything the models need, summed over the journeys of one chunk.
//! Partials merge by addition (associative and order-independent up to float rounding),
//! and [`Partial::finish`] (in `result.rs`, beside the result it builds) turns the merged
//! partial into the result. This is the seam between the attribute and reduce stages.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};

use crate::breakdown::{BreakdownSums, TouchKeys, credits_channels, splits_channel_credit};
use crate::chunk::{EventChunk, NO_CHANNEL, NO_SEGMENT, PathChunk};
use crate::error::{AttributionError, ErrorCode, Problem};
use crate::exact::{Exact, JourneySums};
use crate::journey::{
    Journey, JourneyOrigin, for_each_event_journey, for_each_path_journey, for_each_windowed_journey,
};
use crate::markov::{EdgeTable, MarkovCounts};
use crate::markov_order::OrderCandidates;
use crate::options::{MarkovOrder, ModelId, Options};
use crate::paths::PathCounts;
use crate::reports::ReportCounts;
use crate::rules::touch_weights;
use crate::segment::SegmentValue;
use crate::shao_li::ShaoLiCounts;

/// Journey and row counts of the input (docs/user-guide.md, "Results", `summary`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub rows: u64,
    /// Journeys with at least one touch that converted (path rows: their conversions).
    pub converting_journeys: f64,
    pub null_journeys: f64,
    /// Every conversion, attributed or not.
    pub conversions: f64,
    pub conversion_value: f64,
    /// Conversions with no touch in their window: counted, never credited.
    pub unattributed_conversions: f64,
    pub unattributed_value: f64,
    /// Journeys longer than `max_journey_touches`, cut to their most recent touches.
    pub truncated_journeys: u64,
    /// A replicate's `conversion_value` and `unattributed_value`, exact (`exact.rs`; its
    /// `f64` fields stay 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exact_values: [Exact; 2],
}

fn is_zero(sums: &[Exact; 2]) -> bool {
    sums == &[Exact::ZERO; 2]
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.rows += other.rows;
        self.converting_journeys += other.converting_journeys;
        self.null_journeys += other.null_journeys;
        self.conversions += other.conversions;
        self.conversion_value += other.conversion_value;
        self.unattributed_conversions += other.unattributed_conversions;
        self.unattributed_value += other.unattributed_value;
        self.truncated_journeys += other.truncated_journeys;
        for (a, &b) in self.exact_values.iter_mut().zip(&other.exact_values) {
            a.add(b);
        }
    }
}

/// Per-channel credit of one rule-based model, indexed by channel id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleCredits {
    pub model: ModelId,
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
    /// A replicate's conversions and value by channel, exact (`exact.rs`; its `f64` fields
    /// stay 0); as long as the channels it has met.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact: Vec<[Exact; 2]>,
}

/// The mergeable aggregate of a set of journeys. Serialisable: the attribute stage
/// writes it to object storage and the reduce stage reads it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Channel names by id; every per-channel vector below is indexed the same way.
    pub channels: Vec<String>,
    /// Channels that occur in at least one journey's touches.
    pub channel_seen: Vec<bool>,
    pub counts: Counts,
    pub rules: Vec<RuleCredits>,
    /// The chain of a fixed `markov_order`.
    pub markov: Option<MarkovCounts>,
    /// With `markov_order: auto`: the chains of orders 1 to 4 and the held-out outcome
    /// counts that choose among them (`markov_order.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markov_auto: Option<OrderCandidates>,
    /// The `shao_li` model's journey counts per channel and pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shao_li: Option<ShaoLiCounts>,
    /// The journey reports' sums (`reports.rs`); absent from partials of older versions.
    #[serde(default)]
    pub reports: ReportCounts,
    /// With `period` set: the same sums per period (keyed by its first day, in days since
    /// 1970-01-01) of the journeys that count in it. The fields above are their sum plus
    /// `counts.rows`, so periods add up to the whole exactly as partials do.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub periods: BTreeMap<i32, Partial>,
    /// With `breakdown` set: the sums per channel × breakdown values (`breakdown.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<BreakdownSums>,
    /// With several `lookback_windows`: the same sums (rows included) under each window
    /// after the first, in the order listed; the fields above are the first window's. Each
    /// merges with its counterpart, so every window adds up over chunks as the whole does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Partial>,
    /// With `intervals`: one partial per bootstrap replicate (`intervals.rs`), of the whole
    /// (the first window's journeys; each further window has its own) with each journey
    /// counted as often as its replicate's weight draws; channel sums, chains and `shao_li`
    /// counts only (no reports, periods or windows; with a breakdown its breakdown sums, made
    /// by `from_events`, but in parts past `part_rows_dropped`). Each merges with its counterpart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<Partial>,
    /// A replicate whose fractional sums (credit, values, breakdown shares) are exact
    /// (`exact.rs`), so that any grouping of chunks gives the same intervals to the last bit.
    /// False in the replicates of older versions, which [`Partial::finish`] refuses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// With `segment_by`: the same sums per segment value of the journeys that count in it
    /// (`segment.rs`); the fields above are their sum plus `counts.rows`, as with periods.
    /// With `period` too, each segment holds its periods, and each of the whole's periods is
    /// the sum of the segments'.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "crate::segment::by_value")]
    pub segments: BTreeMap<SegmentValue, Partial>,
    /// Whether the replicates of every part (period, segment, segment period, further window)
    /// dropped their breakdown sums, their rows × replicates having passed
    /// `intervals::MAX_PART_BREAKDOWN_REPLICATES` (see [`Partial::bound_part_rows`]): the
    /// parts' rows then have no intervals. Set on the outermost partial only; false in
    /// partials of older versions, whose parts' replicates keep none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub part_rows_dropped: bool,
}

impl Partial {
    /// An empty partial for these options and channel names (with an empty partial for each
    /// further lookback window).
    pub fn new(options: &Options, channels: &[String]) -> Partial {
        let mut partial = Partial::one_window(options, channels);
        if let Some(intervals) = options.intervals {
            let bare = Options { breakdown: Vec::new(), ..options.clone() };
            let mut replicate = Partial { exact: true, ..Partial::one_window(&bare, channels) };
            // A replicate's credit is exact only (`exact.rs`).
            for rule in &mut replicate.rules {
                (rule.conversions, rule.value) = (Vec::new(), Vec::new());
                rule.exact = vec![[Exact::ZERO; 2]; channels.len()];
            }
            partial.replicates = vec![replicate; intervals.replicates as usize];
        }
        // Each further window has replicates of its own, as the whole has.
        let further = options.lookback_windows.len().saturating_sub(1);
        partial.windows = vec![partial.clone(); further];
        partial
    }

    /// An empty partial without further windows.
    fn one_window(options: &Options, channels: &[String]) -> Partial {
        let n = channels.len();
        let rules: Vec<RuleCredits> = options
            .models
            .iter()
            .filter(|m| m.is_rule_based())
            .map(|&model| RuleCredits { model, conversions: vec![0.0; n], value: vec![0.0; n], exact: Vec::new() })
            .collect();
        let shares = options.models.iter().any(|&m| splits_channel_credit(m));
        let breakdown = (!options.breakdown.is_empty())
            .then(|| BreakdownSums::new(rules.len(), shares).with_paths(options.max_report_paths));
        Partial {
            channels: channels.to_vec(),
            channel_seen: vec![false; n],
            counts: Counts::default(),
            rules,
            markov: match options.markov_order {
                MarkovOrder::Fixed(order) if options.wants(ModelId::Markov) => Some(MarkovCounts::new(order)),
                _ => None,
            },
            markov_auto: (options.wants(ModelId::Markov) && options.markov_order == MarkovOrder::Auto)
                .then(OrderCandidates::new),
            shao_li: options.wants(ModelId::ShaoLi).then(ShaoLiCounts::default),
            reports: ReportCounts::new(n, options.max_report_paths),
            periods: BTreeMap::new(),
            breakdown,
            windows: Vec::new(),
            replicates: Vec::new(),
            exact: false,
            segments: BTreeMap::new(),
            part_rows_dropped: false,
        }
    }

    /// An empty partial for the names of a chunk's channel dictionary: its channels, or
    /// with a breakdown its touch keys' channels (in name order, as the names are given
    /// sorted by whoever wants a fixed channel numbering).
    pub fn for_dictionary(options: &Options, names: &[String]) -> Partial {
        if options.breakdown.is_empty() {
            return Partial::new(options, names);
        }
        let mut channels = TouchKeys::decode(names, options.breakdown.len()).channels;
        channels.sort_unstable();
        Partial::new(options, &channels)
    }

    /// Attributes one chunk of event rows (all rows of each of its users). Fails when a
    /// sum is too large for an `f64` (see [`Partial::check_finite`]).
    /// With a breakdown, the chunk's channel ids are touch keys (`chunk::touch_key`).
    pub fn from_events(chunk: &EventChunk, options: &Options) -> Result<Partial, AttributionError> {
        let mut partial = if options.conversion_types.is_empty() {
            Partial::from_events_unbounded(chunk, options)?
        } else {
            Partial::from_typed_events(chunk, options)?
        };
        partial.bound_part_rows();
        Ok(partial)
    }

    /// [`Partial::from_events`] without conversion types and before its parts' replicate rows
    /// are bounded (which a conversion type's partial leaves to the whole it goes into).
    fn from_events_unbounded(chunk: &EventChunk, options: &Options) -> Result<Partial, AttributionError> {
        let (mut partial, key_map) = if options.breakdown.is_empty() {
            (Partial::new(options, chunk.channels.names()), None)
        } else {
            // Only the keys of this chunk's rows: a dictionary may hold a whole run's keys.
            let names = chunk.channels.names();
            let mut key_of = vec![NO_CHANNEL; names.len()];
            let mut used: Vec<&str> = Vec::new();
            for &id in &chunk.channel_ids {
                if id != NO_CHANNEL && key_of[id as usize] == NO_CHANNEL {
                    key_of[id as usize] = used.len() as u32;
                    used.push(&names[id as usize]);
                }
            }
            let keys = TouchKeys::decode(&used, options.breakdown.len());
            let mut partial = Partial::new(options, &keys.channels);
            let shares = options.models.iter().any(|&m| splits_channel_credit(m));
            let sums = BreakdownSums::with_keys(partial.rules.len(), shares, keys.key_channel.clone(), keys.key_values)
                .with_paths(options.max_report_paths);
            // Every lookback window has the same keys: each credits the touches it reaches.
            for window in &mut partial.windows {
                window.breakdown = Some(sums.clone());
            }
            partial.breakdown = Some(sums);
            (partial, Some(KeyMap { key_of, key_channel: keys.key_channel }))
        };
        let mut adder = JourneyAdder::new(options, &partial.channels);
        adder.key_map = key_map;
        let mut empty = Partial::splits_chunks(options).then(|| partial.clone());
        // The whole's replicates keep breakdown sums of their own, refused before they are made
        // when the chunk's keys alone pass the cap. So do a part's (a further window's, and
        // every period's and segment's, made from `empty`), of the keys the part meets
        // (`PartKeys`), all parts' together bounded by `bound_part_rows` instead.
        if let Some(sums) = partial.breakdown.as_ref().filter(|_| !partial.replicates.is_empty()) {
            crate::intervals::check_breakdown_replicates(sums.len(), partial.replicates.len())?;
            for replicate in &mut partial.replicates {
                replicate.breakdown = Some(sums.for_replicates());
            }
            for part in partial.windows.iter_mut().chain(empty.as_mut()) {
                for replicate in &mut part.replicates {
                    replicate.breakdown = Some(sums.for_part_replicates());
                }
            }
        }
        partial.add_chunk(chunk, options, adder, empty.as_ref())?;
        Ok(partial)
    }

    /// Adds one more chunk of event rows (all rows of each of its users) to a partial of
    /// the same channel numbering: the chunk's dictionary is the partial's channels. So a
    /// run that numbers every chunk alike adds them all to one partial, with no merge each.
    /// Not with a breakdown, segments or conversion types (their keys and values are
    /// numbered per chunk): [`Partial::from_events`] and a merge do those.
    pub fn add_events(&mut self, chunk: &EventChunk, options: &Options) -> Result<(), AttributionError> {
        assert!(Partial::adds_events(options), "a breakdown, segments or conversion types are numbered per chunk");
        assert_eq!(self.channels, chunk.channels.names(), "the chunk is numbered as the partial");
        let adder = JourneyAdder::new(options, &self.channels);
        let empty = Partial::splits_chunks(options).then(|| Partial::new(options, &self.channels));
        self.add_chunk(chunk, options, adder, empty.as_ref())
    }

    /// Whether [`Partial::add_events`] takes chunks under these options.
    pub fn adds_events(options: &Options) -> bool {
        options.breakdown.is_empty() && options.segment_by.is_none() && options.conversion_types.is_empty()
    }

    /// Whether journeys go to sub-partials (periods, segments), made from an empty template.
    fn splits_chunks(options: &Options) -> bool {
        options.period.is_some() || options.segment_by.is_some()
    }

    /// Adds a chunk's journeys through `adder`; `empty` is an empty partial of this
    /// numbering, the template of every sub-partial (period, segment) made for the chunk
    /// (when [`Partial::splits_chunks`]). With segments or a breakdown only to a partial that
    /// is still empty.
    fn add_chunk(
        &mut self,
        chunk: &EventChunk,
        options: &Options,
        mut adder: JourneyAdder,
        empty: Option<&Partial>,
    ) -> Result<(), AttributionError> {
        let partial = self;
        // Parts are refused as they are made, before their replicates fill a worker's memory.
        let mut budget = ReplicateBudget::new(partial);
        // A part (period, segment, segment period) counts its paths in a smaller table.
        let template = || {
            let mut part = empty.expect("a template when journeys go to sub-partials").clone();
            let limit = crate::paths::part_report_paths(options.max_report_paths);
            part.reports.paths = PathCounts::new(limit);
            if let Some(breakdown) = &mut part.breakdown {
                breakdown.paths = PathCounts::new(limit);
            }
            part
        };
        // The training / held-out split of `markov_order: auto`, by user.
        let held_out = |origin: JourneyOrigin| match origin {
            JourneyOrigin::EventRow { user_key, .. } => crate::markov_order::is_held_out(user_key),
            JourneyOrigin::PathRow(_) => false,
        };
        // Whose weights a journey's replicates draw: its user's.
        let user = |origin: JourneyOrigin| match origin {
            JourneyOrigin::EventRow { user_key, .. } => ReplicateDraw::User(user_key),
            JourneyOrigin::PathRow(_) => unreachable!("an event chunk's journeys come from event rows"),
        };
        match options.period {
            None if !partial.windows.is_empty() => {
                // One grouping of the rows; each journey is added under every window.
                let mut further = std::mem::take(&mut partial.windows);
                // Each further window's replicates have a path table and key numbers of their own.
                let mut tables: Vec<PartScratch> = further.iter().map(|_| PartScratch::new()).collect();
                for_each_windowed_journey(chunk, options, &options.window_lookbacks(), |window, journey, origin| {
                    // Every window counts its paths (in a table of the whole's size: at most 8 windows).
                    let (draw, held) = (user(origin), held_out(origin));
                    if window == 0 {
                        adder.add(partial, journey, held, options);
                        adder.add_replicates(&mut partial.replicates, journey, draw, held, options);
                    } else {
                        let target = &mut further[window - 1];
                        adder.add(target, journey, held, options);
                        let table = &mut tables[window - 1];
                        adder.add_replicates_with(table, &mut target.replicates, journey, draw, held, options);
                    }
                });
                for (window, table) in further.iter_mut().zip(&mut tables) {
                    adder.finish_part(table, window);
                    window.counts.rows += chunk.len() as u64;
                    if let Some(breakdown) = &mut window.breakdown {
                        breakdown.compact();
                    }
                }
                partial.windows = further;
            }
            None if options.segment_by.is_some() => {
                // Each journey is added once, to the segment of its last row; the whole is
                // their sum. Paths go to the whole and to the segment (a part's table), as
                // with periods: the whole's are not the sum of the parts' summaries.
                // With `intervals` each segment has replicates of its own, as the whole has.
                let empty = template();
                let no_value = chunk.segments.len();
                let mut by_id: Vec<Option<Partial>> = vec![None; no_value + 1];
                let mut tables: Vec<Option<PartScratch>> = (0..=no_value).map(|_| None).collect();
                adder.paths = false;
                for_each_event_journey(chunk, options, |journey, origin| {
                    adder.add_path(partial, journey);
                    adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
                    let slot = segment_slot(chunk, origin);
                    if by_id[slot].is_none() && !budget.admit(empty.replicates.len()) {
                        return;
                    }
                    let sub = by_id[slot].get_or_insert_with(|| empty.clone());
                    adder.add(sub, journey, held_out(origin), options);
                    adder.add_path(sub, journey);
                    let table = tables[slot].get_or_insert_with(PartScratch::new);
                    adder.add_replicates_with(
                        table,
                        &mut sub.replicates,
                        journey,
                        user(origin),
                        held_out(origin),
                        options,
                    );
                });
                let identity: Vec<u32> = (0..partial.channels.len() as u32).collect();
                for (slot, sub) in by_id.into_iter().enumerate() {
                    let Some(mut sub) = sub else { continue };
                    if let Some(table) = &mut tables[slot] {
                        adder.finish_part(table, &mut sub);
                    }
                    partial.add_mapped(&sub, &identity, true, false);
                    if let Some(breakdown) = &mut sub.breakdown {
                        breakdown.compact();
                    }
                    let value = (slot < no_value).then(|| chunk.segments.name(slot as u32).to_owned());
                    partial.segments.insert(value, sub);
                }
            }
            None => for_each_event_journey(chunk, options, |journey, origin| {
                adder.add(partial, journey, held_out(origin), options);
                adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
            }),
            Some(period) if options.segment_by.is_some() => {
                // Each journey is added once, to its segment's period: a segment is the sum of
                // its periods, and a period of the whole the sum of the segments' periods.
                // With `intervals` the whole, each segment and each of their periods have
                // replicates of their own, each with a path table.
                let empty = template();
                let bare = Partial { replicates: Vec::new(), ..template() };
                let mut parts: BTreeMap<(usize, i32), Partial> = BTreeMap::new();
                let mut by_slot: BTreeMap<usize, Partial> = BTreeMap::new();
                let mut tables: BTreeMap<usize, PartScratch> = BTreeMap::new();
                let mut part_tables: BTreeMap<(usize, i32), PartScratch> = BTreeMap::new();
                let mut whole_periods: BTreeMap<i32, (Vec<Partial>, PartScratch)> = BTreeMap::new();
                // The paths of the whole's periods (of channels, and of touch keys with a
                // breakdown), counted straight (not the sum of the segments').
                let mut period_paths: BTreeMap<i32, (PathCounts, PathCounts)> = BTreeMap::new();
                let part_paths = crate::paths::part_report_paths(options.max_report_paths);
                adder.paths = false;
                for_each_event_journey(chunk, options, |journey, origin| {
                    let slot = segment_slot(chunk, origin);
                    let at = journey.conversion_time.or_else(|| journey.touch_times.and_then(|t| t.last().copied()));
                    // The segment, its period and the whole's period this journey may make.
                    let day = at.map(|at| period.start(at, options.timezone));
                    let new = usize::from(!by_slot.contains_key(&slot))
                        + day.map_or(0, |day| {
                            usize::from(!parts.contains_key(&(slot, day)))
                                + usize::from(!whole_periods.contains_key(&day))
                        });
                    if new > 0 && !budget.admit(new * empty.replicates.len()) {
                        return;
                    }
                    adder.add_path(partial, journey);
                    adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
                    let segment = by_slot.entry(slot).or_insert_with(|| empty.clone());
                    adder.add_path(segment, journey);
                    let table = tables.entry(slot).or_insert_with(PartScratch::new);
                    adder.add_replicates_with(
                        table,
                        &mut segment.replicates,
                        journey,
                        user(origin),
                        held_out(origin),
                        options,
                    );
                    match day {
                        Some(day) => {
                            let key = (slot, day);
                            let sub = parts.entry(key).or_insert_with(|| empty.clone());
                            adder.add(sub, journey, held_out(origin), options);
                            adder.add_path(sub, journey);
                            let (paths, keyed) = period_paths
                                .entry(key.1)
                                .or_insert_with(|| (PathCounts::new(part_paths), PathCounts::new(part_paths)));
                            adder.add_path_to(paths, Some(keyed), journey);
                            if !sub.replicates.is_empty() {
                                let (draw, held) = (user(origin), held_out(origin));
                                let table = part_tables.entry(key).or_insert_with(PartScratch::new);
                                adder.add_replicates_with(table, &mut sub.replicates, journey, draw, held, options);
                                let (replicates, table) = whole_periods
                                    .entry(key.1)
                                    .or_insert_with(|| (empty.replicates.clone(), PartScratch::new()));
                                adder.add_replicates_with(table, replicates, journey, draw, held, options);
                            }
                        }
                        None => {
                            adder.add(partial, journey, held_out(origin), options);
                            let segment = by_slot.entry(slot).or_insert_with(|| empty.clone());
                            adder.add(segment, journey, held_out(origin), options);
                        }
                    }
                });
                for (slot, table) in &mut tables {
                    let segment = by_slot.get_mut(slot).expect("a table's segment has its partial");
                    adder.finish_part(table, segment);
                }
                for (key, table) in &mut part_tables {
                    let sub = parts.get_mut(key).expect("a table's part has its partial");
                    adder.finish_part(table, sub);
                }
                let identity: Vec<u32> = (0..partial.channels.len() as u32).collect();
                let mut periods: BTreeMap<i32, Partial> = BTreeMap::new();
                for ((slot, day), mut sub) in parts {
                    let segment = by_slot.entry(slot).or_insert_with(|| empty.clone());
                    segment.add_mapped(&sub, &identity, true, false);
                    periods.entry(day).or_insert_with(|| bare.clone()).add_mapped(&sub, &identity, true, false);
                    if let Some(breakdown) = &mut sub.breakdown {
                        breakdown.compact();
                    }
                    segment.periods.insert(day, sub);
                }
                for (day, (replicates, mut table)) in whole_periods {
                    let period = periods.get_mut(&day).expect("a dated journey's period has its partial");
                    period.replicates = replicates;
                    adder.finish_part(&mut table, period);
                }
                for (day, (paths, keyed)) in period_paths {
                    let period = periods.get_mut(&day).expect("a dated journey's period has its partial");
                    period.reports.paths = paths;
                    if let Some(breakdown) = &mut period.breakdown {
                        breakdown.paths = keyed;
                    }
                }
                for sub in periods.values_mut() {
                    partial.add_mapped(sub, &identity, true, false);
                    if let Some(breakdown) = &mut sub.breakdown {
                        breakdown.compact();
                    }
                }
                partial.periods = periods;
                for (slot, mut segment) in by_slot {
                    if let Some(breakdown) = &mut segment.breakdown {
                        breakdown.compact();
                    }
                    let value = (slot < chunk.segments.len()).then(|| chunk.segments.name(slot as u32).to_owned());
                    partial.segments.insert(value, segment);
                }
            }
            Some(period) => {
                // Each journey is added once, to its period; the whole is their sum. Paths go
                // straight to the whole and to the period (a part's smaller table).
                // With `intervals` each period has replicates of its own, as the whole has.
                let empty = template();
                let mut periods = BTreeMap::new();
                // Each period's replicates have a path table (smaller than the whole's) and key
                // numbers of their own.
                let mut tables: BTreeMap<i32, PartScratch> = BTreeMap::new();
                adder.paths = false;
                for_each_event_journey(chunk, options, |journey, origin| {
                    adder.add_path(partial, journey);
                    // The replicates are the whole's: each journey goes straight to them.
                    adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
                    let at = journey.conversion_time.or_else(|| journey.touch_times.and_then(|t| t.last().copied()));
                    match at {
                        Some(at) => {
                            let day = period.start(at, options.timezone);
                            let new = !periods.contains_key(&day) && !partial.periods.contains_key(&day);
                            if new && !budget.admit(empty.replicates.len()) {
                                return;
                            }
                            let sub = periods.entry(day).or_insert_with(|| empty.clone());
                            adder.add(sub, journey, held_out(origin), options);
                            adder.add_path(sub, journey);
                            if !sub.replicates.is_empty() {
                                let table = tables.entry(day).or_insert_with(PartScratch::new);
                                adder.add_replicates_with(
                                    table,
                                    &mut sub.replicates,
                                    journey,
                                    user(origin),
                                    held_out(origin),
                                    options,
                                );
                            }
                        }
                        None => adder.add(partial, journey, held_out(origin), options),
                    }
                });
                for (day, table) in &mut tables {
                    let sub = periods.get_mut(day).expect("a table's period has its partial");
                    adder.finish_part(table, sub);
                }
                // The periods share this chunk's channel numbering: no names to match.
                let identity: Vec<u32> = (0..partial.channels.len() as u32).collect();
                for (day, mut sub) in periods {
                    partial.add_mapped(&sub, &identity, true, false);
                    if let Some(breakdown) = &mut sub.breakdown {
                        breakdown.compact();
                    }
                    match partial.periods.entry(day) {
                        Entry::Vacant(slot) => {
                            slot.insert(sub);
                        }
                        // Its replicates too: `merge_sums`, not `add_mapped`.
                        Entry::Occupied(mut slot) => slot.get_mut().merge_sums(&sub),
                    }
                }
            }
        }
        budget.refusal()?;
        adder.flush_replicates(&mut partial.replicates);
        let replicates = partial.replicates.iter_mut().map(|r| &mut r.breakdown);
        for breakdown in std::iter::once(&mut partial.breakdown).chain(replicates).flatten() {
            breakdown.compact();
        }
        partial.counts.rows += chunk.len() as u64;
        partial.check_finite(options)?;
        partial.check_limits()
    }

    /// With `conversion_types` (the chunk's segment ids name each conversion row's type): the
    /// whole over every type's conversions, and in `segments` each type on its own, as if its
    /// conversions were the only ones (the other types' conversion rows left out) under its
    /// own lookback window.
    fn from_typed_events(chunk: &EventChunk, options: &Options) -> Result<Partial, AttributionError> {
        let whole_options =
            Options { conversion_types: Vec::new(), conversion_lookbacks: Vec::new(), ..options.clone() };
        let mut whole = Partial::from_events_unbounded(chunk, &whole_options)?;
        for (index, name) in options.conversion_types.iter().enumerate() {
            let rows = chunk.of_conversion_type(chunk.segments.get(name));
            let lookback_days = options.conversion_lookbacks.get(index).copied().unwrap_or(options.lookback_days);
            let mut typed = Partial::from_events_unbounded(&rows, &Options { lookback_days, ..whole_options.clone() })?;
            // Rows are counted once, in the whole.
            typed.counts.rows = 0;
            whole.segments.insert(Some(name.clone()), typed);
        }
        // Each conversion type's replicates were counted alone.
        whole.check_replicate_memory()?;
        Ok(whole)
    }

    /// Attributes one chunk of path rows; fails as [`Partial::from_events`] does.
    pub fn from_paths(chunk: &PathChunk, options: &Options) -> Result<Partial, AttributionError> {
        let mut partial = Partial::new(options, chunk.channels.names());
        let mut adder = JourneyAdder::new(options, &partial.channels);
        let auto = partial.markov_auto.is_some();
        let names = chunk.channels.names();
        for_each_path_journey(chunk, options, |journey, _| {
            // The training / held-out split of `markov_order: auto`, by the row's path.
            let held_out = auto && crate::markov_order::is_held_out_path(journey.channels, names);
            adder.add(&mut partial, journey, held_out, options);
            if !partial.replicates.is_empty() {
                let draw = ReplicateDraw::PathRow(path_row_key(journey, names));
                adder.add_replicates(&mut partial.replicates, journey, draw, held_out, options);
            }
        });
        adder.flush_replicates(&mut partial.replicates);
        partial.counts.rows = chunk.len() as u64;
        partial.check_finite(options)?;
        partial.check_limits()?;
        Ok(partial)
    }

    /// Refuses a partial, merged from others, that holds more than `limits` allow (rows,
    /// channels, breakdown values, segments). A reducer asks after every merge, so what it
    /// holds never grows much past the limits, whatever the partials hold together.
    pub fn check_within(&self, limits: &crate::ingest::Limits) -> Result<(), AttributionError> {
        limits.check_rows(self.counts.rows)?;
        limits.check_channels(self.channels.len())?;
        if let Some(breakdown) = &self.breakdown {
            limits.check_breakdown_values(breakdown.len())?;
        }
        self.check_breakdown_replicates()?;
        self.check_replicate_memory()?;
        limits.check_segments(self.segments.keys().flatten().count())
    }

    /// Refuses counts that grew past a model's bound (the `shao_li` pairs, under each lookback
    /// window and in each segment: a conversion type's journeys may pair touches the whole's
    /// do not) and the whole's replicate rows past theirs (the parts' are bounded by dropping
    /// them, [`Partial::bound_part_rows`]); [`Partial::finish`] asks again after merging.
    pub fn check_limits(&self) -> Result<(), AttributionError> {
        self.check_breakdown_replicates()?;
        self.check_replicate_memory()?;
        self.check_model_limits()
    }

    /// Refuses a partial whose replicate partials, its own and every part's, would take more
    /// than `intervals::MAX_REPLICATE_BYTES`. Parts, replicates and channels only grow under a
    /// merge, so a job is refused, after any chunk or merge or at finish, iff its whole input is.
    fn check_replicate_memory(&self) -> Result<(), AttributionError> {
        match self.replicate_shape() {
            Some(shape) => crate::intervals::check_replicate_memory(self.replicate_partials(), shape),
            None => Ok(()),
        }
    }

    /// What each of this partial's replicate partials holds; `None` without intervals.
    fn replicate_shape(&self) -> Option<crate::intervals::ReplicateShape> {
        let replicate = self.replicates.first()?;
        // `auto` counts a chain of each candidate order (one past its bound stops counting).
        let chains = match (&replicate.markov, &replicate.markov_auto) {
            (_, Some(_)) => MarkovOrder::CANDIDATES.count(),
            (Some(_), None) => 1,
            (None, None) => 0,
        };
        Some(crate::intervals::ReplicateShape {
            channels: self.channels.len(),
            rule_models: replicate.rules.len(),
            chains,
            shao_li: replicate.shao_li.is_some(),
        })
    }

    /// The replicate partials of this partial and of its parts, however deep.
    fn replicate_partials(&self) -> usize {
        self.replicates.len() + self.parts().map(Partial::replicate_partials).sum::<usize>()
    }

    /// [`Partial::check_limits`] but for the whole's replicate rows.
    fn check_model_limits(&self) -> Result<(), AttributionError> {
        if let Some(shao_li) = &self.shao_li {
            shao_li.check_limit()?;
        }
        self.windows.iter().chain(self.segments.values()).try_for_each(Partial::check_model_limits)
    }

    /// The replicate breakdown rows of every part (period, segment, segment period, further
    /// window), whether kept or dropped: each part's keys × its replicates. The parts' keys
    /// are those their journeys met, so the count depends on the input alone once every chunk
    /// is merged, and a merge never lowers it.
    fn part_row_replicates(&self) -> usize {
        self.parts()
            .map(|part| {
                let keys = part.breakdown.as_ref().map_or(0, BreakdownSums::len);
                keys * part.replicates.len() + part.part_row_replicates()
            })
            .sum()
    }

    /// Drops every part's replicate breakdown sums, and marks the partial so, once its parts'
    /// replicate rows pass `intervals::MAX_PART_BREAKDOWN_REPLICATES` or it merged a partial
    /// so marked. As their count only grows, the merged partial of a job is marked iff its
    /// count passes the cap, however its chunks were grouped and merged.
    fn bound_part_rows(&mut self) {
        if !self.part_rows_dropped && self.part_row_replicates() > PART_ROW_CAP {
            self.part_rows_dropped = true;
        }
        if self.part_rows_dropped {
            self.drop_part_rows();
        }
    }

    fn drop_part_rows(&mut self) {
        for part in self.periods.values_mut().chain(self.segments.values_mut()).chain(&mut self.windows) {
            for replicate in &mut part.replicates {
                replicate.breakdown = None;
            }
            part.drop_part_rows();
        }
    }

    /// The parts of this partial (not of its parts).
    fn parts(&self) -> impl Iterator<Item = &Partial> {
        self.periods.values().chain(self.segments.values()).chain(&self.windows)
    }

    /// Refuses replicates that keep breakdown sums for more rows than
    /// `intervals::MAX_BREAKDOWN_REPLICATES` allows.
    fn check_breakdown_replicates(&self) -> Result<(), AttributionError> {
        match (&self.breakdown, self.replicates.first().is_some_and(|r| r.breakdown.is_some())) {
            (Some(breakdown), true) => {
                crate::intervals::check_breakdown_replicates(breakdown.len(), self.replicates.len())
            }
            _ => Ok(()),
        }
    }

    /// Refuses a partial whose sums left the range of `f64` (conversions or values near
    /// 1e308 added up, here or by [`Partial::merge`]): infinity would be written as
    /// `null` and no result could be built from it. Ingest refuses such rows already,
    /// naming them; this catches sums made of rows that were read apart (in parallel).
    pub fn check_finite(&self, options: &Options) -> Result<(), AttributionError> {
        let c = &self.counts;
        let paths = options.kind == crate::options::InputKind::Paths;
        let (conversions, value, nulls) = if paths {
            ("total_conversions", "total_conversion_value", "total_null")
        } else {
            ("conversion", "conversion_value", "conversion")
        };
        let sums = [
            (c.conversions, conversions, "conversions"),
            (c.converting_journeys + c.null_journeys, nulls, "journeys"),
            (c.conversion_value, value, "conversion values"),
        ];
        let rules = self.rules.iter().flat_map(|rule| {
            let total = |credits: &[f64]| credits.iter().sum::<f64>();
            [
                (total(&rule.conversions), conversions, "credited conversions"),
                (total(&rule.value), value, "credited values"),
            ]
        });
        match sums.into_iter().chain(rules).find(|(sum, ..)| !sum.is_finite()) {
            Some((_, column, what)) => Err(too_large(column, what)),
            None => self.windows.iter().chain(self.segments.values()).try_for_each(|part| part.check_finite(options)),
        }
    }

    /// Adds `other` into `self`, matching channels by name; the parts' replicate rows are
    /// bounded again ([`Partial::bound_part_rows`]).
    pub fn merge(&mut self, other: &Partial) {
        self.merge_sums(other);
        self.part_rows_dropped |= other.part_rows_dropped;
        self.bound_part_rows();
    }

    /// [`Partial::merge`] but for the bound, which belongs to the outermost partial (its
    /// parts, replicates and windows merge by this).
    fn merge_sums(&mut self, other: &Partial) {
        let mut ids: rustc_hash::FxHashMap<String, u32> =
            self.channels.iter().enumerate().map(|(id, name)| (name.clone(), id as u32)).collect();
        let channel_map: Vec<u32> = other
            .channels
            .iter()
            .map(|name| match ids.get(name) {
                Some(&id) => id,
                None => {
                    let id = self.add_channel(name);
                    ids.insert(name.clone(), id);
                    id
                }
            })
            .collect();
        self.add_mapped(other, &channel_map, false, true);
        self.exact &= other.exact;
        for (&period, theirs) in &other.periods {
            match self.periods.get_mut(&period) {
                Some(mine) => mine.merge_sums(theirs),
                None => {
                    self.periods.insert(period, theirs.clone());
                }
            }
        }
        for (i, theirs) in other.windows.iter().enumerate() {
            match self.windows.get_mut(i) {
                Some(mine) => mine.merge_sums(theirs),
                None => self.windows.push(theirs.clone()),
            }
        }
        for (i, theirs) in other.replicates.iter().enumerate() {
            match self.replicates.get_mut(i) {
                Some(mine) => mine.merge_sums(theirs),
                None => self.replicates.push(theirs.clone()),
            }
        }
        crate::segment::merge(&mut self.segments, &other.segments, Partial::merge_sums);
    }

    /// Adds `other`'s sums (not its periods, windows or segments), whose channel `c` is our
    /// `channel_map[c]`; `same_keys` when both have the same breakdown keys in the same order;
    /// `paths` but for a part added to its whole, whose paths were counted straight.
    fn add_mapped(&mut self, other: &Partial, channel_map: &[u32], same_keys: bool, paths: bool) {
        self.counts.add(&other.counts);
        for (old, &new) in channel_map.iter().enumerate() {
            self.channel_seen[new as usize] |= other.channel_seen[old];
        }
        for (mine, theirs) in self.rules.iter_mut().zip(&other.rules) {
            assert_eq!(mine.model, theirs.model, "partials of one job share their models");
            // A replicate's credit is exact only (`exact.rs`).
            if !self.exact && !other.exact {
                for (old, &new) in channel_map.iter().enumerate() {
                    mine.conversions[new as usize] += theirs.conversions[old];
                    mine.value[new as usize] += theirs.value[old];
                }
            }
            crate::exact::add_mapped(&mut mine.exact, &theirs.exact, channel_map);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.markov, &other.markov) {
            mine.merge(theirs, channel_map);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.markov_auto, &other.markov_auto) {
            mine.merge(theirs, channel_map);
        }
        if let (Some(mine), Some(theirs)) = (&mut self.shao_li, &other.shao_li) {
            mine.merge(theirs, channel_map);
        }
        self.reports.merge(&other.reports, channel_map, paths);
        if let Some(theirs) = &other.breakdown {
            // An empty replicate (of `Partial::new`) has no breakdown sums until it meets some.
            let mine = self.breakdown.get_or_insert_with(|| {
                let mut sums = BreakdownSums::new(theirs.rules.len(), theirs.markov.is_some());
                sums.exact = theirs.exact;
                sums
            });
            mine.add_mapped(theirs, channel_map, same_keys, paths);
        }
    }

    /// A replicate as a partial of `f64` sums that is the same whatever grouping of chunks
    /// made it, so that the figures built from it are too, to the last bit: the channels its
    /// journeys met, in the order of their names; its chains' states and its breakdown keys
    /// in the order of their keys; each exact sum (`exact.rs`) rounded once. Refused for a
    /// replicate of an older version (without exact sums) and for a sum past their range.
    pub(crate) fn canonical_replicate(&self) -> Result<Partial, AttributionError> {
        if !self.exact {
            return Err(AttributionError::new(
                ErrorCode::Internal,
                "a partial of an older version holds bootstrap replicates without exact sums; run the job again",
            ));
        }
        let mut seen: Vec<usize> = (0..self.channels.len()).filter(|&c| self.channel_seen[c]).collect();
        seen.sort_by(|&a, &b| self.channels[a].cmp(&self.channels[b]));
        let mut channel_map = vec![NO_CHANNEL; self.channels.len()];
        for (new, &old) in seen.iter().enumerate() {
            channel_map[old] = new as u32;
        }
        let [value, unattributed] = self.counts.exact_values;
        let counts = Counts {
            conversion_value: value.to_f64()?,
            unattributed_value: unattributed.to_f64()?,
            exact_values: [Exact::ZERO; 2],
            ..self.counts
        };
        let rules = self
            .rules
            .iter()
            .map(|rule| {
                let credit = |i: usize| -> Result<Vec<f64>, AttributionError> {
                    seen.iter().map(|&c| rule.exact.get(c).map_or(Ok(0.0), |sums| sums[i].to_f64())).collect()
                };
                Ok(RuleCredits { model: rule.model, conversions: credit(0)?, value: credit(1)?, exact: Vec::new() })
            })
            .collect::<Result<_, AttributionError>>()?;
        Ok(Partial {
            channels: seen.iter().map(|&c| self.channels[c].clone()).collect(),
            channel_seen: vec![true; seen.len()],
            counts,
            rules,
            markov: self.markov.as_ref().map(|chain| chain.canonical(&channel_map)).transpose()?,
            markov_auto: self.markov_auto.as_ref().map(|c| c.canonical(&channel_map)).transpose()?,
            shao_li: self.shao_li.as_ref().map(|counts| counts.canonical(&channel_map)).transpose()?,
            reports: ReportCounts::new(seen.len(), 0),
            periods: BTreeMap::new(),
            breakdown: self.breakdown.as_ref().map(|sums| sums.canonical(&channel_map)).transpose()?,
            windows: Vec::new(),
            replicates: Vec::new(),
            exact: false,
            segments: BTreeMap::new(),
            part_rows_dropped: false,
        })
    }

    /// Adds `partial` to a running total that may not have started yet.
    pub fn merge_into(total: &mut Option<Partial>, partial: Partial) {
        match total {
            Some(total) => total.merge(&partial),
            None => *total = Some(partial),
        }
    }

    fn add_channel(&mut self, name: &str) -> u32 {
        self.channels.push(name.to_owned());
        self.channel_seen.push(false);
        self.reports.add_channel();
        for rule in &mut self.rules {
            if self.exact {
                rule.exact.resize(self.channels.len(), [Exact::ZERO; 2]);
            } else {
                rule.conversions.push(0.0);
                rule.value.push(0.0);
            }
        }
        (self.channels.len() - 1) as u32
    }
}

/// The slot of a journey's segment: the segment id of its last row, or the chunk's count of
/// segment values for a row without one.
fn segment_slot(chunk: &EventChunk, origin: JourneyOrigin) -> usize {
    let row = match origin {
        JourneyOrigin::EventRow { row, .. } | JourneyOrigin::PathRow(row) => row,
    };
    match chunk.segment_ids.get(row) {
        Some(&id) if id != NO_SEGMENT => id as usize,
        _ => chunk.segments.len(),
    }
}

/// The refusal of a sum that is not a finite number; ingest names the row when it can.
fn too_large(column: &str, what: &str) -> AttributionError {
    AttributionError::new(
        ErrorCode::LimitExceeded,
        format!(
            "the {what} of the input add up to more than the largest finite number (about 1.8e308); \
             are the numbers in the right unit?"
        ),
    )
    .with_details(vec![Problem::new(None, Some(column), format!("the sum of the {what} overflows"))])
}

/// Whose draws weigh a journey in the bootstrap replicates.
#[derive(Clone, Copy)]
enum ReplicateDraw {
    /// An event journey: its user's Poisson(1) weight (`user_key`).
    User(u128),
    /// A path row (by [`path_row_key`]): Poisson draws of its conversions and null journeys.
    PathRow(u128),
}

/// A [`ReplicateDraw`] with what every replicate of the journey shares hashed once.
#[derive(Clone, Copy)]
enum PreparedDraw {
    /// The user's hash under the seed (`intervals::user_draws`).
    User(u64),
    PathRow(u128),
}

impl ReplicateDraw {
    fn prepared(self, seed: u64) -> PreparedDraw {
        match self {
            ReplicateDraw::User(key) => PreparedDraw::User(crate::intervals::user_draws(key, seed)),
            ReplicateDraw::PathRow(key) => PreparedDraw::PathRow(key),
        }
    }
}

/// The key of a path row's draws: a hash of its channels' names (not ids, which differ from
/// chunk to chunk) and its numbers.
fn path_row_key(journey: &Journey<'_>, names: &[String]) -> u128 {
    let mut bytes = Vec::with_capacity(journey.channels.len() * 8 + 24);
    for &c in journey.channels {
        bytes.extend_from_slice(names[c as usize].as_bytes());
        bytes.push(0);
    }
    for x in [journey.conversions, journey.nulls, journey.value] {
        bytes.extend_from_slice(&x.to_bits().to_le_bytes());
    }
    crate::chunk::user_key(&bytes)
}

/// A journey's figures per unit of its replicates' draws: conversions, value and presence
/// (conversions and null journeys), each replicate's figure being one of these times its draw.
#[derive(Clone, Copy)]
struct Units {
    conversions: f64,
    value: f64,
    presence: f64,
}

/// One replicate's draw of a journey: its conversions and null journeys (whole numbers for
/// journeys of whole conversions, as events' are and path rows' draws are), and the whole
/// numbers that multiply its [`Units`]: `times` its conversions and value, `presence_times`
/// its presence.
#[derive(Clone, Copy)]
struct Draw {
    conversions: f64,
    nulls: f64,
    times: f64,
    presence_times: f64,
}

impl PreparedDraw {
    /// The journey's units: a user's draws weigh the journey, a path row's draw its conversions.
    fn units(self, journey: &Journey<'_>) -> Units {
        match self {
            PreparedDraw::User(_) => Units {
                conversions: journey.conversions,
                value: journey.value,
                presence: journey.conversions + journey.nulls,
            },
            PreparedDraw::PathRow(_) => Units {
                conversions: 1.0,
                value: if journey.conversions > 0.0 { journey.value / journey.conversions } else { 0.0 },
                presence: 1.0,
            },
        }
    }

    /// The journey's draw in replicate `replicate`.
    #[inline]
    fn draw(self, journey: &Journey<'_>, replicate: u32, seed: u64) -> Draw {
        match self {
            PreparedDraw::User(draws) => {
                let weight = crate::intervals::replicate_weight(draws, replicate) as f64;
                Draw {
                    conversions: journey.conversions * weight,
                    nulls: journey.nulls * weight,
                    times: weight,
                    presence_times: weight,
                }
            }
            PreparedDraw::PathRow(key) => {
                let (conversions, nulls) =
                    crate::intervals::path_draws(key, replicate, seed, journey.conversions, journey.nulls);
                Draw { conversions, nulls, times: conversions, presence_times: conversions + nulls }
            }
        }
    }
}

/// A journey's conversions, null journeys and value in replicate `replicate`.
#[cfg(test)]
fn replicate_counts(journey: &Journey<'_>, draw: PreparedDraw, replicate: u32, seed: u64) -> (f64, f64, f64) {
    let (units, drawn) = (draw.units(journey), draw.draw(journey, replicate, seed));
    (drawn.conversions, drawn.nulls, units.value * drawn.times)
}

/// The counts part of [`JourneyAdder::flush_replicates`]: each replicate's journeys with
/// touches (conversions, null journeys, value) are its rows' sums, and a channel is reached
/// in a replicate when a path through it is. Gathered row by row of the table (replicates
/// side by side), then added to each replicate once: the same integer sums in any order.
fn flush_counts(table: &ReplicatePaths, replicates: &mut [Partial]) {
    let count = replicates.len();
    let words = count.div_ceil(64);
    let channels = table.paths.iter().flat_map(|key| &key[..key.len() - 1]).max().map_or(0, |&c| c as usize + 1);
    let mut totals = vec![JourneySums::default(); count];
    // `reached[channel * words ..][..words]`: a bit per replicate.
    let mut reached = vec![0u64; channels * words];
    let mut met = vec![0u64; words];
    for (index, key) in table.paths.iter().enumerate() {
        met.fill(0);
        for (replicate, (total, sums)) in totals.iter_mut().zip(table.row(index)).enumerate() {
            if sums.is_met() {
                total.add(sums);
                met[replicate / 64] |= 1 << (replicate % 64);
            }
        }
        for &channel in &key[..key.len() - 1] {
            let bits = &mut reached[channel as usize * words..][..words];
            bits.iter_mut().zip(&met).for_each(|(bits, met)| *bits |= met);
        }
    }
    for (replicate, (partial, total)) in replicates.iter_mut().zip(totals).enumerate() {
        let counts = &mut partial.counts;
        counts.conversions += total.conversions;
        counts.converting_journeys += total.conversions;
        counts.null_journeys += total.nulls;
        counts.exact_values[0].add(total.value);
        let (word, bit) = (replicate / 64, replicate % 64);
        for channel in 0..channels {
            if reached[channel * words + word] >> bit & 1 == 1 {
                partial.channel_seen[channel] = true;
            }
        }
    }
}

/// The most (transitions or states) × replicates [`flush_chains`] gathers at once: 2 MiB of
/// weights, 8 MiB of outcomes.
const CHAIN_FLUSH_CELLS: usize = 1 << 18;

/// The fixed-order chain part of [`JourneyAdder::flush_replicates`]: the table's paths'
/// transitions numbered once ([`EdgeTable`]), each transition's weight and each final
/// state's outcomes gathered row by row of the table for a block of replicates side by
/// side, then added to each replicate's chain. Each replicate's sums are added path by path
/// in the table's order, whatever the block.
fn flush_chains(table: &ReplicatePaths, order: u8, replicates: &mut [Partial]) {
    let mut edges = EdgeTable::new(order);
    let mut path_edges: Vec<(Vec<u32>, u32)> = Vec::with_capacity(table.paths.len());
    for key in &table.paths {
        let mut ids = Vec::new();
        let last = edges.path(&key[..key.len() - 1], &mut ids).expect("paths in the table have touches");
        path_edges.push((ids, last));
    }
    let (edge_count, state_count) = (edges.edge_count(), edges.state_count());
    let block = (CHAIN_FLUSH_CELLS / edge_count.max(state_count).max(1)).clamp(1, replicates.len().max(1));
    let mut weights = vec![0.0; edge_count * block];
    let mut outcomes = vec![JourneySums::default(); state_count * block];
    let (mut replicate_weights, mut replicate_outcomes) =
        (vec![0.0; edge_count], vec![JourneySums::default(); state_count]);
    for (first, partials) in (0..).step_by(block).zip(replicates.chunks_mut(block)) {
        let width = partials.len();
        weights.fill(0.0);
        outcomes.fill(JourneySums::default());
        for (index, (ids, last)) in path_edges.iter().enumerate() {
            let sums = &table.row(index)[first..first + width];
            for &id in ids {
                let row = &mut weights[id as usize * block..][..width];
                row.iter_mut().zip(sums).for_each(|(weight, sums)| *weight += sums.conversions + sums.nulls);
            }
            let row = &mut outcomes[*last as usize * block..][..width];
            row.iter_mut().zip(sums).for_each(|(outcome, sums)| outcome.add(sums));
        }
        for (column, partial) in partials.iter_mut().enumerate() {
            replicate_weights.iter_mut().enumerate().for_each(|(id, w)| *w = weights[id * block + column]);
            replicate_outcomes.iter_mut().enumerate().for_each(|(id, o)| *o = outcomes[id * block + column]);
            edges.add_to(
                partial.markov.as_mut().expect("every replicate has the chain"),
                &replicate_weights,
                &replicate_outcomes,
            );
        }
    }
}

/// The `shao_li` part of [`JourneyAdder::flush_replicates`]: each path's distinct channels
/// and pairs numbered once, each replicate's sums gathered per channel and pair in dense
/// arrays, then added to its counts.
fn flush_shao_li(table: &ReplicatePaths, replicates: &mut [Partial]) {
    let mut pair_index: rustc_hash::FxHashMap<(u32, u32), u32> = rustc_hash::FxHashMap::default();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut channel_top = 0;
    // Paths with the same distinct channels count alike: each such set (a shape) has its
    // channels and its pairs' indices; `shape_of[path]` is the path's.
    let mut shape_index: rustc_hash::FxHashMap<Vec<u32>, usize> = rustc_hash::FxHashMap::default();
    let mut shapes: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
    let mut shape_of: Vec<usize> = Vec::with_capacity(table.paths.len());
    for key in &table.paths {
        let mut distinct = key[..key.len() - 1].to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        if let Some(&shape) = shape_index.get(&distinct) {
            shape_of.push(shape);
            continue;
        }
        channel_top = channel_top.max(*distinct.last().expect("paths in the table have touches") as usize + 1);
        let mut ids = Vec::with_capacity(distinct.len() * distinct.len().saturating_sub(1) / 2);
        for (j, &b) in distinct.iter().enumerate() {
            for &a in &distinct[..j] {
                let next = pairs.len() as u32;
                let id = *pair_index.entry((a, b)).or_insert(next);
                if id == next {
                    pairs.push((a, b));
                }
                ids.push(id);
            }
        }
        shape_of.push(shapes.len());
        shape_index.insert(distinct.clone(), shapes.len());
        shapes.push((distinct, ids));
    }
    let zero = JourneySums::default();
    let (mut channel_sums, mut pair_sums) = (vec![zero; channel_top], vec![zero; pairs.len()]);
    // `shape_sums[shape * count + replicate]`, gathered row by row of the table (no larger
    // than the table: a shape has a path or more).
    let count = replicates.len();
    let mut shape_sums = vec![zero; shapes.len() * count];
    for (index, &shape) in shape_of.iter().enumerate() {
        let row = &mut shape_sums[shape * count..][..count];
        row.iter_mut().zip(table.row(index)).for_each(|(sum, sums)| sum.add(sums));
    }
    for (replicate, partial) in replicates.iter_mut().enumerate() {
        channel_sums.iter_mut().for_each(|s| *s = zero);
        pair_sums.iter_mut().for_each(|s| *s = zero);
        let shape_sums = shape_sums.iter().skip(replicate).step_by(count);
        for ((distinct, ids), sums) in shapes.iter().zip(shape_sums) {
            if !sums.is_met() {
                continue;
            }
            for &c in distinct {
                channel_sums[c as usize].add(sums);
            }
            for &id in ids {
                pair_sums[id as usize].add(sums);
            }
        }
        let channels: Vec<(u32, JourneySums)> =
            channel_sums.iter().enumerate().filter(|(_, s)| s.is_met()).map(|(c, s)| (c as u32, *s)).collect();
        let pair_list: Vec<((u32, u32), JourneySums)> =
            pairs.iter().zip(&pair_sums).filter(|(_, s)| s.is_met()).map(|(&p, s)| (p, *s)).collect();
        partial.shao_li.as_mut().expect("every replicate has the counts").add_exact_sums(&channels, &pair_list);
    }
}

/// The last element of a [`ReplicatePaths`] key: the path's journeys are held out (or not) by `markov_order: auto`.
const HELD_OUT: u32 = u32::MAX - 1;
const TRAINING: u32 = u32::MAX - 2;

/// The most replicate sums (distinct paths × replicates) a chunk's path table holds before
/// it is flushed into the replicates: 8 MiB.
const MAX_REPLICATE_PATH_CELLS: usize = if cfg!(test) { 64 } else { 1 << 18 };
/// The same for each period's table (a chunk has one per period it meets): 512 KiB.
const PERIOD_PATH_CELLS: usize = if cfg!(test) { 64 } else { 1 << 14 };

/// The distinct paths of a chunk (with their held-out flag) and each replicate's sums of
/// conversions, nulls and value on them (a row per path, the replicates side by side): the
/// counts, reached channels, chains and `shao_li` are sums by path, so each replicate adds a
/// distinct path once (per flush) rather than once per journey.
struct ReplicatePaths {
    /// Keyed by the path followed by its held-out flag (`HELD_OUT` or `TRAINING`, which no
    /// channel id reaches).
    index: rustc_hash::FxHashMap<Vec<u32>, usize>,
    paths: Vec<Vec<u32>>,
    key: Vec<u32>,
    /// `sums[path * replicates + replicate]`.
    sums: Vec<JourneySums>,
    replicates: usize,
    /// Sums held before a flush.
    capacity: usize,
}

impl ReplicatePaths {
    fn new(capacity: usize) -> ReplicatePaths {
        ReplicatePaths {
            index: rustc_hash::FxHashMap::default(),
            paths: Vec::new(),
            key: Vec::new(),
            sums: Vec::new(),
            replicates: 0,
            capacity,
        }
    }

    /// The slot of a path (added if new); `None` for a journey without touches.
    fn slot(&mut self, path: &[u32], held_out: bool, replicates: usize) -> Option<usize> {
        if path.is_empty() {
            return None;
        }
        self.replicates = replicates;
        self.key.clear();
        self.key.extend_from_slice(path);
        self.key.push(if held_out { HELD_OUT } else { TRAINING });
        // Looked up by a borrowed key: most journeys repeat a path already in the table.
        if let Some(&slot) = self.index.get(self.key.as_slice()) {
            return Some(slot);
        }
        let slot = self.paths.len();
        self.index.insert(self.key.clone(), slot);
        self.paths.push(self.key.clone());
        self.sums.resize(self.sums.len() + replicates, JourneySums::default());
        Some(slot)
    }

    fn add(&mut self, slot: usize, replicate: usize, figures: &JourneySums) {
        self.sums[slot * self.replicates + replicate].add(figures);
    }

    /// A path's sums, a replicate each.
    fn row(&self, slot: usize) -> &[JourneySums] {
        &self.sums[slot * self.replicates..][..self.replicates]
    }

    fn row_mut(&mut self, slot: usize) -> &mut [JourneySums] {
        &mut self.sums[slot * self.replicates..][..self.replicates]
    }

    fn is_full(&self) -> bool {
        self.sums.len() >= self.capacity
    }

    fn clear(&mut self) {
        self.index.clear();
        self.paths.clear();
        self.sums.clear();
    }
}

/// Adds journeys to a partial, reusing its scratch buffers.
pub(crate) struct JourneyAdder {
    is_direct: Vec<bool>,
    weights: Vec<f64>,
    /// Whether journeys' paths are counted in the partial they are added to.
    paths: bool,
    /// With `intervals`: the replicate sums of this chunk's paths (all but rule credit).
    replicate_paths: ReplicatePaths,
    /// Scratch of the bootstrap: each rule model's touch weights of the journey, one after
    /// another; and in a replicate, each rule model's credit of each distinct channel per
    /// unit of the replicate's draw (conversions, value), exact.
    rule_weights: Vec<f64>,
    rule_units: Vec<[Exact; 2]>,
    /// Scratch of the bootstrap: the journey's draw in each replicate; its distinct channels
    /// (`rule_units` has a pair per rule and distinct channel), and each channel's place
    /// among them (`u32::MAX` between journeys).
    draws: Vec<Draw>,
    credit_channels: Vec<u32>,
    credit_slot: Vec<u32>,
    /// Scratch of the bootstrap with a breakdown: the keys' credit per unit of a replicate's
    /// draw, as `rule_units`, and each touch's shares of `markov` (conversions, value, presence).
    key_units: Vec<[Exact; 2]>,
    share_units: Vec<[Exact; 3]>,
    /// With a breakdown: the partial's key and channel of each touch key of the chunk
    /// (journeys then carry the chunk's touch keys).
    key_map: Option<KeyMap>,
    /// Scratch of a breakdown: the journey's keys and channels, and per channel its touches
    /// in the journey and a sum of weights (zero between journeys).
    keys: Vec<u32>,
    channels: Vec<u32>,
    touches: Vec<u32>,
    channel_weight: Vec<f64>,
    /// Scratch of a breakdown: each touch's part of its channel's touches in the journey, and
    /// the weights of its keys (`JourneyAdder::key_weights`).
    touch_shares: Vec<f64>,
    key_weights: Vec<f64>,
    /// The replicate breakdown rows the parts of this chunk made (keys met × replicates); past
    /// `PART_ROW_CAP` the parts make no more (`Partial::bound_part_rows` drops them all).
    part_rows: usize,
    /// Scratch of a part's replicates: a journey's keys as the part numbers them.
    part_keys: Vec<u32>,
}

impl JourneyAdder {
    pub(crate) fn new(options: &Options, channels: &[String]) -> JourneyAdder {
        JourneyAdder {
            is_direct: channels.iter().map(|c| options.is_direct(c)).collect(),
            weights: Vec::new(),
            paths: true,
            replicate_paths: ReplicatePaths::new(MAX_REPLICATE_PATH_CELLS),
            rule_weights: Vec::new(),
            rule_units: Vec::new(),
            draws: Vec::new(),
            credit_channels: Vec::new(),
            credit_slot: vec![u32::MAX; channels.len()],
            key_units: Vec::new(),
            share_units: Vec::new(),

            key_map: None,
            keys: Vec::new(),
            channels: Vec::new(),
            touches: vec![0; channels.len()],
            channel_weight: vec![0.0; channels.len()],
            touch_shares: Vec::new(),
            key_weights: Vec::new(),
            part_rows: 0,
            part_keys: Vec::new(),
        }
    }

    /// Value belongs to conversions: a journey without any carries none (ingest refuses
    /// such path rows; this keeps the engine's totals consistent whatever it is given).
    fn valued<'a>(&self, journey: &Journey<'a>) -> Journey<'a> {
        Journey { value: if journey.is_converting() { journey.value } else { 0.0 }, ..*journey }
    }

    /// Calls `add` with the journey's touches as the partial's channels, and with a
    /// breakdown the touches' keys: with one, a journey comes with the chunk's touch keys,
    /// and everything but the breakdown sums (paths, reports, Markov and its `auto` order
    /// candidates, `shao_li`) counts channels.
    fn with_channels<R>(
        &mut self,
        journey: &Journey<'_>,
        add: impl FnOnce(&mut JourneyAdder, &Journey<'_>, Option<&[u32]>) -> R,
    ) -> R {
        let Some(map) = self.key_map.take() else { return add(self, journey, None) };
        let (mut keys, mut channels) = (std::mem::take(&mut self.keys), std::mem::take(&mut self.channels));
        keys.clear();
        keys.extend(journey.channels.iter().map(|&id| map.key_of[id as usize]));
        channels.clear();
        channels.extend(keys.iter().map(|&key| map.key_channel[key as usize]));
        let added = add(self, &Journey { channels: &channels, ..*journey }, Some(&keys));
        (self.keys, self.channels) = (keys, channels);
        self.key_map = Some(map);
        added
    }

    /// Adds a journey whose touches are channels, or touch keys with a breakdown;
    /// `held_out` puts it in the held-out part of `markov_order: auto`.
    pub(crate) fn add(&mut self, partial: &mut Partial, journey: &Journey<'_>, held_out: bool, options: &Options) {
        self.with_channels(journey, |adder, journey, keys| {
            adder.add_touches(partial, journey, keys, held_out, options)
        });
    }

    /// Adds a journey to each bootstrap replicate as often as `draw` weighs it there (its
    /// touches as in [`JourneyAdder::add`]); nothing without `intervals`. Rule models' credit
    /// goes straight to each replicate, from touch weights computed once; a journey with
    /// touches is otherwise only added to the chunk's path table ([`ReplicatePaths`]), whose
    /// flush gives each replicate its counts, reached channels, chains and `shao_li` sums by
    /// distinct path: most journeys convert nothing, and this keeps the loop over replicates
    /// to one row of the table.
    fn add_replicates(
        &mut self,
        replicates: &mut [Partial],
        journey: &Journey<'_>,
        draw: ReplicateDraw,
        held_out: bool,
        options: &Options,
    ) {
        if replicates.is_empty() {
            return;
        }
        self.with_channels(journey, |adder, journey, keys| {
            adder.add_replicate_touches(replicates, journey, keys, draw, held_out, options)
        });
    }

    /// [`JourneyAdder::add_replicates`] of a journey of channels; `keys` are its touches' keys
    /// with a breakdown (whose sums the whole's replicates keep).
    fn add_replicate_touches(
        &mut self,
        replicates: &mut [Partial],
        journey: &Journey<'_>,
        keys: Option<&[u32]>,
        draw: ReplicateDraw,
        held_out: bool,
        options: &Options,
    ) {
        let Some(intervals) = options.intervals else { return };
        let journey = &self.valued(journey);
        let rules = &replicates[0].rules;
        let draw = draw.prepared(intervals.seed);
        // Every fractional figure is made exact once here, then multiplied by each draw.
        let units = draw.units(journey);
        let exact = |x: f64| Exact::of(x);
        self.rule_weights.clear();
        self.rule_units.clear();
        if journey.is_converting() && !journey.channels.is_empty() {
            for rule in rules {
                touch_weights(rule.model, journey, options, &self.is_direct, &mut self.weights);
                self.rule_weights.extend_from_slice(&self.weights);
            }
            // Per rule, each distinct channel's credit (its touches' exact credits added: the
            // same sum, multiplied once per replicate instead of once per touch).
            let distinct = &mut self.credit_channels;
            distinct.clear();
            for &channel in journey.channels {
                let slot = &mut self.credit_slot[channel as usize];
                if *slot == u32::MAX {
                    *slot = distinct.len() as u32;
                    distinct.push(channel);
                }
            }
            self.rule_units.resize(rules.len() * distinct.len(), [Exact::ZERO; 2]);
            let weights = self.rule_weights.chunks_exact(journey.channels.len());
            for (units_of_rule, weights) in self.rule_units.chunks_exact_mut(distinct.len()).zip(weights) {
                for (&channel, w) in journey.channels.iter().zip(weights) {
                    let [conversions, value] = &mut units_of_rule[self.credit_slot[channel as usize] as usize];
                    conversions.add(exact(w * units.conversions));
                    value.add(exact(w * units.value));
                }
            }
            for &channel in distinct.iter() {
                self.credit_slot[channel as usize] = u32::MAX;
            }
        }
        let keys = keys.filter(|_| replicates[0].breakdown.is_some());
        if keys.is_some() {
            self.key_weights(journey, rules);
            self.key_units.clear();
            let per_unit = self.key_weights.iter().map(|w| [exact(w * units.conversions), exact(w * units.value)]);
            self.key_units.extend(per_unit);
            self.share_units.clear();
            self.share_units.extend(self.touch_shares.iter().map(|share| {
                [exact(share * units.conversions), exact(share * units.value), exact(share * units.presence)]
            }));
        }
        let slot = self.replicate_paths.slot(journey.channels, held_out, replicates.len());
        let value = exact(units.value);
        let mut draws = std::mem::take(&mut self.draws);
        draws.clear();
        draws.extend((0..replicates.len() as u32).map(|replicate| draw.draw(journey, replicate, intervals.seed)));
        // Most journeys have no value: their row of whole-number sums is added without a
        // branch (a draw of 0 adds 0, which leaves an `f64` sum as it is).
        let valueless = value == Exact::ZERO;
        if let (Some(slot), true) = (slot, valueless) {
            for (sums, drawn) in self.replicate_paths.row_mut(slot).iter_mut().zip(&draws) {
                sums.conversions += drawn.conversions;
                sums.nulls += drawn.nulls;
            }
            if !journey.truncated && keys.is_none() && !journey.is_converting() {
                self.draws = draws;
                self.flush_if_full(replicates);
                return;
            }
        }
        for ((replicate, partial), drawn) in replicates.iter_mut().enumerate().zip(&draws) {
            if drawn.conversions == 0.0 && drawn.nulls == 0.0 {
                continue;
            }
            let value = if valueless { value } else { value.times(drawn.times) };
            let Some(slot) = slot else {
                // Conversions and journeys are whole numbers: their `f64` sums are exact below 2^53.
                let counts = &mut partial.counts;
                counts.conversions += drawn.conversions;
                counts.exact_values[0].add(value);
                counts.unattributed_conversions += drawn.conversions;
                counts.exact_values[1].add(value);
                continue;
            };
            if !valueless {
                let sums = JourneySums { conversions: drawn.conversions, nulls: drawn.nulls, value };
                self.replicate_paths.add(slot, replicate, &sums);
            }
            if journey.truncated {
                partial.counts.truncated_journeys += 1;
            }
            if drawn.conversions > 0.0 {
                let distinct = &self.credit_channels;
                for (rule, credits) in partial.rules.iter_mut().zip(self.rule_units.chunks_exact(distinct.len())) {
                    for (&channel, [conversions, value]) in distinct.iter().zip(credits) {
                        let sums = &mut rule.exact[channel as usize];
                        sums[0].add(conversions.times(drawn.times));
                        sums[1].add(value.times(drawn.times));
                    }
                }
            }
            if let (Some(keys), Some(breakdown)) = (keys, &mut partial.breakdown) {
                add_exact_key_sums(breakdown, keys, &self.key_units, &self.share_units, drawn);
            }
        }
        self.draws = draws;
        self.flush_if_full(replicates);
    }

    fn flush_if_full(&mut self, replicates: &mut [Partial]) {
        if self.replicate_paths.is_full() {
            self.flush_replicates(replicates);
        }
    }

    /// [`JourneyAdder::add_replicates`] to a part's replicates (a period's, a segment's, a
    /// further window's), with the part's path table and its numbers of the keys it meets.
    fn add_replicates_with(
        &mut self,
        part: &mut PartScratch,
        replicates: &mut [Partial],
        journey: &Journey<'_>,
        draw: ReplicateDraw,
        held_out: bool,
        options: &Options,
    ) {
        if replicates.is_empty() {
            return;
        }
        std::mem::swap(&mut self.replicate_paths, &mut part.paths);
        self.with_channels(journey, |adder, journey, keys| {
            if keys.is_some() && replicates[0].breakdown.is_some() && adder.part_rows > PART_ROW_CAP {
                // Past the cap: this part's rows are dropped now, every part's at the end.
                replicates.iter_mut().for_each(|replicate| replicate.breakdown = None);
            }
            let Some(keys) = keys.filter(|_| replicates[0].breakdown.is_some()) else {
                return adder.add_replicate_touches(replicates, journey, None, draw, held_out, options);
            };
            let mut local = std::mem::take(&mut adder.part_keys);
            adder.part_rows += part.keys.number(keys, &mut local, replicates) * replicates.len();
            adder.add_replicate_touches(replicates, journey, Some(&local), draw, held_out, options);
            adder.part_keys = local;
        });
        std::mem::swap(&mut self.replicate_paths, &mut part.paths);
    }

    /// Ends a part's chunk: its path table flushed into its replicates, and their breakdown
    /// keys named (before the part's own keys are compacted: they share the chunk's numbers).
    fn finish_part(&mut self, scratch: &mut PartScratch, part: &mut Partial) {
        self.flush_with(&mut scratch.paths, &mut part.replicates);
        let Some(named) = &part.breakdown else { return };
        for sums in part.replicates.iter_mut().filter_map(|replicate| replicate.breakdown.as_mut()) {
            sums.name_keys(&scratch.keys.keys, named);
        }
    }

    /// [`JourneyAdder::flush_replicates`] of `table`.
    fn flush_with(&mut self, table: &mut ReplicatePaths, replicates: &mut [Partial]) {
        std::mem::swap(&mut self.replicate_paths, table);
        self.flush_replicates(replicates);
        std::mem::swap(&mut self.replicate_paths, table);
    }

    /// Adds the path table's sums to the replicates' counts, reached channels, chains and
    /// `shao_li` counts, and empties it. A fixed order's chain adds each replicate's weights per
    /// transition, numbered once for all replicates ([`EdgeTable`]); the `auto` candidates and
    /// `shao_li` add each path.
    fn flush_replicates(&mut self, replicates: &mut [Partial]) {
        let table = &mut self.replicate_paths;
        if table.paths.is_empty() {
            return;
        }
        flush_counts(table, replicates);
        let order = replicates.first().and_then(|p| p.markov.as_ref()).map(|m| m.order);
        if let Some(order) = order {
            flush_chains(table, order, replicates);
        }
        if replicates.first().is_some_and(|p| p.shao_li.is_some()) {
            flush_shao_li(table, replicates);
        }
        if replicates.first().is_some_and(|p| p.markov_auto.is_some()) {
            for (index, key) in table.paths.iter().enumerate() {
                let (path, flag) = key.split_at(key.len() - 1);
                for (partial, sums) in replicates.iter_mut().zip(table.row(index)) {
                    if sums.is_met() {
                        let candidates = partial.markov_auto.as_mut().expect("every replicate has the candidates");
                        candidates.add_exact_path(path, sums, flag[0] == HELD_OUT);
                    }
                }
            }
        }
        table.clear();
    }

    /// Counts a journey's path (and nothing else) in `partial`: touches as in [`JourneyAdder::add`].
    fn add_path(&mut self, partial: &mut Partial, journey: &Journey<'_>) {
        let keyed = partial.breakdown.as_mut().map(|breakdown| &mut breakdown.paths);
        self.add_path_to(&mut partial.reports.paths, keyed, journey);
    }

    /// Counts a journey's path in `paths`, and with a breakdown its path of touch keys in `keyed`.
    fn add_path_to(&mut self, paths: &mut PathCounts, keyed: Option<&mut PathCounts>, journey: &Journey<'_>) {
        self.with_channels(journey, |adder, journey, keys| {
            let journey = adder.valued(journey);
            paths.add(journey.channels, journey.conversions, journey.value, journey.nulls);
            if let (Some(keyed), Some(keys)) = (keyed, keys) {
                keyed.add(keys, journey.conversions, journey.value, journey.nulls);
            }
        });
    }

    /// Adds a journey of channels; `keys` are its touches' keys with a breakdown.
    fn add_touches(
        &mut self,
        partial: &mut Partial,
        journey: &Journey<'_>,
        keys: Option<&[u32]>,
        held_out: bool,
        options: &Options,
    ) {
        let journey = &self.valued(journey);
        let counts = &mut partial.counts;
        counts.conversions += journey.conversions;
        counts.conversion_value += journey.value;
        if journey.channels.is_empty() {
            counts.unattributed_conversions += journey.conversions;
            counts.unattributed_value += journey.value;
            return;
        }
        counts.converting_journeys += journey.conversions;
        counts.null_journeys += journey.nulls;
        counts.truncated_journeys += journey.truncated as u64;
        for &channel in journey.channels {
            partial.channel_seen[channel as usize] = true;
        }
        if let Some(markov) = &mut partial.markov {
            markov.add_path(journey.channels, journey.conversions, journey.nulls, journey.value);
        }
        if let Some(candidates) = &mut partial.markov_auto {
            candidates.add_path(journey.channels, journey.conversions, journey.nulls, journey.value, held_out);
        }
        if let Some(shao_li) = &mut partial.shao_li {
            shao_li.add_path(journey.channels, journey.conversions, journey.nulls, journey.value);
        }
        partial.reports.add(journey);
        if self.paths {
            partial.reports.add_path(journey);
            if let (Some(keys), Some(breakdown)) = (keys, &mut partial.breakdown) {
                breakdown.paths.add(keys, journey.conversions, journey.value, journey.nulls);
            }
        }
        let keys = keys.filter(|_| partial.breakdown.is_some());
        self.rule_weights.clear();
        if journey.is_converting() {
            for rule in partial.rules.iter_mut() {
                touch_weights(rule.model, journey, options, &self.is_direct, &mut self.weights);
                for (&channel, &weight) in journey.channels.iter().zip(&self.weights) {
                    rule.conversions[channel as usize] += weight * journey.conversions;
                    rule.value[channel as usize] += weight * journey.value;
                }
                if keys.is_some() {
                    self.rule_weights.extend_from_slice(&self.weights);
                }
            }
        }
        if let (Some(keys), Some(breakdown)) = (keys, &mut partial.breakdown) {
            self.key_weights(journey, &partial.rules);
            let figures = [journey.conversions, journey.nulls, journey.value];
            add_key_sums(breakdown, keys, &self.key_weights, &self.touch_shares, figures);
            // Positions are a report: the whole's and its parts', never a replicate's.
            if journey.conversions > 0.0 {
                for (i, &key) in keys.iter().enumerate() {
                    breakdown.positions[key as usize].add_touch(i, keys.len(), journey.conversions);
                }
            }
        }
    }

    /// With a breakdown, sets `key_weights` from `rule_weights` (each rule model's touch
    /// weights, one rule after another, of a converting journey; empty otherwise): the weights
    /// of the touches' keys (models that credit channels split a channel's weight evenly over
    /// its touches), and `touch_shares`: each touch's part of its channel's touches in the journey.
    fn key_weights(&mut self, journey: &Journey<'_>, rules: &[RuleCredits]) {
        for &channel in journey.channels {
            self.touches[channel as usize] += 1;
        }
        self.touch_shares.clear();
        self.touch_shares.extend(journey.channels.iter().map(|&c| 1.0 / self.touches[c as usize] as f64));
        self.key_weights.clone_from(&self.rule_weights);
        let touches = journey.channels.len();
        if touches > 0 {
            for (rule, weights) in rules.iter().zip(self.key_weights.chunks_exact_mut(touches)) {
                if !credits_channels(rule.model) {
                    continue;
                }
                for (&channel, &weight) in journey.channels.iter().zip(weights.iter()) {
                    self.channel_weight[channel as usize] += weight;
                }
                for (w, &channel) in weights.iter_mut().zip(journey.channels) {
                    *w = self.channel_weight[channel as usize] / self.touches[channel as usize] as f64;
                }
                for &channel in journey.channels {
                    self.channel_weight[channel as usize] = 0.0;
                }
            }
        }
        for &channel in journey.channels {
            self.touches[channel as usize] = 0;
        }
    }
}

/// Adds a journey's part of its touch keys' sums, at `[conversions, nulls, value]` (the
/// journey's, or a replicate's draw of them): which keys were touched, each rule model's
/// credit by `key_weights` (see [`JourneyAdder::key_weights`]; empty for a journey without
/// conversions), and the shares of `markov` and `shao_li` (see `breakdown::MarkovShares`) by
/// `touch_shares`.
fn add_key_sums(
    breakdown: &mut BreakdownSums,
    keys: &[u32],
    key_weights: &[f64],
    touch_shares: &[f64],
    [conversions, nulls, value]: [f64; 3],
) {
    for &key in keys {
        breakdown.seen[key as usize] = true;
    }
    if keys.is_empty() {
        return;
    }
    for (sums, weights) in breakdown.rules.iter_mut().zip(key_weights.chunks_exact(keys.len())) {
        for (&key, &weight) in keys.iter().zip(weights) {
            sums.conversions[key as usize] += weight * conversions;
            sums.value[key as usize] += weight * value;
        }
    }
    let Some(markov) = &mut breakdown.markov else { return };
    let presence = conversions + nulls;
    for (&key, &share) in keys.iter().zip(touch_shares) {
        let key = key as usize;
        markov.converting.conversions[key] += conversions * share;
        markov.converting.value[key] += value * share;
        markov.presence[key] += presence * share;
    }
}

/// [`add_key_sums`] in a replicate, exact: `key_units` the keys' credit and `share_units`
/// the touches' shares per unit of the replicate's draw (see [`JourneyAdder::add_replicate_touches`]).
fn add_exact_key_sums(
    breakdown: &mut BreakdownSums,
    keys: &[u32],
    key_units: &[[Exact; 2]],
    share_units: &[[Exact; 3]],
    drawn: &Draw,
) {
    for &key in keys {
        breakdown.seen[key as usize] = true;
    }
    if keys.is_empty() {
        return;
    }
    // A part's replicate names its keys at the end of the chunk (`JourneyAdder::finish_part`).
    let n = breakdown.seen.len();
    if drawn.conversions > 0.0 {
        for (sums, units) in breakdown.rules.iter_mut().zip(key_units.chunks_exact(keys.len())) {
            sums.exact.resize(n, [Exact::ZERO; 2]);
            for (&key, [conversions, value]) in keys.iter().zip(units) {
                let sums = &mut sums.exact[key as usize];
                sums[0].add(conversions.times(drawn.times));
                sums[1].add(value.times(drawn.times));
            }
        }
    }
    let Some(markov) = &mut breakdown.markov else { return };
    markov.exact.resize(n, [Exact::ZERO; 3]);
    for (&key, [conversions, value, presence]) in keys.iter().zip(share_units) {
        let sums = &mut markov.exact[key as usize];
        sums[0].add(conversions.times(drawn.times));
        sums[1].add(value.times(drawn.times));
        sums[2].add(presence.times(drawn.presence_times));
    }
}

/// The most replicate breakdown rows of the parts of one partial
/// (`intervals::MAX_PART_BREAKDOWN_REPLICATES`; a few hundred in unit tests, to pass it).
const PART_ROW_CAP: usize = if cfg!(test) { 400 } else { crate::intervals::MAX_PART_BREAKDOWN_REPLICATES };

/// The replicate partials a chunk may still make as it meets new parts (periods, segments,
/// segment periods): those the partial holds, and each new part's, counted as it is made and
/// refused as [`Partial::check_limits`] would refuse them, so a job past the bound is refused
/// before its parts take the memory the bound keeps them from.
struct ReplicateBudget {
    held: usize,
    shape: Option<crate::intervals::ReplicateShape>,
    refusal: Option<AttributionError>,
}

impl ReplicateBudget {
    fn new(partial: &Partial) -> ReplicateBudget {
        ReplicateBudget { held: partial.replicate_partials(), shape: partial.replicate_shape(), refusal: None }
    }

    /// Counts `replicates` more replicate partials; false once past the bound (and ever after).
    fn admit(&mut self, replicates: usize) -> bool {
        let Some(shape) = self.shape else { return true };
        if self.refusal.is_some() {
            return false;
        }
        self.held += replicates;
        if let Err(refusal) = crate::intervals::check_replicate_memory(self.held, shape) {
            self.refusal = Some(refusal);
        }
        self.refusal.is_none()
    }

    /// The refusal, once the parts passed the bound.
    fn refusal(self) -> Result<(), AttributionError> {
        self.refusal.map_or(Ok(()), Err)
    }
}

/// What a part's replicates use while a chunk is added: their path table, and their numbers
/// of the breakdown keys the part meets.
struct PartScratch {
    paths: ReplicatePaths,
    keys: PartKeys,
}

impl PartScratch {
    fn new() -> PartScratch {
        PartScratch { paths: ReplicatePaths::new(PERIOD_PATH_CELLS), keys: PartKeys::default() }
    }
}

/// A part's numbers of the partial's breakdown keys, in the order its journeys meet them: its
/// replicates keep sums of these keys only, however many the chunk has.
#[derive(Default)]
struct PartKeys {
    /// The part's number of each of the partial's keys (`NO_CHANNEL`: not met yet).
    number_of: Vec<u32>,
    /// The partial's key of each of the part's numbers.
    keys: Vec<u32>,
}

impl PartKeys {
    /// Sets `numbers` to the part's numbers of `keys` (the partial's), numbering the keys met
    /// for the first time (each replicate's breakdown `seen` grown by them); returns how many
    /// were new.
    fn number(&mut self, keys: &[u32], numbers: &mut Vec<u32>, replicates: &mut [Partial]) -> usize {
        let before = self.keys.len();
        numbers.clear();
        for &key in keys {
            let key = key as usize;
            if key >= self.number_of.len() {
                self.number_of.resize(key + 1, NO_CHANNEL);
            }
            if self.number_of[key] == NO_CHANNEL {
                self.number_of[key] = self.keys.len() as u32;
                self.keys.push(key as u32);
            }
            numbers.push(self.number_of[key]);
        }
        let new = self.keys.len() - before;
        if new > 0 {
            for sums in replicates.iter_mut().filter_map(|replicate| replicate.breakdown.as_mut()) {
                sums.seen.resize(self.keys.len(), false);
            }
        }
        new
    }
}

/// The partial's key of each touch key of a chunk (`NO_CHANNEL` for keys no row has), and
/// each key's channel.
struct KeyMap {
    key_of: Vec<u32>,
    key_channel: Vec<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::PathChunk;
    use crate::options::InputKind;

    #[test]
    fn a_full_replicate_path_table_flushes_to_the_same_replicates() {
        // 40 distinct paths × 12 replicates pass the test build's 64 cells: the table flushes
        // mid-chunk. Rows attributed one chunk each never fill it; both must agree.
        let mut chunk = PathChunk::default();
        let ids: Vec<u32> = ["a", "b", "c", "d"].iter().map(|c| chunk.channels.id(c)).collect();
        for row in 0..40u32 {
            let path = [ids[(row % 4) as usize], ids[(row / 4 % 4) as usize], ids[(row / 16) as usize]];
            chunk.push(&path, f64::from(row % 3), f64::from(row), f64::from(row % 2), u64::from(row) + 1);
        }
        let options = path_options_with_intervals(12);
        let whole = Partial::from_paths(&chunk, &options).unwrap();
        let mut apart: Option<Partial> = None;
        for row in 0..chunk.len() {
            let mut one = PathChunk::default();
            let path: Vec<u32> =
                chunk.path(row).iter().map(|&c| one.channels.id(&chunk.channels.names()[c as usize])).collect();
            one.push(&path, chunk.conversions[row], chunk.values[row], chunk.nulls[row], 1);
            Partial::merge_into(&mut apart, Partial::from_paths(&one, &options).unwrap());
        }
        let (a, b) = (whole.finish(&options).unwrap(), apart.unwrap().finish(&options).unwrap());
        for (ma, mb) in a.models.iter().zip(&b.models) {
            for ca in &ma.channels {
                let (ia, ib) =
                    (ca.interval.as_ref().unwrap(), mb.channel(&ca.channel).unwrap().interval.as_ref().unwrap());
                // The same to the last bit: replicate sums are exact.
                assert_eq!(ia, ib, "{} {}", ma.model, ca.channel);
            }
        }
    }

    #[test]
    fn the_replicate_path_table_stays_within_its_cells_whatever_journeys_come() {
        // Null journeys (no value) take the short way into the table: it must still flush.
        let options = path_options_with_intervals(12);
        let names: Vec<String> = (0..8).map(|c| format!("c{c}")).collect();
        let mut partial = Partial::new(&options, &names);
        let mut adder = JourneyAdder::new(&options, &names);
        for user in 0..200u32 {
            let channels = [user % 8, user / 8 % 8, user / 64];
            let journey = crate::journey::Journey {
                channels: &channels,
                touch_times: None,
                conversion_time: None,
                conversions: 0.0,
                value: 0.0,
                nulls: 1.0,
                truncated: false,
            };
            adder.add_replicates(&mut partial.replicates, &journey, ReplicateDraw::User(user.into()), false, &options);
            assert!(adder.replicate_paths.sums.len() <= MAX_REPLICATE_PATH_CELLS, "journey {user}");
        }
        adder.flush_replicates(&mut partial.replicates);
        let nulls: f64 = partial.replicates.iter().map(|r| r.counts.null_journeys).sum();
        let drawn: u32 =
            (0..200u32).flat_map(|u| (0..12).map(move |r| crate::intervals::user_weight(u.into(), r, 1))).sum();
        assert_eq!(nulls, f64::from(drawn));
    }

    #[test]
    fn every_models_intervals_are_those_of_the_replicates_attributed_as_weighted_rows() {
        // Each replicate rebuilt by hand: the rows with the counts the replicate draws,
        // attributed without intervals; their figures give the intervals the bootstrap reports.
        let mut chunk = PathChunk::default();
        let ids: Vec<u32> = ["a", "b", "c"].iter().map(|c| chunk.channels.id(c)).collect();
        let rows: [(&[usize], f64, f64, f64); 6] = [
            (&[0, 1], 3.0, 30.0, 2.0),
            (&[1, 2, 1], 1.0, 5.0, 4.0),
            (&[2], 2.0, 8.0, 1.0),
            (&[0, 2, 0, 1], 1.5, 12.0, 0.5),
            (&[1], 0.0, 0.0, 3.0),
            (&[2, 0], 4.0, 44.0, 0.0),
        ];
        for (i, (path, conversions, value, nulls)) in rows.iter().enumerate() {
            let path: Vec<u32> = path.iter().map(|&c| ids[c]).collect();
            chunk.push(&path, *conversions, *value, *nulls, i as u64 + 1);
        }
        let (replicates, seed) = (15, 3);
        let spec = crate::options::OptionsSpec {
            markov_order: Some(crate::options::MarkovOrder::Fixed(2)),
            intervals: Some(crate::intervals::IntervalsSpec { replicates, level: Some(0.8), seed: Some(seed) }),
            ..Default::default()
        };
        let options = spec.validate(InputKind::Paths).unwrap();
        let result = Partial::from_paths(&chunk, &options).unwrap().finish(&options).unwrap();
        let plain = Options { intervals: None, ..options.clone() };
        let names = chunk.channels.names();
        let by_hand: Vec<_> = (0..replicates)
            .map(|r| {
                let mut weighted = PathChunk::default();
                for row in 0..chunk.len() {
                    let path: Vec<u32> =
                        chunk.path(row).iter().map(|&c| weighted.channels.id(&names[c as usize])).collect();
                    let journey = crate::journey::Journey {
                        channels: chunk.path(row),
                        touch_times: None,
                        conversion_time: None,
                        conversions: chunk.conversions[row],
                        value: chunk.values[row],
                        nulls: chunk.nulls[row],
                        truncated: false,
                    };
                    let key = path_row_key(&journey, names);
                    let (c, n, v) = replicate_counts(&journey, ReplicateDraw::PathRow(key).prepared(seed), r, seed);
                    weighted.push(&path, c, v, n, row as u64 + 1);
                }
                Partial::from_paths(&weighted, &plain).unwrap().finish(&plain).unwrap()
            })
            .collect();
        for model in &result.models {
            let names: Vec<&str> = model.channels.iter().map(|c| c.channel.as_str()).collect();
            let figures: Vec<Vec<[f64; 4]>> = by_hand
                .iter()
                .map(|r| {
                    let theirs = r.model(model.model).unwrap();
                    names
                        .iter()
                        .map(|name| match theirs.channel(name) {
                            Some(c) => [c.conversions, c.value, c.share, c.removal_effect.unwrap_or(0.0)],
                            None => [0.0; 4],
                        })
                        .collect()
                })
                .collect();
            let removal = model.model == crate::options::ModelId::Markov;
            let want = crate::intervals::channel_intervals(&names, &figures, removal, 0.8);
            for (credit, want) in model.channels.iter().zip(want) {
                let got = credit.interval.as_ref().unwrap();
                for (what, a, b) in [
                    ("conversions_low", got.conversions_low, want.conversions_low),
                    ("conversions_high", got.conversions_high, want.conversions_high),
                    ("value_high", got.value_high, want.value_high),
                    ("share_low", got.share_low, want.share_low),
                    (
                        "removal_effect_high",
                        got.removal_effect_high.unwrap_or(0.0),
                        want.removal_effect_high.unwrap_or(0.0),
                    ),
                    ("rank_1_probability", got.rank_1_probability, want.rank_1_probability),
                    ("median_rank", got.median_rank, want.median_rank),
                ] {
                    assert!(
                        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                        "{} {} {what}: {a} vs {b}",
                        model.model,
                        credit.channel
                    );
                }
            }
        }
    }

    /// Options of path rows with every model and `replicates` bootstrap replicates (seed 1).
    fn path_options_with_intervals(replicates: u32) -> Options {
        let spec = crate::options::OptionsSpec {
            intervals: Some(crate::intervals::IntervalsSpec { replicates, level: None, seed: Some(1) }),
            ..Default::default()
        };
        spec.validate(InputKind::Paths).unwrap()
    }

    /// A path chunk of `rows` (path of channel names, conversions, value, nulls).
    fn paths_chunk(rows: &[(&[&str], f64, f64, f64)]) -> PathChunk {
        let mut chunk = PathChunk::default();
        for (i, (path, conversions, value, nulls)) in rows.iter().enumerate() {
            let path: Vec<u32> = path.iter().map(|c| chunk.channels.id(c)).collect();
            chunk.push(&path, *conversions, *value, *nulls, i as u64 + 1);
        }
        chunk
    }

    #[test]
    fn replicates_of_an_older_version_merge_and_are_refused_at_finish() {
        let options = path_options_with_intervals(10);
        let rows: [(&[&str], f64, f64, f64); 2] = [(&["a", "b"], 3.0, 19.99, 1.0), (&["b"], 2.0, 5.5, 2.0)];
        let new = Partial::from_paths(&paths_chunk(&rows), &options).unwrap();
        // An older version wrote its replicates without exact sums (nor the mark of them).
        let mut json = serde_json::to_value(&new).unwrap();
        for replicate in json["replicates"].as_array_mut().unwrap() {
            assert_eq!(replicate.as_object_mut().unwrap().remove("exact"), Some(serde_json::Value::Bool(true)));
        }
        let old: Partial = serde_json::from_value(json).unwrap();
        for (mut merged, other) in [(old.clone(), &new), (new.clone(), &old)] {
            merged.merge(other);
            let err = merged.finish(&options).unwrap_err();
            assert_eq!(err.code, ErrorCode::Internal);
            assert!(err.message.contains("older version"), "{err}");
        }
        new.finish(&options).expect("replicates with exact sums");
    }

    #[test]
    fn a_replicate_sum_past_the_exact_range_is_refused() {
        // 4e18 per conversion: a replicate drawing three conversions sums 1.2e19, past 2^63;
        // the whole's own sums (f64) hold it.
        let spec = crate::options::OptionsSpec {
            models: Some(vec!["last_touch".into()]),
            intervals: Some(crate::intervals::IntervalsSpec { replicates: 30, level: None, seed: Some(1) }),
            ..Default::default()
        };
        let options = spec.validate(InputKind::Paths).unwrap();
        let rows: [(&[&str], f64, f64, f64); 1] = [(&["a"], 2.0, 8e18, 0.0)];
        let partial = Partial::from_paths(&paths_chunk(&rows), &options).unwrap();
        let err = partial.finish(&options).unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded);
        assert!(err.message.contains("9.2e18"), "{err}");
        let plain = Options { intervals: None, ..options };
        Partial::from_paths(&paths_chunk(&rows), &plain).unwrap().finish(&plain).expect("no replicates");
    }

    /// One converting journey per user: a touch of `channel` in `campaign` an hour before a
    /// conversion of 10 at the start of day `day` (days since 1970-01-01).
    fn campaign_chunk(journeys: &[(String, i64, &str, String)]) -> EventChunk {
        const DAY: i64 = 86_400_000_000;
        let mut chunk = EventChunk::default();
        for (row, (user, day, channel, campaign)) in journeys.iter().enumerate() {
            let key = crate::chunk::touch_key(channel, &[Some(campaign)]);
            for (at, id, conversion, value) in
                [(day * DAY - DAY / 24, chunk.channels.id(&key), false, 0.0), (day * DAY, NO_CHANNEL, true, 10.0)]
            {
                chunk.user_keys.push(crate::chunk::user_key(user.as_bytes()));
                chunk.timestamps.push(at);
                chunk.channel_ids.push(id);
                chunk.is_conversion.push(conversion);
                chunk.values.push(value);
                chunk.row_numbers.push(2 * row as u64 + 1 + u64::from(conversion));
            }
        }
        chunk
    }

    /// Whether every breakdown row (`rows`: whether each has an interval) has an interval
    /// (`Some(true)`), none has (`Some(false)`), or some have (`None`).
    fn rows_ranged(rows: impl Iterator<Item = bool>) -> Option<bool> {
        let rows: Vec<bool> = rows.collect();
        assert!(!rows.is_empty());
        (rows.iter().all(|&r| r) || !rows.iter().any(|&r| r)).then_some(rows[0])
    }

    #[test]
    fn past_the_cap_every_parts_rows_lose_their_intervals_whatever_the_grouping_and_the_wholes_keep_theirs() {
        // 10 replicates, a campaign per user: 30 campaigns in one week, 15 in the next. Either
        // week's 300 or 150 replicate rows fit the unit tests' cap of 400; both weeks, 450, do
        // not, whether in one chunk or two merged in either order.
        let spec = crate::options::OptionsSpec {
            models: Some(vec!["linear".into(), "markov".into()]),
            breakdown: Some(vec!["campaign".into()]),
            period: Some(crate::period::Period::Week),
            intervals: Some(crate::intervals::IntervalsSpec { replicates: 10, level: None, seed: Some(1) }),
            ..Default::default()
        };
        let options = spec.validate(InputKind::Events).unwrap();
        let journeys: Vec<(String, i64, &str, String)> = (0..45)
            .map(|u| (format!("u{u}"), 20_000 + 7 * i64::from(u >= 30), ["email", "search"][u % 2], format!("c{u}")))
            .collect();
        let (first, second) = journeys.split_at(30);
        let attribute = |journeys: &[_]| Partial::from_events(&campaign_chunk(journeys), &options).unwrap();
        let (a, b) = (attribute(first), attribute(second));
        assert_eq!((a.part_row_replicates(), b.part_row_replicates()), (300, 150));
        for week in [&a, &b] {
            assert!(!week.part_rows_dropped);
            let result = week.finish(&options).unwrap();
            assert_eq!(
                rows_ranged(
                    result.periods[0]
                        .models
                        .iter()
                        .flat_map(|m| m.breakdown.iter().flatten())
                        .map(|r| r.interval.is_some())
                ),
                Some(true),
                "a week's rows have intervals"
            );
            assert!(result.periods[0].models.iter().all(|m| m.note.is_none()), "nothing to explain");
        }
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(&b);
        ba.merge(&a);
        let whole = |partial: &Partial| {
            assert!(partial.part_rows_dropped);
            assert_eq!(partial.part_row_replicates(), 450);
            let result = partial.finish(&options).unwrap();
            assert_eq!(result.periods.len(), 2);
            for period in &result.periods {
                assert_eq!(
                    rows_ranged(
                        period.models.iter().flat_map(|m| m.breakdown.iter().flatten()).map(|r| r.interval.is_some())
                    ),
                    Some(false),
                    "past the cap, no part's row has one"
                );
                assert!(period.models[0].channels.iter().all(|c| c.interval.is_some()), "its channels keep theirs");
                for model in &period.models {
                    let note = model.note.as_deref().unwrap_or_default();
                    assert!(note.contains("max_part_breakdown_replicates"), "{}: {note}", model.model);
                }
            }
            assert!(result.models.iter().all(|m| m.note.is_none()), "the whole's rows have theirs");
            assert_eq!(
                rows_ranged(
                    result.models.iter().flat_map(|m| m.breakdown.iter().flatten()).map(|r| r.interval.is_some())
                ),
                Some(true),
                "the whole's rows keep theirs"
            );
            let rows: Vec<_> = result.models.iter().map(|m| m.breakdown.clone()).collect();
            serde_json::to_string(&rows).unwrap()
        };
        let one = attribute(&journeys);
        assert_eq!(whole(&one), whole(&ab));
        assert_eq!(whole(&ab), whole(&ba));
        // A marked partial (as it travels between the stages) marks what it merges with, and
        // what merges it: a week alone, under the cap, then has no row intervals either.
        let marked: Partial = serde_json::from_str(&serde_json::to_string(&one).unwrap()).unwrap();
        for (mut merged, other) in [(a.clone(), &marked), (marked.clone(), &a)] {
            merged.merge(other);
            whole(&merged);
        }
        let mut small = a.clone();
        small.merge(&a);
        assert!(!small.part_rows_dropped, "a's keys twice are a's keys");
    }

    #[test]
    fn a_partial_survives_json_exactly() {
        let mut chunk = PathChunk::default();
        let (c1, c2, c3) = (chunk.channels.id("c1"), chunk.channels.id("c2"), chunk.channels.id("c3"));
        chunk.push(&[c1, c2], 1.0, 10.0, 0.0, 1);
        chunk.push(&[c1], 0.0, 0.0, 1.0, 2);
        chunk.push(&[c2, c3], 1.0, 5.0, 1.0, 3);
        chunk.push(&[c1, c1, c3], 2.0, 30.0, 1.0, 4);
        let options = Options::defaults(InputKind::Paths);
        let partial = Partial::from_paths(&chunk, &options).unwrap();
        let json = serde_json::to_string(&partial).unwrap();
        let back: Partial = serde_json::from_str(&json).unwrap();
        // Compared as JSON: the chain's scratch buffers are not part of its value.
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let (a, b) = (partial.finish(&options).unwrap(), back.finish(&options).unwrap());
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }
}
