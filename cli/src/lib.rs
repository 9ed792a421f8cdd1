//! The `mta` command line: argument parsing and the local attribution pipeline.
//!
//! `main.rs` only parses arguments and maps outcomes to exit codes; [`local`] runs the
//! pipeline, [`spill`] keeps memory bounded, [`credits_file`] writes the per-journey
//! export, [`table`] renders results for people.

pub mod args;
pub mod credits_file;
pub mod local;
pub mod spill;
pub mod table;
