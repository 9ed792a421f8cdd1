//! Attribution options: which models run and the journey and model parameters
//! (docs/user-guide.md, "Journeys" and "Models"), validated once into [`Options`] before any row is read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::channel_rules::{AppliedChannelRules, ChannelRules};
use crate::error::{AttributionError, quoted};
use crate::intervals::{Intervals, IntervalsSpec};
use crate::period::{Period, TimeZone};

/// Microseconds in one day: timestamps are carried as UTC microseconds.
pub const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// Whether rows are single events or pre-aggregated paths.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Events,
    Paths,
}

impl InputKind {
    /// The kind as it appears in job specs and results.
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Events => "events",
            InputKind::Paths => "paths",
        }
    }
}

impl FromStr for InputKind {
    type Err = AttributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "events" => Ok(InputKind::Events),
            "paths" => Ok(InputKind::Paths),
            other => Err(AttributionError::option("kind", format!("{} is not `events` or `paths`", quoted(other)))),
        }
    }
}

/// Every model of docs/user-guide.md, "Models". The order here is the order of results.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelId {
    FirstTouch,
    LastTouch,
    LastNonDirect,
    Linear,
    PositionBased,
    JShaped,
    InverseJ,
    TimeDecay,
    Participation,
    Markov,
    Shapley,
    ShaoLi,
}

impl ModelId {
    pub const ALL: [ModelId; 12] = [
        ModelId::FirstTouch,
        ModelId::LastTouch,
        ModelId::LastNonDirect,
        ModelId::Linear,
        ModelId::PositionBased,
        ModelId::JShaped,
        ModelId::InverseJ,
        ModelId::TimeDecay,
        ModelId::Participation,
        ModelId::Markov,
        ModelId::Shapley,
        ModelId::ShaoLi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelId::FirstTouch => "first_touch",
            ModelId::LastTouch => "last_touch",
            ModelId::LastNonDirect => "last_non_direct",
            ModelId::Linear => "linear",
            ModelId::PositionBased => "position_based",
            ModelId::JShaped => "j_shaped",
            ModelId::InverseJ => "inverse_j",
            ModelId::TimeDecay => "time_decay",
            ModelId::Participation => "participation",
            ModelId::Markov => "markov",
            ModelId::Shapley => "shapley",
            ModelId::ShaoLi => "shao_li",
        }
    }

    /// Models whose credit is a per-touch weighting of each journey, summed per channel
    /// (`markov` and `shao_li` are fitted to all journeys at once instead).
    pub fn is_rule_based(self) -> bool {
        !matches!(self, ModelId::Markov | ModelId::ShaoLi)
    }

    /// Time decay needs touch timestamps, which path-level rows do not have.
    pub fn applies_to(self, kind: InputKind) -> bool {
        !(self == ModelId::TimeDecay && kind == InputKind::Paths)
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelId {
    type Err = AttributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModelId::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = ModelId::ALL.iter().map(|m| m.as_str()).collect();
            AttributionError::option(
                "models",
                format!("unknown model {} (known: {}, or `all`)", quoted(s), known.join(", ")),
            )
        })
    }
}

/// The Markov chain's order: fixed (1 to 4), or `auto`, chosen by the data from orders
/// 1 to 4 (docs/user-guide.md, "Choosing the Markov order"). Written as a number or `"auto"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MarkovOrderWire", into = "MarkovOrderWire")]
pub enum MarkovOrder {
    Fixed(u8),
    Auto,
}

impl MarkovOrder {
    /// The orders `auto` chooses from.
    pub const CANDIDATES: std::ops::RangeInclusive<u8> = 1..=4;

    /// The fixed order, or `None` for `auto`.
    pub fn fixed(self) -> Option<u8> {
        match self {
            MarkovOrder::Fixed(order) => Some(order),
            MarkovOrder::Auto => None,
        }
    }
}

impl From<u8> for MarkovOrder {
    fn from(order: u8) -> Self {
        MarkovOrder::Fixed(order)
    }
}

impl fmt::Display for MarkovOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkovOrder::Fixed(order) => write!(f, "{order}"),
            MarkovOrder::Auto => f.write_str("auto"),
        }
    }
}

impl FromStr for MarkovOrder {
    type Err = AttributionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(MarkovOrder::Auto),
            other => other.parse::<u8>().map(MarkovOrder::Fixed).map_err(|_| {
                AttributionError::option("markov_order", format!("{} is not 1 to 4 or `auto`", quoted(other)))
            }),
        }
    }
}

/// [`MarkovOrder`] as JSON: a number, or the string `auto`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum MarkovOrderWire {
    Order(u8),
    Named(String),
}

impl TryFrom<MarkovOrderWire> for MarkovOrder {
    type Error = String;
    fn try_from(wire: MarkovOrderWire) -> Result<Self, Self::Error> {
        match wire {
            MarkovOrderWire::Order(order) => Ok(MarkovOrder::Fixed(order)),
            MarkovOrderWire::Named(name) if name == "auto" => Ok(MarkovOrder::Auto),
            MarkovOrderWire::Named(_) => Err("expected an order from 1 to 4 or \"auto\"".to_owned()),
        }
    }
}

