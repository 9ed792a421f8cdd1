//! Spend (docs/user-guide.md, "Spend"): a cost table of `date`, `channel`, optional
//! `campaign`, optional segment column (the job's `segment_by`) and `cost`, read by the same
//! decoders and with the same row and column rules as event files, bounded in rows,
//! channels, campaigns and segment values. [`CostTable`] sums it by channel and by period,
//! and splits it by segment value; the result joins those sums to each model's credit
//! (`AttributionResult::add_spend` in `result.rs`): cost, CPA and ROAS per channel.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::breakdown::NO_VALUE;
use crate::channel_rules::MAX_CHANNEL_NAME_BYTES;
use crate::chunk::NO_CHANNEL;
use crate::error::{AttributionError, ErrorCode, MAX_MESSAGE_BYTES, Problem, Problems};
use crate::ingest::values::{Cell, read_number, read_timestamp};
use crate::ingest::{Canonical, CsvLines, Format, Limits, RowSink, csv_rows, listed, open_text, parquet_rows};
use crate::period::{Period, TimeZone};

/// Bounds of a cost table: what reading one may hold in memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpendLimits {
    /// The most data rows (`max_cost_rows`).
    pub max_rows: u64,
    /// The most distinct channels, campaigns and segment values.
    pub max_channels: usize,
    pub max_campaigns: usize,
    pub max_segments: usize,
    /// The longest CSV record, in bytes.
    pub max_line_bytes: usize,
    /// The most bytes a gzip-compressed table may expand to.
    pub max_decompressed_bytes: Option<u64>,
}

impl SpendLimits {
    pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;
    pub const DEFAULT_MAX_CAMPAIGNS: usize = 100_000;

    /// The limits of a cost table read beside an input read under `limits`.
    pub fn beside(limits: &Limits) -> SpendLimits {
        SpendLimits {
            max_channels: limits.max_channels,
            max_segments: limits.max_segments,
            max_line_bytes: limits.max_line_bytes,
            max_decompressed_bytes: limits.max_decompressed_bytes,
            ..SpendLimits::default()
        }
    }
}

impl Default for SpendLimits {
    fn default() -> Self {
        SpendLimits {
            max_rows: SpendLimits::DEFAULT_MAX_ROWS,
            max_channels: Limits::default().max_channels,
            max_campaigns: SpendLimits::DEFAULT_MAX_CAMPAIGNS,
            max_segments: Limits::default().max_segments,
            max_line_bytes: Limits::DEFAULT_MAX_LINE_BYTES,
            max_decompressed_bytes: None,
        }
    }
}

/// The date of a cost row: a calendar day as written (`2026-01-05`, `20260105`, a Parquet
/// date), or an instant (a timestamp), whose day is its local date in the job's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostDate {
    Day(NaiveDate),
    /// UTC microseconds.
    Instant(i64),
}

impl CostDate {
    /// The local calendar day this date names in `zone`.
    pub fn day(self, zone: TimeZone) -> NaiveDate {
        match self {
            CostDate::Day(day) => day,
            CostDate::Instant(micros) => zone.date_of(micros),
        }
    }
}

/// One row of a cost table that passed every rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostRow {
    /// 1-based data row of the file.
    pub row: u64,
    pub date: CostDate,
    /// Index into [`CostTable::channels`].
    pub channel: u32,
    /// Index into [`CostTable::campaigns`]; kept so costs can later be joined per campaign.
    pub campaign: Option<u32>,
    /// Index into [`CostTable::segments`] (`None`: the row's segment cell is empty, or the
    /// table has no segment column).
    pub segment: Option<u32>,
    /// Finite and ≥ 0 (in the file's currency; `cost_micros` already divided by 10⁶).
    pub cost: f64,
}

/// A cost table as read: every row, with channel, campaign and segment names interned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CostTable {
    pub rows: Vec<CostRow>,
    pub channels: Vec<String>,
    pub campaigns: Vec<String>,
    /// The values of the segment column.
    pub segments: Vec<String>,
    /// The cost table's column that names segments, as the header has it: found when the
    /// table was read for a job's `segment_by` and has that column (by name or alias).
    pub segment_column: Option<String>,
}

