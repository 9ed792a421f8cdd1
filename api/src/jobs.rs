//! Job endpoints: submit (JSON spec referencing an upload, or multipart file + spec),
//! list, read, cancel, and fetch results and credits.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use mta_platform::JobSpec;
use mta_platform::ids::{JobId, UploadId};
use mta_platform::job::{JobRecord, JobState, NewJob, UploadRecord};
use mta_platform::queue::SplitTask;
use mta_platform::storage::{keys, stored_result};
use mta_platform::webhook::{Delivery, JobWebhook, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{Auth, Caller, Read, Submit};
use crate::error::{ApiError, AppJson, AppQuery, ErrorBody};
use crate::uploads::store_upload;

const MAX_IDEMPOTENCY_KEY: usize = 255;

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
        (status = 202, description = "Queued (or answered from the cache); `Location` names the job", body = JobRecord,
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
        let upload_id = spec.upload_id.as_deref().ok_or_else(|| ApiError::field("upload_id", "is required"))?;
        let upload_id: UploadId = upload_id.parse().map_err(|_| ApiError::field("upload_id", "is not an upload id"))?;
        (spec, upload_id)
    };
    spec.validate(&state.config.limits)?;
    let webhook = webhook_of(&state, &caller, &spec)?;
    let upload = state
        .ledger
        .upload(&caller.tenant, &upload_id)
        .await?
        .ok_or_else(|| ApiError::field("upload_id", "no such upload"))?;
    let spec = JobSpec { upload_id: Some(upload_id.to_string()), ..spec };

    let job_id = JobId::random();
    if let Some(key) = &idempotency_key
        && let Some(existing) = state.ledger.claim_idempotency_key(&caller.tenant, key, &job_id).await?
    {
        let Some(job) = state.ledger.job(&existing).await? else {
            // The first request holds the key but has not recorded its job yet.
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            ));
        };
        let mut response = accepted(&job);
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        return Ok(response);
    }
    match record_and_enqueue(&state, job_id, &upload, &spec, webhook.as_ref().map(|w| &w.record)).await {
        Ok(job) => {
            state.audit.record(caller.event("job.created", job.id)).await;
            let mut response = accepted(&job);
            if let Some(secret) = webhook.and_then(|w| w.generated_secret) {
                // The generated signing secret is shown this once, like an API key.
                let mut body = serde_json::to_value(&job).map_err(|e| ApiError::Internal(e.into()))?;
                body["webhook_secret"] = Value::String(secret);
                *response.body_mut() = Body::from(body.to_string());
            }
            Ok(response)
        }
        Err(e) => {
            // A failed submission must not pin its key: the client's retry starts afresh.
            if let Some(key) = &idempotency_key {
                let _ = state.ledger.release_idempotency_key(&caller.tenant, key, &job_id).await;
            }
            Err(e)
        }
    }
}

/// Records the job (answered from the cache when possible) and enqueues its first stage.
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

async fn record_and_enqueue(
    state: &AppState,
    job_id: JobId,
    upload: &UploadRecord,
    spec: &JobSpec,
    webhook: Option<&JobWebhook>,
) -> Result<JobRecord, ApiError> {
    let cache_key = spec.cache_key(&upload.tenant, &upload.sha256);
    let request_id = crate::observe::request_id().unwrap_or_default();
    let new = NewJob { id: job_id, upload, spec, request_id: &request_id, webhook };
    state.metrics.jobs_submitted.inc();
    if let Some(source) = state.ledger.cached_job(&cache_key).await? {
        state.ledger.create_cached_job(&new, &source).await?;
        state.metrics.cache_hits.inc();
        tracing::info!(job = %job_id, source = %source.id, "job answered from the result cache");
    } else {
        state.ledger.create_job(&new, &cache_key).await?;
        if let Err(e) = state.queue.push(SplitTask { job: job_id, split: None, range: None }).await {
            let error = mta_core::AttributionError::new(mta_core::ErrorCode::Internal, "the job could not be queued");
            let _ = state.ledger.mark_failed(&job_id, &error).await;
            return Err(ApiError::Unavailable(e));
        }
        tracing::info!(job = %job_id, upload = %upload.upload_id, tenant = %upload.tenant, "job queued");
    }
    state.ledger.job(&job_id).await?.ok_or_else(|| ApiError::not_found("job"))
}

fn accepted(job: &JobRecord) -> Response {
    let location = format!("/v1/jobs/{}", job.id);
    let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
    response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("ids are ASCII"));
    response
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY);
    let key = key.filter(|k| k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"),
        )
    })
}

