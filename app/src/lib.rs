//! Strata's application layer: what the command line, the runner (`strata run`) and the
//! server share, so that none of them holds logic another would need.
//!
//! - [`repo`]: a repository as the user names it ([`RepoSpec`]: location, password source,
//!   remote options) turned into the decorated storage stack and into a repository opened
//!   and locked for an [`strata_engine::Operation`] — the operation alone decides the lock,
//!   the index and the cache.
//! - [`secret`]: passwords named, not inlined ([`SecretRef`]: file, command, environment),
//!   read with a timeout and never shown.
//! - [`config`]: `strata.toml` read and checked into [`config::Config`].
//! - [`run`]: `strata run` — projects backed up, copied, thinned, maintained.
//! - [`catalog`]: the audit catalog (SQLite, hash-chained records) and its queries.
//! - [`health`]: per project and repository, ok / warning / critical and why.
//! - [`notify`]: email, Slack, webhooks and pings.
//! - [`ops`]: what those share (events, statuses, records, the clock).
//!
//! Front ends parse their input into these types, call one function, and render.

pub mod catalog;
pub mod config;
mod error;
pub mod export;
pub mod health;
pub mod notify;
pub mod ops;
pub mod pitr;
pub mod repo;
pub mod restore;
pub mod run;
pub mod secret;

pub use error::{AppError, Result};
pub use repo::{CachePlace, OpenOptions, Opened, RepoSpec};
pub use secret::{check_password, EmptyPassword, Secret, SecretRef};
