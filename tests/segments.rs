//! Segments (`--segment-by`, the `segment_by` option) end to end: the local command over CSV
//! and Parquet, any partitioning and spilling, its tables; the service over chunks equal to
//! the local command, its CSV table and `mta result --table segments`, conversion types with
//! a window each; the limit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::service::assert_same_result;
use crate::service_support::{Service, ServiceSpec, sorted, without_job_id};
use crate::support::{assert_close, attribute, attribute_json, failure, workdir, write, write_batch};

const CHANNELS: [&str; 4] = ["email", "search", "display", "social"];
const COUNTRIES: [&str; 3] = ["DE", "FR", "IT"];

/// A cost table for [`country_events`] by country: DE's email and search, IT's social, display
/// without a country, and ES, which no segment has (FR has no rows).
const COUNTRY_COSTS: &str = "date,channel,country,cost
2026-03-02,email,DE,40
2026-03-09,search,DE,25
2026-03-03,social,IT,12
2026-03-10,display,,9
2026-03-04,search,ES,7
";

/// `users` users with 1 to 4 touches, each touch in a country, two thirds of them converting
/// in a country of their own (every fifth conversion without one), over three weeks.
fn country_events(users: usize) -> String {
    let mut csv = String::from("user_id,timestamp,channel,country,conversion,conversion_value\n");
    for user in 0..users {
        let touches = user % 4 + 1;
        for touch in 0..touches {
            let channel = CHANNELS[(user * 7 + touch * 3) % CHANNELS.len()];
            let country = COUNTRIES[(user + touch) % 3];
            let day = 1 + (user % 18) + touch;
            csv.push_str(&format!("u{user},2026-03-{day:02}T{:02}:00:00Z,{channel},{country},0,\n", user % 24));
        }
        if user % 3 != 0 {
            let day = 2 + (user % 18) + touches;
            let country = if user % 5 == 0 { "" } else { COUNTRIES[user % 3] };
            csv.push_str(&format!("u{user},2026-03-{day:02}T23:00:00Z,,{country},1,{}\n", 10 + user % 17));
        }
    }
    csv
}

/// [`country_events`] with an event name instead of a conversion flag: every third
/// conversion a sign-up, the others purchases, and every user's touches page views.
fn typed_events(users: usize) -> String {
    let mut csv = String::from("user_id,timestamp,channel,event_name,conversion_value\n");
    for line in country_events(users).lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let (user, time, channel, value) = (cells[0], cells[1], cells[2], cells[5]);
        let event = match cells[4] {
            "1" if user[1..].parse::<usize>().unwrap() % 3 == 1 => "sign_up",
            "1" => "purchase",
            _ => "page_view",
        };
        csv.push_str(&format!("{user},{time},{channel},{event},{value}\n"));
    }
    csv
}

/// Every segment's every model's credits: (segment, model, channel, conversions, value).
fn segment_credits(result: &Value) -> Vec<(String, String, String, f64, f64)> {
    let mut rows = Vec::new();
    for segment in result["segments"].as_array().expect("segments") {
        let value = segment["segment"]["country"].as_str().unwrap_or("(none)").to_owned();
        for (model, m) in segment["models"].as_object().unwrap() {
            for c in m["channels"].as_array().unwrap() {
                let channel = c["channel"].as_str().unwrap().to_owned();
                let (conversions, credited) = (c["conversions"].as_f64().unwrap(), c["value"].as_f64().unwrap());
                rows.push((value.clone(), model.clone(), channel, conversions, credited));
            }
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    rows
}

/// Parquet with the types exports have, the country dictionary-encoded like the channel.
fn write_parquet(path: &std::path::Path, csv: &str) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, DictionaryArray, Float64Array, RecordBatch, StringArray};
    use arrow::datatypes::Int32Type;
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let text = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| (!r[i].is_empty()).then_some(r[i]))))
    };
    let dictionary = |i: usize| -> ArrayRef {
        Arc::new(rows.iter().map(|r| (!r[i].is_empty()).then_some(r[i])).collect::<DictionaryArray<Int32Type>>())
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", text(0)),
        ("timestamp", text(1)),
        ("channel", dictionary(2)),
        ("country", dictionary(3)),
        ("conversion", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r[4] == "1"))))),
        ("conversion_value", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r[5].parse::<f64>().ok())))),
    ];
    write_batch(path, &RecordBatch::try_from_iter(columns).unwrap(), 300);
}

