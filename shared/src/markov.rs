//! The Markov-chain removal-effect model of order k, solved exactly (docs/user-guide.md, "Models").
//!
//! [`MarkovCounts`] holds the chain's additive sufficient statistics (transition
//! weights, per-state absorption weights and value sums) so chunks merge by addition;
//! [`MarkovCounts::solve`] then runs one sparse LU solve for the full chain and one per
//! channel with that channel removed. No simulation. The cost is about channels × one
//! solve over the whole chain, so it grows with the square of the channels: a
//! [`SolveBudget`] bounds the channels and lets the caller stop a solve between channels.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::chunk::NO_CHANNEL;
use crate::error::{AttributionError, ErrorCode};
use crate::exact::{Exact, JourneySums};

/// A state: up to four channel ids (a k-gram), unused slots set to [`NO_CHANNEL`].
pub type StateKey = [u32; 4];

/// The `(start)` state in transition keys.
const START: u32 = u32::MAX;

/// Refuse chains larger than this many states instead of exhausting memory.
pub const MAX_MARKOV_STATES: usize = 2_000_000;

/// The default of `markov_max_channels`. Measured at order 1 on two cores, debug build,
/// journeys of four touches: 2,000 channels 1.3 s, 4,000 6 s, 10,000 73 s (one solve per
/// channel took 49 s, 319 s and hours); higher orders solve once per channel and cost more,
/// which the caller's time limit bounds.
pub const DEFAULT_MAX_CHANNELS: usize = 10_000;

/// What one solve may cost, and how its caller stops it.
#[derive(Clone, Copy)]
pub struct SolveBudget<'a> {
    /// Most distinct channels in the chain (`markov_max_channels`): each costs one sparse
    /// solve over the whole chain.
    pub max_channels: usize,
    /// Asked before each per-channel solve; once it answers `true` the solve ends with an
    /// error (the caller knows why it asked to stop).
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl Default for SolveBudget<'static> {
    /// The default channel limit, never stopped.
    fn default() -> Self {
        SolveBudget { max_channels: DEFAULT_MAX_CHANNELS, stop: &never }
    }
}

fn never() -> bool {
    false
}

/// One channel's removal effects: `(channel, on conversions, on value)`.
type Removal = (u32, f64, f64);

/// Additive statistics of a k-order chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(into = "MarkovWire", from = "MarkovWire")]
pub struct MarkovCounts {
    pub order: u8,
    states: Vec<StateKey>,
    state_ids: FxHashMap<StateKey, u32>,
    /// Order 1 only: state id by channel id, a direct index instead of a hash look-up.
    single_channel_states: Vec<u32>,
    /// `(from << 32 | to) -> weight`; `from` may be [`START`].
    transitions: FxHashMap<u64, f64>,
    conversions: Vec<f64>,
    nulls: Vec<f64>,
    values: Vec<f64>,
    /// A replicate's values by state, exact (`exact.rs`; `values` stay 0); as long as the
    /// states it has met.
    exact_values: Vec<Exact>,
    path: Vec<u32>,
}

/// The stored form of [`MarkovCounts`]: its statistics without the look-up tables,
/// which are rebuilt on load; transitions sorted so equal counts serialise equally.
#[derive(Serialize, Deserialize)]
struct MarkovWire {
    order: u8,
    states: Vec<StateKey>,
    transitions: Vec<(u64, f64)>,
    conversions: Vec<f64>,
    nulls: Vec<f64>,
    values: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exact_values: Vec<Exact>,
}

impl From<MarkovCounts> for MarkovWire {
    fn from(counts: MarkovCounts) -> Self {
        let mut transitions: Vec<(u64, f64)> = counts.transitions.into_iter().collect();
        transitions.sort_unstable_by_key(|&(edge, _)| edge);
        MarkovWire {
            order: counts.order,
            states: counts.states,
            transitions,
            conversions: counts.conversions,
            nulls: counts.nulls,
            values: counts.values,
            exact_values: counts.exact_values,
        }
    }
}

impl From<MarkovWire> for MarkovCounts {
    fn from(wire: MarkovWire) -> Self {
        let mut counts = MarkovCounts { order: wire.order, ..MarkovCounts::default() };
        for key in wire.states {
            counts.intern(key);
        }
        counts.transitions = wire.transitions.into_iter().collect();
        counts.conversions = wire.conversions;
        counts.nulls = wire.nulls;
        counts.values = wire.values;
        counts.exact_values = wire.exact_values;
        counts
    }
}

/// The solved chain, per channel id of the partial it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkovSolution {
    pub conversion_probability: f64,
    pub removal_effect: Vec<f64>,
    pub removal_effect_value: Vec<f64>,
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

impl MarkovCounts {
    pub fn new(order: u8) -> Self {
        assert!((1..=4).contains(&order), "markov order is validated to 1..=4");
        MarkovCounts { order, ..Default::default() }
    }

    pub fn state_count(&self) -> usize {
        self.states.len()
    }

    /// Adds one journey: (start) → s1 → … → sm with weight conversions + nulls, then
    /// sm → (conversion) and sm → (null). States are sliding k-grams (a shorter journey is
    /// one shorter state) with consecutive identical states collapsed.
    pub fn add_path(&mut self, channels: &[u32], conversions: f64, nulls: f64, value: f64) {
        if let Some(last) = self.add_transitions(channels, conversions + nulls) {
            self.conversions[last] += conversions;
            self.nulls[last] += nulls;
            self.values[last] += value;
        }
    }

