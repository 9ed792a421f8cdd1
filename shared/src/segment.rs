//! Segments (`segment_by`): one complete attribution per value of a column (its own
//! summary, every model, Markov with its own chain). A journey counts in the segment of its
//! last row: its conversion row, or a null journey's last touch. Like periods, a partial
//! holds a sub-partial per segment and the whole is their sum, so segments add up over
//! chunks as partials do (`partial.rs`). With `conversion_types`, each type is a segment
//! (`{"conversion_type": "purchase"}`) attributed on its own rows (its journeys end at its
//! conversions only), so those do not add up to the whole. The result's `SegmentResult` and
//! its tidy table live in `result.rs`. This module holds what both share: how segments are
//! keyed, listed, named, merged and written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::options::Options;

/// A segment's value in its column; `None` for the rows with none (shown as `(none)`).
pub type SegmentValue = Option<String>;

/// The order segments are listed in: by value, the rows without one last.
pub(crate) fn listing_order(a: &SegmentValue, b: &SegmentValue) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (a, b) => a.is_some().cmp(&b.is_some()).reverse(),
    }
}

/// The name segments go by in results and tables: the `segment_by` column, or
/// `conversion_type` with `conversion_types`; `None` without segments.
pub fn column(options: &Options) -> Option<&str> {
    match &options.segment_by {
        Some(column) => Some(column),
        None => (!options.conversion_types.is_empty()).then_some(CONVERSION_TYPE),
    }
}

/// The name of a conversion type's segment: `{"conversion_type": "purchase"}`.
pub const CONVERSION_TYPE: &str = "conversion_type";

/// The segment of `value` in the result's terms: `{column: value}`.
pub(crate) fn label(options: &Options, value: &SegmentValue) -> BTreeMap<String, Option<String>> {
    let column = column(options).unwrap_or_default().to_owned();
    BTreeMap::from([(column, value.clone())])
}

/// Adds `other`'s segments into `mine`, segment by segment (`add` merges two of them).
pub(crate) fn merge<T: Clone>(
    mine: &mut BTreeMap<SegmentValue, T>,
    other: &BTreeMap<SegmentValue, T>,
    add: impl Fn(&mut T, &T),
) {
    for (value, theirs) in other {
        match mine.get_mut(value) {
            Some(segment) => add(segment, theirs),
            None => {
                mine.insert(value.clone(), theirs.clone());
            }
        }
    }
}

/// Segments as a list of `[value, segment]` pairs: JSON keys are strings, and a missing
/// value must stay apart from every string.
pub(crate) mod by_value {
    use super::*;

    pub(crate) fn serialize<S: serde::Serializer, T: Serialize>(
        segments: &BTreeMap<SegmentValue, T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(segments.iter())
    }

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<SegmentValue, T>, D::Error> {
        let pairs: Vec<(SegmentValue, T)> = Deserialize::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_listed_by_value_with_the_missing_value_last() {
        let mut values: Vec<SegmentValue> = vec![None, Some("FR".into()), Some("DE".into())];
        values.sort_by(listing_order);
        assert_eq!(values, [Some("DE".into()), Some("FR".into()), None]);
    }

    #[test]
    fn a_missing_value_stays_apart_from_every_string_in_json() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder(#[serde(with = "by_value")] BTreeMap<SegmentValue, u32>);
        let segments = Holder(BTreeMap::from([(None, 1), (Some(String::new()), 2), (Some("null".into()), 3)]));
        let json = serde_json::to_string(&segments).unwrap();
        assert_eq!(json, r#"[[null,1],["",2],["null",3]]"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), segments);
    }
}
