//! The simple probabilistic model of Shao & Li (KDD 2011, "Data-driven multi-touch
//! attribution models", section 4; docs/user-guide.md, "Models").
//!
//! Over converting and non-converting journeys alike, a channel's conversion rate is
//! p(y | x_i) = converting journeys with i / journeys with i, and a pair's is
//! p(y | x_i, x_j) over the journeys with both (a channel counts once per journey however
//! often it is touched). The contribution of channel i is
//!
//!   C(x_i) = p(y | x_i) + 1 / (2 N_i) · Σ_{j ≠ i} (p(y | x_i, x_j) − p(y | x_i) − p(y | x_j)),
//!
//! the sum over the N_i channels j that share at least one journey with i (a pair that
//! never occurs has no rate). Contributions below zero count as zero, and the credits are
//! the contributions scaled to the attributed conversions; the value side does the same
//! with the value per journey in place of the conversion rate.
//!
//! [`ShaoLiCounts`] holds the journey counts per channel and per pair, so chunks merge by
//! addition. Only pairs that share a journey count: those of the first 256 channel ids in a
//! dense triangle (a direct index on the per-journey path), the others in a hash map; both
//! bounded together by [`MAX_PAIRS`]: past it the counts stop growing and the model is refused.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::chunk::NO_CHANNEL;
use crate::error::{AttributionError, ErrorCode};
use crate::exact::{Exact, JourneySums};

/// The most distinct channel pairs that may share a journey: about 100 MB of counts.
pub const MAX_PAIRS: usize = 2_000_000;

/// Converting journeys, non-converting journeys and value of the journeys with a channel
/// (or a pair).
type Sums = [f64; 3];

/// The model's additive statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "ShaoLiWire", from = "ShaoLiWire")]
pub struct ShaoLiCounts {
    /// By channel id.
    channels: Vec<Sums>,
    /// Pairs of channel ids below [`DENSE_CHANNELS`], `(a, b)` with `a < b` at
    /// `b (b − 1) / 2 + a`: the common case is a direct index, not a hash look-up.
    dense: Vec<Sums>,
    /// The other pairs, by `low << 32 | high` channel ids, `low < high`.
    sparse: FxHashMap<u64, Sums>,
    /// Distinct pairs met (dense and sparse).
    pair_count: usize,
    /// True once more than [`MAX_PAIRS`] pairs were met: the pairs are dropped.
    over_limit: bool,
    /// A replicate's values by channel and by pair, exact (`exact.rs`; the value in `Sums`
    /// stays 0); the channels as long as those it has met.
    exact_channels: Vec<Exact>,
    exact_pairs: FxHashMap<u64, Exact>,
    distinct: Vec<u32>,
}

/// Pairs of channels with ids below this are counted in a dense triangle (at most 32,640
/// entries, 780 kB); it grows with the largest id met, so a few channels take a few bytes.
const DENSE_CHANNELS: u32 = 256;

impl PartialEq for ShaoLiCounts {
    /// Equal counts, however they are stored.
    fn eq(&self, other: &Self) -> bool {
        self.channels == other.channels
            && self.over_limit == other.over_limit
            && self.pairs() == other.pairs()
            && self.exact_channels == other.exact_channels
            && self.exact_pairs == other.exact_pairs
    }
}

/// The stored form: pairs sorted, so equal counts serialise equally.
#[derive(Serialize, Deserialize)]
struct ShaoLiWire {
    channels: Vec<Sums>,
    pairs: Vec<(u64, Sums)>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    over_limit: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exact_channels: Vec<Exact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exact_pairs: Vec<(u64, Exact)>,
}

impl From<ShaoLiCounts> for ShaoLiWire {
    fn from(counts: ShaoLiCounts) -> Self {
        let pairs = counts.pairs();
        let mut exact_pairs: Vec<(u64, Exact)> = counts.exact_pairs.into_iter().collect();
        exact_pairs.sort_unstable_by_key(|&(key, _)| key);
        ShaoLiWire {
            channels: counts.channels,
            pairs,
            over_limit: counts.over_limit,
            exact_channels: counts.exact_channels,
            exact_pairs,
        }
    }
}

