//! Jobs: work that outlives its request (a backup run now, a restore, a restore test),
//! started by a POST that returns `{"job": ID}` and followed by `GET /jobs/{id}` and
//! `GET /jobs/{id}/events` (server-sent events: phase, progress, result).
//!
//! CONTRACT (step 0): [`Jobs`] is in the state; the registry and its routes are to be
//! built.

use axum::Router;

use crate::state::AppState;

/// The jobs of the running server (in memory; each also ends in the audit catalog).
#[derive(Debug, Default)]
pub struct Jobs {}

pub fn routes() -> Router<AppState> {
    Router::new()
}
