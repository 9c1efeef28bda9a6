//! Two-phase prune beside running sessions (spec/prune.md): the cases that must never lose
//! data. A session here is what a backup does: it writes its lock, then loads the index.
//! Prune runs under its own prune lock, from another repository handle, as another
//! process would.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_engine::archiver::{backup_paths, BackupOptions, BackupResult};
use strata_engine::lock::{self, LockGuard};
use strata_engine::progress::NoProgress;
use strata_engine::prune::{execute, plan, PruneOptions, PruneStats};
use strata_engine::{snapshots, Operation, Repository};
use strata_format::id::SnapshotId;
use strata_format::lock::{LockFile, LockKind};
use strata_storage::fault::{FaultBackend, FaultPlan};
use strata_storage::{Backend, FileType};

const HOUR_NS: i64 = 3_600_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;

/// Six files of 20 to 370 KB, different for each seed.
fn source(dir: &Path, seed: u64) -> PathBuf {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for f in 0..6u64 {
        let len = 20_000 + (f as usize) * 70_000;
        std::fs::write(
            dir.join(format!("f{f}")),
            common::pseudo_random(len, seed * 1000 + f),
        )
        .unwrap();
    }
    std::fs::write(dir.join("sub/small"), format!("seed {seed}")).unwrap();
    dir.to_path_buf()
}

fn backup(repo: &Repository, src: &Path) -> strata_engine::Result<BackupResult> {
    backup_paths(
        repo,
        &[src.to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
}

/// A session as a backup starts one: its lock first, then the index.
fn session(backend: &Arc<dyn Backend>) -> (Repository, LockGuard) {
    let mut repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let guard = lock::lock_for(&repo, Operation::Backup, Duration::ZERO)
        .unwrap()
        .expect("a backup takes a lock");
    repo.load_index(false).unwrap();
    (repo, guard)
}

/// A prune as `strata prune` runs one: under a prune lock, on a handle of its own.
fn prune_with(
    backend: &Arc<dyn Backend>,
    opts: &PruneOptions,
) -> strata_engine::Result<PruneStats> {
    let mut repo = Repository::open_without_index(backend.clone(), b"pw")?;
    let _lock = lock::lock_for(&repo, Operation::Prune, Duration::ZERO)?;
    let p = plan(&mut repo, opts, &NoProgress)?;
    execute(&repo, p, &NoProgress)
}

fn prune(backend: &Arc<dyn Backend>) -> PruneStats {
    prune_with(backend, &PruneOptions::default()).unwrap()
}

fn packs(backend: &Arc<dyn Backend>) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut names: Vec<String> = rt
        .block_on(backend.list(FileType::Pack))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
}

/// A repository whose only snapshot (of `src`) was forgotten: every data pack holds
/// nothing any snapshot needs.
fn forgotten(backend: &Arc<dyn Backend>, src: &Path) {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let old = backup(&repo, src).unwrap();
    snapshots::forget(&repo, &[old.snapshot_id]).unwrap();
}

/// `check --read-data` is clean and the snapshot restores byte for byte as `src`.
fn assert_restores(backend: &Arc<dyn Backend>, id: &SnapshotId, src: &Path) {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    common::assert_checks_clean(&repo);
    let (_, snap) = snapshots::find(&repo, &id.to_hex()).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &snap, target.path(), src);
    for entry in walk(src) {
        let rel = entry.strip_prefix(src).unwrap();
        assert_eq!(
            std::fs::read(restored.join(rel)).unwrap(),
            std::fs::read(&entry).unwrap(),
            "{} restores identical",
            rel.display()
        );
    }
}

