//! The journey rules of docs/user-guide.md, "Journeys", through event chunks built directly: ordering and
//! ties, splitting at conversions, the lookback window, null journeys, unattributed
//! conversions, conversion rows as touches, and truncation of long journeys.

use mta_core::{ModelId, OptionsSpec};

use crate::helpers::*;

fn with_lookback(days: f64) -> OptionsSpec {
    OptionsSpec { lookback_days: Some(days.into()), ..Default::default() }
}

// ---- the lookback window ---------------------------------------------------------------

#[test]
fn a_touch_exactly_at_the_window_edge_is_in_the_journey() {
    let events =
        Events::new().touch("u1", T0 - 30 * DAY, "edge").touch("u1", T0 - DAY, "late").conversion("u1", T0, 5.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::FirstTouch, &[("edge", 1.0, 5.0), ("late", 0.0, 0.0)]);
    assert_eq!(result.summary.unattributed_conversions, 0.0);
}

#[test]
fn a_touch_one_microsecond_before_the_window_is_out() {
    let events =
        Events::new().touch("u1", T0 - 30 * DAY - 1, "early").touch("u1", T0 - DAY, "late").conversion("u1", T0, 5.0);
    let result = attribute(&events);
    // `early` belongs to no journey at all: not credited, not even listed.
    assert_credits(&result, ModelId::FirstTouch, &[("late", 1.0, 5.0)]);
    assert_credits(&result, ModelId::Linear, &[("late", 1.0, 5.0)]);
    assert_eq!(result.summary.channels, 1);
    assert_eq!(result.summary.null_journeys, 0.0);
}

#[test]
fn a_fractional_lookback_has_exact_edges_too() {
    let options = event_options(with_lookback(0.5));
    let inside = Events::new().touch("u1", T0 - 12 * HOUR, "a").conversion("u1", T0, 1.0);
    assert_credits(&attribute_events(&inside.chunk(), &options), ModelId::LastTouch, &[("a", 1.0, 1.0)]);
    let outside = Events::new().touch("u1", T0 - 12 * HOUR - 1, "a").conversion("u1", T0, 1.0);
    let result = attribute_events(&outside.chunk(), &options);
    assert_credits(&result, ModelId::LastTouch, &[]);
    assert_eq!(result.summary.unattributed_conversions, 1.0);
}

#[test]
fn a_lookback_of_zero_days_is_unlimited() {
    let events =
        Events::new().touch("u1", T0 - 3650 * DAY, "ancient").touch("u1", T0 - DAY, "b").conversion("u1", T0, 2.0);
    let result = attribute_events(&events.chunk(), &event_options(with_lookback(0.0)));
    assert_credits(&result, ModelId::FirstTouch, &[("ancient", 1.0, 2.0), ("b", 0.0, 0.0)]);
    assert_eq!(result.options.lookback_days, 0.0);
    // With the default 30 days the old touch is out.
    assert_credits(&attribute(&events), ModelId::FirstTouch, &[("b", 1.0, 2.0)]);
}

// ---- splitting at conversions ------------------------------------------------------------

#[test]
fn each_conversion_closes_its_own_journey() {
    let events = Events::new()
        .touch("u1", T0, "a")
        .conversion("u1", T0 + DAY, 10.0)
        .touch("u1", T0 + 2 * DAY, "b")
        .touch("u1", T0 + 3 * DAY, "c")
        .conversion("u1", T0 + 4 * DAY, 20.0);
    let result = attribute(&events);
    // The second conversion only gets the touches after the first.
    assert_credits(&result, ModelId::FirstTouch, &[("a", 1.0, 10.0), ("b", 1.0, 20.0), ("c", 0.0, 0.0)]);
    assert_credits(&result, ModelId::Linear, &[("a", 1.0, 10.0), ("b", 0.5, 10.0), ("c", 0.5, 10.0)]);
    assert_eq!(result.summary.converting_journeys, 2.0);
    assert_eq!(result.summary.null_journeys, 0.0);
    assert_eq!(result.summary.conversions, 2.0);
}

