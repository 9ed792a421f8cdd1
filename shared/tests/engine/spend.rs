//! Spend (docs/user-guide.md, "Spend"): cost tables read from CSV and Parquet with located
//! errors, and cost, CPA and ROAS joined to hand-computed credits, per period and time zone.

use std::sync::Arc;

use mta_core::result::{ChannelCredit, Table};
use mta_core::spend::{CostTable, SpendLimits};
use mta_core::{AttributionError, ErrorCode, ModelId, OptionsSpec};

use crate::helpers::*;

fn costs(csv: &str) -> CostTable {
    CostTable::read_csv(csv.as_bytes(), &SpendLimits::default(), None).expect("the cost table reads")
}

fn refused(csv: &[u8], limits: &SpendLimits) -> AttributionError {
    CostTable::read_csv(csv, limits, None).expect_err("the cost table is refused")
}

fn channel<'a>(result: &'a mta_core::AttributionResult, id: ModelId, name: &str) -> &'a ChannelCredit {
    model(result, id).channel(name).unwrap_or_else(|| panic!("{id}: no channel `{name}`"))
}

/// (cost, cpa, roas) of a credit.
fn spend_of(credit: &ChannelCredit) -> Spend {
    let field = |f: Option<Option<f64>>| f.expect("with a cost table the field is present");
    (field(credit.cost), field(credit.cpa), field(credit.roas))
}

#[track_caller]
fn assert_spend(credit: &ChannelCredit, want: Spend) {
    assert_same_spend(spend_of(credit), want, &format!("`{}`", credit.channel));
}

/// u1: search > display → 100; u2: search → 50; u3: email > social, no conversion.
fn three_users() -> Events {
    Events::new()
        .journey("u1", &["search", "display"], 100.0)
        .journey("u2", &["search"], 50.0)
        .touch("u3", T0 - 2 * DAY, "email")
        .touch("u3", T0 - DAY, "social")
}

const COSTS: &str = "date,channel,campaign,cost
2023-11-13,search,brand,30
2023-11-14,search,generic,15
2023-11-14,display,,40
2023-11-14,email,,0
2023-11-14,tv,,500
2023-11-15,TV,,20
";

#[test]
fn cost_cpa_and_roas_per_model_and_channel_by_hand() {
    let options = event_options(only(&["last_touch", "linear"]));
    let mut result = attribute_events(&three_users().chunk(), &options);
    result.add_spend(&costs(COSTS));

    // last touch: display 1 conversion (100), search 1 (50); linear: search 1.5 (100), display 0.5 (50).
    assert_spend(channel(&result, ModelId::LastTouch, "search"), (Some(45.0), Some(45.0), Some(50.0 / 45.0)));
    assert_spend(channel(&result, ModelId::LastTouch, "display"), (Some(40.0), Some(40.0), Some(2.5)));
    assert_spend(channel(&result, ModelId::Linear, "search"), (Some(45.0), Some(30.0), Some(100.0 / 45.0)));
    assert_spend(channel(&result, ModelId::Linear, "display"), (Some(40.0), Some(80.0), Some(1.25)));
    // Cost 0 with no conversions: CPA and ROAS undefined; no cost row at all: all three undefined.
    assert_spend(channel(&result, ModelId::Linear, "email"), (Some(0.0), None, None));
    assert_spend(channel(&result, ModelId::Linear, "social"), (None, None, None));

    let spend = result.spend.as_ref().expect("a spend summary");
    assert_eq!((spend.rows, spend.campaigns), (6, 2));
    assert_close(spend.cost, 605.0, 1e-12);
    assert_close(spend.matched_cost, 85.0, 1e-12);
    assert_eq!((spend.first_date.as_str(), spend.last_date.as_str()), ("2023-11-13", "2023-11-15"));
    // Channel names match exactly: `TV` is not `tv`, and neither is a channel of the events.
    let unmatched: Vec<(&str, f64, u64)> =
        spend.unmatched_cost.iter().map(|u| (u.channel.as_str(), u.cost, u.rows)).collect();
    assert_eq!(unmatched, [("tv", 500.0, 1), ("TV", 20.0, 1)]);
    assert!(spend.cost_outside_periods.is_empty());

    // JSON: `null` where undefined, and it survives a round trip; absent without a cost table.
    let json = serde_json::to_value(&result).unwrap();
    let social = json["models"]["linear"]["channels"].as_array().unwrap().iter().find(|c| c["channel"] == "social");
    let social = social.unwrap().as_object().unwrap();
    assert!(["cost", "cpa", "roas"].iter().all(|f| social.get(*f) == Some(&serde_json::Value::Null)), "{social:?}");
    let again: mta_core::AttributionResult = serde_json::from_value(json).unwrap();
    assert_eq!(again, result);
    let plain = serde_json::to_value(attribute_events(&three_users().chunk(), &options)).unwrap();
    assert!(plain["models"]["linear"]["channels"][0].get("cost").is_none());
    assert!(plain.get("spend").is_none());

    // Tables: the channels table gains cost, cpa, roas (empty where null); unmatched cost has its own.
    let channels = Table::Channels.csv(&result);
    let lines: Vec<&str> = channels.lines().collect();
    assert_eq!(lines[0], "model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas");
    assert!(lines.contains(&"last_touch,display,1,100,0.5,,,40,40,2.5"), "{channels}");
    assert!(lines.contains(&"linear,social,0,0,0,,,,,"), "{channels}");
    assert_eq!(Table::UnmatchedCost.csv(&result), "channel,cost,rows\ntv,500,1\nTV,20,1\n");
    assert!(Table::UnmatchedCost.applies_to(&result));
}

