//! The API's one error type and its one mapping to HTTP: every error body is
//! `{"error": {"code", "message", "details"?, "request_id"?}}` (docs/service.md, "Errors"),
//! and [`ApiCode`] is the one table of codes, each with its status and meaning.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mta_core::{AttributionError, ErrorCode, Problem};
use serde::Serialize;
use utoipa::ToSchema;

/// Declares [`ApiCode`] from one table: variant, code, HTTP status, meaning.
macro_rules! api_codes {
    ($($variant:ident = $code:literal, $status:ident, $meaning:literal;)*) => {
        /// Every `code` an error body can carry. Each variant is its code in camel case (a
        /// test checks), which the OpenAPI document lists as the code's enum.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ApiCode {
            $($variant,)*
        }

        impl ApiCode {
            pub const ALL: &[ApiCode] = &[$(ApiCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(ApiCode::$variant => $code,)* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(ApiCode::$variant => StatusCode::$status,)* }
            }

            /// What the code means, as docs/service.md lists it.
            pub fn meaning(self) -> &'static str {
                match self { $(ApiCode::$variant => $meaning,)* }
            }
        }
    };
}

api_codes! {
    InvalidRequest = "invalid_request", BAD_REQUEST, "Malformed JSON, query or multipart body, or a bad header";
    Unauthorized = "unauthorized", UNAUTHORIZED, "No key, or an unknown, revoked or expired key";
    Forbidden = "forbidden", FORBIDDEN, "The key's role may not do this";
    NotFound = "not_found", NOT_FOUND, "No such job, upload, key or route in this tenant";
    CreditsNotRequested = "credits_not_requested", NOT_FOUND, "The job did not ask for per-journey credits";
    RequestInProgress = "request_in_progress", CONFLICT, "A request with the same Idempotency-Key is still running";
    JobFinished = "job_finished", CONFLICT, "The job already ended (it cannot be cancelled)";
    JobNotEnded = "job_not_ended", CONFLICT, "The job has not ended: no webhook event to redeliver yet";
    ResultNotReady = "result_not_ready", CONFLICT, "The job has not succeeded yet; poll it";
    JobFailed = "job_failed", CONFLICT, "The job failed; its `error` says why";
    JobCancelled = "job_cancelled", CONFLICT, "The job was cancelled: it has no result";
    KeyRevoked = "key_revoked", CONFLICT, "A revoked key cannot be rotated";
    DirectUploadUnsupported = "direct_upload_unsupported", CONFLICT, "The object store takes no direct uploads: stream the file to `POST /v1/uploads`";
    LimitExceeded = "limit_exceeded", PAYLOAD_TOO_LARGE, "A body, file or configured limit is exceeded";
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "The body is not of a type the route takes";
    UnknownFormat = "unknown_format", UNPROCESSABLE_ENTITY, "The file is none of the supported formats";
    EmptyInput = "empty_input", UNPROCESSABLE_ENTITY, "The file holds no data rows";
    TruncatedInput = "truncated_input", UNPROCESSABLE_ENTITY, "The file ends inside a record or compressed stream";
    MissingColumns = "missing_columns", UNPROCESSABLE_ENTITY, "A column the input kind needs is absent";
    InvalidValue = "invalid_value", UNPROCESSABLE_ENTITY, "Values cannot be read or break a rule (rows in `details`)";
    InvalidOption = "invalid_option", UNPROCESSABLE_ENTITY, "A field of the request is invalid (named in `details`)";
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, "The key's or the service's request rate is used up";
    UploadQuotaExceeded = "upload_quota_exceeded", TOO_MANY_REQUESTS, "The tenant's daily upload bytes are used up";
    Internal = "internal", INTERNAL_SERVER_ERROR, "A fault of ours (details only in the server log)";
    Unavailable = "unavailable", SERVICE_UNAVAILABLE, "Redis or the object store is unreachable; retry shortly";
}

impl From<ErrorCode> for ApiCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::UnknownFormat => ApiCode::UnknownFormat,
            ErrorCode::EmptyInput => ApiCode::EmptyInput,
            ErrorCode::TruncatedInput => ApiCode::TruncatedInput,
            ErrorCode::MissingColumns => ApiCode::MissingColumns,
            ErrorCode::InvalidValue => ApiCode::InvalidValue,
            ErrorCode::InvalidOption => ApiCode::InvalidOption,
            ErrorCode::LimitExceeded => ApiCode::LimitExceeded,
            ErrorCode::Internal => ApiCode::Internal,
        }
    }
}