/// The cost of one channel summed over rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ChannelCost {
    pub cost: f64,
    pub rows: u64,
}

impl CostTable {
    /// Reads a CSV cost table (gzip-compressed or not). NDJSON is refused by name. With
    /// `segment_by` (the job's), the column of that name or alias, if the table has one,
    /// gives each row its segment value.
    pub fn read_csv(
        reader: impl Read,
        limits: &SpendLimits,
        segment_by: Option<&str>,
    ) -> Result<CostTable, AttributionError> {
        let (format, reader) = open_text(reader, None, limits.max_decompressed_bytes)?;
        if format != Format::Csv {
            return Err(AttributionError::new(
                ErrorCode::UnknownFormat,
                format!("a cost table is CSV or Parquet, not {}", format.as_str()),
            ));
        }
        let lines = CsvLines { delimiter: None, max_line_bytes: limits.max_line_bytes, first_row: 1 };
        let rows = csv_rows(
            reader,
            lines,
            |header| CostRows::new(header, *limits, segment_by),
            |_| Ok::<_, AttributionError>(()),
        )?;
        rows.finish()
    }

    /// Reads a Parquet cost table (`segment_by` as for [`CostTable::read_csv`]).
    pub fn read_parquet<R: parquet::file::reader::ChunkReader + 'static>(
        reader: R,
        limits: &SpendLimits,
        segment_by: Option<&str>,
    ) -> Result<CostTable, AttributionError> {
        let rows = parquet_rows(reader, |header| {
            let rows = CostRows::new(header.to_vec(), *limits, segment_by)?;
            let c = rows.columns;
            let needed =
                [Some(c.date), Some(c.channel), c.campaign, c.segment, Some(c.cost)].into_iter().flatten().collect();
            Ok((rows, needed))
        })?;
        rows.finish()
    }

    /// The summed cost of every row, in row order.
    pub fn total(&self) -> f64 {
        self.rows.iter().map(|r| r.cost).sum()
    }

    /// Cost and rows per channel name (campaigns summed to their channel), in name order.
    pub fn by_channel(&self) -> BTreeMap<&str, ChannelCost> {
        let mut sums: BTreeMap<&str, ChannelCost> = BTreeMap::new();
        for row in &self.rows {
            let sum = sums.entry(self.channels[row.channel as usize].as_str()).or_default();
            sum.cost += row.cost;
            sum.rows += 1;
        }
        sums
    }

    /// Cost and rows per (channel, campaign) name, a row without a campaign under
    /// [`NO_VALUE`] (`(none)`, as a touch without one in a breakdown), in name order.
    pub fn by_campaign(&self) -> BTreeMap<(&str, &str), ChannelCost> {
        let mut sums: BTreeMap<(&str, &str), ChannelCost> = BTreeMap::new();
        for row in &self.rows {
            let sum = sums.entry(self.campaign_key(row)).or_default();
            sum.cost += row.cost;
            sum.rows += 1;
        }
        sums
    }

    /// Cost per period (as [`CostTable::by_period`]) and (channel, campaign) name.
    pub fn by_period_and_campaign(
        &self,
        period: Period,
        zone: TimeZone,
    ) -> BTreeMap<String, BTreeMap<(&str, &str), f64>> {
        let mut by_day: BTreeMap<i32, BTreeMap<(&str, &str), f64>> = BTreeMap::new();
        for row in &self.rows {
            let first = period.first_day(row.date.day(zone));
            *by_day.entry(first).or_default().entry(self.campaign_key(row)).or_default() += row.cost;
        }
        by_day.into_iter().map(|(day, pairs)| (Period::label(day), pairs)).collect()
    }

    /// A row's (channel, campaign) names.
    fn campaign_key(&self, row: &CostRow) -> (&str, &str) {
        let campaign = row.campaign.map_or(NO_VALUE, |c| self.campaigns[c as usize].as_str());
        (self.channels[row.channel as usize].as_str(), campaign)
    }

    /// Cost per period (named by its first day, `2026-01-05`) and channel name: each row
    /// counts in the period of its local day in `zone`.
    pub fn by_period(&self, period: Period, zone: TimeZone) -> BTreeMap<String, BTreeMap<&str, f64>> {
        let mut by_day: BTreeMap<i32, BTreeMap<&str, f64>> = BTreeMap::new();
        for row in &self.rows {
            let first = period.first_day(row.date.day(zone));
            *by_day.entry(first).or_default().entry(self.channels[row.channel as usize].as_str()).or_default() +=
                row.cost;
        }
        by_day.into_iter().map(|(day, channels)| (Period::label(day), channels)).collect()
    }

    /// The rows of one segment value (`None`: the rows whose segment cell is empty), with
    /// the channels and campaigns they name (no rows for a value the table does not have);
    /// `None` without a segment column.
    pub fn of_segment(&self, value: Option<&str>) -> Option<CostTable> {
        self.segment_column.as_ref()?;
        let mut part = CostTable::default();
        let id = match value.map(|value| self.segments.iter().position(|s| s == value)) {
            Some(Some(id)) => Some(id as u32),
            Some(None) => return Some(part),
            None => None,
        };
        let (mut channels, mut campaigns) = (HashMap::new(), HashMap::new());
        let renumber = |ids: &mut HashMap<u32, u32>, names: &mut Vec<String>, old: u32, all: &[String]| {
            *ids.entry(old).or_insert_with(|| {
                names.push(all[old as usize].clone());
                (names.len() - 1) as u32
            })
        };
        for row in self.rows.iter().filter(|r| r.segment == id) {
            let channel = renumber(&mut channels, &mut part.channels, row.channel, &self.channels);
            let campaign = row.campaign.map(|c| renumber(&mut campaigns, &mut part.campaigns, c, &self.campaigns));
            part.rows.push(CostRow { channel, campaign, segment: None, ..*row });
        }
        Some(part)
    }

    /// Cost and rows per segment value (`None`: rows with an empty segment cell) and channel
    /// name; empty without a segment column.
    pub fn by_segment(&self) -> BTreeMap<(Option<&str>, &str), ChannelCost> {
        let mut sums: BTreeMap<(Option<&str>, &str), ChannelCost> = BTreeMap::new();
        if self.segment_column.is_some() {
            for row in &self.rows {
                let segment = row.segment.map(|s| self.segments[s as usize].as_str());
                let sum = sums.entry((segment, self.channels[row.channel as usize].as_str())).or_default();
                sum.cost += row.cost;
                sum.rows += 1;
            }
        }
        sums
    }

    /// The first and last local day of the rows in `zone` (`None` for no rows).
    pub fn date_range(&self, zone: TimeZone) -> Option<(NaiveDate, NaiveDate)> {
        let days = self.rows.iter().map(|r| r.date.day(zone));
        let first = days.clone().min()?;
        Some((first, days.max()?))
    }
}

