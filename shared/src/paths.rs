//! Top paths (docs/user-guide.md, "Reports"): the journeys' channel sequences with their
//! conversions, value and null journeys, exact up to `max_report_paths` distinct paths and a
//! mergeable heavy-hitters summary past it; and the one way a path or a Markov state is
//! written as text, escaped so that it reads back exactly whatever the channel names hold.
//!
//! [`PathCounts`] is additive like every other part of a partial: partials merge paths by
//! channel name (through the merge's channel map). Memory is bounded twice over: a path of
//! more than [`MAX_PATH_TOUCHES`] touches is kept as its first and last [`PATH_END_TOUCHES`]
//! touches and its length, and at most `max_report_paths` distinct paths are held. Past that
//! limit the counts become a Misra-Gries summary, run for each figure (conversions, value,
//! null journeys) on its own: the `(k+1)`-th largest count is subtracted from every count,
//! those left at zero are dropped, and what was subtracted is added up. Each figure of a path
//! is then at most that sum below the truth and never above it, merges included (the sums
//! of merged summaries add up), and every path whose true figure exceeds the sum is kept.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use hashbrown::HashTable;
use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};

/// The default of `top_paths`: converting and non-converting paths listed.
pub const DEFAULT_TOP_PATHS: u32 = 50;
/// The largest `top_paths`.
pub const MAX_TOP_PATHS: u32 = 1_000;
/// The default of `max_report_paths`: distinct paths counted exactly.
pub const DEFAULT_MAX_REPORT_PATHS: u32 = 100_000;
/// The bounds of `max_report_paths`.
pub const MIN_MAX_REPORT_PATHS: u32 = 4;
pub const MAX_MAX_REPORT_PATHS: u32 = 1_000_000;
/// A part's path table (a period's, a segment's, a segment period's) holds the whole's
/// `max_report_paths` divided by this, but at least [`MIN_PART_REPORT_PATHS`] (never more
/// than the whole's): parts may be many, and each keeps a table of its own.
pub const PART_REPORT_PATHS_DIVISOR: u32 = 100;
pub const MIN_PART_REPORT_PATHS: u32 = 1_000;

/// The most distinct paths a part's table holds exactly (see [`PART_REPORT_PATHS_DIVISOR`]).
pub fn part_report_paths(max_report_paths: u32) -> u32 {
    (max_report_paths / PART_REPORT_PATHS_DIVISOR).max(MIN_PART_REPORT_PATHS).min(max_report_paths)
}
/// Paths of more touches keep their first and last [`PATH_END_TOUCHES`] touches only.
pub const MAX_PATH_TOUCHES: usize = 32;
pub const PATH_END_TOUCHES: usize = MAX_PATH_TOUCHES / 2;

/// The separator between the channels of a path (and of a Markov state of order > 1).
pub const SEPARATOR: &str = " > ";
/// Stands for the touches left out of a path longer than [`MAX_PATH_TOUCHES`].
pub const GAP: &str = "…";
/// The Markov chain's own states in transition tables.
pub const START_STATE: &str = "(start)";
pub const CONVERSION_STATE: &str = "(conversion)";
pub const NULL_STATE: &str = "(null)";
/// Names that a channel would be mistaken for: written with a leading `\`.
const RESERVED: [&str; 4] = [GAP, START_STATE, CONVERSION_STATE, NULL_STATE];

