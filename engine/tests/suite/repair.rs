//! Repair over the in-memory backend, where the end-to-end tests cannot easily reach: packs
//! of dictionary-compressed blobs whose header (or whose dictionary's pack) is damaged,
//! storage failures that must stop a repair or a lock check rather than pass for damage,
//! packs written under another key, and packs read a piece at a time.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::repair::{repair_index, IndexRepair, IndexRepairOptions};
use strata_engine::{lock, snapshots, ErrorKind, Repository};
use strata_format::blob::BlobType;
use strata_storage::fault::{FaultBackend, FaultPlan};
use strata_storage::{Backend, FileType};

fn init() -> Arc<dyn Backend> {
    common::init_memory(1 << 20)
}

fn repair(repo: &Repository, read_data: bool) -> IndexRepair {
    let opts = IndexRepairOptions {
        read_data,
        ..IndexRepairOptions::default()
    };
    repair_index(repo, &opts, &NoProgress).unwrap()
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
        let r = repair(&repo, read_data);
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
    let r = repair(&repo, true);
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
    let opts = IndexRepairOptions {
        read_data: true,
        ..IndexRepairOptions::default()
    };
    let err = repair_index(&repo, &opts, &NoProgress).unwrap_err();
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

/// The pack names in storage, sorted.
fn pack_names(backend: &Arc<dyn Backend>) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut v: Vec<String> = rt
        .block_on(backend.list(FileType::Pack))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    v.sort();
    v
}

