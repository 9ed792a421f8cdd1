//! Admin endpoints: a tenant's keys (create, list, rotate, revoke) and its audit log.
//! An admin key manages its own tenant only; the operator's `mta keys` command manages
//! every tenant straight in Redis.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mta_platform::access::{KeyId, KeyRecord, KeyRequest, NewKey, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::error::{ApiError, AppJson};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    role: Role,
    /// RFC 3339; the key never expires when absent.
    expires_at: Option<DateTime<Utc>>,
    requests_per_hour: Option<u32>,
}

/// `POST /v1/admin/keys`: 201 with the new key, shown this once.
pub async fn create(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    AppJson(body): AppJson<CreateKey>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let request = KeyRequest {
        tenant: caller.tenant.clone(),
        role: body.role,
        name: body.name,
        expires_at: body.expires_at,
        requests_per_hour: body.requests_per_hour,
    };
    request.validate()?;
    let new = state.keys.create(&request).await?;
    state.audit.record(caller.event("key.created", &new.record.id)).await;
    Ok((StatusCode::CREATED, Json(new)))
}

/// `GET /v1/admin/keys`: the tenant's keys, revoked ones included, never their secrets.
pub async fn list(State(state): State<AppState>, Auth(caller, ..): Auth<Admin>) -> Result<Json<Value>, ApiError> {
    let keys = state.keys.list(Some(&caller.tenant)).await?;
    Ok(Json(json!({ "keys": keys })))
}

/// The tenant's key `id`; another tenant's key answers 404 like a missing one.
async fn own_key(state: &AppState, caller: &crate::auth::Caller, id: &str) -> Result<KeyRecord, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("key"))?;
    state.keys.get(&id).await?.filter(|k| k.tenant == caller.tenant).ok_or_else(|| ApiError::not_found("key"))
}

/// `POST /v1/admin/keys/{id}/rotate`: a new secret; the old one stops working at once.
pub async fn rotate(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<NewKey>, ApiError> {
    let key = own_key(&state, &caller, &id).await?;
    let new = state.keys.rotate(&key.id).await?.ok_or_else(|| {
        ApiError::new(StatusCode::CONFLICT, "key_revoked", "a revoked key cannot be rotated; create a new one")
    })?;
    state.audit.record(caller.event("key.rotated", &key.id)).await;
    Ok(Json(new))
}

/// `DELETE /v1/admin/keys/{id}`: revokes the key on every API pod from the next request on.
pub async fn revoke(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    let key = own_key(&state, &caller, &id).await?;
    let revoked = state.keys.revoke(&key.id).await?.ok_or_else(|| ApiError::not_found("key"))?;
    state.audit.record(caller.event("key.revoked", &key.id)).await;
    Ok(Json(revoked))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<usize>,
}

/// `GET /v1/admin/audit`: the tenant's newest audit entries.
pub async fn audit(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let entries = state.audit.read(Some(&caller.tenant), limit).await?;
    Ok(Json(json!({ "entries": entries })))
}
