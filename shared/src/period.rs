//! Credit over time (docs/user-guide.md, "Periods"): the calendar period a journey counts
//! in, by the local date of its conversion (a journey without one: of its last touch).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{AttributionError, quoted};

/// How long one period is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    /// An ISO week, Monday to Sunday, named by its Monday.
    Week,
    /// A calendar month, named by its first day.
    Month,
}

impl Period {
    /// The first day of the period that holds the instant `micros` (UTC microseconds) in
    /// `zone`, as days since 1970-01-01.
    pub fn start(self, micros: i64, zone: TimeZone) -> i32 {
        self.first_day(zone.date_of(micros))
    }

    /// The first day of the period that holds the calendar day `date`, as days since 1970-01-01.
    pub fn first_day(self, date: NaiveDate) -> i32 {
        let first = match self {
            Period::Day => date,
            Period::Week => date - chrono::Days::new(u64::from(date.weekday().num_days_from_monday())),
            Period::Month => date.with_day(1).expect("every month has a first day"),
        };
        (first - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date")).num_days() as i32
    }

    /// The name of the period that starts `day` days after 1970-01-01: its first day, `2026-01-05`.
    pub fn label(day: i32) -> String {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
        let date = if day >= 0 {
            epoch.checked_add_days(chrono::Days::new(day as u64))
        } else {
            epoch.checked_sub_days(chrono::Days::new(u64::from(day.unsigned_abs())))
        };
        date.unwrap_or(epoch).format("%Y-%m-%d").to_string()
    }
}

impl FromStr for Period {
    type Err = AttributionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "month" => Ok(Period::Month),
            _ => Err(AttributionError::option("period", format!("{} is not day, week or month", quoted(s)))),
        }
    }
}

/// An IANA time zone (`Europe/Berlin`), named as the tz database names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    pub const UTC: TimeZone = TimeZone(chrono_tz::Tz::UTC);

    /// The local calendar date of the instant `micros` (UTC microseconds) in this zone.
    pub fn date_of(self, micros: i64) -> NaiveDate {
        DateTime::from_timestamp_micros(micros)
            .map(|utc| utc.with_timezone(&self.0).date_naive())
            .unwrap_or(NaiveDate::MIN)
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone::UTC
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl FromStr for TimeZone {
    type Err = AttributionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim().parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            AttributionError::option(
                "timezone",
                format!("{} is not an IANA time zone such as Europe/Berlin", quoted(s)),
            )
        })
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(|e: AttributionError| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_micros()
    }

    fn start(period: Period, at: &str, zone: &str) -> String {
        Period::label(period.start(micros(at), zone.parse().unwrap()))
    }

    #[test]
    fn periods_start_on_the_local_day_iso_monday_and_first_of_the_month() {
        // Sunday 2026-01-04 23:30 UTC is Monday 00:30 in Berlin: a new day and a new ISO week there.
        let at = "2026-01-04T23:30:00Z";
        assert_eq!(start(Period::Day, at, "UTC"), "2026-01-04");
        assert_eq!(start(Period::Day, at, "Europe/Berlin"), "2026-01-05");
        assert_eq!(start(Period::Week, at, "UTC"), "2025-12-29");
        assert_eq!(start(Period::Week, at, "Europe/Berlin"), "2026-01-05");
        assert_eq!(start(Period::Month, "2026-01-31T23:30:00Z", "UTC"), "2026-01-01");
        assert_eq!(start(Period::Month, "2026-01-31T23:30:00Z", "Europe/Berlin"), "2026-02-01");
        assert_eq!(start(Period::Day, "1969-12-31T12:00:00Z", "UTC"), "1969-12-31");
        assert_eq!(start(Period::Day, "2026-03-29T01:30:00Z", "America/New_York"), "2026-03-28");
    }

    #[test]
    fn names_are_checked() {
        assert_eq!("Week".parse::<Period>().unwrap(), Period::Week);
        assert!("fortnight".parse::<Period>().unwrap_err().message.contains("day, week or month"));
        assert_eq!("Europe/Berlin".parse::<TimeZone>().unwrap().to_string(), "Europe/Berlin");
        assert!("Mars/Olympus".parse::<TimeZone>().is_err());
        let zone: TimeZone = serde_json::from_str("\"Asia/Tokyo\"").unwrap();
        assert_eq!(serde_json::to_string(&zone).unwrap(), "\"Asia/Tokyo\"");
    }
}
