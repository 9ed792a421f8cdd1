//! Bootstrap intervals (docs/user-guide.md, "Intervals"): a Poisson bootstrap over journeys.
//! Replicate `r` counts each journey `w` times, `w` drawn from Poisson(1) by a hash of the
//! journey's user, `r` and the seed, so every chunk draws the same weight for the same user
//! and replicate sums merge like any other sum; a path row draws its conversions and null
//! journeys from Poisson with the row's counts as means. `partial.rs` adds the weighted
//! journeys to a replicate partial each; this module draws the weights and, at finish,
//! turns the replicates' results into percentile intervals and rank probabilities.

use serde::{Deserialize, Serialize};

use crate::error::AttributionError;

/// The confidence level when none is given.
pub const DEFAULT_LEVEL: f64 = 0.9;
/// The most replicates a job may ask for unless the operator sets `max_interval_replicates`.
pub const DEFAULT_MAX_REPLICATES: u32 = 1000;
/// The most replicates × channels (× lookback windows) one job may hold unless the operator
/// sets `max_replicate_channels` (each replicate keeps its own sums per model and channel):
/// the bound on the memory intervals take, whatever the limit above.
pub const DEFAULT_MAX_REPLICATE_CHANNELS: u64 = 20_000_000;

/// The most bytes the replicate partials of one job may take together (`max_replicate_memory`),
/// the whole's and every part's (period, segment, segment period, further lookback window),
/// each estimated by [`replicate_bytes`] from the job's channels: each part keeps replicates of
/// its own, so parts × replicates is what grows (a year of days at 1000 replicates would be
/// 366,000 replicate partials). Well below a worker's 2 GiB: a reducer holds the merged partial
/// and up to three more while it merges, and the allocator adds to each.
pub const MAX_REPLICATE_BYTES: u64 = 300_000_000;

/// What one replicate partial holds, for [`replicate_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicateShape {
    /// The channels it is numbered by (the job's, as far as they are known).
    pub channels: usize,
    /// Rule-based models (exact credit per channel each).
    pub rule_models: usize,
    /// Markov chains: 0, 1 (a fixed order) or 4 (`auto`'s candidates).
    pub chains: usize,
    /// Whether it counts `shao_li` journeys per channel and pair.
    pub shao_li: bool,
}

/// An estimate of the heap bytes of one replicate partial: a fixed part, then per channel
/// (names, reports' positions, exact credit per rule model, a chain's states) and per pair of
/// channels (a chain's transitions, `shao_li`'s pairs), fitted to replicate partials of days
/// of simulated journeys that meet every transition and pair (8 and 32 channels, each model
/// alone and together; 10.8 kB at 8 channels under every model). Journeys that meet fewer pairs
/// take less, and chains of higher orders more (their states are longer paths).
pub fn replicate_bytes(shape: ReplicateShape) -> u64 {
    let (channels, chains) = (shape.channels as u64, shape.chains as u64);
    let per_channel = 64 + 32 * shape.rule_models as u64 + 150 * chains;
    let per_pair = 35 * chains + if shape.shao_li { 55 } else { 0 };
    2_000 + channels * per_channel + channels * channels * per_pair
}

/// Refuses a job whose replicate partials (`replicate_partials`, the whole's and every
/// part's, each of `shape`) would take more than [`MAX_REPLICATE_BYTES`], naming the limit.
pub fn check_replicate_memory(replicate_partials: usize, shape: ReplicateShape) -> Result<(), AttributionError> {
    let each = replicate_bytes(shape);
    let bytes = (replicate_partials as u64).saturating_mul(each);
    if bytes <= MAX_REPLICATE_BYTES {
        return Ok(());
    }
    Err(AttributionError::new(
        crate::error::ErrorCode::LimitExceeded,
        format!(
            "`intervals` would keep at least {replicate_partials} replicate results (each period, segment and \
             lookback window keeps replicates of its own) of about {} kB each over {} channels, more than the \
             {} MB they may take (max_replicate_memory); use a longer period, fewer segments or fewer replicates",
            each.div_ceil(1000),
            shape.channels,
            MAX_REPLICATE_BYTES / 1_000_000
        ),
    ))
}