#[test]
fn segments_add_up_to_the_whole_whatever_the_input_and_partitioning() {
    let dir = workdir();
    let csv = country_events(400);
    let file = write(dir.path(), "countries.csv", &csv);
    let models = "first_touch,linear,time_decay,markov,shapley,shao_li";
    let tables = dir.path().join("tables");
    let one = attribute_json(
        &file,
        &["--segment-by", "country", "--models", models, "--partitions", "1", "--csv-dir", tables.to_str().unwrap()],
    );
    assert_eq!(one["options"]["segment_by"], "country");
    let labels: Vec<&Value> = one["segments"].as_array().unwrap().iter().map(|s| &s["segment"]).collect();
    assert_eq!(
        labels,
        [&json!({"country": "DE"}), &json!({"country": "FR"}), &json!({"country": "IT"}), &json!({"country": null})]
    );
    // The segments' conversions and rule models' credits add up to the whole's.
    let segments = one["segments"].as_array().unwrap();
    let sum = |f: &dyn Fn(&Value) -> f64| segments.iter().map(f).sum::<f64>();
    assert_close(
        sum(&|s| s["summary"]["conversions"].as_f64().unwrap()),
        one["summary"]["conversions"].as_f64().unwrap(),
        "conversions",
    );
    for channel in CHANNELS {
        let whole = crate::support::credit(&one, "linear", channel).0;
        let parts = sum(&|s| {
            s["models"]["linear"]["channels"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["channel"] == channel)
                .map(|c| c["conversions"].as_f64().unwrap())
                .sum()
        });
        assert_close(parts, whole, &format!("linear {channel} over segments"));
    }

    // The same segments however the input is partitioned, spilled or stored.
    let want = segment_credits(&one);
    let parquet = dir.path().join("countries.parquet");
    write_parquet(&parquet, &csv);
    let args: [(&std::path::Path, &[&str]); 2] = [
        (&file, &["--partitions", "7", "--memory-budget-mb", "0"]),
        (&parquet, &["--threads", "2", "--partitions", "3"]),
    ];
    for (input, extra) in args {
        let mut all = vec!["--segment-by", "country", "--models", models];
        all.extend(extra);
        let got = segment_credits(&attribute_json(input, &all));
        assert_eq!(got.len(), want.len(), "{extra:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, &g.1, &g.2), (&w.0, &w.1, &w.2), "{extra:?}");
            assert_close(g.3, w.3, &format!("{w:?} {extra:?}"));
            assert_close(g.4, w.4, &format!("{w:?} value {extra:?}"));
        }
    }

    // The tidy table: one row per segment × model × channel, the missing value empty.
    let table = std::fs::read_to_string(tables.join("segments.csv")).unwrap();
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("country,model,channel,conversions,value,share,removal_effect,removal_effect_value"));
    assert_eq!(lines.count(), want.len());
    assert!(table.contains("\nDE,linear,email,") && table.contains("\n,markov,"), "{table}");

    // The table view shows each segment.
    let output = attribute(&file, &["--segment-by", "country", "--models", "linear,markov", "--table"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("segment country = DE:") && text.contains("segment country = (none):"), "{text}");

    // Without the option, no segments; with it, the whole is the same.
    let plain = attribute_json(&file, &["--models", models]);
    assert!(plain.get("segments").is_none());
    assert_same_result(&plain["models"], &one["models"], "the whole of a segmented run");
}

