//! Bootstrap intervals (docs/user-guide.md, "Intervals"): replicates weighed by hand, the
//! coverage of a known share on simulated data, intervals narrowing with more data, path
//! rows' Poisson draws, repeatable runs and the limits.

use mta_core::chunk::user_key;
use mta_core::ingest::Limits;
use mta_core::intervals::{IntervalsSpec, user_weight};
use mta_core::result::{INTERVALS_CSV_HEADER, ModelResult, Table};
use mta_core::{AttributionResult, ErrorCode, LookbackDays, ModelId, OptionsSpec, Partial};

use crate::helpers::*;

fn with_intervals(spec: OptionsSpec, replicates: u32, level: f64, seed: u64) -> OptionsSpec {
    OptionsSpec { intervals: Some(IntervalsSpec { replicates, level: Some(level), seed: Some(seed) }), ..spec }
}

/// A tiny deterministic generator (xorshift) for simulated journeys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `users` users with one journey each, converting but for about `null_share` of them, its
/// channels drawn from `channels` with `p_first` the chance of the first and the rest evenly;
/// `touches` touches per journey.
fn simulated(users: usize, touches: usize, channels: &[&str], p_first: f64, null_share: f64, seed: u64) -> Events {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut events = Events::new();
    for user in 0..users {
        let path: Vec<&str> = (0..touches)
            .map(|_| {
                let u = rng.next();
                if u < p_first {
                    channels[0]
                } else {
                    let rest = ((u - p_first) / (1.0 - p_first) * (channels.len() - 1) as f64) as usize;
                    channels[1 + rest.min(channels.len() - 2)]
                }
            })
            .collect();
        let user = format!("s{seed}-u{user}");
        if rng.next() < null_share {
            // A journey that does not convert: its touches only.
            for (i, channel) in path.iter().enumerate() {
                events = events.touch(&user, T0 - (touches - i) as i64 * DAY, channel);
            }
        } else {
            events = events.journey(&user, &path, 10.0);
        }
    }
    events
}

/// The `q` quantile of sorted values, interpolated between the closest ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (below, above) = (at.floor() as usize, at.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (at - below as f64)
}

#[test]
fn a_replicate_counts_each_user_as_often_as_its_weight_draws() {
    // Five users, one journey each: last touch credits a (u1, u2, u3) or b (u4, u5).
    let journeys = [("u1", "a", 10.0), ("u2", "a", 20.0), ("u3", "a", 30.0), ("u4", "b", 40.0), ("u5", "b", 50.0)];
    let mut events = Events::new();
    for (user, channel, value) in journeys {
        events = events.journey(user, &[channel], value);
    }
    let (replicates, seed) = (40, 7);
    let options = event_options(with_intervals(only(&["last_touch"]), replicates, 0.8, seed));
    let result = attribute_events(&events.chunk(), &options);
    // By hand: replicate r credits each channel with its users' weights.
    let mut a_conversions = Vec::new();
    let mut a_values = Vec::new();
    let mut a_shares = Vec::new();
    let (mut a_first, mut ranked) = (0, 0);
    for r in 0..replicates {
        let (mut a, mut b, mut a_value) = (0.0, 0.0, 0.0);
        for (user, channel, value) in journeys {
            let w = user_weight(user_key(user.as_bytes()), r, seed) as f64;
            if channel == "a" {
                a += w;
                a_value += w * value;
            } else {
                b += w;
            }
        }
        a_conversions.push(a);
        a_values.push(a_value);
        a_shares.push(if a + b > 0.0 { a / (a + b) } else { 0.0 });
        // Ties go to the name that sorts first: a; a replicate without conversions ranks no one.
        if a + b > 0.0 {
            a_first += usize::from(a >= b);
            ranked += 1;
        }
    }
    for values in [&mut a_conversions, &mut a_values, &mut a_shares] {
        values.sort_by(f64::total_cmp);
    }
    let a = model(&result, ModelId::LastTouch).channels.iter().find(|c| c.channel == "a").unwrap();
    let interval = a.interval.as_ref().expect("intervals asked for");
    assert_close(interval.conversions_low, quantile(&a_conversions, 0.1), 1e-12);
    assert_close(interval.conversions_high, quantile(&a_conversions, 0.9), 1e-12);
    assert_close(interval.value_low, quantile(&a_values, 0.1), 1e-12);
    assert_close(interval.value_high, quantile(&a_values, 0.9), 1e-12);
    assert_close(interval.share_low, quantile(&a_shares, 0.1), 1e-12);
    assert_close(interval.share_high, quantile(&a_shares, 0.9), 1e-12);
    assert_close(interval.rank_1_probability, a_first as f64 / ranked as f64, 1e-12);
    assert_eq!(interval.top_3_probability, 1.0, "two channels: always in the top 3");
    assert!(interval.removal_effect_low.is_none(), "removal effects are markov's");
    // The weights are not all 1: the interval has width.
    assert!(interval.conversions_high > interval.conversions_low);
}

#[test]
fn the_90_percent_interval_covers_the_generators_share_about_90_percent_of_the_time() {
    // Each user's one touch is `a` with probability 0.3: last touch's true share of a is 0.3.
    // 100 data sets (seeds), 100 replicates each; the percentile interval should cover 0.3 in
    // about 90 of them. Tolerance: 80 to 97 (the count is binomial with sd about 3; the
    // percentile bootstrap runs slightly below its level on small samples).
    let (seeds, truth) = (100, 0.3);
    let mut covered = 0;
    for seed in 1..=seeds {
        let events = simulated(300, 1, &["a", "b", "c"], truth, 0.0, seed);
        let options = event_options(with_intervals(only(&["last_touch"]), 100, 0.9, seed));
        let result = attribute_events(&events.chunk(), &options);
        let a = model(&result, ModelId::LastTouch).channels.iter().find(|c| c.channel == "a").unwrap();
        let interval = a.interval.as_ref().unwrap();
        covered += usize::from(interval.share_low <= truth && truth <= interval.share_high);
    }
    assert!((80..=97).contains(&covered), "the 90% interval covered the true share in {covered} of {seeds} data sets");
}

