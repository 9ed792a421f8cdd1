//! Admin endpoints: a tenant's keys (create, list, rotate, revoke) and its audit log.
//! An admin key manages its own tenant only; the operator's `mta keys` command manages
//! every tenant straight in Redis.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use mta_platform::access::{KeyRecord, KeyRequest, NewKey, Role};
use mta_platform::audit::AuditEntry;
use mta_platform::ids::KeyId;
use mta_platform::webhook::Secret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Admin, Auth};
use crate::error::{ApiCode, ApiError, AppJson, AppQuery, ErrorBody};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly ETL", "role": "submit", "expires_at": "2027-06-30T00:00:00Z", "requests_per_hour": 5000}))]
pub struct CreateKey {
    /// What the key is for, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    role: Role,
    /// RFC 3339, in the future; the key never expires when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<DateTime<Utc>>,
    /// The key's own quota (default MTA_RATE_LIMIT_PER_HOUR).
    #[schema(minimum = 1)]
    requests_per_hour: Option<u32>,
}

/// `POST /v1/admin/keys`: 201 with the new key, shown this once.
#[utoipa::path(
    post,
    path = "/v1/admin/keys",
    operation_id = "create_key",
    tag = "admin",
    request_body = CreateKey,
    responses(
        (status = 201, description = "The key; `key` is its secret, shown only now", body = NewKey),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB, or the tenant holds `MTA_MAX_KEYS_PER_TENANT` keys (`limit_exceeded`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A field is invalid (named)", body = ErrorBody),
    )
)]
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
    // A tenant's admin may lower a key's quota, not raise it: only the operator (`mta keys`) can.
    let ceiling = state.config.security.key_requests_per_hour;
    if request.requests_per_hour.is_some_and(|rate| rate > ceiling) {
        return Err(ApiError::field(
            "requests_per_hour",
            format!("must be at most {ceiling} (the operator's limit; ask them for more)"),
        ));
    }
    let limit = Some(state.config.security.max_keys_per_tenant).filter(|&n| n > 0);
    let new = state.keys.create(&request, limit).await??;
    state.audit.record(caller.event("key.created", &new.record.id)).await;
    Ok((StatusCode::CREATED, Json(new)))
}

/// `GET /v1/admin/keys`: the tenant's keys, revoked ones included, never their secrets.
#[utoipa::path(
    get,
    path = "/v1/admin/keys",
    operation_id = "list_keys",
    tag = "admin",
    responses(
        (status = 200, description = "The tenant's keys", body = KeyList),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>, Auth(caller, ..): Auth<Admin>) -> Result<Json<KeyList>, ApiError> {
    let keys = state.keys.list(Some(&caller.tenant)).await?;
    Ok(Json(KeyList { keys }))
}

/// The tenant's key `id`; another tenant's key answers 404 like a missing one.
async fn own_key(state: &AppState, caller: &crate::auth::Caller, id: &str) -> Result<KeyRecord, ApiError> {
    let id: KeyId = id.parse().map_err(|_| ApiError::not_found("key"))?;
    state.keys.get(&id).await?.filter(|k| k.tenant == caller.tenant).ok_or_else(|| ApiError::not_found("key"))
}

/// `POST /v1/admin/keys/{id}/rotate`: a new secret; the old one stops working at once.
#[utoipa::path(
    post,
    path = "/v1/admin/keys/{id}/rotate",
    operation_id = "rotate_key",
    tag = "admin",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "The key with its new secret", body = NewKey),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key in this tenant", body = ErrorBody),
        (status = 409, description = "The key is revoked", body = ErrorBody),
    )
)]
pub async fn rotate(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<NewKey>, ApiError> {
    let key = own_key(&state, &caller, &id).await?;
    let new = state
        .keys
        .rotate(&key.id)
        .await?
        .ok_or_else(|| ApiError::new(ApiCode::KeyRevoked, "a revoked key cannot be rotated; create a new one"))?;
    state.audit.record(caller.event("key.rotated", &key.id)).await;
    Ok(Json(new))
}

/// `DELETE /v1/admin/keys/{id}`: revokes the key on every API pod from the next request on.
#[utoipa::path(
    delete,
    path = "/v1/admin/keys/{id}",
    operation_id = "revoke_key",
    tag = "admin",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "Revoked", body = KeyRecord),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key in this tenant", body = ErrorBody),
    )
)]
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