#[test]
fn a_second_conversion_without_new_touches_is_unattributed() {
    let events =
        Events::new().touch("u1", T0 - 5 * DAY, "a").conversion("u1", T0 - 4 * DAY, 10.0).conversion("u1", T0, 3.0);
    let result = attribute(&events);
    // `a` is within 30 days of the second conversion but belongs to the first journey.
    assert_credits(&result, ModelId::LastTouch, &[("a", 1.0, 10.0)]);
    assert_eq!(result.summary.unattributed_conversions, 1.0);
    assert_eq!(result.summary.unattributed_value, 3.0);
    assert_eq!(result.summary.conversions, 2.0);
}

// ---- null journeys -----------------------------------------------------------------------

#[test]
fn touches_after_the_last_conversion_form_one_null_journey() {
    let events = Events::new()
        .touch("u1", T0 - DAY, "a")
        .conversion("u1", T0, 8.0)
        .touch("u1", T0 + DAY, "a")
        .touch("u1", T0 + 2 * DAY, "b")
        .touch("u2", T0, "c");
    let result = attribute(&events);
    assert_eq!(result.summary.null_journeys, 2.0);
    assert_eq!(result.summary.converting_journeys, 1.0);
    assert_eq!(result.summary.journeys, 3.0);
    // Rule models never credit null journeys; their channels are listed with zero credit.
    for id in ModelId::ALL.into_iter().filter(|m| *m != ModelId::Markov) {
        assert_credits(&result, id, &[("a", 1.0, 8.0), ("b", 0.0, 0.0), ("c", 0.0, 0.0)]);
    }
}

#[test]
fn markov_uses_null_journeys() {
    // Journeys [a] → conversion and [a, b] → null: start → a (2), a → conversion (1),
    // a → b (1), b → null (1). P(conv) = 1/2; without the null journey it would be 1.
    let events = Events::new().touch("u1", T0 - DAY, "a").conversion("u1", T0, 4.0).touch("u1", T0 + DAY, "a").touch(
        "u1",
        T0 + 2 * DAY,
        "b",
    );
    let result = attribute(&events);
    let markov = model(&result, ModelId::Markov);
    assert_close(markov.conversion_probability.unwrap(), 0.5, 1e-12);
    assert_close(markov.channel("a").unwrap().removal_effect.unwrap(), 1.0, 1e-12);
    assert_close(markov.channel("b").unwrap().removal_effect.unwrap(), 0.0, 1e-12);
    assert_credits(&result, ModelId::Markov, &[("a", 1.0, 4.0), ("b", 0.0, 0.0)]);
}

// ---- unattributed conversions ----------------------------------------------------------

#[test]
fn a_conversion_without_a_touch_in_its_window_is_counted_but_never_credited() {
    let events = Events::new()
        .touch("u1", T0 - 40 * DAY, "stale")
        .conversion("u1", T0, 25.0)
        .conversion("u2", T0, 5.0)
        .journey("u3", &["a"], 10.0);
    let result = attribute(&events);
    let s = &result.summary;
    assert_eq!(s.conversions, 3.0);
    assert_eq!(s.conversion_value, 40.0);
    assert_eq!(s.unattributed_conversions, 2.0);
    assert_eq!(s.unattributed_value, 30.0);
    assert_eq!(s.converting_journeys, 1.0);
    for m in &result.models {
        assert_credits(&result, m.model, &[("a", 1.0, 10.0)]);
        assert!(m.conserves_totals, "{}", m.model);
    }
}

// ---- ordering and ties -------------------------------------------------------------------

#[test]
fn a_touch_at_the_same_time_as_the_conversion_comes_first_and_is_in_the_journey() {
    // In file order the conversion precedes the touch; touches still sort first.
    let events = Events::new().touch("u1", T0 - DAY, "a").conversion("u1", T0, 6.0).touch("u1", T0, "b");
    let result = attribute(&events);
    assert_credits(&result, ModelId::LastTouch, &[("a", 0.0, 0.0), ("b", 1.0, 6.0)]);
    assert_eq!(result.summary.null_journeys, 0.0);
}

