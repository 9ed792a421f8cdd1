//! Credit by channel × breakdown values (docs/user-guide.md, "Breakdown"): hand-computed rows
//! for each family of models (rules summing their touches' weights; `participation` and
//! `shapley` splitting a channel's journey credit evenly over its touches; `markov` and
//! `shao_li` splitting the channel's credit by its keys' shares), the rows of each channel
//! adding up to its figure, Markov's `auto` order and pair effects counting channels, and breakdowns read from files (aliases, dotted paths, channel rules, `(none)`,
//! the limit).

use mta_core::breakdown::BreakdownRow;
use mta_core::chunk::touch_key;
use mta_core::ingest::{Block, Format, InputSpec, Limits, open_text, read_csv, read_ndjson};
use mta_core::result::{ModelResult, Table};
use mta_core::{AttributionError, AttributionResult, ErrorCode, EventChunk, ModelId, Options, OptionsSpec, Partial};

use crate::helpers::*;

/// A touch key as ingest writes it for a one-level breakdown.
fn key(channel: &str, campaign: Option<&str>) -> String {
    touch_key(channel, &[campaign])
}

fn breakdown_options(models: &[&str]) -> Options {
    event_options(OptionsSpec { breakdown: Some(vec!["campaign".into()]), ..only(models) })
}

/// Three users: two converting journeys with campaigns, one that does not convert.
fn campaigns() -> Events {
    Events::new()
        .touch("u1", T0 - 3 * DAY, &key("email", Some("spring")))
        .touch("u1", T0 - 2 * DAY, &key("search", Some("brand")))
        .touch("u1", T0 - DAY, &key("email", Some("summer")))
        .conversion("u1", T0, 100.0)
        .touch("u2", T0 - 2 * DAY, &key("email", Some("spring")))
        .touch("u2", T0 - DAY, &key("search", None))
        .conversion("u2", T0, 50.0)
        .touch("u3", T0 - 2 * DAY, &key("display", Some("x")))
        .touch("u3", T0 - DAY, &key("search", Some("brand")))
}

/// A model's breakdown rows as (channel, campaign, conversions, value).
fn rows(result: &AttributionResult, id: ModelId) -> Vec<(String, String, f64, f64)> {
    let rows: &[BreakdownRow] = model(result, id).breakdown.as_deref().expect("a breakdown was asked for");
    rows.iter()
        .map(|r| {
            assert_eq!(r.values.len(), 1);
            assert_eq!(r.values[0].0, "campaign");
            (r.channel.clone(), r.values[0].1.clone(), r.conversions, r.value)
        })
        .collect()
}

#[track_caller]
fn assert_rows(result: &AttributionResult, id: ModelId, want: &[(&str, &str, f64, f64)]) {
    let mut got = rows(result, id);
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut want: Vec<(String, String, f64, f64)> =
        want.iter().map(|&(c, v, n, x)| (c.to_owned(), v.to_owned(), n, x)).collect();
    want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(got.len(), want.len(), "{id}: got {got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, &g.1), (&w.0, &w.1), "{id}: got {got:?}");
        assert!(close(g.2, w.2, 1e-12) && close(g.3, w.3, 1e-12), "{id} {}/{}: got {g:?}, want {w:?}", w.0, w.1);
    }
}

/// The rows of each channel add up to its credit (conversions and value), and every channel
/// with credit has rows.
#[track_caller]
pub(crate) fn assert_rows_add_up(model: &ModelResult) {
    let rows = model.breakdown.as_deref().expect("a breakdown was asked for");
    for channel in &model.channels {
        let (conversions, value) = rows
            .iter()
            .filter(|r| r.channel == channel.channel)
            .fold((0.0, 0.0), |(a, b), r| (a + r.conversions, b + r.value));
        assert!(
            close(conversions, channel.conversions, 1e-9) && close(value, channel.value, 1e-9),
            "{}: the rows of {} add up to ({conversions}, {value}), its credit is ({}, {})",
            model.model,
            channel.channel,
            channel.conversions,
            channel.value
        );
    }
    assert!(rows.iter().all(|r| model.channel(&r.channel).is_some()), "{}: a row of no channel", model.model);
}

