//! Delivers job events to webhooks: claims due deliveries (with a lease), builds the event
//! once, signs it, sends it over a connection pinned to a checked address, and records
//! the attempt with the next one scheduled (see `mta_platform::webhook`).

use std::time::{Duration, Instant};

use mta_platform::JobId;
use mta_platform::job::JobState;
use mta_platform::storage::stored_result;
use mta_platform::webhook::{Pending, Secret, Unreachable, attempt_now};
use serde_json::{Value, json};
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
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    Ok((response.status().as_u16(), retry_after))
}

/// The event: `{type, timestamp, data}` with the job's outcome (Standard Webhooks shape).
async fn event_body(services: &Services, pending: &Pending) -> anyhow::Result<String> {
    let job = services.ledger.job(&pending.job).await?.ok_or_else(|| anyhow::anyhow!("the job is gone"))?;
    let result_path = format!("/v1/jobs/{}/result", job.id);
    let mut data = json!({ "job_id": job.id, "state": job.state.as_str(), "tenant": job.tenant });
    match job.state {
        JobState::Succeeded => {
            let stored = stored_result(&services.ledger, &services.storage, &job).await?;
            let result: Value = stored.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
            data["summary"] = result["summary"].clone();
            data["result_url"] = json!(match &services.config.public_url {
                Some(base) => format!("{base}{result_path}"),
                None => result_path,
            });
        }
        JobState::Failed => {
            if let Some(error) = &job.error {
                data["error"] = json!({ "code": error.code.as_str(), "message": error.message });
            }
        }
        _ => {}
    }
    let event = json!({ "type": pending.event, "timestamp": mta_platform::ids::now(), "data": data });
    Ok(event.to_string())
}
