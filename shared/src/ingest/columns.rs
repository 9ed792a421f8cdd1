//! Finding the columns a kind of input needs among the file's own column names:
//! an explicit mapping first, then the well-known aliases of docs/user-guide.md, "Input formats".

use std::collections::BTreeMap;

use crate::error::{AttributionError, ErrorCode, MAX_MESSAGE_BYTES, Problem, quoted, shortened};
use crate::options::InputKind;

/// A column the engine understands, with the names users' exports give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canonical {
    UserId,
    Timestamp,
    Channel,
    Conversion,
    ConversionValue,
    /// An `interaction` / `event_type` column whose value `conversion` marks conversions.
    EventType,
    Path,
    TotalConversions,
    TotalConversionValue,
    TotalNull,
    /// Where a touch came from (`google`, `newsletter`), read by channel rules.
    Source,
    /// The kind of traffic (`cpc`, `email`, `organic`), read by channel rules.
    Medium,
    /// The campaign's name, read by channel rules.
    Campaign,
    /// The referring URL, read by channel rules when a touch has neither source nor medium.
    Referrer,
}

impl Canonical {
    pub const ALL: [Canonical; 14] = [
        Canonical::UserId,
        Canonical::Timestamp,
        Canonical::Channel,
        Canonical::Conversion,
        Canonical::ConversionValue,
        Canonical::EventType,
        Canonical::Path,
        Canonical::TotalConversions,
        Canonical::TotalConversionValue,
        Canonical::TotalNull,
        Canonical::Source,
        Canonical::Medium,
        Canonical::Campaign,
        Canonical::Referrer,
    ];

    pub fn name(self) -> &'static str {
        self.aliases()[0]
    }

    /// The canonical name first, then aliases, all lower case.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Canonical::UserId => &[
                "user_id",
                "userid",
                "user",
                "cookie",
                "cookie_id",
                "uid",
                "customer_id",
                "user_pseudo_id",
                "visitor_id",
                "client_id",
                "anonymous_id",
                "person_id",
            ],
            Canonical::Timestamp => {
                &["timestamp", "time", "event_time", "event_timestamp", "ts", "datetime", "event_date", "date"]
            }
            Canonical::Channel => &["channel", "marketing_channel", "channel_name", "channel_group", "source_medium"],
            Canonical::Conversion => &["conversion", "converted", "is_conversion", "conversion_flag"],
            Canonical::ConversionValue => {
                &["conversion_value", "revenue", "value", "purchase_revenue", "order_value", "amount"]
            }
            Canonical::EventType => &["event_type", "interaction", "event_name", "type"],
            Canonical::Path => &["path", "journey", "channel_path"],
            Canonical::TotalConversions => &["total_conversions", "conversions", "total_conversion", "conv"],
            Canonical::TotalConversionValue => {
                &["total_conversion_value", "conversion_value", "total_value", "value", "revenue"]
            }
            Canonical::TotalNull => &["total_null", "null", "nulls", "total_nulls", "non_conversions"],
            // GA4's BigQuery export (flattened), its Data API and other analytics exports.
            Canonical::Source => &[
                "source",
                "utm_source",
                "session_source",
                "sessionsource",
                "traffic_source_source",
                "manual_source",
                "collected_traffic_source_manual_source",
                // The same export read as it is: its struct's field by dotted path.
                "collected_traffic_source.manual_source",
            ],
            Canonical::Medium => &[
                "medium",
                "utm_medium",
                "session_medium",
                "sessionmedium",
                "traffic_source_medium",
                "manual_medium",
                "collected_traffic_source_manual_medium",
                "collected_traffic_source.manual_medium",
            ],
            Canonical::Campaign => &[
                "campaign",
                "utm_campaign",
                "campaign_name",
                "session_campaign",
                "session_campaign_name",
                "sessioncampaignname",
                "traffic_source_name",
                "manual_campaign_name",
                "collected_traffic_source_manual_campaign_name",
                "collected_traffic_source.manual_campaign_name",
            ],
            Canonical::Referrer => &[
                "referrer",
                "referer",
                "page_referrer",
                "http_referer",
                "http_referrer",
                "document_referrer",
                "referrer_url",
                "referring_url",
            ],
        }
    }

    pub fn parse(name: &str) -> Option<Canonical> {
        Canonical::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Longest file column name a mapping may give, in bytes.
pub const MAX_COLUMN_NAME_BYTES: usize = 1024;

/// An explicit `canonical → file column` mapping from the job spec (a JSON object such as
/// `{"user_id": "cookie"}`) or `--column user_id=cookie`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct ColumnMapping(pub Vec<(Canonical, String)>);

impl ColumnMapping {
    /// The mapped file columns that are dotted paths into nested objects (`a.b`).
    pub fn dotted(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(_, column)| column.as_str()).filter(|c| c.contains('.'))
    }

    /// Parses `user_id=cookie` pairs, naming the bad one.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<ColumnMapping, AttributionError> {
        let mut mapping = ColumnMapping::default();
        for pair in pairs {
            let Some((canonical, column)) = pair.split_once('=') else {
                return Err(AttributionError::option(
                    "columns",
                    format!("{} is not `canonical=file_column`", quoted(pair)),
                ));
            };
            mapping.insert(canonical, column)?;
        }
        Ok(mapping)
    }

    /// Maps the canonical column named `canonical` to the file's `column`.
    fn insert(&mut self, canonical: &str, column: &str) -> Result<(), AttributionError> {
        let Some(canonical) = Canonical::parse(canonical.trim()) else {
            let known: Vec<&str> = Canonical::ALL.iter().map(|c| c.name()).collect();
            return Err(AttributionError::option(
                "columns",
                format!("{} is not a known column (known: {})", quoted(canonical.trim()), known.join(", ")),
            ));
        };
        let column = column.trim();
        if column.len() > MAX_COLUMN_NAME_BYTES {
            return Err(AttributionError::option(
                "columns",
                format!(
                    "the column named for `{}` is longer than {MAX_COLUMN_NAME_BYTES} bytes: {}",
                    canonical.name(),
                    quoted(column)
                ),
            ));
        }
        self.0.push((canonical, column.to_owned()));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, canonical: Canonical) -> Option<&str> {
        self.0.iter().find(|(c, _)| *c == canonical).map(|(_, column)| column.as_str())
    }
}

