//! Typed findings: what check, restore and repair report about a damaged repository names
//! the kind of damage, the object at fault by its id, and the snapshot and path it hurts.

use crate::common;

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::checker::{check, check_with, CheckOptions};
use strata_engine::progress::{NoProgress, Progress};
use strata_engine::repair::repair_snapshots;
use strata_engine::report::{Finding, FindingKind, ObjectRef};
use strata_engine::restorer::{restore, RestoreOptions};
use strata_engine::{lock, Repository};
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, Digest, PackId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::NodeKind;
use strata_storage::{Backend, FileType};

/// A repository with small packs and two snapshots of a tree of a few files (the second
/// with one file more); returns them with the source directory.
fn two_snapshots() -> (
    Arc<dyn Backend>,
    Vec<(SnapshotId, SnapshotFile)>,
    tempfile::TempDir,
) {
    let backend = common::init_memory(256 << 10);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("sub")).unwrap();
    for (i, name) in ["a.bin", "sub/b.bin", "sub/c.bin"].into_iter().enumerate() {
        std::fs::write(
            src.path().join(name),
            common::pseudo_random(300 << 10, i as u64 + 1),
        )
        .unwrap();
    }
    let mut snaps = Vec::new();
    for round in 0..2 {
        if round == 1 {
            std::fs::write(
                src.path().join("d.bin"),
                common::pseudo_random(200 << 10, 9),
            )
            .unwrap();
        }
        let r = backup_paths(
            &repo,
            &[src.path().to_path_buf()],
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        snaps.push((r.snapshot_id, r.snapshot));
    }
    (backend, snaps, src)
}

/// Every file of a snapshot: (path in the snapshot, content blob ids).
fn files(repo: &Repository, tree: &BlobId, prefix: &[u8], out: &mut Vec<(Vec<u8>, Vec<BlobId>)>) {
    for node in repo.load_tree(tree).unwrap().nodes {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&node.name);
        match node.kind {
            NodeKind::File { content } => out.push((path, content)),
            NodeKind::Dir { subtree } => files(repo, &subtree, &path, out),
            _ => {}
        }
    }
}

fn pack_of(repo: &Repository, blob: &BlobId) -> PackId {
    repo.index().pack(repo.index().get(blob).unwrap().pack).0
}

/// (kind, object, snapshot, path) of each finding, for comparing sets.
type Key = (
    FindingKind,
    Option<ObjectRef>,
    Option<SnapshotId>,
    Option<Vec<u8>>,
);

fn keys<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> BTreeSet<String> {
    findings
        .into_iter()
        .map(|f| format!("{:?}", (f.kind, &f.object, f.snapshot, f.path_lossy())))
        .collect()
}

fn key_set(expected: impl IntoIterator<Item = Key>) -> BTreeSet<String> {
    expected
        .into_iter()
        .map(|(kind, object, snap, path)| {
            let path = path.as_deref().map(String::from_utf8_lossy);
            format!("{:?}", (kind, &object, snap, path))
        })
        .collect()
}

