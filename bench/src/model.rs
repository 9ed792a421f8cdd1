//! The synthetic data model of `mta-gen`: users, their skewed journeys of channel touches, their
//! conversions and conversion values, all derived deterministically from one seed.
//!
//! Every user draws from its own random stream (seeded from the global seed and the user's
//! index), so a user's events do not depend on how many rows are generated or in which order
//! users are produced. Events are packed into a single `u64` ([`Event`]) whose natural order is
//! the output order: by timestamp, then a random tie-break nibble, then user, then kind.

use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::{Rng, RngCore};
use rand_distr::{Exp, LogNormal, Zipf};

/// Start of the generated period: 2026-01-01T00:00:00Z, in seconds since the Unix epoch.
pub(crate) const START_EPOCH_SECS: i64 = 1_767_225_600;
/// Length of the generated period.
pub(crate) const HORIZON_SECS: u32 = 90 * DAY_SECS;

const DAY_SECS: u32 = 86_400;
/// Longest touch journey; the Zipf law below is truncated here.
const MAX_TOUCHES: f64 = 400.0;
/// Zipf exponent of the number of touches per user (mean about 6 with the cap above).
const TOUCHES_ZIPF_EXPONENT: f64 = 1.8;

/// The channels, in the order of their codes.
pub(crate) const CHANNELS: [&str; 12] = [
    "paid_search",
    "organic_search",
    "display",
    "social_paid",
    "social_organic",
    "email",
    "affiliate",
    "referral",
    "video",
    "direct",
    "push",
    "sms",
];
/// Popularity of each channel for touches after the first.
const CHANNEL_WEIGHTS: [u32; 12] = [18, 15, 9, 10, 6, 9, 4, 5, 3, 14, 4, 3];
/// Popularity of each channel for a user's first touch (upper-funnel channels come first).
const FIRST_TOUCH_WEIGHTS: [u32; 12] = [14, 16, 16, 16, 8, 2, 6, 6, 8, 6, 1, 1];
/// Kind code of a conversion row; codes below it are channel indexes.
pub(crate) const CONVERSION: u8 = CHANNELS.len() as u8;

/// Bits of the fields packed into an [`Event`], most significant first.
const TS_BITS: u32 = 23;
const TIE_BITS: u32 = 4;
const USER_BITS: u32 = 33;
const KIND_BITS: u32 = 4;
/// Largest number of users an [`Event`] can address.
pub(crate) const MAX_USERS: u64 = 1 << USER_BITS;

const _: () = assert!(TS_BITS + TIE_BITS + USER_BITS + KIND_BITS == 64);
const _: () = assert!(HORIZON_SECS < 1 << TS_BITS);
const _: () = assert!((CONVERSION as u32) < 1 << KIND_BITS);

/// One row of the output, packed so that sorting the packed values sorts rows into file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Event(u64);

impl Event {
    fn new(ts: u32, tie: u8, user: u64, kind: u8) -> Self {
        debug_assert!(ts < HORIZON_SECS && u32::from(tie) < 1 << TIE_BITS && user < MAX_USERS);
        Self(
            u64::from(ts) << (64 - TS_BITS)
                | u64::from(tie) << (USER_BITS + KIND_BITS)
                | user << KIND_BITS
                | u64::from(kind),
        )
    }

    /// Seconds since [`START_EPOCH_SECS`].
    pub(crate) fn ts(self) -> u32 {
        (self.0 >> (64 - TS_BITS)) as u32
    }

    /// Index of the user (its id is `u` followed by the zero-padded index).
    pub(crate) fn user(self) -> u64 {
        (self.0 >> KIND_BITS) & (MAX_USERS - 1)
    }

    /// The channel index of a touch, `None` for a conversion.
    pub(crate) fn channel(self) -> Option<usize> {
        let kind = (self.0 & ((1 << KIND_BITS) - 1)) as u8;
        (kind != CONVERSION).then_some(usize::from(kind))
    }
}

/// How each channel is tagged in the marketing schema: the sources one of whose touches
/// may carry, the medium, and whether it has campaigns. Each pair is one that Google
/// Analytics 4's default channel group files under the channel (docs/channel-rules.md).
const UTM: [(&[&str], &str, bool); 12] = [
    (&["google", "bing"], "cpc", true),                            // Paid Search
    (&["google", "bing", "duckduckgo"], "organic", false),         // Organic Search
    (&["dv360", "criteo", "taboola"], "display", true),            // Display
    (&["facebook", "instagram", "linkedin"], "paid_social", true), // Paid Social
    (&["facebook", "twitter", "linkedin"], "social", false),       // Organic Social
    (&["newsletter", "crm"], "email", true),                       // Email
    (&["awin", "rakuten", "impact"], "affiliate", true),           // Affiliates
    (&["partner.example", "blog.example", "news.example"], "referral", false), // Referral
    (&["youtube"], "cpv", true),                                   // Paid Video
    (&[""], "", false),                                            // Direct
    (&["onesignal", "firebase"], "push", true),                    // Mobile Push Notifications
    (&["attentive", "twilio"], "sms", true),                       // SMS
];
/// Campaigns per tagged channel: 8 channels have campaigns, 304 in all.
const CAMPAIGNS_PER_CHANNEL: u64 = 38;