impl TryFrom<BTreeMap<String, String>> for ColumnMapping {
    type Error = AttributionError;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        let mut mapping = ColumnMapping::default();
        for (canonical, column) in &map {
            mapping.insert(canonical, column)?;
        }
        Ok(mapping)
    }
}

impl From<ColumnMapping> for BTreeMap<String, String> {
    fn from(mapping: ColumnMapping) -> Self {
        mapping.0.into_iter().map(|(canonical, column)| (canonical.name().to_owned(), column)).collect()
    }
}

/// Column positions for event-level input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventColumns {
    pub user_id: usize,
    pub timestamp: usize,
    pub channel: ChannelColumn,
    pub conversion: ConversionColumn,
    pub conversion_value: Option<usize>,
    /// The breakdown columns, in the order named (`None` past the levels asked for).
    pub breakdown: [Option<usize>; MAX_BREAKDOWN_LEVELS],
    /// The `segment_by` column.
    pub segment: Option<usize>,
}

impl EventColumns {
    /// The breakdown columns asked for.
    pub(crate) fn breakdown(&self) -> impl Iterator<Item = usize> + '_ {
        self.breakdown.iter().map_while(|c| *c)
    }

    /// Rows that carry more than a channel (touch keys of a breakdown, segment values) are
    /// read by the per-row rules: the Parquet fast lane stands aside.
    pub(crate) fn takes_per_row_path(&self) -> bool {
        self.breakdown[0].is_some() || self.segment.is_some()
    }
}

pub use crate::options::MAX_BREAKDOWN_LEVELS;

/// Where a row's channel comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelColumn {
    /// A column of channel names.
    Named(usize),
    /// Channel rules applied to these columns (at least one present).
    Derived(TouchColumns),
}

impl ChannelColumn {
    /// The column of channel names, if the channel is read from one.
    pub(crate) fn named(self) -> Option<usize> {
        match self {
            ChannelColumn::Named(i) => Some(i),
            ChannelColumn::Derived(_) => None,
        }
    }

    /// Every column the channel is read from.
    pub(crate) fn columns(self) -> Vec<usize> {
        match self {
            ChannelColumn::Named(i) => vec![i],
            ChannelColumn::Derived(t) => [t.source, t.medium, t.campaign, t.referrer].into_iter().flatten().collect(),
        }
    }
}

/// The columns channel rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TouchColumns {
    pub source: Option<usize>,
    pub medium: Option<usize>,
    pub campaign: Option<usize>,
    pub referrer: Option<usize>,
}

/// Where conversions are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConversionColumn {
    /// A 0/1 or true/false column.
    Flag(usize),
    /// An event-type column; the value `conversion` (any case) marks a conversion.
    EventType(usize),
}