/// `shao_li` rows take costs as every model's do. By hand (three_users): p(search) =
/// p(display) = p(search, display) = 1, p(email) = p(social) = p(email, social) = 0, so
/// C(search) = C(display) = 1 + (1 − 1 − 1)/2 = 1/2 and the two conversions split 1, 1;
/// value per journey 75, 100 (pair 100) gives 75 − 75/2 = 37.5 and 100 − 75/2 = 62.5, so
/// the value 150 splits 56.25, 93.75.
#[test]
fn shao_li_credits_take_cost_cpa_and_roas() {
    let mut result = attribute_events(&three_users().chunk(), &event_options(only(&["shao_li"])));
    result.add_spend(&costs(COSTS));
    assert_credits(
        &result,
        ModelId::ShaoLi,
        &[("search", 1.0, 56.25), ("display", 1.0, 93.75), ("email", 0.0, 0.0), ("social", 0.0, 0.0)],
    );
    assert_spend(channel(&result, ModelId::ShaoLi, "search"), (Some(45.0), Some(45.0), Some(1.25)));
    assert_spend(channel(&result, ModelId::ShaoLi, "display"), (Some(40.0), Some(40.0), Some(93.75 / 40.0)));
    assert_spend(channel(&result, ModelId::ShaoLi, "email"), (Some(0.0), None, None));
    assert_spend(channel(&result, ModelId::ShaoLi, "social"), (None, None, None));
    assert!(Table::Channels.csv(&result).contains("shao_li,search,1,56.25,0.5,,,45,45,1.25\n"));
}

#[test]
fn costs_count_in_the_period_of_their_local_day() {
    // In Tokyo (UTC+9) u1 converts on 2023-11-15 (T0 is 2023-11-14T22:13:20Z), u2 on 2023-11-13.
    let events = Events::new()
        .touch("u1", T0 - DAY, "search")
        .conversion("u1", T0, 100.0)
        .touch("u2", T0 - 3 * DAY, "display")
        .conversion("u2", T0 - 2 * DAY, 20.0);
    let spec = OptionsSpec {
        period: Some("day".parse().unwrap()),
        timezone: Some("Asia/Tokyo".parse().unwrap()),
        ..only(&["last_touch"])
    };
    let mut result = attribute_events(&events.chunk(), &event_options(spec));
    let periods: Vec<&str> = result.periods.iter().map(|p| p.period.as_str()).collect();
    assert_eq!(periods, ["2023-11-13", "2023-11-15"]);
    result.add_spend(&costs(
        "date,channel,cost
2023-11-13,display,10
2023-11-15,search,40
2023-11-13,search,5
2023-11-14T20:00:00Z,display,7
2023-11-14,search,3
",
    ));
    // The whole file counts every row, whatever its date.
    assert_spend(channel(&result, ModelId::LastTouch, "search"), (Some(48.0), Some(48.0), Some(100.0 / 48.0)));
    assert_spend(channel(&result, ModelId::LastTouch, "display"), (Some(17.0), Some(17.0), Some(20.0 / 17.0)));

    let period = |label: &str| {
        let p = result.periods.iter().find(|p| p.period == label).unwrap();
        p.models.iter().find(|m| m.model == ModelId::LastTouch).unwrap()
    };
    let first = period("2023-11-13");
    assert_spend(first.channel("display").unwrap(), (Some(10.0), Some(10.0), Some(2.0)));
    // Search has cost on 2023-11-13 but no journey there: a row with no credit, ROAS 0.
    let search = first.channel("search").unwrap();
    assert_eq!((search.conversions, search.value, search.share), (0.0, 0.0, 0.0));
    assert_spend(search, (Some(5.0), None, Some(0.0)));
    assert_eq!(first.channels[0].channel, "display", "credited channels come first");
    // 2023-11-14T20:00Z is 2023-11-15 05:00 in Tokyo: that period's display cost.
    let last = period("2023-11-15");
    assert_spend(last.channel("search").unwrap(), (Some(40.0), Some(40.0), Some(2.5)));
    assert_spend(last.channel("display").unwrap(), (Some(7.0), None, Some(0.0)));
    // 2023-11-14 holds no journey in Tokyo: its cost is reported, not dropped.
    let spend = result.spend.as_ref().unwrap();
    let outside: Vec<(&str, f64)> = spend.cost_outside_periods.iter().map(|p| (p.period.as_str(), p.cost)).collect();
    assert_eq!(outside, [("2023-11-14", 3.0)]);
    assert!(spend.unmatched_cost.is_empty());
    assert_eq!((spend.first_date.as_str(), spend.last_date.as_str()), ("2023-11-13", "2023-11-15"));
    let table = Table::Periods.csv(&result);
    assert!(table.lines().next().unwrap().ends_with(",cost,cpa,roas"), "{table}");
    assert!(table.contains("\n2023-11-13,last_touch,search,0,0,0,,,5,,0\n"), "{table}");

    // By ISO week (UTC): Monday 2023-11-13 to Sunday 2023-11-19 holds u1's conversion.
    let spec = OptionsSpec { period: Some("week".parse().unwrap()), ..only(&["last_touch"]) };
    let mut weekly = attribute_events(&events.chunk(), &event_options(spec));
    weekly.add_spend(&costs("date,channel,cost\n2023-11-13,search,5\n2023-11-19,search,6\n2023-11-20,search,7\n"));
    // u2 converts on Sunday 2023-11-12 (UTC): the week before.
    let labels: Vec<&str> = weekly.periods.iter().map(|p| p.period.as_str()).collect();
    assert_eq!(labels, ["2023-11-06", "2023-11-13"]);
    let week = &weekly.periods[1].models[0];
    assert_spend(week.channel("search").unwrap(), (Some(11.0), Some(11.0), Some(100.0 / 11.0)));
    let outside = &weekly.spend.as_ref().unwrap().cost_outside_periods;
    assert_eq!((outside[0].period.as_str(), outside[0].cost), ("2023-11-20", 7.0));
}

