//! What every handler shares: the config, the engine's runtime (on the server's own tokio
//! runtime), the tokens, the sessions, the jobs, the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_app::config::Config;
use strata_app::ops::Clock;
use strata_app::repo::{OpenOptions, Opened};
use strata_engine::snapshots::{SnapshotCache, SnapshotList};
use strata_engine::{EngineRuntime, Operation};

use crate::api::jobs::Jobs;
use crate::auth::session::Sessions;
use crate::auth::tokens::TokenStore;
use crate::error::ApiError;

/// The server's shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    runtime: EngineRuntime,
    tokens: TokenStore,
    sessions: Sessions,
    jobs: Jobs,
    clock: Clock,
    /// Decoded snapshots per repository name, kept between requests.
    snapshots: BTreeMap<String, SnapshotCache>,
}

impl AppState {
    pub fn new(config: Config, runtime: EngineRuntime, tokens: TokenStore, clock: Clock) -> Self {
        let snapshots = config
            .repositories
            .keys()
            .map(|name| (name.clone(), SnapshotCache::default()))
            .collect();
        AppState(Arc::new(Inner {
            snapshots,
            config,
            runtime,
            tokens,
            sessions: Sessions::default(),
            jobs: Jobs::default(),
            clock,
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn runtime(&self) -> &EngineRuntime {
        &self.0.runtime
    }

    pub fn tokens(&self) -> &TokenStore {
        &self.0.tokens
    }

    pub fn sessions(&self) -> &Sessions {
        &self.0.sessions
    }

    pub fn jobs(&self) -> &Jobs {
        &self.0.jobs
    }

    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }

    pub fn now_ns(&self) -> i64 {
        self.0.clock.now_ns()
    }

    /// Opens the repository named `name` in the config for `op`, on the server's runtime.
    /// Call it on a blocking thread ([`crate::blocking::blocking`]). An unknown name is 404.
    pub fn open(&self, name: &str, op: Operation) -> Result<Opened, ApiError> {
        let spec = self
            .0
            .config
            .repositories
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no repository named {name}")))?;
        let password = strata_app::repo::password(spec)?;
        let opts = OpenOptions {
            wait: std::time::Duration::from_secs(5),
            no_lock: false,
            runtime: Some(self.0.runtime.clone()),
        };
        Ok(strata_app::repo::open(
            spec,
            password.as_bytes(),
            op,
            &opts,
        )?)
    }

    /// The readable snapshots of repository `name`, oldest first: one listing of its
    /// `snapshots/`, and a read of only the files not seen before (see
    /// [`SnapshotCache`]). Call it on a blocking thread. An unknown name is 404.
    pub fn snapshots(&self, name: &str) -> Result<SnapshotList, ApiError> {
        let opened = self.open(name, Operation::Snapshots)?;
        let cache = self
            .0
            .snapshots
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no repository named {name}")))?;
        Ok(cache.list_readable(&opened.repo)?)
    }
}