/// Column positions for path-level input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathColumns {
    pub path: usize,
    pub total_conversions: usize,
    pub total_conversion_value: Option<usize>,
    pub total_null: Option<usize>,
}

/// Looks columns up by name (case-insensitive, trimmed).
pub(crate) struct Resolver<'a> {
    header: &'a [String],
    mapping: &'a ColumnMapping,
    missing: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(header: &'a [String], mapping: &'a ColumnMapping) -> Self {
        Resolver { header, mapping, missing: Vec::new() }
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h.trim().eq_ignore_ascii_case(name))
    }

    /// The column for `canonical`: its mapped name (which must exist), else the first alias found.
    pub(crate) fn find(&mut self, canonical: Canonical) -> Option<usize> {
        if let Some(mapped) = self.mapping.get(canonical) {
            let found = self.position(mapped);
            if found.is_none() {
                self.missing.push(format!("{} (mapped to {})", canonical.name(), quoted(mapped)));
            }
            return found;
        }
        canonical.aliases().iter().find_map(|alias| self.position(alias))
    }

    fn require(&mut self, canonical: Canonical) -> usize {
        match self.find(canonical) {
            Some(i) => i,
            None => {
                if self.mapping.get(canonical).is_none() {
                    self.missing.push(canonical.name().to_owned());
                }
                usize::MAX
            }
        }
    }

    fn finish<T>(self, found: T) -> Result<T, AttributionError> {
        if self.missing.is_empty() {
            return Ok(found);
        }
        let details = self
            .missing
            .iter()
            .map(|m| Problem { row: None, column: Some(m.clone()), problem: "column not found".to_owned() })
            .collect();
        Err(AttributionError::new(
            ErrorCode::MissingColumns,
            format!(
                "missing column(s) {}; the file has [{}]; map columns explicitly (e.g. user_id=cookie) if they have other names",
                self.missing.join(", "),
                listed(self.header, MAX_MESSAGE_BYTES / 2)
            ),
        )
        .with_details(details))
    }

    /// The columns of event-level input; `rules_given` when the user named channel rules,
    /// which then win over a channel column.
    #[cfg(test)]
    pub(crate) fn events(self, rules_given: bool) -> Result<EventColumns, AttributionError> {
        self.events_with(rules_given, &super::InputSpec::default())
    }

    /// [`Resolver::events`] with the `breakdown` columns as the user named them: a touch
    /// column (`campaign`, `source`, `medium`, `referrer`) by its mapping or aliases, any
    /// other by its name (a dotted path for a nested field); the `segment_by` column, found
    /// the same way; with `conversion_types`, the event-name column marks conversions.
    pub(crate) fn events_with(
        mut self,
        rules_given: bool,
        spec: &super::InputSpec,
    ) -> Result<EventColumns, AttributionError> {
        let (breakdown, segment_by) = (&spec.breakdown, spec.segment_by.as_deref());
        let user_id = self.require(Canonical::UserId);
        let timestamp = self.require(Canonical::Timestamp);
        let channel = self.channel(rules_given);
        let named = if spec.conversion_types.is_empty() { None } else { self.find(Canonical::EventType) };
        let conversion = match self.find(Canonical::Conversion) {
            _ if named.is_some() => ConversionColumn::EventType(named.unwrap_or(usize::MAX)),
            _ if !spec.conversion_types.is_empty() => {
                self.missing
                    .push("event_name (or event_type/interaction: conversion_types name its values)".to_owned());
                ConversionColumn::Flag(usize::MAX)
            }
            Some(i) => ConversionColumn::Flag(i),
            None => match self.find(Canonical::EventType) {
                Some(i) => ConversionColumn::EventType(i),
                None => {
                    self.missing.push("conversion (or an event_type/interaction column)".to_owned());
                    ConversionColumn::Flag(usize::MAX)
                }
            },
        };
        let conversion_value = self.find(Canonical::ConversionValue);
        let mut columns = [None; MAX_BREAKDOWN_LEVELS];
        for (slot, name) in columns.iter_mut().zip(breakdown) {
            *slot = self.extra_column(name, "breakdown");
        }
        let segment = segment_by.and_then(|name| self.extra_column(name, "segment_by"));
        self.finish(EventColumns {
            user_id,
            timestamp,
            channel,
            conversion,
            conversion_value,
            breakdown: columns,
            segment,
        })
    }

    /// A column the user named for a breakdown or segments (`what`): a touch column
    /// (`campaign`, `source`, `medium`, `referrer`) by its mapping or aliases, any other by its
    /// name; recorded as missing when the file has none.
    fn extra_column(&mut self, name: &str, what: &str) -> Option<usize> {
        let name = name.trim();
        let touch = Canonical::parse(name)
            .filter(|c| matches!(c, Canonical::Source | Canonical::Medium | Canonical::Campaign | Canonical::Referrer));
        match touch {
            Some(canonical) => {
                let found = self.find(canonical);
                if found.is_none() && self.mapping.get(canonical).is_none() {
                    self.missing.push(format!("{name} ({what})"));
                }
                found
            }
            None => {
                let found = self.position(name);
                if found.is_none() {
                    self.missing.push(format!("{} ({what})", shortened(name)));
                }
                found
            }
        }
    }

    /// The channel column, or the touch columns channel rules read: given rules always read
    /// them; without rules, a channel column is used, else the touch columns if there are
    /// a source, medium or referrer (`ga4` then applies).
    fn channel(&mut self, rules_given: bool) -> ChannelColumn {
        let touch = TouchColumns {
            source: self.find(Canonical::Source),
            medium: self.find(Canonical::Medium),
            campaign: self.find(Canonical::Campaign),
            referrer: self.find(Canonical::Referrer),
        };
        let any_touch = touch.source.or(touch.medium).or(touch.referrer).is_some();
        if rules_given {
            if !any_touch {
                self.missing.push("source or medium (or referrer), which the channel rules read".to_owned());
            }
            return ChannelColumn::Derived(touch);
        }
        match self.find(Canonical::Channel) {
            Some(i) => ChannelColumn::Named(i),
            // A channel column mapped to a name the file lacks is missing (`find` said so).
            None if self.mapping.get(Canonical::Channel).is_some() => ChannelColumn::Named(usize::MAX),
            None if any_touch => ChannelColumn::Derived(touch),
            None => {
                self.missing.push("channel (or source and medium, named by channel rules)".to_owned());
                ChannelColumn::Named(usize::MAX)
            }
        }
    }

    pub(crate) fn paths(mut self) -> Result<PathColumns, AttributionError> {
        let path = self.require(Canonical::Path);
        let total_conversions = self.require(Canonical::TotalConversions);
        let total_conversion_value = self.find(Canonical::TotalConversionValue);
        let total_null = self.find(Canonical::TotalNull);
        self.finish(PathColumns { path, total_conversions, total_conversion_value, total_null })
    }
}

