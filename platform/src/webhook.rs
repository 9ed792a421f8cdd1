//! Webhooks (DESIGN.md 6): a job's end (`job.succeeded`, `job.failed`, `job.cancelled`)
//! is delivered to the URL its spec names, signed per Standard Webhooks, durably and with
//! retries; every attempt is recorded for the job's owner.
//!
//! Delivery queue: when a job with a webhook ends, the ledger's transition script puts
//! the job id into the sorted set `p:webhooks:due` (score = when the next attempt is due)
//! in the same atomic step, so no end is ever missed. Workers claim due entries with a
//! lease (the score moves past the attempt's timeout), so a worker that dies mid-delivery
//! only delays the event until the lease ends, when another worker sends it again with
//! the same `webhook-id`. Retries hours apart are just later scores.
//!
//! SSRF guard ([`AddressPolicy`]): the URL's host is resolved once, every address is
//! checked (loopback, private, link-local incl. cloud metadata, unique-local, multicast,
//! unspecified, shared and documentation ranges are refused unless the operator's
//! allow-list names the host or a network), and the connection is pinned to a checked
//! address so a second DNS answer cannot slip through.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use ipnet::IpNet;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use crate::access::{KeyId, KeyStore};
use crate::ledger::{JobId, now};

const SECRET_PREFIX: &str = "whsec_";
/// How long resolving a webhook's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_URL_LEN: usize = 2048;
/// Attempt records kept per job.
const MAX_ATTEMPTS_KEPT: isize = 100;

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

/// The decoded signing key of a `whsec_` secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    pub fn generate() -> (Secret, String) {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system provides randomness");
        (Secret(bytes.to_vec()), format!("{SECRET_PREFIX}{}", BASE64.encode(bytes)))
    }

    pub fn parse(text: &str) -> Result<Secret, String> {
        let bytes = text
            .strip_prefix(SECRET_PREFIX)
            .and_then(|b64| BASE64.decode(b64).ok())
            .ok_or_else(|| format!("must be `{SECRET_PREFIX}` followed by base64"))?;
        if !(24..=64).contains(&bytes.len()) {
            return Err("must hold 24 to 64 bytes".to_owned());
        }
        Ok(Secret(bytes))
    }

    /// The `webhook-signature` header: one `v1,…` per secret, space-separated.
    pub fn signatures(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
        secrets.iter().map(|s| s.sign(id, timestamp, body)).collect::<Vec<_>>().join(" ")
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// Which webhook targets the operator allows (`MTA_WEBHOOK_ALLOW`, `MTA_WEBHOOK_ALLOW_HTTP`).
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Host names allowed whatever they resolve to.
    pub hosts: Vec<String>,
    /// Networks allowed even when private or loopback.
    pub networks: Vec<IpNet>,
    pub allow_http: bool,
}

impl AddressPolicy {
    /// Parses `MTA_WEBHOOK_ALLOW`: comma-separated host names and CIDR networks.
    pub fn parse(allow: &str, allow_http: bool) -> Result<AddressPolicy, String> {
        let mut policy = AddressPolicy { allow_http, ..AddressPolicy::default() };
        for entry in allow.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                policy.networks.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                policy.networks.push(IpNet::from(ip));
            } else if entry.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                policy.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!("`{entry}` is neither a host name nor a network"));
            }
        }
        Ok(policy)
    }

    /// Checks what can be checked without DNS: the URL's shape and scheme, and a literal IP.
    pub fn check_url(&self, text: &str) -> Result<reqwest::Url, String> {
        if text.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters"));
        }
        let url = reqwest::Url::parse(text).map_err(|e| format!("is not a URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("must use https (plain http is not allowed by the operator)".to_owned()),
            other => return Err(format!("scheme `{other}` is not https")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        let host = url.host_str().ok_or("has no host")?;
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            self.check_address(host, ip)?;
        }
        Ok(url)
    }

    /// Whether `ip` (which `host` resolved to) may be called.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) || self.networks.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match forbidden_class(ip) {
            Some(class) => Err(format!("resolves to {ip}, a {class} address, which is refused")),
            None => Ok(()),
        }
    }

    /// Resolves the URL's host once and returns a checked address to pin the connection to.
    pub async fn resolve(&self, url: &reqwest::Url) -> Result<SocketAddr, Unreachable> {
        let host = url.host_str().ok_or_else(|| Unreachable::Refused("the URL has no host".to_owned()))?;
        let port = url.port_or_known_default().ok_or_else(|| Unreachable::Refused("the URL has no port".to_owned()))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port))).await {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(e)) => return Err(Unreachable::Lookup(format!("cannot resolve {host}: {e}"))),
                Err(_) => return Err(Unreachable::Lookup(format!("resolving {host} timed out"))),
            },
        };
        if addresses.is_empty() {
            return Err(Unreachable::Lookup(format!("{host} resolves to no address")));
        }
        // Every answer must pass: a mixed answer is how rebinding attacks start.
        for address in &addresses {
            self.check_address(bare, address.ip()).map_err(Unreachable::Refused)?;
        }
        Ok(addresses[0])
    }
}

