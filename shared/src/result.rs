//! The result schema (docs/user-guide.md, "Results"), its construction from a merged
//! [`Partial`], and its tidy CSV table. The same type is written by the reducer and read back
//! by every reader (the API's JSON and CSV, webhooks, the command line's tables).

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::breakdown::{BreakdownRow, splits_channel_credit};
use crate::error::{AttributionError, ErrorCode};
use crate::intervals::ChannelInterval;
use crate::markov::SolveBudget;
use crate::markov_order::OrderSelection;
use crate::options::{MarkovOrder, ModelId, Options};
use crate::partial::Partial;
use crate::period::Period;
use crate::reports::Reports;
use crate::spend::{CostTable, PeriodCost, SpendSummary, UnmatchedCost};

/// Relative tolerance of the conservation check reported with every model.
pub const CONSERVATION_TOLERANCE: f64 = 1e-9;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionResult {
    pub summary: Summary,
    pub options: Options,
    /// Keyed by model id, in the order of the models list.
    #[serde(serialize_with = "models_as_map", deserialize_with = "models_from_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, ModelResult>))]
    pub models: Vec<ModelResult>,
    /// With `options.period`: the same figures per period, oldest first; they add up to
    /// the whole (`summary.rows` is not split by period and is 0 here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<PeriodResult>,
    /// Journey reports over the whole file (absent from results of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<Reports>,
    /// With a cost table (`--spend` / `spend_upload_id`): what was joined to the credits,
    /// and the cost of channels the events never mention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<SpendSummary>,
    /// With `lookback_days` given as a list: the figures under each window, in the order
    /// listed (the first is the top level's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowResult>,
    /// With `windows`: per model, each channel's share and rank under every window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub window_ranks: Vec<WindowRanks>,
    /// With `options.segment_by`: the same figures per value of its column (`segment.rs`), by
    /// value, the rows without one last; they add up to the whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentResult>,
}

/// The result of one lookback window.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    /// 0 = unlimited.
    pub lookback_days: f64,
    pub summary: Summary,
    #[serde(serialize_with = "models_as_map", deserialize_with = "models_from_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, ModelResult>))]
    pub models: Vec<ModelResult>,
    /// The journey reports of the journeys under this window (the first window's are the
    /// top level's; absent from results of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<Reports>,
}

/// One model's channels compared across the lookback windows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRanks {
    pub model: ModelId,
    /// Every channel credited under some window: by rank under the first window, then by name.
    pub channels: Vec<ChannelWindowRanks>,
}

/// One channel under each window, in the order of the result's `windows`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelWindowRanks {
    pub channel: String,
    /// Its share of the model's credited conversions (0 where the window has no touch of it).
    pub share: Vec<f64>,
    /// Its place in the model's channel list (1 = most conversions; ties by name); `null`
    /// where the window has no touch of it.
    pub rank: Vec<Option<u32>>,
    /// Worst minus best rank over the windows that rank it: 0 = the same place in every one.
    pub rank_spread: u32,
}

/// The result of the journeys that count in one period.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodResult {
    /// The period's first day (`2026-01-05`; a week is named by its Monday).
    pub period: String,
    pub summary: Summary,
    #[serde(serialize_with = "models_as_map", deserialize_with = "models_from_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, ModelResult>))]
    pub models: Vec<ModelResult>,
    /// The journey reports of the period's journeys (its top paths from a smaller table than
    /// the whole's: `paths.exact` says whether they are exact; absent from older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<Reports>,
}

/// The result of the journeys of one segment (`options.segment_by`, `segment.rs`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    /// The segment's column and value, `{"country": "DE"}` (`null`: the rows without a value).
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, Option<String>>, example = json!({"country": "DE"})))]
    pub segment: std::collections::BTreeMap<String, Option<String>>,
    /// `rows` is 0: rows are not split by segment, journeys are.
    pub summary: Summary,
    #[serde(serialize_with = "models_as_map", deserialize_with = "models_from_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, ModelResult>))]
    pub models: Vec<ModelResult>,
    /// With `options.period`: the segment's figures per period, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub periods: Vec<PeriodResult>,
    /// The journey reports of the segment's journeys (as a period's; absent from older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<Reports>,
    /// With a cost table that has the segment column (`spend.segment_column`): the spend of
    /// the segment's cost rows, joined to its channels (and periods) as the whole's is to
    /// the whole's; `unmatched_cost` lists the channels of its rows its journeys never mention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<SpendSummary>,
}

impl SegmentResult {
    /// The segment's value (`None`: rows without one).
    pub fn value(&self) -> Option<&str> {
        self.segment.values().next().and_then(|v| v.as_deref())
    }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub rows: u64,
    pub journeys: f64,
    pub converting_journeys: f64,
    pub null_journeys: f64,
    pub conversions: f64,
    pub conversion_value: f64,
    pub unattributed_conversions: f64,
    pub unattributed_value: f64,
    /// Distinct channels among the journeys' touches.
    pub channels: usize,
    pub truncated_journeys: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// The key of this model in the result's `models` map.
    #[serde(skip, default = "placeholder_model")]
    pub model: ModelId,
    /// Sorted by conversions, descending (then by name).
    pub channels: Vec<ChannelCredit>,
    pub total_conversions: f64,
    pub total_value: f64,
    /// True when the credits sum to the attributed conversions and value within
    /// [`CONSERVATION_TOLERANCE`] (relative); `participation` exceeds them by design.
    pub conserves_totals: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion_probability: Option<f64>,
    /// With `options.breakdown`: the credit per channel × breakdown values, in the order of
    /// `channels`, then by conversions (descending); a channel's rows add up to its credit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::breakdown::BreakdownRowSchema>>))]
    pub breakdown: Option<Vec<BreakdownRow>>,
    /// `markov` with `markov_order: auto`: every candidate order's score and the one chosen
    /// (which is `order`); whole-file results only (and the first window's), periods and
    /// further lookback windows use the same order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_selection: Option<OrderSelection>,
    /// `markov` with `markov_pair_effects`: the pairs of its top channels by removal effect
    /// (see [`TOP_PAIR_CHANNELS`]), by pair removal effect, descending; whole-file results only
    /// (and the first window's, which is the whole file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairs: Option<Vec<PairEffect>>,
}

/// Pair removal effects are reported for the pairs among this many channels with the
/// highest removal effects (ties by name): at most 45 pairs, one solve each.
pub const TOP_PAIR_CHANNELS: usize = 10;

/// What the conversion probability loses when both channels are removed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairEffect {
    /// The pair, in name order.
    pub channel_a: String,
    pub channel_b: String,
    /// 1 − P(conversion without either) / P(conversion), 0..1.
    pub removal_effect: f64,
    /// The same for the expected conversion value.
    pub removal_effect_value: f64,
    /// The two channels' own removal effects minus the pair's: the share of the conversion
    /// probability that needs both (journeys through a and b, counted in each one's effect).
    pub overlap: f64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelCredit {
    pub channel: String,
    pub conversions: f64,
    pub value: f64,
    /// This channel's part of the model's credited conversions (0..1).
    pub share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_effect: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_effect_value: Option<f64>,
    /// With a cost table: the channel's cost (`null`: no cost row names it), its cost per
    /// credited conversion (`null` without cost or conversions) and its credited value per
    /// unit of cost (`null` without cost or at cost 0). Absent without a cost table.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, nullable))]
    pub cost: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, nullable))]
    pub cpa: Option<Option<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, nullable))]
    pub roas: Option<Option<f64>>,
    /// With `intervals`: the bootstrap intervals of its figures and how it ranks over the replicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<ChannelInterval>,
}

/// A field that is present (as a number or `null`): `Some`, so `null` survives a round trip.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(deserializer).map(Some)
}

impl ChannelCredit {
    /// Joins `cost` (`None`: no cost row names the channel) to the credit: cost, CPA, ROAS.
    /// A ratio beyond the range of `f64` is `null`, as an undefined one.
    pub fn set_cost(&mut self, cost: Option<f64>) {
        let (cpa, roas) = cost_ratios(cost, self.conversions, self.value);
        (self.cost, self.cpa, self.roas) = (Some(cost), Some(cpa), Some(roas));
    }
}

/// CPA (cost / conversions, `None` without cost or conversions) and ROAS (value / cost,
/// `None` without cost or at cost 0); a ratio beyond the range of `f64` is `None` too.
fn cost_ratios(cost: Option<f64>, conversions: f64, value: f64) -> (Option<f64>, Option<f64>) {
    let finite = |x: f64| x.is_finite().then_some(x);
    let cpa = cost.filter(|_| conversions > 0.0).and_then(|c| finite(c / conversions));
    let roas = cost.filter(|&c| c > 0.0).and_then(|c| finite(value / c));
    (cpa, roas)
}

/// Joins `cost` to a breakdown row as [`ChannelCredit::set_cost`] does to a channel.
fn set_row_cost(row: &mut BreakdownRow, cost: Option<f64>) {
    let (cpa, roas) = cost_ratios(cost, row.conversions, row.value);
    (row.cost, row.cpa, row.roas) = (Some(cost), Some(cpa), Some(roas));
}