impl From<MarkovOrder> for MarkovOrderWire {
    fn from(order: MarkovOrder) -> Self {
        match order {
            MarkovOrder::Fixed(order) => MarkovOrderWire::Order(order),
            MarkovOrder::Auto => MarkovOrderWire::Named("auto".to_owned()),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for MarkovOrder {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).maximum(Some(4)))
            .item(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["auto"])))
            .description(Some("The Markov chain's order, 1 to 4, or `auto` (chosen by held-out fit)"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for MarkovOrder {}

/// First / middle / last weights of the position-based family.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PositionWeights {
    pub first: f64,
    pub middle: f64,
    pub last: f64,
}

impl PositionWeights {
    pub const U_SHAPED: PositionWeights = PositionWeights { first: 0.4, middle: 0.2, last: 0.4 };
    pub const J_SHAPED: PositionWeights = PositionWeights { first: 0.2, middle: 0.2, last: 0.6 };
    pub const INVERSE_J: PositionWeights = PositionWeights { first: 0.6, middle: 0.2, last: 0.2 };

    /// Parses `F,M,L`; the weights are normalised to sum to 1 when options are validated.
    pub fn parse(s: &str) -> Result<Self, AttributionError> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let parsed: Result<Vec<f64>, _> = parts.iter().map(|p| p.parse::<f64>()).collect();
        match parsed.as_deref() {
            Ok([first, middle, last]) => Ok(PositionWeights { first: *first, middle: *middle, last: *last }),
            _ => {
                Err(AttributionError::option("position_weights", format!("{} is not three numbers `F,M,L`", quoted(s))))
            }
        }
    }
}

/// Options as the user gives them (a job spec or the command line); `None` means default.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsSpec {
    /// Model ids, or absent / `["all"]` for every model that applies to the input kind.
    pub models: Option<Vec<String>>,
    /// 1 to 4, or `auto` (docs/user-guide.md, "Choosing the Markov order"); default 1.
    pub markov_order: Option<MarkovOrder>,
    /// Also report what the conversion probability loses when both channels of a pair are
    /// removed, for the pairs of the top channels by removal effect (`markov` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markov_pair_effects: Option<bool>,
    /// Days before each conversion whose touches count (0 = unlimited; default 30); a list
    /// (`[7, 14, 30, 90]`, at most 8) compares the windows in one pass: `windows` and
    /// `window_ranks` in the result, the first window's figures at its top level. With
    /// `conversion_types`, an object of a window per type (`{"purchase": 30, "sign_up": 7}`;
    /// types not named, and the whole, get 30).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<LookbackDays>))]
    pub lookback_days: Option<LookbackDays>,
    pub half_life_days: Option<f64>,
    pub position_weights: Option<PositionWeights>,
    pub direct_channels: Option<Vec<String>>,
    pub conversion_row_is_touch: Option<bool>,
    pub max_journey_touches: Option<u32>,
    /// Rules naming each touch's channel from its source, medium, campaign and referrer:
    /// `"ga4"` or the rules inline (docs/channel-rules.md). Event-level input only; they win
    /// over a channel column. Absent: the channel column, else `ga4` when the file has
    /// source / medium columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::channel_rules::schema::ChannelRulesSpec>))]
    pub channel_rules: Option<ChannelRules>,
    /// Credit per `day`, `week` or `month` of the conversions' dates, in `periods`.
    pub period: Option<Period>,
    /// The IANA time zone of the periods' dates (default `UTC`).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "Europe/Berlin"))]
    pub timezone: Option<TimeZone>,
    /// Break each channel's credit down by the values of up to two touch columns (`campaign`,
    /// an ad group, a creative...; a touch column by its aliases, any other by its name or
    /// dotted path), in each model's `breakdown`. Event-level input only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = json!(["campaign"])))]
    pub breakdown: Option<Vec<String>>,
    /// One complete attribution per value of this column (`country`, a plan, a device...;
    /// any column by its name or dotted path), in `segments`: a journey counts in the
    /// segment of its last row (its conversion row; a null journey's last touch); with `period`,
    /// each segment has its periods. Event-level input only; not with several lookback windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "country"))]
    pub segment_by: Option<String>,
    /// Rows whose event name (an `event_name` / `event_type` / `interaction` column) is one
    /// of these are conversions, and each type is attributed on its own as well, in
    /// `segments` (`{"conversion_type": "purchase"}`): its journeys end at its conversions
    /// only (with `period`, each type has its periods). Event-level input only; at most 16
    /// types; not with `segment_by` or several lookback windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = json!(["purchase", "sign_up"])))]
    pub conversion_types: Option<Vec<String>>,
    /// Converting and non-converting paths listed in `reports.paths` (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub top_paths: Option<u32>,
    /// Distinct paths counted exactly (default 100000, 4 to 1000000); past it the top paths
    /// are estimates within a reported bound (`reports.paths.exact` is false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 4, maximum = 1000000))]
    pub max_report_paths: Option<u32>,
    /// Bootstrap intervals of every model's channel credits and rank probabilities
    /// (`{"replicates": 200, "level": 0.9}`; docs/user-guide.md, "Intervals").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<IntervalsSpec>,
}

