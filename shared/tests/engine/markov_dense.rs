//! An independent check of the order-1 Markov model: the absorbing chain is built here from
//! the paths per docs/user-guide.md, "Models" (consecutive repeats collapsed), and absorption probabilities
//! are solved by dense Gaussian elimination, one system per removed channel. The engine
//! must agree to 1e-9.

use mta_core::{ModelId, OptionsSpec};
use proptest::prelude::*;

use crate::helpers::*;

/// The chain in dense form: `q[i][j]` between channel states, `to_conversion[i]`,
/// `to_value[i]` = P(i → conversion) · mean value per conversion at i.
struct DenseChain {
    states: Vec<String>,
    start: Vec<f64>,
    q: Vec<Vec<f64>>,
    to_conversion: Vec<f64>,
    to_value: Vec<f64>,
    total_conversions: f64,
    total_value: f64,
}

impl DenseChain {
    fn new(paths: &[PathRow]) -> DenseChain {
        let mut states: Vec<String> = Vec::new();
        let mut walks: Vec<(Vec<usize>, &PathRow)> = Vec::new();
        for row in paths {
            let weight = row.conversions + row.nulls;
            if row.path.is_empty() || weight <= 0.0 {
                continue;
            }
            let mut walk: Vec<usize> = Vec::new();
            for channel in &row.path {
                let state = match states.iter().position(|s| s == channel) {
                    Some(s) => s,
                    None => {
                        states.push(channel.clone());
                        states.len() - 1
                    }
                };
                if walk.last() != Some(&state) {
                    walk.push(state);
                }
            }
            walks.push((walk, row));
        }
        let n = states.len();
        let mut start = vec![0.0; n];
        let mut transitions = vec![vec![0.0; n]; n];
        let (mut conversions, mut nulls, mut values) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let (mut total_conversions, mut total_value) = (0.0, 0.0);
        for (walk, row) in &walks {
            let weight = row.conversions + row.nulls;
            start[walk[0]] += weight;
            for pair in walk.windows(2) {
                transitions[pair[0]][pair[1]] += weight;
            }
            let last = *walk.last().expect("non-empty walk");
            conversions[last] += row.conversions;
            nulls[last] += row.nulls;
            values[last] += row.value;
            total_conversions += row.conversions;
            total_value += row.value;
        }
        let start_total: f64 = start.iter().sum();
        let start = start.iter().map(|w| w / start_total).collect();
        let mut q = vec![vec![0.0; n]; n];
        let (mut to_conversion, mut to_value) = (vec![0.0; n], vec![0.0; n]);
        for i in 0..n {
            let out: f64 = transitions[i].iter().sum::<f64>() + conversions[i] + nulls[i];
            for j in 0..n {
                q[i][j] = transitions[i][j] / out;
            }
            to_conversion[i] = conversions[i] / out;
            let mean_value = if conversions[i] > 0.0 { values[i] / conversions[i] } else { 0.0 };
            to_value[i] = to_conversion[i] * mean_value;
        }
        DenseChain { states, start, q, to_conversion, to_value, total_conversions, total_value }
    }

    /// P(conversion) and expected value from (start), with state `removed` (if any)
    /// turned into (null): h = Q h + r over the kept states.
    fn absorb(&self, removed: Option<usize>) -> (f64, f64) {
        let kept: Vec<usize> = (0..self.states.len()).filter(|&s| Some(s) != removed).collect();
        let m = kept.len();
        let mut a = vec![vec![0.0; m + 2]; m];
        for (r, &i) in kept.iter().enumerate() {
            for (c, &j) in kept.iter().enumerate() {
                a[r][c] = if r == c { 1.0 } else { 0.0 } - self.q[i][j];
            }
            a[r][m] = self.to_conversion[i];
            a[r][m + 1] = self.to_value[i];
        }
        let solved = gauss(a);
        let mut result = (0.0, 0.0);
        for (r, &i) in kept.iter().enumerate() {
            result.0 += self.start[i] * solved[r].0;
            result.1 += self.start[i] * solved[r].1;
        }
        result
    }
}

/// Solves the augmented system `[A | b1 b2]` by Gaussian elimination with partial pivoting.
fn gauss(mut a: Vec<Vec<f64>>) -> Vec<(f64, f64)> {
    let m = a.len();
    for col in 0..m {
        let pivot = (col..m).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs())).expect("rows left");
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        assert!(pivot_row[col].abs() > 1e-14, "singular chain");
        for (r, row) in a.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            if r != col && factor != 0.0 {
                for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                    *x -= factor * p;
                }
            }
        }
    }
    (0..m).map(|r| (a[r][m] / a[r][r], a[r][m + 1] / a[r][r])).collect()
}

