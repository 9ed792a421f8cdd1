//! Partial aggregates: everything the models need, summed over the journeys of one chunk.
//! Partials merge by addition (associative and order-independent up to float rounding),
//! and [`Partial::finish`] (in `result.rs`, beside the result it builds) turns the merged
//! partial into the result. This is the seam between the attribute and reduce stages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::breakdown::{BreakdownSums, TouchKeys, credits_channels, splits_channel_credit};
use crate::chunk::{EventChunk, NO_CHANNEL, PathChunk};
use crate::error::{AttributionError, ErrorCode, Problem};
use crate::journey::{
    Journey, JourneyOrigin, for_each_event_journey, for_each_path_journey, for_each_windowed_journey,
};
use crate::markov::MarkovCounts;
use crate::markov_order::OrderCandidates;
use crate::options::{MarkovOrder, ModelId, Options};
use crate::reports::ReportCounts;
use crate::rules::touch_weights;
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
    }
}

/// Per-channel credit of one rule-based model, indexed by channel id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleCredits {
    pub model: ModelId,
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
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
    /// (the first window's journeys) with each journey counted as often as its replicate's
    /// weight draws; channel sums, chains and `shao_li` counts only (no reports, breakdown,
    /// periods or windows). Each merges with its counterpart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicates: Vec<Partial>,
}

impl Partial {
    /// An empty partial for these options and channel names (with an empty partial for each
    /// further lookback window).
    pub fn new(options: &Options, channels: &[String]) -> Partial {
        let mut partial = Partial::one_window(options, channels);
        let further = options.lookback_windows.len().saturating_sub(1);
        partial.windows = vec![partial.clone(); further];
        if let Some(intervals) = options.intervals {
            let bare = Options { breakdown: Vec::new(), ..options.clone() };
            partial.replicates = vec![Partial::one_window(&bare, channels); intervals.replicates as usize];
        }
        partial
    }