#[test]
fn cost_columns_are_found_by_alias_and_micros_are_scaled() {
    let table = costs("Day;Channel;utm_campaign;Spend\n20260105;a;x;1.5\n2026-01-06;a;;2\n");
    assert_eq!(table.by_channel()["a"].cost, 3.5);
    assert_eq!(table.campaigns, ["x"]);
    let micros = costs("date,channel,cost_micros\n2026-01-05,a,1500000\n");
    assert_eq!(micros.total(), 1.5);
    let gzip = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"date,channel,cost\n2026-01-05,a,4\n").unwrap();
        encoder.finish().unwrap()
    };
    assert_eq!(CostTable::read_csv(&gzip[..], &SpendLimits::default(), None).unwrap().total(), 4.0);
}

#[test]
fn bad_cost_tables_are_refused_with_located_errors() {
    let limits = SpendLimits::default();
    let err = refused(b"day,source,cost\n2026-01-05,a,1\n", &limits);
    assert_eq!(err.code, ErrorCode::MissingColumns);
    assert!(err.message.contains("lacks column(s) channel; it has [day, source, cost]"), "{}", err.message);
    assert_eq!(err.details[0].column.as_deref(), Some("channel"));

    let err = refused(
        b"date,channel,cost\n2026-01-05,a,-3\nyesterday,a,1\n2026-01-06,,1\n2026-01-07,b,NaN\n2026-01-08,b,\n\n2026-01-09,b,1,9\n",
        &limits,
    );
    assert_eq!(err.code, ErrorCode::InvalidValue);
    let found: Vec<(u64, &str, &str)> =
        err.details.iter().map(|d| (d.row.unwrap(), d.column.as_deref().unwrap(), d.problem.as_str())).collect();
    assert_eq!(found.len(), 6, "{found:?}");
    assert_eq!(found[0], (1, "cost", "negative cost -3 (a cost is 0 or more)"));
    assert_eq!((found[1].0, found[1].1), (2, "date"));
    assert!(found[1].2.starts_with("cannot read `yesterday` as a date"), "{}", found[1].2);
    assert_eq!(found[2], (3, "channel", "channel is empty"));
    assert_eq!((found[3].0, found[3].1, found[3].2), (4, "cost", "`NaN` is not a finite number"));
    assert_eq!(found[4], (5, "cost", "cost is empty (write 0 for no spend)"));
    assert_eq!(found[5], (6, "(row)", "row has 4 fields, the header has 3"));

    // Bounded: a huge name is not echoed, and at most 100 details are kept.
    let mut huge = String::from("date,channel,cost\n");
    huge.push_str(&format!("2026-01-05,{},1\n", "x".repeat(1 << 20)));
    for _ in 0..500 {
        huge.push_str("nope,a,1\n");
    }
    let err = refused(huge.as_bytes(), &SpendLimits { max_line_bytes: 2 << 20, ..limits });
    assert_eq!(err.details.len(), 100);
    assert!(err.details[0].problem.contains("longer than 1024 bytes"), "{:?}", err.details[0]);
    assert!(err.size() < 32 * 1024, "{}", err.size());
    assert!(err.message.starts_with("at least 100 invalid values"), "{}", err.message);

    let err = refused(
        b"date,channel,cost\n2026-01-05,a,1\n2026-01-05,a,1\n2026-01-05,a,1\n",
        &SpendLimits { max_rows: 2, ..limits },
    );
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert!(err.message.contains("more than 2 rows") && err.message.contains("max_cost_rows"), "{}", err.message);

    let err = refused(b"date,channel,cost\n2026-01-05,a,1e308\n2026-01-06,a,1e308\n", &limits);
    assert_eq!(err.code, ErrorCode::LimitExceeded);
    assert_eq!(err.details[0].row, Some(2));

    let err =
        refused(b"date,channel,cost\n2026-01-05,a,1\n2026-01-05,b,1\n", &SpendLimits { max_channels: 1, ..limits });
    assert!(err.message.contains("more than 1 distinct channels"), "{}", err.message);
    assert_eq!(refused(b"date,channel,cost\n", &limits).code, ErrorCode::EmptyInput);
    assert_eq!(refused(b"{\"date\": \"2026-01-05\"}\n", &limits).code, ErrorCode::UnknownFormat);
    let err = refused(b"date,channel,cost\n2026-01-05,a,1\n", &SpendLimits { max_line_bytes: 10, ..limits });
    assert_eq!(err.code, ErrorCode::LimitExceeded);
}

