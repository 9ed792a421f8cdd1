//! Lookback windows compared in one pass (docs/user-guide.md, "Window comparison"): a
//! journey whose touches fall inside some windows and not others, worked by hand; the
//! ranks and the `windows` table; merging; the refusals; `shao_li` and `markov_order: auto`
//! under several windows.

use mta_core::result::{Table, WindowResult};
use mta_core::{AttributionResult, InputKind, LookbackDays, MarkovOrder, ModelId, OptionsSpec, Partial};

use crate::helpers::*;

fn windows(days: &[f64]) -> OptionsSpec {
    OptionsSpec {
        models: Some(vec!["first_touch".into(), "linear".into()]),
        lookback_days: Some(LookbackDays::Many(days.to_vec())),
        ..Default::default()
    }
}

/// u1's four touches lie 2, 10, 20 and 40 days before its conversion; u2 converts 5 days
/// after an email and then leaves a display touch (a null journey under every window);
/// u3's only touch is 60 days old.
fn events() -> Events {
    Events::new()
        .touch("u1", T0 - 40 * DAY, "display")
        .touch("u1", T0 - 20 * DAY, "social")
        .touch("u1", T0 - 10 * DAY, "email")
        .touch("u1", T0 - 2 * DAY, "search")
        .conversion("u1", T0, 100.0)
        .touch("u2", T0 - 5 * DAY, "email")
        .conversion("u2", T0, 50.0)
        .touch("u2", T0 + DAY, "display")
        .touch("u3", T0 - 60 * DAY, "display")
        .conversion("u3", T0, 10.0)
}

fn window(result: &AttributionResult, days: f64) -> AttributionResult {
    let w: &WindowResult = result.windows.iter().find(|w| w.lookback_days == days).expect("the window is there");
    AttributionResult { summary: w.summary.clone(), models: w.models.clone(), ..result.clone() }
}

#[test]
fn each_window_credits_the_touches_inside_it() {
    let result = attribute_events(&events().chunk(), &event_options(windows(&[7.0, 14.0, 30.0, 90.0])));
    let days: Vec<f64> = result.windows.iter().map(|w| w.lookback_days).collect();
    assert_eq!(days, [7.0, 14.0, 30.0, 90.0], "in the order listed");
    assert_eq!(result.options.lookback_days, 7.0, "the top level is the first window");
    assert_eq!(result.options.lookback_windows, [7.0, 14.0, 30.0, 90.0]);
    assert_eq!((&result.windows[0].summary, &result.windows[0].models), (&result.summary, &result.models));

    // 7 days: u1 has `search` only, u2 `email`; u3 is unattributed.
    let w7 = window(&result, 7.0);
    assert_credits(&w7, ModelId::FirstTouch, &[("search", 1.0, 100.0), ("email", 1.0, 50.0), ("display", 0.0, 0.0)]);
    assert_eq!((w7.summary.unattributed_conversions, w7.summary.unattributed_value), (1.0, 10.0));
    assert_eq!((w7.summary.channels, w7.summary.rows, w7.summary.null_journeys), (3, 10, 1.0));
    // 14 days: u1 is email → search.
    let w14 = window(&result, 14.0);
    assert_credits(&w14, ModelId::FirstTouch, &[("email", 2.0, 150.0), ("search", 0.0, 0.0), ("display", 0.0, 0.0)]);
    assert_credits(&w14, ModelId::Linear, &[("email", 1.5, 100.0), ("search", 0.5, 50.0), ("display", 0.0, 0.0)]);
    // 30 days: social → email → search.
    let w30 = window(&result, 30.0);
    let third = 1.0 / 3.0;
    assert_credits(
        &w30,
        ModelId::Linear,
        &[
            ("social", third, 100.0 * third),
            ("email", 1.0 + third, 50.0 + 100.0 * third),
            ("search", third, 100.0 * third),
            ("display", 0.0, 0.0),
        ],
    );
    assert_eq!(w30.summary.unattributed_conversions, 1.0);
    // 90 days: every touch of u1, and u3's display.
    let w90 = window(&result, 90.0);
    assert_credits(
        &w90,
        ModelId::FirstTouch,
        &[("display", 2.0, 110.0), ("email", 1.0, 50.0), ("social", 0.0, 0.0), ("search", 0.0, 0.0)],
    );
    assert_credits(
        &w90,
        ModelId::Linear,
        &[("display", 1.25, 35.0), ("social", 0.25, 25.0), ("email", 1.25, 75.0), ("search", 0.25, 25.0)],
    );
    assert_eq!((w90.summary.unattributed_conversions, w90.summary.converting_journeys), (0.0, 3.0));
    for w in &result.windows {
        assert!(w.models.iter().all(|m| m.conserves_totals), "{} days", w.lookback_days);
    }

    // First touch's ranks: 1 = most conversions, ties by name; `social` is not in the two
    // shortest windows at all.
    let ranks = &result.window_ranks[0];
    assert_eq!(ranks.model, ModelId::FirstTouch);
    let table: Vec<(&str, Vec<Option<u32>>, u32)> =
        ranks.channels.iter().map(|c| (c.channel.as_str(), c.rank.clone(), c.rank_spread)).collect();
    assert_eq!(
        table,
        [
            ("email", vec![Some(1), Some(1), Some(1), Some(2)], 1),
            ("search", vec![Some(2), Some(3), Some(4), Some(3)], 2),
            ("display", vec![Some(3), Some(2), Some(3), Some(1)], 2),
            ("social", vec![None, None, Some(2), Some(4)], 2),
        ]
    );
    assert_eq!(ranks.channels[0].share, [0.5, 1.0, 0.5, 1.0 / 3.0]);
    assert_eq!(ranks.channels[3].share, [0.0, 0.0, 0.5, 0.0]);
    assert_eq!(result.window_ranks[1].model, ModelId::Linear);

    // The tidy table: model, channel, window; no row where a window has no touch of the channel.
    let csv = Table::Windows.csv(&result);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "model,channel,lookback_days,conversions,value,share,rank");
    assert_eq!(
        &lines[1..5],
        [
            "first_touch,email,7,1,50,0.5,1",
            "first_touch,email,14,2,150,1,1",
            "first_touch,email,30,1,50,0.5,1",
            "first_touch,email,90,1,50,0.3333333333333333,2",
        ]
    );
    assert!(!csv.contains("first_touch,social,7,") && csv.contains("first_touch,social,30,1,100,0.5,2\n"));
    assert_eq!(lines.len(), 1 + 2 * (4 + 4 + 4 + 2), "two models × (email, search, display, social)");
    assert!(Table::Windows.applies_to(&result));
}

