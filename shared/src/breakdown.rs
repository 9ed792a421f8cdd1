//! Credit by channel × breakdown values (`options.breakdown`: campaign, ad group,
//! creative...; docs/user-guide.md, "Breakdown"). Rows carry touch keys (`chunk::touch_key`);
//! a partial sums, per key, what each model's channel credit is made of, additively like
//! every other sum: rule models the weights of the key's touches (models that credit a
//! journey's channels rather than its touches, `participation` and `shapley`, split a
//! channel's credit evenly over its touches in the journey); for `markov` and `shao_li`,
//! whose credit exists per channel only, the share of each key among its channel's touches,
//! journey by journey, by which the channel's credit is split at the end.

use std::fmt;

use rustc_hash::FxHashMap;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chunk::decode_touch_key;
use crate::error::AttributionError;
use crate::exact::Exact;
use crate::intervals::RowInterval;
use crate::options::ModelId;
use crate::paths::{PathCounts, TopPaths, touch_label};
use crate::positions::Positions;

/// What a breakdown row shows for a touch without a value in that column.
pub const NO_VALUE: &str = "(none)";

/// Per-key sums of one kind, indexed like the keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySums {
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
    /// A replicate's conversions and value by key, exact (`exact.rs`; its `f64` fields stay
    /// 0); as long as the keys it has met.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact: Vec<[Exact; 2]>,
}

impl KeySums {
    fn zeros(n: usize) -> KeySums {
        KeySums { conversions: vec![0.0; n], value: vec![0.0; n], exact: Vec::new() }
    }

    fn push_zero(&mut self) {
        self.conversions.push(0.0);
        self.value.push(0.0);
    }

    fn add_at(&mut self, key: usize, other: &KeySums, from: usize) {
        self.conversions[key] += other.conversions[from];
        self.value[key] += other.value[from];
    }

    fn retain(&mut self, keep: &[bool]) {
        let mut i = 0;
        self.conversions.retain(|_| (keep[i], i += 1).0);
        i = 0;
        self.value.retain(|_| (keep[i], i += 1).0);
        i = 0;
        self.exact.retain(|_| (keep[i], i += 1).0);
    }
}

/// `mine[key] += theirs[from]`, each as long as the keys it has met.
fn add_exact_at<const N: usize>(mine: &mut Vec<[Exact; N]>, key: usize, theirs: &[[Exact; N]], from: usize) {
    if let Some(sums) = theirs.get(from) {
        crate::exact::add_all_at(mine, key, sums);
    }
}

/// The per-key shares that split the credit of `markov` and `shao_li`: over converting journeys, conversions (and value) ×
/// the key's touches / its channel's touches in the journey; over every journey, the same
/// with conversions + non-conversions (`presence`), for a channel credited by the chain
/// though it never touched a converting journey.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkovShares {
    pub converting: KeySums,
    pub presence: Vec<f64>,
    /// A replicate's shares by key (conversions, value, presence), exact (`exact.rs`; its
    /// `f64` fields stay 0); as long as the keys it has met.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exact: Vec<[Exact; 3]>,
}

/// The breakdown sums of a partial. A key is a channel (an index into the partial's
/// channels) with its breakdown values; every vector is indexed by key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BreakdownSums {
    pub channel: Vec<u32>,
    /// The key's value in each breakdown column (`None`: the touch had none).
    pub values: Vec<Vec<Option<String>>>,
    /// Keys met among a journey's touches; only they are reported.
    pub seen: Vec<bool>,
    /// Per rule model, in the order of the partial's `rules`.
    pub rules: Vec<KeySums>,
    /// The shares of [`splits_channel_credit`] models (named for the first of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markov: Option<MarkovShares>,
    /// Where the key's touches stand in converting journeys (the `breakdown_positions`
    /// report); empty in partials of older versions.
    #[serde(default)]
    pub positions: Vec<Positions>,
    /// Every journey's path of touch keys (the `breakdown_paths` report), keyed by key like
    /// the sums above; without paths (limit 0) in partials of older versions.
    #[serde(default)]
    pub paths: PathCounts,
    /// A replicate's: its sums are the `exact` ones (`exact.rs`), its `f64` sums and positions
    /// stay empty (see [`BreakdownSums::for_replicates`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// Keys by the hash of their (channel, values), built when first needed (merging), so
    /// that a lookup allocates nothing.
    #[serde(skip)]
    index: KeyIndex,
}