/// Validated options with every default filled in; reported back in the result, and stored
/// with a service job once its input kind is known, so later stages read them as they are.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub kind: InputKind,
    pub models: Vec<ModelId>,
    /// A number, or `auto`: the order chosen is the markov model's `order` in the result.
    pub markov_order: MarkovOrder,
    /// Pair removal effects in the markov model's `pairs`.
    #[serde(default)]
    pub markov_pair_effects: bool,
    /// 0 = unlimited. With several windows: the first, whose figures are the result's top level.
    pub lookback_days: f64,
    /// Every window when `lookback_days` was given as a list, in the order listed (absent
    /// when it was one number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookback_windows: Vec<f64>,
    pub half_life_days: f64,
    /// Normalised so the three weights sum to 1.
    pub position_weights: PositionWeights,
    /// Lower-cased.
    pub direct_channels: Vec<String>,
    pub conversion_row_is_touch: bool,
    /// Longer journeys keep their most recent touches only (counted in the summary).
    pub max_journey_touches: u32,
    /// The rules that named the channels from source / medium / campaign; absent when
    /// the file's channel column did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_rules: Option<AppliedChannelRules>,
    /// Credit per period of the conversions' dates in this time zone (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub timezone: TimeZone,
    /// The columns each channel's credit is broken down by, as named (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakdown: Vec<String>,
    /// The column whose values segment the journeys, as named (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_by: Option<String>,
    /// The event names that are conversions, each attributed on its own too (absent: the
    /// conversion column or the event type `conversion` marks conversions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversion_types: Vec<String>,
    /// With `conversion_types`: each type's lookback window in days (0 = unlimited), in the
    /// order of the types; `lookback_days` is the whole's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conversion_lookbacks: Vec<f64>,
    /// Paths listed in each of the reports' top paths.
    #[serde(default = "default_top_paths")]
    pub top_paths: u32,
    /// Distinct paths counted exactly before the top paths become estimates.
    #[serde(default = "default_max_report_paths")]
    pub max_report_paths: u32,
    /// Bootstrap intervals: replicates, level and seed (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
}

fn default_top_paths() -> u32 {
    crate::paths::DEFAULT_TOP_PATHS
}

fn default_max_report_paths() -> u32 {
    crate::paths::DEFAULT_MAX_REPORT_PATHS
}

impl Options {
    pub const DEFAULT_LOOKBACK_DAYS: f64 = 30.0;
    pub const DEFAULT_HALF_LIFE_DAYS: f64 = 7.0;
    pub const DEFAULT_MAX_JOURNEY_TOUCHES: u32 = 10_000;
    /// The most lookback windows one job compares.
    pub const MAX_LOOKBACK_WINDOWS: usize = 8;

    /// Defaults for a kind of input: every applicable model.
    pub fn defaults(kind: InputKind) -> Options {
        OptionsSpec::default().validate(kind).expect("defaults are valid")
    }

    pub fn wants(&self, model: ModelId) -> bool {
        self.models.contains(&model)
    }

    /// The lookback window in microseconds, or `None` when unlimited.
    pub fn lookback_micros(&self) -> Option<i64> {
        window_micros(self.lookback_days)
    }

    /// Each window compared, in microseconds (`None`: unlimited): the first is
    /// `lookback_days`; one window when `lookback_days` was one number.
    pub fn window_lookbacks(&self) -> Vec<Option<i64>> {
        if self.lookback_windows.is_empty() {
            vec![self.lookback_micros()]
        } else {
            self.lookback_windows.iter().map(|&days| window_micros(days)).collect()
        }
    }

    /// True if `channel` (any case, Unicode lower-casing) is one of the direct channels.
    pub fn is_direct(&self, channel: &str) -> bool {
        let channel = channel.trim().to_lowercase();
        self.direct_channels.contains(&channel)
    }
}

/// A lookback window in microseconds, or `None` when unlimited (0 days).
fn window_micros(days: f64) -> Option<i64> {
    (days > 0.0).then(|| (days * MICROS_PER_DAY).round() as i64)
}

/// `lookback_days` as given: one window, or several windows compared in one pass. Written
/// back as it was read (a number stays a number), so a job spec's bytes do not change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LookbackDays {
    One(f64),
    Many(Vec<f64>),
    /// A window per conversion type (`conversion_types`).
    PerType(std::collections::BTreeMap<String, f64>),
}

impl From<f64> for LookbackDays {
    fn from(days: f64) -> Self {
        LookbackDays::One(days)
    }
}

impl LookbackDays {
    /// Parses `30`, `7,14,30,90` or `purchase=30,sign_up=7` (the command line's forms).
    pub fn parse(s: &str) -> Result<Self, AttributionError> {
        let refused = || {
            AttributionError::option(
                "lookback_days",
                format!("{} is not a number of days, a comma-separated list of them, or type=days pairs", quoted(s)),
            )
        };
        if s.contains('=') {
            let mut windows = std::collections::BTreeMap::new();
            for part in s.split(',') {
                let (name, days) = part.split_once('=').ok_or_else(refused)?;
                let days = days.trim().parse::<f64>().map_err(|_| refused())?;
                if windows.insert(name.trim().to_owned(), days).is_some() || windows.len() > MAX_CONVERSION_TYPES {
                    return Err(refused());
                }
            }
            return Ok(LookbackDays::PerType(windows));
        }
        if !s.contains(',') {
            return s.trim().parse::<f64>().map(LookbackDays::One).map_err(|_| refused());
        }
        let mut days = Vec::new();
        for part in s.split(',') {
            if days.len() == Options::MAX_LOOKBACK_WINDOWS {
                return Err(too_many_windows());
            }
            days.push(part.trim().parse::<f64>().map_err(|_| refused())?);
        }
        Ok(LookbackDays::Many(days))
    }
}

fn too_many_windows() -> AttributionError {
    AttributionError::option(
        "lookback_days",
        format!("compare at most {} windows in one job", Options::MAX_LOOKBACK_WINDOWS),
    )
}

