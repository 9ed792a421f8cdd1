//! Typed reading of single cells, the same rules for every format: timestamps in
//! RFC 3339 / ISO 8601 or epoch units, booleans, finite numbers.

use crate::error::quoted;

/// One cell as a decoder sees it, before it is read as its column's type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A native timestamp, already in UTC microseconds (Parquet/Arrow timestamp or date).
    Micros(i64),
    /// A JSON array or object, or another type no column accepts.
    Nested,
    /// A string from a dictionary-encoded column, with its key in the current batch's
    /// dictionary (lets readers cache per key instead of hashing every row's string).
    Dict(u32, &'a str),
}

impl<'a> Cell<'a> {
    /// The cell with dictionary strings as plain strings.
    pub fn plain(self) -> Cell<'a> {
        match self {
            Cell::Dict(_, s) => Cell::Str(s),
            other => other,
        }
    }

    /// Null, or a string of only white space.
    pub fn is_blank(&self) -> bool {
        match self.plain() {
            Cell::Null => true,
            Cell::Str(s) => s.trim().is_empty(),
            _ => false,
        }
    }

    /// The cell as the user wrote it, for error messages (shortened, see [`quoted`]).
    pub fn display(&self) -> String {
        match self.plain() {
            Cell::Null => "an empty value".to_owned(),
            Cell::Str(s) => quoted(s),
            Cell::Int(i) => quoted(&i.to_string()),
            Cell::Float(f) => quoted(&f.to_string()),
            Cell::Bool(b) => quoted(&b.to_string()),
            Cell::Micros(m) => quoted(&m.to_string()),
            Cell::Nested | Cell::Dict(..) => "a nested or binary value".to_owned(),
        }
    }
}

/// Reads a timestamp as UTC microseconds.
///
/// Strings: `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fraction]]`,
/// optionally followed by `Z` or an offset `±HH[:MM]`; no offset means UTC.
/// Numbers (or strings of digits): epoch time whose unit follows from its size:
/// below 10¹¹ seconds, below 10¹⁴ milliseconds, below 10¹⁷ microseconds, else nanoseconds.
pub fn read_timestamp(cell: Cell<'_>) -> Option<i64> {
    match cell.plain() {
        Cell::Micros(m) => Some(m),
        Cell::Int(i) => epoch_micros(i as f64),
        Cell::Float(f) => epoch_micros(f),
        Cell::Str(s) => {
            let s = s.trim();
            let unsigned = s.strip_prefix('-').unwrap_or(s);
            // A date's fifth byte is its dash: no need to look further for an epoch number.
            let is_date = unsigned.as_bytes().get(4) == Some(&b'-');
            if !is_date && !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return s.parse::<f64>().ok().and_then(epoch_micros);
            }
            parse_iso8601(s)
        }
        Cell::Null | Cell::Bool(_) | Cell::Nested | Cell::Dict(..) => None,
    }
}

/// [`read_timestamp`] of an integer cell, in integer arithmetic wherever that gives the float
/// rule's microseconds (every time an export holds up to the year 2255): below 2^53 an
/// integer and its product by 10^3 or 10^6 are exact doubles, so the float rule's rounding
/// changes nothing. Other integers take the float rule itself.
#[inline]
pub(crate) fn epoch_int_micros(value: i64) -> Option<i64> {
    const EXACT: u64 = 1 << 53;
    let magnitude = value.unsigned_abs();
    let scale = match magnitude {
        m if m < 100_000_000_000 => 1_000_000,
        m if m < 100_000_000_000_000 => 1_000,
        _ => 1,
    };
    match value.checked_mul(scale) {
        Some(micros) if magnitude < EXACT && micros.unsigned_abs() < EXACT => Some(micros),
        _ => epoch_micros(value as f64),
    }
}

fn epoch_micros(value: f64) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let magnitude = value.abs();
    let micros = if magnitude < 1e11 {
        value * 1e6
    } else if magnitude < 1e14 {
        value * 1e3
    } else if magnitude < 1e17 {
        value
    } else {
        value / 1e3
    };
    Some(micros.round() as i64)
}

