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
///
/// The blobs of a snapshot and of all of them are bit sets over the index's positions (a
/// bit a blob, whatever the snapshots hold); only blobs the index does not know are kept
/// by id.
pub fn stats(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
) -> Result<(Vec<SnapshotStats>, SnapshotStats)> {
    // Counts per tree id (the same subtree always counts the same).
    let mut counts: HashMap<BlobId, (u64, u64, u64, u64)> = HashMap::new();
    let index = repo.index();
    let mut all_blobs = BlobSet::new(index.len());
    // Every tree is read from storage once for the whole command (snapshots share most).
    let mut trees = TreeCache::default();
    let mut total = SnapshotStats::default();
    let mut each = Vec::new();
    let mut blobs = BlobSet::new(index.len());
    for (_, snap) in snapshots {
        let (files, dirs, other, size) = count_tree(repo, &snap.tree, 0, &mut counts, &mut trees)?;
        blobs.clear();
        let mut seen = HashSet::new();
        collect_blobs(repo, &snap.tree, 0, &mut seen, &mut blobs, &mut trees)?;
        let mut s = SnapshotStats {
            files,
            dirs,
            other,
            restore_size: size,
            missing_blobs: blobs.missing.len() as u64,
            ..SnapshotStats::default()
        };
        for id in &blobs.missing {
            if all_blobs.missing.insert(*id) {
                total.missing_blobs += 1;
            }
        }
        for pos in blobs.positions() {
            let (_, loc) = index.at(pos);
            s.blobs += 1;
            s.blob_raw_bytes += loc.raw_length as u64;
            s.blob_stored_bytes += loc.length as u64;
            if all_blobs.insert_position(pos) {
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

/// A set of blobs: a bit per position of the index, and the ids of blobs it does not know.
struct BlobSet {
    bits: Vec<u64>,
    missing: HashSet<BlobId>,
}

impl BlobSet {
    fn new(len: usize) -> Self {
        BlobSet {
            bits: vec![0; len.div_ceil(64)],
            missing: HashSet::new(),
        }
    }

    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.missing.clear();
    }

    fn insert(&mut self, index: &crate::index::MasterIndex, id: &BlobId) {
        match index.position(id) {
            Some(pos) => {
                self.insert_position(pos);
            }
            None => {
                self.missing.insert(*id);
            }
        }
    }

    /// Sets the bit of `pos`; whether it was clear.
    fn insert_position(&mut self, pos: usize) -> bool {
        let (word, bit) = (pos / 64, 1u64 << (pos % 64));
        let was = self.bits[word] & bit != 0;
        self.bits[word] |= bit;
        !was
    }

    /// The positions set, in order (empty words cost one test).
    fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, word)| **word != 0)
            .flat_map(|(w, &word)| {
                let mut rest = word;
                std::iter::from_fn(move || {
                    (rest != 0).then(|| {
                        let b = rest.trailing_zeros() as usize;
                        rest &= rest - 1;
                        w * 64 + b
                    })
                })
            })
    }
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
    blobs: &mut BlobSet,
    trees: &mut TreeCache,
) -> Result<()> {
    check_depth(depth, b"")?;
    if !seen.insert(*tree) {
        return Ok(());
    }
    for node in &trees.get(repo, tree)?.nodes {
        match &node.kind {
            NodeKind::File { content } => {
                for id in content {
                    blobs.insert(repo.index(), id);
                }
            }
            NodeKind::Dir { subtree } => {
                collect_blobs(repo, subtree, depth + 1, seen, blobs, trees)?
            }
            _ => {}
        }
    }
    Ok(())
}
