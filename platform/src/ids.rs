//! The ids of the service and its clock, the leaf every other module may stand on: it
//! imports nothing else from this crate.
//!
//! - [`JobId`] and [`UploadId`]: random UUIDs, never taken from a request.
//! - [`Tenant`]: a customer's namespace, safe inside object and Redis keys.
//! - [`KeyId`]: an API key's public name, safe to log.
//! - [`now`] and [`timestamp_in`]: times as every record writes them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of ", $what, ": a random UUID, never taken from a request.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn random() -> Self {
                $name(uuid::Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::try_parse(s).map($name)
            }
        }
    };
}

uuid_id!(JobId, "a job");
uuid_id!(UploadId, "an upload");

/// A customer's namespace: every upload, job and object belongs to one. Lower-case
/// letters, digits and `-`, 1 to 63 characters, so it is safe inside object keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
pub struct Tenant(String);

impl Tenant {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tenant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if valid {
            Ok(Tenant(s.to_owned()))
        } else {
            Err("a tenant is 1 to 63 lower-case letters, digits and `-`, not starting with `-`".to_owned())
        }
    }
}

impl TryFrom<String> for Tenant {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Tenant> for String {
    fn from(t: Tenant) -> String {
        t.0
    }
}

impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's public name: `key_` and 16 hex digits. Safe to log; the secret never is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^key_[0-9a-f]{16}$")]
pub struct KeyId(String);

impl KeyId {
    pub(crate) fn random() -> KeyId {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system provides randomness");
        KeyId(format!("key_{}", hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for KeyId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s.strip_prefix("key_").filter(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        hex.map(|_| KeyId(s.to_ascii_lowercase())).ok_or_else(|| "not a key id".to_owned())
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(k: KeyId) -> String {
        k.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `delay` from now, written like [`now`].
pub fn timestamp_in(delay: Duration) -> String {
    let now = Utc::now();
    let at = chrono::Duration::from_std(delay).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now);
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time as every record writes it (RFC 3339, milliseconds, UTC).
pub fn now() -> String {
    let now: DateTime<Utc> = Utc::now();
    now.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_safe_path_segments() {
        for good in ["acme", "a", "team-42"] {
            assert!(good.parse::<Tenant>().is_ok(), "{good}");
        }
        for bad in ["", "-x", "Acme", "a/b", "..", "a b", "a\n", &"x".repeat(64)] {
            assert!(bad.parse::<Tenant>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_ids_parse_only_their_shape() {
        assert!("key_0123456789abcdef".parse::<KeyId>().is_ok());
        assert!(KeyId::random().as_str().parse::<KeyId>().is_ok());
        for bad in ["key_", "key_0123", "../key_0123456789abcdef", "key_0123456789abcdeg"] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }
}