/// Keys by the hash of (channel, values): the first key of each hash, and the rare others
/// whose hash collides with it.
#[derive(Debug, Clone, Default)]
struct KeyIndex {
    first: FxHashMap<u64, u32>,
    colliding: FxHashMap<u64, Vec<u32>>,
    len: usize,
}

fn key_hash(channel: u32, values: &[Option<String>]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = rustc_hash::FxHasher::default();
    channel.hash(&mut hasher);
    values.hash(&mut hasher);
    hasher.finish()
}

impl PartialEq for BreakdownSums {
    /// The index is a cache, not part of the value.
    fn eq(&self, other: &Self) -> bool {
        self.channel == other.channel
            && self.values == other.values
            && self.seen == other.seen
            && self.rules == other.rules
            && self.markov == other.markov
            && self.positions == other.positions
            && self.paths == other.paths
            && self.exact == other.exact
    }
}

/// The channels of a chunk's touch keys, and each key's channel and values.
pub(crate) struct TouchKeys {
    /// Distinct channels, in order of first appearance among the keys.
    pub channels: Vec<String>,
    pub key_channel: Vec<u32>,
    pub key_values: Vec<Vec<Option<String>>>,
}

impl TouchKeys {
    /// Decodes the touch keys of a chunk's dictionary; every key gets `levels` values.
    pub(crate) fn decode(keys: &[impl AsRef<str>], levels: usize) -> TouchKeys {
        let mut ids: FxHashMap<String, u32> = FxHashMap::default();
        let mut channels = Vec::new();
        let mut key_channel = Vec::with_capacity(keys.len());
        let mut key_values = Vec::with_capacity(keys.len());
        for key in keys {
            let (channel, mut values) = decode_touch_key(key.as_ref());
            values.resize(levels, None);
            let id = *ids.entry(channel).or_insert_with_key(|channel| {
                channels.push(channel.clone());
                (channels.len() - 1) as u32
            });
            key_channel.push(id);
            key_values.push(values);
        }
        TouchKeys { channels, key_channel, key_values }
    }
}

impl BreakdownSums {
    /// No keys yet, sums for `rules` rule models and, if asked, the shares of `markov` and `shao_li`.
    pub fn new(rules: usize, markov: bool) -> BreakdownSums {
        BreakdownSums {
            rules: vec![KeySums::default(); rules],
            markov: markov.then(MarkovShares::default),
            ..BreakdownSums::default()
        }
    }

    /// Zero sums for these keys (distinct).
    pub(crate) fn with_keys(
        rules: usize,
        markov: bool,
        channel: Vec<u32>,
        values: Vec<Vec<Option<String>>>,
    ) -> BreakdownSums {
        let n = channel.len();
        BreakdownSums {
            channel,
            values,
            seen: vec![false; n],
            rules: vec![KeySums::zeros(n); rules],
            markov: markov.then(|| MarkovShares {
                converting: KeySums::zeros(n),
                presence: vec![0.0; n],
                exact: Vec::new(),
            }),
            positions: vec![Positions::default(); n],
            paths: PathCounts::default(),
            exact: false,
            index: KeyIndex::default(),
        }
    }

    /// The same keys without sums, for a bootstrap replicate: it keeps exact sums only, grown
    /// as journeys meet the keys (no `f64` sums, positions or paths).
    pub(crate) fn for_replicates(&self) -> BreakdownSums {
        BreakdownSums {
            channel: self.channel.clone(),
            values: self.values.clone(),
            seen: vec![false; self.len()],
            ..self.for_part_replicates()
        }
    }

