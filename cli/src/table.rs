//! The human-readable view of a result (`--table`): a summary, then channels × models
//! for conversions and for value, with a breakdown the conversions per channel × breakdown
//! values, then the Markov removal effects (with how `auto` chose the order, and the pair
//! removal effects when asked), with a cost table CPA and ROAS, with several lookback windows
//! their comparison (share and rank per window), with segments each segment's conversions
//! per channel × model (the first 20 segments), then the journey reports (touches and days
//! to conversion, positions, top paths, the largest Markov transitions) and the top converting
//! path of each period, segment and window.

use std::fmt::Write;

use mta_core::breakdown::BreakdownRow;
use mta_core::result::ModelResult;
use mta_core::spend::SpendSummary;
use mta_core::{AttributionResult, ModelId};

/// Renders a result (from `mta attribute` or the service) as aligned text tables. Models
/// appear in the result's order.
pub fn render(result: &AttributionResult) -> String {
    let mut out = String::new();
    let s = &result.summary;
    let _ = writeln!(
        out,
        "rows {}  journeys {}  converting {}  null {}  channels {}",
        s.rows,
        count(s.journeys),
        count(s.converting_journeys),
        count(s.null_journeys),
        s.channels
    );
    let _ = writeln!(
        out,
        "conversions {}  value {}  unattributed {} (value {})",
        count(s.conversions),
        num(s.conversion_value),
        count(s.unattributed_conversions),
        num(s.unattributed_value)
    );
    if s.truncated_journeys > 0 {
        let limit = result.options.max_journey_touches;
        let _ = writeln!(out, "journeys cut to their last {limit} touches: {}", s.truncated_journeys);
    }
    // Channels in the order of the linear model's ranking (a neutral one), else the first model's.
    let Some(ranking) = result.model(ModelId::Linear).or(result.models.first()) else { return out };
    let channels: Vec<&str> = ranking.channels.iter().map(|c| c.channel.as_str()).collect();
    type Field = fn(&mta_core::result::ChannelCredit) -> f64;
    type Total = fn(&ModelResult) -> f64;
    let tables: [(&str, Field, Total); 2] =
        [("conversions", |c| c.conversions, |m| m.total_conversions), ("value", |c| c.value, |m| m.total_value)];
    for (title, field, total) in tables {
        let _ = writeln!(out, "\n{title} credited");
        let mut header = vec!["channel".to_owned()];
        header.extend(result.models.iter().map(|m| short_name(m.model.as_str()).to_owned()));
        let mut rows = vec![header];
        for channel in &channels {
            let mut row = vec![(*channel).to_owned()];
            row.extend(result.models.iter().map(|m| num(m.channel(channel).map_or(0.0, field))));
            rows.push(row);
        }
        let mut totals = vec!["total".to_owned()];
        totals.extend(result.models.iter().map(|m| num(total(m))));
        rows.push(totals);
        align(&mut out, &rows);
    }
    breakdown(&mut out, result, ranking);
    render_intervals(&mut out, result);
    if let Some(markov) = result.model(ModelId::Markov) {
        let _ = writeln!(
            out,
            "\nmarkov order {}: P(conversion) = {:.6}",
            markov.order.unwrap_or(1),
            markov.conversion_probability.unwrap_or(0.0)
        );
        let mut rows = vec![vec!["channel".to_owned(), "removal effect".to_owned(), "value removal effect".to_owned()]];
        for c in &markov.channels {
            rows.push(vec![
                c.channel.clone(),
                format!("{:.6}", c.removal_effect.unwrap_or(0.0)),
                format!("{:.6}", c.removal_effect_value.unwrap_or(0.0)),
            ]);
        }
        align(&mut out, &rows);
        if let Some(selection) = &markov.order_selection {
            let _ = writeln!(
                out,
                "\nmarkov order chosen: {} (held-out log-likelihood of outcomes per journey; {} training, {} held-out journeys)",
                selection.chosen,
                count(selection.training_journeys),
                count(selection.held_out_journeys)
            );
            let mut rows = vec![vec!["order".to_owned(), "states".to_owned(), "log-likelihood".to_owned()]];
            for score in &selection.scores {
                let mut order = score.order.to_string();
                if score.order == selection.chosen {
                    order.push_str(" *");
                }
                let ll = score.log_likelihood.map_or_else(|| "-".to_owned(), |ll| format!("{ll:.6}"));
                rows.push(vec![order, score.states.to_string(), ll]);
            }
            align(&mut out, &rows);
        }
        if let Some(pairs) = &markov.pairs {
            let _ = writeln!(out, "\nmarkov pair removal effects (pairs of the top channels)");
            let mut rows = vec![
                ["channel a", "channel b", "removal effect", "value removal effect", "overlap"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for p in pairs {
                rows.push(vec![
                    p.channel_a.clone(),
                    p.channel_b.clone(),
                    format!("{:.6}", p.removal_effect),
                    format!("{:.6}", p.removal_effect_value),
                    format!("{:.6}", p.overlap),
                ]);
            }
            align(&mut out, &rows);
        }
    }
    if let Some(spend) = &result.spend {
        render_spend(&mut out, result, spend, &channels);
    }
    render_windows(&mut out, result);
    render_segments(&mut out, result);
    if result.model(ModelId::Participation).is_some() {
        let _ = writeln!(
            out,
            "\nparticipation credits every distinct channel of a journey in full: its totals exceed conversions by design."
        );
    }
    if let Some(reports) = &result.reports {
        render_reports(&mut out, reports);
    }
    render_part_paths(&mut out, result);
    out
}

/// A part's label and its reports (absent from results of older versions).
type LabelledReports<'a> = (String, Option<&'a mta_core::reports::Reports>);

/// Each period's, segment's and window's top converting path (the first [`SHOWN_SEGMENTS`] of
/// each kind; every part's reports are in the `period_…`, `segment_…` and `window_…` tables).
fn render_part_paths(out: &mut String, result: &AttributionResult) {
    let column = mta_core::segment::column(&result.options).unwrap_or("segment");
    let parts: [(String, &str, Vec<LabelledReports>); 3] = [
        (
            "period".to_owned(),
            "period_paths",
            result.periods.iter().map(|p| (p.period.clone(), p.reports.as_ref())).collect(),
        ),
        (
            column.to_owned(),
            "segment_paths",
            result.segments.iter().map(|s| (s.value().unwrap_or("(none)").to_owned(), s.reports.as_ref())).collect(),
        ),
        (
            "lookback days".to_owned(),
            "window_paths",
            result.windows.iter().map(|w| (window_label(w.lookback_days), w.reports.as_ref())).collect(),
        ),
    ];
    for (label, table, parts) in parts {
        if parts.iter().all(|(_, reports)| reports.is_none()) {
            continue;
        }
        let _ = writeln!(
            out,
            "
top converting path by {label} (all of them: --csv-dir, table {table})"
        );
        let mut rows = vec![[label.as_str(), "path", "conversions", "value", "exact"].map(str::to_owned).to_vec()];
        for (name, reports) in parts.iter().take(SHOWN_SEGMENTS) {
            let Some(paths) = reports.and_then(|r| r.paths.as_ref()) else { continue };
            let exact = if paths.exact { "yes" } else { "no" }.to_owned();
            match paths.converting.first() {
                Some(p) => {
                    rows.push(vec![name.clone(), cut(&p.path, PATH_CHARS), count(p.conversions), num(p.value), exact])
                }
                None => rows.push(vec![name.clone(), "-".to_owned(), "0".to_owned(), "0".to_owned(), exact]),
            }
        }
        align(out, &rows);
    }
}

/// Segments shown in full; the rest are counted (all of them are in the `segments` table).
const SHOWN_SEGMENTS: usize = 20;

/// With `segment_by`: each segment's summary and conversions per channel × model.
fn render_segments(out: &mut String, result: &AttributionResult) {
    let column = mta_core::segment::column(&result.options).unwrap_or("segment");
    for segment in result.segments.iter().take(SHOWN_SEGMENTS) {
        let s = &segment.summary;
        let _ = writeln!(
            out,
            "
segment {column} = {}: journeys {}  conversions {}  value {}",
            segment.value().unwrap_or("(none)"),
            count(s.journeys),
            count(s.conversions),
            num(s.conversion_value)
        );
        let ranking = segment.models.iter().find(|m| m.model == ModelId::Linear).or(segment.models.first());
        let Some(ranking) = ranking else { continue };
        let mut header = vec!["channel".to_owned()];
        header.extend(segment.models.iter().map(|m| short_name(m.model.as_str()).to_owned()));
        // With cost per segment: the channel's cost in the segment (`-` where none).
        let cost = segment.spend.is_some();
        if cost {
            header.push("cost".to_owned());
        }
        let mut rows = vec![header];
        for c in &ranking.channels {
            let mut row = vec![c.channel.clone()];
            row.extend(segment.models.iter().map(|m| num(m.channel(&c.channel).map_or(0.0, |c| c.conversions))));
            if cost {
                row.push(c.cost.flatten().map_or("-".to_owned(), num));
            }
            rows.push(row);
        }
        align(out, &rows);
    }
    if result.segments.len() > SHOWN_SEGMENTS {
        let more = result.segments.len() - SHOWN_SEGMENTS;
        let _ = writeln!(
            out,
            "
... and {more} more segments (all of them: --csv-dir, table segments)"
        );
    }
}

/// With a breakdown: conversions credited per channel × breakdown values under every model,
/// in the ranking model's order of rows (with `intervals`, each followed by its interval).
fn breakdown(out: &mut String, result: &AttributionResult, ranking: &ModelResult) {
    let Some(rows) = &ranking.breakdown else { return };
    let names = &result.options.breakdown;
    let intervals = result.options.intervals.map_or(String::new(), |i| format!(" [{:.0}% interval]", i.level * 100.0));
    let _ = writeln!(out, "\nconversions credited by channel and {}{intervals}", names.join(" and "));
    let mut header = vec!["channel".to_owned()];
    header.extend(names.iter().cloned());
    header.extend(result.models.iter().map(|m| short_name(m.model.as_str()).to_owned()));
    // Each model's credit by (channel, values), with its interval when it has one.
    let credit = |r: &BreakdownRow| match &r.interval {
        Some(i) => format!("{} [{}, {}]", num(r.conversions), num(i.conversions_low), num(i.conversions_high)),
        None => num(r.conversions),
    };
    let by_key: Vec<std::collections::HashMap<RowKey<'_>, String>> = result
        .models
        .iter()
        .map(|m| m.breakdown.iter().flatten().map(|r| ((r.channel.as_str(), r.values.as_slice()), credit(r))).collect())
        .collect();
    let mut table = vec![header];
    for row in rows.iter().take(MAX_BREAKDOWN_ROWS) {
        let mut line = vec![row.channel.clone()];
        line.extend(row.values.iter().map(|(_, v)| v.clone()));
        let key = (row.channel.as_str(), row.values.as_slice());
        line.extend(by_key.iter().map(|credits| credits.get(&key).cloned().unwrap_or_else(|| num(0.0))));
        table.push(line);
    }
    align(out, &table);
    let more = |out: &mut String| {
        if rows.len() > MAX_BREAKDOWN_ROWS {
            let _ = writeln!(
                out,
                "... and {} more rows (all of them: --csv-dir, table breakdown)",
                rows.len() - MAX_BREAKDOWN_ROWS
            );
        }
    };
    more(out);
    if !result.has_campaign_cost() {
        return;
    }
    // Cost per campaign: the row's cost, and each model's CPA and ROAS (`-` where undefined).
    type Ratio = fn(&BreakdownRow) -> Option<f64>;
    let ratios: [(&str, Ratio); 2] = [
        ("CPA (cost per credited conversion)", |r| r.cpa.flatten()),
        ("ROAS (credited value per cost)", |r| r.roas.flatten()),
    ];
    for (title, ratio) in ratios {
        let _ = writeln!(out, "\n{title} by channel and {}", names.join(" and "));
        let mut header = vec!["channel".to_owned()];
        header.extend(names.iter().cloned());
        header.push("cost".to_owned());
        header.extend(result.models.iter().map(|m| short_name(m.model.as_str()).to_owned()));
        let by_key: Vec<std::collections::HashMap<RowKey<'_>, &BreakdownRow>> = result
            .models
            .iter()
            .map(|m| m.breakdown.iter().flatten().map(|r| ((r.channel.as_str(), r.values.as_slice()), r)).collect())
            .collect();
        let mut table = vec![header];
        for row in rows.iter().take(MAX_BREAKDOWN_ROWS) {
            let mut line = vec![row.channel.clone()];
            line.extend(row.values.iter().map(|(_, v)| v.clone()));
            line.push(row.cost.flatten().map_or("-".to_owned(), num));
            let key = (row.channel.as_str(), row.values.as_slice());
            line.extend(by_key.iter().map(|rows| rows.get(&key).and_then(|r| ratio(r)).map_or("-".to_owned(), num)));
            table.push(line);
        }
        align(out, &table);
        more(out);
    }
}

/// A breakdown row's channel and values.
type RowKey<'a> = (&'a str, &'a [(String, String)]);

/// Breakdown rows shown in a table; the CSV table has them all.
const MAX_BREAKDOWN_ROWS: usize = 200;
/// Rows shown of each list of the reports (every row is in the CSV tables).
const REPORT_ROWS: usize = 10;
/// Longer paths are cut to this many characters here (whole in the JSON and the CSV tables).
const PATH_CHARS: usize = 60;

/// `text`, cut to `chars` characters with ` [cut]` in place of the rest.
fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(chars).collect();
    format!("{kept} [cut]")
}

