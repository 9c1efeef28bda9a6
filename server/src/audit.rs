//! Every request that changes or downloads something is recorded in the audit catalog:
//! who (the user or token's name), from where (the client's address), what and on what.

use std::net::SocketAddr;

use strata_app::ops::{Record, RecordBody};

use crate::auth::Principal;
use crate::state::AppState;

/// What a request did, for the catalog.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    /// `download`, `restore`, `run`, `restore-test`, `forget`, `hold`, `login`, `logout`,
    /// `login-failed`, `token`, …
    pub action: &'a str,
    /// What it acted on: a snapshot and path, a project, a target.
    pub target: String,
    pub project: Option<String>,
    pub repository: Option<String>,
}

impl AppState {
    /// Records `access` by `who` from `from`; a record that cannot be written is logged and
    /// never fails the request (the catalog's own health check reports it).
    pub fn audit(
        &self,
        who: Option<&Principal>,
        from: SocketAddr,
        access: Access<'_>,
        outcome: Result<(), &str>,
    ) {
        let record = Record {
            time_ns: self.now_ns(),
            project: access.project,
            repository: access.repository,
            run_id: None,
            ok: outcome.is_ok(),
            error: outcome.err().map(str::to_string),
            user: who.map(|p| p.name.clone()),
            body: RecordBody::Access {
                action: access.action.to_string(),
                target: access.target,
                address: from.ip().to_string(),
                role: who.map(|p| p.role.name().to_string()),
            },
        };
        let dir = &self.config().state_dir;
        let write = || strata_app::catalog::record_best_effort(dir, &record);
        // A SQLite write: from an async handler, the worker steps aside while it runs.
        let written = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(write)
            }
            _ => write(),
        };
        if !written {
            tracing::error!(
                "the audit record of a {} could not be written",
                access.action
            );
        }
    }
}