/// Every pack of `before` is still in storage (backups may have added others).
fn assert_kept(backend: &Arc<dyn Backend>, before: &[String]) {
    let now = packs(backend);
    for p in before {
        assert!(now.contains(p), "pack {p} was deleted");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A backup that loaded the index before prune marked its blobs' packs, and writes its
/// snapshot after: the packs are not deleted while it runs, and are revived once its
/// snapshot needs them.
#[test]
fn a_backup_that_starts_before_the_mark_and_finishes_after_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let src = source(&work.path().join("a"), 1);
    forgotten(&backend, &src);
    let before = packs(&backend);

    let (b_repo, b_lock) = session(&backend);
    let marked = prune(&backend);
    assert!(marked.packs_marked > 0, "{marked:?}");
    assert_eq!(marked.other_sessions, 1, "{marked:?}");
    assert_eq!(marked.packs_deleted, 0, "a session is live: {marked:?}");
    assert!(!marked.marked_deleted_now);
    assert_eq!(
        packs(&backend),
        before,
        "nothing deleted while the backup runs"
    );
    let waiting = prune(&backend);
    assert_eq!(waiting.packs_deleted, 0, "{waiting:?}");
    assert_eq!(waiting.waiting_packs, marked.packs_marked, "{waiting:?}");
    assert_eq!(packs(&backend), before);

    // The backup's index predates the mark: it names the marked blobs.
    let b = backup(&b_repo, &src).unwrap();
    assert_eq!(
        b.snapshot.summary.data_blobs_added, 0,
        "the backup deduplicated against the marked packs"
    );
    // Its snapshot needs them: back in the index, while it still runs and after.
    let revived = prune(&backend);
    assert!(revived.revived_packs > 0, "{revived:?}");
    assert_eq!(revived.packs_deleted, 0, "{revived:?}");
    assert_kept(&backend, &before);
    drop(b_lock);
    drop(b_repo);
    // (Tiny packs may be merged now, with no session left to wait for.)
    prune(&backend);
    assert_restores(&backend, &b.snapshot_id, &src);
    let again = prune(&backend);
    assert_eq!(again.packs_deleted, 0, "{again:?}");
    assert_restores(&backend, &b.snapshot_id, &src);
}

/// A backup that starts once the mark is durable does not name a marked blob: it stores
/// the data again, and the marked packs go once the sessions of the seal have ended.
#[test]
fn a_backup_that_starts_after_the_mark_stores_marked_data_again() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let src = source(&work.path().join("a"), 2);
    forgotten(&backend, &src);
    let before = packs(&backend);

    // Someone else's session keeps the mark from being deleted at once.
    let (other_repo, other) = session(&backend);
    let marked = prune(&backend);
    assert!(marked.packs_marked > 0, "{marked:?}");
    assert_eq!(marked.packs_deleted, 0, "{marked:?}");

    let (b_repo, b_lock) = session(&backend);
    let b = backup(&b_repo, &src).unwrap();
    assert!(
        b.snapshot.summary.data_blobs_added >= 6,
        "every file is stored again: {:?}",
        b.snapshot.summary
    );
    drop(b_lock);
    let waiting = prune(&backend);
    assert_eq!(waiting.packs_deleted, 0, "{waiting:?}");
    assert_eq!(waiting.revived_packs, 0, "{waiting:?}");
    assert!(before.iter().all(|p| packs(&backend).contains(p)));

    drop(other);
    drop(other_repo);
    let due = prune(&backend);
    assert!(due.due_packs > 0, "{due:?}");
    assert_eq!(due.revived_packs, 0, "{due:?}");
    let now = packs(&backend);
    for p in &before {
        assert!(!now.contains(p), "marked pack {p} was deleted");
    }
    assert_restores(&backend, &b.snapshot_id, &src);
}

