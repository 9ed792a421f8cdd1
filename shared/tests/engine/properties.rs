//! Property tests over random inputs: every model but `participation` conserves the
//! attributed conversions and value (in every period too), periods add up to the whole, and
//! partials merge to the single-chunk answer in any grouping and order, whatever the
//! chunks' channel numbering, periods, lookback windows (each window compared in one pass
//! equals a run with that window alone, at the Markov order `auto` chose for the first) and
//! breakdowns included, with a cost table's cost, CPA and ROAS; a breakdown's rows add up to
//! their channels' figures, under every model (`shao_li` and `markov` split per channel);
//! segments add up to the whole, merge like it, and each equals a run over its own users.

use std::collections::BTreeMap;

use mta_core::chunk::NO_SEGMENT;
use mta_core::chunk::{partition_of, touch_key, touch_key_channel, user_key};
use mta_core::intervals::IntervalsSpec;
use mta_core::paths::{join_channels, split_path, split_touch};
use mta_core::period::Period;
use mta_core::result::{PeriodResult, SegmentResult, WindowResult};
use mta_core::{AttributionResult, ChannelDict, LookbackDays, MarkovOrder, ModelId, Options, OptionsSpec, Partial};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::helpers::*;

const CHANNELS: [&str; 6] = ["search", "Direct", "email", "social", "display", "affiliate"];

/// A cost table over the rows' 60 days (from T0, 2023-11-14), an instant among the days,
/// and `tv`, which no row mentions; campaigns of [`with_campaigns`] and others.
const COSTS: &str = "date,channel,campaign,cost
2023-11-14,search,a,10
2023-11-20,email,,7.5
2023-12-01,display,,3
2024-01-10,search,b,4
2023-11-16T23:30:00Z,social,,2
2023-11-15,tv,,100
2023-11-17,Direct,,0
2023-11-25,email,spring,6
2023-12-10,search,summer,2.5
2023-12-11,search,,1
";

fn costs() -> mta_core::spend::CostTable {
    mta_core::spend::CostTable::read_csv(COSTS.as_bytes(), &Default::default(), None).expect("the cost table reads")
}

/// [`COSTS`] with a `country` column: the segments of [`segment_of`], a row without one,
/// and `ES`, which no segment has.
fn costs_by_country() -> mta_core::spend::CostTable {
    let countries = ["DE", "FR", "", "IT", "ES", "DE", "FR", "IT", "DE", "ES"];
    let mut lines = COSTS.lines();
    let mut csv = format!("{},country\n", lines.next().unwrap());
    for (line, country) in lines.zip(countries.iter().cycle()) {
        csv.push_str(&format!("{line},{country}\n"));
    }
    let table = mta_core::spend::CostTable::read_csv(csv.as_bytes(), &Default::default(), Some("country"));
    table.expect("the cost table reads")
}

/// (f): with cost per segment, each channel's cost in the segments (joined to a segment's
/// channel, or in its own unmatched cost) and in the segment values no segment has adds up
/// to the whole's.
fn check_segment_cost_adds_up(result: &AttributionResult) -> Result<(), TestCaseError> {
    let spend = result.spend.as_ref().expect("a cost table");
    prop_assert_eq!(spend.segment_column.as_deref(), Some("country"));
    for m in &result.models {
        for c in &m.channels {
            let mut sum: f64 = spend
                .unmatched_cost
                .iter()
                .filter(|u| u.segment.is_some() && u.channel == c.channel)
                .map(|u| u.cost)
                .sum();
            for segment in &result.segments {
                let own = segment.spend.as_ref().expect("each segment has its spend");
                let joined = segment.models.iter().find(|sm| sm.model == m.model).and_then(|sm| sm.channel(&c.channel));
                sum += joined.and_then(|j| j.cost.flatten()).unwrap_or(0.0);
                // A campaign's unmatched cost is in its channel's cost already.
                let unmatched = own.unmatched_cost.iter().filter(|u| u.channel == c.channel && u.campaign.is_none());
                sum += unmatched.map(|u| u.cost).sum::<f64>();
            }
            check_close(
                &format!("{} {}: cost over segments", m.model, c.channel),
                sum,
                c.cost.flatten().unwrap_or(0.0),
            )?;
        }
    }
    Ok(())
}

/// Random event rows: up to 8 users, 1..6 channels, times on a 6-hour grid over 60 days
/// (so ties happen), about a third of the rows conversions (some carrying a channel).
fn event_rows() -> impl Strategy<Value = Vec<Row>> {
    (1usize..=6)
        .prop_flat_map(|channels| {
            prop::collection::vec(
                (0u8..8, 0i64..240, 0..channels, prop::bool::weighted(0.3), 0.0f64..500.0, prop::bool::weighted(0.25)),
                1..40,
            )
        })
        .prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (user, slot, channel, conversion, value, channel_on_conversion))| Row {
                    user: format!("user-{user}"),
                    time: T0 + slot * 6 * HOUR,
                    channel: (!conversion || channel_on_conversion).then(|| CHANNELS[channel].to_owned()),
                    conversion,
                    value: if conversion { value } else { 0.0 },
                    row_number: i as u64 + 1,
                })
                .collect()
        })
}

/// The rows with a campaign in each channel's touch key (ingest's form with a one-level
/// breakdown): one of three campaigns or none, varying with the row.
fn with_campaigns(rows: &[Row]) -> Vec<Row> {
    const CAMPAIGNS: [Option<&str>; 3] = [Some("spring"), Some("summer"), None];
    rows.iter()
        .enumerate()
        .map(|(i, row)| Row {
            channel: row.channel.as_ref().map(|c| touch_key(c, &[CAMPAIGNS[(i * 7 + c.len()) % 3]])),
            ..row.clone()
        })
        .collect()
}

/// Random journey options around the defaults: one lookback window, or several compared
/// (without a period, which they do not combine with).
fn event_specs() -> impl Strategy<Value = OptionsSpec> {
    (
        prop::sample::select(vec![
            LookbackDays::One(0.0),
            LookbackDays::One(7.0),
            LookbackDays::One(30.0),
            LookbackDays::Many(vec![7.0, 0.0, 30.0]),
            LookbackDays::Many(vec![30.0, 1.5, 7.0, 60.0]),
        ]),
        prop::sample::select(vec![1.0, 7.0]),
        any::<bool>(),
        prop::sample::select(vec![2u32, 10_000]),
        markov_orders(),
        prop::sample::select(vec![None, Some(Period::Day), Some(Period::Week), Some(Period::Month)]),
        prop::sample::select(vec![None, Some("Europe/Berlin"), Some("America/New_York")]),
        any::<bool>(),
        intervals(),
    )
        .prop_map(
            |(lookback, half_life, conversion_row_is_touch, max_touches, order, period, zone, pairs, intervals)| {
                let period = if matches!(lookback, LookbackDays::Many(_)) { None } else { period };
                OptionsSpec {
                    lookback_days: Some(lookback),
                    half_life_days: Some(half_life),
                    conversion_row_is_touch: Some(conversion_row_is_touch),
                    max_journey_touches: Some(max_touches),
                    markov_order: Some(order),
                    markov_pair_effects: Some(pairs),
                    period,
                    timezone: period.and(zone).map(|z| z.parse().unwrap()),
                    intervals,
                    ..Default::default()
                }
            },
        )
}

/// No intervals, or a few replicates at a random level and seed.
fn intervals() -> impl Strategy<Value = Option<IntervalsSpec>> {
    prop::option::of(
        (10u32..14, prop::sample::select(vec![0.5, 0.8, 0.9]), any::<u64>())
            .prop_map(|(replicates, level, seed)| IntervalsSpec { replicates, level: Some(level), seed: Some(seed) }),
    )
}

/// A fixed Markov order, 1 to 4, or `auto`.
fn markov_orders() -> impl Strategy<Value = MarkovOrder> {
    prop_oneof![(1u8..=4).prop_map(MarkovOrder::Fixed), Just(MarkovOrder::Auto)]
}

