//! The engine driven from a caller's async runtime (as a server drives it), and
//! operations stopped by their caller.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::checker::{check_with, CheckOptions};
use strata_engine::progress::{CancelToken, Cancellable, NoProgress, Phase, Progress};
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::{lock, snapshots, EngineRuntime, ErrorKind, Repository};
use strata_storage::{Backend, FileType, OpendalBackend};

fn tree(dir: &Path, files: u64) {
    for i in 0..files {
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let bytes: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i:03}.bin")), bytes).unwrap();
    }
}

/// Storage whose requests record the thread they run on: tasks the engine spawns run on
/// the runtime's workers, which tell whose runtime it is by their names.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn Backend>,
    threads: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn note(&self) {
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().unwrap().push(name);
    }
}

#[async_trait::async_trait]
impl Backend for Recording {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read(&self, ft: FileType, name: &str) -> strata_storage::Result<bytes::Bytes> {
        self.note();
        self.inner.read(ft, name).await
    }
    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> strata_storage::Result<bytes::Bytes> {
        self.note();
        self.inner.read_range(ft, name, offset, len).await
    }
    async fn write(
        &self,
        ft: FileType,
        name: &str,
        data: bytes::Bytes,
    ) -> strata_storage::Result<()> {
        self.note();
        self.inner.write(ft, name, data).await
    }
    async fn delete(&self, ft: FileType, name: &str) -> strata_storage::Result<()> {
        self.inner.delete(ft, name).await
    }
    async fn list(&self, ft: FileType) -> strata_storage::Result<Vec<(String, u64)>> {
        self.note();
        self.inner.list(ft).await
    }
    async fn stat(&self, ft: FileType, name: &str) -> strata_storage::Result<Option<u64>> {
        self.inner.stat(ft, name).await
    }
    async fn create_layout(&self) -> strata_storage::Result<()> {
        self.inner.create_layout().await
    }
    async fn remove_leftovers(&self, min_age: std::time::Duration) -> strata_storage::Result<u64> {
        self.inner.remove_leftovers(min_age).await
    }
}

/// Records the phases it sees.
#[derive(Default)]
struct Phases(Mutex<Vec<Phase>>);

impl Progress for Phases {
    fn phase(&self, phase: Phase) {
        self.0.lock().unwrap().push(phase);
    }
}

/// A server's way: its own multi-thread runtime, the engine called on a blocking thread
/// with a handle to it. Nothing may start a runtime of its own or block inside one.
#[test]
fn backup_restore_and_check_run_on_the_callers_runtime() {
    let caller = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("caller-rt")
        .enable_all()
        .build()
        .unwrap();
    caller.block_on(drive_from_async_code());
}

async fn drive_from_async_code() {
    let rt = EngineRuntime::from_handle(tokio::runtime::Handle::current());
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 8);
    let src_path = src.path().to_path_buf();
    let threads = Arc::new(Mutex::new(Vec::new()));
    let recorded = threads.clone();
    let phases = tokio::task::spawn_blocking(move || {
        let backend: Arc<dyn Backend> = Arc::new(Recording {
            inner: Arc::new(OpendalBackend::memory().unwrap()),
            threads: recorded,
        });
        Repository::init_on(&rt, backend.clone(), b"pw", &common::options(1 << 20)).unwrap();
        let mut repo = Repository::open_without_index_on(rt.clone(), backend, b"pw").unwrap();
        let _lock = lock::lock(&repo, "backup", false).unwrap();
        repo.load_index(false).unwrap();
        let phases = Phases::default();
        let opts = BackupOptions::default();
        backup_paths(&repo, std::slice::from_ref(&src_path), &opts, &phases).unwrap();
        repo.load_index(false).unwrap();
        let (_, snap) = snapshots::find(&repo, "latest").unwrap();
        let target = tempfile::tempdir().unwrap();
        restore(
            &repo,
            &snap,
            target.path(),
            &RestoreOptions::default(),
            &phases,
        )
        .unwrap();
        let back = target.path().join(src_path.strip_prefix("/").unwrap());
        for i in 0..8 {
            let name = format!("f{i:03}.bin");
            assert_eq!(
                std::fs::read(back.join(&name)).unwrap(),
                std::fs::read(src_path.join(&name)).unwrap()
            );
        }
        let opts = CheckOptions {
            read_data: true,
            ..Default::default()
        };
        assert!(check_with(&repo, &opts, &phases).unwrap().is_ok());
        phases.0.into_inner().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        phases,
        [
            Phase::Preparing,
            Phase::BackingUp,
            Phase::Uploading,
            Phase::Restoring,
            Phase::Checking
        ]
    );
    // Storage ran on this test's runtime (its workers, and the blocking thread), never on
    // one the engine started.
    let threads = threads.lock().unwrap();
    assert!(threads.iter().any(|t| t == "caller-rt"), "{threads:?}");
    assert!(
        !threads.iter().any(|t| t.starts_with("strata-io")),
        "{threads:?}"
    );
}

