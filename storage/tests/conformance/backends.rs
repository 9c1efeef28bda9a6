//! The backends under test, which of them run (`STRATA_TEST_BACKENDS`), and a fresh,
//! empty repository on each.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use strata_storage::{Backend, FileType, OpendalBackend, RemoteOptions};
use tempfile::TempDir;

use crate::servers;

/// The variable that selects backends: a comma-separated list of `memory`, `fs`, `sftp`
/// and `s3`. Unset or empty: all of them.
pub const BACKENDS_ENV: &str = "STRATA_TEST_BACKENDS";

/// A backend the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Fs,
    Sftp,
    S3,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Memory, Kind::Fs, Kind::Sftp, Kind::S3];

    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Fs => "fs",
            Kind::Sftp => "sftp",
            Kind::S3 => "s3",
        }
    }

    /// Whether `STRATA_TEST_BACKENDS` selects this backend. A name it does not know fails
    /// the test: a typo must not quietly run nothing.
    pub fn selected(self) -> bool {
        let value = std::env::var(BACKENDS_ENV).unwrap_or_default();
        if value.trim().is_empty() {
            return true;
        }
        let names: Vec<&str> = value.split(',').map(str::trim).collect();
        for name in &names {
            assert!(
                Kind::ALL.iter().any(|k| k.name() == *name),
                "{BACKENDS_ENV}={value:?}: unknown backend {name:?} (memory, fs, sftp, s3)"
            );
        }
        names.contains(&self.name())
    }
}

/// A backend with its layout created, and what holds it.
pub struct Fixture {
    backend: Arc<dyn Backend>,
    /// Where the repository's files lie on this machine (the local directory, or the
    /// directory the SFTP server serves), for checks of what a backend leaves on disk.
    pub local_dir: Option<PathBuf>,
    _dir: Option<TempDir>,
}

impl Fixture {
    /// A fresh, empty repository on `kind`, or `None` (with a note) when
    /// `STRATA_TEST_BACKENDS` leaves it out. The servers start at the first use.
    pub async fn new(kind: Kind) -> Option<Fixture> {
        if !kind.selected() {
            eprintln!("skipped: {BACKENDS_ENV} leaves out {}", kind.name());
            return None;
        }
        let (backend, dir, local_dir) = match kind {
            Kind::Memory => (
                Arc::new(OpendalBackend::memory().unwrap()) as Arc<dyn Backend>,
                None,
                None,
            ),
            Kind::Fs => {
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path().join("repo");
                (
                    Arc::new(OpendalBackend::fs(&root).unwrap()) as _,
                    Some(dir),
                    Some(root),
                )
            }
            Kind::Sftp => {
                let server = servers::sftp();
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path().join("repo");
                let url = format!(
                    "sftp://{}@127.0.0.1:{}{}",
                    server.user,
                    server.port,
                    root.display()
                );
                let opts = RemoteOptions {
                    ssh_key: Some(server.key.display().to_string()),
                    ..RemoteOptions::default()
                };
                let backend = strata_storage::open(&url, &opts, 2).unwrap();
                (backend, Some(dir), Some(root))
            }
            Kind::S3 => {
                let server = servers::s3();
                let url = format!("s3://{}/{}", servers::S3_BUCKET, unique_prefix());
                let opts = RemoteOptions {
                    s3_endpoint: Some(server.endpoint.clone()),
                    s3_region: Some("us-east-1".to_string()),
                    ..RemoteOptions::default()
                };
                static BUCKET: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
                BUCKET.get_or_init(|| wait_for_bucket(&opts)).await;
                let backend = strata_storage::open(&url, &opts, 2).unwrap();
                (backend, None, None)
            }
        };
        backend.create_layout().await.unwrap();
        Some(Fixture {
            backend,
            local_dir,
            _dir: dir,
        })
    }

    /// The backend, as callers see it.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }
}

/// Waits until the S3 server serves its bucket: `weed mini` accepts connections about a
/// second before it has created it, and a listing in between fails (NoSuchBucket).
async fn wait_for_bucket(opts: &RemoteOptions) {
    let url = format!("s3://{}/{}", servers::S3_BUCKET, unique_prefix());
    let probe = OpendalBackend::from_location_with(&url, opts).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while let Err(e) = probe.list(FileType::Key).await {
        assert!(std::time::Instant::now() < deadline, "no S3 bucket: {e}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An S3 prefix no other fixture of any test process uses.
fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "conformance-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