/// The most breakdown rows × replicates one job may hold (`max_breakdown_replicates`): the
/// whole's replicates each keep their own sums per (channel, breakdown values), about 350
/// bytes each (exact sums, `exact.rs`).
pub const MAX_BREAKDOWN_REPLICATES: usize = 1_000_000;

/// The most breakdown rows × replicates the parts of one job (periods, segments, segment
/// periods, further lookback windows; summed over them) keep for their rows' intervals, about
/// 350 bytes each as the whole's. Past it no part keeps any and their rows have no intervals:
/// the job is not refused (parts multiply the rows, and the whole's rows keep theirs).
pub const MAX_PART_BREAKDOWN_REPLICATES: usize = 1_000_000;

/// Refuses intervals of more breakdown rows (`keys`) than [`MAX_BREAKDOWN_REPLICATES`] allows,
/// naming the limit.
pub fn check_breakdown_replicates(keys: usize, replicates: usize) -> Result<(), AttributionError> {
    if keys.saturating_mul(replicates) <= MAX_BREAKDOWN_REPLICATES {
        return Ok(());
    }
    Err(AttributionError::new(
        crate::error::ErrorCode::LimitExceeded,
        format!(
            "`intervals` of {replicates} replicates over more than {keys} breakdown rows (channel and breakdown \
             values) would hold more than {MAX_BREAKDOWN_REPLICATES} replicate rows (max_breakdown_replicates); \
             ask for fewer replicates or break down by a column with fewer values"
        ),
    ))
}

/// `intervals` as the user gives it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntervalsSpec {
    /// Bootstrap replicates (e.g. 200; at least 10, at most `max_interval_replicates`, default 1000).
    pub replicates: u32,
    /// The intervals' confidence level, between 0.5 and 0.999 (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    /// Seeds the replicates' weights: the same seed and input give the same intervals (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Validated `intervals`, reported back in the result's options.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Intervals {
    pub replicates: u32,
    pub level: f64,
    pub seed: u64,
}

/// The fewest replicates that give an interval worth reading.
pub const MIN_REPLICATES: u32 = 10;

impl IntervalsSpec {
    pub fn validate(&self) -> Result<Intervals, AttributionError> {
        let refuse = |problem: String| Err(AttributionError::option("intervals", problem));
        if self.replicates < MIN_REPLICATES {
            return refuse(format!("{} replicates are too few; ask for at least {MIN_REPLICATES}", self.replicates));
        }
        let level = self.level.unwrap_or(DEFAULT_LEVEL);
        if !(0.5..=0.999).contains(&level) {
            return refuse(format!("the level {level} is not between 0.5 and 0.999"));
        }
        Ok(Intervals { replicates: self.replicates, level, seed: self.seed.unwrap_or(0) })
    }
}

/// One channel's figures over the replicates: percentile intervals at the options' level
/// and where the replicates rank it (1 = most conversions).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelInterval {
    pub conversions_low: f64,
    pub conversions_high: f64,
    pub value_low: f64,
    pub value_high: f64,
    pub share_low: f64,
    pub share_high: f64,
    /// `markov` only: the interval of its removal effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_effect_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_effect_high: Option<f64>,
    /// Share of the replicates in which the channel ranks 1st, among those that credit some
    /// conversion (in one that credits none no ranking is defined).
    pub rank_1_probability: f64,
    /// Share of those replicates in which it ranks 1st, 2nd or 3rd.
    pub top_3_probability: f64,
    /// Its median rank over those replicates (the result's rank when there is none).
    pub median_rank: f64,
}

/// A breakdown row's percentile intervals at the options' level.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowInterval {
    pub conversions_low: f64,
    pub conversions_high: f64,
    pub value_low: f64,
    pub value_high: f64,
}

