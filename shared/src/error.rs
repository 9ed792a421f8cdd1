//! The one error type of the engine: what went wrong with the user's input or options,
//! with row- and column-level details, kept apart from faults of ours.
//!
//! Errors are stored on job records, returned by the API and sent by webhook, so their
//! size must not follow the input's: every constructor passes through
//! [`AttributionError::bounded`], and names or values taken from the input are shown
//! through [`quoted`] / [`shortened`] (cut, with their full length).

use std::fmt;

use serde::{Deserialize, Serialize};

/// At most this many row-level problems are kept on one error (DESIGN.md 2.5).
pub const MAX_DETAILS: usize = 100;
/// Bytes of a name or value from the input shown in an error before it is cut.
pub const MAX_SHOWN_BYTES: usize = 64;
/// Longest `column` of a [`Problem`], in bytes (a shortened name fits).
pub const MAX_COLUMN_BYTES: usize = 128;
/// Longest `problem` text of a [`Problem`], in bytes.
pub const MAX_PROBLEM_BYTES: usize = 512;
/// Longest error message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Largest error: the message and every detail's column and problem together, in bytes.
pub const MAX_ERROR_BYTES: usize = 32 * 1024;

/// `text` as an error shows it: in backticks, control characters escaped, and past
/// [`MAX_SHOWN_BYTES`] cut with an ellipsis and its full size: `` `abc…` (1048576 bytes) ``.
pub fn quoted(text: &str) -> String {
    let (shown, cut) = shown(text);
    if cut { format!("`{shown}…` ({} bytes)", text.len()) } else { format!("`{shown}`") }
}

/// Like [`quoted`] without the backticks: `abc… (1048576 bytes)`; for names in a
/// [`Problem`]'s `column`.
pub fn shortened(text: &str) -> String {
    let (shown, cut) = shown(text);
    if cut { format!("{shown}… ({} bytes)", text.len()) } else { shown }
}

/// The first [`MAX_SHOWN_BYTES`] of `text` (at a character boundary) with control
/// characters escaped, and whether anything was left out.
fn shown(text: &str) -> (String, bool) {
    let end = floor_char_boundary(text, MAX_SHOWN_BYTES);
    let mut shown = String::with_capacity(end);
    for c in text[..end].chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    (shown, end < text.len())
}

/// The largest character boundary of `text` at or below `max`.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if max >= text.len() {
        return text.len();
    }
    (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// Cuts `text` to at most `max` bytes, ending it with an ellipsis and the size it had.
fn cut(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let suffix = format!("… ({} bytes)", text.len());
    let end = floor_char_boundary(text, max.saturating_sub(suffix.len()));
    text.truncate(end);
    text.push_str(&suffix);
}

/// A machine-readable error code. The strings are part of the public contract.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The bytes are none of the supported formats, or not the format asked for.
    UnknownFormat,
    /// The file holds no data rows.
    EmptyInput,
    /// The file ends in the middle of a record or a compressed stream.
    TruncatedInput,
    /// A column the kind of input needs is absent.
    MissingColumns,
    /// One or more values cannot be read as their column's type, or break a rule.
    InvalidValue,
    /// An option is out of range or does not apply to this input.
    InvalidOption,
    /// A configured limit (rows, channels, Markov states, ...) was exceeded.
    LimitExceeded,
    /// A fault of ours rather than of the input (should not happen; reported, never hidden).
    Internal,
}

impl ErrorCode {
    /// The code as it appears in JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownFormat => "unknown_format",
            ErrorCode::EmptyInput => "empty_input",
            ErrorCode::TruncatedInput => "truncated_input",
            ErrorCode::MissingColumns => "missing_columns",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::InvalidOption => "invalid_option",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::Internal => "internal",
        }
    }
}

/// One problem at one place in the input.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// 1-based data row (the header, if any, is not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// Column name as it appears in the file (or the option's field name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
}

impl Problem {
    /// A problem with its column and text cut to [`MAX_COLUMN_BYTES`] / [`MAX_PROBLEM_BYTES`].
    pub fn new(row: Option<u64>, column: Option<&str>, problem: impl Into<String>) -> Problem {
        let mut problem = Problem { row, column: column.map(shortened), problem: problem.into() };
        problem.bound();
        problem
    }

    fn bound(&mut self) {
        if let Some(column) = &mut self.column {
            cut(column, MAX_COLUMN_BYTES);
        }
        cut(&mut self.problem, MAX_PROBLEM_BYTES);
    }

    /// Bytes the problem adds to an error (its texts and a little for the row).
    fn size(&self) -> usize {
        self.column.as_ref().map_or(0, String::len) + self.problem.len() + 24
    }
}

/// The engine's error: a code, a sentence, and up to [`MAX_DETAILS`] located problems.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributionError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Problem>,
}