/// What a result reports of the spend joined to it (docs/user-guide.md, "Spend").
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpendSummary {
    /// Rows of the cost table.
    pub rows: u64,
    /// The cost of every row.
    pub cost: f64,
    /// The cost of channels the events mention (the rest is in `unmatched_cost`).
    pub matched_cost: f64,
    /// The first and last day of the cost rows (local days in the job's time zone).
    pub first_date: String,
    pub last_date: String,
    /// Distinct campaigns of the cost table (summed to their channel; with a breakdown by
    /// campaign also joined to its rows).
    pub campaigns: usize,
    /// Cost of channels no journey's touches mention, per channel, highest first: never
    /// dropped silently (a name spelt differently in the two files ends up here). With a
    /// breakdown by campaign, also the cost of each (channel, campaign) of a channel the
    /// events mention that no breakdown row has (`campaign` set; that cost still counts in
    /// the channel's cost and in `matched_cost`). With `segment_by` and a segment column in
    /// the cost table, also the cost of each segment value no segment has, per channel
    /// (`segment` set; that cost still counts in the whole file's figures).
    pub unmatched_cost: Vec<UnmatchedCost>,
    /// With `period`: cost of matched channels dated in periods that hold no journey, so no
    /// period row shows it (it counts in the whole file's figures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cost_outside_periods: Vec<PeriodCost>,
    /// With `segment_by`: the cost table's column joined to the segments (each segment's
    /// channels then carry the cost of its rows); absent when the cost table has no such
    /// column, and then the segments' channels carry `cost: null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_column: Option<String>,
}

