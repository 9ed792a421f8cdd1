//! Hand-computed credits for every model of docs/user-guide.md, "Models", through the whole pipeline
//! (event or path chunk → `Partial` → `finish`).

use mta_core::{ModelId, OptionsSpec, PositionWeights};

use crate::helpers::*;

// ---- first_touch, last_touch ----------------------------------------------------------

#[test]
fn first_touch_gives_everything_to_the_first_touch() {
    let events = Events::new().journey("u1", &["a", "b", "c"], 10.0).journey("u2", &["c", "a"], 4.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::FirstTouch, &[("a", 1.0, 10.0), ("b", 0.0, 0.0), ("c", 1.0, 4.0)]);
}

#[test]
fn last_touch_gives_everything_to_the_last_touch() {
    let events = Events::new().journey("u1", &["a", "b", "c"], 10.0).journey("u2", &["c", "a"], 4.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::LastTouch, &[("a", 1.0, 4.0), ("b", 0.0, 0.0), ("c", 1.0, 10.0)]);
}

// ---- last_non_direct -------------------------------------------------------------------

#[test]
fn last_non_direct_skips_trailing_direct_touches_in_any_case() {
    let events = Events::new().journey("u1", &["a", "b", "Direct", "DIRECT"], 10.0);
    let result = attribute(&events);
    assert_credits(
        &result,
        ModelId::LastNonDirect,
        &[("a", 0.0, 0.0), ("b", 1.0, 10.0), ("Direct", 0.0, 0.0), ("DIRECT", 0.0, 0.0)],
    );
}

#[test]
fn an_all_direct_journey_credits_its_last_touch_under_last_non_direct() {
    let events = Events::new().journey("u1", &["direct", "Direct"], 6.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::LastNonDirect, &[("direct", 0.0, 0.0), ("Direct", 1.0, 6.0)]);
}

#[test]
fn custom_direct_channels_match_case_insensitively() {
    let spec = OptionsSpec { direct_channels: Some(vec!["  Email ".into(), "ORGANIC".into()]), ..Default::default() };
    let options = event_options(spec);
    assert_eq!(options.direct_channels, ["email", "organic"]);
    let events = Events::new().journey("u1", &["paid", "direct", "eMail", "Organic"], 8.0);
    let result = attribute_events(&events.chunk(), &options);
    // `direct` is no longer direct once the list is replaced.
    assert_credits(
        &result,
        ModelId::LastNonDirect,
        &[("paid", 0.0, 0.0), ("direct", 1.0, 8.0), ("eMail", 0.0, 0.0), ("Organic", 0.0, 0.0)],
    );
}

/// docs/user-guide.md, "Models" says the direct list is matched case-insensitively; `Options::is_direct`
/// compares with `eq_ignore_ascii_case`, so non-ASCII letters in other cases do not match.
#[test]

fn direct_channels_match_non_ascii_names_in_any_case() {
    let options = event_options(OptionsSpec { direct_channels: Some(vec!["Dírecto".into()]), ..Default::default() });
    assert!(options.is_direct("DÍRECTO"));
    let events = Events::new().journey("u1", &["paid", "DÍRECTO"], 8.0);
    let result = attribute_events(&events.chunk(), &options);
    assert_credits(&result, ModelId::LastNonDirect, &[("paid", 1.0, 8.0), ("DÍRECTO", 0.0, 0.0)]);
}

// ---- linear ----------------------------------------------------------------------------

#[test]
fn linear_pays_a_repeated_channel_for_each_of_its_touches() {
    let events = Events::new().journey("u1", &["a", "b", "a", "c"], 8.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::Linear, &[("a", 0.5, 4.0), ("b", 0.25, 2.0), ("c", 0.25, 2.0)]);
}

// ---- position_based and its presets ------------------------------------------------------

fn position_credits(channels: &[&str], spec: OptionsSpec, id: ModelId) -> Vec<f64> {
    let events = Events::new().journey("u1", channels, 100.0);
    let result = attribute_events(&events.chunk(), &event_options(spec));
    channels.iter().map(|c| credit(&result, id, c).0).collect()
}