/// Each breakdown row's [`RowInterval`]: `replicates[r][i]` is row `i`'s conversions and
/// value in replicate `r` (zeros where the replicate has no such row).
pub fn row_intervals(replicates: &[Vec<[f64; 2]>], rows: usize, level: f64) -> Vec<RowInterval> {
    let (low, high) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
    let mut figures: [Vec<f64>; 2] = [Vec::with_capacity(replicates.len()), Vec::with_capacity(replicates.len())];
    (0..rows)
        .map(|i| {
            for (f, values) in figures.iter_mut().enumerate() {
                values.clear();
                values.extend(replicates.iter().map(|r| r[i][f]));
                values.sort_by(f64::total_cmp);
            }
            let [conversions, value] = &figures;
            RowInterval {
                conversions_low: quantile(conversions, low),
                conversions_high: quantile(conversions, high),
                value_low: quantile(value, low),
                value_high: quantile(value, high),
            }
        })
        .collect()
}

/// SplitMix64's finaliser: a cheap, well-mixed 64-bit hash step.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in (0, 1) from 53 bits of `bits`.
fn uniform(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// The hash behind a draw: of a key (a user's, or a path row's), the replicate, a stream
/// (a path row draws conversions and nulls apart) and the seed.
fn draw_bits(key: u128, replicate: u32, stream: u64, seed: u64) -> u64 {
    let start = splitmix64(seed ^ ((replicate as u64) << 2 | stream));
    splitmix64(splitmix64(start ^ key as u64) ^ (key >> 64) as u64)
}

/// P(Poisson(1) <= k) for k = 0..: the inverse CDF of the journeys' weights.
const POISSON_1_CDF: [f64; 12] = {
    let mut cdf = [0.0; 12];
    let mut term = 0.367_879_441_171_442_33; // e^-1
    let mut sum = term;
    let mut k = 0;
    while k < 12 {
        cdf[k] = sum;
        term /= (k + 1) as f64;
        sum += term;
        k += 1;
    }
    cdf
};

/// [`POISSON_1_CDF`] over the 53-bit integers a draw's bits give: a weight is found by
/// integer comparisons, with no conversion to a float per draw.
const POISSON_1_BITS: [u64; 12] = {
    let mut bits = [0u64; 12];
    let mut k = 0;
    while k < 12 {
        bits[k] = (POISSON_1_CDF[k] * (1u64 << 53) as f64) as u64;
        k += 1;
    }
    bits
};

/// How many of a draw's 53 bits [`POISSON_1_WEIGHTS`] looks up by.
const WEIGHT_TABLE_BITS: u32 = 12;

/// The weight of every draw whose top [`WEIGHT_TABLE_BITS`] bits are the index, or
/// [`MIXED_CELL`] for the few cells a bound of [`POISSON_1_BITS`] falls inside (then counted).
const POISSON_1_WEIGHTS: [u8; 1 << WEIGHT_TABLE_BITS] = {
    let shift = 53 - WEIGHT_TABLE_BITS;
    let mut table = [0u8; 1 << WEIGHT_TABLE_BITS];
    let mut cell = 0;
    while cell < table.len() {
        let (low, high) = ((cell as u64) << shift, (((cell as u64) + 1) << shift) - 1);
        let (mut low_weight, mut high_weight, mut k) = (0u8, 0u8, 0);
        while k < POISSON_1_BITS.len() {
            low_weight += (low >= POISSON_1_BITS[k]) as u8;
            high_weight += (high >= POISSON_1_BITS[k]) as u8;
            k += 1;
        }
        table[cell] = if low_weight == high_weight { low_weight } else { MIXED_CELL };
        cell += 1;
    }
    table
};
const MIXED_CELL: u8 = u8::MAX;

/// The part of a user's draws that is the same in every replicate: hashed once per
/// journey, not once per replicate.
pub fn user_draws(user_key: u128, seed: u64) -> u64 {
    splitmix64(splitmix64(seed ^ user_key as u64) ^ (user_key >> 64) as u64)
}

/// The weight of a user's journeys in replicate `replicate`, from [`user_draws`]: Poisson(1),
/// an integer, so weighted sums stay exact where the plain ones are.
pub fn replicate_weight(user_draws: u64, replicate: u32) -> u32 {
    poisson_1_weight(splitmix64(user_draws ^ (u64::from(replicate) + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 11)
}

/// The Poisson(1) weight of a draw's 53 bits.
fn poisson_1_weight(bits: u64) -> u32 {
    // Looked up (this runs per journey and replicate); the first bound above `bits` is the
    // count of those at or below it (the bounds rise).
    match POISSON_1_WEIGHTS[(bits >> (53 - WEIGHT_TABLE_BITS)) as usize] {
        MIXED_CELL => POISSON_1_BITS.iter().map(|&p| u32::from(bits >= p)).sum(),
        weight => u32::from(weight),
    }
}

/// The weight of a user's journeys in replicate `replicate` (see [`replicate_weight`]).
pub fn user_weight(user_key: u128, replicate: u32, seed: u64) -> u32 {
    replicate_weight(user_draws(user_key, seed), replicate)
}

/// A Poisson(`mean`) draw from two uniforms: by the inverse CDF up to a mean of 30, by the
/// normal approximation (rounded, at least 0) above it.
fn poisson(mean: f64, u: f64, v: f64) -> f64 {
    if mean <= 0.0 {
        return 0.0;
    }
    if mean > 30.0 {
        let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        return (mean + mean.sqrt() * z).round().max(0.0);
    }
    let (mut k, mut term) = (0u32, (-mean).exp());
    let mut sum = term;
    while u > sum && k < 200 {
        k += 1;
        term *= mean / k as f64;
        sum += term;
    }
    k as f64
}

/// A path row's conversions and null journeys in replicate `replicate`: Poisson draws with
/// the row's counts as means, keyed by `row_key` (a hash of the row's path and numbers).
pub fn path_draws(row_key: u128, replicate: u32, seed: u64, conversions: f64, nulls: f64) -> (f64, f64) {
    let draw = |stream: u64, mean: f64| {
        let u = uniform(draw_bits(row_key, replicate, stream, seed));
        let v = uniform(draw_bits(row_key, replicate, stream + 2, seed));
        poisson(mean, u, v)
    };
    (draw(0, conversions), draw(1, nulls))
}

/// The `q` quantile of sorted values, interpolated linearly between the closest ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = q * (sorted.len() - 1) as f64;
    let (below, above) = (at.floor() as usize, at.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (at - below as f64)
}

/// Each channel's [`ChannelInterval`] from its figures in every replicate:
/// `replicates[r][i]` is channel `i`'s conversions, value, share and removal effect in
/// replicate `r` (zeros where the replicate does not credit it); `names` are the channels'
/// names in the result's order (its ranking), `removal` whether the model has removal
/// effects. Percentiles are taken at `level`; ranks are by conversions (compared to 1e-9 of
/// the replicate's total, so rounding from another grouping of chunks does not reorder a tie;
/// ties by name), over the replicates that credit some conversion: in one that credits none,
/// every channel ties and no ranking is defined. With no such replicate, the probabilities are
/// 0 and the median rank is the result's.
pub fn channel_intervals(
    names: &[&str],
    replicates: &[Vec<[f64; 4]>],
    removal: bool,
    level: f64,
) -> Vec<ChannelInterval> {
    let n = names.len();
    let mut by_name: Vec<usize> = (0..n).collect();
    by_name.sort_by(|&a, &b| names[a].cmp(names[b]));
    // Per channel: conversions, value, share, removal effect, rank over the replicates.
    let mut figures: Vec<[Vec<f64>; 5]> = vec![Default::default(); n];
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for replicate in replicates {
        for (f, figure) in figures.iter_mut().zip(replicate) {
            for (values, &x) in f.iter_mut().zip(figure) {
                values.push(x);
            }
        }
        // Summed in the order of names: the result's order may differ by a near tie.
        let total: f64 = by_name.iter().map(|&i| replicate[i][0].abs()).sum();
        if total == 0.0 {
            continue;
        }
        let key = |i: usize| (replicate[i][0] / total * 1e9).round() as i64;
        order.clear();
        order.extend(by_name.iter().copied());
        order.sort_by_key(|&i| std::cmp::Reverse(key(i)));
        for (rank, &i) in order.iter().enumerate() {
            figures[i][4].push((rank + 1) as f64);
        }
    }
    let (low, high) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
    figures
        .into_iter()
        .enumerate()
        .map(|(i, mut f)| {
            for values in &mut f {
                values.sort_by(f64::total_cmp);
            }
            let bounds = |values: &[f64]| (quantile(values, low), quantile(values, high));
            let removal = removal.then(|| bounds(&f[3]));
            let ranks = &f[4];
            let ranked = ranks.len().max(1) as f64;
            let median_rank = if ranks.is_empty() { (i + 1) as f64 } else { quantile(ranks, 0.5) };
            ChannelInterval {
                conversions_low: bounds(&f[0]).0,
                conversions_high: bounds(&f[0]).1,
                value_low: bounds(&f[1]).0,
                value_high: bounds(&f[1]).1,
                share_low: bounds(&f[2]).0,
                share_high: bounds(&f[2]).1,
                removal_effect_low: removal.map(|r| r.0),
                removal_effect_high: removal.map(|r| r.1),
                rank_1_probability: ranks.iter().filter(|&&r| r == 1.0).count() as f64 / ranked,
                top_3_probability: ranks.iter().filter(|&&r| r <= 3.0).count() as f64 / ranked,
                median_rank,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looked_up_weights_are_the_counted_ones() {
        let counted = |bits: u64| POISSON_1_BITS.iter().filter(|&&p| bits >= p).count() as u32;
        let shift = 53 - WEIGHT_TABLE_BITS;
        let mut edges: Vec<u64> = POISSON_1_BITS.iter().flat_map(|&p| [p.saturating_sub(1), p, p + 1]).collect();
        edges.extend((0..1u64 << WEIGHT_TABLE_BITS).flat_map(|cell| [cell << shift, ((cell + 1) << shift) - 1]));
        edges.extend((0..100_000u64).map(|i| splitmix64(i) >> 11));
        for bits in edges {
            assert_eq!(poisson_1_weight(bits), counted(bits), "bits {bits}");
        }
        assert!(POISSON_1_WEIGHTS.iter().filter(|&&w| w == MIXED_CELL).count() <= POISSON_1_BITS.len());
    }

    #[test]
    fn user_weights_are_poisson_one_and_repeatable() {
        let draws: Vec<u32> = (0..200_000u128).map(|user| user_weight(user * 7919, 3, 42)).collect();
        let mean = draws.iter().map(|&w| w as f64).sum::<f64>() / draws.len() as f64;
        let zeros = draws.iter().filter(|&&w| w == 0).count() as f64 / draws.len() as f64;
        assert!((mean - 1.0).abs() < 0.01, "mean {mean}");
        assert!((zeros - (-1.0f64).exp()).abs() < 0.01, "P(0) {zeros}");
        assert_eq!(user_weight(12345, 3, 42), user_weight(12345, 3, 42));
        let other_seed: Vec<u32> = (0..1000u128).map(|user| user_weight(user * 7919, 3, 43)).collect();
        assert_ne!(&draws[..1000], &other_seed[..], "the seed changes the draws");
    }

    #[test]
    fn path_draws_have_the_rows_counts_as_means() {
        for mean in [0.5, 4.0, 250.0] {
            let n = 20_000;
            let sum: f64 = (0..n).map(|r| path_draws(99, r, 0, mean, 0.0).0).sum();
            let got = sum / n as f64;
            assert!((got - mean).abs() < 0.05 * mean, "mean {mean}: {got}");
        }
        assert_eq!(path_draws(5, 1, 0, 0.0, 3.0).0, 0.0);
    }

    #[test]
    fn quantiles_interpolate_between_ranks() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&values, 0.5), 3.0);
        assert_eq!(quantile(&values, 0.05), 1.2);
        assert_eq!(quantile(&values, 1.0), 5.0);
    }
}