/// Whether a breakdown is by the campaign alone: one column, `campaign` or one of the names
/// a campaign column is found by (`utm_campaign`, `campaign_name`, ...; any case), the
/// column a cost table's campaigns are found by too.
pub fn breaks_down_by_campaign(breakdown: &[String]) -> bool {
    match breakdown {
        [name] => crate::ingest::Canonical::Campaign.aliases().iter().any(|a| a.eq_ignore_ascii_case(name.trim())),
        _ => false,
    }
}

impl AttributionResult {
    /// Whether cost is joined per campaign: a cost table that names campaigns and a
    /// breakdown by the campaign alone ([`breaks_down_by_campaign`]); the breakdown rows
    /// then carry cost, CPA and ROAS.
    pub fn has_campaign_cost(&self) -> bool {
        self.spend.as_ref().is_some_and(|s| s.campaigns > 0) && breaks_down_by_campaign(&self.options.breakdown)
    }
}

impl AttributionResult {
    pub fn model(&self, model: ModelId) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.model == model)
    }
}

impl ModelResult {
    pub fn channel(&self, name: &str) -> Option<&ChannelCredit> {
        self.channels.iter().find(|c| c.channel == name)
    }
}

/// The `model` field of a [`ModelResult`] before its map key is known.
fn placeholder_model() -> ModelId {
    ModelId::Linear
}

fn models_from_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ModelResult>, D::Error> {
    struct ModelsVisitor;
    impl<'de> Visitor<'de> for ModelsVisitor {
        type Value = Vec<ModelResult>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of model id to model result")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut models = Vec::with_capacity(map.size_hint().unwrap_or(0));
            while let Some((model, mut result)) = map.next_entry::<ModelId, ModelResult>()? {
                result.model = model;
                models.push(result);
            }
            Ok(models)
        }
    }
    deserializer.deserialize_map(ModelsVisitor)
}

fn models_as_map<S: Serializer>(models: &[ModelResult], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(models.len()))?;
    for model in models {
        map.serialize_entry(model.model.as_str(), model)?;
    }
    map.end()
}

impl Partial {
    /// Computes the final result (solving the Markov chain if asked). It lives here, with
    /// the result's construction, so that `partial.rs` does not depend on the result.
    /// Fails rather than give a result with a number that is not finite.
    pub fn finish(&self, options: &Options) -> Result<AttributionResult, AttributionError> {
        self.finish_within(options, &SolveBudget::default())
    }

    /// [`Partial::finish`] with the Markov solve bounded by `budget`.
    pub fn finish_within(
        &self,
        options: &Options,
        budget: &SolveBudget,
    ) -> Result<AttributionResult, AttributionError> {
        self.check_finite(options)?;
        self.check_limits()?;
        let mut result = build_result(self, options, budget, None, Some(crate::reports::MAX_TRANSITION_ROWS))?;
        // Parts' reports: a smaller transition table each (they may be many).
        let part_reports = Some(crate::reports::MAX_PART_TRANSITION_ROWS);
        // With `markov_order: auto` the periods' and further windows' chains use the order
        // chosen for the whole (so windows differ by their window alone); pair effects (45
        // solves) are the whole file's only, which is the first window's.
        let order = result.model(ModelId::Markov).and_then(|m| m.order);
        let part_options = Options { markov_pair_effects: false, ..options.clone() };
        if let Some(intervals) = options.intervals {
            self.set_intervals(&mut result, &part_options, budget, order, intervals.level)?;
        }
        for (&day, period) in &self.periods {
            let mut built = build_result(period, &part_options, budget, order, part_reports)?;
            if let Some(intervals) = options.intervals {
                period.set_intervals(&mut built, &part_options, budget, order, intervals.level)?;
            }
            let AttributionResult { summary, models, reports, .. } = built;
            result.periods.push(PeriodResult { period: Period::label(day), summary, models, reports });
        }
        let mut segments: Vec<_> = self.segments.iter().collect();
        segments.sort_by(|a, b| crate::segment::listing_order(a.0, b.0));
        for (value, segment) in segments {
            let mut built = build_result(segment, &part_options, budget, order, part_reports)?;
            if let Some(intervals) = options.intervals {
                segment.set_intervals(&mut built, &part_options, budget, order, intervals.level)?;
            }
            let AttributionResult { summary, models, reports, .. } = built;
            let mut periods = Vec::with_capacity(segment.periods.len());
            for (&day, period) in &segment.periods {
                let mut built = build_result(period, &part_options, budget, order, part_reports)?;
                if let Some(intervals) = options.intervals {
                    period.set_intervals(&mut built, &part_options, budget, order, intervals.level)?;
                }
                let AttributionResult { summary, models, reports, .. } = built;
                periods.push(PeriodResult { period: Period::label(day), summary, models, reports });
            }
            let segment = crate::segment::label(options, value);
            result.segments.push(SegmentResult { segment, summary, models, periods, reports, spend: None });
        }
        if let Some((&first, further)) = options.lookback_windows.split_first() {
            let (summary, models, reports) = (result.summary.clone(), result.models.clone(), result.reports.clone());
            result.windows.push(WindowResult { lookback_days: first, summary, models, reports });
            for (&lookback_days, window) in further.iter().zip(&self.windows) {
                // A window's transitions are as many as the whole's (at most 8 windows).
                let reports = Some(crate::reports::MAX_TRANSITION_ROWS);
                let mut built = build_result(window, &part_options, budget, order, reports)?;
                if let Some(intervals) = options.intervals {
                    window.set_intervals(&mut built, &part_options, budget, order, intervals.level)?;
                }
                let AttributionResult { summary, models, reports, .. } = built;
                result.windows.push(WindowResult { lookback_days, summary, models, reports });
            }
            result.window_ranks = window_ranks(&result.windows);
        }
        if self.part_rows_dropped && options.intervals.is_some() {
            note_part_rows_without_intervals(&mut result);
        }
        match first_non_finite(&result) {
            Some(model) => Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the numbers of the input are too large to attribute under `{model}` (a credit is not a \
                     finite number); are the conversions and values in the right unit?"
                ),
            )),
            None => Ok(result),
        }
    }
}

/// Says, in the `note` of each part's model with breakdown rows, why its rows have no
/// intervals: the parts' replicate rows passed their cap (`Partial::part_rows_dropped`).
fn note_part_rows_without_intervals(result: &mut AttributionResult) {
    let note = format!(
        "Its breakdown rows have no intervals: the breakdown rows of all periods, segments and lookback windows \
         times the replicates pass {} (max_part_breakdown_replicates); ask for fewer replicates, a longer period \
         or a breakdown by a column with fewer values.",
        crate::intervals::MAX_PART_BREAKDOWN_REPLICATES
    );
    let segments = result.segments.iter_mut();
    let parts = (result.periods.iter_mut().map(|p| &mut p.models))
        .chain(segments.flat_map(|s| std::iter::once(&mut s.models).chain(s.periods.iter_mut().map(|p| &mut p.models))))
        .chain(result.windows.iter_mut().skip(1).map(|w| &mut w.models));
    for model in parts.flatten().filter(|m| m.breakdown.is_some()) {
        model.note = Some(match model.note.take() {
            Some(earlier) => format!("{earlier} {note}"),
            None => note.clone(),
        });
    }
}

impl Partial {
    /// Sets each model's channels' `interval` from the replicates' results (each built as a
    /// result of its own, Markov solved once per replicate, under the whole's order), and its
    /// breakdown rows' when the replicates keep breakdown sums (the whole's do, and the parts'
    /// unless `Partial::part_rows_dropped`): each replicate's rows come out by the same split
    /// rules as the result's.
    fn set_intervals(
        &self,
        result: &mut AttributionResult,
        options: &Options,
        budget: &SolveBudget,
        order: Option<u8>,
        level: f64,
    ) -> Result<(), AttributionError> {
        if self.replicates.is_empty() {
            // A part without replicates of its own: no intervals.
            return Ok(());
        }
        let options = Options { intervals: None, ..options.clone() };
        let count = self.replicates.len();
        // Per model: each replicate's figures of the model's channels and rows, in their order.
        let mut figures: Vec<Vec<Vec<[f64; 4]>>> = vec![Vec::with_capacity(count); result.models.len()];
        let mut row_figures: Vec<Vec<Vec<[f64; 2]>>> = vec![Vec::with_capacity(count); result.models.len()];
        // Each model's rows by (channel, values).
        let row_index: Vec<rustc_hash::FxHashMap<RowKey, usize>> = result
            .models
            .iter()
            .map(|m| {
                let rows = m.breakdown.iter().flatten().enumerate();
                rows.map(|(i, r)| ((r.channel.as_str(), r.values.as_slice()), i)).collect()
            })
            .collect();
        for replicate in &self.replicates {
            let built = build_result(&replicate.canonical_replicate()?, &options, budget, order, None)?;
            for (m, model) in result.models.iter().enumerate() {
                let theirs = built.model(model.model).expect("a replicate runs every model");
                let by_name: rustc_hash::FxHashMap<&str, &ChannelCredit> =
                    theirs.channels.iter().map(|c| (c.channel.as_str(), c)).collect();
                figures[m].push(
                    model
                        .channels
                        .iter()
                        .map(|c| match by_name.get(c.channel.as_str()) {
                            Some(t) => [t.conversions, t.value, t.share, t.removal_effect.unwrap_or(0.0)],
                            None => [0.0; 4],
                        })
                        .collect(),
                );
                if let Some(rows) = &theirs.breakdown {
                    let mut out = vec![[0.0; 2]; row_index[m].len()];
                    for row in rows {
                        if let Some(&i) = row_index[m].get(&(row.channel.as_str(), row.values.as_slice())) {
                            out[i] = [row.conversions, row.value];
                        }
                    }
                    row_figures[m].push(out);
                }
            }
        }
        drop(row_index);
        for ((model, replicates), rows) in result.models.iter_mut().zip(figures).zip(row_figures) {
            let names: Vec<&str> = model.channels.iter().map(|c| c.channel.as_str()).collect();
            let removal = model.model == ModelId::Markov;
            let intervals = crate::intervals::channel_intervals(&names, &replicates, removal, level);
            for (credit, interval) in model.channels.iter_mut().zip(intervals) {
                credit.interval = Some(interval);
            }
            if let (Some(breakdown), false) = (&mut model.breakdown, rows.is_empty()) {
                let intervals = crate::intervals::row_intervals(&rows, breakdown.len(), level);
                for (row, interval) in breakdown.iter_mut().zip(intervals) {
                    row.interval = Some(interval);
                }
            }
        }
        Ok(())
    }
}

