//! `markov_order: auto`: the Markov order chosen by the data (docs/user-guide.md, "Choosing
//! the Markov order").
//!
//! Every journey is counted into the chains of orders 1 to 4 (one of them is solved once
//! the order is chosen) and, by a hash of its user (path rows: of its path), into a
//! training part (4 in 5) or a held-out part (1 in 5). Under the order-k chain a journey's
//! outcome is predicted by the state it ends in (its last k channels): p̂ = (training
//! conversions ending there + p₀) / (training journeys ending there + 1), shrunk toward the
//! training conversion rate p₀ by one pseudo-journey, so a state the training part never
//! saw predicts p₀. Each order's score is the held-out log-likelihood of the outcomes per
//! held-out journey; the highest wins (a lower order on a tie). Every count is additive, so
//! chunks merge by addition and the choice does not depend on them.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::chunk::NO_CHANNEL;
use crate::error::AttributionError;
use crate::exact::JourneySums;
use crate::markov::{MAX_MARKOV_STATES, MarkovCounts, StateKey};
use crate::options::MarkovOrder;

/// One journey in this many is held out (by the hash of its user or path).
pub const HELD_OUT_ONE_IN: u64 = 5;

/// A higher order wins only by more than this (relative), so that rounding in sums made in
/// a different order cannot flip a tie.
const TIE: f64 = 1e-9;

/// Whether the journeys of the user with this key are held out.
pub fn is_held_out(user_key: u128) -> bool {
    // The low bits: `partition_of` uses the high ones, so each partition holds out its share.
    (user_key as u64).is_multiple_of(HELD_OUT_ONE_IN)
}

/// Whether a path row's journeys are held out, by the hash of its channel names (not ids,
/// which differ from chunk to chunk).
pub fn is_held_out_path(channels: &[u32], names: &[String]) -> bool {
    let mut bytes = Vec::with_capacity(channels.len() * 8);
    for &c in channels {
        bytes.extend_from_slice(names[c as usize].as_bytes());
        bytes.push(0);
    }
    is_held_out(crate::chunk::user_key(&bytes))
}

/// Training conversions, training nulls, held-out conversions, held-out nulls.
type Outcomes = [f64; 4];

/// The chains of every candidate order and the outcome counts that score them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCandidates {
    /// Orders 1 to 4, in order.
    pub chains: Vec<MarkovCounts>,
    /// Per order, by the state journeys end in (the last k channels).
    #[serde(with = "outcome_maps")]
    outcomes: Vec<FxHashMap<StateKey, Outcomes>>,
}

/// One order's fit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderScore {
    pub order: u8,
    /// States of the order's chain over every journey.
    pub states: usize,
    /// Mean log-likelihood of the held-out journeys' outcomes (≤ 0, higher is better);
    /// `null` when not scored (no held-out journeys, or more states than can be solved).
    pub log_likelihood: Option<f64>,
}

/// How `markov_order: auto` chose (the markov model's `order_selection`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSelection {
    /// `held_out_outcome_log_likelihood`: see docs/user-guide.md, "Choosing the Markov order".
    pub criterion: String,
    pub chosen: u8,
    /// Journeys (converting and not) of the training and the held-out part.
    pub training_journeys: f64,
    pub held_out_journeys: f64,
    pub scores: Vec<OrderScore>,
}

impl Default for OrderCandidates {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderCandidates {
    pub fn new() -> Self {
        OrderCandidates {
            chains: MarkovOrder::CANDIDATES.map(MarkovCounts::new).collect(),
            outcomes: MarkovOrder::CANDIDATES.map(|_| FxHashMap::default()).collect(),
        }
    }

    /// The chain of `order`.
    pub fn chain(&self, order: u8) -> &MarkovCounts {
        &self.chains[order as usize - 1]
    }

