//! Segments (docs/user-guide.md, "Segments"), by hand: a journey counts in the segment of its
//! last row (its conversion row; a null journey's last touch), each segment is a complete
//! attribution with its own Markov chain, the rows without a value form the `(none)`
//! segment, the tidy table, a nested column, and the segment limit.

use mta_core::ingest::{Block, Format, InputSpec, Limits, open_text, read_csv, read_ndjson};
use mta_core::result::Table;
use mta_core::{AttributionError, AttributionResult, ErrorCode, EventChunk, ModelId, OptionsSpec, Partial};

use crate::helpers::*;

/// Reads a CSV or NDJSON input segmented by `column` into one chunk.
fn read_segmented(bytes: &[u8], column: &str, limits: Limits) -> Result<EventChunk, AttributionError> {
    let spec = InputSpec { segment_by: Some(column.to_owned()), limits, ..Default::default() };
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

fn attribute_segmented(bytes: &[u8], column: &str, models: &[&str]) -> AttributionResult {
    let chunk = read_segmented(bytes, column, Limits::default()).expect("input reads");
    let options = event_options(OptionsSpec { segment_by: Some(column.to_owned()), ..only(models) });
    Partial::from_events(&chunk, &options).and_then(|p| p.finish(&options)).expect("attribution succeeds")
}

/// u1 touches email and search in FR and converts in DE: its journey is DE's. u2 converts
/// through search in FR, then touches email in DE and stops: a null journey in DE. u3 has
/// no country at all.
const COUNTRIES: &[u8] = b"user_id,timestamp,channel,country,conversion,conversion_value
u1,2026-01-01T00:00:00Z,email,FR,0,
u1,2026-01-02T00:00:00Z,search,FR,0,
u1,2026-01-03T00:00:00Z,,DE,1,100
u2,2026-01-01T00:00:00Z,search,DE,0,
u2,2026-01-02T00:00:00Z,,FR,1,40
u2,2026-01-05T00:00:00Z,email, DE ,0,
u3,2026-01-01T00:00:00Z,display,,0,
u3,2026-01-02T00:00:00Z,,,1,10
";

fn segment(result: &AttributionResult, value: Option<&str>) -> AttributionResult {
    let s = result.segments.iter().find(|s| s.value() == value).expect("the segment is listed");
    AttributionResult {
        summary: s.summary.clone(),
        models: s.models.clone(),
        segments: Vec::new(),
        reports: None,
        ..result.clone()
    }
}

#[test]
fn a_journey_counts_in_the_segment_of_its_last_row() {
    let result = attribute_segmented(COUNTRIES, "country", &["last_touch", "first_touch", "linear", "markov"]);
    let labels: Vec<serde_json::Value> =
        result.segments.iter().map(|s| serde_json::to_value(&s.segment).unwrap()).collect();
    assert_eq!(
        labels,
        [
            serde_json::json!({"country": "DE"}),
            serde_json::json!({"country": "FR"}),
            serde_json::json!({"country": null})
        ]
    );
    let de = segment(&result, Some("DE"));
    let s = &de.summary;
    assert_eq!((s.conversions, s.conversion_value, s.converting_journeys, s.null_journeys), (1.0, 100.0, 1.0, 1.0));
    assert_eq!((s.rows, s.channels), (0, 2));
    assert_credits(&de, ModelId::LastTouch, &[("search", 1.0, 100.0), ("email", 0.0, 0.0)]);
    assert_credits(&de, ModelId::FirstTouch, &[("email", 1.0, 100.0), ("search", 0.0, 0.0)]);
    assert_credits(&de, ModelId::Linear, &[("email", 0.5, 50.0), ("search", 0.5, 50.0)]);
    // DE's own chain: start → email (2), email → search (1), email → null (1), search →
    // conversion (1). P(conversion) = 1/2; removing either channel leaves 0, so each has a
    // removal effect of 1 and half the conversion.
    let markov = model(&de, ModelId::Markov);
    assert_close(markov.conversion_probability.unwrap(), 0.5, 1e-12);
    assert_credits(&de, ModelId::Markov, &[("email", 0.5, 50.0), ("search", 0.5, 50.0)]);
    let fr = segment(&result, Some("FR"));
    assert_eq!((fr.summary.conversions, fr.summary.null_journeys), (1.0, 0.0));
    assert_credits(&fr, ModelId::Markov, &[("search", 1.0, 40.0)]);
    assert_credits(&fr, ModelId::LastTouch, &[("search", 1.0, 40.0)]);
    let none = segment(&result, None);
    assert_credits(&none, ModelId::Linear, &[("display", 1.0, 10.0)]);
    // The whole is every journey's: its own chain, not the segments' credits added up.
    assert_eq!(result.summary.conversions, 3.0);
    assert_credits(&result, ModelId::LastTouch, &[("search", 2.0, 140.0), ("display", 1.0, 10.0), ("email", 0.0, 0.0)]);
    // The whole's chain: start → email 2, search 1, display 1; email → search 1, null 1;
    // search → conversion 2; display → conversion 1. P = (2·1/2 + 1 + 1) / 4 = 3/4. Without
    // email: 2/4 (effect 1/3); without search: (0 + 0 + 1)/4 (effect 2/3); without display:
    // 2/4 (effect 1/3). Conversions 3 split 1:2:1.
    for (channel, conversions) in [("email", 0.75), ("search", 1.5), ("display", 0.75)] {
        assert_close(credit(&result, ModelId::Markov, channel).0, conversions, 1e-12);
    }
}

#[test]
fn the_segments_table_has_a_row_per_segment_model_and_channel() {
    let result = attribute_segmented(COUNTRIES, "country", &["last_touch"]);
    assert!(Table::Segments.applies_to(&result));
    assert_eq!(
        Table::Segments.csv(&result),
        "country,model,channel,conversions,value,share,removal_effect,removal_effect_value\n\
         DE,last_touch,search,1,100,1,,\n\
         DE,last_touch,email,0,0,0,,\n\
         FR,last_touch,search,1,40,1,,\n\
         ,last_touch,display,1,10,1,,\n"
    );
    let plain = attribute_segmented(COUNTRIES, "country", &["last_touch"]);
    let json = serde_json::to_string(&plain).unwrap();
    assert_eq!(serde_json::from_str::<AttributionResult>(&json).unwrap(), plain);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["options"]["segment_by"], "country");
    assert_eq!(value["segments"][1]["models"]["last_touch"]["channels"][0]["channel"], "search");
}