/// A backup killed (on another host) after writing packs, before its index: its packs are
/// marked, not deleted, while its lock is live; once the lock expires they are deleted.
/// What kept snapshots need is untouched throughout.
#[test]
fn a_killed_backup_s_packs_go_only_once_its_lock_is_stale() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let kept_src = source(&work.path().join("kept"), 3);
    let kept = {
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        backup(&repo, &kept_src).unwrap()
    };
    let before = packs(&backend);

    // The killed backup: every mutation up to its first index file runs, that one fails.
    let killed_src = source(&work.path().join("killed"), 4);
    let log = work.path().join("mutations");
    {
        let probe = common::init_memory(256 * 1024);
        let repo = Repository::open(probe.clone(), b"pw").unwrap();
        backup(&repo, &kept_src).unwrap();
        let logged: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            probe,
            FaultPlan {
                log: Some(log.clone()),
                ..FaultPlan::default()
            },
        ));
        let repo = Repository::open(logged, b"pw").unwrap();
        backup(&repo, &killed_src).unwrap();
    }
    let first_index = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .position(|l| l.contains("index/"))
        .expect("a backup writes an index file") as u64
        + 1;
    let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
        backend.clone(),
        FaultPlan {
            fail_at_mutation: Some(first_index),
            ..FaultPlan::default()
        },
    ));
    let repo = Repository::open(faulty, b"pw").unwrap();
    backup(&repo, &killed_src).unwrap_err();
    drop(repo);
    let orphans: Vec<String> = packs(&backend)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!orphans.is_empty(), "the killed backup left packs");

    // Its lock, as another host's (another PID namespace): live until it expires.
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let mut process = lock::this_process().clone();
    process.pid_namespace ^= 1;
    let killed_lock = |age_ns: i64| LockFile {
        kind: LockKind::Shared,
        hostname: "web2".into(),
        username: "backup".into(),
        pid: 4242,
        time_ns: strata_engine::now_ns() - age_ns,
        operation: "backup".into(),
        process: Some(process.clone()),
        session: [0x42; 16],
    };
    let fresh = repo
        .save_object(FileType::Lock, &killed_lock(MINUTE_NS))
        .unwrap();

    // (Unindexed, or indexed by another of its files: either way marked, not deleted.)
    let marked = prune(&backend);
    assert_eq!(marked.packs_marked, orphans.len() as u64, "{marked:?}");
    assert_eq!(marked.packs_deleted, 0, "{marked:?}");
    let waiting = prune(&backend);
    assert_eq!(waiting.packs_deleted, 0, "{waiting:?}");
    assert!(orphans.iter().all(|p| packs(&backend).contains(p)));

    // The lock is not refreshed any more: an hour later it has expired.
    repo.block_on(backend.delete(FileType::Lock, &fresh.to_hex()))
        .unwrap();
    repo.save_object(FileType::Lock, &killed_lock(HOUR_NS))
        .unwrap();
    let due = prune(&backend);
    assert_eq!(due.packs_deleted, orphans.len() as u64, "{due:?}");
    assert_eq!(packs(&backend), before);
    assert_restores(&backend, &kept.snapshot_id, &kept_src);
}

/// Hosts whose clocks differ by up to the grace period: the grace period ends sooner or
/// later, but a mark is never due while a session older than it runs, and a live lock
/// written by a clock 14 minutes behind still counts.
#[test]
fn clock_skew_between_hosts_up_to_the_grace_period_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let grace = Duration::from_secs(3600);
    let host = |skew_ns: i64| PruneOptions {
        grace,
        clock_skew_ns: skew_ns,
        ..PruneOptions::default()
    };

    // A marking host ahead by the grace period: by a correct clock its mark is in the
    // future, so it waits out the whole grace period, even with no session at all.
    let backend = common::init_memory(256 * 1024);
    let src = source(&work.path().join("a"), 5);
    forgotten(&backend, &src);
    let before = packs(&backend);
    let ahead = prune_with(&backend, &host(HOUR_NS)).unwrap();
    assert!(ahead.packs_marked > 0, "{ahead:?}");
    assert_eq!(ahead.packs_deleted, 0, "{ahead:?}");
    let on_time = prune_with(&backend, &host(0)).unwrap();
    assert_eq!(on_time.packs_deleted, 0, "{on_time:?}");
    assert!(on_time.waiting_packs > 0, "{on_time:?}");
    assert_eq!(packs(&backend), before);
    // Two grace periods later by the correct clock, it is due.
    let later = prune_with(&backend, &host(2 * HOUR_NS)).unwrap();
    assert_eq!(later.due_packs, ahead.packs_marked, "{later:?}");

    // A marking host behind by the grace period: its mark looks a grace period old at
    // once. A backup that began before it (and a lock written by a clock 14 minutes
    // behind, from another host) keeps it from being due all the same.
    let backend = common::init_memory(256 * 1024);
    forgotten(&backend, &src);
    let before = packs(&backend);
    let (b_repo, b_lock) = session(&backend);
    let other_host = Repository::open(backend.clone(), b"pw").unwrap();
    let mut process = lock::this_process().clone();
    process.pid_namespace ^= 1;
    other_host
        .save_object(
            FileType::Lock,
            &LockFile {
                kind: LockKind::Shared,
                hostname: "web3".into(),
                username: "backup".into(),
                pid: 77,
                time_ns: strata_engine::now_ns() - 14 * MINUTE_NS,
                operation: "backup".into(),
                process: Some(process),
                session: [0x77; 16],
            },
        )
        .unwrap();
    let behind = prune_with(&backend, &host(-HOUR_NS)).unwrap();
    assert!(behind.packs_marked > 0, "{behind:?}");
    assert_eq!(behind.other_sessions, 2, "both locks are live: {behind:?}");
    // By the clock the mark is due; by its seal it is not.
    let early = prune_with(&backend, &host(0)).unwrap();
    assert_eq!(early.packs_deleted, 0, "{early:?}");
    assert_eq!(early.waiting_packs, behind.packs_marked, "{early:?}");
    assert_eq!(packs(&backend), before);
    let b = backup(&b_repo, &src).unwrap();
    assert_eq!(b.snapshot.summary.data_blobs_added, 0);
    let judged = prune_with(&backend, &host(0)).unwrap();
    assert_eq!(judged.packs_deleted, 0, "{judged:?}");
    assert_eq!(judged.due_packs, 0, "{judged:?}");
    assert!(judged.revived_packs > 0, "{judged:?}");
    assert_kept(&backend, &before);
    drop(b_lock);
    drop(b_repo);
    prune_with(&backend, &host(HOUR_NS)).unwrap();
    assert_restores(&backend, &b.snapshot_id, &src);
}

