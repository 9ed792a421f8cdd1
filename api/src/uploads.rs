//! `POST /v1/uploads`: the raw body is streamed into object storage (multipart, never
//! whole in memory) and hashed on the way; the size limit is checked against
//! `Content-Length` first and enforced while streaming.
//!
//! The tenant's daily upload quota is reserved before bytes are stored: the declared
//! `Content-Length` whole before the first byte, or, without one, in steps of
//! [`RESERVE_STEP`] as the bytes arrive. Each reservation is atomic in Redis, so
//! concurrent uploads (on any API process) cannot together pass the quota. When the
//! upload ends, what was reserved but not stored (a failed or shorter upload) is given back.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use std::sync::Arc;

use futures_util::{Stream, StreamExt, TryStreamExt};
use mta_platform::ids::UploadId;
use mta_platform::job::UploadRecord;
use mta_platform::quota::{Quotas, UploadReservation};
use mta_platform::storage::{PutStreamError, keys};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::{Auth, Caller, Submit};
use crate::error::{ApiCode, ApiError, ErrorBody};

/// Quota bytes reserved at a time for an upload without `Content-Length`.
const RESERVE_STEP: u64 = 1 << 20;

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
        (status = 429, description = "Over the tenant's daily upload quota", body = ErrorBody),
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
    let mut reservation = state.quotas.start_upload(&caller.tenant);
    let first = declared_len.unwrap_or(RESERVE_STEP.min(max));
    if !state.quotas.reserve_upload(&mut reservation, first, declared_len.unwrap_or(1)).await? {
        return Err(quota_exceeded(state));
    }
    let metering = Arc::new(tokio::sync::Mutex::new(Metering { reservation, refusal: None }));
    // A request dropped mid-upload (the client went away) still gives its reservation back.
    let mut unsettled = Unsettled { quotas: state.quotas.clone(), metering: Some(Arc::clone(&metering)) };
    let min_rate = state.config.limits.min_upload_bytes_per_sec;
    let body = metered(body, state.quotas.clone(), Arc::clone(&metering), max, min_rate);
    let upload_id = UploadId::random();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let stored = state
        .storage
        .put_stream(&keys::upload(&caller.tenant, &upload_id), body, |piece| {
            size += piece.len() as u64;
            if size > max {
                return Err("too large".to_owned());
            }
            hasher.update(piece);
            Ok(())
        })
        .await;
    // Only what was stored stays counted.
    let used = stored.as_ref().map_or(0, |size| *size);
    let refusal = {
        let mut metering = metering.lock().await;
        if let Err(e) = state.quotas.settle_upload(&mut metering.reservation, used).await {
            tracing::warn!(error = %format!("{e:#}"), "the unused upload quota was not given back");
        }
        metering.refusal.take()
    };
    unsettled.metering = None;
    let size_bytes = match stored {
        Ok(size) => size,
        Err(PutStreamError::Body(e)) if size > max => {
            tracing::info!(reason = e, "upload refused: over the size limit");
            return Err(too_large(max));
        }
        Err(PutStreamError::Body(e)) => {
            return Err(match refusal {
                Some(Refusal::Quota) => quota_exceeded(state),
                Some(Refusal::TooSlow { bytes, seconds }) => ApiError::new(
                    ApiCode::LimitExceeded,
                    format!(
                        "the upload sent {bytes} bytes in {seconds} s, below the minimum of {min_rate} bytes a second \
                         (MTA_MIN_UPLOAD_BYTES_PER_SEC)"
                    ),
                ),
                Some(Refusal::Ledger(e)) => ApiError::from(e),
                None => ApiError::new(ApiCode::InvalidRequest, format!("the upload broke off: {e}")),
            });
        }
        Err(PutStreamError::Store(e)) => return Err(ApiError::Unavailable(e)),
    };
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
        imported_from: None,
    };
    state.ledger.put_upload(&upload).await?;
    tracing::info!(upload = %upload_id, tenant = %caller.tenant, size_bytes, "upload stored");
    Ok(upload)
}

/// The upload's quota reservation, shared between the metered body and `store_upload`.
struct Metering {
    reservation: UploadReservation,
    refusal: Option<Refusal>,
}

/// Gives an upload's whole reservation back if `store_upload` is dropped before it settles.
struct Unsettled {
    quotas: Quotas,
    metering: Option<Arc<tokio::sync::Mutex<Metering>>>,
}

