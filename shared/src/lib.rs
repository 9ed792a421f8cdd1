//! # mta-core: the attribution engine
//!
//! The pure compute core of the service: it decodes touchpoint files from any reader,
//! builds journeys, applies every attribution model, and produces mergeable partial
//! aggregates and the final result. It performs no network I/O, reads no clock and no
//! environment; the `mta` command, the API and the workers call it.
//!
//! Data flow: [`ingest`] (bytes → [`chunk`]s) → [`journey`] (rows → journeys) →
//! [`partial`] (journeys → additive aggregates, via [`rules`], [`markov`] (its order chosen
//! by [`markov_order`] when asked) and [`shao_li`]) →
//! [`Partial::merge`] → [`Partial::finish`] → [`result`]. [`credits`] exports
//! per-journey credit rows. [`channel_rules`] names channels from source, medium and
//! campaign while rows are read. [`segment`] gives one attribution per value of a column. [`spend`] reads a cost table, joined to a result as
//! cost, CPA and ROAS. [`intervals`] draws the bootstrap replicates' weights and
//! summarises the replicates' results, whose sums are [`exact`] (fixed point).
//! [`row_segment`] stores rows compactly for the local spill and the service's chunk files.

pub mod breakdown;
pub mod channel_rules;
pub mod chunk;
pub mod credits;
pub mod error;
pub mod exact;
pub mod ingest;
pub mod intervals;
pub mod journey;
pub mod markov;
pub mod markov_order;
pub mod options;
pub mod partial;
pub mod paths;
pub mod period;
pub mod positions;
pub mod reports;
pub mod result;
pub mod row_segment;
pub mod rules;
pub mod segment;
pub mod shao_li;
pub mod spend;

pub use channel_rules::ChannelRules;
pub use chunk::{ChannelDict, EventChunk, PathChunk};
pub use error::{AttributionError, ErrorCode, Problem};
pub use options::{InputKind, LookbackDays, MarkovOrder, ModelId, Options, OptionsSpec, PositionWeights};
pub use partial::Partial;
pub use result::AttributionResult;