    /// The same without keys, for a part's replicate: a chunk numbers the keys its part meets
    /// as it meets them (growing `seen` alone) and names them once, at the end
    /// ([`BreakdownSums::name_keys`]), so a replicate of a part holds the part's keys only.
    pub(crate) fn for_part_replicates(&self) -> BreakdownSums {
        BreakdownSums {
            rules: vec![KeySums::default(); self.rules.len()],
            markov: self.markov.as_ref().map(|_| MarkovShares::default()),
            exact: true,
            ..BreakdownSums::default()
        }
    }

    /// Names the keys of a part's replicate (of [`BreakdownSums::for_part_replicates`]):
    /// its key `k` is `named`'s key `keys[k]`; the keys it did not meet are dropped.
    pub(crate) fn name_keys(&mut self, keys: &[u32], named: &BreakdownSums) {
        // Each key's number in `named` first, so that only the kept keys' values are copied.
        self.channel = keys.to_vec();
        self.values = vec![Vec::new(); keys.len()];
        self.seen.resize(keys.len(), false);
        self.compact();
        for (channel, values) in self.channel.iter_mut().zip(&mut self.values) {
            values.clone_from(&named.values[*channel as usize]);
            *channel = named.channel[*channel as usize];
        }
    }

    /// The same, counting paths of touch keys, at most `max_report_paths` distinct ones.
    pub(crate) fn with_paths(self, max_report_paths: u32) -> BreakdownSums {
        BreakdownSums { paths: PathCounts::new(max_report_paths), ..self }
    }

    pub fn len(&self) -> usize {
        self.channel.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channel.is_empty()
    }

    /// The key of (channel, values), added with zero sums when new.
    fn key(&mut self, channel: u32, values: &[Option<String>]) -> usize {
        if self.index.len != self.channel.len() {
            self.index = KeyIndex::default();
            for k in 0..self.channel.len() {
                self.index_key(key_hash(self.channel[k], &self.values[k]), k);
            }
        }
        let hash = key_hash(channel, values);
        if let Some(key) = self.find(hash, channel, values) {
            return key as usize;
        }
        let key = self.channel.len();
        self.channel.push(channel);
        self.values.push(values.to_vec());
        self.seen.push(false);
        if !self.exact {
            for rule in &mut self.rules {
                rule.push_zero();
            }
            if let Some(markov) = &mut self.markov {
                markov.converting.push_zero();
                markov.presence.push(0.0);
            }
            self.positions.push(Positions::default());
        }
        self.index_key(hash, key);
        key
    }

    /// The key of (channel, values), whose hash is `hash`, if there is one.
    fn find(&self, hash: u64, channel: u32, values: &[Option<String>]) -> Option<u32> {
        let same = |k: &u32| self.channel[*k as usize] == channel && self.values[*k as usize] == values;
        match self.index.first.get(&hash) {
            Some(k) if same(k) => Some(*k),
            Some(_) => self.index.colliding.get(&hash).and_then(|keys| keys.iter().find(|k| same(k)).copied()),
            None => None,
        }
    }