#[track_caller]
fn assert_weights(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "got {got:?}, want {want:?}");
    }
}

#[test]
fn position_based_gives_a_single_touch_everything() {
    assert_weights(&position_credits(&["a"], OptionsSpec::default(), ModelId::PositionBased), &[1.0]);
}

#[test]
fn position_based_splits_two_touches_evenly_by_default() {
    assert_weights(&position_credits(&["a", "b"], OptionsSpec::default(), ModelId::PositionBased), &[0.5, 0.5]);
}

#[test]
fn position_based_gives_three_touches_forty_twenty_forty() {
    assert_weights(
        &position_credits(&["a", "b", "c"], OptionsSpec::default(), ModelId::PositionBased),
        &[0.4, 0.2, 0.4],
    );
}

#[test]
fn position_based_splits_the_middle_weight_over_three_middle_touches() {
    let got = position_credits(&["a", "b", "c", "d", "e"], OptionsSpec::default(), ModelId::PositionBased);
    let third = 0.2 / 3.0;
    assert_weights(&got, &[0.4, third, third, third, 0.4]);
    // The value follows the same weights.
    let events = Events::new().journey("u1", &["a", "b", "c", "d", "e"], 30.0);
    let result = attribute(&events);
    assert_close(credit(&result, ModelId::PositionBased, "c").1, 2.0, 1e-12);
    assert_close(credit(&result, ModelId::PositionBased, "e").1, 12.0, 1e-12);
}

fn two_one_one() -> OptionsSpec {
    OptionsSpec { position_weights: Some(PositionWeights::parse("2,1,1").unwrap()), ..Default::default() }
}

#[test]
fn custom_position_weights_two_one_one_are_normalised() {
    assert_weights(&position_credits(&["a"], two_one_one(), ModelId::PositionBased), &[1.0]);
    // Two touches: first and last renormalised, 0.5 : 0.25 → 2/3 : 1/3.
    assert_weights(&position_credits(&["a", "b"], two_one_one(), ModelId::PositionBased), &[2.0 / 3.0, 1.0 / 3.0]);
    assert_weights(&position_credits(&["a", "b", "c"], two_one_one(), ModelId::PositionBased), &[0.5, 0.25, 0.25]);
    let m = 0.25 / 3.0;
    assert_weights(
        &position_credits(&["a", "b", "c", "d", "e"], two_one_one(), ModelId::PositionBased),
        &[0.5, m, m, m, 0.25],
    );
}

#[test]
fn custom_position_weights_do_not_change_the_j_presets() {
    assert_weights(&position_credits(&["a", "b", "c"], two_one_one(), ModelId::JShaped), &[0.2, 0.2, 0.6]);
    assert_weights(&position_credits(&["a", "b", "c"], two_one_one(), ModelId::InverseJ), &[0.6, 0.2, 0.2]);
}

#[test]
fn j_shaped_gives_two_touches_a_quarter_and_three_quarters() {
    assert_weights(&position_credits(&["a", "b"], OptionsSpec::default(), ModelId::JShaped), &[0.25, 0.75]);
    assert_weights(&position_credits(&["a", "b", "c"], OptionsSpec::default(), ModelId::JShaped), &[0.2, 0.2, 0.6]);
    assert_weights(
        &position_credits(&["a", "b", "c", "d"], OptionsSpec::default(), ModelId::JShaped),
        &[0.2, 0.1, 0.1, 0.6],
    );
    assert_weights(&position_credits(&["a"], OptionsSpec::default(), ModelId::JShaped), &[1.0]);
}

