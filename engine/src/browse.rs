//! Browsing history without restoring it: which snapshots hold a path (`find`), what
//! changed between two snapshots (`diff`), and what a snapshot holds and costs (`stats`).
//!
//! All three read trees only (never file content), and lean on content addressing: a
//! subtree with the same id is the same in every snapshot, so `find` and `stats` walk it
//! once and `diff` skips it without opening it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind, Tree};

use crate::filter::Filter;
use crate::treewalk::{self, check_depth};
use crate::{Repository, Result};

/// An entry of a snapshot, as `find` and `diff` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Absolute path in the snapshot (lossy UTF-8 for display; raw bytes in `path_bytes`).
    pub path: String,
    #[serde(skip)]
    pub path_bytes: Vec<u8>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
}

impl Entry {
    fn new(path: &[u8], node: &Node) -> Self {
        Entry {
            path: String::from_utf8_lossy(path).into_owned(),
            path_bytes: path.to_vec(),
            kind: node.kind.name(),
            size: node.size,
            mode: node.mode,
            mtime_ns: node.mtime_ns,
        }
    }
}

fn child_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    p.extend_from_slice(prefix);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// What `find` looks for.
pub struct FindQuery {
    /// Globs as for `--exclude`: without `/` the base name at any depth, with `/` the whole
    /// absolute path.
    pub filter: Filter,
    /// Only entries modified at or after / before these times (Unix ns).
    pub newer_ns: Option<i64>,
    pub older_ns: Option<i64>,
}

/// The matches in one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct FindResult {
    pub snapshot: SnapshotId,
    pub time_ns: i64,
    pub matches: Vec<Entry>,
}

/// Finds the entries matching `query` in each of `snapshots` (in the order given; those
/// without a match are left out). A subtree met again at the same path is not walked again
/// (its matches are remembered when there are few: a broad pattern over a big tree must
/// not keep every match at every level in memory).
pub fn find(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
    query: &FindQuery,
) -> Result<Vec<FindResult>> {
    let mut memo: HashMap<(BlobId, Vec<u8>), Vec<Entry>> = HashMap::new();
    let mut results = Vec::new();
    for (id, snap) in snapshots {
        let matches = find_in(repo, &snap.tree, b"", 0, query, &mut memo)?;
        if !matches.is_empty() {
            results.push(FindResult {
                snapshot: *id,
                time_ns: snap.time_ns,
                matches,
            });
        }
    }
    Ok(results)
}

fn find_in(
    repo: &Repository,
    tree: &BlobId,
    prefix: &[u8],
    depth: usize,
    query: &FindQuery,
    memo: &mut HashMap<(BlobId, Vec<u8>), Vec<Entry>>,
) -> Result<Vec<Entry>> {
    check_depth(depth, prefix)?;
    let key = (*tree, prefix.to_vec());
    if let Some(found) = memo.get(&key) {
        return Ok(found.clone());
    }
    let t = repo.load_tree(tree)?;
    let mut found = Vec::new();
    for node in &t.nodes {
        let path = child_path(prefix, &node.name);
        let in_time = query.newer_ns.is_none_or(|n| node.mtime_ns >= n)
            && query.older_ns.is_none_or(|o| node.mtime_ns < o);
        if in_time && query.filter.matches_bytes(&path) {
            found.push(Entry::new(&path, node));
        }
        if let NodeKind::Dir { subtree } = &node.kind {
            found.extend(find_in(repo, subtree, &path, depth + 1, query, memo)?);
        }
    }
    if found.len() <= MEMO_MATCHES {
        memo.insert(key, found.clone());
    }
    Ok(found)
}

/// Subtrees with more matches than this are searched again when met again.
const MEMO_MATCHES: usize = 256;

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