    fn index_key(&mut self, hash: u64, key: usize) {
        let index = &mut self.index;
        match index.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(key as u32);
            }
            std::collections::hash_map::Entry::Occupied(_) => index.colliding.entry(hash).or_default().push(key as u32),
        }
        index.len += 1;
    }

    /// Adds `other`'s sums, whose channel `c` is our `channel_map[c]`; `same_keys` when both
    /// have the same keys in the same order (the periods of one chunk); its paths too with
    /// `paths` (not for a part added to its whole, whose paths were counted straight).
    pub(crate) fn add_mapped(&mut self, other: &BreakdownSums, channel_map: &[u32], same_keys: bool, paths: bool) {
        // A partial of an older version has no positions: zeros. A replicate's sums are exact only.
        let floats = !self.exact && !other.exact;
        if !self.exact {
            self.positions.resize(self.len(), Positions::default());
        }
        let mut key_map = Vec::with_capacity(if paths { other.len() } else { 0 });
        for from in 0..other.len() {
            let key =
                if same_keys { from } else { self.key(channel_map[other.channel[from] as usize], &other.values[from]) };
            if paths {
                key_map.push(key as u32);
            }
            self.seen[key] |= other.seen[from];
            for (mine, theirs) in self.rules.iter_mut().zip(&other.rules) {
                if floats {
                    mine.add_at(key, theirs, from);
                }
                add_exact_at(&mut mine.exact, key, &theirs.exact, from);
            }
            if let (Some(mine), Some(theirs)) = (&mut self.markov, &other.markov) {
                if floats {
                    mine.converting.add_at(key, &theirs.converting, from);
                    mine.presence[key] += theirs.presence[from];
                }
                add_exact_at(&mut mine.exact, key, &theirs.exact, from);
            }
            if let Some(theirs) = other.positions.get(from).filter(|_| !self.exact) {
                self.positions[key].add(theirs);
            }
        }
        if paths {
            self.paths.merge(&other.paths, &key_map);
        }
    }

    /// A replicate's sums as `f64` sums in one order, whatever grouping of chunks made them:
    /// the keys its journeys met, channels renumbered by `channel_map` (into the order of
    /// their names), in the order of (channel, values); the exact sums rounded once each.
    pub(crate) fn canonical(&self, channel_map: &[u32]) -> Result<BreakdownSums, AttributionError> {
        let mut keys: Vec<usize> = (0..self.len()).filter(|&k| self.seen[k]).collect();
        let channel = |k: usize| channel_map[self.channel[k] as usize];
        keys.sort_by(|&a, &b| (channel(a), &self.values[a]).cmp(&(channel(b), &self.values[b])));
        let mut sums = BreakdownSums::with_keys(
            self.rules.len(),
            self.markov.is_some(),
            keys.iter().map(|&k| channel(k)).collect(),
            keys.iter().map(|&k| self.values[k].clone()).collect(),
        );
        sums.seen = vec![true; keys.len()];
        let exact = |sums: &[[Exact; 2]], k: usize, i: usize| sums.get(k).map_or(Ok(0.0), |s| s[i].to_f64());
        for (new, &k) in keys.iter().enumerate() {
            for (mine, theirs) in sums.rules.iter_mut().zip(&self.rules) {
                mine.conversions[new] = exact(&theirs.exact, k, 0)?;
                mine.value[new] = exact(&theirs.exact, k, 1)?;
            }
            if let (Some(mine), Some(theirs)) = (&mut sums.markov, &self.markov) {
                let [conversions, value, presence] = theirs.exact.get(k).copied().unwrap_or_default();
                mine.converting.conversions[new] = conversions.to_f64()?;
                mine.converting.value[new] = value.to_f64()?;
                mine.presence[new] = presence.to_f64()?;
            }
        }
        Ok(sums)
    }

    /// Drops the keys no journey touched (their sums are all zero).
    pub(crate) fn compact(&mut self) {
        if self.seen.iter().all(|&s| s) {
            return;
        }
        let keep = std::mem::take(&mut self.seen);
        let mut i = 0;
        self.channel.retain(|_| (keep[i], i += 1).0);
        i = 0;
        self.values.retain(|_| (keep[i], i += 1).0);
        for rule in &mut self.rules {
            rule.retain(&keep);
        }
        if let Some(markov) = &mut self.markov {
            markov.converting.retain(&keep);
            i = 0;
            markov.presence.retain(|_| (keep[i], i += 1).0);
            i = 0;
            markov.exact.retain(|_| (keep[i], i += 1).0);
        }
        i = 0;
        self.positions.retain(|_| (keep[i], i += 1).0);
        // The paths' keys renumbered as kept (a key no journey touched is in no path).
        let mut next = 0;
        let renumbered: Vec<u32> = keep.iter().map(|&kept| if kept { (next, next += 1).0 } else { u32::MAX }).collect();
        self.paths = self.paths.remapped(&renumbered);
        self.seen = vec![true; self.channel.len()];
        self.index = KeyIndex::default();
    }

    /// Key `k`'s breakdown values keyed by the columns `names` ([`NO_VALUE`] where it has none).
    fn labelled_values(&self, k: usize, names: &[String]) -> Vec<(String, String)> {
        names
            .iter()
            .zip(&self.values[k])
            .map(|(name, v)| (name.clone(), v.clone().unwrap_or_else(|| NO_VALUE.to_owned())))
            .collect()
    }

    /// The `breakdown_positions` report: every key met in a journey, by channel name, then
    /// by values.
    pub(crate) fn position_rows(&self, names: &[String], channels: &[String]) -> Vec<BreakdownPositions> {
        let mut rows: Vec<BreakdownPositions> = (0..self.len())
            .filter(|&k| self.seen[k])
            .map(|k| BreakdownPositions {
                channel: channels[self.channel[k] as usize].clone(),
                values: self.labelled_values(k, names),
                positions: self.positions.get(k).copied().unwrap_or_default(),
            })
            .collect();
        rows.sort_by(|a, b| (&a.channel, &a.values).cmp(&(&b.channel, &b.values)));
        rows
    }

    /// The `breakdown_paths` report: the top paths written with each touch's channel and
    /// values ([`touch_label`]); `None` without paths (partials of older versions).
    pub(crate) fn path_report(&self, names: &[String], channels: &[String], top: usize) -> Option<TopPaths> {
        let labels: Vec<String> = (0..self.len())
            .map(|k| {
                let values = self.values[k].iter().map(|v| v.as_deref().unwrap_or(NO_VALUE));
                touch_label(&channels[self.channel[k] as usize], values.take(names.len()))
            })
            .collect();
        self.paths.report(&labels, top)
    }

    /// The rows of one model: `credit(key)` gives a key's (conversions, value).
    fn rows(&self, names: &[String], channels: &[String], credit: impl Fn(usize) -> (f64, f64)) -> Vec<BreakdownRow> {
        (0..self.len())
            .filter(|&k| self.seen[k])
            .map(|k| {
                let (conversions, value) = credit(k);
                BreakdownRow {
                    channel: channels[self.channel[k] as usize].clone(),
                    values: self.labelled_values(k, names),
                    conversions,
                    value,
                    cost: None,
                    cpa: None,
                    roas: None,
                    interval: None,
                }
            })
            .collect()
    }

    /// The rows of the rule model at `index` of the partial's rules.
    pub(crate) fn rule_rows(&self, index: usize, names: &[String], channels: &[String]) -> Vec<BreakdownRow> {
        let sums = &self.rules[index];
        self.rows(names, channels, |k| (sums.conversions[k], sums.value[k]))
    }

    /// The rows of `markov` or `shao_li`: each channel's credit (`conversions[c]`,
    /// `value[c]`) split over its keys by their shares (see [`MarkovShares`]).
    pub(crate) fn channel_rows(
        &self,
        names: &[String],
        channels: &[String],
        conversions: &[f64],
        value: &[f64],
    ) -> Vec<BreakdownRow> {
        let Some(markov) = &self.markov else { return Vec::new() };
        let n = channels.len();
        let (mut by_conversions, mut by_value, mut by_presence) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for k in (0..self.len()).filter(|&k| self.seen[k]) {
            let c = self.channel[k] as usize;
            by_conversions[c] += markov.converting.conversions[k];
            by_value[c] += markov.converting.value[k];
            by_presence[c] += markov.presence[k];
        }
        // A channel's split: by value shares, else conversion shares, else presence.
        let share = |k: usize, sums: &[(&[f64], &[f64])]| {
            let c = self.channel[k] as usize;
            sums.iter().find(|(_, totals)| totals[c] > 0.0).map_or(0.0, |(shares, totals)| shares[k] / totals[c])
        };
        let converting = &markov.converting;
        let for_conversions: [(&[f64], &[f64]); 2] =
            [(&converting.conversions, &by_conversions), (&markov.presence, &by_presence)];
        let for_value: [(&[f64], &[f64]); 3] = [
            (&converting.value, &by_value),
            (&converting.conversions, &by_conversions),
            (&markov.presence, &by_presence),
        ];
        self.rows(names, channels, |k| {
            let c = self.channel[k] as usize;
            (conversions[c] * share(k, &for_conversions), value[c] * share(k, &for_value))
        })
    }
}

