//! Browser sessions: a login with a user's password (argon2id hash in `[server.users]`)
//! gives a session cookie (HttpOnly, SameSite=Strict, Secure under TLS) that expires after
//! `[server] session-ttl`, and a CSRF token every state-changing request of that session
//! must carry. Logins are rate-limited per address and per user (see [`super::limits`]).
//!
//! The cookie holds 32 random bytes; the server keeps only their SHA-256, so a memory dump
//! or a log line of the table names no live session. Expiry is by the server's clock
//! ([`AppState::now_ns`]), whatever the browser does with `Max-Age`.
//!
//! CSRF: a request that is not GET, HEAD or OPTIONS and is authenticated by the session
//! cookie must carry the session's token in the `X-CSRF-Token` header, or — for the
//! dashboard's HTML forms — in a form field `csrf` (the [`csrf_form`] middleware reads it
//! and hands it on as [`FormCsrf`]); else it is refused with 403 `csrf`, whatever the
//! handler would have done. The dashboard puts the field in its forms with [`csrf_field`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::limits::LoginLimits;
use super::{Principal, Role, Via};
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "strata_session";
/// The header a session's state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field the dashboard's forms carry it in.
pub const CSRF_FIELD: &str = "csrf";

/// One logged-in browser.
#[derive(Debug, Clone)]
struct Session {
    user: String,
    role: Role,
    csrf: String,
    expires_ns: i64,
}

/// The sessions of the running server (in memory: a restart logs everybody out).
#[derive(Debug, Default)]
pub struct Sessions {
    /// By the SHA-256 of the cookie's value.
    live: Mutex<HashMap<[u8; 32], Session>>,
    /// Whether the server speaks TLS (the cookie is then `Secure`).
    secure: AtomicBool,
    limits: LoginLimits,
}

/// A new session: the cookie's value (shown to the browser only) and its CSRF token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie: String,
    pub csrf: String,
}

/// The CSRF token a form carried in its `csrf` field, read by [`csrf_form`].
#[derive(Debug, Clone)]
pub struct FormCsrf(pub String);

impl Sessions {
    /// The session the request's cookie names, if it is live; an expired or unknown one is
    /// no caller (401). A state-changing request (not GET/HEAD/OPTIONS) of a session must
    /// carry its CSRF token (header `X-CSRF-Token`, or the form field read by
    /// [`csrf_form`]), else 403 `csrf`.
    pub fn principal(
        &self,
        parts: &Parts,
        state: &AppState,
    ) -> Result<Option<Principal>, ApiError> {
        let Some(cookie) = cookie_value(&parts.headers) else {
            return Ok(None);
        };
        let Some(s) = self.lookup(&cookie, state.now_ns()) else {
            return Ok(None);
        };
        if !safe_method(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| parts.extensions.get::<FormCsrf>().map(|f| f.0.clone()));
            let ok = sent.is_some_and(|t| eq(t.trim().as_bytes(), s.csrf.as_bytes()));
            if !ok {
                return Err(csrf_refused());
            }
        }
        Ok(Some(Principal {
            name: s.user,
            role: s.role,
            via: Via::Session { csrf: s.csrf },
            address: super::peer(parts, state),
        }))
    }

    /// Starts a session for `user` with `role`, live until `now_ns + ttl`.
    pub fn create(
        &self,
        user: &str,
        role: Role,
        now_ns: i64,
        ttl: std::time::Duration,
    ) -> NewSession {
        let cookie = hex::encode(rand::random::<[u8; 32]>());
        let csrf = hex::encode(rand::random::<[u8; 32]>());
        let ttl_ns = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
        let session = Session {
            user: user.to_string(),
            role,
            csrf: csrf.clone(),
            expires_ns: now_ns.saturating_add(ttl_ns),
        };
        if let Ok(mut live) = self.live.lock() {
            live.retain(|_, s| s.expires_ns > now_ns);
            live.insert(digest(&cookie), session);
        }
        NewSession { cookie, csrf }
    }

    /// Ends the session the cookie `value` names; whether there was one.
    pub fn remove(&self, value: &str) -> bool {
        self.live
            .lock()
            .map(|mut l| l.remove(&digest(value)).is_some())
            .unwrap_or(false)
    }

    /// Marks the server as serving TLS: cookies are then `Secure`.
    pub fn set_secure(&self, secure: bool) {
        self.secure.store(secure, Ordering::Relaxed);
    }

    pub fn secure(&self) -> bool {
        self.secure.load(Ordering::Relaxed)
    }

    /// The login rate limits.
    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    /// The `Set-Cookie` value for a new session's cookie.
    pub fn set_cookie(&self, value: &str, ttl: std::time::Duration) -> String {
        format!(
            "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            ttl.as_secs(),
            if self.secure() { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that makes a browser forget its session cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if self.secure() { "; Secure" } else { "" }
        )
    }

    fn lookup(&self, cookie: &str, now_ns: i64) -> Option<Session> {
        let mut live = self.live.lock().ok()?;
        let key = digest(cookie);
        let s = live.get(&key)?;
        if s.expires_ns <= now_ns {
            live.remove(&key);
            return None;
        }
        Some(s.clone())
    }
}

/// The value of the `strata_session` cookie of a request, if it sent one.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// A hidden form field with the session's CSRF token, for the dashboard's forms (empty for a
/// caller that is not a session: a token needs none).
pub fn csrf_field(p: &Principal) -> String {
    match csrf_token(p) {
        Some(t) => format!(r#"<input type="hidden" name="{CSRF_FIELD}" value="{t}">"#),
        None => String::new(),
    }
}

/// The session's CSRF token (hex, nothing to escape), if the caller is a session.
pub fn csrf_token(p: &Principal) -> Option<&str> {
    match &p.via {
        Via::Session { csrf } => Some(csrf),
        Via::Token => None,
    }
}

/// Middleware: a state-changing form post (`application/x-www-form-urlencoded`) by a session
/// without the `X-CSRF-Token` header has its `csrf` field read and handed to the
/// [`Principal`] extractor as [`FormCsrf`]; the body is passed on unchanged.
pub async fn csrf_form(mut req: Request, next: Next) -> Response {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if safe_method(req.method())
        || !is_form
        || req.headers().contains_key(CSRF_HEADER)
        || req.headers().contains_key(header::AUTHORIZATION)
        || cookie_value(req.headers()).is_none()
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, crate::error::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return crate::error::too_large().into_response(),
    };
    let field = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    req = Request::from_parts(parts, axum::body::Body::from(bytes));
    if let Some(f) = field {
        req.extensions_mut().insert(FormCsrf(f));
    }
    next.run(req).await
}

/// 403 `csrf`.
pub fn csrf_refused() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "a state-changing request of a browser session needs its CSRF token (header \
         X-CSRF-Token, or form field csrf)",
    )
}

fn safe_method(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A response header value (only ever made of our own ASCII).
pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}
