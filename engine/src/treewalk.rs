//! Walking snapshot trees: resolving a path, visiting every node under one, and the depth
//! guard every walk of trees passes.
//!
//! Trees nest as deep as their writer made them, and a hostile writer holding the key can
//! chain them without end: every walk calls [`guard`] before it opens a tree, so that none
//! goes deeper than [`MAX_TREE_DEPTH`] (what [`crate::STACK_SIZE`] is sized for, in walks
//! that recurse once per level). `depth` counts the trees above the one about to be
//! opened; a snapshot's root is at 0.
//!
//! The walks themselves take the shape of what they compute, and only those of one shape
//! share a walker: [`walk`] visits every node with its path (`ls`, `diff`'s added and
//! removed subtrees). Folds that remember a result per tree id and combine children
//! before parents (`check`, `repair snapshots`, `copy`, `stats`), the restorer's walk
//! (directories created on the way down, failures of one subtree kept to it), `find`
//! (remembered per tree and path), `diff` (two trees in step), and prune's marking and
//! `stats`' blob count (each distinct tree once) keep their own loops, each with the guard.

use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind, Tree, MAX_TREE_DEPTH};

use crate::{EngineError, Repository, Result};

/// What a path in a snapshot names.
pub enum Found {
    /// The root of the snapshot.
    Root(BlobId),
    /// An entry; `path` is its absolute path in the snapshot.
    Node { path: Vec<u8>, node: Node },
}

/// Resolves an absolute path (`/a/b`) inside the tree `root`.
pub fn resolve(repo: &Repository, root: &BlobId, path: &[u8]) -> Result<Found> {
    let comps: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if comps.is_empty() {
        return Ok(Found::Root(*root));
    }
    let mut tree_id = *root;
    let mut abs = Vec::new();
    for (i, name) in comps.iter().enumerate() {
        let tree = repo.load_tree(&tree_id)?;
        abs.push(b'/');
        abs.extend_from_slice(name);
        let node = tree.get(name).ok_or_else(|| {
            EngineError::NotFound(format!(
                "{} is not in the snapshot",
                String::from_utf8_lossy(&abs)
            ))
        })?;
        if i + 1 == comps.len() {
            return Ok(Found::Node {
                path: abs,
                node: node.clone(),
            });
        }
        match &node.kind {
            NodeKind::Dir { subtree } => tree_id = *subtree,
            _ => {
                return Err(EngineError::NotFound(format!(
                    "{} is not a directory in the snapshot",
                    String::from_utf8_lossy(&abs)
                )))
            }
        }
    }
    unreachable!("the loop returns on its last component")
}

/// Visits every node of `tree` and below in depth-first name order, with its absolute
/// path. `visit` returns whether to descend into a directory.
pub fn walk(
    repo: &Repository,
    tree: &BlobId,
    prefix: &[u8],
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<bool>,
) -> Result<()> {
    walk_at(repo, tree, prefix, 0, visit)
}

/// Trees nested deeper than the format allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep;

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "trees nest deeper than {MAX_TREE_DEPTH} levels")
    }
}

/// The depth guard: whether a walk may open a tree with `depth` trees above it. Walks that
/// report damage rather than fail take the [`TooDeep`] as a finding; the rest fail with
/// [`check_depth`].
pub fn guard(depth: usize) -> std::result::Result<(), TooDeep> {
    if depth > MAX_TREE_DEPTH {
        return Err(TooDeep);
    }
    Ok(())
}

/// [`guard`], failing with a `Corrupt` error that names the path of the tree refused.
pub fn check_depth(depth: usize, path: &[u8]) -> Result<()> {
    guard(depth).map_err(|too_deep| {
        EngineError::Corrupt(format!(
            "{}: {too_deep}",
            String::from_utf8_lossy(&path[..path.len().min(200)])
        ))
    })
}

/// [`walk`] from a tree with `depth` trees above it (for walks that started higher up).
pub(crate) fn walk_at(
    repo: &Repository,
    tree: &BlobId,
    prefix: &[u8],
    depth: usize,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<bool>,
) -> Result<()> {
    check_depth(depth, prefix)?;
    let tree: Tree = repo.load_tree(tree)?;
    for node in &tree.nodes {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&node.name);
        let descend = visit(&path, node)?;
        if let (true, NodeKind::Dir { subtree }) = (descend, &node.kind) {
            walk_at(repo, subtree, &path, depth + 1, visit)?;
        }
    }
    Ok(())
}