impl<'de> Deserialize<'de> for LookbackDays {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DaysVisitor;
        impl<'de> serde::de::Visitor<'de> for DaysVisitor {
            type Value = LookbackDays;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a number of days, a list of at most {} of them, or an object of days per conversion type",
                    Options::MAX_LOOKBACK_WINDOWS
                )
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(LookbackDays::One(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(LookbackDays::One(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LookbackDays::One(v as f64))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut windows = std::collections::BTreeMap::new();
                while let Some((name, days)) = map.next_entry::<String, f64>()? {
                    if windows.len() == MAX_CONVERSION_TYPES {
                        return Err(serde::de::Error::custom(format!(
                            "at most {MAX_CONVERSION_TYPES} conversion types have a window"
                        )));
                    }
                    windows.insert(name, days);
                }
                Ok(LookbackDays::PerType(windows))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut days = Vec::new();
                while let Some(day) = seq.next_element::<f64>()? {
                    if days.len() == Options::MAX_LOOKBACK_WINDOWS {
                        return Err(serde::de::Error::custom(too_many_windows().message));
                    }
                    days.push(day);
                }
                Ok(LookbackDays::Many(days))
            }
        }
        deserializer.deserialize_any(DaysVisitor)
    }
}

impl OptionsSpec {
    /// Everything that can be checked before reading the input, whose kind may not be known
    /// yet: with the kind unknown, options that fit either kind pass (`time_decay` fits
    /// events only), and an unknown model fits neither. [`OptionsSpec::validate`] runs again
    /// once the kind is known.
    pub fn check(&self, kind: Option<InputKind>) -> Result<(), AttributionError> {
        match kind {
            Some(kind) => self.validate(kind).map(drop),
            None => {
                self.validate(InputKind::Events).or_else(|e| self.validate(InputKind::Paths).map_err(|_| e)).map(drop)
            }
        }
    }

    /// Checks every field and fills defaults; the error names the first bad field.
    pub fn validate(&self, kind: InputKind) -> Result<Options, AttributionError> {
        let models = resolve_models(self.models.as_deref(), kind)?;
        let markov_order = self.markov_order.unwrap_or(MarkovOrder::Fixed(1));
        if let MarkovOrder::Fixed(order) = markov_order
            && !MarkovOrder::CANDIDATES.contains(&order)
        {
            return Err(AttributionError::option(
                "markov_order",
                format!("{order} is not between 1 and 4 (or `auto`)"),
            ));
        }
        let markov_pair_effects = self.markov_pair_effects.unwrap_or(false);
        if markov_pair_effects && !models.contains(&ModelId::Markov) {
            return Err(AttributionError::option("markov_pair_effects", "applies only when the `markov` model runs"));
        }
        let lookback_windows = match &self.lookback_days {
            Some(LookbackDays::Many(days)) => check_windows(days, kind, self.period.is_some())?,
            _ => Vec::new(),
        };
        let conversion_types = self.validate_conversion_types(kind, lookback_windows.len())?;
        let conversion_lookbacks = match &self.lookback_days {
            Some(LookbackDays::PerType(windows)) => type_windows(windows, &conversion_types)?,
            _ => Vec::new(),
        };
        let lookback_days = match &self.lookback_days {
            None | Some(LookbackDays::PerType(_)) => Options::DEFAULT_LOOKBACK_DAYS,
            Some(LookbackDays::One(days)) => *days,
            Some(LookbackDays::Many(_)) => lookback_windows[0],
        };
        if !lookback_days.is_finite() || lookback_days < 0.0 {
            return Err(AttributionError::option("lookback_days", "must be a number >= 0 (0 = unlimited)"));
        }
        let half_life_days = self.half_life_days.unwrap_or(Options::DEFAULT_HALF_LIFE_DAYS);
        if !half_life_days.is_finite() || half_life_days <= 0.0 {
            return Err(AttributionError::option("half_life_days", "must be a number > 0"));
        }
        let position_weights = normalise_weights(self.position_weights.unwrap_or(PositionWeights::U_SHAPED))?;
        let direct_channels = self
            .direct_channels
            .clone()
            .unwrap_or_else(|| vec!["direct".to_owned()])
            .into_iter()
            .map(|c| c.trim().to_lowercase())
            .collect();
        let max_journey_touches = self.max_journey_touches.unwrap_or(Options::DEFAULT_MAX_JOURNEY_TOUCHES);
        if max_journey_touches == 0 {
            return Err(AttributionError::option("max_journey_touches", "must be at least 1"));
        }
        if kind == InputKind::Paths && self.channel_rules.is_some() {
            return Err(AttributionError::option(
                "channel_rules",
                "channel rules read the source and medium of event-level rows; path-level input names its channels",
            ));
        }
        if self.period.is_some() && kind == InputKind::Paths {
            return Err(AttributionError::option(
                "period",
                "needs event rows with timestamps; path rows have no dates",
            ));
        }
        if self.timezone.is_some() && self.period.is_none() {
            return Err(AttributionError::option("timezone", "applies only with `period`"));
        }
        let breakdown = validate_breakdown(self.breakdown.as_deref().unwrap_or_default(), kind)?;
        let segment_by = self.validate_segment_by(kind, lookback_windows.len())?;
        use crate::paths::{MAX_MAX_REPORT_PATHS, MAX_TOP_PATHS, MIN_MAX_REPORT_PATHS};
        let top_paths = self.top_paths.unwrap_or(crate::paths::DEFAULT_TOP_PATHS);
        if !(1..=MAX_TOP_PATHS).contains(&top_paths) {
            return Err(AttributionError::option(
                "top_paths",
                format!("{top_paths} is not between 1 and {MAX_TOP_PATHS}"),
            ));
        }
        let max_report_paths = self.max_report_paths.unwrap_or(crate::paths::DEFAULT_MAX_REPORT_PATHS);
        if !(MIN_MAX_REPORT_PATHS..=MAX_MAX_REPORT_PATHS).contains(&max_report_paths) {
            return Err(AttributionError::option(
                "max_report_paths",
                format!("{max_report_paths} is not between {MIN_MAX_REPORT_PATHS} and {MAX_MAX_REPORT_PATHS}"),
            ));
        }
        Ok(Options {
            kind,
            models,
            markov_order,
            markov_pair_effects,
            lookback_days,
            lookback_windows,
            half_life_days,
            position_weights,
            direct_channels,
            conversion_row_is_touch: self.conversion_row_is_touch.unwrap_or(false),
            max_journey_touches,
            channel_rules: self.channel_rules.as_ref().map(ChannelRules::applied),
            period: self.period,
            timezone: self.timezone.unwrap_or_default(),
            breakdown,
            segment_by,
            conversion_types,
            conversion_lookbacks,
            top_paths,
            max_report_paths,
            intervals: self.intervals.as_ref().map(IntervalsSpec::validate).transpose()?,
        })
    }