/// A breakdown row's channel and values.
type RowKey<'a> = (&'a str, &'a [(String, String)]);

impl AttributionResult {
    /// Joins a cost table to the credits (docs/user-guide.md, "Spend"): each model's
    /// channel rows gain cost, CPA and ROAS; with `period`, each period's rows gain the cost
    /// dated in that period (a channel the events mention that has cost in a period where
    /// no journey credits it gets a row of its own there, with no credit); `spend` reports
    /// the totals, the cost of channels no journey mentions and cost dated outside every period.
    pub fn add_spend(&mut self, costs: &CostTable) {
        let zone = self.options.timezone;
        let whole = costs.by_channel();
        let known: BTreeSet<String> =
            self.models.iter().flat_map(|m| m.channels.iter().map(|c| c.channel.clone())).collect();
        for model in &mut self.models {
            for credit in &mut model.channels {
                credit.set_cost(whole.get(credit.channel.as_str()).map(|c| c.cost));
            }
        }
        let mut cost_outside_periods = Vec::new();
        if let Some(period) = self.options.period {
            let mut by_period = costs.by_period(period, zone);
            for entry in &mut self.periods {
                let costs = by_period.remove(&entry.period).unwrap_or_default();
                for model in &mut entry.models {
                    for credit in &mut model.channels {
                        credit.set_cost(costs.get(credit.channel.as_str()).copied());
                    }
                    let mut added = false;
                    for (&channel, &cost) in &costs {
                        if known.contains(channel) && model.channel(channel).is_none() {
                            model.channels.push(uncredited(channel, cost));
                            added = true;
                        }
                    }
                    if added {
                        model.channels.sort_by(|a, b| {
                            b.conversions.total_cmp(&a.conversions).then_with(|| a.channel.cmp(&b.channel))
                        });
                    }
                }
            }
            for (period, channels) in by_period {
                let cost: f64 = channels.iter().filter(|(c, _)| known.contains(**c)).map(|(_, cost)| cost).sum();
                if channels.keys().any(|c| known.contains(*c)) {
                    cost_outside_periods.push(PeriodCost { period, cost });
                }
            }
        }
        let mut unmatched_cost: Vec<UnmatchedCost> = whole
            .iter()
            .filter(|(channel, _)| !known.contains(**channel))
            .map(|(channel, c)| UnmatchedCost {
                channel: (*channel).to_owned(),
                campaign: None,
                segment: None,
                cost: c.cost,
                rows: c.rows,
            })
            .collect();
        if !costs.campaigns.is_empty() && breaks_down_by_campaign(&self.options.breakdown) {
            unmatched_cost.extend(self.add_campaign_cost(costs, &known));
        }
        if self.options.segment_by.is_some() {
            unmatched_cost.extend(self.add_segment_cost(costs));
        }
        unmatched_cost.sort_by(|a, b| {
            b.cost
                .total_cmp(&a.cost)
                .then_with(|| (&a.channel, &a.campaign, &a.segment).cmp(&(&b.channel, &b.campaign, &b.segment)))
        });
        let matched_cost = whole.iter().filter(|(channel, _)| known.contains(**channel)).map(|(_, c)| c.cost).sum();
        // A segment without cost rows has no dates.
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        let (first_date, last_date) = costs.date_range(zone).map(|(f, l)| (day(f), day(l))).unwrap_or_default();
        self.spend = Some(SpendSummary {
            rows: costs.rows.len() as u64,
            cost: costs.total(),
            matched_cost,
            first_date,
            last_date,
            campaigns: costs.campaigns.len(),
            unmatched_cost,
            cost_outside_periods,
            segment_column: costs.segment_column.clone().filter(|_| self.options.segment_by.is_some()),
        });
    }

    /// Joins each segment's cost rows to the segment (its channels, periods and campaign
    /// rows, as [`AttributionResult::add_spend`] does for the whole), when the cost table has
    /// the segment column; without it, each segment's channels get `cost: null`. Answers the
    /// cost of segment values no segment has, per channel.
    fn add_segment_cost(&mut self, costs: &CostTable) -> Vec<UnmatchedCost> {
        let options = Options { segment_by: None, ..self.options.clone() };
        for segment in &mut self.segments {
            let Some(part) = costs.of_segment(segment.value()) else {
                let periods = segment.periods.iter_mut().flat_map(|p| &mut p.models);
                for credit in segment.models.iter_mut().chain(periods).flat_map(|m| &mut m.channels) {
                    credit.set_cost(None);
                }
                continue;
            };
            let mut alone = AttributionResult {
                summary: segment.summary.clone(),
                options: options.clone(),
                models: std::mem::take(&mut segment.models),
                periods: std::mem::take(&mut segment.periods),
                reports: None,
                spend: None,
                windows: Vec::new(),
                window_ranks: Vec::new(),
                segments: Vec::new(),
            };
            alone.add_spend(&part);
            (segment.models, segment.periods, segment.spend) = (alone.models, alone.periods, alone.spend);
        }
        let values: BTreeSet<Option<&str>> = self.segments.iter().map(SegmentResult::value).collect();
        costs
            .by_segment()
            .into_iter()
            .filter(|((segment, _), _)| !values.contains(segment))
            .map(|((segment, channel), c)| UnmatchedCost {
                channel: channel.to_owned(),
                campaign: None,
                segment: Some(crate::segment::label(&self.options, &segment.map(str::to_owned))),
                cost: c.cost,
                rows: c.rows,
            })
            .collect()
    }
}

impl AttributionResult {
    /// Joins the cost of each (channel, campaign) to the breakdown rows (by campaign alone)
    /// of every model, and of every period with cost dated in it (a (channel, campaign) with
    /// rows in the whole file and cost in a period where it has none gets a row of its own
    /// there, with no credit); answers the cost of the (channel, campaign)s of channels the
    /// events mention (`known`) that no row has.
    fn add_campaign_cost(&mut self, costs: &CostTable, known: &BTreeSet<String>) -> Vec<UnmatchedCost> {
        let whole = costs.by_campaign();
        let rows: BTreeSet<(String, String)> = self
            .models
            .iter()
            .flat_map(|m| m.breakdown.iter().flatten())
            .map(|r| (r.channel.clone(), r.values[0].1.clone()))
            .collect();
        for row in self.models.iter_mut().flat_map(|m| m.breakdown.iter_mut().flatten()) {
            set_row_cost(row, whole.get(&(row.channel.as_str(), row.values[0].1.as_str())).map(|c| c.cost));
        }
        if let Some(period) = self.options.period {
            let mut by_period = costs.by_period_and_campaign(period, self.options.timezone);
            let column = &self.options.breakdown[0];
            for entry in &mut self.periods {
                let costs = by_period.remove(&entry.period).unwrap_or_default();
                for model in &mut entry.models {
                    let Some(breakdown) = &mut model.breakdown else { continue };
                    for row in breakdown.iter_mut() {
                        set_row_cost(row, costs.get(&(row.channel.as_str(), row.values[0].1.as_str())).copied());
                    }
                    let had: BTreeSet<(&str, &str)> =
                        breakdown.iter().map(|r| (r.channel.as_str(), r.values[0].1.as_str())).collect();
                    let added: Vec<BreakdownRow> = costs
                        .iter()
                        .filter(|&(&(channel, campaign), _)| {
                            !had.contains(&(channel, campaign))
                                && rows.contains(&(channel.to_owned(), campaign.to_owned()))
                        })
                        .map(|(&(channel, campaign), &cost)| {
                            let mut row = BreakdownRow {
                                channel: channel.to_owned(),
                                values: vec![(column.clone(), campaign.to_owned())],
                                conversions: 0.0,
                                value: 0.0,
                                cost: None,
                                cpa: None,
                                roas: None,
                                interval: None,
                            };
                            set_row_cost(&mut row, Some(cost));
                            row
                        })
                        .collect();
                    if !added.is_empty() {
                        breakdown.extend(added);
                        *breakdown = sorted_rows(std::mem::take(breakdown), &model.channels);
                    }
                }
            }
        }
        whole
            .iter()
            .filter(|&(&(channel, campaign), _)| {
                known.contains(channel) && !rows.contains(&(channel.to_owned(), campaign.to_owned()))
            })
            .map(|(&(channel, campaign), c)| UnmatchedCost {
                channel: channel.to_owned(),
                campaign: Some(campaign.to_owned()),
                segment: None,
                cost: c.cost,
                rows: c.rows,
            })
            .collect()
    }
}