/// A prune whose n-th storage mutation fails, for every n, beside a backup that loaded
/// the index before it and finishes after: the backup's snapshot and every kept one
/// restore identical, and later prunes finish the job.
#[test]
fn prune_failing_at_every_mutation_beside_a_backup_loses_nothing() {
    let total = {
        let work = tempfile::tempdir().unwrap();
        let backend = common::init_memory(256 * 1024);
        let src = source(&work.path().join("a"), 6);
        forgotten(&backend, &src);
        let (_r, _l) = session(&backend);
        let counter = Arc::new(FaultBackend::new(backend.clone(), FaultPlan::default()));
        let probe: Arc<dyn Backend> = counter.clone();
        prune(&probe);
        counter.mutations()
    };
    assert!(
        total >= 4,
        "a prune that marks makes several mutations ({total})"
    );
    for n in 1..=total {
        let work = tempfile::tempdir().unwrap();
        let backend = common::init_memory(256 * 1024);
        let src = source(&work.path().join("a"), 6);
        let kept_src = source(&work.path().join("kept"), 7);
        let kept = {
            let repo = Repository::open(backend.clone(), b"pw").unwrap();
            backup(&repo, &kept_src).unwrap()
        };
        forgotten(&backend, &src);
        let (b_repo, b_lock) = session(&backend);
        let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            backend.clone(),
            FaultPlan {
                fail_at_mutation: Some(n),
                ..FaultPlan::default()
            },
        ));
        let _ = prune_with(&faulty, &PruneOptions::default());
        // A full prune while the backup runs: whatever the failed one marked or sealed,
        // nothing the backup may name goes.
        prune(&backend);
        let b = backup(&b_repo, &src).unwrap();
        prune(&backend);
        drop(b_lock);
        drop(b_repo);
        prune(&backend);
        prune(&backend);
        assert_restores(&backend, &b.snapshot_id, &src);
        assert_restores(&backend, &kept.snapshot_id, &kept_src);
    }
}

/// A backup whose n-th storage mutation fails, for every n, that loaded the index before
/// a prune marked what it reuses: whatever it left, the kept snapshot restores, and if it
/// wrote its snapshot, so does that.
#[test]
fn backup_failing_at_every_mutation_beside_a_prune_loses_nothing() {
    let total = {
        let work = tempfile::tempdir().unwrap();
        let backend = common::init_memory(256 * 1024);
        let src = source(&work.path().join("a"), 8);
        forgotten(&backend, &src);
        let counter = Arc::new(FaultBackend::new(backend.clone(), FaultPlan::default()));
        let probe: Arc<dyn Backend> = counter.clone();
        let (r, _l) = session(&probe);
        backup(&r, &source(&work.path().join("b"), 9)).unwrap();
        counter.mutations()
    };
    assert!(total >= 4, "a backup makes several mutations ({total})");
    for n in 1..=total {
        let work = tempfile::tempdir().unwrap();
        let backend = common::init_memory(256 * 1024);
        let src = source(&work.path().join("a"), 8);
        let kept_src = source(&work.path().join("kept"), 10);
        let kept = {
            let repo = Repository::open(backend.clone(), b"pw").unwrap();
            backup(&repo, &kept_src).unwrap()
        };
        forgotten(&backend, &src);
        // The backup reuses what `a` stored and adds `b`'s files.
        let b_src = source(&work.path().join("b"), 9);
        std::fs::copy(src.join("f5"), b_src.join("reused")).unwrap();
        let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            backend.clone(),
            FaultPlan {
                fail_at_mutation: Some(n),
                ..FaultPlan::default()
            },
        ));
        let Ok(mut b_repo) = Repository::open_without_index(faulty, b"pw") else {
            continue;
        };
        let b_lock = lock::lock_for(&b_repo, Operation::Backup, Duration::ZERO);
        let written = match b_lock {
            Ok(lock) => {
                b_repo.load_index(false).unwrap();
                // One prune marks what `a` stored, the next finds its seal waiting.
                prune(&backend);
                prune(&backend);
                let r = backup(&b_repo, &b_src);
                drop(lock);
                r.ok()
            }
            Err(_) => None,
        };
        drop(b_repo);
        prune(&backend);
        prune(&backend);
        assert_restores(&backend, &kept.snapshot_id, &kept_src);
        if let Some(b) = written {
            assert_restores(&backend, &b.snapshot_id, &b_src);
        }
    }
}