#[test]
fn inverse_j_gives_two_touches_three_quarters_and_a_quarter() {
    assert_weights(&position_credits(&["a", "b"], OptionsSpec::default(), ModelId::InverseJ), &[0.75, 0.25]);
    assert_weights(&position_credits(&["a", "b", "c"], OptionsSpec::default(), ModelId::InverseJ), &[0.6, 0.2, 0.2]);
    assert_weights(
        &position_credits(&["a", "b", "c", "d"], OptionsSpec::default(), ModelId::InverseJ),
        &[0.6, 0.1, 0.1, 0.2],
    );
}

// ---- time_decay ------------------------------------------------------------------------

#[test]
fn time_decay_weighs_touches_fourteen_and_seven_days_out_one_third_and_two_thirds() {
    let events = Events::new().touch("u1", T0 - 14 * DAY, "a").touch("u1", T0 - 7 * DAY, "b").conversion("u1", T0, 9.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::TimeDecay, &[("a", 1.0 / 3.0, 3.0), ("b", 2.0 / 3.0, 6.0)]);
}

#[test]
fn time_decay_measures_age_from_the_conversion_with_the_given_half_life() {
    // Half-life 3.5 days: 2^-4 : 2^-2 : 2^0 for touches 14, 7 and 0 days before converting.
    let options = event_options(OptionsSpec { half_life_days: Some(3.5), ..Default::default() });
    let events = Events::new()
        .touch("u1", T0 - 14 * DAY, "a")
        .touch("u1", T0 - 7 * DAY, "b")
        .touch("u1", T0, "c")
        .conversion("u1", T0, 21.0);
    let result = attribute_events(&events.chunk(), &options);
    assert_credits(
        &result,
        ModelId::TimeDecay,
        &[("a", 1.0 / 21.0, 1.0), ("b", 4.0 / 21.0, 4.0), ("c", 16.0 / 21.0, 16.0)],
    );
}

#[test]
fn time_decay_adds_up_the_touches_of_a_repeated_channel() {
    // a is touched 21 and 7 days before converting, b 14 days before; half-life 7 days.
    let events = Events::new()
        .touch("u1", T0 - 21 * DAY, "a")
        .touch("u1", T0 - 14 * DAY, "b")
        .touch("u1", T0 - 7 * DAY, "a")
        .conversion("u1", T0, 7.0);
    let result = attribute(&events);
    // Weights 1/8, 1/4, 1/2 → normalised 1/7, 2/7, 4/7.
    assert_credits(&result, ModelId::TimeDecay, &[("a", 5.0 / 7.0, 5.0), ("b", 2.0 / 7.0, 2.0)]);
}

// ---- participation -----------------------------------------------------------------------

#[test]
fn participation_credits_every_distinct_channel_fully_and_says_totals_exceed() {
    let events = Events::new().journey("u1", &["a", "b", "a"], 10.0).journey("u2", &["a"], 4.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::Participation, &[("a", 2.0, 14.0), ("b", 1.0, 10.0)]);
    let participation = model(&result, ModelId::Participation);
    assert_eq!(result.summary.conversions, 2.0);
    assert_close(participation.total_conversions, 3.0, 1e-12);
    assert_close(participation.total_value, 24.0, 1e-12);
    assert!(!participation.conserves_totals);
    assert!(participation.note.as_deref().is_some_and(|n| n.contains("exceed")), "{:?}", participation.note);
    for id in [ModelId::FirstTouch, ModelId::Linear, ModelId::Markov, ModelId::Shapley] {
        assert!(model(&result, id).note.is_none(), "{id}");
    }
}

// ---- shapley ---------------------------------------------------------------------------

#[test]
fn shapley_splits_a_two_channel_journey_in_halves() {
    let events = Events::new().journey("u1", &["a", "b"], 10.0);
    assert_credits(&attribute(&events), ModelId::Shapley, &[("a", 0.5, 5.0), ("b", 0.5, 5.0)]);
}

#[test]
fn shapley_gives_a_single_channel_journey_to_its_channel() {
    let events = Events::new().journey("u1", &["a"], 6.0);
    assert_credits(&attribute(&events), ModelId::Shapley, &[("a", 1.0, 6.0)]);
}