impl From<ShaoLiWire> for ShaoLiCounts {
    fn from(wire: ShaoLiWire) -> Self {
        let mut counts = ShaoLiCounts {
            channels: wire.channels,
            over_limit: wire.over_limit,
            exact_channels: wire.exact_channels,
            exact_pairs: wire.exact_pairs.into_iter().collect(),
            ..Default::default()
        };
        for (key, sums) in wire.pairs {
            if !counts.add_pair(key, &sums) {
                break;
            }
        }
        counts
    }
}

/// Each channel's contribution C(x_i) on conversions and on value, by channel id.
#[derive(Debug, Clone, PartialEq)]
pub struct Contributions {
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

fn pair_key(a: u32, b: u32) -> u64 {
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    (low as u64) << 32 | high as u64
}

/// The dense slot of `low < high`, both below [`DENSE_CHANNELS`].
fn dense_slot(low: u32, high: u32) -> usize {
    let high = high as usize;
    high * (high - 1) / 2 + low as usize
}

/// `channels`' distinct ids in ascending order, into `distinct`. Ids below 64 (every
/// channel of most inputs) go through a bit set, a pass over the journey instead of a sort.
fn distinct_sorted(channels: &[u32], distinct: &mut Vec<u32>) {
    distinct.clear();
    let mut set = 0u64;
    let mut wide = false;
    for &c in channels {
        if c < 64 {
            set |= 1 << c;
        } else {
            wide = true;
        }
    }
    if wide {
        distinct.extend_from_slice(channels);
        distinct.sort_unstable();
        distinct.dedup();
        return;
    }
    while set != 0 {
        distinct.push(set.trailing_zeros());
        set &= set - 1;
    }
}

#[inline]
fn add(sums: &mut Sums, other: &Sums) {
    sums[0] += other[0];
    sums[1] += other[1];
    sums[2] += other[2];
}

impl ShaoLiCounts {
    /// Adds `conversions` converting and `nulls` non-converting journeys over `channels`,
    /// with `value` in all. The work is the square of the journey's distinct channels.
    pub fn add_path(&mut self, channels: &[u32], conversions: f64, nulls: f64, value: f64) {
        if channels.is_empty() || conversions + nulls <= 0.0 {
            return;
        }
        let sums = [conversions, nulls, value];
        let mut distinct = std::mem::take(&mut self.distinct);
        distinct_sorted(channels, &mut distinct);
        let top = *distinct.last().expect("a journey with touches") as usize;
        if self.channels.len() <= top {
            self.channels.resize(top + 1, [0.0; 3]);
        }
        for &c in &distinct {
            add(&mut self.channels[c as usize], &sums);
        }
        let d = distinct.len();
        if d * (d - 1) / 2 > MAX_PAIRS {
            self.give_up_pairs();
        }
        if !self.over_limit {
            // `distinct` is sorted: a < b, and a dense pair of b is at b (b − 1) / 2 + a.
            'all: for (j, &b) in distinct.iter().enumerate().skip(1) {
                let row = dense_slot(0, b);
                for &a in &distinct[..j] {
                    // The common case: both channels dense, the pair met before.
                    if let Some(pair) = self.dense.get_mut(row + a as usize).filter(|_| b < DENSE_CHANNELS)
                        && pair[0] + pair[1] > 0.0
                    {
                        add(pair, &sums);
                    } else if !self.add_pair(pair_key(a, b), &sums) {
                        break 'all;
                    }
                }
            }
        }
        self.distinct = distinct;
    }

