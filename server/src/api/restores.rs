//! `POST /restores` (files or a database) and `POST /restore-tests`, started as jobs; a
//! files dry run answers at once with its plan.
//!
//! Who may do what: restoring files in place (`target: "original"`) is an admin's; to
//! another directory an operator's, and only under `[server] restore-roots` (checked by
//! `strata_app::restore::target_under_roots`, symlinks resolved, `..` refused). A database
//! into a new (empty) database is an operator's; replacing one (`force`) an admin's. What
//! a restore overwrites is first saved in a `pre-restore` safety snapshot, named in the
//! job's result; each restore leaves the CLI's `restore` record and an `access` record.
//!
//! The dashboard's restore wizard (`web::restore`) goes through the same functions
//! ([`plan_files`], [`start_files`], [`start_database`]): one place checks roles and
//! roots, takes the safety snapshot, records and audits.

use std::path::{Path, PathBuf};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use strata_app::ops::Record;
use strata_app::restore::{self, Recorded};
use strata_db::Database;
use strata_engine::restorer::{self, Overwrite, RestoreOptions, RestorePlan};
use strata_engine::{snapshots, Operation};

use crate::api::jobs::{Job, JobHandle};
use crate::audit::Access;
use crate::auth::{Principal, Role};
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/restores", post(restore_route))
        .route("/restore-tests", post(restore_test_route))
}

/// The body of `POST /restores`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreRequest {
    snapshot: String,
    repository: Option<String>,
    /// Snapshot paths to restore (and what they contain); none: the whole snapshot.
    #[serde(default)]
    paths: Vec<String>,
    /// `original`, or a directory under a restore root.
    target: Option<String>,
    /// `never` (the default here: an API call replaces nothing it was not told to),
    /// `if-changed`, `if-newer`, `always`.
    #[serde(default = "never")]
    overwrite: Overwrite,
    #[serde(default)]
    dry_run: bool,
    database: Option<DbTarget>,
    #[serde(default)]
    force: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DbTarget {
    /// `postgres://…`, `mysql://…`, or a SQLite file.
    url: Option<String>,
    /// A database on the server of the snapshot's source (as the config reaches it).
    name: Option<String>,
}

fn never() -> Overwrite {
    Overwrite::Never
}

/// A JSON body, or 422 `invalid` saying what is wrong with it.
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(t)| t)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

/// The repository a request names, or the only one of the config.
pub(crate) fn repository_name(state: &AppState, named: Option<String>) -> Result<String, ApiError> {
    if let Some(n) = named {
        return Ok(n);
    }
    let mut names = state.config().repositories.keys();
    match (names.next(), names.next()) {
        (Some(only), None) => Ok(only.clone()),
        _ => Err(ApiError::invalid(
            "name the repository (\"repository\"): the config has several",
        )),
    }
}

/// Writes what a restore (or restore test) leaves in the catalog, as `p`.
fn record(state: &AppState, p: &Principal, repository: &str, project: Option<String>, r: Recorded) {
    let record = Record {
        time_ns: state.now_ns(),
        project,
        repository: Some(repository.to_string()),
        run_id: None,
        ok: r.ok,
        error: r.error,
        user: Some(p.name.clone()),
        body: r.body,
    };
    if !strata_app::catalog::record_best_effort(&state.config().state_dir, &record) {
        tracing::error!("the catalog record of a restore could not be written");
    }
}

