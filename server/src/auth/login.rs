//! `POST /api/v1/session` (log in: JSON or a form `{user, password}`), `GET /api/v1/session`
//! (the session's user, role and CSRF token) and `DELETE /api/v1/session` (log out; also
//! `POST /api/v1/session/logout` for a form).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::session::{self, header_value};
use super::users::{verify_password, DUMMY_HASH};
use super::{peer, Principal, Role, Via};
use crate::audit::Access;
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/session", post(login).get(current).delete(logout))
        // The same as DELETE /session, for an HTML form (which can only GET and POST).
        .route("/session/logout", post(logout))
}

#[derive(Deserialize)]
pub struct Login {
    pub user: String,
    pub password: String,
}

const WRONG: &str = "wrong user name or password";

/// Password checks running at once.
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn login(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let address = peer(&parts, &state);
    check_origin(&parts.headers)?;
    let bytes = axum::body::to_bytes(body, crate::error::BODY_LIMIT)
        .await
        .map_err(|_| crate::error::too_large())?;
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Login { user, password } = if form {
        form_login(&bytes)?
    } else {
        serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::bad_request("a login is JSON {\"user\": ..., \"password\": ...} or a form")
        })?
    };
    let LoggedIn {
        principal,
        set_cookie,
    } = authenticate(&state, address, user, password).await?;
    let csrf = super::session::csrf_token(&principal).unwrap_or_default();
    let body = serde_json::json!({"user": principal.name, "role": principal.role, "csrf": csrf});
    Ok(([(header::SET_COOKIE, set_cookie)], Json(body)).into_response())
}

/// The `user` and `password` fields of a login form.
pub fn form_login(bytes: &[u8]) -> Result<Login, ApiError> {
    let mut user = None;
    let mut password = None;
    for (k, v) in url::form_urlencoded::parse(bytes) {
        match &*k {
            "user" => user = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            _ => {}
        }
    }
    match (user, password) {
        (Some(user), Some(password)) => Ok(Login { user, password }),
        _ => Err(ApiError::bad_request(
            "a login needs fields user and password",
        )),
    }
}

/// A login sent by a browser from another site's page is refused (login CSRF: a page
/// elsewhere logging this browser in as someone else). A browser says where a request
/// comes from in `Origin`; it must name the host the request was sent to (`Host`, or
/// `X-Forwarded-Host` from a reverse proxy). A client that sends no `Origin` (curl, a
/// script) is not a browser and goes on.
pub fn check_origin(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    let named = |h: &str| {
        headers.get(h).and_then(|v| v.to_str().ok()).map(|v| {
            v.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    };
    let hosts = [named("x-forwarded-host"), named(header::HOST.as_str())];
    let authority = authority.to_ascii_lowercase();
    if !authority.is_empty() && hosts.iter().flatten().any(|h| *h == authority) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        "a login from another site's page is refused (its Origin is not this server)",
    ))
}

/// A user logged in: who, and the `Set-Cookie` value of the new session.
pub struct LoggedIn {
    pub principal: Principal,
    pub set_cookie: axum::http::HeaderValue,
}

/// Checks `user`'s `password` (rate-limited per address and user; at most two checks at
/// once) and starts a session; a failure is recorded in the audit catalog and answered
/// 401 (429 with `Retry-After` while the limit holds). The API's `POST /session` and the
/// dashboard's login form.
pub async fn authenticate(
    state: &AppState,
    address: std::net::SocketAddr,
    user: String,
    password: String,
) -> Result<LoggedIn, ApiError> {
    let now = state.now_ns();
    let attempt = match state.sessions().limits().begin(address.ip(), &user, now) {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(
                "login refused for a while: too many failures from {}",
                address.ip()
            );
            let mut err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "too many failed logins; try again in {} seconds",
                    wait.as_secs()
                ),
            );
            err.headers.push((
                header::RETRY_AFTER,
                header_value(&wait.as_secs().to_string()),
            ));
            return Err(err);
        }
    };

    let known = state
        .config()
        .server
        .users
        .get(&user)
        .and_then(|u| Some((u.password_hash.clone(), Role::parse(&u.role)?)));
    let hash = known.as_ref().map(|k| k.0.clone());
    // A name nobody has is checked against a dummy hash: it takes as long as a wrong
    // password, and the answer is the same. At most a few checks at once (each takes
    // ~19 MiB and a core): more logins wait their turn instead of exhausting memory.
    let _permit = VERIFYING
        .acquire()
        .await
        .map_err(|_| ApiError::unavailable("the server is stopping"))?;
    let matches = blocking(move || {
        Ok(verify_password(
            &password,
            hash.as_deref().unwrap_or(DUMMY_HASH),
        ))
    })
    .await?;
    let role = match known {
        Some((_, role)) if matches => role,
        _ => {
            // Only a name that is a user's is recorded: a mistyped password in the name
            // field must not end up in a log every viewer reads.
            let target = if known.is_some() {
                format!("user {user}")
            } else {
                "an unknown user name".to_string()
            };
            let s = state.clone();
            blocking(move || {
                s.audit(
                    None,
                    address,
                    Access {
                        action: "login-failed",
                        target,
                        project: None,
                        repository: None,
                    },
                    Err(WRONG),
                );
                Ok(())
            })
            .await?;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                WRONG,
            ));
        }
    };
    state.sessions().limits().succeeded(&attempt);
    let ttl = state.config().server.session_ttl;
    let new = state.sessions().create(&user, role, now, ttl);
    let p = Principal {
        name: user,
        role,
        via: Via::Session { csrf: new.csrf },
        address,
    };
    let s = state.clone();
    let who = p.clone();
    blocking(move || {
        s.audit(Some(&who), address, access("login", &who.name), Ok(()));
        Ok(())
    })
    .await?;
    let set_cookie = header_value(&state.sessions().set_cookie(&new.cookie, ttl));
    Ok(LoggedIn {
        principal: p,
        set_cookie,
    })
}

/// `GET /session`: who the session is, and its CSRF token (for a page that lost it).
async fn current(p: Principal) -> Result<Json<serde_json::Value>, ApiError> {
    match &p.via {
        Via::Session { csrf } => Ok(Json(
            serde_json::json!({"user": p.name, "role": p.role, "csrf": csrf}),
        )),
        Via::Token => Err(not_a_session()),
    }
}

/// `DELETE /session`: log out (the CSRF token is needed, as for every state change).
async fn logout(
    State(state): State<AppState>,
    p: Principal,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let clear = end_session(&state, &p, &headers).await?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
}

/// Ends `p`'s session (recorded in the audit catalog); the `Set-Cookie` value that makes
/// the browser forget it. A token is no session (400).
pub async fn end_session(
    state: &AppState,
    p: &Principal,
    headers: &axum::http::HeaderMap,
) -> Result<axum::http::HeaderValue, ApiError> {
    if p.via == Via::Token {
        return Err(not_a_session());
    }
    if let Some(cookie) = session::cookie_value(headers) {
        state.sessions().remove(&cookie);
    }
    let s = state.clone();
    let who = p.clone();
    blocking(move || {
        s.audit(Some(&who), who.address, access("logout", &who.name), Ok(()));
        Ok(())
    })
    .await?;
    Ok(header_value(&state.sessions().clear_cookie()))
}

fn access<'a>(action: &'a str, user: &str) -> Access<'a> {
    Access {
        action,
        target: format!("user {user}"),
        project: None,
        repository: None,
    }
}

fn not_a_session() -> ApiError {
    ApiError::bad_request("this request names an API token, not a browser session")
}
