//! `mta keys`: the operator's key management, straight against the service's Redis
//! (`REDIS_URL`, or the private Redis of an all-in-one service on `MTA_DATA_DIR`).
//! This is also how a fresh deployment gets its first admin key: whoever can reach Redis
//! is already trusted with everything, so no secret needs to sit in a config file.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use mta_platform::access::{KeyRecord, KeyRequest, KeyStore, NewKey, Role};
use mta_platform::audit::{Audit, AuditEvent};
use mta_platform::ids::{KeyId, Tenant};
use mta_platform::redis_server::PrivateRedis;
use mta_platform::{Config, redis_conn};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; its secret is printed this once.
    Create(CreateArgs),
    /// List keys (every tenant's unless --tenant), never their secrets.
    List {
        #[arg(long, value_parser = parse_tenant)]
        tenant: Option<Tenant>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Give a key a new secret; the old one stops working at once.
    Rotate { id: String },
    /// Revoke a key on every API pod from its next request on.
    Revoke { id: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long, value_parser = parse_tenant)]
    pub tenant: Tenant,
    /// admin, submit or read.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// What the key is for (shown in listings and the audit log).
    #[arg(long)]
    pub name: String,
    /// Lifetime, e.g. `90d`, `12h`, `30m`, `45s`; no expiry when absent.
    #[arg(long, value_parser = parse_lifetime)]
    pub expires_in: Option<Duration>,
    /// The key's own request quota (default MTA_RATE_LIMIT_PER_HOUR).
    #[arg(long)]
    pub requests_per_hour: Option<u32>,
    /// Print JSON (with the secret in `key`) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_tenant(s: &str) -> Result<Tenant, String> {
    s.parse()
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn parse_lifetime(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("`{s}` is not a lifetime like 90d, 12h, 30m or 45s"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("`{s}` is not a lifetime like 90d, 12h, 30m or 45s")),
    };
    Ok(Duration::from_secs(number * seconds))
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let (store, audit) = connect(&config).await?;
    let operator = |action: &'static str, record: &KeyRecord| AuditEvent {
        action,
        tenant: Some(record.tenant.clone()),
        key_id: None,
        target: Some(record.id.to_string()),
        detail: Some("by the operator (mta keys)".to_owned()),
    };
    match command {
        KeysCommand::Create(args) => {
            let expires_at = args
                .expires_in
                .map(|lifetime| chrono::Duration::from_std(lifetime).map(|d| Utc::now() + d))
                .transpose()
                .context("The lifetime is too long")?;
            let request = KeyRequest {
                tenant: args.tenant,
                role: args.role,
                name: args.name,
                expires_at,
                requests_per_hour: args.requests_per_hour,
            };
            request.validate()?;
            // The operator is not held to the tenant admins' key limit.
            let new = store.create(&request, None).await?.map_err(|e| anyhow::anyhow!(e.message))?;
            audit.record(operator("key.created", &new.record)).await;
            print_new(&new, args.json)?;
        }
        KeysCommand::List { tenant, json } => {
            let keys = store.list(tenant.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print!("{}", table(&keys));
            }
        }
        KeysCommand::Rotate { id } => {
            let new = store.rotate(&key_id(&id)?).await?.with_context(|| format!("No active key {id}"))?;
            audit.record(operator("key.rotated", &new.record)).await;
            print_new(&new, false)?;
        }
        KeysCommand::Revoke { id } => {
            let revoked = store.revoke(&key_id(&id)?).await?.with_context(|| format!("No key {id}"))?;
            audit.record(operator("key.revoked", &revoked)).await;
            println!("revoked {} ({}, tenant {})", revoked.id, revoked.name, revoked.tenant);
        }
    }
    Ok(())
}

async fn connect(config: &Config) -> anyhow::Result<(KeyStore, Audit)> {
    let url = match (&config.redis_url, PrivateRedis::running_under(&config.data_dir)) {
        (Some(url), _) => url.clone(),
        (None, Some(url)) => url,
        (None, None) => bail!(
            "Set REDIS_URL to the service's Redis (or run this beside a running `mta serve` with the same MTA_DATA_DIR)"
        ),
    };
    let conn = redis_conn::connect(&url, config.queue.redis_timeout).await?;
    let prefix = &config.queue.prefix;
    Ok((KeyStore::new(conn.clone(), prefix), Audit::new(conn, prefix, config.security.audit_max_entries)))
}

fn key_id(id: &str) -> anyhow::Result<KeyId> {
    id.parse().map_err(|_| anyhow::anyhow!("`{id}` is not a key id (key_ and 16 hex digits)"))
}

fn print_new(new: &NewKey, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(new)?);
    } else {
        let record = &new.record;
        println!("{}", new.key);
        eprintln!(
            "key {} ({}) for tenant {} with role {}: the secret above is shown only now; store it safely",
            record.id,
            record.name,
            record.tenant,
            record.role.as_str()
        );
    }
    Ok(())
}

fn table(keys: &[KeyRecord]) -> String {
    let mut out =
        format!("{:<20} {:<16} {:<7} {:<8} {:<24} {}\n", "ID", "TENANT", "ROLE", "STATE", "LAST USED", "NAME");
    let now = Utc::now();
    for key in keys {
        let state = if key.revoked_at.is_some() {
            "revoked"
        } else if key.is_expired(now) {
            "expired"
        } else {
            "active"
        };
        out.push_str(&format!(
            "{:<20} {:<16} {:<7} {:<8} {:<24} {}\n",
            key.id.as_str(),
            key.tenant.as_str(),
            key.role.as_str(),
            state,
            key.last_used_at.as_deref().unwrap_or("never"),
            key.name
        ));
    }
    out
}

/// The first admin key of a fresh all-in-one install: made when no key exists and written,
/// readable by the owner only, to `data_dir/admin.key`. Returns the file when it was made.
pub async fn bootstrap(store: &KeyStore, data_dir: &Path) -> anyhow::Result<Option<std::path::PathBuf>> {
    if !store.is_empty().await? {
        return Ok(None);
    }
    let request = KeyRequest {
        tenant: "default".parse().map_err(anyhow::Error::msg)?,
        role: Role::Admin,
        name: "bootstrap admin (all-in-one)".to_owned(),
        expires_at: None,
        requests_per_hour: None,
    };
    let new = store.create(&request, None).await?.map_err(|e| anyhow::anyhow!(e.message))?;
    let path = data_dir.join("admin.key");
    write_private(&path, &format!("{}\n", new.key))?;
    Ok(Some(path))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("Failed to write {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("Failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_their_unit() {
        assert_eq!(parse_lifetime("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(parse_lifetime("2s").unwrap(), Duration::from_secs(2));
        for bad in ["", "d", "5", "5w", "-1d", "1.5h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
