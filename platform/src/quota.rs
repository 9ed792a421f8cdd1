//! Quotas shared by every API pod through Redis: request rates (GCRA, one atomic Lua
//! script over the key's and the global limit) and upload bytes per tenant per UTC day.
//!
//! Upload bytes are reserved before they are streamed (atomically, so concurrent uploads
//! of one tenant can never together pass the quota) and settled when the upload ends:
//! what was reserved but not stored is given back.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::ids::{KeyId, Tenant};
use crate::redis_keys;

/// `limit` requests per `period`, a burst of up to `limit` allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub period: Duration,
}

impl Rate {
    pub fn per_hour(limit: u32) -> Rate {
        Rate { limit, period: Duration::from_secs(3600) }
    }

    pub fn per_minute(limit: u32) -> Rate {
        Rate { limit, period: Duration::from_secs(60) }
    }

    /// Milliseconds between two requests at the steady rate (at least 1).
    pub fn emission_ms(self) -> u64 {
        (self.period.as_millis() as u64 / u64::from(self.limit.max(1))).max(1)
    }
}

/// Which limit a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Key,
    Tenant,
    Service,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Key => "key",
            Limit::Tenant => "tenant",
            Limit::Service => "service",
        }
    }
}

/// The answer for one request, and what the `RateLimit-*` headers report (the key's quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// When refused: the first limit that refused it, and that limit's rate.
    pub refused_by: Option<(Limit, Rate)>,
    pub rate: Rate,
    pub remaining: u32,
    /// Until the key's quota is whole again.
    pub reset: Duration,
    /// When refused: until a request would be allowed.
    pub retry_after: Duration,
}

/// GCRA over every limit in KEYS at once, on Redis' clock (so pods need no clock sync).
/// ARGV holds (emission interval ms, period ms) per key. A request is counted only when
/// every limit allows it. Returns per key: allowed (1/0), remaining, reset ms, retry ms.
const GCRA: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local out, tats, allowed = {}, {}, true
for i, key in ipairs(KEYS) do
  local emission, period = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + emission
  if new_tat - now > period then
    allowed = false
    for _, v in ipairs({0, 0, tat - now, new_tat - period - now}) do table.insert(out, v) end
  else
    tats[i] = new_tat
    for _, v in ipairs({1, math.floor((period - (new_tat - now)) / emission), new_tat - now, 0}) do
      table.insert(out, v)
    end
  end
end
if allowed then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, string.format('%d', tats[i]), 'PX', tats[i] - now + 1000)
  end
end
return out
"#;

/// Reserves upload bytes in KEYS[1] against the quota ARGV[3]: at most ARGV[1] bytes, and
/// nothing unless at least ARGV[2] are left. Returns the bytes granted (0 = refused).
/// The day's counter is kept two days, then forgotten.
const RESERVE: &str = r#"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want, need, quota = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local left = quota - used
if left < need or left <= 0 then return 0 end
local grant = math.min(want, left)
redis.call('INCRBY', KEYS[1], grant)
redis.call('EXPIRE', KEYS[1], 172800)
return grant
"#;

/// Upload bytes reserved for one upload in progress, against the day it started on.
#[derive(Debug)]
pub struct UploadReservation {
    key: String,
    reserved: u64,
}

impl UploadReservation {
    /// Bytes reserved so far.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }
}

#[derive(Clone)]
pub struct Quotas {
    conn: ConnectionManager,
    prefix: String,
    limits: RequestLimits,
    upload_bytes_per_day: u64,
}

/// The limits every request is counted against besides its key's own (`None` = off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestLimits {
    /// All keys of one tenant together: one tenant cannot use up the service's rate.
    pub tenant: Option<Rate>,
    pub global: Option<Rate>,
}

