//! # mta-api: the HTTP API
//!
//! Thin axum handlers over the platform: [`uploads`] streams bodies into object storage
//! while hashing them, [`direct`] lets clients send files straight to an S3 store, [`import`] records objects
//! already in the store, [`submit`] parses and checks a job spec and hands it to the
//! platform's submit operation, [`jobs`] serves and cancels jobs, [`results`] serves results
//! and credits, [`webhooks`] a job's deliveries. The API never computes attribution.
//! Every error goes through [`error::ApiError`], the one mapping to HTTP. Every `/v1`
//! route sits behind [`auth::authenticate`] (keys, rate limits) and names the role it
//! needs with [`auth::Auth`]; [`admin`] manages keys and reads the audit log. The web
//! [`dashboard`] (static files embedded in the binary) is served at `/`, the API reference
//! at `/openapi.json` and `/docs/` ([`openapi`]). `/metrics` and `/health/detailed` are
//! served only on the internal listener (`MTA_INTERNAL_BIND`), never on the public one;
//! [`server`] is the accept loop with its timeouts and connection cap.

pub mod admin;
pub mod auth;
pub mod dashboard;
pub mod direct;
pub mod error;
pub mod health;
pub mod import;
pub mod jobs;
pub mod observe;
pub mod openapi;
pub mod results;
pub mod server;
pub mod submit;
pub mod uploads;
pub mod webhooks;

use std::sync::Arc;

use anyhow::Context;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use mta_platform::access::KeyStore;
use mta_platform::audit::Audit;
use mta_platform::backends::Backends;
use mta_platform::health::Probe;
use mta_platform::metrics::Metrics;
use mta_platform::quota::{Quotas, Rate, RequestLimits};
use mta_platform::webhook::Deliveries;
use mta_platform::{Config, Ledger, Queue, Storage};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

/// JSON request bodies larger than this are refused (uploads stream and have their own limit).
pub(crate) const JSON_BODY_LIMIT: usize = 1 << 20;

/// What every handler shares. One `Arc` around it all: axum clones the state for each
/// request (middleware and handler alike), and cloning every store's connection and key
/// prefix there cost a good share of a status poll's time.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub ledger: Ledger,
    pub queue: Queue,
    pub storage: Storage,
    pub keys: KeyStore,
    pub quotas: Quotas,
    pub audit: Audit,
    pub metrics: Metrics,
    pub probe: Probe,
    pub deliveries: Deliveries,
}

impl AppState {
    pub async fn connect(config: Config, redis_url: &str) -> anyhow::Result<AppState> {
        let Backends { redis, ledger, queue, storage, deliveries } = Backends::connect(&config, redis_url).await?;
        let (prefix, security) = (&config.queue.prefix, &config.security);
        let limits = RequestLimits {
            tenant: Some(security.tenant_requests_per_hour).filter(|&n| n > 0).map(Rate::per_hour),
            global: Some(security.global_requests_per_minute).filter(|&n| n > 0).map(Rate::per_minute),
        };
        Ok(AppState(Arc::new(Services {
            keys: KeyStore::new(redis.clone(), prefix),
            quotas: Quotas::new(redis.clone(), prefix, limits, security.tenant_upload_bytes_per_day),
            audit: Audit::new(redis, prefix, security.audit_max_entries),
            deliveries,
            probe: Probe::new("api", ledger.clone(), queue.clone(), storage.clone(), &config.queue),
            metrics: Metrics::new(),
            ledger,
            queue,
            storage,
            config,
        })))
    }
}

