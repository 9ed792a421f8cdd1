//! Journey reports (docs/user-guide.md, "Reports"): how many touches converting journeys
//! have, how long they take from first touch to conversion, where each channel stands
//! in them, and their top paths (`paths.rs`). Sums over journeys, so they merge like every
//! other part of a partial. Also the Markov transition table, made from the chain's counts.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::chunk::NO_CHANNEL;
use crate::journey::Journey;
use crate::markov::{ChainState, MarkovCounts};
use crate::paths::{CONVERSION_STATE, NULL_STATE, PathCounts, START_STATE, TopPaths, join_channels, top_by};
pub use crate::positions::Positions;

/// The most rows of the transition table in a result (the largest counts).
pub const MAX_TRANSITION_ROWS: usize = 10_000;
/// The most rows of a part's transition table (a period's, a segment's, a segment period's).
pub const MAX_PART_TRANSITION_ROWS: usize = 1_000;

/// Touches per converting journey: 1 to 9, then 10 or more.
pub const PATH_LENGTH_BUCKETS: [&str; 10] = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10+"];
/// Whole days from a converting journey's first touch to its conversion.
pub const TIME_LAG_BUCKETS: [&str; 8] = ["0", "1", "2-3", "4-7", "8-14", "15-30", "31-60", "61+"];
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Conversions and their value.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub conversions: f64,
    pub value: f64,
}

impl Tally {
    fn add(&mut self, conversions: f64, value: f64) {
        self.conversions += conversions;
        self.value += value;
    }
}

/// The additive sums behind the reports, per partial; `positions` is indexed by channel id.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReportCounts {
    pub path_length: Vec<Tally>,
    pub time_lag: Vec<Tally>,
    pub positions: Vec<Positions>,
    /// Every journey's path (null journeys too); absent from partials of older versions.
    #[serde(default)]
    pub paths: PathCounts,
}

impl ReportCounts {
    pub fn new(channels: usize, max_report_paths: u32) -> ReportCounts {
        ReportCounts {
            path_length: vec![Tally::default(); PATH_LENGTH_BUCKETS.len()],
            time_lag: vec![Tally::default(); TIME_LAG_BUCKETS.len()],
            positions: vec![Positions::default(); channels],
            paths: PathCounts::new(max_report_paths),
        }
    }

    /// Adds a journey's path (converting or not).
    pub(crate) fn add_path(&mut self, journey: &Journey<'_>) {
        self.paths.add(journey.channels, journey.conversions, journey.value, journey.nulls);
    }

    /// Adds a converting journey with at least one touch (others are not counted).
    pub(crate) fn add(&mut self, journey: &Journey<'_>) {
        let (channels, conversions, value) = (journey.channels, journey.conversions, journey.value);
        if channels.is_empty() || conversions <= 0.0 {
            return;
        }
        self.path_length[(channels.len() - 1).min(PATH_LENGTH_BUCKETS.len() - 1)].add(conversions, value);
        if let (Some(at), Some(&first)) = (journey.conversion_time, journey.touch_times.and_then(|t| t.first())) {
            self.time_lag[lag_bucket(at.saturating_sub(first) / MICROS_PER_DAY)].add(conversions, value);
        }
        for (i, &channel) in channels.iter().enumerate() {
            self.positions[channel as usize].add_touch(i, channels.len(), conversions);
        }
    }

    /// Adds `other`, whose channel `c` is our `channel_map[c]` (its paths too with `paths`).
    /// A partial written before reports existed has none (empty vectors): it adds nothing,
    /// and merging into it works.
    pub(crate) fn merge(&mut self, other: &ReportCounts, channel_map: &[u32], paths: bool) {
        self.path_length.resize(PATH_LENGTH_BUCKETS.len(), Tally::default());
        self.time_lag.resize(TIME_LAG_BUCKETS.len(), Tally::default());
        let channels = channel_map.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        if self.positions.len() < channels {
            self.positions.resize(channels, Positions::default());
        }
        for (mine, theirs) in self.path_length.iter_mut().zip(&other.path_length) {
            mine.add(theirs.conversions, theirs.value);
        }
        for (mine, theirs) in self.time_lag.iter_mut().zip(&other.time_lag) {
            mine.add(theirs.conversions, theirs.value);
        }
        for (old, theirs) in other.positions.iter().enumerate() {
            self.positions[channel_map[old] as usize].add(theirs);
        }
        if paths {
            self.paths.merge(&other.paths, channel_map);
        }
    }

    pub(crate) fn add_channel(&mut self) {
        self.positions.push(Positions::default());
    }
}

/// The index of `days` in [`TIME_LAG_BUCKETS`].
fn lag_bucket(days: i64) -> usize {
    match days {
        ..=0 => 0,
        1 => 1,
        2..=3 => 2,
        4..=7 => 3,
        8..=14 => 4,
        15..=30 => 5,
        31..=60 => 6,
        _ => 7,
    }
}