/// A multipart submission: a `file` part (streamed like an upload) and an optional `spec` part (JSON).
async fn spec_and_file(state: &AppState, caller: &Caller, request: Request) -> Result<(JobSpec, UploadId), ApiError> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::new(e.status(), "invalid_request", e.body_text()))?;
    let bad = |e: axum::extract::multipart::MultipartError| ApiError::new(e.status(), "invalid_request", e.body_text());
    let mut spec = JobSpec::default();
    let mut upload = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("spec") => {
                let mut text = Vec::new();
                while let Some(piece) = field.chunk().await.map_err(bad)? {
                    text.extend_from_slice(&piece);
                    if text.len() > crate::JSON_BODY_LIMIT {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "limit_exceeded",
                            format!("the spec part is larger than {} bytes", crate::JSON_BODY_LIMIT),
                        ));
                    }
                }
                let text = String::from_utf8(text).map_err(|_| ApiError::field("spec", "is not UTF-8"))?;
                spec = serde_json::from_str(&text).map_err(|e| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", format!("spec: {e}"))
                })?;
            }
            Some("file") if upload.is_none() => {
                let stream = field.map_err(|e| e.body_text());
                upload = Some(store_upload(state, caller, None, stream).await?.upload_id);
            }
            Some(other) => {
                return Err(ApiError::field(
                    "multipart",
                    format!("unexpected part `{other}` (expected `file` and `spec`)"),
                ));
            }
            None => return Err(ApiError::field("multipart", "a part has no name")),
        }
    }
    if spec.upload_id.is_some() {
        return Err(ApiError::field("upload_id", "must not be given with a file part"));
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
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// `GET /v1/jobs`: the tenant's jobs, newest first.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "The tenant's jobs, newest first", body = JobList),
        (status = 400, description = "An unknown query parameter", body = ErrorBody),
        (status = 422, description = "`limit` out of range", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let jobs = state.ledger.list_jobs(&caller.tenant, limit).await?;
    Ok(Json(JobList { jobs }))
}

/// The caller's job `id`: a malformed id, a missing job and another tenant's job are all
/// the same 404.
async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<JobRecord, ApiError> {
    let id: JobId = id.parse().map_err(|_| ApiError::not_found("job"))?;
    state.ledger.tenant_job(&caller.tenant, &id).await?.ok_or_else(|| ApiError::not_found("job"))
}

/// One job: state, stage, progress, error.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobRecord),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    Ok(Json(find(&state, &caller, &id).await?))
}

/// `DELETE /v1/jobs/{id}`: queued units become no-ops, running ones stop between blocks.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Cancelled", body = JobRecord),
        (status = 403, description = "The key may not cancel (role `read`)", body = ErrorBody),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
        (status = 409, description = "The job already ended", body = ErrorBody),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let job = find(&state, &caller, &id).await?;
    if !state.ledger.cancel(&job.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_finished",
            format!("the job already ended ({})", job.state.as_str()),
        ));
    }
    state.audit.record(caller.event("job.cancelled", job.id)).await;
    Ok(Json(find(&state, &caller, &id).await?))
}

/// `GET /v1/jobs/{id}/timeline`: which worker started and ended which unit, when.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/timeline",
    operation_id = "get_job_timeline",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "Task starts and ends", body = Object),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
    )
)]
pub async fn timeline(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let job = find(&state, &caller, &id).await?;
    Ok(Json(json!({ "job_id": job.id, "events": state.ledger.timeline(&job.id).await? })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

fn require_success(job: &JobRecord) -> Result<(), ApiError> {
    match job.state {
        JobState::Succeeded => Ok(()),
        JobState::Failed => Err(ApiError::new(StatusCode::CONFLICT, "job_failed", "the job failed; see its `error`")),
        state => Err(ApiError::new(
            StatusCode::CONFLICT,
            "result_not_ready",
            format!("the job is {}; poll GET /v1/jobs/{} until it succeeds", state.as_str(), job.id),
        )),
    }
}

/// `GET /v1/jobs/{id}/result` (`?format=csv` for a tidy table).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/result",
    operation_id = "get_job_result",
    tag = "results",
    params(("id" = String, Path, description = "Job id"), ResultQuery),
    responses(
        (status = 200, description = "The result (DESIGN.md 5), or one CSV row per model and channel", content(
            (JobResult = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown or repeated query parameter", body = ErrorBody),
        (status = 404, description = "No such job in this tenant", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (yet)", body = ErrorBody),
        (status = 422, description = "Unknown format", body = ErrorBody),
    )
)]
pub async fn result(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<ResultQuery>,
) -> Result<Response, ApiError> {
    let job = find(&state, &caller, &id).await?;
    require_success(&job)?;
    let stored =
        stored_result(&state.ledger, &state.storage, &job).await?.ok_or_else(|| ApiError::not_found("result"))?;
    // A cached job serves its source's result under its own id.
    let body = stored.replacen(&job.result_owner().to_string(), &job.id.to_string(), 1);
    state.audit.record(caller.event("result.downloaded", job.id)).await;
    match query.format.as_deref() {
        None | Some("json") => Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response()),
        Some("csv") => {
            let value: Value = serde_json::from_str(&body).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], result_csv(&value)).into_response())
        }
        Some(other) => Err(ApiError::field("format", format!("`{other}` is not json or csv"))),
    }
}

/// One row per model × channel: `model,channel,conversions,value,share,removal_effect,removal_effect_value`.
fn result_csv(result: &Value) -> String {
    let mut out = String::from("model,channel,conversions,value,share,removal_effect,removal_effect_value\n");
    let Some(models) = result["models"].as_object() else { return out };
    for (model, body) in models {
        for channel in body["channels"].as_array().into_iter().flatten() {
            let number = |field: &str| channel[field].as_f64().map(|v| v.to_string()).unwrap_or_default();
            let name = channel["channel"].as_str().unwrap_or_default();
            let quoted = if name.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name.to_owned()
            };
            out.push_str(&format!(
                "{model},{quoted},{},{},{},{},{}\n",
                number("conversions"),
                number("value"),
                number("share"),
                number("removal_effect"),
                number("removal_effect_value"),
            ));
        }
    }
    out
}