    /// The conversion types, trimmed: event input, 1 to 16 distinct names (any case) of at
    /// most 1024 bytes, and neither `segment_by` nor several lookback windows.
    fn validate_conversion_types(&self, kind: InputKind, windows: usize) -> Result<Vec<String>, AttributionError> {
        let Some(names) = &self.conversion_types else { return Ok(Vec::new()) };
        let refuse = |problem: String| Err(AttributionError::option("conversion_types", problem));
        if kind == InputKind::Paths {
            return refuse("needs event rows with an event name; path rows have none".to_owned());
        }
        if names.is_empty() {
            return refuse("name at least one event name".to_owned());
        }
        if names.len() > MAX_CONVERSION_TYPES {
            return refuse(format!("names {} types; at most {MAX_CONVERSION_TYPES} are offered", names.len()));
        }
        if self.segment_by.is_some() {
            return refuse("does not combine with `segment_by` yet: each type is a segment already".to_owned());
        }
        if windows > 1 {
            return refuse("does not combine with several lookback windows; give a window per type instead".to_owned());
        }
        let mut types: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                return refuse("an event name is empty".to_owned());
            }
            if name.len() > MAX_BREAKDOWN_NAME_BYTES {
                return refuse(format!("{} is longer than {MAX_BREAKDOWN_NAME_BYTES} bytes", quoted(name)));
            }
            if types.iter().any(|t| t.eq_ignore_ascii_case(name)) {
                return refuse(format!("{} is named twice", quoted(name)));
            }
            types.push(name.to_owned());
        }
        Ok(types)
    }

    /// The segment column, trimmed: event input, a name of at most 1024 bytes, and not several
    /// lookback windows (each would split every segment again).
    fn validate_segment_by(&self, kind: InputKind, windows: usize) -> Result<Option<String>, AttributionError> {
        let Some(name) = &self.segment_by else { return Ok(None) };
        let refuse = |problem: String| Err(AttributionError::option("segment_by", problem));
        let name = name.trim();
        if kind == InputKind::Paths {
            return refuse(
                "needs event rows, whose last row names a journey's segment; path rows have none".to_owned(),
            );
        }
        if name.is_empty() {
            return refuse("the column name is empty".to_owned());
        }
        if name.len() > MAX_BREAKDOWN_NAME_BYTES {
            return refuse(format!("{} is longer than {MAX_BREAKDOWN_NAME_BYTES} bytes", quoted(name)));
        }
        if RESERVED_BREAKDOWN_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return refuse(format!(
                "{} cannot be the segment column (the segments table's other columns are {})",
                quoted(name),
                RESERVED_BREAKDOWN_NAMES.join(", ")
            ));
        }
        if windows > 1 {
            return refuse("does not combine with several lookback windows yet; give one window".to_owned());
        }
        Ok(Some(name.to_owned()))
    }
}

/// The most conversion types a job may name: each is a complete attribution of its own.
pub const MAX_CONVERSION_TYPES: usize = 16;

/// Each conversion type's window from `type=days` pairs (30 for a type not named): every
/// name one of the types (any case), every window a number >= 0.
fn type_windows(
    windows: &std::collections::BTreeMap<String, f64>,
    types: &[String],
) -> Result<Vec<f64>, AttributionError> {
    let refuse = |problem: String| Err(AttributionError::option("lookback_days", problem));
    if types.is_empty() {
        return refuse("a window per type (`purchase=30`) needs `conversion_types`".to_owned());
    }
    for (name, &days) in windows {
        if !types.iter().any(|t| t.eq_ignore_ascii_case(name.trim())) {
            return refuse(format!("{} is not one of the conversion types ({})", quoted(name), types.join(", ")));
        }
        if !days.is_finite() || days < 0.0 {
            return refuse(format!("the window of {} must be a number >= 0 (0 = unlimited)", quoted(name)));
        }
    }
    let window_of = |name: &str| windows.iter().find(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, &d)| d);
    Ok(types.iter().map(|t| window_of(t).unwrap_or(Options::DEFAULT_LOOKBACK_DAYS)).collect())
}

