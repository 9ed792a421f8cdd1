//! Direct uploads: the client sends the file's parts straight to the object store (S3)
//! over presigned URLs, so files of tens of gigabytes never pass through the API.
//!
//! `POST /v1/uploads/direct` reserves the declared size of the tenant's daily quota,
//! creates a multipart upload and signs one URL per part (each URL binds its upload and
//! part number; SigV4 cannot bind a length). `POST /v1/uploads/{id}/complete` has the
//! store join the parts from their ETags, then reads the object through once to record
//! its size and SHA-256 (an object of another size than declared is deleted and refused),
//! so the upload is recorded like a streamed one. On the local filesystem the routes
//! answer `direct_upload_unsupported` and clients stream to `POST /v1/uploads`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use mta_platform::ids::UploadId;
use mta_platform::job::{DirectUpload, UploadRecord};
use mta_platform::storage::keys;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Submit};
use crate::error::{ApiCode, ApiError, AppJson, ErrorBody};
use crate::uploads::{quota_exceeded, too_large};

/// S3 takes at most this many parts in one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's bounds on a part's size (the last part may be smaller).
const MIN_PART_BYTES: u64 = 5 << 20;
const MAX_PART_BYTES: u64 = 5 << 30;
/// The part size when the client names none.
const DEFAULT_PART_BYTES: u64 = 64 << 20;
/// The longest ETag taken from a client.
const MAX_ETAG_CHARS: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"size_bytes": 21474836480u64, "part_bytes": 67108864}))]
pub struct StartDirect {
    /// The file's exact size; at most MTA_MAX_UPLOAD_BYTES.
    #[schema(minimum = 1)]
    size_bytes: u64,
    /// The size of every part but the last (default 64 MiB; 5 MiB to 5 GiB, raised so
    /// that the file has at most 10,000 parts).
    #[schema(minimum = 5242880, maximum = 5368709120u64)]
    part_bytes: Option<u64>,
}

/// A started direct upload: `PUT` each part's bytes to its URL, then complete it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectUploadStarted {
    upload_id: UploadId,
    size_bytes: u64,
    part_bytes: u64,
    /// When the part URLs stop working (RFC 3339).
    expires_at: String,
    /// Where to `POST` the parts' ETags once every part is sent.
    complete_url: String,
    parts: Vec<PartUrl>,
}

/// One part to send: exactly `size_bytes` bytes of the file, from byte
/// `(part_number - 1) × part_bytes`, with `method` to `url` (no other header needed).
#[derive(Debug, Serialize, ToSchema)]
pub struct PartUrl {
    part_number: u32,
    size_bytes: u64,
    method: String,
    url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"parts": [{"part_number": 1, "etag": "\"b54357faf0632cce46e942fa68356b38\""}]}))]