#[test]
fn shapley_counts_distinct_channels_and_sums_over_journeys() {
    // {a,b} (repeats do not matter) + {a} + {a,b,c}: a = 1/2 + 1 + 1/3, b = 1/2 + 1/3, c = 1/3.
    let events = Events::new().journey("u1", &["a", "b", "a", "a"], 10.0).journey("u2", &["a"], 6.0).journey(
        "u3",
        &["c", "b", "a"],
        3.0,
    );
    let result = attribute(&events);
    assert_credits(
        &result,
        ModelId::Shapley,
        &[("a", 0.5 + 1.0 + 1.0 / 3.0, 5.0 + 6.0 + 1.0), ("b", 0.5 + 1.0 / 3.0, 5.0 + 1.0), ("c", 1.0 / 3.0, 1.0)],
    );
}

// ---- markov ----------------------------------------------------------------------------

#[track_caller]
fn assert_design_markov(result: &mta_core::AttributionResult) {
    let markov = model(result, ModelId::Markov);
    assert_eq!(markov.order, Some(1));
    assert!(markov.conserves_totals);
    assert_close(markov.conversion_probability.unwrap(), 4.0 / 7.0, 1e-12);
    for (channel, re, conversions, value) in [
        ("c1", 19.0 / 30.0, 38.0 / 29.0, 14.829_545_5),
        ("c2", 11.0 / 20.0, 33.0 / 29.0, 12.272_727_3),
        ("c3", 3.0 / 4.0, 45.0 / 29.0, 17.897_727_3),
    ] {
        let c = markov.channel(channel).unwrap_or_else(|| panic!("no channel {channel}"));
        assert_close(c.removal_effect.unwrap(), re, 1e-12);
        assert_close(c.conversions, conversions, 1e-12);
        assert!((c.value - value).abs() < 5e-7, "{channel}: value {} vs {value}", c.value);
    }
    assert_close(markov.total_conversions, 4.0, 1e-12);
    assert_close(markov.total_value, 45.0, 1e-12);
    // Channels sorted by conversions, descending.
    let order: Vec<&str> = markov.channels.iter().map(|c| c.channel.as_str()).collect();
    assert_eq!(order, ["c3", "c1", "c2"]);
}

#[test]
fn markov_solves_the_design_tiny_case_exactly_from_paths() {
    let options = path_options(OptionsSpec::default());
    let result = attribute_paths(&design_paths(), &options);
    assert_design_markov(&result);
    assert_eq!(result.summary.conversions, 4.0);
    assert_eq!(result.summary.conversion_value, 45.0);
    assert_eq!(result.summary.null_journeys, 3.0);
    assert_eq!(result.summary.converting_journeys, 4.0);
    assert_eq!(result.summary.channels, 3);
}

#[test]
fn markov_value_removal_effects_of_the_design_case() {
    let result = attribute_paths(&design_paths(), &path_options(OptionsSpec::default()));
    let markov = model(&result, ModelId::Markov);
    // Σ_s x_s·p_conv(s)·μ_s = 45/7 for the full chain; removing c1, c2, c3 leaves 16/7, 3, 10/7.
    for (channel, re_value) in [("c1", 29.0 / 45.0), ("c2", 8.0 / 15.0), ("c3", 7.0 / 9.0)] {
        assert_close(markov.channel(channel).unwrap().removal_effect_value.unwrap(), re_value, 1e-12);
    }
}

#[test]
fn markov_solves_the_design_tiny_case_from_event_rows_too() {
    // The same journeys as users: the c1 > c1 > c3 row is two converting users (10 + 20) and
    // one that did not convert; null journeys are touches after a user's last conversion.
    let mut events = Events::new().journey("p1", &["c1", "c2"], 10.0);
    events = events.touch("p2", T0 - DAY, "c1");
    events = events.journey("p3a", &["c2", "c3"], 5.0).touch("p3b", T0 - 2 * DAY, "c2").touch("p3b", T0 - DAY, "c3");
    events = events.journey("p4a", &["c1", "c1", "c3"], 10.0).journey("p4b", &["c1", "c1", "c3"], 20.0);
    events = events.touch("p4c", T0 - 3 * DAY, "c1").touch("p4c", T0 - 2 * DAY, "c1").touch("p4c", T0 - DAY, "c3");
    let result = attribute(&events);
    assert_design_markov(&result);
    assert_eq!(result.summary.null_journeys, 3.0);
}

