//! The audit log: who did what to which object, and which requests were refused.
//!
//! Each entry goes two ways: a structured `tracing` event (target `audit`, JSON in
//! production logs) and a capped Redis stream per tenant (`p:audit:{tenant}`) that the
//! tenant's admins read through `GET /v1/admin/audit`. Refusals whose tenant is unknown
//! (no key, an unknown key) go to `p:audit:-`, readable by the operator only. Entries
//! carry key ids, never secrets.

use std::fmt;

use anyhow::Context;
use redis::aio::ConnectionManager;
use serde::Serialize;
use utoipa::ToSchema;

use crate::ids::{KeyId, Tenant, now};
use crate::redis_keys;

/// One audited action.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditEvent {
    /// What happened: `key.created`, `auth.refused`, `job.created`, `result.downloaded`, ...
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Tenant>,
    /// The key that acted (or was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// The object acted on: a job, upload or key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why (refusals) or how (operator actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An entry as read back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// The stream entry id (milliseconds-sequence).
    pub id: String,
    /// `at`, `action`, `tenant`, `key_id`, `target`, `detail` (each when known).
    #[serde(flatten)]
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone)]
pub struct Audit {
    conn: ConnectionManager,
    prefix: String,
    max_entries: u64,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit").field("max_entries", &self.max_entries).finish_non_exhaustive()
    }
}

impl Audit {
    pub fn new(conn: ConnectionManager, prefix: &str, max_entries: u64) -> Audit {
        Audit { conn, prefix: prefix.to_owned(), max_entries }
    }

    fn stream(&self, tenant: Option<&Tenant>) -> String {
        redis_keys::audit(&self.prefix, tenant)
    }

    /// Logs the event and appends it to its tenant's stream. An unreachable Redis is
    /// logged, not raised: the log line stays the record of last resort.
    pub async fn record(&self, event: AuditEvent) {
        tracing::info!(
            target: "audit",
            action = event.action,
            tenant = event.tenant.as_ref().map(Tenant::as_str),
            key_id = event.key_id.as_ref().map(KeyId::as_str),
            object = event.target.as_deref(),
            detail = event.detail.as_deref(),
            "audit"
        );
        let mut command = redis::cmd("XADD");
        command.arg(self.stream(event.tenant.as_ref())).arg("MAXLEN").arg("~").arg(self.max_entries).arg("*");
        command.arg("at").arg(now()).arg("action").arg(event.action);
        if let Some(tenant) = &event.tenant {
            command.arg("tenant").arg(tenant.as_str());
        }
        for (name, value) in [
            ("key_id", event.key_id.as_ref().map(KeyId::as_str)),
            ("target", event.target.as_deref()),
            ("detail", event.detail.as_deref()),
        ] {
            if let Some(value) = value {
                command.arg(name).arg(value);
            }
        }
        let mut conn = self.conn.clone();
        if let Err(e) = command.query_async::<String>(&mut conn).await {
            tracing::warn!(error = %e, action = event.action, "the audit entry could not be stored in Redis");
        }
    }

    /// The newest `limit` entries of `tenant`, newest first.
    pub async fn read(&self, tenant: Option<&Tenant>, limit: usize) -> anyhow::Result<Vec<AuditEntry>> {
        let mut conn = self.conn.clone();
        let raw: Vec<(String, Vec<(String, String)>)> = redis::cmd("XREVRANGE")
            .arg(self.stream(tenant))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .context("Failed to read the audit log")?;
        Ok(raw
            .into_iter()
            .map(|(id, fields)| AuditEntry {
                id,
                fields: fields.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect(),
            })
            .collect())
    }
}