    /// Adds sums gathered elsewhere (bootstrap replicates sum their paths in dense arrays):
    /// `channels` as (channel id, sums), `pairs` as ((low, high) channel ids, sums), as
    /// [`ShaoLiCounts::add_path`] would have added them journey by journey.
    pub fn add_sums(&mut self, channels: &[(u32, Sums)], pairs: &[((u32, u32), Sums)]) {
        for (channel, sums) in channels {
            let channel = *channel as usize;
            if self.channels.len() <= channel {
                self.channels.resize(channel + 1, [0.0; 3]);
            }
            add(&mut self.channels[channel], sums);
        }
        if self.over_limit {
            return;
        }
        for &((a, b), sums) in pairs {
            if !self.add_pair(pair_key(a, b), &sums) {
                break;
            }
        }
    }

    /// [`ShaoLiCounts::add_sums`] in a replicate, values exact.
    pub fn add_exact_sums(&mut self, channels: &[(u32, JourneySums)], pairs: &[((u32, u32), JourneySums)]) {
        let counted = |s: &JourneySums| [s.conversions, s.nulls, 0.0];
        let float_channels: Vec<(u32, Sums)> = channels.iter().map(|(c, s)| (*c, counted(s))).collect();
        let float_pairs: Vec<((u32, u32), Sums)> = pairs.iter().map(|(p, s)| (*p, counted(s))).collect();
        self.add_sums(&float_channels, &float_pairs);
        for (channel, sums) in channels {
            crate::exact::add_at(&mut self.exact_channels, *channel as usize, sums.value);
        }
        if !self.over_limit {
            for &((a, b), sums) in pairs {
                self.exact_pairs.entry(pair_key(a, b)).or_default().add(sums.value);
            }
        }
    }

    /// A replicate's counts as `f64` sums in one order, whatever grouping made them: channels
    /// renumbered by `channel_map` (`NO_CHANNEL` for channels no journey of it met), values
    /// from the exact sums.
    pub(crate) fn canonical(&self, channel_map: &[u32]) -> Result<ShaoLiCounts, AttributionError> {
        let value = |exact: Option<&Exact>| exact.copied().unwrap_or_default().to_f64();
        let mut counts = ShaoLiCounts { over_limit: self.over_limit, ..Default::default() };
        for (old, sums) in self.channels.iter().enumerate() {
            let new = channel_map[old];
            if new != NO_CHANNEL && sums[0] + sums[1] > 0.0 {
                if counts.channels.len() <= new as usize {
                    counts.channels.resize(new as usize + 1, [0.0; 3]);
                }
                counts.channels[new as usize] = [sums[0], sums[1], value(self.exact_channels.get(old))?];
            }
        }
        if self.over_limit {
            return Ok(counts);
        }
        let mut pairs = Vec::with_capacity(self.pair_count);
        for (key, sums) in self.pairs() {
            let (a, b) = (channel_map[(key >> 32) as usize], channel_map[key as u32 as usize]);
            pairs.push((pair_key(a, b), [sums[0], sums[1], value(self.exact_pairs.get(&key))?]));
        }
        pairs.sort_unstable_by_key(|&(key, _)| key);
        for (key, sums) in pairs {
            counts.add_pair(key, &sums);
        }
        Ok(counts)
    }

    /// Adds to one pair (`key` as [`pair_key`] makes it); false (and the pairs dropped)
    /// when a new pair would pass the limit.
    fn add_pair(&mut self, key: u64, sums: &Sums) -> bool {
        let (low, high) = ((key >> 32) as u32, key as u32);
        let full = self.pair_count >= MAX_PAIRS;
        let slot = if high < DENSE_CHANNELS {
            let slot = dense_slot(low, high);
            if self.dense.len() <= slot {
                self.dense.resize(dense_slot(0, high + 1), [0.0; 3]);
            }
            Some(slot)
        } else {
            None
        };
        let existing = match slot {
            Some(slot) => {
                let pair = &mut self.dense[slot];
                let met = pair[0] + pair[1] > 0.0;
                if met || !full {
                    add(pair, sums);
                }
                met
            }
            None => match self.sparse.get_mut(&key) {
                Some(pair) => {
                    add(pair, sums);
                    true
                }
                None => {
                    if !full {
                        self.sparse.insert(key, *sums);
                    }
                    false
                }
            },
        };
        if existing {
            return true;
        }
        if full {
            self.give_up_pairs();
            return false;
        }
        self.pair_count += 1;
        true
    }