fn render_reports(out: &mut String, reports: &mta_core::reports::Reports) {
    let buckets = |title: &str, rows: &[mta_core::reports::Bucket]| -> Vec<Vec<String>> {
        let mut table = vec![vec![title.to_owned(), "conversions".to_owned(), "value".to_owned()]];
        table.extend(rows.iter().map(|b| vec![b.bucket.clone(), count(b.conversions), num(b.value)]));
        table
    };
    let _ = writeln!(out, "\nconverting journeys by touches");
    align(out, &buckets("touches", &reports.path_length));
    if !reports.time_lag.is_empty() {
        let _ = writeln!(out, "\nconverting journeys by days from first touch to conversion");
        align(out, &buckets("days", &reports.time_lag));
    }
    if !reports.positions.is_empty() {
        let _ = writeln!(out, "\ntouch positions in converting journeys");
        let mut rows = vec![["channel", "only", "first", "middle", "last"].map(str::to_owned).to_vec()];
        for c in &reports.positions {
            let p = &c.positions;
            rows.push(vec![c.channel.clone(), count(p.only), count(p.first), count(p.middle), count(p.last)]);
        }
        align(out, &rows);
    }
    if let Some(keyed) = reports.breakdown_positions.as_deref().filter(|rows| !rows.is_empty()) {
        let columns: Vec<&str> = keyed[0].values.iter().map(|(name, _)| name.as_str()).collect();
        let _ = writeln!(out, "\ntouch positions in converting journeys by channel and {}", columns.join(" and "));
        let header = ["channel"].into_iter().chain(columns.iter().copied()).chain(["only", "first", "middle", "last"]);
        let mut rows: Vec<Vec<String>> = vec![header.map(str::to_owned).collect()];
        for r in keyed.iter().take(MAX_BREAKDOWN_ROWS) {
            let p = &r.positions;
            let mut line = vec![r.channel.clone()];
            line.extend(r.values.iter().map(|(_, v)| v.clone()));
            line.extend([count(p.only), count(p.first), count(p.middle), count(p.last)]);
            rows.push(line);
        }
        align(out, &rows);
        if keyed.len() > MAX_BREAKDOWN_ROWS {
            let more = keyed.len() - MAX_BREAKDOWN_ROWS;
            let _ = writeln!(out, "... and {more} more rows (all of them: --csv-dir, table breakdown_positions)");
        }
    }
    if let Some(paths) = &reports.paths {
        let distinct = paths.distinct_paths.map(|n| format!(" of {n} distinct paths")).unwrap_or_default();
        for (title, list) in [("converting", &paths.converting), ("non-converting", &paths.non_converting)] {
            let _ = writeln!(
                out,
                "\ntop {title} paths ({} shown{distinct}; paths cut to {PATH_CHARS} characters, whole in the CSV table)",
                list.len().min(REPORT_ROWS)
            );
            let mut rows = vec![["path", "journeys", "conversions", "value", "null"].map(str::to_owned).to_vec()];
            for p in list.iter().take(REPORT_ROWS) {
                rows.push(vec![
                    cut(&p.path, PATH_CHARS),
                    count(p.journeys),
                    count(p.conversions),
                    num(p.value),
                    count(p.null_journeys),
                ]);
            }
            align(out, &rows);
        }
        if !paths.exact {
            let b = &paths.error_bound;
            let _ = writeln!(
                out,
                "more distinct paths than max_report_paths: the figures are estimates, at most {} conversions, {} value \
                 and {} null journeys below the truth",
                count(b.conversions),
                num(b.value),
                count(b.null_journeys)
            );
        }
    }
    if let Some(paths) = &reports.breakdown_paths {
        let shown = paths.converting.len().min(REPORT_ROWS);
        let _ = writeln!(
            out,
            "\ntop converting paths by touch key, channel | breakdown values ({shown} shown; all of them: --csv-dir, \
             table breakdown_paths)"
        );
        let mut rows = vec![["path", "journeys", "conversions", "value"].map(str::to_owned).to_vec()];
        for p in paths.converting.iter().take(REPORT_ROWS) {
            rows.push(vec![cut(&p.path, PATH_CHARS), count(p.journeys), count(p.conversions), num(p.value)]);
        }
        align(out, &rows);
    }
    if let Some(transitions) = &reports.transitions {
        let _ = writeln!(
            out,
            "\nmarkov transitions ({} largest of {})",
            transitions.rows.len().min(REPORT_ROWS),
            transitions.total
        );
        let mut rows = vec![["from", "to", "count", "probability"].map(str::to_owned).to_vec()];
        for t in transitions.rows.iter().take(REPORT_ROWS) {
            rows.push(vec![t.from.clone(), t.to.clone(), count(t.count), format!("{:.4}", t.probability)]);
        }
        align(out, &rows);
    }
}

