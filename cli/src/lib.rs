//! The `mta` command line: argument parsing and the local attribution pipeline.
//!
//! `main.rs` only parses arguments and maps outcomes to exit codes; [`local`] runs the
//! pipeline, [`spill`] keeps memory bounded, [`table`] renders results for people.
//! The per-journey export is written by `mta_platform::credits_file`. [`serve`] runs the
//! whole service in one process (`mta serve`, `mta demo`).

pub mod args;
pub mod client;
pub mod keys;
pub mod local;
pub mod serve;
pub mod spill;
pub mod table;
