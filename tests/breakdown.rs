//! Credit by channel × campaign (`--breakdown`, the `breakdown` option) end to end: the
//! local command over CSV and Parquet, any partitioning and spilling; its tables; the
//! service over chunks equal to the local command; the limit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::service::assert_same_result;
use crate::service_support::{Service, ServiceSpec, sorted, without_job_id};
use crate::support::{assert_close, attribute, attribute_json, credit, failure, workdir, write, write_batch};

const CHANNELS: [&str; 4] = ["email", "search", "display", "social"];

/// `users` users with 1 to 4 touches each, a `utm_campaign` per touch (three per channel,
/// some touches without one), two thirds of them converting, over three weeks.
pub(crate) fn campaign_events(users: usize) -> String {
    let mut csv = String::from("user_id,timestamp,channel,utm_campaign,conversion,conversion_value\n");
    for user in 0..users {
        let touches = user % 4 + 1;
        for touch in 0..touches {
            let channel = CHANNELS[(user * 7 + touch * 3) % CHANNELS.len()];
            let campaign = match (user / 4 + touch * 2) % 4 {
                3 => String::new(),
                n => format!("{channel}-{n}"),
            };
            let day = 1 + (user % 18) + touch;
            csv.push_str(&format!("u{user},2026-03-{day:02}T{:02}:00:00Z,{channel},{campaign},0,\n", user % 24));
        }
        if user % 3 != 0 {
            let day = 2 + (user % 18) + touches;
            csv.push_str(&format!("u{user},2026-03-{day:02}T23:00:00Z,,,1,{}\n", 10 + user % 17));
        }
    }
    csv
}

/// Every model's breakdown rows by (channel, campaign).
fn rows_by_key(result: &Value) -> Vec<(String, String, String, f64, f64)> {
    let mut rows = Vec::new();
    for (model, m) in result["models"].as_object().unwrap() {
        for row in m["breakdown"].as_array().unwrap_or_else(|| panic!("{model} has no breakdown")) {
            rows.push((
                model.clone(),
                row["channel"].as_str().unwrap().to_owned(),
                row["campaign"].as_str().unwrap().to_owned(),
                row["conversions"].as_f64().unwrap(),
                row["value"].as_f64().unwrap(),
            ));
        }
    }
    rows.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    rows
}

/// Parquet with the types exports have, the campaign dictionary-encoded like the channel.
fn write_parquet(path: &std::path::Path, csv: &str) {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray};
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let text = |i: usize| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(|r| (!r[i].is_empty()).then_some(r[i]))))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", text(0)),
        ("timestamp", text(1)),
        ("channel", text(2)),
        ("utm_campaign", text(3)),
        ("conversion", Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r[4] == "1"))))),
        ("conversion_value", Arc::new(Float64Array::from_iter(rows.iter().map(|r| r[5].parse::<f64>().ok())))),
    ];
    write_batch(path, &RecordBatch::try_from_iter(columns).unwrap(), 300);
}