fn encoded<T: strata_format::envelope::EncryptedObject>(
    repo: &Repository,
    value: &T,
) -> (String, bytes::Bytes) {
    let bytes = value.encode(repo.key(), &mut rand::thread_rng());
    let name = strata_format::id::Digest::of_stored(&bytes).to_hex();
    (name, bytes::Bytes::from(bytes))
}

/// A backup on another host refreshes its lock between prune's listing of the locks and
/// its read of that lock: prune lists again and still counts the session, so the packs it
/// marks are not deleted in the same run.
#[test]
fn a_lock_refreshed_while_prune_reads_the_locks_still_counts() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let src = source(&work.path().join("a"), 11);
    forgotten(&backend, &src);
    let before = packs(&backend);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let mut process = lock::this_process().clone();
    process.pid_namespace ^= 1;
    let held = LockFile {
        kind: LockKind::Shared,
        hostname: "web4".into(),
        username: "backup".into(),
        pid: 99,
        time_ns: strata_engine::now_ns() - 5 * MINUTE_NS,
        operation: "backup".into(),
        process: Some(process),
        session: [0x44; 16],
    };
    let old = repo.save_object(FileType::Lock, &held).unwrap().to_hex();
    let refreshed = encoded(
        &repo,
        &LockFile {
            time_ns: strata_engine::now_ns(),
            ..held
        },
    );
    let racing = Arc::new(Meddling {
        replace_on_read: Some((FileType::Lock, old, refreshed)),
        ..Meddling::new(&backend)
    });
    let as_backend: Arc<dyn Backend> = racing.clone();
    let mut prune_repo = Repository::open_without_index(as_backend, b"pw").unwrap();
    let _lock = lock::lock_for(&prune_repo, Operation::Prune, Duration::ZERO).unwrap();
    // The refresh happens while the plan lists the sessions.
    racing
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let p = plan(&mut prune_repo, &PruneOptions::default(), &NoProgress).unwrap();
    assert!(racing.done.load(std::sync::atomic::Ordering::SeqCst));
    let stats = execute(&prune_repo, p, &NoProgress).unwrap();
    assert_eq!(
        stats.other_sessions, 1,
        "the refreshed lock is seen: {stats:?}"
    );
    assert!(stats.packs_marked > 0, "{stats:?}");
    assert_eq!(stats.packs_deleted, 0, "{stats:?}");
    assert_eq!(packs(&backend), before);
}

/// A snapshot replaced (as `hold` or `tag` replace one) between prune's listing of the
/// snapshots and its read of it: prune lists again and reads the replacement, so what the
/// replacement needs stays.
#[test]
fn a_snapshot_replaced_while_prune_reads_the_snapshots_is_not_missed() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let src = source(&work.path().join("a"), 12);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let b = backup(&repo, &src).unwrap();
    let before = packs(&backend);
    let mut tagged = b.snapshot.clone();
    tagged.tags.push("audit".into());
    let racing: Arc<dyn Backend> = Arc::new(Meddling {
        replace_on_read: Some((
            FileType::Snapshot,
            b.snapshot_id.to_hex(),
            encoded(&repo, &tagged),
        )),
        armed: std::sync::atomic::AtomicBool::new(true),
        ..Meddling::new(&backend)
    });
    let stats = prune_with(&racing, &PruneOptions::default()).unwrap();
    assert_eq!(stats.snapshots, 1, "the replacement is read: {stats:?}");
    assert_eq!(stats.packs_marked, 0, "{stats:?}");
    assert_eq!(stats.packs_deleted, 0, "{stats:?}");
    assert_eq!(packs(&backend), before);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let (id, snap) = snapshots::find(&repo, "latest").unwrap();
    assert_ne!(id, b.snapshot_id);
    assert_eq!(snap.tags, vec!["audit".to_string()]);
    assert_restores(&backend, &id, &src);
}