/// Random path rows: paths of 0..6 touches, fractional conversions and nulls.
fn path_rows() -> impl Strategy<Value = Vec<PathRow>> {
    let number = || prop_oneof![Just(0.0), Just(0.5), Just(1.25), (1u32..4).prop_map(f64::from), 0.0f64..3.0];
    (1usize..=6).prop_flat_map(move |channels| {
        prop::collection::vec((prop::collection::vec(0..channels, 0..6), number(), number(), 0.0f64..1000.0), 1..25)
            .prop_map(|raw| {
                raw.into_iter()
                    .map(|(path, conversions, nulls, value)| PathRow {
                        path: path.into_iter().map(|c| CHANNELS[c].to_owned()).collect(),
                        conversions,
                        // Value only with conversions: see models::value_on_a_path_row_without_conversions_does_not_break_conservation.
                        value: if conversions > 0.0 { value } else { 0.0 },
                        nulls,
                    })
                    .collect()
            })
    })
}

#[track_caller]
fn check_close(what: &str, got: f64, want: f64) -> Result<(), TestCaseError> {
    prop_assert!(close(got, want, 1e-9), "{}: got {}, want {}", what, got, want);
    Ok(())
}

/// Bootstrap intervals are the same to the last bit in every grouping of chunks (exact sums).
#[track_caller]
fn check_identical(what: &str, got: f64, want: f64) -> Result<(), TestCaseError> {
    prop_assert!(got.to_bits() == want.to_bits(), "{}: got {:?}, want {:?}", what, got, want);
    Ok(())
}

/// (a): every model but participation sums to the attributed conversions and value.
fn check_conservation(result: &AttributionResult) -> Result<(), TestCaseError> {
    let s = &result.summary;
    let conversions = s.conversions - s.unattributed_conversions;
    let value = s.conversion_value - s.unattributed_value;
    for m in &result.models {
        let sum_conversions: f64 = m.channels.iter().map(|c| c.conversions).sum();
        let sum_value: f64 = m.channels.iter().map(|c| c.value).sum();
        if m.model == ModelId::Participation {
            prop_assert!(sum_conversions >= conversions * (1.0 - 1e-9) - 1e-9);
            prop_assert!(m.note.is_some());
            continue;
        }
        prop_assert!(m.conserves_totals, "{} does not conserve totals", m.model);
        check_close(&format!("{} conversions", m.model), sum_conversions, conversions)?;
        check_close(&format!("{} value", m.model), sum_value, value)?;
        check_close(&format!("{} total_conversions", m.model), m.total_conversions, conversions)?;
        prop_assert!(m.channels.iter().all(|c| c.conversions >= -1e-12 && c.value >= -1e-12), "{}", m.model);
    }
    Ok(())
}

/// The rows of each of `n` partitions, by user hash, in file order.
fn partition(rows: &[Row], n: u32) -> Vec<Vec<Row>> {
    let mut parts = vec![Vec::new(); n as usize];
    for row in rows {
        parts[partition_of(user_key(row.user.as_bytes()), n) as usize].push(row.clone());
    }
    parts
}

/// A chunk whose channel ids are numbered its own way: the channels it holds, sorted,
/// rotated by `index` and reversed for odd indices.
fn own_numbering(rows: &[Row], index: usize) -> mta_core::EventChunk {
    let mut names: Vec<&str> = rows.iter().filter_map(|r| r.channel.as_deref()).collect();
    names.sort_unstable();
    names.dedup();
    if !names.is_empty() {
        let len = names.len();
        names.rotate_left(index % len);
    }
    if index % 2 == 1 {
        names.reverse();
    }
    let mut dict = ChannelDict::default();
    for name in names {
        dict.id(name);
    }
    event_chunk_with_dict(rows, dict)
}

/// Merges partials in several groupings and orders.
fn groupings(parts: &[Partial], options: &Options) -> Vec<(&'static str, Partial)> {
    let mut out = Vec::new();
    let mut left = parts[0].clone();
    for p in &parts[1..] {
        left.merge(p);
    }
    out.push(("left fold", left));
    let mut from_empty = Partial::new(options, &[]);
    for p in parts.iter().rev() {
        from_empty.merge(p);
    }
    out.push(("reverse into empty", from_empty));
    out.push(("balanced tree", tree(parts)));
    let (mut evens, mut odds) = (Partial::new(options, &[]), Partial::new(options, &[]));
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 0 { evens.merge(p) } else { odds.merge(p) }
    }
    odds.merge(&evens);
    out.push(("odds then evens", odds));
    out
}

fn tree(parts: &[Partial]) -> Partial {
    if parts.len() == 1 {
        return parts[0].clone();
    }
    let (a, b) = parts.split_at(parts.len() / 2);
    let mut merged = tree(a);
    merged.merge(&tree(b));
    merged
}

/// (b) for the rows cut into 1, 2 and 7 chunks by user, each numbering its channels its own
/// way, merged in every grouping after a trip through JSON (as partials travel between the
/// stages), then joined to `costs`.
fn check_chunked(
    what: &str,
    rows: &[Row],
    options: &Options,
    costs: &mta_core::spend::CostTable,
    want: &AttributionResult,
) -> Result<(), TestCaseError> {
    for n in [1u32, 2, 7] {
        let parts: Vec<Partial> = partition(rows, n)
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let mut chunk = own_numbering(part, i);
                if options.segment_by.is_some() {
                    add_segments(&mut chunk, part, i);
                }
                if !options.conversion_types.is_empty() {
                    add_conversion_types(&mut chunk, part, i);
                }
                Partial::from_events(&chunk, options).unwrap()
            })
            .collect();
        for (grouping, merged) in groupings(&parts, options) {
            let merged: Partial = serde_json::from_str(&serde_json::to_string(&merged).unwrap()).unwrap();
            let mut got = merged.finish(options).expect("attribution succeeds");
            got.add_spend(costs);
            check_same(&format!("{n} chunks{what}, {grouping}"), &got, want)?;
        }
        if Partial::adds_events(options) {
            // As the local command does: every chunk numbered alike, added into one partial.
            let mut names: Vec<&str> = rows.iter().filter_map(|r| r.channel.as_deref()).collect();
            names.sort_unstable();
            names.dedup();
            let mut dict = ChannelDict::default();
            for name in names {
                dict.id(name);
            }
            let mut added = Partial::new(options, dict.names());
            for part in partition(rows, n) {
                added.add_events(&event_chunk_with_dict(&part, dict.clone()), options).unwrap();
            }
            let mut got = added.finish(options).expect("attribution succeeds");
            got.add_spend(costs);
            check_same(&format!("{n} chunks{what}, added into one partial"), &got, want)?;
        }
    }
    Ok(())
}

/// A model's breakdown rows: (channel, values) → (conversions, value, [cost, cpa, roas], interval).
type BreakdownNumbers =
    BTreeMap<(String, Vec<(String, String)>), (f64, f64, [Option<Option<f64>>; 3], Option<[f64; 4]>)>;

type ChannelNumbers = BTreeMap<String, (f64, f64, Option<f64>, Option<f64>)>;

fn channel_numbers(result: &AttributionResult, model: ModelId) -> ChannelNumbers {
    result
        .model(model)
        .expect("model present")
        .channels
        .iter()
        .map(|c| (c.channel.clone(), (c.conversions, c.value, c.removal_effect, c.removal_effect_value)))
        .collect()
}