#[test]
fn credit_by_campaign_adds_up_to_each_channel_whatever_the_input_and_partitioning() {
    let dir = workdir();
    let csv = campaign_events(400);
    let file = write(dir.path(), "campaigns.csv", &csv);
    let models = "first_touch,linear,time_decay,participation,markov,shapley,shao_li";
    let tables = dir.path().join("tables");
    let one = attribute_json(
        &file,
        &["--breakdown", "campaign", "--models", models, "--partitions", "1", "--csv-dir", tables.to_str().unwrap()],
    );
    assert_eq!(one["options"]["breakdown"], json!(["campaign"]));
    // Each channel's rows add up to its credit, under every model.
    for (model, m) in one["models"].as_object().unwrap() {
        for channel in m["channels"].as_array().unwrap() {
            let name = channel["channel"].as_str().unwrap();
            let rows: Vec<&Value> =
                m["breakdown"].as_array().unwrap().iter().filter(|r| r["channel"] == name).collect();
            assert!(!rows.is_empty(), "{model}/{name} has rows");
            let sum = |field: &str| rows.iter().map(|r| r[field].as_f64().unwrap()).sum::<f64>();
            let (conversions, value) = credit(&one, model, name);
            assert_close(sum("conversions"), conversions, &format!("{model}/{name} conversions"));
            assert_close(sum("value"), value, &format!("{model}/{name} value"));
        }
    }
    let campaigns: Vec<&str> = one["models"]["linear"]["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["campaign"].as_str().unwrap())
        .collect();
    assert!(campaigns.contains(&"(none)") && campaigns.contains(&"email-1"), "{campaigns:?}");
    assert_eq!(campaigns.len(), 4 * 4, "three campaigns and (none) for each of four channels");

    // The same rows however the input is partitioned, spilled or stored.
    let want = rows_by_key(&one);
    let parquet = dir.path().join("campaigns.parquet");
    write_parquet(&parquet, &csv);
    let args: [(&std::path::Path, &[&str]); 2] = [
        (&file, &["--partitions", "7", "--memory-budget-mb", "0"]),
        (&parquet, &["--threads", "2", "--partitions", "3"]),
    ];
    for (input, extra) in args {
        let mut all = vec!["--breakdown", "campaign", "--models", models];
        all.extend(extra);
        let got = rows_by_key(&attribute_json(input, &all));
        assert_eq!(got.len(), want.len(), "{extra:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((&g.0, &g.1, &g.2), (&w.0, &w.1, &w.2), "{extra:?}");
            assert_close(g.3, w.3, &format!("{w:?} {extra:?}"));
            assert_close(g.4, w.4, &format!("{w:?} value {extra:?}"));
        }
    }

    // The tidy table: one row per model × channel × campaign.
    let table = std::fs::read_to_string(tables.join("breakdown.csv")).unwrap();
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("model,channel,campaign,conversions,value"));
    assert_eq!(lines.count(), want.len());
    assert!(table.contains("\nlinear,email,email-1,"), "{table}");
    assert!(!tables.join("period_breakdown.csv").exists(), "no periods, no table of them");

    // Positions per campaign: each channel's rows add up to its positions, one table row each.
    let keyed = one["reports"]["breakdown_positions"].as_array().unwrap();
    assert_eq!(keyed.len(), 4 * 4, "a row per channel × campaign");
    for channel in one["reports"]["positions"].as_array().unwrap() {
        let rows: Vec<&Value> = keyed.iter().filter(|r| r["channel"] == channel["channel"]).collect();
        for field in ["only", "first", "middle", "last"] {
            let sum = rows.iter().map(|r| r[field].as_f64().unwrap()).sum::<f64>();
            assert_close(sum, channel[field].as_f64().unwrap(), &format!("{} {field}", channel["channel"]));
        }
    }
    let table = std::fs::read_to_string(tables.join("breakdown_positions.csv")).unwrap();
    assert_eq!(table.lines().next(), Some("channel,campaign,only,first,middle,last"));
    assert_eq!(table.lines().count(), keyed.len() + 1);
    // Top paths by campaign: each touch `channel | campaign`; over every path listed, as many
    // conversions as the paths of channels.
    let paths = &one["reports"]["breakdown_paths"];
    assert_eq!(paths["exact"], true, "{paths}");
    let converting = paths["converting"].as_array().unwrap();
    assert!(converting.iter().any(|p| p["path"].as_str().unwrap().contains("email | email-1")), "{paths}");
    assert!(converting.iter().any(|p| p["path"].as_str().unwrap().contains(" | (none)")), "{paths}");
    let table = std::fs::read_to_string(tables.join("breakdown_paths.csv")).unwrap();
    let listed = converting.len() + paths["non_converting"].as_array().unwrap().len();
    assert_eq!(table.lines().count(), listed + 1);
    assert!(table.starts_with("list,rank,path,touches,journeys,conversions,value,null_journeys,exact\nconverting,1,"));

    // Per-journey credits stay per channel.
    let credits = dir.path().join("credits.parquet");
    attribute_json(&file, &["--breakdown", "campaign", "--models", "linear", "--credits", credits.to_str().unwrap()]);
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&credits).unwrap())
            .unwrap()
            .build()
            .unwrap();
    let mut linear = std::collections::BTreeMap::<String, f64>::new();
    for batch in reader {
        use arrow::array::AsArray;
        let batch = batch.unwrap();
        let channel = batch.column(batch.schema().index_of("channel").unwrap()).as_string::<i32>().clone();
        let conversions = batch
            .column(batch.schema().index_of("conversions").unwrap())
            .as_primitive::<arrow::datatypes::Float64Type>()
            .clone();
        for i in 0..batch.num_rows() {
            *linear.entry(channel.value(i).to_owned()).or_default() += conversions.value(i);
        }
    }
    assert_eq!(linear.keys().collect::<Vec<_>>(), ["display", "email", "search", "social"]);
    for (channel, conversions) in &linear {
        assert_close(*conversions, credit(&one, "linear", channel).0, &format!("credits of {channel}"));
    }

    // The table view has a breakdown section.
    let output = attribute(&file, &["--breakdown", "campaign", "--models", "linear,markov", "--table"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("conversions credited by channel and campaign"), "{text}");
    assert!(text.contains("touch positions in converting journeys by channel and campaign"), "{text}");
    assert!(text.contains("top converting paths by touch key"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("email") && l.contains("email-1")), "{text}");

    // Without the option, no breakdown anywhere.
    let plain = attribute_json(&file, &["--models", models]);
    assert!(!plain.to_string().contains("breakdown"));
    for (model, m) in plain["models"].as_object().unwrap() {
        for channel in m["channels"].as_array().unwrap() {
            let name = channel["channel"].as_str().unwrap();
            let (a, b) = (credit(&plain, model, name), credit(&one, model, name));
            assert_close(b.0, a.0, &format!("{model}/{name}: a breakdown leaves the channel figures as they are"));
        }
    }
}