#[test]
fn rule_models_sum_the_weights_of_each_campaigns_touches() {
    let options = breakdown_options(&["first_touch", "last_touch", "linear"]);
    let result = attribute_events(&campaigns().chunk(), &options);
    // u1: email/spring, search/brand, email/summer → 100; u2: email/spring, search/(none) → 50.
    assert_rows(
        &result,
        ModelId::FirstTouch,
        &[
            ("email", "spring", 2.0, 150.0),
            ("email", "summer", 0.0, 0.0),
            ("search", "brand", 0.0, 0.0),
            ("search", "(none)", 0.0, 0.0),
            ("display", "x", 0.0, 0.0),
        ],
    );
    assert_rows(
        &result,
        ModelId::LastTouch,
        &[
            ("email", "spring", 0.0, 0.0),
            ("email", "summer", 1.0, 100.0),
            ("search", "brand", 0.0, 0.0),
            ("search", "(none)", 1.0, 50.0),
            ("display", "x", 0.0, 0.0),
        ],
    );
    assert_rows(
        &result,
        ModelId::Linear,
        &[
            ("email", "spring", 1.0 / 3.0 + 0.5, 100.0 / 3.0 + 25.0),
            ("email", "summer", 1.0 / 3.0, 100.0 / 3.0),
            ("search", "brand", 1.0 / 3.0, 100.0 / 3.0),
            ("search", "(none)", 0.5, 25.0),
            ("display", "x", 0.0, 0.0),
        ],
    );
    for m in &result.models {
        assert_rows_add_up(m);
    }
    // The channel figures are those of the same input without a breakdown.
    let plain = attribute_events(&campaigns_without_keys().chunk(), &event_options(only(&["linear"])));
    assert_credits(&result, ModelId::Linear, &credits_list(&plain, ModelId::Linear));
    assert!(plain.models[0].breakdown.is_none());
}

#[test]
fn participation_and_shapley_split_a_channels_credit_evenly_over_its_touches() {
    let options = breakdown_options(&["participation", "shapley"]);
    let result = attribute_events(&campaigns().chunk(), &options);
    // u1: email and search each get 1 (participation) or 1/2 (shapley); email's two touches
    // share it. u2: email/spring and search/(none) likewise, one touch each.
    assert_rows(
        &result,
        ModelId::Participation,
        &[
            ("email", "spring", 0.5 + 1.0, 50.0 + 50.0),
            ("email", "summer", 0.5, 50.0),
            ("search", "brand", 1.0, 100.0),
            ("search", "(none)", 1.0, 50.0),
            ("display", "x", 0.0, 0.0),
        ],
    );
    assert_rows(
        &result,
        ModelId::Shapley,
        &[
            ("email", "spring", 0.25 + 0.5, 25.0 + 25.0),
            ("email", "summer", 0.25, 25.0),
            ("search", "brand", 0.5, 50.0),
            ("search", "(none)", 0.5, 25.0),
            ("display", "x", 0.0, 0.0),
        ],
    );
    for m in &result.models {
        assert_rows_add_up(m);
    }
}

#[test]
fn markov_splits_each_channels_credit_by_its_campaigns_shares_of_touches() {
    let options = breakdown_options(&["markov"]);
    let result = attribute_events(&campaigns().chunk(), &options);
    let (email, search, display) = (
        credit(&result, ModelId::Markov, "email"),
        credit(&result, ModelId::Markov, "search"),
        credit(&result, ModelId::Markov, "display"),
    );
    assert!(display.0 > 0.0, "display is on the way to search, which converts: {display:?}");
    // email: u1 gives spring and summer half a conversion (50 value) each, u2 gives spring one
    // (50): conversions 3/4 : 1/4, value 2/3 : 1/3. search: brand (u1) and (none) (u2) one
    // conversion each, values 100 and 50. display touched no converting journey: its one
    // campaign takes all of its credit.
    assert_rows(
        &result,
        ModelId::Markov,
        &[
            ("email", "spring", email.0 * 0.75, email.1 * 2.0 / 3.0),
            ("email", "summer", email.0 * 0.25, email.1 / 3.0),
            ("search", "brand", search.0 * 0.5, search.1 * 2.0 / 3.0),
            ("search", "(none)", search.0 * 0.5, search.1 / 3.0),
            ("display", "x", display.0, display.1),
        ],
    );
    assert_rows_add_up(model(&result, ModelId::Markov));
    // The channel figures do not change with a breakdown.
    let plain = attribute_events(&campaigns_without_keys().chunk(), &event_options(only(&["markov"])));
    assert_credits(&result, ModelId::Markov, &credits_list(&plain, ModelId::Markov));
}

#[test]
fn shao_li_splits_each_channels_credit_by_its_campaigns_shares_of_touches() {
    let options = breakdown_options(&["shao_li"]);
    let result = attribute_events(&campaigns().chunk(), &options);
    // Journeys by channel (once each): {email, search} converting twice (100 and 50),
    // {display, search} not. p(y|email) = 1, p(y|search) = 2/3, p(y|display) = 0,
    // p(y|email, search) = 1, p(y|display, search) = 0: C(email) = 1 + (1 − 1 − 2/3)/2 = 2/3,
    // C(search) = 2/3 + ((1 − 2/3 − 1) + (0 − 2/3 − 0))/4 = 1/3, C(display) = −1/3 → 0; scaled
    // to the 2 conversions. Value per journey: email 75, search 50, display 0, the pairs 75 and
    // 0: C = 75 − 50/2 = 50, 50 − 100/4 = 25 and 0, scaled to 150. The campaigns' shares are
    // Markov's: email spring 3/4 of the conversions and 2/3 of the value, search brand 1/2 and 2/3.
    let (email, search) = ((4.0 / 3.0, 100.0), (2.0 / 3.0, 50.0));
    assert_credits(
        &result,
        ModelId::ShaoLi,
        &[("email", email.0, email.1), ("search", search.0, search.1), ("display", 0.0, 0.0)],
    );
    assert_rows(
        &result,
        ModelId::ShaoLi,
        &[
            ("email", "spring", email.0 * 0.75, email.1 * 2.0 / 3.0),
            ("email", "summer", email.0 * 0.25, email.1 / 3.0),
            ("search", "brand", search.0 * 0.5, search.1 * 2.0 / 3.0),
            ("search", "(none)", search.0 * 0.5, search.1 / 3.0),
            ("display", "x", 0.0, 0.0),
        ],
    );
    assert_rows_add_up(model(&result, ModelId::ShaoLi));
}

