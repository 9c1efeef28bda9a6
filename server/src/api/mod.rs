//! The REST API under `/api/v1` (documented in `docs/api.md`), one module per area:
//! - `read`: projects, snapshots, one directory level of a snapshot, health, log, stats,
//!   metrics;
//! - `download`: a file (with `Range`), a directory as `.tar.gz`, a database's `.sql`;
//! - `jobs`: backups run now, restore tests, restores: started as jobs, followed by
//!   `GET /jobs/{id}` and its server-sent events;
//! - `actions`: forget and hold;
//! - `session`: log in and out (browser sessions).

pub mod actions;
pub mod download;
pub mod jobs;
pub mod read;
pub mod restores;
pub mod runs;

use axum::routing::get;
use axum::{Json, Router};

use crate::auth::Principal;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .merge(jobs::routes())
        .merge(crate::auth::login::routes())
        .merge(read::routes())
        .merge(download::routes())
        .merge(runs::routes())
        .merge(restores::routes())
        .merge(actions::routes())
}

/// `GET /api/v1/whoami`: the caller's name and role.
async fn whoami(p: Principal) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "name": p.name, "role": p.role }))
}