#[test]
fn two_touches_at_the_same_time_keep_file_order() {
    let events = Events::new().touch("u1", T0 - DAY, "first").touch("u1", T0 - DAY, "second").conversion("u1", T0, 1.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::FirstTouch, &[("first", 1.0, 1.0), ("second", 0.0, 0.0)]);
    assert_credits(&result, ModelId::LastTouch, &[("first", 0.0, 0.0), ("second", 1.0, 1.0)]);
}

#[test]
fn ties_are_broken_by_row_number_not_by_position_in_the_chunk() {
    // The chunk lists `second` (row 2) before `first` (row 1).
    let mut rows =
        Events::new().touch("u1", T0 - DAY, "first").touch("u1", T0 - DAY, "second").conversion("u1", T0, 1.0).rows;
    rows.swap(0, 1);
    let result = attribute_events(&event_chunk(&rows), &event_options(OptionsSpec::default()));
    assert_credits(&result, ModelId::FirstTouch, &[("first", 1.0, 1.0), ("second", 0.0, 0.0)]);
    // Renumbering the rows flips the tie.
    rows[0].row_number = 1;
    rows[1].row_number = 2;
    let result = attribute_events(&event_chunk(&rows), &event_options(OptionsSpec::default()));
    assert_credits(&result, ModelId::FirstTouch, &[("first", 0.0, 0.0), ("second", 1.0, 1.0)]);
}

#[test]
fn each_journey_carries_its_users_key_and_ties_keep_row_number_order() {
    // Users interleaved as in a file ordered by time; u1's two touches tie on time.
    let rows = Events::new()
        .touch("u1", T0 - DAY, "first")
        .touch("u2", T0 - 2 * DAY, "b")
        .touch("u1", T0 - DAY, "second")
        .conversion("u2", T0, 1.0)
        .conversion("u1", T0, 1.0)
        .touch("u3", T0, "c")
        .rows;
    let options = event_options(OptionsSpec::default());
    // Rows numbered in order (ties by row index), then numbered backwards (ties by the numbers).
    for backwards in [false, true] {
        let mut chunk = event_chunk(&rows);
        if backwards {
            chunk.row_numbers.reverse();
        }
        let mut seen = Vec::new();
        mta_core::journey::for_each_event_journey(&chunk, &options, |journey, origin| {
            let mta_core::journey::JourneyOrigin::EventRow { row, user_key } = origin else {
                panic!("an event chunk's journeys come from event rows")
            };
            assert_eq!(user_key, chunk.user_keys[row], "the key of the row's user");
            let names: Vec<&str> = journey.channels.iter().map(|&c| chunk.channels.name(c)).collect();
            seen.push((row, names.join(">")));
        });
        seen.sort();
        let u1 = if backwards { "second>first" } else { "first>second" };
        assert_eq!(seen, [(3, "b".to_owned()), (4, u1.to_owned()), (5, "c".to_owned())], "backwards: {backwards}");
    }
}

/// Every journey of `chunk` as (number of the row that closed it, user key, channel names,
/// its figures and touch times), sorted.
fn journeys_of(chunk: &mta_core::chunk::EventChunk, options: &mta_core::Options) -> Vec<(u64, u128, String, String)> {
    let mut journeys = Vec::new();
    mta_core::journey::for_each_event_journey(chunk, options, |journey, origin| {
        let mta_core::journey::JourneyOrigin::EventRow { row, user_key } = origin else {
            panic!("an event chunk's journeys come from event rows")
        };
        let names: Vec<&str> = journey.channels.iter().map(|&c| chunk.channels.name(c)).collect();
        let figures = format!(
            "{} {} {} {} {:?}",
            journey.conversions, journey.value, journey.nulls, journey.truncated, journey.touch_times
        );
        journeys.push((chunk.row_numbers[row], user_key, names.join(">"), figures));
    });
    journeys.sort();
    journeys
}