#[test]
fn markov_auto_order_and_pair_effects_count_channels_not_campaigns() {
    let spec = |breakdown: bool| OptionsSpec {
        breakdown: breakdown.then(|| vec!["campaign".into()]),
        markov_order: Some(mta_core::MarkovOrder::Auto),
        markov_pair_effects: Some(true),
        ..only(&["markov", "shao_li"])
    };
    let result = attribute_events(&campaigns().chunk(), &event_options(spec(true)));
    let plain = attribute_events(&campaigns_without_keys().chunk(), &event_options(spec(false)));
    let (markov, plain_markov) = (model(&result, ModelId::Markov), model(&plain, ModelId::Markov));
    assert_eq!(markov.order, plain_markov.order);
    assert_eq!(markov.order_selection, plain_markov.order_selection, "the same chains, trained and held out");
    assert_eq!(markov.pairs, plain_markov.pairs, "pairs of channels");
    let pairs: Vec<(&str, &str)> =
        markov.pairs.iter().flatten().map(|p| (p.channel_a.as_str(), p.channel_b.as_str())).collect();
    assert_eq!(pairs.len(), 3, "display, email and search: {pairs:?}");
    for id in [ModelId::Markov, ModelId::ShaoLi] {
        assert_credits(&result, id, &credits_list(&plain, id));
        assert_rows_add_up(model(&result, id));
    }
    let transitions = |r: &AttributionResult| r.reports.as_ref().and_then(|r| r.transitions.clone());
    assert_eq!(transitions(&result), transitions(&plain), "transitions of the chosen order, between channels");
}

#[test]
fn rows_follow_their_channels_order_then_conversions() {
    let result = attribute_events(&campaigns().chunk(), &breakdown_options(&["linear"]));
    let linear = model(&result, ModelId::Linear);
    let order: Vec<(&str, &str)> =
        linear.breakdown.iter().flatten().map(|r| (r.channel.as_str(), r.values[0].1.as_str())).collect();
    assert_eq!(
        order,
        [("email", "spring"), ("email", "summer"), ("search", "(none)"), ("search", "brand"), ("display", "x")]
    );
    let csv = Table::Breakdown.csv(&result);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("model,channel,campaign,conversions,value"));
    assert_eq!(lines.next(), Some("linear,email,spring,0.8333333333333333,58.33333333333333"));
    assert_eq!(csv.lines().count(), 6);
}

#[test]
fn periods_carry_their_own_breakdown_adding_up_to_the_whole() {
    let events =
        campaigns().touch("u4", T0 + 10 * DAY, &key("email", Some("autumn"))).conversion("u4", T0 + 11 * DAY, 7.0);
    let spec = OptionsSpec {
        period: Some(mta_core::period::Period::Week),
        breakdown: Some(vec!["campaign".into()]),
        ..only(&["linear", "markov", "shao_li"])
    };
    let options = event_options(spec);
    let result = attribute_events(&events.chunk(), &options);
    assert_eq!(result.periods.len(), 2);
    let whole = rows(&result, ModelId::Linear);
    let mut summed: std::collections::BTreeMap<(String, String), (f64, f64)> = Default::default();
    for period in &result.periods {
        for m in &period.models {
            assert_rows_add_up(m);
        }
        let linear = period.models.iter().find(|m| m.model == ModelId::Linear).unwrap();
        for r in linear.breakdown.iter().flatten() {
            let entry = summed.entry((r.channel.clone(), r.values[0].1.clone())).or_default();
            entry.0 += r.conversions;
            entry.1 += r.value;
        }
    }
    for (channel, campaign, conversions, value) in whole {
        let (c, v) = summed.get(&(channel.clone(), campaign.clone())).copied().unwrap_or_default();
        assert_close(c, conversions, 1e-12);
        assert_close(v, value, 1e-12);
    }
    let second = &result.periods[1];
    let linear = second.models.iter().find(|m| m.model == ModelId::Linear).unwrap();
    let campaigns: Vec<&str> = linear.breakdown.iter().flatten().map(|r| r.values[0].1.as_str()).collect();
    assert_eq!(campaigns, ["autumn"], "a period reports the keys of its own journeys only");
    let csv = Table::PeriodBreakdown.csv(&result);
    assert!(csv.starts_with("period,model,channel,campaign,conversions,value\n"), "{csv}");
    assert!(csv.contains(&format!("{},linear,email,autumn,1,7\n", second.period)), "{csv}");
}