/// The row of a channel with cost in a period but no credit there.
fn uncredited(channel: &str, cost: f64) -> ChannelCredit {
    let mut credit = ChannelCredit {
        channel: channel.to_owned(),
        conversions: 0.0,
        value: 0.0,
        share: 0.0,
        removal_effect: None,
        removal_effect_value: None,
        cost: None,
        cpa: None,
        roas: None,
        interval: None,
    };
    credit.set_cost(Some(cost));
    credit
}

/// The model (or `summary`) of the first number in `result` that is not finite.
fn first_non_finite(result: &AttributionResult) -> Option<&'static str> {
    let s = &result.summary;
    let summary = [
        s.journeys,
        s.converting_journeys,
        s.null_journeys,
        s.conversions,
        s.conversion_value,
        s.unattributed_conversions,
        s.unattributed_value,
    ];
    if !summary.iter().all(|x| x.is_finite()) {
        return Some("summary");
    }
    let periods = result.periods.iter().flat_map(|p| &p.models);
    let windows = result.windows.iter().flat_map(|w| &w.models);
    let segments = result.segments.iter().flat_map(|s| s.models.iter().chain(s.periods.iter().flat_map(|p| &p.models)));
    result.models.iter().chain(periods).chain(windows).chain(segments).find_map(|model| {
        let channels = model.channels.iter().flat_map(|c| {
            [Some(c.conversions), Some(c.value), Some(c.share), c.removal_effect, c.removal_effect_value]
        });
        let rows = model.breakdown.iter().flatten().flat_map(|r| [Some(r.conversions), Some(r.value)]);
        let totals = [Some(model.total_conversions), Some(model.total_value), model.conversion_probability];
        let pairs = model
            .pairs
            .iter()
            .flatten()
            .flat_map(|p| [Some(p.removal_effect), Some(p.removal_effect_value), Some(p.overlap)]);
        let scores = model.order_selection.iter().flat_map(|s| s.scores.iter().map(|score| score.log_likelihood));
        let finite =
            totals.into_iter().chain(channels).chain(rows).chain(pairs).chain(scores).flatten().all(f64::is_finite);
        (!finite).then(|| model.model.as_str())
    })
}

/// Each model's channels compared across `windows`: share and rank under every window.
fn window_ranks(windows: &[WindowResult]) -> Vec<WindowRanks> {
    let Some(first) = windows.first() else { return Vec::new() };
    first
        .models
        .iter()
        .map(|model| {
            let lists: Vec<&[ChannelCredit]> = windows
                .iter()
                .map(|w| w.models.iter().find(|m| m.model == model.model).map_or(&[][..], |m| &m.channels[..]))
                .collect();
            let mut names: Vec<&str> = Vec::new();
            for list in &lists {
                names.extend(list.iter().map(|c| c.channel.as_str()));
            }
            names.sort_unstable();
            names.dedup();
            let mut channels: Vec<ChannelWindowRanks> = names
                .into_iter()
                .map(|name| {
                    let places: Vec<Option<(u32, f64)>> = lists
                        .iter()
                        .map(|list| list.iter().position(|c| c.channel == name).map(|i| (i as u32 + 1, list[i].share)))
                        .collect();
                    let ranks = places.iter().flatten().map(|&(rank, _)| rank);
                    let spread = ranks.clone().max().unwrap_or(0) - ranks.min().unwrap_or(0);
                    ChannelWindowRanks {
                        channel: name.to_owned(),
                        share: places.iter().map(|p| p.map_or(0.0, |(_, share)| share)).collect(),
                        rank: places.iter().map(|p| p.map(|(rank, _)| rank)).collect(),
                        rank_spread: spread,
                    }
                })
                .collect();
            channels.sort_by_key(|c| c.rank[0].unwrap_or(u32::MAX));
            WindowRanks { model: model.model, channels }
        })
        .collect()
}

/// The result of `partial`; `markov_order` (a period's or a further window's) fixes the order
/// `auto` would choose; with `reports` (not a replicate's) its reports, the transition table
/// cut at that many rows.
pub(crate) fn build_result(
    partial: &Partial,
    options: &Options,
    budget: &SolveBudget,
    markov_order: Option<u8>,
    reports: Option<usize>,
) -> Result<AttributionResult, AttributionError> {
    let counts = &partial.counts;
    let summary = Summary {
        rows: counts.rows,
        journeys: counts.converting_journeys + counts.null_journeys,
        converting_journeys: counts.converting_journeys,
        null_journeys: counts.null_journeys,
        conversions: counts.conversions,
        conversion_value: counts.conversion_value,
        unattributed_conversions: counts.unattributed_conversions,
        unattributed_value: counts.unattributed_value,
        channels: partial.channel_seen.iter().filter(|&&seen| seen).count(),
        truncated_journeys: counts.truncated_journeys,
    };
    let attributed =
        (counts.conversions - counts.unattributed_conversions, counts.conversion_value - counts.unattributed_value);
    let seen: Vec<usize> = (0..partial.channels.len()).filter(|&c| partial.channel_seen[c]).collect();

    let mut models = Vec::with_capacity(options.models.len());
    for &model in &options.models {
        let mut result = match model {
            ModelId::Markov => markov_result(partial, options, budget, markov_order, &seen, attributed)?,
            ModelId::ShaoLi => {
                let counts = partial.shao_li.as_ref().expect("a partial for shao_li carries its counts");
                let c = counts.contributions(&partial.channels)?;
                let mut conversions = vec![0.0; partial.channels.len()];
                let mut value = vec![0.0; partial.channels.len()];
                distribute(&seen, &c.conversions, attributed.0, &mut conversions);
                distribute(&seen, &c.value, attributed.1, &mut value);
                model_result(model, partial, &seen, &conversions, &value, attributed)
            }
            _ => {
                let rule = partial.rules.iter().find(|r| r.model == model).expect("a partial carries every rule model");
                model_result(model, partial, &seen, &rule.conversions, &rule.value, attributed)
            }
        };
        if let Some(breakdown) = &partial.breakdown {
            let rows = if splits_channel_credit(model) {
                // Credit that exists per channel only: split over the channel's keys by their shares.
                let ids: rustc_hash::FxHashMap<&str, usize> =
                    partial.channels.iter().enumerate().map(|(id, name)| (name.as_str(), id)).collect();
                let (mut conversions, mut value) =
                    (vec![0.0; partial.channels.len()], vec![0.0; partial.channels.len()]);
                for credit in &result.channels {
                    let c = ids[credit.channel.as_str()];
                    (conversions[c], value[c]) = (credit.conversions, credit.value);
                }
                breakdown.channel_rows(&options.breakdown, &partial.channels, &conversions, &value)
            } else {
                let index =
                    partial.rules.iter().position(|r| r.model == model).expect("a partial carries every rule model");
                breakdown.rule_rows(index, &options.breakdown, &partial.channels)
            };
            result.breakdown = Some(sorted_rows(rows, &result.channels));
        }
        models.push(result);
    }
    let reports = reports.map(|max_transitions| {
        let has_times = options.kind == crate::options::InputKind::Events;
        let top = options.top_paths as usize;
        let mut reports = partial.reports.report(&partial.channels, &partial.channel_seen, has_times, top);
        // The chain the markov model solved: the fixed order's, or the one `auto` chose.
        let chain = match (&partial.markov, &partial.markov_auto) {
            (Some(chain), _) => Some(chain),
            (None, Some(candidates)) => {
                models.iter().find(|m| m.model == ModelId::Markov).and_then(|m| m.order).map(|o| candidates.chain(o))
            }
            (None, None) => None,
        };
        reports.transitions =
            chain.map(|markov| crate::reports::transition_table(markov, &partial.channels, max_transitions));
        if let Some(breakdown) = &partial.breakdown {
            reports.breakdown_positions = Some(breakdown.position_rows(&options.breakdown, &partial.channels));
            reports.breakdown_paths = breakdown.path_report(&options.breakdown, &partial.channels, top);
        }
        reports
    });
    Ok(AttributionResult {
        summary,
        options: options.clone(),
        models,
        periods: Vec::new(),
        reports,
        windows: Vec::new(),
        window_ranks: Vec::new(),
        segments: Vec::new(),
        spend: None,
    })
}

/// Breakdown rows in the order of the model's channels, then by conversions (descending),
/// then by their values.
fn sorted_rows(mut rows: Vec<BreakdownRow>, channels: &[ChannelCredit]) -> Vec<BreakdownRow> {
    let rank: rustc_hash::FxHashMap<&str, usize> =
        channels.iter().enumerate().map(|(i, c)| (c.channel.as_str(), i)).collect();
    let rank_of = |row: &BreakdownRow| rank.get(row.channel.as_str()).copied().unwrap_or(usize::MAX);
    rows.sort_by(|a, b| {
        rank_of(a)
            .cmp(&rank_of(b))
            .then_with(|| b.conversions.total_cmp(&a.conversions))
            .then_with(|| a.values.cmp(&b.values))
    });
    rows
}

