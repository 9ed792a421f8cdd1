//! The job spec: what a client asks for (DESIGN.md 4), as JSON, and its translation into
//! the engine's input spec and options.

use std::collections::BTreeMap;

use mta_core::ingest::{ColumnMapping, Format, InputSpec, parse_delimiter};
use mta_core::{AttributionError, InputKind, OptionsSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::config::LimitsConfig;
use crate::ids::Tenant;
use crate::webhook::WebhookSpec;

/// `POST /v1/jobs` body. Unknown fields are refused, so a typo never silently falls back to a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "upload_id": "3f0c8a52-6d1e-4f7a-9a43-2b8e1c5d7f90",
    "kind": "events",
    "columns": {"user_id": "cookie_id"},
    "options": {"models": ["last_touch", "linear", "markov"], "markov_order": 2, "lookback_days": 30},
    "export_credits": true,
    "webhook": {"url": "https://hooks.example.com/mta"}
}))]
pub struct JobSpec {
    /// The upload to attribute (filled in by the server for a multipart submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// `events` or `paths`; detected from the columns when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<InputKind>,
    /// `csv`, `parquet` or `ndjson`; detected from the content when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// CSV delimiter: `,` `;` or tab; detected from the header when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// Channel separator of path-level input (default `>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_separator: Option<String>,
    /// Canonical column → the file's column, e.g. `{"user_id": "cookie"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, String>,
    /// Models and their options (DESIGN.md 3).
    #[serde(default)]
    pub options: OptionsSpec,
    /// Also write per-journey credit rows as Parquet (`GET /v1/jobs/{id}/credits`).
    #[serde(default)]
    pub export_credits: bool,
    /// Where to POST the job's end (`job.succeeded`, `job.failed`, `job.cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

impl JobSpec {
    /// The engine's input spec, naming the first bad field.
    pub fn input_spec(&self, limits: &LimitsConfig) -> Result<InputSpec, AttributionError> {
        let format = self.format.as_deref().map(str::parse::<Format>).transpose()?;
        let delimiter = self.delimiter.as_deref().map(parse_delimiter).transpose()?;
        let path_separator = self.path_separator.clone().unwrap_or_else(|| ">".to_owned());
        if path_separator.is_empty() {
            return Err(AttributionError::option("path_separator", "must not be empty"));
        }
        let pairs: Vec<String> =
            self.columns.iter().map(|(canonical, column)| format!("{canonical}={column}")).collect();
        Ok(InputSpec {
            kind: self.kind,
            format,
            delimiter,
            path_separator,
            columns: ColumnMapping::parse(pairs.iter().map(String::as_str))?,
            keep_user_ids: self.export_credits,
            limits: limits.engine(),
            ..InputSpec::default()
        })
    }

    /// Everything that can be checked before reading the input. Options that depend on
    /// the kind (`time_decay` on paths) are checked again once the kind is known.
    pub fn validate(&self, limits: &LimitsConfig) -> Result<(), AttributionError> {
        self.input_spec(limits)?;
        match self.kind {
            Some(kind) => self.options.validate(kind).map(drop),
            // With the kind unknown, options that fit either kind may still be right
            // (`time_decay` fits events only); an unknown model fits neither.
            None => self
                .options
                .validate(InputKind::Events)
                .or_else(|e| self.options.validate(InputKind::Paths).map_err(|_| e))
                .map(drop),
        }
    }

    /// The result-cache key: the tenant (a cache hit must not tell one tenant what another
    /// uploaded), the input's SHA-256 and every field that changes the answer.
    pub fn cache_key(&self, tenant: &Tenant, upload_sha256: &str) -> String {
        // Neither the upload's id nor where to announce the result changes the result.
        let without_upload = JobSpec { upload_id: None, webhook: None, ..self.clone() };
        let mut hasher = Sha256::new();
        hasher.update(tenant.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(upload_sha256.as_bytes());
        hasher.update(b"\n");
        hasher.update(serde_json::to_vec(&without_upload).expect("a spec serialises"));
        hex::encode(hasher.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<JobSpec>(r#"{"upload_id": "x", "modles": ["linear"]}"#).unwrap_err();
        assert!(err.to_string().contains("modles"), "{err}");
    }

    #[test]
    fn the_cache_key_ignores_the_upload_id_but_not_options() {
        let a = JobSpec { upload_id: Some("a".into()), ..JobSpec::default() };
        let b = JobSpec { upload_id: Some("b".into()), ..JobSpec::default() };
        let (t, other): (Tenant, Tenant) = ("t".parse().unwrap(), "u".parse().unwrap());
        assert_eq!(a.cache_key(&t, "h"), b.cache_key(&t, "h"));
        assert_ne!(a.cache_key(&t, "h"), a.cache_key(&t, "g"));
        assert_ne!(a.cache_key(&t, "h"), a.cache_key(&other, "h"));
        let c = JobSpec { export_credits: true, ..a.clone() };
        assert_ne!(a.cache_key(&t, "h"), c.cache_key(&t, "h"));
    }

    #[test]
    fn bad_fields_are_named() {
        let spec = JobSpec { delimiter: Some("::".into()), ..JobSpec::default() };
        let err = spec.validate(&LimitsConfig::default()).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("delimiter"));
        let spec =
            JobSpec { options: OptionsSpec { markov_order: Some(9), ..OptionsSpec::default() }, ..JobSpec::default() };
        assert_eq!(
            spec.validate(&LimitsConfig::default()).unwrap_err().details[0].column.as_deref(),
            Some("markov_order")
        );
    }

    #[test]
    fn models_are_checked_even_before_the_kind_is_known() {
        let with = |models: &[&str], kind| JobSpec {
            kind,
            options: OptionsSpec {
                models: Some(models.iter().map(|m| m.to_string()).collect()),
                ..OptionsSpec::default()
            },
            ..JobSpec::default()
        };
        let limits = LimitsConfig::default();
        assert!(with(&["time_decay"], None).validate(&limits).is_ok(), "fits events");
        assert!(with(&["time_decay"], Some(InputKind::Paths)).validate(&limits).is_err());
        let err = with(&["no_such_model"], None).validate(&limits).unwrap_err();
        assert_eq!(err.details[0].column.as_deref(), Some("models"));
    }
}