/// Whether a model's journey credit belongs to channels rather than to touches (it is
/// placed on a channel's first touch only to be summed per channel): its breakdown splits
/// a channel's credit in a journey evenly over the channel's touches there.
pub(crate) fn credits_channels(model: ModelId) -> bool {
    matches!(model, ModelId::Participation | ModelId::Shapley)
}

/// Whether a model's credit exists per channel only (computed from the whole partial, not
/// journey by journey): its breakdown splits a channel's credit over the channel's keys by
/// [`MarkovShares`].
pub(crate) fn splits_channel_credit(model: ModelId) -> bool {
    matches!(model, ModelId::Markov | ModelId::ShaoLi)
}

/// One channel × breakdown values under one model: `{"channel": "Email", "campaign":
/// "spring", "conversions": 12.5, "value": 980.0}`, the values keyed by the breakdown
/// columns as the user named them.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownRow {
    pub channel: String,
    /// (column as named, value), in the order of `options.breakdown`; [`NO_VALUE`] for a
    /// touch without one.
    pub values: Vec<(String, String)>,
    pub conversions: f64,
    pub value: f64,
    /// With a cost table and a breakdown by campaign alone: the cost of the row's (channel,
    /// campaign), its CPA and ROAS, each `Some(None)` (`null`) where undefined, as a
    /// channel's (`AttributionResult::add_spend`). Absent otherwise.
    pub cost: Option<Option<f64>>,
    pub cpa: Option<Option<f64>>,
    pub roas: Option<Option<f64>>,
    /// With `intervals`: the bootstrap intervals of its conversions and value (a part's rows
    /// have none past `intervals::MAX_PART_BREAKDOWN_REPLICATES`).
    pub interval: Option<RowInterval>,
}

