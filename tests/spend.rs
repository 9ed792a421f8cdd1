//! Spend end to end: `mta attribute --spend` (figures by hand, tables, bad cost files) and
//! the service's `spend_upload_id` (the tenant's own upload only, the cache keyed on the
//! cost table's content, the result equal to the local command's).

use std::time::Duration;

use serde_json::{Value, json};

use crate::service::assert_same_result;
use crate::service_support::{Service, ServiceSpec, client, decode, sorted, without_job_id};
use crate::support::{EVENTS, assert_close, attribute, attribute_json, failure, sample, workdir, write};

const COSTS: &str = "\
date,channel,campaign,cost
2026-01-01,search,brand,60
2026-01-02,search,generic,30
2026-01-01,email,,10
2026-01-03,Search,,5
";

/// `(cost, cpa, roas)` of a channel under a model, `None` for `null`.
fn spend(result: &Value, model: &str, channel: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let channels = result["models"][model]["channels"].as_array().unwrap();
    let c = channels.iter().find(|c| c["channel"] == channel).unwrap_or_else(|| panic!("no {channel} in {model}"));
    let field = |name: &str| {
        assert!(c.get(name).is_some(), "`{name}` is present (null or a number): {c}");
        c[name].as_f64()
    };
    (field("cost"), field("cpa"), field("roas"))
}

#[test]
fn attribute_with_spend_reports_cost_cpa_and_roas_per_model_and_the_unmatched_cost() {
    let dir = workdir();
    let events = write(dir.path(), "events.csv", EVENTS);
    let costs = write(dir.path(), "costs.csv", COSTS);
    let tables = dir.path().join("tables");
    let args = ["--models", "last_touch,linear", "--spend", costs.to_str().unwrap(), "--csv-dir"];
    let mut args = args.to_vec();
    args.push(tables.to_str().unwrap());
    let result = attribute_json(&events, &args);

    // Last touch: search 2 conversions (150); linear: search 1.5 (100), email 0.5 (50).
    let (cost, cpa, roas) = spend(&result, "last_touch", "search");
    assert_eq!((cost, cpa), (Some(90.0), Some(45.0)));
    assert_close(roas.unwrap(), 150.0 / 90.0, "last-touch ROAS of search");
    assert_eq!(spend(&result, "last_touch", "email"), (Some(10.0), None, Some(0.0)), "no conversions: no CPA");
    assert_eq!(spend(&result, "last_touch", "display"), (None, None, None), "no cost row names display");
    let (cost, cpa, roas) = spend(&result, "linear", "search");
    assert_eq!((cost, cpa), (Some(90.0), Some(60.0)));
    assert_close(roas.unwrap(), 100.0 / 90.0, "linear ROAS of search");
    assert_eq!(spend(&result, "linear", "email"), (Some(10.0), Some(20.0), Some(5.0)));
    let summary = &result["spend"];
    assert_eq!(summary["rows"], 4);
    assert_eq!(summary["cost"], 105.0);
    assert_eq!(summary["matched_cost"], 100.0);
    assert_eq!(summary["campaigns"], 2);
    assert_eq!(
        (summary["first_date"].as_str(), summary["last_date"].as_str()),
        (Some("2026-01-01"), Some("2026-01-03"))
    );
    // Channel names match exactly: `Search` is no channel of the events, and is reported.
    assert_eq!(summary["unmatched_cost"], json!([{ "channel": "Search", "cost": 5.0, "rows": 1 }]));

    let channels = std::fs::read_to_string(tables.join("channels.csv")).unwrap();
    let mut lines = channels.lines();
    assert_eq!(
        lines.next(),
        Some("model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas")
    );
    assert!(lines.clone().any(|l| l == "linear,email,0.5,50,0.25,,,10,20,5"), "{channels}");
    assert!(lines.clone().any(|l| l == "last_touch,display,0,0,0,,,,,"), "{channels}");
    let unmatched = std::fs::read_to_string(tables.join("unmatched_cost.csv")).unwrap();
    assert_eq!(unmatched, "channel,cost,rows\nSearch,5,1\n");

    // The readable tables show the same figures; `-` where a figure is undefined.
    let output = attribute(&events, &["--models", "last_touch,linear", "--spend", costs.to_str().unwrap(), "--table"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("spend: cost 105.00 over 4 rows (2026-01-01 to 2026-01-03)"), "{text}");
    assert!(text.contains("CPA (cost per credited conversion)"), "{text}");
    let cpa_rows = text.split("CPA").nth(1).unwrap();
    assert!(
        cpa_rows.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["search", "90.00", "45.00", "60.00"])
    );
    assert!(cpa_rows.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["display", "-", "-", "-"]));
    assert!(text.contains("unmatched_cost") && text.contains("Search"), "{text}");

    // Without --spend nothing changes: no cost fields, no spend section.
    let plain = attribute_json(&events, &["--models", "linear"]);
    assert!(plain.get("spend").is_none());
    assert!(plain["models"]["linear"]["channels"][0].get("cost").is_none());
}