#[test]
fn a_nested_field_segments_ndjson_and_a_missing_column_is_named() {
    let ndjson =
        br#"{"user_id": "a", "timestamp": "2026-01-01", "channel": "email", "conversion": 0, "geo": {"country": "DE"}}
{"user_id": "a", "timestamp": "2026-01-02", "conversion": 1, "conversion_value": 5, "geo": {"country": "DE"}}
{"user_id": "b", "timestamp": "2026-01-01", "channel": "search", "conversion": 0, "geo": {"country": "FR"}}
{"user_id": "b", "timestamp": "2026-01-02", "conversion": 1, "conversion_value": 7, "geo": {}}
"#;
    let result = attribute_segmented(ndjson, "geo.country", &["linear"]);
    let values: Vec<Option<&str>> = result.segments.iter().map(|s| s.value()).collect();
    assert_eq!(values, [Some("DE"), None], "b's conversion row has no country: its journey is (none)'s");
    assert_credits(&segment(&result, None), ModelId::Linear, &[("search", 1.0, 7.0)]);
    let err = read_segmented(COUNTRIES, "region", Limits::default()).unwrap_err();
    assert_eq!(err.code, ErrorCode::MissingColumns);
    assert!(err.message.contains("region (segment_by)"), "{}", err.message);
}

#[test]
fn more_segments_than_the_limit_are_refused_naming_it() {
    let limits = Limits { max_segments: 1, ..Limits::default() };
    let err = read_segmented(COUNTRIES, "country", limits).unwrap_err();
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("max_segments"), "{}", err.message);
    assert!(read_segmented(COUNTRIES, "country", Limits { max_segments: 2, ..Limits::default() }).is_ok());
}

// ---- conversion types ------------------------------------------------------------------

/// u1 signs up, then buys; u2 buys. Events without a channel are conversions of a type.
const TYPES: &[u8] = b"user_id,timestamp,channel,event_name,conversion_value
u1,2025-12-25T00:00:00Z,email,page_view,
u1,2026-01-02T00:00:00Z,search,page_view,
u1,2026-01-03T00:00:00Z,,sign_up,
u1,2026-01-20T00:00:00Z,display,page_view,
u1,2026-01-21T00:00:00Z,,Purchase,100
u2,2026-01-01T00:00:00Z,search,page_view,
u2,2026-01-10T00:00:00Z,,purchase,40
";

