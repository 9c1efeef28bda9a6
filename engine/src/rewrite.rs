//! `rewrite`: snapshots without some paths (a leaked secret, a person's data to erase).
//!
//! For every snapshot that holds a path matching the patterns (the same patterns as
//! backup's `--exclude`, [`crate::filter`]), new trees are written without the matching
//! entries (a matching directory goes with everything below it), then a new snapshot that
//! keeps everything else of the old one: time, host, user, paths, tags, project, source,
//! parent, summary and hold. It records the rewrite in the fields every rewrite uses
//! (format version 2, no new field): `original` keeps the id the backup first wrote, and a
//! [`strata_format::snapshot::Rewrite`] entry says when, by whom, which patterns, which
//! entries, and the id it was rewritten from. The old snapshot is then deleted unless
//! `keep_old`; the data only it referenced stays in the packs until the next prune.
//!
//! Order of writes, as everywhere: new trees → their index → new snapshots → deletion of
//! the old ones, so a crash at any point leaves every snapshot complete (at worst an old
//! one beside its rewritten copy). Held snapshots are refused as a whole before anything is
//! written, unless `force_held` (the rewritten copy keeps the hold).

use std::collections::HashMap;
use std::rc::Rc;

use serde::Serialize;
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{NodeKind, Tree};

use crate::filter::Filter;
use crate::packer::Packer;
use crate::{EngineError, Repository, Result};

/// Removed entries named one by one in a snapshot's rewrite record, at most.
const MAX_NOTED: usize = 100;

/// What to rewrite, and how.
#[derive(Debug, Clone, Default)]
pub struct RewriteOptions {
    /// Patterns of the paths to remove (backup's `--exclude` syntax).
    pub excludes: Vec<String>,
    /// Keep the old snapshots beside the rewritten ones.
    pub keep_old: bool,
    /// Only report what would be removed.
    pub dry_run: bool,
    /// Rewrite held snapshots too (their copies keep the hold).
    pub force_held: bool,
}

/// What `rewrite` did (or, with `dry_run`, would do) to one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRewrite {
    pub id: SnapshotId,
    /// The rewritten snapshot (None: unchanged, or a dry run).
    pub new_id: Option<SnapshotId>,
    /// The removed entries' absolute paths (a removed directory once, not what it held).
    pub removed: Vec<String>,
    /// Whether the old snapshot file was deleted.
    pub old_deleted: bool,
}

impl SnapshotRewrite {
    /// Whether anything in it matched.
    pub fn changed(&self) -> bool {
        !self.removed.is_empty()
    }
}

/// Removed paths below a tree, absolute.
type Removed = Rc<Vec<Vec<u8>>>;

struct TreePruner<'a> {
    repo: &'a Repository,
    filter: &'a Filter,
    /// (tree id, its path) → its new id and what was removed below it.
    memo: HashMap<(BlobId, Vec<u8>), (BlobId, Removed)>,
    /// New trees, encoded, each once: written only once nothing refuses the rewrite.
    new_trees: HashMap<BlobId, Vec<u8>>,
}

impl TreePruner<'_> {
    /// The tree `tree_id` at `path` ("" for the root) without the matching entries.
    fn prune(&mut self, tree_id: &BlobId, path: &[u8], depth: usize) -> Result<(BlobId, Removed)> {
        let key = (*tree_id, path.to_vec());
        if let Some(r) = self.memo.get(&key) {
            return Ok(r.clone());
        }
        crate::treewalk::check_depth(depth, path)?;
        let tree = self.repo.load_tree(tree_id)?;
        let mut removed = Vec::new();
        let mut nodes = Vec::with_capacity(tree.nodes.len());
        let mut changed = false;
        for mut node in tree.nodes {
            let mut full = path.to_vec();
            full.push(b'/');
            full.extend_from_slice(&node.name);
            if self.filter.matches_bytes(&full) {
                removed.push(full);
                changed = true;
                continue;
            }
            if let NodeKind::Dir { subtree } = &mut node.kind {
                let (new, below) = self.prune(subtree, &full, depth + 1)?;
                if new != *subtree {
                    *subtree = new;
                    changed = true;
                }
                removed.extend(below.iter().cloned());
            }
            nodes.push(node);
        }
        let new_id = if changed {
            let enc = Tree { nodes }.encode();
            let id = self.repo.key().blob_id(&enc);
            self.new_trees.entry(id).or_insert(enc);
            id
        } else {
            *tree_id
        };
        let out = (new_id, Rc::new(removed));
        self.memo.insert(key, out.clone());
        Ok(out)
    }
}