impl BreakdownRow {
    /// The row's value in breakdown column `name`.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Serialize for BreakdownRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let spend = [("cost", self.cost), ("cpa", self.cpa), ("roas", self.roas)];
        let mut fields = vec![("conversions", FlatField::Figure(Some(self.conversions)))];
        fields.push(("value", FlatField::Figure(Some(self.value))));
        fields.extend(self.interval.as_ref().map(|interval| ("interval", FlatField::Interval(interval))));
        fields.extend(spend.into_iter().filter_map(|(name, figure)| Some((name, FlatField::Figure(figure?)))));
        serialize_flat(serializer, &self.channel, &self.values, &fields)
    }
}

impl<'de> Deserialize<'de> for BreakdownRow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const FIGURES: &[&str] = &["conversions", "value", "cost", "cpa", "roas"];
        let row = deserialize_flat(deserializer, FIGURES)?;
        Ok(BreakdownRow {
            conversions: row.number("conversions").ok_or_else(|| D::Error::missing_field("conversions"))?,
            value: row.number("value").ok_or_else(|| D::Error::missing_field("value"))?,
            cost: row.figure("cost"),
            cpa: row.figure("cpa"),
            roas: row.figure("roas"),
            channel: row.channel,
            values: row.values,
            interval: row.interval,
        })
    }
}

/// One channel × breakdown values (a touch key) in the `breakdown_positions` report: where
/// its touches stand in converting journeys, `{"channel": "Email", "campaign": "spring",
/// "only": 1.0, "first": 2.0, "middle": 0.0, "last": 3.0}`.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakdownPositions {
    pub channel: String,
    /// (column as named, value), as [`BreakdownRow::values`].
    pub values: Vec<(String, String)>,
    pub positions: Positions,
}

impl Serialize for BreakdownPositions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = &self.positions;
        let figure = |figure: f64| FlatField::Figure(Some(figure));
        let fields = [
            ("only", figure(p.only)),
            ("first", figure(p.first)),
            ("middle", figure(p.middle)),
            ("last", figure(p.last)),
        ];
        serialize_flat(serializer, &self.channel, &self.values, &fields)
    }
}

impl<'de> Deserialize<'de> for BreakdownPositions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        const FIGURES: &[&str] = &["only", "first", "middle", "last"];
        let row = deserialize_flat(deserializer, FIGURES)?;
        let number = |name: &'static str| row.number(name).ok_or_else(|| D::Error::missing_field(name));
        let positions = Positions {
            only: number("only")?,
            first: number("first")?,
            middle: number("middle")?,
            last: number("last")?,
        };
        Ok(BreakdownPositions { channel: row.channel, values: row.values, positions })
    }
}