/// Why a webhook target cannot be called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// The address policy refuses it: no retry can help.
    Refused(String),
    /// DNS failed or gave nothing: worth retrying.
    Lookup(String),
}

/// IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged as that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| IpAddr::V4(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
    if let Some(v4) = v6.to_ipv4_mapped() {
        IpAddr::V4(v4)
    } else if (s[..6] == [0, 0, 0, 0, 0, 0] && !v6.is_loopback() && !v6.is_unspecified())
        || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        embedded(s[6], s[7])
    } else if s[0] == 0x2002 {
        embedded(s[1], s[2])
    } else {
        ip
    }
}

/// The class of an address no webhook may reach, if it is one.
pub fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if v4.is_multicast() {
                Some("multicast")
            } else if v4.is_unspecified() || v4.is_broadcast() || a == 0 {
                Some("unspecified or broadcast")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_documentation() || a >= 240 || (a == 198 && (18..20).contains(&b)) {
                Some("reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified or broadcast")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local (cloud metadata lives here)")
            } else if first & 0xffc0 == 0xfec0 {
                Some("unique-local")
            } else if first == 0x2001 && v6.segments()[1] == 0x0db8 {
                Some("reserved")
            } else {
                None
            }
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

/// One recorded attempt, as `GET /v1/jobs/{id}/webhooks` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    pub attempt: u32,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the next attempt is due, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// A job's webhook delivery as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub url: String,
    /// `pending`, `delivered`, `failed` (schedule spent or refused address) or `gone` (410).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `webhook-id` every attempt of this event carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    pub attempts: Vec<Attempt>,
}

/// What a worker needs to attempt a delivery.
#[derive(Debug, Clone)]
pub struct Pending {
    pub job: JobId,
    pub url: String,
    /// Every secret that signs now (two while a key's rotated secret overlaps).
    pub secrets: Vec<Secret>,
    pub event: String,
    /// The body, fixed at the first attempt so every retry is byte-identical.
    pub body: Option<String>,
    pub webhook_id: String,
    pub attempts: u32,
    /// Bumped by each redelivery request: an attempt of an older generation records nothing.
    pub generation: u64,
}

/// Records one attempt, unless the delivery moved on meanwhile (a redelivery was asked for:
/// the generation differs; or another worker recorded this attempt first after a lease
/// ran out: the attempt count differs). KEYS: job hash, attempts list, due set. ARGV:
/// generation, attempts before this one, attempt JSON, attempt number, state, due ms ('' =
/// no more attempts), job id, attempts kept.
const RECORD: &str = r#"
if (redis.call('HGET', KEYS[1], 'webhook_generation') or '0') ~= ARGV[1] then return 0 end
if (redis.call('HGET', KEYS[1], 'webhook_attempts') or '0') ~= ARGV[2] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[3])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[8]), -1)
redis.call('HSET', KEYS[1], 'webhook_attempts', ARGV[4], 'webhook_state', ARGV[5])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7]) else redis.call('ZREM', KEYS[3], ARGV[7]) end
return 1
"#;

