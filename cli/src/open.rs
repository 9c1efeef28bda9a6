//! The repository named on the command line, opened through `strata-app` for an
//! operation: this module only turns flags and environment into a [`RepoSpec`] and a
//! password (a prompt is the command line's own), and application errors into ones the
//! exit codes understand.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use strata_app::repo::{self, OpenOptions, Opened, RepoSpec};
use strata_app::{AppError, SecretRef};
use strata_engine::lock::LockGuard;
use strata_engine::{Operation, Repository};
use strata_storage::{Backend, RemoteOptions};

use crate::Cli;

// The password functions live in their own module; commands reach them here.
pub use crate::password::{password, password_from};

/// The application error as the exit codes read it: engine failures stay engine errors;
/// a request that cannot be done is a usage error (exit 2).
pub fn app_error(e: AppError) -> anyhow::Error {
    match e {
        AppError::Engine(e) => e.into(),
        AppError::Invalid(msg) => crate::usage_error(msg),
        other => other.into(),
    }
}

/// The `-r/--repo` location.
fn location(cli: &Cli) -> Result<&str> {
    match cli.repo.as_deref() {
        Some(l) => Ok(l),
        None => bail!("no repository given: use -r/--repo or set STRATA_REPOSITORY"),
    }
}

/// A repository at `location` with the global options; its password from `file` or
/// `command` (when neither is given, a prompt, read by [`password_from`]).
pub fn spec_at(cli: &Cli, location: &str, file: Option<&Path>, command: Option<&str>) -> RepoSpec {
    RepoSpec {
        location: location.to_string(),
        password: match (file, command) {
            (Some(f), _) => Some(SecretRef::File(f.to_path_buf())),
            (None, Some(c)) => Some(SecretRef::Command(c.to_string())),
            (None, None) => None,
        },
        remote: RemoteOptions {
            s3_endpoint: cli.s3_endpoint.clone(),
            s3_region: cli.s3_region.clone(),
            ssh_key: cli.ssh_key.clone(),
        },
        connections: cli.connections,
        verify_uploads: cli.verify_uploads,
    }
}

/// The storage of `-r/--repo` (`cache`: reads may use the local cache).
pub fn backend(cli: &Cli, cache: bool) -> Result<Arc<dyn Backend>> {
    let spec = spec_at(cli, location(cli)?, None, None);
    repo::backend(&spec, cache).map_err(app_error)
}

/// Opens `-r/--repo` for `op`, with the global password options.
pub fn open(cli: &Cli, op: Operation) -> Result<(Repository, Option<LockGuard>)> {
    let spec = spec_at(
        cli,
        location(cli)?,
        cli.password_file.as_deref(),
        cli.password_command.as_deref(),
    );
    open_spec(cli, &spec, op)
}

/// Opens a repository for `op` (its password from the spec, or a prompt).
pub fn open_spec(
    cli: &Cli,
    spec: &RepoSpec,
    op: Operation,
) -> Result<(Repository, Option<LockGuard>)> {
    let (file, command) = match &spec.password {
        Some(SecretRef::File(f)) => (Some(f.as_path()), None),
        Some(SecretRef::Command(c)) => (None, Some(c.as_str())),
        _ => (None, None),
    };
    let pw = password_from(file, command, false)?;
    let opts = OpenOptions {
        wait: cli.retry_lock.map(Into::into).unwrap_or_default(),
        no_lock: cli.no_lock,
        runtime: None,
    };
    let Opened { repo, lock } = repo::open(spec, &pw, op, &opts).map_err(app_error)?;
    Ok((repo, lock))
}
