//! The dashboard: server-rendered HTML pages over the same data the REST API serves, for a
//! person with a browser. Templates are askama's (`server/templates/`, compiled into the
//! binary, escaped by default); the stylesheet is embedded too (`server/assets/`). Every
//! page works without JavaScript: forms post, a running job's page refreshes itself.
//!
//! Pages, one module per area:
//! - this module: the layout ([`Nav`]), login and logout, assets, error pages, and the
//!   formatting every page shares ([`bytes`], [`when`], [`age`]);
//! - `overview`: `/` (every project: health, last backup per repository, size chart,
//!   next run, "Back up now") and `/jobs/{id}` (a job's live progress and result);
//! - `project`: `/projects/{p}` (snapshots per repository, runs, restore tests);
//! - `browse`: `/snapshots/{id}` (a directory level at a time; downloads; a database
//!   snapshot's tables);
//! - `restore`: the restore wizard;
//! - `audit`: `/log` (the audit log with filters), `/health`, `/config`.
//!
//! Access is the API's: a page needs a session (else it sends the browser to `/login`),
//! roles gate the same actions, and every form that changes something carries the
//! session's CSRF token ([`Nav::csrf`]) and is refused without it.

pub mod audit;
pub mod browse;
pub mod overview;
pub mod project;
pub mod restore;

use askama::Template;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::auth::login::{self, authenticate, end_session, LoggedIn};
use crate::auth::session::csrf_token;
use crate::auth::{peer, Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;

/// Every page of the dashboard.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", post(logout))
        .route("/assets/{name}", get(asset))
        .merge(overview::routes())
        .merge(project::routes())
        .merge(browse::routes())
        .merge(restore::routes())
        .merge(audit::routes())
}

/// What the layout shows of the caller: name, role, the CSRF token its forms carry, and
/// which actions its role allows (so a page offers only buttons that would work).
#[derive(Debug, Clone)]
pub struct Nav {
    pub user: String,
    pub role: &'static str,
    /// The session's CSRF token (empty for a bearer token, which needs none).
    pub csrf: String,
    /// Operator or admin: download, back up now, restore tests, restores to new places.
    pub operator: bool,
    /// Admin: in-place restores, forget, holds.
    pub admin: bool,
    /// The page's own area, for the menu (`overview`, `health`, `log`, `config`).
    pub area: &'static str,
}

impl Nav {
    pub fn of(p: &Principal) -> Nav {
        Nav {
            user: p.name.clone(),
            role: p.role.name(),
            csrf: csrf_token(p).unwrap_or_default().to_string(),
            operator: p.role >= Role::Operator,
            admin: p.role >= Role::Admin,
            area: "",
        }
    }

    /// The same, with the menu's `area` marked as the current one.
    pub fn at(mut self, area: &'static str) -> Nav {
        self.area = area;
        self
    }
}

/// A page's caller. Extracting it sends a browser that is not logged in (or whose session
/// expired) to `/login?next=` this page; any other refusal is an error page.
pub struct Page {
    pub who: Principal,
    pub nav: Nav,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match Principal::from_request_parts(parts, state).await {
            Ok(who) => Ok(Page {
                nav: Nav::of(&who),
                who,
            }),
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                // A form posted after the session expired: back to the page the form was
                // on (a form's address answers only its post).
                let next = if matches!(parts.method, Method::GET | Method::HEAD) {
                    local_path(&parts.uri).map(str::to_string)
                } else {
                    referring_path(&parts.headers)
                };
                let next = next.as_deref().unwrap_or("/");
                let to = format!(
                    "/login?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&to).into_response())
            }
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

/// A page's query string. A value that does not parse (`?page=x`) is the error page,
/// 422 naming the value, rather than axum's plain-text 400.
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(Params(t)),
            Err(e) => Err(PageError(ApiError::invalid(e.body_text()))),
        }
    }
}

/// The path and query of a request to come back to after login (only ever a path of this
/// server: an address elsewhere is no place to send a browser).
fn local_path(uri: &Uri) -> Option<&str> {
    uri.path_and_query()
        .map(|p| p.as_str())
        .filter(|p| safe_next(p))
}

/// The path and query of the page a form was posted from (its `Referer`, which a browser
/// sends for this server's own pages: `Referrer-Policy: same-origin`), if it is one.
fn referring_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let url = url::Url::parse(referer).ok()?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    safe_next(&path).then_some(path)
}

/// Whether `next` is a path on this server (`/...`, not `//host/...` or `/\host`).
fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.bytes().any(|b| b.is_ascii_control())
}

/// A failed page: the API's error, shown as a page with its status.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        let page = ErrorPage {
            status: e.status.as_u16(),
            reason: e.status.canonical_reason().unwrap_or("Error"),
            code: e.code,
            message: &e.message,
        };
        let mut resp = (e.status, render(&page)).into_response();
        for (k, v) in &e.headers {
            resp.headers_mut().insert(k.clone(), v.clone());
        }
        resp
    }
}