/// Moves up to ARGV[3] due entries of KEYS[1] (score <= ARGV[1]) to ARGV[2] (the lease end).
const CLAIM_DUE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"#;

/// The deliveries in Redis: the due set and each job's webhook fields.
#[derive(Clone)]
pub struct Deliveries {
    conn: ConnectionManager,
    prefix: String,
    keys: KeyStore,
}

impl fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliveries").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Deliveries {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Deliveries {
        Deliveries { keys: KeyStore::new(conn.clone(), prefix), conn, prefix: prefix.to_owned() }
    }

    /// The sorted set of due deliveries (the ledger's transition script adds to it).
    pub fn due_key(prefix: &str) -> String {
        format!("{prefix}:webhooks:due")
    }

    fn job_key(&self, job: &JobId) -> String {
        format!("{}:job:{job}", self.prefix)
    }

    fn attempts_key(&self, job: &JobId) -> String {
        format!("{}:job:{job}:webhook:attempts", self.prefix)
    }

    /// Claims up to `max` due deliveries for `lease`.
    pub async fn claim_due(&self, lease: Duration, max: usize) -> anyhow::Result<Vec<JobId>> {
        let now = Utc::now().timestamp_millis();
        let mut conn = self.conn.clone();
        let due: Vec<String> = redis::Script::new(CLAIM_DUE)
            .key(Deliveries::due_key(&self.prefix))
            .arg(now)
            .arg(now + lease.as_millis() as i64)
            .arg(max)
            .invoke_async(&mut conn)
            .await
            .context("Failed to claim webhook deliveries")?;
        Ok(due.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// The delivery of `job`, if it has a webhook that is due for an event.
    pub async fn pending(&self, job: &JobId) -> anyhow::Result<Option<Pending>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = conn.hgetall(self.job_key(job)).await?;
        let field = |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned();
        let (Some(url), Some(state)) = (field("webhook_url"), field("state")) else { return Ok(None) };
        // A job's own secret, or the secrets of the key whose default webhook it uses.
        let secrets = match (field("webhook_secret"), field("webhook_key").and_then(|k| k.parse::<KeyId>().ok())) {
            (Some(secret), _) => vec![secret],
            (None, Some(key)) => self.keys.webhook_secrets(&key).await?,
            (None, None) => Vec::new(),
        };
        let secrets: Vec<Secret> = secrets.iter().filter_map(|s| Secret::parse(s).ok()).collect();
        if secrets.is_empty() {
            return Ok(None);
        }
        let Some(event) = event_of(&state) else { return Ok(None) };
        Ok(Some(Pending {
            job: *job,
            url,
            secrets,
            event: event.to_owned(),
            body: field("webhook_body"),
            webhook_id: webhook_id(job),
            attempts: field("webhook_attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
            generation: field("webhook_generation").and_then(|g| g.parse().ok()).unwrap_or(0),
        }))
    }

    /// Fixes the body of the event before its first attempt.
    pub async fn set_body(&self, job: &JobId, body: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.hset(self.job_key(job), "webhook_body", body).await?;
        Ok(())
    }

    /// Records an attempt of `pending`; schedules the next one at `next` or ends the
    /// delivery in the given final state. `false` when the delivery moved on meanwhile (see
    /// [`RECORD`]) and nothing was written.
    pub async fn record(
        &self,
        pending: &Pending,
        attempt: &Attempt,
        next: Result<Duration, &str>,
    ) -> anyhow::Result<bool> {
        let (state, due) = match next {
            Ok(delay) => ("pending", (Utc::now().timestamp_millis() + delay.as_millis() as i64).to_string()),
            Err(final_state) => (final_state, String::new()),
        };
        let job = &pending.job;
        let mut conn = self.conn.clone();
        let recorded: i64 = redis::Script::new(RECORD)
            .key(self.job_key(job))
            .key(self.attempts_key(job))
            .key(Deliveries::due_key(&self.prefix))
            .arg(pending.generation)
            .arg(pending.attempts)
            .arg(serde_json::to_string(attempt)?)
            .arg(attempt.attempt)
            .arg(state)
            .arg(due)
            .arg(job.to_string())
            .arg(MAX_ATTEMPTS_KEPT)
            .invoke_async(&mut conn)
            .await
            .context("Failed to record a webhook attempt")?;
        Ok(recorded == 1)
    }

    /// Drops a due entry that has nothing to deliver.
    pub async fn drop_due(&self, job: &JobId) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.zrem(Deliveries::due_key(&self.prefix), job.to_string()).await?;
        Ok(())
    }

    /// What the job's owner sees.
    pub async fn delivery(&self, job: &JobId) -> anyhow::Result<Option<Delivery>> {
        let mut conn = self.conn.clone();
        let (map, attempts): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.job_key(job))
            .lrange(self.attempts_key(job), 0, -1)
            .query_async(&mut conn)
            .await?;
        let field = |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned();
        let Some(url) = field("webhook_url") else { return Ok(None) };
        let event = field("state").as_deref().and_then(event_of);
        Ok(Some(Delivery {
            url,
            state: field("webhook_state").unwrap_or_else(|| "waiting for the job to end".to_owned()),
            event: event.map(str::to_owned),
            webhook_id: event.map(|_| webhook_id(job)),
            attempts: attempts.iter().filter_map(|a| serde_json::from_str(a).ok()).collect(),
        }))
    }

    /// Queues the event again now (the owner asked for a redelivery). `false` when the job has not ended.
    pub async fn redeliver(&self, job: &JobId) -> anyhow::Result<bool> {
        if self.pending(job).await?.is_none() {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .hset(self.job_key(job), "webhook_attempts", 0)
            .hset(self.job_key(job), "webhook_state", "pending")
            .hincr(self.job_key(job), "webhook_generation", 1)
            .zadd(Deliveries::due_key(&self.prefix), job.to_string(), Utc::now().timestamp_millis())
            .query_async(&mut conn)
            .await?;
        Ok(true)
    }
}