#[test]
fn a_chunk_of_many_rows_gives_the_journeys_its_users_give_apart() {
    // 200,000 rows of 25,000 users interleaved, times on a coarse grid so that many tie: a
    // chunk of more than one bucket of users (`journey.rs`, `BUCKET_ROWS`).
    let channels = ["search", "email", "social", "display"];
    let mut events = Events::new();
    let mut state = 7u64;
    for _ in 0..200_000 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let user = format!("u{}", (state >> 33) % 25_000);
        let time = T0 - ((state >> 20) % 40) as i64 * HOUR;
        events = if (state >> 45).is_multiple_of(9) {
            events.conversion(&user, time, ((state >> 50) % 100) as f64)
        } else {
            events.touch(&user, time, channels[(state >> 55) as usize % channels.len()])
        };
    }
    let options = event_options(OptionsSpec { max_journey_touches: Some(5), ..Default::default() });
    let whole = journeys_of(&event_chunk(&events.rows), &options);
    // The same users in chunks of their own (each under one bucket's rows), numbered as in the file.
    let mut apart = Vec::new();
    for part in 0..8 {
        let of_part = |row: &&Row| row.user[1..].parse::<u32>().expect("u<number>") % 8 == part;
        let rows: Vec<Row> = events.rows.iter().filter(of_part).cloned().collect();
        apart.extend(journeys_of(&event_chunk(&rows), &options));
    }
    apart.sort();
    assert!(whole.len() > 25_000, "{} journeys", whole.len());
    assert_eq!(whole.len(), apart.len(), "journeys");
    if let Some((got, want)) = whole.iter().zip(&apart).find(|(got, want)| got != want) {
        panic!("the first journey that differs: {got:?}, apart {want:?}");
    }
}

#[test]
fn later_rows_with_earlier_timestamps_sort_by_time() {
    let events =
        Events::new().touch("u1", T0 - DAY, "late").touch("u1", T0 - 2 * DAY, "early").conversion("u1", T0, 1.0);
    assert_credits(&attribute(&events), ModelId::FirstTouch, &[("early", 1.0, 1.0), ("late", 0.0, 0.0)]);
}

fn mixed_events() -> Events {
    Events::new()
        .touch("u1", T0 - 3 * DAY, "a")
        .touch("u2", T0 - 3 * DAY, "b")
        .touch("u1", T0 - 2 * DAY, "b")
        .touch("u1", T0 - 2 * DAY, "c")
        .conversion("u1", T0 - 2 * DAY, 12.0)
        .touch("u2", T0 - DAY, "direct")
        .conversion("u2", T0, 7.5)
        .touch("u1", T0 - DAY, "a")
        .conversion("u1", T0, 3.0)
        .touch("u3", T0, "c")
        .conversion("u4", T0, 1.0)
        .touch("u1", T0 + DAY, "d")
}

#[test]
fn rows_in_shuffled_order_within_a_chunk_give_the_same_result() {
    let options = event_options(OptionsSpec::default());
    let rows = mixed_events().rows;
    let want = attribute_events(&event_chunk(&rows), &options);
    for seed in 1..=6u64 {
        // A deterministic shuffle (Fisher-Yates on a small LCG).
        let mut shuffled = rows.clone();
        let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        assert_ne!(shuffled, rows, "seed {seed} shuffles");
        let got = attribute_events(&event_chunk(&shuffled), &options);
        assert_eq!(format!("{:?}", got.summary), format!("{:?}", want.summary));
        for m in &want.models {
            let (g, w) = (credits(&got, m.model), credits(&want, m.model));
            assert_eq!(g.keys().collect::<Vec<_>>(), w.keys().collect::<Vec<_>>());
            for (channel, &(conversions, value)) in &w {
                assert_close(g[channel].0, conversions, 1e-12);
                assert_close(g[channel].1, value, 1e-12);
            }
        }
    }
}

#[test]
fn the_mixed_example_has_the_hand_computed_credits() {
    let result = attribute(&mixed_events());
    // u1: [a, b, c] → 12 (b, c at the conversion's time come first), [a] → 3, [d] null.
    // u2: [b, direct] → 7.5. u3: [c] null. u4: unattributed 1.
    assert_credits(
        &result,
        ModelId::FirstTouch,
        &[("a", 2.0, 15.0), ("b", 1.0, 7.5), ("c", 0.0, 0.0), ("d", 0.0, 0.0), ("direct", 0.0, 0.0)],
    );
    assert_credits(
        &result,
        ModelId::LastNonDirect,
        &[("a", 1.0, 3.0), ("b", 1.0, 7.5), ("c", 1.0, 12.0), ("d", 0.0, 0.0), ("direct", 0.0, 0.0)],
    );
    let s = &result.summary;
    assert_eq!((s.converting_journeys, s.null_journeys, s.unattributed_conversions), (3.0, 2.0, 1.0));
}