/// A store that meddles:
/// * its first listing of index files, once set, leaves out the names in `hidden` (a
///   listing in pages that passed a name before it was written, or a `readdir` running
///   while files come and go);
/// * while `fail_pack_deletes` is set, deleting a pack fails (a prune stopped before its
///   deletes);
/// * `replace_on_read` `(ft, target, (new, bytes))`: once `armed`, the first read of
///   `target` first writes `new` and deletes `target` (as a lock refresh, or a snapshot
///   replaced by `hold` or `tag`, does between another process's listing and its read);
///   `done` says it happened.
#[derive(Debug)]
struct Meddling {
    inner: Arc<dyn Backend>,
    hidden: std::sync::Mutex<Option<Vec<String>>>,
    fail_pack_deletes: bool,
    replace_on_read: Option<(FileType, String, (String, bytes::Bytes))>,
    armed: std::sync::atomic::AtomicBool,
    done: std::sync::atomic::AtomicBool,
}

impl Meddling {
    fn new(inner: &Arc<dyn Backend>) -> Self {
        Meddling {
            inner: inner.clone(),
            hidden: std::sync::Mutex::new(None),
            fail_pack_deletes: false,
            replace_on_read: None,
            armed: Default::default(),
            done: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl Backend for Meddling {
    fn location(&self) -> String {
        self.inner.location()
    }
    async fn read(&self, ft: FileType, name: &str) -> strata_storage::Result<bytes::Bytes> {
        use std::sync::atomic::Ordering::SeqCst;
        if let Some((_, _, (new, bytes))) = self
            .replace_on_read
            .as_ref()
            .filter(|(f, target, _)| *f == ft && target == name)
        {
            if self.armed.load(SeqCst) && !self.done.swap(true, SeqCst) {
                self.inner.write(ft, new, bytes.clone()).await?;
                self.inner.delete(ft, name).await?;
            }
        }
        self.inner.read(ft, name).await
    }
    async fn read_range(
        &self,
        ft: FileType,
        n: &str,
        o: u64,
        l: u64,
    ) -> strata_storage::Result<bytes::Bytes> {
        self.inner.read_range(ft, n, o, l).await
    }
    async fn write(
        &self,
        ft: FileType,
        name: &str,
        data: bytes::Bytes,
    ) -> strata_storage::Result<()> {
        self.inner.write(ft, name, data).await
    }
    async fn list(&self, ft: FileType) -> strata_storage::Result<Vec<(String, u64)>> {
        let mut listed = self.inner.list(ft).await?;
        if ft == FileType::Index {
            if let Some(hidden) = self.hidden.lock().unwrap().take() {
                listed.retain(|(name, _)| !hidden.contains(name));
            }
        }
        Ok(listed)
    }
    async fn delete(&self, ft: FileType, name: &str) -> strata_storage::Result<()> {
        if ft == FileType::Pack && self.fail_pack_deletes {
            return Err(strata_storage::StorageError::new(
                strata_storage::ErrorKind::Other,
                "delete",
                ft.path(name),
                "injected fault",
            ));
        }
        self.inner.delete(ft, name).await
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

fn index_files(backend: &Arc<dyn Backend>) -> Vec<(String, bytes::Bytes)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut files = Vec::new();
        for (name, _) in backend.list(FileType::Index).await.unwrap() {
            let bytes = backend.read(FileType::Index, &name).await.unwrap();
            files.push((name, bytes));
        }
        files
    })
}

/// A reader lists the index files while a prune replaces them: its listing passed the
/// place of the prune's new file before it was written, and the place of an old file
/// after it was deleted, but has the other old ones (not deleted yet). The reader lists
/// again once it has read them, finds the new file, and has the whole index: every
/// snapshot checks clean and restores.
#[test]
fn an_index_listing_that_missed_a_replaced_file_is_completed() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let mut srcs = Vec::new();
    let mut ids = Vec::new();
    let mut before_last = Vec::new();
    for seed in 0..3 {
        before_last = index_files(&backend);
        let src = source(&work.path().join(format!("s{seed}")), 20 + seed);
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        ids.push(backup(&repo, &src).unwrap().snapshot_id);
        srcs.push(src);
    }
    let old = index_files(&backend);
    // The last backup's index files: only they name its new blobs.
    let (last, others): (Vec<_>, Vec<_>) = old
        .into_iter()
        .partition(|(n, _)| !before_last.iter().any(|(b, _)| b == n));
    assert!(!last.is_empty() && !others.is_empty());
    // The prune: forget the first snapshot, and its new index supersedes the old files.
    {
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        snapshots::forget(&repo, &ids[..1]).unwrap();
    }
    let stats = prune(&backend);
    assert!(stats.index_files_written > 0);
    let new: Vec<String> = index_files(&backend)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !others.iter().chain(&last).any(|(o, _)| o == n))
        .collect();
    assert!(!new.is_empty());
    // Caught half way: the new files are there, the last backup's are gone, the others
    // not yet (put back as they were).
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (name, bytes) in &others {
        rt.block_on(backend.write(FileType::Index, name, bytes.clone()))
            .unwrap();
    }
    let missing = Arc::new(Meddling::new(&backend));
    let as_backend: Arc<dyn Backend> = missing.clone();
    let mut repo = Repository::open_without_index(as_backend.clone(), b"pw").unwrap();
    *missing.hidden.lock().unwrap() = Some(new);
    repo.load_index(false).unwrap();
    assert!(
        missing.hidden.lock().unwrap().is_none(),
        "the first listing left the new files out"
    );
    // Every blob of the kept snapshots is in the index the reader loaded.
    for (id, src) in ids[1..].iter().zip(&srcs[1..]) {
        let (_, snap) = snapshots::find(&repo, &id.to_hex()).unwrap();
        let target = tempfile::tempdir().unwrap();
        common::restore_clean(&repo, &snap, target.path(), src);
    }
}