/// A channel name as it is written in a path: `\` becomes `\\` and `>` becomes `\>`, and a
/// name that is exactly `…`, `(start)`, `(conversion)` or `(null)` gets a leading `\`. So
/// every `>` that is not escaped is a separator, and the path reads back exactly.
pub fn escape_channel(name: &str, out: &mut String) {
    if RESERVED.contains(&name) {
        out.push('\\');
    }
    for c in name.chars() {
        if c == '\\' || c == '>' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Separates a touch's channel from its breakdown values in a `breakdown_paths` touch.
pub const TOUCH_SEPARATOR: &str = " | ";

/// A touch of a `breakdown_paths` path as one name: its channel, then each breakdown value,
/// joined by [`TOUCH_SEPARATOR`], with `\` written `\\` and `|` written `\|` in each part
/// (so every `|` that is not escaped separates parts). Paths of such names are then joined
/// and escaped like channel names ([`join_channels`]), so both levels read back exactly.
pub fn touch_label<'a>(channel: &'a str, values: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, part) in std::iter::once(channel).chain(values).enumerate() {
        if i > 0 {
            out.push_str(TOUCH_SEPARATOR);
        }
        for c in part.chars() {
            if c == '\\' || c == '|' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// The channel and breakdown values of a touch written by [`touch_label`] (the inverse).
pub fn split_touch(label: &str) -> Vec<String> {
    let (mut parts, mut part, mut chars) = (Vec::new(), String::new(), label.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '\\' => part.push(chars.next().unwrap_or('\\')),
            ' ' if chars.peek() == Some(&'|') => {
                chars.next();
                if chars.peek() == Some(&' ') {
                    chars.next();
                }
                parts.push(std::mem::take(&mut part));
            }
            c => part.push(c),
        }
    }
    parts.push(part);
    parts
}

/// Channel names joined by [`SEPARATOR`], each escaped by [`escape_channel`].
pub fn join_channels<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push_str(SEPARATOR);
        }
        escape_channel(name, &mut out);
    }
    out
}

/// The channel names of a path written by [`join_channels`] (the inverse; a [`GAP`] comes
/// back as `None`). For readers of the tables, and the tests that they read back exactly.
pub fn split_path(path: &str) -> Vec<Option<String>> {
    let mut names = Vec::new();
    let (mut name, mut escaped_whole, mut chars) = (String::new(), false, path.chars().peekable());
    let mut finish = |name: &mut String, escaped_whole: &mut bool| {
        let token = std::mem::take(name);
        let gap = token == GAP && !*escaped_whole;
        names.push((!gap).then_some(token));
        *escaped_whole = false;
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next @ ('\\' | '>')) => name.push(next),
                Some(next) if name.is_empty() => {
                    escaped_whole = true;
                    name.push(next);
                }
                Some(next) => name.push(next),
                None => name.push('\\'),
            },
            ' ' if chars.peek() == Some(&'>') => {
                // " > " is a separator; the name's own spaces stay.
                chars.next();
                if chars.peek() == Some(&' ') {
                    chars.next();
                }
                finish(&mut name, &mut escaped_whole);
            }
            c => name.push(c),
        }
    }
    if !path.is_empty() {
        finish(&mut name, &mut escaped_whole);
    }
    names
}

/// Conversions, value and null journeys, in that order.
type Figures = [f64; 3];
const CONVERSIONS: usize = 0;
const VALUE: usize = 1;
const NULLS: usize = 2;

/// The paths of a partial's journeys with their figures (see the module's documentation).
///
/// A path's key is its touches, then its channel ids (all of them, or the first and last
/// [`PATH_END_TOUCHES`] when it has more than [`MAX_PATH_TOUCHES`]). Keys lie one after
/// another in one buffer and the table holds where each starts: counting a journey allocates
/// nothing, which matters because most paths of a large input are met once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "PathsWire", from = "PathsWire")]
pub struct PathCounts {
    /// Most distinct paths held (`max_report_paths`); 0 in partials of older versions.
    limit: u32,
    /// The keys of the slots, end to end (and of dropped paths until the next summary step).
    keys: Vec<u32>,
    slots: HashTable<Slot>,
    /// Per figure, what the summary subtracted from every count: 0 while exact.
    lost: Figures,
    /// True once the limit was reached here or in a merged partial.
    summarised: bool,
    key: Vec<u32>,
}

/// A path held: its key's place in [`PathCounts::keys`], the key's hash, the figures.
#[derive(Debug, Clone)]
struct Slot {
    hash: u64,
    start: u32,
    len: u32,
    figures: Figures,
}

impl Slot {
    fn key<'a>(&self, keys: &'a [u32]) -> &'a [u32] {
        &keys[self.start as usize..(self.start + self.len) as usize]
    }
}

fn hash_key(key: &[u32]) -> u64 {
    let mut hasher = FxHasher::default();
    key.hash(&mut hasher);
    hasher.finish()
}

impl PartialEq for PathCounts {
    /// The same paths with the same figures, however they are stored.
    fn eq(&self, other: &Self) -> bool {
        self.limit == other.limit
            && self.lost == other.lost
            && self.summarised == other.summarised
            && self.sorted_entries() == other.sorted_entries()
    }
}