/// A page's result.
pub type PageResult = Result<Response, PageError>;

/// `template` rendered as an HTML answer (a template that fails to render is a 500 page,
/// never a panic).
pub fn render<T: Template>(template: &T) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!("a page failed to render: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page failed to render; see the server's log.".to_string()),
            )
                .into_response()
        }
    }
}

/// A form's answer: the browser goes on to `to` (303, so that reloading it posts nothing).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Percent-encodes `s` for a query string value.
pub fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- formatting every page shares ----

/// `1.5 GiB`, `312 KiB`, `12 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// `2026-12-07 03:30 UTC`.
pub fn when(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// How long ago `ns` was at `now_ns`: `just now`, `5 min ago`, `3 h ago`, `2 days ago`
/// (`in 5 min` for a time to come).
pub fn age(now_ns: i64, ns: i64) -> String {
    let d = now_ns.saturating_sub(ns);
    let (future, d) = if d < 0 { (true, -d) } else { (false, d) };
    let s = d / 1_000_000_000;
    let text = if s < 60 {
        return if future { "in a minute" } else { "just now" }.to_string();
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 2 * 86400 {
        format!("{} h", s / 3600)
    } else {
        format!("{} days", s / 86400)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

// ---- login, logout, assets ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    user: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn next_of(next: Option<String>) -> String {
    next.filter(|n| safe_next(n)).unwrap_or_else(|| "/".into())
}

async fn login_page(Params(q): Params<NextQuery>) -> Response {
    render(&LoginPage {
        next: next_of(q.next),
        user: String::new(),
        error: None,
    })
}

/// The login form's post: on success the session cookie and on to `next`; on failure the
/// form again with the reason (401; 429 while the rate limit holds).
async fn login_submit(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let address = peer(&parts, &state);
    let bytes = match axum::body::to_bytes(body, crate::error::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return PageError(crate::error::too_large()).into_response(),
    };
    let next = next_of(
        url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned()),
    );
    let form = match login::form_login(&bytes) {
        Ok(f) => f,
        Err(e) => return PageError(e).into_response(),
    };
    if let Err(e) = login::check_origin(&parts.headers) {
        return PageError(e).into_response();
    }
    let user = form.user.clone();
    match authenticate(&state, address, form.user, form.password).await {
        Ok(LoggedIn { set_cookie, .. }) => {
            let mut resp = see_other(&next);
            resp.headers_mut().insert(header::SET_COOKIE, set_cookie);
            resp
        }
        Err(e) => {
            let page = LoginPage {
                next,
                user,
                error: Some(e.message.clone()),
            };
            let mut resp = (e.status, render(&page)).into_response();
            for (k, v) in e.headers {
                resp.headers_mut().insert(k, v);
            }
            resp
        }
    }
}

/// The logout button's post (with the CSRF token): the session ends, on to `/login`.
async fn logout(
    State(state): State<AppState>,
    page: Page,
    headers: axum::http::HeaderMap,
) -> PageResult {
    let clear = end_session(&state, &page.who, &headers).await?;
    let mut resp = see_other("/login");
    resp.headers_mut().insert(header::SET_COOKIE, clear);
    Ok(resp)
}

/// The embedded stylesheet and icon.
async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &'static str) = match name.as_str() {
        "strata.css" => (
            include_str!("../../assets/strata.css"),
            "text/css; charset=utf-8",
        ),
        "strata.js" => (
            include_str!("../../assets/strata.js"),
            "text/javascript; charset=utf-8",
        ),
        "icon.svg" => (include_str!("../../assets/icon.svg"), "image/svg+xml"),
        _ => return PageError(ApiError::not_found(format!("no asset {name}"))).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// What no route answers: JSON under `/api/`, a page elsewhere.
pub async fn not_found(uri: Uri) -> Response {
    let e = ApiError::not_found(format!("nothing at {}", uri.path()));
    if uri.path().starts_with("/api/") {
        e.into_response()
    } else {
        PageError(e).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_as_a_person_would_say_them() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(300 * 1024 * 1024), "300 MiB");
        let h = 3_600_000_000_000;
        assert_eq!(age(10 * h, 10 * h), "just now");
        assert_eq!(age(10 * h, 7 * h), "3 h ago");
        assert_eq!(age(100 * h, 0), "4 days ago");
        assert_eq!(age(0, h / 2), "in 30 min");
    }

    #[test]
    fn login_sends_a_browser_only_to_this_server() {
        assert!(safe_next("/snapshots/ab?path=%2F"));
        assert!(!safe_next("//evil.example/"));
        assert!(!safe_next("/\\evil.example"));
        assert!(!safe_next("https://evil.example/"));
        assert_eq!(next_of(Some("//evil".into())), "/");
    }
}