#[test]
fn parquet_cost_tables_read_dates_as_days_and_timestamps_as_instants() {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::record_batch::RecordBatch;

    let path = std::env::temp_dir().join(format!("mta-spend-test-{}.parquet", std::process::id()));
    let days: ArrayRef = Arc::new(Date32Array::from(vec![19_727, 19_728])); // 2024-01-05, 2024-01-06
    let at: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![0, 0]).with_timezone("UTC"));
    let channels: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
    let cost: ArrayRef = Arc::new(Float64Array::from(vec![1.25, 2.0]));
    let unused: ArrayRef = Arc::new(Int64Array::from(vec![7, 8]));
    let batch = RecordBatch::try_from_iter([
        ("date", days),
        ("ts", at),
        ("channel", channels),
        ("spend", cost),
        ("clicks", unused),
    ])
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let table = CostTable::read_parquet(std::fs::File::open(&path).unwrap(), &SpendLimits::default(), None).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(table.by_channel()["a"].cost, 1.25);
    assert_eq!(table.total(), 3.25);
    // A calendar day stays the same day in any zone.
    let zone = "America/Los_Angeles".parse().unwrap();
    let (first, last) = table.date_range(zone).unwrap();
    assert_eq!((first.to_string(), last.to_string()), ("2024-01-05".to_owned(), "2024-01-06".to_owned()));
}

#[test]
fn path_level_credits_take_costs_too_on_the_design_markov_case() {
    // DESIGN.md 3: Markov credits c1 38/29, c2 33/29, c3 45/29 conversions; values 14.8295455, 12.2727273, 17.8977273.
    let rows = design_paths();
    let mut result = attribute_paths(&rows, &path_options(only(&["markov", "first_touch"])));
    result.add_spend(&costs("date,channel,cost\n2026-01-01,c1,29\n2026-01-02,c3,45\n"));
    let (cost, cpa, roas) = spend_of(channel(&result, ModelId::Markov, "c1"));
    assert_eq!(cost, Some(29.0));
    assert_close(cpa.unwrap(), 29.0 * 29.0 / 38.0, 1e-12);
    assert_close(roas.unwrap(), 14.829_545_5 / 29.0, 1e-8);
    let (cost, cpa, roas) = spend_of(channel(&result, ModelId::Markov, "c3"));
    assert_eq!((cost, cpa.map(|c| (c * 1e9).round() / 1e9)), (Some(45.0), Some(29.0)));
    assert_close(roas.unwrap(), 17.897_727_3 / 45.0, 1e-8);
    assert_spend(channel(&result, ModelId::Markov, "c2"), (None, None, None));
    // First touch: c1 opens rows 1 and 4 (3 conversions, 40), c3 opens none.
    assert_spend(channel(&result, ModelId::FirstTouch, "c1"), (Some(29.0), Some(29.0 / 3.0), Some(40.0 / 29.0)));
    assert_spend(channel(&result, ModelId::FirstTouch, "c3"), (Some(45.0), None, Some(0.0)));
    assert!(result.spend.as_ref().unwrap().unmatched_cost.is_empty());
}