#[test]
fn markov_reports_removal_effects_only_on_markov() {
    let result = attribute_paths(&design_paths(), &path_options(OptionsSpec::default()));
    for m in &result.models {
        let has = m.channels.iter().all(|c| c.removal_effect.is_some());
        assert_eq!(has, m.model == ModelId::Markov, "{}", m.model);
        assert_eq!(m.conversion_probability.is_some(), m.model == ModelId::Markov);
    }
}

#[test]
fn markov_of_a_single_channel_gets_every_conversion() {
    let rows = [path_row(&["a"], 3.0, 12.0, 1.0), path_row(&["a", "a"], 1.0, 4.0, 0.0)];
    let options = path_options(only(&["markov"]));
    let result = attribute_paths(&rows, &options);
    let markov = model(&result, ModelId::Markov);
    // Both rows collapse to the state `a`: 4 conversions and 1 null of 5 journeys.
    assert_close(markov.conversion_probability.unwrap(), 0.8, 1e-12);
    assert_credits(&result, ModelId::Markov, &[("a", 4.0, 16.0)]);
    assert_close(markov.channel("a").unwrap().removal_effect.unwrap(), 1.0, 1e-12);
}

// ---- shao_li -----------------------------------------------------------------------------

/// The design example by hand (each row's channels as a set, weighted by its conversions
/// and nulls): p(c1) = 3/5, p(c2) = 2/3, p(c3) = 3/5; p(c1,c2) = 1, p(c2,c3) = 1/2,
/// p(c1,c3) = 2/3. C(c1) = 3/5 + (−4/15 − 8/15)/4 = 2/5, C(c2) = 2/3 + (−4/15 − 23/30)/4 =
/// 49/120, C(c3) = 3/5 + (−23/30 − 8/15)/4 = 33/120; the four conversions in proportion:
/// 96/65, 98/65, 66/65. Value per journey: 8, 5, 7 and 10, 5/2, 10 for the pairs, giving
/// 6, 1.875, 3.375, so the value 45 splits 24, 7.5, 13.5.
#[test]
fn shao_li_of_the_design_example_by_hand() {
    let result = attribute_paths(&design_paths(), &path_options(only(&["shao_li"])));
    assert_credits(
        &result,
        ModelId::ShaoLi,
        &[("c1", 96.0 / 65.0, 24.0), ("c2", 98.0 / 65.0, 7.5), ("c3", 66.0 / 65.0, 13.5)],
    );
    assert!(model(&result, ModelId::ShaoLi).conserves_totals);
}

/// A negative contribution counts as 0, and a channel that shares no journey has no pair
/// term (N = 0): p(a) = 2/3, p(b) = 0, p(a,b) = 0, p(c) = 1/2, so C(a) = 2/3 − 1/3 = 1/3,
/// C(b) = −1/3 → 0, C(c) = 1/2; three conversions split 6/5, 0, 9/5. Value per journey:
/// a 20/3, b 0, pair 0, c 3: 10/3, 0, 3 of the value 26.
#[test]
fn shao_li_cuts_negative_contributions_and_skips_pairs_that_never_meet() {
    let rows = [
        path_row(&["a"], 2.0, 20.0, 0.0),
        path_row(&["a", "b"], 0.0, 0.0, 1.0),
        path_row(&["b"], 0.0, 0.0, 1.0),
        path_row(&["c"], 1.0, 6.0, 1.0),
    ];
    let result = attribute_paths(&rows, &path_options(only(&["shao_li"])));
    assert_credits(
        &result,
        ModelId::ShaoLi,
        &[("a", 6.0 / 5.0, 260.0 / 19.0), ("b", 0.0, 0.0), ("c", 9.0 / 5.0, 234.0 / 19.0)],
    );
}

