//! The job types, as the ledger stores them and clients see them: [`JobRecord`] with its
//! [`JobState`], [`Stage`] and [`Progress`], its [`Timeline`], the [`UploadRecord`], what a
//! new job holds ([`NewJob`]) and what a fan-in step answers ([`FanIn`]). Pure data: how
//! they are kept in Redis is the business of the ledger (`ledger.rs`).

use std::collections::BTreeMap;

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
    /// For an object the operator let the tenant import (`POST /v1/uploads/import`): its
    /// key in the store, read in place and never deleted by the service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// A direct upload the client is sending straight to the store: what completing it
/// needs, kept until its part URLs expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectUpload {
    pub upload_id: UploadId,
    pub tenant: Tenant,
    /// The store's id of the multipart upload.
    pub multipart_id: String,
    /// The size the client declared; the completed object must have it.
    pub size_bytes: u64,
    /// Every part has this size but the last.
    pub part_bytes: u64,
    /// When the part URLs stop working (RFC 3339).
    pub expires_at: String,
}

impl DirectUpload {
    /// How many parts the upload has.
    pub fn parts(&self) -> u32 {
        self.size_bytes.div_ceil(self.part_bytes) as u32
    }

    /// The size of part `number` (from 1).
    pub fn part_len(&self, number: u32) -> u64 {
        let start = u64::from(number - 1) * self.part_bytes;
        self.part_bytes.min(self.size_bytes - start)
    }
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

/// A job's timeline (`GET /v1/jobs/{id}/timeline`): its latest task starts and ends, and each
/// stage's span counted over every entry, so a job of thousands of units still shows when
/// its split began once the list has dropped those entries.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Timeline {
    pub job_id: JobId,
    /// The latest entries (at most 1,000), oldest first.
    pub events: Vec<TimelineEvent>,
    /// Entries ever logged for the job: more than `events` holds once the list was cut.
    pub events_total: u64,
    /// Per stage (`split`, `attribute`, `reduce`: a unit's name up to its first `:`).
    pub stages: BTreeMap<String, StageSpan>,
}

/// Which worker started or ended which unit, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEvent {
    /// Milliseconds since the epoch, on the worker's clock.
    pub at_ms: i64,
    /// `start` or `end`.
    pub event: String,
    pub unit: String,
    pub worker: String,
}

/// A stage over all its units' attempts (retries and lost attempts count).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct StageSpan {
    pub units_started: u64,
    pub units_ended: u64,
    /// The earliest start and the latest end, in ms since the epoch (workers' clocks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_start_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_end_ms: Option<i64>,
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
    /// The cost table's upload: kept as long as the job, like its input.
    pub spend_upload: Option<&'a UploadRecord>,
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

/// How often one unit of a job was started and how its earlier attempts went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitStarts {
    /// Starts so far, this one included.
    pub starts: u32,
    /// Since the first start.
    pub since_first: std::time::Duration,
    /// Attempts whose worker went away before they ended (crashed, killed, cut off), and
    /// the last such worker.
    pub lost: u32,
    pub lost_on: Option<String>,
    /// Attempts that ended with an error to retry, and the last such error.
    pub failed: u32,
    pub last_error: Option<String>,
}

impl UnitStarts {
    /// Whether to stop retrying: more than `max_starts` starts, and either `max_starts` of
    /// them failed with an error or the first was at least `give_up_after` ago. Attempts
    /// whose worker went away count only with time: by count alone a fleet that loses
    /// workers often (a healthy task killed along with its worker) would fail jobs, while a
    /// task that crashes every worker still fails once the time has passed. Failures keep
    /// the count: they are retried at once (and apalis drops a task after 25).
    pub fn exhausted(&self, max_starts: u32, give_up_after: std::time::Duration) -> bool {
        self.starts > max_starts && (self.failed >= max_starts || self.since_first >= give_up_after)
    }

    /// Why `unit` was given up, for the job's error.
    pub fn reason(&self, unit: &str) -> String {
        let attempts = self.starts.saturating_sub(1);
        let mut causes = Vec::new();
        if self.lost > 0 {
            let on = self.lost_on.as_deref().map(|w| format!(", the last on worker {w}")).unwrap_or_default();
            causes.push(format!(
                "{} its worker went away while running it (crashed, was killed or lost Redis{on})",
                times(self.lost)
            ));
        }
        if self.failed > 0 {
            let last = self.last_error.as_deref().map(|e| format!(", the last with: {e}")).unwrap_or_default();
            causes.push(format!("{} it failed{last}", times(self.failed)));
        }
        let causes = if causes.is_empty() { String::new() } else { format!(": {}", causes.join("; ")) };
        format!(
            "{unit} of this job was started {} over {} s without finishing{causes}; the job was stopped instead \
             of retrying for ever",
            times(attempts),
            self.since_first.as_secs()
        )
    }
}

fn times(n: u32) -> String {
    match n {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn starts(starts: u32, secs: u64) -> UnitStarts {
        UnitStarts {
            starts,
            since_first: Duration::from_secs(secs),
            lost: 0,
            lost_on: None,
            failed: 0,
            last_error: None,
        }
    }

    #[test]
    fn a_unit_is_given_up_only_past_both_the_count_and_the_time() {
        let window = Duration::from_secs(900);
        assert!(!starts(4, 10).exhausted(3, window), "many quick starts: a churning fleet");
        assert!(!starts(3, 3600).exhausted(3, window), "few starts over a long time");
        assert!(starts(4, 900).exhausted(3, window));
        assert!(starts(4, 0).exhausted(3, Duration::ZERO), "no window: the count alone");
        let failing = UnitStarts { failed: 3, ..starts(4, 10) };
        assert!(failing.exhausted(3, window), "errors keep the count");
        let mixed = UnitStarts { failed: 2, lost: 1, ..starts(4, 10) };
        assert!(!mixed.exhausted(3, window), "a lost worker among them waits for the time");
    }

    #[test]
    fn the_reason_says_how_the_attempts_ended() {
        let mut record = starts(5, 1000);
        record.lost = 3;
        record.lost_on = Some("worker-7".into());
        record.failed = 1;
        record.last_error = Some("store unreachable".into());
        let reason = record.reason("reduce");
        assert!(reason.starts_with("reduce of this job was started 4 times over 1000 s without finishing"), "{reason}");
        assert!(reason.contains("3 times its worker went away") && reason.contains("the last on worker worker-7"));
        assert!(reason.contains("once it failed, the last with: store unreachable"), "{reason}");
    }
}