/// `GET /v1/jobs/{id}/webhooks`: the job's webhook delivery and every attempt.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/webhooks",
    operation_id = "get_job_webhooks",
    tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The delivery: state, event, webhook-id, attempts", body = Delivery),
        (status = 404, description = "No such job in this tenant, or it has no webhook", body = ErrorBody),
    )
)]
pub async fn webhooks(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Json<Delivery>, ApiError> {
    let job = find(&state, &caller, &id).await?;
    let delivery = state.deliveries.delivery(&job.id).await?;
    Ok(Json(delivery.ok_or_else(|| ApiError::not_found("webhook of this job"))?))
}

/// `POST /v1/jobs/{id}/webhooks/redeliver`: sends the job's event again, from a fresh schedule.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/webhooks/redeliver",
    operation_id = "redeliver_job_webhook",
    tag = "webhooks",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 202, description = "Queued for delivery now", body = Delivery),
        (status = 403, description = "The key may not redeliver (role `read`)", body = ErrorBody),
        (status = 404, description = "No such job in this tenant, or it has no webhook", body = ErrorBody),
        (status = 409, description = "The job has not ended: there is no event yet", body = ErrorBody),
    )
)]
pub async fn redeliver(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Submit>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let job = find(&state, &caller, &id).await?;
    if state.deliveries.delivery(&job.id).await?.is_none() {
        return Err(ApiError::not_found("webhook of this job"));
    }
    if !state.deliveries.redeliver(&job.id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "job_not_ended",
            "the job has not ended: no event to deliver yet",
        ));
    }
    state.audit.record(caller.event("webhook.redelivery_requested", job.id)).await;
    let delivery = state.deliveries.delivery(&job.id).await?.ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// `GET /v1/jobs/{id}/credits`: streams the Parquet export.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/credits",
    operation_id = "get_job_credits",
    tag = "results",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "One row per converting journey, channel and model", body = Vec<u8>,
            content_type = "application/vnd.apache.parquet"),
        (status = 404, description = "No such job in this tenant, or it did not ask for credits", body = ErrorBody),
        (status = 409, description = "The job has not succeeded (yet)", body = ErrorBody),
    )
)]
pub async fn credits(
    State(state): State<AppState>,
    Auth(caller, ..): Auth<Read>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = find(&state, &caller, &id).await?;
    if !job.spec.export_credits {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "credits_not_requested",
            "this job did not ask for credits; submit with \"export_credits\": true",
        ));
    }
    require_success(&job)?;
    let (size, stream) = state
        .storage
        .get_stream(&keys::credits(&job.tenant, &job.result_owner()))
        .await?
        .ok_or_else(|| ApiError::not_found("credits"))?;
    state.audit.record(caller.event("credits.downloaded", job.id)).await;
    let headers = [
        (header::CONTENT_TYPE, "application/vnd.apache.parquet".to_owned()),
        (header::CONTENT_LENGTH, size.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"credits-{}.parquet\"", job.id)),
    ];
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// `GET /v1/jobs` body.
#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobRecord>,
}

/// The result document: the job's id and the engine's result (schema for the API document;
/// the stored JSON is served as it is).
#[derive(Serialize, ToSchema)]
pub struct JobResult {
    job_id: JobId,
    #[serde(flatten)]
    result: mta_core::AttributionResult,
}
