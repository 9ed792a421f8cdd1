//! `POST /v1/uploads`: the raw body is streamed into object storage (multipart, never
//! whole in memory) and hashed on the way; the size limit and the tenant's daily upload
//! quota are checked against `Content-Length` first and enforced while streaming.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::{Stream, TryStreamExt};
use mta_platform::ids::UploadId;
use mta_platform::job::UploadRecord;
use mta_platform::storage::{PutStreamError, keys};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::{Auth, Caller, Submit};
use crate::error::{ApiCode, ApiError, ErrorBody};

/// Upload a file: the raw body (CSV, gzip CSV, Parquet or NDJSON) is streamed to storage.
#[utoipa::path(
    post,
    path = "/v1/uploads",
    operation_id = "upload_file",
    tag = "uploads",
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file, as is"),
    responses(
        (status = 201, description = "Stored", body = UploadRecord),
        (status = 403, description = "The key may not upload (role `read`)", body = ErrorBody),
        (status = 413, description = "Larger than MTA_MAX_UPLOAD_BYTES", body = ErrorBody),
        (status = 422, description = "The upload is empty", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UploadRecord>), ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let upload = store_upload(&state, &caller, declared, body.into_data_stream().map_err(|e| e.to_string())).await?;
    Ok((StatusCode::CREATED, Json(upload)))
}

/// Streams one upload into storage and records it; shared with multipart job submission.
pub async fn store_upload<S>(
    state: &AppState,
    caller: &Caller,
    declared_len: Option<u64>,
    body: S,
) -> Result<UploadRecord, ApiError>
where
    S: Stream<Item = Result<bytes::Bytes, String>> + Unpin,
{
    let max = state.config.limits.max_upload_bytes;
    if declared_len.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let allowance = state.quotas.upload_allowance(&caller.tenant).await?;
    if declared_len.unwrap_or(1) > allowance {
        return Err(quota_exceeded(state));
    }
    let limit = max.min(allowance);
    let upload_id = UploadId::random();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let stored = state
        .storage
        .put_stream(&keys::upload(&caller.tenant, &upload_id), body, |piece| {
            size += piece.len() as u64;
            if size > limit {
                return Err("too large".to_owned());
            }
            hasher.update(piece);
            Ok(())
        })
        .await;
    let size_bytes = match stored {
        Ok(size) => size,
        Err(PutStreamError::Body(e)) if size > max => {
            tracing::info!(reason = e, "upload refused: over the size limit");
            return Err(too_large(max));
        }
        Err(PutStreamError::Body(_)) if size > limit => return Err(quota_exceeded(state)),
        Err(PutStreamError::Body(e)) => {
            return Err(ApiError::new(ApiCode::InvalidRequest, format!("the upload broke off: {e}")));
        }
        Err(PutStreamError::Store(e)) => return Err(ApiError::Unavailable(e)),
    };
    state.quotas.count_upload(&caller.tenant, size_bytes).await?;
    state.metrics.upload_bytes.inc_by(size_bytes);
    if size_bytes == 0 {
        return Err(ApiError::new(ApiCode::EmptyInput, "the upload is empty"));
    }
    let upload = UploadRecord {
        upload_id,
        tenant: caller.tenant.clone(),
        size_bytes,
        sha256: hex::encode(hasher.finalize()),
        created_at: mta_platform::ids::now(),
    };
    state.ledger.put_upload(&upload).await?;
    tracing::info!(upload = %upload_id, tenant = %caller.tenant, size_bytes, "upload stored");
    Ok(upload)
}

/// 429 until the next UTC day, when the tenant's upload quota starts afresh.
fn quota_exceeded(state: &AppState) -> ApiError {
    mta_platform::metrics::Metrics::refusal(&state.metrics.rate_limit_refusals, "upload_bytes");
    let now = chrono::Utc::now();
    let tomorrow = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight exists");
    let per_day = state.quotas.upload_bytes_per_day();
    ApiError::TooMany {
        code: ApiCode::UploadQuotaExceeded,
        message: format!(
            "this upload would pass the tenant's quota of {per_day} bytes per day (MTA_TENANT_UPLOAD_BYTES_PER_DAY)"
        ),
        retry_after_secs: (tomorrow - now.naive_utc()).num_seconds().max(1) as u64,
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ApiCode::LimitExceeded,
        format!("the upload is larger than {max} bytes, the configured limit (MTA_MAX_UPLOAD_BYTES)"),
    )
}