#[test]
fn too_many_campaigns_or_a_missing_column_are_refused_naming_them() {
    let dir = workdir();
    let file = write(dir.path(), "campaigns.csv", campaign_events(100));
    let output = attribute(&file, &["--breakdown", "campaign", "--max-breakdown-values", "10"]);
    let (code, stderr) = failure(&output);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("limit_exceeded") && stderr.contains("max_breakdown_values"), "{stderr}");
    assert!(attribute(&file, &["--breakdown", "campaign", "--max-breakdown-values", "16"]).status.success());

    let (code, stderr) = failure(&attribute(&file, &["--breakdown", "ad_group"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing_columns") && stderr.contains("ad_group"), "{stderr}");
    assert!(stderr.contains("utm_campaign"), "the file's columns are named: {stderr}");
    let (code, stderr) = failure(&attribute(&file, &["--breakdown", "a", "--breakdown", "b", "--breakdown", "c"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("breakdown"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_breaks_credit_down_over_chunks_as_the_local_command_does() {
    let env = vec![
        ("MTA_ROWS_PER_CHUNK", "500".into()),
        ("MTA_CSV_RANGE_BYTES", "30000".into()),
        ("MTA_MAX_BREAKDOWN_VALUES", "16".into()),
    ];
    let service = Service::start(ServiceSpec { workers: 2, env, ..ServiceSpec::default() }).await;
    let dir = workdir();
    let file = write(dir.path(), "campaigns.csv", campaign_events(1_000));
    // Cost per campaign too: joined to the rows of each week by the reducer as by `mta attribute`.
    let costs = write(dir.path(), "costs.csv", CAMPAIGN_COSTS);
    let spend = service.upload_file(&costs).await;
    let options = json!({
        "breakdown": ["campaign"],
        "period": "week",
        "models": ["linear", "markov", "shapley", "shao_li"],
        "markov_order": "auto",
        "markov_pair_effects": true,
    });
    let job = service.run(&file, json!({ "options": options, "spend_upload_id": spend })).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let id = job["id"].as_str().unwrap();
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local = attribute_json(
        &file,
        &[
            "--breakdown",
            "campaign",
            "--period",
            "week",
            "--models",
            "linear,markov,shapley,shao_li",
            "--markov-order",
            "auto",
            "--markov-pair-effects",
            "--spend",
            costs.to_str().unwrap(),
        ],
    );
    assert!(local["periods"].as_array().unwrap().len() > 1);
    let email_1 =
        local["models"]["markov"]["breakdown"].as_array().unwrap().iter().find(|r| r["campaign"] == "email-1");
    assert_eq!(email_1.unwrap()["cost"], 40.0, "{}", local["models"]["markov"]);
    let unmatched = &local["spend"]["unmatched_cost"];
    assert!(unmatched.as_array().unwrap().iter().any(|u| u["campaign"] == "email-9"), "{unmatched}");
    for model in ["markov", "shao_li"] {
        assert!(local["periods"][0]["models"][model]["breakdown"].is_array(), "each period has its {model} breakdown");
    }
    // The order is chosen and the pairs are removed among channels, never campaigns.
    assert!(local["models"]["markov"]["order_selection"].is_object(), "{}", local["models"]["markov"]);
    let pairs = local["models"]["markov"]["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 6, "the pairs of four channels: {pairs:?}");
    assert!(pairs.iter().all(|p| CHANNELS.contains(&p["channel_a"].as_str().unwrap())), "{pairs:?}");
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");

    for (table, header) in [
        ("breakdown", "model,channel,campaign,conversions,value,cost,cpa,roas"),
        ("period_breakdown", "period,model,channel,campaign,conversions,value,cost,cpa,roas"),
        ("unmatched_cost", "channel,campaign,cost,rows"),
        ("markov_pairs", "channel_a,channel_b,removal_effect,removal_effect_value,overlap"),
        ("breakdown_positions", "channel,campaign,only,first,middle,last"),
        ("period_breakdown_positions", "period,channel,campaign,only,first,middle,last"),
        ("breakdown_paths", "list,rank,path,touches,journeys,conversions,value,null_journeys,exact"),
    ] {
        let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table={table}")).await;
        assert_eq!(status, 200, "{table}");
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().next(), Some(header));
        let whole = result["models"].as_object().unwrap().values().map(|m| m["breakdown"].as_array().unwrap().len());
        if table == "breakdown_positions" {
            let rows = result["reports"]["breakdown_positions"].as_array().unwrap().len();
            assert_eq!(csv.lines().count(), rows + 1);
        }
        if table == "breakdown" {
            assert_eq!(csv.lines().count(), whole.sum::<usize>() + 1);
            // `mta result --table breakdown` prints the same table.
            let printed = std::process::Command::new(env!("CARGO_BIN_EXE_mta"))
                .args(["result", id, "--table", "breakdown"])
                .env("MTA_URL", &service.base)
                .env("MTA_API_KEY", &service.key)
                .output()
                .expect("mta runs");
            assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
            assert_eq!(String::from_utf8_lossy(&printed.stdout), csv);
        }
    }

    // One campaign more than the service allows (16 = four channels × three campaigns and
    // none): refused, naming the limit.
    let more = format!("{}u-extra,2026-03-01T00:00:00Z,email,brand-new,0,\n", campaign_events(1_000));
    let upload = service.upload(more.into_bytes()).await;
    let id = service.submit_ok(json!({ "upload_id": upload, "options": { "breakdown": ["campaign"] } })).await;
    let job = service.wait(&id, Duration::from_secs(60)).await;
    assert_eq!(
        (job["state"].as_str(), job["error"]["code"].as_str()),
        (Some("failed"), Some("limit_exceeded")),
        "{job}"
    );
    assert!(job["error"]["message"].as_str().unwrap_or_default().contains("max_breakdown_values"), "{job}");
    // Refused before any row is read: a bad breakdown option.
    let (status, body) = service.submit(json!({ "upload_id": upload, "options": { "breakdown": ["value"] } })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_option")), "{body}");
    service.assert_nothing_stuck().await;
}

/// A cost table for [`campaign_events`]: campaigns the touches name (`email-1`, `search`
/// without a campaign), one they do not (`email-9`) and a channel they do not (`tv`).
const CAMPAIGN_COSTS: &str = "date,channel,campaign,cost
2026-03-02,email,email-1,40
2026-03-09,email,email-2,60
2026-03-03,search,,120
2026-03-10,search,search-0,30
2026-03-04,email,email-9,5
2026-03-04,tv,,50
";

#[test]
fn cost_per_campaign_joins_the_breakdown_rows_in_the_json_the_tables_and_the_terminal_table() {
    let dir = workdir();
    let events = write(
        dir.path(),
        "events.csv",
        "user_id,timestamp,channel,campaign,conversion,conversion_value
u1,2026-01-01T10:00:00Z,email,spring,0,
u1,2026-01-02T10:00:00Z,search,brand,0,
u1,2026-01-03T10:00:00Z,,,1,100
u2,2026-01-02T10:00:00Z,search,,0,
u2,2026-01-03T12:00:00Z,,,1,50
",
    );
    let costs = write(
        dir.path(),
        "costs.csv",
        "date,channel,campaign,cost\n2026-01-01,email,spring,20\n2026-01-02,search,brand,30\n2026-01-02,search,,10\n\
         2026-01-02,search,generic,5\n2026-01-02,tv,,8\n",
    );
    let tables = dir.path().join("tables");
    let costs = costs.to_str().unwrap();
    let args =
        ["--models", "linear", "--breakdown", "campaign", "--spend", costs, "--csv-dir", tables.to_str().unwrap()];
    let result = attribute_json(&events, &args);
    // Linear: u1 (100) halves to email/spring and search/brand; u2 (50) to search/(none).
    let rows = result["models"]["linear"]["breakdown"].as_array().unwrap();
    let row = |channel: &str, campaign: &str| {
        let row = rows.iter().find(|r| r["channel"] == channel && r["campaign"] == campaign);
        let row = row.unwrap_or_else(|| panic!("no row {channel}/{campaign}: {rows:?}"));
        (row["cost"].as_f64(), row["cpa"].as_f64(), row["roas"].as_f64())
    };
    assert_eq!(row("email", "spring"), (Some(20.0), Some(40.0), Some(2.5)));
    assert_eq!(row("search", "(none)"), (Some(10.0), Some(10.0), Some(5.0)));
    let (cost, cpa, roas) = row("search", "brand");
    assert_eq!((cost, cpa), (Some(30.0), Some(60.0)));
    assert_close(roas.unwrap(), 50.0 / 30.0, "ROAS of search/brand");
    // `generic` has cost but no touch: reported with its campaign; the channel's cost is all of it.
    assert_eq!(
        result["spend"]["unmatched_cost"],
        json!([{ "channel": "tv", "cost": 8.0, "rows": 1 }, { "channel": "search", "campaign": "generic", "cost": 5.0, "rows": 1 }])
    );
    let search = result["models"]["linear"]["channels"].as_array().unwrap().iter().find(|c| c["channel"] == "search");
    assert_eq!(search.unwrap()["cost"], 45.0);

    let breakdown = std::fs::read_to_string(tables.join("breakdown.csv")).unwrap();
    let lines: Vec<&str> = breakdown.lines().collect();
    assert_eq!(lines[0], "model,channel,campaign,conversions,value,cost,cpa,roas");
    assert!(lines.contains(&"linear,email,spring,0.5,50,20,40,2.5"), "{breakdown}");
    assert!(lines.contains(&"linear,search,(none),1,50,10,10,5"), "{breakdown}");
    let unmatched = std::fs::read_to_string(tables.join("unmatched_cost.csv")).unwrap();
    assert_eq!(unmatched, "channel,campaign,cost,rows\ntv,,8,1\nsearch,generic,5,1\n");

    let output = attribute(&events, &["--models", "linear", "--breakdown", "campaign", "--spend", costs, "--table"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let cpa = text.split("CPA (cost per credited conversion) by channel and campaign").nth(1).expect(&text);
    let words = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert!(cpa.lines().any(|l| words(l) == ["search", "(none)", "10.00", "10.00"]), "{text}");
    let roas = text.split("ROAS (credited value per cost) by channel and campaign").nth(1).expect(&text);
    assert!(roas.lines().any(|l| words(l) == ["email", "spring", "20.00", "2.50"]), "{text}");
    assert!(text.contains("generic"), "{text}");

    // By the campaign column's alias too (`utm_campaign` names the same column here).
    let events_utm =
        write(dir.path(), "utm.csv", std::fs::read_to_string(&events).unwrap().replacen("campaign", "utm_campaign", 1));
    let aliased = attribute_json(&events_utm, &["--models", "linear", "--breakdown", "utm_campaign", "--spend", costs]);
    let rows = aliased["models"]["linear"]["breakdown"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["utm_campaign"] == "spring" && r["cost"] == 20.0), "{rows:?}");
}

/// `result` without its breakdown: the rows of every model (of periods and windows too) and
/// the option.
fn without_breakdown(mut result: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                // Rebuilt rather than `remove`d, which may reorder the keys.
                // The reports per touch key (`breakdown_positions`, ...) too.
                *map = std::mem::take(map).into_iter().filter(|(key, _)| !key.starts_with("breakdown")).collect();
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut result);
    result
}

#[test]
fn with_windows_periods_spend_and_top_paths_everything_but_the_rows_counts_channels() {
    let dir = workdir();
    let file = write(dir.path(), "campaigns.csv", campaign_events(300));
    let costs = write(
        dir.path(),
        "costs.csv",
        "date,channel,campaign,cost\n2026-03-02,email,email-1,40\n2026-03-03,search,,120\n2026-03-04,tv,,50\n",
    );
    let costs = costs.to_str().unwrap();
    let models = "first_touch,linear,participation,markov,shapley,shao_li";
    for extra in [&["--lookback-days", "7,0", "--spend", costs][..], &["--period", "week", "--spend", costs][..]] {
        let mut args = vec!["--models", models, "--top-paths", "20", "--markov-order", "auto", "--markov-pair-effects"];
        args.extend(extra);
        let plain = attribute_json(&file, &args);
        args.extend(["--breakdown", "campaign"]);
        let keyed = attribute_json(&file, &args);
        // The reports (paths, transitions, positions), windows, periods and the cost joined
        // by channel name are those of the run without a breakdown: they count channels.
        assert_same_result(&sorted(without_breakdown(keyed.clone())), &sorted(plain.clone()), &format!("{extra:?}"));
        let paths = &keyed["reports"]["paths"];
        let steps: Vec<&str> = ["converting", "non_converting"]
            .iter()
            .flat_map(|list| paths[list].as_array().unwrap())
            .flat_map(|p| p["path"].as_str().unwrap().split(" > "))
            .collect();
        assert!(!steps.is_empty() && steps.iter().all(|s| CHANNELS.contains(s)), "{extra:?}: {steps:?}");
        let linear = keyed["models"]["linear"]["channels"].as_array().unwrap();
        let search = linear.iter().find(|c| c["channel"] == "search").unwrap();
        assert_eq!(search["cost"].as_f64(), Some(120.0), "{extra:?}: cost joined by channel name");
        assert_eq!(keyed["spend"]["unmatched_cost"][0]["channel"], "tv", "{extra:?}");
        // Every window (or period) has its rows, adding up to its channels.
        let parts = keyed.get("windows").or(keyed.get("periods")).unwrap().as_array().unwrap();
        assert!(parts.len() > 1, "{extra:?}");
        for part in parts {
            for (model, m) in part["models"].as_object().unwrap() {
                let rows = m["breakdown"].as_array().unwrap_or_else(|| panic!("{model} has its rows"));
                for channel in m["channels"].as_array().unwrap() {
                    let name = channel["channel"].as_str().unwrap();
                    let sum: f64 =
                        rows.iter().filter(|r| r["channel"] == name).map(|r| r["conversions"].as_f64().unwrap()).sum();
                    assert_close(sum, channel["conversions"].as_f64().unwrap(), &format!("{extra:?} {model}/{name}"));
                }
            }
        }
    }
}