#[test]
fn intervals_narrow_with_more_data_under_every_model() {
    // Sixteen times the journeys: intervals about four times narrower (1/sqrt(n)).
    let channels = ["a", "b", "c", "d"];
    let width = |users: usize| {
        let events = simulated(users, 3, &channels, 0.4, 0.5, 11);
        let options = event_options(with_intervals(OptionsSpec::default(), 60, 0.9, 3));
        let result = attribute_events(&events.chunk(), &options);
        result
            .models
            .iter()
            .map(|m| {
                let top = &m.channels[0];
                let interval = top.interval.as_ref().unwrap_or_else(|| panic!("{} has intervals", m.model));
                assert!(m.channels.iter().all(|c| c.interval.is_some()), "{}: every channel", m.model);
                assert_eq!(interval.removal_effect_low.is_some(), m.model == ModelId::Markov, "{}", m.model);
                // The estimate lies within its interval.
                assert!(interval.conversions_low <= top.conversions && top.conversions <= interval.conversions_high);
                (m.model, interval.share_high - interval.share_low)
            })
            .collect::<Vec<_>>()
    };
    let (small, large) = (width(150), width(2400));
    assert_eq!(small.len(), 12, "every model");
    for ((model, narrow), (_, wide)) in large.iter().zip(&small) {
        assert!(*narrow > 0.0, "{model}");
        let ratio = wide / narrow;
        assert!(ratio > 2.5 && ratio < 8.0, "{model}: {wide} with 150 users, {narrow} with 2400 (ratio {ratio})");
    }
}

#[test]
fn a_rerun_gives_the_same_intervals_and_another_seed_other_ones() {
    let events = simulated(200, 2, &["a", "b", "c"], 0.5, 0.3, 5);
    let run = |seed| {
        let options = event_options(with_intervals(only(&["linear", "markov", "shao_li"]), 30, 0.9, seed));
        serde_json::to_string(&attribute_events(&events.chunk(), &options)).unwrap()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn path_rows_draw_their_conversions_from_poisson() {
    // 1000 conversions on `a`, 500 on `b`: a's replicate conversions are Poisson(1000), whose
    // 90% interval is about 1000 ± 1.645 × sqrt(1000) = 1000 ± 52.
    let rows = vec![path_row(&["a"], 1000.0, 5000.0, 2000.0), path_row(&["b"], 500.0, 2500.0, 100.0)];
    let options = path_options(with_intervals(only(&["last_touch", "markov"]), 400, 0.9, 0));
    let result = attribute_paths(&rows, &options);
    let a = model(&result, ModelId::LastTouch).channels.iter().find(|c| c.channel == "a").unwrap();
    let interval = a.interval.as_ref().unwrap();
    assert!((930.0..980.0).contains(&interval.conversions_low), "{interval:?}");
    assert!((1020.0..1070.0).contains(&interval.conversions_high), "{interval:?}");
    // Value per conversion is the row's: 5 each.
    assert_close(interval.value_low, 5.0 * interval.conversions_low, 1e-9);
    assert_eq!(interval.rank_1_probability, 1.0, "a always leads");
    let markov = model(&result, ModelId::Markov).channels.iter().find(|c| c.channel == "b").unwrap();
    assert!(markov.interval.as_ref().unwrap().removal_effect_high.is_some());
}

#[test]
fn intervals_are_refused_past_their_limits() {
    for spec in [
        IntervalsSpec { replicates: 5, level: None, seed: None },
        IntervalsSpec { replicates: 100, level: Some(1.5), seed: None },
    ] {
        let err = OptionsSpec { intervals: Some(spec), ..OptionsSpec::default() }.check(None).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("intervals"), "{err}");
    }
    let options = event_options(with_intervals(OptionsSpec::default(), 1001, 0.9, 0));
    let err = Limits::default().check_intervals(10, &options).unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("max_interval_replicates"), "{err}");
    let options = event_options(with_intervals(OptionsSpec::default(), 1000, 0.9, 0));
    Limits::default().check_intervals(100, &options).expect("within the limits");
    let err = Limits::default().check_intervals(100_000, &options).unwrap_err();
    assert!(err.message.contains("max_replicate_channels"), "{err}");
    // The operator's limit, and each lookback window counting its own replicates.
    let lower = Limits { max_replicate_channels: 50_000, ..Limits::default() };
    assert!(lower.check_intervals(51, &options).unwrap_err().message.contains("max_replicate_channels"));
    lower.check_intervals(50, &options).expect("within the lower limit");
    let windows = OptionsSpec { lookback_days: Some(LookbackDays::Many(vec![7.0, 30.0])), ..OptionsSpec::default() };
    let options = event_options(with_intervals(windows, 1000, 0.9, 0));
    assert!(lower.check_intervals(26, &options).unwrap_err().message.contains("2 lookback windows"));
    lower.check_intervals(25, &options).expect("two windows of 25 channels");
}

