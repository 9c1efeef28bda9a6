//! `stats`: what snapshots hold and what their data costs.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{NodeKind, Tree};

use crate::treewalk::check_depth;
use crate::{Repository, Result};

/// What a snapshot holds and what its data costs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Bytes a full restore writes (file sizes; a hard-linked file counts each time).
    pub restore_size: u64,
    /// Distinct data blobs the snapshot references, their bytes before compression, and
    /// their bytes as stored (compressed and encrypted).
    pub blobs: u64,
    pub blob_raw_bytes: u64,
    pub blob_stored_bytes: u64,
    /// Data blobs the snapshot references that the index does not know (lost data:
    /// `check` and `repair` say more).
    pub missing_blobs: u64,
}

/// Stats of each snapshot, and of all of them together (the union of their blobs).
pub fn stats(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
) -> Result<(Vec<SnapshotStats>, SnapshotStats)> {
    // Counts per tree id (the same subtree always counts the same).
    let mut counts: HashMap<BlobId, (u64, u64, u64, u64)> = HashMap::new();
    let mut all_blobs: HashSet<BlobId> = HashSet::new();
    // Every tree is read from storage once for the whole command (snapshots share most).
    let mut trees = TreeCache::default();
    let mut total = SnapshotStats::default();
    let mut each = Vec::new();
    for (_, snap) in snapshots {
        let (files, dirs, other, size) = count_tree(repo, &snap.tree, 0, &mut counts, &mut trees)?;
        let mut blobs = HashSet::new();
        let mut seen = HashSet::new();
        collect_blobs(repo, &snap.tree, 0, &mut seen, &mut blobs, &mut trees)?;
        let mut s = SnapshotStats {
            files,
            dirs,
            other,
            restore_size: size,
            ..SnapshotStats::default()
        };
        for id in &blobs {
            let Some(loc) = repo.index().get(id) else {
                s.missing_blobs += 1;
                if all_blobs.insert(*id) {
                    total.missing_blobs += 1;
                }
                continue;
            };
            s.blobs += 1;
            s.blob_raw_bytes += loc.raw_length as u64;
            s.blob_stored_bytes += loc.length as u64;
            if all_blobs.insert(*id) {
                total.blobs += 1;
                total.blob_raw_bytes += loc.raw_length as u64;
                total.blob_stored_bytes += loc.length as u64;
            }
        }
        total.files += s.files;
        total.dirs += s.dirs;
        total.other += s.other;
        total.restore_size += s.restore_size;
        each.push(s);
    }
    Ok((each, total))
}

/// Trees already read, by id.
#[derive(Default)]
struct TreeCache(HashMap<BlobId, std::sync::Arc<Tree>>);

impl TreeCache {
    fn get(&mut self, repo: &Repository, id: &BlobId) -> Result<std::sync::Arc<Tree>> {
        if let Some(t) = self.0.get(id) {
            return Ok(t.clone());
        }
        let t = std::sync::Arc::new(repo.load_tree(id)?);
        self.0.insert(*id, t.clone());
        Ok(t)
    }
}

fn count_tree(
    repo: &Repository,
    tree: &BlobId,
    depth: usize,
    memo: &mut HashMap<BlobId, (u64, u64, u64, u64)>,
    trees: &mut TreeCache,
) -> Result<(u64, u64, u64, u64)> {
    check_depth(depth, b"")?;
    if let Some(c) = memo.get(tree) {
        return Ok(*c);
    }
    let (mut files, mut dirs, mut other, mut size) = (0, 0, 0, 0u64);
    for node in &trees.get(repo, tree)?.nodes {
        match &node.kind {
            NodeKind::File { .. } => {
                files += 1;
                size += node.size;
            }
            NodeKind::Dir { subtree } => {
                dirs += 1;
                let (f, d, o, s) = count_tree(repo, subtree, depth + 1, memo, trees)?;
                files += f;
                dirs += d;
                other += o;
                size += s;
            }
            _ => other += 1,
        }
    }
    memo.insert(*tree, (files, dirs, other, size));
    Ok((files, dirs, other, size))
}

fn collect_blobs(
    repo: &Repository,
    tree: &BlobId,
    depth: usize,
    seen: &mut HashSet<BlobId>,
    blobs: &mut HashSet<BlobId>,
    trees: &mut TreeCache,
) -> Result<()> {
    check_depth(depth, b"")?;
    if !seen.insert(*tree) {
        return Ok(());
    }
    for node in &trees.get(repo, tree)?.nodes {
        match &node.kind {
            NodeKind::File { content } => blobs.extend(content.iter().copied()),
            NodeKind::Dir { subtree } => {
                collect_blobs(repo, subtree, depth + 1, seen, blobs, trees)?
            }
            _ => {}
        }
    }
    Ok(())
}