#[test]
fn positions_per_campaign_by_hand_in_the_whole_and_each_period() {
    let events =
        campaigns().touch("u4", T0 + 10 * DAY, &key("email", Some("autumn"))).conversion("u4", T0 + 11 * DAY, 7.0);
    let spec = OptionsSpec {
        period: Some(mta_core::period::Period::Week),
        breakdown: Some(vec!["campaign".into()]),
        ..only(&["linear"])
    };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    let positions = |reports: &mta_core::reports::Reports| -> Vec<(String, String, [f64; 4])> {
        let rows = reports.breakdown_positions.as_deref().expect("positions per campaign with a breakdown");
        rows.iter()
            .map(|r| {
                let p = &r.positions;
                (r.channel.clone(), r.values[0].1.clone(), [p.only, p.first, p.middle, p.last])
            })
            .collect()
    };
    let want = |rows: &[(&str, &str, [f64; 4])]| -> Vec<(String, String, [f64; 4])> {
        rows.iter().map(|&(c, v, p)| (c.to_owned(), v.to_owned(), p)).collect()
    };
    // u1: email/spring first, search/brand in the middle, email/summer last; u2: email/spring
    // first, search without a campaign last; u3 converts not (display/x is listed, at zero);
    // u4: email/autumn alone, in the second week.
    assert_eq!(
        positions(result.reports.as_ref().unwrap()),
        want(&[
            ("display", "x", [0.0; 4]),
            ("email", "autumn", [1.0, 0.0, 0.0, 0.0]),
            ("email", "spring", [0.0, 2.0, 0.0, 0.0]),
            ("email", "summer", [0.0, 0.0, 0.0, 1.0]),
            ("search", "(none)", [0.0, 0.0, 0.0, 1.0]),
            ("search", "brand", [0.0, 0.0, 1.0, 0.0]),
        ])
    );
    let second = result.periods[1].reports.as_ref().unwrap();
    assert_eq!(positions(second), want(&[("email", "autumn", [1.0, 0.0, 0.0, 0.0])]));
    let csv = Table::BreakdownPositions.csv(&result);
    assert!(csv.starts_with("channel,campaign,only,first,middle,last\ndisplay,x,0,0,0,0\n"), "{csv}");
    assert!(csv.contains("\nemail,spring,0,2,0,0\n"), "{csv}");
    let table: Table = "period_breakdown_positions".parse().unwrap();
    assert!(table.applies_to(&result));
    let csv = table.csv(&result);
    assert!(csv.starts_with("period,channel,campaign,only,first,middle,last\n"), "{csv}");
    assert!(csv.ends_with(&format!("{},email,autumn,1,0,0,0\n", result.periods[1].period)), "{csv}");
    // The JSON row is one flat object, as a breakdown row, and reads back.
    let json = serde_json::to_string(&result.reports.as_ref().unwrap().breakdown_positions).unwrap();
    assert!(json.starts_with(r#"[{"channel":"display","campaign":"x","only":0.0,"first":0.0,"#), "{json}");
    let back: AttributionResult = serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
    assert_eq!(back, result);
}

#[test]
fn top_paths_by_campaign_by_hand_escaped_and_per_period() {
    // u5: a channel and a campaign holding both separators, a week later.
    let events =
        campaigns().touch("u5", T0 + 10 * DAY, &key("a > b", Some("x|y"))).conversion("u5", T0 + 11 * DAY, 1.0);
    let spec = OptionsSpec {
        period: Some(mta_core::period::Period::Week),
        breakdown: Some(vec!["campaign".into()]),
        ..only(&["linear"])
    };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    let paths = result.reports.as_ref().unwrap().breakdown_paths.as_ref().expect("paths by campaign");
    assert!(paths.exact && paths.distinct_paths == Some(4));
    let rows = |list: &[mta_core::paths::PathRow]| -> Vec<(String, u32, f64, f64, f64)> {
        list.iter().map(|r| (r.path.clone(), r.touches, r.conversions, r.value, r.null_journeys)).collect()
    };
    // Each touch is its channel and campaign joined by ` | ` (`\` and `|` escaped inside them),
    // the touches joined and escaped like channel names in `paths`.
    let escaped = "a \\> b | x\\\\|y";
    assert_eq!(
        rows(&paths.converting),
        [
            ("email | spring > search | brand > email | summer".to_owned(), 3, 1.0, 100.0, 0.0),
            ("email | spring > search | (none)".to_owned(), 2, 1.0, 50.0, 0.0),
            (escaped.to_owned(), 1, 1.0, 1.0, 0.0),
        ]
    );
    assert_eq!(rows(&paths.non_converting), [("display | x > search | brand".to_owned(), 2, 0.0, 0.0, 1.0)]);
    // Read back exactly.
    let touch = mta_core::paths::split_path(escaped).pop().unwrap().unwrap();
    assert_eq!(mta_core::paths::split_touch(&touch), ["a > b", "x|y"]);
    let second = result.periods[1].reports.as_ref().unwrap().breakdown_paths.as_ref().unwrap();
    assert_eq!(rows(&second.converting), [(escaped.to_owned(), 1, 1.0, 1.0, 0.0)]);
    let csv = Table::BreakdownPaths.csv(&result);
    assert!(csv.starts_with(&format!("{}\n", mta_core::result::PATHS_CSV_HEADER)), "{csv}");
    assert!(csv.contains("\nconverting,1,email | spring > search | brand > email | summer,3,1,1,100,0,true\n"));
    let table: Table = "period_breakdown_paths".parse().unwrap();
    assert!(
        table.csv(&result).ends_with(&format!("{},converting,1,{escaped},1,1,1,1,0,true\n", result.periods[1].period))
    );
}

#[test]
fn paths_by_campaign_past_max_report_paths_are_estimates_within_their_bound() {
    // Ten campaigns of one channel: one path of channels, ten of touch keys, past a limit of 4.
    let mut events = Events::new();
    for user in 0..10 {
        let u = format!("u{user}");
        events = events.touch(&u, T0 - DAY, &key("email", Some(&format!("c{user}")))).conversion(&u, T0, 1.0);
    }
    let spec = OptionsSpec { breakdown: Some(vec!["campaign".into()]), max_report_paths: Some(4), ..only(&["linear"]) };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    let reports = result.reports.as_ref().unwrap();
    assert!(reports.paths.as_ref().unwrap().exact, "one path of channels");
    let keyed = reports.breakdown_paths.as_ref().unwrap();
    assert!(!keyed.exact && keyed.distinct_paths.is_none());
    let bound = keyed.error_bound.conversions;
    assert!(bound > 0.0 && bound <= 10.0 / 2.0, "Misra-Gries keeping limit / 4 = 1: at most N / 2, got {bound}");
    assert!(keyed.converting.iter().all(|p| p.conversions <= 1.0 && p.conversions >= 1.0 - bound));
    assert!(Table::BreakdownPaths.csv(&result).lines().skip(1).all(|l| l.ends_with(",false")));
}

#[test]
fn without_a_breakdown_the_result_has_none() {
    let result = attribute(&Events::new().journey("u1", &["a", "b"], 3.0));
    let json = serde_json::to_value(&result).unwrap();
    assert!(!json.to_string().contains("breakdown"), "{json}");
    assert!(!Table::Breakdown.applies_to(&result) && !Table::BreakdownPositions.applies_to(&result));
    assert!(!Table::BreakdownPaths.applies_to(&result));
}

/// The same rows with plain channel names.
fn campaigns_without_keys() -> Events {
    let mut events = campaigns();
    for row in &mut events.rows {
        if let Some(channel) = &mut row.channel {
            *channel = mta_core::chunk::touch_key_channel(channel).into_owned();
        }
    }
    events
}

fn credits_list(result: &AttributionResult, id: ModelId) -> Vec<(&str, f64, f64)> {
    model(result, id).channels.iter().map(|c| (c.channel.as_str(), c.conversions, c.value)).collect()
}

// ---- from files -----------------------------------------------------------------------

fn read_keyed(bytes: &[u8], breakdown: &[&str], limits: Limits) -> Result<EventChunk, AttributionError> {
    let spec = InputSpec { breakdown: breakdown.iter().map(|b| b.to_string()).collect(), limits, ..Default::default() };
    let (format, reader) = open_text(bytes, None, None)?;
    let mut chunks = Vec::new();
    let sink = |block: Block| {
        if let Block::Events(chunk) = block {
            chunks.push(chunk);
        }
        Ok::<(), AttributionError>(())
    };
    match format {
        Format::Ndjson => read_ndjson(reader, &spec, sink)?,
        _ => read_csv(reader, &spec, sink)?,
    };
    assert_eq!(chunks.len(), 1);
    Ok(chunks.pop().unwrap())
}

fn attribute_file(bytes: &[u8], breakdown: &[&str], models: &[&str]) -> AttributionResult {
    let chunk = read_keyed(bytes, breakdown, Limits::default()).expect("input reads");
    let spec = OptionsSpec { breakdown: Some(breakdown.iter().map(|b| b.to_string()).collect()), ..only(models) };
    let options = event_options(spec);
    Partial::from_events(&chunk, &options).and_then(|p| p.finish(&options)).expect("attribution succeeds")
}

#[test]
fn a_campaign_column_is_found_by_its_alias_and_named_as_asked() {
    let csv = b"user_id,timestamp,channel,utm_campaign,ad_group,conversion,conversion_value\n\
        u1,2026-01-01,email,spring,A,0,\n\
        u1,2026-01-02,email, spring ,B,0,\n\
        u1,2026-01-03,search,,A,0,\n\
        u1,2026-01-04,,,,1,40\n";
    let result = attribute_file(csv, &["campaign", "ad_group"], &["linear"]);
    let linear = model(&result, ModelId::Linear);
    let got: Vec<(String, Option<&str>, Option<&str>, String)> = linear
        .breakdown
        .iter()
        .flatten()
        .map(|r| (r.channel.clone(), r.value_of("campaign"), r.value_of("ad_group"), format!("{:.9}", r.value)))
        .collect();
    let third = format!("{:.9}", 40.0 / 3.0);
    assert_eq!(
        got,
        [
            ("email".to_owned(), Some("spring"), Some("A"), third.clone()),
            ("email".to_owned(), Some("spring"), Some("B"), third.clone()),
            ("search".to_owned(), Some("(none)"), Some("A"), third),
        ]
    );
    assert_eq!(result.options.breakdown, ["campaign", "ad_group"]);
    // Named by the file's own column instead, the rows say so.
    let result = attribute_file(csv, &["utm_campaign"], &["linear"]);
    assert_eq!(model(&result, ModelId::Linear).breakdown.as_ref().unwrap()[0].values[0].0, "utm_campaign");
}

#[test]
fn channels_named_by_rules_break_down_by_a_nested_ndjson_field() {
    let ndjson = br#"{"user_id":"u1","timestamp":"2026-01-01","utm_source":"google","utm_medium":"cpc","ad":{"creative":"c1"},"conversion":0}
{"user_id":"u1","timestamp":"2026-01-02","utm_source":"newsletter","utm_medium":"email","ad":{"creative":7},"conversion":0}
{"user_id":"u1","timestamp":"2026-01-03","utm_source":"google","utm_medium":"cpc","conversion":0}
{"user_id":"u1","timestamp":"2026-01-04","conversion":1,"conversion_value":9}
"#;
    let result = attribute_file(ndjson, &["ad.creative"], &["first_touch", "linear"]);
    let linear = model(&result, ModelId::Linear);
    let got: Vec<(&str, &str, f64)> = linear
        .breakdown
        .iter()
        .flatten()
        .map(|r| (r.channel.as_str(), r.values[0].1.as_str(), r.conversions))
        .collect();
    assert_eq!(
        got,
        [("Paid Search", "(none)", 1.0 / 3.0), ("Paid Search", "c1", 1.0 / 3.0), ("Email", "7", 1.0 / 3.0)]
    );
    assert_rows_add_up(linear);
    assert_rows_add_up(model(&result, ModelId::FirstTouch));
}

#[test]
fn a_missing_breakdown_column_names_the_files_columns() {
    let csv = b"user_id,timestamp,channel,conversion\nu1,2026-01-01,email,1\n";
    let err = read_keyed(csv, &["ad_group"], Limits::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::MissingColumns);
    assert!(err.message.contains("ad_group (breakdown)"), "{}", err.message);
    assert!(err.message.contains("the file has [user_id, timestamp, channel, conversion]"), "{}", err.message);
}

#[test]
fn more_distinct_values_than_the_limit_are_refused_naming_it() {
    let mut csv = String::from("user_id,timestamp,channel,campaign,conversion\n");
    for i in 0..6 {
        csv.push_str(&format!("u{i},2026-01-01,email,c{},0\n", i % 5));
    }
    let limits = Limits { max_breakdown_values: 5, ..Limits::default() };
    assert_eq!(read_keyed(csv.as_bytes(), &["campaign"], limits).unwrap().channels.len(), 5);
    let limits = Limits { max_breakdown_values: 4, ..Limits::default() };
    let err = read_keyed(csv.as_bytes(), &["campaign"], limits).unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("max_breakdown_values"), "{}", err.message);
    // The channel limit still counts channels, not keys.
    let limits = Limits { max_channels: 1, ..Limits::default() };
    assert!(read_keyed(csv.as_bytes(), &["campaign"], limits).is_ok());
}

#[test]
fn merged_partials_past_the_limit_are_refused_as_the_union_grows() {
    // Two chunks of 3 campaigns each, within a limit of 4 alone, 6 together: a reducer asks
    // after every merge, so it refuses at the merge that passes the limit.
    let chunk = |first: usize| {
        let mut csv = String::from("user_id,timestamp,channel,campaign,conversion\n");
        for i in first..first + 3 {
            csv.push_str(&format!("u{i},2026-01-01,email,c{i},0\nu{i},2026-01-02,email,c{i},1\n"));
        }
        read_keyed(csv.as_bytes(), &["campaign"], Limits::default()).unwrap()
    };
    let options = breakdown_options(&["linear"]);
    let limits = Limits { max_breakdown_values: 4, ..Limits::default() };
    let mut total = Partial::from_events(&chunk(0), &options).unwrap();
    total.check_within(&limits).expect("3 values are within 4");
    total.merge(&Partial::from_events(&chunk(3), &options).unwrap());
    let err = total.check_within(&limits).unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("max_breakdown_values"), "{}", err.message);
    let err = total.check_within(&Limits { max_channels: 0, ..Limits::default() }).unwrap_err();
    assert!(err.message.contains("max_channels"), "{}", err.message);
}

