//! Forget and hold, an admin's: `DELETE /snapshots/{id}?repository=` and
//! `POST /snapshots/{id}/hold {"until" | "for" | "release"}`. Both are quick (a snapshot
//! file written or deleted) and answer at once; both are audited. Holds are honoured by
//! the engine's forget, whoever calls it: a held snapshot is 409 `conflict` naming the
//! hold.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use strata_engine::retention::{self, CalendarSpan};
use strata_engine::{snapshots, EngineError, Operation};

use crate::api::restores::repository_name;
use crate::audit::Access;
use crate::auth::{Principal, Role};
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/snapshots/{id}", delete(forget))
        .route("/snapshots/{id}/hold", post(hold))
}

#[derive(Debug, Deserialize)]
struct RepoQuery {
    repository: Option<String>,
}

/// `DELETE /snapshots/{id}`: forgets one snapshot (its data goes with the next prune).
async fn forget(
    State(state): State<AppState>,
    p: Principal,
    Path(spec): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = forget_snapshot(&state, &p, &spec, q.repository).await?;
    Ok(Json(json!({ "forgotten": id })))
}

/// Forgets snapshot `spec` (an id or unique prefix) of `repository` (the config's only
/// one when `None`) as `p`, an admin: its full id. A held snapshot is 409 `conflict`
/// naming the hold. Audited. The API's `DELETE /snapshots/{id}` and the project page's
/// form both call it.
pub async fn forget_snapshot(
    state: &AppState,
    p: &Principal,
    spec: &str,
    repository: Option<String>,
) -> Result<String, ApiError> {
    p.require(Role::Admin, "forgetting a snapshot")?;
    let repository = repository_name(state, repository)?;
    let st = state.clone();
    let repo_name = repository.clone();
    let what = spec.to_string();
    let outcome = blocking(move || {
        let o = st.open(&repo_name, Operation::Forget)?;
        let id = snapshots::resolve(&o.repo, &what)?;
        match snapshots::forget(&o.repo, &[id]) {
            Ok(()) => Ok(id.to_hex()),
            Err(e @ EngineError::Held(_)) => Err(ApiError::conflict(e.to_string())),
            Err(e) => Err(e.into()),
        }
    })
    .await;
    let access = Access {
        action: "forget",
        target: format!("snapshot {spec}"),
        project: None,
        repository: Some(repository),
    };
    match &outcome {
        Ok(_) => state.audit(Some(p), p.address, access, Ok(())),
        Err(e) => state.audit(Some(p), p.address, access, Err(&e.message)),
    }
    outcome
}

/// The body of `POST /snapshots/{id}/hold`: exactly one of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldRequest {
    /// RFC 3339, or a local date (`2032-01-31`, `2032-01-31 12:00`).
    until: Option<String>,
    /// A span after the snapshot's time: `7y`, `18m`, `90d`.
    #[serde(rename = "for")]
    for_span: Option<String>,
    #[serde(default)]
    release: bool,
    repository: Option<String>,
}

/// What a hold asks for.
pub enum HoldWant {
    /// Until this time (Unix ns).
    Until(i64),
    /// For a span after the snapshot's time.
    For(CalendarSpan),
    /// No hold any more.
    Release,
}

/// `POST /snapshots/{id}/hold`: holds (or releases) a snapshot as `strata hold` does; a
/// hold only ever extends. The snapshot's id changes (its file is rewritten): the answer
/// names the new one.
async fn hold(
    State(state): State<AppState>,
    p: Principal,
    Path(spec): Path<String>,
    Query(q): Query<RepoQuery>,
    req: Result<Json<HoldRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    p.require(Role::Admin, "holding a snapshot")?;
    let req = req
        .map(|Json(r)| r)
        .map_err(|e| ApiError::invalid(e.body_text()))?;
    let tz = jiff::tz::TimeZone::system();
    let want = match (&req.until, &req.for_span, req.release) {
        (Some(u), None, false) => HoldWant::Until(
            retention::parse_time(u, &tz).map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
        (None, Some(f), false) => HoldWant::For(hold_span(f)?),
        (None, None, true) => HoldWant::Release,
        _ => {
            return Err(ApiError::invalid(
                "say exactly one of \"until\", \"for\" or \"release\"",
            ))
        }
    };
    let repository = req.repository.or(q.repository);
    Ok(Json(
        hold_snapshot(&state, &p, &spec, repository, want).await?,
    ))
}

/// A hold's span (`7y`, `18m`, `90d`), or 422 `invalid` saying what is wrong with it.
pub fn hold_span(text: &str) -> Result<CalendarSpan, ApiError> {
    text.trim()
        .parse::<CalendarSpan>()
        .map_err(|e| ApiError::invalid(e.to_string()))
}

/// Holds (or releases) snapshot `spec` of `repository` (the config's only one when
/// `None`) as `p`, an admin; audited. The answer is `POST /snapshots/{id}/hold`'s: `id`,
/// `new_id` (the snapshot file is rewritten), `keep_until`, `changed`. The API and the
/// project page's form both call it.
pub async fn hold_snapshot(
    state: &AppState,
    p: &Principal,
    spec: &str,
    repository: Option<String>,
    want: HoldWant,
) -> Result<Value, ApiError> {
    p.require(Role::Admin, "holding a snapshot")?;
    let tz = jiff::tz::TimeZone::system();
    let repository = repository_name(state, repository)?;
    let st = state.clone();
    let repo_name = repository.clone();
    let what = spec.to_string();
    let outcome = blocking(move || {
        let o = st.open(&repo_name, Operation::Hold)?;
        let (id, snap) = snapshots::find(&o.repo, &what)?;
        let until = match want {
            HoldWant::Until(u) => Some(u),
            HoldWant::For(span) => Some(retention::add_span(snap.time_ns, span, &tz)),
            HoldWant::Release => None,
        };
        let (new_id, new_until) = snapshots::hold(&o.repo, &id, &snap, until, None)?;
        Ok(json!({
            "id": id.to_hex(),
            "new_id": new_id.to_hex(),
            "keep_until": new_until.map(|u| jiff::Timestamp::from_nanosecond(i128::from(u))
                .map(|t| t.to_string())
                .unwrap_or_default()),
            "changed": new_id != id,
        }))
    })
    .await;
    let access = Access {
        action: "hold",
        target: format!("snapshot {spec}"),
        project: None,
        repository: Some(repository),
    };
    match &outcome {
        Ok(_) => state.audit(Some(p), p.address, access, Ok(())),
        Err(e) => state.audit(Some(p), p.address, access, Err(&e.message)),
    }
    outcome
}