/// What the dense solve predicts for one channel.
struct Expected {
    name: String,
    removal_effect: f64,
    removal_effect_value: f64,
    conversions: f64,
    value: f64,
}

/// P(conv) and each channel's expected numbers from the dense solve.
fn expected(paths: &[PathRow]) -> (f64, Vec<Expected>) {
    let chain = DenseChain::new(paths);
    let (p, v) = chain.absorb(None);
    let effects: Vec<(f64, f64)> = (0..chain.states.len())
        .map(|s| {
            let (ps, vs) = chain.absorb(Some(s));
            (if p > 0.0 { 1.0 - ps / p } else { 0.0 }, if v > 0.0 { 1.0 - vs / v } else { 0.0 })
        })
        .collect();
    let sum_re: f64 = effects.iter().map(|e| e.0).sum();
    let sum_re_value: f64 = effects.iter().map(|e| e.1).sum();
    let channels = chain
        .states
        .iter()
        .zip(&effects)
        .map(|(name, &(re, re_value))| Expected {
            name: name.clone(),
            removal_effect: re,
            removal_effect_value: re_value,
            conversions: if sum_re > 0.0 { re / sum_re * chain.total_conversions } else { 0.0 },
            value: if sum_re_value > 0.0 { re_value / sum_re_value * chain.total_value } else { 0.0 },
        })
        .collect();
    (p, channels)
}

fn check_against_dense(paths: &[PathRow]) -> Result<(), TestCaseError> {
    let options = path_options(OptionsSpec { markov_order: Some(1.into()), ..only(&["markov"]) });
    let result = attribute_paths(paths, &options);
    let markov = model(&result, ModelId::Markov);
    let (p, channels) = expected(paths);
    prop_assert!(
        close(markov.conversion_probability.unwrap(), p, 1e-9),
        "P(conv) {:?} vs {}",
        markov.conversion_probability,
        p
    );
    for want in channels {
        let got = markov.channel(&want.name).unwrap_or_else(|| panic!("no channel {}", want.name));
        let checks = [
            ("removal effect", got.removal_effect.unwrap(), want.removal_effect),
            ("value removal effect", got.removal_effect_value.unwrap(), want.removal_effect_value),
            ("conversions", got.conversions, want.conversions),
            ("value", got.value, want.value),
        ];
        for (what, g, w) in checks {
            prop_assert!(close(g, w, 1e-9), "{} of {}: engine {}, dense {}", what, want.name, g, w);
        }
    }
    Ok(())
}

#[test]
fn the_dense_solver_reproduces_the_design_tiny_case() {
    let paths = design_paths();
    let (p, channels) = expected(&paths);
    assert_close(p, 4.0 / 7.0, 1e-12);
    let res: Vec<f64> = channels.iter().map(|c| c.removal_effect).collect();
    for (got, want) in res.iter().zip([19.0 / 30.0, 11.0 / 20.0, 3.0 / 4.0]) {
        assert_close(*got, want, 1e-12);
    }
    check_against_dense(&paths).unwrap();
}

#[test]
fn the_engine_matches_the_dense_solver_on_a_cyclic_chain() {
    // a → b → a → b loops and a path that revisits c: the chain has cycles.
    let paths = [
        path_row(&["a", "b", "a", "b", "c"], 2.0, 20.0, 1.0),
        path_row(&["b", "a"], 1.0, 3.0, 2.0),
        path_row(&["c", "a", "c", "b", "b"], 0.5, 7.0, 0.5),
        path_row(&["a"], 0.0, 0.0, 4.0),
    ];
    check_against_dense(&paths).unwrap();
}

fn random_paths() -> impl Strategy<Value = Vec<PathRow>> {
    const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];
    let number = || prop_oneof![Just(0.0), Just(1.0), Just(2.0), Just(0.5), 0.0f64..4.0];
    (1usize..=5).prop_flat_map(move |channels| {
        prop::collection::vec((prop::collection::vec(0..channels, 1..7), number(), number(), 0.0f64..100.0), 1..10)
            .prop_map(|raw| {
                raw.into_iter()
                    .enumerate()
                    .map(|(i, (path, conversions, nulls, value))| {
                        // The first path always converts, so P(conv) > 0.
                        let conversions = if i == 0 { conversions + 1.0 } else { conversions };
                        PathRow {
                            path: path.into_iter().map(|c| NAMES[c].to_owned()).collect(),
                            conversions,
                            value: if conversions > 0.0 { value } else { 0.0 },
                            nulls,
                        }
                    })
                    .collect()
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn markov_matches_a_dense_absorbing_chain_solve(paths in random_paths()) {
        check_against_dense(&paths)?;
    }
}
