//! A repository as the user names it ([`RepoSpec`]: where, with which password, how to
//! reach it) turned into storage and into an opened, locked repository for an
//! [`Operation`].
//!
//! The storage stack, from the bottom: opendal (local, SFTP, S3), the bandwidth limits
//! (`--limit-upload`, `--limit-download`), the fault-injection hook
//! of the crash tests (`STRATA_TEST_FAULT`), retries of transient failures, optionally a
//! read-back of every upload, and, for remote repositories and operations that allow it,
//! the local cache of index files and snapshots.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::lock::{self, LockGuard};
use strata_engine::{EngineRuntime, LockMode, Operation, Repository};
use strata_storage::{Backend, RemoteOptions};

use crate::secret::{check_password, EmptyPassword, SecretRef};
use crate::{AppError, Result};

/// A repository as the user names it.
#[derive(Debug, Clone)]
pub struct RepoSpec {
    /// A directory path, `file:///path`, `sftp://user@host[:port]/path` or
    /// `s3://bucket/prefix`.
    pub location: String,
    /// Where its password comes from (`None`: the caller supplies it, e.g. from a prompt).
    pub password: Option<SecretRef>,
    /// How remote repositories are reached (endpoint, region, SSH key).
    pub remote: RemoteOptions,
    /// Packs uploaded at once (default: 1 local, 2 remote).
    pub connections: Option<u16>,
    /// Read every upload back and check its hash.
    pub verify_uploads: bool,
    /// Where its local cache is (remote repositories only).
    pub cache: CachePlace,
    /// Most KiB a second written to the store, over all connections (`--limit-upload`).
    pub limit_upload_kib: Option<u64>,
    /// Most KiB a second read from the store, over all connections (`--limit-download`).
    pub limit_download_kib: Option<u64>,
}

/// Where the local cache of remote repositories is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CachePlace {
    /// As the environment says ([`cache_root`]).
    #[default]
    Default,
    /// In this directory (`--cache-dir`).
    Dir(PathBuf),
    /// Nowhere: every read goes to the repository (`--no-cache`).
    Off,
}

impl CachePlace {
    /// The cache root this place means (None: no cache).
    pub fn root(&self) -> Option<PathBuf> {
        match self {
            CachePlace::Default => cache_root(),
            CachePlace::Dir(d) => Some(d.clone()),
            CachePlace::Off => None,
        }
    }
}

impl RepoSpec {
    pub fn new(location: impl Into<String>) -> Self {
        RepoSpec {
            location: location.into(),
            password: None,
            remote: RemoteOptions::default(),
            connections: None,
            verify_uploads: false,
            cache: CachePlace::Default,
            limit_upload_kib: None,
            limit_download_kib: None,
        }
    }
}

/// Where index files and snapshots of remote repositories are cached: `STRATA_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`; none when `STRATA_NO_CACHE` is
/// set (not `0`) or no home is known.
pub fn cache_root() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    if var("STRATA_NO_CACHE").is_some_and(|v| v != "0") {
        return None;
    }
    if let Some(d) = var("STRATA_CACHE_DIR") {
        return Some(d.into());
    }
    var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("strata"))
}

/// The storage stack for `spec` (see the module docs); `cache`: whether reads may go
/// through the local cache (remote repositories only).
pub fn backend(spec: &RepoSpec, cache: bool) -> Result<Arc<dyn Backend>> {
    // As many requests at once as packs are uploaded (the engine's default: two for a
    // remote repository).
    let connections = spec.connections.map_or(2, usize::from);
    let backend = strata_storage::open(&spec.location, &spec.remote, connections)?;
    let remote = backend.is_remote();
    // Bandwidth limits count what reaches the store: retries too, cache hits not.
    let bucket =
        |kib: Option<u64>| kib.map(|k| Arc::new(strata_storage::TokenBucket::kib_per_sec(k)));
    let (upload, download) = (
        bucket(spec.limit_upload_kib),
        bucket(spec.limit_download_kib),
    );
    let backend: Arc<dyn Backend> = if upload.is_some() || download.is_some() {
        Arc::new(strata_storage::ThrottledBackend::new(
            backend, upload, download,
        ))
    } else {
        backend
    };
    // Test hook for crash and fault tests: STRATA_TEST_FAULT / STRATA_TEST_FAULT_LOG.
    let backend: Arc<dyn Backend> = match strata_storage::FaultPlan::from_env()
        .map_err(|e| AppError::Invalid(format!("STRATA_TEST_FAULT: {e}")))?
    {
        Some(plan) => Arc::new(strata_storage::FaultBackend::new(backend, plan)),
        None => backend,
    };
    // Transient failures (of the network, or injected above) are retried.
    let mut backend: Arc<dyn Backend> = Arc::new(strata_storage::RetryBackend::new(backend));
    if spec.verify_uploads {
        backend = Arc::new(strata_storage::VerifyingBackend::new(backend));
    }
    match spec.cache.root() {
        Some(root) if remote && cache => Ok(Arc::new(strata_storage::CachingBackend::new(
            backend, &root,
        ))),
        _ => Ok(backend),
    }
}

/// How to open a repository for an operation.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Keep retrying for this long while the repository is locked.
    pub wait: Duration,
    /// Take no lock (only for operations that only read).
    pub no_lock: bool,
    /// Run on this runtime (a server's); else the engine starts its own.
    pub runtime: Option<EngineRuntime>,
}

/// A repository opened for an operation: its lock (none for operations that take none,
/// or that read without one) is held as long as this lives.
pub struct Opened {
    pub repo: Repository,
    pub lock: Option<LockGuard>,
}

/// Opens the repository for `op` with `password`: the storage `op` may use, the lock it
/// needs, and only then the index it needs, so that no prune changes the repository under
/// an index already loaded.
pub fn open(spec: &RepoSpec, password: &[u8], op: Operation, opts: &OpenOptions) -> Result<Opened> {
    if opts.no_lock && !matches!(op.lock(), LockMode::Read | LockMode::None) {
        return Err(AppError::Invalid(format!(
            "--no-lock is only for commands that only read the repository; `{op}` writes to it"
        )));
    }
    let backend = backend(spec, op.uses_cache())?;
    let rt = match &opts.runtime {
        Some(rt) => rt.clone(),
        None => EngineRuntime::new()?,
    };
    let mut repo = Repository::open_without_index_on(rt, backend, password)?;
    if let Some(n) = spec.connections {
        repo.set_connections(n.into());
    }
    let lock = if opts.no_lock {
        None
    } else {
        lock::lock_for(&repo, op, opts.wait)?
    };
    repo.load_index_for(op)?;
    Ok(Opened { repo, lock })
}

/// Reads `spec`'s password from its [`SecretRef`]; an empty one is refused.
pub fn password(spec: &RepoSpec) -> Result<crate::Secret> {
    match &spec.password {
        Some(s) => {
            let (what, source) = match s {
                SecretRef::File(_) => ("password file", "password file".to_string()),
                SecretRef::Command(_) => ("password command", "password command".to_string()),
                SecretRef::Env(var) => ("password", format!("{var} variable")),
                SecretRef::Inline(_) => ("password", "config file".to_string()),
            };
            let secret = s.read(what)?;
            check_password(
                secret.as_bytes(),
                &source,
                EmptyPassword::Refuse,
                "--insecure-no-password",
            )?;
            Ok(secret)
        }
        None => Err(AppError::Secret(
            "no password given: set STRATA_PASSWORD_FILE, STRATA_PASSWORD_COMMAND or \
             STRATA_PASSWORD"
                .into(),
        )),
    }
}
