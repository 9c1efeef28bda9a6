//! `/projects/{p}`: a project's health (and why), its snapshots per repository (newest
//! first, a page at a time), its runs and backups with their results, and its restore
//! tests; for an admin, a form per snapshot to hold it or forget it
//! (`POST /projects/{p}/hold`, `POST /projects/{p}/forget`, which call what the API's
//! `POST /snapshots/{id}/hold` and `DELETE /snapshots/{id}` call, then come back here
//! with a notice).

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use strata_app::ops::{Query as CatalogQuery, Record, RecordBody, RecordKind, Status};

use super::{age, bytes, q, render, see_other, when, Nav, Page, PageError, PageResult, Params};
use crate::api::actions::{forget_snapshot, hold_snapshot, hold_span, HoldWant};
use crate::api::read::{evaluate, kind, project_summary, Listed};
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{project}", get(project))
        .route("/projects/{project}/hold", post(hold))
        .route("/projects/{project}/forget", post(forget))
}

/// Snapshots a page shows per repository.
pub const PER_PAGE: usize = 50;

/// Runs, backups and restore tests a page shows (the newest).
const RECENT: usize = 20;

/// One repository's snapshots of the project, one page of them.
pub struct RepoSnapshots {
    pub name: String,
    /// Why it could not be listed.
    pub error: Option<String>,
    /// The project's snapshots in it.
    pub total: usize,
    pub rows: Vec<SnapshotRow>,
    /// `page 2 of 7`, empty for one page.
    pub pages: String,
    pub prev: Option<String>,
    pub next: Option<String>,
}

/// A snapshot as the project page lists it.
pub struct SnapshotRow {
    pub id: String,
    pub short: String,
    pub href: String,
    pub when: String,
    pub age: String,
    pub kind: &'static str,
    pub size: String,
    pub added: String,
    pub tags: String,
    /// `2033-01-01 00:00 UTC` while a hold is in force.
    pub held_until: Option<String>,
}