/// `out[c] = weights[c] / Σ weights × total` over the `seen` channels (nothing when the
/// weights sum to 0).
fn distribute(seen: &[usize], weights: &[f64], total: f64, out: &mut [f64]) {
    let sum: f64 = seen.iter().map(|&c| weights[c]).sum();
    if sum > 0.0 {
        for &c in seen {
            out[c] = weights[c] / sum * total;
        }
    }
}

/// The markov model: the chain of the fixed order, or of the order `auto` chooses (or
/// `markov_order`, a period's whole-file choice), solved; and its pair effects if asked.
fn markov_result(
    partial: &Partial,
    options: &Options,
    budget: &SolveBudget,
    markov_order: Option<u8>,
    seen: &[usize],
    attributed: (f64, f64),
) -> Result<ModelResult, AttributionError> {
    let (chain, selection) = match (&partial.markov, &partial.markov_auto) {
        (Some(chain), _) => (chain, None),
        (None, Some(candidates)) => match markov_order {
            Some(order) => (candidates.chain(order), None),
            None => {
                let selection = candidates.choose();
                (candidates.chain(selection.chosen), Some(selection))
            }
        },
        (None, None) => panic!("a partial for markov carries markov counts"),
    };
    debug_assert!(options.markov_order == MarkovOrder::Auto || selection.is_none());
    let solution = chain.solve(partial.channels.len(), budget)?;
    let mut result = model_result(ModelId::Markov, partial, seen, &solution.conversions, &solution.value, attributed);
    let ids: rustc_hash::FxHashMap<&str, usize> =
        partial.channels.iter().enumerate().map(|(id, name)| (name.as_str(), id)).collect();
    for credit in &mut result.channels {
        let id = ids[credit.channel.as_str()];
        credit.removal_effect = Some(solution.removal_effect[id]);
        credit.removal_effect_value = Some(solution.removal_effect_value[id]);
    }
    result.order = Some(chain.order);
    result.conversion_probability = Some(solution.conversion_probability);
    result.order_selection = selection;
    if options.markov_pair_effects {
        // The top channels by removal effect, ties by name; their pairs in name order.
        let mut top: Vec<usize> = seen.to_vec();
        top.sort_by(|&a, &b| {
            solution.removal_effect[b]
                .total_cmp(&solution.removal_effect[a])
                .then_with(|| partial.channels[a].cmp(&partial.channels[b]))
        });
        top.truncate(TOP_PAIR_CHANNELS);
        top.sort_by(|&a, &b| partial.channels[a].cmp(&partial.channels[b]));
        let pairs: Vec<(u32, u32)> = top
            .iter()
            .enumerate()
            .flat_map(|(i, &a)| top[i + 1..].iter().map(move |&b| (a as u32, b as u32)))
            .collect();
        let effects = chain.pair_removal_effects(&pairs, budget)?;
        let mut out: Vec<PairEffect> = pairs
            .iter()
            .zip(effects)
            .map(|(&(a, b), (re, re_value))| {
                let (a, b) = (a as usize, b as usize);
                PairEffect {
                    channel_a: partial.channels[a].clone(),
                    channel_b: partial.channels[b].clone(),
                    removal_effect: re,
                    removal_effect_value: re_value,
                    overlap: (solution.removal_effect[a] + solution.removal_effect[b] - re).max(0.0),
                }
            })
            .collect();
        out.sort_by(|x, y| {
            y.removal_effect
                .total_cmp(&x.removal_effect)
                .then_with(|| (&x.channel_a, &x.channel_b).cmp(&(&y.channel_a, &y.channel_b)))
        });
        result.pairs = Some(out);
    }
    Ok(result)
}

fn model_result(
    model: ModelId,
    partial: &Partial,
    seen: &[usize],
    conversions: &[f64],
    value: &[f64],
    attributed: (f64, f64),
) -> ModelResult {
    let total_conversions: f64 = seen.iter().map(|&c| conversions[c]).sum();
    let total_value: f64 = seen.iter().map(|&c| value[c]).sum();
    let mut channels: Vec<ChannelCredit> = seen
        .iter()
        .map(|&c| ChannelCredit {
            channel: partial.channels[c].clone(),
            conversions: conversions[c],
            value: value[c],
            share: if total_conversions > 0.0 { conversions[c] / total_conversions } else { 0.0 },
            removal_effect: None,
            removal_effect_value: None,
            cost: None,
            cpa: None,
            roas: None,
            interval: None,
        })
        .collect();
    channels.sort_by(|a, b| b.conversions.total_cmp(&a.conversions).then_with(|| a.channel.cmp(&b.channel)));
    let conserves_totals = close(total_conversions, attributed.0) && close(total_value, attributed.1);
    let note = (model == ModelId::Participation).then(|| {
        "every distinct channel of a converting journey gets full credit, so totals exceed conversions by design"
            .to_owned()
    });
    ModelResult {
        model,
        channels,
        total_conversions,
        total_value,
        conserves_totals,
        note,
        order: None,
        conversion_probability: None,
        breakdown: None,
        order_selection: None,
        pairs: None,
    }
}

/// The header of [`channels_csv`].
pub const CHANNELS_CSV_HEADER: &str = "model,channel,conversions,value,share,removal_effect,removal_effect_value";

/// The tidy table of channel credits: one row per model × channel, in the result's order;
/// fields a model does not have are empty.
pub fn channels_csv(result: &AttributionResult) -> String {
    let spend = result.spend.is_some();
    let mut out = format!("{CHANNELS_CSV_HEADER}{}\n", spend_columns(spend));
    for model in &result.models {
        for c in &model.channels {
            out.push_str(&credit_row(model.model, c, spend));
            out.push('\n');
        }
    }
    out
}

/// The columns the channels and periods tables gain with a cost table.
pub const SPEND_CSV_COLUMNS: &str = ",cost,cpa,roas";

/// A tidy CSV table of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// One row per model × channel: [`channels_csv`].
    Channels,
    /// One row per period × model × channel: [`periods_csv`].
    Periods,
    /// The journey reports: `bucket,conversions,value` by touches per converting journey,
    /// and by days from first touch to conversion; `channel,only,first,middle,last`.
    PathLength,
    TimeLag,
    Positions,
    /// With `breakdown`: one row per model × channel × breakdown values: [`breakdown_csv`].
    Breakdown,
    /// With `breakdown` and `period`: the same per period, oldest first.
    PeriodBreakdown,
    /// With `breakdown` and `intervals`: the whole's rows with the intervals of their
    /// conversions and value, [`breakdown_intervals_csv`].
    BreakdownIntervals,
    /// With `breakdown`, `intervals` and `period`: the same per period, a `period` column first
    /// (the bounds empty where the parts' rows have none, past their cap).
    PeriodBreakdownIntervals,
    /// With a cost table: `channel,cost,rows` of the channels no journey mentions (with
    /// campaign cost `channel,campaign,cost,rows`, the campaigns no breakdown row has too).
    UnmatchedCost,
    /// One row per model × channel × lookback window: [`windows_csv`].
    Windows,
    /// The top paths: [`PATHS_CSV_HEADER`], converting paths first.
    Paths,
    /// With `breakdown`: `channel,<breakdown columns>,only,first,middle,last`.
    BreakdownPositions,
    /// With `breakdown`: the top paths of touch keys, as [`Table::Paths`].
    BreakdownPaths,
    /// The Markov transitions: `from,to,count,probability`.
    Transitions,
    /// The markov model's pair removal effects (`markov_pair_effects`):
    /// `channel_a,channel_b,removal_effect,removal_effect_value,overlap`.
    MarkovPairs,
    /// With `segment_by`: one row per segment × model × channel: [`segments_csv`].
    Segments,
    /// With `breakdown` and segments: the breakdown rows of every segment.
    SegmentBreakdown,
    /// With `breakdown`, `intervals` and segments: the same with bounds, as
    /// [`Table::PeriodBreakdownIntervals`].
    SegmentBreakdownIntervals,
    /// With segments and `period`: one row per segment × period × model × channel.
    SegmentPeriods,
    /// With `intervals`: one row per model × channel, [`INTERVALS_CSV_HEADER`].
    Intervals,
    /// With `intervals` and parts of one kind (`period_intervals`, `segment_intervals`,
    /// `segment_period_intervals`, `window_intervals`): the intervals of every part, the
    /// whole's table with the part's label in the first columns ([`ReportPart::columns`]).
    PartIntervals(ReportPart),
    /// A journey report of every part of one kind (`period_paths`, `segment_time_lag`, ...):
    /// the whole's table with the part's label in the first columns ([`ReportPart::columns`]).
    PartReport(ReportPart, Report),
}

/// The parts of a result that have journey reports of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportPart {
    /// `periods[i]`: a `period` column.
    Period,
    /// `segments[i]`: a column named by the segment column (or `conversion_type`).
    Segment,
    /// `segments[i].periods[j]`: the segment's column, then `period`.
    SegmentPeriod,
    /// `windows[i]` (the first is the whole's): a `lookback_days` column.
    Window,
}