/// (b): a merged result equals the single-chunk result.
fn check_same(what: &str, got: &AttributionResult, want: &AttributionResult) -> Result<(), TestCaseError> {
    let (g, w) = (&got.summary, &want.summary);
    prop_assert_eq!(g.rows, w.rows, "{}", what);
    prop_assert_eq!(g.channels, w.channels, "{}", what);
    prop_assert_eq!(g.truncated_journeys, w.truncated_journeys, "{}", what);
    for (name, a, b) in [
        ("conversions", g.conversions, w.conversions),
        ("conversion_value", g.conversion_value, w.conversion_value),
        ("unattributed_conversions", g.unattributed_conversions, w.unattributed_conversions),
        ("unattributed_value", g.unattributed_value, w.unattributed_value),
        ("null_journeys", g.null_journeys, w.null_journeys),
        ("converting_journeys", g.converting_journeys, w.converting_journeys),
    ] {
        check_close(&format!("{what}: summary.{name}"), a, b)?;
    }
    for m in &want.models {
        let (gc, wc) = (channel_numbers(got, m.model), channel_numbers(want, m.model));
        prop_assert_eq!(gc.keys().collect::<Vec<_>>(), wc.keys().collect::<Vec<_>>(), "{}: {}", what, m.model);
        for (channel, &(conversions, value, re, re_value)) in &wc {
            let (c, v, r, rv) = gc[channel];
            check_close(&format!("{what}: {} {channel} conversions", m.model), c, conversions)?;
            check_close(&format!("{what}: {} {channel} value", m.model), v, value)?;
            prop_assert_eq!(r.is_some(), re.is_some());
            check_close(&format!("{what}: {} {channel} removal effect", m.model), r.unwrap_or(0.0), re.unwrap_or(0.0))?;
            check_close(
                &format!("{what}: {} {channel} value removal effect", m.model),
                rv.unwrap_or(0.0),
                re_value.unwrap_or(0.0),
            )?;
        }
        let got_model = got.model(m.model).expect("model present");
        check_close(
            &format!("{what}: {} conversion probability", m.model),
            got_model.conversion_probability.unwrap_or(0.0),
            m.conversion_probability.unwrap_or(0.0),
        )?;
        prop_assert_eq!(got_model.conserves_totals, m.conserves_totals, "{}: {}", what, m.model);
        // `markov_order: auto` chooses the same order from merged counts, with the same scores.
        prop_assert_eq!(got_model.order, m.order, "{}: {} order", what, m.model);
        prop_assert_eq!(got_model.order_selection.is_some(), m.order_selection.is_some(), "{}", what);
        if let (Some(g), Some(w)) = (&got_model.order_selection, &m.order_selection) {
            prop_assert_eq!(g.chosen, w.chosen, "{}: chosen order", what);
            check_close(&format!("{what}: held-out journeys"), g.held_out_journeys, w.held_out_journeys)?;
            check_close(&format!("{what}: training journeys"), g.training_journeys, w.training_journeys)?;
            for (gs, ws) in g.scores.iter().zip(&w.scores) {
                prop_assert_eq!((gs.order, gs.states), (ws.order, ws.states), "{}", what);
                prop_assert_eq!(gs.log_likelihood.is_some(), ws.log_likelihood.is_some(), "{}", what);
                let (a, b) = (gs.log_likelihood.unwrap_or(0.0), ws.log_likelihood.unwrap_or(0.0));
                check_close(&format!("{what}: order {} score", ws.order), a, b)?;
            }
        }
        // Pair removal effects: the same pairs, the same figures.
        prop_assert_eq!(got_model.pairs.is_some(), m.pairs.is_some(), "{}", what);
        let pairs = |model: &mta_core::result::ModelResult| -> BTreeMap<(String, String), (f64, f64, f64)> {
            model
                .pairs
                .iter()
                .flatten()
                .map(|p| {
                    ((p.channel_a.clone(), p.channel_b.clone()), (p.removal_effect, p.removal_effect_value, p.overlap))
                })
                .collect()
        };
        let (gp, wp) = (pairs(got_model), pairs(m));
        prop_assert_eq!(gp.keys().collect::<Vec<_>>(), wp.keys().collect::<Vec<_>>(), "{}: pairs", what);
        for (key, want) in &wp {
            let got = gp[key];
            check_close(&format!("{what}: pair {key:?} removal effect"), got.0, want.0)?;
            check_close(&format!("{what}: pair {key:?} value removal effect"), got.1, want.1)?;
            check_close(&format!("{what}: pair {key:?} overlap"), got.2, want.2)?;
        }
        // Intervals: in the same places, with the same figures to the last bit (exact sums).
        for w in &m.channels {
            let g = got_model.channel(&w.channel).expect("the same channels");
            prop_assert_eq!(g.interval.is_some(), w.interval.is_some(), "{}: {} {} interval", what, m.model, w.channel);
            let (Some(gi), Some(wi)) = (&g.interval, &w.interval) else { continue };
            for (field, a, b) in [
                ("conversions_low", gi.conversions_low, wi.conversions_low),
                ("conversions_high", gi.conversions_high, wi.conversions_high),
                ("value_low", gi.value_low, wi.value_low),
                ("value_high", gi.value_high, wi.value_high),
                ("share_low", gi.share_low, wi.share_low),
                ("share_high", gi.share_high, wi.share_high),
                ("removal_effect_low", gi.removal_effect_low.unwrap_or(-1.0), wi.removal_effect_low.unwrap_or(-1.0)),
                ("removal_effect_high", gi.removal_effect_high.unwrap_or(-1.0), wi.removal_effect_high.unwrap_or(-1.0)),
                ("rank_1_probability", gi.rank_1_probability, wi.rank_1_probability),
                ("top_3_probability", gi.top_3_probability, wi.top_3_probability),
                ("median_rank", gi.median_rank, wi.median_rank),
            ] {
                check_identical(&format!("{what}: {} {} interval {field}", m.model, w.channel), a, b)?;
            }
        }
        // Cost, CPA and ROAS (with a cost table): `null` in the same places, else the same numbers.
        for w in &m.channels {
            let g = got_model.channel(&w.channel).expect("the same channels");
            for (field, a, b) in [("cost", g.cost, w.cost), ("cpa", g.cpa, w.cpa), ("roas", g.roas, w.roas)] {
                prop_assert_eq!(
                    a.map(|x| x.is_some()),
                    b.map(|x| x.is_some()),
                    "{}: {} {} {}",
                    what,
                    m.model,
                    w.channel,
                    field
                );
                let label = format!("{what}: {} {} {field}", m.model, w.channel);
                check_close(&label, a.flatten().unwrap_or(0.0), b.flatten().unwrap_or(0.0))?;
            }
        }
    }
    if let (Some(g), Some(w)) = (&got.spend, &want.spend) {
        let unmatched = |s: &mta_core::spend::SpendSummary| {
            let unmatched = s.unmatched_cost.iter();
            unmatched.map(|u| (u.channel.clone(), u.campaign.clone(), u.segment.clone(), u.rows)).collect::<Vec<_>>()
        };
        prop_assert_eq!(unmatched(g), unmatched(w), "{}: unmatched cost", what);
        let outside = |s: &mta_core::spend::SpendSummary| {
            s.cost_outside_periods.iter().map(|p| p.period.clone()).collect::<Vec<_>>()
        };
        prop_assert_eq!(outside(g), outside(w), "{}: cost outside periods", what);
        check_close(&format!("{what}: matched cost"), g.matched_cost, w.matched_cost)?;
        prop_assert_eq!(&g.segment_column, &w.segment_column, "{}: segment column", what);
    }
    prop_assert_eq!(got.spend.is_some(), want.spend.is_some(), "{}: spend", what);
    // The journey reports merge like every other sum (a period's, segment's and window's too).
    prop_assert_eq!(got.reports.is_some(), want.reports.is_some(), "{}: reports", what);
    if let (Some(g), Some(w)) = (&got.reports, &want.reports) {
        for (gb, wb) in g.path_length.iter().chain(&g.time_lag).zip(w.path_length.iter().chain(&w.time_lag)) {
            prop_assert_eq!(&gb.bucket, &wb.bucket);
            check_close(&format!("{what}: report bucket {}", wb.bucket), gb.conversions, wb.conversions)?;
            check_close(&format!("{what}: report bucket {} value", wb.bucket), gb.value, wb.value)?;
        }
        check_paths_and_transitions(what, g, w)?;
        check_breakdown_positions(what, g, w)?;
        prop_assert_eq!(g.positions.len(), w.positions.len(), "{}: positions", what);
        for (gp, wp) in g.positions.iter().zip(&w.positions) {
            prop_assert_eq!(&gp.channel, &wp.channel);
            let (a, b) = (&gp.positions, &wp.positions);
            for (x, y) in [(a.only, b.only), (a.first, b.first), (a.middle, b.middle), (a.last, b.last)] {
                check_close(&format!("{what}: positions of {}", wp.channel), x, y)?;
            }
        }
    }
    let names = |r: &AttributionResult| r.periods.iter().map(|p| p.period.clone()).collect::<Vec<_>>();
    for m in &want.models {
        let rows = |r: &AttributionResult| -> BreakdownNumbers {
            r.model(m.model)
                .and_then(|m| m.breakdown.as_ref())
                .into_iter()
                .flatten()
                .map(|row| {
                    let spend = [row.cost, row.cpa, row.roas];
                    let interval = row
                        .interval
                        .as_ref()
                        .map(|i| [i.conversions_low, i.conversions_high, i.value_low, i.value_high]);
                    ((row.channel.clone(), row.values.clone()), (row.conversions, row.value, spend, interval))
                })
                .collect()
        };
        let (g, w) = (rows(got), rows(want));
        prop_assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{}: {} breakdown", what, m.model);
        for (key, &(conversions, value, spend, interval)) in &w {
            check_close(&format!("{what}: {} breakdown {key:?}", m.model), g[key].0, conversions)?;
            check_close(&format!("{what}: {} breakdown {key:?} value", m.model), g[key].1, value)?;
            // Cost per campaign: `null` in the same places, else the same numbers.
            for (field, (a, b)) in ["cost", "cpa", "roas"].iter().zip(g[key].2.iter().zip(spend)) {
                let present = |x: &Option<Option<f64>>| x.map(|x| x.is_some());
                prop_assert_eq!(present(a), present(&b), "{}: {} breakdown {:?} {}", what, m.model, key, field);
                let label = format!("{what}: {} breakdown {key:?} {field}", m.model);
                check_close(&label, a.flatten().unwrap_or(0.0), b.flatten().unwrap_or(0.0))?;
            }
            // Intervals (every row's with `intervals`): in the same places, the same figures to
            // the last bit.
            prop_assert_eq!(
                g[key].3.is_some(),
                interval.is_some(),
                "{}: {} breakdown {:?} interval",
                what,
                m.model,
                key
            );
            for (a, b) in g[key].3.unwrap_or_default().into_iter().zip(interval.unwrap_or_default()) {
                check_identical(&format!("{what}: {} breakdown {key:?} interval", m.model), a, b)?;
            }
        }
    }
    prop_assert_eq!(names(got), names(want), "{}: periods", what);
    for (g, w) in got.periods.iter().zip(&want.periods) {
        check_same(&format!("{what}, period {}", w.period), &as_result(got, g), &as_result(want, w))?;
    }
    let segments = |r: &AttributionResult| r.segments.iter().map(|s| s.segment.clone()).collect::<Vec<_>>();
    prop_assert_eq!(segments(got), segments(want), "{}: segments", what);
    for (g, w) in got.segments.iter().zip(&want.segments) {
        let label = format!("{what}, segment {:?}", w.value());
        check_same(&label, &segment_as_result(got, g), &segment_as_result(want, w))?;
    }
    let windows = |r: &AttributionResult| r.windows.iter().map(|w| w.lookback_days).collect::<Vec<_>>();
    prop_assert_eq!(windows(got), windows(want), "{}: windows", what);
    for (g, w) in got.windows.iter().zip(&want.windows) {
        let (g, w) = (window_as_result(got, g), window_as_result(want, w));
        check_same(&format!("{what}, window of {} days", w.options.lookback_days), &g, &w)?;
    }
    prop_assert_eq!(got.window_ranks.len(), want.window_ranks.len(), "{}: window ranks", what);
    for (g, w) in got.window_ranks.iter().zip(&want.window_ranks) {
        prop_assert_eq!(g.model, w.model);
        let by_name = |r: &mta_core::result::WindowRanks| {
            r.channels.iter().map(|c| (c.channel.clone(), c.clone())).collect::<BTreeMap<_, _>>()
        };
        let (g, w) = (by_name(g), by_name(w));
        prop_assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>(), "{}: ranked channels", what);
        for (name, wc) in &w {
            let gc = &g[name];
            for (gs, ws) in gc.share.iter().zip(&wc.share) {
                check_close(&format!("{what}: {name}'s share under a window"), *gs, *ws)?;
            }
            // Ranks may differ only where rounding reorders channels of equal credit.
            let ranked =
                |c: &mta_core::result::ChannelWindowRanks| c.rank.iter().map(Option::is_some).collect::<Vec<_>>();
            prop_assert_eq!(ranked(gc), ranked(wc), "{}: {} ranked under the same windows", what, name);
        }
    }
    Ok(())
}

