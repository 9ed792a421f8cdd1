//! # mta-platform: what the API and the workers stand on
//!
//! The edges of the service that both processes share, kept out of the pure engine
//! (`mta-core`): the typed [`config`] read from the environment, [`storage`] over
//! object_store (local filesystem or S3), the Redis [`ledger`] that is the source of truth
//! for jobs, uploads, the result cache and idempotency, the [`queue`] seam that carries
//! stage tasks between processes, the [`spec`] of a job, and the [`chunk_file`] and
//! [`credits_file`] Parquet formats that stages exchange through storage. Who may do
//! what: [`access`] (tenants, roles, API keys), [`quota`] (rate and upload limits shared
//! by every API pod) and [`audit`] (the audit log). Watching it: [`health`] and [`metrics`].
//!
//! Data flow: upload (api) → split → attribute chunk → reduce (worker) → result/webhook.

pub mod access;
pub mod audit;
pub mod backends;
pub mod chunk_file;
pub mod config;
pub mod credits_file;
pub mod health;
pub mod input;
pub mod ledger;
pub mod metrics;
pub mod process;
pub mod queue;
pub mod quota;
pub mod redis_server;
pub mod results;
pub mod run_error;
pub mod spec;
pub mod storage;
pub mod submit;
pub mod webhook;

pub use config::Config;
pub use ledger::{JobId, JobState, Ledger, Stage, UploadId};
pub use queue::Queue;
pub use spec::JobSpec;
pub use storage::Storage;
