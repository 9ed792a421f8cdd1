//! The web dashboard, black-box: `/` and every file it loads come from the binary with the
//! right content types, under the dashboard's strict CSP (own scripts and styles only, no
//! inline code, no eval), and nothing they contain points at another site, so the page works
//! offline. The page itself is exercised in a real browser by `.ci/browser-test`.

use std::collections::BTreeSet;

use crate::service_support::{Service, ServiceSpec, client};

const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The SVG namespace name: an identifier that `createElementNS` and SVG files need, never fetched.
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// Asset names a file refers to: `/assets/NAME` (HTML) and `from './NAME'` (JS modules).
fn referenced_assets(text: &str) -> BTreeSet<String> {
    let name = |rest: &str| -> String {
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).collect()
    };
    let mut names = BTreeSet::new();
    for marker in ["/assets/", "from './"] {
        names.extend(text.match_indices(marker).map(|(at, _)| name(&text[at + marker.len()..])));
    }
    names.retain(|n| !n.is_empty());
    names
}

async fn fetch(base: &str, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client(None).get(format!("{base}{path}")).send().await.expect("GET");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.expect("text body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_from_the_binary_under_a_strict_csp_and_works_offline() {
    let service = Service::start(ServiceSpec { workers: 0, ..ServiceSpec::default() }).await;
    let base = &service.base;

    // The page: HTML, no key needed, the dashboard's CSP and the usual headers.
    let (status, headers, page) = fetch(base, "/").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert_eq!(csp, DASHBOARD_CSP);
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(page.contains("<script type=\"module\" src=\"/assets/app.js\"></script>"), "{page}");
    // Nothing inline: every script has a `src`, no style element or attribute, no handler attributes.
    assert_eq!(page.matches("<script").count(), page.matches("<script type=\"module\" src=").count());
    for inline in ["<style", " style=", " onclick=", " onload=", "javascript:"] {
        assert!(!page.contains(inline), "inline code `{inline}` in index.html");
    }

    // Every file the page loads, and every module those load, is served with its type.
    let mut pending: Vec<String> = referenced_assets(&page).into_iter().collect();
    let mut served = BTreeSet::new();
    let mut bodies = vec![("index.html".to_owned(), page.clone())];
    while let Some(name) = pending.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let (status, headers, body) = fetch(base, &format!("/assets/{name}")).await;
        assert_eq!(status, 200, "/assets/{name}: {body}");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?} of {name}"),
        };
        assert_eq!(headers["content-type"], expected, "{name}");
        assert_eq!(headers["content-security-policy"], DASHBOARD_CSP, "{name}");
        if name.ends_with(".js") {
            assert!(!body.contains("eval(") && !body.contains("new Function"), "{name} evaluates strings");
            pending.extend(referenced_assets(&body));
        }
        bodies.push((name, body));
    }
    for needed in ["app.js", "app.css", "favicon.svg"] {
        assert!(served.contains(needed), "{needed} is not referenced; served: {served:?}");
    }

    // Offline: no served file refers to another site (no CDN, no web fonts).
    for (name, body) in &bodies {
        let without_namespace = body.replace(SVG_NAMESPACE, "");
        for scheme in ["http://", "https://"] {
            assert!(!without_namespace.contains(scheme), "{name} refers to an {scheme} URL");
        }
        assert!(!body.contains("//cdn") && !body.contains("@import url"), "{name} loads from elsewhere");
    }

    // Only the known files: other names and traversal attempts are 404s in the API's format.
    for path in ["/assets/missing.js", "/assets/..%2Fsrc%2Flib.rs", "/assets/%2e%2e%2fCargo.toml", "/assets/"] {
        let (status, headers, body) = fetch(base, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("\"not_found\""), "{path}: {body}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }

    // The API keeps its own, stricter policy.
    for path in ["/health", "/v1/jobs", "/no-such-route"] {
        let (_, headers, _) = fetch(base, path).await;
        assert_eq!(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'", "{path}");
    }
}