fn attribute_types(bytes: &[u8], lookback: Option<&str>, models: &[&str]) -> AttributionResult {
    let types = vec!["purchase".to_owned(), "sign_up".to_owned()];
    let spec = InputSpec { conversion_types: types.clone(), ..Default::default() };
    let (_, reader) = open_text(bytes, None, None).unwrap();
    let mut chunks = Vec::new();
    read_csv(reader, &spec, |block: Block| {
        if let Block::Events(chunk) = block {
            chunks.push(chunk);
        }
        Ok::<(), AttributionError>(())
    })
    .expect("input reads");
    let lookback_days = lookback.map(|l| mta_core::LookbackDays::parse(l).unwrap());
    let options = event_options(OptionsSpec { conversion_types: Some(types), lookback_days, ..only(models) });
    let chunk = chunks.pop().unwrap();
    Partial::from_events(&chunk, &options).and_then(|p| p.finish(&options)).expect("attribution succeeds")
}

#[test]
fn each_conversion_type_is_attributed_on_its_own_under_its_own_window() {
    let result = attribute_types(TYPES, Some("purchase=30,sign_up=7"), &["first_touch", "last_touch"]);
    let labels: Vec<serde_json::Value> =
        result.segments.iter().map(|s| serde_json::to_value(&s.segment).unwrap()).collect();
    assert_eq!(
        labels,
        [serde_json::json!({"conversion_type": "purchase"}), serde_json::json!({"conversion_type": "sign_up"})]
    );
    // The whole: every type's conversions, under the default window (30 days): u1's sign-up
    // journey [email, search], its purchase journey [display], u2's [search].
    assert_eq!(result.summary.conversions, 3.0);
    assert_credits(
        &result,
        ModelId::FirstTouch,
        &[("email", 1.0, 0.0), ("display", 1.0, 100.0), ("search", 1.0, 40.0)],
    );
    // Purchases alone (30 days): u1's sign-up is no conversion, so its journey runs from
    // email (27 days before) to display; u2's is [search].
    let purchase = segment(&result, Some("purchase"));
    assert_eq!((purchase.summary.conversions, purchase.summary.null_journeys), (2.0, 0.0));
    assert_credits(
        &purchase,
        ModelId::FirstTouch,
        &[("email", 1.0, 100.0), ("search", 1.0, 40.0), ("display", 0.0, 0.0)],
    );
    assert_credits(
        &purchase,
        ModelId::LastTouch,
        &[("display", 1.0, 100.0), ("search", 1.0, 40.0), ("email", 0.0, 0.0)],
    );
    // Sign-ups alone (7 days): email, 9 days before, is outside the window; u1's display and
    // u2's search, with no sign-up after them, are null journeys.
    let sign_up = segment(&result, Some("sign_up"));
    assert_eq!((sign_up.summary.conversions, sign_up.summary.null_journeys), (1.0, 2.0));
    assert_credits(&sign_up, ModelId::FirstTouch, &[("search", 1.0, 0.0), ("display", 0.0, 0.0)]);
    assert_eq!(sign_up.summary.rows, 0, "rows are the whole's");
    assert_eq!(result.options.conversion_lookbacks, [30.0, 7.0]);
    assert!(Table::Segments.csv(&result).starts_with("conversion_type,model,channel,"));
    // Without its own window, a type has the default one: email (9 days before) is in.
    let default = attribute_types(TYPES, None, &["first_touch"]);
    assert_credits(
        &segment(&default, Some("sign_up")),
        ModelId::FirstTouch,
        &[("email", 1.0, 0.0), ("search", 0.0, 0.0), ("display", 0.0, 0.0)],
    );
}

#[test]
fn conversion_types_need_an_event_name_column() {
    let spec = InputSpec { conversion_types: vec!["purchase".into()], ..Default::default() };
    let (_, reader) = open_text(COUNTRIES, None, None).unwrap();
    let err = read_csv(reader, &spec, |_: Block| Ok::<(), AttributionError>(())).unwrap_err();
    assert_eq!(err.code, ErrorCode::MissingColumns);
    assert!(err.message.contains("event_name"), "{}", err.message);
}