/// `POST /restores`.
async fn restore_route(
    State(state): State<AppState>,
    p: Principal,
    req: Result<Json<RestoreRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    p.require(Role::Operator, "restoring")?;
    let req = body(req)?;
    let repository = repository_name(&state, req.repository.clone())?;
    match (req.database, req.target) {
        (Some(db), None) => {
            let target = match (db.url, db.name) {
                (Some(url), None) => DbWhere::Url(url),
                (None, Some(name)) => DbWhere::Name(name),
                _ => {
                    return Err(ApiError::invalid(
                        "say either \"url\" or \"name\" in \"database\"",
                    ))
                }
            };
            // Who may name that server comes first (as it always has here).
            require_for_target(&p, &target)?;
            if !req.paths.is_empty() || req.dry_run {
                return Err(ApiError::invalid(
                    "a database restore takes no \"paths\" and no \"dry_run\"",
                ));
            }
            let r = DatabaseRestore {
                snapshot: req.snapshot,
                repository,
                target,
                force: req.force,
            };
            let job = blocking(move || start_database(&state, &p, r)).await?;
            Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
        }
        (None, Some(target)) => {
            if req.force {
                return Err(ApiError::invalid(
                    "\"force\" is for databases; say \"overwrite\"",
                ));
            }
            let r = FilesRestore {
                snapshot: req.snapshot,
                repository,
                paths: req.paths,
                target,
                overwrite: req.overwrite,
            };
            if req.dry_run {
                let plan = plan_files(&state, &p, &r).await?;
                let mut v = serde_json::to_value(&plan).unwrap_or_default();
                v["dry_run"] = json!(true);
                return Ok((StatusCode::OK, Json(v)));
            }
            let job = blocking(move || start_files(&state, &p, r)).await?;
            Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
        }
        _ => Err(ApiError::invalid(
            "say either \"target\" (\"original\" or a directory) or \"database\"",
        )),
    }
}

/// A restore of files, as `POST /restores` and the dashboard's wizard ask for it.
#[derive(Debug, Clone)]
pub struct FilesRestore {
    /// A snapshot id or a unique prefix of one.
    pub snapshot: String,
    pub repository: String,
    /// Snapshot paths to restore (and what they contain); none: the whole snapshot.
    pub paths: Vec<String>,
    /// `original` (in place), or a directory under a restore root.
    pub target: String,
    pub overwrite: Overwrite,
}

/// A files restore checked: who may, where it goes, what it restores.
struct CheckedFiles {
    /// The directory entries are restored under (`/` in place).
    dir: PathBuf,
    /// The target as records and results name it (`original`, or the directory).
    shown: String,
    opts: RestoreOptions,
}

/// Who may restore where (in place: an admin; elsewhere: an operator, under a restore
/// root) and the restore's options; refused (403, 422) before anything is opened.
fn check_files(
    state: &AppState,
    p: &Principal,
    r: &FilesRestore,
    dry_run: bool,
) -> Result<CheckedFiles, ApiError> {
    p.require(Role::Operator, "restoring")?;
    // In place: every entry at its own absolute path, under `/`.
    let (dir, shown) = if r.target == "original" {
        p.require(Role::Admin, "restoring in place")?;
        (PathBuf::from("/"), "original".to_string())
    } else {
        let dir = restore::target_under_roots(
            Path::new(&r.target),
            &state.config().server.restore_roots,
        )?;
        (dir.clone(), dir.display().to_string())
    };
    let includes = r
        .paths
        .iter()
        .map(|path| restore::include_for_path(path))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = RestoreOptions {
        includes,
        overwrite: r.overwrite,
        list_created: dry_run,
        ..RestoreOptions::default()
    };
    Ok(CheckedFiles { dir, shown, opts })
}

/// What the files restore `r` would do (a dry run: it changes nothing), every entry to
/// create included.
pub async fn plan_files(
    state: &AppState,
    p: &Principal,
    r: &FilesRestore,
) -> Result<RestorePlan, ApiError> {
    let st = state.clone();
    let who = p.clone();
    let r = r.clone();
    blocking(move || {
        // The restore roots are looked up on the filesystem: here, on a blocking thread.
        let CheckedFiles { dir, opts, .. } = check_files(&st, &who, &r, true)?;
        let o = st.open(&r.repository, Operation::Restore)?;
        let (_, snap) = snapshots::find(&o.repo, &r.snapshot)?;
        Ok(restorer::plan(&o.repo, &snap, &dir, &opts)?)
    })
    .await
}

