//! Engine tests over the in-memory backend (the real backends are tested end to end in
//! `tests/e2e`): round trips, dedup, locks, damage detection.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, backup_stream, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::{checker, lock, snapshots, ErrorKind, Repository};
use strata_storage::{Backend, FileType, OpendalBackend};

fn init() -> (Arc<dyn Backend>, Repository) {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    (backend, repo)
}

fn reopen(backend: &Arc<dyn Backend>) -> Repository {
    Repository::open(backend.clone(), b"pw").unwrap()
}

/// Restores the whole snapshot under `target` (errors are in the stats).
fn restore_all(
    repo: &Repository,
    snap: &strata_format::snapshot::SnapshotFile,
    target: &Path,
) -> strata_engine::restorer::RestoreStats {
    restore(repo, snap, target, &RestoreOptions::default(), &NoProgress).unwrap()
}

/// Flips one bit of the pack byte at `offset` of the pack at position `pack` in the index.
fn flip_pack_byte(backend: &Arc<dyn Backend>, repo: &Repository, pack: u32, offset: usize) {
    let (pack, _) = repo.index().pack(pack);
    let mut bytes = repo
        .block_on(backend.read(FileType::Pack, &pack.to_hex()))
        .unwrap()
        .to_vec();
    bytes[offset] ^= 1;
    repo.block_on(backend.write(FileType::Pack, &pack.to_hex(), Bytes::from(bytes)))
        .unwrap();
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
    std::fs::write(dir.join("sub/big.bin"), common::pseudo_random(3 << 20, 1)).unwrap();
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
    let stats = restore_all(&repo, &second.snapshot, out.path());
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let restored = out.path().join(src.path().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("sub/big.bin")).unwrap(),
        common::pseudo_random(3 << 20, 1)
    );
    assert_eq!(
        std::fs::read_link(restored.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
    assert!(checker::check(&repo, &NoProgress).unwrap().is_ok());
}

/// Backs up `data` as the stream `/dump.sql`; returns the snapshot's id.
fn backup_dump(repo: &Repository, data: &[u8]) -> strata_format::id::SnapshotId {
    backup_stream(
        repo,
        "dump.sql",
        &mut &data[..],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap()
    .snapshot_id
}

#[test]
fn stream_backup_and_snapshot_lookup() {
    let (backend, repo) = init();
    let data = common::pseudo_random(1 << 20, 9);
    let snapshot_id = backup_dump(&repo, &data);
    let repo = reopen(&backend);
    let (id, snap) = snapshots::find(&repo, &snapshot_id.to_hex()[..6]).unwrap();
    assert_eq!(id, snapshot_id);
    assert_eq!(snapshots::find(&repo, "latest").unwrap().0, id);
    assert_eq!(
        snapshots::find(&repo, "ffffffffff").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let node = stream_node(&repo, &snap, b"/dump.sql");
    let mut out = Vec::new();
    strata_engine::restorer::write_content(&repo, &node, &mut out).unwrap();
    assert_eq!(out, data);
}

/// The node of the only file of a stream snapshot.
fn stream_node(
    repo: &Repository,
    snap: &strata_format::snapshot::SnapshotFile,
    path: &[u8],
) -> strata_format::tree::Node {
    match strata_engine::treewalk::resolve(repo, &snap.tree, path).unwrap() {
        strata_engine::treewalk::Found::Node { node, .. } => node,
        _ => panic!("not a node"),
    }
}

/// A stream (a database dump) is written back with one ranged read per pack, not a read per
/// blob; a damaged blob stops it, named with its pack, after exactly the content before it.
#[test]
fn a_stream_is_read_a_pack_at_a_time_and_verified() {
    use strata_storage::fault::{FaultBackend, FaultPlan};
    let (backend, repo) = init();
    let data = common::pseudo_random(6 << 20, 17);
    let snapshot_id = backup_dump(&repo, &data);
    let counting = Arc::new(FaultBackend::new(backend.clone(), FaultPlan::default()));
    let repo = Repository::open(counting.clone(), b"pw").unwrap();
    let snap = snapshots::load(&repo, &snapshot_id).unwrap();
    let node = stream_node(&repo, &snap, b"/dump.sql");
    let strata_format::tree::NodeKind::File { content } = &node.kind else {
        panic!("not a file")
    };
    let blobs = content.len() as u64;
    assert!(blobs >= 40, "{blobs} blobs");
    let before = counting.reads();
    let mut out = Vec::new();
    let n = strata_engine::restorer::write_content(&repo, &node, &mut out).unwrap();
    let reads = counting.reads() - before;
    assert!(out == data, "the stream differs");
    assert_eq!(n, data.len() as u64);
    // Packs of about 1 MiB hold the blobs, and a ranged read covers up to 2 MiB: one read
    // per pack, however the packer spread consecutive chunks over them.
    let packs: std::collections::HashSet<u32> = content
        .iter()
        .map(|id| repo.index().get(id).unwrap().pack)
        .collect();
    assert!(packs.len() >= 4, "{} packs", packs.len());
    assert_eq!(reads, packs.len() as u64, "reads for {blobs} blobs");

    // Damage the blob in the middle of the stream.
    let middle = &content[content.len() / 2];
    let loc = repo.index().get(middle).unwrap();
    let pack = repo.index().pack(loc.pack).0.to_hex();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut bytes = rt
        .block_on(backend.read(FileType::Pack, &pack))
        .unwrap()
        .to_vec();
    bytes[loc.offset as usize + loc.length as usize - 3] ^= 0x40;
    rt.block_on(backend.write(FileType::Pack, &pack, Bytes::from(bytes)))
        .unwrap();
    let mut out = Vec::new();
    let err = strata_engine::restorer::write_content(&repo, &node, &mut out).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&middle.to_string()) && msg.contains(&pack),
        "{msg}"
    );
    let expected: u64 = content[..content.len() / 2]
        .iter()
        .map(|id| repo.index().get(id).unwrap().raw_length as u64)
        .sum();
    assert_eq!(out.len() as u64, expected);
    assert!(
        out[..] == data[..out.len()],
        "the content before the damage differs"
    );
}

#[test]
fn wrong_password_and_missing_repository() {
    let (backend, repo) = init();
    let err = Repository::open(backend.clone(), b"nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    // The process remembers an unwrapped key (a server opens the repository per request):
    // the right password opens it again to the same key, a wrong one still does not.
    let again = Repository::open(backend.clone(), b"pw").unwrap();
    assert!(again.key() == repo.key());
    let err = Repository::open(backend.clone(), b"nope").unwrap_err();
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
    let all = strata_engine::report::messages(&report.errors).join("\n");
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
    // /proc files report size 0 but have content (backed up when asked for).
    let (backend, repo) = init();
    let want = std::fs::read("/proc/version").unwrap();
    assert!(!want.is_empty());
    let opts = BackupOptions {
        include_pseudo_fs: true,
        ..BackupOptions::default()
    };
    let r = backup_paths(&repo, &["/proc/version".into()], &opts, &NoProgress).unwrap();
    let repo = reopen(&backend);
    let out = tempfile::tempdir().unwrap();
    let stats = restore_all(&repo, &r.snapshot, out.path());
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    assert_eq!(
        std::fs::read(out.path().join("proc/version")).unwrap(),
        want
    );
}

#[test]
fn a_damaged_snapshot_does_not_block_backups_but_latest_names_it() {
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
    // The damaged snapshot may be the newest: `latest` must not silently mean an older one.
    let e = snapshots::find(&repo, "latest").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    let msg = e.to_string();
    assert!(msg.contains(&name), "{msg}");
    assert!(msg.contains("strata forget"), "{msg}");
    // Named by id, the readable snapshot is still found.
    let by_id = snapshots::find(&repo, &r.snapshot_id.to_hex()).unwrap();
    assert_eq!(by_id.0, r.snapshot_id);
    // A backup still picks the readable parent: an old damaged snapshot must not stop it.
    let again = backup(&repo, src.path());
    assert_eq!(again.snapshot.parent, Some(r.snapshot_id));
    let report = checker::check(&repo, &NoProgress).unwrap();
    assert!(
        report.errors.iter().any(|e| e.message.contains(&name)),
        "{:?}",
        report.errors
    );
    // Once the damaged file is gone, `latest` is the newest again.
    repo.block_on(backend.delete(FileType::Snapshot, &name))
        .unwrap();
    let repo = reopen(&backend);
    assert_eq!(
        snapshots::find(&repo, "latest").unwrap().0,
        again.snapshot_id
    );
}

/// (dictionary blobs, data blobs compressed against a dictionary) in the repository.
fn dictionary_use(backend: &Arc<dyn Backend>, repo: &Repository) -> (usize, usize) {
    use strata_format::blob::{BlobHeader, BlobType};
    use strata_format::envelope::Compression;
    let index = repo.index();
    let (mut dicts, mut compressed) = (0, 0);
    for (_, loc) in index.iter() {
        let (pack, _) = index.pack(loc.pack);
        let header = repo
            .block_on(backend.read_range(FileType::Pack, &pack.to_hex(), loc.offset as u64, 44))
            .unwrap();
        let h = BlobHeader::parse(&header).unwrap();
        match h.blob_type {
            BlobType::Dictionary => dicts += 1,
            BlobType::Data if h.compression == Compression::ZstdDict => compressed += 1,
            _ => {}
        }
    }
    (dicts, compressed)
}

#[test]
fn small_files_share_a_trained_dictionary() {
    use strata_format::blob::BlobType;
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    common::small_source_files(src.path(), 1500);
    let first = backup(&repo, src.path());
    assert!(first.errors.is_empty());

    let repo = reopen(&backend);
    assert_eq!(repo.dictionaries().len(), 1, "one dictionary was trained");
    let (dicts, compressed) = dictionary_use(&backend, &repo);
    assert_eq!(dicts, 1);
    assert!(compressed > 1400, "{compressed} of 1500 small blobs use it");
    // Against the dictionary the small files take less room than compressed one by one.
    let mut alone = 0usize;
    let mut stored = 0usize;
    for entry in walk_files(src.path()) {
        let data = std::fs::read(&entry).unwrap();
        alone += strata_format::envelope::compress(&data, 3).1.len();
        let id = repo.key().blob_id(&data);
        stored += repo.index().get(&id).unwrap().length as usize - 84;
    }
    assert!(
        stored * 10 < alone * 9,
        "dictionary {stored} vs alone {alone}"
    );

    // Restore is byte-identical, and reading every byte finds nothing wrong.
    let out = tempfile::tempdir().unwrap();
    let stats = restore_all(&repo, &first.snapshot, out.path());
    assert!(stats.errors.is_empty(), "{:?}", stats.errors);
    let restored = out.path().join(src.path().strip_prefix("/").unwrap());
    for entry in walk_files(src.path()) {
        let rel = entry.strip_prefix(src.path()).unwrap();
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            std::fs::read(restored.join(rel)).unwrap()
        );
    }
    let opts = checker::CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let report = checker::check_with(&repo, &opts, &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);

    // A later backup uses the same dictionary for new small files.
    std::fs::write(src.path().join("d0/new.c"), "// SPDX-License-Identifier: GPL-2.0-only\n#include <linux/kernel.h>\nstatic int driver_new_probe(struct platform_device *pdev)\n{\n\treturn 0;\n}\n").unwrap();
    backup(&repo, src.path());
    let repo = reopen(&backend);
    assert_eq!(repo.dictionaries().len(), 1, "no second dictionary");
    assert_eq!(dictionary_use(&backend, &repo), (1, compressed + 1));

    // Damage the dictionary: files that need it fail to restore and say why; check
    // --read-data names the damaged dictionary blob.
    let (dict_id, loc) = repo
        .index()
        .iter()
        .find(|(_, l)| l.blob_type == BlobType::Dictionary)
        .unwrap();
    // The dictionary has a pack of its own, written and indexed before any blob needing it.
    assert_eq!(
        repo.index()
            .iter()
            .filter(|(_, l)| l.pack == loc.pack)
            .count(),
        1,
        "the dictionary's pack holds only the dictionary"
    );
    flip_pack_byte(&backend, &repo, loc.pack, loc.offset as usize + 60);
    let repo = reopen(&backend);
    assert!(repo.dictionaries().is_empty());
    let out = tempfile::tempdir().unwrap();
    let stats = restore_all(&repo, &first.snapshot, out.path());
    assert!(stats.errors.len() > 1400, "{}", stats.errors.len());
    assert!(
        stats.errors[0].message.contains("dictionary"),
        "the error names the missing dictionary: {}",
        stats.errors[0]
    );
    let report = checker::check_with(&repo, &opts, &NoProgress).unwrap();
    assert!(
        report.errors.iter().any(|e| e
            .message
            .contains(&format!("dictionary blob {dict_id} is damaged"))),
        "{:?}",
        &report.errors[..report.errors.len().min(5)]
    );
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// More files than one restore batch: every file, and hard links whose first path is in an
/// earlier batch, come back.
#[test]
fn restore_in_batches_keeps_every_file_and_hard_link() {
    use std::os::unix::fs::MetadataExt;
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    let n = 20_500;
    for i in 0..n {
        let dir = src.path().join(format!("d{:03}", i % 100));
        if i < 100 {
            std::fs::create_dir(&dir).unwrap();
        }
        std::fs::write(dir.join(format!("f{i}")), format!("file {i}\n")).unwrap();
    }
    std::fs::write(src.path().join("d000/linked"), b"shared").unwrap();
    std::fs::hard_link(src.path().join("d000/linked"), src.path().join("d099/link")).unwrap();
    std::fs::create_dir(src.path().join("empty")).unwrap();
    let snap = backup(&repo, src.path());
    let repo = reopen(&backend);
    let out = tempfile::tempdir().unwrap();
    let stats = restore_all(&repo, &snap.snapshot, out.path());
    assert!(
        stats.errors.is_empty(),
        "{:?}",
        &stats.errors[..stats.errors.len().min(3)]
    );
    assert_eq!(stats.files, n as u64 + 2);
    let restored = out.path().join(src.path().strip_prefix("/").unwrap());
    for i in 0..n {
        let p = restored.join(format!("d{:03}/f{i}", i % 100));
        assert_eq!(std::fs::read(&p).unwrap(), format!("file {i}\n").as_bytes());
    }
    let a = std::fs::metadata(restored.join("d000/linked")).unwrap();
    let b = std::fs::metadata(restored.join("d099/link")).unwrap();
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "hard link restored as a link"
    );
    assert!(restored.join("empty").is_dir());
}

/// A damaged subtree is reported with its path, and everything else is still restored.
#[test]
fn restore_goes_on_past_a_damaged_subtree() {
    let (backend, repo) = init();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("good")).unwrap();
    std::fs::create_dir_all(src.path().join("bad/inner")).unwrap();
    std::fs::write(src.path().join("good/kept.txt"), b"kept").unwrap();
    std::fs::write(src.path().join("bad/inner/lost.txt"), b"lost").unwrap();
    let snap = backup(&repo, src.path());
    let repo = reopen(&backend);
    let bad = [src.path().as_os_str().as_encoded_bytes(), b"/bad"].concat();
    let subtree = match strata_engine::treewalk::resolve(&repo, &snap.snapshot.tree, &bad).unwrap()
    {
        strata_engine::treewalk::Found::Node { node, .. } => match node.kind {
            strata_format::tree::NodeKind::Dir { subtree } => subtree,
            _ => panic!("bad is a directory"),
        },
        _ => panic!("bad not found"),
    };
    let loc = repo.index().get(&subtree).unwrap();
    flip_pack_byte(
        &backend,
        &repo,
        loc.pack,
        loc.offset as usize + loc.length as usize - 1,
    );
    let repo = reopen(&backend);
    let out = tempfile::tempdir().unwrap();
    let stats = restore_all(&repo, &snap.snapshot, out.path());
    assert_eq!(stats.errors.len(), 1, "{:?}", stats.errors);
    assert!(
        stats.errors[0].message.contains("/bad:"),
        "{:?}",
        stats.errors
    );
    let restored = out.path().join(src.path().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("good/kept.txt")).unwrap(),
        b"kept"
    );
    assert!(!restored.join("bad/inner").exists());
}