    /// [`MarkovCounts::add_path`] in a replicate, its value exact.
    pub fn add_exact_path(&mut self, channels: &[u32], sums: &JourneySums) {
        if let Some(last) = self.add_transitions(channels, sums.conversions + sums.nulls) {
            self.conversions[last] += sums.conversions;
            self.nulls[last] += sums.nulls;
            crate::exact::add_at(&mut self.exact_values, last, sums.value);
        }
    }

    /// Adds a journey's transitions at `weight` and answers its last state (`None` without
    /// touches or weight).
    fn add_transitions(&mut self, channels: &[u32], weight: f64) -> Option<usize> {
        if channels.is_empty() || weight <= 0.0 {
            return None;
        }
        let mut path = std::mem::take(&mut self.path);
        self.state_path(channels, &mut path);
        let mut from = START;
        for &to in &path {
            *self.transitions.entry(edge(from, to)).or_insert(0.0) += weight;
            from = to;
        }
        self.path = path;
        Some(from as usize)
    }

    /// The states a journey over `channels` passes through, into `path` (its ids, added if
    /// new): sliding k-grams, a shorter journey one shorter state, consecutive identical
    /// states collapsed.
    fn state_path(&mut self, channels: &[u32], path: &mut Vec<u32>) {
        let k = self.order as usize;
        path.clear();
        let grams = if channels.len() < k { 1 } else { channels.len() - k + 1 };
        for start in 0..grams {
            let gram = &channels[start..(start + k).min(channels.len())];
            // Not a slice copy: for at most four ids that is a call to memcpy per touch.
            let key: StateKey = std::array::from_fn(|j| gram.get(j).copied().unwrap_or(NO_CHANNEL));
            let id = self.intern(key);
            if path.last() != Some(&id) {
                path.push(id);
            }
        }
    }

    /// The id of state `key`, added if new. The common case, a one-channel state seen
    /// before, is a direct index and inlined into the per-touch loop.
    #[inline]
    fn intern(&mut self, key: StateKey) -> u32 {
        if key[1] == NO_CHANNEL
            && let Some(&id) = self.single_channel_states.get(key[0] as usize)
            && id != u32::MAX
        {
            return id;
        }
        self.intern_by_key(key)
    }

    fn intern_by_key(&mut self, key: StateKey) -> u32 {
        let single = key[1] == NO_CHANNEL && key[0] != NO_CHANNEL;
        if let Some(&id) = self.state_ids.get(&key) {
            return id;
        }
        let id = self.states.len() as u32;
        self.states.push(key);
        self.state_ids.insert(key, id);
        self.conversions.push(0.0);
        self.nulls.push(0.0);
        self.values.push(0.0);
        if single && (key[0] as usize) < (1 << 20) {
            let channel = key[0] as usize;
            if self.single_channel_states.len() <= channel {
                self.single_channel_states.resize(channel + 1, u32::MAX);
            }
            self.single_channel_states[channel] = id;
        }
        id
    }

    /// Adds `other`, whose channel ids map to ours through `channel_map`.
    pub fn merge(&mut self, other: &MarkovCounts, channel_map: &[u32]) {
        assert_eq!(self.order, other.order, "partials of one job share the markov order");
        let state_map: Vec<u32> = other
            .states
            .iter()
            .map(|key| self.intern(key.map(|c| if c == NO_CHANNEL { c } else { channel_map[c as usize] })))
            .collect();
        for (&key, &weight) in &other.transitions {
            let (from, to) = split_edge(key);
            let from = if from == START { START } else { state_map[from as usize] };
            *self.transitions.entry(edge(from, state_map[to as usize])).or_insert(0.0) += weight;
        }
        for (old, &new) in state_map.iter().enumerate() {
            let new = new as usize;
            self.conversions[new] += other.conversions[old];
            self.nulls[new] += other.nulls[old];
            self.values[new] += other.values[old];
            if let Some(&value) = other.exact_values.get(old) {
                crate::exact::add_at(&mut self.exact_values, new, value);
            }
        }
    }

    /// A replicate's chain as `f64` sums in one order, whatever grouping of chunks made it
    /// (the solve's rounding follows the states' order): channels renumbered by `channel_map`
    /// (`NO_CHANNEL` for channels it does not reach), states in the order of their keys, those
    /// no journey reached (a flush numbers every path of its chunk's table) left out, values
    /// from the exact sums.
    pub(crate) fn canonical(&self, channel_map: &[u32]) -> Result<MarkovCounts, AttributionError> {
        let renumbered = |key: StateKey| key.map(|c| if c == NO_CHANNEL { c } else { channel_map[c as usize] });
        let mut reached = vec![false; self.states.len()];
        for (&key, &weight) in &self.transitions {
            if weight > 0.0 {
                reached[split_edge(key).1 as usize] = true;
            }
        }
        let mut order: Vec<usize> = (0..self.states.len()).filter(|&s| reached[s]).collect();
        order.sort_unstable_by_key(|&s| renumbered(self.states[s]));
        let mut chain = MarkovCounts::new(self.order);
        let mut ids = vec![u32::MAX; self.states.len()];
        for &s in &order {
            let id = chain.intern(renumbered(self.states[s]));
            ids[s] = id;
            let id = id as usize;
            chain.conversions[id] = self.conversions[s];
            chain.nulls[id] = self.nulls[s];
            chain.values[id] = self.exact_values.get(s).copied().unwrap_or_default().to_f64()?;
        }
        let mut transitions: Vec<(u64, f64)> = self
            .transitions
            .iter()
            .filter(|&(_, &weight)| weight > 0.0)
            .map(|(&key, &weight)| {
                let (from, to) = split_edge(key);
                let from = if from == START { START } else { ids[from as usize] };
                (edge(from, ids[to as usize]), weight)
            })
            .collect();
        transitions.sort_unstable_by_key(|&(key, _)| key);
        chain.transitions = transitions.into_iter().collect();
        Ok(chain)
    }