/// The reports of a result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reports {
    /// Converting journeys by their number of touches (`1` … `10+`).
    pub path_length: Vec<Bucket>,
    /// Converting journeys by whole days from first touch to conversion (`0`, `1`, `2-3`,
    /// `4-7`, `8-14`, `15-30`, `31-60`, `61+`); empty for path-level input (no times).
    pub time_lag: Vec<Bucket>,
    /// Per channel, by name: its touches' positions in converting journeys.
    pub positions: Vec<ChannelPositions>,
    /// The top converting and non-converting paths (absent from results of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<TopPaths>,
    /// With `breakdown`: per channel × breakdown values (touch key), its touches' positions
    /// in converting journeys, as `positions` (a channel's rows add up to its positions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<crate::breakdown::BreakdownPositionsSchema>>))]
    pub breakdown_positions: Option<Vec<crate::breakdown::BreakdownPositions>>,
    /// With `breakdown`: the top converting and non-converting paths of touch keys, each
    /// touch its channel and breakdown values (`email | spring > search | (none)`; escaped:
    /// docs/user-guide.md, "Reports"), counted and capped like `paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown_paths: Option<TopPaths>,
    /// The Markov chain's transitions (when the `markov` model ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Transitions>,
}

/// The Markov chain's transition table.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transitions {
    /// The chain's order: its states are sequences of this many channels (fewer for a
    /// shorter journey), written like paths.
    pub order: u8,
    /// Distinct transitions of the chain; `rows` holds at most 10000 of them.
    pub total: u64,
    /// True when `rows` leaves some out (the ones with the smallest counts).
    pub truncated: bool,
    /// By count, descending (then from, then to).
    pub rows: Vec<Transition>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// A state: `(start)`, or channel names joined by ` > `.
    pub from: String,
    /// A state, `(conversion)` or `(null)`.
    pub to: String,
    /// Journeys that made this step (weighted like the chain: conversions + null journeys).
    pub count: f64,
    /// `count` over every step out of `from`.
    pub probability: f64,
}

