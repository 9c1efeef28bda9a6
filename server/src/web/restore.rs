//! The restore wizard, in three steps that each carry the choices so far in their form
//! (no JavaScript needed):
//! - `GET /restore?snapshot=ID&repository=R&path=/p` — what is restored (a snapshot path,
//!   or the whole snapshot) and the choices: for files the target (the original place, an
//!   admin's; or a directory under `[server] restore-roots`) and the overwrite mode; for a
//!   database a new database name (operator) or the original database, replaced (admin,
//!   with `force`);
//! - `POST /restore/preview` — what the restore will do: for files the API's dry run
//!   (counts and the first [`SHOWN`] paths created, overwritten and left alone, and that a
//!   safety snapshot of what is overwritten is taken first); for a database in words;
//! - `POST /restore/start` — the API's restore (same roles, audit and safety snapshot), as
//!   a job: on to `/jobs/{id}`, whose result names the safety snapshot.
//!
//! A choice the API refuses as invalid (a target outside the restore roots, a bad name)
//! shows the form again with the reason and the choices kept (422); a choice the role does
//! not allow is the 403 page. A viewer gets 403 at the first step.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use strata_engine::restorer::{Action, Overwrite, RestorePlan};
use strata_engine::Operation;

use super::{bytes, q, render, see_other, when, Nav, Page, PageError, PageResult, Params};
use crate::api::read::{self, locate};
use crate::api::restores::{
    plan_database, plan_files, start_database, start_files, DatabaseRestore, DbWhere, FilesRestore,
};
use crate::auth::Role;
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/restore", get(choose))
        .route("/restore/preview", post(preview))
        .route("/restore/start", post(start))
}

/// How many paths of each kind (created, overwritten, left alone) a preview lists.
pub const SHOWN: usize = 50;

