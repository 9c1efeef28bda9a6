//! `/log`: the audit catalog, newest first, filtered by a GET form and paged (one indexed
//! query per page, read by the same code as `GET /api/v1/log`); `/health`: every project's
//! health items, evaluated now as `GET /api/v1/health` does, with a legend of the checks;
//! `/config`: the effective config with its secrets redacted, as `strata config show`
//! prints it (operators and admins: it names hosts, paths and users a viewer need not know).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use strata_app::catalog::{Catalog, Entry, LogFilter, Place};
use strata_app::config::show;
use strata_app::health::Check;
use strata_app::ops::{Query as CatalogQuery, Record, RecordBody, RecordKind, Status};

use super::{age, bytes, q, render, when, Nav, Page, PageResult, Params};
use crate::api::read::{evaluate, record_kind, since_ns};
use crate::auth::Role;
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/log", get(log))
        .route("/health", get(health))
        .route("/config", get(config))
}

// ---- /log ----

/// Records per page of `/log`.
pub const PAGE: usize = 100;

/// The filter form's fields, as the browser sends them (an empty field filters nothing).
#[derive(Debug, Default, Deserialize)]
struct LogParams {
    project: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    user: Option<String>,
    failed: Option<String>,
    /// `TIME_NS-SEQ` of the last record of the page before.
    before: Option<String>,
}

/// A field's value, or None when it was left empty.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// One record, ready to show.
pub struct Row {
    pub seq: u64,
    pub when: String,
    pub age: String,
    pub kind: &'static str,
    pub project: Option<String>,
    pub repository: String,
    pub user: String,
    pub address: String,
    pub what: String,
    pub ok: bool,
    pub error: String,
    /// Snapshots it names: (href, label).
    pub links: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "log.html")]
struct LogPage {
    nav: Nav,
    projects: Vec<String>,
    kinds: Vec<&'static str>,
    /// The filters as given, to show them again.
    project: String,
    kind: String,
    since: String,
    user: String,
    failed: bool,
    /// Why the filters could not be applied (the page then shows no rows).
    problem: Option<String>,
    rows: Vec<Row>,
    /// The next (older) page's URL, when there are older records.
    older: Option<String>,
    /// Whether this is a later page (a link back to the newest).
    paged: bool,
    newest: String,
}

/// `/log?project=&kind=&since=&user=&failed=1&before=`: newest first, [`PAGE`] records
/// a page. A filter that cannot be understood is said on the page (422), with the form as
/// it was filled in.
async fn log(
    State(state): State<AppState>,
    page: Page,
    Params(p): Params<LogParams>,
) -> PageResult {
    let projects: Vec<String> = state.config().projects.keys().cloned().collect();
    let failed = given(&p.failed).is_some();
    let mut newest = Vec::new();
    for (key, v) in [
        ("project", given(&p.project)),
        ("kind", given(&p.kind)),
        ("since", given(&p.since)),
        ("user", given(&p.user)),
        ("failed", failed.then_some("1")),
    ] {
        if let Some(v) = v {
            newest.push(format!("{key}={}", q(v)));
        }
    }
    let newest = if newest.is_empty() {
        "/log".to_string()
    } else {
        format!("/log?{}", newest.join("&"))
    };
    let mut view = LogPage {
        nav: page.nav.at("log"),
        projects,
        kinds: RecordKind::ALL.iter().map(|k| k.name()).collect(),
        project: given(&p.project).unwrap_or("").to_string(),
        kind: given(&p.kind).unwrap_or("").to_string(),
        since: given(&p.since).unwrap_or("").to_string(),
        user: given(&p.user).unwrap_or("").to_string(),
        failed,
        problem: None,
        rows: Vec::new(),
        older: None,
        paged: given(&p.before).is_some(),
        newest: newest.clone(),
    };
    let selection = (|| -> Result<(CatalogQuery, LogFilter), ApiError> {
        let query = CatalogQuery {
            project: given(&p.project).map(str::to_string),
            repository: None,
            kind: given(&p.kind).map(record_kind).transpose()?,
            ok_only: false,
            since_ns: given(&p.since)
                .map(|s| since_ns(s, state.now_ns()))
                .transpose()?,
            // A page: see `read_page`.
            limit: Some(PAGE),
        };
        let filter = LogFilter {
            failed_only: failed,
            user: given(&p.user).map(str::to_string),
            before: given(&p.before).map(parse_before).transpose()?,
        };
        Ok((query, filter))
    })();
    let (query, filter) = match selection {
        Ok(s) => s,
        Err(e) => {
            view.problem = Some(e.message);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&view)).into_response());
        }
    };
    let now = state.now_ns();
    let (entries, older) = blocking(move || read_page(&state, &query, &filter)).await?;
    if let Some((time_ns, seq)) = older {
        let sep = if newest.contains('?') { '&' } else { '?' };
        view.older = Some(format!("{newest}{sep}before={time_ns}-{seq}"));
    }
    view.rows = entries.iter().map(|e| row(e, now)).collect();
    Ok(render(&view))
}

