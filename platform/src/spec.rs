//! The job spec: what a client asks for (docs/service.md, "Submitting a job"), parsed once
//! into typed fields at the edge (the API's JSON, the command line's flags) and carried as
//! it is to the workers, which turn it into the engine's input spec without checking it again.

use mta_core::ingest::{ColumnMapping, Delimiter, Format, InputSpec, Limits, PathSeparator};
use mta_core::{AttributionError, InputKind, OptionsSpec};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::ids::{Tenant, UploadId};
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
    #[schema(value_type = Option<String>)]
    pub upload_id: Option<UploadId>,
    /// `events` or `paths`; detected from the columns when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<InputKind>,
    /// `csv`, `parquet` or `ndjson`; detected from the content when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub format: Option<Format>,
    /// CSV delimiter: `,` `;` or tab; detected from the header when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub delimiter: Option<Delimiter>,
    /// Channel separator of path-level input (default `>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub path_separator: Option<PathSeparator>,
    /// Canonical column → the file's column, e.g. `{"user_id": "cookie"}`.
    #[serde(default, skip_serializing_if = "ColumnMapping::is_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub columns: ColumnMapping,
    /// Models and their options (docs/user-guide.md, "Models").
    #[serde(default)]
    pub options: OptionsSpec,
    /// Also write per-journey credit rows as Parquet (`GET /v1/jobs/{id}/credits`).
    #[serde(default)]
    pub export_credits: bool,
    /// A second upload of the same tenant holding a cost table (CSV or Parquet: `date`,
    /// `channel`, optional `campaign`, `cost`): each model's channels gain cost, CPA and ROAS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub spend_upload_id: Option<UploadId>,
    /// Where to POST the job's end (`job.succeeded`, `job.failed`, `job.cancelled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

impl JobSpec {
    /// The engine's input spec under the service's `limits`.
    pub fn input_spec(&self, limits: Limits) -> InputSpec {
        InputSpec {
            kind: self.kind,
            format: self.format,
            delimiter: self.delimiter.map(|d| d.0),
            path_separator: self.path_separator.clone().unwrap_or_default().as_str().to_owned(),
            columns: self.columns.clone(),
            channel_rules: self.options.channel_rules.clone(),
            breakdown: self.options.breakdown.clone().unwrap_or_default(),
            segment_by: self.options.segment_by.clone(),
            conversion_types: self.options.conversion_types.clone().unwrap_or_default(),
            keep_user_ids: self.export_credits,
            limits,
            ..InputSpec::default()
        }
    }

    /// Everything that can be checked before reading the input (the same check `mta
    /// attribute` makes); options that depend on the kind are resolved once it is known.
    pub fn check(&self) -> Result<(), AttributionError> {
        self.options.check(self.kind)
    }

    /// The result-cache key: the tenant (a cache hit must not tell one tenant what another
    /// uploaded), the input's SHA-256, the cost table's (when the spec names one) and every
    /// field that changes the answer.
    pub fn cache_key(&self, tenant: &Tenant, upload_sha256: &str, spend_sha256: Option<&str>) -> String {
        let canonical = self.canonical();
        let mut hasher = Sha256::new();
        hasher.update(tenant.as_str().as_bytes());
        hasher.update(b"\n");
        hasher.update(upload_sha256.as_bytes());
        hasher.update(b"\n");
        if let Some(spend) = spend_sha256 {
            hasher.update(b"spend ");
            hasher.update(spend.as_bytes());
            hasher.update(b"\n");
        }
        hasher.update(serde_json::to_vec(&canonical).expect("a spec serialises"));
        hex::encode(hasher.finalize())
    }