/// A run or a backup, as the catalog recorded it.
pub struct ActivityRow {
    pub when: String,
    pub what: String,
    pub repository: String,
    /// `succeeded` or `failed`.
    pub result: &'static str,
    pub detail: String,
    pub error: Option<String>,
    pub snapshot: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    nav: Nav,
    name: String,
    status: &'static str,
    reasons: Vec<String>,
    repositories: Vec<RepoSnapshots>,
    runs: Vec<ActivityRow>,
    tests: Vec<ActivityRow>,
    notice: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProjectQuery {
    /// The repository `page` is of (others show their first page).
    repository: Option<String>,
    page: Option<usize>,
    /// What a form just did: `held` or `forgotten` (with `id`).
    notice: Option<String>,
    id: Option<String>,
}

async fn project(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Params(query): Params<ProjectQuery>,
) -> PageResult {
    let notice = notice(query.notice.as_deref(), query.id.as_deref());
    let view = blocking(move || {
        let (report, history) = evaluate(&state)?;
        let mut listed = Listed::new();
        let summary = project_summary(&state, &name, &report, history.as_ref(), &mut listed)
            .ok_or_else(|| ApiError::not_found(format!("no project named {name:?}")))?;
        let now = state.now_ns();
        let reasons = summary
            .health
            .iter()
            .filter(|i| i.status != Status::Ok)
            .map(|i| i.message.clone())
            .collect();
        let repositories = summary
            .repositories
            .iter()
            .map(|repo| {
                let page_no = match &query.repository {
                    Some(r) if r == repo => query.page.unwrap_or(1).max(1),
                    _ => 1,
                };
                repo_snapshots(&listed, &name, repo, page_no, now)
            })
            .collect();
        let recent = |kind: RecordKind| {
            history
                .query(&CatalogQuery {
                    project: Some(name.clone()),
                    kind: Some(kind),
                    limit: Some(RECENT),
                    ..CatalogQuery::default()
                })
                .unwrap_or_default()
        };
        let mut records = recent(RecordKind::Run);
        records.extend(recent(RecordKind::Backup));
        records.sort_by_key(|r| std::cmp::Reverse(r.time_ns));
        records.truncate(RECENT);
        let runs = records.iter().map(activity).collect();
        let tests = recent(RecordKind::RestoreTest)
            .iter()
            .map(activity)
            .collect();
        Ok(ProjectPage {
            nav: page.nav,
            status: summary.status.name(),
            name: summary.name,
            reasons,
            repositories,
            runs,
            tests,
            notice,
        })
    })
    .await?;
    Ok(render(&view))
}

/// Page `page_no` (from 1) of `project`'s snapshots in `repo`, newest first.
fn repo_snapshots(
    listed: &Listed,
    project: &str,
    repo: &str,
    page_no: usize,
    now: i64,
) -> RepoSnapshots {
    let mut out = RepoSnapshots {
        name: repo.to_string(),
        error: None,
        total: 0,
        rows: Vec::new(),
        pages: String::new(),
        prev: None,
        next: None,
    };
    let list = match listed.get(repo) {
        Some(Ok(list)) => list,
        Some(Err(e)) => {
            out.error = Some(e.message.clone());
            return out;
        }
        None => return out,
    };
    let mine: Vec<_> = list
        .iter()
        .rev()
        .filter(|(_, s)| s.project.as_deref() == Some(project))
        .collect();
    out.total = mine.len();
    let pages = mine.len().div_ceil(PER_PAGE).max(1);
    let page_no = page_no.min(pages);
    let link = |n: usize| format!("/projects/{}?repository={}&page={n}", q(project), q(repo));
    if pages > 1 {
        out.pages = format!("page {page_no} of {pages}");
        out.prev = (page_no > 1).then(|| link(page_no - 1));
        out.next = (page_no < pages).then(|| link(page_no + 1));
    }
    out.rows = mine
        .into_iter()
        .skip((page_no - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|(id, s)| SnapshotRow {
            id: id.to_hex(),
            short: id.short(),
            href: format!("/snapshots/{}?repository={}", id.to_hex(), q(repo)),
            when: when(s.time_ns),
            age: age(now, s.time_ns),
            kind: kind(s),
            size: bytes(s.summary.bytes_read),
            added: bytes(s.summary.bytes_added),
            tags: s.tags.join(", "),
            held_until: s.keep_until_ns.filter(|u| *u > now).map(when),
        })
        .collect();
    out
}

/// A catalog record as a line of the page.
fn activity(r: &Record) -> ActivityRow {
    let snap = |id: &str| {
        let short: String = id.chars().take(8).collect();
        let href = match &r.repository {
            Some(repo) => format!("/snapshots/{}?repository={}", q(id), q(repo)),
            None => format!("/snapshots/{}", q(id)),
        };
        (href, short)
    };
    let (what, detail, snapshot) = match &r.body {
        RecordBody::Run {
            trigger,
            exit_code,
            snapshots,
            ..
        } => (
            format!("run ({trigger})"),
            format!(
                "exit code {exit_code}, {} snapshot{}",
                snapshots.len(),
                if snapshots.len() == 1 { "" } else { "s" }
            ),
            None,
        ),
        RecordBody::Backup {
            source,
            source_kind,
            snapshot_id,
            bytes_read,
            bytes_added,
            files,
            ..
        } => (
            format!("backup {source} ({source_kind})"),
            format!(
                "{} read, {} added, {files} files",
                bytes(*bytes_read),
                bytes(*bytes_added)
            ),
            snapshot_id.as_deref().map(snap),
        ),
        RecordBody::RestoreTest {
            snapshot_id,
            report,
        } => (
            "restore test".to_string(),
            report
                .get("tables")
                .and_then(|t| t.as_array())
                .map(|t| format!("{} tables checked", t.len()))
                .unwrap_or_default(),
            Some(snap(snapshot_id)),
        ),
        other => (other.kind().name().to_string(), String::new(), None),
    };
    ActivityRow {
        when: when(r.time_ns),
        what,
        repository: r.repository.clone().unwrap_or_default(),
        result: if r.ok { "succeeded" } else { "failed" },
        detail,
        error: r.error.clone(),
        snapshot,
    }
}

/// The notice a form's answer asks for; only these words, with a snapshot id (hex), are
/// ever shown (a link cannot put other text on the page).
fn notice(kind: Option<&str>, id: Option<&str>) -> Option<String> {
    let id =
        id.filter(|i| !i.is_empty() && i.len() <= 64 && i.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let short = &id[..id.len().min(8)];
    match kind? {
        "held" => Some(format!(
            "Snapshot held: its id is now {short} (a hold rewrites the snapshot)."
        )),
        "forgotten" => Some(format!(
            "Snapshot {short} was forgotten; the next prune frees its data."
        )),
        _ => None,
    }
}

/// The hold form: `snapshot`, `repository`, `for` (a span such as `90d`, `18m`, `7y`).
#[derive(Debug, Deserialize)]
struct HoldForm {
    snapshot: String,
    repository: Option<String>,
    #[serde(rename = "for")]
    for_span: String,
}

/// `POST /projects/{p}/hold` (an admin's): holds the snapshot, back to the project page.
async fn hold(
    State(state): State<AppState>,
    page: Page,
    Path(project): Path<String>,
    form: Result<Form<HoldForm>, FormRejection>,
) -> PageResult {
    let form = form_of(form)?;
    let span = hold_span(&form.for_span).map_err(|e| {
        PageError(ApiError::invalid(format!(
            "hold for {:?}: {} (give a span such as 90d, 18m or 7y)",
            form.for_span, e.message
        )))
    })?;
    let done = hold_snapshot(
        &state,
        &page.who,
        &form.snapshot,
        form.repository,
        HoldWant::For(span),
    )
    .await?;
    let new_id = done["new_id"].as_str().unwrap_or_default();
    Ok(see_other(&format!(
        "/projects/{}?notice=held&id={new_id}",
        q(&project)
    )))
}

/// The forget form: `snapshot`, `repository`.
#[derive(Debug, Deserialize)]
struct ForgetForm {
    snapshot: String,
    repository: Option<String>,
}

/// `POST /projects/{p}/forget` (an admin's): forgets the snapshot (a held one is refused
/// with the hold named: a 409 page), back to the project page.
async fn forget(
    State(state): State<AppState>,
    page: Page,
    Path(project): Path<String>,
    form: Result<Form<ForgetForm>, FormRejection>,
) -> PageResult {
    let form = form_of(form)?;
    let id = forget_snapshot(&state, &page.who, &form.snapshot, form.repository).await?;
    Ok(see_other(&format!(
        "/projects/{}?notice=forgotten&id={id}",
        q(&project)
    )))
}

/// A form's fields, or a 422 page saying what is missing.
fn form_of<T>(form: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    form.map(|Form(f)| f)
        .map_err(|e| PageError(ApiError::invalid(e.body_text())))
}

#[cfg(test)]
mod tests {
    use super::notice;

    #[test]
    fn notices_are_only_our_own_words() {
        assert!(notice(Some("held"), Some("abcdef0123"))
            .unwrap()
            .contains("abcdef01"));
        assert_eq!(notice(Some("held"), Some("<script>")), None);
        assert_eq!(notice(Some("pwned"), Some("abcd")), None);
        assert_eq!(notice(Some("forgotten"), None), None);
    }
}