#[test]
fn each_period_has_the_intervals_of_its_own_journeys() {
    // Every conversion in one week: that week's intervals are the whole file's. Then a second
    // week of other users: the first week's intervals stay what they were alone.
    let one_week = simulated(120, 2, &["a", "b", "c"], 0.5, 0.3, 21);
    let spec = OptionsSpec { period: Some(mta_core::period::Period::Week), ..only(&["linear", "markov", "shao_li"]) };
    let options = event_options(with_intervals(spec, 30, 0.9, 2));
    let result = attribute_events(&one_week.chunk(), &options);
    assert_eq!(result.periods.len(), 1);
    let intervals = |models: &[mta_core::result::ModelResult]| -> Vec<(String, f64, f64, f64)> {
        models
            .iter()
            .flat_map(|m| {
                m.channels.iter().map(move |c| {
                    let i = c.interval.as_ref().expect("every period's channel has an interval");
                    (format!("{} {}", m.model, c.channel), i.conversions_low, i.share_high, i.rank_1_probability)
                })
            })
            .collect()
    };
    let whole = intervals(&result.models);
    let week = intervals(&result.periods[0].models);
    assert_eq!(whole.len(), week.len());
    for (w, p) in whole.iter().zip(&week) {
        assert_eq!(w.0, p.0);
        for (a, b) in [(w.1, p.1), (w.2, p.2), (w.3, p.3)] {
            assert_close(a, b, 1e-9);
        }
    }
    let mut two_weeks = one_week.clone();
    for row in simulated(80, 2, &["a", "b", "c"], 0.2, 0.3, 22).rows {
        two_weeks.rows.push(Row { time: row.time + 14 * DAY, ..row });
    }
    let result = attribute_events(&two_weeks.chunk(), &options);
    assert_eq!(result.periods.len(), 2);
    assert_eq!(intervals(&result.periods[0].models), week, "the first week's journeys alone");
    assert_ne!(intervals(&result.models), whole, "the whole has both weeks");
}

/// One converting journey a day on `days` (days after `T0`), each of its own user, over a
/// dictionary of 256 channels of which the journeys touch one.
fn daily_journeys(days: std::ops::Range<i64>) -> mta_core::EventChunk {
    let mut events = Events::new();
    for day in days {
        let user = format!("u{day}");
        events = events.touch(&user, T0 + day * DAY - HOUR, "c000").conversion(&user, T0 + day * DAY, 1.0);
    }
    let mut names = mta_core::ChannelDict::default();
    for channel in 0..256 {
        names.id(&format!("c{channel:03}"));
    }
    event_chunk_with_dict(&events.rows, names)
}

#[test]
fn the_replicates_of_every_part_are_bounded_together_however_chunks_are_grouped() {
    use mta_core::intervals::{MAX_REPLICATE_BYTES, ReplicateShape, check_replicate_memory, replicate_bytes};
    // `--period day` over 90 days with 100 replicates at 8 channels under every model fits (the
    // whole's replicates and 90 days'); a year of days does not, nor 90 days of 1000 replicates.
    let every_model = ReplicateShape { channels: 8, rule_models: 10, chains: 1, shao_li: true };
    check_replicate_memory(91 * 100, every_model).expect("90 days of 100 replicates fit");
    assert!(check_replicate_memory(366 * 100, every_model).is_err());
    assert!(check_replicate_memory(91 * 1000, every_model).is_err());
    // 256 channels: each replicate partial is estimated at megabytes (its chain's transitions
    // and `shao_li`'s pairs), so a few days' periods of 10 replicates each pass the bound.
    let spec = OptionsSpec { period: Some(mta_core::period::Period::Day), ..only(&["linear", "markov", "shao_li"]) };
    let options = event_options(with_intervals(spec.clone(), 10, 0.9, 0));
    let part = 10 * replicate_bytes(ReplicateShape { channels: 256, rule_models: 1, chains: 1, shao_li: true });
    // The whole and `fit - 1` days fit; the whole and `fit` days do not.
    let fit = (MAX_REPLICATE_BYTES / part) as i64;
    assert!((3..100).contains(&fit), "{fit}");
    let refused = |err: mta_core::AttributionError| {
        assert_eq!(err.code, ErrorCode::LimitExceeded, "{err}");
        assert!(err.message.contains("max_replicate_memory"), "{err}");
        assert!(err.message.contains("longer period"), "{err}");
        err
    };
    // Within: one chunk, and two chunks (of other days each) merged, are accepted.
    let result = attribute_events(&daily_journeys(0..fit - 1), &options);
    assert_eq!(result.periods.len() as i64, fit - 1);
    let mut merged = Partial::from_events(&daily_journeys(0..fit / 2), &options).unwrap();
    merged.merge(&Partial::from_events(&daily_journeys(fit / 2..fit - 1), &options).unwrap());
    merged.check_within(&Limits::default()).expect("within the bound once merged");
    assert_eq!(merged.finish(&options).unwrap().periods.len() as i64, fit - 1);
    // One day more: refused in one chunk, and by the merge of two chunks that each fit.
    refused(Partial::from_events(&daily_journeys(0..fit), &options).unwrap_err());
    let mut merged = Partial::from_events(&daily_journeys(0..fit / 2), &options).unwrap();
    merged.merge(&Partial::from_events(&daily_journeys(fit / 2..fit), &options).unwrap());
    refused(merged.check_within(&Limits::default()).unwrap_err());
    refused(merged.finish(&options).unwrap_err());
    // Refused as the parts are made: a chunk of ten times the days stops at the first part past
    // the bound, the whole's replicates and `fit` days' (the count the message gives).
    let err = refused(Partial::from_events(&daily_journeys(0..10 * fit), &options).unwrap_err());
    assert!(err.message.contains(&format!("at least {} replicate results", (fit + 1) * 10)), "{err}");
    // Segments count together: two teams' days (each day a segment period, and a period of the
    // whole) pass the bound with the days that fit without segments.
    let teamed = OptionsSpec { segment_by: Some("team".into()), ..spec };
    let options = event_options(with_intervals(teamed, 10, 0.9, 0));
    let chunk = daily_journeys(0..fit - 1);
    let rows = chunk.user_keys.len();
    let chunk = mta_core::EventChunk {
        segment_ids: (0..rows).map(|row| u32::from(row % 4 >= 2)).collect(),
        segments: ["x", "y"].iter().fold(mta_core::ChannelDict::default(), |mut dict, team| {
            dict.id(team);
            dict
        }),
        ..chunk
    };
    refused(Partial::from_events(&chunk, &options).unwrap_err());
}