pub struct CompleteDirect {
    /// Every part, in order, with the `ETag` header the store answered its `PUT` with.
    parts: Vec<CompletedPart>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPart {
    #[schema(minimum = 1)]
    part_number: u32,
    #[schema(min_length = 1, max_length = 200)]
    etag: String,
}

/// Start a direct upload: presigned URLs of its parts, straight to the object store.
#[utoipa::path(
    post,
    path = "/v1/uploads/direct",
    operation_id = "start_direct_upload",
    tag = "uploads",
    request_body = StartDirect,
    responses(
        (status = 201, description = "Started: send the parts, then complete it", body = DirectUploadStarted),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The key may not upload (role `read`)", body = ErrorBody),
        (status = 409, description = "The store takes no direct uploads (`direct_upload_unsupported`): stream the file to `POST /v1/uploads`", body = ErrorBody),
        (status = 413, description = "Larger than MTA_MAX_UPLOAD_BYTES, or the body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A field is invalid (named)", body = ErrorBody),
        (status = 429, description = "Over the tenant's daily upload quota", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    AppJson(body): AppJson<StartDirect>,
) -> Result<(StatusCode, Json<DirectUploadStarted>), ApiError> {
    if !state.storage.takes_direct_uploads() {
        return Err(ApiError::new(
            ApiCode::DirectUploadUnsupported,
            "this service stores files on its local filesystem: stream the file to POST /v1/uploads",
        ));
    }
    let size = body.size_bytes;
    let max = state.config.limits.max_upload_bytes;
    if size == 0 {
        return Err(ApiError::field("size_bytes", "must be at least 1"));
    }
    if size > max {
        return Err(too_large(max));
    }
    let asked = body.part_bytes.unwrap_or(DEFAULT_PART_BYTES);
    if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&asked) {
        return Err(ApiError::field("part_bytes", format!("must be between {MIN_PART_BYTES} and {MAX_PART_BYTES}")));
    }
    let part_bytes = asked.max(size.div_ceil(MAX_PARTS));
    // The whole declared size counts against today's quota, whether or not the upload is completed.
    let mut reservation = state.quotas.start_upload(&caller.tenant);
    if !state.quotas.reserve_upload(&mut reservation, size, size).await? {
        return Err(quota_exceeded(&state));
    }
    let started = start_parts(&state, &caller.tenant, size, part_bytes).await;
    if started.is_err()
        && let Err(e) = state.quotas.settle_upload(&mut reservation, 0).await
    {
        tracing::warn!(error = %format!("{e:#}"), "the quota of a direct upload that did not start was not given back");
    }
    let (direct, parts) = started?;
    tracing::info!(upload = %direct.upload_id, tenant = %caller.tenant, size_bytes = size, parts = parts.len(), "direct upload started");
    Ok((
        StatusCode::CREATED,
        Json(DirectUploadStarted {
            upload_id: direct.upload_id,
            size_bytes: size,
            part_bytes,
            expires_at: direct.expires_at,
            complete_url: format!("/v1/uploads/{}/complete", direct.upload_id),
            parts,
        }),
    ))
}

/// Creates the multipart upload, signs its part URLs and records it.
async fn start_parts(
    state: &AppState,
    tenant: &mta_platform::ids::Tenant,
    size_bytes: u64,
    part_bytes: u64,
) -> Result<(DirectUpload, Vec<PartUrl>), ApiError> {
    let lifetime = state.config.direct_upload_lifetime;
    let upload_id = UploadId::random();
    let key = keys::upload(tenant, &upload_id);
    let multipart_id = state.storage.start_direct(&key).await.map_err(ApiError::Unavailable)?;
    let direct = DirectUpload {
        upload_id,
        tenant: tenant.clone(),
        multipart_id,
        size_bytes,
        part_bytes,
        expires_at: mta_platform::ids::timestamp_in(lifetime),
    };
    let mut parts = Vec::with_capacity(direct.parts() as usize);
    for part_number in 1..=direct.parts() {
        let size_bytes = direct.part_len(part_number);
        let url = state.storage.presign_part(&key, &direct.multipart_id, part_number, lifetime).await?;
        parts.push(PartUrl { part_number, size_bytes, method: "PUT".to_owned(), url });
    }
    // Kept past the URLs' end, so that an upload whose last part arrived just in time can still be completed.
    state.ledger.put_direct(&direct, lifetime * 2).await?;
    Ok((direct, parts))
}

/// Complete a direct upload: the store joins the parts, the API reads the object once
/// to record its size and SHA-256.
#[utoipa::path(
    post,
    path = "/v1/uploads/{id}/complete",
    operation_id = "complete_direct_upload",
    tag = "uploads",
    params(("id" = String, Path, description = "The direct upload's id")),
    request_body = CompleteDirect,
    responses(
        (status = 201, description = "Stored and recorded, like a streamed upload", body = UploadRecord),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The key may not upload (role `read`)", body = ErrorBody),
        (status = 404, description = "No such direct upload in this tenant (or already completed, or expired)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A part is missing, out of order or refused by the store (`parts`)", body = ErrorBody),
    )
)]
pub async fn complete(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    Path(id): Path<String>,
    AppJson(body): AppJson<CompleteDirect>,
) -> Result<(StatusCode, Json<UploadRecord>), ApiError> {
    let not_found = || ApiError::not_found("direct upload");
    let upload_id: UploadId = id.parse().map_err(|_| not_found())?;
    let direct = state.ledger.direct(&caller.tenant, &upload_id).await?.ok_or_else(not_found)?;
    let etags = checked_parts(&direct, body.parts)?;
    let key = keys::upload(&caller.tenant, &upload_id);
    if let Err(e) = state.storage.complete_direct(&key, &direct.multipart_id, etags).await {
        tracing::info!(upload = %upload_id, error = %format!("{e:#}"), "direct upload not completed");
        return Err(ApiError::field(
            "parts",
            "the store refused to join the parts: is every part sent, with the ETag its PUT answered?",
        ));
    }
    // Completed: nothing is left to abort, and the object now expires like any upload.
    state.ledger.forget_direct(&direct).await?;
    let (size_bytes, sha256) = state
        .storage
        .size_and_sha256(&key)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the completed upload {key} is not in the store")))?;
    if size_bytes != direct.size_bytes {
        state.storage.delete(&key).await?;
        return Err(ApiError::field(
            "parts",
            format!("the parts hold {size_bytes} bytes, not the {} bytes declared", direct.size_bytes),
        ));
    }
    let upload = UploadRecord {
        upload_id,
        tenant: caller.tenant.clone(),
        size_bytes,
        sha256,
        created_at: mta_platform::ids::now(),
        imported_from: None,
    };
    state.ledger.put_upload(&upload).await?;
    state.metrics.upload_bytes.inc_by(size_bytes);
    tracing::info!(upload = %upload_id, tenant = %caller.tenant, size_bytes, via = "direct", "upload stored");
    Ok((StatusCode::CREATED, Json(upload)))
}

/// The parts' ETags in part order, when the client names every part once, in order.
fn checked_parts(direct: &DirectUpload, parts: Vec<CompletedPart>) -> Result<Vec<String>, ApiError> {
    let expected = direct.parts();
    if parts.len() != expected as usize {
        return Err(ApiError::field("parts", format!("the upload has {expected} parts; {} are named", parts.len())));
    }
    parts
        .into_iter()
        .zip(1..)
        .map(|(part, number)| {
            if part.part_number != number {
                return Err(ApiError::field(
                    "parts",
                    format!("part {number} must come next, in order, not part {}", part.part_number),
                ));
            }
            if part.etag.is_empty() || part.etag.chars().count() > MAX_ETAG_CHARS {
                return Err(ApiError::field("parts", format!("the ETag of part {number} must be 1 to 200 characters")));
            }
            Ok(part.etag)
        })
        .collect()
}
