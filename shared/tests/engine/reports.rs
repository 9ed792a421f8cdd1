//! Hand-computed top paths and transition tables through the whole pipeline (chunk →
//! `Partial` → merge → `finish`), docs/user-guide.md, "Top paths" and "Transition matrix":
//! escaping, ranking, the bound past `max_report_paths`, and state names.

use mta_core::paths::split_path;
use mta_core::{MarkovOrder, ModelId, OptionsSpec, Partial};

use crate::helpers::*;

#[test]
fn top_paths_by_hand_with_names_that_hold_the_separator() {
    // u1, u2: "a > b" then "back\slash", converting for 10 and 30; u3 the same path, no
    // conversion; u4: "…" alone, converting for 5; u5: "…" then nothing, twice (one journey).
    let events = Events::new()
        .journey("u1", &["a > b", "back\\slash"], 10.0)
        .journey("u2", &["a > b", "back\\slash"], 30.0)
        .touch("u3", T0 - DAY, "a > b")
        .touch("u3", T0, "back\\slash")
        .journey("u4", &["…"], 5.0)
        .touch("u5", T0, "…")
        .touch("u5", T0 + HOUR, "…");
    let options = event_options(OptionsSpec { top_paths: Some(5), ..only(&["linear"]) });
    let result = attribute_events(&events.chunk(), &options);
    let paths = result.reports.as_ref().unwrap().paths.as_ref().unwrap();
    assert!(paths.exact);
    assert_eq!(paths.distinct_paths, Some(3));
    let converting: Vec<(&str, u32, f64, f64, f64, f64)> = paths
        .converting
        .iter()
        .map(|p| (p.path.as_str(), p.touches, p.journeys, p.conversions, p.value, p.null_journeys))
        .collect();
    assert_eq!(converting, [("a \\> b > back\\\\slash", 2, 3.0, 2.0, 40.0, 1.0), ("\\…", 1, 1.0, 1.0, 5.0, 0.0)]);
    let non_converting: Vec<(&str, f64)> =
        paths.non_converting.iter().map(|p| (p.path.as_str(), p.null_journeys)).collect();
    assert_eq!(non_converting, [("\\… > \\…", 1.0), ("a \\> b > back\\\\slash", 1.0)]);
    // The strings read back to the exact names.
    assert_eq!(split_path(&paths.converting[0].path), [Some("a > b".to_owned()), Some("back\\slash".to_owned())]);
    assert_eq!(split_path(&paths.non_converting[0].path), [Some("…".to_owned()), Some("…".to_owned())]);
    // The CSV table: quoted where CSV needs it, ranked per list.
    let csv = mta_core::result::Table::Paths.csv(&result);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "list,rank,path,touches,journeys,conversions,value,null_journeys,exact");
    assert_eq!(lines[1], "converting,1,a \\> b > back\\\\slash,2,3,2,40,1,true");
    assert_eq!(lines[3], "non_converting,1,\\… > \\…,2,1,0,0,1,true");
    assert_eq!(lines.len(), 5);
}

#[test]
fn top_paths_of_path_rows_keep_fractions_and_the_limit_on_rows() {
    let rows = [
        path_row(&["c1", "c2"], 1.5, 15.0, 0.5),
        path_row(&["c2"], 0.0, 0.0, 4.0),
        path_row(&["c1", "c2"], 0.5, 5.0, 0.0),
        path_row(&["c3", "c1"], 3.0, 1.0, 0.0),
        path_row(&[], 2.0, 2.0, 0.0),
    ];
    let options = path_options(OptionsSpec { top_paths: Some(1), ..Default::default() });
    let result = attribute_paths(&rows, &options);
    let paths = result.reports.as_ref().unwrap().paths.as_ref().unwrap();
    // c3 > c1 has the most conversions (3); c1 > c2 has 2.
    assert_eq!(paths.converting.len(), 1);
    assert_eq!((paths.converting[0].path.as_str(), paths.converting[0].conversions), ("c3 > c1", 3.0));
    assert_eq!((paths.non_converting[0].path.as_str(), paths.non_converting[0].null_journeys), ("c2", 4.0));
    assert_eq!(paths.distinct_paths, Some(3), "a row without channels is no path");
}