/// Starts the files restore `r` as a job (after the same checks as [`plan_files`]): what
/// it overwrites is saved first in a safety snapshot named in the job's result; the
/// restore is recorded and the request audited.
pub fn start_files(state: &AppState, p: &Principal, r: FilesRestore) -> Result<Job, ApiError> {
    let CheckedFiles { dir, shown, opts } = check_files(state, p, &r, false)?;
    let worker = state.clone();
    let who = p.clone();
    let FilesRestore {
        snapshot: spec,
        repository,
        ..
    } = r;
    let in_place = r.target == "original";
    Ok(state.jobs().start("restore", None, p, move |h| {
        // A job may wait queued: the target is judged again when it starts, so that a
        // symlink swapped in meanwhile cannot lead the restore out of the restore roots.
        let still = || -> Result<(), ApiError> {
            let roots = &worker.config().server.restore_roots;
            if in_place || restore::target_under_roots(&dir, roots)? == dir {
                Ok(())
            } else {
                Err(ApiError::invalid(format!(
                    "{} changed since the restore was asked for: it no longer leads to the same \
                     place under the restore roots",
                    dir.display()
                )))
            }
        };
        let outcome = still()
            .and_then(|()| restore_files(&worker, &who, &repository, &spec, &dir, &shown, opts, h));
        let access = Access {
            action: "restore",
            target: format!("snapshot {spec} to {shown}"),
            project: None,
            repository: Some(repository.clone()),
        };
        audit_outcome(&worker, &who, access, &outcome);
        outcome
    }))
}

/// The access record of a job's request, with its outcome (and the safety snapshot it
/// took, in its target).
fn audit_outcome(
    state: &AppState,
    p: &Principal,
    mut access: Access<'_>,
    outcome: &Result<Value, ApiError>,
) {
    let safety = outcome
        .as_ref()
        .ok()
        .and_then(|v| v["safety_snapshot"].as_str().map(str::to_string));
    if let Some(s) = safety {
        access.target = format!("{} (safety snapshot {s})", access.target);
    }
    match outcome {
        Ok(_) => state.audit(Some(p), p.address, access, Ok(())),
        Err(e) => state.audit(Some(p), p.address, access, Err(&e.message)),
    }
}

#[allow(clippy::too_many_arguments)]
fn restore_files(
    state: &AppState,
    p: &Principal,
    repository: &str,
    spec: &str,
    dir: &Path,
    shown: &str,
    mut opts: RestoreOptions,
    h: &JobHandle,
) -> Result<Value, ApiError> {
    h.phase("opening the repository");
    let o = state.open(repository, restore::operation_for_dir(dir, false, true))?;
    let (id, snap) = snapshots::find(&o.repo, spec)?;
    opts.safety = Some(restore::safety_labels(&snap));
    h.phase("planning");
    let plan = restorer::plan(&o.repo, &snap, dir, &opts)?;
    h.phase("restoring");
    let (stats, recorded) = restore::files(&o.repo, &id, &snap, &plan, &opts, shown, h);
    record(state, p, repository, snap.project.clone(), recorded);
    let stats = stats?;
    let v = json!({
        "snapshot": id.to_hex(),
        "repository": repository,
        "target": shown,
        "files": stats.files,
        "dirs": stats.dirs,
        "other": stats.other,
        "bytes": stats.bytes,
        "overwritten": stats.overwritten,
        "unchanged": stats.unchanged,
        "kept": stats.kept,
        "safety_snapshot": stats.safety_snapshot.as_ref().map(|s| s.to_hex()),
        "errors": strata_engine::report::messages(&stats.errors),
    });
    if stats.errors.is_empty() {
        Ok(v)
    } else {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            format!("{} entries could not be restored: {v}", stats.errors.len()),
        ))
    }
}

