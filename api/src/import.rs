//! `POST /v1/uploads/import`: a tenant submits an object already in the store, under a
//! prefix the operator allowed it (`MTA_IMPORT_PREFIXES`). The object is read through once
//! for its size and SHA-256 and recorded as an upload that names it; jobs read it in
//! place, and the retention never deletes it (it is the operator's).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use mta_platform::ids::UploadId;
use mta_platform::job::UploadRecord;
use object_store::path::Path as Key;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Submit};
use crate::error::{ApiCode, ApiError, AppJson, ErrorBody};
use crate::uploads::too_large;

/// The longest object key taken (S3's own limit).
const MAX_KEY_BYTES: usize = 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "exports/acme/2026-11/touchpoints.parquet"}))]
pub struct ImportObject {
    /// The object's key in the store (relative to MTA_STORE), under one of the tenant's allowed prefixes.
    #[schema(min_length = 1, max_length = 1024)]
    key: String,
}

/// Submit an object already in the store, under a prefix the operator allowed the tenant.
#[utoipa::path(
    post,
    path = "/v1/uploads/import",
    operation_id = "import_object",
    tag = "uploads",
    request_body = ImportObject,
    responses(
        (status = 201, description = "Read and recorded as an upload naming the object (`imported_from`)", body = UploadRecord),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The key may not upload (role `read`), or the object is outside the tenant's allowed prefixes", body = ErrorBody),
        (status = 404, description = "No such object under an allowed prefix", body = ErrorBody),
        (status = 413, description = "The object is larger than MTA_MAX_UPLOAD_BYTES, or the body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "The object is empty", body = ErrorBody),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    AppJson(body): AppJson<ImportObject>,
) -> Result<(StatusCode, Json<UploadRecord>), ApiError> {
    let allowed = state.config.import_prefixes.get(&caller.tenant).map(Vec::as_slice).unwrap_or_default();
    let Some(key) = allowed_key(allowed, &body.key) else {
        let mut event = caller.event("upload.import_refused", "-");
        event.detail = Some(mta_core::error::quoted(&body.key));
        state.audit.record(event).await;
        return Err(ApiError::new(
            ApiCode::Forbidden,
            "this key is outside the prefixes the operator allowed this tenant to import from (MTA_IMPORT_PREFIXES)",
        ));
    };
    let (size_bytes, sha256) =
        state.storage.size_and_sha256(&key).await?.ok_or_else(|| ApiError::not_found("object"))?;
    let max = state.config.limits.max_upload_bytes;
    if size_bytes > max {
        return Err(too_large(max));
    }
    if size_bytes == 0 {
        return Err(ApiError::new(ApiCode::EmptyInput, "the object is empty"));
    }
    let upload = UploadRecord {
        upload_id: UploadId::random(),
        tenant: caller.tenant.clone(),
        size_bytes,
        sha256,
        created_at: mta_platform::ids::now(),
        imported_from: Some(key.to_string()),
    };
    state.ledger.put_upload(&upload).await?;
    let mut event = caller.event("upload.imported", upload.upload_id);
    event.detail = Some(key.to_string());
    state.audit.record(event).await;
    tracing::info!(upload = %upload.upload_id, tenant = %caller.tenant, size_bytes, via = "import", "upload stored");
    Ok((StatusCode::CREATED, Json(upload)))
}

/// `key` as a store key when it is a plain relative key under one of `allowed` (each
/// ending in `/`): no empty, `.` or `..` segment, no backslash or control character.
fn allowed_key(allowed: &[String], key: &str) -> Option<Key> {
    let plain = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && !key.chars().any(|c| c == '\\' || c.is_control())
        && key.split('/').all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    if !plain || !allowed.iter().any(|prefix| key.starts_with(prefix.as_str())) {
        return None;
    }
    let parsed = Key::parse(key).ok()?;
    (parsed.as_ref() == key).then_some(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_keys_under_an_allowed_prefix_are_taken() {
        let allowed = ["exports/acme/".to_owned()];
        for key in ["exports/acme/a.csv", "exports/acme/2026/11/b.parquet"] {
            assert_eq!(allowed_key(&allowed, key).map(|k| k.to_string()), Some(key.to_owned()), "{key}");
        }
        for key in [
            "",
            "exports/acme",
            "exports/acme/",
            "exports/acmeco/a.csv",
            "exports/acme/../beta/a.csv",
            "exports/acme/./a.csv",
            "exports/acme//a.csv",
            "/exports/acme/a.csv",
            "exports/acme/a\\..\\b",
            "exports/acme/a\n.csv",
            "tenants/acme/uploads/x",
            "exports/beta/a.csv",
        ] {
            assert_eq!(allowed_key(&allowed, key), None, "{key:?}");
        }
        assert_eq!(allowed_key(&[], "exports/acme/a.csv"), None);
    }
}