#[test]
fn too_many_segments_a_missing_column_or_several_windows_are_refused_naming_them() {
    let dir = workdir();
    let file = write(dir.path(), "countries.csv", country_events(100));
    let (code, stderr) = failure(&attribute(&file, &["--segment-by", "country", "--max-segments", "2"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("max_segments"), "{stderr}");
    assert!(attribute(&file, &["--segment-by", "country", "--max-segments", "3"]).status.success());
    let (code, stderr) = failure(&attribute(&file, &["--segment-by", "region"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing_columns") && stderr.contains("region (segment_by)"), "{stderr}");
    let (code, stderr) = failure(&attribute(&file, &["--segment-by", "country", "--lookback-days", "7,30"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("segment_by"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_segments_over_chunks_as_the_local_command_does() {
    let env = vec![
        ("MTA_ROWS_PER_CHUNK", "500".into()),
        ("MTA_CSV_RANGE_BYTES", "30000".into()),
        ("MTA_MAX_SEGMENTS", "3".into()),
    ];
    let service = Service::start(ServiceSpec { workers: 2, env, ..ServiceSpec::default() }).await;
    let dir = workdir();
    let file = write(dir.path(), "countries.csv", country_events(1_000));
    // Cost per segment too: joined to each country (and its weeks) by the reducer as by `mta attribute`.
    let costs = write(dir.path(), "costs.csv", COUNTRY_COSTS);
    let spend = service.upload_file(&costs).await;
    let options = json!({
        "segment_by": "country",
        "period": "week",
        "models": ["linear", "markov", "shao_li"],
        "markov_order": "auto",
    });
    let job = service.run(&file, json!({ "options": options, "spend_upload_id": spend })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local = attribute_json(
        &file,
        &[
            "--segment-by",
            "country",
            "--period",
            "week",
            "--models",
            "linear,markov,shao_li",
            "--markov-order",
            "auto",
            "--spend",
            costs.to_str().unwrap(),
        ],
    );
    assert_eq!(local["segments"].as_array().unwrap().len(), 4);
    // Each country's channels carry the cost of its own rows; FR has none (`null`); ES, which
    // no segment has, is the whole's unmatched cost.
    assert_eq!(local["spend"]["segment_column"], "country");
    let de = &local["segments"][0];
    assert_eq!(de["segment"], json!({"country": "DE"}));
    let email = de["models"]["linear"]["channels"].as_array().unwrap().iter().find(|c| c["channel"] == "email");
    assert_eq!(email.unwrap()["cost"], 40.0, "{de}");
    assert_eq!(de["spend"]["cost"], 65.0);
    let fr = &local["segments"][1];
    assert!(fr["models"]["linear"]["channels"].as_array().unwrap().iter().all(|c| c["cost"].is_null()), "{fr}");
    let unmatched = local["spend"]["unmatched_cost"].as_array().unwrap();
    assert!(unmatched.iter().any(|u| u["segment"] == json!({"country": "ES"}) && u["cost"] == 7.0), "{unmatched:?}");
    // Each segment has its weeks, and each week of the whole is the sum of the segments'.
    let weeks = local["periods"].as_array().unwrap();
    assert!(weeks.len() > 1);
    for week in weeks {
        let name = &week["period"];
        let sum: f64 = local["segments"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["periods"].as_array().unwrap())
            .filter(|p| &p["period"] == name)
            .map(|p| p["summary"]["conversions"].as_f64().unwrap())
            .sum();
        assert_close(sum, week["summary"]["conversions"].as_f64().unwrap(), &format!("week {name}"));
    }
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");

    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=segments")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("country,model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas")
    );
    assert_eq!(csv.lines().count(), segment_credits(&result).len() + 1);
    assert!(csv.contains("\nDE,linear,email,") && csv.contains(",40,"), "{csv}");
    let (status, unmatched) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=unmatched_cost")).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(unmatched).unwrap(), "channel,country,cost,rows\nsearch,ES,7,1\n");
    // And per week of each segment.
    let (status, weekly) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=segment_periods")).await;
    assert_eq!(status, 200);
    let weekly = String::from_utf8(weekly).unwrap();
    let mut lines = weekly.lines();
    assert_eq!(
        lines.next(),
        Some("country,period,model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas")
    );
    let cells: usize = result["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["periods"].as_array().unwrap())
        .flat_map(|p| p["models"].as_object().unwrap().values())
        .map(|m| m["channels"].as_array().unwrap().len())
        .sum();
    assert_eq!(lines.count(), cells);
    assert!(weekly.contains("\nDE,2026-03-02,linear,"), "{weekly}");
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_mta"))
        .args(["result", id, "--table", "segments"])
        .env("MTA_URL", &service.base)
        .env("MTA_API_KEY", &service.key)
        .output()
        .expect("mta runs");
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    assert_eq!(String::from_utf8_lossy(&printed.stdout), csv);
    // Every segment and each of its weeks has reports of its own (equal to the local run's
    // above), served as tables with the segment's column (and the week) first.
    let segments = result["segments"].as_array().unwrap();
    for segment in segments {
        assert!(segment["reports"]["paths"]["converting"].is_array(), "{segment}");
        assert!(segment["periods"].as_array().unwrap().iter().all(|p| p["reports"]["path_length"].is_array()));
    }
    assert!(segments.iter().any(|s| s["reports"]["paths"]["converting"].as_array().is_some_and(|p| !p.is_empty())));
    for (table, header, rows) in [
        ("segment_path_length", "country,bucket,conversions,value", 10 * 4),
        ("segment_period_time_lag", "country,period,bucket,conversions,value", 0),
        ("period_transitions", "period,from,to,count,probability", 0),
    ] {
        let (status, body) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table={table}")).await;
        assert_eq!(status, 200, "{table}");
        let body = String::from_utf8(body).unwrap();
        assert_eq!(body.lines().next(), Some(header), "{table}");
        assert!(body.lines().count() > rows.max(1), "{table}: {body}");
    }

    // Conversion types: each attributed on its own under its window, as the local command does.
    let typed = write(dir.path(), "typed.csv", typed_events(1_000));
    let options = json!({
        "conversion_types": ["purchase", "sign_up"],
        "lookback_days": {"purchase": 30, "sign_up": 3},
        "models": ["linear", "markov"],
    });
    let job = service.run(&typed, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local = attribute_json(
        &typed,
        &[
            "--conversion-types",
            "purchase,sign_up",
            "--lookback-days",
            "purchase=30,sign_up=3",
            "--models",
            "linear,markov",
        ],
    );
    let labels: Vec<&Value> = local["segments"].as_array().unwrap().iter().map(|s| &s["segment"]).collect();
    assert_eq!(labels, [&json!({"conversion_type": "purchase"}), &json!({"conversion_type": "sign_up"})]);
    assert_eq!(local["options"]["conversion_lookbacks"], json!([30.0, 3.0]));
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "typed result");
    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=segments")).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(csv).unwrap().starts_with("conversion_type,model,channel,"));

    // One country more than the service allows (3 values; the rows without one are a segment
    // beyond them): refused, naming the limit.
    let more = format!("{}u-extra,2026-03-01T00:00:00Z,email,ES,0,\n", country_events(1_000));
    let upload = service.upload(more.into_bytes()).await;
    let id = service.submit_ok(json!({ "upload_id": upload, "options": { "segment_by": "country" } })).await;
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("limit_exceeded")),
        "{job}"
    );
    assert!(job["error"]["message"].as_str().unwrap_or_default().contains("max_segments"), "{job}");
    let (status, body) = service.submit(json!({ "upload_id": upload, "options": { "segment_by": "value" } })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_option")), "{body}");
    service.assert_nothing_stuck().await;
}