    /// Solves the chain for `channel_count` channel ids, within `budget`.
    pub fn solve(&self, channel_count: usize, budget: &SolveBudget) -> Result<MarkovSolution, AttributionError> {
        if self.states.len() > MAX_MARKOV_STATES {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the order-{} Markov chain has {} states, above the limit of {MAX_MARKOV_STATES}; use a lower markov_order",
                    self.order,
                    self.states.len()
                ),
            ));
        }
        let channels_in_chain: Vec<u32> = {
            let mut present = vec![false; channel_count];
            for key in &self.states {
                for &c in key.iter().filter(|&&c| c != NO_CHANNEL) {
                    present[c as usize] = true;
                }
            }
            (0..channel_count as u32).filter(|&c| present[c as usize]).collect()
        };
        if channels_in_chain.len() > budget.max_channels {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the order-{} Markov chain has {} channels, above the limit of {} (markov_max_channels; \
                     the solve's time grows with the channels times the chain's {} states and {} transitions): \
                     leave out `markov` or raise the limit",
                    self.order,
                    channels_in_chain.len(),
                    budget.max_channels,
                    self.states.len(),
                    self.transitions.len()
                ),
            ));
        }
        if (budget.stop)() {
            return Err(stopped());
        }
        let chain = Chain::new(self);
        let (base_conversions, _, removed) = if self.order == 1 {
            self.removal_effects_of_states(&chain, budget)?
        } else {
            let (base_conversions, base_value) = chain.absorb(|_| true)?;
            let removed: Vec<Removal> = channels_in_chain
                .par_iter()
                .map(|&channel| {
                    if (budget.stop)() {
                        return Err(stopped());
                    }
                    let (p, v) = chain.absorb(|state| !self.states[state].contains(&channel))?;
                    Ok((channel, effect(p, base_conversions), effect(v, base_value)))
                })
                .collect::<Result<_, AttributionError>>()?;
            (base_conversions, base_value, removed)
        };

        let mut solution = MarkovSolution {
            conversion_probability: base_conversions,
            removal_effect: vec![0.0; channel_count],
            removal_effect_value: vec![0.0; channel_count],
            conversions: vec![0.0; channel_count],
            value: vec![0.0; channel_count],
        };
        for &(channel, re, re_value) in &removed {
            solution.removal_effect[channel as usize] = re;
            solution.removal_effect_value[channel as usize] = re_value;
        }
        let total_conversions: f64 = self.conversions.iter().sum();
        let total_value: f64 = self.values.iter().sum();
        distribute(&solution.removal_effect, total_conversions, &mut solution.conversions);
        distribute(&solution.removal_effect_value, total_value, &mut solution.value);
        Ok(solution)
    }
}

/// A state of the chain as the transition table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainState {
    Start,
    /// Up to four channel ids, unused slots [`NO_CHANNEL`].
    Channels(StateKey),
    Conversion,
    Null,
}

/// One transition of the chain: from, to, its weight (journeys) and its probability.
pub type TransitionRow = (ChainState, ChainState, f64, f64);

impl MarkovCounts {
    /// Every transition with a weight: (start) → each first state, state → state, and each
    /// last state → (conversion) and → (null); probabilities as the solve reads them (a
    /// state's weight over all its outgoing weights).
    pub fn transitions(&self) -> Vec<TransitionRow> {
        let n = self.states.len();
        let mut out_weight: Vec<f64> = (0..n).map(|s| self.conversions[s] + self.nulls[s]).collect();
        let mut start_weight = 0.0;
        for (&key, &w) in &self.transitions {
            match split_edge(key) {
                (START, _) => start_weight += w,
                (from, _) => out_weight[from as usize] += w,
            }
        }
        let share = |w: f64, total: f64| if total > 0.0 { w / total } else { 0.0 };
        let state = |s: u32| ChainState::Channels(self.states[s as usize]);
        let mut rows: Vec<TransitionRow> = Vec::with_capacity(self.transitions.len() + 2 * n);
        for (&key, &w) in &self.transitions {
            let (from, to) = split_edge(key);
            if from == START {
                rows.push((ChainState::Start, state(to), w, share(w, start_weight)));
            } else {
                rows.push((state(from), state(to), w, share(w, out_weight[from as usize])));
            }
        }
        for (s, &total) in out_weight.iter().enumerate() {
            let (conversions, nulls, from) = (self.conversions[s], self.nulls[s], state(s as u32));
            if conversions > 0.0 {
                rows.push((from, ChainState::Conversion, conversions, share(conversions, total)));
            }
            if nulls > 0.0 {
                rows.push((from, ChainState::Null, nulls, share(nulls, total)));
            }
        }
        rows
    }
}

impl MarkovCounts {
    /// What the conversion probability and the expected value lose, as shares of the
    /// whole chain's, when both channels of each pair are removed (every state holding either
    /// goes to (null)): one sparse solve per pair, stopped like [`MarkovCounts::solve`].
    pub fn pair_removal_effects(
        &self,
        pairs: &[(u32, u32)],
        budget: &SolveBudget,
    ) -> Result<Vec<(f64, f64)>, AttributionError> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let chain = Chain::new(self);
        let (base_conversions, base_value) = chain.absorb(|_| true)?;
        pairs
            .par_iter()
            .map(|&(a, b)| {
                if (budget.stop)() {
                    return Err(stopped());
                }
                let (p, v) = chain.absorb(|state| !self.states[state].iter().any(|&c| c == a || c == b))?;
                Ok((effect(p, base_conversions), effect(v, base_value)))
            })
            .collect()
    }
}

