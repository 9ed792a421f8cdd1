//! Rule-based models: each turns one converting journey into a weight per touch
//! (docs/user-guide.md, "Models"). A channel's credit is the sum of its touches' weights times the
//! journey's conversions and value, which is what makes every model additive over chunks.

use crate::journey::Journey;
use crate::options::{MICROS_PER_DAY, ModelId, Options, PositionWeights};

/// Fills `weights` (one per touch) for `model`. For every model but `participation` the
/// weights sum to 1; `participation` gives 1 to the first touch of each distinct channel,
/// `shapley` gives 1/|S| to the first touch of each of the journey's |S| distinct channels
/// (the closed form of Zhao et al. 2018).
///
/// `is_direct[channel_id]` tells `last_non_direct` which channels count as direct.
/// Panics if `model` is `markov` or `shao_li` (not per-journey rules) or the journey has no touch.
pub fn touch_weights(
    model: ModelId,
    journey: &Journey<'_>,
    options: &Options,
    is_direct: &[bool],
    weights: &mut Vec<f64>,
) {
    let channels = journey.channels;
    let n = channels.len();
    assert!(n > 0, "a credited journey has at least one touch");
    weights.clear();
    weights.resize(n, 0.0);
    match model {
        ModelId::FirstTouch => weights[0] = 1.0,
        ModelId::LastTouch => weights[n - 1] = 1.0,
        ModelId::LastNonDirect => {
            let last = channels.iter().rposition(|&c| !is_direct.get(c as usize).copied().unwrap_or(false));
            weights[last.unwrap_or(n - 1)] = 1.0;
        }
        ModelId::Linear => weights.fill(1.0 / n as f64),
        ModelId::PositionBased => position(options.position_weights, weights),
        ModelId::JShaped => position(PositionWeights::J_SHAPED, weights),
        ModelId::InverseJ => position(PositionWeights::INVERSE_J, weights),
        ModelId::TimeDecay => {
            let times = journey.touch_times.expect("time decay is only offered on event-level input");
            let conversion = journey.conversion_time.expect("a converting event journey has a conversion time");
            time_decay(times, conversion, options.half_life_days, weights);
        }
        ModelId::Participation => first_of_each_channel(channels, weights, |_| 1.0),
        ModelId::Shapley => first_of_each_channel(channels, weights, |distinct| 1.0 / distinct as f64),
        ModelId::Markov | ModelId::ShaoLi => panic!("{model} credit is not a per-journey rule"),
    }
}

fn position(w: PositionWeights, weights: &mut [f64]) {
    let n = weights.len();
    match n {
        1 => weights[0] = 1.0,
        2 => {
            // Adobe's rule: the middle weight is dropped and first/last renormalised.
            let ends = w.first + w.last;
            let (first, last) = if ends > 0.0 { (w.first / ends, w.last / ends) } else { (0.5, 0.5) };
            weights[0] = first;
            weights[1] = last;
        }
        _ => {
            let middle = w.middle / (n - 2) as f64;
            weights.fill(middle);
            weights[0] = w.first;
            weights[n - 1] = w.last;
        }
    }
}

fn time_decay(times: &[i64], conversion: i64, half_life_days: f64, weights: &mut [f64]) {
    // Measured from the most recent touch so that very old touches cannot underflow every
    // weight to zero; normalisation makes the shift exact.
    let newest = times.iter().copied().max().unwrap_or(conversion);
    let mut sum = 0.0;
    for (weight, &time) in weights.iter_mut().zip(times) {
        let age_days = (newest - time) as f64 / MICROS_PER_DAY;
        *weight = (-age_days / half_life_days).exp2();
        sum += *weight;
    }
    for weight in weights.iter_mut() {
        *weight /= sum;
    }
}