/// Each model's channels' intervals, by model and channel: every figure in a row.
fn interval_table(models: &[mta_core::result::ModelResult]) -> Vec<(String, [f64; 9])> {
    models
        .iter()
        .flat_map(|m| {
            m.channels.iter().map(move |c| {
                let i = c.interval.as_ref().unwrap_or_else(|| panic!("{} {} has an interval", m.model, c.channel));
                let figures = [
                    i.conversions_low,
                    i.conversions_high,
                    i.value_low,
                    i.value_high,
                    i.share_low,
                    i.share_high,
                    i.rank_1_probability,
                    i.top_3_probability,
                    i.median_rank,
                ];
                (format!("{} {}", m.model, c.channel), figures)
            })
        })
        .collect()
}

/// Whether two interval tables name the same channels with the same figures (to 1e-9).
fn same_intervals(a: &[(String, [f64; 9])], b: &[(String, [f64; 9])]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((na, fa), (nb, fb))| {
            na == nb && fa.iter().zip(fb).all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(1.0))
        })
}

#[test]
fn each_lookback_window_has_the_intervals_of_a_run_under_that_window_alone() {
    // Touches 3, 2 and 1 days before each conversion: a window of 1.5 days keeps the last
    // touch only, so its intervals differ from the unlimited window's (the whole's).
    let events = simulated(150, 3, &["a", "b", "c"], 0.5, 0.3, 31);
    let models = only(&["first_touch", "linear", "markov", "shao_li"]);
    let run = |lookback| {
        let spec = OptionsSpec { lookback_days: Some(lookback), ..models.clone() };
        attribute_events(&events.chunk(), &event_options(with_intervals(spec, 25, 0.8, 4)))
    };
    let compared = run(LookbackDays::Many(vec![0.0, 1.5]));
    let (unlimited, short) = (run(LookbackDays::One(0.0)), run(LookbackDays::One(1.5)));
    assert_eq!(compared.windows.len(), 2);
    let table = |models: &[mta_core::result::ModelResult]| interval_table(models);
    assert_eq!(table(&compared.windows[0].models), table(&compared.models), "the first window is the whole");
    assert!(same_intervals(&table(&compared.models), &table(&unlimited.models)));
    assert!(same_intervals(&table(&compared.windows[1].models), &table(&short.models)));
    assert!(!same_intervals(&table(&short.models), &table(&unlimited.models)), "the windows differ");
}

/// The CSV of the table named `table`, which must apply to `result`.
fn applying_table_csv(result: &AttributionResult, table: &str) -> String {
    let table: Table = table.parse().unwrap();
    assert!(table.applies_to(result), "{table:?}");
    table.csv(result)
}

/// `table` of `result` has the intervals of each part (label, models) in order, the part's
/// label column `column` first.
fn check_part_table<'a>(
    result: &AttributionResult,
    table: &str,
    column: &str,
    parts: impl Iterator<Item = (String, &'a Vec<mta_core::result::ModelResult>)>,
) {
    let csv = applying_table_csv(result, table);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(format!("{column},{INTERVALS_CSV_HEADER}").as_str()));
    let mut want = Vec::new();
    for (label, models) in parts {
        for m in models {
            for c in &m.channels {
                let i = c.interval.as_ref().expect("every part's channel has an interval");
                want.push(format!(
                    "{label},{},{},{},{},{}",
                    m.model, c.channel, c.conversions, i.conversions_low, i.conversions_high
                ));
            }
        }
    }
    let fields = 5 + column.split(',').count();
    let got: Vec<String> = lines.map(|line| line.split(',').take(fields).collect::<Vec<_>>().join(",")).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want, "{table:?}");
}

