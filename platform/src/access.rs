//! Who may do what: roles and API keys (the [`Tenant`] and [`KeyId`] ids are in `ids.rs`).
//!
//! A key is `mta_` followed by 64 hex digits (256 random bits), shown once when it is
//! made. Only its SHA-256 is stored (a key is random, so a plain hash cannot be guessed
//! back), under these Redis keys (`p` = the queue prefix; named in `redis_keys.rs`):
//!
//! - `p:apikey:{sha256}` → key id: the lookup every request makes. Revoking or rotating
//!   deletes it, so every API pod refuses the old key on its very next request.
//! - `p:key:{id}` → the key's record (tenant, role, name, times, own rate limit).
//! - `p:keys` → every key id, by creation time.
//! - `p:tenant:{t}:keys` → the ids of the tenant's keys not revoked, counted against
//!   `MTA_MAX_KEYS_PER_TENANT`.
//!
//! Making, rotating and revoking a key are each one Lua script, so racing admins can
//! neither pass the key limit nor leave a lookup behind that names an old secret.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use mta_core::{AttributionError, ErrorCode};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::ids::{KeyId, Tenant, now};
use crate::redis_keys;

const KEY_PREFIX: &str = "mta_";
const SECRET_HEX_LEN: usize = 64;
const MAX_KEY_NAME: usize = 100;
/// How finely a key's last use is recorded.
const LAST_USE_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// What a key may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the tenant's jobs, results and credits.
    Read,
    /// Also upload, submit and cancel.
    Submit,
    /// Also manage the tenant's keys and read its audit log.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Submit => "submit",
            Role::Admin => "admin",
        }
    }

    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "submit" => Ok(Role::Submit),
            "admin" => Ok(Role::Admin),
            other => Err(format!("`{other}` is not a role (admin, submit, read)")),
        }
    }
}

/// A key as stored and as shown to admins (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyRecord {
    pub id: KeyId,
    pub tenant: Tenant,
    pub role: Role,
    pub name: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// This key's own request quota; the configured default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_hour: Option<u32>,
    /// Where the end of every job submitted with this key is announced, unless the job names its own webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(skip)]
    hash: String,
}

impl KeyRecord {
    /// Whether the key's last recorded use (if any) is older than `at`.
    fn last_used_before(&self, at: DateTime<Utc>) -> bool {
        stamp(&self.last_used_at).is_none_or(|used| used < at)
    }

    pub fn is_expired(&self, at: DateTime<Utc>) -> bool {
        stamp(&self.expires_at).is_some_and(|expires| expires <= at)
    }
}

/// A record's time field as a time (`None` when unset or unreadable).
fn stamp(field: &Option<String>) -> Option<DateTime<Utc>> {
    field.as_deref().and_then(|text| DateTime::parse_from_rfc3339(text).ok()).map(|at| at.to_utc())
}

/// Makes key ARGV[1] (created at ARGV[2] ms) unless its tenant already holds ARGV[3] keys
/// (0 = no limit): record KEYS[1] with the fields in ARGV[4..], lookup KEYS[2], index
/// KEYS[3], the tenant's set KEYS[4]. Returns the tenant's keys before, negated when refused.
const CREATE: &str = r#"
local held = redis.call('SCARD', KEYS[4])
local limit = tonumber(ARGV[3])
if limit > 0 and held >= limit then return -held end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return held
"#;

/// Gives key record KEYS[1] the hash ARGV[1] (lookup KEYS[2] → id ARGV[2]) at time ARGV[3],
/// deleting the lookup of the hash it holds now (its key is ARGV[4] followed by the hash).
/// Returns 0 for a missing or revoked key.
const ROTATE: &str = r#"
local old = redis.call('HGET', KEYS[1], 'hash')
local revoked = redis.call('HGET', KEYS[1], 'revoked_at')
if not old or (revoked and revoked ~= '') then return 0 end
redis.call('DEL', ARGV[4] .. old)
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'rotated_at', ARGV[3])
return 1
"#;

/// Revokes key record KEYS[1] (id ARGV[1]) at time ARGV[2]: deletes the lookup of the hash
/// it holds now (ARGV[3] followed by the hash) and takes it out of its tenant's set KEYS[2].
const REVOKE: &str = r#"
local hash = redis.call('HGET', KEYS[1], 'hash')
local revoked = redis.call('HGET', KEYS[1], 'revoked_at')
if not hash or (revoked and revoked ~= '') then return 0 end
redis.call('DEL', ARGV[3] .. hash)
redis.call('HSET', KEYS[1], 'revoked_at', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#;

/// A key just made or rotated: the secret is in here and nowhere else.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    /// Shown once; only its hash is kept.
    pub key: String,
    #[serde(flatten)]
    pub record: KeyRecord,
}