/// One window of `result` as a result of its own, with that window's lookback.
fn window_as_result(result: &AttributionResult, window: &WindowResult) -> AttributionResult {
    let options =
        Options { lookback_days: window.lookback_days, lookback_windows: Vec::new(), ..result.options.clone() };
    AttributionResult {
        summary: window.summary.clone(),
        options,
        models: window.models.clone(),
        periods: Vec::new(),
        reports: window.reports.clone(),
        windows: Vec::new(),
        window_ranks: Vec::new(),
        spend: None,
        segments: Vec::new(),
    }
}

/// The top paths (exact: the inputs have fewer paths than the limit and the lists hold them
/// all) and the transition table are the same, matched by path and by step.
/// The `breakdown_positions` reports: in the same places, the same touch keys, the same figures.
fn check_breakdown_positions(
    what: &str,
    got: &mta_core::reports::Reports,
    want: &mta_core::reports::Reports,
) -> Result<(), TestCaseError> {
    let (g, w) = (&got.breakdown_positions, &want.breakdown_positions);
    prop_assert_eq!(g.is_some(), w.is_some(), "{}: breakdown positions", what);
    let (g, w) = (g.as_deref().unwrap_or_default(), w.as_deref().unwrap_or_default());
    prop_assert_eq!(g.len(), w.len(), "{}: breakdown positions", what);
    for (gp, wp) in g.iter().zip(w) {
        prop_assert_eq!((&gp.channel, &gp.values), (&wp.channel, &wp.values), "{}: breakdown positions", what);
        let (a, b) = (&gp.positions, &wp.positions);
        for (x, y) in [(a.only, b.only), (a.first, b.first), (a.middle, b.middle), (a.last, b.last)] {
            check_close(&format!("{what}: positions of {} {:?}", wp.channel, wp.values), x, y)?;
        }
    }
    Ok(())
}

fn check_paths_and_transitions(
    what: &str,
    got: &mta_core::reports::Reports,
    want: &mta_core::reports::Reports,
) -> Result<(), TestCaseError> {
    check_top_paths(what, got.paths.as_ref().expect("paths"), want.paths.as_ref().expect("paths"))?;
    prop_assert_eq!(got.breakdown_paths.is_some(), want.breakdown_paths.is_some(), "{}: breakdown paths", what);
    if let (Some(g), Some(w)) = (&got.breakdown_paths, &want.breakdown_paths) {
        check_top_paths(&format!("{what} (touch keys)"), g, w)?;
    }
    prop_assert_eq!(got.transitions.is_some(), want.transitions.is_some(), "{}: transitions", what);
    if let (Some(g), Some(w)) = (&got.transitions, &want.transitions) {
        prop_assert_eq!((g.order, g.total, g.truncated), (w.order, w.total, w.truncated), "{}", what);
        let steps = |t: &mta_core::reports::Transitions| -> BTreeMap<(String, String), (f64, f64)> {
            t.rows.iter().map(|r| ((r.from.clone(), r.to.clone()), (r.count, r.probability))).collect()
        };
        let (gs, ws) = (steps(g), steps(w));
        prop_assert_eq!(gs.keys().collect::<Vec<_>>(), ws.keys().collect::<Vec<_>>(), "{}: transitions", what);
        for (step, (count, probability)) in &ws {
            check_close(&format!("{what}: count of {step:?}"), gs[step].0, *count)?;
            check_close(&format!("{what}: probability of {step:?}"), gs[step].1, *probability)?;
        }
    }
    Ok(())
}