/// When every contribution is cut to zero, the channels' own rates share the credit:
/// p(a) = p(b) = 1/2 and p(a,b) = 0 give C = 1/2 + (0 − 1)/2 = 0 for both.
#[test]
fn shao_li_falls_back_to_the_channels_rates_when_no_contribution_is_left() {
    let rows = [path_row(&["a"], 1.0, 1.0, 0.0), path_row(&["b"], 1.0, 3.0, 0.0), path_row(&["a", "b"], 0.0, 0.0, 1.0)];
    let result = attribute_paths(&rows, &path_options(only(&["shao_li"])));
    // Value per journey: a 1/2, b 3/2, pair 0: V(a) = 1/2 − 1 < 0, V(b) = 3/2 − 1 = 1/2.
    assert_credits(&result, ModelId::ShaoLi, &[("a", 1.0, 0.0), ("b", 1.0, 4.0)]);
}

/// Event journeys count a channel once however often it is touched, and null journeys
/// (touches without a conversion) are the non-converting side, as path rows' nulls are.
#[test]
fn shao_li_on_events_equals_the_same_journeys_as_path_rows() {
    let events = Events::new()
        .journey("u1", &["a", "b", "a"], 10.0)
        .journey("u2", &["b"], 4.0)
        .touch("u3", T0, "a")
        .touch("u3", T0 + HOUR, "b")
        .touch("u4", T0, "c");
    let from_events = attribute_events(&events.chunk(), &event_options(only(&["shao_li"])));
    let rows = [
        path_row(&["a", "b"], 1.0, 10.0, 0.0),
        path_row(&["b"], 1.0, 4.0, 0.0),
        path_row(&["a", "b"], 0.0, 0.0, 1.0),
        path_row(&["c"], 0.0, 0.0, 1.0),
    ];
    let from_paths = attribute_paths(&rows, &path_options(only(&["shao_li"])));
    let want: Vec<(String, (f64, f64))> = credits(&from_paths, ModelId::ShaoLi).into_iter().collect();
    let want: Vec<(&str, f64, f64)> = want.iter().map(|(c, (n, v))| (c.as_str(), *n, *v)).collect();
    assert_credits(&from_events, ModelId::ShaoLi, &want);
    // p(a) = 1/2, p(b) = 2/3, p(a,b) = 1/2: C(a) = 1/2 − 1/3 = 1/6, C(b) = 2/3 − 1/3 = 1/3.
    // Value per journey: a 5, b 14/3, the pair 5: 5 − 7/3 = 8/3 and 14/3 − 7/3 = 7/3.
    let want = [("a", 2.0 / 3.0, 14.0 * 8.0 / 15.0), ("b", 4.0 / 3.0, 14.0 * 7.0 / 15.0), ("c", 0.0, 0.0)];
    assert_credits(&from_paths, ModelId::ShaoLi, &want);
}

// ---- markov_order: auto, pair effects ---------------------------------------------------

