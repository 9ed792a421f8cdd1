//! The human-readable view of a result (`--table`): a summary, then channels × models
//! for conversions and for value, then the Markov removal effects.

use std::fmt::Write;

use serde_json::Value;

/// Renders a result (the JSON of DESIGN.md 5, from `mta attribute` or the service) as
/// aligned text tables. Models appear in the order of the JSON object.
pub fn render(result: &Value) -> String {
    let mut out = String::new();
    let s = &result["summary"];
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let _ = writeln!(
        out,
        "rows {}  journeys {}  converting {}  null {}  channels {}",
        count(f(&s["rows"])),
        count(f(&s["journeys"])),
        count(f(&s["converting_journeys"])),
        count(f(&s["null_journeys"])),
        count(f(&s["channels"]))
    );
    let _ = writeln!(
        out,
        "conversions {}  value {}  unattributed {} (value {})",
        count(f(&s["conversions"])),
        num(f(&s["conversion_value"])),
        count(f(&s["unattributed_conversions"])),
        num(f(&s["unattributed_value"]))
    );
    let truncated = f(&s["truncated_journeys"]);
    if truncated > 0.0 {
        let limit = &result["options"]["max_journey_touches"];
        let _ = writeln!(out, "journeys cut to their last {limit} touches: {}", count(truncated));
    }
    let empty = serde_json::Map::new();
    let models: Vec<(&String, &Value)> = result["models"].as_object().unwrap_or(&empty).iter().collect();
    // Channels in the order of the linear model's ranking (a neutral one), else the first model's.
    let ranking = result["models"].get("linear").or(models.first().map(|(_, m)| *m));
    let Some(ranking) = ranking else { return out };
    let channels: Vec<&str> =
        ranking["channels"].as_array().into_iter().flatten().filter_map(|c| c["channel"].as_str()).collect();
    let credit = |model: &Value, channel: &str, field: &str| {
        model["channels"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["channel"] == channel)
            .map_or(0.0, |c| f(&c[field]))
    };
    for (title, field, total_field) in
        [("conversions", "conversions", "total_conversions"), ("value", "value", "total_value")]
    {
        let _ = writeln!(out, "\n{title} credited");
        let mut header = vec!["channel".to_owned()];
        header.extend(models.iter().map(|(name, _)| short_name(name).to_owned()));
        let mut rows = vec![header];
        for channel in &channels {
            let mut row = vec![(*channel).to_owned()];
            row.extend(models.iter().map(|(_, model)| num(credit(model, channel, field))));
            rows.push(row);
        }
        let mut total = vec!["total".to_owned()];
        total.extend(models.iter().map(|(_, model)| num(f(&model[total_field]))));
        rows.push(total);
        align(&mut out, &rows);
    }
    if let Some(markov) = result["models"].get("markov") {
        let _ = writeln!(
            out,
            "\nmarkov order {}: P(conversion) = {:.6}",
            markov["order"].as_u64().unwrap_or(1),
            f(&markov["conversion_probability"])
        );
        let mut rows = vec![vec!["channel".to_owned(), "removal effect".to_owned(), "value removal effect".to_owned()]];
        for c in markov["channels"].as_array().into_iter().flatten() {
            rows.push(vec![
                c["channel"].as_str().unwrap_or_default().to_owned(),
                format!("{:.6}", f(&c["removal_effect"])),
                format!("{:.6}", f(&c["removal_effect_value"])),
            ]);
        }
        align(&mut out, &rows);
    }
    if result["models"].get("participation").is_some() {
        let _ = writeln!(
            out,
            "\nparticipation credits every distinct channel of a journey in full: its totals exceed conversions by design."
        );
    }
    out
}

fn short_name(model: &str) -> &str {
    match model {
        "first_touch" => "first",
        "last_touch" => "last",
        "position_based" => "position",
        other => other,
    }
}

/// Journey and conversion counts: whole unless path rows carried fractions.
fn count(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// Counts print whole; credits always with two decimals so columns line up.
fn num(x: f64) -> String {
    format!("{x:.2}")
}

fn align(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}
