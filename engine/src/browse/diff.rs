//! `diff`: what changed between the trees of two snapshots, walked in step.

use serde::Serialize;
use strata_format::id::BlobId;
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind, Tree};

use super::find::{child_path, Entry};
use crate::treewalk::{self, check_depth};
use crate::{Repository, Result};

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// A file whose content differs.
    Modified,
    /// Not the same kind of entry any more (a file became a directory, …).
    TypeChanged,
    /// Same content, other metadata (mode, owner, times, xattrs, link target, device).
    Metadata,
}

impl Change {
    /// The one-letter marker restic users know: `+ - M T U`.
    pub fn marker(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::TypeChanged => 'T',
            Change::Metadata => 'U',
        }
    }
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub change: Change,
    #[serde(flatten)]
    pub entry: Entry,
}

/// Totals of a diff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffStats {
    pub added_files: u64,
    pub removed_files: u64,
    pub modified_files: u64,
    pub added_dirs: u64,
    pub removed_dirs: u64,
    pub type_changed: u64,
    pub metadata_changed: u64,
    /// Sizes of the files added, and of the files removed.
    pub added_bytes: u64,
    pub removed_bytes: u64,
    /// Modified files: their size in the second snapshot minus in the first.
    pub modified_bytes_delta: i64,
}

/// Everything that differs between the trees of `a` and `b`, in path order. With
/// `metadata`, entries whose content is the same but whose metadata changed are listed too.
pub fn diff(
    repo: &Repository,
    a: &SnapshotFile,
    b: &SnapshotFile,
    metadata: bool,
) -> Result<(Vec<Difference>, DiffStats)> {
    let mut out = Vec::new();
    let mut stats = DiffStats::default();
    diff_trees(
        repo,
        Some(&a.tree),
        Some(&b.tree),
        b"",
        0,
        metadata,
        &mut out,
        &mut stats,
    )?;
    Ok((out, stats))
}

fn record(out: &mut Vec<Difference>, stats: &mut DiffStats, change: Change, path: &[u8], n: &Node) {
    let is_dir = matches!(n.kind, NodeKind::Dir { .. });
    let is_file = matches!(n.kind, NodeKind::File { .. });
    match change {
        Change::Added if is_dir => stats.added_dirs += 1,
        Change::Added => {
            stats.added_files += 1;
            if is_file {
                stats.added_bytes += n.size;
            }
        }
        Change::Removed if is_dir => stats.removed_dirs += 1,
        Change::Removed => {
            stats.removed_files += 1;
            if is_file {
                stats.removed_bytes += n.size;
            }
        }
        Change::Modified => stats.modified_files += 1,
        Change::TypeChanged => stats.type_changed += 1,
        Change::Metadata => stats.metadata_changed += 1,
    }
    out.push(Difference {
        change,
        entry: Entry::new(path, n),
    });
}

/// Lists a whole subtree as added or removed.
fn all_of(
    repo: &Repository,
    tree: &BlobId,
    prefix: &[u8],
    depth: usize,
    change: Change,
    out: &mut Vec<Difference>,
    stats: &mut DiffStats,
) -> Result<()> {
    treewalk::walk_at(repo, tree, prefix, depth, &mut |path, node| {
        record(out, stats, change, path, node);
        Ok(true)
    })
}

/// Whether two nodes of the same kind and content differ in metadata.
fn metadata_differs(x: &Node, y: &Node) -> bool {
    x.mode != y.mode
        || x.uid != y.uid
        || x.gid != y.gid
        || x.user != y.user
        || x.group != y.group
        || x.mtime_ns != y.mtime_ns
        || x.xattrs != y.xattrs
        || x.links != y.links
}

#[allow(clippy::too_many_arguments)]
fn diff_trees(
    repo: &Repository,
    a: Option<&BlobId>,
    b: Option<&BlobId>,
    prefix: &[u8],
    depth: usize,
    metadata: bool,
    out: &mut Vec<Difference>,
    stats: &mut DiffStats,
) -> Result<()> {
    check_depth(depth, prefix)?;
    if a == b {
        return Ok(());
    }
    let load = |t: Option<&BlobId>| -> Result<Tree> {
        match t {
            Some(id) => repo.load_tree(id),
            None => Ok(Tree::default()),
        }
    };
    let (ta, tb) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let order = match (ta.nodes.get(i), tb.nodes.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let x = &ta.nodes[i];
                let path = child_path(prefix, &x.name);
                record(out, stats, Change::Removed, &path, x);
                if let NodeKind::Dir { subtree } = &x.kind {
                    all_of(repo, subtree, &path, depth + 1, Change::Removed, out, stats)?;
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let y = &tb.nodes[j];
                let path = child_path(prefix, &y.name);
                record(out, stats, Change::Added, &path, y);
                if let NodeKind::Dir { subtree } = &y.kind {
                    all_of(repo, subtree, &path, depth + 1, Change::Added, out, stats)?;
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&ta.nodes[i], &tb.nodes[j]);
                let path = child_path(prefix, &x.name);
                match (&x.kind, &y.kind) {
                    (NodeKind::Dir { subtree: sa }, NodeKind::Dir { subtree: sb }) => {
                        if metadata && metadata_differs(x, y) {
                            record(out, stats, Change::Metadata, &path, y);
                        }
                        diff_trees(
                            repo,
                            Some(sa),
                            Some(sb),
                            &path,
                            depth + 1,
                            metadata,
                            out,
                            stats,
                        )?;
                    }
                    (NodeKind::File { content: ca }, NodeKind::File { content: cb }) => {
                        if ca != cb {
                            let delta = (y.size as i128 - x.size as i128)
                                .clamp(i64::MIN as i128, i64::MAX as i128)
                                as i64;
                            stats.modified_bytes_delta =
                                stats.modified_bytes_delta.saturating_add(delta);
                            record(out, stats, Change::Modified, &path, y);
                        } else if metadata && metadata_differs(x, y) {
                            record(out, stats, Change::Metadata, &path, y);
                        }
                    }
                    (kx, ky) if std::mem::discriminant(kx) != std::mem::discriminant(ky) => {
                        record(out, stats, Change::TypeChanged, &path, y);
                        if let NodeKind::Dir { subtree } = kx {
                            all_of(repo, subtree, &path, depth + 1, Change::Removed, out, stats)?;
                        }
                        if let NodeKind::Dir { subtree } = ky {
                            all_of(repo, subtree, &path, depth + 1, Change::Added, out, stats)?;
                        }
                    }
                    (kx, ky) => {
                        // Symlinks, devices, fifos: their "content" is the kind's payload.
                        if kx != ky {
                            record(out, stats, Change::Modified, &path, y);
                        } else if metadata && metadata_differs(x, y) {
                            record(out, stats, Change::Metadata, &path, y);
                        }
                    }
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}