/// A page of the log, and the place of its last row when there are older ones.
fn read_page(
    state: &AppState,
    query: &CatalogQuery,
    filter: &LogFilter,
) -> Result<(Vec<Entry>, Option<Place>), ApiError> {
    match Catalog::open_read_only(&state.config().state_dir)? {
        Some(cat) => Ok(cat.entries_page(query, filter, PAGE)?),
        None => Ok((Vec::new(), None)),
    }
}

/// `TIME_NS-SEQ` (a pager's link) as a place in the log.
fn parse_before(s: &str) -> Result<(i64, u64), ApiError> {
    s.rsplit_once('-')
        .and_then(|(t, seq)| Some((t.parse().ok()?, seq.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "before={s:?} is not a place in the log: follow the page's own links"
            ))
        })
}

/// A snapshot's page, in the repository a record names.
fn snapshot_link(id: &str, repository: Option<&str>, label: &str) -> (String, String) {
    let href = match repository {
        Some(r) => format!("/snapshots/{}?repository={}", q(id), q(r)),
        None => format!("/snapshots/{}", q(id)),
    };
    (href, format!("{label} {}", short(id)))
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// A record as a row: what was done, in words, and the snapshots it names.
pub fn row(e: &Entry, now_ns: i64) -> Row {
    let r: &Record = &e.record;
    let repo = r.repository.as_deref();
    let mut links = Vec::new();
    let mut address = String::new();
    let what = match &r.body {
        RecordBody::Run {
            trigger,
            exit_code,
            snapshots,
            ..
        } => format!(
            "run ({trigger}), exit {exit_code}, {} snapshot{}",
            snapshots.len(),
            if snapshots.len() == 1 { "" } else { "s" }
        ),
        RecordBody::Backup {
            source,
            source_kind,
            snapshot_id,
            bytes_read,
            bytes_added,
            ..
        } => {
            if let Some(id) = snapshot_id {
                links.push(snapshot_link(id, repo, "snapshot"));
            }
            format!(
                "backup of {source} ({source_kind}): {} read, {} added",
                bytes(*bytes_read),
                bytes(*bytes_added)
            )
        }
        RecordBody::Copy {
            from,
            snapshot_id,
            dest_id,
            bytes_added,
        } => {
            if let Some(id) = dest_id {
                links.push(snapshot_link(id, repo, "copy"));
            }
            format!(
                "copy of {} from {from}: {} added",
                short(snapshot_id),
                bytes(*bytes_added)
            )
        }
        RecordBody::Retention {
            snapshot_id,
            action,
            reasons,
            ..
        } => format!(
            "{action} {} ({})",
            short(snapshot_id),
            if reasons.is_empty() {
                "no reason recorded".to_string()
            } else {
                reasons.join(", ")
            }
        ),
        RecordBody::Prune {
            packs_deleted,
            bytes_freed,
            ..
        } => format!(
            "prune: {packs_deleted} packs deleted, {} freed",
            bytes(*bytes_freed)
        ),
        RecordBody::Check {
            read_data, errors, ..
        } => format!("check (data read: {read_data}): {errors} errors"),
        RecordBody::Restore {
            snapshot_id,
            what,
            target,
            safety_snapshot,
        } => {
            links.push(snapshot_link(snapshot_id, repo, "snapshot"));
            if let Some(id) = safety_snapshot {
                links.push(snapshot_link(id, repo, "safety snapshot"));
            }
            format!("restore of {what} from {} to {target}", short(snapshot_id))
        }
        RecordBody::RestoreTest { snapshot_id, .. } => {
            links.push(snapshot_link(snapshot_id, repo, "snapshot"));
            format!("restore test of {}", short(snapshot_id))
        }
        RecordBody::Hook {
            which, exit_code, ..
        } => match exit_code {
            Some(c) => format!("{which} hook, exit {c}"),
            None => format!("{which} hook, killed"),
        },
        RecordBody::Notify {
            channel,
            event,
            attempts,
        } => format!(
            "notification {channel} on {}, {attempts} attempt{}",
            event.name(),
            if *attempts == 1 { "" } else { "s" }
        ),
        RecordBody::Access {
            action,
            target,
            address: a,
            ..
        } => {
            address = a.clone();
            if target.is_empty() {
                action.clone()
            } else {
                format!("{action} {target}")
            }
        }
    };
    Row {
        seq: e.seq,
        when: when(r.time_ns),
        age: age(now_ns, r.time_ns),
        kind: r.kind().name(),
        project: r.project.clone(),
        repository: r.repository.clone().unwrap_or_default(),
        user: r.user.clone().unwrap_or_default(),
        address,
        what,
        ok: r.ok,
        error: r.error.clone().unwrap_or_default(),
        links,
    }
}

// ---- /health ----

/// One health item, ready to show.
pub struct HealthRow {
    pub check: &'static str,
    /// The repository, and the source when the item is about one.
    pub scope: String,
    pub status: &'static str,
    pub message: String,
    pub value: String,
}

/// A project's items.
pub struct ProjectHealth {
    pub name: String,
    pub status: &'static str,
    pub rows: Vec<HealthRow>,
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    nav: Nav,
    status: &'static str,
    evaluated: String,
    projects: Vec<ProjectHealth>,
    legend: Vec<(&'static str, &'static str)>,
}

/// What each check judges and where its threshold is set, one line each.
pub const LEGEND: [(&str, &str); 10] = [
    ("last-success", "Age of the last successful backup (or copy) against the project's max-age (config: max-age, else derived from its schedule); older is critical."),
    ("last-run", "Whether the project's last run succeeded; a failed run is critical until a run succeeds."),
    ("size", "The last backup's size against the median of earlier ones: outside ½…2× is a warning (an empty dump, a runaway log)."),
    ("restore-test", "Age of the last restore test against twice the project's restore-test schedule (config: restore-test); a failed test is critical."),
    ("check", "Age of the last repository check against twice the project's check schedule (config: check); a check that found errors is critical."),
    ("copy-lag", "Whether each copy repository keeps up: a copy older than the primary's last backup by more than half of max-age is a warning."),
    ("free-space", "Free space where the repository is stored: under 10 % is a warning."),
    ("run-lock", "A project lock held over three times the median run's length is a warning (a stuck run)."),
    ("notifications", "A notification that failed since the last success is a warning (alerts may not be arriving)."),
    ("wal-archive", "A PostgreSQL WAL archive without a base backup, with a gap after the oldest one, or whose newest segment is older than max-wal-age is a warning."),
];

/// A measure as a person reads it.
fn value_text(check: Check, v: Option<f64>) -> String {
    let Some(v) = v else {
        return String::new();
    };
    match check {
        Check::LastSuccess => when((v * 1e9) as i64),
        Check::Size => bytes(v.max(0.0) as u64),
        Check::FreeSpace => format!("{:.0} % free", v * 100.0),
        _ => format!("{v}"),
    }
}

/// `/health`: the overall status, then each project's items, evaluated now.
async fn health(State(state): State<AppState>, page: Page) -> PageResult {
    let (report, projects) = blocking(move || {
        let (report, _history) = evaluate(&state)?;
        Ok((
            report,
            state.config().projects.keys().cloned().collect::<Vec<_>>(),
        ))
    })
    .await?;
    let mut names = projects;
    for i in &report.items {
        if !names.contains(&i.project) {
            names.push(i.project.clone());
        }
    }
    let projects = names
        .into_iter()
        .map(|name| {
            let items: Vec<_> = report.items.iter().filter(|i| i.project == name).collect();
            let status = items
                .iter()
                .map(|i| i.status)
                .max()
                .unwrap_or(Status::Ok)
                .name();
            let rows = items
                .iter()
                .map(|i| HealthRow {
                    check: i.check.name(),
                    scope: match (&i.repository, &i.source) {
                        (Some(r), Some(s)) => format!("{r} ({s})"),
                        (Some(r), None) => r.clone(),
                        (None, Some(s)) => s.clone(),
                        (None, None) => String::new(),
                    },
                    status: i.status.name(),
                    message: i.message.clone(),
                    value: value_text(i.check, i.value),
                })
                .collect();
            ProjectHealth { name, status, rows }
        })
        .collect();
    Ok(render(&HealthPage {
        nav: page.nav.at("health"),
        status: report.status.name(),
        evaluated: when(report.time_ns),
        projects,
        legend: LEGEND.to_vec(),
    }))
}

// ---- /config ----

#[derive(Template)]
#[template(path = "config.html")]
struct ConfigPage {
    nav: Nav,
    file: String,
    toml: String,
}

/// `/config`: the effective config as TOML, every secret `<redacted>` (what `strata config
/// show` prints). Operators and admins only: a viewer gets a 403 page saying so.
async fn config(State(state): State<AppState>, page: Page) -> PageResult {
    page.who.require(Role::Operator, "seeing the config")?;
    let cfg = state.config();
    let toml = show::to_toml(&show::effective(cfg));
    Ok(render(&ConfigPage {
        nav: page.nav.at("config"),
        file: cfg.file.display().to_string(),
        toml,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pager_link_is_a_place_in_the_log_and_nothing_else_is() {
        assert_eq!(
            parse_before("1700000000000000000-42").unwrap(),
            (1_700_000_000_000_000_000, 42)
        );
        for bad in ["", "42", "x-1", "1-x", "1-2-3"] {
            assert_eq!(parse_before(bad).unwrap_err().code, "invalid", "{bad:?}");
        }
    }

    #[test]
    fn the_legend_explains_every_check() {
        for c in Check::ALL {
            assert!(LEGEND.iter().any(|(n, _)| *n == c.name()), "{}", c.name());
        }
    }
}