/// Cost per campaign (docs/user-guide.md, "Spend"): joined to the rows of a breakdown by the
/// campaign alone, by (channel, campaign); a cost row without a campaign is `(none)`'s.
const CAMPAIGN_COSTS: &str = "date,channel,campaign,cost
2023-11-13,email,spring,50
2023-11-14,email,summer,20
2023-11-14,search,brand,30
2023-11-14,search,,10
2023-11-14,email,winter,5
2023-11-14,tv,x,7
";

/// (cost, cpa, roas) of a model's row (channel, campaign).
fn row_spend(model: &ModelResult, channel: &str, campaign: &str) -> Spend {
    let row = model.breakdown.iter().flatten().find(|r| r.channel == channel && r.values[0].1 == campaign);
    let row = row.unwrap_or_else(|| panic!("{}: no row {channel}/{campaign}", model.model));
    let field = |f: Option<Option<f64>>| f.expect("with campaign cost the field is present");
    (field(row.cost), field(row.cpa), field(row.roas))
}

#[track_caller]
fn assert_row_spend(model: &ModelResult, channel: &str, campaign: &str, want: Spend) {
    assert_same_spend(row_spend(model, channel, campaign), want, &format!("{} {channel}/{campaign}", model.model));
}

#[test]
fn cost_cpa_and_roas_per_campaign_by_hand() {
    let costs = mta_core::spend::CostTable::read_csv(CAMPAIGN_COSTS.as_bytes(), &Default::default(), None).unwrap();
    let mut result = attribute_events(&campaigns().chunk(), &breakdown_options(&["last_touch", "linear"]));
    result.add_spend(&costs);
    assert!(result.has_campaign_cost());
    // linear: u1 (100) thirds to email/spring, search/brand, email/summer; u2 (50) halves to
    // email/spring, search/(none). So email/spring 5/6 (100/3 + 25), email/summer 1/3 (100/3),
    // search/brand 1/3 (100/3), search/(none) 1/2 (25), display/x 0.
    let linear = model(&result, ModelId::Linear);
    assert_row_spend(linear, "email", "spring", (Some(50.0), Some(60.0), Some((100.0 / 3.0 + 25.0) / 50.0)));
    assert_row_spend(linear, "email", "summer", (Some(20.0), Some(60.0), Some(100.0 / 3.0 / 20.0)));
    assert_row_spend(linear, "search", "brand", (Some(30.0), Some(90.0), Some(100.0 / 3.0 / 30.0)));
    assert_row_spend(linear, "search", "(none)", (Some(10.0), Some(20.0), Some(2.5)));
    assert_row_spend(linear, "display", "x", (None, None, None));
    // last touch: email/summer 1 (100), search/(none) 1 (50); email/spring has cost, no credit.
    let last = model(&result, ModelId::LastTouch);
    assert_row_spend(last, "email", "summer", (Some(20.0), Some(20.0), Some(5.0)));
    assert_row_spend(last, "email", "spring", (Some(50.0), None, Some(0.0)));
    assert_row_spend(last, "search", "(none)", (Some(10.0), Some(10.0), Some(5.0)));
    // The channel's cost is every campaign's; its rows have all but `winter`'s, which no
    // touch names: reported with its campaign, beside the channel no journey mentions.
    assert_eq!(linear.channel("email").unwrap().cost, Some(Some(75.0)));
    let spend = result.spend.as_ref().unwrap();
    let unmatched: Vec<(&str, Option<&str>, f64, u64)> =
        spend.unmatched_cost.iter().map(|u| (u.channel.as_str(), u.campaign.as_deref(), u.cost, u.rows)).collect();
    assert_eq!(unmatched, [("tv", None, 7.0, 1), ("email", Some("winter"), 5.0, 1)]);
    assert_close(spend.matched_cost, 115.0, 1e-12);
    for m in &result.models {
        for channel in &m.channels {
            let rows: f64 = m
                .breakdown
                .iter()
                .flatten()
                .filter(|r| r.channel == channel.channel)
                .filter_map(|r| r.cost.flatten())
                .sum();
            let missed: f64 =
                spend.unmatched_cost.iter().filter(|u| u.channel == channel.channel).map(|u| u.cost).sum();
            assert_close(rows + missed, channel.cost.flatten().unwrap_or(0.0), 1e-12);
        }
    }

    // JSON: the figures after `value`, `null` kept, read back the same.
    let json = serde_json::to_value(&result).unwrap();
    let display = &json["models"]["linear"]["breakdown"].as_array().unwrap().iter().find(|r| r["channel"] == "display");
    assert_eq!(display.unwrap()["cost"], serde_json::Value::Null);
    assert_eq!(json["spend"]["unmatched_cost"][1]["campaign"], "winter");
    assert!(json["spend"]["unmatched_cost"][0].get("campaign").is_none());
    assert_eq!(serde_json::from_value::<AttributionResult>(json).unwrap(), result);

    // Tables: the breakdown gains cost, cpa, roas; the unmatched cost a campaign column.
    let csv = Table::Breakdown.csv(&result);
    assert!(csv.starts_with("model,channel,campaign,conversions,value,cost,cpa,roas\n"), "{csv}");
    assert!(csv.contains("last_touch,email,summer,1,100,20,20,5\n"), "{csv}");
    assert!(csv.contains("linear,display,x,0,0,,,\n"), "{csv}");
    assert_eq!(Table::UnmatchedCost.csv(&result), "channel,campaign,cost,rows\ntv,,7,1\nemail,winter,5,1\n");

    // Another column, or two levels: cost stays per channel and the rows carry none.
    for breakdown in [vec!["medium".to_owned()], vec!["campaign".to_owned(), "ad_group".to_owned()]] {
        let options = event_options(OptionsSpec { breakdown: Some(breakdown.clone()), ..only(&["linear"]) });
        let mut other = attribute_events(&campaigns().chunk(), &options);
        other.add_spend(&costs);
        assert!(!other.has_campaign_cost(), "{breakdown:?}");
        assert!(model(&other, ModelId::Linear).breakdown.iter().flatten().all(|r| r.cost.is_none()));
        assert_eq!(other.spend.as_ref().unwrap().unmatched_cost.len(), 1, "{breakdown:?}");
        assert!(Table::Breakdown.csv(&other).lines().next().unwrap().ends_with(",conversions,value"));
    }
    // The campaign column by an alias of it.
    let options = event_options(OptionsSpec { breakdown: Some(vec!["utm_campaign".into()]), ..only(&["linear"]) });
    let mut aliased = attribute_events(&campaigns().chunk(), &options);
    aliased.add_spend(&costs);
    assert_row_spend(model(&aliased, ModelId::Linear), "search", "(none)", (Some(10.0), Some(20.0), Some(2.5)));
}