#[test]
fn one_number_keeps_the_result_without_windows_and_a_list_of_one_lists_it() {
    let chunk = events().chunk();
    let plain =
        attribute_events(&chunk, &event_options(OptionsSpec { lookback_days: Some(14.0.into()), ..windows(&[]) }));
    assert!(plain.windows.is_empty() && plain.window_ranks.is_empty() && plain.options.lookback_windows.is_empty());
    assert!(!Table::Windows.applies_to(&plain));
    assert_eq!(Table::Windows.csv(&plain), "model,channel,lookback_days,conversions,value,share,rank\n");
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("windows").is_none() && json["options"].get("lookback_windows").is_none());
    let listed = attribute_events(&chunk, &event_options(windows(&[14.0])));
    assert_eq!((listed.windows.len(), &listed.models), (1, &plain.models));
    // The top level of a comparison is the run of its first window alone.
    let compared = attribute_events(&chunk, &event_options(windows(&[14.0, 0.0, 7.0])));
    assert_eq!((&compared.summary, &compared.models), (&plain.summary, &plain.models));
    assert_eq!(window(&compared, 0.0).summary.unattributed_conversions, 0.0, "0 = unlimited");
}

#[test]
fn windows_merge_over_chunks_by_user() {
    let options = event_options(windows(&[7.0, 14.0, 30.0, 90.0]));
    let all = events();
    let want = attribute_events(&all.chunk(), &options);
    let only = |user: &str| {
        let mut part = Events::new();
        part.rows = all.rows.iter().filter(|r| r.user == user).cloned().collect();
        Partial::from_events(&part.chunk(), &options).unwrap()
    };
    let mut merged = Partial::new(&options, &[]);
    for user in ["u3", "u1", "u2"] {
        merged.merge(&only(user));
    }
    let got = merged.finish(&options).unwrap();
    assert_eq!(got.window_ranks, want.window_ranks);
    for (g, w) in got.windows.iter().zip(&want.windows) {
        assert_eq!(g.summary, w.summary, "{} days", w.lookback_days);
    }
    // A partial survives its JSON, windows included.
    let partial = Partial::from_events(&all.chunk(), &options).unwrap();
    let back: Partial = serde_json::from_str(&serde_json::to_string(&partial).unwrap()).unwrap();
    let json = |r: &AttributionResult| serde_json::to_string(r).unwrap();
    assert_eq!(json(&back.finish(&options).unwrap()), json(&want));
}