/// Whether `b` converts depends on the touch before it: order 1 (state `b`) cannot tell,
/// order 2 (`a b` or `c b`) can, and orders 3 and 4 see nothing more, so 2 wins the tie.
#[test]
fn auto_order_chooses_the_order_the_journeys_need() {
    let mut events = Events::new();
    for i in 0..200 {
        let user = format!("u{i}");
        events = if i % 2 == 0 {
            events.journey(&user, &["a", "b"], 1.0)
        } else {
            events.touch(&user, T0 - DAY, "c").touch(&user, T0, "b")
        };
    }
    let spec = OptionsSpec { markov_order: Some(mta_core::MarkovOrder::Auto), ..only(&["markov"]) };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    let markov = model(&result, ModelId::Markov);
    let selection = markov.order_selection.as_ref().expect("auto reports its choice");
    assert_eq!((selection.chosen, markov.order), (2, Some(2)));
    assert_eq!(selection.training_journeys + selection.held_out_journeys, 200.0);
    assert!((20.0..=60.0).contains(&selection.held_out_journeys), "{}", selection.held_out_journeys);
    let scores: Vec<f64> = selection.scores.iter().map(|s| s.log_likelihood.unwrap()).collect();
    // Order 1 predicts about 1/2 for everyone; order 2 nearly certain outcomes.
    assert!((scores[0] - 0.5f64.ln()).abs() < 0.05, "{scores:?}");
    assert!(scores[1] > -0.05 && scores[1] == scores[2] && scores[2] == scores[3], "{scores:?}");
    assert_eq!(selection.scores.iter().map(|s| s.states).collect::<Vec<_>>(), [3, 2, 2, 2]);
    // The same journeys at a fixed order 2 give the same credit.
    let fixed = OptionsSpec { markov_order: Some(2.into()), ..only(&["markov"]) };
    let fixed = attribute_events(&events.chunk(), &event_options(fixed));
    let want: Vec<(String, (f64, f64))> = credits(&fixed, ModelId::Markov).into_iter().collect();
    let want: Vec<(&str, f64, f64)> = want.iter().map(|(c, (n, v))| (c.as_str(), *n, *v)).collect();
    assert_credits(&result, ModelId::Markov, &want);
}

/// Pairs of the design example at order 1 (removal effects c1 19/30, c2 11/20, c3 3/4):
/// without c1 and c2 nothing is reached (1), without c2 and c3 only c1 is, which never
/// converts itself (1), and without c1 and c3 only start → c2 → conversion remains:
/// 2/7 · 1/3 of the base 4/7, an effect of 5/6.
#[test]
fn pair_removal_effects_of_the_design_example() {
    let spec = OptionsSpec { markov_pair_effects: Some(true), ..only(&["markov"]) };
    let result = attribute_paths(&design_paths(), &path_options(spec));
    let pairs = model(&result, ModelId::Markov).pairs.as_ref().expect("pairs asked for");
    let got: Vec<(&str, &str, f64, f64)> =
        pairs.iter().map(|p| (p.channel_a.as_str(), p.channel_b.as_str(), p.removal_effect, p.overlap)).collect();
    let want = [
        ("c1", "c2", 1.0, 19.0 / 30.0 + 11.0 / 20.0 - 1.0),
        ("c2", "c3", 1.0, 11.0 / 20.0 + 3.0 / 4.0 - 1.0),
        ("c1", "c3", 5.0 / 6.0, 19.0 / 30.0 + 3.0 / 4.0 - 5.0 / 6.0),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{got:?}");
        assert_close(g.2, w.2, 1e-12);
        assert_close(g.3, w.3, 1e-12);
    }
    let csv = mta_core::result::Table::MarkovPairs.csv(&result);
    assert!(csv.starts_with("channel_a,channel_b,removal_effect,removal_effect_value,overlap\nc1,c2,1,1,"), "{csv}");
    assert_eq!(csv.lines().count(), 4);
    // Off by default, and the table does not apply then.
    let plain = attribute_paths(&design_paths(), &path_options(only(&["markov"])));
    assert!(model(&plain, ModelId::Markov).pairs.is_none());
    assert!(!mta_core::result::Table::MarkovPairs.applies_to(&plain));
}