#[test]
fn with_a_breakdown_each_segment_has_its_rows_and_their_table() {
    let csv = b"user_id,timestamp,channel,campaign,country,conversion,conversion_value
u1,2026-01-01T00:00:00Z,email,spring,DE,0,
u1,2026-01-02T00:00:00Z,,,DE,1,10
u2,2026-01-01T00:00:00Z,search,,FR,0,
u2,2026-01-02T00:00:00Z,,,FR,1,20
";
    let spec =
        InputSpec { segment_by: Some("country".into()), breakdown: vec!["campaign".into()], ..Default::default() };
    let (_, reader) = open_text(&csv[..], None, None).unwrap();
    let mut chunks = Vec::new();
    read_csv(reader, &spec, |block: Block| {
        if let Block::Events(chunk) = block {
            chunks.push(chunk);
        }
        Ok::<(), AttributionError>(())
    })
    .unwrap();
    let options = event_options(OptionsSpec {
        segment_by: Some("country".into()),
        breakdown: Some(vec!["campaign".into()]),
        ..only(&["last_touch"])
    });
    let result = Partial::from_events(&chunks[0], &options).and_then(|p| p.finish(&options)).unwrap();
    assert!(Table::SegmentBreakdown.applies_to(&result));
    assert_eq!(
        Table::SegmentBreakdown.csv(&result),
        "country,model,channel,campaign,conversions,value\n\
         DE,last_touch,email,spring,1,10\n\
         FR,last_touch,search,(none),1,20\n"
    );
    assert!(!Table::SegmentBreakdown.applies_to(&attribute_segmented(COUNTRIES, "country", &["linear"])));
}

#[test]
fn each_segment_has_its_own_reports_and_tables() {
    let result = attribute_segmented(COUNTRIES, "country", &["last_touch"]);
    let table: Table = "segment_paths".parse().unwrap();
    assert!(table.applies_to(&result));
    assert!(!"segment_period_paths".parse::<Table>().unwrap().applies_to(&result), "no period asked");
    // u1's path ends in DE, u2's in FR, and its later touch of email (DE) converts nothing; u3 has no country.
    assert_eq!(
        table.csv(&result),
        "country,list,rank,path,touches,journeys,conversions,value,null_journeys,exact\n\
         DE,converting,1,email > search,2,1,1,100,0,true\n\
         DE,non_converting,1,email,1,1,0,0,1,true\n\
         FR,converting,1,search,1,1,1,40,0,true\n\
         ,converting,1,display,1,1,1,10,0,true\n"
    );
    let de = result.segments[0].reports.as_ref().expect("a segment's reports");
    assert_eq!(de.path_length[1].conversions, 1.0);
    assert_eq!("segment_positions".parse::<Table>().unwrap().csv(&result).lines().nth(1), Some("DE,email,0,1,0,0"));
}

/// A cost table for [`COUNTRIES`] with a `Country` column (found for `segment_by: country`
/// in any case): DE's search and email, FR's search and display (which FR's journeys never
/// touch), display without a country (the `(none)` segment), ES (no segment) and tv (no
/// journey anywhere).
const COUNTRY_COSTS: &str = "date,channel,Country,cost
2026-01-01,search,DE,30
2026-01-02,search,DE,20
2026-01-01,email,DE,10
2026-01-01,search,FR,8
2026-01-01,display,FR,4
2026-01-01,display,,5
2026-01-01,search,ES,7
2026-01-01,tv,DE,3
";

/// (cost, CPA, ROAS) of `channel` under last touch in `segment`.
fn segment_cost(result: &AttributionResult, value: Option<&str>, channel: &str) -> [Option<f64>; 3] {
    let segment = result.segments.iter().find(|s| s.value() == value).expect("the segment is listed");
    let credit = segment.models[0].channel(channel).expect("the segment credits the channel");
    [credit.cost, credit.cpa, credit.roas].map(|f| f.expect("a cost table was joined"))
}

