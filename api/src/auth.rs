//! Who is calling, and may they: the one place where requests are authenticated,
//! rate-limited and checked against a role.
//!
//! [`authenticate`] wraps every `/v1` route: it resolves the presented key (Bearer or
//! `X-API-Key`), counts the request against the key's and the global quota, stores the
//! [`Caller`] in the request and puts the `RateLimit-*` headers on the response. A refused
//! key counts against its client address (`MTA_AUTH_FAILURES_PER_MINUTE`); past that the
//! address gets 429 and no audit entry.
//! Handlers then ask for `Auth<Read>`, `Auth<Submit>` or `Auth<Admin>`; the extractor
//! answers 403 when the key's role is too weak. Whose objects a caller may see is the
//! ledger's business (`tenant_job`, `upload`): another tenant's object is a 404.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mta_platform::access::{AuthFailure, KeyRecord, Role};
use mta_platform::audit::AuditEvent;
use mta_platform::ids::{KeyId, Tenant};
use mta_platform::metrics::Metrics;
use mta_platform::quota::{Decision, Limit, Rate};

use crate::AppState;
use crate::error::{ApiCode, ApiError};

/// The authenticated key behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: KeyId,
    pub tenant: Tenant,
    pub role: Role,
    /// The key's default webhook, used by jobs that name none.
    pub default_webhook: Option<String>,
}

impl Caller {
    /// An audit event of this caller acting on `target`.
    pub fn event(&self, action: &'static str, target: impl ToString) -> AuditEvent {
        AuditEvent {
            action,
            tenant: Some(self.tenant.clone()),
            key_id: Some(self.key_id.clone()),
            target: Some(target.to_string()),
            detail: None,
        }
    }
}

/// Middleware of every `/v1` route.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let record = match resolve(&state, request.headers()).await {
        Ok(record) => record,
        Err(refused) => {
            let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
            return refuse(&state, client, refused).await;
        }
    };
    let rate = Rate::per_hour(record.requests_per_hour.unwrap_or(state.config.security.key_requests_per_hour));
    let decision = match state.quotas.request(&record.id, &record.tenant, rate).await {
        Ok(decision) => decision,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let caller =
        Caller { key_id: record.id, tenant: record.tenant, role: record.role, default_webhook: record.webhook_url };
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    if let Some((limit, limit_rate)) = decision.refused_by {
        Metrics::refusal(&state.metrics.rate_limit_refusals, "requests");
        let quota = format!("{} requests per {} s", limit_rate.limit, limit_rate.period.as_secs());
        let mut event = caller.event("rate_limit.refused", request.uri().path());
        event.detail = Some(format!("the {} limit: {quota}", limit.as_str()));
        state.audit.record(event).await;
        let retry = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let whose = match limit {
            Limit::Key => "this key's",
            Limit::Tenant => "this tenant's (all its keys together)",
            Limit::Service => "the service's",
        };
        let mut response = ApiError::TooMany {
            code: ApiCode::RateLimited,
            message: format!("too many requests: {whose} limit of {quota}; retry in {retry} s"),
            retry_after_secs: retry,
        }
        .into_response();
        rate_headers(response.headers_mut(), &decision);
        return response;
    }
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    rate_headers(response.headers_mut(), &decision);
    response
}

/// Why a request has no usable key: what to audit and what to answer.
enum Refused {
    Auth { event: AuditEvent, reason: &'static str, message: &'static str },
    Error(Response),
}

