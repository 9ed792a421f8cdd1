//! Exact sums for the bootstrap replicates (docs/user-guide.md, "Intervals"): fixed point,
//! so that the same journeys give the same sums to the last bit however chunks group and
//! merge them, and the service's intervals equal the local command's and a rerun's.
//!
//! A replicate's fractional sums (rule credit, values, breakdown shares) are integer draws
//! times a journey's figure: each figure is made fixed point once per journey, then
//! multiplied by each replicate's draw with integer arithmetic. Counts of conversions and
//! journeys need no such care: they are integers, and `f64` sums of integers below 2^53
//! are exact in any order.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{AttributionError, ErrorCode, Problem};

/// 2^64: an [`Exact`] counts units of 2^-64.
const SCALE: f64 = 18_446_744_073_709_551_616.0;

/// The mark of a sum that left the range; it stays through every sum it enters.
const OVERFLOW: i128 = i128::MIN;

/// A fixed-point number: an `i128` count of 2^-64, a resolution of 5.4e-20 (every `f64` of
/// magnitude 2^-12 or more converts exactly, so a sum of such figures is exact) over a range
/// of ±2^63 (9.2e18). A sum that leaves the range is marked, and refused when it is read
/// ([`Exact::to_f64`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Exact(i128);

impl Exact {
    pub const ZERO: Exact = Exact(0);

    /// `x` rounded to the nearest unit (marked as out of range past ±2^63).
    pub fn of(x: f64) -> Exact {
        let units = (x * SCALE).round();
        // `i128::MAX as f64` is 2^127, out of range itself.
        if units.abs() < i128::MAX as f64 { Exact(units as i128) } else { Exact(OVERFLOW) }
    }

    /// `self × count`, `count` a whole number (a replicate's draw).
    #[inline]
    pub fn times(self, count: f64) -> Exact {
        // Through `i64` (one instruction) for any draw a file gives; `f64 as i128` is a call.
        let count = if count.abs() < 9.0e15 { count as i64 as i128 } else { count as i128 };
        // The common cases without a checked 128-bit multiply (this runs per touch and
        // replicate): a draw of one, and a figure below 2^36 (2^100 units) times a draw below
        // 2^26, whose product stays below 2^126. The mark of an overflow is neither.
        if count == 1 {
            return self;
        }
        if self.0.unsigned_abs() < 1 << 100 && (0..1 << 26).contains(&count) {
            return Exact(self.0 * count);
        }
        match self.0.checked_mul(count) {
            Some(units) if self.0 != OVERFLOW => Exact(units),
            _ => Exact(OVERFLOW),
        }
    }

    #[inline]
    pub fn add(&mut self, other: Exact) {
        // Adding zero (a journey without value, met once per replicate) leaves any sum as it is.
        if other.0 == 0 {
            return;
        }
        self.0 = match self.0.checked_add(other.0) {
            Some(units) if self.0 != OVERFLOW && other.0 != OVERFLOW => units,
            _ => OVERFLOW,
        };
    }

    /// The nearest `f64` (one rounding, the same wherever the sum was made); refused when
    /// the sum left the range, as `Partial::check_finite` refuses an `f64` sum that did.
    pub fn to_f64(self) -> Result<f64, AttributionError> {
        if self.0 == OVERFLOW {
            return Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                "a bootstrap replicate's credited values add up to more than 9.2e18, the range of its exact sums; \
                 are the values in the right unit?",
            )
            .with_details(vec![Problem::new(
                None,
                Some("conversion_value"),
                "a replicate's sum overflows",
            )]));
        }
        Ok(self.0 as f64 / SCALE)
    }
}

/// Written as a string of its units (a JSON number past 2^53, or past `i64` as
/// `serde_json::Value` holds numbers, would not read back exactly everywhere).
impl Serialize for Exact {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Exact {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let units = std::borrow::Cow::<str>::deserialize(deserializer)?;
        units.parse().map(Exact).map_err(|_| serde::de::Error::custom(format!("{units:?} is not a fixed-point sum")))
    }
}

/// A replicate's journeys over a path (or with a channel, a pair, ending in a state):
/// conversions and null journeys, whole numbers, and their value, exact.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JourneySums {
    pub conversions: f64,
    pub nulls: f64,
    pub value: Exact,
}

impl JourneySums {
    #[inline]
    pub fn add(&mut self, other: &JourneySums) {
        self.conversions += other.conversions;
        self.nulls += other.nulls;
        self.value.add(other.value);
    }

    /// Whether any journey counts here.
    pub fn is_met(&self) -> bool {
        self.conversions + self.nulls > 0.0
    }
}

/// `sums[at] += value`, `sums` grown to hold `at`: a replicate's sums are only as long as
/// the states, channels or keys it has met.
pub(crate) fn add_at(sums: &mut Vec<Exact>, at: usize, value: Exact) {
    if sums.len() <= at {
        sums.resize(at + 1, Exact::ZERO);
    }
    sums[at].add(value);
}

/// [`add_at`] of an entry's several sums.
pub(crate) fn add_all_at<const N: usize>(sums: &mut Vec<[Exact; N]>, at: usize, values: &[Exact; N]) {
    if sums.len() <= at {
        sums.resize(at + 1, [Exact::ZERO; N]);
    }
    for (a, &b) in sums[at].iter_mut().zip(values) {
        a.add(b);
    }
}

/// Adds `theirs[old]` to `mine[map[old]]`, growing `mine` as needed.
pub(crate) fn add_mapped<const N: usize>(mine: &mut Vec<[Exact; N]>, theirs: &[[Exact; N]], map: &[u32]) {
    for (old, sums) in theirs.iter().enumerate() {
        add_all_at(mine, map[old] as usize, sums);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_the_same_in_any_order_and_overflow_is_refused() {
        let figures = [19.99, 1.0 / 3.0, 0.1, 7.25e-3, 1e9 + 0.7];
        let (mut forward, mut backward) = (Exact::ZERO, Exact::ZERO);
        for (i, &x) in figures.iter().enumerate() {
            forward.add(Exact::of(x).times(i as f64 + 1.0));
        }
        for (i, &x) in figures.iter().enumerate().rev() {
            backward.add(Exact::of(x).times(i as f64 + 1.0));
        }
        assert_eq!(forward, backward);
        assert_eq!(Exact::of(19.99).to_f64().unwrap(), 19.99);
        assert_eq!(Exact::of(-2.5).times(3.0).to_f64().unwrap(), -7.5);
        assert_eq!(Exact::of(4e18).times(2.0).to_f64().unwrap(), 8e18);
        assert!(Exact::of(4e18).times(3.0).to_f64().is_err() && Exact::of(1.0).times(1e20).to_f64().is_err());
        let mut big = Exact::of(9e18);
        big.add(Exact::of(9e18));
        assert_eq!(big.to_f64().unwrap_err().code, ErrorCode::LimitExceeded);
        // The mark stays, whatever is added after it.
        big.add(Exact::of(-9e18));
        assert!(big.to_f64().is_err());
        assert!(Exact::of(1e300).to_f64().is_err() && Exact::of(f64::NAN).to_f64().is_err());
        for sum in [forward, big, Exact::of(-19.99)] {
            let json = serde_json::to_string(&sum).unwrap();
            assert_eq!(serde_json::from_str::<Exact>(&json).unwrap(), sum);
            assert_eq!(serde_json::from_value::<Exact>(serde_json::to_value(sum).unwrap()).unwrap(), sum);
        }
    }
}