pub fn router(state: AppState) -> Router {
    let security = &state.config.security;
    // Uploads stream for as long as they take, under their own size limit.
    let streamed = Router::new()
        .route("/v1/uploads", post(uploads::create))
        .route("/v1/jobs", post(submit::create).get(jobs::list))
        .layer(DefaultBodyLimit::disable())
        // Completing a direct upload and importing an object read the whole object once, however large.
        .merge(
            Router::new()
                .route("/v1/uploads/{id}/complete", post(direct::complete))
                .route("/v1/uploads/import", post(import::import))
                .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT)),
        );
    let v1 = Router::new()
        .route("/v1/uploads/direct", post(direct::start))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/result", get(results::result))
        .route("/v1/jobs/{id}/credits", get(results::credits))
        .route("/v1/jobs/{id}/timeline", get(jobs::timeline))
        .route("/v1/jobs/{id}/webhooks", get(webhooks::webhooks))
        .route("/v1/jobs/{id}/webhooks/redeliver", post(webhooks::redeliver))
        .route("/v1/admin/keys", post(admin::create).get(admin::list))
        .route("/v1/admin/keys/{id}", delete(admin::revoke))
        .route("/v1/admin/keys/{id}/rotate", post(admin::rotate))
        .route("/v1/admin/keys/{id}/webhook", put(admin::set_webhook).delete(admin::remove_webhook))
        .route("/v1/admin/keys/{id}/webhook/rotate", post(admin::rotate_webhook_secret))
        .route("/v1/admin/audit", get(admin::audit))
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, security.request_timeout))
        .merge(streamed)
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate));
    let mut router = Router::new()
        .merge(v1)
        .route("/health", get(health::summary))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .merge(api_docs())
        .merge(dashboard::routes())
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(middleware::from_fn_with_state(security.hsts_secs, security_headers));
    if !security.cors_origins.is_empty() {
        router = router.layer(cors(&security.cors_origins));
    }
    router.layer(middleware::from_fn_with_state(state.clone(), observe::observe)).with_state(state)
}

/// The internal listener's routes: the detailed health and the metrics (which say how busy
/// the service is and which tenants use it), plus the probes.
pub fn internal_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::summary))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/health/detailed", get(health::detailed))
        .route("/metrics", get(health::metrics))
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(middleware::from_fn_with_state(None, security_headers))
        .with_state(state)
}

/// `/openapi.json` and its rendering at `/docs` (Swagger UI, vendored: no CDN). The page
/// needs its own scripts and styles, so it gets a CSP that allows exactly those.
fn api_docs() -> Router<AppState> {
    use utoipa::OpenApi;
    let ui = utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::ApiDoc::openapi());
    Router::from(ui).layer(middleware::map_response(|mut response: Response| async move {
        let csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'";
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
        response
    }))
}

/// Headers every response carries: API data is never cached, sniffed, framed or leaked
/// through the referrer, and nothing it returns may run as a page.
async fn security_headers(
    axum::extract::State(hsts_secs): axum::extract::State<Option<u64>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    if let Some(secs) = hsts_secs {
        let value = HeaderValue::from_str(&format!("max-age={secs}; includeSubDomains")).expect("ASCII");
        headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
    }
    response
}

/// Browser access for the configured origins only (CORS is off when none are).
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    let ratelimit = ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "ratelimit-policy"];
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers(
            ratelimit
                .into_iter()
                .map(HeaderName::from_static)
                .chain([header::LOCATION, header::RETRY_AFTER, HeaderName::from_static("idempotent-replayed")])
                .collect::<Vec<_>>(),
        )
}

/// Serves the API on `listener` (and the internal routes on `MTA_INTERNAL_BIND` when set)
/// until `shutdown` resolves, then drains open connections.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let security = &state.config.security;
    let limits = server::Limits {
        header_timeout: security.header_timeout,
        idle_timeout: security.idle_timeout,
        max_connections: security.max_connections,
    };
    let internal = match &state.config.internal_bind {
        Some(bind) => {
            let listener = TcpListener::bind(bind)
                .await
                .with_context(|| format!("Failed to listen on {bind} (MTA_INTERNAL_BIND)"))?;
            tracing::info!(address = %listener.local_addr()?, "internal endpoints (metrics, detailed health) listening");
            Some(listener)
        }
        None => {
            tracing::info!("MTA_INTERNAL_BIND is not set: /metrics and /health/detailed are not served");
            None
        }
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let public = server::run(listener, router(state.clone()), limits, stopped.clone());
    match internal {
        Some(internal) => {
            let internal = server::run(internal, internal_router(state), limits, stopped);
            tokio::join!(public, internal);
        }
        None => public.await,
    }
    Ok(())
}
