//! The black-box suite: one test binary that runs the real `mta` binary against real
//! files, and the real `mta-api` and `mta-worker` processes against a real redis-server
//! (`service`). See `support` and `service_support` for helpers.

mod attribute;
mod breakdown;
mod channels;
mod client;
mod dashboard;
mod direct;
mod intervals;
mod operations;
mod retention;
mod security;
mod segments;
mod service;
mod service_support;
mod shapes;
mod spend;
mod support;
mod tidy;
mod webhooks;
