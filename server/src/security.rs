//! What wraps every response: security headers, a request body limit (413 as JSON), and
//! the CSRF form-field reader of browser sessions ([`crate::auth::session::csrf_form`]).
//!
//! Headers: `Content-Security-Policy: default-src 'self'; frame-ancestors 'none'`,
//! `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//! same-origin` (a browser then names this server as the `Origin` of its form posts, which a
//! login needs, and nothing of it to other sites); `Cache-Control: no-store` on everything but `/assets/` that does not set
//! its own; `Strict-Transport-Security` when serving TLS.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::state::AppState;

pub use crate::error::{too_large, BODY_LIMIT};

/// The security layers around `app` (call it after every route is added).
pub fn layers(app: Router<AppState>, state: &AppState) -> Router<AppState> {
    app.layer(from_fn(crate::auth::session::csrf_form))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), headers))
}

async fn headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Everything but the embedded assets is private and changes: never cached.
    let cached = req.uri().path().starts_with("/assets/");
    let mut resp = next.run(req).await;
    // axum's own body-limit rejection is plain text: the API answers JSON.
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json(&resp) {
        resp = too_large().into_response();
    }
    let too_large = resp.status() == StatusCode::PAYLOAD_TOO_LARGE;
    let h = resp.headers_mut();
    // The rest of a refused body is never read: the connection ends with this answer, and
    // says so, so that no client sends its next request down it.
    if too_large {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !cached && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.sessions().secure() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