impl MarkovCounts {
    /// Order 1, where each channel is one state: the base probability and value, and each
    /// channel's `(channel, removal effect, value removal effect)`, from one factorisation.
    ///
    /// A journey that never reaches state s is untouched by removing s, and one that does
    /// is lost from its first visit on. By the strong Markov property at that visit,
    /// P(conv) − P(conv | s removed) = h_s · a_s, where h_s = P(reach s from start) and
    /// a_s = P(conv from s); likewise for value with v_s, the expected value from s.
    /// With N = (I − Q)⁻¹: a = N r and v = N r_value (one transposed solve each), and
    /// h_s = x_s / N_ss (x the expected visits, N_ss ≥ 1 the visits to s starting at s),
    /// so each channel costs two triangular solves instead of a factorisation. Order 1
    /// has no self-transitions (repeats collapse), but the identity does not need that.
    fn removal_effects_of_states(
        &self,
        chain: &Chain,
        budget: &SolveBudget,
    ) -> Result<(f64, f64, Vec<Removal>), AttributionError> {
        let factors = chain.factorise()?;
        let visits = factors.solve(&chain.start_vector());
        let (conversion_prob, conversion_value) = (&chain.conversion_prob, &chain.conversion_value);
        let base_conversions: f64 = visits.iter().zip(conversion_prob).map(|(x, p)| x * p).sum();
        let base_value: f64 = visits.iter().zip(conversion_value).map(|(x, v)| x * v).sum();
        let to_conversion = factors.solve_transposed(conversion_prob);
        let to_value = factors.solve_transposed(conversion_value);
        let removed = (0..self.states.len())
            .into_par_iter()
            .map_init(
                || vec![0.0; self.states.len()],
                |work, state| {
                    if (budget.stop)() {
                        return Err(stopped());
                    }
                    let reach = visits[state] / factors.inverse_diagonal(state, work);
                    let re = loss_share(reach * to_conversion[state], base_conversions);
                    let re_value = loss_share(reach * to_value[state], base_value);
                    Ok((self.states[state][0], re, re_value))
                },
            )
            .collect::<Result<_, AttributionError>>()?;
        Ok((base_conversions, base_value, removed))
    }
}

fn stopped() -> AttributionError {
    AttributionError::new(ErrorCode::Internal, "the Markov solve was stopped before it finished")
}

/// RE = lost / base, the same as 1 − removed / base without its cancellation.
fn loss_share(lost: f64, base: f64) -> f64 {
    if base > 0.0 { (lost / base).clamp(0.0, 1.0) } else { 0.0 }
}

/// The transitions of a set of paths, numbered: bootstrap replicates sum each path's weight
/// per transition in dense arrays ([`EdgeTable::add_to`] then adds them to a chain), instead
/// of a hash look-up per transition, path and replicate.
#[derive(Debug, Default)]
pub struct EdgeTable {
    /// Interns the states (its sums stay 0).
    states: MarkovCounts,
    index: FxHashMap<u64, u32>,
    edges: Vec<u64>,
    path: Vec<u32>,
}

impl EdgeTable {
    pub fn new(order: u8) -> EdgeTable {
        EdgeTable { states: MarkovCounts::new(order), ..EdgeTable::default() }
    }

    pub fn edge_count(&self) -> usize {
        self.edges.len()
    }

    pub fn state_count(&self) -> usize {
        self.states.state_count()
    }

    /// Sets `edges` to the indices of the transitions a journey over `channels` makes (as
    /// [`MarkovCounts::add_path`] counts them) and answers its last state's index (`None`
    /// without touches).
    pub fn path(&mut self, channels: &[u32], edges: &mut Vec<u32>) -> Option<u32> {
        edges.clear();
        if channels.is_empty() {
            return None;
        }
        let mut path = std::mem::take(&mut self.path);
        self.states.state_path(channels, &mut path);
        let mut from = START;
        for &to in &path {
            let key = edge(from, to);
            let next = self.edges.len() as u32;
            let id = *self.index.entry(key).or_insert(next);
            if id == next {
                self.edges.push(key);
            }
            edges.push(id);
            from = to;
        }
        self.path = path;
        Some(from)
    }

    /// Adds `weights` (per edge index) and `outcomes` (conversions, nulls and value per state
    /// index) to `counts`, a chain of the same order over the same channel ids.
    pub fn add_to(&self, counts: &mut MarkovCounts, weights: &[f64], outcomes: &[JourneySums]) {
        let state_map: Vec<u32> = self.states.states.iter().map(|&key| counts.intern(key)).collect();
        for (&key, &weight) in self.edges.iter().zip(weights) {
            if weight > 0.0 {
                let (from, to) = split_edge(key);
                let from = if from == START { START } else { state_map[from as usize] };
                *counts.transitions.entry(edge(from, state_map[to as usize])).or_insert(0.0) += weight;
            }
        }
        for (&state, outcome) in state_map.iter().zip(outcomes) {
            let state = state as usize;
            counts.conversions[state] += outcome.conversions;
            counts.nulls[state] += outcome.nulls;
            if outcome.value != Exact::ZERO {
                crate::exact::add_at(&mut counts.exact_values, state, outcome.value);
            }
        }
    }
}

fn edge(from: u32, to: u32) -> u64 {
    (from as u64) << 32 | to as u64
}

