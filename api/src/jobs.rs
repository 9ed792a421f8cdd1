//! Reading and cancelling jobs: list, get, cancel, timeline.

use axum::Json;
use axum::extract::{Path, State};
use mta_platform::ids::JobId;
use mta_platform::job::{JobRecord, Timeline};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Auth, Caller, Read, Submit};
use crate::error::{ApiCode, ApiError, AppQuery, ErrorBody};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// `GET /v1/jobs`: the tenant's jobs, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "The tenant's jobs, newest first", body = JobList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 422, description = "`limit` out of range", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let jobs = state.ledger.list_jobs(&caller.tenant, limit).await?;
    Ok(Json(JobList { jobs }))
}

/// The caller's job `id`: a malformed id, a missing job and another tenant's job are all
/// the same 404.
pub(crate) async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::not_found("job"))?;
    state.ledger.tenant_job(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found("job"))
}

/// One job: state, stage, progress, error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    Ok(Json(find(&state, &caller, &id).await?))
}

/// `DELETE /v1/jobs/{id}`: queued units become no-ops, running ones stop between blocks.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled", body = JobRecord),
        (status = 403, description = "The key may not cancel (role `read`)", body = ErrorBody),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
        (status = 409, description = "The job already ended", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let job = find(&state, &caller, &id).await?;
    if !state.ledger.cancel(&job.id).await? {
        return Err(ApiError::new(ApiCode::JobFinished, format!("the job already ended ({})", job.state.as_str())));
    }
    state.audit.record(caller.event("job.cancelled", job.id)).await;
    Ok(Json(find(&state, &caller, &id).await?))
}

/// `GET /v1/jobs/{id}/timeline`: which worker started and ended which unit, when (the latest
/// entries), and each stage's span over all of them.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/timeline",
    operation_id = "get_job_timeline",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Task starts and ends, and each stage's span", body = Timeline),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
    )
)]
pub async fn timeline(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    let job = find(&state, &caller, &id).await?;
    Ok(Json(state.ledger.timeline(&job.id).await?))
}

/// `GET /v1/jobs` body.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobRecord>,
}