/// The UTM tags of a touch in the marketing schema: source, medium and campaign number (a
/// few hundred campaigns in all; none for organic, referral and direct touches; direct
/// touches have no source or medium either). Drawn from the event itself, so they are
/// computed as rows are written.
pub(crate) fn utm(event: Event, channel: usize) -> (&'static str, &'static str, Option<u64>) {
    let (sources, medium, has_campaigns) = UTM[channel];
    let draw = SplitMix64::new(0xC4A7_9A16_0000_0000, event.0).next_u64();
    let source = sources[(draw % sources.len() as u64) as usize];
    // A skewed pick: a few campaigns of each channel get most touches.
    let campaign = has_campaigns.then(|| {
        ((draw >> 32) % CAMPAIGNS_PER_CHANNEL) * ((draw >> 40) % CAMPAIGNS_PER_CHANNEL) / CAMPAIGNS_PER_CHANNEL
    });
    (source, medium, campaign)
}

/// SplitMix64: a tiny, portable generator, so the output does not depend on the platform or on
/// the version of `rand` (whose `SmallRng` and `StdRng` promise neither).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream for the given seed and stream number (e.g. a user index).
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut mixer = Self(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self(mixer.next_u64())
    }
}

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        rand::rand_core::impls::fill_bytes_via_next(self, dst);
    }
}

/// Reusable buffers for [`Model::user_events`].
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    in_session: Vec<f64>,
    between: Vec<f64>,
}

/// Draws users' events. Holds only the distributions; all state lives in per-user streams.
#[derive(Debug)]
pub(crate) struct Model {
    seed: u64,
    touches: Zipf<f64>,
    first_channel: WeightedIndex<u32>,
    channel: WeightedIndex<u32>,
    /// Gap between sessions, in seconds.
    session_gap: Exp<f64>,
    /// Short gap from a touch to a conversion in the same session, in seconds.
    quick_conversion_gap: Exp<f64>,
    /// Longer gap from the last touch to a conversion, in seconds.
    slow_conversion_gap: Exp<f64>,
    value: LogNormal<f64>,
}

impl Model {
    /// The model for one seed.
    pub(crate) fn new(seed: u64) -> Self {
        // A lognormal with sigma 0.8 and mean 80: mu = ln 80 - sigma^2 / 2.
        let sigma = 0.8_f64;
        let mu = 80_f64.ln() - sigma * sigma / 2.0;
        Self {
            seed,
            touches: Zipf::new(MAX_TOUCHES, TOUCHES_ZIPF_EXPONENT).expect("valid Zipf law"),
            first_channel: WeightedIndex::new(FIRST_TOUCH_WEIGHTS).expect("valid weights"),
            channel: WeightedIndex::new(CHANNEL_WEIGHTS).expect("valid weights"),
            session_gap: Exp::new(1.0 / (2.5 * f64::from(DAY_SECS))).expect("valid rate"),
            quick_conversion_gap: Exp::new(1.0 / 1800.0).expect("valid rate"),
            slow_conversion_gap: Exp::new(1.0 / (1.5 * f64::from(DAY_SECS))).expect("valid rate"),
            value: LogNormal::new(mu, sigma).expect("valid lognormal"),
        }
    }