/// A storage failure in the middle of a backup stops it with that failure's message and
/// kind, whichever of the backup's threads reports it (not a bare "uploaders stopped").
#[test]
fn a_failed_upload_is_reported_by_name() {
    use strata_storage::fault::{FaultBackend, FaultPlan};
    let src = tempfile::tempdir().unwrap();
    for i in 0..16u64 {
        std::fs::write(
            src.path().join(format!("f{i:02}.bin")),
            common::pseudo_random(1 << 20, i + 100),
        )
        .unwrap();
    }
    let (backend, _) = init();
    for n in [1, 2, 3, 5, 8] {
        for connections in [1, 2] {
            let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
                backend.clone(),
                FaultPlan {
                    fail_at_mutation: Some(n),
                    // Slow uploads: packing threads wait at the uploaders when one fails.
                    delay_ms: Some(10),
                    ..FaultPlan::default()
                },
            ));
            let mut repo = Repository::open(faulty, b"pw").unwrap();
            repo.set_connections(connections);
            let Err(err) = backup_paths(
                &repo,
                &[src.path().to_path_buf()],
                &BackupOptions::default(),
                &NoProgress,
            ) else {
                panic!("mutation {n} failed, yet the backup succeeded");
            };
            assert_eq!(err.kind(), ErrorKind::Storage, "mutation {n}: {err}");
            assert!(
                err.to_string().contains("injected fault"),
                "mutation {n}, {connections} connections: {err}"
            );
        }
    }
}