#[test]
fn bad_cost_files_are_refused_naming_the_cost_table_row_and_column() {
    let dir = workdir();
    let events = write(dir.path(), "events.csv", EVENTS);
    let bad = write(dir.path(), "bad.csv", "date,channel,cost\n2026-01-01,search,-5\n2026-13-01,email,1\n");
    let (code, stderr) = failure(&attribute(&events, &["--spend", bad.to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the cost table: 2 invalid value(s)"), "{stderr}");
    // Named by the file at fault, not the events file.
    assert!(stderr.starts_with(&format!("mta: {}: invalid_value", bad.display())), "{stderr}");
    assert!(stderr.contains("row 1, column `cost`: negative cost -5"), "{stderr}");
    assert!(stderr.contains("row 2, column `date`: cannot read `2026-13-01` as a date"), "{stderr}");

    let missing = write(dir.path(), "missing.csv", "day,source,spend\n2026-01-01,search,5\n");
    let (code, stderr) = failure(&attribute(&events, &["--spend", missing.to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("missing_columns") && stderr.contains("lacks column(s) channel"), "{stderr}");

    let costs = write(dir.path(), "costs.csv", COSTS);
    let (code, stderr) = failure(&attribute(&events, &["--spend", costs.to_str().unwrap(), "--max-cost-rows", "3"]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("limit_exceeded") && stderr.contains("more than 3 rows") && stderr.contains("max_cost_rows")
    );

    // With `--segment-by`, the cost table's segment column follows the rules of an event file's.
    let countries = write(dir.path(), "countries.csv", COUNTRY_EVENTS);
    let long = "x".repeat(mta_core::ingest::MAX_TOUCH_FIELD_BYTES + 1);
    let bad = write(dir.path(), "bad_country.csv", format!("date,channel,country,cost\n2026-01-01,search,{long},5\n"));
    let (code, stderr) =
        failure(&attribute(&countries, &["--segment-by", "country", "--spend", bad.to_str().unwrap()]));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("row 1, column `country`: segment value longer than"), "{stderr}");

    let nowhere = dir.path().join("nowhere.csv");
    let (code, stderr) = failure(&attribute(&events, &["--spend", nowhere.to_str().unwrap()]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("spend"), "{stderr}");
}

/// Two users in DE and FR (`--segment-by country`).
const COUNTRY_EVENTS: &str = "user_id,timestamp,channel,country,conversion,conversion_value
u1,2026-01-01T10:00:00Z,search,DE,0,
u1,2026-01-02T10:00:00Z,email,DE,0,
u1,2026-01-03T10:00:00Z,,DE,1,100
u2,2026-01-01T10:00:00Z,search,FR,0,
u2,2026-01-02T10:00:00Z,,FR,1,40
";

#[test]
fn cost_per_segment_in_the_json_the_tables_and_the_terminal_table() {
    let dir = workdir();
    let events = write(dir.path(), "countries.csv", COUNTRY_EVENTS);
    let costs = write(
        dir.path(),
        "costs.csv",
        "date,channel,country,cost\n2026-01-01,search,DE,30\n2026-01-01,search,FR,8\n2026-01-02,email,DE,10\n\
         2026-01-02,search,ES,7\n",
    );
    let tables = dir.path().join("tables");
    let args = ["--models", "last_touch", "--segment-by", "country", "--spend", costs.to_str().unwrap()];
    let result = attribute_json(&events, &[&args[..], &["--csv-dir", tables.to_str().unwrap()]].concat());
    // The whole: every row's cost; each country: its own rows' (by hand: DE's email 10 for
    // 1 conversion worth 100, its search 30 for none; FR's search 8 for 1 worth 40).
    assert_eq!(spend(&result, "last_touch", "search"), (Some(45.0), Some(45.0), Some(40.0 / 45.0)));
    let de = &result["segments"][0];
    assert_eq!(spend(de, "last_touch", "search"), (Some(30.0), None, Some(0.0)));
    assert_eq!(spend(de, "last_touch", "email"), (Some(10.0), Some(10.0), Some(10.0)));
    assert_eq!(spend(&result["segments"][1], "last_touch", "search"), (Some(8.0), Some(8.0), Some(5.0)));
    let segments = std::fs::read_to_string(tables.join("segments.csv")).unwrap();
    assert!(segments.contains("\nFR,last_touch,search,1,40,1,,,8,8,5\n"), "{segments}");
    let unmatched = std::fs::read_to_string(tables.join("unmatched_cost.csv")).unwrap();
    assert_eq!(unmatched, "channel,country,cost,rows\nsearch,ES,7,1\n");
    let output = attribute(&events, &[&args[..], &["--table"]].concat());
    let text = String::from_utf8_lossy(&output.stdout);
    let fr = text.split("segment country = FR").nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(fr.lines().nth(1).is_some_and(|l| l.ends_with("cost")), "{text}");
    assert!(fr.lines().nth(2).is_some_and(|l| l.starts_with("search") && l.ends_with(" 8.00")), "{text}");
}

/// Daily costs over the sample's three months: three of its channels, and `tv`, which
/// the events never mention.
fn sample_costs() -> String {
    let mut csv = String::from("date,channel,campaign,cost\n");
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    for day in 0..90u32 {
        let date = start + chrono::Days::new(u64::from(day));
        for (channel, campaign, cost) in [
            ("paid_search", "brand", 120.5),
            ("paid_search", "generic", 80.0),
            ("display", "", 55.25),
            ("tv", "", 300.0),
        ] {
            csv.push_str(&format!("{date},{channel},{campaign},{}\n", cost + f64::from(day % 7)));
        }
        if day % 10 == 0 {
            csv.push_str(&format!("{date},social_paid,,{}\n", 40 + day));
        }
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_spend_upload_equals_the_local_command_and_only_the_tenants_own_upload_is_taken() {
    let env = vec![("MTA_ROWS_PER_CHUNK", "2000".into()), ("MTA_CSV_RANGE_BYTES", "100000".into())];
    let service = Service::start(ServiceSpec { workers: 2, env, ..ServiceSpec::default() }).await;
    let dir = workdir();
    let events = sample("events.csv");
    let costs = write(dir.path(), "costs.csv", sample_costs());
    let options = json!({ "period": "month", "timezone": "Europe/Berlin", "models": ["linear", "markov"] });

    let upload = service.upload_file(&events).await;
    let spend_upload = service.upload_file(&costs).await;
    let spec = json!({ "upload_id": upload, "spend_upload_id": spend_upload, "options": options });
    let id = service.submit_ok(spec).await;
    let job = service.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["spec"]["spend_upload_id"], spend_upload.as_str());
    let (_, result) = service.get(&format!("/v1/jobs/{id}/result")).await;
    let local = attribute_json(
        &events,
        &[
            "--spend",
            costs.to_str().unwrap(),
            "--period",
            "month",
            "--timezone",
            "Europe/Berlin",
            "--models",
            "linear,markov",
        ],
    );
    assert!(local["spend"]["unmatched_cost"][0]["channel"] == "tv", "{}", local["spend"]);
    assert!(local["periods"][0]["models"]["linear"]["channels"][0].get("cpa").is_some());
    assert_same_result(&sorted(without_job_id(result.clone())), &sorted(local), "result");

    // The tables: channels with cost, cpa, roas; the unmatched cost.
    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=channels")).await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8(csv)
            .unwrap()
            .starts_with("model,channel,conversions,value,share,removal_effect,removal_effect_value,cost,cpa,roas\n")
    );
    let (status, csv) = service.get_bytes(&format!("/v1/jobs/{id}/result?format=csv&table=unmatched_cost")).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("channel,cost,rows\ntv,"), "{csv}");

    // The same cost table uploaded again: the same content, the result cache answers.
    let again = service.upload_file(&costs).await;
    let cached = service.submit_ok(json!({ "upload_id": upload, "spend_upload_id": again, "options": options })).await;
    let cached = service.wait(&cached, Duration::from_secs(60)).await;
    assert_eq!(cached["cached_from"], id.as_str(), "{cached}");
    // A multipart submission takes the cost table as its `spend` part: the same job again.
    let form = |spec: String| {
        reqwest::multipart::Form::new()
            .text("spec", spec)
            .part("file", reqwest::multipart::Part::bytes(std::fs::read(&events).unwrap()))
            .part("spend", reqwest::multipart::Part::bytes(std::fs::read(&costs).unwrap()))
    };
    let response = service
        .http
        .post(format!("{}/v1/jobs", service.base))
        .multipart(form(json!({ "options": options }).to_string()))
        .send()
        .await
        .unwrap();
    let (status, multipart) = decode(response).await;
    assert_eq!(status, 202, "{multipart}");
    assert_eq!(multipart["cached_from"], id.as_str(), "{multipart}");
    let twice = json!({ "spend_upload_id": spend_upload }).to_string();
    let response = service.http.post(format!("{}/v1/jobs", service.base)).multipart(form(twice)).send().await.unwrap();
    let (status, body) = decode(response).await;
    assert_eq!((status, body["error"]["details"][0]["column"].as_str()), (422, Some("spend_upload_id")), "{body}");
    // Another cost table is another answer.
    let other_costs = service.upload(b"date,channel,cost\n2026-01-01,display,1\n".to_vec()).await;
    let other =
        service.submit_ok(json!({ "upload_id": upload, "spend_upload_id": other_costs, "options": options })).await;
    let other = service.wait(&other, Duration::from_secs(120)).await;
    assert_eq!(other["state"], "succeeded", "{other}");
    assert!(other.get("cached_from").is_none(), "{other}");
    let (_, other_result) = service.get(&format!("/v1/jobs/{}/result", other["id"].as_str().unwrap())).await;
    assert_eq!(other_result["spend"]["cost"], 1.0);

    // Another tenant's upload is as unknown as none: 422 naming the field, nothing queued.
    let stranger = service.create_key("t2", "submit", &[]);
    let response = client(Some(&stranger))
        .post(format!("{}/v1/uploads", service.base))
        .body(sample_costs().into_bytes())
        .send()
        .await
        .unwrap();
    let (status, theirs) = decode(response).await;
    assert_eq!(status, 201, "{theirs}");
    let theirs = theirs["upload_id"].as_str().unwrap();
    for spend in [theirs.to_owned(), "3f0c8a52-6d1e-4f7a-9a43-2b8e1c5d7f90".to_owned()] {
        let (status, body) = service.submit(json!({ "upload_id": upload, "spend_upload_id": spend })).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["details"][0]["column"], "spend_upload_id", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no such upload"), "{body}");
    }

    // A bad cost table fails its job with the located problems.
    let bad = service.upload(b"date,channel,cost\n2026-01-01,display,-1\n".to_vec()).await;
    let failed = service.submit_ok(json!({ "upload_id": upload, "spend_upload_id": bad })).await;
    let failed = service.wait(&failed, Duration::from_secs(120)).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error"]["code"], "invalid_value", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().starts_with("the cost table:"), "{failed}");
    assert_eq!(failed["error"]["details"][0]["column"], "cost", "{failed}");
    // It is read when the job starts: no chunk was attributed for nothing.
    assert_eq!(failed["progress"]["chunks_done"], 0, "{failed}");
    assert_eq!(failed["stage"], "splitting", "{failed}");
    // The terminal client: `mta submit --spend` uploads the cost table beside the file and
    // gets the same answer.
    let mta = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mta"))
            .args(args)
            .env("MTA_URL", &service.base)
            .env("MTA_API_KEY", &service.key)
            .output()
            .expect("mta runs")
    };
    let (events, costs) = (events.to_str().unwrap(), costs.to_str().unwrap());
    let flags = ["--models", "linear,markov", "--period", "month", "--timezone", "Europe/Berlin", "--json"];
    let output = mta(&[&["submit", events, "--spend", costs][..], &flags[..]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let submitted: Value = serde_json::from_slice(&output.stdout).unwrap();
    let submitted = submitted["id"].as_str().unwrap();
    let done = service.wait(submitted, Duration::from_secs(120)).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let (_, from_cli) = service.get(&format!("/v1/jobs/{submitted}/result")).await;
    assert_same_result(&sorted(without_job_id(from_cli)), &sorted(without_job_id(result)), "cli");
    let output = mta(&["result", submitted, "--table", "unmatched_cost"]);
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("channel,cost,rows\ntv,"), "{table}");
    let output = mta(&["result", submitted]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("spend: cost") && text.contains("ROAS (credited value per cost)"), "{text}");
    service.assert_nothing_stuck().await;
}
