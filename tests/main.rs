//! The black-box suite: one test binary that runs the real `mta` binary (and, as the
//! service arrives, the API and workers) against real files. See `support` for helpers.

mod attribute;
mod support;
mod tidy;