/// A repository with one snapshot of a few small random files (one data pack, one tree
/// pack: 1 MiB packs, no dictionary); returns it and the source.
fn small_repository(work: &Path, seed: u8) -> (Arc<dyn Backend>, std::path::PathBuf) {
    let backend = init();
    let src = work.join(format!("src-{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..3u8 {
        let bytes: Vec<u8> = (0..100_000u32)
            .map(|n| (n.wrapping_mul(2_654_435_761) >> (seed % 7 + i)) as u8 ^ seed)
            .collect();
        std::fs::write(src.join(format!("f{i}.bin")), bytes).unwrap();
    }
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    backup_paths(
        &repo,
        std::slice::from_ref(&src),
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    (backend, src)
}

/// The sequence of issue #12: two packs written under one key, and the index rebuilt by a
/// repository with another key (there, `init` over a repository whose config was lost; here
/// the packs are moved into another repository). `repair index` used to find 0 blobs in them
/// and delete both; it keeps them, out of the index, reports them, and deletes one only when
/// it is named.
#[test]
fn packs_of_another_key_are_kept_and_deleted_only_when_named() {
    let work = tempfile::tempdir().unwrap();
    let (a, _) = small_repository(work.path(), 1);
    let (b, b_src) = small_repository(work.path(), 2);
    let (a_packs, b_packs) = (pack_names(&a), pack_names(&b));
    assert_eq!(a_packs.len(), 2, "a data pack and a tree pack");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut a_bytes = Vec::new();
    for name in &a_packs {
        let bytes = rt.block_on(a.read(FileType::Pack, name)).unwrap();
        rt.block_on(b.write(FileType::Pack, name, bytes.clone()))
            .unwrap();
        a_bytes.push(bytes);
    }
    let mut all = [a_packs.clone(), b_packs.clone()].concat();
    all.sort();

    let repo = Repository::open_without_index(b.clone(), b"pw").unwrap();
    for read_data in [false, true] {
        let r = repair(&repo, read_data);
        let mut kept: Vec<String> = r.unreadable_packs.iter().map(|u| u.id.to_hex()).collect();
        kept.sort();
        assert_eq!(kept, a_packs, "read_data {read_data}: {r:?}");
        assert!(r.unreadable_packs.iter().all(|u| !u.deleted), "{r:?}");
        assert_eq!(r.packs_salvaged, 0, "{r:?}");
        assert_eq!(r.blobs_lost, 0, "{r:?}");
        assert_eq!(r.packs_indexed, b_packs.len() as u64, "{r:?}");
        assert_eq!(pack_names(&b), all, "read_data {read_data}: packs deleted");
    }
    assert_intact(&b, &b_src);

    // Naming a pack that is readable, or too little of one, changes nothing.
    let repo = Repository::open_without_index(b.clone(), b"pw").unwrap();
    for named in [b_packs[0].clone(), a_packs[0][..7].to_string()] {
        let opts = IndexRepairOptions {
            read_data: true,
            delete_unreadable: vec![named.clone()],
        };
        let err = repair_index(&repo, &opts, &NoProgress).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{named}: {err}");
        assert_eq!(pack_names(&b), all, "{named}");
    }

    // Named (by a prefix), the first is deleted; the second stays as it was.
    let opts = IndexRepairOptions {
        read_data: false,
        delete_unreadable: vec![a_packs[0][..12].to_uppercase()],
    };
    let r = repair_index(&repo, &opts, &NoProgress).unwrap();
    let deleted: Vec<(String, bool)> = r
        .unreadable_packs
        .iter()
        .map(|u| (u.id.to_hex(), u.deleted))
        .collect();
    assert_eq!(deleted.len(), 2, "{r:?}");
    assert!(deleted.contains(&(a_packs[0].clone(), true)), "{r:?}");
    assert!(deleted.contains(&(a_packs[1].clone(), false)), "{r:?}");
    let mut left = [vec![a_packs[1].clone()], b_packs.clone()].concat();
    left.sort();
    assert_eq!(pack_names(&b), left);
    assert_eq!(
        rt.block_on(b.read(FileType::Pack, &a_packs[1])).unwrap(),
        a_bytes[1]
    );
    assert_intact(&b, &b_src);
}

/// Bytes `repair index --read-data` reads from a pack at a time (the checker's piece).
const PIECE: u64 = 4 << 20;

/// `repair index --read-data` reads packs a piece at a time (a pack of 1 GiB is not read
/// into memory whole), and still salvages a damaged pack blob by blob: every blob but the
/// damaged one is copied into a new pack, and the damaged pack is deleted.
#[test]
fn repair_index_reads_packs_in_pieces_and_salvages_blob_by_blob() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(16 << 20);
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // 12 MiB that does not compress: one data pack of about 12 MiB, in blobs of ~64 KiB.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..12 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(src.join("big.bin"), &bytes).unwrap();
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
    let blobs_before = index.len();
    let (data_pack, size) = index
        .iter()
        .find(|(_, l)| l.blob_type == BlobType::Data)
        .map(|(_, l)| index.pack(l.pack))
        .unwrap();
    let data_pack = data_pack.to_hex();
    assert!(size > 3 * PIECE, "the data pack is {size} bytes");

    // One flipped byte in the middle damages one blob.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut damaged = rt
        .block_on(backend.read(FileType::Pack, &data_pack))
        .unwrap()
        .to_vec();
    damaged[size as usize / 2] ^= 0x20;
    rt.block_on(backend.write(FileType::Pack, &data_pack, Bytes::from(damaged)))
        .unwrap();

    let log = work.path().join("reads.log");
    let logged: Arc<dyn Backend> = Arc::new(FaultBackend::new(
        backend.clone(),
        FaultPlan {
            read_log: Some(log.clone()),
            ..FaultPlan::default()
        },
    ));
    let repo = Repository::open_without_index(logged, b"pw").unwrap();
    let r = repair(&repo, true);
    assert_eq!(r.packs_salvaged, 1, "{r:?}");
    assert_eq!(r.blobs_lost, 1, "{r:?}");
    assert_eq!(r.packs_written, 1, "{r:?}");
    assert_eq!(r.blobs_indexed, blobs_before as u64 - 1, "{r:?}");
    assert!(
        !pack_names(&backend).contains(&data_pack),
        "damaged pack kept"
    );

    // Every read of a pack was a piece at most.
    let reads = std::fs::read_to_string(&log).unwrap();
    let mut pack_reads = 0;
    for line in reads.lines().filter(|l| l.starts_with("read data/")) {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 4, "a pack read whole: {line}");
        let len: u64 = fields[3].parse().unwrap();
        assert!(len <= PIECE, "a read of {len} bytes: {line}");
        pack_reads += 1;
    }
    assert!(pack_reads as u64 >= 2 * size / PIECE, "{reads}");

    // Every blob left in the index reads back and verifies.
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let index = repo.index();
    assert_eq!(index.len(), blobs_before - 1);
    for (id, loc) in index.iter() {
        repo.read_blob(loc.blob_type, &id)
            .unwrap_or_else(|e| panic!("blob {id}: {e}"));
    }
}