    /// Adds one journey to every chain, and its outcome to the training or held-out counts.
    pub fn add_path(&mut self, channels: &[u32], conversions: f64, nulls: f64, value: f64, held_out: bool) {
        let add = |chain: &mut MarkovCounts| chain.add_path(channels, conversions, nulls, value);
        self.add_path_within(MAX_MARKOV_STATES, channels, [conversions, nulls], held_out, add);
    }

    /// [`Self::add_path`] in a replicate, its value exact.
    pub fn add_exact_path(&mut self, channels: &[u32], sums: &JourneySums, held_out: bool) {
        let add = |chain: &mut MarkovCounts| chain.add_exact_path(channels, sums);
        self.add_path_within(MAX_MARKOV_STATES, channels, [sums.conversions, sums.nulls], held_out, add);
    }

    /// Adds a journey of `[conversions, nulls]` to every chain by `add`, leaving out the orders
    /// whose chain has more than `max_states` states: such an order is no candidate whatever
    /// comes later (states are never removed), so its counts stop growing and the four chains
    /// stay bounded.
    fn add_path_within(
        &mut self,
        max_states: usize,
        channels: &[u32],
        [conversions, nulls]: [f64; 2],
        held_out: bool,
        add: impl Fn(&mut MarkovCounts),
    ) {
        if channels.is_empty() || conversions + nulls <= 0.0 {
            return;
        }
        let part = if held_out { 2 } else { 0 };
        for (k, (chain, outcomes)) in self.chains.iter_mut().zip(&mut self.outcomes).enumerate() {
            if chain.state_count() > max_states {
                continue;
            }
            add(chain);
            let last = &channels[channels.len().saturating_sub(k + 1)..];
            let key: StateKey = std::array::from_fn(|j| last.get(j).copied().unwrap_or(NO_CHANNEL));
            let sums = outcomes.entry(key).or_insert([0.0; 4]);
            sums[part] += conversions;
            sums[part + 1] += nulls;
        }
    }

    /// A replicate's candidates in one order whatever grouping made them (see
    /// [`MarkovCounts::canonical`]), channels renumbered by `channel_map`.
    pub(crate) fn canonical(&self, channel_map: &[u32]) -> Result<OrderCandidates, AttributionError> {
        let renumbered = |key: &StateKey| key.map(|c| if c == NO_CHANNEL { c } else { channel_map[c as usize] });
        let chains = self.chains.iter().map(|chain| chain.canonical(channel_map)).collect::<Result<_, _>>()?;
        let outcomes = self
            .outcomes
            .iter()
            .map(|outcomes| {
                let mut sorted: Vec<(StateKey, Outcomes)> =
                    outcomes.iter().map(|(key, sums)| (renumbered(key), *sums)).collect();
                sorted.sort_unstable_by_key(|&(key, _)| key);
                sorted.into_iter().collect()
            })
            .collect();
        Ok(OrderCandidates { chains, outcomes })
    }

    /// Adds `other`, whose channel ids map to ours through `channel_map`.
    pub fn merge(&mut self, other: &OrderCandidates, channel_map: &[u32]) {
        self.merge_within(MAX_MARKOV_STATES, other, channel_map);
    }

    /// [`Self::merge`], leaving out the orders whose chain here has more than `max_states`
    /// states (a merge into a chain below it may pass it, at most to the sum of both).
    /// Whether an order's chain ends above the limit does not depend on the grouping: every
    /// chain met on the way holds a part of the whole chain's states, and keeps them.
    fn merge_within(&mut self, max_states: usize, other: &OrderCandidates, channel_map: &[u32]) {
        let mine = self.chains.iter_mut().zip(&mut self.outcomes);
        for ((chain, outcomes), (their_chain, theirs)) in mine.zip(other.chains.iter().zip(&other.outcomes)) {
            if chain.state_count() > max_states {
                continue;
            }
            chain.merge(their_chain, channel_map);
            for (key, sums) in theirs {
                let key = key.map(|c| if c == NO_CHANNEL { c } else { channel_map[c as usize] });
                let entry = outcomes.entry(key).or_insert([0.0; 4]);
                for (a, b) in entry.iter_mut().zip(sums) {
                    *a += b;
                }
            }
        }
    }