/// A key's default webhook: jobs submitted with the key that name no webhook of their own use it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyWebhook {
    url: String,
    /// `whsec_…`; generated (and returned once) when absent.
    secret: Option<String>,
}

/// A key's default webhook as set or rotated; `secret` only when made now.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyWebhookSet {
    key_id: KeyId,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    /// After a rotation: the old secret keeps signing, next to the new one, until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_secret_valid_until: Option<String>,
}

/// `PUT /v1/admin/keys/{id}/webhook`: sets the key's default webhook.
#[utoipa::path(
    put,
    path = "/v1/admin/keys/{id}/webhook",
    operation_id = "set_key_webhook",
    tag = "admin",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    request_body = KeyWebhook,
    responses(
        (status = 200, description = "Set; `secret` is shown only when the service made it", body = KeyWebhookSet),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key in this tenant", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "A bad URL or secret (named)", body = ErrorBody),
    )
)]
pub async fn set_webhook(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Path(id): Path<String>,
    AppJson(body): AppJson<KeyWebhook>,
) -> Result<Json<KeyWebhookSet>, ApiError> {
    let key = own_key(&state, &caller, &id).await?;
    let url = crate::submit::checked_webhook_url(&state, &body.url, "url")?;
    let (secret, shown) = crate::submit::secret_or_generated(body.secret.as_deref(), "secret")?;
    state.keys.set_webhook(&key.id, Some((&url, &secret)), state.config.webhooks.secret_overlap).await?;
    state.audit.record(caller.event("key.webhook_set", &key.id)).await;
    Ok(Json(KeyWebhookSet { key_id: key.id, url, secret: shown, previous_secret_valid_until: None }))
}

/// `DELETE /v1/admin/keys/{id}/webhook`: removes the key's default webhook.
#[utoipa::path(
    delete,
    path = "/v1/admin/keys/{id}/webhook",
    operation_id = "remove_key_webhook",
    tag = "admin",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "Removed", body = KeyRecord),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key in this tenant", body = ErrorBody),
    )
)]
pub async fn remove_webhook(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<KeyRecord>, ApiError> {
    let key = own_key(&state, &caller, &id).await?;
    state.keys.set_webhook(&key.id, None, state.config.webhooks.secret_overlap).await?;
    state.audit.record(caller.event("key.webhook_removed", &key.id)).await;
    Ok(Json(own_key(&state, &caller, &id).await?))
}

/// `POST /v1/admin/keys/{id}/webhook/rotate`: a new signing secret; both sign during the overlap.
#[utoipa::path(
    post,
    path = "/v1/admin/keys/{id}/webhook/rotate",
    operation_id = "rotate_key_webhook_secret",
    tag = "admin",
    params(("id" = String, Path, description = "Key id (`key_…`)")),
    responses(
        (status = 200, description = "The new secret (shown once) and until when the old one still signs", body = KeyWebhookSet),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 404, description = "No such key in this tenant, or it has no default webhook", body = ErrorBody),
    )
)]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    Path(id): Path<String>,
) -> Result<Json<KeyWebhookSet>, ApiError> {
    let key = own_key(&state, &caller, &id).await?;
    let url = key.webhook_url.clone().ok_or_else(|| ApiError::not_found("default webhook of this key"))?;
    let overlap = state.config.webhooks.secret_overlap;
    let secret = Secret::generate().1;
    state.keys.rotate_webhook_secret(&key.id, &secret, overlap).await?;
    state.audit.record(caller.event("key.webhook_secret_rotated", &key.id)).await;
    Ok(Json(KeyWebhookSet {
        key_id: key.id,
        url,
        secret: Some(secret),
        previous_secret_valid_until: Some(mta_platform::ids::timestamp_in(overlap)),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// `GET /v1/admin/audit`: the tenant's newest audit entries.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    operation_id = "read_audit",
    tag = "admin",
    params(AuditQuery),
    responses(
        (status = 200, description = "Newest first", body = AuditList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 403, description = "Not an admin key", body = ErrorBody),
        (status = 422, description = "`limit` out of range", body = ErrorBody),
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Admin>,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let entries = state.audit.read(Some(&caller.tenant), limit).await?;
    Ok(Json(AuditList { entries }))
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}