#[test]
fn bad_window_lists_are_refused_naming_the_option() {
    let refused = |spec: OptionsSpec, kind: InputKind, needle: &str| {
        let err = spec.validate(kind).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("lookback_days"), "{err}");
        assert!(err.message.contains(needle), "{needle}: {err}");
    };
    refused(windows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]), InputKind::Events, "at most 8 windows");
    refused(windows(&[]), InputKind::Events, "at least one window");
    refused(windows(&[7.0, -1.0]), InputKind::Events, "window 2 must be a number >= 0");
    refused(windows(&[7.0, 14.0, 7.0]), InputKind::Events, "listed twice");
    refused(windows(&[7.0, 30.0]), InputKind::Paths, "path rows have no times");
    let with_period = OptionsSpec { period: Some(mta_core::period::Period::Week), ..windows(&[7.0, 30.0]) };
    refused(with_period, InputKind::Events, "does not combine with `period`");
    assert!(windows(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).validate(InputKind::Events).is_ok());
    assert!(windows(&[7.0, 30.0]).check(None).is_ok(), "fits events");

    // The command line's form and the JSON form.
    assert_eq!(LookbackDays::parse("7, 14,30").unwrap(), LookbackDays::Many(vec![7.0, 14.0, 30.0]));
    assert_eq!(LookbackDays::parse("30").unwrap(), LookbackDays::One(30.0));
    assert!(LookbackDays::parse("7,x").unwrap_err().message.contains("comma-separated"));
    assert!(LookbackDays::parse("1,2,3,4,5,6,7,8,9").unwrap_err().message.contains("at most 8"));
    let spec: OptionsSpec = serde_json::from_str(r#"{"lookback_days": [7, 14.5]}"#).unwrap();
    assert_eq!(spec.lookback_days, Some(LookbackDays::Many(vec![7.0, 14.5])));
    let spec: OptionsSpec = serde_json::from_str(r#"{"lookback_days": 30}"#).unwrap();
    assert_eq!(serde_json::to_string(&spec.lookback_days).unwrap(), "30.0");
    let err = serde_json::from_str::<OptionsSpec>(r#"{"lookback_days": [1,2,3,4,5,6,7,8,9]}"#).unwrap_err();
    assert!(err.to_string().contains("at most 8"), "{err}");
    assert!(serde_json::from_str::<OptionsSpec>(r#"{"lookback_days": "7"}"#).is_err());
}

/// `shao_li` and `markov_order: auto` under several windows. Shao & Li by hand: under 7 days
/// the journeys are {search} → 100, {email} → 50 and u2's null {display}: p = 1, 1, 0 with no
/// pairs, so search 1 (100), email 1 (50). Under 30 days u1 is {social, email, search}: every
/// p and pair rate is 1, so each C = 1 + (−1 − 1)/4 = 1/2 and the two conversions split in
/// thirds; value per journey 100, 75, 100 (pairs 100) gives 100 − 175/4, 75 − 150/4,
/// 100 − 175/4 = 56.25, 37.5, 56.25 of the value 150. Markov solves every window at the
/// order `auto` chose for the top level (the first window), which alone reports the choice
/// and the pair effects.
#[test]
fn shao_li_and_auto_markov_order_under_several_windows() {
    let spec = OptionsSpec {
        models: Some(vec!["shao_li".into(), "markov".into()]),
        markov_order: Some(MarkovOrder::Auto),
        markov_pair_effects: Some(true),
        ..windows(&[7.0, 30.0])
    };
    let result = attribute_events(&events().chunk(), &event_options(spec.clone()));
    let w7 = window(&result, 7.0);
    assert_credits(&w7, ModelId::ShaoLi, &[("search", 1.0, 100.0), ("email", 1.0, 50.0), ("display", 0.0, 0.0)]);
    let w30 = window(&result, 30.0);
    let third = 2.0 / 3.0;
    assert_credits(
        &w30,
        ModelId::ShaoLi,
        &[("social", third, 56.25), ("email", third, 37.5), ("search", third, 56.25), ("display", 0.0, 0.0)],
    );
    let top = model(&result, ModelId::Markov);
    let chosen = top.order_selection.as_ref().expect("auto reports its choice").chosen;
    assert_eq!(top.order, Some(chosen));
    assert!(top.pairs.is_some());
    let markov30 = model(&w30, ModelId::Markov);
    assert_eq!(markov30.order, Some(chosen), "the top level's order");
    assert!(markov30.order_selection.is_none() && markov30.pairs.is_none());
    // The 30-day window is the 30-day run at that order.
    let alone = OptionsSpec {
        lookback_days: Some(30.0.into()),
        markov_order: Some(MarkovOrder::Fixed(chosen)),
        markov_pair_effects: None,
        ..spec.clone()
    };
    let alone = attribute_events(&events().chunk(), &event_options(alone));
    assert_eq!(&w30.models, &alone.models);
    assert_eq!(result.window_ranks.iter().map(|r| r.model).collect::<Vec<_>>(), [ModelId::Markov, ModelId::ShaoLi]);

    // Over chunks by user: the same choice and credits.
    let options = event_options(spec);
    let all = events();
    let mut merged = Partial::new(&options, &[]);
    for user in ["u2", "u3", "u1"] {
        let mut part = Events::new();
        part.rows = all.rows.iter().filter(|r| r.user == user).cloned().collect();
        merged.merge(&Partial::from_events(&part.chunk(), &options).unwrap());
    }
    let got = merged.finish(&options).unwrap();
    assert_eq!(model(&got, ModelId::Markov).order, Some(chosen));
    assert_credits(
        &window(&got, 30.0),
        ModelId::ShaoLi,
        &[("social", third, 56.25), ("email", third, 37.5), ("search", third, 56.25), ("display", 0.0, 0.0)],
    );
}