/// What to make a key for.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub tenant: Tenant,
    pub role: Role,
    pub name: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub requests_per_hour: Option<u32>,
}

impl KeyRequest {
    /// Refuses a request that makes no sense, naming the field.
    pub fn validate(&self) -> Result<(), AttributionError> {
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_KEY_NAME {
            return Err(AttributionError::option("name", format!("must be 1 to {MAX_KEY_NAME} characters")));
        }
        if self.name.chars().any(char::is_control) {
            return Err(AttributionError::option("name", "must not contain control characters"));
        }
        if self.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(AttributionError::option("expires_at", "must be in the future"));
        }
        if self.requests_per_hour == Some(0) {
            return Err(AttributionError::option("requests_per_hour", "must be at least 1"));
        }
        Ok(())
    }
}

/// Why a presented key was refused.
#[derive(Debug)]
pub enum AuthFailure {
    /// Not of the `mta_<64 hex>` shape: refused without a lookup.
    Malformed,
    /// Well-formed but unknown: never issued, revoked or rotated away.
    Unknown,
    Expired(Box<KeyRecord>),
}

/// The keys in Redis.
#[derive(Clone)]
pub struct KeyStore {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl KeyStore {
    pub fn new(conn: ConnectionManager, prefix: &str) -> KeyStore {
        KeyStore { conn, prefix: prefix.to_owned() }
    }

    fn lookup_key(&self, hash: &str) -> String {
        redis_keys::api_key_lookup(&self.prefix, hash)
    }

    fn record_key(&self, id: &KeyId) -> String {
        redis_keys::api_key(&self.prefix, id)
    }

    fn index_key(&self) -> String {
        redis_keys::api_keys(&self.prefix)
    }

