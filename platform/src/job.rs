//! The job types, as the ledger stores them and clients see them: [`JobRecord`] with its
//! [`JobState`], [`Stage`] and [`Progress`], the [`UploadRecord`], what a new job holds
//! ([`NewJob`]) and what a fan-in step answers ([`FanIn`]). Pure data: how they are kept
//! in Redis is the business of the ledger (`ledger.rs`).

use mta_core::{AttributionError, InputKind, Options};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{JobId, Tenant, UploadId};
use crate::spec::JobSpec;
use crate::webhook::JobWebhook;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }

    pub(crate) fn parse(s: &str) -> Option<JobState> {
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Splitting,
    Attributing,
    Reducing,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Splitting => "splitting",
            Stage::Attributing => "attributing",
            Stage::Reducing => "reducing",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Stage> {
        [Stage::Splitting, Stage::Attributing, Stage::Reducing].into_iter().find(|stage| stage.as_str() == s)
    }
}

/// A stored upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "upload_id": "3f0c8a52-6d1e-4f7a-9a43-2b8e1c5d7f90", "tenant": "acme", "size_bytes": 613527,
    "sha256": "9b1e5c0f7d4a2e8b6c3f1a0d9e7b5c4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8c", "created_at": "2026-11-25T10:00:00.000Z"
}))]
pub struct UploadRecord {
    pub upload_id: UploadId,
    pub tenant: Tenant,
    pub size_bytes: u64,
    pub sha256: String,
    pub created_at: String,
}

/// A job as clients see it (`GET /v1/jobs/{id}`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobRecord {
    pub id: JobId,
    pub tenant: Tenant,
    /// The id of the request that created the job (in the API's and the workers' logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    pub upload_id: UploadId,
    pub spec: JobSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<InputKind>,
    /// The spec's options resolved for the input's kind by the first split that read a
    /// block; later stages use them as they are.
    #[serde(skip)]
    pub options: Option<Options>,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<AttributionError>,
    /// Set when the result was answered from the cache: the job that computed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_from: Option<JobId>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub cache_key: String,
    #[serde(skip)]
    pub partitions: u32,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Progress {
    pub splits_done: u64,
    pub splits_total: u64,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Input rows read so far.
    pub rows: u64,
}

impl JobRecord {
    /// The job whose stored result and credits this job serves.
    pub fn result_owner(&self) -> JobId {
        self.cached_from.unwrap_or(self.id)
    }
}

/// What every new job record holds, whether it will run or is answered from the cache.
#[derive(Debug, Clone, Copy)]
pub struct NewJob<'a> {
    pub id: JobId,
    pub upload: &'a UploadRecord,
    pub spec: &'a JobSpec,
    /// The request that created it, carried into the workers' logs.
    pub request_id: &'a str,
    pub webhook: Option<&'a JobWebhook>,
}

/// What a fan-in step reports to the task that completed a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanIn {
    /// Other units are still running.
    Waiting,
    /// Every unit is done and this task owns the next step (again, if it is a re-run).
    Complete,
}