/// The cost of a channel that no journey mentions, or (with `campaign`) of a campaign of a
/// channel that no breakdown row has.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmatchedCost {
    pub channel: String,
    /// With a breakdown by campaign: the campaign no breakdown row of the channel has
    /// (`(none)`: the channel's cost rows without a campaign, when no touch of it lacks one).
    /// Absent for a channel no journey mentions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// With cost per segment: the segment value no segment has, as a segment is named
    /// (`{"country": "FR"}`; `null`: the cost rows without one, when every journey has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::BTreeMap<String, Option<String>>>))]
    pub segment: Option<std::collections::BTreeMap<String, Option<String>>>,
    pub cost: f64,
    /// Cost rows of this channel.
    pub rows: u64,
}

/// Cost in a period that has no entry in `periods`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodCost {
    pub period: String,
    pub cost: f64,
}

/// The names each column of a cost table is found by (any case; the first is canonical).
const DATE: &[&str] = &["date", "day", "cost_date", "spend_date", "report_date", "segments_date", "segments.date"];
const COST: &[&str] =
    &["cost", "spend", "amount", "ad_spend", "cost_amount", "media_cost", "spend_amount", "total_cost"];
/// Google Ads reports cost in millionths of the currency.
const COST_MICROS: &[&str] = &["cost_micros", "metrics_cost_micros", "metrics.cost_micros"];

/// Where a cost table's columns are.
#[derive(Debug, Clone, Copy)]
struct CostColumns {
    date: usize,
    channel: usize,
    campaign: Option<usize>,
    /// The column of the job's `segment_by`, if the table has it.
    segment: Option<usize>,
    cost: usize,
    /// The cost column holds micros (`cost_micros`): divided by 10⁶.
    micros: bool,
}

impl CostColumns {
    fn find(header: &[String], segment_by: Option<&str>) -> Result<CostColumns, AttributionError> {
        let position = |aliases: &[&str]| {
            aliases.iter().find_map(|alias| header.iter().position(|h| h.trim().eq_ignore_ascii_case(alias)))
        };
        let date = position(DATE);
        let channel = position(Canonical::Channel.aliases());
        let campaign = position(Canonical::Campaign.aliases());
        // As the events' segment column is found: a touch column by its aliases, any other by name.
        let segment = segment_by.map(str::trim).and_then(|name| {
            match Canonical::parse(name).filter(|c| {
                matches!(c, Canonical::Source | Canonical::Medium | Canonical::Campaign | Canonical::Referrer)
            }) {
                Some(canonical) => position(canonical.aliases()),
                None => position(&[name]),
            }
        });
        let (cost, micros) = match position(COST) {
            Some(i) => (Some(i), false),
            None => (position(COST_MICROS), true),
        };
        let missing: Vec<&str> = [(date, "date"), (channel, "channel"), (cost, "cost")]
            .into_iter()
            .filter_map(|(found, name)| found.is_none().then_some(name))
            .collect();
        match (date, channel, cost) {
            (Some(date), Some(channel), Some(cost)) => {
                Ok(CostColumns { date, channel, campaign, segment, cost, micros })
            }
            _ => Err(AttributionError::new(
                ErrorCode::MissingColumns,
                format!(
                    "the cost table lacks column(s) {}; it has [{}]; a cost table has date (or day), channel, \
                     cost (or spend, amount, cost_micros) and optionally campaign",
                    missing.join(", "),
                    listed(header, MAX_MESSAGE_BYTES / 2)
                ),
            )
            .with_details(
                missing.iter().map(|m| Problem::new(None, Some(m), "column not found in the cost table")).collect(),
            )),
        }
    }
}

/// The per-row rules of a cost table, as a sink of the decoders.
struct CostRows {
    columns: CostColumns,
    names: Vec<String>,
    limits: SpendLimits,
    problems: Problems,
    count: u64,
    sum: f64,
    table: CostTable,
    channel_ids: HashMap<String, u32>,
    campaign_ids: HashMap<String, u32>,
    segment_ids: HashMap<String, u32>,
}