/// The stored form: entries sorted by key, so equal counts serialise equally.
#[derive(Serialize, Deserialize)]
struct PathsWire {
    limit: u32,
    entries: Vec<(Box<[u32]>, Figures)>,
    lost: Figures,
    summarised: bool,
}

impl From<PathCounts> for PathsWire {
    fn from(counts: PathCounts) -> Self {
        let entries = counts.sorted_entries().into_iter().map(|(key, figures)| (key.into(), figures)).collect();
        PathsWire { limit: counts.limit, entries, lost: counts.lost, summarised: counts.summarised }
    }
}

impl From<PathsWire> for PathCounts {
    fn from(wire: PathsWire) -> Self {
        let mut counts =
            PathCounts { limit: wire.limit, lost: wire.lost, summarised: wire.summarised, ..Default::default() };
        for (key, figures) in &wire.entries {
            counts.add_key(key, figures);
        }
        counts
    }
}

impl PathCounts {
    pub fn new(max_report_paths: u32) -> PathCounts {
        PathCounts { limit: max_report_paths.max(MIN_MAX_REPORT_PATHS), ..PathCounts::default() }
    }

    /// Distinct paths held now.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn entries(&self) -> impl Iterator<Item = (&[u32], &Figures)> {
        self.slots.iter().map(|slot| (slot.key(&self.keys), &slot.figures))
    }

    fn sorted_entries(&self) -> Vec<(&[u32], Figures)> {
        let mut entries: Vec<(&[u32], Figures)> = self.entries().map(|(key, f)| (key, *f)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries
    }

    /// Adds a journey with at least one touch (others are not paths).
    pub(crate) fn add(&mut self, channels: &[u32], conversions: f64, value: f64, nulls: f64) {
        if channels.is_empty() || conversions + nulls <= 0.0 {
            return;
        }
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.push(u32::try_from(channels.len()).unwrap_or(u32::MAX));
        if channels.len() <= MAX_PATH_TOUCHES {
            key.extend_from_slice(channels);
        } else {
            key.extend_from_slice(&channels[..PATH_END_TOUCHES]);
            key.extend_from_slice(&channels[channels.len() - PATH_END_TOUCHES..]);
        }
        self.add_key(&key, &[conversions, value, nulls]);
        self.key = key;
        self.bound();
    }

    /// Adds a path's figures, without the summary step.
    fn add_key(&mut self, key: &[u32], figures: &Figures) {
        let hash = hash_key(key);
        let keys = &self.keys;
        match self.slots.find_mut(hash, |slot| slot.hash == hash && slot.key(keys) == key) {
            Some(slot) => {
                for (m, f) in slot.figures.iter_mut().zip(figures) {
                    *m += f;
                }
            }
            None => {
                let slot = Slot { hash, start: self.keys.len() as u32, len: key.len() as u32, figures: *figures };
                self.keys.extend_from_slice(key);
                self.slots.insert_unique(hash, slot, |slot| slot.hash);
            }
        }
    }

    /// The summary step, when more paths than the limit are held.
    fn bound(&mut self) {
        if self.slots.len() > self.limit as usize {
            self.summarise();
        }
    }

    /// One Misra-Gries step per figure, keeping the `limit / 4` largest counts of each (so
    /// at most three quarters of the limit stay, and a quarter are added before the next).
    fn summarise(&mut self) {
        let keep = (self.limit as usize / 4).max(1);
        let mut counts: Vec<f64> = Vec::with_capacity(self.slots.len());
        for figure in [CONVERSIONS, VALUE, NULLS] {
            counts.clear();
            counts.extend(self.slots.iter().map(|slot| slot.figures[figure]).filter(|&x| x > 0.0));
            if counts.len() <= keep {
                continue;
            }
            // The (keep + 1)-th largest: at most `keep` counts stay above it.
            let (_, &mut cut, _) = counts.select_nth_unstable_by(keep, |a, b| b.total_cmp(a));
            for slot in self.slots.iter_mut() {
                slot.figures[figure] = (slot.figures[figure] - cut).max(0.0);
            }
            self.lost[figure] += cut;
        }
        self.slots.retain(|slot| slot.figures.iter().any(|&x| x > 0.0));
        // The kept keys, moved together (the dropped ones' room is freed).
        let mut keys = Vec::with_capacity(self.slots.iter().map(|slot| slot.len as usize).sum());
        for slot in self.slots.iter_mut() {
            let start = keys.len() as u32;
            keys.extend_from_slice(slot.key(&self.keys));
            slot.start = start;
        }
        self.keys = keys;
        self.summarised = true;
    }

    /// The same paths with channel `c` renumbered `channel_map[c]`.
    pub(crate) fn remapped(&self, channel_map: &[u32]) -> PathCounts {
        let mut out = PathCounts { limit: self.limit, ..PathCounts::default() };
        out.merge(self, channel_map);
        out
    }

    /// Adds `other`, whose channel `c` is our `channel_map[c]`: every path's figures are
    /// added, then the summary step is taken once if the limit is passed. Sums do not depend
    /// on the order paths are added in, nor does that step (it depends on the figures
    /// only), so any grouping of the same partials in the same merges gives the same counts.
    pub(crate) fn merge(&mut self, other: &PathCounts, channel_map: &[u32]) {
        if self.limit == 0 {
            self.limit = other.limit;
        }
        let mut key = std::mem::take(&mut self.key);
        for (their_key, figures) in other.entries() {
            key.clear();
            key.push(their_key[0]);
            key.extend(their_key[1..].iter().map(|&c| channel_map[c as usize]));
            self.add_key(&key, figures);
        }
        self.key = key;
        for (mine, theirs) in self.lost.iter_mut().zip(other.lost) {
            *mine += theirs;
        }
        self.summarised |= other.summarised;
        self.bound();
    }

    /// The report: the `top` paths with the most conversions, and the `top` with the most
    /// null journeys, for channels `names`. `None` for partials of older versions.
    pub fn report(&self, names: &[String], top: usize) -> Option<TopPaths> {
        if self.limit == 0 {
            return None;
        }
        let entries: Vec<(&[u32], &Figures)> = self.entries().collect();
        let row = |(key, f): (&[u32], &Figures)| PathRow {
            path: self.path_string(key, names),
            touches: key[0],
            journeys: f[CONVERSIONS] + f[NULLS],
            conversions: f[CONVERSIONS],
            value: f[VALUE],
            null_journeys: f[NULLS],
        };
        let converting = entries.iter().copied().filter(|(_, f)| f[CONVERSIONS] > 0.0).collect();
        let converting = top_by(
            converting,
            top,
            |a, b| b.1[CONVERSIONS].total_cmp(&a.1[CONVERSIONS]).then(b.1[VALUE].total_cmp(&a.1[VALUE])),
            |&(key, _)| self.path_string(key, names),
        );
        let non_converting = entries.iter().copied().filter(|(_, f)| f[NULLS] > 0.0).collect();
        let non_converting = top_by(
            non_converting,
            top,
            |a, b| b.1[NULLS].total_cmp(&a.1[NULLS]),
            |&(key, _)| self.path_string(key, names),
        );
        let exact = !self.summarised;
        Some(TopPaths {
            exact,
            distinct_paths: exact.then_some(self.slots.len() as u64),
            error_bound: PathFigures {
                conversions: self.lost[CONVERSIONS],
                value: self.lost[VALUE],
                null_journeys: self.lost[NULLS],
            },
            converting: converting.into_iter().map(row).collect(),
            non_converting: non_converting.into_iter().map(row).collect(),
        })
    }

    fn path_string(&self, key: &[u32], names: &[String]) -> String {
        let (touches, ids) = (key[0] as usize, &key[1..]);
        let name = |&c: &u32| names[c as usize].as_str();
        if touches == ids.len() {
            join_channels(ids.iter().map(name))
        } else {
            let (head, tail) = ids.split_at(PATH_END_TOUCHES);
            let mut out = join_channels(head.iter().map(name));
            out.push_str(SEPARATOR);
            out.push_str(GAP);
            out.push_str(SEPARATOR);
            out.push_str(&join_channels(tail.iter().map(name)));
            out
        }
    }
}