/// The most breakdown columns a job may name.
pub const MAX_BREAKDOWN_LEVELS: usize = 2;
/// Longest breakdown column name, in bytes (as for a column mapping's names).
const MAX_BREAKDOWN_NAME_BYTES: usize = 1024;

/// Names a breakdown column may not have: they are the other fields of its rows and tables
/// (credit, cost and interval rows, position rows, the label of a window's tables).
const RESERVED_BREAKDOWN_NAMES: [&str; 15] = [
    "channel",
    "conversions",
    "value",
    "model",
    "period",
    "share",
    "cost",
    "cpa",
    "roas",
    "interval",
    "only",
    "first",
    "middle",
    "last",
    "lookback_days",
];

/// The breakdown columns, trimmed: at most two, distinct, none of the reserved names.
fn validate_breakdown(names: &[String], kind: InputKind) -> Result<Vec<String>, AttributionError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let refuse = |problem: String| Err(AttributionError::option("breakdown", problem));
    if kind == InputKind::Paths {
        return refuse("needs event rows, whose touches carry the columns; path rows name only channels".to_owned());
    }
    if names.len() > MAX_BREAKDOWN_LEVELS {
        return refuse(format!("names {} columns; at most {MAX_BREAKDOWN_LEVELS} levels are offered", names.len()));
    }
    let mut columns: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let name = name.trim();
        if name.is_empty() {
            return refuse("a column name is empty".to_owned());
        }
        if name.len() > MAX_BREAKDOWN_NAME_BYTES {
            return refuse(format!("{} is longer than {MAX_BREAKDOWN_NAME_BYTES} bytes", quoted(name)));
        }
        if RESERVED_BREAKDOWN_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return refuse(format!(
                "{} cannot be a breakdown column (credit is already per channel; the rows' own fields are {})",
                quoted(name),
                RESERVED_BREAKDOWN_NAMES.join(", ")
            ));
        }
        if columns.iter().any(|c| c.eq_ignore_ascii_case(name)) {
            return refuse(format!("{} is named twice", quoted(name)));
        }
        columns.push(name.to_owned());
    }
    Ok(columns)
}

/// The windows of a list of lookbacks: 1 to 8 distinct numbers >= 0, on event input without `period`.
fn check_windows(days: &[f64], kind: InputKind, period: bool) -> Result<Vec<f64>, AttributionError> {
    let refused = |problem: String| Err(AttributionError::option("lookback_days", problem));
    if days.is_empty() {
        return refused("name at least one window".to_owned());
    }
    if days.len() > Options::MAX_LOOKBACK_WINDOWS {
        return Err(too_many_windows());
    }
    if kind == InputKind::Paths {
        return refused("comparing windows needs event rows with timestamps; path rows have no times".to_owned());
    }
    if period && days.len() > 1 {
        return refused(
            "comparing windows does not combine with `period`; give one window with a period, or drop `period`"
                .to_owned(),
        );
    }
    for (i, &day) in days.iter().enumerate() {
        if !day.is_finite() || day < 0.0 {
            return refused(format!("window {} must be a number >= 0 (0 = unlimited)", i + 1));
        }
        if days[..i].contains(&day) {
            return refused(format!("the window of {day} days is listed twice"));
        }
    }
    Ok(days.to_vec())
}

fn resolve_models(requested: Option<&[String]>, kind: InputKind) -> Result<Vec<ModelId>, AttributionError> {
    let all_applicable = || ModelId::ALL.into_iter().filter(|m| m.applies_to(kind)).collect::<Vec<_>>();
    let Some(requested) = requested else { return Ok(all_applicable()) };
    if requested.is_empty() {
        return Err(AttributionError::option("models", "name at least one model"));
    }
    let mut models = Vec::new();
    for name in requested {
        let name = name.trim();
        if name == "all" {
            models.extend(all_applicable());
            continue;
        }
        let model: ModelId = name.parse()?;
        if !model.applies_to(kind) {
            return Err(AttributionError::option(
                "models",
                format!("`{model}` needs touch timestamps and is not offered on path-level input"),
            ));
        }
        models.push(model);
    }
    models.sort();
    models.dedup();
    Ok(models)
}