#[derive(Debug)]
pub enum ApiError {
    /// The request itself is wrong (bad JSON, bad option, bad id), or the caller may not.
    Client { code: ApiCode, message: String, details: Vec<Problem> },
    /// A quota is used up: 429 with `Retry-After`.
    TooMany { code: ApiCode, message: String, retry_after_secs: u64 },
    /// Ours: logged with its cause, answered as a bare 500 without internals.
    Internal(anyhow::Error),
    /// Redis or storage is unreachable right now: 503, worth retrying.
    Unavailable(anyhow::Error),
}

impl ApiError {
    pub fn new(code: ApiCode, message: impl Into<String>) -> Self {
        ApiError::Client { code, message: message.into(), details: Vec::new() }
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(ApiCode::NotFound, format!("no such {what}"))
    }

    /// A field of the request is invalid (422, naming the field).
    pub fn field(field: &str, problem: impl Into<String>) -> Self {
        AttributionError::option(field, problem).into()
    }

    /// A body that breaks a limit or does not parse, as axum's extractors report it.
    fn rejected(status: StatusCode, message: String) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiCode::LimitExceeded,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiCode::UnsupportedMediaType,
            _ => ApiCode::InvalidRequest,
        };
        ApiError::new(code, message)
    }
}

impl From<AttributionError> for ApiError {
    fn from(e: AttributionError) -> Self {
        match ApiCode::from(e.code) {
            ApiCode::Internal => ApiError::Internal(anyhow::anyhow!(e.message)),
            code => ApiError::Client { code, message: e.message, details: e.details },
        }
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        ApiError::rejected(e.status(), e.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(e: axum::extract::multipart::MultipartRejection) -> Self {
        ApiError::rejected(e.status(), e.body_text())
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
        let (code, message, details) = match self {
            ApiError::Client { code, message, details } => (code, message, details),
            ApiError::TooMany { code, message, retry_after_secs } => {
                retry_after = Some(retry_after_secs);
                (code, message, Vec::new())
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (ApiCode::Internal, "an internal error occurred".to_owned(), Vec::new())
            }
            ApiError::Unavailable(e) => {
                tracing::warn!(error = format!("{e:#}"), "dependency unavailable");
                (ApiCode::Unavailable, "a backing service is unavailable; retry shortly".to_owned(), Vec::new())
            }
        };
        let request_id = crate::observe::request_id();
        let body = ErrorBody { error: ErrorDetail { code, message, details, request_id } };
        let mut response = (code.status(), Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if code == ApiCode::Unauthorized {
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
    /// Machine-readable; docs/service.md lists every code with its status.
    pub code: ApiCode,
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

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(AppQuery(value)),
            Err(rejection) => Err(ApiError::new(ApiCode::InvalidRequest, rejection.body_text())),
        }
    }
}

/// A JSON body parsed once into its type. Bad JSON answers 400; a value that does not fit
/// its field (a wrong type, an unknown model id, a malformed upload id) answers 422
/// `invalid_option` naming the field's path in `details`, like every other invalid field.
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(ApiCode::UnsupportedMediaType, "expected `Content-Type: application/json`"));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::rejected(rejection.status(), rejection.body_text()))?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Parses a JSON document into `T`, naming the path of a value that does not fit.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return not_json(&inner);
        }
        let problem = Problem { row: None, column: (path != ".").then_some(path), problem: inner.to_string() };
        let message = match &problem.column {
            Some(field) => format!("invalid field `{field}`: {inner}"),
            None => format!("invalid body: {inner}"),
        };
        ApiError::Client { code: ApiCode::InvalidOption, message, details: vec![problem] }
    })?;
    deserializer.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::new(ApiCode::InvalidRequest, format!("the body is not valid JSON: {e}"))
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_list_every_code_with_its_status_and_meaning() {
        let docs = include_str!("../../docs/service.md");
        let listed: Vec<&str> = docs.lines().filter(|line| line.starts_with("| `")).collect();
        let table: Vec<String> = ApiCode::ALL
            .iter()
            .map(|code| format!("| `{}` | {} | {} |", code.as_str(), code.status().as_u16(), code.meaning()))
            .collect();
        assert_eq!(listed, table, "docs/service.md's table of error codes differs from ApiCode");
    }

    #[test]
    fn each_code_serialises_as_its_name() {
        for code in ApiCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            inner: Inner,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            order: u8,
        }
        let ApiError::Client { code, details, .. } = parse_json::<Body>(br#"{"inner": {"order": 900}}"#).unwrap_err()
        else {
            panic!("a client error")
        };
        assert_eq!((code, details[0].column.as_deref()), (ApiCode::InvalidOption, Some("inner.order")));
        let ApiError::Client { code, .. } = parse_json::<Body>(b"{not json").unwrap_err() else { panic!() };
        assert_eq!(code, ApiCode::InvalidRequest);
        let ApiError::Client { code, .. } = parse_json::<Body>(br#"{"inner": {"order": 1}} trailing"#).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(code, ApiCode::InvalidRequest);
    }
}