/// A field of a flat row after its breakdown values: a figure (`None` written as `null`), or
/// a breakdown row's interval (an object; `interval` is no breakdown column's name).
enum FlatField<'a> {
    Figure(Option<f64>),
    Interval(&'a RowInterval),
}

impl Serialize for FlatField<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FlatField::Figure(figure) => figure.serialize(serializer),
            FlatField::Interval(interval) => interval.serialize(serializer),
        }
    }
}

/// Writes a row as one flat object: `channel`, the breakdown values keyed by their columns,
/// then the named fields.
fn serialize_flat<S: Serializer>(
    serializer: S,
    channel: &str,
    values: &[(String, String)],
    fields: &[(&str, FlatField<'_>)],
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1 + values.len() + fields.len()))?;
    map.serialize_entry("channel", channel)?;
    for (name, value) in values {
        map.serialize_entry(name, value)?;
    }
    for (name, field) in fields {
        map.serialize_entry(name, field)?;
    }
    map.end()
}

/// A flat row read back: its channel, every other string field (the breakdown values, in
/// order), the figures it names and a breakdown row's interval.
struct FlatRow {
    channel: String,
    values: Vec<(String, String)>,
    figures: Vec<(&'static str, Option<f64>)>,
    interval: Option<RowInterval>,
}

impl FlatRow {
    /// A figure that is present (a number, or `null` as `Some(None)`).
    fn figure(&self, name: &str) -> Option<Option<f64>> {
        self.figures.iter().find(|(n, _)| *n == name).map(|&(_, figure)| figure)
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.figure(name).flatten()
    }
}

/// Reads a flat row whose numeric fields are `figures` (any other field is a breakdown value).
fn deserialize_flat<'de, D: Deserializer<'de>>(
    deserializer: D,
    figures: &'static [&'static str],
) -> Result<FlatRow, D::Error> {
    struct RowVisitor(&'static [&'static str]);
    impl<'de> Visitor<'de> for RowVisitor {
        type Value = FlatRow;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a breakdown row: channel, the breakdown values and {}", self.0.join(", "))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let (mut channel, mut values, mut figures, mut interval) = (None, Vec::new(), Vec::new(), None);
            while let Some(key) = map.next_key::<String>()? {
                if key == "channel" {
                    channel = Some(map.next_value::<String>()?);
                } else if key == "interval" {
                    interval = map.next_value::<Option<RowInterval>>()?;
                } else if let Some(&name) = self.0.iter().find(|&&name| name == key) {
                    figures.push((name, map.next_value::<Option<f64>>()?));
                } else {
                    values.push((key, map.next_value::<String>()?));
                }
            }
            let channel = channel.ok_or_else(|| A::Error::missing_field("channel"))?;
            Ok(FlatRow { channel, values, figures, interval })
        }
    }
    deserializer.deserialize_map(RowVisitor(figures))
}

/// One channel × breakdown values under one model: the channel, one string per breakdown
/// column (named as the job's `breakdown` named it), and the credited conversions and value.
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(as = BreakdownRow)]
#[allow(dead_code)]
pub struct BreakdownRowSchema {
    pub channel: String,
    /// The breakdown columns, as the job's `breakdown` named them: `"campaign": "spring"`
    /// (`(none)` for touches without a value).
    #[serde(flatten)]
    pub values: std::collections::BTreeMap<String, String>,
    pub conversions: f64,
    pub value: f64,
    /// With a cost table and a breakdown by campaign alone (docs/user-guide.md, "Spend"):
    /// the cost of the row's (channel, campaign), `null` when no cost row names it.
    pub cost: Option<f64>,
    /// Cost per credited conversion (`null` without cost or conversions).
    pub cpa: Option<f64>,
    /// Credited value per unit of cost (`null` without cost or at cost 0).
    pub roas: Option<f64>,
    /// With `intervals`: the bootstrap intervals of its conversions and value.
    pub interval: Option<RowInterval>,
}