/// Exact top paths: the same paths with the same figures.
fn check_top_paths(
    what: &str,
    g: &mta_core::paths::TopPaths,
    w: &mta_core::paths::TopPaths,
) -> Result<(), TestCaseError> {
    prop_assert!(g.exact && w.exact, "{}: paths are exact", what);
    prop_assert_eq!(g.distinct_paths, w.distinct_paths, "{}: distinct paths", what);
    type Rows = BTreeMap<String, (u32, f64, f64, f64, f64)>;
    let rows = |list: &[mta_core::paths::PathRow]| -> Rows {
        list.iter()
            .map(|r| (r.path.clone(), (r.touches, r.journeys, r.conversions, r.value, r.null_journeys)))
            .collect()
    };
    for (name, gl, wl) in
        [("converting", &g.converting, &w.converting), ("non_converting", &g.non_converting, &w.non_converting)]
    {
        let (gr, wr) = (rows(gl), rows(wl));
        prop_assert_eq!(gr.keys().collect::<Vec<_>>(), wr.keys().collect::<Vec<_>>(), "{}: {} paths", what, name);
        for (path, want) in &wr {
            let got = gr[path];
            prop_assert_eq!(got.0, want.0);
            for (a, b) in [(got.1, want.1), (got.2, want.2), (got.3, want.3), (got.4, want.4)] {
                check_close(&format!("{what}: {name} path {path}"), a, b)?;
            }
        }
    }
    Ok(())
}

/// The segment of a row in the segment tests: its user's (`user-7` has none), so that each
/// segment holds whole users and can be compared with a run over those users alone.
fn segment_of(row: &Row) -> Option<&'static str> {
    match row.user.as_str() {
        "user-0" | "user-3" | "user-6" => Some("DE"),
        "user-1" | "user-4" => Some("FR"),
        "user-7" => None,
        _ => Some("IT"),
    }
}

/// Gives a chunk of `rows` their segment ids ([`segment_of`]), numbered its own way: the
/// values in an order that depends on `index`.
fn add_segments(chunk: &mut mta_core::EventChunk, rows: &[Row], index: usize) {
    let mut values = ["DE", "FR", "IT"];
    values.rotate_left(index % 3);
    for value in values {
        chunk.segments.id(value);
    }
    chunk.segment_ids = rows.iter().map(|r| segment_of(r).map_or(NO_SEGMENT, |v| chunk.segments.id(v))).collect();
}

/// The conversion type of a row in the conversion type tests: by its row number.
fn conversion_type_of(row: &Row) -> Option<&'static str> {
    row.conversion.then_some(if row.row_number.is_multiple_of(3) { "sign_up" } else { "purchase" })
}

/// Gives a chunk of `rows` the segment ids ingest gives conversion rows of a type
/// ([`conversion_type_of`]), numbered its own way.
fn add_conversion_types(chunk: &mut mta_core::EventChunk, rows: &[Row], index: usize) {
    if index % 2 == 1 {
        chunk.segments.id("sign_up");
    }
    chunk.segment_ids =
        rows.iter().map(|r| conversion_type_of(r).map_or(NO_SEGMENT, |t| chunk.segments.id(t))).collect();
}

/// One segment of `result` as a result of its own.
fn segment_as_result(result: &AttributionResult, segment: &SegmentResult) -> AttributionResult {
    AttributionResult {
        summary: segment.summary.clone(),
        options: result.options.clone(),
        models: segment.models.clone(),
        periods: segment.periods.clone(),
        reports: segment.reports.clone(),
        spend: segment.spend.clone(),
        windows: Vec::new(),
        window_ranks: Vec::new(),
        segments: Vec::new(),
    }
}

/// One period of `result` as a result of its own.
fn as_result(result: &AttributionResult, period: &PeriodResult) -> AttributionResult {
    AttributionResult {
        summary: period.summary.clone(),
        options: result.options.clone(),
        models: period.models.clone(),
        periods: Vec::new(),
        reports: period.reports.clone(),
        spend: None,
        windows: Vec::new(),
        window_ranks: Vec::new(),
        segments: Vec::new(),
    }
}

/// (c): the periods add up to the whole: the summary's counts, and every rule model's
/// credit per channel (Markov solves a chain per period and Shao & Li fits rates per period,
/// which do not add up).
fn check_periods_add_up(result: &AttributionResult) -> Result<(), TestCaseError> {
    if result.options.period.is_none() {
        return Ok(());
    }
    let s = &result.summary;
    let sum = |f: fn(&mta_core::result::Summary) -> f64| result.periods.iter().map(|p| f(&p.summary)).sum::<f64>();
    check_close("periods' conversions", sum(|p| p.conversions), s.conversions)?;
    check_close("periods' value", sum(|p| p.conversion_value), s.conversion_value)?;
    check_close("periods' null journeys", sum(|p| p.null_journeys), s.null_journeys)?;
    check_close("periods' unattributed", sum(|p| p.unattributed_conversions), s.unattributed_conversions)?;
    for m in result.models.iter().filter(|m| m.model.is_rule_based()) {
        for c in &m.channels {
            let (conversions, value) = result
                .periods
                .iter()
                .filter_map(|p| p.models.iter().find(|pm| pm.model == m.model)?.channel(&c.channel))
                .fold((0.0, 0.0), |(a, b), pc| (a + pc.conversions, b + pc.value));
            check_close(&format!("{} {} over periods", m.model, c.channel), conversions, c.conversions)?;
            check_close(&format!("{} {} value over periods", m.model, c.channel), value, c.value)?;
        }
    }
    check_period_reports_add_up(result)
}

/// Each period has its own journey reports, and they add up to the whole's: the buckets, the
/// positions, every path's figures and every transition's count (the inputs are small enough
/// for every list to hold all its paths and steps).
fn check_period_reports_add_up(result: &AttributionResult) -> Result<(), TestCaseError> {
    let Some(whole) = &result.reports else { return Ok(()) };
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut add = |key: String, x: f64| *sums.entry(key).or_default() += x;
    let mut figures = |reports: &mta_core::reports::Reports, sign: f64| {
        for (kind, buckets) in [("length", &reports.path_length), ("lag", &reports.time_lag)] {
            for b in buckets {
                add(format!("{kind} {} conversions", b.bucket), sign * b.conversions);
                add(format!("{kind} {} value", b.bucket), sign * b.value);
            }
        }
        for c in &reports.positions {
            let p = &c.positions;
            for (at, x) in [("only", p.only), ("first", p.first), ("middle", p.middle), ("last", p.last)] {
                add(format!("{} {at}", c.channel), sign * x);
            }
        }
        let paths = reports.paths.as_ref().expect("paths");
        for p in &paths.converting {
            add(format!("path {} conversions", p.path), sign * p.conversions);
            add(format!("path {} value", p.path), sign * p.value);
        }
        for p in &paths.non_converting {
            add(format!("path {} nulls", p.path), sign * p.null_journeys);
        }
        for t in reports.transitions.iter().flat_map(|t| &t.rows) {
            add(format!("step {} -> {}", t.from, t.to), sign * t.count);
        }
    };
    let top = result.options.top_paths as usize;
    let all_listed = |r: &mta_core::reports::Reports| {
        let paths = r.paths.as_ref().expect("paths");
        paths.exact && paths.converting.len() < top && paths.non_converting.len() < top
    };
    if !all_listed(whole) {
        return Ok(());
    }
    figures(whole, -1.0);
    for period in &result.periods {
        let reports = period.reports.as_ref().expect("every period has reports");
        prop_assert!(all_listed(reports), "a period lists fewer paths than the whole");
        figures(reports, 1.0);
    }
    for (key, sum) in sums {
        prop_assert!(
            sum.abs() <= 1e-9 * (1.0 + result.summary.conversion_value.abs()),
            "periods' {}: off by {}",
            key,
            sum
        );
    }
    Ok(())
}

/// `result` without its breakdown rows (in periods and windows too).
fn without_breakdown(result: &AttributionResult) -> AttributionResult {
    let mut result = result.clone();
    let periods = result.periods.iter_mut().flat_map(|p| &mut p.models);
    let windows = result.windows.iter_mut().flat_map(|w| &mut w.models);
    for m in result.models.iter_mut().chain(periods).chain(windows) {
        m.breakdown = None;
    }
    let period_reports = result.periods.iter_mut().filter_map(|p| p.reports.as_mut());
    let window_reports = result.windows.iter_mut().filter_map(|w| w.reports.as_mut());
    for reports in result.reports.iter_mut().chain(period_reports).chain(window_reports) {
        (reports.breakdown_positions, reports.breakdown_paths) = (None, None);
    }
    // And the cost of campaigns no row has, which only a breakdown by campaign reports.
    if let Some(spend) = &mut result.spend {
        spend.unmatched_cost.retain(|u| u.campaign.is_none());
    }
    result
}