impl AttributionError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AttributionError { code, message: message.into(), details: Vec::new() }.bounded()
    }

    /// An invalid option, naming the field (DESIGN.md 2.5: "naming the field").
    pub fn option(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        AttributionError {
            code: ErrorCode::InvalidOption,
            message: format!("invalid option {}: {problem}", quoted(field)),
            details: vec![Problem::new(None, Some(field), problem)],
        }
        .bounded()
    }

    pub fn with_details(mut self, details: Vec<Problem>) -> Self {
        self.details = details;
        self.bounded()
    }

    /// The error within its bounds, whatever its parts held: the message cut to
    /// [`MAX_MESSAGE_BYTES`], at most [`MAX_DETAILS`] details each cut to its bounds, and
    /// the details that would take the whole past [`MAX_ERROR_BYTES`] left out (the
    /// message says how many). Every constructor ends here.
    pub fn bounded(mut self) -> Self {
        cut(&mut self.message, MAX_MESSAGE_BYTES);
        self.details.truncate(MAX_DETAILS);
        // Room for the note below, so the whole stays within its bound.
        let mut left = MAX_ERROR_BYTES - MAX_MESSAGE_BYTES.min(self.message.len()) - 64;
        let mut kept = 0;
        for detail in &mut self.details {
            detail.bound();
            let Some(rest) = left.checked_sub(detail.size()) else { break };
            left = rest;
            kept += 1;
        }
        let left_out = self.details.len() - kept;
        if left_out > 0 {
            self.details.truncate(kept);
            self.message.push_str(&format!(" ({left_out} more details left out)"));
        }
        self
    }

    /// Bytes of the message and the details' texts: what [`MAX_ERROR_BYTES`] bounds.
    pub fn size(&self) -> usize {
        self.message.len() + self.details.iter().map(Problem::size).sum::<usize>()
    }
}

impl fmt::Display for AttributionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)?;
        for detail in &self.details {
            write!(f, "\n  ")?;
            if let Some(row) = detail.row {
                write!(f, "row {row}")?;
                if detail.column.is_some() {
                    write!(f, ", ")?;
                }
            }
            if let Some(column) = &detail.column {
                write!(f, "column `{column}`")?;
            }
            write!(f, ": {}", detail.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for AttributionError {}

/// Collects row-level problems while decoding continues, so one failed run reports
/// many bad rows at once instead of one per attempt.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
    total: u64,
}

impl Problems {
    pub fn push(&mut self, row: u64, column: &str, problem: impl Into<String>) {
        self.total += 1;
        if self.list.len() < MAX_DETAILS {
            self.list.push(Problem::new(Some(row), Some(column), problem));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// True once enough problems are known that reading further would add nothing.
    pub fn is_full(&self) -> bool {
        self.list.len() >= MAX_DETAILS
    }

    /// The problems of `invalid_value` errors found in separate parts of one input (read
    /// in parallel) as one error, in row order; other errors are returned as they are,
    /// the first one winning.
    pub fn combine(errors: Vec<AttributionError>) -> Option<AttributionError> {
        if !errors.iter().all(|e| e.code == ErrorCode::InvalidValue) || errors.len() < 2 {
            return errors.into_iter().next();
        }
        // A part stops reading at MAX_DETAILS problems, below that its details are all it
        // found: the combined count is exact, or (past MAX_DETAILS) reported as "at least".
        let mut list: Vec<Problem> = errors.into_iter().flat_map(|e| e.details).collect();
        list.sort_by_key(|p| p.row);
        let total = list.len() as u64;
        list.truncate(MAX_DETAILS);
        Problems { list, total }.into_result().err()
    }

    pub fn absorb(&mut self, other: Problems) {
        self.total += other.total;
        for problem in other.list {
            if self.list.len() < MAX_DETAILS {
                self.list.push(problem);
            }
        }
    }

    /// `Ok(())` when nothing was found, else one `invalid_value` error carrying the details.
    pub fn into_result(self) -> Result<(), AttributionError> {
        if self.total == 0 {
            return Ok(());
        }
        // Reading stops once MAX_DETAILS problems are known, so the count is a lower bound then.
        let count = if self.list.len() >= MAX_DETAILS {
            format!("at least {} invalid values", self.total)
        } else {
            format!("{} invalid value(s)", self.total)
        };
        Err(AttributionError::new(ErrorCode::InvalidValue, format!("{count} in the input")).with_details(self.list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(rows: std::ops::Range<u64>) -> AttributionError {
        let mut problems = Problems::default();
        for row in rows {
            problems.push(row, "timestamp", "bad");
        }
        problems.into_result().unwrap_err()
    }

    #[test]
    fn problems_of_parts_read_in_parallel_combine_in_row_order() {
        let combined = Problems::combine(vec![found(5..7), found(2..5)]).unwrap();
        assert_eq!(combined.message, "5 invalid value(s) in the input");
        let rows: Vec<u64> = combined.details.iter().filter_map(|d| d.row).collect();
        assert_eq!(rows, [2, 3, 4, 5, 6]);

        let many = Problems::combine(vec![found(100..160), found(1..61)]).unwrap();
        assert_eq!(many.message, "at least 120 invalid values in the input");
        assert_eq!(many.details.len(), MAX_DETAILS);
        assert_eq!(many.details[0].row, Some(1));

        let other = AttributionError::new(ErrorCode::TruncatedInput, "cut");
        let first = Problems::combine(vec![other.clone(), found(1..3)]).unwrap();
        assert_eq!(first, other);
        assert!(Problems::combine(Vec::new()).is_none());
    }
}
