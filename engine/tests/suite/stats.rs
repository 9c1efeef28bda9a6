//! `stats`: the figures of each snapshot and of all of them, whatever room the walk has to
//! keep trees between snapshots.

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;

use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::browse::{stats_with_tree_budget, SnapshotStats};
use strata_engine::progress::NoProgress;
use strata_engine::{snapshots, Repository};

/// Files of a snapshot (all small: a file is one blob, its content; empty ones have none).
struct Expected {
    files: u64,
    dirs: u64,
    restore_size: u64,
    contents: BTreeSet<Vec<u8>>,
}

fn write_round(src: &Path, round: u32) -> Expected {
    let mut e = Expected {
        files: 0,
        dirs: 0,
        restore_size: 0,
        contents: BTreeSet::new(),
    };
    let put = |path: &Path, content: Vec<u8>, e: &mut Expected| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Unchanged files are left alone: their directories keep their trees.
        if std::fs::read(path).ok().as_deref() != Some(&content[..]) {
            std::fs::write(path, &content).unwrap();
        }
        e.files += 1;
        e.restore_size += content.len() as u64;
        if !content.is_empty() {
            e.contents.insert(content);
        }
    };
    // Two directories of hard links to the same files: one tree (same names, inodes and
    // times), met twice in every snapshot: its files count twice, its blobs once. A
    // directory that changes with the round, one that does not (the same tree in every
    // snapshot), and an empty file.
    for f in 0..3 {
        let first = src.join("a/twin").join(format!("t{f}"));
        put(&first, format!("twin file {f}").into_bytes(), &mut e);
        let link = src.join("b/deeper/twin").join(format!("t{f}"));
        if !link.exists() {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::fs::hard_link(&first, &link).unwrap();
        }
        e.files += 1;
        e.restore_size += std::fs::metadata(&link).unwrap().len();
    }
    for f in 0..4 {
        put(
            &src.join(format!("changing/c{f}")),
            format!("round {} file {f}", round / (f + 1)).into_bytes(),
            &mut e,
        );
    }
    put(&src.join("stable/s"), b"stable content".to_vec(), &mut e);
    put(&src.join("empty"), Vec::new(), &mut e);
    // The source root's own directories: a, a/twin, b, b/deeper, b/deeper/twin, changing,
    // stable.
    e.dirs = 7;
    e
}

/// Four snapshots of a changing tree: `stats` counts files and sizes per snapshot (a
/// subtree met twice counts twice), its distinct blobs once, and the union over all of
/// them; the same with no room to keep trees (every tree read again), a little room
/// (emptied part way) and the default.
#[test]
fn stats_are_the_same_whatever_room_the_walk_has() {
    let work = tempfile::tempdir().unwrap();
    let backend = common::init_memory(256 * 1024);
    let mut expected = Vec::new();
    let src = work.path().join("src");
    for round in 0..4 {
        expected.push(write_round(&src, round));
        let repo = Repository::open(backend.clone(), b"pw").unwrap();
        backup_paths(
            &repo,
            std::slice::from_ref(&src),
            &BackupOptions::default(),
            &NoProgress,
        )
        .unwrap();
    }
    let repo = Repository::open(backend, b"pw").unwrap();
    let mut list = snapshots::list(&repo).unwrap();
    list.sort_by_key(|(_, s)| s.time_ns);
    assert_eq!(list.len(), 4);
    let union: BTreeSet<Vec<u8>> = expected.iter().flat_map(|e| e.contents.clone()).collect();
    let figures = |s: &SnapshotStats| (s.files, s.dirs, s.restore_size, s.blobs, s.blob_raw_bytes);
    let mut results = Vec::new();
    for budget in [0, 700, usize::MAX] {
        let (each, total) = stats_with_tree_budget(&repo, &list, budget).unwrap();
        for (s, e) in each.iter().zip(&expected) {
            // The snapshot's root is the common parent of the source: its dirs count from
            // the source directory down.
            assert_eq!(s.files, e.files, "budget {budget}");
            assert_eq!(s.restore_size, e.restore_size, "budget {budget}");
            assert_eq!(s.blobs, e.contents.len() as u64, "budget {budget}");
            assert_eq!(
                s.blob_raw_bytes,
                e.contents.iter().map(|c| c.len() as u64).sum::<u64>(),
                "budget {budget}"
            );
            assert_eq!(s.missing_blobs, 0);
        }
        assert_eq!(total.blobs, union.len() as u64, "budget {budget}");
        assert_eq!(
            total.blob_raw_bytes,
            union.iter().map(|c| c.len() as u64).sum::<u64>()
        );
        assert_eq!(total.files, expected.iter().map(|e| e.files).sum::<u64>());
        results.push((
            each.iter().map(figures).collect::<Vec<_>>(),
            figures(&total),
        ));
    }
    assert_eq!(results[0], results[2]);
    assert_eq!(results[1], results[2]);
    // Directories: at least the source's own in each (the path above it adds the same
    // number to every snapshot).
    let dirs: Vec<u64> = results[2].0.iter().map(|f| f.1).collect();
    assert!(
        dirs.iter().all(|&d| d >= expected[0].dirs && d == dirs[0]),
        "{dirs:?}"
    );
}