#[test]
fn each_segment_gets_the_cost_of_its_own_rows_by_hand() {
    let costs =
        mta_core::spend::CostTable::read_csv(COUNTRY_COSTS.as_bytes(), &Default::default(), Some("country")).unwrap();
    let mut result = attribute_segmented(COUNTRIES, "country", &["last_touch"]);
    result.add_spend(&costs);
    // DE: search credited 1 conversion worth 100 at a cost of 50; email, touched but not
    // credited, at 10. FR: search, 1 worth 40, at 8. No country: display, 1 worth 10, at 5.
    assert_eq!(segment_cost(&result, Some("DE"), "search"), [Some(50.0), Some(50.0), Some(2.0)]);
    assert_eq!(segment_cost(&result, Some("DE"), "email"), [Some(10.0), None, Some(0.0)]);
    assert_eq!(segment_cost(&result, Some("FR"), "search"), [Some(8.0), Some(8.0), Some(5.0)]);
    assert_eq!(segment_cost(&result, None, "display"), [Some(5.0), Some(5.0), Some(2.0)]);
    // The whole's cost is every row's, whatever its country.
    assert_eq!(result.models[0].channel("search").unwrap().cost, Some(Some(65.0)));
    let spend = result.spend.as_ref().unwrap();
    assert_eq!(spend.segment_column.as_deref(), Some("Country"));
    // Each segment's spend: FR's display cost, a channel FR's journeys never touch, is FR's
    // unmatched cost; ES, which no segment has, and tv, which no journey has, are the whole's.
    let unmatched = |s: &mta_core::spend::SpendSummary| -> Vec<(String, f64)> {
        s.unmatched_cost.iter().map(|u| (u.channel.clone(), u.cost)).collect()
    };
    let fr = result.segments.iter().find(|s| s.value() == Some("FR")).unwrap().spend.as_ref().unwrap();
    assert_eq!((fr.rows, fr.cost, fr.matched_cost), (2, 12.0, 8.0));
    assert_eq!(unmatched(fr), [("display".to_owned(), 4.0)]);
    assert_eq!(unmatched(spend), [("search".to_owned(), 7.0), ("tv".to_owned(), 3.0)]);
    let es = &spend.unmatched_cost[0];
    assert_eq!(es.segment, Some([("country".to_owned(), Some("ES".to_owned()))].into()));
    assert_eq!(spend.unmatched_cost[1].segment, None, "tv is unmatched as a channel");
    // The tables: the segments' cost, CPA and ROAS, and the unmatched cost by country.
    let csv = Table::Segments.csv(&result);
    assert!(csv.starts_with(
        "country,model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas\n"
    ));
    assert!(csv.contains("\nDE,last_touch,search,1,100,1,,,50,50,2\n"), "{csv}");
    assert!(csv.contains("\nDE,last_touch,email,0,0,0,,,10,,0\n"), "{csv}");
    assert_eq!(Table::UnmatchedCost.csv(&result), "channel,country,cost,rows\nsearch,ES,7,1\ntv,,3,1\n");
    let json = serde_json::to_string(&result).unwrap();
    assert_eq!(serde_json::from_str::<AttributionResult>(&json).unwrap(), result);
}

#[test]
fn without_a_segment_column_in_the_cost_table_segments_carry_no_cost() {
    let plain = COUNTRY_COSTS.replace(",Country,", ",region,");
    let costs = mta_core::spend::CostTable::read_csv(plain.as_bytes(), &Default::default(), Some("country")).unwrap();
    let mut result = attribute_segmented(COUNTRIES, "country", &["last_touch"]);
    result.add_spend(&costs);
    assert_eq!(result.spend.as_ref().unwrap().segment_column, None);
    assert_eq!(result.models[0].channel("search").unwrap().cost, Some(Some(65.0)));
    for segment in &result.segments {
        assert!(segment.spend.is_none());
        for credit in &segment.models[0].channels {
            assert_eq!((credit.cost, credit.cpa, credit.roas), (Some(None), Some(None), Some(None)), "{credit:?}");
        }
    }
    let csv = Table::Segments.csv(&result);
    assert!(csv.contains("\nDE,last_touch,search,1,100,1,,,,,\n"), "{csv}");
    assert_eq!(Table::UnmatchedCost.csv(&result), "channel,cost,rows\ntv,3,1\n");
}

#[test]
fn a_bad_segment_value_in_the_cost_table_is_refused_naming_its_row_and_column() {
    let long = "x".repeat(mta_core::ingest::MAX_TOUCH_FIELD_BYTES + 1);
    let csv = format!("date,channel,country,cost\n2026-01-01,search,DE,1\n2026-01-02,search,{long},2\n");
    let err = mta_core::spend::CostTable::read_csv(csv.as_bytes(), &Default::default(), Some("country")).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidValue, "{err:?}");
    let problem = &err.details[0];
    assert_eq!((problem.row, problem.column.as_deref()), (Some(2), Some("country")), "{err:?}");
    // Without `segment_by` the column is not read.
    assert!(mta_core::spend::CostTable::read_csv(csv.as_bytes(), &Default::default(), None).is_ok());
}