/// The names, each shortened, joined by `, ` up to about `max` bytes, then how many more.
pub(crate) fn listed(names: &[String], max: usize) -> String {
    let mut list = String::new();
    for (i, name) in names.iter().enumerate() {
        if list.len() >= max {
            list.push_str(&format!(" and {} more", names.len() - i));
            break;
        }
        if i > 0 {
            list.push_str(", ");
        }
        list.push_str(&shortened(name));
    }
    list
}

/// Guesses the kind from the column names: a path column with a conversions column means paths.
pub(crate) fn detect_kind(header: &[String], mapping: &ColumnMapping) -> InputKind {
    let mut resolver = Resolver::new(header, mapping);
    let has_path = resolver.find(Canonical::Path).is_some() && resolver.find(Canonical::TotalConversions).is_some();
    if has_path && resolver.find(Canonical::UserId).is_none() { InputKind::Paths } else { InputKind::Events }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kaggle_columns_resolve_through_aliases() {
        let h = header(&["cookie", "time", "interaction", "conversion", "conversion_value", "channel"]);
        let cols = Resolver::new(&h, &ColumnMapping::default()).events(false).unwrap();
        assert_eq!(cols.user_id, 0);
        assert_eq!(cols.timestamp, 1);
        assert_eq!(cols.conversion, ConversionColumn::Flag(3));
        assert_eq!(cols.conversion_value, Some(4));
    }

    #[test]
    fn missing_columns_are_all_named() {
        let h = header(&["who", "when"]);
        let err = Resolver::new(&h, &ColumnMapping::default()).events(false).unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingColumns);
        let names: Vec<_> = err.details.iter().filter_map(|d| d.column.clone()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(err.message.contains("who, when"));
    }

    #[test]
    fn explicit_mapping_wins_and_must_exist() {
        let h = header(&["who", "when", "src", "bought"]);
        let mapping =
            ColumnMapping::parse(["user_id=who", "timestamp=when", "channel=src", "conversion=bought"]).unwrap();
        assert!(Resolver::new(&h, &mapping).events(false).is_ok());
        let wrong = ColumnMapping::parse(["user_id=nobody"]).unwrap();
        let err = Resolver::new(&h, &wrong).events(false).unwrap_err();
        assert!(err.message.contains("user_id (mapped to `nobody`)"), "{}", err.message);
        assert!(ColumnMapping::parse(["colour=x"]).is_err());
    }

    #[test]
    fn a_mapping_reads_from_a_json_object_and_names_the_bad_column() {
        let mapping: ColumnMapping = serde_json::from_str(r#"{"user_id": "who", "timestamp": " when "}"#).unwrap();
        assert_eq!(mapping, ColumnMapping::parse(["timestamp=when", "user_id=who"]).unwrap());
        assert_eq!(serde_json::to_string(&mapping).unwrap(), r#"{"timestamp":"when","user_id":"who"}"#);
        let err = serde_json::from_str::<ColumnMapping>(r#"{"colour": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("`colour` is not a known column"), "{err}");
    }

    #[test]
    fn names_in_errors_are_shortened_and_absurd_mappings_refused() {
        let long = "n".repeat(1 << 20);
        let err = ColumnMapping::parse([format!("user_id={long}").as_str()]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidOption);
        assert_eq!(err.details[0].column.as_deref(), Some("columns"));
        assert!(err.message.contains("(1048576 bytes)"), "{}", err.message);
        assert!(err.size() < 1024, "{}", err.size());
        assert!(ColumnMapping::parse([format!("user_id={}", "n".repeat(1024)).as_str()]).is_ok());

        let h: Vec<String> = (0..2000).map(|i| format!("{i}{long}", long = if i == 0 { &long } else { "" })).collect();
        let mapping = ColumnMapping::parse([format!("user_id={}", "m".repeat(1024)).as_str()]).unwrap();
        let err = Resolver::new(&h, &mapping).events(false).unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingColumns);
        assert!(err.size() < 8 * 1024, "{}", err.size());
        assert!(err.message.contains(", 2, 3, "), "{}", err.message);
        assert!(err.message.contains(" more]; map columns"), "{}", err.message);
    }

    #[test]
    fn touch_columns_are_found_by_their_aliases_and_name_the_channel_without_a_channel_column() {
        let utm = header(&["user_id", "ts", "utm_source", "UTM_Medium", "utm_campaign", "page_referrer", "converted"]);
        let touch = TouchColumns { source: Some(2), medium: Some(3), campaign: Some(4), referrer: Some(5) };
        let cols = Resolver::new(&utm, &ColumnMapping::default()).events(false).unwrap();
        assert_eq!(cols.channel, ChannelColumn::Derived(touch));

        let both = header(&["user_id", "ts", "channel", "source", "medium", "converted"]);
        let cols = Resolver::new(&both, &ColumnMapping::default()).events(false).unwrap();
        assert_eq!(cols.channel, ChannelColumn::Named(2), "a channel column is used when no rules are given");
        let cols = Resolver::new(&both, &ColumnMapping::default()).events(true).unwrap();
        let touch = TouchColumns { source: Some(3), medium: Some(4), campaign: None, referrer: None };
        assert_eq!(cols.channel, ChannelColumn::Derived(touch), "given rules win");

        let mapped = header(&["user_id", "ts", "src", "converted"]);
        let mapping = ColumnMapping::parse(["source=src"]).unwrap();
        let cols = Resolver::new(&mapped, &mapping).events(false).unwrap();
        assert_eq!(cols.channel.columns(), [2]);
    }

    #[test]
    fn without_a_channel_or_touch_columns_both_are_named_missing() {
        let h = header(&["user_id", "ts", "campaign", "converted"]);
        let err = Resolver::new(&h, &ColumnMapping::default()).events(false).unwrap_err();
        assert!(err.message.contains("missing column(s) channel (or source and medium"), "{}", err.message);
        assert!(err.message.contains("the file has [user_id, ts, campaign, converted]"), "{}", err.message);
        let err = Resolver::new(&h, &ColumnMapping::default()).events(true).unwrap_err();
        assert!(err.message.contains("source or medium (or referrer)"), "{}", err.message);
    }

    #[test]
    fn channel_attribution_layout_is_paths() {
        let h = header(&["path", "total_conversions", "total_conversion_value", "total_null"]);
        assert_eq!(detect_kind(&h, &ColumnMapping::default()), InputKind::Paths);
        let cols = Resolver::new(&h, &ColumnMapping::default()).paths().unwrap();
        assert_eq!((cols.total_conversion_value, cols.total_null), (Some(2), Some(3)));
    }
}
