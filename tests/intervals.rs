//! Bootstrap intervals end to end: the service over chunks equals `mta attribute` for every
//! model (events with periods, and paths; under several lookback windows with a breakdown; a
//! breakdown by period and segment), its `interval` objects byte for byte, the
//! `intervals` CSV tables (the whole's, each part's and the breakdown rows', the whole's and
//! the parts') and `--table`, and the limits.

use serde_json::{Value, json};

use crate::breakdown::campaign_events;
use crate::service::assert_same_result;
use crate::service_support::{Service, ServiceSpec, sorted, without_job_id};
use crate::support::{attribute, attribute_json, failure, sample, workdir, write};

/// Small chunks and byte ranges, as `service::chunked`, and a low replicate limit.
fn chunked() -> ServiceSpec {
    let env = vec![
        ("MTA_ROWS_PER_CHUNK", "2000".into()),
        ("MTA_CSV_RANGE_BYTES", "100000".into()),
        ("MTA_MAX_INTERVAL_REPLICATES", "100".into()),
    ];
    ServiceSpec { workers: 2, env, ..ServiceSpec::default() }
}

/// Every `interval` object of `value` (channels', breakdown rows', each part's), by its path.
fn intervals_of(value: &Value, at: &str, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match key.as_str() {
                    "interval" => out.push((at.to_owned(), value.clone())),
                    _ => intervals_of(value, &format!("{at}.{key}"), out),
                }
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| intervals_of(v, &format!("{at}[{i}]"), out)),
        _ => {}
    }
}

/// The service's intervals are the local command's byte for byte (both results `sorted`):
/// their sums are exact, whatever the chunks and the order the reducer merged them in.
#[track_caller]
fn assert_same_intervals(service: &Value, local: &Value) {
    let (mut got, mut want) = (Vec::new(), Vec::new());
    intervals_of(service, "", &mut got);
    intervals_of(local, "", &mut want);
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(got.len(), want.len());
    for ((at, got), (_, want)) in got.iter().zip(&want) {
        assert_eq!(got.to_string(), want.to_string(), "{at}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_intervals_over_chunks_equal_the_local_command_and_have_their_csv_table() {
    let service = Service::start(chunked()).await;
    for (file, args) in [("events.csv", vec!["--period", "week"]), ("paths.csv", vec!["--markov-order", "auto"])] {
        let file = sample(file);
        let mut options = json!({ "intervals": { "replicates": 60, "level": 0.8, "seed": 9 } });
        match args[0] {
            "--period" => options["period"] = json!("week"),
            _ => options["markov_order"] = json!("auto"),
        }
        let job = service.run(&file, json!({ "options": options })).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        let id = job["id"].as_str().unwrap();
        let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
        let mut local_args = vec!["--intervals", "60", "--level", "0.8", "--seed", "9"];
        local_args.extend(&args);
        let local = attribute_json(&file, &local_args);
        assert_eq!(result["options"]["intervals"], json!({ "replicates": 60, "level": 0.8, "seed": 9 }));
        assert_same_intervals(&sorted(without_job_id(result.clone())), &sorted(local.clone()));
        assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");
        // Each period's channels have intervals of their own (the events are weeks apart).
        for period in result["periods"].as_array().into_iter().flatten() {
            let linear = period["models"]["linear"]["channels"].as_array().unwrap();
            assert!(linear.iter().all(|c| c["interval"]["share_high"].is_number()), "{period}");
        }
        // Every model's every channel has an interval around its figure.
        let models = result["models"].as_object().unwrap();
        assert!(models.len() >= 11, "every model");
        for (model, m) in models {
            for c in m["channels"].as_array().unwrap() {
                let i = &c["interval"];
                let (low, high) = (i["conversions_low"].as_f64().unwrap(), i["conversions_high"].as_f64().unwrap());
                assert!(low <= high, "{model} {c}");
                assert_eq!(i.get("removal_effect_low").is_some(), model == "markov", "{model}");
            }
        }
        let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=intervals")).await;
        assert_eq!(status, 200);
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with("model,channel,conversions,conversions_low,conversions_high,value,"), "{csv}");
        let rows: usize = models.values().map(|m| m["channels"].as_array().unwrap().len()).sum();
        assert_eq!(csv.lines().count(), rows + 1);
    }

    // Refused: too few replicates at submission; more than the operator's limit when the job runs.
    let upload = service.upload_file(&sample("events.csv")).await;
    let (status, body) =
        service.submit(json!({ "upload_id": upload, "options": { "intervals": { "replicates": 3 } } })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("intervals"), "{body}");
    let job = service.run(&sample("events.csv"), json!({ "options": { "intervals": { "replicates": 101 } } })).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("limit_exceeded")),
        "{job}"
    );
    assert!(job["error"]["message"].as_str().unwrap().contains("max_interval_replicates"), "{job}");
    // Days whose replicates, over 128 channels, would pass the memory they may take.
    let dir = workdir();
    let daily = write(dir.path(), "daily.csv", daily_over_many_channels(28));
    let options = json!({ "period": "day", "intervals": { "replicates": 10 } });
    let job = service.run(&daily, json!({ "options": options })).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("limit_exceeded")),
        "{job}"
    );
    assert!(job["error"]["message"].as_str().unwrap().contains("max_replicate_memory"), "{job}");
}

