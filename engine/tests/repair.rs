//! Repair over the in-memory backend, where the end-to-end tests cannot easily reach: packs
//! of dictionary-compressed blobs whose header (or whose dictionary's pack) is damaged, and
//! storage failures that must stop a repair or a lock check rather than pass for damage.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::repair::repair_index;
use strata_engine::{lock, snapshots, ErrorKind, Repository};
use strata_format::blob::BlobType;
use strata_storage::fault::{FaultBackend, FaultPlan};
use strata_storage::{Backend, FileType};

fn init() -> Arc<dyn Backend> {
    common::init_memory(1 << 20)
}

/// A repository holding one snapshot of small source files; returns the backend, the
/// source, and the packs holding the dictionary and the data blobs.
fn repository(work: &Path) -> (Arc<dyn Backend>, std::path::PathBuf, String, Vec<String>) {
    let backend = init();
    let src = work.join("src");
    common::small_source_files(&src, 1200);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    backup_paths(
        &repo,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let index = repo.index();
    let mut dict_pack = None;
    let mut data_packs = Vec::new();
    for (_, loc) in index.iter() {
        let name = index.pack(loc.pack).0.to_hex();
        match loc.blob_type {
            BlobType::Dictionary => dict_pack = Some(name),
            BlobType::Data if !data_packs.contains(&name) => data_packs.push(name),
            _ => {}
        }
    }
    data_packs.sort();
    let dict_pack = dict_pack.expect("the backup trained a dictionary");
    (backend, src, dict_pack, data_packs)
}

/// Overwrites the trailer of a pack (its last 4 bytes, the header length), so that its
/// header cannot be read; the blobs before it are intact.
fn break_header(backend: &Arc<dyn Backend>, name: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut bytes = rt
        .block_on(backend.read(FileType::Pack, name))
        .unwrap()
        .to_vec();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    rt.block_on(backend.write(FileType::Pack, name, Bytes::from(bytes)))
        .unwrap();
}

/// Checks every byte and restores the snapshot identical to `src`.
fn assert_intact(backend: &Arc<dyn Backend>, src: &Path) {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    common::assert_checks_clean(&repo);
    let (_, snap) = snapshots::find(&repo, "latest").unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &snap, target.path(), src);
    let status = std::process::Command::new("diff")
        .arg("-r")
        .arg(src)
        .arg(&restored)
        .status()
        .unwrap();
    assert!(status.success(), "restore differs from the source");
}

/// A data pack whose header is unreadable is scanned; its blobs are compressed against the
/// dictionary and all of them are kept, with or without --read-data.
#[test]
fn scanning_a_pack_keeps_dictionary_compressed_blobs() {
    for read_data in [false, true] {
        let work = tempfile::tempdir().unwrap();
        let (backend, src, _, data_packs) = repository(work.path());
        break_header(&backend, &data_packs[0]);
        let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
        let r = repair_index(&repo, read_data, &NoProgress).unwrap();
        assert_eq!(r.packs_salvaged, 1, "read_data {read_data}: {r:?}");
        assert_eq!(r.blobs_lost, 0, "read_data {read_data}: {r:?}");
        assert_intact(&backend, &src);
    }
}

/// The dictionary's own pack has an unreadable header: the dictionary is recovered by the
/// scan, and the blobs compressed against it (in other packs) are not taken for damage.
#[test]
fn a_damaged_dictionary_pack_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (backend, src, dict_pack, _) = repository(work.path());
    break_header(&backend, &dict_pack);
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let r = repair_index(&repo, true, &NoProgress).unwrap();
    assert_eq!(r.packs_salvaged, 1, "{r:?}");
    assert_eq!(r.blobs_lost, 0, "{r:?}");
    assert_intact(&backend, &src);
}

/// A storage failure while reading a pack stops `repair index` before it changes
/// anything, instead of counting the pack as damaged and deleting it.
#[test]
fn a_storage_failure_stops_repair_index() {
    let work = tempfile::tempdir().unwrap();
    let (backend, src, _, _) = repository(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let list = |ft| {
        let mut v: Vec<String> = rt
            .block_on(backend.list(ft))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        v.sort();
        v
    };
    let (packs, index) = (list(FileType::Pack), list(FileType::Index));
    // Opening reads the config and the key file; after that every 3rd read fails.
    let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
        backend.clone(),
        FaultPlan {
            fail_reads_every: Some(3),
            ..FaultPlan::default()
        },
    ));
    let repo = Repository::open_without_index(faulty, b"pw").unwrap();
    let err = repair_index(&repo, true, &NoProgress).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    assert_eq!(list(FileType::Pack), packs, "packs changed");
    assert_eq!(list(FileType::Index), index, "index files changed");
    assert_intact(&backend, &src);
}

/// A lock that cannot be read might be live: taking a lock fails, and `unlock` keeps it.
#[test]
fn an_unreadable_lock_is_not_taken_for_absent() {
    let backend = init();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let held = lock::lock(&repo, "backup", false).unwrap();
    let faulty = || -> Repository {
        // Reads 1 and 2 open the repository (config, key file); read 3 is the lock.
        let b: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            backend.clone(),
            FaultPlan {
                fail_reads_every: Some(3),
                ..FaultPlan::default()
            },
        ));
        Repository::open_without_index(b, b"pw").unwrap()
    };
    let err = lock::lock(&faulty(), "prune", true)
        .err()
        .expect("must fail");
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    let found = lock::unlock(&faulty(), false).unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].removed, "{found:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(backend.list(FileType::Lock)).unwrap().len(), 1);
    drop(held);
}