/// One channel × breakdown values in `breakdown_positions`: the channel, one string per
/// breakdown column, and its touches' positions in converting journeys (as `positions`).
#[cfg(feature = "openapi")]
#[derive(utoipa::ToSchema)]
#[schema(as = BreakdownPositions)]
#[allow(dead_code)]
pub struct BreakdownPositionsSchema {
    pub channel: String,
    /// The breakdown columns, as the job's `breakdown` named them (`(none)` for touches without a value).
    #[serde(flatten)]
    pub values: std::collections::BTreeMap<String, String>,
    pub only: f64,
    pub first: f64,
    pub middle: f64,
    pub last: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_one_flat_object_and_reads_back() {
        let row = BreakdownRow {
            channel: "email".into(),
            values: vec![("campaign".into(), "spring".into()), ("ad_group".into(), NO_VALUE.into())],
            conversions: 1.5,
            value: 20.0,
            cost: None,
            cpa: None,
            roas: None,
            interval: None,
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(
            json,
            r#"{"channel":"email","campaign":"spring","ad_group":"(none)","conversions":1.5,"value":20.0}"#
        );
        assert_eq!(serde_json::from_str::<BreakdownRow>(&json).unwrap(), row);
        // With campaign cost: the three figures last, `null` kept.
        let row = BreakdownRow { cost: Some(Some(10.0)), cpa: Some(Some(4.0)), roas: Some(None), ..row };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.ends_with(r#""value":20.0,"cost":10.0,"cpa":4.0,"roas":null}"#), "{json}");
        assert_eq!(serde_json::from_str::<BreakdownRow>(&json).unwrap(), row);
        // With intervals: an object after the value.
        let interval = RowInterval { conversions_low: 1.0, conversions_high: 2.0, value_low: 3.0, value_high: 4.0 };
        let row = BreakdownRow { interval: Some(interval), ..row };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains(r#""value":20.0,"interval":{"conversions_low":1.0,"#), "{json}");
        assert_eq!(serde_json::from_str::<BreakdownRow>(&json).unwrap(), row);
    }

    #[test]
    fn keys_whose_hashes_collide_are_told_apart() {
        let v = |s: &str| vec![Some(s.to_owned())];
        let mut sums = BreakdownSums::with_keys(0, false, vec![0, 0, 1], vec![v("a"), v("b"), v("a")]);
        for key in 0..3 {
            sums.index_key(42, key);
        }
        assert_eq!(sums.find(42, 0, &v("a")), Some(0));
        assert_eq!(sums.find(42, 0, &v("b")), Some(1));
        assert_eq!(sums.find(42, 1, &v("a")), Some(2));
        assert_eq!(sums.find(42, 1, &v("b")), None);
        assert_eq!(sums.find(7, 0, &v("a")), None);
    }

    #[test]
    fn merging_matches_keys_by_channel_and_values() {
        let v = |s: &str| vec![Some(s.to_owned())];
        let mut a = BreakdownSums::with_keys(1, false, vec![0, 1], vec![v("x"), v("y")]);
        a.rules[0].conversions = vec![1.0, 2.0];
        a.seen = vec![true, true];
        let mut b = BreakdownSums::with_keys(1, false, vec![0, 0, 1], vec![v("y"), v("x"), v("z")]);
        b.rules[0].conversions = vec![10.0, 20.0, 30.0];
        b.seen = vec![true, true, false];
        // b's channel 0 is a's channel 1, b's channel 1 is a's channel 0: b's (0, y) is a's
        // (1, y); (1, x) and (0, z) are new to a.
        a.add_mapped(&b, &[1, 0], false, true);
        assert_eq!(a.channel, [0, 1, 1, 0]);
        assert_eq!(a.rules[0].conversions, [1.0, 12.0, 20.0, 30.0]);
        a.add_mapped(&b, &[1, 0], false, true);
        assert_eq!(a.rules[0].conversions, [1.0, 22.0, 40.0, 60.0]);
        assert_eq!(a.seen, [true, true, true, false]);
        a.compact();
        assert_eq!((a.len(), a.rules[0].conversions.clone()), (3, vec![1.0, 22.0, 40.0]));
        assert_eq!(a.values[2], [Some("x".to_owned())]);
    }
}