/// The wizard's choices so far (query of the first step, form of the others). Empty
/// fields count as absent.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Choices {
    #[serde(default)]
    pub snapshot: String,
    pub repository: Option<String>,
    /// The snapshot path to restore; absent or empty: the whole snapshot.
    pub path: Option<String>,
    /// Files: `original` or `directory`.
    pub place: Option<String>,
    pub directory: Option<String>,
    /// `never`, `if-changed`, `if-newer`, `always`.
    pub overwrite: Option<String>,
    /// A database: `new` or `original`.
    pub database: Option<String>,
    /// A database: the new database's name.
    pub name: Option<String>,
    /// A database: `on` to replace the original.
    pub force: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Choices {
    fn path(&self) -> Option<&str> {
        given(&self.path).filter(|p| *p != "/")
    }

    fn overwrite(&self) -> &str {
        given(&self.overwrite).unwrap_or("never")
    }

    /// The hidden fields and the query string that carry these choices on.
    fn carried(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("snapshot", self.snapshot.clone())];
        let fields: [(&'static str, &Option<String>); 8] = [
            ("repository", &self.repository),
            ("path", &self.path),
            ("place", &self.place),
            ("directory", &self.directory),
            ("overwrite", &self.overwrite),
            ("database", &self.database),
            ("name", &self.name),
            ("force", &self.force),
        ];
        for (k, v) in fields {
            if let Some(v) = given(v) {
                out.push((k, v.to_string()));
            }
        }
        out
    }

    fn query(&self) -> String {
        self.carried()
            .iter()
            .map(|(k, v)| format!("{k}={}", q(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The overwrite modes, each with what it does.
const MODES: [(&str, &str, &str); 4] = [
    (
        "never",
        "Never",
        "leave every file that already exists as it is; only create what is missing.",
    ),
    (
        "if-changed",
        "If changed",
        "replace a file only where it differs from the snapshot's (size, time, then content).",
    ),
    (
        "if-newer",
        "If newer",
        "replace a file only where the snapshot's copy is newer than the one there.",
    ),
    (
        "always",
        "Always",
        "replace every file that exists with the snapshot's copy.",
    ),
];

fn overwrite_of(mode: &str) -> Result<Overwrite, ApiError> {
    match mode {
        "never" => Ok(Overwrite::Never),
        "if-changed" => Ok(Overwrite::IfChanged),
        "if-newer" => Ok(Overwrite::IfNewer),
        "always" => Ok(Overwrite::Always),
        other => Err(ApiError::invalid(format!(
            "{other:?} is not an overwrite mode: choose never, if-changed, if-newer or always"
        ))),
    }
}

fn mode_title(mode: &str) -> &'static str {
    MODES
        .iter()
        .find(|m| m.0 == mode)
        .map(|m| m.1)
        .unwrap_or("?")
}

/// What the wizard shows of the snapshot restored.
pub struct Facts {
    pub id: String,
    pub short: String,
    pub repository: String,
    pub kind: &'static str,
    pub database: bool,
    pub when: String,
    pub project: String,
    /// The snapshot's source paths (a database: its URL or file).
    pub paths: Vec<String>,
}

impl Facts {
    fn href(&self) -> String {
        format!("/snapshots/{}?repository={}", self.id, q(&self.repository))
    }

    /// The original database's name, for a server database (its URL's last part).
    fn original_name(&self) -> Option<String> {
        let first = self.paths.first()?;
        let url = url::Url::parse(first).ok()?;
        if !first.contains("://") {
            return None;
        }
        let name = url.path().trim_start_matches('/');
        let name = percent_encoding_decode(name);
        (!name.is_empty()).then_some(name)
    }
}

fn percent_encoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn facts(state: &AppState, c: &Choices) -> Result<Facts, ApiError> {
    if c.snapshot.trim().is_empty() {
        return Err(ApiError::invalid(
            "no snapshot chosen: open a project or a snapshot and choose \"Restore\" there",
        ));
    }
    let st = state.clone();
    let spec = c.snapshot.trim().to_string();
    let repository = given(&c.repository).map(str::to_string);
    blocking(move || {
        let l = locate(&st, &spec, repository.as_deref(), Operation::Snapshots)?;
        let kind = read::kind(&l.snapshot);
        Ok(Facts {
            id: l.id.to_hex(),
            short: l.id.short(),
            repository: l.repository,
            kind,
            database: matches!(kind, "postgres" | "mysql" | "sqlite"),
            when: when(l.snapshot.time_ns),
            project: l.snapshot.project.clone().unwrap_or_default(),
            paths: l.snapshot.paths.clone(),
        })
    })
    .await
}

#[derive(Template)]
#[template(path = "restore.html")]
struct ChoosePage {
    nav: Nav,
    f: Facts,
    /// What is restored, in words.
    what: String,
    path: String,
    place: String,
    directory: String,
    overwrite: String,
    database: String,
    name: String,
    force: bool,
    original_db: String,
    roots: Vec<String>,
    modes: Vec<(&'static str, &'static str, &'static str)>,
    error: Option<String>,
    carried: Vec<(&'static str, String)>,
}

fn what_of(f: &Facts, c: &Choices) -> String {
    match c.path() {
        Some(p) => p.to_string(),
        None => format!("the whole snapshot ({})", f.paths.join(", ")),
    }
}

/// The first step (again, with `error`, when a choice was refused).
fn choose_page(
    state: &AppState,
    nav: Nav,
    f: Facts,
    c: &Choices,
    error: Option<ApiError>,
) -> Response {
    let roots: Vec<String> = state
        .config()
        .server
        .restore_roots
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    let default_place = if nav.admin && roots.is_empty() {
        "original"
    } else {
        "directory"
    };
    let page = ChoosePage {
        what: what_of(&f, c),
        path: given(&c.path).unwrap_or("").to_string(),
        place: given(&c.place).unwrap_or(default_place).to_string(),
        directory: given(&c.directory).unwrap_or("").to_string(),
        overwrite: c.overwrite().to_string(),
        database: given(&c.database).unwrap_or("new").to_string(),
        name: given(&c.name).unwrap_or("").to_string(),
        force: given(&c.force).is_some(),
        original_db: f
            .original_name()
            .or_else(|| f.paths.first().cloned())
            .unwrap_or_default(),
        roots,
        modes: MODES.to_vec(),
        error: error.as_ref().map(|e| e.message.clone()),
        carried: vec![
            ("snapshot", f.id.clone()),
            ("repository", f.repository.clone()),
        ],
        f,
        nav,
    };
    let status = error.map(|e| e.status).unwrap_or(StatusCode::OK);
    (status, render(&page)).into_response()
}

/// `GET /restore?snapshot=&repository=&path=`: the choices.
async fn choose(
    State(state): State<AppState>,
    page: Page,
    Params(c): Params<Choices>,
) -> PageResult {
    page.who.require(Role::Operator, "restoring")?;
    let f = facts(&state, &c).await?;
    if let Some(p) = c.path() {
        read::snapshot_path(Some(p))?;
    }
    Ok(choose_page(&state, page.nav.at("restore"), f, &c, None))
}

/// What the choices ask for, as the API takes it.
enum Asked {
    Files(FilesRestore),
    Database(DatabaseRestore),
}

fn asked(f: &Facts, c: &Choices) -> Result<Asked, ApiError> {
    if f.database {
        let force = given(&c.force).is_some();
        let target = match given(&c.database).unwrap_or("new") {
            "new" => {
                if force {
                    return Err(ApiError::invalid(
                        "\"replace it\" is for the original database; a new one replaces nothing",
                    ));
                }
                match given(&c.name) {
                    // A SQLite database is a file: a path under a restore root.
                    Some(file) if f.kind == "sqlite" => DbWhere::Url(file.to_string()),
                    Some(name) => DbWhere::Name(name.to_string()),
                    None if f.kind == "sqlite" => {
                        return Err(ApiError::invalid(
                            "give the new database's file (a path under a restore root)",
                        ))
                    }
                    None => {
                        return Err(ApiError::invalid(
                            "give the new database a name (letters, digits, _ and -)",
                        ))
                    }
                }
            }
            "original" => {
                if !force {
                    return Err(ApiError::invalid(
                        "restoring into the original database replaces what it holds: tick \
                         \"replace it\" to confirm, or choose a new database",
                    ));
                }
                match f.original_name() {
                    Some(name) => DbWhere::Name(name),
                    // A SQLite file: its path (under a restore root, as the API has it).
                    None => DbWhere::Url(f.paths.first().cloned().unwrap_or_default()),
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "{other:?} is not a database target: choose new or original"
                )))
            }
        };
        return Ok(Asked::Database(DatabaseRestore {
            snapshot: f.id.clone(),
            repository: f.repository.clone(),
            target,
            force,
        }));
    }
    let target = match given(&c.place).unwrap_or("directory") {
        "original" => "original".to_string(),
        "directory" => match given(&c.directory) {
            Some(d) => d.to_string(),
            None => {
                return Err(ApiError::invalid(
                    "give the directory to restore into (under one of the restore roots)",
                ))
            }
        },
        other => {
            return Err(ApiError::invalid(format!(
                "{other:?} is not a target: choose original or directory"
            )))
        }
    };
    Ok(Asked::Files(FilesRestore {
        snapshot: f.id.clone(),
        repository: f.repository.clone(),
        paths: c.path().map(|p| vec![p.to_string()]).unwrap_or_default(),
        target,
        overwrite: overwrite_of(c.overwrite())?,
    }))
}

/// One listed entry of a preview.
pub struct Row {
    pub path: String,
    pub kind: &'static str,
    pub size: String,
    pub reason: String,
}

/// Entries of a preview that the restore treats alike.
pub struct Group {
    pub id: &'static str,
    pub title: &'static str,
    pub count: u64,
    pub rows: Vec<Row>,
    /// How many of `count` are not listed.
    pub more: u64,
    pub empty: &'static str,
}

/// A plan's entries grouped as the preview shows them (at most [`SHOWN`] rows each).
pub fn groups(plan: &RestorePlan) -> Vec<Group> {
    let t = &plan.totals;
    let mut out = vec![
        group(
            plan,
            "create",
            "Created",
            t.create,
            &[Action::Create],
            "Nothing new is created.",
        ),
        group(
            plan,
            "overwrite",
            "Overwritten",
            t.overwrite,
            &[Action::Overwrite],
            "Nothing that exists is overwritten.",
        ),
        group(
            plan,
            "alone",
            "Left alone",
            t.unchanged + t.keep,
            &[Action::Unchanged, Action::Keep],
            "Nothing is left alone.",
        ),
    ];
    if t.delete > 0 {
        out.push(group(
            plan,
            "delete",
            "Deleted",
            t.delete,
            &[Action::Delete],
            "",
        ));
    }
    out
}

fn group(
    plan: &RestorePlan,
    id: &'static str,
    title: &'static str,
    count: u64,
    actions: &[Action],
    empty: &'static str,
) -> Group {
    let rows: Vec<Row> = plan
        .entries
        .iter()
        .filter(|e| actions.contains(&e.action))
        .take(SHOWN)
        .map(|e| Row {
            path: e.path.to_string_lossy().into_owned(),
            kind: e.kind,
            size: if e.kind == "file" {
                bytes(e.size)
            } else {
                String::new()
            },
            reason: e.reason.unwrap_or("").to_string(),
        })
        .collect();
    Group {
        id,
        title,
        count,
        more: count.saturating_sub(rows.len() as u64),
        rows,
        empty,
    }
}

#[derive(Template)]
#[template(path = "restore_preview.html")]
struct PreviewPage {
    nav: Nav,
    f: Facts,
    what: String,
    /// Where it goes, in words.
    target: String,
    mode: &'static str,
    in_place: bool,
    groups: Vec<Group>,
    /// Entries a safety snapshot saves first (overwritten or deleted).
    at_risk: u64,
    /// File content the restore writes.
    writes: String,
    /// A database restore: what happens, in words (no file plan).
    database: Vec<String>,
    carried: Vec<(&'static str, String)>,
    change: String,
}

/// Reads the form of a step; a form that cannot be read is the 422 page.
fn form_of(form: Result<Form<Choices>, FormRejection>) -> Result<Choices, ApiError> {
    form.map(|Form(c)| c)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

/// `POST /restore/preview`: what the restore will do.
async fn preview(
    State(state): State<AppState>,
    page: Page,
    form: Result<Form<Choices>, FormRejection>,
) -> PageResult {
    page.who.require(Role::Operator, "restoring")?;
    let c = form_of(form)?;
    let f = facts(&state, &c).await?;
    let nav = page.nav.at("restore");
    let asked = match asked(&f, &c) {
        Ok(a) => a,
        Err(e) => return refused(&state, nav, f, &c, e),
    };
    let what = what_of(&f, &c);
    let change = format!("/restore?{}", c.query());
    let carried = c.carried();
    match asked {
        Asked::Files(r) => {
            let plan = match plan_files(&state, &page.who, &r).await {
                Ok(p) => p,
                Err(e) => return refused(&state, nav, f, &c, e),
            };
            let in_place = r.target == "original";
            let target = if in_place {
                "the original place (every entry at its own path)".to_string()
            } else {
                plan.target.display().to_string()
            };
            let at_risk = plan.at_risk().count() as u64;
            Ok(render(&PreviewPage {
                nav,
                f,
                what,
                target,
                mode: mode_title(c.overwrite()),
                in_place,
                groups: groups(&plan),
                at_risk,
                writes: format!(
                    "{} in {} file{}",
                    bytes(plan.totals.bytes),
                    plan.totals.files,
                    if plan.totals.files == 1 { "" } else { "s" }
                ),
                database: Vec::new(),
                carried,
                change,
            }))
        }
        Asked::Database(r) => {
            // The checks the start makes, made now (who may, where to, the name): so the
            // preview never offers what the start would refuse.
            if let Err(e) = plan_database(&state, &page.who, &r).await {
                return refused(&state, nav, f, &c, e);
            }
            let (target, lines) = database_words(&f, &r);
            Ok(render(&PreviewPage {
                nav,
                in_place: r.force,
                what: format!("the database dump of {}", f.paths.join(", ")),
                target,
                mode: "",
                groups: Vec::new(),
                at_risk: 0,
                writes: String::new(),
                database: lines,
                carried,
                change,
                f,
            }))
        }
    }
}

/// What a database restore will do, in words: its target and the steps.
fn database_words(f: &Facts, r: &DatabaseRestore) -> (String, Vec<String>) {
    let target = match &r.target {
        DbWhere::Name(n) if r.force => format!("the original database {n}"),
        DbWhere::Name(n) => {
            format!("a new database {n}, on the server the snapshot was taken from")
        }
        DbWhere::Url(u) if r.force => format!("the original database {u}"),
        DbWhere::Url(u) => format!("a new database {u}"),
    };
    let mut lines = Vec::new();
    if r.force {
        lines.push(format!(
            "First Strata takes a safety snapshot (tagged pre-restore) of what {target} \
             holds now; the job's page names it, so this restore can be undone."
        ));
        lines.push(format!(
            "Then {target} is replaced by the {} dump of {}.",
            f.kind, f.when
        ));
    } else {
        lines.push(format!(
            "The {} dump of {} is loaded into {target}.",
            f.kind, f.when
        ));
        lines.push(
            "If that database already exists and holds tables, the restore stops and \
             changes nothing (only the original may be replaced, by an admin)."
                .to_string(),
        );
    }
    (target, lines)
}

/// A choice the API refused: 422 shows the form again with the reason; anything else
/// (403, 404, 409) is its error page.
fn refused(state: &AppState, nav: Nav, f: Facts, c: &Choices, e: ApiError) -> PageResult {
    if e.status == StatusCode::UNPROCESSABLE_ENTITY {
        Ok(choose_page(state, nav, f, c, Some(e)))
    } else {
        Err(PageError(e))
    }
}

/// `POST /restore/start`: the restore as a job; on to its page.
async fn start(
    State(state): State<AppState>,
    page: Page,
    form: Result<Form<Choices>, FormRejection>,
) -> PageResult {
    page.who.require(Role::Operator, "restoring")?;
    let c = form_of(form)?;
    let f = facts(&state, &c).await?;
    let nav = page.nav.at("restore");
    // The checks look at the filesystem (the restore roots): on a blocking thread.
    let started = match asked(&f, &c) {
        Ok(a) => {
            let (st, who) = (state.clone(), page.who.clone());
            blocking(move || match a {
                Asked::Files(r) => start_files(&st, &who, r),
                Asked::Database(r) => start_database(&st, &who, r),
            })
            .await
        }
        Err(e) => Err(e),
    };
    match started {
        Ok(job) => Ok(see_other(&format!("/jobs/{}", job.id))),
        Err(e) => refused(&state, nav, f, &c, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_carry_on_only_what_was_given() {
        let c = Choices {
            snapshot: "ab12".into(),
            path: Some("/srv/a b".into()),
            directory: Some("  ".into()),
            overwrite: Some("always".into()),
            ..Choices::default()
        };
        assert_eq!(
            c.query(),
            "snapshot=ab12&path=%2Fsrv%2Fa+b&overwrite=always"
        );
        assert_eq!(c.path(), Some("/srv/a b"));
        let whole = Choices {
            path: Some("/".into()),
            ..Choices::default()
        };
        assert_eq!(whole.path(), None);
        assert_eq!(whole.overwrite(), "never");
    }

    #[test]
    fn every_mode_offered_is_one_the_engine_takes() {
        for (mode, _, _) in MODES {
            assert!(overwrite_of(mode).is_ok(), "{mode}");
        }
        assert!(overwrite_of("sometimes").is_err());
    }

    #[test]
    fn a_database_url_names_its_original_database() {
        let f = Facts {
            id: String::new(),
            short: String::new(),
            repository: String::new(),
            kind: "postgres",
            database: true,
            when: String::new(),
            project: String::new(),
            paths: vec!["postgres://app@localhost:5432/shop%2Dmain".into()],
        };
        assert_eq!(f.original_name().as_deref(), Some("shop-main"));
        let sqlite = Facts {
            paths: vec!["/srv/app.db".into()],
            ..f
        };
        assert_eq!(sqlite.original_name(), None);
    }
}