/// (e): with cost per campaign, each channel's rows' cost and the cost of its campaigns no
/// row has add up to the channel's cost (whole file).
fn check_campaign_cost_adds_up(result: &AttributionResult) -> Result<(), TestCaseError> {
    prop_assert!(result.has_campaign_cost());
    let spend = result.spend.as_ref().expect("a cost table");
    for m in &result.models {
        let rows = m.breakdown.as_deref().unwrap_or_default();
        prop_assert!(rows.iter().all(|r| r.cost.is_some() && r.cpa.is_some() && r.roas.is_some()));
        for c in &m.channels {
            let joined: f64 = rows.iter().filter(|r| r.channel == c.channel).filter_map(|r| r.cost.flatten()).sum();
            let missed: f64 = spend.unmatched_cost.iter().filter(|u| u.channel == c.channel).map(|u| u.cost).sum();
            let label = format!("{} {}: campaign cost", m.model, c.channel);
            check_close(&label, joined + missed, c.cost.flatten().unwrap_or(0.0))?;
        }
    }
    Ok(())
}

/// (d): with a breakdown, each channel's rows add up to its figure, in every period and
/// lookback window too.
fn check_breakdown_adds_up(result: &AttributionResult) -> Result<(), TestCaseError> {
    let periods = result.periods.iter().flat_map(|p| &p.models);
    let windows = result.windows.iter().flat_map(|w| &w.models);
    for m in result.models.iter().chain(periods).chain(windows) {
        let rows = m.breakdown.as_deref().unwrap_or_default();
        prop_assert!(m.breakdown.is_some(), "{} has no breakdown", m.model);
        for c in &m.channels {
            let mine = rows.iter().filter(|r| r.channel == c.channel);
            let (conversions, value) = mine.fold((0.0, 0.0), |(a, b), r| (a + r.conversions, b + r.value));
            check_close(&format!("{} {} breakdown conversions", m.model, c.channel), conversions, c.conversions)?;
            check_close(&format!("{} {} breakdown value", m.model, c.channel), value, c.value)?;
        }
        prop_assert!(rows.iter().all(|r| m.channel(&r.channel).is_some() && r.values.len() == 1));
    }
    // Each channel's touch keys' positions add up to its positions.
    let period_reports = result.periods.iter().filter_map(|p| p.reports.as_ref());
    let window_reports = result.windows.iter().filter_map(|w| w.reports.as_ref());
    for reports in result.reports.iter().chain(period_reports).chain(window_reports) {
        let rows = reports.breakdown_positions.as_deref().expect("breakdown positions with a breakdown");
        for c in &reports.positions {
            let mut sum = mta_core::reports::Positions::default();
            for r in rows.iter().filter(|r| r.channel == c.channel) {
                (sum.only, sum.first) = (sum.only + r.positions.only, sum.first + r.positions.first);
                (sum.middle, sum.last) = (sum.middle + r.positions.middle, sum.last + r.positions.last);
            }
            let (a, b) = (&sum, &c.positions);
            for (x, y) in [(a.only, b.only), (a.first, b.first), (a.middle, b.middle), (a.last, b.last)] {
                check_close(&format!("{} breakdown positions", c.channel), x, y)?;
            }
        }
        prop_assert!(rows.iter().all(|r| reports.positions.iter().any(|c| c.channel == r.channel)));
        // The paths of touch keys, each touch read back as its channel, add up to the paths of
        // channels (when every path is listed): conversions and value over the converting
        // ones, null journeys over the others.
        let keyed = reports.breakdown_paths.as_ref().expect("paths of touch keys");
        let plain = reports.paths.as_ref().expect("paths");
        let top = result.options.top_paths as usize;
        type Figures = fn(&mta_core::paths::PathRow) -> [f64; 2];
        let converting: Figures = |r| [r.conversions, r.value];
        let non_converting: Figures = |r| [r.null_journeys, 0.0];
        for (list, keyed_rows, rows, figures) in [
            ("converting", &keyed.converting, &plain.converting, converting),
            ("non_converting", &keyed.non_converting, &plain.non_converting, non_converting),
        ] {
            if keyed_rows.len() >= top || rows.len() >= top {
                continue;
            }
            let mut sums: BTreeMap<String, [f64; 2]> = BTreeMap::new();
            for r in keyed_rows {
                let channels: Vec<String> = split_path(&r.path)
                    .into_iter()
                    .map(|touch| split_touch(&touch.expect("no gap in short paths")).remove(0))
                    .collect();
                let sum = sums.entry(join_channels(channels.iter().map(String::as_str))).or_default();
                for (s, x) in sum.iter_mut().zip(figures(r)) {
                    *s += x;
                }
            }
            prop_assert_eq!(sums.len(), rows.len(), "{} paths of touch keys by channel", list);
            for r in rows {
                let sum = sums.get(&r.path).copied().unwrap_or_default();
                for (x, y) in sum.iter().zip(figures(r)) {
                    check_close(&format!("{list} path {} over its touch keys", r.path), *x, y)?;
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_breakdown_adds_up_and_merges_like_one_chunk(rows in event_rows(), spec in event_specs()) {
        let rows = with_campaigns(&rows);
        let options = event_options(OptionsSpec { breakdown: Some(vec!["campaign".into()]), ..spec.clone() });
        // Every model, `shao_li` among them, with the Markov order fixed or `auto` and pair
        // effects on or off (`event_specs`): their counts are of channels, never touch keys.
        prop_assert!(options.wants(ModelId::ShaoLi) && options.wants(ModelId::Markov));
        let mut want = attribute_events(&event_chunk(&rows), &options);
        // With `intervals`, every row of the whole and of each period has its interval (before
        // cost adds a period rows of its campaigns' cost alone, without any, as it adds channels).
        for m in want.models.iter().chain(want.periods.iter().flat_map(|p| &p.models)) {
            let rows = m.breakdown.iter().flatten();
            prop_assert!(rows.clone().all(|r| r.interval.is_some() == options.intervals.is_some()), "{}", m.model);
        }
        // Cost per campaign joined to the rows (the campaigns of `with_campaigns` and others).
        let costs = costs();
        want.add_spend(&costs);
        check_breakdown_adds_up(&want)?;
        check_campaign_cost_adds_up(&want)?;
        // Every reader reads the stored JSON back as the typed result, rows included.
        let json = serde_json::to_string(&want).unwrap();
        let read: AttributionResult = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&read, &want);
        prop_assert_eq!(serde_json::to_string(&read).unwrap(), json);
        check_conservation(&want)?;
        // All but the rows is what the run without a breakdown gives: the channels' figures,
        // and the reports (paths, transitions, positions), periods and windows, which count
        // channels, not touch keys.
        let plain_rows: Vec<Row> = rows
            .iter()
            .map(|r| Row { channel: r.channel.as_deref().map(|c| touch_key_channel(c).into_owned()), ..r.clone() })
            .collect();
        let mut plain = attribute_events(&event_chunk(&plain_rows), &event_options(spec));
        plain.add_spend(&costs);
        check_same("a breakdown's channels", &without_breakdown(&want), &plain)?;
        check_chunked(" with a breakdown", &rows, &options, &costs, &want)?;
    }

    #[test]
    fn segments_add_up_merge_like_one_chunk_and_each_equals_its_users_alone(
        rows in event_rows(),
        spec in event_specs(),
        breakdown in any::<bool>(),
    ) {
        // Segments take one window (and periods, each segment then having its own).
        let lookback_days = match spec.lookback_days {
            Some(LookbackDays::Many(days)) => Some(LookbackDays::One(days[0])),
            other => other,
        };
        let spec = OptionsSpec { lookback_days, ..spec };
        let rows = if breakdown { with_campaigns(&rows) } else { rows };
        let segmented = OptionsSpec {
            segment_by: Some("country".into()),
            breakdown: breakdown.then(|| vec!["campaign".into()]),
            ..spec.clone()
        };
        let options = event_options(segmented);
        let mut chunk = event_chunk(&rows);
        add_segments(&mut chunk, &rows, 0);
        let mut want = attribute_events(&chunk, &options);
        // The whole is the run without segments.
        let plain_options = Options { segment_by: None, ..options.clone() };
        let plain = attribute_events(&event_chunk(&rows), &plain_options);
        let whole = AttributionResult { segments: Vec::new(), ..want.clone() };
        check_same("the whole of a segmented run", &whole, &plain)?;
        // Segments are listed by value, the rows without one last, and add up to the whole.
        let values: Vec<Option<&str>> = want.segments.iter().map(|s| s.value()).collect();
        let mut expected: Vec<Option<&str>> = rows.iter().map(segment_of).collect();
        expected.sort_by_key(|v| (v.is_none(), *v));
        expected.dedup();
        prop_assert_eq!(values, expected);
        let as_periods = AttributionResult {
            periods: want
                .segments
                .iter()
                .map(|s| PeriodResult {
                    period: format!("{:?}", s.value()),
                    summary: s.summary.clone(),
                    models: s.models.clone(),
                    reports: s.reports.clone(),
                })
                .collect(),
            options: Options { period: Some(Period::Day), ..want.options.clone() },
            ..want.clone()
        };
        check_periods_add_up(&as_periods)?;
        if breakdown {
            check_breakdown_adds_up(&as_periods)?;
        }
        // Each segment is a complete attribution of its users' journeys: their own run, at the
        // Markov order chosen for the whole, without pair effects.
        let chosen = model(&want, ModelId::Markov).order.map(MarkovOrder::Fixed);
        for segment in &want.segments {
            let own: Vec<Row> = rows.iter().filter(|r| segment_of(r) == segment.value()).cloned().collect();
            let alone_options = Options {
                segment_by: None,
                markov_order: chosen.unwrap_or(MarkovOrder::Fixed(1)),
                markov_pair_effects: false,
                ..options.clone()
            };
            // Its breakdown rows' intervals too: its replicates keep its rows' sums.
            let alone = attribute_events(&event_chunk(&own), &alone_options);
            let mut got = segment_as_result(&want, segment);
            got.summary.rows = alone.summary.rows;
            check_conservation(&got)?;
            check_periods_add_up(&got)?;
            let label = format!("segment {:?} alone", segment.value());
            // Reports included: a segment's paths and transitions are its users' own.
            check_same(&label, &got, &alone)?;
        }
        let json = serde_json::to_string(&want).unwrap();
        prop_assert_eq!(&serde_json::from_str::<AttributionResult>(&json).unwrap(), &want);
        // Cost per segment: the cost table's `country` column names the segments.
        let costs = costs_by_country();
        want.add_spend(&costs);
        check_segment_cost_adds_up(&want)?;
        // Cost per campaign within each segment: its rows' cost and its campaigns no row has add up.
        for segment in want.segments.iter().filter(|s| breakdown && s.spend.as_ref().is_some_and(|s| s.campaigns > 0)) {
            check_campaign_cost_adds_up(&segment_as_result(&want, segment))?;
        }
        check_chunked(" with segments", &rows, &options, &costs, &want)?;
    }

    #[test]
    fn each_conversion_type_equals_a_run_over_its_own_conversions_and_merges_like_one_chunk(
        rows in event_rows(),
        spec in event_specs(),
        windows in (prop::sample::select(vec![0.0, 1.5, 30.0]), prop::sample::select(vec![0.0, 7.0, 60.0])),
    ) {
        // With or without periods: each type then has its own.
        let spec = OptionsSpec {
            lookback_days: Some(LookbackDays::parse(&format!("purchase={},sign_up={}", windows.0, windows.1)).unwrap()),
            conversion_types: Some(vec!["purchase".into(), "sign_up".into()]),
            ..spec
        };
        let options = event_options(spec);
        let mut chunk = event_chunk(&rows);
        add_conversion_types(&mut chunk, &rows, 0);
        let mut want = attribute_events(&chunk, &options);
        // The whole counts every type's conversions, under the default window.
        let plain_options = Options { conversion_types: Vec::new(), conversion_lookbacks: Vec::new(), ..options.clone() };
        let plain = attribute_events(&event_chunk(&rows), &plain_options);
        check_same("the whole over every type", &AttributionResult { segments: Vec::new(), ..want.clone() }, &plain)?;
        let values: Vec<Option<&str>> = want.segments.iter().map(|s| s.value()).collect();
        prop_assert_eq!(values, [Some("purchase"), Some("sign_up")]);
        // Each type: a run over its own conversion rows (the other type's left out) under its window.
        let chosen = model(&want, ModelId::Markov).order.map(MarkovOrder::Fixed);
        for (segment, window) in want.segments.iter().zip([windows.0, windows.1]) {
            let own: Vec<Row> =
                rows.iter().filter(|r| !r.conversion || conversion_type_of(r) == segment.value()).cloned().collect();
            let alone_options = Options {
                lookback_days: window,
                markov_order: chosen.unwrap_or(MarkovOrder::Fixed(1)),
                markov_pair_effects: false,
                ..plain_options.clone()
            };
            // Its breakdown rows' intervals too: its replicates keep its rows' sums.
            let alone = attribute_events(&event_chunk(&own), &alone_options);
            let mut got = segment_as_result(&want, segment);
            got.summary.rows = alone.summary.rows;
            check_conservation(&got)?;
            check_same(&format!("type {:?} alone", segment.value()), &got, &alone)?;
        }
        let costs = costs();
        want.add_spend(&costs);
        check_chunked(" with conversion types", &rows, &options, &costs, &want)?;
    }

    #[test]
    fn every_model_but_participation_conserves_event_totals(rows in event_rows(), spec in event_specs()) {
        let options = event_options(spec);
        let result = attribute_events(&event_chunk(&rows), &options);
        // The summary counts every conversion row and its value.
        let conversions = rows.iter().filter(|r| r.conversion).count() as f64;
        let value: f64 = rows.iter().map(|r| r.value).sum();
        prop_assert_eq!(result.summary.conversions, conversions);
        check_close("summary.conversion_value", result.summary.conversion_value, value)?;
        prop_assert_eq!(result.summary.rows, rows.len() as u64);
        check_conservation(&result)?;
        for period in &result.periods {
            check_conservation(&as_result(&result, period))?;
            // Pair effects and the order's choice are the whole file's.
            let markov = period.models.iter().find(|m| m.model == ModelId::Markov).expect("markov in every period");
            prop_assert!(markov.pairs.is_none() && markov.order_selection.is_none());
            prop_assert_eq!(markov.order, model(&result, ModelId::Markov).order);
        }
        let markov = model(&result, ModelId::Markov);
        prop_assert_eq!(markov.pairs.is_some(), result.options.markov_pair_effects);
        prop_assert_eq!(markov.order_selection.is_some(), result.options.markov_order == MarkovOrder::Auto);
        check_periods_add_up(&result)?;
        // Every attributed conversion is in one path-length bucket, and one time-lag bucket.
        let reports = result.reports.as_ref().expect("every result has reports");
        let attributed = result.summary.conversions - result.summary.unattributed_conversions;
        check_close("path lengths", reports.path_length.iter().map(|b| b.conversions).sum(), attributed)?;
        check_close("time lags", reports.time_lag.iter().map(|b| b.conversions).sum(), attributed)?;
        // Every journey is on one path: the paths add up to the summary (all listed: < 50 paths).
        let paths = reports.paths.as_ref().expect("every result has paths");
        check_close("paths' conversions", paths.converting.iter().map(|p| p.conversions).sum(), attributed)?;
        let nulls: f64 = paths.non_converting.iter().map(|p| p.null_journeys).sum();
        check_close("paths' null journeys", nulls, result.summary.null_journeys)?;
        // Each state's transition probabilities add up to 1.
        if let Some(transitions) = &reports.transitions {
            let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
            for t in &transitions.rows {
                *sums.entry(t.from.as_str()).or_default() += t.probability;
            }
            for (state, sum) in sums {
                check_close(&format!("probabilities out of {state}"), sum, 1.0)?;
            }
        }
        prop_assert_eq!(result.periods.is_empty(), result.options.period.is_none() || rows.is_empty());
    }

    #[test]
    fn each_window_compared_in_one_pass_equals_its_own_run(rows in event_rows(), spec in event_specs()) {
        let options = event_options(spec.clone());
        let result = attribute_events(&event_chunk(&rows), &options);
        prop_assert_eq!(result.windows.is_empty(), options.lookback_windows.is_empty());
        if let Some(first) = result.windows.first() {
            // The top level is the first window.
            prop_assert_eq!(&first.summary, &result.summary);
            prop_assert_eq!(&first.models, &result.models);
        }
        // With `markov_order: auto`, every window solves the chain of the order chosen for the
        // top level (the first window); pair effects are the top level's only.
        let chosen = model(&result, ModelId::Markov).order.map(MarkovOrder::Fixed);
        for (i, window) in result.windows.iter().enumerate() {
            let markov = window.models.iter().find(|m| m.model == ModelId::Markov).expect("markov in every window");
            prop_assert_eq!(markov.order, model(&result, ModelId::Markov).order);
            let mut alone = OptionsSpec { lookback_days: Some(window.lookback_days.into()), ..spec.clone() };
            if i > 0 {
                prop_assert!(markov.pairs.is_none() && markov.order_selection.is_none());
                alone.markov_order = chosen;
                alone.markov_pair_effects = None;
            }
            let want = attribute_events(&event_chunk(&rows), &event_options(alone));
            let got = window_as_result(&result, window);
            check_same(&format!("window of {} days", window.lookback_days), &got, &want)?;
            check_conservation(&got)?;
            // Every window's ranks are its channel lists' order, and its shares theirs.
            for ranks in &result.window_ranks {
                let list = &model(&got, ranks.model).channels;
                for c in &ranks.channels {
                    match c.rank[i] {
                        Some(rank) => {
                            let credit = &list[rank as usize - 1];
                            prop_assert_eq!(&credit.channel, &c.channel);
                            prop_assert_eq!(credit.share, c.share[i]);
                        }
                        None => prop_assert!(list.iter().all(|l| l.channel != c.channel)),
                    }
                }
            }
        }
    }

    #[test]
    fn a_result_read_back_from_its_json_is_the_same_result_and_bytes(rows in event_rows(), spec in event_specs()) {
        // Every reader (API, webhook, tables) reads the stored JSON back as the typed result.
        let mut result = attribute_events(&event_chunk(&rows), &event_options(spec));
        for with_spend in [false, true] {
            if with_spend {
                // A joined cost table (its `null`s included) reads back the same too.
                result.add_spend(&costs());
            }
            let json = serde_json::to_string(&result).unwrap();
            let read: AttributionResult = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&read, &result);
            prop_assert_eq!(serde_json::to_string(&read).unwrap(), json);
        }
    }

    #[test]
    fn merging_partials_by_user_in_any_grouping_equals_one_chunk(rows in event_rows(), spec in event_specs()) {
        let options = event_options(spec);
        let mut want = attribute_events(&event_chunk(&rows), &options);
        let costs = costs();
        want.add_spend(&costs);
        check_chunked("", &rows, &options, &costs, &want)?;
    }

    #[test]
    fn every_model_but_participation_conserves_fractional_path_totals(rows in path_rows(), order in markov_orders()) {
        let options = path_options(OptionsSpec { markov_order: Some(order), ..Default::default() });
        let result = attribute_paths(&rows, &options);
        let conversions: f64 = rows.iter().map(|r| r.conversions).sum();
        check_close("summary.conversions", result.summary.conversions, conversions)?;
        let unattributed: f64 = rows.iter().filter(|r| r.path.is_empty()).map(|r| r.conversions).sum();
        check_close("summary.unattributed_conversions", result.summary.unattributed_conversions, unattributed)?;
        let markov = model(&result, ModelId::Markov);
        match order {
            MarkovOrder::Fixed(order) => prop_assert_eq!(markov.order, Some(order)),
            MarkovOrder::Auto => {
                let selection = markov.order_selection.as_ref().expect("auto reports its choice");
                prop_assert_eq!(markov.order, Some(selection.chosen));
                prop_assert_eq!(selection.scores.len(), 4);
            }
        }
        check_conservation(&result)?;
    }

    #[test]
    fn merging_path_partials_equals_one_chunk(rows in path_rows(), order in markov_orders(), n in 2usize..5) {
        let options = path_options(OptionsSpec {
            markov_order: Some(order),
            markov_pair_effects: Some(true),
            intervals: Some(IntervalsSpec { replicates: 10, level: None, seed: Some(n as u64) }),
            ..Default::default()
        });
        let want = attribute_paths(&rows, &options);
        let mut parts: Vec<Vec<PathRow>> = vec![Vec::new(); n];
        for (i, row) in rows.iter().enumerate() {
            parts[(i * 7 + 3) % n].push(row.clone());
        }
        let partials: Vec<Partial> = parts.iter().map(|p| Partial::from_paths(&path_chunk(p), &options).unwrap()).collect();
        for (grouping, merged) in groupings(&partials, &options) {
            let got = merged.finish(&options).expect("attribution succeeds");
            check_same(&format!("{n} path chunks, {grouping}"), &got, &want)?;
        }
    }
}

#[test]
fn markov_of_every_order_conserves_the_design_case_totals() {
    let mut rows = design_paths();
    rows.push(path_row(&["c3", "c1", "c2", "c1", "c3"], 0.5, 2.5, 0.25));
    for order in 1..=4u8 {
        let options = path_options(OptionsSpec { markov_order: Some(order.into()), ..only(&["markov"]) });
        let result = attribute_paths(&rows, &options);
        let markov = model(&result, ModelId::Markov);
        assert_eq!(markov.order, Some(order));
        assert!(markov.conserves_totals, "order {order}");
        assert_close(markov.channels.iter().map(|c| c.conversions).sum(), 4.5, 1e-9);
        assert_close(markov.channels.iter().map(|c| c.value).sum(), 47.5, 1e-9);
    }
}

#[test]
fn a_channel_credited_zero_but_for_rounding_has_the_same_cpa_in_every_grouping() {
    // Found by `merging_partials_by_user_in_any_grouping_equals_one_chunk`: `shao_li`
    // credited `search` 0 in one grouping and a rounding error in another, so its CPA was
    // `null` in one and a huge number in the other.
    let rows: Vec<Row> = [
        ("user-2", 0, Some("display"), false),
        ("user-0", 0, Some("social"), false),
        ("user-2", 3_412_800, None, true),
        ("user-6", 0, Some("affiliate"), false),
        ("user-6", 0, Some("social"), false),
        ("user-6", 0, Some("search"), false),
        ("user-1", 0, Some("search"), false),
        ("user-2", 0, Some("affiliate"), true),
        ("user-1", 0, Some("Direct"), false),
        ("user-0", 0, Some("display"), false),
        ("user-2", 0, None, true),
        ("user-2", 820_800, Some("search"), false),
        ("user-1", 0, Some("display"), false),
        ("user-2", 0, Some("Direct"), false),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (user, seconds, channel, conversion))| Row {
        user: user.to_owned(),
        time: T0 + seconds * 1_000_000,
        channel: channel.map(str::to_owned),
        conversion,
        value: 0.0,
        row_number: i as u64 + 1,
    })
    .collect();
    let spec = OptionsSpec {
        lookback_days: Some(LookbackDays::One(30.0)),
        half_life_days: Some(1.0),
        conversion_row_is_touch: Some(true),
        max_journey_touches: Some(10_000),
        markov_order: Some(MarkovOrder::Auto),
        markov_pair_effects: Some(true),
        period: Some(Period::Month),
        timezone: Some("Europe/Berlin".parse().unwrap()),
        ..Default::default()
    };
    let options = event_options(spec);
    let mut want = attribute_events(&event_chunk(&rows), &options);
    let costs = costs();
    want.add_spend(&costs);
    check_chunked("", &rows, &options, &costs, &want).unwrap();
}