impl CostRows {
    fn new(header: Vec<String>, limits: SpendLimits, segment_by: Option<&str>) -> Result<CostRows, AttributionError> {
        Ok(CostRows {
            columns: CostColumns::find(&header, segment_by)?,
            names: header,
            limits,
            problems: Problems::default(),
            count: 0,
            sum: 0.0,
            table: CostTable::default(),
            channel_ids: HashMap::new(),
            campaign_ids: HashMap::new(),
            segment_ids: HashMap::new(),
        })
    }

    fn name(&self, column: usize) -> &str {
        self.names.get(column).map_or("?", String::as_str)
    }

    fn finish(self) -> Result<CostTable, AttributionError> {
        self.problems.into_result()?;
        if self.count == 0 {
            return Err(AttributionError::new(ErrorCode::EmptyInput, "the cost table has a header but no data rows"));
        }
        let mut table = self.table;
        table.channels = by_id(self.channel_ids);
        table.campaigns = by_id(self.campaign_ids);
        table.segments = by_id(self.segment_ids);
        table.segment_column = self.columns.segment.map(|i| self.names[i].trim().to_owned());
        Ok(table)
    }

    /// The id of `name` in `ids` (the next one if it is new), refusing more than `max`
    /// distinct names. Each name is held once, as a key of `ids`, until [`by_id`].
    fn intern(ids: &mut HashMap<String, u32>, name: String, max: usize, what: &str) -> Result<u32, AttributionError> {
        if let Some(&id) = ids.get(&name) {
            return Ok(id);
        }
        if ids.len() >= max {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!("the cost table has more than {max} distinct {what}, the configured limit"),
            ));
        }
        let id = ids.len() as u32;
        debug_assert_ne!(id, NO_CHANNEL);
        ids.insert(name, id);
        Ok(id)
    }
}

/// The names of an interning map in the order of their ids (moved, not copied).
fn by_id(ids: HashMap<String, u32>) -> Vec<String> {
    let mut names = vec![String::new(); ids.len()];
    for (name, id) in ids {
        names[id as usize] = name;
    }
    names
}

/// A cell as a name (channel or campaign): trimmed text or an integer; `Ok(None)` when empty.
fn read_name(cell: Cell<'_>, what: &str) -> Result<Option<String>, String> {
    let name = match cell.plain() {
        Cell::Null => return Ok(None),
        Cell::Str(s) => s.trim().to_owned(),
        Cell::Int(i) => i.to_string(),
        other => return Err(format!("cannot read {} as a {what}", other.display())),
    };
    if name.is_empty() {
        return Ok(None);
    }
    if name.len() > MAX_CHANNEL_NAME_BYTES {
        return Err(format!("{what} longer than {MAX_CHANNEL_NAME_BYTES} bytes"));
    }
    Ok(Some(name))
}

/// A cost date: `YYYY-MM-DD` or `YYYYMMDD` (text or integer) is a calendar day; anything
/// else an event timestamp would be (RFC 3339, epoch numbers, a Parquet timestamp) an instant.
pub fn read_date(cell: Cell<'_>) -> Option<CostDate> {
    let compact = |digits: i64| {
        let (year, month, day) = (digits / 10_000, digits / 100 % 100, digits % 100);
        NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month as u32, day as u32)
    };
    match cell.plain() {
        Cell::Str(s) => {
            let s = s.trim();
            if s.len() == 10 {
                return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(CostDate::Day);
            }
            if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
                return s.parse().ok().and_then(compact).map(CostDate::Day);
            }
            read_timestamp(Cell::Str(s)).map(CostDate::Instant)
        }
        Cell::Int(i) if (10_000_101..=99_991_231).contains(&i) => compact(i).map(CostDate::Day),
        other => read_timestamp(other).map(CostDate::Instant),
    }
}

impl RowSink for CostRows {
    fn problem(&mut self, row: u64, column: &str, problem: String) {
        self.count += 1;
        self.problems.push(row, column, problem);
    }

