//! Index and snapshot listings started while the lock is confirmed (one round trip each
//! saved over a network): never before the lock file is durable, once each, and never
//! older than this handle's own writes and deletes.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::{lock, snapshots, Operation, Repository};
use strata_format::id::SnapshotId;
use strata_storage::{Backend, FileType};

/// What a request did: "start list index", "end write lock", …
#[derive(Debug)]
struct Journal {
    inner: Arc<dyn Backend>,
    events: Arc<Mutex<Vec<String>>>,
}

impl Journal {
    fn note(&self, what: &str, ft: FileType) {
        self.events
            .lock()
            .unwrap()
            .push(format!("{what} {}", ft.dir()));
    }
}

#[async_trait::async_trait]
impl Backend for Journal {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read(&self, ft: FileType, name: &str) -> strata_storage::Result<bytes::Bytes> {
        self.inner.read(ft, name).await
    }
    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        len: u64,
    ) -> strata_storage::Result<bytes::Bytes> {
        self.inner.read_range(ft, name, offset, len).await
    }
    async fn write(
        &self,
        ft: FileType,
        name: &str,
        data: bytes::Bytes,
    ) -> strata_storage::Result<()> {
        self.note("start write", ft);
        let r = self.inner.write(ft, name, data).await;
        self.note("end write", ft);
        r
    }
    async fn delete(&self, ft: FileType, name: &str) -> strata_storage::Result<()> {
        self.inner.delete(ft, name).await
    }
    async fn list(&self, ft: FileType) -> strata_storage::Result<Vec<(String, u64)>> {
        self.note("start list", ft);
        let r = self.inner.list(ft).await;
        self.note("end list", ft);
        r
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

fn journaled() -> (Repository, Arc<Mutex<Vec<String>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let backend: Arc<dyn Backend> = Arc::new(Journal {
        inner: common::init_memory(1 << 20),
        events: events.clone(),
    });
    (Repository::open(backend, b"pw").unwrap(), events)
}

fn backup_once(repo: &mut Repository, content: &[u8]) -> SnapshotId {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), content).unwrap();
    let _lock = lock::lock_for(repo, Operation::Backup, Duration::ZERO).unwrap();
    repo.load_index_for(Operation::Backup).unwrap();
    let opts = BackupOptions::default();
    backup_paths(repo, &[src.path().to_path_buf()], &opts, &NoProgress).unwrap();
    snapshots::find(repo, "latest").unwrap().0
}

/// A backup's lock is written without a look at the locks first (a shared lock finds any
/// conflict in the check after its write); the index (and again once read) and the
/// snapshots are listed, not before the lock file is written.
#[test]
fn listings_start_only_after_the_lock_is_written() {
    let (mut repo, events) = journaled();
    events.lock().unwrap().clear();
    backup_once(&mut repo, b"one");
    let events = events.lock().unwrap().clone();
    let at = |e: &str| events.iter().position(|x| x == e);
    let count = |e: &str| events.iter().filter(|x| *x == e).count();
    let lock_written = at("end write locks").expect("a lock was written");
    assert_eq!(
        at("start write locks"),
        Some(0),
        "nothing before the lock: {events:?}"
    );
    for listing in ["start list index", "start list snapshots"] {
        let first = at(listing).unwrap_or_else(|| panic!("no {listing}: {events:?}"));
        assert!(
            first > lock_written,
            "{listing} before the lock: {events:?}"
        );
    }
    assert_eq!(count("start list locks"), 1, "{events:?}");
    // Once more after the files are read, for any that a prune beside it was replacing
    // while the first listing ran.
    assert_eq!(count("start list index"), 2, "{events:?}");
    // `find latest` after the backup lists again: the backup wrote a snapshot.
    assert_eq!(count("start list snapshots"), 2, "{events:?}");
}

/// The early listing is dropped by this handle's own changes: a snapshot forgotten after
/// the listing started is not listed, a snapshot written is.
#[test]
fn listings_are_never_older_than_this_handles_changes() {
    let (mut repo, _) = journaled();
    let first = backup_once(&mut repo, b"one");
    let second = backup_once(&mut repo, b"two");
    {
        let _lock = lock::lock_for(&repo, Operation::Forget, Duration::ZERO).unwrap();
        snapshots::forget(&repo, &[first]).unwrap();
        let ids: Vec<_> = snapshots::list(&repo)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![second]);
    }
    let _lock = lock::lock_for(&repo, Operation::Hold, Duration::ZERO).unwrap();
    let snap = snapshots::load(&repo, &second).unwrap();
    let third = snapshots::rewrite(&repo, &second, &snap, "tag x".into(), |s| {
        s.tags.push("x".into())
    })
    .unwrap();
    let ids: Vec<_> = snapshots::list(&repo)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec![third]);
}

fn snapshot_ids(repo: &Repository) -> Vec<SnapshotId> {
    snapshots::list(repo)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// Another process's prune: a snapshot file removed behind this handle's back.
fn removed_elsewhere(repo: &Repository, id: &SnapshotId) {
    repo.block_on(repo.backend().delete(FileType::Snapshot, &id.to_hex()))
        .unwrap();
}

/// A lock that turned out to conflict (a prune holds the repository): what was listed
/// beside its check is not used later, when the prune may have changed the repository.
#[test]
fn a_listing_beside_a_failed_lock_check_is_never_used() {
    let (mut repo, _) = journaled();
    let first = backup_once(&mut repo, b"one");
    let second = backup_once(&mut repo, b"two");
    let mut process = lock::this_process().clone();
    process.instance = [0x5a; 16];
    let prune = strata_format::lock::LockFile {
        kind: strata_format::lock::LockKind::Exclusive,
        hostname: strata_engine::hostname(),
        username: "ops".into(),
        pid: std::process::id(),
        time_ns: strata_engine::now_ns(),
        operation: "repair".into(),
        process: Some(process),
        session: [0x5a; 16],
    };
    repo.save_object(FileType::Lock, &prune).unwrap();
    let Err(err) = lock::lock_for(&repo, Operation::Backup, Duration::ZERO) else {
        panic!("a backup took a lock beside a prune's");
    };
    assert_eq!(err.kind(), strata_engine::ErrorKind::Locked, "{err}");
    removed_elsewhere(&repo, &first);
    assert_eq!(snapshot_ids(&repo), vec![second]);
}

/// A listing left unused when the lock was released is not used after it, nor by the
/// handle's next lock.
#[test]
fn a_listing_left_when_the_lock_is_released_is_never_used() {
    let (mut repo, _) = journaled();
    let first = backup_once(&mut repo, b"one");
    let second = backup_once(&mut repo, b"two");
    drop(lock::lock_for(&repo, Operation::Ls, Duration::ZERO).unwrap());
    removed_elsewhere(&repo, &first);
    assert_eq!(snapshot_ids(&repo), vec![second]);

    let third = backup_once(&mut repo, b"three");
    drop(lock::lock_for(&repo, Operation::Ls, Duration::ZERO).unwrap());
    removed_elsewhere(&repo, &second);
    // A lock that lists no snapshots early does not inherit the last one's listing.
    let _check = lock::lock_for(&repo, Operation::Check, Duration::ZERO).unwrap();
    assert_eq!(snapshot_ids(&repo), vec![third]);
}