/// The journey reports, each a table of the whole ([`Table::PathLength`], ...) and of each
/// kind of part ([`Table::PartReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    PathLength,
    TimeLag,
    Positions,
    Paths,
    Transitions,
    BreakdownPositions,
    BreakdownPaths,
}

impl ReportPart {
    const ALL: [ReportPart; 4] =
        [ReportPart::Period, ReportPart::Segment, ReportPart::SegmentPeriod, ReportPart::Window];

    /// Whether `result` has parts of this kind.
    fn applies_to(self, result: &AttributionResult) -> bool {
        let segmented = crate::segment::column(&result.options).is_some();
        match self {
            ReportPart::Period => !result.periods.is_empty(),
            ReportPart::Segment => segmented,
            ReportPart::SegmentPeriod => segmented && result.options.period.is_some(),
            ReportPart::Window => !result.windows.is_empty(),
        }
    }

    /// The label columns of the part's tables.
    fn columns(self, result: &AttributionResult) -> Vec<String> {
        let segment = || crate::segment::column(&result.options).unwrap_or("segment").to_owned();
        match self {
            ReportPart::Period => vec!["period".to_owned()],
            ReportPart::Segment => vec![segment()],
            ReportPart::SegmentPeriod => vec![segment(), "period".to_owned()],
            ReportPart::Window => vec!["lookback_days".to_owned()],
        }
    }

    /// Each part's labels, models and reports, in the result's order.
    fn parts(self, result: &AttributionResult) -> Vec<(Vec<String>, &Vec<ModelResult>, Option<&Reports>)> {
        let segment = |s: &SegmentResult| s.value().unwrap_or_default().to_owned();
        fn period(p: &PeriodResult) -> (String, &Vec<ModelResult>, Option<&Reports>) {
            (p.period.clone(), &p.models, p.reports.as_ref())
        }
        match self {
            ReportPart::Period => result.periods.iter().map(period).map(|(l, m, r)| (vec![l], m, r)).collect(),
            ReportPart::Segment => {
                result.segments.iter().map(|s| (vec![segment(s)], &s.models, s.reports.as_ref())).collect()
            }
            ReportPart::SegmentPeriod => result
                .segments
                .iter()
                .flat_map(|s| s.periods.iter().map(period).map(move |(l, m, r)| (vec![segment(s), l], m, r)))
                .collect(),
            ReportPart::Window => result
                .windows
                .iter()
                .map(|w| (vec![w.lookback_days.to_string()], &w.models, w.reports.as_ref()))
                .collect(),
        }
    }

    /// Each part's labels and reports (parts without reports, from results of older
    /// versions, left out).
    fn reports(self, result: &AttributionResult) -> Vec<(Vec<String>, &Reports)> {
        self.parts(result).into_iter().filter_map(|(labels, _, reports)| Some((labels, reports?))).collect()
    }

    /// Each part's labels and models.
    fn models(self, result: &AttributionResult) -> Vec<(Vec<String>, &Vec<ModelResult>)> {
        self.parts(result).into_iter().map(|(labels, models, _)| (labels, models)).collect()
    }
}

impl Report {
    const ALL: [Report; 7] = [
        Report::PathLength,
        Report::TimeLag,
        Report::Positions,
        Report::Paths,
        Report::Transitions,
        Report::BreakdownPositions,
        Report::BreakdownPaths,
    ];

    /// Whether reports of this result have this table (time lags need times, transitions `markov`).
    fn applies_to(self, result: &AttributionResult) -> bool {
        let reports = result.reports.as_ref();
        match self {
            Report::PathLength | Report::Positions => reports.is_some(),
            Report::TimeLag => reports.is_some_and(|r| !r.time_lag.is_empty()),
            Report::Paths => reports.is_some_and(|r| r.paths.is_some()),
            Report::Transitions => reports.is_some_and(|r| r.transitions.is_some()),
            Report::BreakdownPositions => reports.is_some_and(|r| r.breakdown_positions.is_some()),
            Report::BreakdownPaths => reports.is_some_and(|r| r.breakdown_paths.is_some()),
        }
    }

    /// The table's header after the label columns; `breakdown` names the breakdown columns.
    fn header(self, breakdown: &[String]) -> String {
        match self {
            Report::PathLength | Report::TimeLag => "bucket,conversions,value".to_owned(),
            Report::Positions => "channel,only,first,middle,last".to_owned(),
            Report::Paths | Report::BreakdownPaths => PATHS_CSV_HEADER.to_owned(),
            Report::Transitions => "from,to,count,probability".to_owned(),
            Report::BreakdownPositions => {
                let columns: Vec<_> = breakdown.iter().map(|c| csv_field(c)).collect();
                format!("channel,{},only,first,middle,last", columns.join(","))
            }
        }
    }

    /// The table: `columns` first, then for each part its `labels` before each of its rows;
    /// `breakdown` names the breakdown columns.
    fn csv(self, columns: &[String], breakdown: &[String], parts: &[(Vec<String>, &Reports)]) -> String {
        let mut out = label_columns(columns);
        out.push_str(&self.header(breakdown));
        out.push('\n');
        for (labels, reports) in parts {
            let lead = label_columns(labels);
            let mut row = |line: String| {
                out.push_str(&lead);
                out.push_str(&line);
                out.push('\n');
            };
            match self {
                Report::PathLength | Report::TimeLag => {
                    let buckets = if self == Report::PathLength { &reports.path_length } else { &reports.time_lag };
                    for b in buckets {
                        row(format!("{},{},{}", b.bucket, b.conversions, b.value));
                    }
                }
                Report::Positions => {
                    for c in &reports.positions {
                        let p = &c.positions;
                        row(format!("{},{},{},{},{}", csv_field(&c.channel), p.only, p.first, p.middle, p.last));
                    }
                }
                Report::BreakdownPositions => {
                    for r in reports.breakdown_positions.iter().flatten() {
                        let p = &r.positions;
                        let values: Vec<_> = r.values.iter().map(|(_, v)| csv_field(v)).collect();
                        let (channel, values) = (csv_field(&r.channel), values.join(","));
                        row(format!("{channel},{values},{},{},{},{}", p.only, p.first, p.middle, p.last));
                    }
                }
                Report::Paths | Report::BreakdownPaths => {
                    let paths = if self == Report::Paths { &reports.paths } else { &reports.breakdown_paths };
                    let Some(paths) = paths else { continue };
                    for (list, rows) in [("converting", &paths.converting), ("non_converting", &paths.non_converting)] {
                        for (rank, p) in rows.iter().enumerate() {
                            row(format!(
                                "{list},{},{},{},{},{},{},{},{}",
                                rank + 1,
                                csv_field(&p.path),
                                p.touches,
                                p.journeys,
                                p.conversions,
                                p.value,
                                p.null_journeys,
                                paths.exact
                            ));
                        }
                    }
                }
                Report::Transitions => {
                    for t in reports.transitions.iter().flat_map(|t| &t.rows) {
                        row(format!("{},{},{},{}", csv_field(&t.from), csv_field(&t.to), t.count, t.probability));
                    }
                }
            }
        }
        out
    }
}

/// The names of the part report tables, by [`ReportPart`] and [`Report`].
const PART_REPORT_NAMES: [[&str; 7]; 4] = [
    [
        "period_path_length",
        "period_time_lag",
        "period_positions",
        "period_paths",
        "period_transitions",
        "period_breakdown_positions",
        "period_breakdown_paths",
    ],
    [
        "segment_path_length",
        "segment_time_lag",
        "segment_positions",
        "segment_paths",
        "segment_transitions",
        "segment_breakdown_positions",
        "segment_breakdown_paths",
    ],
    [
        "segment_period_path_length",
        "segment_period_time_lag",
        "segment_period_positions",
        "segment_period_paths",
        "segment_period_transitions",
        "segment_period_breakdown_positions",
        "segment_period_breakdown_paths",
    ],
    [
        "window_path_length",
        "window_time_lag",
        "window_positions",
        "window_paths",
        "window_transitions",
        "window_breakdown_positions",
        "window_breakdown_paths",
    ],
];

/// The names of the part interval tables, by [`ReportPart`].
const PART_INTERVALS_NAMES: [&str; 4] =
    ["period_intervals", "segment_intervals", "segment_period_intervals", "window_intervals"];

/// The header of the `paths` table.
pub const PATHS_CSV_HEADER: &str = "list,rank,path,touches,journeys,conversions,value,null_journeys,exact";

impl Table {
    /// Every table: the whole's, then the journey reports of each kind of part.
    pub fn all() -> impl Iterator<Item = Table> {
        const WHOLE: [Table; 21] = [
            Table::Channels,
            Table::Periods,
            Table::Segments,
            Table::SegmentPeriods,
            Table::SegmentBreakdown,
            Table::PathLength,
            Table::TimeLag,
            Table::Positions,
            Table::Breakdown,
            Table::BreakdownPositions,
            Table::BreakdownPaths,
            Table::PeriodBreakdown,
            Table::Windows,
            Table::UnmatchedCost,
            Table::Paths,
            Table::Transitions,
            Table::MarkovPairs,
            Table::Intervals,
            Table::BreakdownIntervals,
            Table::PeriodBreakdownIntervals,
            Table::SegmentBreakdownIntervals,
        ];
        let parts = ReportPart::ALL
            .into_iter()
            .flat_map(|part| Report::ALL.into_iter().map(move |report| Table::PartReport(part, report)));
        WHOLE.into_iter().chain(ReportPart::ALL.map(Table::PartIntervals)).chain(parts)
    }

