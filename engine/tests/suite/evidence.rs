//! Evidence files (spec/evidence.md): prune keeps those of kept snapshots and drops those
//! whose snapshots are all gone; copy carries them to the destination, naming the snapshots
//! by identity, so that a copy held (rewritten) in the destination keeps its evidence.

use crate::common;

use std::sync::Arc;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::evidence;
use strata_engine::progress::NoProgress;
use strata_engine::prune::{execute, plan, PruneOptions};
use strata_engine::{snapshots, Repository};
use strata_format::evidence::{EvidenceFile, EvidenceKind};
use strata_format::id::SnapshotId;
use strata_storage::Backend;

fn naming(snapshots: Vec<SnapshotId>) -> EvidenceFile {
    EvidenceFile {
        kind: EvidenceKind::RunSummary,
        time_ns: 1,
        hostname: "h".into(),
        project: Some("shop".into()),
        snapshots,
        catalog_head: None,
        records: vec!["{}".into()],
    }
}

/// A repository handle loads the index when it opens: one handle per operation, as the
/// commands have.
fn open(backend: &Arc<dyn Backend>) -> Repository {
    Repository::open(backend.clone(), b"pw").unwrap()
}

/// Two snapshots of small sources.
fn two_snapshots(backend: &Arc<dyn Backend>, work: &std::path::Path) -> Vec<SnapshotId> {
    (0..2)
        .map(|round| {
            let src = work.join(format!("src{round}"));
            common::small_source_files(&src, 3 + round);
            backup_paths(
                &open(backend),
                &[src],
                &BackupOptions::default(),
                &NoProgress,
            )
            .unwrap()
            .snapshot_id
        })
        .collect()
}

fn prune(backend: &Arc<dyn Backend>) -> strata_engine::prune::PruneStats {
    let mut repo = open(backend);
    let p = plan(&mut repo, &PruneOptions::default(), &NoProgress).unwrap();
    execute(&repo, p, &NoProgress).unwrap()
}

#[test]
fn prune_keeps_the_evidence_of_kept_snapshots_and_drops_that_of_forgotten_ones() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let ids = two_snapshots(&backend, work.path());
    let repo = open(&backend);
    let of_forgotten = evidence::write(&repo, &naming(vec![ids[0]])).unwrap();
    let of_kept = evidence::write(&repo, &naming(vec![ids[1]])).unwrap();
    let of_both = evidence::write(&repo, &naming(vec![ids[0], ids[1]])).unwrap();
    let of_none = evidence::write(&repo, &naming(vec![])).unwrap();
    snapshots::forget(&repo, &ids[..1]).unwrap();
    let stats = prune(&backend);
    assert_eq!(stats.evidence_deleted, 1);
    let mut left = evidence::list(&repo).unwrap();
    left.sort();
    let mut want = vec![of_kept, of_both, of_none];
    want.sort();
    assert_eq!(left, want);
    assert!(!left.contains(&of_forgotten));
    common::assert_checks_clean(&open(&backend));
    // A second prune deletes nothing more.
    assert_eq!(prune(&backend).evidence_deleted, 0);
}

#[test]
fn copy_carries_the_evidence_of_copied_snapshots_by_identity_and_holds_keep_it() {
    let work = tempfile::tempdir().unwrap();
    let (from_b, to_b) = (
        common::init_memory(256 * 1024),
        common::init_memory(256 * 1024),
    );
    let ids = two_snapshots(&from_b, work.path());
    let from = open(&from_b);
    let all = snapshots::list(&from).unwrap();
    // The first snapshot is copied alone, then both: the second copy copies the second.
    let first: Vec<_> = all
        .iter()
        .filter(|(id, _)| *id == ids[0])
        .cloned()
        .collect();
    let r1 = strata_engine::copy::copy(&from, &open(&to_b), &first, &NoProgress).unwrap();
    assert_eq!(r1.evidence_copied, 0);
    evidence::write(&from, &naming(vec![ids[0], ids[1]])).unwrap();
    evidence::write(&from, &naming(vec![ids[0]])).unwrap();
    let r2 = strata_engine::copy::copy(&from, &open(&to_b), &all, &NoProgress).unwrap();
    assert_eq!(r2.copied.len(), 1);
    assert_eq!(
        r2.evidence_copied, 1,
        "only the evidence naming a snapshot copied now"
    );
    let copied = evidence::read_all(&open(&to_b)).unwrap().files;
    assert_eq!(copied.len(), 1);
    let mut want = vec![ids[0], ids[1]];
    want.sort();
    let mut got = copied[0].1.snapshots.clone();
    got.sort();
    assert_eq!(
        got, want,
        "the snapshots' identities (the copies' originals)"
    );
    assert_eq!(copied[0].1.records, vec!["{}".to_string()]);
    // Both copies held in the destination (a hold rewrites a snapshot: a new id, the same
    // original), then a prune there: the evidence stays.
    let to = open(&to_b);
    for (id, snap) in snapshots::list(&to).unwrap() {
        snapshots::hold(&to, &id, &snap, Some(i64::MAX), None).unwrap();
    }
    drop(to);
    assert_eq!(prune(&to_b).evidence_deleted, 0);
    assert_eq!(evidence::list(&open(&to_b)).unwrap().len(), 1);
    // (read_all decoded it under the destination's key: it was sealed again, not copied.)
}
