//! Locks: who may run beside whom, when a lock is stale, and what a holder whose lock was
//! removed may still write. The PID-namespace reproduction with real processes is in
//! `tests/e2e/locks.rs`.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::lock::{self, LockTiming};
use strata_engine::progress::NoProgress;
use strata_engine::{snapshots, ErrorKind, Repository};
use strata_format::lock::{LockFile, LockKind, ProcessIdentity};
use strata_storage::{Backend, FileType};

const MINUTE: i64 = 60 * 1_000_000_000;

fn init() -> (Arc<dyn Backend>, Repository) {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    (backend, repo)
}

fn names(repo: &Repository, ft: FileType) -> Vec<String> {
    repo.block_on(repo.backend().list(ft))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Another process's lock, as seen from this one: this kernel and PID namespace unless
/// `edit` says otherwise, refreshed `age_min` minutes ago by this clock.
fn other_process(
    exclusive: bool,
    pid: u32,
    age_min: i64,
    edit: impl Fn(&mut ProcessIdentity),
) -> LockFile {
    let mut process = lock::this_process().clone();
    process.instance = [0x5a; 16];
    edit(&mut process);
    LockFile {
        kind: if exclusive {
            LockKind::Exclusive
        } else {
            LockKind::Shared
        },
        hostname: strata_engine::hostname(),
        username: "ops".into(),
        pid,
        time_ns: strata_engine::now_ns() - age_min * MINUTE,
        operation: if exclusive { "repair" } else { "backup" }.into(),
        process: Some(process),
        session: [0x5a; 16],
    }
}

/// A pid that runs nowhere (Linux pids stay below 2^22).
const GONE: u32 = 4_999_999;

/// Whether an exclusive lock can be taken now (it is released at once).
fn prune_may_run(repo: &Repository) -> Result<(), String> {
    lock::lock(repo, "prune", true).map(drop).map_err(|e| {
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
        e.to_string()
    })
}

#[test]
fn the_lock_of_a_process_gone_from_this_kernel_and_namespace_is_removed() {
    let (_b, repo) = init();
    repo.save_object(FileType::Lock, &other_process(true, GONE, 0, |_| {}))
        .unwrap();
    // A killed cron job must not block the next one.
    prune_may_run(&repo).unwrap();
    assert!(names(&repo, FileType::Lock).is_empty());
}

/// The reproduction of issue #12: a backup in another PID namespace (a container, a
/// systemd service with PrivatePIDs) under the same host name; its pid does not exist
/// here. Its lock is live until it expires.
#[test]
fn a_fresh_lock_from_another_pid_namespace_blocks_prune_and_unlock_keeps_it() {
    let (_b, repo) = init();
    repo.save_object(
        FileType::Lock,
        &other_process(false, GONE, 0, |p| p.pid_namespace ^= 1),
    )
    .unwrap();
    let msg = prune_may_run(&repo).unwrap_err();
    assert!(msg.contains("ops@") && msg.contains("backup"), "{msg}");
    // The error names the holder as data too (for a health check, a web page).
    match lock::lock(&repo, "prune", true).map(drop).unwrap_err() {
        strata_engine::EngineError::Locked {
            holder: Some(h), ..
        } => {
            assert_eq!(
                (h.operation.as_str(), h.pid, h.exclusive),
                ("backup", GONE, false)
            );
            assert_eq!(h.username, "ops");
        }
        other => panic!("{other:?}"),
    }
    let found = lock::unlock(&repo, false).unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].removed, "{found:?}");
    // Backups run beside it.
    drop(lock::lock(&repo, "backup", false).unwrap());
    assert_eq!(names(&repo, FileType::Lock).len(), 1);
}

