//! `POST /projects/{p}/run`: one project run now, as `strata run p` runs it (the runner of
//! `strata-app`, recorded in the catalog as every run is, notified as configured), as a
//! job whose phases are the runner's steps.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use strata_app::catalog::Catalog;
use strata_app::notify::Dispatcher;
use strata_app::ops::{History, Nothing, Recorder, RunId};
use strata_app::run::lock::{self, LockError};
use strata_app::run::{self, ProjectStatus, RunEnv, Selection};

use crate::api::jobs::Job;
use crate::audit::Access;
use crate::auth::{Principal, Role};
use crate::blocking::blocking;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/projects/{project}/run", post(run_now))
}

/// Starts the run: 202 `{"job": {...}}`; 404 for a project the config does not define,
/// 409 `locked` when the project's run lock is held now (a run that takes it first makes
/// the job fail with `locked`).
async fn run_now(
    State(state): State<AppState>,
    p: Principal,
    Path(project): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // The run lock is a file: tried on a blocking thread.
    let job = blocking(move || start_run(&state, &p, &project)).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "job": job }))))
}

/// Starts a run of `project` for `p` (an operator at least) as a job, recorded in the
/// audit catalog; the API's `POST /projects/{p}/run` and the dashboard's "Back up now".
pub fn start_run(state: &AppState, p: &Principal, project: &str) -> Result<Job, ApiError> {
    p.require(Role::Operator, "running a backup")?;
    if !state.config().projects.contains_key(project) {
        return Err(ApiError::not_found(format!("no project named {project}")));
    }
    let access = || Access {
        action: "run",
        target: format!("project {project}"),
        project: Some(project.to_string()),
        repository: None,
    };
    // Tell a held lock at once (the runner takes it again; a race ends in a failed job).
    let now = state.now_ns();
    match lock::acquire(&state.config().state_dir, project, now, &RunId::new(now)) {
        Ok(held) => drop(held),
        Err(LockError::Held(message)) => {
            state.audit(Some(p), p.address, access(), Err(&message));
            return Err(ApiError::locked(message));
        }
        // The runner reports it (and fails the job).
        Err(LockError::Io(_)) => {}
    }
    state.audit(Some(p), p.address, access(), Ok(()));
    let worker = state.clone();
    let name = project.to_string();
    Ok(state
        .jobs()
        .start("run", Some(project.to_string()), p, move |handle| {
            run_project(&worker, &name, handle)
        }))
}

/// Runs `project` (on a blocking thread); the result is its project report as
/// `strata run --json` prints it.
fn run_project(
    state: &AppState,
    project: &str,
    observer: &dyn run::RunObserver,
) -> Result<Value, ApiError> {
    let cfg = state.config();
    let catalog = match Catalog::open(&cfg.state_dir) {
        Ok(c) => Some(Arc::new(c)),
        // Backups matter more than their record, as for `strata run`.
        Err(e) => {
            tracing::error!("the run of {project} is not recorded: {e}");
            None
        }
    };
    let recorder: Arc<dyn Recorder> = match &catalog {
        Some(c) => c.clone(),
        None => Arc::new(Nothing),
    };
    let history: &dyn History = match &catalog {
        Some(c) => c.as_ref(),
        None => &Nothing,
    };
    let notifier = Dispatcher::new(cfg, recorder.clone());
    let env = RunEnv {
        clock: *state.clock(),
        recorder: recorder.as_ref(),
        history,
        notifier: &notifier,
        observer,
        host: None,
        runtime: Some(state.runtime().clone()),
    };
    let sel = Selection {
        projects: vec![project.to_string()],
        trigger: "api".to_string(),
        ..Selection::default()
    };
    let report = run::run(cfg, &sel, &env);
    let Some(p) = report.projects.into_iter().next() else {
        return Err(ApiError::internal(format!("the run did not run {project}")));
    };
    let error = || p.error.clone().unwrap_or_default();
    match p.status {
        ProjectStatus::Ok | ProjectStatus::Partial | ProjectStatus::Skipped => {
            Ok(json!({ "run_id": report.run_id, "project": p }))
        }
        ProjectStatus::Locked => Err(ApiError::locked(error())),
        ProjectStatus::Failed => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed",
            error(),
        )),
    }
}