    /// Scores every order and chooses one.
    pub fn choose(&self) -> OrderSelection {
        self.choose_within(MAX_MARKOV_STATES)
    }

    /// [`Self::choose`] among the orders whose chain has at most `max_states` states (the
    /// others, whose counting stopped, report `max_states + 1` states).
    fn choose_within(&self, max_states: usize) -> OrderSelection {
        let totals = self.outcomes[0].values().fold([0.0; 4], |mut t, s| {
            for (a, b) in t.iter_mut().zip(s) {
                *a += b;
            }
            t
        });
        let training = totals[0] + totals[1];
        let held_out = totals[2] + totals[3];
        // The training rate, itself kept off 0 and 1 so that every prediction has a log.
        let base = (totals[0] + 0.5) / (training + 1.0);
        let scores: Vec<OrderScore> = MarkovOrder::CANDIDATES
            .map(|order| {
                let states = self.chain(order).state_count().min(max_states + 1);
                let scored = held_out > 0.0 && states <= max_states;
                let log_likelihood = scored.then(|| {
                    // Summed in key order: the same sum however the counts were merged.
                    let mut by_state: Vec<(&StateKey, &Outcomes)> = self.outcomes[order as usize - 1].iter().collect();
                    by_state.sort_unstable_by_key(|&(key, _)| *key);
                    let sum: f64 = by_state
                        .into_iter()
                        .filter(|(_, s)| s[2] + s[3] > 0.0)
                        .map(|(_, s)| {
                            let p = (s[0] + base) / (s[0] + s[1] + 1.0);
                            let mut ll = 0.0;
                            if s[2] > 0.0 {
                                ll += s[2] * p.ln();
                            }
                            if s[3] > 0.0 {
                                ll += s[3] * (1.0 - p).ln();
                            }
                            ll
                        })
                        .sum();
                    sum / held_out
                });
                OrderScore { order, states, log_likelihood }
            })
            .collect();
        let mut chosen: Option<(u8, f64)> = None;
        for score in &scores {
            if let Some(ll) = score.log_likelihood
                && chosen.is_none_or(|(_, best)| ll > best + TIE * best.abs())
            {
                chosen = Some((score.order, ll));
            }
        }
        OrderSelection {
            criterion: "held_out_outcome_log_likelihood".to_owned(),
            chosen: chosen.map_or(1, |(order, _)| order),
            training_journeys: training,
            held_out_journeys: held_out,
            scores,
        }
    }
}

/// The outcome maps as lists sorted by state, so equal counts serialise equally.
mod outcome_maps {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(maps: &[FxHashMap<StateKey, Outcomes>], s: S) -> Result<S::Ok, S::Error> {
        let lists: Vec<Vec<(StateKey, Outcomes)>> = maps
            .iter()
            .map(|map| {
                let mut list: Vec<(StateKey, Outcomes)> = map.iter().map(|(k, v)| (*k, *v)).collect();
                list.sort_unstable_by_key(|&(key, _)| key);
                list
            })
            .collect();
        lists.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FxHashMap<StateKey, Outcomes>>, D::Error> {
        let lists: Vec<Vec<(StateKey, Outcomes)>> = Vec::deserialize(d)?;
        Ok(lists.into_iter().map(|list| list.into_iter().collect()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_by_hand() {
        // Training: a→b converts twice, c→b never (twice); held out: one a→b that converts
        // and one c→b that does not. Order 1 sees state b only; order 2 tells a→b from c→b.
        let mut candidates = OrderCandidates::new();
        candidates.add_path(&[0, 1], 2.0, 0.0, 0.0, false);
        candidates.add_path(&[2, 1], 0.0, 2.0, 0.0, false);
        candidates.add_path(&[0, 1], 1.0, 0.0, 0.0, true);
        candidates.add_path(&[2, 1], 0.0, 1.0, 0.0, true);
        let selection = candidates.choose();
        let base: f64 = 2.5 / 5.0;
        // Order 1: state b, 2 of 4 training journeys converted.
        let p1 = (2.0 + base) / 5.0;
        let want1 = (p1.ln() + (1.0 - p1).ln()) / 2.0;
        // Orders 2 to 4: state a b converted 2 of 2, c b 0 of 2.
        let (pab, pcb) = ((2.0 + base) / 3.0, base / 3.0);
        let want2 = (pab.ln() + (1.0 - pcb).ln()) / 2.0;
        let got: Vec<f64> = selection.scores.iter().map(|s| s.log_likelihood.unwrap()).collect();
        assert!((got[0] - want1).abs() < 1e-15 && (got[1] - want2).abs() < 1e-15, "{got:?}");
        assert_eq!(got[1], got[3], "two-touch journeys end in the same state at orders 2 to 4");
        assert_eq!(selection.chosen, 2, "the lowest of the tied best orders");
        assert_eq!((selection.training_journeys, selection.held_out_journeys), (4.0, 2.0));
        assert_eq!(selection.scores.iter().map(|s| s.states).collect::<Vec<_>>(), [3, 2, 2, 2]);
    }

    #[test]
    fn without_held_out_journeys_order_one_is_kept_unscored() {
        let mut candidates = OrderCandidates::new();
        candidates.add_path(&[0, 1], 1.0, 1.0, 3.0, false);
        let selection = candidates.choose();
        assert_eq!(selection.chosen, 1);
        assert!(selection.scores.iter().all(|s| s.log_likelihood.is_none()));
    }

    #[test]
    fn an_order_past_the_state_limit_stops_counting_in_every_grouping() {
        // Six orderings of three channels, with a limit of 4 states: order 1 has 3 (a, b, c);
        // orders 2 to 4 would have 6 (the ordered pairs; the orderings) but pass the limit at
        // 5, stop growing there and are no candidates.
        let journeys: [(&[u32], bool); 6] = [
            (&[0, 1, 2], false),
            (&[1, 2, 0], true),
            (&[2, 0, 1], false),
            (&[0, 2, 1], true),
            (&[1, 0, 2], false),
            (&[2, 1, 0], true),
        ];
        let limit = 4;
        let mut whole = OrderCandidates::new();
        for (path, held_out) in journeys {
            whole.add_path_within(limit, path, [1.0, 1.0], held_out, |chain| chain.add_path(path, 1.0, 1.0, 1.0));
        }
        let sizes = |c: &OrderCandidates| (1..=4).map(|k| c.chain(k).state_count()).collect::<Vec<_>>();
        assert_eq!(sizes(&whole), [3, 5, 5, 5]);
        let one = whole.choose_within(limit);
        assert_eq!(one.scores.iter().map(|s| s.states).collect::<Vec<_>>(), [3, 5, 5, 5]);
        assert!(one.scores[0].log_likelihood.is_some() && one.scores[1..].iter().all(|s| s.log_likelihood.is_none()));
        assert_eq!(one.chosen, 1);
        // One journey a chunk, merged in reverse: the same choice and figures.
        let mut merged = OrderCandidates::new();
        for (path, held_out) in journeys.iter().rev() {
            let mut part = OrderCandidates::new();
            part.add_path_within(limit, path, [1.0, 1.0], *held_out, |chain| chain.add_path(path, 1.0, 1.0, 1.0));
            merged.merge_within(limit, &part, &[0, 1, 2]);
        }
        assert_eq!(merged.choose_within(limit), one);
        assert_eq!(sizes(&merged), [3, 5, 5, 5]);
    }

    #[test]
    fn about_one_user_in_five_is_held_out() {
        let held = (0..10_000u32).filter(|i| is_held_out(crate::chunk::user_key(&i.to_le_bytes()))).count();
        assert!((1_800..2_200).contains(&held), "{held}");
    }
}