fn split_edge(key: u64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// An effect below this share of the base is rounding: the two solves of an absorption that
/// removing the channel does not change (its states lead to no conversion) differ in the last
/// bits, and a chain of counts is not known that finely. Taken as none, so that whether a channel
/// gets credit does not depend on how chunks were grouped.
const NO_EFFECT: f64 = 1e-12;

/// RE = 1 − removed/base; removing a channel can only lower absorption, so an effect within
/// rounding of zero, negative or positive, is 0.
fn effect(removed: f64, base: f64) -> f64 {
    if base <= 0.0 {
        return 0.0;
    }
    let effect = 1.0 - removed / base;
    if effect < NO_EFFECT { 0.0 } else { effect.min(1.0) }
}

/// `out[c] = effects[c] / Σ effects × total`.
fn distribute(effects: &[f64], total: f64, out: &mut [f64]) {
    let sum: f64 = effects.iter().sum();
    if sum > 0.0 {
        for (o, e) in out.iter_mut().zip(effects) {
            *o = e / sum * total;
        }
    }
}

/// The row-normalised chain in CSR form.
struct Chain {
    /// Outgoing edges of state s: `edge_targets/edge_probs[offsets[s]..offsets[s+1]]`.
    offsets: Vec<usize>,
    edge_targets: Vec<u32>,
    edge_probs: Vec<f64>,
    start_probs: Vec<(u32, f64)>,
    /// P(s → conversion) and P(s → conversion) · mean value per conversion at s.
    conversion_prob: Vec<f64>,
    conversion_value: Vec<f64>,
}

impl Chain {
    fn new(counts: &MarkovCounts) -> Chain {
        let n = counts.states.len();
        let mut out_weight: Vec<f64> = (0..n).map(|s| counts.conversions[s] + counts.nulls[s]).collect();
        let mut edges: Vec<(u32, u32, f64)> = counts
            .transitions
            .iter()
            .map(|(&key, &w)| {
                let (from, to) = split_edge(key);
                (from, to, w)
            })
            .collect();
        edges.sort_unstable_by_key(|&(from, to, _)| (from, to));
        let mut start_weight = 0.0;
        for &(from, _, w) in &edges {
            if from == START {
                start_weight += w;
            } else {
                out_weight[from as usize] += w;
            }
        }
        let mut offsets = vec![0usize; n + 1];
        let mut edge_targets = Vec::with_capacity(edges.len());
        let mut edge_probs = Vec::with_capacity(edges.len());
        let mut start_probs = Vec::new();
        for &(from, to, w) in &edges {
            if from == START {
                start_probs.push((to, w / start_weight));
            } else {
                offsets[from as usize + 1] += 1;
                edge_targets.push(to);
                edge_probs.push(w / out_weight[from as usize]);
            }
        }
        for s in 0..n {
            offsets[s + 1] += offsets[s];
        }
        let conversion_prob: Vec<f64> =
            (0..n).map(|s| if out_weight[s] > 0.0 { counts.conversions[s] / out_weight[s] } else { 0.0 }).collect();
        // p_conv(s) · μ_s = (conv_s / out_s) · (value_s / conv_s) = value_s / out_s.
        let conversion_value: Vec<f64> =
            (0..n).map(|s| if out_weight[s] > 0.0 { counts.values[s] / out_weight[s] } else { 0.0 }).collect();
        Chain { offsets, edge_targets, edge_probs, start_probs, conversion_prob, conversion_value }
    }

    /// Probability and expected value of absorbing in (conversion) from (start), when
    /// only states with `keep(state)` remain and every transition into another state
    /// goes to (null). Solves (I − Qᵀ) x = b for the expected visits x.
    fn absorb(&self, keep: impl Fn(usize) -> bool) -> Result<(f64, f64), AttributionError> {
        let n = self.conversion_prob.len();
        let mut index = vec![usize::MAX; n];
        let mut kept = Vec::new();
        for (s, slot) in index.iter_mut().enumerate() {
            if keep(s) {
                *slot = kept.len();
                kept.push(s);
            }
        }
        let m = kept.len();
        if m == 0 {
            return Ok((0.0, 0.0));
        }
        let mut rhs = vec![0.0; m];
        for &(to, p) in &self.start_probs {
            if index[to as usize] != usize::MAX {
                rhs[index[to as usize]] += p;
            }
        }
        let matrix = self.matrix(&kept, &index);
        rsparse::lusol(&matrix, &mut rhs, ordering(m), 1.0).map_err(solve_failed)?;
        let visits = rhs;
        let conversions = kept.iter().zip(&visits).map(|(&s, x)| x * self.conversion_prob[s]).sum();
        let value = kept.iter().zip(&visits).map(|(&s, x)| x * self.conversion_value[s]).sum();
        Ok((conversions, value))
    }

    /// A = I − Qᵀ over the `kept` states (`index`: state → row, or `usize::MAX`): column j
    /// holds the outgoing transitions of kept state j.
    fn matrix(&self, kept: &[usize], index: &[usize]) -> rsparse::data::Sprs<f64> {
        let m = kept.len();
        let mut col_ptr = Vec::with_capacity(m + 1);
        let mut row_idx = Vec::new();
        let mut values = Vec::new();
        col_ptr.push(0isize);
        for (j, &s) in kept.iter().enumerate() {
            row_idx.push(j);
            values.push(1.0);
            for e in self.offsets[s]..self.offsets[s + 1] {
                let target = index[self.edge_targets[e] as usize];
                if target == j {
                    values[col_ptr[j] as usize] -= self.edge_probs[e];
                } else if target != usize::MAX {
                    row_idx.push(target);
                    values.push(-self.edge_probs[e]);
                }
            }
            col_ptr.push(row_idx.len() as isize);
        }
        rsparse::data::Sprs { nzmax: values.len(), m, n: m, p: col_ptr, i: row_idx, x: values }
    }

    /// P(start → s) for every state.
    fn start_vector(&self) -> Vec<f64> {
        let mut b = vec![0.0; self.conversion_prob.len()];
        for &(to, p) in &self.start_probs {
            b[to as usize] += p;
        }
        b
    }

    /// The LU factors of A = I − Qᵀ over every state.
    fn factorise(&self) -> Result<Factors, AttributionError> {
        let n = self.conversion_prob.len();
        let all: Vec<usize> = (0..n).collect();
        let matrix = self.matrix(&all, &all);
        let mut symbolic = rsparse::sqr(&matrix, ordering(n), false);
        let numeric = rsparse::lu(&matrix, &mut symbolic, 1.0).map_err(solve_failed)?;
        let identity = || (0..n as isize).collect::<Vec<isize>>();
        let row_of = numeric.pinv.unwrap_or_else(identity);
        // AMD's permutation carries one entry past the n columns.
        let mut column_order = symbolic.q.unwrap_or_else(identity);
        column_order.truncate(n);
        let mut position_of = vec![0usize; n];
        for (k, &state) in column_order.iter().enumerate() {
            position_of[state as usize] = k;
        }
        Ok(Factors { l: numeric.l, u: numeric.u, row_of, column_order, position_of })
    }
}

/// rsparse orders: -1 natural, 0 = AMD on A + Aᵀ (CSparse's choice for LU). Its AMD
/// underflows on matrices smaller than 3x3, which need no ordering anyway.
fn ordering(m: usize) -> i8 {
    if m < 3 { -1 } else { 0 }
}

fn solve_failed(e: rsparse::Error) -> AttributionError {
    AttributionError::new(ErrorCode::Internal, format!("markov linear solve failed: {e:?}"))
}

/// L U = P A Q, as CSparse's `cs_lu` leaves them: L unit lower with its diagonal first in
/// each column, U upper with its diagonal last, L's rows already in pivot order.
struct Factors {
    l: rsparse::data::Sprs<f64>,
    u: rsparse::data::Sprs<f64>,
    /// Row i of A is row `row_of[i]` of P A.
    row_of: Vec<isize>,
    /// Column k of A Q is column `column_order[k]` of A; `position_of` inverts it.
    column_order: Vec<isize>,
    position_of: Vec<usize>,
}

impl Factors {
    /// x with A x = b.
    fn solve(&self, b: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; b.len()];
        for (i, &bi) in b.iter().enumerate() {
            y[self.row_of[i] as usize] = bi;
        }
        rsparse::lsolve(&self.l, &mut y);
        rsparse::usolve(&self.u, &mut y);
        let mut x = vec![0.0; b.len()];
        for (k, &state) in self.column_order.iter().enumerate() {
            x[state as usize] = y[k];
        }
        x
    }

    /// y with Aᵀ y = c (A = L U permuted, so Aᵀ = Q Uᵀ Lᵀ P).
    fn solve_transposed(&self, c: &[f64]) -> Vec<f64> {
        let mut z: Vec<f64> = self.column_order.iter().map(|&state| c[state as usize]).collect();
        rsparse::utsolve(&self.u, &mut z);
        rsparse::ltsolve(&self.l, &mut z);
        self.row_of.iter().map(|&row| z[row as usize]).collect()
    }

    /// (A⁻¹)_ss: L⁻¹ P e_s, then U⁻¹ of that down to the row of s only. `work` is a
    /// zeroed vector of the chain's size, left zeroed.
    fn inverse_diagonal(&self, state: usize, work: &mut [f64]) -> f64 {
        let (l, u) = (&self.l, &self.u);
        let n = work.len();
        let first = self.row_of[state] as usize;
        work[first] = 1.0;
        // Forward: entries above `first` stay zero.
        for j in first..n {
            let xj = work[j];
            if xj != 0.0 {
                let xj = xj / l.x[l.p[j] as usize];
                work[j] = xj;
                for p in (l.p[j] + 1) as usize..l.p[j + 1] as usize {
                    work[l.i[p]] -= l.x[p] * xj;
                }
            }
        }
        // Backward, stopping at the position of s: entries below it are not needed.
        let target = self.position_of[state];
        for j in (target..n).rev() {
            let xj = work[j];
            if xj != 0.0 {
                let xj = xj / u.x[(u.p[j + 1] - 1) as usize];
                work[j] = xj;
                for p in u.p[j] as usize..(u.p[j + 1] - 1) as usize {
                    work[u.i[p]] -= u.x[p] * xj;
                }
            }
        }
        let diagonal = work[target];
        work.fill(0.0);
        diagonal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiny check of docs/user-guide.md, "Models" (c1=0, c2=1, c3=2).
    fn design_example(order: u8) -> MarkovCounts {
        let mut counts = MarkovCounts::new(order);
        counts.add_path(&[0, 1], 1.0, 0.0, 10.0);
        counts.add_path(&[0], 0.0, 1.0, 0.0);
        counts.add_path(&[1, 2], 1.0, 1.0, 5.0);
        counts.add_path(&[0, 0, 2], 2.0, 1.0, 30.0);
        counts
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn design_tiny_case_is_exact() {
        let s = design_example(1).solve(3, &SolveBudget::default()).unwrap();
        assert!(close(s.conversion_probability, 4.0 / 7.0));
        for (got, want) in s.removal_effect.iter().zip([19.0 / 30.0, 11.0 / 20.0, 3.0 / 4.0]) {
            assert!(close(*got, want), "{got} vs {want}");
        }
        for (got, want) in s.conversions.iter().zip([38.0 / 29.0, 33.0 / 29.0, 45.0 / 29.0]) {
            assert!(close(*got, want), "{got} vs {want}");
        }
        for (got, want) in s.removal_effect_value.iter().zip([29.0 / 45.0, 8.0 / 15.0, 7.0 / 9.0]) {
            assert!(close(*got, want), "{got} vs {want}");
        }
        for (got, want) in s.value.iter().zip([14.8295455, 12.2727273, 17.8977273]) {
            assert!((got - want).abs() < 5e-7, "{got} vs {want}");
        }
    }

    #[test]
    fn removing_a_pair_loses_the_journeys_through_either_channel() {
        // Order 1, the design example (c1 = 0, c2 = 1, c3 = 2): without c1 and c2 nothing is
        // reached; without c1 and c3 only start → c2 (2/7) → conversion (1/3) remains, 2/21 of
        // the base 4/7; without c2 and c3 only c1 remains, which never converts itself.
        let counts = design_example(1);
        let budget = SolveBudget::default();
        let effects = counts.pair_removal_effects(&[(0, 1), (0, 2), (1, 2)], &budget).unwrap();
        for (got, want) in effects.iter().zip([1.0, 5.0 / 6.0, 1.0]) {
            assert!(close(got.0, want), "{effects:?}");
        }
        assert!(close(effects[0].1, 1.0) && close(effects[2].1, 1.0), "{effects:?}");
        // A channel no converting journey needs: removing it with c3 loses what c3 loses.
        let mut counts = MarkovCounts::new(1);
        counts.add_path(&[0], 1.0, 0.0, 4.0);
        counts.add_path(&[1, 2], 1.0, 1.0, 6.0);
        counts.add_path(&[3], 0.0, 1.0, 0.0);
        let single = counts.solve(4, &budget).unwrap();
        let pairs = counts.pair_removal_effects(&[(0, 1), (2, 3), (0, 3)], &budget).unwrap();
        // Start → 0 (1/4), 1 (2/4), 3 (1/4); from 1 → 2 (2/2); 2 converts 1 of 2.
        assert!(close(single.conversion_probability, 0.5));
        assert!(close(pairs[0].0, 1.0), "both converting routes cut: {pairs:?}");
        assert!(close(pairs[1].0, single.removal_effect[2]), "3 never converts: {pairs:?}");
        assert!(close(pairs[2].0, single.removal_effect[0]));
        assert!(close(pairs[1].0, 0.5) && close(pairs[2].1, 0.4), "{pairs:?}");
    }

    #[test]
    fn transitions_of_the_design_case_by_hand() {
        let rows = design_example(1).transitions();
        let find = |from: ChainState, to: ChainState| {
            rows.iter().find(|r| r.0 == from && r.1 == to).map(|r| (r.2, r.3)).unwrap_or((0.0, 0.0))
        };
        let c = |id: u32| ChainState::Channels([id, NO_CHANNEL, NO_CHANNEL, NO_CHANNEL]);
        // Journeys (weight conversions + nulls): c1 c2 (1), c1 (1), c2 c3 (2), c1 c1 c3 (3).
        assert_eq!(find(ChainState::Start, c(0)), (5.0, 5.0 / 7.0));
        assert_eq!(find(ChainState::Start, c(1)), (2.0, 2.0 / 7.0));
        // c1 leaves 5 times: to c2 once, to c3 three times, to (null) once.
        assert_eq!(find(c(0), c(1)), (1.0, 1.0 / 5.0));
        assert_eq!(find(c(0), c(2)), (3.0, 3.0 / 5.0));
        assert_eq!(find(c(0), ChainState::Null), (1.0, 1.0 / 5.0));
        assert_eq!(find(c(0), ChainState::Conversion), (0.0, 0.0), "no such row");
        assert_eq!(find(c(2), ChainState::Conversion), (3.0, 3.0 / 5.0));
        assert_eq!(find(c(2), ChainState::Null), (2.0, 2.0 / 5.0));
        assert_eq!(rows.len(), 9);
        // Each state's probabilities add up to 1.
        for from in [ChainState::Start, c(0), c(1), c(2)] {
            let sum: f64 = rows.iter().filter(|r| r.0 == from).map(|r| r.3).sum();
            assert!(close(sum, 1.0), "{from:?}: {sum}");
        }
    }

    #[test]
    fn consecutive_repeats_collapse_into_one_state() {
        let counts = design_example(1);
        assert_eq!(counts.state_count(), 3);
        let second = design_example(2);
        // c1c2, c1, c2c3, c1c1, c1c3: the order-2 state "c1 c1" exists.
        assert_eq!(second.state_count(), 5);
    }

    #[test]
    fn merging_split_counts_equals_counting_at_once() {
        let whole = design_example(2);
        let mut left = MarkovCounts::new(2);
        left.add_path(&[0, 1], 1.0, 0.0, 10.0);
        left.add_path(&[0], 0.0, 1.0, 0.0);
        // The right half numbers its channels differently: c3 = 0, c1 = 1, c2 = 2.
        let mut right = MarkovCounts::new(2);
        right.add_path(&[2, 0], 1.0, 1.0, 5.0);
        right.add_path(&[1, 1, 0], 2.0, 1.0, 30.0);
        left.merge(&right, &[2, 0, 1]);
        let (a, b) =
            (whole.solve(3, &SolveBudget::default()).unwrap(), left.solve(3, &SolveBudget::default()).unwrap());
        for c in 0..3 {
            assert!(close(a.conversions[c], b.conversions[c]));
            assert!(close(a.value[c], b.value[c]));
        }
    }

    #[test]
    fn higher_orders_still_conserve_conversions_and_value() {
        for order in 1..=4 {
            let s = design_example(order).solve(3, &SolveBudget::default()).unwrap();
            assert!(close(s.conversions.iter().sum(), 4.0), "order {order}");
            assert!(close(s.value.iter().sum(), 45.0), "order {order}");
        }
    }

    #[test]
    fn a_chain_without_conversions_credits_nothing() {
        let mut counts = MarkovCounts::new(1);
        counts.add_path(&[0, 1], 0.0, 3.0, 0.0);
        let s = counts.solve(2, &SolveBudget::default()).unwrap();
        assert_eq!(s.conversion_probability, 0.0);
        assert_eq!(s.conversions, [0.0, 0.0]);
    }

    #[test]
    fn more_channels_than_the_limit_are_refused_naming_the_limit_and_the_figures() {
        let budget = SolveBudget { max_channels: 2, ..SolveBudget::default() };
        let err = design_example(1).solve(3, &budget).unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded);
        for figure in ["3 channels", "limit of 2 (markov_max_channels;", "3 states", "5 transitions"] {
            assert!(err.message.contains(figure), "{figure}: {}", err.message);
        }
        let budget = SolveBudget { max_channels: 3, ..SolveBudget::default() };
        assert!(design_example(1).solve(3, &budget).is_ok(), "the limit itself is allowed");
    }

    #[test]
    fn a_stop_request_ends_the_solve_between_channels() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut counts = MarkovCounts::new(1);
        for c in 0..50 {
            counts.add_path(&[c, (c + 1) % 50], 1.0, 1.0, 1.0);
        }
        let asked = AtomicUsize::new(0);
        let count_asks = || asked.fetch_add(1, Ordering::Relaxed) == usize::MAX;
        counts.solve(50, &SolveBudget { max_channels: 50, stop: &count_asks }).unwrap();
        assert_eq!(asked.load(Ordering::Relaxed), 51, "once before the chain's solve, then once per channel");
        let stop_after_five = || asked.fetch_add(1, Ordering::Relaxed) >= 51 + 5;
        let err = counts.solve(50, &SolveBudget { max_channels: 50, stop: &stop_after_five }).unwrap_err();
        assert!(err.message.contains("stopped"), "{}", err.message);
    }

    /// Every channel's removal effects by one solve each with its state removed: the
    /// general method, which order 1 replaces with one factorisation.
    fn removal_effects_by_solves(counts: &MarkovCounts) -> Vec<Removal> {
        let chain = Chain::new(counts);
        let (base, base_value) = chain.absorb(|_| true).unwrap();
        let mut removed: Vec<Removal> = (0..counts.states.len())
            .map(|state| {
                let (p, v) = chain.absorb(|s| s != state).unwrap();
                (counts.states[state][0], effect(p, base), effect(v, base_value))
            })
            .collect();
        removed.sort_by_key(|r| r.0);
        removed
    }

    fn agree(fast: f64, solved: f64) -> bool {
        (fast - solved).abs() <= 1e-9 * solved.abs() + 1e-12
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn order_one_effects_from_one_factorisation_match_one_solve_per_channel(
            paths in proptest::collection::vec(
                (proptest::collection::vec(0u32..12, 1..9), 0u8..4, 0u8..4, 0.0f64..100.0),
                1..40,
            )
        ) {
            let mut counts = MarkovCounts::new(1);
            for (i, (path, conversions, nulls, value)) in paths.iter().enumerate() {
                // The first path converts, so P(conv) > 0; repeats in paths collapse.
                let conversions = f64::from(*conversions) + if i == 0 { 1.0 } else { 0.0 };
                counts.add_path(path, conversions, f64::from(*nulls) * 0.5, value * conversions);
            }
            let chain = Chain::new(&counts);
            let (base, base_value) = chain.absorb(|_| true).unwrap();
            let (fast_base, fast_base_value, mut fast) =
                counts.removal_effects_of_states(&chain, &SolveBudget::default()).unwrap();
            fast.sort_by_key(|r| r.0);
            proptest::prop_assert!(agree(fast_base, base) && agree(fast_base_value, base_value));
            let solved = removal_effects_by_solves(&counts);
            proptest::prop_assert_eq!(fast.len(), solved.len());
            for (f, s) in fast.iter().zip(&solved) {
                proptest::prop_assert!(f.0 == s.0 && agree(f.1, s.1) && agree(f.2, s.2), "{:?} vs {:?}", f, s);
            }
        }
    }

    #[test]
    fn order_one_effects_match_on_a_chain_with_a_self_transition() {
        // Merged counts never make one (repeats collapse), but the identity holds for it too.
        let mut counts = design_example(1);
        *counts.transitions.entry(edge(0, 0)).or_insert(0.0) += 2.0;
        let chain = Chain::new(&counts);
        let (_, _, mut fast) = counts.removal_effects_of_states(&chain, &SolveBudget::default()).unwrap();
        fast.sort_by_key(|r| r.0);
        for (f, s) in fast.iter().zip(removal_effects_by_solves(&counts)) {
            assert!(f.0 == s.0 && agree(f.1, s.1) && agree(f.2, s.2), "{f:?} vs {s:?}");
        }
    }
}