/// A restore of a database snapshot, as `POST /restores` and the wizard ask for it.
#[derive(Debug, Clone)]
pub struct DatabaseRestore {
    /// A snapshot id or a unique prefix of one.
    pub snapshot: String,
    pub repository: String,
    pub target: DbWhere,
    /// Replace what the target database holds (after a safety snapshot of it).
    pub force: bool,
}

/// Where a database restore goes.
#[derive(Debug, Clone)]
pub enum DbWhere {
    /// `postgres://…`, `mysql://…` (an admin's: reached with this host's credentials), or
    /// a SQLite file (under a restore root).
    Url(String),
    /// A database of this name on the server of the snapshot's source.
    Name(String),
}

/// A server URL names any server, reached with whatever credentials this host has
/// (PGPASSWORD, ~/.pgpass, peer): an admin's to give. (A SQLite file is checked against
/// the restore roots.)
fn require_for_target(p: &Principal, target: &DbWhere) -> Result<(), ApiError> {
    match target {
        DbWhere::Url(url) if url.contains("://") => {
            p.require(Role::Admin, "restoring into a database server named by URL")
        }
        _ => Ok(()),
    }
}

/// The checks of a database restore that need no snapshot: who may (a new database an
/// operator's; a server named by URL, or replacing a database (`force`), an admin's), and
/// a URL's or a file's target (a file under a restore root). Returns the target database
/// when the request names it (not for a name, which needs the snapshot's server).
fn check_database(
    state: &AppState,
    p: &Principal,
    r: &DatabaseRestore,
) -> Result<Option<Database>, ApiError> {
    p.require(Role::Operator, "restoring")?;
    require_for_target(p, &r.target)?;
    if r.force {
        p.require(Role::Admin, "replacing a database (force)")?;
    }
    let url = match &r.target {
        DbWhere::Url(url) => url,
        DbWhere::Name(_) => return Ok(None),
    };
    let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Database::postgres(url)
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        Database::mysql(url)
    } else {
        // A file on this host: under a restore root like any directory.
        let file =
            restore::target_under_roots(Path::new(url), &state.config().server.restore_roots)?;
        Database::sqlite(&file)
    }
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(Some(db))
}

/// Everything [`start_database`] checks before it restores, without starting anything (the
/// wizard's preview): who may, where to, and a new database's name against the server the
/// snapshot was taken from. Returns the target as the restore will name it.
pub async fn plan_database(
    state: &AppState,
    p: &Principal,
    r: &DatabaseRestore,
) -> Result<String, ApiError> {
    let st = state.clone();
    let who = p.clone();
    let r = r.clone();
    blocking(move || {
        if let Some(db) = check_database(&st, &who, &r)? {
            return Ok(db.display());
        }
        let DbWhere::Name(name) = &r.target else {
            return Err(ApiError::internal("a URL target always gives its database"));
        };
        let o = st.open(&r.repository, Operation::Snapshots)?;
        let (_, snap) = snapshots::find(&o.repo, &r.snapshot)?;
        let db =
            strata_app::run::database_named(st.config(), &snap, name).map_err(ApiError::invalid)?;
        Ok(db.display())
    })
    .await
}

/// Starts the database restore `r` as a job, after the checks of [`plan_database`]: into
/// a new database an operator's; into a server named by URL, or replacing a database
/// (`force`), an admin's.
pub fn start_database(
    state: &AppState,
    p: &Principal,
    r: DatabaseRestore,
) -> Result<Job, ApiError> {
    let db = check_database(state, p, &r)?;
    let DatabaseRestore {
        snapshot,
        repository,
        target,
        force,
    } = r;
    Ok(match (target, db) {
        (_, Some(db)) => start_db_job(state, p, repository, snapshot, force, move |_, _| Ok(db)),
        (DbWhere::Name(name), None) => {
            start_db_job(state, p, repository, snapshot, force, move |st, snap| {
                strata_app::run::database_named(st.config(), snap, &name).map_err(ApiError::invalid)
            })
        }
        (DbWhere::Url(_), None) => {
            return Err(ApiError::internal("a URL target always gives its database"))
        }
    })
}