    /// An empty partial without further windows.
    fn one_window(options: &Options, channels: &[String]) -> Partial {
        let n = channels.len();
        let rules: Vec<RuleCredits> = options
            .models
            .iter()
            .filter(|m| m.is_rule_based())
            .map(|&model| RuleCredits { model, conversions: vec![0.0; n], value: vec![0.0; n] })
            .collect();
        let shares = options.models.iter().any(|&m| splits_channel_credit(m));
        let breakdown = (!options.breakdown.is_empty()).then(|| BreakdownSums::new(rules.len(), shares));
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
            let sums = BreakdownSums::with_keys(partial.rules.len(), shares, keys.key_channel.clone(), keys.key_values);
            // Every lookback window has the same keys: each credits the touches it reaches.
            for window in &mut partial.windows {
                window.breakdown = Some(sums.clone());
            }
            partial.breakdown = Some(sums);
            (partial, Some(KeyMap { key_of, key_channel: keys.key_channel }))
        };
        let mut adder = JourneyAdder::new(options, &partial.channels);
        adder.key_map = key_map;
        // The training / held-out split of `markov_order: auto`, by user.
        let held_out = |origin: JourneyOrigin| match origin {
            JourneyOrigin::EventRow(row) => crate::markov_order::is_held_out(chunk.user_keys[row]),
            JourneyOrigin::PathRow(_) => false,
        };
        // Whose weights a journey's replicates draw: its user's.
        let user = |origin: JourneyOrigin| match origin {
            JourneyOrigin::EventRow(row) => ReplicateDraw::User(chunk.user_keys[row]),
            JourneyOrigin::PathRow(_) => unreachable!("an event chunk's journeys come from event rows"),
        };
        match options.period {
            None if !partial.windows.is_empty() => {
                // One grouping of the rows; each journey is added under every window.
                let mut further = std::mem::take(&mut partial.windows);
                for_each_windowed_journey(chunk, options, &options.window_lookbacks(), |window, journey, origin| {
                    let target = if window == 0 { &mut partial } else { &mut further[window - 1] };
                    // Paths are reported for the first window only (like the other reports).
                    adder.paths = window == 0;
                    adder.add(target, journey, held_out(origin), options);
                    if window == 0 {
                        adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
                    }
                });
                for window in &mut further {
                    window.counts.rows = chunk.len() as u64;
                    if let Some(breakdown) = &mut window.breakdown {
                        breakdown.compact();
                    }
                }
                partial.windows = further;
            }
            None => for_each_event_journey(chunk, options, |journey, origin| {
                adder.add(&mut partial, journey, held_out(origin), options);
                adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
            }),
            Some(period) => {
                // Each journey is added once, to its period; the whole is their sum. Paths
                // are reported for the whole only: they go straight to it.
                let mut empty = partial.clone();
                empty.replicates.clear();
                let mut periods = BTreeMap::new();
                adder.paths = false;
                for_each_event_journey(chunk, options, |journey, origin| {
                    adder.add_path(&mut partial, journey);
                    // The replicates are the whole's: each journey goes straight to them.
                    adder.add_replicates(&mut partial.replicates, journey, user(origin), held_out(origin), options);
                    let at = journey.conversion_time.or_else(|| journey.touch_times.and_then(|t| t.last().copied()));
                    match at {
                        Some(at) => {
                            let sub =
                                periods.entry(period.start(at, options.timezone)).or_insert_with(|| empty.clone());
                            adder.add(sub, journey, held_out(origin), options);
                        }
                        None => adder.add(&mut partial, journey, held_out(origin), options),
                    }
                });
                // The periods share this chunk's channel numbering: no names to match.
                let identity: Vec<u32> = (0..partial.channels.len() as u32).collect();
                for sub in periods.values_mut() {
                    partial.add_mapped(sub, &identity, true);
                    if let Some(breakdown) = &mut sub.breakdown {
                        breakdown.compact();
                    }
                }
                partial.periods = periods;
            }
        }
        if let Some(breakdown) = &mut partial.breakdown {
            breakdown.compact();
        }
        partial.counts.rows = chunk.len() as u64;
        partial.check_finite(options)?;
        partial.check_limits()?;
        Ok(partial)
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
        partial.counts.rows = chunk.len() as u64;
        partial.check_finite(options)?;
        partial.check_limits()?;
        Ok(partial)
    }

    /// Refuses counts that grew past a model's bound (the `shao_li` pairs, under each lookback
    /// window); [`Partial::finish`] asks again after merging.
    pub fn check_limits(&self) -> Result<(), AttributionError> {
        if let Some(shao_li) = &self.shao_li {
            shao_li.check_limit()?;
        }
        self.windows.iter().try_for_each(Partial::check_limits)
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
            None => self.windows.iter().try_for_each(|window| window.check_finite(options)),
        }
    }

    /// Adds `other` into `self`, matching channels by name.
    pub fn merge(&mut self, other: &Partial) {
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
        self.add_mapped(other, &channel_map, false);
        for (&period, theirs) in &other.periods {
            match self.periods.get_mut(&period) {
                Some(mine) => mine.merge(theirs),
                None => {
                    self.periods.insert(period, theirs.clone());
                }
            }
        }
        for (i, theirs) in other.windows.iter().enumerate() {
            match self.windows.get_mut(i) {
                Some(mine) => mine.merge(theirs),
                None => self.windows.push(theirs.clone()),
            }
        }
        for (i, theirs) in other.replicates.iter().enumerate() {
            match self.replicates.get_mut(i) {
                Some(mine) => mine.merge(theirs),
                None => self.replicates.push(theirs.clone()),
            }
        }
    }

    /// Adds `other`'s sums (not its periods or windows), whose channel `c` is our
    /// `channel_map[c]`; `same_keys` when both have the same breakdown keys in the same order.
    fn add_mapped(&mut self, other: &Partial, channel_map: &[u32], same_keys: bool) {
        self.counts.add(&other.counts);
        for (old, &new) in channel_map.iter().enumerate() {
            self.channel_seen[new as usize] |= other.channel_seen[old];
        }
        for (mine, theirs) in self.rules.iter_mut().zip(&other.rules) {
            assert_eq!(mine.model, theirs.model, "partials of one job share their models");
            for (old, &new) in channel_map.iter().enumerate() {
                mine.conversions[new as usize] += theirs.conversions[old];
                mine.value[new as usize] += theirs.value[old];
            }
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
        self.reports.merge(&other.reports, channel_map);
        if let (Some(mine), Some(theirs)) = (&mut self.breakdown, &other.breakdown) {
            mine.add_mapped(theirs, channel_map, same_keys);
        }
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
            rule.conversions.push(0.0);
            rule.value.push(0.0);
        }
        (self.channels.len() - 1) as u32
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

/// Adds journeys to a partial, reusing its scratch buffers.
pub(crate) struct JourneyAdder {
    is_direct: Vec<bool>,
    weights: Vec<f64>,
    /// Whether journeys' paths are counted in the partial they are added to.
    paths: bool,
    /// Whether journeys count in the reports (not in bootstrap replicates).
    reports: bool,
    /// With a breakdown: the partial's key and channel of each touch key of the chunk
    /// (journeys then carry the chunk's touch keys).
    key_map: Option<KeyMap>,
    /// Scratch of a breakdown: the journey's keys and channels, and per channel its touches
    /// in the journey and a sum of weights (zero between journeys).
    keys: Vec<u32>,
    channels: Vec<u32>,
    touches: Vec<u32>,
    channel_weight: Vec<f64>,
}

impl JourneyAdder {
    pub(crate) fn new(options: &Options, channels: &[String]) -> JourneyAdder {
        JourneyAdder {
            is_direct: channels.iter().map(|c| options.is_direct(c)).collect(),
            weights: Vec::new(),
            paths: true,
            reports: true,
            key_map: None,
            keys: Vec::new(),
            channels: Vec::new(),
            touches: vec![0; channels.len()],
            channel_weight: vec![0.0; channels.len()],
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

    /// Adds a journey to each bootstrap replicate as often as `draw` weighs it there (as
    /// [`JourneyAdder::add`] does, without the reports); nothing without `intervals`.
    fn add_replicates(
        &mut self,
        replicates: &mut [Partial],
        journey: &Journey<'_>,
        draw: ReplicateDraw,
        held_out: bool,
        options: &Options,
    ) {
        let Some(intervals) = options.intervals else { return };
        let (reports, paths) = (self.reports, self.paths);
        (self.reports, self.paths) = (false, false);
        for (replicate, partial) in replicates.iter_mut().enumerate() {
            let replicate = replicate as u32;
            let (conversions, nulls, value) = match draw {
                ReplicateDraw::User(key) => {
                    let weight = crate::intervals::user_weight(key, replicate, intervals.seed) as f64;
                    (journey.conversions * weight, journey.nulls * weight, journey.value * weight)
                }
                ReplicateDraw::PathRow(key) => {
                    let (conversions, nulls) = crate::intervals::path_draws(
                        key,
                        replicate,
                        intervals.seed,
                        journey.conversions,
                        journey.nulls,
                    );
                    let value =
                        if journey.conversions > 0.0 { journey.value / journey.conversions * conversions } else { 0.0 };
                    (conversions, nulls, value)
                }
            };
            if conversions == 0.0 && nulls == 0.0 {
                continue;
            }
            self.add(partial, &Journey { conversions, nulls, value, ..*journey }, held_out, options);
        }
        (self.reports, self.paths) = (reports, paths);
    }

    /// Counts a journey's path (and nothing else) in `partial`: touches as in [`JourneyAdder::add`].
    fn add_path(&mut self, partial: &mut Partial, journey: &Journey<'_>) {
        self.with_channels(journey, |adder, journey, _| partial.reports.add_path(&adder.valued(journey)));
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
        if self.reports {
            partial.reports.add(journey);
        }
        if self.paths {
            partial.reports.add_path(journey);
        }
        let mut keyed = match (keys, &mut partial.breakdown) {
            (Some(keys), Some(breakdown)) => {
                let keys: &[u32] = keys;
                for &channel in journey.channels {
                    self.touches[channel as usize] += 1;
                }
                add_key_shares(breakdown, journey, keys, &self.touches);
                Some((keys, breakdown))
            }
            _ => None,
        };
        if journey.is_converting() {
            for (index, rule) in partial.rules.iter_mut().enumerate() {
                touch_weights(rule.model, journey, options, &self.is_direct, &mut self.weights);
                for (&channel, &weight) in journey.channels.iter().zip(&self.weights) {
                    rule.conversions[channel as usize] += weight * journey.conversions;
                    rule.value[channel as usize] += weight * journey.value;
                }
                if let Some((keys, breakdown)) = keyed.as_mut() {
                    let sums = &mut breakdown.rules[index];
                    if credits_channels(rule.model) {
                        // The channel's weight in the journey, evenly over its touches.
                        for (&channel, &weight) in journey.channels.iter().zip(&self.weights) {
                            self.channel_weight[channel as usize] += weight;
                        }
                        for (w, &channel) in self.weights.iter_mut().zip(journey.channels) {
                            *w = self.channel_weight[channel as usize] / self.touches[channel as usize] as f64;
                        }
                        for &channel in journey.channels {
                            self.channel_weight[channel as usize] = 0.0;
                        }
                    }
                    for (&key, &weight) in keys.iter().zip(&self.weights) {
                        sums.conversions[key as usize] += weight * journey.conversions;
                        sums.value[key as usize] += weight * journey.value;
                    }
                }
            }
        }
        if keyed.is_some() {
            for &channel in journey.channels {
                self.touches[channel as usize] = 0;
            }
        }
    }
}

/// The partial's key of each touch key of a chunk (`NO_CHANNEL` for keys no row has), and
/// each key's channel.
struct KeyMap {
    key_of: Vec<u32>,
    key_channel: Vec<u32>,
}

/// A journey's part of its touch keys' sums that do not depend on a rule: which keys were
/// touched, and the shares of `markov` and `shao_li` (see `breakdown::MarkovShares`); `touches[c]` counts the
/// journey's touches of channel `c`.
fn add_key_shares(breakdown: &mut BreakdownSums, journey: &Journey<'_>, keys: &[u32], touches: &[u32]) {
    for &key in keys {
        breakdown.seen[key as usize] = true;
    }
    let Some(markov) = &mut breakdown.markov else { return };
    let presence = journey.conversions + journey.nulls;
    for (&key, &channel) in keys.iter().zip(journey.channels) {
        let share = 1.0 / touches[channel as usize] as f64;
        let key = key as usize;
        markov.converting.conversions[key] += journey.conversions * share;
        markov.converting.value[key] += journey.value * share;
        markov.presence[key] += presence * share;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::PathChunk;
    use crate::options::InputKind;

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
