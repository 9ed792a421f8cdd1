//! The web dashboard at `/`: one HTML page, its script modules, style sheet and icon, all
//! compiled into the binary (no CDN, no web fonts: it works offline and behind any proxy).
//!
//! The page holds no data and needs no key; it calls the `/v1` API from the browser with the
//! key the user pastes, exactly like any other client. Its responses carry their own CSP,
//! which lets the page run its own files and nothing else: no inline script or style, no
//! `eval`, no other origin. The outer middleware adds the remaining security headers and
//! `Cache-Control: no-store` (a new binary never meets a stale script).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;

/// The policy of every dashboard response (the API keeps `default-src 'none'`).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The files under `/assets/`: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../assets/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../assets/api.js")),
    ("charts.js", "text/javascript; charset=utf-8", include_str!("../assets/charts.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../assets/app.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../assets/favicon.svg")),
];

const INDEX: &str = include_str!("../assets/index.html");

/// `GET /` and `GET /assets/{name}`, under the dashboard's CSP.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/assets/{name}", get(asset)).layer(middleware::map_response(
        |mut response: Response| async move {
            response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
            response
        },
    ))
}

async fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

/// One of [`ASSETS`] by its exact name; anything else (other names, `..`) is a 404.
async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(known, _, _)| *known == name) {
        Some((_, content_type, body)) => ([(header::CONTENT_TYPE, *content_type)], *body).into_response(),
        None => ApiError::not_found("asset").into_response(),
    }
}
