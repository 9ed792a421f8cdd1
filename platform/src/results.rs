//! A finished job's result as every reader gets it: the engine's [`AttributionResult`],
//! stored once by the reducer without the job's id (so a job answered from the cache serves
//! its source's result as it is), and [`JobResult`], the document the API answers with.

use anyhow::Context;
use mta_core::AttributionResult;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::JobId;
use crate::job::JobRecord;
use crate::ledger::Ledger;
use crate::storage::{Storage, keys};

/// `GET /v1/jobs/{id}/result`: the job's id and the engine's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobResult {
    pub job_id: JobId,
    #[serde(flatten)]
    pub result: AttributionResult,
}

/// A succeeded job's result: from the Redis cache while it lasts, else from object storage;
/// `None` when neither has it. A job answered from the cache reads its source job's result.
pub async fn stored_result(
    ledger: &Ledger,
    storage: &Storage,
    job: &JobRecord,
) -> anyhow::Result<Option<AttributionResult>> {
    let owner = job.result_owner();
    let json = match ledger.cached_result(&owner).await? {
        Some(json) => json.into_bytes().into(),
        None => match storage.get_opt(&keys::result(&job.tenant, &owner)).await? {
            Some(bytes) => bytes,
            None => return Ok(None),
        },
    };
    serde_json::from_slice(&json).map(Some).context("A stored result is unreadable")
}