/// The spend section: cost per channel, CPA and ROAS per model, and the cost no channel
/// of the events matched. `-` marks a figure that is `null` (undefined).
fn render_spend(out: &mut String, result: &AttributionResult, spend: &SpendSummary, channels: &[&str]) {
    let _ = writeln!(
        out,
        "\nspend: cost {} over {} rows ({} to {}), matched to channels {}",
        num(spend.cost),
        spend.rows,
        spend.first_date,
        spend.last_date,
        num(spend.matched_cost)
    );
    let ranking = result.model(ModelId::Linear).or(result.models.first());
    let cost_of = |channel: &str| ranking.and_then(|m| m.channel(channel)).and_then(|c| c.cost.flatten());
    type Ratio = fn(&mta_core::result::ChannelCredit) -> Option<f64>;
    let ratios: [(&str, Ratio); 2] = [
        ("CPA (cost per credited conversion)", |c| c.cpa.flatten()),
        ("ROAS (credited value per cost)", |c| c.roas.flatten()),
    ];
    for (title, ratio) in ratios {
        let _ = writeln!(out, "\n{title}");
        let mut header = vec!["channel".to_owned(), "cost".to_owned()];
        header.extend(result.models.iter().map(|m| short_name(m.model.as_str()).to_owned()));
        let mut rows = vec![header];
        for channel in channels {
            let mut row = vec![(*channel).to_owned(), cost_of(channel).map_or("-".to_owned(), num)];
            row.extend(result.models.iter().map(|m| m.channel(channel).and_then(ratio).map_or("-".to_owned(), num)));
            rows.push(row);
        }
        align(out, &rows);
    }
    if !spend.unmatched_cost.is_empty() {
        let campaigns = result.has_campaign_cost();
        let _ = writeln!(
            out,
            "\ncost of channels no journey mentions{} (unmatched_cost)",
            if campaigns { " and of campaigns no breakdown row has" } else { "" }
        );
        let mut header = vec!["channel".to_owned()];
        if campaigns {
            header.push("campaign".to_owned());
        }
        header.extend(["cost".to_owned(), "rows".to_owned()]);
        let mut rows = vec![header];
        for u in &spend.unmatched_cost {
            let mut row = vec![u.channel.clone()];
            if campaigns {
                row.push(u.campaign.clone().unwrap_or_else(|| "-".to_owned()));
            }
            row.extend([num(u.cost), u.rows.to_string()]);
            rows.push(row);
        }
        align(out, &rows);
    }
    for p in &spend.cost_outside_periods {
        let _ = writeln!(out, "cost dated in period {} (no journey there): {}", p.period, num(p.cost));
    }
}