#[test]
fn past_the_limit_paths_are_estimates_within_the_bound_over_merged_chunks() {
    // 60 users, user i converts on path [c(i % 30), c((i + 1) % 30), x] for i + 1; with a limit
    // of 8 distinct paths, each of three chunks and their merge summarise.
    let mut truth = std::collections::BTreeMap::<String, f64>::new();
    let mut chunks = vec![Events::new(), Events::new(), Events::new()];
    for i in 0..60usize {
        let (a, b) = (format!("c{}", i % 30), format!("c{}", (i + 1) % 30));
        let path = [a.as_str(), b.as_str(), "x"];
        *truth.entry(path.join(" > ")).or_default() += 1.0;
        let chunk = std::mem::take(&mut chunks[i % 3]);
        chunks[i % 3] = chunk.journey(&format!("u{i}"), &path, 1.0);
    }
    // Two paths get many more conversions: heavy hitters.
    for j in 0..40 {
        let chunk = std::mem::take(&mut chunks[j % 3]);
        chunks[j % 3] = chunk.journey(&format!("h{j}"), &["heavy", "x"], 2.0);
        *truth.entry("heavy > x".to_owned()).or_default() += 1.0;
    }
    let options = event_options(OptionsSpec { max_report_paths: Some(8), ..only(&["linear"]) });
    let mut total = Partial::new(&options, &[]);
    for chunk in &chunks {
        total.merge(&Partial::from_events(&chunk.chunk(), &options).unwrap());
    }
    let result = total.finish(&options).unwrap();
    let paths = result.reports.as_ref().unwrap().paths.as_ref().unwrap();
    assert!(!paths.exact, "more distinct paths than the limit");
    assert_eq!(paths.distinct_paths, None);
    let bound = paths.error_bound.conversions;
    let all: f64 = truth.values().sum();
    assert!(bound > 0.0 && bound <= all / 3.0, "bound {bound}: at most N / (k + 1), k = 2");
    for row in &paths.converting {
        let want = truth[&row.path];
        assert!(row.conversions <= want + 1e-9 && row.conversions >= want - bound - 1e-9, "{row:?} vs {want}");
        assert!(row.value <= 2.0 * want + 1e-9, "value never above the truth: {row:?}");
    }
    assert_eq!(paths.converting[0].path, "heavy > x", "the heavy hitter is found: {paths:?}");
    // The CSV says so on every row.
    let csv = mta_core::result::Table::Paths.csv(&result);
    assert!(csv.lines().skip(1).all(|l| l.ends_with(",false")), "{csv}");
}

#[test]
fn the_transition_table_names_states_of_every_order() {
    let rows = [
        path_row(&["c1", "c2"], 1.0, 10.0, 0.0),
        path_row(&["c1"], 0.0, 0.0, 1.0),
        path_row(&["c2", "c1", "c2"], 1.0, 5.0, 1.0),
    ];
    let order1 =
        attribute_paths(&rows, &path_options(OptionsSpec { markov_order: Some(1.into()), ..Default::default() }));
    let t = order1.reports.as_ref().unwrap().transitions.as_ref().unwrap();
    let got: Vec<(&str, &str, f64, f64)> =
        t.rows.iter().map(|r| (r.from.as_str(), r.to.as_str(), r.count, r.probability)).collect();
    // Weights: c1 c2 (1), c1 (1), c2 c1 c2 (2). Out of c1: → c2 3, → (null) 1; out of c2:
    // → c1 2, → (conversion) 2, → (null) 1; (start): → c1 2, → c2 2.
    assert_eq!(
        got,
        [
            ("c1", "c2", 3.0, 0.75),
            ("(start)", "c1", 2.0, 0.5),
            ("(start)", "c2", 2.0, 0.5),
            ("c2", "(conversion)", 2.0, 0.4),
            ("c2", "c1", 2.0, 0.4),
            ("c1", "(null)", 1.0, 0.25),
            ("c2", "(null)", 1.0, 0.2),
        ]
    );
    assert_eq!((t.order, t.total, t.truncated), (1, 7, false));
    let csv = mta_core::result::Table::Transitions.csv(&order1);
    assert!(csv.starts_with("from,to,count,probability\nc1,c2,3,0.75\n(start),c1,2,0.5\n"), "{csv}");
    let order2 =
        attribute_paths(&rows, &path_options(OptionsSpec { markov_order: Some(2.into()), ..Default::default() }));
    let t = order2.reports.as_ref().unwrap().transitions.as_ref().unwrap();
    let states: std::collections::BTreeSet<&str> =
        t.rows.iter().flat_map(|r| [r.from.as_str(), r.to.as_str()]).collect();
    let want = ["(conversion)", "(null)", "(start)", "c1", "c1 > c2", "c2 > c1"];
    assert_eq!(states.into_iter().collect::<Vec<_>>(), want);
    // With `markov_order: auto` the table is that of the chain of the order chosen.
    let auto = OptionsSpec { markov_order: Some(MarkovOrder::Auto), ..Default::default() };
    let auto = attribute_paths(&rows, &path_options(auto));
    let chosen = model(&auto, ModelId::Markov).order.expect("markov has an order");
    let fixed = OptionsSpec { markov_order: Some(chosen.into()), ..Default::default() };
    let fixed = attribute_paths(&rows, &path_options(fixed));
    let table = |r: &mta_core::AttributionResult| r.reports.as_ref().unwrap().transitions.clone();
    assert!(table(&auto).is_some_and(|t| t.order == chosen));
    assert_eq!(table(&auto), table(&fixed));
    // Without markov there is no table.
    let linear = attribute_paths(&rows, &path_options(only(&["linear"])));
    assert!(linear.reports.as_ref().unwrap().transitions.is_none());
    assert!(!mta_core::result::Table::Transitions.applies_to(&linear));
}