    /// The names of every table, as `?table=` and `--table` take them.
    pub fn names() -> Vec<&'static str> {
        Table::all().map(Table::as_str).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Channels => "channels",
            Table::Periods => "periods",
            Table::PathLength => "path_length",
            Table::TimeLag => "time_lag",
            Table::Positions => "positions",
            Table::BreakdownPositions => "breakdown_positions",
            Table::BreakdownPaths => "breakdown_paths",
            Table::Breakdown => "breakdown",
            Table::PeriodBreakdown => "period_breakdown",
            Table::UnmatchedCost => "unmatched_cost",
            Table::Windows => "windows",
            Table::Paths => "paths",
            Table::Transitions => "transitions",
            Table::MarkovPairs => "markov_pairs",
            Table::Segments => "segments",
            Table::SegmentBreakdown => "segment_breakdown",
            Table::SegmentPeriods => "segment_periods",
            Table::Intervals => "intervals",
            Table::BreakdownIntervals => "breakdown_intervals",
            Table::PeriodBreakdownIntervals => "period_breakdown_intervals",
            Table::SegmentBreakdownIntervals => "segment_breakdown_intervals",
            Table::PartIntervals(part) => PART_INTERVALS_NAMES[part as usize],
            Table::PartReport(part, report) => PART_REPORT_NAMES[part as usize][report as usize],
        }
    }

    /// Whether `result` has rows for this table (periods and reports are optional).
    pub fn applies_to(self, result: &AttributionResult) -> bool {
        match self {
            Table::Channels => true,
            Table::Periods => !result.periods.is_empty(),
            Table::PathLength => Report::PathLength.applies_to(result),
            Table::Positions => Report::Positions.applies_to(result),
            Table::BreakdownPositions => Report::BreakdownPositions.applies_to(result),
            Table::BreakdownPaths => Report::BreakdownPaths.applies_to(result),
            Table::TimeLag => Report::TimeLag.applies_to(result),
            Table::Breakdown => !result.options.breakdown.is_empty(),
            Table::PeriodBreakdown => !result.options.breakdown.is_empty() && !result.periods.is_empty(),
            Table::UnmatchedCost => result.spend.is_some(),
            Table::Windows => !result.windows.is_empty(),
            Table::Paths => Report::Paths.applies_to(result),
            Table::Transitions => Report::Transitions.applies_to(result),
            Table::MarkovPairs => result.model(ModelId::Markov).is_some_and(|m| m.pairs.is_some()),
            Table::Segments => crate::segment::column(&result.options).is_some(),
            Table::SegmentPeriods => {
                result.options.period.is_some() && crate::segment::column(&result.options).is_some()
            }
            Table::SegmentBreakdown => {
                !result.options.breakdown.is_empty() && crate::segment::column(&result.options).is_some()
            }
            Table::Intervals => result.options.intervals.is_some(),
            Table::BreakdownIntervals => result.options.intervals.is_some() && !result.options.breakdown.is_empty(),
            Table::PeriodBreakdownIntervals => {
                result.options.intervals.is_some() && Table::PeriodBreakdown.applies_to(result)
            }
            Table::SegmentBreakdownIntervals => {
                result.options.intervals.is_some() && Table::SegmentBreakdown.applies_to(result)
            }
            Table::PartIntervals(part) => result.options.intervals.is_some() && part.applies_to(result),
            Table::PartReport(part, report) => part.applies_to(result) && report.applies_to(result),
        }
    }

    pub fn csv(self, result: &AttributionResult) -> String {
        let breakdown = &result.options.breakdown;
        let whole = |report: Report| {
            report.csv(&[], breakdown, &result.reports.iter().map(|r| (Vec::new(), r)).collect::<Vec<_>>())
        };
        match self {
            Table::Channels => channels_csv(result),
            Table::Periods => periods_csv(result),
            Table::Breakdown => breakdown_csv(result, false),
            Table::PeriodBreakdown => breakdown_csv(result, true),
            Table::Windows => windows_csv(result),
            Table::Segments => segments_csv(result),
            Table::SegmentBreakdown => segment_breakdown_csv(result),
            Table::SegmentPeriods => segment_periods_csv(result),
            Table::PathLength => whole(Report::PathLength),
            Table::TimeLag => whole(Report::TimeLag),
            Table::Positions => whole(Report::Positions),
            Table::BreakdownPositions => whole(Report::BreakdownPositions),
            Table::BreakdownPaths => whole(Report::BreakdownPaths),
            Table::Paths => whole(Report::Paths),
            Table::Transitions => whole(Report::Transitions),
            Table::PartReport(part, report) => report.csv(&part.columns(result), breakdown, &part.reports(result)),
            Table::UnmatchedCost => unmatched_cost_csv(result),
            Table::Intervals => intervals_csv(&[], &[(Vec::new(), &result.models)]),
            Table::BreakdownIntervals => breakdown_intervals_csv(result),
            Table::PeriodBreakdownIntervals => breakdown_table(result, Some(period_rows(result)), true),
            Table::SegmentBreakdownIntervals => breakdown_table(result, Some(segment_rows(result)), true),
            Table::PartIntervals(part) => intervals_csv(&part.columns(result), &part.models(result)),
            Table::MarkovPairs => {
                let mut out = String::from(MARKOV_PAIRS_CSV_HEADER);
                out.push('\n');
                let pairs = result.model(ModelId::Markov).and_then(|m| m.pairs.as_deref()).unwrap_or_default();
                for p in pairs {
                    out.push_str(&format!(
                        "{},{},{},{},{}\n",
                        csv_field(&p.channel_a),
                        csv_field(&p.channel_b),
                        p.removal_effect,
                        p.removal_effect_value,
                        p.overlap
                    ));
                }
                out
            }
        }
    }
}

/// The cost no credit row shows: `channel,cost,rows`; with campaign cost a `campaign` column
/// after `channel` (empty for a channel no journey mentions); with cost per segment a column
/// named by the segment column before `cost` (empty but for segment values no segment has;
/// `(none)` for the cost rows without a value).
fn unmatched_cost_csv(result: &AttributionResult) -> String {
    let campaigns = result.has_campaign_cost();
    let segment_column = result.spend.as_ref().and_then(|s| s.segment_column.as_ref());
    let mut out = String::from("channel,");
    if campaigns {
        out.push_str("campaign,");
    }
    if let Some(segment_by) = &result.options.segment_by.as_ref().filter(|_| segment_column.is_some()) {
        out.push_str(&csv_field(segment_by));
        out.push(',');
    }
    out.push_str("cost,rows\n");
    for u in result.spend.iter().flat_map(|s| &s.unmatched_cost) {
        out.push_str(&csv_field(&u.channel));
        out.push(',');
        if campaigns {
            out.push_str(&csv_field(u.campaign.as_deref().unwrap_or_default()));
            out.push(',');
        }
        if segment_column.is_some() {
            let value = u.segment.as_ref().map(|s| s.values().next().cloned().flatten());
            let value = value.map(|v| v.unwrap_or_else(|| crate::breakdown::NO_VALUE.to_owned()));
            out.push_str(&csv_field(&value.unwrap_or_default()));
            out.push(',');
        }
        out.push_str(&format!("{},{}\n", u.cost, u.rows));
    }
    out
}

/// The header of the `intervals` table; `removal_effect_low,removal_effect_high` are
/// empty but for `markov`.
pub const INTERVALS_CSV_HEADER: &str = "model,channel,conversions,conversions_low,conversions_high,value,value_low,\
value_high,share,share_low,share_high,rank_1_probability,top_3_probability,median_rank,removal_effect_low,\
removal_effect_high";

/// The tidy table of intervals: `columns` first, then for each part its `labels` before
/// each of its rows, one per model × channel, in the result's order.
fn intervals_csv(columns: &[String], parts: &[(Vec<String>, &Vec<ModelResult>)]) -> String {
    let mut out = label_columns(columns);
    out.push_str(INTERVALS_CSV_HEADER);
    out.push('\n');
    let optional = |x: Option<f64>| x.map_or(String::new(), |x| x.to_string());
    for (labels, models) in parts {
        let lead = label_columns(labels);
        for model in models.iter() {
            for c in &model.channels {
                let Some(i) = &c.interval else { continue };
                out.push_str(&lead);
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                    model.model,
                    csv_field(&c.channel),
                    c.conversions,
                    i.conversions_low,
                    i.conversions_high,
                    c.value,
                    i.value_low,
                    i.value_high,
                    c.share,
                    i.share_low,
                    i.share_high,
                    i.rank_1_probability,
                    i.top_3_probability,
                    i.median_rank,
                    optional(i.removal_effect_low),
                    optional(i.removal_effect_high)
                ));
            }
        }
    }
    out
}

/// Label fields, each followed by a comma: the first columns of a part's row (or header).
fn label_columns(labels: &[String]) -> String {
    labels.iter().map(|label| format!("{},", csv_field(label))).collect()
}