#[test]
fn a_fresh_lock_from_another_boot_or_without_identity_blocks_until_it_expires() {
    let (_b, repo) = init();
    let rebooted = other_process(true, GONE, 44, |p| p.boot_id = "an earlier boot".into());
    let mut version_1 = other_process(true, GONE, 44, |_| {});
    version_1.process = None;
    let unknown = other_process(true, GONE, 44, |p| {
        p.boot_id.clear();
        p.pid_namespace = 0;
    });
    for lock in [rebooted, version_1, unknown] {
        let name = repo.save_object(FileType::Lock, &lock).unwrap().to_hex();
        prune_may_run(&repo).unwrap_err();
        // Past 30 minutes of expiry plus 15 of clock allowance, it is removed.
        let expired = LockFile {
            time_ns: lock.time_ns - 2 * MINUTE,
            ..lock.clone()
        };
        repo.block_on(repo.backend().delete(FileType::Lock, &name))
            .unwrap();
        repo.save_object(FileType::Lock, &expired).unwrap();
        prune_may_run(&repo).unwrap();
        assert!(names(&repo, FileType::Lock).is_empty(), "{lock:?}");
    }
}

#[test]
fn a_lock_whose_pid_now_belongs_to_a_later_process_is_removed() {
    let (_b, repo) = init();
    // This test's own pid, started at another time: the pid was reused.
    let recycled = other_process(true, std::process::id(), 0, |p| p.start_ticks -= 1);
    repo.save_object(FileType::Lock, &recycled).unwrap();
    prune_may_run(&repo).unwrap();
    assert!(names(&repo, FileType::Lock).is_empty());
    // The same pid with the same start time is this process: live.
    let live = other_process(true, std::process::id(), 0, |_| {});
    repo.save_object(FileType::Lock, &live).unwrap();
    prune_may_run(&repo).unwrap_err();
}

/// A host whose clock is 40 minutes behind writes locks that look 40 minutes old here:
/// within the allowance, they are live; a clock ahead never makes a lock look old.
#[test]
fn clocks_that_differ_do_not_expire_live_locks() {
    let (_b, repo) = init();
    let other_host = |age_min| {
        let mut l = other_process(false, 4242, age_min, |p| p.boot_id = "elsewhere".into());
        l.hostname = "elsewhere".into();
        l
    };
    for age in [40, -60] {
        repo.save_object(FileType::Lock, &other_host(age)).unwrap();
        prune_may_run(&repo).unwrap_err();
        assert!(!lock::unlock(&repo, false).unwrap()[0].removed);
        lock::unlock(&repo, true).unwrap();
    }
    // An expired lock of another host is removed, and the warning names its holder.
    repo.save_object(FileType::Lock, &other_host(46)).unwrap();
    prune_may_run(&repo).unwrap();
    assert!(names(&repo, FileType::Lock).is_empty());
    // `unlock` reports and removes one too.
    repo.save_object(FileType::Lock, &other_host(120)).unwrap();
    let found = lock::unlock(&repo, false).unwrap();
    assert!(
        found[0].removed && found[0].description.contains("ops@elsewhere"),
        "{found:?}"
    );
}

#[test]
fn a_lock_of_a_newer_strata_blocks_everything() {
    let (_b, repo) = init();
    let sealed = strata_format::envelope::seal_object(
        repo.key(),
        &mut rand::thread_rng(),
        "lock",
        b"",
        &strata_format::envelope::encode_versioned(9, &"from the future"),
        3,
    );
    let name = strata_format::id::Digest::of_stored(&sealed).to_hex();
    repo.block_on(repo.backend().write(FileType::Lock, &name, sealed.into()))
        .unwrap();
    let err = lock::lock(&repo, "backup", false)
        .err()
        .expect("must conflict");
    assert!(err.to_string().contains("newer Strata"), "{err}");
    assert!(!lock::unlock(&repo, false).unwrap()[0].removed);
}

#[test]
fn held_locks_are_refreshed_and_removed_when_released() {
    let (_b, repo) = init();
    let timing = LockTiming {
        refresh_every: Duration::from_millis(100),
        ..LockTiming::default()
    };
    {
        let guard = lock::lock_with(&repo, "backup", false, Duration::ZERO, timing).unwrap();
        let first = guard.id();
        std::thread::sleep(Duration::from_millis(450));
        let now = guard.id();
        assert_ne!(first, now, "the lock was refreshed");
        assert_eq!(names(&repo, FileType::Lock), vec![now.to_hex()]);
    }
    assert!(names(&repo, FileType::Lock).is_empty());
}