#[test]
fn campaign_cost_counts_in_the_period_of_its_date() {
    // Days: the conversions on 2023-11-14, u3's null journey on 2023-11-13 (its last touch).
    let spec = OptionsSpec {
        period: Some(mta_core::period::Period::Day),
        breakdown: Some(vec!["campaign".into()]),
        ..only(&["linear"])
    };
    let costs = mta_core::spend::CostTable::read_csv(CAMPAIGN_COSTS.as_bytes(), &Default::default(), None).unwrap();
    let mut result = attribute_events(&campaigns().chunk(), &event_options(spec));
    result.add_spend(&costs);
    let days: Vec<&str> = result.periods.iter().map(|p| p.period.as_str()).collect();
    assert_eq!(days, ["2023-11-13", "2023-11-14"]);
    let first = model_in(&result.periods[0].models, ModelId::Linear);
    // email/spring has no touch in that day's journeys but cost dated then: a row of its own.
    assert_row_spend(first, "email", "spring", (Some(50.0), None, Some(0.0)));
    assert_row_spend(first, "search", "brand", (None, None, None));
    let second = model_in(&result.periods[1].models, ModelId::Linear);
    assert_row_spend(second, "email", "spring", (None, None, None));
    assert_row_spend(second, "email", "summer", (Some(20.0), Some(60.0), Some(100.0 / 3.0 / 20.0)));
    assert_row_spend(second, "search", "(none)", (Some(10.0), Some(20.0), Some(2.5)));
    // Per channel, the period rows' cost adds up to the period's channel cost.
    for period in &result.periods {
        let m = model_in(&period.models, ModelId::Linear);
        for channel in &m.channels {
            let rows: f64 = m
                .breakdown
                .iter()
                .flatten()
                .filter(|r| r.channel == channel.channel)
                .filter_map(|r| r.cost.flatten())
                .sum();
            let winter = if channel.channel == "email" && period.period == "2023-11-14" { 5.0 } else { 0.0 };
            assert_close(rows + winter, channel.cost.flatten().unwrap_or(0.0), 1e-12);
        }
    }
    let csv = Table::PeriodBreakdown.csv(&result);
    assert!(csv.starts_with("period,model,channel,campaign,conversions,value,cost,cpa,roas\n"), "{csv}");
    assert!(csv.contains("2023-11-13,linear,email,spring,0,0,50,,0\n"), "{csv}");
}

fn model_in(models: &[ModelResult], id: ModelId) -> &ModelResult {
    models.iter().find(|m| m.model == id).unwrap()
}