/// The `n` first of `items` by `order`, ties broken by `name` (ascending); names are made
/// for the items that tie at the cut only, and at most `n` of those are held at a time.
pub(crate) fn top_by<T: Copy>(
    mut items: Vec<T>,
    n: usize,
    order: impl Fn(&T, &T) -> Ordering,
    name: impl Fn(&T) -> String,
) -> Vec<T> {
    items.sort_unstable_by(&order);
    let mut named: Vec<(T, String)> = if items.len() <= n {
        items.iter().map(|item| (*item, name(item))).collect()
    } else {
        let cut = items[n - 1];
        let better = items.iter().take_while(|item| order(item, &cut) == Ordering::Less).count();
        let mut kept: Vec<(T, String)> = items[..better].iter().map(|item| (*item, name(item))).collect();
        let wanted = n - better;
        // The `wanted` smallest names among the ties: a max-heap of that many.
        let mut heap: BinaryHeap<(String, usize)> = BinaryHeap::with_capacity(wanted + 1);
        for (i, item) in items.iter().enumerate().skip(better) {
            if order(item, &cut) != Ordering::Equal {
                break;
            }
            heap.push((name(item), i));
            if heap.len() > wanted {
                heap.pop();
            }
        }
        kept.extend(heap.into_iter().map(|(name, i)| (items[i], name)));
        kept
    };
    named.sort_by(|a, b| order(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
    named.into_iter().map(|(item, _)| item).collect()
}

/// Conversions, value and null journeys.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PathFigures {
    pub conversions: f64,
    pub value: f64,
    pub null_journeys: f64,
}

/// The top paths of a result.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopPaths {
    /// True when every figure below is exact: the input had at most `max_report_paths`
    /// distinct paths in every partial and merge.
    pub exact: bool,
    /// Distinct paths of the journeys (when `exact`).
    pub distinct_paths: Option<u64>,
    /// How far below the truth each figure of a listed path may be (0 when `exact`); every
    /// path whose true figure is above the bound is counted.
    pub error_bound: PathFigures,
    /// The paths with the most conversions (then value, then path), at most `top_paths`.
    pub converting: Vec<PathRow>,
    /// The paths with the most journeys that did not convert, at most `top_paths`.
    pub non_converting: Vec<PathRow>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathRow {
    /// Channel names joined by ` > ` (escaped: docs/user-guide.md, "Reports").
    pub path: String,
    /// The journeys' touches (a longer path than 32 is written with `…` for its middle).
    pub touches: u32,
    /// Journeys on this path: `conversions` + `null_journeys`.
    pub journeys: f64,
    pub conversions: f64,
    pub value: f64,
    pub null_journeys: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn escaped_paths_read_back_exactly() {
        let awkward = ["a > b", "back\\slash", ">", "\\", "…", "(start)", "(null)", " spaced ", "x\\>y", "", "plain"];
        let path = join_channels(awkward.iter().copied());
        assert_eq!(
            path,
            "a \\> b > back\\\\slash > \\> > \\\\ > \\… > \\(start) > \\(null) >  spaced  > x\\\\\\>y >  > plain"
        );
        let back: Vec<Option<String>> = split_path(&path);
        assert_eq!(back, awkward.iter().map(|s| Some((*s).to_owned())).collect::<Vec<_>>());
        assert_eq!(split_path("a > … > b"), vec![Some("a".to_owned()), None, Some("b".to_owned())]);
        assert!(split_path("").is_empty());
    }

    #[test]
    fn touch_labels_in_escaped_paths_read_back_exactly() {
        let touches: [(&str, &[&str]); 4] =
            [("a|b", &["c"]), ("x | y", &["(none)", "back\\slash"]), ("e > f", &["|", ""]), ("plain", &["v "])];
        let labels: Vec<String> = touches.iter().map(|(c, v)| touch_label(c, v.iter().copied())).collect();
        assert_eq!(labels[0], "a\\|b | c");
        assert_eq!(labels[1], "x \\| y | (none) | back\\\\slash");
        let path = join_channels(labels.iter().map(String::as_str));
        for (name, (channel, values)) in split_path(&path).iter().zip(touches) {
            let parts = split_touch(name.as_deref().unwrap());
            assert_eq!(parts[0], channel);
            assert_eq!(parts[1..], *values, "{path}");
        }
    }

    #[test]
    fn paths_count_journeys_conversions_value_and_nulls_by_hand() {
        let mut counts = PathCounts::new(100);
        counts.add(&[0, 1], 1.0, 10.0, 0.0);
        counts.add(&[0, 1], 1.0, 30.0, 0.0);
        counts.add(&[0, 1], 0.0, 0.0, 1.0);
        counts.add(&[1], 0.0, 0.0, 2.0);
        counts.add(&[1, 0], 0.5, 5.0, 0.0);
        counts.add(&[], 1.0, 1.0, 0.0);
        let report = counts.report(&names(&["email", "search"]), 50).unwrap();
        assert!(report.exact && report.distinct_paths == Some(3));
        let rows: Vec<(&str, u32, f64, f64, f64, f64)> = report
            .converting
            .iter()
            .map(|r| (r.path.as_str(), r.touches, r.journeys, r.conversions, r.value, r.null_journeys))
            .collect();
        assert_eq!(rows, [("email > search", 2, 3.0, 2.0, 40.0, 1.0), ("search > email", 2, 0.5, 0.5, 5.0, 0.0)]);
        let nulls: Vec<(&str, f64)> =
            report.non_converting.iter().map(|r| (r.path.as_str(), r.null_journeys)).collect();
        assert_eq!(nulls, [("search", 2.0), ("email > search", 1.0)]);
        assert_eq!(counts.report(&names(&["email", "search"]), 1).unwrap().converting.len(), 1);
    }

    #[test]
    fn ties_are_ranked_by_path_whatever_the_insertion_order() {
        let mut a = PathCounts::new(100);
        let mut b = PathCounts::new(100);
        for c in 0..10u32 {
            a.add(&[c], 1.0, 1.0, 0.0);
            b.add(&[9 - c], 1.0, 1.0, 0.0);
        }
        let names: Vec<String> = (0..10).map(|c| format!("c{c}")).collect();
        let (ra, rb) = (a.report(&names, 3).unwrap(), b.report(&names, 3).unwrap());
        assert_eq!(ra, rb);
        let paths: Vec<&str> = ra.converting.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["c0", "c1", "c2"]);
    }

    #[test]
    fn long_paths_keep_their_ends_and_length() {
        let mut counts = PathCounts::new(100);
        let long: Vec<u32> = (0..40).collect();
        counts.add(&long, 1.0, 2.0, 0.0);
        let mut other = long.clone();
        other[20] = 39;
        counts.add(&other, 1.0, 2.0, 0.0);
        let names: Vec<String> = (0..40).map(|c| format!("c{c}")).collect();
        let report = counts.report(&names, 5).unwrap();
        assert_eq!(report.converting.len(), 1, "they differ in the middle only");
        let row = &report.converting[0];
        assert_eq!((row.touches, row.conversions), (40, 2.0));
        let parts = split_path(&row.path);
        assert_eq!(parts.len(), 2 * PATH_END_TOUCHES + 1);
        assert_eq!(parts[PATH_END_TOUCHES], None);
        assert_eq!(parts[0].as_deref(), Some("c0"));
        assert_eq!(parts.last().unwrap().as_deref(), Some("c39"));
    }

    #[test]
    fn past_the_limit_the_summary_is_bounded_and_within_its_error_bound() {
        // 40 distinct paths, path i with i + 1 conversions: more than a limit of 8 holds.
        let mut counts = PathCounts::new(8);
        let mut truth = Vec::new();
        for round in 0..3 {
            for i in 0..40u32 {
                counts.add(&[i, i + 1], f64::from(i + 1), 0.0, if round == 0 { 1.0 } else { 0.0 });
                assert!(counts.len() <= 8, "never more than the limit");
            }
        }
        for i in 0..40u32 {
            truth.push(3.0 * f64::from(i + 1));
        }
        let names: Vec<String> = (0..41).map(|c| format!("c{c}")).collect();
        let report = counts.report(&names, 5).unwrap();
        assert!(!report.exact && report.distinct_paths.is_none());
        let bound = report.error_bound.conversions;
        assert!(bound > 0.0 && bound <= truth.iter().sum::<f64>() / 3.0, "Misra-Gries: at most N / (k + 1)");
        for row in &report.converting {
            let i = split_path(&row.path)[0].as_ref().unwrap()[1..].parse::<usize>().unwrap();
            assert!(row.conversions <= truth[i] + 1e-9 && row.conversions >= truth[i] - bound - 1e-9, "{row:?}");
        }
        // Every path whose conversions are above the bound is still counted.
        let all = counts.report(&names, 100).unwrap();
        for (i, _) in truth.iter().enumerate().filter(|&(_, &t)| t > bound) {
            let path = format!("c{i} > c{}", i + 1);
            assert!(all.converting.iter().any(|r| r.path == path), "{path} (bound {bound})");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// However journeys are split into partials and merged, with a limit small enough to
        /// summarise: no path is held past the limit, every figure is within its bound of the
        /// truth and never above it, and every path whose figure is above the bound is kept.
        #[test]
        fn summaries_stay_within_their_bound_over_any_merge(
            journeys in proptest::collection::vec(
                (proptest::collection::vec(0u32..4, 1..4), 0u8..3, 0u8..3, 0u8..20),
                1..150,
            ),
            parts in 1usize..6,
            limit in 4u32..12,
        ) {
            let mut truth: rustc_hash::FxHashMap<Vec<u32>, Figures> = rustc_hash::FxHashMap::default();
            let mut partials: Vec<PathCounts> = (0..parts).map(|_| PathCounts::new(limit)).collect();
            for (i, (path, conversions, nulls, value)) in journeys.iter().enumerate() {
                let (c, n) = (f64::from(*conversions), f64::from(*nulls));
                let v = if c > 0.0 { f64::from(*value) } else { 0.0 };
                partials[i % parts].add(path, c, v, n);
                if c + n > 0.0 {
                    let t = truth.entry(path.clone()).or_default();
                    t[CONVERSIONS] += c;
                    t[VALUE] += v;
                    t[NULLS] += n;
                }
                proptest::prop_assert!(partials[i % parts].len() <= limit as usize);
            }
            let mut total = PathCounts::new(limit);
            let identity: Vec<u32> = (0..4).collect();
            for partial in &partials {
                total.merge(partial, &identity);
                proptest::prop_assert!(total.len() <= limit as usize);
            }
            for (path, want) in &truth {
                let mut key = vec![path.len() as u32];
                key.extend(path);
                let got = total.entries().find(|(k, _)| *k == &key[..]).map(|(_, f)| *f).unwrap_or_default();
                for figure in [CONVERSIONS, VALUE, NULLS] {
                    let (g, w, bound) = (got[figure], want[figure], total.lost[figure]);
                    proptest::prop_assert!(g <= w + 1e-9 && g >= w - bound - 1e-9, "{:?} {}: {} vs {} (bound {})", path, figure, g, w, bound);
                    if w > bound + 1e-9 {
                        proptest::prop_assert!(g > 0.0, "{:?} {} above the bound is kept", path, figure);
                    }
                }
            }
            if !total.summarised {
                proptest::prop_assert_eq!(total.lost, [0.0; 3]);
                proptest::prop_assert_eq!(total.len(), truth.len());
            }
        }
    }

    #[test]
    fn merging_maps_channels_by_name_and_adds_bounds() {
        let mut left = PathCounts::new(100);
        left.add(&[0, 1], 1.0, 10.0, 0.0);
        let mut right = PathCounts::new(100);
        // Right numbers the channels the other way round.
        right.add(&[1, 0], 2.0, 5.0, 1.0);
        left.merge(&right, &[1, 0]);
        let report = left.report(&names(&["a", "b"]), 5).unwrap();
        assert_eq!(report.converting.len(), 1);
        assert_eq!((report.converting[0].conversions, report.converting[0].value), (3.0, 15.0));
        let mut small = PathCounts::new(4);
        for i in 0..10u32 {
            small.add(&[i], 1.0, 0.0, 0.0);
        }
        let lost = small.lost[CONVERSIONS];
        let mut total = PathCounts::new(4);
        total.merge(&small, &(0..10).collect::<Vec<_>>());
        let ten: Vec<String> = (0..10).map(|c| c.to_string()).collect();
        assert!(!total.report(&ten, 5).unwrap().exact);
        assert!(total.lost[CONVERSIONS] >= lost);
        let json = serde_json::to_string(&total).unwrap();
        let back: PathCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