/// Cancels after `after` bytes.
struct StopAfter {
    after: u64,
    seen: AtomicU64,
    token: CancelToken,
}

impl Progress for StopAfter {
    fn add_bytes(&self, n: u64) {
        if self.seen.fetch_add(n, Ordering::SeqCst) + n >= self.after {
            self.token.cancel();
        }
    }
}

/// A backup stopped half way fails with "cancelled", writes no snapshot, and leaves a
/// repository that checks clean (what it uploaded is unreferenced, for prune); the next
/// backup completes, and a restore stopped half way leaves no partial file.
#[test]
fn a_cancelled_backup_or_restore_leaves_the_repository_as_a_kill_would() {
    let backend = common::init_memory(1 << 20);
    let src = tempfile::tempdir().unwrap();
    tree(src.path(), 40);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let stop = StopAfter {
        after: 3 << 20,
        seen: AtomicU64::new(0),
        token: CancelToken::new(),
    };
    let progress = Cancellable {
        inner: &stop,
        token: stop.token.clone(),
    };
    let opts = BackupOptions::default();
    let paths = [src.path().to_path_buf()];
    let err = backup_paths(&repo, &paths, &opts, &progress)
        .map(|r| r.snapshot_id)
        .expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    // It stopped soon after 3 MiB of the 8 MB (a few files were under way).
    let seen = stop.seen.load(Ordering::SeqCst);
    assert!(seen < 6_000_000, "it read {seen} bytes before it stopped");
    assert!(snapshots::list(&repo).unwrap().is_empty());
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    common::assert_checks_clean(&repo);

    let done = backup_paths(&repo, &paths, &opts, &NoProgress).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let (_, snap) = snapshots::find(&repo, "latest").unwrap();
    assert_eq!(snapshots::list(&repo).unwrap()[0].0, done.snapshot_id);
    let target = tempfile::tempdir().unwrap();
    let stop = StopAfter {
        after: 2 << 20,
        seen: AtomicU64::new(0),
        token: CancelToken::new(),
    };
    let progress = Cancellable {
        inner: &stop,
        token: stop.token.clone(),
    };
    let err = restore(
        &repo,
        &snap,
        target.path(),
        &RestoreOptions::default(),
        &progress,
    )
    .map(|s| s.files)
    .expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    // Every file left behind is whole.
    let back = target.path().join(src.path().strip_prefix("/").unwrap());
    let mut whole = 0;
    for entry in std::fs::read_dir(&back).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            std::fs::read(entry.path()).unwrap(),
            std::fs::read(src.path().join(entry.file_name())).unwrap(),
            "{:?} is partial",
            entry.file_name()
        );
        whole += 1;
    }
    assert!(whole < 40, "the restore stopped early ({whole} files)");
    let _ = FileType::Pack;
}
