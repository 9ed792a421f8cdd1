//! A succeeded job's outputs: the result (JSON, or a tidy CSV table) and the per-journey
//! credits export.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mta_core::result::Table;
use mta_platform::job::{JobRecord, JobState};
use mta_platform::results::{JobResult, stored_result};
use mta_platform::storage::keys;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::auth::{Auth, Read};
use crate::error::{ApiCode, ApiError, AppQuery, ErrorBody};
use crate::jobs::find;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
    /// With `format=csv`: `channels` (default: one row per model and channel), `periods` (one
    /// row per period, model and channel; the job's `period` option), `segments` (one row per
    /// segment, model and channel, the first column named by the job's `segment_by`, or
    /// `conversion_type`; with `period`, `segment_periods`; with a breakdown, `segment_breakdown`),
    /// a journey report:
    /// `path_length`, `time_lag`, `positions`, `paths`, `transitions` (the `markov` model's),
    /// `windows` (one row per model, channel and lookback window; `lookback_days` given as a
    /// list), `unmatched_cost` (a job with a cost table: the cost of channels no journey
    /// mentions), `markov_pairs` (the job's `markov_pair_effects`), `intervals` (the job's
    /// `intervals`: one row per model and channel; `period_intervals`, `segment_intervals`,
    /// `segment_period_intervals` and `window_intervals` the same per part, its label first;
    /// `breakdown_intervals` with a breakdown: each breakdown row's figures and their bounds,
    /// `period_breakdown_intervals` and `segment_breakdown_intervals` the same per period and
    /// per segment, its label first); or with the job's `breakdown` option, `breakdown` (one row per model, channel and breakdown values),
    /// `period_breakdown` (the same per period), `breakdown_positions` (each channel × breakdown
    /// values' touch positions in converting journeys) and `breakdown_paths` (the top paths of
    /// channel × breakdown values). With a cost table, `channels` and `periods`
    /// end with `cost,cpa,roas`. Each journey report per part: `period_`, `segment_`,
    /// `segment_period_` or `window_` then the report's name (`period_paths`: the `paths` table
    /// of every period, a `period` column first; the segment's column, `period` or
    /// `lookback_days` for the others).
    #[param(
        pattern = "^(channels|periods|segments|segment_periods|segment_breakdown|path_length|time_lag|positions|breakdown|period_breakdown|breakdown_positions|breakdown_paths|paths|transitions|windows|unmatched_cost|markov_pairs|intervals|breakdown_intervals|period_breakdown_intervals|segment_breakdown_intervals|(period|segment|segment_period|window)_(intervals|path_length|time_lag|positions|paths|transitions|breakdown_positions|breakdown_paths))$"
    )]
    table: Option<String>,
}

fn require_success(job: &JobRecord) -> Result<(), ApiError> {
    match job.state {
        JobState::Succeeded => Ok(()),
        JobState::Failed => Err(ApiError::new(ApiCode::JobFailed, "the job failed; see its `error`")),
        JobState::Cancelled => Err(ApiError::new(ApiCode::JobCancelled, "the job was cancelled; it has no result")),
        state => Err(ApiError::new(
            ApiCode::ResultNotReady,
            format!("the job is {}; poll GET /v1/jobs/{} until it succeeds", state.as_str(), job.id),
        )),
    }
}

/// `GET /v1/jobs/{id}/result` (`?format=csv` for a tidy table).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/result",
    operation_id = "get_job_result",
    tag = "results",
    params(("id" = String, Path, description = "Job id"), ResultQuery),
    responses(
        (status = 200, description = "The result (docs/user-guide.md, Results), or a tidy CSV table (`table`)", content(
            (JobResult = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown or repeated query parameter", body = ErrorBody),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (yet)", body = ErrorBody),
        (status = 422, description = "Unknown format", body = ErrorBody),
    )
)]
pub async fn result(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<ResultQuery>,
) -> Result<Response, ApiError> {
    let job = find(&state, &caller, &id).await?;
    require_success(&job)?;
    let result =
        stored_result(&state.ledger, &state.storage, &job).await?.ok_or_else(|| ApiError::not_found("result"))?;
    state.audit.record(caller.event("result.downloaded", job.id)).await;
    let table: Option<Table> = query.table.as_deref().map(str::parse).transpose()?;
    match query.format.as_deref() {
        // A job answered from the cache serves its source's result under its own id.
        None | Some("json") if table.is_none() => Ok(Json(JobResult { job_id: job.id, result }).into_response()),
        None | Some("json") => Err(ApiError::field("table", "applies to format=csv only")),
        Some("csv") => {
            let csv = table.unwrap_or(Table::Channels).csv(&result);
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
        }
        Some(other) => Err(ApiError::field("format", format!("`{other}` is not json or csv"))),
    }
}

/// `GET /v1/jobs/{id}/credits`: streams the Parquet export.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/credits",
    operation_id = "get_job_credits",
    tag = "results",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "One row per converting journey, channel and model", body = Vec<u8>,
            content_type = "application/vnd.apache.parquet"),
        (status = 404, description = "No such job in this tenant, or it did not ask for credits", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (yet)", body = ErrorBody),
    )
)]
pub async fn credits(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = find(&state, &caller, &id).await?;
    if !job.spec.export_credits {
        return Err(ApiError::new(
            ApiCode::CreditsNotRequested,
            "this job did not ask for credits; submit with \"export_credits\": true",
        ));
    }
    require_success(&job)?;
    let (size, stream) = state
        .storage
        .get_stream(&keys::credits(&job.tenant, &job.result_owner()))
        .await?
        .ok_or_else(|| ApiError::not_found("credits"))?;
    state.audit.record(caller.event("credits.downloaded", job.id)).await;
    let headers = [
        (header::CONTENT_TYPE, "application/vnd.apache.parquet".to_owned()),
        (header::CONTENT_LENGTH, size.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"credits-{}.parquet\"", job.id)),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}