/// A lock removed by another process stays removed: the refresher does not write it
/// again, and the holder learns that it lost it.
#[test]
fn the_refresher_does_not_bring_back_a_removed_lock() {
    let (_b, repo) = init();
    let timing = LockTiming {
        refresh_every: Duration::from_millis(100),
        ..LockTiming::default()
    };
    let guard = lock::lock_with(&repo, "backup", false, Duration::ZERO, timing).unwrap();
    lock::unlock(&repo, true).unwrap();
    std::thread::sleep(Duration::from_millis(450));
    assert!(names(&repo, FileType::Lock).is_empty());
    let err = guard.verify().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(
        err.to_string().contains("removed by another process"),
        "{err}"
    );
}

/// A backup whose lock was removed (here by `unlock --remove-all` while it runs) writes
/// no index and no snapshot: at most unreferenced packs, which a prune may remove.
#[test]
fn a_backup_whose_lock_was_removed_writes_no_index_and_no_snapshot() {
    let (_b, repo) = init();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), vec![7u8; 3 << 20]).unwrap();
    let _guard = lock::lock(&repo, "backup", false).unwrap();
    lock::unlock(&repo, true).unwrap();
    let index_before = names(&repo, FileType::Index);
    let err = backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .map(|r| r.snapshot_id)
    .expect_err("the backup must fail");
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(snapshots::list(&repo).unwrap().is_empty());
    assert_eq!(names(&repo, FileType::Index), index_before);
}

/// A holder that could not refresh its lock for the expiry time (suspended, cut off)
/// counts it as lost even if the file is still there: others may have removed it.
#[test]
fn a_lock_not_refreshed_in_time_is_lost() {
    let (_b, repo) = init();
    let timing = LockTiming {
        refresh_every: Duration::from_secs(3600),
        stale_after: Duration::from_millis(200),
        clock_skew: Duration::ZERO,
    };
    let guard = lock::lock_with(&repo, "backup", false, Duration::ZERO, timing).unwrap();
    guard.verify().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let err = guard.verify().unwrap_err();
    assert!(err.to_string().contains("not refreshed"), "{err}");
}

/// An exclusive holder lists the locks again before its first delete: a live lock that
/// appeared since it took its own (here a backup's) stops it, and nothing is deleted.
#[test]
fn forget_deletes_nothing_when_a_live_lock_appeared() {
    let (_b, repo) = init();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"x").unwrap();
    let opts = BackupOptions::default();
    backup_paths(&repo, &[src.path().to_path_buf()], &opts, &NoProgress).unwrap();
    let snaps = snapshots::list(&repo).unwrap();
    let guard = lock::lock(&repo, "forget", true).unwrap();
    // A live backup of this same process (another instance id, this pid and start time).
    let appeared = other_process(false, std::process::id(), 0, |_| {});
    repo.save_object(FileType::Lock, &appeared).unwrap();
    let err = snapshots::forget(&repo, &[snaps[0].0]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    assert!(err.to_string().contains("nothing was deleted"), "{err}");
    assert_eq!(snapshots::list(&repo).unwrap().len(), 1);
    // A stale lock found at that moment is removed, and the delete goes ahead.
    drop(guard);
    lock::unlock(&repo, true).unwrap();
    let _guard = lock::lock(&repo, "forget", true).unwrap();
    repo.save_object(FileType::Lock, &other_process(false, GONE, 0, |_| {}))
        .unwrap();
    snapshots::forget(&repo, &[snaps[0].0]).unwrap();
    assert!(snapshots::list(&repo).unwrap().is_empty());
}