/// Per model: each channel's share of credited conversions and its rank under every window,
/// and how far its rank moves (0 = the same place under every window).
/// With `intervals`: per model, each channel's conversions and share with their interval,
/// and how the replicates rank it.
fn render_intervals(out: &mut String, result: &AttributionResult) {
    let Some(intervals) = result.options.intervals else { return };
    let _ = writeln!(
        out,
        "\n{:.0}% bootstrap intervals ({} replicates; sampling variation of the journeys, not model error)",
        intervals.level * 100.0,
        intervals.replicates
    );
    for model in &result.models {
        let mut rows = vec![
            [model.model.as_str(), "conversions", "share %", "P(1st)", "P(top 3)", "median rank"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for c in &model.channels {
            let Some(i) = &c.interval else { continue };
            rows.push(vec![
                c.channel.clone(),
                format!("{} [{}, {}]", num(c.conversions), num(i.conversions_low), num(i.conversions_high)),
                format!("{} [{}, {}]", pct(c.share), pct(i.share_low), pct(i.share_high)),
                format!("{:.2}", i.rank_1_probability),
                format!("{:.2}", i.top_3_probability),
                format!("{}", i.median_rank),
            ]);
        }
        align(out, &rows);
    }
}

/// A share as a percentage with one decimal.
fn pct(share: f64) -> String {
    format!("{:.1}", share * 100.0)
}

fn render_windows(out: &mut String, result: &AttributionResult) {
    if result.window_ranks.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nlookback windows: share of credited conversions (rank); the top level is the {} window",
        window_label(result.windows[0].lookback_days)
    );
    for ranks in &result.window_ranks {
        let mut header = vec![ranks.model.as_str().to_owned()];
        header.extend(result.windows.iter().map(|w| window_label(w.lookback_days)));
        header.push("rank spread".to_owned());
        let mut rows = vec![header];
        for c in &ranks.channels {
            let mut row = vec![c.channel.clone()];
            row.extend(c.share.iter().zip(&c.rank).map(|(share, rank)| match rank {
                Some(rank) => format!("{:.1}% ({rank})", share * 100.0),
                None => "-".to_owned(),
            }));
            row.push(c.rank_spread.to_string());
            rows.push(row);
        }
        let _ = writeln!(out);
        align(out, &rows);
    }
}

/// `7d`, `1.5d`, or `unlimited` for 0.
fn window_label(days: f64) -> String {
    if days == 0.0 { "unlimited".to_owned() } else { format!("{days}d") }
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
