//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types they
//! exchange, served at `/openapi.json` and rendered offline at `/docs`.
//!
//! What every `/v1` operation shares (the key, 401, 429, 503 and the `RateLimit-*`
//! headers) is added here once rather than repeated on each handler.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::{admin, direct, health, import, jobs, results, submit, uploads, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mta: multi-touch attribution",
        description = "Upload touchpoint files, run attribution jobs under every standard model, fetch results. \
                       Every /v1 route needs an API key (`Authorization: Bearer <key>` or `X-API-Key`).",
        license(name = "Apache-2.0")
    ),
    paths(
        uploads::create,
        direct::start,
        direct::complete,
        import::import,
        submit::create,
        jobs::list,
        jobs::get,
        jobs::cancel,
        jobs::timeline,
        results::result,
        results::credits,
        webhooks::webhooks,
        webhooks::redeliver,
        admin::create,
        admin::list,
        admin::rotate,
        admin::revoke,
        admin::audit,
        admin::set_webhook,
        admin::remove_webhook,
        admin::rotate_webhook_secret,
        health::summary,
        health::live,
        health::ready,
    ),
    modifiers(&SharedResponses),
    tags(
        (name = "uploads", description = "Files, streamed to object storage, or sent straight to it (direct uploads)"),
        (name = "jobs", description = "Attribution jobs: submit, follow, cancel"),
        (name = "results", description = "Results and per-journey credits"),
        (name = "webhooks", description = "A job's webhook deliveries (signed per Standard Webhooks)"),
        (name = "admin", description = "The tenant's API keys and audit log (admin keys)"),
        (name = "health", description = "Liveness and readiness (no key)"),
    )
)]
pub struct ApiDoc;

struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("mta_<64 hex>").build(),
            ),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [&mut item.get, &mut item.post, &mut item.put, &mut item.delete];
            for operation in operations.into_iter().flatten() {
                add_shared(operation);
            }
        }
    }
}

fn add_shared(operation: &mut Operation) {
    let security = [("bearer", "Authorization: Bearer <key>"), ("api_key", "X-API-Key: <key>")];
    operation.security =
        Some(security.iter().map(|(name, _)| SecurityRequirement::new(*name, Vec::<String>::new())).collect());
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
            )
            .build()
    };
    let responses = &mut operation.responses.responses;
    responses.insert("401".into(), error("No usable API key (missing, malformed, unknown, revoked or expired)").into());
    responses.insert("429".into(), error("Rate limit or daily upload quota used up; see `Retry-After`").into());
    responses.insert(
        "503".into(),
        error("Redis or the object store is unavailable, or the request timed out; retry").into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiCode;

    #[test]
    fn the_document_lists_every_error_code() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let codes: Vec<&str> = ApiCode::ALL.iter().map(|code| code.as_str()).collect();
        assert_eq!(doc["components"]["schemas"]["ApiCode"]["enum"], serde_json::json!(codes));
    }

    #[test]
    fn a_breakdown_row_has_its_fixed_fields_and_a_string_per_breakdown_column() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let row = &doc["components"]["schemas"]["BreakdownRow"];
        let breakdown = &doc["components"]["schemas"]["ModelResult"]["properties"]["breakdown"];
        assert_eq!(breakdown["items"]["$ref"], "#/components/schemas/BreakdownRow", "{breakdown}");
        let fields: Vec<&String> = row["properties"].as_object().unwrap().keys().collect();
        assert_eq!(fields, ["channel", "conversions", "value", "cost", "cpa", "roas", "interval"]);
        assert_eq!(row["properties"]["interval"]["oneOf"][0]["$ref"], "#/components/schemas/RowInterval", "{row}");
        // Cost, CPA and ROAS only with cost per campaign, the interval only with intervals.
        assert_eq!(row["required"], serde_json::json!(["channel", "conversions", "value"]), "{row}");
        assert_eq!(row["additionalProperties"]["type"], "string", "{row}");
    }

    #[test]
    fn every_referenced_schema_is_in_the_document() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "`{name}` is referenced but not defined");
        }
        // `markov_order` is a number from 1 to 4 or `auto`.
        let order = serde_json::to_string(&schemas["MarkovOrder"]).unwrap();
        assert!(order.contains("\"auto\"") && order.contains("\"maximum\":4"), "{order}");
        for name in ["OrderSelection", "OrderScore", "PairEffect"] {
            assert!(schemas.contains_key(name), "{name}");
        }
    }
}