#[test]
fn the_intervals_of_every_period_segment_and_window_have_their_tables() {
    let events = simulated(80, 3, &["a", "b", "c"], 0.5, 0.3, 41);
    let models = only(&["linear", "markov"]);
    let windows = OptionsSpec { lookback_days: Some(LookbackDays::Many(vec![0.0, 1.5])), ..models.clone() };
    let result = attribute_events(&events.chunk(), &event_options(with_intervals(windows, 12, 0.9, 1)));
    let parts = result.windows.iter().map(|w| (w.lookback_days.to_string(), &w.models));
    check_part_table(&result, "window_intervals", "lookback_days", parts);
    assert!(!"period_intervals".parse::<Table>().unwrap().applies_to(&result), "no period asked");

    let mut two_weeks = events.clone();
    for row in simulated(50, 2, &["a", "b"], 0.2, 0.3, 42).rows {
        two_weeks.rows.push(Row { time: row.time + 14 * DAY, ..row });
    }
    let weekly = OptionsSpec { period: Some(mta_core::period::Period::Week), ..models.clone() };
    let result = attribute_events(&two_weeks.chunk(), &event_options(with_intervals(weekly.clone(), 12, 0.9, 1)));
    assert_eq!(result.periods.len(), 2);
    check_part_table(
        &result,
        "period_intervals",
        "period",
        result.periods.iter().map(|p| (p.period.clone(), &p.models)),
    );
    assert!(!"window_intervals".parse::<Table>().unwrap().applies_to(&result), "one window");

    // Segments by user (the first 40 users of each generator are "x"), and their weeks.
    let mut chunk = two_weeks.chunk();
    let (x, y) = (chunk.segments.id("x"), chunk.segments.id("y"));
    chunk.segment_ids = two_weeks
        .rows
        .iter()
        .map(|r| if r.user.rsplit('u').next().unwrap().parse::<usize>().unwrap() < 40 { x } else { y })
        .collect();
    let segmented = OptionsSpec { segment_by: Some("team".into()), ..weekly };
    let options = event_options(with_intervals(segmented, 12, 0.9, 1));
    let result = Partial::from_events(&chunk, &options).and_then(|p| p.finish(&options)).unwrap();
    assert_eq!(result.segments.len(), 2);
    let parts = result
        .segments
        .iter()
        .flat_map(|s| s.periods.iter().map(move |p| (format!("{},{}", s.value().unwrap(), p.period), &p.models)));
    check_part_table(&result, "segment_period_intervals", "team,period", parts);
    let parts = result.segments.iter().map(|s| (s.value().unwrap().to_owned(), &s.models));
    check_part_table(&result, "segment_intervals", "team", parts);
}

#[test]
fn each_breakdown_row_has_the_interval_of_its_replicates_rows() {
    // Last touch by campaign: (email, spring) is credited u1 and u3's conversions, (email,
    // summer) u2's, (search, brand) u4's and u5's. Replicate r credits each row its users'
    // weights. Under markov, email's rows split email's replicate credit by the replicate's
    // shares; search has one row, whose interval is search's own.
    let journeys = [
        ("u1", "email", Some("spring"), 10.0),
        ("u2", "email", Some("summer"), 20.0),
        ("u3", "email", Some("spring"), 30.0),
        ("u4", "search", Some("brand"), 40.0),
        ("u5", "search", Some("brand"), 50.0),
    ];
    let mut events = Events::new();
    for (user, channel, campaign, value) in journeys {
        events = events.journey(user, &[&mta_core::chunk::touch_key(channel, &[campaign])], value);
    }
    let (replicates, seed) = (40, 3);
    let spec = OptionsSpec { breakdown: Some(vec!["campaign".into()]), ..only(&["last_touch", "markov"]) };
    let result = attribute_events(&events.chunk(), &event_options(with_intervals(spec, replicates, 0.8, seed)));
    let row = |id: ModelId, channel: &str, campaign: &str| {
        let rows = model(&result, id).breakdown.as_ref().expect("a breakdown was asked for");
        rows.iter().find(|r| r.channel == channel && r.values[0].1 == campaign).unwrap().clone()
    };
    for (channel, campaign) in [("email", "spring"), ("email", "summer"), ("search", "brand")] {
        let (mut conversions, mut values) = (Vec::new(), Vec::new());
        for r in 0..replicates {
            let (mut c, mut v) = (0.0, 0.0);
            for (user, ch, cp, value) in journeys {
                if ch == channel && cp == Some(campaign) {
                    let w = user_weight(user_key(user.as_bytes()), r, seed) as f64;
                    (c, v) = (c + w, v + w * value);
                }
            }
            conversions.push(c);
            values.push(v);
        }
        conversions.sort_by(f64::total_cmp);
        values.sort_by(f64::total_cmp);
        let interval = row(ModelId::LastTouch, channel, campaign).interval.expect("every row has an interval");
        assert_close(interval.conversions_low, quantile(&conversions, 0.1), 1e-12);
        assert_close(interval.conversions_high, quantile(&conversions, 0.9), 1e-12);
        assert_close(interval.value_low, quantile(&values, 0.1), 1e-12);
        assert_close(interval.value_high, quantile(&values, 0.9), 1e-12);
    }
    let search = model(&result, ModelId::Markov).channels.iter().find(|c| c.channel == "search").unwrap();
    let (channel, brand) =
        (search.interval.as_ref().unwrap(), row(ModelId::Markov, "search", "brand").interval.unwrap());
    assert_close(brand.conversions_low, channel.conversions_low, 1e-12);
    assert_close(brand.value_high, channel.value_high, 1e-12);
    let spring = row(ModelId::Markov, "email", "spring").interval.unwrap();
    assert!(spring.conversions_low < spring.conversions_high);
    // The `breakdown_intervals` table: every row, each figure followed by its bounds.
    let table: Table = "breakdown_intervals".parse().unwrap();
    assert!(table.applies_to(&result));
    let csv = table.csv(&result);
    let lines: Vec<&str> = csv.lines().collect();
    let header = "model,channel,campaign,conversions,conversions_low,conversions_high,value,value_low,value_high";
    assert_eq!(lines[0], header);
    assert_eq!(lines.len(), 1 + 2 * 3, "two models × three rows");
    let r = row(ModelId::Markov, "email", "spring");
    let i = r.interval.as_ref().unwrap();
    let want = format!(
        "markov,email,spring,{},{},{},{},{},{}",
        r.conversions, i.conversions_low, i.conversions_high, r.value, i.value_low, i.value_high
    );
    assert!(lines.contains(&want.as_str()), "{csv}");

    // Past the cap on rows × replicates: refused, naming it, as soon as a chunk's keys pass it.
    let mut events = Events::new();
    for user in 0..1001 {
        let campaign = format!("c{user}");
        events = events.journey(&format!("u{user}"), &[&mta_core::chunk::touch_key("email", &[Some(&campaign)])], 1.0);
    }
    let spec = OptionsSpec { breakdown: Some(vec!["campaign".into()]), ..only(&["linear"]) };
    let err = Partial::from_events(&events.chunk(), &event_options(with_intervals(spec, 1000, 0.9, 0))).unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("max_breakdown_replicates"), "{err}");
    let err = mta_core::intervals::check_breakdown_replicates(10_001, 100).unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("max_breakdown_replicates"), "{err}");
    mta_core::intervals::check_breakdown_replicates(10_000, 100).expect("within the cap");
}