/// The lock matrix of `strata_engine::Operation`'s docs, complete for every operation, and
/// checked with the real locks of every pair: while one runs, may the other start?
#[test]
fn lock_matrix() {
    use strata_engine::{LockMode, Operation::*};
    // The matrix as documented (written out here, not taken from the code).
    let none = [
        Init,
        Snapshots,
        CatObject,
        KeyList,
        Unlock,
        RepairConfig,
        List,
        WalList,
        Migrate,
    ];
    let shared = [
        Restore,
        Dump,
        Ls,
        Find,
        Diff,
        Stats,
        CatBlob,
        Mount,
        Check,
        Verify,
        CopyFrom,
        ListBlobs,
        Backup,
        RestoreDatabase,
        CopyTo,
        Evidence,
        WalPush,
        WalFetch,
    ];
    let prune = [
        Forget,
        ForgetAndPrune,
        Prune,
        Hold,
        Tag,
        Rewrite,
        KeyAdd,
        KeyRemove,
        KeyPasswd,
    ];
    let exclusive = [RepairIndex, RepairSnapshots];
    for op in strata_engine::Operation::ALL {
        let listed = [
            none.contains(&op),
            shared.contains(&op),
            prune.contains(&op),
            exclusive.contains(&op),
        ];
        assert_eq!(
            listed.iter().filter(|l| **l).count(),
            1,
            "{op:?} is in the matrix once"
        );
        let mode = op.lock();
        assert_eq!(none.contains(&op), mode == LockMode::None, "{op:?}");
        assert_eq!(
            exclusive.contains(&op),
            mode == LockMode::Exclusive,
            "{op:?}"
        );
        assert_eq!(prune.contains(&op), mode == LockMode::Prune, "{op:?}");
    }
    let (_b, repo) = init();
    let locking: Vec<_> = shared
        .iter()
        .chain(&prune)
        .chain(&exclusive)
        .copied()
        .collect();
    for running in &locking {
        let held = lock::lock_for(&repo, *running, Duration::ZERO)
            .unwrap()
            .expect("a lock");
        for wants in strata_engine::Operation::ALL {
            // Shared beside shared and prune; prune beside shared only; exclusive alone.
            let may = none.contains(&wants)
                || !(exclusive.contains(running)
                    || exclusive.contains(&wants)
                    || prune.contains(running) && prune.contains(&wants));
            let got = lock::lock_for(&repo, wants, Duration::ZERO);
            assert_eq!(
                got.is_ok(),
                may,
                "{wants:?} while {running:?} runs: {:?}",
                got.as_ref().err()
            );
            if let Ok(Some(g)) = got {
                assert_eq!(
                    names(&repo, FileType::Lock).len(),
                    2,
                    "{wants:?} beside {running:?}"
                );
                drop(g);
            }
        }
        drop(held);
        assert!(names(&repo, FileType::Lock).is_empty());
    }
}

/// Held snapshots are never forgotten, whoever calls the engine (the CLI checks too, but a
/// runner or a server calls the engine directly); nothing is removed then, not even the
/// snapshots that are not held.
#[test]
fn the_engine_refuses_to_forget_held_snapshots() {
    let (_b, repo) = init();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), b"x").unwrap();
    let paths = [src.path().to_path_buf()];
    let held = BackupOptions {
        keep_until_ns: Some(strata_engine::now_ns() + 3600 * 1_000_000_000),
        ..BackupOptions::default()
    };
    let h = backup_paths(&repo, &paths, &held, &NoProgress).unwrap();
    let free = backup_paths(&repo, &paths, &BackupOptions::default(), &NoProgress).unwrap();
    let err = snapshots::forget(&repo, &[free.snapshot_id, h.snapshot_id]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.to_string()
            .contains(&format!("{} held until", h.snapshot_id.short())),
        "{err}"
    );
    assert_eq!(snapshots::list(&repo).unwrap().len(), 2);
    snapshots::forget(&repo, &[free.snapshot_id]).unwrap();
    assert_eq!(snapshots::list(&repo).unwrap().len(), 1);
}