impl Drop for Unsettled {
    fn drop(&mut self) {
        let (Some(metering), Ok(runtime)) = (self.metering.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let quotas = self.quotas.clone();
        runtime.spawn(async move {
            let mut metering = metering.lock().await;
            if let Err(e) = quotas.settle_upload(&mut metering.reservation, 0).await {
                tracing::warn!(error = %format!("{e:#}"), "the quota of an abandoned upload was not given back");
            }
        });
    }
}

/// Why the metered body stopped the upload.
enum Refusal {
    Quota,
    Ledger(anyhow::Error),
    /// Fewer than the minimum bytes a second over a whole window.
    TooSlow {
        bytes: u64,
        seconds: u64,
    },
}

/// The span over which an upload's rate is checked against `MTA_MIN_UPLOAD_BYTES_PER_SEC`.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// Bytes an upload brought since its current rate window began.
struct RateWindow {
    started: std::time::Instant,
    bytes: u64,
}

impl RateWindow {
    fn new() -> RateWindow {
        RateWindow { started: std::time::Instant::now(), bytes: 0 }
    }

    /// Counts `len` bytes; at the end of each window, the window's bytes if they were fewer
    /// than `min_rate` a second (then the upload is refused), else a new window starts.
    fn too_slow(&mut self, len: u64, min_rate: u64) -> Option<(u64, u64)> {
        self.bytes += len;
        let elapsed = self.started.elapsed();
        if min_rate == 0 || elapsed < RATE_WINDOW {
            return None;
        }
        let seconds = elapsed.as_secs().max(1);
        if self.bytes < min_rate.saturating_mul(seconds) {
            return Some((self.bytes, seconds));
        }
        *self = RateWindow::new();
        None
    }
}

/// `body`, each piece passed on only once the quota reservation covers it (more is
/// reserved as needed) and while the upload keeps `min_rate` bytes a second. Bytes past
/// `max` are passed on unreserved: the size limit refuses them.
fn metered<S>(
    body: S,
    quotas: Quotas,
    metering: Arc<tokio::sync::Mutex<Metering>>,
    max: u64,
    min_rate: u64,
) -> impl Stream<Item = Result<bytes::Bytes, String>> + Unpin
where
    S: Stream<Item = Result<bytes::Bytes, String>> + Unpin,
{
    let start = (body, 0u64, RateWindow::new());
    let stream = futures_util::stream::unfold(start, move |(mut body, mut seen, mut window)| {
        let (quotas, metering) = (quotas.clone(), Arc::clone(&metering));
        async move {
            let piece = match body.next().await? {
                Ok(piece) => piece,
                Err(e) => return Some((Err(e), (body, seen, window))),
            };
            seen += piece.len() as u64;
            let mut metering = metering.lock().await;
            if let Some((bytes, seconds)) = window.too_slow(piece.len() as u64, min_rate) {
                metering.refusal = Some(Refusal::TooSlow { bytes, seconds });
                return Some((Err("slower than the minimum upload rate".to_owned()), (body, seen, window)));
            }
            let reserved = metering.reservation.reserved();
            if seen <= reserved || seen > max {
                return Some((Ok(piece), (body, seen, window)));
            }
            let need = seen - reserved;
            let want = need.max(RESERVE_STEP.min(max - reserved));
            match quotas.reserve_upload(&mut metering.reservation, want, need).await {
                Ok(true) => Some((Ok(piece), (body, seen, window))),
                Ok(false) => {
                    metering.refusal = Some(Refusal::Quota);
                    Some((Err("over the upload quota".to_owned()), (body, seen, window)))
                }
                Err(e) => {
                    metering.refusal = Some(Refusal::Ledger(e));
                    Some((Err("the upload quota could not be reserved".to_owned()), (body, seen, window)))
                }
            }
        }
    });
    Box::pin(stream)
}

/// 429 until the next UTC day, when the tenant's upload quota starts afresh.
pub(crate) fn quota_exceeded(state: &AppState) -> ApiError {
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

pub(crate) fn too_large(max: u64) -> ApiError {
    ApiError::new(
        ApiCode::LimitExceeded,
        format!("the upload is larger than {max} bytes, the configured limit (MTA_MAX_UPLOAD_BYTES)"),
    )
}
