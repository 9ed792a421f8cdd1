//! Webhooks (DESIGN.md 6): a job's end (`job.succeeded`, `job.failed`, `job.cancelled`)
//! is delivered to the URL its spec names, signed per Standard Webhooks, durably and with
//! retries; every attempt is recorded for the job's owner.
//!
//! - here: what a job's webhook is ([`WebhookSpec`], [`JobWebhook`]) and the delivery
//!   settings ([`DeliveryConfig`]);
//! - `signing.rs`: `whsec_` secrets and Standard Webhooks signatures ([`Secret`]);
//! - `address.rs`: the SSRF guard ([`AddressPolicy`]), pure but for the one DNS lookup;
//! - `deliveries.rs`: the deliveries in Redis ([`Deliveries`]): the due set with leases,
//!   attempt records, redelivery.
//!
//! Delivery queue: when a job with a webhook ends, the ledger's transition script puts
//! the job id into the sorted set `p:webhooks:due` (score = when the next attempt is due)
//! in the same atomic step, so no end is ever missed. Workers claim due entries with a
//! lease (the score moves past the attempt's timeout), so a worker that dies mid-delivery
//! only delays the event until the lease ends, when another worker sends it again with
//! the same `webhook-id`. Retries hours apart are just later scores. The key names and
//! the job hash's webhook fields are in `redis_keys.rs`.
//!
//! SSRF guard ([`AddressPolicy`]): the URL's host is resolved once, every address is
//! checked (loopback, private, link-local incl. cloud metadata, unique-local, multicast,
//! unspecified, shared and documentation ranges are refused unless the operator's
//! allow-list names the host or a network), and the connection is pinned to a checked
//! address so a second DNS answer cannot slip through.
mod address;
mod deliveries;
mod signing;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use address::RESOLVE_TIMEOUT;
pub use address::{AddressPolicy, Unreachable, forbidden_class};
pub use deliveries::{Attempt, Deliveries, Delivery, Pending, attempt_now};
pub use signing::Secret;

use crate::ids::KeyId;

/// A job's webhook as the client gives it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://hooks.example.com/mta", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))]
pub struct WebhookSpec {
    /// Where to POST the event: `https://…` (plain `http` only where the operator allows it).
    pub url: String,
    /// `whsec_` + base64 of 24 to 64 random bytes; generated (and returned once) when absent.
    /// Taken, never written back (the job record and the cache key leave it out).
    #[serde(default, skip_serializing_if = "never")]
    #[schema(write_only)]
    pub secret: Option<String>,
}

/// A field that is read from requests but never serialised.
fn never<T>(_: &T) -> bool {
    true
}

/// A job's webhook as recorded: its URL, and either its own secret or the key whose
/// default webhook (and rotating secrets) it uses.
#[derive(Debug, Clone)]
pub struct JobWebhook {
    pub url: String,
    pub secret: Option<String>,
    pub key: Option<KeyId>,
}

impl JobWebhook {
    /// `(webhook_url, webhook_secret, webhook_key)` for the job record ("" when absent).
    pub fn fields(webhook: Option<&JobWebhook>) -> (&str, &str, &str) {
        match webhook {
            Some(w) => (&w.url, w.secret.as_deref().unwrap_or(""), w.key.as_ref().map_or("", KeyId::as_str)),
            None => ("", "", ""),
        }
    }
}

/// The retry schedule: delays after each failed attempt (`MTA_WEBHOOK_RETRY_SECS`).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub retry_delays: Vec<Duration>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub policy: AddressPolicy,
    /// How long a key's previous webhook secret keeps signing after a rotation (`MTA_WEBHOOK_SECRET_OVERLAP_SECS`).
    pub secret_overlap: Duration,
}

impl DeliveryConfig {
    /// The delay before attempt `attempt + 1` (1-based `attempt` just failed), with ±10%
    /// jitter so that many failing endpoints do not retry in lockstep; `None` when spent.
    pub fn next_delay(&self, attempt: u32) -> Option<Duration> {
        let base = *self.retry_delays.get(attempt.checked_sub(1)? as usize)?;
        let mut byte = [0u8; 1];
        getrandom::fill(&mut byte).expect("the operating system provides randomness");
        let factor = 0.9 + 0.2 * f64::from(byte[0]) / 255.0;
        Some(base.mul_f64(factor))
    }

    /// How long a claimed delivery is reserved for the worker attempting it: resolving,
    /// connecting and the request, plus room for building the event and recording.
    pub fn lease(&self) -> Duration {
        RESOLVE_TIMEOUT + self.connect_timeout + self.timeout + Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_with_jitter() {
        let config = DeliveryConfig {
            retry_delays: vec![Duration::from_secs(5), Duration::from_secs(300)],
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            policy: AddressPolicy::default(),
            secret_overlap: Duration::from_secs(86_400),
        };
        let first = config.next_delay(1).unwrap().as_secs_f64();
        assert!((4.5..=5.5).contains(&first), "{first}");
        let second = config.next_delay(2).unwrap().as_secs_f64();
        assert!((270.0..=330.0).contains(&second), "{second}");
        assert_eq!(config.next_delay(3), None);
    }
}
