//! # mta-platform: what the API and the workers stand on
//!
//! The edges of the service that both processes share, kept out of the pure engine
//! (`mta-core`): the typed [`config`] read from the environment, [`storage`] over
//! object_store (local filesystem or S3), the Redis [`ledger`] that is the source of truth
//! for [`job`]s, uploads, the result cache and idempotency, the [`queue`] seam that carries
//! stage tasks between processes, the [`spec`] of a job, [`webhook`]s, and the
//! [`chunk_file`] (rows in the engine's compact row segments) and [`credits_file`] (Parquet)
//! formats that stages exchange through storage, and the [`retention`] sweep that deletes what expired jobs leave. Who may do what: [`access`] (roles, API keys), [`quota`] (rate and upload
//! limits shared by every API pod) and [`audit`] (the audit log). Watching it: [`health`]
//! and [`metrics`]. At the bottom: [`ids`] (ids and the clock, importing nothing of this
//! crate), [`redis_keys`] (the one naming of the Redis schema) and [`redis_conn`].
//!
//! Data flow: upload (api) → split → attribute chunk → reduce (worker) → result/webhook.

pub mod access;
pub mod audit;
pub mod backends;
pub mod chunk_file;
pub mod config;
pub mod credits_file;
pub mod health;
pub mod ids;
pub mod input;
pub mod job;
pub mod ledger;
pub mod metrics;
pub mod partial_file;
pub mod process;
pub mod queue;
pub mod quota;
pub mod redis_conn;
pub mod redis_keys;
pub mod redis_server;
pub mod results;
pub mod retention;
pub mod run_error;
pub mod spec;
pub mod storage;
pub mod submit;
pub mod webhook;

pub use config::Config;
pub use ids::{JobId, UploadId};
pub use job::{JobState, Stage};
pub use ledger::Ledger;
pub use queue::Queue;
pub use spec::JobSpec;
pub use storage::Storage;