#[test]
fn check_names_the_missing_pack_and_every_snapshot_and_path_that_needs_it() {
    let (backend, snaps, src) = two_snapshots();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let a_path = src.path().join("a.bin").as_os_str().as_bytes().to_vec();
    let mut first = Vec::new();
    files(&repo, &snaps[0].1.tree, b"", &mut first);
    let a_content = &first
        .iter()
        .find(|(p, _)| *p == a_path)
        .expect("a.bin backed up")
        .1;
    let lost = pack_of(&repo, &a_content[0]);
    repo.block_on(backend.delete(FileType::Pack, &lost.to_hex()))
        .unwrap();
    // A snapshot that does not decrypt, and a pack no index names (stored under their
    // hashes, so that only their content is wrong).
    let garbage = vec![7u8; 300];
    let bad_snap = SnapshotId(Digest::of_stored(&garbage));
    let stray = PackId(Digest::of_stored(b"stray"));
    repo.block_on(backend.write(FileType::Snapshot, &bad_snap.to_hex(), Bytes::from(garbage)))
        .unwrap();
    repo.block_on(backend.write(
        FileType::Pack,
        &stray.to_hex(),
        Bytes::from_static(b"stray"),
    ))
    .unwrap();

    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let report = check(&repo, &NoProgress).unwrap();
    // Every file with a blob in the lost pack, in each snapshot that has it, is named with
    // its first such blob (the one check stops at).
    let mut expected: Vec<Key> = vec![
        (
            FindingKind::MissingPack,
            Some(ObjectRef::pack(lost)),
            None,
            None,
        ),
        (
            FindingKind::UnreadableSnapshot,
            Some(ObjectRef::Snapshot { id: bad_snap }),
            Some(bad_snap),
            None,
        ),
    ];
    let mut hurt = 0;
    for (sid, snap) in &snaps {
        let mut all = Vec::new();
        files(&repo, &snap.tree, b"", &mut all);
        for (path, content) in all {
            if let Some(blob) = content.iter().find(|b| pack_of(&repo, b) == lost) {
                hurt += 1;
                expected.push((
                    FindingKind::BlobInDamagedPack,
                    Some(ObjectRef::blob(BlobType::Data, *blob)),
                    Some(*sid),
                    Some(path),
                ));
            }
        }
    }
    assert!(hurt >= 2, "a.bin is in both snapshots");
    assert_eq!(
        keys(&report.errors),
        key_set(expected),
        "{:#?}",
        report.errors
    );
    assert_eq!(
        keys(&report.warnings),
        key_set([(
            FindingKind::UnindexedPack,
            Some(ObjectRef::pack(stray)),
            None,
            None
        )]),
        "{:#?}",
        report.warnings
    );
    // The message is still the line check has always printed.
    let a_finding = report
        .errors
        .iter()
        .find(|f| f.snapshot == Some(snaps[0].0) && f.path.as_deref() == Some(&a_path[..]))
        .unwrap();
    assert_eq!(
        a_finding.to_string(),
        format!(
            "snapshot {}: {}: data blob {} is in damaged or missing pack {lost}",
            snaps[0].0.short(),
            String::from_utf8_lossy(&a_path),
            a_content[0]
        )
    );

    // A restore names the pack it could not read, at a.bin's path.
    let target = tempfile::tempdir().unwrap();
    let stats = restore(
        &repo,
        &snaps[0].1,
        target.path(),
        &RestoreOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let at_a: Vec<&Finding> = stats
        .errors
        .iter()
        .filter(|f| f.path.as_deref() == Some(&a_path[..]))
        .collect();
    assert_eq!(at_a.len(), 1, "{:#?}", stats.errors);
    assert_eq!(at_a[0].kind, FindingKind::UnreadablePack, "{:#?}", at_a);
    assert_eq!(at_a[0].object, Some(ObjectRef::pack(lost)), "{:#?}", at_a);

    // `repair snapshots` names what it would drop, snapshot and path.
    let _lock = lock::lock(&repo, "repair snapshots", true).unwrap();
    let done = repair_snapshots(&repo, true, false, &NoProgress).unwrap();
    let dropped: Vec<&Finding> = done.iter().flat_map(|r| &r.dropped).collect();
    let from_check: Vec<&Finding> = report
        .errors
        .iter()
        .filter(|f| f.kind == FindingKind::BlobInDamagedPack)
        .collect();
    assert_eq!(keys(dropped), keys(from_check), "{done:#?}");
    // Its bytes match its name: not damage, but a file this key does not open (kept).
    let bad = done.iter().find(|r| r.id == bad_snap).expect("reported");
    let why = bad.unrepairable.as_ref().expect("cannot be repaired");
    assert_eq!(why.kind, FindingKind::ForeignSnapshot, "{why:?}");
    assert_eq!(why.snapshot, Some(bad_snap), "{why:?}");
}

#[test]
fn read_data_names_the_damaged_blob_in_its_pack_and_in_each_snapshot_and_path() {
    let (backend, snaps, src) = two_snapshots();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let b_path = src.path().join("sub/b.bin").as_os_str().as_bytes().to_vec();
    let mut first = Vec::new();
    files(&repo, &snaps[0].1.tree, b"", &mut first);
    let blob = first
        .iter()
        .find(|(p, _)| *p == b_path)
        .expect("b.bin backed up")
        .1[1];
    let loc = repo.index().get(&blob).unwrap();
    let pack = pack_of(&repo, &blob);
    let mut bytes = repo
        .block_on(backend.read(FileType::Pack, &pack.to_hex()))
        .unwrap()
        .to_vec();
    bytes[loc.offset as usize + loc.length as usize / 2] ^= 1;
    repo.block_on(backend.write(FileType::Pack, &pack.to_hex(), Bytes::from(bytes)))
        .unwrap();

    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let opts = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    let report = check_with(&repo, &opts, &NoProgress).unwrap();
    let object = Some(ObjectRef::blob(BlobType::Data, blob));
    let mut expected: Vec<Key> = vec![
        (
            FindingKind::DamagedPack,
            Some(ObjectRef::pack(pack)),
            None,
            None,
        ),
        (FindingKind::DamagedBlob, object.clone(), None, None),
    ];
    for (sid, _) in &snaps {
        expected.push((
            FindingKind::DamagedBlob,
            object.clone(),
            Some(*sid),
            Some(b_path.clone()),
        ));
    }
    assert_eq!(
        keys(&report.errors),
        key_set(expected),
        "{:#?}",
        report.errors
    );
    assert!(report.warnings.is_empty(), "{:#?}", report.warnings);
}

/// Replaces one file with another of the same name just before the archiver reads it.
struct Replacer(PathBuf);

impl Progress for Replacer {
    fn current(&self, path: &Path) {
        if path == self.0 {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, b"not what was listed").unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }
}

#[test]
fn a_backup_names_the_source_path_it_left_out() {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open(backend, b"pw").unwrap();
    let src = tempfile::tempdir().unwrap();
    let replaced = src.path().join("replaced");
    std::fs::write(&replaced, b"the listed content").unwrap();
    std::fs::write(src.path().join("kept"), b"stays").unwrap();
    let r = backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &Replacer(replaced.clone()),
    )
    .unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let f = &r.errors[0];
    assert_eq!(f.kind, FindingKind::UnreadableSource, "{f:?}");
    assert_eq!(f.object, None, "{f:?}");
    assert_eq!(f.snapshot, None, "{f:?}");
    assert_eq!(
        f.path.as_deref(),
        Some(replaced.as_os_str().as_bytes()),
        "{f:?}"
    );
    assert_eq!(
        f.to_string(),
        format!(
            "{}: replaced by another file after it was listed; skipped",
            replaced.display()
        )
    );
}