    fn give_up_pairs(&mut self) {
        self.over_limit = true;
        self.dense = Vec::new();
        self.sparse = FxHashMap::default();
        self.exact_pairs = FxHashMap::default();
        self.pair_count = 0;
    }

    /// Every pair met, by key.
    fn pairs(&self) -> Vec<(u64, Sums)> {
        let mut pairs: Vec<(u64, Sums)> = self.sparse.iter().map(|(&key, &sums)| (key, sums)).collect();
        let mut slot = 0;
        for high in 1..DENSE_CHANNELS {
            for low in 0..high {
                if let Some(sums) = self.dense.get(slot).filter(|s| s[0] + s[1] > 0.0) {
                    pairs.push((pair_key(low, high), *sums));
                }
                slot += 1;
            }
            if slot >= self.dense.len() {
                break;
            }
        }
        pairs.sort_unstable_by_key(|&(key, _)| key);
        pairs
    }

    /// Adds `other`, whose channel ids map to ours through `channel_map`.
    pub fn merge(&mut self, other: &ShaoLiCounts, channel_map: &[u32]) {
        for (old, sums) in other.channels.iter().enumerate() {
            let new = channel_map[old] as usize;
            if self.channels.len() <= new {
                self.channels.resize(new + 1, [0.0; 3]);
            }
            add(&mut self.channels[new], sums);
        }
        for (old, &value) in other.exact_channels.iter().enumerate() {
            let new = channel_map[old] as usize;
            if self.exact_channels.len() <= new {
                self.exact_channels.resize(new + 1, Exact::ZERO);
            }
            self.exact_channels[new].add(value);
        }
        if other.over_limit {
            self.give_up_pairs();
        }
        if self.over_limit {
            return;
        }
        for (&key, &value) in &other.exact_pairs {
            let (a, b) = ((key >> 32) as u32, key as u32);
            self.exact_pairs.entry(pair_key(channel_map[a as usize], channel_map[b as usize])).or_default().add(value);
        }
        for (key, sums) in other.pairs() {
            let (a, b) = ((key >> 32) as u32, key as u32);
            if !self.add_pair(pair_key(channel_map[a as usize], channel_map[b as usize]), &sums) {
                return;
            }
        }
    }

