//! The layer in front of everything the dashboard serves: the session cookie becomes the
//! API key for page paths, every visitor gets a CSRF nonce, pages get their security
//! headers, and the API's JSON errors become pages.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::session::{self, CsrfNonce, SignedIn, CSRF_COOKIE, SESSION_COOKIE};
use crate::{layout, Dashboard};

/// What a page may load and do: only this origin's stylesheet, script and forms, no
/// inline script or style, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

/// The largest API error body turned into a page; larger ones are shown as a bare
/// status (an error envelope is a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Whether `path` is outside the API, the probes, the metrics and the assets: it gets
/// the page's security headers, and an error there is shown as a page.
pub fn is_page(path: &str) -> bool {
    !(path.starts_with("/api/")
        || path == "/api"
        || path == "/metrics"
        || path == "/healthz"
        || path.starts_with("/assets/"))
}

/// Whether `path` is one of the dashboard's own routes, the only ones where the session
/// cookie stands for the visitor's key. An allow-list: a route added later anywhere else
/// never accepts the cookie by accident.
pub fn takes_session(path: &str) -> bool {
    crate::pages::PATHS
        .iter()
        .any(|pattern| matches_route(pattern, path))
}

/// `pattern` as the router writes it (`/incidents/{id}`) against a request path: a
/// `{...}` segment matches any one non-empty segment.
fn matches_route(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

pub async fn front(
    State(dashboard): State<Arc<Dashboard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if !is_page(&path) {
        return next.run(request).await;
    }
    let now = dashboard.clock.now_utc();
    let headers = request.headers();
    let tls = session::over_tls(headers, request.uri(), dashboard.behind_proxy);
    let session_cookie = session::cookie(headers, SESSION_COOKIE).map(str::to_owned);
    let opened = session_cookie.as_deref().and_then(|value| {
        dashboard
            .signer
            .open_session(value, now)
            .map(|key| (value, key))
    });
    // A visitor's own Authorization header wins: the cookie only stands in for one, and
    // only on the dashboard's own routes.
    let from_cookie =
        opened.is_some() && takes_session(&path) && !headers.contains_key(header::AUTHORIZATION);
    let stale_cookie = session_cookie.is_some() && opened.is_none();
    let (nonce, fresh_nonce) = match session::cookie(headers, CSRF_COOKIE) {
        Some(value) if session::is_nonce(value) => (CsrfNonce(value.to_owned()), false),
        _ => (session::new_nonce(), true),
    };
    if let (true, Some((value, key))) = (from_cookie, &opened) {
        if let Ok(header_value) = HeaderValue::from_str(&format!("Bearer {key}")) {
            let digest = session::session_digest(value);
            request
                .headers_mut()
                .insert(header::AUTHORIZATION, header_value);
            request.extensions_mut().insert(SignedIn(digest));
        }
    }
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;

    let config = &dashboard.config;
    if from_cookie && response.status() == StatusCode::UNAUTHORIZED && is_json(&response) {
        // The guard refused the key: revoked, or its user disabled since signing in.
        // Sign out and say so.
        response = axum::response::Redirect::to("/signin?expired=1").into_response();
        clear(&mut response, SESSION_COOKIE, config, tls);
    } else if stale_cookie {
        // Expired, or sealed by a key this process no longer holds.
        clear(&mut response, SESSION_COOKIE, config, tls);
    }
    // A handler that rotated the nonce (sign-in, sign-out) set its own.
    let rotated = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| {
            v.as_bytes()
                .starts_with(format!("{CSRF_COOKIE}=").as_bytes())
        });
    if fresh_nonce && !rotated {
        if let Some(value) = session::set_cookie(
            CSRF_COOKIE,
            &nonce.0,
            config.session_max_age.as_secs(),
            config.secure_cookie,
            tls,
        ) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    let response = html_error(response, &dashboard).await;
    with_security_headers(response, from_cookie)
}

/// An answer of the API's (its error envelope), not a page's.
fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn clear(response: &mut Response, name: &str, config: &crate::WebConfig, tls: bool) {
    if let Some(value) = session::set_cookie(name, "", 0, config.secure_cookie, tls) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn with_security_headers(mut response: Response, signed_in: bool) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // Links out (explorers, sources) learn the origin, never a page's filters.
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // A signed-in page shows what that key may see: no cache, shared or not, keeps it.
    let cache = if signed_in { "no-store" } else { "no-cache" };
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    }
    headers.insert(header::VARY, HeaderValue::from_static("Cookie"));
    response
}

/// An API error envelope on a page path, rendered as a page with the same status and
/// message (a 429 keeps its `Retry-After`).
async fn html_error(response: Response, dashboard: &Dashboard) -> Response {
    if !(response.status().is_client_error() || response.status().is_server_error())
        || !is_json(&response)
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match axum::body::to_bytes(body, MAX_ERROR_BODY).await {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned)),
        Err(_) => None,
    };
    let status = parts.status;
    let title = status.canonical_reason().unwrap_or("Error");
    let page = layout::bare(
        dashboard,
        title,
        maud::html! {
            h1 { (status.as_u16()) " " (title) }
            p.error role="alert" { (message.unwrap_or_else(|| title.to_owned())) }
            p { a href="/" { "Back to the overview" } }
        },
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, Body::from(page.into_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_dashboards_own_routes_take_the_session() {
        for path in [
            "/",
            "/incidents",
            "/incidents/12",
            "/incidents.csv",
            "/signin",
            "/subscriptions/3/delete",
        ] {
            assert!(takes_session(path), "{path}");
        }
        for path in [
            "/api/exploits",
            "/nowhere",
            "/incidents/",
            "/incidents/1/2",
            "/subscriptions/3",
            "/apix",
            "/metrics",
        ] {
            assert!(!takes_session(path), "{path}");
        }
    }

    #[test]
    fn the_api_probes_metrics_and_assets_are_not_pages() {
        for path in [
            "/api/exploits",
            "/api",
            "/metrics",
            "/healthz",
            "/assets/x.css",
        ] {
            assert!(!is_page(path), "{path}");
        }
        for path in ["/", "/incidents", "/incidents/3", "/signin", "/apix"] {
            assert!(is_page(path), "{path}");
        }
    }
}
