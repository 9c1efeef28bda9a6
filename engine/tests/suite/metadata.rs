//! Trees are read from whole metadata packs: walking a snapshot of many directories makes
//! one request per metadata pack, not one per directory, and a second walk none.

use crate::common;

use std::sync::Arc;

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::progress::NoProgress;
use strata_engine::{snapshots, Repository};
use strata_format::id::BlobId;
use strata_format::tree::NodeKind;
use strata_storage::{Backend, FaultBackend, FaultPlan};

/// The number of trees under (and including) `tree`.
fn walk(repo: &Repository, tree: &BlobId) -> usize {
    let mut trees = 1;
    for node in repo.load_tree(tree).unwrap().nodes {
        if let NodeKind::Dir { subtree } = node.kind {
            trees += walk(repo, &subtree);
        }
    }
    trees
}

#[test]
fn walking_a_snapshot_reads_each_metadata_pack_once() {
    let memory = common::init_memory(1 << 20);
    let src = tempfile::tempdir().unwrap();
    for d in 0..300 {
        let dir = src.path().join(format!("d{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("f"), d.to_string()).unwrap();
    }
    let repo = Repository::open(memory.clone(), b"pw").unwrap();
    let paths = [src.path().to_path_buf()];
    backup_paths(&repo, &paths, &BackupOptions::default(), &NoProgress).unwrap();

    let counting = Arc::new(FaultBackend::new(memory, FaultPlan::default()));
    let backend: Arc<dyn Backend> = counting.clone();
    let mut repo = Repository::open_without_index(backend, b"pw").unwrap();
    repo.load_index(true).unwrap();
    let metadata = repo.index().metadata_packs().len();
    assert!(metadata >= 1);
    let (_, snap) = snapshots::find(&repo, "latest").unwrap();
    let before = counting.reads();
    let trees = walk(&repo, &snap.tree);
    assert!(trees > 300, "{trees} trees");
    assert_eq!(
        counting.reads() - before,
        metadata as u64,
        "{trees} trees read with one request per metadata pack"
    );
    assert_eq!(walk(&repo, &snap.tree), trees);
    assert_eq!(
        counting.reads() - before,
        metadata as u64,
        "then from memory"
    );
}
