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
/// by id. Trees are kept between snapshots in a compact form (a blob as its index
/// position) up to a bound, then read again.
pub fn stats(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
) -> Result<(Vec<SnapshotStats>, SnapshotStats)> {
    let budget = TREE_CACHE_MIN.max(repo.index().len().saturating_mul(4));
    stats_with_tree_budget(repo, snapshots, budget)
}

/// [`stats`] keeping at most `budget` bytes of trees between snapshots (for tests of the
/// bound: the figures are the same whatever it is).
#[doc(hidden)]
pub fn stats_with_tree_budget(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
    budget: usize,
) -> Result<(Vec<SnapshotStats>, SnapshotStats)> {
    let index = repo.index();
    let mut walk = Walk {
        repo,
        trees: TreeCache::new(budget),
        done: HashMap::new(),
        blobs: BlobSet::new(index.len()),
    };
    let mut all_blobs = BlobSet::new(index.len());
    let mut total = SnapshotStats::default();
    let mut each = Vec::new();
    for (_, snap) in snapshots {
        walk.blobs.clear();
        walk.done.clear();
        let (files, dirs, other, size) = walk.tree(&snap.tree, 0)?;
        let blobs = &walk.blobs;
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

/// The least room for trees kept between snapshots; more for a larger index (4 bytes an
/// indexed blob: as many blob references as blobs).
const TREE_CACHE_MIN: usize = 64 << 20;

/// (files, dirs, other, restore size) of a tree and everything below it.
type Counts = (u64, u64, u64, u64);

/// One snapshot's walk, with what is kept for the next.
struct Walk<'a> {
    repo: &'a Repository,
    trees: TreeCache,
    /// The trees walked in this snapshot, with their counts.
    done: HashMap<BlobId, Counts>,
    /// This snapshot's blobs.
    blobs: BlobSet,
}

impl Walk<'_> {
    /// Adds the blobs of `tree` and its subtrees (once each in a snapshot) and returns
    /// their counts (a subtree met twice counts twice, as a restore writes it twice).
    fn tree(&mut self, tree: &BlobId, depth: usize) -> Result<Counts> {
        check_depth(depth, b"")?;
        if let Some(c) = self.done.get(tree) {
            return Ok(*c);
        }
        let t = self.trees.get(self.repo, tree)?;
        for &pos in &t.blobs {
            self.blobs.insert_position(pos as usize);
        }
        for id in &t.missing {
            self.blobs.missing.insert(*id);
        }
        let (mut files, mut dirs, mut other, mut size) = t.counts;
        for sub in &t.subtrees {
            dirs += 1;
            let (f, d, o, s) = self.tree(sub, depth + 1)?;
            files += f;
            dirs += d;
            other += o;
            size += s;
        }
        let c = (files, dirs, other, size);
        self.done.insert(*tree, c);
        Ok(c)
    }
}

/// A tree as `stats` needs it: its own files, others and sizes counted, its data blobs as
/// index positions (and ids of those the index does not know), its subtrees.
struct CompactTree {
    /// (files, 0, other, restore size) of its own entries.
    counts: Counts,
    blobs: Vec<u32>,
    missing: Vec<BlobId>,
    subtrees: Vec<BlobId>,
}

impl CompactTree {
    fn of(tree: &Tree, index: &crate::index::MasterIndex) -> Self {
        let mut t = CompactTree {
            counts: (0, 0, 0, 0),
            blobs: Vec::new(),
            missing: Vec::new(),
            subtrees: Vec::new(),
        };
        for node in &tree.nodes {
            match &node.kind {
                NodeKind::File { content } => {
                    t.counts.0 += 1;
                    t.counts.3 += node.size;
                    for id in content {
                        match index.position(id) {
                            Some(pos) => t.blobs.push(pos as u32),
                            None => t.missing.push(*id),
                        }
                    }
                }
                NodeKind::Dir { subtree } => t.subtrees.push(*subtree),
                _ => t.counts.2 += 1,
            }
        }
        t
    }

    /// About what it holds in memory, with its place in the cache.
    fn bytes(&self) -> usize {
        128 + self.blobs.len() * 4 + (self.missing.len() + self.subtrees.len()) * 32
    }
}

/// Trees already read, by id, up to `budget` bytes (then emptied: the next snapshots read
/// them again).
struct TreeCache {
    trees: HashMap<BlobId, std::sync::Arc<CompactTree>>,
    bytes: usize,
    budget: usize,
}

impl TreeCache {
    fn new(budget: usize) -> Self {
        TreeCache {
            trees: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, repo: &Repository, id: &BlobId) -> Result<std::sync::Arc<CompactTree>> {
        if let Some(t) = self.trees.get(id) {
            return Ok(t.clone());
        }
        let t = std::sync::Arc::new(CompactTree::of(&repo.load_tree(id)?, repo.index()));
        let bytes = t.bytes();
        if self.bytes + bytes > self.budget {
            self.trees.clear();
            self.bytes = 0;
        }
        if bytes <= self.budget {
            self.bytes += bytes;
            self.trees.insert(*id, t.clone());
        }
        Ok(t)
    }
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
