//! Engine tests over the in-memory backend (the real backends are tested end to end in
//! `tests/e2e`): round trips, dedup, locks, damage detection.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, backup_stream, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::{checker, lock, snapshots, ErrorKind, InitOptions, Repository};
use strata_format::chunker::ChunkerParams;
use strata_format::keyfile::KdfParams;
use strata_storage::{Backend, FileType, OpendalBackend};

fn init() -> (Arc<dyn Backend>, Repository) {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        chunker: ChunkerParams {
            min_size: 16 * 1024,
            avg_size: 64 * 1024,
            max_size: 256 * 1024,
        },
        pack_size: 1 << 20,
        compression_level: 3,
    };
    Repository::init(backend.clone(), b"pw", &opts).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    (backend, repo)
}

fn reopen(backend: &Arc<dyn Backend>) -> Repository {
    Repository::open(backend.clone(), b"pw").unwrap()
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn backup(repo: &Repository, dir: &Path) -> strata_engine::archiver::BackupResult {
    backup_paths(
        repo,
        &[dir.to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap()
}

fn make_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    std::fs::write(dir.join("a.txt"), b"hello").unwrap();
    std::fs::write(dir.join("sub/big.bin"), pseudo_random(3 << 20, 1)).unwrap();
    std::fs::write(dir.join("sub/deeper/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../a.txt", dir.join("sub/link")).unwrap();
}

#[test]
fn round_trip_dedup_and_parent() {
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let first = backup(&repo, src.path());
    assert!(first.errors.is_empty());
    assert!(first.snapshot.summary.data_blobs_added > 10);
    assert_eq!(first.snapshot.summary.files_new, 3);

    let repo = reopen(&backend);
    let second = backup(&repo, src.path());
    assert_eq!(second.snapshot.parent, Some(first.snapshot_id));
    assert_eq!(second.snapshot.summary.data_blobs_added, 0);
    assert_eq!(second.snapshot.summary.files_unchanged, 3);
    assert_eq!(second.snapshot.summary.bytes_read, 0);

    let repo = reopen(&backend);
    // The backed-up directory's tree is reused as is (its parents, like /tmp, may change
    // while other tests run, so compare the subtree, not the root).
    let subtree =
        |snap: &strata_format::snapshot::SnapshotFile| match strata_engine::treewalk::resolve(
            &repo,
            &snap.tree,
            src.path().as_os_str().as_encoded_bytes(),
        )
        .unwrap()
        {
            strata_engine::treewalk::Found::Node { node, .. } => node.kind,
            _ => panic!("source dir not found"),
        };
    assert_eq!(
        subtree(&second.snapshot),
        subtree(&first.snapshot),
        "unchanged tree, same id"
    );
    let out = tempfile::tempdir().unwrap();
    let stats = restore(
        &repo,
        &second.snapshot,
        out.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let restored = out.path().join(src.path().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("sub/big.bin")).unwrap(),
        pseudo_random(3 << 20, 1)
    );
    assert_eq!(
        std::fs::read_link(restored.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
    assert!(checker::check(&repo, &NoProgress).unwrap().is_ok());
}

#[test]
fn stream_backup_and_snapshot_lookup() {
    let (backend, repo) = init();
    let data = pseudo_random(1 << 20, 9);
    let r = backup_stream(
        &repo,
        "dump.sql",
        &mut &data[..],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let repo = reopen(&backend);
    let (id, snap) = snapshots::find(&repo, &r.snapshot_id.to_hex()[..6]).unwrap();
    assert_eq!(id, r.snapshot_id);
    assert_eq!(snapshots::find(&repo, "latest").unwrap().0, id);
    assert_eq!(
        snapshots::find(&repo, "ffffffffff").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let node = match strata_engine::treewalk::resolve(&repo, &snap.tree, b"/dump.sql").unwrap() {
        strata_engine::treewalk::Found::Node { node, .. } => node,
        _ => panic!("not a node"),
    };
    let mut out = Vec::new();
    strata_engine::restorer::write_content(&repo, &node, &mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn wrong_password_and_missing_repository() {
    let (backend, _repo) = init();
    let err = Repository::open(backend, b"nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    let empty: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    assert_eq!(
        Repository::open(empty, b"pw").unwrap_err().kind(),
        ErrorKind::RepoNotFound
    );
}

#[test]
fn exclusive_lock_blocks_shared_and_is_released() {
    let (_backend, repo) = init();
    {
        let _held = lock::lock(&repo, "prune", true).unwrap();
        // Our own pid is alive, so the lock is live and conflicts.
        let err = lock::lock(&repo, "backup", false)
            .err()
            .expect("must conflict");
        assert_eq!(err.kind(), ErrorKind::Locked);
        assert!(err.to_string().contains("prune"), "{err}");
    }
    let _a = lock::lock(&repo, "backup", false).unwrap();
    let _b = lock::lock(&repo, "check", false).unwrap();
}

#[test]
fn check_names_snapshot_and_path_of_missing_pack() {
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let r = backup(&repo, src.path());
    // A second snapshot of a different path list that shares the damaged subtree.
    let repo = reopen(&backend);
    let r2 = backup_paths(
        &repo,
        &[src.path().join("sub")],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let repo = reopen(&backend);
    // Delete the pack holding big.bin's first chunk (a data pack).
    let packs = repo.block_on(backend.list(FileType::Pack)).unwrap();
    let data_pack = packs
        .iter()
        .find(|(name, _)| {
            let bytes = repo.block_on(backend.read(FileType::Pack, name)).unwrap();
            strata_format::pack::read_pack_header(repo.key(), &bytes).unwrap()[0].blob_type
                == strata_format::blob::BlobType::Data
        })
        .unwrap()
        .0
        .clone();
    repo.block_on(backend.delete(FileType::Pack, &data_pack))
        .unwrap();
    let report = checker::check(&repo, &NoProgress).unwrap();
    assert!(!report.is_ok());
    let all = report.errors.join("\n");
    assert!(all.contains(&data_pack), "{all}");
    assert!(all.contains(&r.snapshot_id.short()), "{all}");
    assert!(
        all.contains(&r2.snapshot_id.short()),
        "shared damaged tree names every snapshot: {all}"
    );
    assert!(all.contains("big.bin"), "{all}");
}

#[test]
fn corrupt_blob_is_detected_on_restore() {
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let r = backup(&repo, src.path());
    let repo = reopen(&backend);
    for (name, _) in repo.block_on(backend.list(FileType::Pack)).unwrap() {
        let mut bytes = repo
            .block_on(backend.read(FileType::Pack, &name))
            .unwrap()
            .to_vec();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        repo.block_on(backend.write(FileType::Pack, &name, Bytes::from(bytes)))
            .unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    match restore(
        &repo,
        &r.snapshot,
        out.path(),
        &RestoreOptions::default(),
        &NoProgress,
    ) {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}"),
        Ok(stats) => assert!(!stats.errors.is_empty(), "damage went unnoticed"),
    }
}

#[test]
fn size_is_what_was_read_not_what_lstat_said() {
    // /proc files report size 0 but have content.
    let (backend, repo) = init();
    let want = std::fs::read("/proc/version").unwrap();
    assert!(!want.is_empty());
    let r = backup(&repo, Path::new("/proc/version"));
    let repo = reopen(&backend);
    let out = tempfile::tempdir().unwrap();
    let stats = restore(
        &repo,
        &r.snapshot,
        out.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(
        std::fs::read(out.path().join("proc/version")).unwrap(),
        want
    );
}

#[test]
fn a_damaged_snapshot_does_not_block_latest_or_backups() {
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    make_tree(src.path());
    let r = backup(&repo, src.path());
    // Garbage stored under its own hash: passes the name check, fails decryption.
    let garbage = vec![7u8; 300];
    let name = strata_format::id::Digest::of_stored(&garbage).to_hex();
    repo.block_on(backend.write(FileType::Snapshot, &name, Bytes::from(garbage)))
        .unwrap();
    let repo = reopen(&backend);
    assert_eq!(snapshots::find(&repo, "latest").unwrap().0, r.snapshot_id);
    let again = backup(&repo, src.path());
    assert_eq!(again.snapshot.parent, Some(r.snapshot_id));
    let report = checker::check(&repo, &NoProgress).unwrap();
    assert!(
        report.errors.iter().any(|e| e.contains(&name)),
        "{:?}",
        report.errors
    );
}

#[test]
fn stale_locks_are_removed_and_unlock_reports() {
    let (_backend, repo) = init();
    // A lock of a process that cannot exist on this host (pids stay below 2^22).
    let dead = strata_format::lock::LockFile {
        exclusive: true,
        hostname: strata_engine::hostname(),
        username: "ghost".into(),
        pid: 4_999_999,
        time_ns: 0,
        operation: "prune".into(),
    };
    repo.save_object(FileType::Lock, &dead).unwrap();
    // Removed automatically: a killed cron job must not block the next one.
    drop(lock::lock(&repo, "backup", false).unwrap());
    assert!(repo
        .block_on(repo.backend().list(FileType::Lock))
        .unwrap()
        .is_empty());

    let live = lock::lock(&repo, "backup", false).unwrap();
    repo.save_object(FileType::Lock, &dead).unwrap();
    let found = lock::unlock(&repo, false).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        found.iter().filter(|l| l.removed).count(),
        1,
        "only the dead one: {found:?}"
    );
    let found = lock::unlock(&repo, true).unwrap();
    assert!(found.iter().all(|l| l.removed));
    std::mem::forget(live); // its file is gone already
}