    fn push<'c>(&mut self, row: u64, cell: impl Fn(usize) -> Cell<'c>) -> Result<(), AttributionError> {
        self.count += 1;
        if self.count > self.limits.max_rows {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the cost table has more than {} rows, the configured limit (max_cost_rows)",
                    self.limits.max_rows
                ),
            ));
        }
        let c = self.columns;
        let mut found: Vec<(usize, String)> = Vec::new();
        let date_cell = cell(c.date);
        let date = read_date(date_cell);
        if date.is_none() {
            let problem = if date_cell.is_blank() {
                "date is empty".to_owned()
            } else {
                format!("cannot read {} as a date (expected YYYY-MM-DD, YYYYMMDD or a timestamp)", date_cell.display())
            };
            found.push((c.date, problem));
        }
        let channel = match read_name(cell(c.channel), "channel name") {
            Ok(Some(name)) => Some(name),
            Ok(None) => {
                found.push((c.channel, "channel is empty".to_owned()));
                None
            }
            Err(problem) => {
                found.push((c.channel, problem));
                None
            }
        };
        let campaign = match c.campaign.map(|i| read_name(cell(i), "campaign name")) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(name))) => Some(name),
            Some(Err(problem)) => {
                found.push((c.campaign.unwrap_or(usize::MAX), problem));
                None
            }
        };
        // Read as the events' segment values are, so that the two match.
        let segment = c.segment.and_then(|i| {
            crate::ingest::read_breakdown_value(i, cell(i), "segment", &mut |i, problem| found.push((i, problem)))
                .map(std::borrow::Cow::into_owned)
        });
        let cost = match read_number(cell(c.cost)) {
            Ok(Some(v)) if v < 0.0 => {
                found.push((c.cost, format!("negative cost {v} (a cost is 0 or more)")));
                0.0
            }
            Ok(Some(v)) if c.micros => v / 1e6,
            Ok(Some(v)) => v,
            Ok(None) => {
                found.push((c.cost, "cost is empty (write 0 for no spend)".to_owned()));
                0.0
            }
            Err(problem) => {
                found.push((c.cost, problem));
                0.0
            }
        };
        for (column, problem) in found {
            let name = self.name(column).to_owned();
            self.problems.push(row, &name, problem);
        }
        let (Some(date), Some(channel), true) = (date, channel, self.problems.is_empty()) else { return Ok(()) };
        self.sum += cost;
        if !self.sum.is_finite() {
            return Err(crate::ingest::sum_overflows(row, self.name(c.cost), "costs"));
        }
        let channel = CostRows::intern(&mut self.channel_ids, channel, self.limits.max_channels, "channels")?;
        let campaign = campaign
            .map(|name| CostRows::intern(&mut self.campaign_ids, name, self.limits.max_campaigns, "campaigns"))
            .transpose()?;
        let segment = segment
            .map(|name| CostRows::intern(&mut self.segment_ids, name, self.limits.max_segments, "segment values"))
            .transpose()?;
        self.table.rows.push(CostRow { row, date, channel, campaign, segment, cost });
        Ok(())
    }

    fn should_stop(&mut self) -> bool {
        self.problems.is_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_days_or_instants() {
        let day = |y, m, d| Some(CostDate::Day(NaiveDate::from_ymd_opt(y, m, d).unwrap()));
        assert_eq!(read_date(Cell::Str("2026-01-05")), day(2026, 1, 5));
        assert_eq!(read_date(Cell::Str(" 20260105 ")), day(2026, 1, 5));
        assert_eq!(read_date(Cell::Int(20_260_105)), day(2026, 1, 5));
        assert_eq!(read_date(Cell::Str("2026-01-05T23:30:00Z")), Some(CostDate::Instant(1_767_655_800_000_000)));
        assert_eq!(read_date(Cell::Str("2026-02-30")), None);
        assert_eq!(read_date(Cell::Str("yesterday")), None);
        let zone: TimeZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(CostDate::Instant(1_767_655_800_000_000).day(zone), NaiveDate::from_ymd_opt(2026, 1, 6).unwrap());
    }
}