fn parse_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])? as i64;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let days = days_since_epoch(year, month, day)?;
    let mut micros = days * 86_400_000_000;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let hour = digits(&rest[0..2])?;
    let minute = digits(&rest[3..5])?;
    rest = &rest[5..];
    let mut second = 0;
    if rest.first() == Some(&b':') {
        second = digits(rest.get(1..3)?)?;
        rest = &rest[3..];
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) as i64 * 1_000_000;
    if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
        let frac_len = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac_len == 0 {
            return None;
        }
        let frac = &rest[1..1 + frac_len];
        let mut fraction = 0i64;
        for (i, d) in frac.iter().take(6).enumerate() {
            fraction += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
        }
        micros += fraction;
        rest = &rest[1 + frac_len..];
    }
    let offset_minutes = match rest {
        [] | [b'Z'] | [b'z'] | b" UTC" | b"UTC" => 0,
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (h, m) = match tail {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            let minutes = (h * 60 + m) as i64;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    Some(micros - offset_minutes * 60_000_000)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar, `None` when there is
/// no such date (month 13, 30 February). Every row of a string time column asks: years an
/// export holds are looked up in a table made at compile time, others take the closed form
/// of Howard Hinnant's `days_from_civil` (years counted from March, so the leap day ends one).
fn days_since_epoch(year: i64, month: u64, day: u64) -> Option<i64> {
    let month_index = (month as usize).checked_sub(1).filter(|&m| m < 12)?;
    let (first_day, leap) = match YEAR_STARTS.get((year - TABLE_FIRST_YEAR) as usize) {
        Some(&(first_day, leap)) => (i64::from(first_day), leap),
        None => (days_from_civil(year, 1, 1), is_leap(year)),
    };
    let (month_start, month_days) = MONTHS[usize::from(leap)][month_index];
    if day == 0 || day > u64::from(month_days) {
        return None;
    }
    Some(first_day + i64::from(month_start) + day as i64 - 1)
}

const TABLE_FIRST_YEAR: i64 = 1900;
const TABLE_YEARS: usize = 300;

/// Per year from [`TABLE_FIRST_YEAR`]: days from 1970-01-01 to its first day, and whether it
/// is a leap year.
const YEAR_STARTS: [(i32, bool); TABLE_YEARS] = {
    let mut table = [(0, false); TABLE_YEARS];
    let mut i = 0;
    while i < TABLE_YEARS {
        let year = TABLE_FIRST_YEAR + i as i64;
        table[i] = (days_from_civil(year, 1, 1) as i32, is_leap(year));
        i += 1;
    }
    table
};

/// Per kind of year (common, leap) and month: days from the year's first day to the month's,
/// and the month's length.
const MONTHS: [[(u16, u8); 12]; 2] = {
    let lengths = [[31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]];
    let mut table = [[(0, 0); 12]; 2];
    let mut kind = 0;
    while kind < 2 {
        let (mut month, mut start) = (0, 0u16);
        while month < 12 {
            table[kind][month] = (start, lengths[kind][month]);
            start += lengths[kind][month] as u16;
            month += 1;
        }
        kind += 1;
    }
    table
};

const fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days from 1970-01-01 to a valid date (Howard Hinnant's `days_from_civil`).
const fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
}

/// Reads a conversion flag. Empty means "not a conversion".
pub fn read_flag(cell: Cell<'_>) -> Option<bool> {
    match cell.plain() {
        Cell::Null => Some(false),
        Cell::Bool(b) => Some(b),
        Cell::Int(0) => Some(false),
        Cell::Int(1) => Some(true),
        Cell::Float(0.0) => Some(false),
        Cell::Float(1.0) => Some(true),
        Cell::Str(s) => {
            // Compared without case and without allocating: the Parquet fast lane reads
            // string flags through this same function, row by row.
            let word = s.trim();
            let is = |words: &[&str]| words.iter().any(|w| word.eq_ignore_ascii_case(w));
            if is(&["", "0", "false", "f", "no", "n", "0.0"]) {
                Some(false)
            } else if is(&["1", "true", "t", "yes", "y", "1.0"]) {
                Some(true)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Reads a number; `Ok(None)` when empty, `Err` with the reason when not a finite number.
pub fn read_number(cell: Cell<'_>) -> Result<Option<f64>, String> {
    let value = match cell.plain() {
        Cell::Null => return Ok(None),
        Cell::Int(i) => i as f64,
        Cell::Float(f) => f,
        Cell::Bool(b) => f64::from(u8::from(b)),
        Cell::Micros(_) | Cell::Nested | Cell::Dict(..) => {
            return Err(format!("expected a number, found {}", cell.display()));
        }
        Cell::Str(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<f64>().map_err(|_| format!("cannot read {} as a number", cell.display()))?
        }
    };
    if value.is_finite() { Ok(Some(value)) } else { Err(format!("{} is not a finite number", cell.display())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn days_since_epoch_is_the_calendars_count_for_every_date_of_four_digit_years() {
        use chrono::NaiveDate;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        for year in 0..=9999i64 {
            for month in 0..=13u64 {
                for day in 0..=32u64 {
                    let calendar = NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)
                        .map(|date| (date - epoch).num_days());
                    assert_eq!(days_since_epoch(year, month, day), calendar, "{year}-{month}-{day}");
                }
            }
        }
    }

    #[test]
    fn iso_forms_agree() {
        let base = read_timestamp(Cell::Str("2018-07-03T13:02:11Z")).unwrap();
        assert_eq!(base, 1_530_622_931 * SECOND);
        for form in
            ["2018-07-03 13:02:11", "2018-07-03T13:02:11", "2018-07-03T15:02:11+02:00", "2018-07-03T08:02:11-0500"]
        {
            assert_eq!(read_timestamp(Cell::Str(form)), Some(base), "{form}");
        }
        assert_eq!(read_timestamp(Cell::Str("2018-07-03T13:02:11.25Z")), Some(base + 250_000));
        assert_eq!(read_timestamp(Cell::Str("2018-07-03")), Some(base - (13 * 3600 + 2 * 60 + 11) * SECOND));
    }

    #[test]
    fn integer_epochs_read_as_the_float_rule_reads_them() {
        let mut values = vec![0, 1, -1, 1 << 53, (1 << 53) - 1, (1 << 53) + 1, -(1 << 53), i64::MAX, i64::MIN];
        for boundary in [100_000_000_000_i64, 100_000_000_000_000, 100_000_000_000_000_000] {
            values.extend([boundary - 1, boundary, boundary + 1, -boundary + 1, -boundary, -boundary - 1]);
        }
        // Exports' seconds, milliseconds, microseconds and nanoseconds, and the edges of
        // exactness for each unit.
        values.extend([1_767_225_600, 1_767_225_600_123, 1_767_225_600_123_456, 1_767_225_600_123_456_789]);
        values.extend([9_007_199_254, 9_007_199_255, 99_999_999_999, 9_007_199_254_740, 9_007_199_254_741]);
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..100_000 {
            // SplitMix64 steps, at every magnitude.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            values.push(((z ^ (z >> 31)) as i64) >> (z % 63));
        }
        for value in values {
            assert_eq!(epoch_int_micros(value), epoch_micros(value as f64), "{value}");
        }
    }

    #[test]
    fn epoch_units_follow_magnitude() {
        let base = 1_530_622_931 * SECOND;
        assert_eq!(read_timestamp(Cell::Int(1_530_622_931)), Some(base));
        assert_eq!(read_timestamp(Cell::Int(1_530_622_931_000)), Some(base));
        assert_eq!(read_timestamp(Cell::Str("1530622931000000")), Some(base));
        assert_eq!(read_timestamp(Cell::Str("1530622931.5")), Some(base + 500_000));
    }

    #[test]
    fn garbage_is_not_a_timestamp() {
        for bad in ["yesterday", "2018-13-01", "2018-02-30T00:00:00Z", "2018-07-03T25:00", "2018-07-03X", "", "NaN"] {
            assert_eq!(read_timestamp(Cell::Str(bad)), None, "{bad}");
        }
    }

    #[test]
    fn numbers_must_be_finite() {
        assert_eq!(read_number(Cell::Str(" 2.5 ")), Ok(Some(2.5)));
        assert_eq!(read_number(Cell::Str("")), Ok(None));
        assert!(read_number(Cell::Str("NaN")).is_err());
        assert!(read_number(Cell::Str("inf")).is_err());
        assert!(read_number(Cell::Str("1,5")).is_err());
    }

    #[test]
    fn flags() {
        assert_eq!(read_flag(Cell::Str("TRUE")), Some(true));
        assert_eq!(read_flag(Cell::Str("")), Some(false));
        assert_eq!(read_flag(Cell::Int(2)), None);
        assert_eq!(read_flag(Cell::Str("maybe")), None);
    }
}
