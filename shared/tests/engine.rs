//! The engine's test suite, one integration test binary for `mta-core`:
//!
//! - `models`: hand-computed credits for every model of docs/user-guide.md, "Models";
//! - `journeys`: the journey rules of docs/user-guide.md, "Journeys" on event chunks;
//! - `properties`: conservation and merge invariance on random inputs;
//! - `intervals`: bootstrap intervals by hand, their coverage on simulated data and limits;
//! - `reports`: hand-computed top paths and transition tables;
//! - `windows`: lookback windows compared in one pass, by hand, merged and refused;
//! - `markov_dense`: the Markov model against an independent dense solver;
//! - `breakdown`: credit by channel × campaign (or any touch column), hand-computed;
//! - `ingest`: decoding edge cases and located errors (docs/user-guide.md, "Input formats" and "Bad input");
//! - `segments`: one attribution per value of a column, by hand;
//! - `spend`: cost tables and cost, CPA and ROAS joined to credits (docs/user-guide.md, "Spend").
//!
//! The modules live in `tests/engine/`; `helpers` holds the shared builders.

#[path = "engine/helpers.rs"]
mod helpers;

#[path = "engine/breakdown.rs"]
mod breakdown;
#[path = "engine/ingest.rs"]
mod ingest;
#[path = "engine/intervals.rs"]
mod intervals;
#[path = "engine/journeys.rs"]
mod journeys;
#[path = "engine/markov_dense.rs"]
mod markov_dense;
#[path = "engine/models.rs"]
mod models;
#[path = "engine/properties.rs"]
mod properties;
#[path = "engine/reports.rs"]
mod reports;
#[path = "engine/segments.rs"]
mod segments;
#[path = "engine/spend.rs"]
mod spend;
#[path = "engine/windows.rs"]
mod windows;
