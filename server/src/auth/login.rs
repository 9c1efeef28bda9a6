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
struct Login {
    user: String,
    password: String,
}

const WRONG: &str = "wrong user name or password";

/// Password checks running at once.
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn login(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let address = peer(&parts);
    let bytes = axum::body::to_bytes(body, crate::error::BODY_LIMIT)
        .await
        .map_err(|_| crate::error::too_large())?;
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let Login { user, password } = if form {
        let mut user = None;
        let mut password = None;
        for (k, v) in url::form_urlencoded::parse(&bytes) {
            match &*k {
                "user" => user = Some(v.into_owned()),
                "password" => password = Some(v.into_owned()),
                _ => {}
            }
        }
        match (user, password) {
            (Some(user), Some(password)) => Login { user, password },
            _ => {
                return Err(ApiError::bad_request(
                    "a login needs fields user and password",
                ))
            }
        }
    } else {
        serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::bad_request("a login is JSON {\"user\": ..., \"password\": ...} or a form")
        })?
    };

    let now = state.now_ns();
    let attempt = match state.sessions().limits().begin(address.ip(), &user, now) {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(
                "login refused for a while: too many failures from {}",
                address.ip()
            );
            let err = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "too many failed logins; try again in {} seconds",
                    wait.as_secs()
                ),
            );
            let retry = header_value(&wait.as_secs().to_string());
            return Ok(([(header::RETRY_AFTER, retry)], err).into_response());
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
        name: user.clone(),
        role,
        via: Via::Session {
            csrf: new.csrf.clone(),
        },
        address,
    };
    let s = state.clone();
    let who = p.clone();
    blocking(move || {
        s.audit(Some(&who), address, access("login", &who.name), Ok(()));
        Ok(())
    })
    .await?;
    let cookie = header_value(&state.sessions().set_cookie(&new.cookie, ttl));
    let body = serde_json::json!({"user": user, "role": role, "csrf": new.csrf});
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
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
    if p.via == Via::Token {
        return Err(not_a_session());
    }
    if let Some(cookie) = session::cookie_value(&headers) {
        state.sessions().remove(&cookie);
    }
    let s = state.clone();
    let who = p.clone();
    blocking(move || {
        s.audit(Some(&who), who.address, access("logout", &who.name), Ok(()));
        Ok(())
    })
    .await?;
    let clear = header_value(&state.sessions().clear_cookie());
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
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