/// A prune whose marks are due is stopped after it wrote its index, before it deleted the
/// due packs. They are still listed under their marks: the next prune deletes them at
/// once (even beside a backup that began since), instead of finding them unindexed and
/// marking them to wait all over again.
#[test]
fn due_packs_a_stopped_prune_left_are_deleted_by_the_next() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let kept_src = source(&work.path().join("kept"), 31);
    let kept = {
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        backup(&repo, &kept_src).unwrap().snapshot_id
    };
    forgotten(&backend, &source(&work.path().join("gone"), 32));
    // Marked beside a running backup: not deleted in the same run.
    let (_other, guard) = session(&backend);
    let marked = prune(&backend);
    assert!(marked.packs_marked > 0, "{marked:?}");
    assert!(!marked.marked_deleted_now, "{marked:?}");
    drop(guard);
    // Due now, but the run stops at its first pack delete.
    let stopping: Arc<dyn Backend> = Arc::new(Meddling {
        fail_pack_deletes: true,
        ..Meddling::new(&backend)
    });
    let err = prune_with(&stopping, &PruneOptions::default()).unwrap_err();
    assert!(err.to_string().contains("injected fault"), "{err}");
    let left = packs(&backend);
    // The packs every blob of the index is found in now.
    let blob_packs: std::collections::BTreeSet<String> = {
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        let index = repo.index();
        index
            .iter()
            .map(|(_, loc)| index.pack(loc.pack).0.to_hex())
            .collect()
    };
    // Another host's backup begins; the next prune deletes the due packs all the same.
    let (_other, _guard) = session(&backend);
    let next = prune(&backend);
    assert_eq!(next.due_packs, marked.packs_marked, "{next:?}");
    assert_eq!(next.unindexed_packs, 0, "{next:?}");
    assert_eq!(next.packs_marked, 0, "{next:?}");
    let now = packs(&backend);
    let gone: Vec<&String> = left.iter().filter(|p| !now.contains(p)).collect();
    assert_eq!(gone.len(), marked.packs_marked as usize);
    // No entry of the index the stopped prune left led to a pack about to be deleted.
    for p in gone {
        assert!(
            !blob_packs.contains(p),
            "the index listed blobs of due pack {p}"
        );
    }
    assert_restores(&backend, &kept, &kept_src);
}