/// A user touching each of 128 channels on 2026-02-01, then one converting journey a day on
/// each of `days` days of February, its own user's: with every model, a replicate partial over
/// 128 channels is estimated at about 1.5 MB, so 10 replicates of each day pass the bound that
/// weeks' fit.
fn daily_over_many_channels(days: u32) -> String {
    let mut csv = String::from("user_id,timestamp,channel,conversion,conversion_value\n");
    for channel in 0..128 {
        csv.push_str(&format!("u0,2026-02-01T{:02}:{:02}:00Z,c{channel:03},0,\n", channel / 60, channel % 60));
    }
    for day in 1..=days {
        csv.push_str(&format!("u{day},2026-02-{day:02}T10:00:00Z,c001,0,\nu{day},2026-02-{day:02}T11:00:00Z,,1,5\n"));
    }
    csv
}

#[test]
fn the_local_command_refuses_intervals_whose_parts_would_pass_their_memory() {
    let dir = workdir();
    let file = write(dir.path(), "daily.csv", daily_over_many_channels(28));
    let (code, stderr) = failure(&attribute(&file, &["--intervals", "10", "--period", "day"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("max_replicate_memory"), "{stderr}");
    assert!(stderr.contains("longer period"), "{stderr}");
    // Weeks keep fewer replicates: accepted.
    let output = attribute(&file, &["--intervals", "10", "--period", "week"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn the_local_command_shows_intervals_in_its_tables_and_writes_their_csv() {
    let file = sample("events.csv");
    let output = attribute(&file, &["--intervals", "40", "--models", "linear,markov", "--table"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("90% bootstrap intervals (40 replicates"), "{text}");
    // `12.40 [11.10, 13.90]`: the estimate, then its interval.
    let line = text.lines().find(|l| l.starts_with("paid_search ") && l.contains('[')).expect("a row with an interval");
    let numbers: Vec<f64> =
        line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|x| x.parse().ok()).collect();
    assert!(numbers[1] <= numbers[0] && numbers[0] <= numbers[2], "{line}");
    let output = attribute(&file, &["--intervals", "1001"]);
    assert!(!output.status.success(), "refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_interval_replicates"));
    let output = attribute(&file, &["--intervals", "100", "--max-replicate-channels", "500"]);
    assert!(!output.status.success(), "refused");
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_replicate_channels"));
    // A breakdown's rows show their intervals too.
    let dir = workdir();
    let campaigns = write(dir.path(), "campaigns.csv", campaign_events(300));
    let output =
        attribute(&campaigns, &["--intervals", "20", "--breakdown", "campaign", "--models", "linear", "--table"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("conversions credited by channel and campaign [90% interval]"), "{text}");
    let line = text.lines().find(|l| l.starts_with("email ") && l.contains("email-1")).expect("a row of email-1");
    let numbers: Vec<f64> =
        line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|x| x.parse().ok()).collect();
    assert!(line.contains('[') && numbers[2] <= numbers[3], "{line}");
    // A rerun gives the same intervals.
    let run = || attribute_json(&file, &["--intervals", "20", "--models", "shapley,shao_li"]);
    assert_eq!(run(), run());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_and_breakdown_intervals_over_chunks_equal_the_local_command_and_have_their_tables() {
    let service = Service::start(chunked()).await;
    let dir = workdir();
    let file = write(dir.path(), "campaigns.csv", campaign_events(600));
    let intervals = json!({ "replicates": 30, "level": 0.8, "seed": 5 });
    let models = ["linear", "markov", "shao_li"];
    let options =
        json!({ "lookback_days": [30, 2], "models": models, "breakdown": ["campaign"], "intervals": intervals });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let tables = dir.path().join("tables");
    let local = attribute_json(
        &file,
        &[
            "--lookback-days",
            "30,2",
            "--models",
            "linear,markov,shao_li",
            "--intervals",
            "30",
            "--level",
            "0.8",
            "--seed",
            "5",
            "--breakdown",
            "campaign",
            "--csv-dir",
            tables.to_str().unwrap(),
        ],
    );
    assert_same_intervals(&sorted(without_job_id(result.clone())), &sorted(local.clone()));
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");
    // The second window has intervals of its own: narrower journeys, other figures.
    let windows = result["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2);
    let interval = |w: &serde_json::Value| w["models"]["linear"]["channels"][0]["interval"].clone();
    assert!(interval(&windows[1])["conversions_low"].is_number(), "{}", windows[1]);
    assert_ne!(interval(&windows[0]), interval(&windows[1]));
    let rows: usize = windows
        .iter()
        .flat_map(|w| w["models"].as_object().unwrap().values())
        .map(|m| m["channels"].as_array().unwrap().len())
        .sum();
    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=window_intervals")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("lookback_days,model,channel,conversions,conversions_low,"), "{csv}");
    assert_eq!(csv.lines().count(), rows + 1, "{csv}");
    let written = std::fs::read_to_string(tables.join("window_intervals.csv")).expect("--csv-dir writes the table");
    assert_eq!(written.lines().count(), rows + 1);
    assert!(!tables.join("period_intervals.csv").exists(), "no period asked");
    // Every breakdown row of the whole has its interval (and of the further window, its own),
    // and the `breakdown_intervals` table lists the whole's.
    let mut rows = 0;
    for model in models {
        for row in result["models"][model]["breakdown"].as_array().unwrap() {
            let i = &row["interval"];
            let (low, high) = (i["conversions_low"].as_f64().unwrap(), i["conversions_high"].as_f64().unwrap());
            assert!(low <= high, "{model} {row}");
            rows += 1;
        }
        let further = windows[1]["models"][model]["breakdown"].as_array().unwrap();
        assert!(further.iter().all(|row| row["interval"]["value_high"].is_number()), "{model}");
    }
    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=breakdown_intervals")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    let header = "model,channel,campaign,conversions,conversions_low,conversions_high,value,value_low,value_high";
    assert_eq!(csv.lines().next(), Some(header));
    assert_eq!(csv.lines().count(), rows + 1, "{csv}");
    assert!(tables.join("breakdown_intervals.csv").exists());
}

/// [`campaign_events`] with a `country` column: DE, FR or IT by the user's number.
fn campaign_country_events(users: usize) -> String {
    let mut csv = String::new();
    for (i, line) in campaign_events(users).lines().enumerate() {
        let country = match i {
            0 => "country",
            _ => ["DE", "FR", "IT"][line[1..line.find(',').unwrap()].parse::<usize>().unwrap() % 3],
        };
        csv.push_str(&format!("{line},{country}\n"));
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn part_breakdown_intervals_over_chunks_equal_the_local_command_and_have_their_tables() {
    let service = Service::start(chunked()).await;
    let dir = workdir();
    let file = write(dir.path(), "countries.csv", campaign_country_events(1000));
    let intervals = json!({ "replicates": 20, "level": 0.8, "seed": 7 });
    let options = json!({
        "period": "week", "segment_by": "country", "models": ["linear", "markov"], "breakdown": ["campaign"],
        "intervals": intervals,
    });
    let job = service.run(&file, json!({ "options": options })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let tables = dir.path().join("tables");
    #[rustfmt::skip]
    let args = [
        "--period", "week", "--segment-by", "country", "--models", "linear,markov", "--breakdown", "campaign",
        "--intervals", "20", "--level", "0.8", "--seed", "7", "--csv-dir", tables.to_str().unwrap(),
    ];
    let local = attribute_json(&file, &args);
    assert_same_intervals(&sorted(without_job_id(result.clone())), &sorted(local.clone()));
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");
    // Every period's, segment's and segment period's breakdown row has its own interval.
    let (periods, segments) = (result["periods"].as_array().unwrap(), result["segments"].as_array().unwrap());
    assert!(periods.len() > 1 && segments.len() == 3, "{result}");
    let segment_periods = segments.iter().flat_map(|s| s["periods"].as_array().unwrap());
    let rows_of = |part: &Value| -> usize {
        let models = part["models"].as_object().unwrap().values();
        let rows = models.flat_map(|m| m["breakdown"].as_array().unwrap());
        rows.inspect(|row| assert!(row["interval"]["conversions_high"].is_number(), "{row}")).count()
    };
    assert!(segment_periods.map(rows_of).sum::<usize>() > 0);
    // Their tables: every part's rows, each figure followed by its bounds, served and written.
    let header = "model,channel,campaign,conversions,conversions_low,conversions_high,value,value_low,value_high";
    for (table, column, parts) in
        [("period_breakdown_intervals", "period", periods), ("segment_breakdown_intervals", "country", segments)]
    {
        let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table={table}")).await;
        assert_eq!(status, 200, "{table}");
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().next(), Some(format!("{column},{header}").as_str()));
        assert_eq!(csv.lines().count(), parts.iter().map(rows_of).sum::<usize>() + 1, "{csv}");
        assert!(csv.lines().skip(1).all(|line| line.split(',').nth(5).is_some_and(|low| !low.is_empty())), "{csv}");
        let written = std::fs::read_to_string(tables.join(format!("{table}.csv"))).expect("--csv-dir writes it");
        assert_eq!(written.lines().count(), csv.lines().count(), "{table}");
    }
}
