//! Where touches stand in converting journeys (the `positions` report and, per touch key,
//! `breakdown_positions`): one rule for channels and touch keys alike, so the keys of a
//! channel add up to it.

use serde::{Deserialize, Serialize};

/// Where touches stand in converting journeys, weighted by the journey's conversions: the
/// only touch, the first or last of several, or one in between (each such touch counts).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Positions {
    pub only: f64,
    pub first: f64,
    pub middle: f64,
    pub last: f64,
}

impl Positions {
    pub(crate) fn add(&mut self, other: &Positions) {
        self.only += other.only;
        self.first += other.first;
        self.middle += other.middle;
        self.last += other.last;
    }

    /// Counts touch `i` of a converting journey of `touches` touches, `conversions` times.
    pub(crate) fn add_touch(&mut self, i: usize, touches: usize, conversions: f64) {
        match i {
            _ if touches == 1 => self.only += conversions,
            0 => self.first += conversions,
            i if i + 1 == touches => self.last += conversions,
            _ => self.middle += conversions,
        }
    }
}
