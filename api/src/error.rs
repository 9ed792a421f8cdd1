//! The API's one error type and its one mapping to HTTP: every error body is
//! `{"error": {"code", "message", "details"?}}` (DESIGN.md 5).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mta_core::{AttributionError, ErrorCode, Problem};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub enum ApiError {
    /// The request itself is wrong (bad JSON, bad option, bad id): 400/404/409/413/422.
    Client { status: StatusCode, code: &'static str, message: String, details: Vec<Problem> },
    /// A quota is used up: 429 with `Retry-After`.
    TooMany { code: &'static str, message: String, retry_after_secs: u64 },
    /// Ours: logged with its cause, answered as a bare 500/503 without internals.
    Internal(anyhow::Error),
    /// Redis or storage is unreachable right now: 503, worth retrying.
    Unavailable(anyhow::Error),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Client { status, code, message: message.into(), details: Vec::new() }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    /// A field of the request is invalid (422, naming the field).
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        AttributionError::option(field, problem).into()
    }
}

impl From<AttributionError> for ApiError {
    fn from(e: AttributionError) -> Self {
        let status = match e.code {
            ErrorCode::InvalidOption => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::LimitExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => return ApiError::Internal(anyhow::anyhow!(e.message)),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::Client { status, code: e.code.as_str(), message: e.message, details: e.details }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        // Redis and object-store faults reach us as anyhow errors with a redis/io cause.
        let transient = e.chain().any(|cause| {
            cause.downcast_ref::<redis::RedisError>().is_some() || cause.downcast_ref::<std::io::Error>().is_some()
        });
        if transient { ApiError::Unavailable(e) } else { ApiError::Internal(e) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, code, message, details) = match self {
            ApiError::Client { status, code, message, details } => (status, code, message, details),
            ApiError::TooMany { code, message, retry_after_secs } => {
                retry_after = Some(retry_after_secs);
                (StatusCode::TOO_MANY_REQUESTS, code, message, Vec::new())
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred".to_owned(), Vec::new())
            }
            ApiError::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "dependency unavailable");
                let message = "a backing service is unavailable; retry shortly".to_owned();
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", message, Vec::new())
            }
        };
        let request_id = crate::observe::request_id();
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message, details, request_id } };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Every error response: `{"error": {"code", "message", "details"?, "request_id"?}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {
    "code": "invalid_option", "message": "invalid option `markov_order`: must be 1 to 4",
    "details": [{"column": "markov_order", "problem": "must be 1 to 4"}],
    "request_id": "0c6a71b0-10ab-4039-831e-a24b5c94e547"
}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `unauthorized`, `forbidden`, `not_found`, `invalid_option`, `rate_limited`, ...
    pub code: String,
    /// What went wrong, in words.
    pub message: String,
    /// Located problems (row, column or field).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Problem>,
    /// The request's id (also in the `x-request-id` header and the logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// `Query` whose rejections (unknown or malformed parameters) answer 400 in our format.
pub struct AppQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for AppQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(AppQuery(value)),
            Err(rejection) => Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())),
        }
    }
}

/// `Json` whose rejections (bad JSON, unknown fields, wrong types) answer in our format,
/// naming the field serde names.
pub struct AppJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for AppJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(AppJson(value)),
            Err(rejection) => Err(ApiError::new(rejection.status(), "invalid_request", rejection.body_text())),
        }
    }
}