/// Prune deletes packs no index names (a killed backup's), but never one written with
/// another key: it keeps it and names it. `repair snapshots --forget` likewise keeps a
/// snapshot file that is intact but written with another key.
#[test]
fn prune_and_repair_snapshots_keep_what_another_key_wrote() {
    let work = tempfile::tempdir().unwrap();
    let (a, _) = small_repository(work.path(), 1);
    let (b, b_src) = small_repository(work.path(), 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a_packs = pack_names(&a);
    for name in &a_packs {
        let bytes = rt.block_on(a.read(FileType::Pack, name)).unwrap();
        rt.block_on(b.write(FileType::Pack, name, bytes)).unwrap();
    }
    let (a_snap, _) = rt.block_on(a.list(FileType::Snapshot)).unwrap().remove(0);
    let bytes = rt.block_on(a.read(FileType::Snapshot, &a_snap)).unwrap();
    rt.block_on(b.write(FileType::Snapshot, &a_snap, bytes))
        .unwrap();

    let repo = Repository::open(b.clone(), b"pw").unwrap();
    let _lock = strata_engine::lock::lock(&repo, "repair snapshots", true).unwrap();
    let done = strata_engine::repair::repair_snapshots(&repo, false, true, &NoProgress).unwrap();
    let foreign = done
        .iter()
        .find(|r| r.id.to_hex() == a_snap)
        .expect("reported");
    assert!(!foreign.removed, "{done:?}");
    assert!(
        foreign
            .unrepairable
            .as_ref()
            .unwrap()
            .message
            .contains("another repository's key"),
        "{done:?}"
    );
    assert!(rt
        .block_on(b.stat(FileType::Snapshot, &a_snap))
        .unwrap()
        .is_some());
    rt.block_on(b.delete(FileType::Snapshot, &a_snap)).unwrap();
    drop(_lock);

    let mut repo = Repository::open(b.clone(), b"pw").unwrap();
    let _lock = strata_engine::lock::lock(&repo, "prune", true).unwrap();
    let plan = strata_engine::prune::plan(&mut repo, &Default::default(), &NoProgress).unwrap();
    let mut kept = plan.stats.unreadable_packs.clone();
    kept.sort();
    assert_eq!(kept, a_packs);
    assert_eq!(plan.stats.unindexed_packs, 0);
    strata_engine::prune::execute(&repo, plan, &NoProgress).unwrap();
    for name in &a_packs {
        assert!(
            rt.block_on(b.stat(FileType::Pack, name)).unwrap().is_some(),
            "prune deleted {name}"
        );
    }
    drop(_lock);
    assert_intact(&b, &b_src);
}

/// A pack whose header is unreadable and one of whose blobs is damaged in its clear
/// header: the scan finds its way past the damage, and every other blob (before and after
/// it) is salvaged; only the damaged one is lost.
#[test]
fn scanning_moves_past_a_damaged_blob_to_the_blobs_after_it() {
    let work = tempfile::tempdir().unwrap();
    let (backend, _) = small_repository(work.path(), 3);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let index = repo.index();
    let mut data: Vec<(u32, String)> = index
        .iter()
        .filter(|(_, loc)| loc.blob_type == BlobType::Data)
        .map(|(_, loc)| (loc.offset, index.pack(loc.pack).0.to_hex()))
        .collect();
    data.sort();
    let n = data.len();
    assert!(n >= 3, "several data blobs in one pack: {data:?}");
    assert!(data.iter().all(|(_, p)| *p == data[0].1));
    let pack = data[0].1.clone();
    break_header(&backend, &pack);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut bytes = rt
        .block_on(backend.read(FileType::Pack, &pack))
        .unwrap()
        .to_vec();
    // The magic byte of a middle blob's clear header.
    bytes[data[n / 2].0 as usize] ^= 0xff;
    rt.block_on(backend.write(FileType::Pack, &pack, Bytes::from(bytes)))
        .unwrap();
    drop(repo);

    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let r = repair(&repo, true);
    assert_eq!(r.packs_salvaged, 1, "{r:?}");
    assert_eq!(r.blobs_lost, 1, "{r:?}");
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let data_blobs = repo
        .index()
        .iter()
        .filter(|(_, loc)| loc.blob_type == BlobType::Data)
        .count();
    assert_eq!(data_blobs, n - 1, "the blobs before and after the damage");
}