/// The event a job in `state` announces, if it has ended.
fn event_of(state: &str) -> Option<&'static str> {
    match state {
        "succeeded" => Some("job.succeeded"),
        "failed" => Some("job.failed"),
        "cancelled" => Some("job.cancelled"),
        _ => None,
    }
}

/// The `webhook-id` of a job's event, the same on every attempt.
fn webhook_id(job: &JobId) -> String {
    format!("msg_{job}")
}

/// An attempt record stamped now.
pub fn attempt_now(attempt: u32, status: Option<u16>, latency: Duration, error: Option<String>) -> Attempt {
    Attempt { attempt, at: now(), status, latency_ms: latency.as_secs_f64() * 1e3, error, next_attempt_at: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refused_address_class_is_refused() {
        for (ip, class) in [
            ("127.0.0.1", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("100.64.0.1", "shared"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::10.0.0.5", "private"),
            ("64:ff9b::a00:5", "private"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
            ("fec0::1", "unique-local"),
            ("198.18.0.1", "reserved"),
        ] {
            let found = forbidden_class(ip.parse().unwrap());
            assert!(found.is_some_and(|c| c.starts_with(class)), "{ip}: {found:?}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"] {
            assert_eq!(forbidden_class(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn the_allow_list_opens_named_hosts_and_networks_only() {
        let policy = AddressPolicy::parse("127.0.0.1/32, hooks.internal", true).unwrap();
        assert!(policy.check_address("x", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(policy.check_address("x", "127.0.0.2".parse().unwrap()).is_err());
        assert!(policy.check_address("hooks.internal", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(AddressPolicy::parse("a b", false).is_err());
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        let strict = AddressPolicy::default();
        assert!(strict.check_url("https://example.com/hook").is_ok());
        for bad in [
            "http://example.com/hook",
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest/meta-data",
            "not a url",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(Secret::parse("whsec_short").is_err() && Secret::parse("nope").is_err());
        let (generated, text) = Secret::generate();
        assert_eq!(Secret::parse(&text).unwrap().0, generated.0);
    }

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