/// The header of the `markov_pairs` table.
pub const MARKOV_PAIRS_CSV_HEADER: &str = "channel_a,channel_b,removal_effect,removal_effect_value,overlap";

impl std::str::FromStr for Table {
    type Err = AttributionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Table::all().find(|t| t.as_str() == s).ok_or_else(|| {
            let names = Table::names();
            AttributionError::option("table", format!("{} is not one of {}", crate::error::quoted(s), names.join(", ")))
        })
    }
}

/// The header of [`periods_csv`].
pub const PERIODS_CSV_HEADER: &str = "period,model,channel,conversions,value,share,removal_effect,removal_effect_value";

/// The tidy table of credits per period: one row per period × model × channel, oldest
/// period first (empty but for the header without `period`).
pub fn periods_csv(result: &AttributionResult) -> String {
    let spend = result.spend.is_some();
    let mut out = format!("{PERIODS_CSV_HEADER}{}\n", spend_columns(spend));
    for period in &result.periods {
        for model in &period.models {
            for c in &model.channels {
                out.push_str(&format!("{},{}\n", period.period, credit_row(model.model, c, spend)));
            }
        }
    }
    out
}

/// The header of [`segments_csv`] after its first column, which is the segment column's name.
pub const SEGMENTS_CSV_COLUMNS: &str = "model,channel,conversions,value,share,removal_effect,removal_effect_value";

/// The tidy table of credits per segment: `<segment column>,model,channel,conversions,...`,
/// one row per segment × model × channel in the result's order (the value empty for rows
/// without one; empty but for the header without `segment_by`); then `cost,cpa,roas` with a
/// cost table (empty where `null`: every segment's without a segment column in it).
pub fn segments_csv(result: &AttributionResult) -> String {
    let column = crate::segment::column(&result.options).unwrap_or("segment");
    let spend = result.spend.is_some();
    let mut out = format!("{},{SEGMENTS_CSV_COLUMNS}{}\n", csv_field(column), spend_columns(spend));
    for segment in &result.segments {
        let value = csv_field(segment.value().unwrap_or_default());
        for model in &segment.models {
            for c in &model.channels {
                out.push_str(&format!("{value},{}\n", credit_row(model.model, c, spend)));
            }
        }
    }
    out
}

/// [`SPEND_CSV_COLUMNS`] with a cost table.
fn spend_columns(spend: bool) -> &'static str {
    if spend { SPEND_CSV_COLUMNS } else { "" }
}

/// With segments and `period`: [`segments_csv`] per period of each segment,
/// `<segment column>,period,model,channel,...`, each segment's periods oldest first.
pub fn segment_periods_csv(result: &AttributionResult) -> String {
    let column = crate::segment::column(&result.options).unwrap_or("segment");
    let spend = result.spend.is_some();
    let mut out = format!("{},period,{SEGMENTS_CSV_COLUMNS}{}\n", csv_field(column), spend_columns(spend));
    for segment in &result.segments {
        let value = csv_field(segment.value().unwrap_or_default());
        for period in &segment.periods {
            for model in &period.models {
                for c in &model.channels {
                    out.push_str(&format!("{value},{},{}\n", period.period, credit_row(model.model, c, spend)));
                }
            }
        }
    }
    out
}

/// The tidy table of credit by breakdown: `model,channel,<breakdown columns>,conversions,value`
/// (the columns as the job named them; then `cost,cpa,roas` with campaign cost, empty where
/// `null`), one row per model × channel × breakdown values; with
/// `per_period`, a `period` column first and the rows of every period instead.
pub fn breakdown_csv(result: &AttributionResult, per_period: bool) -> String {
    breakdown_table(result, per_period.then(|| period_rows(result)), false)
}

/// With `breakdown` and `intervals`: `model,channel,<breakdown columns>,conversions,conversions_low,
/// conversions_high,value,value_low,value_high`, one row per row of the whole's breakdown
/// (the bounds empty for a row without an interval).
pub fn breakdown_intervals_csv(result: &AttributionResult) -> String {
    breakdown_table(result, None, true)
}

/// With `breakdown` and segments: [`breakdown_csv`]'s rows of every segment, the segment's
/// column (or `conversion_type`) first, its value empty for the rows without one.
pub fn segment_breakdown_csv(result: &AttributionResult) -> String {
    breakdown_table(result, Some(segment_rows(result)), false)
}

/// The parts of a breakdown table (see [`breakdown_table`]): a `period` column and each period's models.
fn period_rows(result: &AttributionResult) -> PartRows<'_> {
    ("period", result.periods.iter().map(|p| (p.period.clone(), &p.models)).collect())
}

/// The same of the segments: the segment's column (or `conversion_type`), its value empty
/// for the rows without one.
fn segment_rows(result: &AttributionResult) -> PartRows<'_> {
    let column = crate::segment::column(&result.options).unwrap_or("segment");
    (column, result.segments.iter().map(|s| (s.value().unwrap_or_default().to_owned(), &s.models)).collect())
}

/// A label column's name, and each part's label and models.
type PartRows<'a> = (&'a str, Vec<(String, &'a Vec<ModelResult>)>);

/// The breakdown rows of the whole (`parts` absent), or of each part (a period, a segment)
/// with the part's label in a first column named `parts.0`; with `intervals`, each figure
/// followed by its bounds (and no cost).
fn breakdown_table(result: &AttributionResult, parts: Option<PartRows<'_>>, intervals: bool) -> String {
    let mut out = String::new();
    if let Some((column, _)) = &parts {
        out.push_str(&csv_field(column));
        out.push(',');
    }
    out.push_str("model,channel,");
    for name in &result.options.breakdown {
        out.push_str(&csv_field(name));
        out.push(',');
    }
    out.push_str(if intervals {
        "conversions,conversions_low,conversions_high,value,value_low,value_high"
    } else {
        "conversions,value"
    });
    let spend = result.has_campaign_cost() && !intervals;
    out.push_str(spend_columns(spend));
    out.push('\n');
    let optional = |v: Option<Option<f64>>| v.flatten().map(|v| v.to_string()).unwrap_or_default();
    let tables: Vec<(Option<String>, &Vec<ModelResult>)> = match parts {
        Some((_, parts)) => parts.into_iter().map(|(label, models)| (Some(label), models)).collect(),
        None => vec![(None, &result.models)],
    };
    for (label, models) in tables {
        for model in models {
            for row in model.breakdown.iter().flatten() {
                if let Some(label) = &label {
                    out.push_str(&csv_field(label));
                    out.push(',');
                }
                out.push_str(&format!("{},{},", model.model, csv_field(&row.channel)));
                for (_, value) in &row.values {
                    out.push_str(&csv_field(value));
                    out.push(',');
                }
                match (intervals, &row.interval) {
                    (true, Some(i)) => out.push_str(&format!(
                        "{},{},{},{},{},{}",
                        row.conversions, i.conversions_low, i.conversions_high, row.value, i.value_low, i.value_high
                    )),
                    (true, None) => out.push_str(&format!("{},,,{},,", row.conversions, row.value)),
                    (false, _) => out.push_str(&format!("{},{}", row.conversions, row.value)),
                }
                if spend {
                    let [cost, cpa, roas] = [row.cost, row.cpa, row.roas].map(optional);
                    out.push_str(&format!(",{cost},{cpa},{roas}"));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// The header of [`windows_csv`].
pub const WINDOWS_CSV_HEADER: &str = "model,channel,lookback_days,conversions,value,share,rank";

/// The window comparison: one row per model × channel × lookback window that credits the
/// channel, channels in the order of `window_ranks`, windows in the order listed (empty but
/// for the header without several windows).
pub fn windows_csv(result: &AttributionResult) -> String {
    let mut out = format!("{WINDOWS_CSV_HEADER}\n");
    for ranks in &result.window_ranks {
        for channel in &ranks.channels {
            for (window, rank) in result.windows.iter().zip(&channel.rank) {
                let Some(rank) = rank else { continue };
                let model = window.models.iter().find(|m| m.model == ranks.model);
                let Some(c) = model.and_then(|m| m.channel(&channel.channel)) else { continue };
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    ranks.model,
                    csv_field(&c.channel),
                    window.lookback_days,
                    c.conversions,
                    c.value,
                    c.share,
                    rank
                ));
            }
        }
    }
    out
}

/// `model,channel,conversions,value,share,removal_effect,removal_effect_value` of one credit,
/// then `cost,cpa,roas` with `spend` (empty where `null`).
fn credit_row(model: ModelId, c: &ChannelCredit, spend: bool) -> String {
    let optional = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut row = format!(
        "{},{},{},{},{},{},{}",
        model,
        csv_field(&c.channel),
        c.conversions,
        c.value,
        c.share,
        optional(c.removal_effect),
        optional(c.removal_effect_value),
    );
    if spend {
        let [cost, cpa, roas] = [c.cost, c.cpa, c.roas].map(|v| optional(v.flatten()));
        row.push_str(&format!(",{cost},{cpa},{roas}"));
    }
    row
}

/// A CSV field, quoted when it holds a delimiter, quote or line break (RFC 4180).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= CONSERVATION_TOLERANCE * want.abs().max(1.0)
}