fn first_of_each_channel(channels: &[u32], weights: &mut [f64], weight_for: impl Fn(usize) -> f64) {
    let mut firsts = Vec::with_capacity(channels.len().min(64));
    if channels.len() <= 64 {
        for (i, c) in channels.iter().enumerate() {
            if !channels[..i].contains(c) {
                firsts.push(i);
            }
        }
    } else {
        let mut seen = rustc_hash::FxHashSet::default();
        firsts.extend((0..channels.len()).filter(|&i| seen.insert(channels[i])));
    }
    let weight = weight_for(firsts.len());
    for i in firsts {
        weights[i] = weight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::InputKind;

    const DAY: i64 = 86_400_000_000;

    fn journey<'a>(channels: &'a [u32], times: &'a [i64], conversion_time: i64) -> Journey<'a> {
        Journey {
            channels,
            touch_times: Some(times),
            conversion_time: Some(conversion_time),
            conversions: 1.0,
            value: 0.0,
            nulls: 0.0,
            truncated: false,
        }
    }

    fn weights_of(model: ModelId, channels: &[u32]) -> Vec<f64> {
        let options = Options::defaults(InputKind::Events);
        let times: Vec<i64> = (0..channels.len() as i64).map(|i| i * DAY).collect();
        let mut out = Vec::new();
        let direct = [false, false, false, true];
        touch_weights(model, &journey(channels, &times, channels.len() as i64 * DAY), &options, &direct, &mut out);
        out
    }

    #[test]
    fn position_based_one_two_and_many_touches() {
        assert_eq!(weights_of(ModelId::PositionBased, &[0]), [1.0]);
        assert_eq!(weights_of(ModelId::PositionBased, &[0, 1]), [0.5, 0.5]);
        let four = weights_of(ModelId::PositionBased, &[0, 1, 2, 0]);
        assert_eq!(four, [0.4, 0.1, 0.1, 0.4]);
    }

    #[test]
    fn j_shapes_renormalise_two_touch_journeys() {
        let close = |got: Vec<f64>, want: [f64; 2]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-15);
        assert!(close(weights_of(ModelId::JShaped, &[0, 1]), [0.25, 0.75]));
        assert!(close(weights_of(ModelId::InverseJ, &[0, 1]), [0.75, 0.25]));
        let three = weights_of(ModelId::JShaped, &[0, 1, 2]);
        assert!((three[0] - 0.2).abs() < 1e-15 && (three[1] - 0.2).abs() < 1e-15 && (three[2] - 0.6).abs() < 1e-15);
    }

    #[test]
    fn last_non_direct_skips_direct_unless_all_direct() {
        assert_eq!(weights_of(ModelId::LastNonDirect, &[1, 3, 3]), [1.0, 0.0, 0.0]);
        assert_eq!(weights_of(ModelId::LastNonDirect, &[3, 3]), [0.0, 1.0]);
    }

    #[test]
    fn time_decay_halves_per_half_life() {
        let options = Options::defaults(InputKind::Events);
        let mut out = Vec::new();
        // Touches 14 and 7 days before the conversion with a 7-day half-life: weights 1:2.
        touch_weights(ModelId::TimeDecay, &journey(&[0, 1], &[0, 7 * DAY], 14 * DAY), &options, &[], &mut out);
        assert!((out[0] - 1.0 / 3.0).abs() < 1e-15 && (out[1] - 2.0 / 3.0).abs() < 1e-15);
    }

    #[test]
    fn time_decay_survives_touches_far_in_the_past() {
        let options = Options::defaults(InputKind::Events);
        let mut out = Vec::new();
        let old = -100_000 * DAY;
        touch_weights(ModelId::TimeDecay, &journey(&[0, 1], &[old, old], 0), &options, &[], &mut out);
        assert_eq!(out, [0.5, 0.5]);
    }

    #[test]
    fn participation_and_shapley_count_distinct_channels_once() {
        assert_eq!(weights_of(ModelId::Participation, &[0, 0, 2]), [1.0, 0.0, 1.0]);
        assert_eq!(weights_of(ModelId::Shapley, &[0, 0, 2]), [0.5, 0.0, 0.5]);
        let long: Vec<u32> = (0..200).map(|i| i % 3).collect();
        let shapley = weights_of(ModelId::Shapley, &long);
        assert!((shapley.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(shapley.iter().filter(|w| **w > 0.0).count(), 3);
    }

    #[test]
    fn linear_counts_repeats_each_time() {
        assert_eq!(weights_of(ModelId::Linear, &[0, 0, 1, 2]), [0.25; 4]);
    }
}