/// The 401 answer (audited) for a refused key, or, once the client's address has had more
/// than `MTA_AUTH_FAILURES_PER_MINUTE` refusals, a 429 with no audit entry: a flood of bad
/// keys costs neither an audit entry nor a key lookup's worth of log per request.
async fn refuse(state: &AppState, client: Option<SocketAddr>, refused: Refused) -> Response {
    let (event, reason, message) = match refused {
        Refused::Auth { event, reason, message } => (event, reason, message),
        Refused::Error(response) => return response,
    };
    let per_minute = state.config.security.auth_failures_per_minute;
    if let (Some(client), true) = (client, per_minute > 0) {
        let rate = Rate::per_minute(per_minute);
        match state.quotas.auth_failure(&crate::server::client_bucket(client), rate).await {
            Ok(true) => {}
            Ok(false) => {
                Metrics::refusal(&state.metrics.rate_limit_refusals, "auth_failures");
                let retry = rate.emission_ms().div_ceil(1000).max(1);
                return ApiError::TooMany {
                    code: ApiCode::RateLimited,
                    message: format!("too many refused API keys from this address; retry in {retry} s"),
                    retry_after_secs: retry,
                }
                .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    state.audit.record(event).await;
    Metrics::refusal(&state.metrics.auth_refusals, reason);
    ApiError::new(ApiCode::Unauthorized, message).into_response()
}

/// The key's record, or why there is no usable key.
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<KeyRecord, Refused> {
    let refused = |record: Option<&KeyRecord>, detail: &str, reason, message| Refused::Auth {
        event: refusal(record, detail),
        reason,
        message,
    };
    let Some(presented) = presented_key(headers) else {
        let message = "an API key is required: `Authorization: Bearer <key>` or `X-API-Key: <key>`";
        return Err(refused(None, "no API key", "missing", message));
    };
    match state.keys.authenticate(presented).await {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(AuthFailure::Malformed)) => Err(refused(None, "malformed key", "malformed", "the API key is malformed")),
        Ok(Err(AuthFailure::Unknown)) => Err(refused(
            None,
            "unknown or revoked key",
            "unknown",
            "the API key is not valid (unknown, rotated or revoked)",
        )),
        Ok(Err(AuthFailure::Expired(record))) => {
            Err(refused(Some(&record), "expired key", "expired", "the API key has expired"))
        }
        Err(e) => Err(Refused::Error(ApiError::from(e).into_response())),
    }
}

fn refusal(record: Option<&KeyRecord>, reason: &str) -> AuditEvent {
    AuditEvent {
        action: "auth.refused",
        tenant: record.map(|r| r.tenant.clone()),
        key_id: record.map(|r| r.id.clone()),
        target: None,
        detail: Some(reason.to_owned()),
    }
}

/// The key from `Authorization: Bearer` or `X-API-Key`; `None` when neither is usable text.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)).filter(|k| !k.is_empty())
}

/// `RateLimit-Limit`, `-Remaining`, `-Reset` and `-Policy` (IETF draft) for the key's quota.
fn rate_headers(headers: &mut HeaderMap, decision: &Decision) {
    let reset = decision.reset.as_secs_f64().ceil() as u64;
    let policy = format!("{};w={}", decision.rate.limit, decision.rate.period.as_secs());
    for (name, value) in [
        ("ratelimit-limit", decision.rate.limit.to_string()),
        ("ratelimit-remaining", decision.remaining.to_string()),
        ("ratelimit-reset", reset.to_string()),
        ("ratelimit-policy", policy),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// A role a handler needs.
pub trait Needs {
    const ROLE: Role;
}

pub struct Read;
pub struct Submit;
pub struct Admin;

impl Needs for Read {
    const ROLE: Role = Role::Read;
}

impl Needs for Submit {
    const ROLE: Role = Role::Submit;
}

impl Needs for Admin {
    const ROLE: Role = Role::Admin;
}

/// The caller, admitted only when its role includes `N::ROLE`.
pub struct Auth<N>(pub Caller, pub PhantomData<N>);

impl<N: Needs, S: Send + Sync> FromRequestParts<S> for Auth<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("a /v1 route is not behind the authenticate middleware"))
        })?;
        if !caller.role.allows(N::ROLE) {
            return Err(ApiError::new(
                ApiCode::Forbidden,
                format!(
                    "this needs a key with the `{}` role; this key has `{}`",
                    N::ROLE.as_str(),
                    caller.role.as_str()
                ),
            ));
        }
        Ok(Auth(caller, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (HeaderName::from_static(name), HeaderValue::from_str(value).unwrap()))
            .collect()
    }

    #[test]
    fn a_key_is_read_from_a_bearer_token_in_any_case_or_from_x_api_key() {
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer  mta_a ")])), Some("mta_a"));
        assert_eq!(presented_key(&headers(&[("authorization", "bearer mta_b")])), Some("mta_b"));
        assert_eq!(presented_key(&headers(&[("x-api-key", " mta_c")])), Some("mta_c"));
        // Another scheme is not a key; X-API-Key still is.
        let both = headers(&[("authorization", "Basic dXNlcg=="), ("x-api-key", "mta_d")]);
        assert_eq!(presented_key(&both), Some("mta_d"));
        assert_eq!(presented_key(&headers(&[("authorization", "Bearer ")])), None);
        assert_eq!(presented_key(&headers(&[("x-api-key", "  ")])), None);
        assert_eq!(presented_key(&HeaderMap::new()), None);
    }
}
