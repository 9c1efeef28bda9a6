//! `find`: which snapshots hold entries matching a pattern, and the entry as `find` and
//! `diff` report it.

use std::collections::HashMap;

use serde::Serialize;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind};

use crate::filter::Filter;
use crate::treewalk::check_depth;
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
    pub(super) fn new(path: &[u8], node: &Node) -> Self {
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

pub(super) fn child_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
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