#[test]
fn each_period_has_its_own_reports_and_tables_by_hand() {
    // Day 1 (T0): u1 a > b converts (10), u2 a converts (5). Day 2: u3 b > a converts (7),
    // u4 touches b and does not convert.
    let events = Events::new()
        .journey("u1", &["a", "b"], 10.0)
        .journey("u2", &["a"], 5.0)
        .touch("u3", T0 + HOUR, "b")
        .touch("u3", T0 + DAY, "a")
        .conversion("u3", T0 + DAY + HOUR, 7.0)
        .touch("u4", T0 + DAY, "b");
    let spec = OptionsSpec { period: Some(mta_core::period::Period::Day), ..only(&["linear", "markov"]) };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    assert_eq!(result.periods.len(), 2);
    type Listed = (Vec<(String, f64, f64)>, Vec<(String, f64)>);
    let listed = |reports: &mta_core::reports::Reports| -> Listed {
        let paths = reports.paths.as_ref().unwrap();
        assert!(paths.exact);
        (
            paths.converting.iter().map(|p| (p.path.clone(), p.conversions, p.value)).collect(),
            paths.non_converting.iter().map(|p| (p.path.clone(), p.null_journeys)).collect(),
        )
    };
    let [first, second] = [0, 1].map(|i| result.periods[i].reports.as_ref().expect("a period's reports"));
    let s = |x: &str| x.to_owned();
    assert_eq!(listed(first), (vec![(s("a > b"), 1.0, 10.0), (s("a"), 1.0, 5.0)], vec![]));
    assert_eq!(listed(second), (vec![(s("b > a"), 1.0, 7.0)], vec![(s("b"), 1.0)]));
    // The whole's paths are every period's.
    let (converting, non_converting) = listed(result.reports.as_ref().unwrap());
    assert_eq!(converting.len(), 3);
    assert_eq!(non_converting, [(s("b"), 1.0)]);
    // Touches per converting journey and positions, per period.
    let lengths = |r: &mta_core::reports::Reports| r.path_length.iter().map(|b| b.conversions).collect::<Vec<_>>();
    assert_eq!(lengths(first)[..3], [1.0, 1.0, 0.0]);
    assert_eq!(lengths(second)[..3], [0.0, 1.0, 0.0]);
    let a = |r: &mta_core::reports::Reports| r.positions.iter().find(|c| c.channel == "a").unwrap().positions;
    assert_eq!((a(first).only, a(first).first, a(first).last), (1.0, 1.0, 0.0));
    assert_eq!((a(second).only, a(second).first, a(second).last), (0.0, 0.0, 1.0));
    // Each period's Markov transitions: day 2 goes (start) → b twice (u3 and u4).
    let start_b = second.transitions.as_ref().unwrap().rows.iter().find(|t| t.from == "(start)" && t.to == "b");
    assert_eq!(start_b.map(|t| t.count), Some(2.0));
    // The tables: the whole's unchanged, each period's with a `period` column first.
    let day = |i: usize| result.periods[i].period.clone();
    let table = |name: &str| name.parse::<mta_core::result::Table>().unwrap();
    assert!(table("period_paths").applies_to(&result) && !table("segment_paths").applies_to(&result));
    let csv = table("period_paths").csv(&result);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "period,list,rank,path,touches,journeys,conversions,value,null_journeys,exact");
    assert_eq!(lines[1], format!("{},converting,1,a > b,2,1,1,10,0,true", day(0)));
    assert_eq!(lines[4], format!("{},non_converting,1,b,1,1,0,0,1,true", day(1)));
    assert_eq!(lines.len(), 5);
    let csv = table("period_path_length").csv(&result);
    assert_eq!(csv.lines().next(), Some("period,bucket,conversions,value"));
    assert_eq!(csv.lines().nth(1), Some(format!("{},1,1,5", day(0)).as_str()));
    assert_eq!(csv.lines().count(), 1 + 2 * 10);
    assert!(table("paths").csv(&result).starts_with("list,rank,"));
}

