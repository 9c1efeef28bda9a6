//! Walking snapshot trees: resolving a path, and visiting every node under one.

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

/// Refuses trees nested deeper than the format allows (a hostile chain of trees must not
/// exhaust the stack).
pub fn check_depth(depth: usize, path: &[u8]) -> Result<()> {
    if depth > MAX_TREE_DEPTH {
        return Err(EngineError::Corrupt(format!(
            "{}: trees nest deeper than {MAX_TREE_DEPTH} levels",
            String::from_utf8_lossy(&path[..path.len().min(200)])
        )));
    }
    Ok(())
}

fn walk_at(
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