/// The transition table of `markov`, channels named by `names`, at most `max_rows` rows.
pub fn transition_table(markov: &MarkovCounts, names: &[String], max_rows: usize) -> Transitions {
    let all = markov.transitions();
    let name = |state: &ChainState| match state {
        ChainState::Start => START_STATE.to_owned(),
        ChainState::Conversion => CONVERSION_STATE.to_owned(),
        ChainState::Null => NULL_STATE.to_owned(),
        ChainState::Channels(key) => {
            join_channels(key.iter().filter(|&&c| c != NO_CHANNEL).map(|&c| names[c as usize].as_str()))
        }
    };
    let total = all.len() as u64;
    let by_count = |a: &(ChainState, ChainState, f64, f64), b: &(ChainState, ChainState, f64, f64)| -> Ordering {
        b.2.total_cmp(&a.2)
    };
    // Ties are ranked by "from", then "to" (a tab sorts before any printable character).
    let kept = top_by(all, max_rows, by_count, |row| format!("{}\t{}", name(&row.0), name(&row.1)));
    let rows = kept
        .into_iter()
        .map(|(from, to, count, probability)| Transition { from: name(&from), to: name(&to), count, probability })
        .collect::<Vec<_>>();
    Transitions { order: markov.order, total, truncated: (rows.len() as u64) < total, rows }
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub bucket: String,
    pub conversions: f64,
    pub value: f64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPositions {
    pub channel: String,
    #[serde(flatten)]
    pub positions: Positions,
}

impl ReportCounts {
    /// The reports, for channels `names` of which `seen` occur in journeys.
    pub fn report(&self, names: &[String], seen: &[bool], has_times: bool, top_paths: usize) -> Reports {
        let buckets = |labels: &[&str], tallies: &[Tally]| -> Vec<Bucket> {
            labels
                .iter()
                .enumerate()
                .map(|(i, label)| {
                    let t = tallies.get(i).copied().unwrap_or_default();
                    Bucket { bucket: (*label).to_owned(), conversions: t.conversions, value: t.value }
                })
                .collect()
        };
        let mut positions: Vec<ChannelPositions> = (0..names.len())
            .filter(|&c| seen[c])
            .map(|c| ChannelPositions {
                channel: names[c].clone(),
                positions: self.positions.get(c).copied().unwrap_or_default(),
            })
            .collect();
        positions.sort_by(|a, b| a.channel.cmp(&b.channel));
        Reports {
            path_length: buckets(&PATH_LENGTH_BUCKETS, &self.path_length),
            time_lag: if has_times { buckets(&TIME_LAG_BUCKETS, &self.time_lag) } else { Vec::new() },
            positions,
            paths: self.paths.report(names, top_paths),
            breakdown_positions: None,
            breakdown_paths: None,
            transitions: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_table_names_states_and_keeps_the_largest_counts() {
        let mut markov = MarkovCounts::new(1);
        markov.add_path(&[0, 1], 1.0, 0.0, 10.0);
        markov.add_path(&[1, 0], 0.0, 2.0, 0.0);
        let names = vec!["a > b".to_owned(), "(null)".to_owned()];
        let table = transition_table(&markov, &names, 100);
        let rows: Vec<(&str, &str, f64, f64)> =
            table.rows.iter().map(|t| (t.from.as_str(), t.to.as_str(), t.count, t.probability)).collect();
        assert_eq!(
            rows,
            [
                ("(start)", "\\(null)", 2.0, 2.0 / 3.0),
                ("\\(null)", "a \\> b", 2.0, 2.0 / 3.0),
                ("a \\> b", "(null)", 2.0, 2.0 / 3.0),
                ("(start)", "a \\> b", 1.0, 1.0 / 3.0),
                ("\\(null)", "(conversion)", 1.0, 1.0 / 3.0),
                ("a \\> b", "\\(null)", 1.0, 1.0 / 3.0),
            ]
        );
        assert_eq!((table.order, table.total, table.truncated), (1, 6, false));
        let cut = transition_table(&markov, &names, 2);
        assert_eq!((cut.rows.len(), cut.total, cut.truncated), (2, 6, true));
        assert_eq!(cut.rows[..], table.rows[..2]);
        let mut second = MarkovCounts::new(2);
        second.add_path(&[0, 1, 0], 1.0, 0.0, 1.0);
        let table = transition_table(&second, &["x".to_owned(), "y".to_owned()], 100);
        let froms: Vec<&str> = table.rows.iter().map(|t| t.from.as_str()).collect();
        assert_eq!(froms, ["(start)", "x > y", "y > x"]);
    }

    fn journey<'a>(channels: &'a [u32], times: &'a [i64], at: i64, conversions: f64) -> Journey<'a> {
        Journey {
            channels,
            touch_times: Some(times),
            conversion_time: Some(at),
            conversions,
            value: 10.0 * conversions,
            nulls: 0.0,
            truncated: false,
        }
    }

    #[test]
    fn lengths_lags_and_positions_by_hand() {
        let mut counts = ReportCounts::new(3, 100);
        let day = MICROS_PER_DAY;
        // 0 → 1 → 0 over 2.5 days; a single touch of 2 the same day; a null journey.
        counts.add(&journey(&[0, 1, 0], &[0, day, 2 * day], 2 * day + day / 2, 1.0));
        counts.add(&journey(&[2], &[5], 6, 1.0));
        counts.add(&Journey { conversions: 0.0, nulls: 1.0, ..journey(&[1], &[0], 0, 0.0) });
        assert_eq!(counts.path_length[2], Tally { conversions: 1.0, value: 10.0 });
        assert_eq!(counts.path_length[0], Tally { conversions: 1.0, value: 10.0 });
        assert_eq!(counts.time_lag[2].conversions, 1.0, "2.5 days is in 2-3");
        assert_eq!(counts.time_lag[0].conversions, 1.0);
        assert_eq!(counts.positions[0], Positions { only: 0.0, first: 1.0, middle: 0.0, last: 1.0 });
        assert_eq!(counts.positions[1], Positions { only: 0.0, first: 0.0, middle: 1.0, last: 0.0 });
        assert_eq!(counts.positions[2], Positions { only: 1.0, first: 0.0, middle: 0.0, last: 0.0 });
        let long: Vec<u32> = vec![0; 12];
        counts.add(&journey(&long, &[0; 12], 100 * day, 2.0));
        assert_eq!(counts.path_length[9].conversions, 2.0, "12 touches are 10+");
        assert_eq!(counts.time_lag[7].conversions, 2.0, "100 days are 61+");
        for (days, bucket) in [(0, 0), (1, 1), (3, 2), (4, 3), (14, 4), (15, 5), (60, 6), (61, 7)] {
            assert_eq!(lag_bucket(days), bucket, "{days} days");
        }
    }

    #[test]
    fn partials_from_before_reports_merge_both_ways() {
        let mut counts = ReportCounts::new(2, 100);
        counts.add(&journey(&[0, 1], &[0, 1], 2, 1.0));
        let old = ReportCounts::default();
        let mut merged = old.clone();
        merged.merge(&counts, &[1, 0], true);
        assert_eq!(merged.positions[1].first, 1.0, "channel 0 is channel 1 here");
        assert_eq!(merged.path_length[1].conversions, 1.0);
        counts.merge(&old, &[], true);
        assert_eq!(counts.path_length[1].conversions, 1.0);
        let report = ReportCounts::default().report(&["a".to_owned()], &[true], true, 50);
        assert_eq!((report.path_length.len(), report.positions[0].positions.only), (10, 0.0));
        assert_eq!(report.paths, None, "no paths were counted");
    }
}