/// The rewrite record of one snapshot.
fn note(old: &SnapshotId, patterns: &[String], removed: &[Vec<u8>]) -> String {
    let mut note = format!(
        "rewrite of {old}: removed {} entries matching {}",
        removed.len(),
        patterns
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for p in removed.iter().take(MAX_NOTED) {
        note.push_str("; ");
        note.push_str(&String::from_utf8_lossy(p));
    }
    if removed.len() > MAX_NOTED {
        note.push_str(&format!("; and {} more", removed.len() - MAX_NOTED));
    }
    note
}

/// Rewrites `snapshots` without the paths `opts.excludes` match (repository opened with
/// its whole index, under an exclusive lock). Snapshots in which nothing matches are left
/// as they are. See the module docs for the order of writes and for holds.
pub fn rewrite(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
    opts: &RewriteOptions,
) -> Result<Vec<SnapshotRewrite>> {
    if opts.excludes.is_empty() {
        return Err(EngineError::Invalid(
            "say which paths to remove: --exclude PATTERN or --exclude-file FILE".into(),
        ));
    }
    let filter = Filter::new(&opts.excludes)?;
    let mut pruner = TreePruner {
        repo,
        filter: &filter,
        memo: HashMap::new(),
        new_trees: HashMap::new(),
    };
    let mut plans = Vec::new();
    for (id, snap) in snapshots {
        let (tree, removed) = pruner.prune(&snap.tree, b"", 0)?;
        plans.push((id, snap, tree, removed));
    }
    let now = crate::now_ns();
    let held: Vec<(SnapshotId, i64)> = plans
        .iter()
        .filter(|(_, _, _, removed)| !removed.is_empty())
        .filter_map(|(id, s, _, _)| s.keep_until_ns.filter(|u| *u > now).map(|u| (**id, u)))
        .collect();
    if !held.is_empty() && !opts.force_held && !opts.dry_run {
        let named: Vec<String> = held
            .iter()
            .map(|(id, until)| {
                format!(
                    "{} until {} UTC",
                    id.short(),
                    crate::retention::format_time(*until, &jiff::tz::TimeZone::UTC)
                )
            })
            .collect();
        return Err(EngineError::Invalid(format!(
            "refusing to rewrite held snapshots ({}); nothing was written. --force-held \
             rewrites them too (the rewritten copies keep the hold)",
            named.join(", ")
        )));
    }
    let mut out = Vec::new();
    if !opts.dry_run {
        // New trees are durable and indexed before any snapshot names them.
        let packer = Packer::new(repo);
        for (id, enc) in &pruner.new_trees {
            packer.add(BlobType::Tree, *id, enc)?;
        }
        packer.finish()?;
    }
    for (id, snap, tree, removed) in plans {
        let mut r = SnapshotRewrite {
            id: *id,
            new_id: None,
            removed: removed
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect(),
            old_deleted: false,
        };
        if !removed.is_empty() && !opts.dry_run {
            let change = note(id, &opts.excludes, &removed);
            let new_id =
                crate::snapshots::rewrite_keeping(repo, id, snap, change, opts.keep_old, |s| {
                    s.tree = tree
                })?;
            r.new_id = Some(new_id);
            r.old_deleted = !opts.keep_old;
        }
        out.push(r);
    }
    Ok(out)
}