    /// Appends the events of user `user` to `out`, in no particular order.
    ///
    /// A user has 1 to 400 touches (truncated Zipf law, mean about 6), spread over sessions:
    /// about a third of the gaps are within a session (seconds to minutes, sometimes zero, so
    /// one user has several events in the same second), the rest are days apart. The journey is
    /// squeezed into the 90-day horizon if needed and placed at a uniform start. Longer journeys
    /// convert more often (about 3% of users overall); the conversion usually follows the last
    /// touch, sometimes an earlier one (leaving a non-converting tail), rarely precedes all
    /// touches; 5% of converters convert a second time later on.
    pub(crate) fn user_events(&self, user: u64, scratch: &mut Scratch, out: &mut Vec<Event>) {
        let mut rng = SplitMix64::new(self.seed, user);
        let n = self.touches.sample(&mut rng) as usize;

        // Offsets of the touches from the first one, in seconds, split into the part spent
        // within sessions and the part spent between sessions.
        let Scratch { in_session, between } = scratch;
        in_session.clear();
        between.clear();
        let (mut within, mut across) = (0.0, 0.0);
        for i in 0..n {
            if i > 0 {
                if rng.random_bool(0.35) {
                    within += if rng.random_bool(0.2) { 0.0 } else { f64::from(rng.random_range(1..900_u32)) };
                } else {
                    across += self.session_gap.sample(&mut rng);
                }
            }
            in_session.push(within);
            between.push(across);
        }
        // Squeeze the gaps between sessions if the journey would not fit in the horizon.
        let max_span = f64::from(HORIZON_SECS - DAY_SECS);
        let scale = if within + across > max_span { (max_span - within).max(0.0) / across } else { 1.0 };
        let span = (within + scale * across).min(max_span);
        let offset = |i: usize| in_session[i] + scale * between[i];
        let start = rng.random_range(0.0..=f64::from(HORIZON_SECS) - span - 1.0);
        let clamp = |t: f64| t.clamp(0.0, f64::from(HORIZON_SECS - 1)) as u32;

        let mut previous = None;
        for i in 0..n {
            let channel = match previous {
                None => self.first_channel.sample(&mut rng),
                Some(prev) if rng.random_bool(0.3) => prev,
                Some(_) => self.channel.sample(&mut rng),
            };
            previous = Some(channel);
            let tie = rng.random_range(0..1 << TIE_BITS);
            out.push(Event::new(clamp(start + offset(i)), tie, user, channel as u8));
        }

        let p_convert = 0.01 + 0.0044 * n.min(50) as f64;
        if !rng.random_bool(p_convert) {
            return;
        }
        // The conversion follows the k-th touch (k = 0: it precedes every touch).
        let k = match rng.random_range(0.0..1.0) {
            x if x < 0.03 => 0,
            x if x < 0.75 => n,
            _ => rng.random_range(1..=n),
        };
        let first = if k == 0 {
            // Before the first touch; in the same second if the journey starts at the horizon.
            let gap = self.conversion_gap(&mut rng);
            if gap <= start { start - gap } else { start }
        } else {
            start + offset(k - 1) + self.conversion_gap(&mut rng)
        };
        // A conversion that would fall after the horizon is not in the export.
        let mut convert_at = |t: f64, rng: &mut SplitMix64| {
            let tie = rng.random_range(0..1 << TIE_BITS);
            if t < f64::from(HORIZON_SECS) {
                out.push(Event::new(t as u32, tie, user, CONVERSION));
            }
        };
        convert_at(first, &mut rng);
        if rng.random_bool(0.05) {
            let k2 = rng.random_range(k..=n);
            let base = if k2 > k { start + offset(k2 - 1) } else { first };
            convert_at(base + self.conversion_gap(&mut rng), &mut rng);
        }
    }

    /// Gap between a touch and the conversion it leads to: 10% in the same second, else minutes
    /// or days, and 3% between 20 and 60 days (often beyond the default 30-day lookback).
    fn conversion_gap(&self, rng: &mut SplitMix64) -> f64 {
        match rng.random_range(0.0..1.0) {
            x if x < 0.1 => 0.0,
            x if x < 0.57 => self.quick_conversion_gap.sample(rng).round(),
            x if x < 0.97 => self.slow_conversion_gap.sample(rng).round(),
            _ => f64::from(rng.random_range(20 * DAY_SECS..60 * DAY_SECS)),
        }
    }

    /// The value of a conversion: lognormal with mean about 80, in cents, drawn from a stream of
    /// its own so that it can be computed when the row is written.
    pub(crate) fn conversion_value(&self, event: Event) -> f64 {
        let mut rng = SplitMix64::new(self.seed ^ 0x5EED_C0FF_EE00_0000, event.0);
        (self.value.sample(&mut rng) * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_fields_round_trip() {
        let e = Event::new(HORIZON_SECS - 1, 15, MAX_USERS - 1, 7);
        assert_eq!((e.ts(), e.user(), e.channel()), (HORIZON_SECS - 1, MAX_USERS - 1, Some(7)));
        let c = Event::new(0, 0, 12_345, CONVERSION);
        assert_eq!((c.ts(), c.user(), c.channel()), (0, 12_345, None));
        assert!(c < e, "events sort by timestamp first");
    }

    #[test]
    fn users_are_deterministic_and_within_the_horizon() {
        let model = Model::new(7);
        let mut scratch = Scratch::default();
        let draw = |scratch: &mut Scratch| {
            let mut events = Vec::new();
            for user in 0..2_000 {
                model.user_events(user, scratch, &mut events);
            }
            events
        };
        let events = draw(&mut scratch);
        assert_eq!(events, draw(&mut scratch));
        assert!(events.iter().all(|e| e.ts() < HORIZON_SECS && e.user() < 2_000));
        let conversions = events.iter().filter(|e| e.channel().is_none()).count();
        assert!((20..200).contains(&conversions), "{conversions} conversions");
        let values: Vec<f64> =
            events.iter().filter(|e| e.channel().is_none()).map(|&e| model.conversion_value(e)).collect();
        assert!(values.iter().all(|v| *v > 0.0 && ((v * 100.0).round() - v * 100.0).abs() < 1e-6));
    }
}
