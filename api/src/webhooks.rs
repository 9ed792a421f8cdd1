//! A job's webhook: its delivery record and redelivery.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mta_platform::webhook::Delivery;

use crate::AppState;
use crate::auth::{Auth, Read, Submit};
use crate::error::{ApiCode, ApiError, ErrorBody};
use crate::jobs::find;

/// `GET /v1/jobs/{id}/webhooks`: the job's webhook delivery and every attempt.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/webhooks",
    operation_id = "get_job_webhooks",
    tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The delivery: state, event, webhook-id, attempts", body = Delivery),
        (status = 404, description = "No such job in this tenant, or it has no webhook", body = ErrorBody),
    )
)]
pub async fn webhooks(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let job = find(&state, &caller, &id).await?;
    let delivery = state.deliveries.delivery(&job.id).await?;
    Ok(Json(delivery.ok_or_else(|| ApiError::not_found("webhook of this job"))?))
}

/// `POST /v1/jobs/{id}/webhooks/redeliver`: sends the job's event again, from a fresh schedule.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/webhooks/redeliver",
    operation_id = "redeliver_job_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued for delivery now", body = Delivery),
        (status = 403, description = "The key may not redeliver (role `read`)", body = ErrorBody),
        (status = 404, description = "No such job in this tenant, or it has no webhook", body = ErrorBody),
        (status = 409, description = "The job has not ended: there is no event yet", body = ErrorBody),
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let job = find(&state, &caller, &id).await?;
    if state.deliveries.delivery(&job.id).await?.is_none() {
        return Err(ApiError::not_found("webhook of this job"));
    }
    if !state.deliveries.redeliver(&job.id).await? {
        return Err(ApiError::new(ApiCode::JobNotEnded, "the job has not ended: no event to deliver yet"));
    }
    state.audit.record(caller.event("webhook.redelivery_requested", job.id)).await;
    let delivery = state.deliveries.delivery(&job.id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