// ---- conversion rows as touches ------------------------------------------------------------

#[test]
fn a_conversion_row_with_a_channel_is_not_a_touch_by_default() {
    let events = Events::new().touch("u1", T0 - DAY, "ads").conversion_via("u1", T0, "email", 4.0);
    let result = attribute(&events);
    assert_credits(&result, ModelId::LastTouch, &[("ads", 1.0, 4.0)]);
    assert_eq!(result.summary.channels, 1);
}

#[test]
fn conversion_row_is_touch_makes_it_the_last_touch() {
    let options = event_options(OptionsSpec { conversion_row_is_touch: Some(true), ..Default::default() });
    let events = Events::new()
        .touch("u1", T0 - DAY, "ads")
        .conversion_via("u1", T0, "email", 4.0)
        .conversion_via("u2", T0, "email", 2.0) // no earlier touch: now attributed
        .conversion("u3", T0, 1.0); // no channel: still unattributed
    let result = attribute_events(&events.chunk(), &options);
    assert_credits(&result, ModelId::LastTouch, &[("ads", 0.0, 0.0), ("email", 2.0, 6.0)]);
    assert_credits(&result, ModelId::Linear, &[("ads", 0.5, 2.0), ("email", 1.5, 4.0)]);
    assert_credits(
        &result,
        ModelId::TimeDecay,
        &[("ads", tdw(), 4.0 * tdw()), ("email", 2.0 - tdw(), 6.0 - 4.0 * tdw())],
    );
    assert_eq!(result.summary.unattributed_conversions, 1.0);
    assert_eq!(result.summary.unattributed_value, 1.0);
}

/// Time-decay weight of a touch one day before a conversion that is itself a touch
/// (half-life 7 days): 2^(-1/7) / (2^(-1/7) + 1).
fn tdw() -> f64 {
    let w = (-1.0f64 / 7.0).exp2();
    w / (w + 1.0)
}

// ---- max_journey_touches -----------------------------------------------------------------

#[test]
fn long_journeys_keep_their_most_recent_touches_and_are_counted() {
    let options = event_options(OptionsSpec { max_journey_touches: Some(3), ..Default::default() });
    let events = Events::new().journey("u1", &["a", "b", "c", "d", "e"], 9.0).journey("u2", &["x", "y", "z"], 3.0);
    let result = attribute_events(&events.chunk(), &options);
    assert_credits(
        &result,
        ModelId::FirstTouch,
        &[("c", 1.0, 9.0), ("d", 0.0, 0.0), ("e", 0.0, 0.0), ("x", 1.0, 3.0), ("y", 0.0, 0.0), ("z", 0.0, 0.0)],
    );
    assert_credits(
        &result,
        ModelId::Linear,
        &[
            ("c", 1.0 / 3.0, 3.0),
            ("d", 1.0 / 3.0, 3.0),
            ("e", 1.0 / 3.0, 3.0),
            ("x", 1.0 / 3.0, 1.0),
            ("y", 1.0 / 3.0, 1.0),
            ("z", 1.0 / 3.0, 1.0),
        ],
    );
    // Exactly max touches is not truncated.
    assert_eq!(result.summary.truncated_journeys, 1);
    assert_eq!(result.summary.channels, 6);
}

#[test]
fn long_paths_are_cut_to_their_most_recent_touches_too() {
    let options = path_options(OptionsSpec { max_journey_touches: Some(2), ..Default::default() });
    let rows = [path_row(&["a", "b", "c"], 2.0, 8.0, 0.0), path_row(&["d", "e"], 1.0, 1.0, 0.0)];
    let result = attribute_paths(&rows, &options);
    assert_credits(&result, ModelId::FirstTouch, &[("b", 2.0, 8.0), ("c", 0.0, 0.0), ("d", 1.0, 1.0), ("e", 0.0, 0.0)]);
    assert_eq!(result.summary.truncated_journeys, 1);
    assert_eq!(result.summary.channels, 4);
}
