//! Delivers job events to webhooks: claims due deliveries (with a lease), builds the event
//! once, signs it, sends it over a connection pinned to a checked address, and records
//! the attempt with the next one scheduled (see `mta_platform::webhook`).

use std::time::{Duration, Instant};

use mta_core::result::Summary;
use mta_platform::JobId;
use mta_platform::ids::Tenant;
use mta_platform::job::JobState;
use mta_platform::results::stored_result;
use mta_platform::webhook::{Pending, Secret, Unreachable, attempt_now};
use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

use crate::Services;

/// Deliveries one worker attempts at once.
const BATCH: usize = 8;
/// The longest `Retry-After` honoured: a receiver cannot park an event for longer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Runs until `shutdown` turns true; a delivery in flight is finished first.
pub async fn dispatch(services: Services, mut shutdown: watch::Receiver<bool>) {
    let poll = services.config.queue.poll_interval;
    while !*shutdown.borrow() {
        let lease = services.config.webhooks.lease();
        match services.deliveries.claim_due(lease, BATCH).await {
            Ok(due) if !due.is_empty() => {
                futures_util::future::join_all(due.iter().map(|job| deliver(&services, *job))).await;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "webhook deliveries unavailable"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

async fn deliver(services: &Services, job: JobId) {
    let span = tracing::info_span!("webhook", job = %job);
    async {
        let pending = match services.deliveries.pending(&job).await {
            Ok(Some(pending)) => pending,
            Ok(None) => {
                let _ = services.deliveries.drop_due(&job).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "cannot read a webhook delivery; its lease will end");
                return;
            }
        };
        if let Err(e) = attempt(services, pending).await {
            tracing::warn!(error = format!("{e:#}"), "webhook attempt not recorded; it runs again after its lease");
        }
    }
    .instrument(span)
    .await
}

/// One attempt: send, record, schedule the next or finish.
async fn attempt(services: &Services, pending: Pending) -> anyhow::Result<()> {
    let config = &services.config.webhooks;
    let number = pending.attempts + 1;
    let body = match &pending.body {
        Some(body) => body.clone(),
        None => {
            let body = event_body(services, &pending).await?;
            services.deliveries.set_body(&pending.job, &body).await?;
            body
        }
    };
    let started = Instant::now();
    let outcome = send(services, &pending, &body).await;
    let latency = started.elapsed();
    let (status, error, next) = match outcome {
        Ok((status, _)) if (200..300).contains(&status) => (Some(status), None, Err("delivered")),
        Ok((410, _)) => {
            (Some(410), Some("410 Gone: the receiver asked for no more deliveries".to_owned()), Err("gone"))
        }
        Ok((status, retry_after)) => {
            let next = config.next_delay(number).map(|delay| delay.max(retry_after.unwrap_or_default()));
            (Some(status), Some(format!("answered {status}")), next.ok_or("failed"))
        }
        Err(Refusal::Address(reason)) => (None, Some(reason), Err("failed")),
        Err(Refusal::Transport(reason)) => (None, Some(reason), config.next_delay(number).ok_or("failed")),
    };
    let mut record = attempt_now(number, status, latency, error);
    if let Ok(delay) = next {
        record.next_attempt_at = Some(mta_platform::ids::timestamp_in(delay));
    }
    let outcome = match next {
        Ok(_) => "retry",
        Err(state) => state,
    };
    services.metrics.webhook(outcome);
    tracing::info!(attempt = number, status, outcome, ms = latency.as_secs_f64() * 1e3, "webhook attempt");
    if !services.deliveries.record(&pending, &record, next).await? {
        tracing::info!(
            attempt = number,
            "webhook attempt superseded (a redelivery, or another worker recorded it first)"
        );
    }
    Ok(())
}

enum Refusal {
    /// The address policy refuses the target: no retry can help.
    Address(String),
    /// Could not connect, timed out, DNS failed: worth retrying.
    Transport(String),
}

/// Sends the signed event over a connection pinned to a checked address; the status and
/// any `Retry-After` (seconds).
async fn send(services: &Services, pending: &Pending, body: &str) -> Result<(u16, Option<Duration>), Refusal> {
    let config = &services.config.webhooks;
    let url = config.policy.check_url(&pending.url).map_err(Refusal::Address)?;
    let address = config.policy.resolve(&url).await.map_err(|unreachable| match unreachable {
        Unreachable::Refused(reason) => Refusal::Address(reason),
        Unreachable::Lookup(reason) => Refusal::Transport(reason),
    })?;
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the host itself, around the address checked above.
        .no_proxy()
        .connect_timeout(config.connect_timeout)
        .timeout(config.timeout)
        .resolve(&host, address)
        .build()
        .map_err(|e| Refusal::Transport(format!("client: {e}")))?;
    let timestamp = chrono::Utc::now().timestamp();
    let signature = Secret::signatures(&pending.secrets, &pending.webhook_id, timestamp, body.as_bytes());
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("mta-webhooks/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &pending.webhook_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| Refusal::Transport(if e.is_timeout() { "timed out".to_owned() } else { format!("{e}") }))?;
    Ok((response.status().as_u16(), retry_after(response.headers())))
}

/// A receiver's `Retry-After` in seconds, capped at [`MAX_RETRY_AFTER`] (an HTTP date is
/// not honoured: the schedule's own delay applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds = headers.get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The event a webhook receives (Standard Webhooks shape; docs/service.md, "Webhooks").
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    event: &'a str,
    timestamp: String,
    data: EventData<'a>,
}

/// The job's outcome: its summary and where to read the result, or its error.
#[derive(Serialize)]
struct EventData<'a> {
    job_id: JobId,
    state: &'static str,
    tenant: &'a Tenant,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<EventError<'a>>,
}

#[derive(Serialize)]
struct EventError<'a> {
    code: &'static str,
    message: &'a str,
}

/// The event body of the job `pending` announces.
async fn event_body(services: &Services, pending: &Pending) -> anyhow::Result<String> {
    let job = services.ledger.job(&pending.job).await?.ok_or_else(|| anyhow::anyhow!("the job is gone"))?;
    let mut data = EventData {
        job_id: job.id,
        state: job.state.as_str(),
        tenant: &job.tenant,
        summary: None,
        result_url: None,
        error: None,
    };
    match job.state {
        JobState::Succeeded => {
            let result = stored_result(&services.ledger, &services.storage, &job).await?;
            data.summary = result.map(|result| result.summary);
            let result_path = format!("/v1/jobs/{}/result", job.id);
            data.result_url = Some(match &services.config.public_url {
                Some(base) => format!("{base}{result_path}"),
                None => result_path,
            });
        }
        JobState::Failed => {
            data.error = job.error.as_ref().map(|e| EventError { code: e.code.as_str(), message: &e.message });
        }
        _ => {}
    }
    let event = Event { event: &pending.event, timestamp: mta_platform::ids::now(), data };
    Ok(serde_json::to_string(&event)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let with = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert("retry-after", value.parse().unwrap());
            retry_after(&headers)
        };
        assert_eq!(with(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(with("99999999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(with("-5"), None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn a_failed_jobs_event_carries_its_error_and_nothing_else() {
        let tenant: Tenant = "acme".parse().unwrap();
        let job = JobId::random();
        let event = Event {
            event: "job.failed",
            timestamp: "2026-12-06T00:00:00.000Z".to_owned(),
            data: EventData {
                job_id: job,
                state: "failed",
                tenant: &tenant,
                summary: None,
                result_url: None,
                error: Some(EventError { code: "invalid_value", message: "bad row" }),
            },
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            format!(
                r#"{{"type":"job.failed","timestamp":"2026-12-06T00:00:00.000Z","data":{{"job_id":"{job}","state":"failed","tenant":"acme","error":{{"code":"invalid_value","message":"bad row"}}}}}}"#
            )
        );
    }
}