    /// Makes a key; refused with `limit_exceeded` when its tenant already holds
    /// `max_per_tenant` keys that are not revoked (`None`: the operator's tools, no limit).
    pub async fn create(
        &self,
        request: &KeyRequest,
        max_per_tenant: Option<u32>,
    ) -> anyhow::Result<Result<NewKey, AttributionError>> {
        let (id, secret) = (KeyId::random(), new_secret());
        let hash = hash(&secret);
        let now = now();
        let mut fields = vec![
            ("tenant", request.tenant.to_string()),
            ("role", request.role.as_str().to_owned()),
            ("name", request.name.clone()),
            ("created_at", now),
            ("hash", hash.clone()),
        ];
        if let Some(at) = request.expires_at {
            fields.push(("expires_at", at.to_rfc3339_opts(SecondsFormat::Millis, true)));
        }
        if let Some(rate) = request.requests_per_hour {
            fields.push(("requests_per_hour", rate.to_string()));
        }
        let script = redis::Script::new(CREATE);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.record_key(&id))
            .key(self.lookup_key(&hash))
            .key(self.index_key())
            .key(redis_keys::tenant_keys(&self.prefix, &request.tenant))
            .arg(id.as_str())
            .arg(Utc::now().timestamp_millis())
            .arg(max_per_tenant.unwrap_or(0));
        for (name, value) in &fields {
            invocation.arg(*name).arg(value);
        }
        let mut conn = self.conn.clone();
        let held: i64 = invocation.invoke_async(&mut conn).await.context("Failed to store the key")?;
        if held < 0 {
            let limit = max_per_tenant.unwrap_or_default();
            return Ok(Err(AttributionError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "the tenant already holds {} keys, the limit of {limit} (MTA_MAX_KEYS_PER_TENANT); revoke one first",
                    -held
                ),
            )));
        }
        let record = self.get(&id).await?.context("A key vanished right after it was stored")?;
        Ok(Ok(NewKey { key: secret, record }))
    }

    /// The record of the key presented, with its last use stamped; or why it is refused.
    pub async fn authenticate(&self, presented: &str) -> anyhow::Result<Result<KeyRecord, AuthFailure>> {
        if !well_formed(presented) {
            return Ok(Err(AuthFailure::Malformed));
        }
        let mut conn = self.conn.clone();
        let id: Option<String> =
            conn.get(self.lookup_key(&hash(presented))).await.context("Failed to look up a key")?;
        let Some(id) = id.and_then(|id| id.parse::<KeyId>().ok()) else { return Ok(Err(AuthFailure::Unknown)) };
        let Some(record) = self.get(&id).await? else { return Ok(Err(AuthFailure::Unknown)) };
        // The record names the one live secret: a lookup that outlived its secret (left by
        // an older version's racing rotations) does not authenticate.
        if record.revoked_at.is_some() || record.hash != hash(presented) {
            return Ok(Err(AuthFailure::Unknown));
        }
        if record.is_expired(Utc::now()) {
            return Ok(Err(AuthFailure::Expired(Box::new(record))));
        }
        // Stamped at most once a minute: a write per request would cost every request a
        // third Redis round trip for a figure nobody reads to the second.
        if record.last_used_before(Utc::now() - LAST_USE_RESOLUTION) {
            let _: () =
                conn.hset(self.record_key(&id), "last_used_at", now()).await.context("Failed to stamp a key")?;
        }
        Ok(Ok(record))
    }

    pub async fn get(&self, id: &KeyId) -> anyhow::Result<Option<KeyRecord>> {
        let mut conn = self.conn.clone();
        let map: HashMap<String, String> = conn.hgetall(self.record_key(id)).await.context("Failed to read a key")?;
        if map.is_empty() {
            return Ok(None);
        }
        let text = |name: &str| map.get(name).filter(|v| !v.is_empty()).cloned();
        Ok(Some(KeyRecord {
            id: id.clone(),
            tenant: text("tenant").context("A key has no tenant")?.parse().map_err(anyhow::Error::msg)?,
            role: text("role").context("A key has no role")?.parse().map_err(anyhow::Error::msg)?,
            name: text("name").unwrap_or_default(),
            created_at: text("created_at").unwrap_or_default(),
            expires_at: text("expires_at"),
            last_used_at: text("last_used_at"),
            rotated_at: text("rotated_at"),
            revoked_at: text("revoked_at"),
            requests_per_hour: text("requests_per_hour").and_then(|r| r.parse().ok()),
            webhook_url: text("webhook_url"),
            hash: text("hash").unwrap_or_default(),
        }))
    }

    /// Keys of `tenant` (every tenant's with `None`), oldest first.
    pub async fn list(&self, tenant: Option<&Tenant>) -> anyhow::Result<Vec<KeyRecord>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.zrange(self.index_key(), 0, -1).await.context("Failed to list keys")?;
        let mut keys = Vec::new();
        for id in ids.iter().filter_map(|id| id.parse::<KeyId>().ok()) {
            if let Some(record) = self.get(&id).await?
                && tenant.is_none_or(|t| *t == record.tenant)
            {
                keys.push(record);
            }
        }
        Ok(keys)
    }

    /// Whether no key was ever made: a fresh install that needs its first admin key.
    pub async fn is_empty(&self) -> anyhow::Result<bool> {
        let mut conn = self.conn.clone();
        let count: u64 = conn.zcard(self.index_key()).await.context("Failed to count keys")?;
        Ok(count == 0)
    }

    /// Gives the key a new secret; the old one stops working at once. `None` for an
    /// unknown or revoked key.
    pub async fn rotate(&self, id: &KeyId) -> anyhow::Result<Option<NewKey>> {
        let secret = new_secret();
        let hash = hash(&secret);
        let mut conn = self.conn.clone();
        let rotated: i64 = redis::Script::new(ROTATE)
            .key(self.record_key(id))
            .key(self.lookup_key(&hash))
            .arg(&hash)
            .arg(id.as_str())
            .arg(now())
            .arg(self.lookup_key(""))
            .invoke_async(&mut conn)
            .await
            .context("Failed to rotate the key")?;
        if rotated == 0 {
            return Ok(None);
        }
        let record = self.get(id).await?.context("A key vanished while it was rotated")?;
        Ok(Some(NewKey { key: secret, record }))
    }

    /// Sets the key's default webhook (`None` removes it; later jobs then announce nothing).
    /// Events already queued keep being signed: a replaced secret signs on for `overlap`
    /// (as after a rotation), and a removal keeps the secret.
    pub async fn set_webhook(
        &self,
        id: &KeyId,
        webhook: Option<(&str, &str)>,
        overlap: Duration,
    ) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = self.record_key(id);
        match webhook {
            Some((url, secret)) => {
                let old: Option<String> = conn.hget(&key, "webhook_secret").await?;
                if old.is_some_and(|old| old != secret) {
                    self.rotate_webhook_secret(id, secret, overlap).await?;
                }
                let _: () = conn.hset_multiple(&key, &[("webhook_url", url), ("webhook_secret", secret)]).await?;
            }
            None => {
                let _: () = conn.hdel(&key, "webhook_url").await?;
            }
        }
        Ok(())
    }

    /// Replaces the default webhook's secret; the old one keeps signing (next to the new one)
    /// for `overlap`, so receivers can switch without losing an event.
    pub async fn rotate_webhook_secret(&self, id: &KeyId, new: &str, overlap: Duration) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        let key = self.record_key(id);
        let old: Option<String> = conn.hget(&key, "webhook_secret").await?;
        let until = Utc::now().timestamp_millis() + overlap.as_millis() as i64;
        let mut pipe = redis::pipe();
        pipe.atomic().hset(&key, "webhook_secret", new).ignore();
        if let Some(old) = old {
            pipe.hset(&key, "webhook_secret_previous", old).ignore();
            pipe.hset(&key, "webhook_previous_until", until).ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.context("Failed to rotate the webhook secret")?;
        Ok(())
    }

    /// The secrets that sign the key's default webhook now: the current one, and the
    /// previous one while its overlap lasts.
    pub async fn webhook_secrets(&self, id: &KeyId) -> anyhow::Result<Vec<String>> {
        let mut conn = self.conn.clone();
        let fields: (Option<String>, Option<String>, Option<i64>) = redis::cmd("HMGET")
            .arg(self.record_key(id))
            .arg(&["webhook_secret", "webhook_secret_previous", "webhook_previous_until"])
            .query_async(&mut conn)
            .await
            .context("Failed to read the key's webhook secrets")?;
        let (current, previous, until) = fields;
        let previous = previous.filter(|_| until.is_some_and(|u| u > Utc::now().timestamp_millis()));
        Ok(current.into_iter().chain(previous).collect())
    }

    /// Revokes the key (the record stays for the audit trail). `None` for an unknown key.
    pub async fn revoke(&self, id: &KeyId) -> anyhow::Result<Option<KeyRecord>> {
        let Some(record) = self.get(id).await? else { return Ok(None) };
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(REVOKE)
            .key(self.record_key(id))
            .key(redis_keys::tenant_keys(&self.prefix, &record.tenant))
            .arg(id.as_str())
            .arg(now())
            .arg(self.lookup_key(""))
            .invoke_async(&mut conn)
            .await
            .context("Failed to revoke the key")?;
        self.get(id).await
    }
}

