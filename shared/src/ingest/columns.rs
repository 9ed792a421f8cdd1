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
}

impl Canonical {
    pub const ALL: [Canonical; 10] = [
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
    pub channel: usize,
    pub conversion: ConversionColumn,
    pub conversion_value: Option<usize>,
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

    pub(crate) fn events(mut self) -> Result<EventColumns, AttributionError> {
        let user_id = self.require(Canonical::UserId);
        let timestamp = self.require(Canonical::Timestamp);
        let channel = self.require(Canonical::Channel);
        let conversion = match self.find(Canonical::Conversion) {
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
        self.finish(EventColumns { user_id, timestamp, channel, conversion, conversion_value })
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
fn listed(names: &[String], max: usize) -> String {
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
        let cols = Resolver::new(&h, &ColumnMapping::default()).events().unwrap();
        assert_eq!(cols.user_id, 0);
        assert_eq!(cols.timestamp, 1);
        assert_eq!(cols.conversion, ConversionColumn::Flag(3));
        assert_eq!(cols.conversion_value, Some(4));
    }

    #[test]
    fn missing_columns_are_all_named() {
        let h = header(&["who", "when"]);
        let err = Resolver::new(&h, &ColumnMapping::default()).events().unwrap_err();
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
        assert!(Resolver::new(&h, &mapping).events().is_ok());
        let wrong = ColumnMapping::parse(["user_id=nobody"]).unwrap();
        let err = Resolver::new(&h, &wrong).events().unwrap_err();
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
        let err = Resolver::new(&h, &mapping).events().unwrap_err();
        assert_eq!(err.code, ErrorCode::MissingColumns);
        assert!(err.size() < 8 * 1024, "{}", err.size());
        assert!(err.message.contains(", 2, 3, "), "{}", err.message);
        assert!(err.message.contains(" more]; map columns"), "{}", err.message);
    }

    #[test]
    fn channel_attribution_layout_is_paths() {
        let h = header(&["path", "total_conversions", "total_conversion_value", "total_null"]);
        assert_eq!(detect_kind(&h, &ColumnMapping::default()), InputKind::Paths);
        let cols = Resolver::new(&h, &ColumnMapping::default()).paths().unwrap();
        assert_eq!((cols.total_conversion_value, cols.total_null), (Some(2), Some(3)));
    }
}