/// Users `u0`, `u1`, ... with 1 to 3 touches of channel × campaign keys a day apart, 70%
/// converting (values no double holds), odd users two weeks after even ones.
fn campaign_journeys(users: usize, seed: u64) -> Events {
    let (channels, campaigns) = (["email", "search", "display"], [Some("spring"), Some("summer"), None]);
    let mut rng = Rng(seed);
    let mut events = Events::new();
    for user in 0..users {
        let at = T0 + (user % 2) as i64 * 14 * DAY;
        let touches = 1 + (rng.next() * 3.0) as usize;
        let name = format!("u{user}");
        for i in 0..touches {
            let key = mta_core::chunk::touch_key(
                channels[(rng.next() * 3.0) as usize],
                &[campaigns[(rng.next() * 3.0) as usize]],
            );
            events = events.touch(&name, at - (touches - i) as i64 * DAY, &key);
        }
        if rng.next() < 0.7 {
            events = events.conversion(&name, at, [19.99, 5.07, 0.3][user % 3]);
        }
    }
    events
}

/// The rows' segments: users whose number is a multiple of 3 are team `x`, the others `y`.
fn with_teams(mut chunk: mta_core::EventChunk, rows: &[Row]) -> mta_core::EventChunk {
    let team = |row: &Row| if row.user[1..].parse::<usize>().unwrap() % 3 == 0 { "x" } else { "y" };
    chunk.segment_ids = rows.iter().map(|row| chunk.segments.id(team(row))).collect();
    chunk
}

