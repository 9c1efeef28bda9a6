//! Opening the repository named on the command line with the password from the
//! environment.

use std::sync::Arc;

use anyhow::{bail, Result};
use strata_engine::lock::{self, LockGuard, LockTiming};
use strata_engine::{EngineError, Repository};
use strata_storage::{Backend, OpendalBackend};

use crate::Cli;

/// The storage backend for `-r/--repo`.
pub fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    let Some(location) = cli.repo.as_deref() else {
        bail!("no repository given: use -r/--repo or set STRATA_REPOSITORY");
    };
    backend_at(cli, location, true)
}

/// Where index files and snapshots of remote repositories are cached.
fn cache_root() -> Option<std::path::PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    if let Some(d) = var("STRATA_CACHE_DIR") {
        return Some(d.into());
    }
    var("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
        .map(|d| d.join("strata"))
}

/// The storage backend for a repository location.
/// With `cache`, index files and snapshots of a remote repository go through the local
/// cache; `check` and `repair` read the repository itself, so that they see its damage.
pub fn backend_at(cli: &Cli, location: &str, cache: bool) -> Result<Arc<dyn Backend>> {
    let remote_opts = strata_storage::RemoteOptions {
        s3_endpoint: cli.s3_endpoint.clone(),
        s3_region: cli.s3_region.clone(),
        ssh_key: cli.ssh_key.clone(),
    };
    let opendal = OpendalBackend::from_location_with(location, &remote_opts)?;
    let remote = opendal.is_remote();
    let backend: Arc<dyn Backend> = Arc::new(opendal);
    // Test hook for crash and fault tests: STRATA_TEST_FAULT / STRATA_TEST_FAULT_LOG.
    let backend: Arc<dyn Backend> =
        match strata_storage::FaultPlan::from_env().map_err(anyhow::Error::msg)? {
            Some(plan) => Arc::new(strata_storage::FaultBackend::new(backend, plan)),
            None => backend,
        };
    // Transient failures (of the network, or injected above) are retried.
    let mut backend: Arc<dyn Backend> = Arc::new(strata_storage::RetryBackend::new(backend));
    if cli.verify_uploads {
        backend = Arc::new(strata_storage::VerifyingBackend::new(backend));
    }
    // Remote index files and snapshots are kept locally (STRATA_NO_CACHE=1 turns it off).
    let no_cache = std::env::var_os("STRATA_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0");
    match cache_root() {
        Some(root) if remote && cache && !no_cache => Ok(Arc::new(
            strata_storage::CachingBackend::new(backend, &root),
        )),
        _ => Ok(backend),
    }
}

// The password functions live in their own module; commands reach them here.
pub use crate::password::{password, password_from};

/// Opens the repository without loading the index (listing snapshots, cat).
pub fn repository_without_index(cli: &Cli) -> Result<Repository> {
    repository_without_index_cached(cli, true)
}

/// Like [`repository_without_index`], choosing whether the metadata cache is used.
pub fn repository_without_index_cached(cli: &Cli, cache: bool) -> Result<Repository> {
    let Some(location) = cli.repo.as_deref() else {
        bail!("no repository given: use -r/--repo or set STRATA_REPOSITORY");
    };
    let backend = backend_at(cli, location, cache)?;
    let pw = password(cli, false)?;
    let mut repo = Repository::open_without_index(backend, &pw)?;
    tune(cli, &mut repo);
    Ok(repo)
}

/// Applies the global options that shape how a repository is used.
pub fn tune(cli: &Cli, repo: &mut Repository) {
    if let Some(n) = cli.connections {
        repo.set_connections(n.into());
    }
}

/// How much of the index a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    None,
    /// Trees and dictionaries only.
    Metadata,
    Full,
}

/// How a command uses the repository, which decides the lock it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: a shared lock; none with --no-lock, or (with a warning) when the
    /// repository cannot be written (a read-only medium, read-only credentials, a full
    /// disk), which is exactly when a restore is needed most.
    Read,
    /// Adds data beside other writers (backup, copy): a shared lock.
    Write,
    /// Deletes or rewrites (forget, prune, repair, keys): an exclusive lock.
    Exclusive,
}

/// Opens the repository, takes a lock for `operation` (waiting up to --retry-lock), and
/// only then loads the index, so that no prune changes the repository under it.
pub fn locked(
    cli: &Cli,
    operation: &str,
    access: Access,
    index: Index,
) -> Result<(Repository, Option<LockGuard>)> {
    // What checks and mends the repository must see it as it is, not as cached.
    let cache = !matches!(operation, "check" | "repair index" | "repair snapshots");
    let repo = repository_without_index_cached(cli, cache)?;
    lock_then_load(cli, repo, operation, access, index)
}

/// Takes a lock on an open repository (none for reading with --no-lock), then loads the
/// index it needs.
pub fn lock_then_load(
    cli: &Cli,
    mut repo: Repository,
    operation: &str,
    access: Access,
    index: Index,
) -> Result<(Repository, Option<LockGuard>)> {
    let guard = if cli.no_lock {
        if access != Access::Read {
            crate::usage_error(format!(
                "--no-lock is only for commands that only read the repository; `{operation}` \
                 writes to it"
            ));
        }
        None
    } else {
        let wait = cli.retry_lock.map(Into::into).unwrap_or_default();
        let exclusive = access == Access::Exclusive;
        match lock::lock_with(&repo, operation, exclusive, wait, LockTiming::default()) {
            Ok(g) => Some(g),
            Err(EngineError::Storage(e))
                if access == Access::Read && e.kind != strata_storage::ErrorKind::Transient =>
            {
                tracing::warn!(
                    "cannot lock the repository ({e}); reading it without a lock: a prune \
                     running at the same time is not excluded (--no-lock skips the attempt)"
                );
                None
            }
            Err(e) => return Err(e.into()),
        }
    };
    match index {
        Index::None => {}
        Index::Metadata => repo.load_index(true)?,
        Index::Full => repo.load_index(false)?,
    }
    Ok((repo, guard))
}