/// The job of a database restore into what `target` gives for the snapshot.
fn start_db_job<F>(
    state: &AppState,
    p: &Principal,
    repository: String,
    spec: String,
    force: bool,
    target: F,
) -> Job
where
    F: FnOnce(&AppState, &strata_format::snapshot::SnapshotFile) -> Result<Database, ApiError>
        + Send
        + 'static,
{
    let worker = state.clone();
    let who = p.clone();
    let shown = std::sync::Mutex::new(String::from("a database"));
    state.jobs().start("restore", None, p, move |h| {
        let outcome = (|| {
            h.phase("opening the repository");
            let o = worker.open(&repository, Operation::RestoreDatabase)?;
            let (id, snap) = snapshots::find(&o.repo, &spec)?;
            let db = target(&worker, &snap)?;
            *shown.lock().unwrap_or_else(|e| e.into_inner()) = db.display();
            h.phase("restoring");
            let (report, recorded) = restore::database(&o.repo, &id, &snap, &db, force, h);
            record(&worker, &who, &repository, snap.project.clone(), recorded);
            let report = report.map_err(|e| ApiError::invalid(e.to_string()))?;
            Ok(json!({
                "snapshot": id.to_hex(),
                "repository": repository,
                "target": report.target,
                "bytes": report.bytes,
                "safety_snapshot": report.pre_restore_snapshot.map(|s| s.to_hex()),
            }))
        })();
        let access = Access {
            action: "restore",
            target: format!(
                "snapshot {spec} to {}",
                shown.lock().unwrap_or_else(|e| e.into_inner())
            ),
            project: None,
            repository: Some(repository.clone()),
        };
        audit_outcome(&worker, &who, access, &outcome);
        outcome
    })
}

/// The body of `POST /restore-tests`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreTestRequest {
    snapshot: String,
    repository: Option<String>,
    /// A scratch server (URL) to restore into, instead of the project's `scratch`.
    scratch: Option<String>,
}

/// `POST /restore-tests`: a job that restores a database snapshot into a scratch
/// database, checks it and drops it, as the runner's maintenance does.
async fn restore_test_route(
    State(state): State<AppState>,
    p: Principal,
    req: Result<Json<RestoreTestRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    p.require(Role::Operator, "running a restore test")?;
    let req = body(req)?;
    // A scratch URL names any server, reached with this host's credentials: an admin's
    // to give; an operator tests on the project's configured scratch or its own server.
    if req.scratch.is_some() {
        p.require(
            Role::Admin,
            "a restore test on a scratch server named by URL",
        )?;
    }
    let repository = repository_name(&state, req.repository.clone())?;
    let worker = state.clone();
    let who = p.clone();
    let spec = req.snapshot.clone();
    let job = state.jobs().start("restore-test", None, &p, move |h| {
        let outcome = (|| {
            h.phase("opening the repository");
            let o = worker.open(&repository, Operation::Verify)?;
            let (id, snap) = snapshots::find(&o.repo, &spec)?;
            h.phase("restore test");
            let (report, recorded) = strata_app::run::restore_test_of(
                worker.config(),
                &o.repo,
                &id,
                &snap,
                req.scratch.as_deref(),
                h,
            );
            record(&worker, &who, &repository, snap.project.clone(), recorded);
            let report = report.map_err(ApiError::invalid)?;
            let v = serde_json::to_value(&report).unwrap_or_default();
            if report.passed {
                Ok(v)
            } else {
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed",
                    format!("restore test of {} failed: {v}", id.short()),
                ))
            }
        })();
        let access = Access {
            action: "restore-test",
            target: format!("snapshot {spec}"),
            project: None,
            repository: Some(repository.clone()),
        };
        audit_outcome(&worker, &who, access, &outcome);
        outcome
    });
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}