fn well_formed(presented: &str) -> bool {
    presented
        .strip_prefix(KEY_PREFIX)
        .is_some_and(|hex| hex.len() == SECRET_HEX_LEN && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn new_secret() -> String {
    format!("{KEY_PREFIX}{}", hex::encode(random_bytes::<32>()))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system provides randomness");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_well_formed_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        for bad in ["", "mta_", "mta_xyz", &a[..a.len() - 1], &format!("{a}0"), &a.replace("mta_", "MTA_")] {
            assert!(!well_formed(bad), "{bad}");
        }
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin.allows(Role::Submit) && Role::Admin.allows(Role::Read));
        assert!(Role::Submit.allows(Role::Read) && !Role::Submit.allows(Role::Admin));
        assert!(!Role::Read.allows(Role::Submit));
    }

    #[test]
    fn last_use_is_stamped_again_only_once_it_is_older_than_the_resolution() {
        let record = |last_used_at: Option<&str>| KeyRecord {
            id: "key_0123456789abcdef".parse().unwrap(),
            tenant: "acme".parse().unwrap(),
            role: Role::Read,
            name: String::new(),
            created_at: String::new(),
            expires_at: None,
            last_used_at: last_used_at.map(str::to_owned),
            rotated_at: None,
            revoked_at: None,
            requests_per_hour: None,
            webhook_url: None,
            hash: String::new(),
        };
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00.000Z").unwrap().to_utc();
        let cutoff = at - LAST_USE_RESOLUTION;
        assert!(record(None).last_used_before(cutoff), "never used");
        assert!(record(Some("2026-11-25T09:58:59.999Z")).last_used_before(cutoff));
        assert!(!record(Some("2026-11-25T09:59:00.000Z")).last_used_before(cutoff));
        assert!(!record(Some("2026-11-25T09:59:30.000Z")).last_used_before(cutoff));
        assert!(record(Some("not a time")).last_used_before(cutoff), "an unreadable stamp is replaced");
    }
}