    /// The spec as the cache compares specs: neither the uploads' ids nor where to announce
    /// the result changes the result, and a default written out equals one left out (the
    /// command line names the separator, `models: all` and the conversion-row rule; a JSON
    /// body usually leaves them out), so the same job from either shares one result.
    fn canonical(&self) -> JobSpec {
        let mut spec = JobSpec { upload_id: None, spend_upload_id: None, webhook: None, ..self.clone() };
        if spec.path_separator == Some(PathSeparator::default()) {
            spec.path_separator = None;
        }
        let options = &mut spec.options;
        if options
            .models
            .as_deref()
            .is_some_and(|models| models.iter().all(|m| m.trim() == "all") && !models.is_empty())
        {
            options.models = None;
        }
        if options.conversion_row_is_touch == Some(false) {
            options.conversion_row_is_touch = None;
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<JobSpec>(r#"{"kind": "events", "modles": ["linear"]}"#).unwrap_err();
        assert!(err.to_string().contains("modles"), "{err}");
    }

    #[test]
    fn the_cache_key_ignores_the_upload_id_but_not_options() {
        let a = JobSpec { upload_id: Some(UploadId::random()), ..JobSpec::default() };
        let b = JobSpec { upload_id: Some(UploadId::random()), ..JobSpec::default() };
        let (t, other): (Tenant, Tenant) = ("t".parse().unwrap(), "u".parse().unwrap());
        assert_eq!(a.cache_key(&t, "h", None), b.cache_key(&t, "h", None));
        assert_ne!(a.cache_key(&t, "h", None), a.cache_key(&t, "g", None));
        assert_ne!(a.cache_key(&t, "h", None), a.cache_key(&other, "h", None));
        let c = JobSpec { export_credits: true, ..a.clone() };
        assert_ne!(a.cache_key(&t, "h", None), c.cache_key(&t, "h", None));
        // The cost table counts by its content, not by its upload's id.
        let d = JobSpec { spend_upload_id: Some(UploadId::random()), ..a.clone() };
        let e = JobSpec { spend_upload_id: Some(UploadId::random()), ..a.clone() };
        assert_eq!(d.cache_key(&t, "h", Some("s")), e.cache_key(&t, "h", Some("s")));
        assert_ne!(d.cache_key(&t, "h", Some("s")), d.cache_key(&t, "h", Some("r")));
        assert_ne!(d.cache_key(&t, "h", Some("s")), a.cache_key(&t, "h", None));
    }

    #[test]
    fn defaults_written_out_share_the_cache_key_of_defaults_left_out() {
        let t: Tenant = "t".parse().unwrap();
        let left_out: JobSpec = serde_json::from_str("{}").unwrap();
        // What `mta submit` sends without flags.
        let written: JobSpec = serde_json::from_str(
            r#"{"path_separator": ">", "options": {"models": ["all"], "conversion_row_is_touch": false}}"#,
        )
        .unwrap();
        assert_eq!(left_out.cache_key(&t, "h", None), written.cache_key(&t, "h", None));
        let other: JobSpec = serde_json::from_str(r#"{"options": {"models": ["linear"]}}"#).unwrap();
        assert_ne!(left_out.cache_key(&t, "h", None), other.cache_key(&t, "h", None));
        let touch: JobSpec = serde_json::from_str(r#"{"options": {"conversion_row_is_touch": true}}"#).unwrap();
        assert_ne!(left_out.cache_key(&t, "h", None), touch.cache_key(&t, "h", None));
        let separator: JobSpec = serde_json::from_str(r#"{"path_separator": "|"}"#).unwrap();
        assert_ne!(left_out.cache_key(&t, "h", None), separator.cache_key(&t, "h", None));
    }

    #[test]
    fn typed_fields_are_parsed_once_and_read_back_the_same() {
        let json = r#"{"format":"csv","delimiter":";","path_separator":" > ","columns":{"user_id":"who"}}"#;
        let spec: JobSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.format, Some(Format::Csv));
        let input = spec.input_spec(Limits::default());
        assert_eq!((input.delimiter, input.path_separator.as_str()), (Some(b';'), " > "));
        let again: JobSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn bad_fields_are_refused_naming_them() {
        for (json, words) in [
            (r#"{"delimiter": "::"}"#, "is not a single ASCII character"),
            (r#"{"format": "xls"}"#, "is not csv, parquet or ndjson"),
            (r#"{"path_separator": ""}"#, "must not be empty"),
            (r#"{"columns": {"colour": "x"}}"#, "is not a known column"),
        ] {
            let err = serde_json::from_str::<JobSpec>(json).unwrap_err();
            assert!(err.to_string().contains(words), "{json}: {err}");
        }
        assert!(serde_json::from_str::<JobSpec>(r#"{"upload_id": "../../etc/passwd"}"#).is_err());
        let spec = JobSpec {
            options: OptionsSpec { markov_order: Some(9.into()), ..OptionsSpec::default() },
            ..JobSpec::default()
        };
        assert_eq!(spec.check().unwrap_err().details[0].column.as_deref(), Some("markov_order"));
    }
}