/// Each model's breakdown rows' intervals by (model, channel, values), every row having one.
fn row_intervals(models: &[mta_core::result::ModelResult]) -> Vec<(String, [f64; 4])> {
    let mut rows: Vec<(String, [f64; 4])> = models
        .iter()
        .flat_map(|m| {
            m.breakdown.iter().flatten().map(move |r| {
                let what = format!("{} {} {:?}", m.model, r.channel, r.values);
                let i = r.interval.as_ref().unwrap_or_else(|| panic!("{what} has an interval"));
                (what, [i.conversions_low, i.conversions_high, i.value_low, i.value_high])
            })
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[track_caller]
fn assert_same_rows(got: &[(String, [f64; 4])], want: &[(String, [f64; 4])]) {
    assert_eq!(got.iter().map(|r| &r.0).collect::<Vec<_>>(), want.iter().map(|r| &r.0).collect::<Vec<_>>());
    for ((what, got), (_, want)) in got.iter().zip(want) {
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: {got:?} vs {want:?}");
        }
    }
}

/// `table` of `result` lists each part's (label, models) breakdown rows, every figure followed
/// by its bounds, the part's label column `column` first.
fn check_part_row_table<'a>(
    result: &AttributionResult,
    table: &str,
    column: &str,
    parts: impl Iterator<Item = (String, &'a Vec<mta_core::result::ModelResult>)>,
) {
    let csv = applying_table_csv(result, table);
    let mut lines = csv.lines();
    let header = "model,channel,campaign,conversions,conversions_low,conversions_high,value,value_low,value_high";
    assert_eq!(lines.next(), Some(format!("{column},{header}").as_str()));
    let mut want = Vec::new();
    for (label, models) in parts {
        for m in models {
            for r in m.breakdown.iter().flatten() {
                let i = r.interval.as_ref().expect("every part's row has an interval");
                want.push(format!(
                    "{label},{},{},{},{},{},{},{},{},{}",
                    m.model,
                    r.channel,
                    r.values[0].1,
                    r.conversions,
                    i.conversions_low,
                    i.conversions_high,
                    r.value,
                    i.value_low,
                    i.value_high
                ));
            }
        }
    }
    assert!(!want.is_empty());
    assert_eq!(lines.map(str::to_owned).collect::<Vec<_>>(), want, "{table:?}");
}

#[test]
fn each_parts_breakdown_rows_have_the_intervals_of_a_run_over_its_own_journeys() {
    // Two weeks of users in two teams: every week's, team's and team week's rows have the
    // intervals the whole's rows have in a run over that part's journeys alone (the replicates
    // draw by user), and so do a further lookback window's under that window alone.
    let events = campaign_journeys(160, 5);
    let base = OptionsSpec { breakdown: Some(vec!["campaign".into()]), ..only(&["linear", "markov", "shao_li"]) };
    let run = |spec: &OptionsSpec, rows: &[Row]| {
        let options = event_options(with_intervals(spec.clone(), 20, 0.8, 3));
        let chunk = with_teams(event_chunk(rows), rows);
        Partial::from_events(&chunk, &options).and_then(|p| p.finish(&options)).unwrap()
    };
    let weekly = OptionsSpec { period: Some(mta_core::period::Period::Week), ..base.clone() };
    let parted = run(&OptionsSpec { segment_by: Some("team".into()), ..weekly.clone() }, &events.rows);
    let (weeks, teams) = (&parted.periods, &parted.segments);
    assert_eq!((weeks.len(), teams.len()), (2, 2));
    let of = |keep: &dyn Fn(&Row) -> bool| -> Vec<Row> { events.rows.iter().filter(|r| keep(r)).cloned().collect() };
    let user = |row: &Row| row.user[1..].parse::<usize>().unwrap();
    let in_week = |row: &Row, week: usize| user(row) % 2 == week;
    let in_team = |row: &Row, team: &str| (user(row) % 3 == 0) == (team == "x");
    for (week, period) in weeks.iter().enumerate() {
        let alone = run(&base, &of(&|r| in_week(r, week)));
        assert_same_rows(&row_intervals(&period.models), &row_intervals(&alone.models));
    }
    for team in teams {
        let name = team.value().unwrap().to_owned();
        let alone = run(&weekly, &of(&|r| in_team(r, &name)));
        assert_same_rows(&row_intervals(&team.models), &row_intervals(&alone.models));
        assert_eq!(team.periods.len(), 2);
        for (week, period) in team.periods.iter().enumerate() {
            assert_same_rows(&row_intervals(&period.models), &row_intervals(&alone.periods[week].models));
        }
    }
    // Their tables: every part's rows with their bounds, its label first.
    check_part_row_table(
        &parted,
        "period_breakdown_intervals",
        "period",
        weeks.iter().map(|p| (p.period.clone(), &p.models)),
    );
    check_part_row_table(
        &parted,
        "segment_breakdown_intervals",
        "team",
        teams.iter().map(|s| (s.value().unwrap().to_owned(), &s.models)),
    );
    let plain = run(&base, &events.rows);
    assert!(!"period_breakdown_intervals".parse::<Table>().unwrap().applies_to(&plain), "no period asked");
    assert!(!"segment_breakdown_intervals".parse::<Table>().unwrap().applies_to(&plain), "no segments asked");

    let windows =
        run(&OptionsSpec { lookback_days: Some(LookbackDays::Many(vec![0.0, 1.5])), ..base.clone() }, &events.rows);
    let short = run(&OptionsSpec { lookback_days: Some(LookbackDays::One(1.5)), ..base }, &events.rows);
    assert_same_rows(&row_intervals(&windows.windows[1].models), &row_intervals(&short.models));
    assert_same_rows(&row_intervals(&windows.windows[0].models), &row_intervals(&windows.models));
}

#[test]
fn rank_probabilities_count_only_the_replicates_that_credit_some_conversion() {
    // u1 converts through b; u2 touches a and does not convert. In a replicate that draws u1
    // 0 times nothing converts and a and b tie: no ranking, so b is first in every replicate
    // that ranks (by name, a would have been first in the others).
    let events = Events::new().journey("u1", &["b"], 10.0).touch("u2", T0 - DAY, "a");
    let (replicates, seed) = (60, 2);
    let options = event_options(with_intervals(only(&["last_touch"]), replicates, 0.9, seed));
    let result = attribute_events(&events.chunk(), &options);
    let unranked = (0..replicates).filter(|&r| user_weight(user_key(b"u1"), r, seed) == 0).count();
    assert!(unranked > 5, "about e^-1 of the replicates draw u1 0 times: {unranked}");
    let channel = |name: &str| {
        let channels = &model(&result, ModelId::LastTouch).channels;
        channels.iter().find(|c| c.channel == name).unwrap().interval.clone().unwrap()
    };
    let (a, b) = (channel("a"), channel("b"));
    assert_eq!((b.rank_1_probability, b.median_rank), (1.0, 1.0));
    assert_eq!((a.rank_1_probability, a.median_rank, a.top_3_probability), (0.0, 2.0, 1.0));
    assert_eq!(b.conversions_low, 0.0, "the unranked replicates still count in the intervals");

    // Nothing converts at all: no replicate ranks, so the probabilities are 0 and the median
    // rank is the result's.
    let events = Events::new().touch("u1", T0 - DAY, "b").touch("u2", T0 - DAY, "a");
    let result = attribute_events(&events.chunk(), &options);
    let channels = &model(&result, ModelId::LastTouch).channels;
    assert_eq!(channels.len(), 2, "touched channels are listed");
    for (rank, c) in channels.iter().enumerate() {
        let i = c.interval.as_ref().unwrap();
        assert_eq!((i.rank_1_probability, i.top_3_probability, i.median_rank), (0.0, 0.0, (rank + 1) as f64));
    }
}

/// Every interval of a result as JSON (each model's channels and breakdown rows, every
/// part's too: periods, segments, their periods, windows), one line each in name order:
/// compared as text, so to the last bit.
fn interval_lines(result: &AttributionResult) -> Vec<String> {
    fn periods(label: String, periods: &[mta_core::result::PeriodResult]) -> Vec<(String, &Vec<ModelResult>)> {
        periods.iter().map(|p| (format!("{label}{}", p.period), &p.models)).collect()
    }
    let mut parts = vec![("whole".to_owned(), &result.models)];
    parts.extend(periods(String::new(), &result.periods));
    for s in &result.segments {
        let label = format!("{:?} ", s.value());
        parts.push((label.clone(), &s.models));
        parts.extend(periods(label, &s.periods));
    }
    parts.extend(result.windows.iter().map(|w| (format!("window {}", w.lookback_days), &w.models)));
    let mut lines = Vec::new();
    for (part, models) in parts {
        for m in models {
            for c in &m.channels {
                let interval = serde_json::to_string(c.interval.as_ref().expect("every channel has one")).unwrap();
                lines.push(format!("{part} {} {} {interval}", m.model, c.channel));
            }
            for row in m.breakdown.iter().flatten() {
                let interval = serde_json::to_string(row.interval.as_ref().expect("every row has one")).unwrap();
                lines.push(format!("{part} {} {} {:?} {interval}", m.model, row.channel, row.values));
            }
        }
    }
    lines.sort();
    lines
}

#[test]
fn intervals_are_the_same_to_the_last_bit_however_chunks_are_grouped_and_merged() {
    // Values no double holds (19.99), thirds of linear credit and time decay's weights: their
    // replicate sums, added in another order, would differ in their last bits if not exact.
    let (channels, campaigns) = (["display", "email", "search", "social", "video"], [Some("spring"), None]);
    let mut rng = Rng(11);
    let mut events = Events::new();
    for user in 0..300 {
        let touches = 1 + (rng.next() * 4.0) as usize;
        let path: Vec<String> = (0..touches)
            .map(|_| {
                let channel = channels[(rng.next() * 5.0) as usize];
                mta_core::chunk::touch_key(channel, &[campaigns[(rng.next() * 2.0) as usize]])
            })
            .collect();
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        let user = format!("u{user}");
        if rng.next() < 0.3 {
            for (i, key) in path.iter().enumerate() {
                events = events.touch(&user, T0 - (touches - i) as i64 * DAY, key);
            }
        } else {
            events = events.journey(&user, &path, [19.99, 5.07, 0.3, 1234.56][user.len() % 4]);
        }
    }
    // Without a breakdown a touch key is just a channel name: the same events, more channels.
    let rule_models = ["first_touch", "last_touch", "linear", "position_based", "time_decay", "shapley"];
    let models: Vec<String> = rule_models.iter().chain(&["markov", "shao_li"]).map(|m| m.to_string()).collect();
    let base = OptionsSpec { models: Some(models), ..OptionsSpec::default() };
    let specs = [
        ("markov order 2", OptionsSpec { markov_order: Some(mta_core::MarkovOrder::Fixed(2)), ..base.clone() }),
        ("markov auto", OptionsSpec { markov_order: Some(mta_core::MarkovOrder::Auto), ..base.clone() }),
        ("breakdown", OptionsSpec { breakdown: Some(vec!["campaign".into()]), ..base.clone() }),
        ("weeks", OptionsSpec { period: Some(mta_core::period::Period::Week), ..only(&["linear", "time_decay"]) }),
        (
            "breakdown by team and week",
            OptionsSpec {
                breakdown: Some(vec!["campaign".into()]),
                period: Some(mta_core::period::Period::Week),
                segment_by: Some("team".into()),
                ..only(&["linear", "time_decay", "markov", "shao_li"])
            },
        ),
        (
            "breakdown under two windows",
            OptionsSpec {
                breakdown: Some(vec!["campaign".into()]),
                lookback_days: Some(LookbackDays::Many(vec![0.0, 2.5])),
                ..only(&["position_based", "markov"])
            },
        ),
    ];
    for (label, spec) in specs {
        // Users whose number is a multiple of 3 are team `x`: a chunk numbers its teams as it
        // meets them.
        let teamed = |chunk, rows: &[Row]| if spec.segment_by.is_some() { with_teams(chunk, rows) } else { chunk };
        let options = event_options(with_intervals(spec.clone(), 20, 0.9, 6));
        let want = interval_lines(&attribute_events(&teamed(events.chunk(), &events.rows), &options));
        assert!(want.len() > 20, "{want:?}");
        for n in [2u32, 7] {
            let mut chunks: Vec<Vec<Row>> = vec![Vec::new(); n as usize];
            for row in &events.rows {
                chunks[mta_core::chunk::partition_of(user_key(row.user.as_bytes()), n) as usize].push(row.clone());
            }
            // Each chunk numbers its channels its own way (odd ones backwards), as partitions do.
            let partials: Vec<Partial> = chunks
                .iter()
                .enumerate()
                .map(|(i, rows)| {
                    let mut names: Vec<&str> = rows.iter().filter_map(|r| r.channel.as_deref()).collect();
                    names.sort_unstable();
                    names.dedup();
                    if i % 2 == 1 {
                        names.reverse();
                    }
                    let mut dict = mta_core::ChannelDict::default();
                    for name in names {
                        dict.id(name);
                    }
                    let chunk = teamed(event_chunk_with_dict(rows, dict), rows);
                    let partial = Partial::from_events(&chunk, &options).unwrap();
                    // As partials travel between the stages.
                    serde_json::from_str(&serde_json::to_string(&partial).unwrap()).unwrap()
                })
                .collect();
            let mut forward = partials[0].clone();
            partials[1..].iter().for_each(|p| forward.merge(p));
            let mut backward = Partial::new(&options, &[]);
            partials.iter().rev().for_each(|p| backward.merge(p));
            let (left, right) = partials.split_at(partials.len() / 2);
            let mut halves = right.iter().fold(Partial::new(&options, &[]), |mut t, p| (t.merge(p), t).1);
            halves.merge(&left.iter().fold(Partial::new(&options, &[]), |mut t, p| (t.merge(p), t).1));
            for (grouping, merged) in [("forward", forward), ("backward", backward), ("halves", halves)] {
                let got = interval_lines(&merged.finish(&options).unwrap());
                assert_eq!(got.len(), want.len(), "{label}: {n} chunks merged {grouping}");
                if let Some((got, want)) = got.iter().zip(&want).find(|(got, want)| got != want) {
                    panic!("{label}: {n} chunks merged {grouping}:\n got {got}\nwant {want}");
                }
            }
        }
    }
}