    /// Refuses counts that passed [`MAX_PAIRS`].
    pub fn check_limit(&self) -> Result<(), AttributionError> {
        if self.over_limit {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "more than {MAX_PAIRS} pairs of channels share a journey, the limit of the `shao_li` model \
                     (it counts the journeys of every such pair); leave out `shao_li`"
                ),
            ));
        }
        Ok(())
    }

    /// Every channel's contribution C(x_i), negative ones as 0, for the channels `names` (by id).
    pub fn contributions(&self, names: &[String]) -> Result<Contributions, AttributionError> {
        let channel_count = names.len();
        self.check_limit()?;
        // p(y | x_i) and the value per journey with i.
        let rate = |s: &Sums| {
            let journeys = s[0] + s[1];
            if journeys > 0.0 { (s[0] / journeys, s[2] / journeys) } else { (0.0, 0.0) }
        };
        let singles: Vec<(f64, f64)> =
            (0..channel_count).map(|c| self.channels.get(c).map_or((0.0, 0.0), rate)).collect();
        // Σ_j of the pair terms and N_i, per channel. Pairs, and the two channels of each,
        // in the order of the channels' names, not of their ids (which differ from chunk to
        // chunk): the same sums however the partials were numbered and merged, so that a
        // contribution that is 0 but for rounding is cut to 0 in every grouping or in none.
        let by_name = |key: u64| {
            let (a, b) = ((key >> 32) as usize, key as u32 as usize);
            if names[a] <= names[b] { (a, b) } else { (b, a) }
        };
        let mut pairs: Vec<((usize, usize), Sums)> = self.pairs().into_iter().map(|(k, s)| (by_name(k), s)).collect();
        pairs.sort_unstable_by(|(p, _), (q, _)| (&names[p.0], &names[p.1]).cmp(&(&names[q.0], &names[q.1])));
        let mut terms = vec![(0.0, 0.0, 0usize); channel_count];
        for ((a, b), sums) in pairs {
            if sums[0] + sums[1] <= 0.0 {
                continue;
            }
            let (p_ab, v_ab) = rate(&sums);
            let ((p_a, v_a), (p_b, v_b)) = (singles[a], singles[b]);
            for c in [a, b] {
                terms[c].0 += p_ab - p_a - p_b;
                terms[c].1 += v_ab - v_a - v_b;
                terms[c].2 += 1;
            }
        }
        let contribution = |first: f64, pair_sum: f64, n: usize| {
            let c = if n > 0 { first + pair_sum / (2.0 * n as f64) } else { first };
            c.max(0.0)
        };
        let mut out = Contributions { conversions: vec![0.0; channel_count], value: vec![0.0; channel_count] };
        for (c, &(p, v)) in singles.iter().enumerate() {
            let (pair_p, pair_v, n) = terms[c];
            out.conversions[c] = contribution(p, pair_p, n);
            out.value[c] = contribution(v, pair_v, n);
        }
        // When every contribution is cut to zero (pairs that convert less than either of
        // their channels alone), the channels' own rates share the credit.
        if out.conversions.iter().all(|&c| c <= 0.0) {
            out.conversions = singles.iter().map(|s| s.0).collect();
        }
        if out.value.iter().all(|&v| v <= 0.0) {
            out.value = singles.iter().map(|s| s.1).collect();
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journeys_distinct_channels_come_in_ascending_order_whatever_their_ids() {
        let mut distinct = vec![7];
        for channels in [vec![3, 0, 3, 63, 1], vec![64, 2, 64, 1_000, 2], vec![5], vec![63, 62, 63]] {
            distinct_sorted(&channels, &mut distinct);
            let mut expected = channels.clone();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(distinct, expected, "{channels:?}");
        }
    }

    #[test]
    fn repeated_channels_count_once_per_journey() {
        let mut counts = ShaoLiCounts::default();
        counts.add_path(&[0, 0, 1, 0], 1.0, 0.0, 10.0);
        assert_eq!(counts.channels, [[1.0, 0.0, 10.0], [1.0, 0.0, 10.0]]);
        assert_eq!(counts.pairs(), [(pair_key(1, 0), [1.0, 0.0, 10.0])]);
    }

    #[test]
    fn contributions_do_not_depend_on_the_channel_numbering() {
        // Chunks number their channels their own way. A contribution that is 0 but for
        // rounding must come out the same under every numbering, or a merged result credits
        // a channel 0 in one grouping and 1e-17 in another (and its CPA is `null` in one and
        // huge in the other).
        let names = ["Direct", "affiliate", "display", "search", "social"];
        let journeys: [(&[usize], f64, f64); 5] = [
            (&[2, 1], 1.0, 0.0),
            (&[0, 3], 1.0, 0.0),
            (&[4, 2], 0.0, 1.0),
            (&[3, 0, 2], 0.0, 1.0),
            (&[1, 4, 3], 0.0, 1.0),
        ];
        let by_name = |ids: &[u32]| {
            let mut counts = ShaoLiCounts::default();
            for (path, conversions, nulls) in journeys {
                let path: Vec<u32> = path.iter().map(|&c| ids[c]).collect();
                counts.add_path(&path, conversions, nulls, conversions * 3.0);
            }
            let mut numbered = vec![String::new(); names.len()];
            for (c, name) in names.iter().enumerate() {
                numbered[ids[c] as usize] = (*name).to_owned();
            }
            let out = counts.contributions(&numbered).unwrap();
            let bits = |v: &[f64], c: usize| v[ids[c] as usize].to_bits();
            (0..names.len()).map(|c| (bits(&out.conversions, c), bits(&out.value, c))).collect::<Vec<_>>()
        };
        let want = by_name(&[0, 1, 2, 3, 4]);
        // Every numbering of the five channels.
        for n in 0..5u32.pow(5) {
            let ids: Vec<u32> = (0..5).map(|i| n / 5u32.pow(i) % 5).collect();
            if (0..5).all(|c| ids.contains(&c)) {
                assert_eq!(by_name(&ids), want, "numbering {ids:?}");
            }
        }
    }

    #[test]
    fn a_journey_with_too_many_pairs_drops_them_and_is_refused() {
        // 2001 distinct channels make 2,001,000 pairs, one journey past the limit.
        let channels: Vec<u32> = (0..2001).collect();
        let mut counts = ShaoLiCounts::default();
        counts.add_path(&[0, 1], 1.0, 0.0, 1.0);
        counts.add_path(&channels, 1.0, 0.0, 1.0);
        assert!(counts.pairs().is_empty() && counts.dense.is_empty());
        let names: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let err = counts.contributions(&names).unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded);
        assert!(err.message.contains("shao_li") && err.message.contains("2000000"), "{}", err.message);
        // The refusal survives a merge and the stored form.
        let mut other = ShaoLiCounts::default();
        other.add_path(&[0, 1], 1.0, 0.0, 1.0);
        other.merge(&serde_json::from_str(&serde_json::to_string(&counts).unwrap()).unwrap(), &channels);
        assert!(other.check_limit().is_err());
        let just_under: Vec<u32> = (0..2000).collect();
        let mut fits = ShaoLiCounts::default();
        fits.add_path(&just_under, 1.0, 0.0, 1.0);
        assert_eq!((fits.pair_count, fits.pairs().len()), (1_999_000, 1_999_000));
        assert!(fits.check_limit().is_ok());
    }

    #[test]
    fn merged_counts_equal_counts_made_at_once_whatever_the_numbering() {
        let mut whole = ShaoLiCounts::default();
        whole.add_path(&[0, 1], 1.0, 0.0, 10.0);
        whole.add_path(&[1, 2], 0.0, 2.0, 0.0);
        let mut left = ShaoLiCounts::default();
        left.add_path(&[0, 1], 1.0, 0.0, 10.0);
        // The right half numbers c2 = 0, c1 = 1.
        let mut right = ShaoLiCounts::default();
        right.add_path(&[1, 0], 0.0, 2.0, 0.0);
        left.merge(&right, &[2, 1]);
        assert_eq!(serde_json::to_string(&left).unwrap(), serde_json::to_string(&whole).unwrap());
    }

    #[test]
    fn dense_and_sparse_pairs_count_alike_and_stop_at_the_limit() {
        // Channels 3 and 300 straddle the dense triangle; 255 and 256 too.
        let mut counts = ShaoLiCounts::default();
        counts.add_path(&[300, 3, 255, 256], 1.0, 2.0, 5.0);
        counts.add_path(&[3, 300], 0.0, 1.0, 0.0);
        let pairs = counts.pairs();
        assert_eq!(pairs.len(), 6);
        assert_eq!(counts.pair_count, 6);
        let find = |a, b| pairs.iter().find(|(k, _)| *k == pair_key(a, b)).unwrap().1;
        assert_eq!(find(3, 300), [1.0, 3.0, 5.0]);
        assert_eq!(find(3, 255), [1.0, 2.0, 5.0]);
        assert_eq!(find(255, 256), [1.0, 2.0, 5.0]);
        let back: ShaoLiCounts = serde_json::from_str(&serde_json::to_string(&counts).unwrap()).unwrap();
        assert_eq!(back, counts);
        assert_eq!(back.pair_count, 6);
    }
}