/// Only the top channels by removal effect are paired: 12 channels give the pairs of 10.
#[test]
fn pair_removal_effects_pair_the_top_ten_channels() {
    let names: Vec<String> = (0..12).map(|i| format!("ch{i:02}")).collect();
    // Channel i converts i + 1 times alone: removal effects grow with i.
    let rows: Vec<PathRow> =
        names.iter().enumerate().map(|(i, name)| path_row(&[name.as_str()], (i + 1) as f64, 0.0, 1.0)).collect();
    let spec = OptionsSpec { markov_pair_effects: Some(true), ..only(&["markov"]) };
    let result = attribute_paths(&rows, &path_options(spec));
    let pairs = model(&result, ModelId::Markov).pairs.as_ref().unwrap();
    assert_eq!(pairs.len(), 45);
    assert!(pairs.iter().all(|p| p.channel_a.as_str() >= "ch02" && p.channel_b.as_str() >= "ch02"), "{pairs:?}");
    assert_eq!((pairs[0].channel_a.as_str(), pairs[0].channel_b.as_str()), ("ch10", "ch11"));
    // Journeys of one channel each: a pair loses exactly what its two channels lose.
    assert!(pairs.iter().all(|p| p.overlap.abs() < 1e-12), "{pairs:?}");
}

// ---- result shape ------------------------------------------------------------------------

#[test]
fn every_model_is_offered_on_events_and_time_decay_is_not_on_paths() {
    let events = attribute(&Events::new().journey("u1", &["a"], 1.0));
    assert_eq!(events.models.iter().map(|m| m.model).collect::<Vec<_>>(), ModelId::ALL);
    let paths = attribute_paths(&design_paths(), &path_options(OptionsSpec::default()));
    assert!(paths.model(ModelId::TimeDecay).is_none());
    assert_eq!(paths.models.len(), 11);
}

#[test]
fn channels_are_sorted_by_conversions_descending_then_by_name_with_shares() {
    let events = Events::new()
        .journey("u1", &["b"], 1.0)
        .journey("u2", &["c"], 1.0)
        .journey("u3", &["c"], 1.0)
        .journey("u4", &["a"], 1.0)
        .journey("u5", &["z", "x"], 1.0);
    let result = attribute(&events);
    let last_touch = model(&result, ModelId::LastTouch);
    let order: Vec<&str> = last_touch.channels.iter().map(|c| c.channel.as_str()).collect();
    assert_eq!(order, ["c", "a", "b", "x", "z"]);
    let shares: Vec<f64> = last_touch.channels.iter().map(|c| c.share).collect();
    assert_eq!(shares, [0.4, 0.2, 0.2, 0.2, 0.0]);
}

#[test]
fn the_summary_counts_rows_journeys_and_channels() {
    let events = Events::new()
        .journey("u1", &["a", "b"], 10.0) // converting
        .touch("u1", T0 + DAY, "c") // null journey after the last conversion
        .conversion("u2", T0, 7.0) // unattributed
        .touch("u3", T0, "d"); // null journey
    let result = attribute(&events);
    let s = &result.summary;
    assert_eq!(s.rows, 6);
    assert_eq!(s.journeys, 3.0);
    assert_eq!(s.converting_journeys, 1.0);
    assert_eq!(s.null_journeys, 2.0);
    assert_eq!(s.conversions, 2.0);
    assert_eq!(s.conversion_value, 17.0);
    assert_eq!(s.unattributed_conversions, 1.0);
    assert_eq!(s.unattributed_value, 7.0);
    assert_eq!(s.channels, 4);
    assert_eq!(s.truncated_journeys, 0);
}

/// A path row may carry a value with `total_conversions` 0 (ingest refuses it; the engine
/// given such a chunk directly ignores the value): every model must still conserve totals.
#[test]
fn value_on_a_path_row_without_conversions_does_not_break_conservation() {
    let rows = [path_row(&["a"], 1.0, 10.0, 0.0), path_row(&["a", "b"], 0.0, 50.0, 1.0)];
    let result = attribute_paths(&rows, &path_options(OptionsSpec::default()));
    for m in &result.models {
        assert!(m.conserves_totals || m.model == ModelId::Participation, "{}", m.model);
        let credited: f64 = m.channels.iter().map(|c| c.value).sum();
        assert_close(credited, result.summary.conversion_value - result.summary.unattributed_value, 1e-9);
    }
}