impl fmt::Debug for Quotas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quotas").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Quotas {
    pub fn new(conn: ConnectionManager, prefix: &str, limits: RequestLimits, upload_bytes_per_day: u64) -> Quotas {
        Quotas { conn, prefix: prefix.to_owned(), limits, upload_bytes_per_day }
    }

    /// Counts one request of `key` (of `tenant`) against its rate, its tenant's and the
    /// service's; it is counted only where every one of them allows it.
    pub async fn request(&self, key: &KeyId, tenant: &Tenant, rate: Rate) -> anyhow::Result<Decision> {
        let mut limits = vec![(Limit::Key, rate, redis_keys::rate(&self.prefix, key))];
        if let Some(tenant_rate) = self.limits.tenant {
            limits.push((Limit::Tenant, tenant_rate, redis_keys::rate_tenant(&self.prefix, tenant)));
        }
        if let Some(global) = self.limits.global {
            limits.push((Limit::Service, global, redis_keys::rate_global(&self.prefix)));
        }
        let gcra = redis::Script::new(GCRA);
        let mut script = gcra.prepare_invoke();
        for (_, rate, key) in &limits {
            script.key(key).arg(rate.emission_ms()).arg(rate.period.as_millis() as u64);
        }
        let mut conn = self.conn.clone();
        let out: Vec<i64> = script.invoke_async(&mut conn).await.context("Failed to check the rate limit")?;
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        let answers: Vec<&[i64]> = out.chunks(4).collect();
        anyhow::ensure!(
            answers.len() == limits.len(),
            "The rate script answered {} limits of {}",
            answers.len(),
            limits.len()
        );
        let refused_by =
            limits.iter().zip(&answers).find(|(_, a)| a[0] != 1).map(|((limit, rate, _), _)| (*limit, *rate));
        let retry_after = answers.iter().map(|l| ms(l[3])).max().unwrap_or_default();
        let own = answers[0];
        let allowed = refused_by.is_none();
        Ok(Decision {
            refused_by,
            rate,
            remaining: if allowed { own[1].clamp(0, i64::from(u32::MAX)) as u32 } else { 0 },
            reset: ms(own[2]),
            retry_after,
        })
    }

    /// Counts one refused authentication from `client` (an address) against `rate`; the
    /// answer says whether this refusal was still within it.
    pub async fn auth_failure(&self, client: &str, rate: Rate) -> anyhow::Result<bool> {
        let gcra = redis::Script::new(GCRA);
        let mut script = gcra.prepare_invoke();
        script
            .key(redis_keys::rate_auth_failures(&self.prefix, client))
            .arg(rate.emission_ms())
            .arg(rate.period.as_millis() as u64);
        let mut conn = self.conn.clone();
        let out: Vec<i64> = script.invoke_async(&mut conn).await.context("Failed to count a refused key")?;
        Ok(out.first() == Some(&1))
    }

    fn upload_key(&self, tenant: &Tenant) -> String {
        redis_keys::upload_bytes(&self.prefix, tenant, Utc::now().date_naive())
    }

    /// Starts an upload of `tenant` with nothing reserved yet.
    pub fn start_upload(&self, tenant: &Tenant) -> UploadReservation {
        UploadReservation { key: self.upload_key(tenant), reserved: 0 }
    }

    /// Reserves up to `want` more bytes of today's quota for `upload`, and at least `need`
    /// (`need <= want`); `false`, with nothing reserved, when fewer than `need` are left.
    pub async fn reserve_upload(&self, upload: &mut UploadReservation, want: u64, need: u64) -> anyhow::Result<bool> {
        if want == 0 {
            return Ok(true);
        }
        let mut conn = self.conn.clone();
        let granted: u64 = redis::Script::new(RESERVE)
            .key(&upload.key)
            .arg(want)
            .arg(need.clamp(1, want))
            .arg(self.upload_bytes_per_day)
            .invoke_async(&mut conn)
            .await
            .context("Failed to reserve upload quota")?;
        upload.reserved += granted;
        Ok(granted > 0)
    }

    /// Ends an upload that stored `used` bytes: the rest of its reservation is given back
    /// (settling again gives back nothing more).
    pub async fn settle_upload(&self, upload: &mut UploadReservation, used: u64) -> anyhow::Result<()> {
        let unused = upload.reserved.saturating_sub(used);
        if unused == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = conn.decr(&upload.key, unused).await.context("Failed to give back upload quota")?;
        upload.reserved = used;
        Ok(())
    }

    pub fn upload_bytes_per_day(&self) -> u64 {
        self.upload_bytes_per_day
    }
}
