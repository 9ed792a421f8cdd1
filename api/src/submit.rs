//! `POST /v1/jobs`: the request's edge. It parses the spec (JSON, or the `spec` part of a
//! multipart form whose `file` part is streamed like an upload), checks the options, the
//! upload and the webhook, and hands the rest to `mta_platform::submit`.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use mta_platform::JobSpec;
use mta_platform::ids::UploadId;
use mta_platform::job::JobRecord;
use mta_platform::submit::{Submission, SubmitError, Submitted, submit};
use mta_platform::webhook::{JobWebhook, Secret};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{Auth, Caller, Submit};
use crate::error::{ApiCode, ApiError, AppJson, ErrorBody, parse_json};
use crate::uploads::store_upload;

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The answer to a submission: the job, and a webhook secret the service made, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmittedJob {
    #[serde(flatten)]
    pub job: JobRecord,
    /// The generated signing secret of the job's webhook (only when the spec gave none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// `POST /v1/jobs`: 202 with the job and its `Location`.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    operation_id = "submit_job",
    tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "Makes a retried submission return the same job (24 h)")),
    request_body(description = "A spec naming an upload, or a multipart form with the file and the spec", content(
        (JobSpec = "application/json"),
        (inline(MultipartSubmission) = "multipart/form-data"),
    )),
    responses(
        (status = 202, description = "Queued (or answered from the cache); `Location` names the job", body = SubmittedJob,
            headers(("Location" = String, description = "/v1/jobs/{id}"))),
        (status = 400, description = "Malformed JSON or multipart body, or a bad Idempotency-Key", body = ErrorBody),
        (status = 403, description = "The key may not submit (role `read`)", body = ErrorBody),
        (status = 409, description = "The same Idempotency-Key is still being processed", body = ErrorBody),
        (status = 413, description = "The spec or the file is too large", body = ErrorBody),
        (status = 415, description = "The body is neither `application/json` nor `multipart/form-data`", body = ErrorBody),
        (status = 422, description = "A field is invalid (named in `details`)", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    request: Request,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency_key(request.headers())?;
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (spec, upload_id) = if is_multipart {
        spec_and_file(&state, &caller, request).await?
    } else {
        let limited = request.map(|body| Body::new(http_body_util::Limited::new(body, crate::JSON_BODY_LIMIT)));
        let AppJson(spec) = AppJson::<JobSpec>::from_request(limited, &state).await?;
        let upload_id = spec.upload_id.ok_or_else(|| ApiError::field("upload_id", "is required"))?;
        (spec, upload_id)
    };
    spec.check()?;
    let webhook = webhook_of(&state, &caller, &spec)?;
    let upload = state
        .ledger
        .upload(&caller.tenant, &upload_id)
        .await?
        .ok_or_else(|| ApiError::field("upload_id", "no such upload"))?;
    // The cost table is another upload of the same tenant (another's is as unknown as none).
    let spend_upload = match spec.spend_upload_id {
        Some(id) => Some(
            state
                .ledger
                .upload(&caller.tenant, &id)
                .await?
                .ok_or_else(|| ApiError::field("spend_upload_id", "no such upload"))?,
        ),
        None => None,
    };
    let spec = JobSpec { upload_id: Some(upload_id), ..spec };
    let request_id = crate::observe::request_id().unwrap_or_default();
    let submission = Submission {
        upload: &upload,
        spend_upload: spend_upload.as_ref(),
        spec: &spec,
        webhook: webhook.as_ref().map(|w| &w.record),
        idempotency_key: idempotency_key.as_deref(),
        request_id: &request_id,
        faults: &state.config.faults,
    };
    let (job, replayed) = match submit(&state.ledger, &state.queue, &state.metrics, submission).await {
        Ok(Submitted::Created(job)) => (job, false),
        Ok(Submitted::Replayed(job)) => (job, true),
        Err(SubmitError::InProgress) => {
            return Err(ApiError::new(
                ApiCode::RequestInProgress,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        }
        Err(SubmitError::NotQueued(e)) => return Err(ApiError::Unavailable(e)),
        Err(SubmitError::Ledger(e)) => return Err(e.into()),
    };
    if !replayed {
        state.audit.record(caller.event("job.created", job.id)).await;
    }
    let location = format!("/v1/jobs/{}", job.id);
    let webhook_secret = if replayed { None } else { webhook.and_then(|w| w.generated_secret) };
    let mut response = (StatusCode::ACCEPTED, Json(SubmittedJob { job, webhook_secret })).into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_str(&location).expect("ids are ASCII"));
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// A job's webhook, checked: its own (the URL against the operator's address policy, the
/// secret parsed or generated) or else the key's default one.
struct CheckedWebhook {
    record: JobWebhook,
    /// Shown once in the answer when the service made the secret.
    generated_secret: Option<String>,
}

fn webhook_of(state: &AppState, caller: &Caller, spec: &JobSpec) -> Result<Option<CheckedWebhook>, ApiError> {
    let Some(webhook) = &spec.webhook else {
        let default = caller.default_webhook.clone().map(|url| JobWebhook {
            url,
            secret: None,
            key: Some(caller.key_id.clone()),
        });
        return Ok(default.map(|record| CheckedWebhook { record, generated_secret: None }));
    };
    let url = checked_webhook_url(state, &webhook.url, "webhook.url")?;
    let (secret, generated_secret) = secret_or_generated(webhook.secret.as_deref(), "webhook.secret")?;
    Ok(Some(CheckedWebhook { record: JobWebhook { url, secret: Some(secret), key: None }, generated_secret }))
}

/// A webhook URL the operator's address policy accepts, or a 422 naming `field`.
pub(crate) fn checked_webhook_url(state: &AppState, url: &str, field: &str) -> Result<String, ApiError> {
    let policy = &state.config.webhooks.policy;
    Ok(policy.check_url(url).map_err(|e| ApiError::field(field, e))?.to_string())
}

/// The client's `whsec_` secret (a 422 naming `field` when malformed), or a new one,
/// which is also returned second so it can be shown once.
pub(crate) fn secret_or_generated(secret: Option<&str>, field: &str) -> Result<(String, Option<String>), ApiError> {
    match secret {
        Some(secret) => {
            Secret::parse(secret).map_err(|e| ApiError::field(field, e))?;
            Ok((secret.to_owned(), None))
        }
        None => {
            let secret = Secret::generate().1;
            Ok((secret.clone(), Some(secret)))
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY);
    let key = key.filter(|k| k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::new(
            ApiCode::InvalidRequest,
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"),
        )
    })
}

/// A multipart submission: a `file` part (streamed like an upload) and an optional `spec` part (JSON).
async fn spec_and_file(state: &AppState, caller: &Caller, request: Request) -> Result<(JobSpec, UploadId), ApiError> {
    let mut multipart = Multipart::from_request(request, state).await?;
    let mut spec = JobSpec::default();
    let mut upload = None;
    let mut spend = None;
    while let Some(mut field) = multipart.next_field().await? {
        match field.name() {
            Some("spec") => {
                let mut text = Vec::new();
                while let Some(piece) = field.chunk().await? {
                    text.extend_from_slice(&piece);
                    if text.len() > crate::JSON_BODY_LIMIT {
                        return Err(ApiError::new(
                            ApiCode::LimitExceeded,
                            format!("the spec part is larger than {} bytes", crate::JSON_BODY_LIMIT),
                        ));
                    }
                }
                spec = parse_json(&text)?;
            }
            Some("file") if upload.is_none() => {
                let stream = field.map_err(|e| e.body_text());
                upload = Some(store_upload(state, caller, None, stream).await?.upload_id);
            }
            Some("spend") if spend.is_none() => {
                let stream = field.map_err(|e| e.body_text());
                spend = Some(store_upload(state, caller, None, stream).await?.upload_id);
            }
            Some(other) => {
                return Err(ApiError::field(
                    "multipart",
                    format!("unexpected part `{other}` (expected `file`, `spec` and optionally `spend`)"),
                ));
            }
            None => return Err(ApiError::field("multipart", "a part has no name")),
        }
    }
    if spec.upload_id.is_some() {
        return Err(ApiError::field("upload_id", "must not be given with a file part"));
    }
    if let Some(spend) = spend {
        if spec.spend_upload_id.is_some() {
            return Err(ApiError::field("spend_upload_id", "must not be given with a spend part"));
        }
        spec.spend_upload_id = Some(spend);
    }
    let upload = upload.ok_or_else(|| ApiError::field("file", "the multipart body has no `file` part"))?;
    Ok((spec, upload))
}

/// A multipart submission (schema for the API document).
#[derive(ToSchema)]
#[allow(dead_code)]
struct MultipartSubmission {
    /// The file.
    #[schema(content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    /// The job spec as JSON, without `upload_id`.
    spec: Option<JobSpec>,
    /// A cost table (CSV or Parquet), stored as an upload and named by the job's `spend_upload_id`.
    #[schema(content_media_type = "application/octet-stream")]
    spend: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(value: &[u8]) -> Result<Option<String>, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_bytes(value).unwrap());
        idempotency_key(&headers)
    }

    #[test]
    fn an_idempotency_key_is_1_to_255_printable_ascii_characters() {
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
        assert_eq!(key(b"order-42/retry").unwrap().as_deref(), Some("order-42/retry"));
        assert!(key(&[b'k'; 255]).unwrap().is_some());
        for bad in [&b""[..], &[b'k'; 256], b"a b", b"tab\there", "caf\u{e9}".as_bytes()] {
            let Err(ApiError::Client { code, .. }) = key(bad) else { panic!("{bad:?} was accepted") };
            assert_eq!(code, ApiCode::InvalidRequest);
        }
    }
}