/// The weights scaled to sum to 1. They are first divided by the largest, so weights
/// near the ends of the float range (1e308, 1e-320) normalise like any others instead of
/// their sum overflowing to infinity (every weight 0) or underflowing.
fn normalise_weights(w: PositionWeights) -> Result<PositionWeights, AttributionError> {
    let parts = [w.first, w.middle, w.last];
    if parts.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return Err(AttributionError::option("position_weights", "weights must be finite numbers >= 0"));
    }
    let largest = parts.iter().copied().fold(0.0, f64::max);
    if largest <= 0.0 {
        return Err(AttributionError::option("position_weights", "at least one weight must be > 0"));
    }
    let scaled = parts.map(|x| x / largest);
    let sum: f64 = scaled.iter().sum();
    let [first, middle, last] = scaled.map(|x| x / sum);
    let normalised = PositionWeights { first, middle, last };
    // Cannot fail after scaling (the sum lies in [1, 3]); kept so no weights that fail to
    // normalise to a finite, positive whole ever reach a model.
    let total = first + middle + last;
    if !(total.is_finite() && (total - 1.0).abs() < 1e-9) {
        return Err(AttributionError::option("position_weights", "the weights do not normalise to a sum of 1"));
    }
    Ok(normalised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_offer_every_model_that_applies() {
        assert_eq!(Options::defaults(InputKind::Events).models.len(), 12);
        let paths = Options::defaults(InputKind::Paths);
        assert!(!paths.wants(ModelId::TimeDecay));
        assert!(paths.wants(ModelId::ShaoLi), "path rows count journeys too");
        assert_eq!(paths.models.len(), 11);
    }

    #[test]
    fn time_decay_on_paths_is_refused_naming_the_field() {
        let spec = OptionsSpec { models: Some(vec!["time_decay".into()]), ..Default::default() };
        let err = spec.validate(InputKind::Paths).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("models"));
    }

    #[test]
    fn out_of_range_options_name_their_field() {
        for (spec, field) in [
            (OptionsSpec { markov_order: Some(5.into()), ..Default::default() }, "markov_order"),
            (
                OptionsSpec {
                    markov_pair_effects: Some(true),
                    models: Some(vec!["linear".into()]),
                    ..Default::default()
                },
                "markov_pair_effects",
            ),
            (OptionsSpec { lookback_days: Some((-1.0).into()), ..Default::default() }, "lookback_days"),
            (OptionsSpec { half_life_days: Some(0.0), ..Default::default() }, "half_life_days"),
            (OptionsSpec { models: Some(vec!["nope".into()]), ..Default::default() }, "models"),
            (OptionsSpec { top_paths: Some(0), ..Default::default() }, "top_paths"),
            (OptionsSpec { top_paths: Some(1001), ..Default::default() }, "top_paths"),
            (OptionsSpec { max_report_paths: Some(3), ..Default::default() }, "max_report_paths"),
            (
                OptionsSpec {
                    position_weights: Some(PositionWeights { first: 0.0, middle: 0.0, last: 0.0 }),
                    ..Default::default()
                },
                "position_weights",
            ),
        ] {
            let err = spec.validate(InputKind::Events).unwrap_err();
            assert_eq!(err.details[0].column.as_deref(), Some(field), "{err}");
        }
    }

    #[test]
    fn models_are_checked_even_before_the_kind_is_known() {
        let with = |models: &[&str]| OptionsSpec {
            models: Some(models.iter().map(|m| m.to_string()).collect()),
            ..OptionsSpec::default()
        };
        assert!(with(&["time_decay"]).check(None).is_ok(), "fits events");
        assert!(with(&["time_decay"]).check(Some(InputKind::Paths)).is_err());
        let err = with(&["no_such_model"]).check(None).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("models"));
        let err = OptionsSpec { markov_order: Some(9.into()), ..OptionsSpec::default() }.check(None).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("markov_order"));
    }

    #[test]
    fn channel_rules_are_reported_and_refused_on_path_input() {
        let spec = OptionsSpec { channel_rules: Some(ChannelRules::ga4()), ..Default::default() };
        let applied = spec.validate(InputKind::Events).unwrap().channel_rules.unwrap();
        assert_eq!((applied.rules, applied.name), (28, crate::channel_rules::RuleSetName::Ga4));
        assert!(spec.check(None).is_ok(), "fits events");
        let err = spec.check(Some(InputKind::Paths)).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("channel_rules"));
        assert_eq!(Options::defaults(InputKind::Events).channel_rules, None);
        let json = serde_json::to_value(Options::defaults(InputKind::Events)).unwrap();
        assert!(json.get("channel_rules").is_none(), "absent unless rules named the channels");
    }

    #[test]
    fn breakdown_columns_are_checked_and_reported() {
        let with = |names: &[&str]| OptionsSpec {
            breakdown: Some(names.iter().map(|n| n.to_string()).collect()),
            ..OptionsSpec::default()
        };
        assert_eq!(
            with(&[" campaign ", "ad_group"]).validate(InputKind::Events).unwrap().breakdown,
            ["campaign", "ad_group"]
        );
        for (names, words) in [
            (&["a", "b", "c"][..], "at most 2"),
            (&["campaign", "Campaign"][..], "named twice"),
            (&["channel"][..], "cannot be a breakdown column"),
            (&["Value"][..], "cannot be a breakdown column"),
            (&["First"][..], "cannot be a breakdown column"),
            (&["lookback_days"][..], "cannot be a breakdown column"),
            (&[" "][..], "empty"),
        ] {
            let err = with(names).check(None).unwrap_err();
            assert_eq!(err.details[0].column.as_deref(), Some("breakdown"), "{names:?}");
            assert!(err.message.contains(words), "{names:?}: {}", err.message);
        }
        assert!(with(&["campaign"]).check(None).is_ok(), "fits events");
        assert!(with(&["campaign"]).check(Some(InputKind::Paths)).is_err());
        let json = serde_json::to_value(Options::defaults(InputKind::Events)).unwrap();
        assert!(json.get("breakdown").is_none(), "absent unless asked for");
    }

    #[test]
    fn the_segment_column_is_checked_and_reported() {
        let with = |name: &str| OptionsSpec { segment_by: Some(name.to_owned()), ..OptionsSpec::default() };
        assert_eq!(with(" country ").validate(InputKind::Events).unwrap().segment_by.as_deref(), Some("country"));
        for (spec, words) in [
            (with(" "), "empty"),
            (OptionsSpec { lookback_days: Some(LookbackDays::Many(vec![7.0, 30.0])), ..with("country") }, "window"),
        ] {
            let err = spec.check(None).unwrap_err();
            assert_eq!(err.details[0].column.as_deref(), Some("segment_by"), "{words}");
            assert!(err.message.contains(words), "{words}: {}", err.message);
        }
        assert!(with("country").check(Some(InputKind::Paths)).is_err());
        let json = serde_json::to_value(Options::defaults(InputKind::Events)).unwrap();
        assert!(json.get("segment_by").is_none(), "absent unless asked for");
    }

    #[test]
    fn conversion_types_and_their_windows_are_checked_and_reported() {
        let with = |types: &[&str], lookback: Option<&str>| OptionsSpec {
            conversion_types: Some(types.iter().map(|t| t.to_string()).collect()),
            lookback_days: lookback.map(|l| LookbackDays::parse(l).unwrap()),
            ..OptionsSpec::default()
        };
        let options = with(&[" purchase ", "sign_up"], Some("Purchase=7, sign_up = 0")).validate(InputKind::Events);
        let options = options.unwrap();
        assert_eq!(options.conversion_types, ["purchase", "sign_up"]);
        assert_eq!((options.conversion_lookbacks.as_slice(), options.lookback_days), (&[7.0, 0.0][..], 30.0));
        let options = with(&["purchase", "sign_up"], Some("sign_up=3")).validate(InputKind::Events).unwrap();
        assert_eq!(options.conversion_lookbacks, [30.0, 3.0], "a type not named gets the default");
        let spec: OptionsSpec =
            serde_json::from_str(r#"{"conversion_types": ["purchase"], "lookback_days": {"purchase": 14}}"#).unwrap();
        assert_eq!(spec.validate(InputKind::Events).unwrap().conversion_lookbacks, [14.0]);
        assert_eq!(serde_json::to_value(&spec).unwrap()["lookback_days"], serde_json::json!({"purchase": 14.0}));
        for (spec, field, words) in [
            (with(&[], None), "conversion_types", "at least one"),
            (with(&["a", "A"], None), "conversion_types", "twice"),
            (with(&["a"], Some("b=3")), "lookback_days", "not one of the conversion types"),
            (with(&["a"], Some("a=-1")), "lookback_days", ">= 0"),
            (with(&["a"], Some("7,30")), "conversion_types", "several lookback windows"),
            (
                OptionsSpec { segment_by: Some("country".into()), ..with(&["a"], None) },
                "conversion_types",
                "segment_by",
            ),
            (
                OptionsSpec { lookback_days: Some(LookbackDays::parse("a=3").unwrap()), ..OptionsSpec::default() },
                "lookback_days",
                "needs",
            ),
        ] {
            let err = spec.check(None).unwrap_err();
            assert_eq!(err.details[0].column.as_deref(), Some(field), "{words}: {err}");
            assert!(err.message.contains(words), "{words}: {}", err.message);
        }
        assert!(with(&["a"], None).check(Some(InputKind::Paths)).is_err());
        assert!(LookbackDays::parse("a=3,b").is_err() && LookbackDays::parse("a=x").is_err());
        let json = serde_json::to_value(Options::defaults(InputKind::Events)).unwrap();
        assert!(json.get("conversion_types").is_none() && json.get("conversion_lookbacks").is_none());
    }

    #[test]
    fn markov_order_is_a_number_or_auto_in_json_and_on_the_command_line() {
        let spec: OptionsSpec = serde_json::from_str(r#"{"markov_order": "auto"}"#).unwrap();
        let options = spec.validate(InputKind::Paths).unwrap();
        assert_eq!(options.markov_order, MarkovOrder::Auto);
        assert_eq!(serde_json::to_value(&options).unwrap()["markov_order"], "auto");
        let spec: OptionsSpec = serde_json::from_str(r#"{"markov_order": 3}"#).unwrap();
        assert_eq!(serde_json::to_value(spec.validate(InputKind::Paths).unwrap()).unwrap()["markov_order"], 3);
        assert!(serde_json::from_str::<OptionsSpec>(r#"{"markov_order": "best"}"#).is_err());
        assert_eq!("auto".parse::<MarkovOrder>().unwrap(), MarkovOrder::Auto);
        assert_eq!("2".parse::<MarkovOrder>().unwrap(), MarkovOrder::Fixed(2));
        let err = "two".parse::<MarkovOrder>().unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("markov_order"));
    }

    #[test]
    fn custom_position_weights_are_normalised() {
        let spec =
            OptionsSpec { position_weights: Some(PositionWeights::parse("2,1,1").unwrap()), ..Default::default() };
        let w = spec.validate(InputKind::Events).unwrap().position_weights;
        assert_eq!((w.first, w.middle, w.last), (0.5, 0.25, 0.25));
    }

    #[test]
    fn weights_at_the_ends_of_the_float_range_normalise() {
        for (given, want) in [
            ([1e308, 1e308, 1e308], [1.0 / 3.0; 3]),
            ([f64::MAX, 0.0, f64::MAX], [0.5, 0.0, 0.5]),
            ([1e-320, 0.0, 0.0], [1.0, 0.0, 0.0]),
            ([2.0 * 2e-320, 2e-320, 2e-320], [0.5, 0.25, 0.25]),
        ] {
            let spec = OptionsSpec {
                position_weights: Some(PositionWeights { first: given[0], middle: given[1], last: given[2] }),
                ..Default::default()
            };
            let w = spec.validate(InputKind::Events).unwrap().position_weights;
            for (got, want) in [w.first, w.middle, w.last].into_iter().zip(want) {
                assert!((got - want).abs() < 1e-12, "{given:?}: {w:?}");
            }
        }
    }
}