#[test]
fn a_part_counts_its_paths_in_a_smaller_table() {
    use mta_core::paths::{MIN_PART_REPORT_PATHS, part_report_paths};
    assert_eq!(part_report_paths(100_000), 1_000);
    assert_eq!(part_report_paths(1_000_000), 10_000);
    assert_eq!(part_report_paths(500), 500, "never more than the whole's");
    assert_eq!(part_report_paths(5_000), MIN_PART_REPORT_PATHS);
    // 1,200 distinct paths in one period: the whole (limit 2,000) is exact, the period's
    // table (1,000) summarises and says so.
    let channels: Vec<String> = (0..1_200).map(|i| format!("c{i}")).collect();
    let mut events = Events::new();
    for (i, channel) in channels.iter().enumerate() {
        events = events.journey(&format!("u{i}"), &[channel], 1.0);
    }
    let spec = OptionsSpec {
        period: Some(mta_core::period::Period::Month),
        max_report_paths: Some(2_000),
        ..only(&["linear"])
    };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    assert!(result.reports.as_ref().unwrap().paths.as_ref().unwrap().exact);
    let period = result.periods[0].reports.as_ref().unwrap().paths.as_ref().unwrap();
    assert!(!period.exact && period.distinct_paths.is_none() && period.error_bound.conversions > 0.0);
}

#[test]
fn segments_and_windows_have_their_own_reports_and_tables() {
    // Windows: u1's touch of a is 3 days before its conversion, b 1 day: the 2-day window
    // keeps b only.
    let events = Events::new().touch("u1", T0 - 3 * DAY, "a").touch("u1", T0 - DAY, "b").conversion("u1", T0, 4.0);
    let spec = OptionsSpec {
        lookback_days: Some(mta_core::options::LookbackDays::Many(vec![30.0, 2.0])),
        ..only(&["linear"])
    };
    let result = attribute_events(&events.chunk(), &event_options(spec));
    let path = |w: usize| {
        let paths = result.windows[w].reports.as_ref().unwrap().paths.as_ref().unwrap();
        paths.converting.iter().map(|p| p.path.clone()).collect::<Vec<_>>()
    };
    assert_eq!((path(0), path(1)), (vec!["a > b".to_owned()], vec!["b".to_owned()]));
    let csv = "window_paths".parse::<mta_core::result::Table>().unwrap().csv(&result);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "lookback_days,list,rank,path,touches,journeys,conversions,value,null_journeys,exact");
    assert_eq!(lines[1..], ["30,converting,1,a > b,2,1,1,4,0,true", "2,converting,1,b,1,1,1,4,0,true"]);
}

#[test]
fn every_table_name_reads_back_to_its_table() {
    use mta_core::result::Table;
    let names = Table::names();
    assert_eq!(names.len(), 21 + 4 * 8, "the whole's tables, and intervals and seven reports per kind of part");
    let unique: std::collections::BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len());
    for table in Table::all() {
        assert_eq!(table.as_str().parse::<Table>().unwrap(), table);
    }
    assert!(names.contains(&"segment_period_transitions") && names.contains(&"window_time_lag"));
}
