//! Prune over the in-memory backend: what it frees, what it keeps, and that a failure at
//! any storage mutation (the fault-injection layer) leaves a repository that checks clean,
//! restores every kept snapshot and is finished by the next prune. The real process is
//! killed with SIGKILL at every step in `tests/e2e`.

use crate::common;

use std::path::Path;
use std::sync::Arc;

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::checker::{check_with, CheckOptions};
use strata_engine::progress::NoProgress;
use strata_engine::prune::{execute, plan, PruneOptions};
use strata_engine::{snapshots, Repository};
use strata_format::id::SnapshotId;
use strata_storage::fault::{FaultBackend, FaultPlan};
use strata_storage::{Backend, FileType};

/// A repository with three snapshots of a changing tree; the first is then forgotten.
/// Returns the backend, the kept snapshot ids, and the source trees of the kept ones.
fn repository_with_garbage(
    work: &Path,
) -> (Arc<dyn Backend>, Vec<SnapshotId>, Vec<std::path::PathBuf>) {
    let backend = common::init_memory(256 * 1024);
    let mut ids = Vec::new();
    let mut sources = Vec::new();
    for round in 0..3u64 {
        let src = work.join(format!("src{round}"));
        std::fs::create_dir_all(src.join("sub")).unwrap();
        for f in 0..6u64 {
            // Half the files change every round, half stay.
            let seed = if f % 2 == 0 { f } else { f + 100 * round };
            let len = 20_000 + (f as usize) * 70_000;
            std::fs::write(src.join(format!("f{f}")), common::pseudo_random(len, seed)).unwrap();
        }
        std::fs::write(src.join("sub/small"), format!("round {round}")).unwrap();
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        let r = backup_paths(
            &repo,
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
        ids.push(r.snapshot_id);
        sources.push(src);
    }
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    snapshots::forget(&repo, &ids[..1]).unwrap();
    (backend, ids[1..].to_vec(), sources[1..].to_vec())
}

fn prune(backend: &Arc<dyn Backend>) -> strata_engine::Result<strata_engine::prune::PruneStats> {
    prune_with(backend, &PruneOptions::default())
}

fn prune_with(
    backend: &Arc<dyn Backend>,
    opts: &PruneOptions,
) -> strata_engine::Result<strata_engine::prune::PruneStats> {
    let mut repo = Repository::open(backend.clone(), b"pw")?;
    let p = plan(&mut repo, opts, &NoProgress)?;
    execute(&repo, p, &NoProgress)
}

/// Checks every byte and restores every kept snapshot, comparing with its source.
fn assert_intact(backend: &Arc<dyn Backend>, kept: &[SnapshotId], sources: &[std::path::PathBuf]) {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    common::assert_checks_clean(&repo);
    for (id, src) in kept.iter().zip(sources) {
        let snap = snapshots::load(&repo, id).unwrap();
        let target = tempfile::tempdir().unwrap();
        let restored = common::restore_clean(&repo, &snap, target.path(), src);
        for entry in walk(src) {
            let rel = entry.strip_prefix(src).unwrap();
            assert_eq!(
                std::fs::read(&entry).unwrap(),
                std::fs::read(restored.join(rel)).unwrap(),
                "{} differs",
                rel.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
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

fn pack_bytes(backend: &Arc<dyn Backend>) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(backend.list(FileType::Pack))
        .unwrap()
        .iter()
        .map(|(_, s)| s)
        .sum()
}

/// Also with the new index's entries grouped by pack a few at a time (every pack a chunk
/// of its own, or a few small ones together).
#[test]
fn prune_frees_what_only_forgotten_snapshots_needed() {
    for group_chunk in [PruneOptions::default().group_chunk, 3] {
        frees_what_only_forgotten_snapshots_needed(group_chunk);
    }
}

fn frees_what_only_forgotten_snapshots_needed(group_chunk: u32) {
    let work = tempfile::tempdir().unwrap();
    let (backend, kept, sources) = repository_with_garbage(work.path());
    let before = pack_bytes(&backend);
    // Which blobs share a pack depends on which packer thread took them, so with the
    // default 5 % threshold a small unneeded blob may stay in a pack that is mostly
    // needed. With no threshold, every unneeded byte goes.
    let everything = PruneOptions {
        max_unused_percent: 0.0,
        group_chunk,
        ..PruneOptions::default()
    };
    let stats = prune_with(&backend, &everything).unwrap();
    assert!(stats.unused_blobs > 0, "{stats:?}");
    assert!(stats.packs_deleted > 0, "{stats:?}");
    let after = pack_bytes(&backend);
    assert!(after < before, "{after} >= {before}");
    assert_eq!(stats.bytes_freed, (before - after) as i64, "{stats:?}");
    assert_intact(&backend, &kept, &sources);
    // Nothing is left to do, and doing it again changes nothing.
    let mut repo = Repository::open(backend.clone(), b"pw").unwrap();
    let again = plan(&mut repo, &everything, &NoProgress).unwrap();
    assert!(again.is_noop(), "{:?}", again.stats);
    assert_eq!(again.stats.unused_blobs, 0, "{:?}", again.stats);
    assert_eq!(again.stats.unused_bytes, 0, "{:?}", again.stats);
}

#[test]
fn prune_refuses_when_a_needed_pack_is_missing() {
    let work = tempfile::tempdir().unwrap();
    let (backend, _, _) = repository_with_garbage(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Delete the pack holding the root tree of the newest snapshot: it is needed.
    let victim = {
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        let (_, snap) = snapshots::find(&repo, "latest").unwrap();
        let loc = repo.index().get(&snap.tree).unwrap();
        repo.index().pack(loc.pack).0.to_hex()
    };
    rt.block_on(backend.delete(FileType::Pack, &victim))
        .unwrap();
    let left = rt.block_on(backend.list(FileType::Pack)).unwrap();
    let err = prune(&backend).unwrap_err();
    assert!(err.to_string().contains("repair"), "{err}");
    assert_eq!(
        rt.block_on(backend.list(FileType::Pack)).unwrap().len(),
        left.len(),
        "prune deleted packs although it refused"
    );
}

/// Fails the n-th storage mutation of a prune, for every n: afterwards the repository
/// checks clean, every kept snapshot restores identical, and a second prune finishes.
#[test]
fn prune_interrupted_at_every_mutation_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    // How many mutations a whole prune makes.
    let (backend, _, _) = repository_with_garbage(work.path());
    let counter = Arc::new(FaultBackend::new(backend.clone(), FaultPlan::default()));
    let probe: Arc<dyn Backend> = counter.clone();
    prune(&probe).unwrap();
    let total = counter.mutations();
    assert!(
        total >= 5,
        "a prune with garbage makes several mutations ({total})"
    );

    for n in 1..=total {
        let work = tempfile::tempdir().unwrap();
        let (backend, kept, sources) = repository_with_garbage(work.path());
        let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            backend.clone(),
            FaultPlan {
                fail_at_mutation: Some(n),
                ..FaultPlan::default()
            },
        ));
        // Whichever mutation fails, the run stops there.
        let _ = prune(&faulty);
        assert_intact(&backend, &kept, &sources);
        prune(&backend).unwrap_or_else(|e| panic!("prune after failure {n}: {e}"));
        assert_intact(&backend, &kept, &sources);
        let mut repo = Repository::open(backend.clone(), b"pw").unwrap();
        let again = plan(&mut repo, &PruneOptions::default(), &NoProgress).unwrap();
        assert!(
            again.is_noop(),
            "after failure {n} and a full prune, work is left: {:?}",
            again.stats
        );
    }
}

/// The state of a prune that died right after writing its new index: the old index files
/// and packs are all still there. Check warns about the superseded index files (and is
/// otherwise clean), and the next prune removes them.
#[test]
fn superseded_index_files_are_reported_and_removed() {
    let work = tempfile::tempdir().unwrap();
    let (backend, kept, sources) = repository_with_garbage(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let objects = |ft: FileType| -> Vec<(String, bytes::Bytes)> {
        rt.block_on(backend.list(ft))
            .unwrap()
            .into_iter()
            .map(|(n, _)| {
                let b = rt.block_on(backend.read(ft, &n)).unwrap();
                (n, b)
            })
            .collect()
    };
    let old_index = objects(FileType::Index);
    let old_packs = objects(FileType::Pack);
    prune(&backend).unwrap();
    // Undo every delete: what is left is exactly the state after the new index was written.
    for (ft, old) in [(FileType::Index, &old_index), (FileType::Pack, &old_packs)] {
        for (name, bytes) in old {
            rt.block_on(backend.write(ft, name, bytes.clone())).unwrap();
        }
    }
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let report = check_with(&repo, &CheckOptions::default(), &NoProgress).unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
    for (name, _) in &old_index {
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.message.contains(name.as_str()) && w.message.contains("superseded")),
            "{name} not reported: {:?}",
            report.warnings
        );
    }
    drop(repo);
    assert_intact(&backend, &kept, &sources);
    prune(&backend).unwrap();
    let left: Vec<String> = objects(FileType::Index)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for (name, _) in &old_index {
        assert!(!left.contains(name), "prune left superseded index {name}");
    }
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let report = check_with(&repo, &CheckOptions::default(), &NoProgress).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    drop(repo);
    assert_intact(&backend, &kept, &sources);
}

/// Objects in `data/` whose names are not pack ids as Strata writes them (lower-case hex),
/// an upper-case copy of a real pack's name among them, are no packs: prune keeps and
/// reports them, and they stand in for no pack of the index.
#[test]
fn prune_keeps_and_reports_objects_that_are_no_packs() {
    let work = tempfile::tempdir().unwrap();
    let (backend, kept, sources) = repository_with_garbage(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let real = rt.block_on(backend.list(FileType::Pack)).unwrap()[0]
        .0
        .clone();
    let shouting = real.to_uppercase();
    for name in ["not-a-pack", shouting.as_str()] {
        rt.block_on(backend.write(FileType::Pack, name, bytes::Bytes::from_static(b"x")))
            .unwrap();
    }
    let stats = prune(&backend).unwrap();
    let mut expected = vec!["not-a-pack".to_string(), shouting.clone()];
    expected.sort();
    assert_eq!(stats.unreadable_packs, expected, "{stats:?}");
    for name in ["not-a-pack", shouting.as_str()] {
        assert_eq!(
            rt.block_on(backend.read(FileType::Pack, name)).unwrap(),
            &b"x"[..]
        );
    }
    assert_intact(&backend, &kept, &sources);
}

/// A pack listing that breaks part way is started over by the retry layer, so prune and
/// check see some packs twice: they count each once, and prune does what it does with a
/// whole listing.
#[test]
fn a_pack_listing_retried_part_way_counts_each_pack_once() {
    let work = tempfile::tempdir().unwrap();
    let (backend, kept, sources) = repository_with_garbage(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(backend.list(FileType::Pack)).unwrap().len() as u64;
    assert!(stored > 4, "{stored} packs");
    let breaking = || -> Arc<dyn Backend> {
        let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            backend.clone(),
            FaultPlan {
                fail_pack_listing_after: Some(stored - 2),
                ..FaultPlan::default()
            },
        ));
        Arc::new(strata_storage::RetryBackend::new(faulty))
    };
    let repo = Repository::open(breaking(), b"pw").unwrap();
    let report = check_with(&repo, &CheckOptions::default(), &NoProgress).unwrap();
    assert_eq!(report.packs, stored, "{report:?}");
    assert!(report.warnings.is_empty(), "{report:?}");
    let stats = prune(&breaking()).unwrap();
    assert_eq!(stats.packs, stored, "{stats:?}");
    assert_eq!(stats.unindexed_packs, 0, "{stats:?}");
    assert!(stats.packs_deleted > 0, "{stats:?}");
    assert_eq!(
        rt.block_on(backend.list(FileType::Pack)).unwrap().len() as u64,
        stored - stats.packs_deleted + stats.packs_written
    );
    assert_intact(&backend, &kept, &sources);
}
