//! `repair snapshots`: rewriting snapshots that need lost data, dropping only what is lost.

use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::tree::{NodeKind, Tree};
use strata_storage::FileType;

use crate::packer::Packer;
use crate::progress::Progress;
use crate::report::{Finding, FindingKind, ObjectRef};
use crate::{EngineError, Repository, Result};

/// Dropped entries recorded one by one in a snapshot's rewrite note, at most.
const MAX_NOTED: usize = 100;

/// What `repair snapshots` did to one snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRepair {
    pub id: SnapshotId,
    /// The rewritten snapshot's id (None when it could not be repaired or was removed).
    pub new_id: Option<SnapshotId>,
    /// Dropped entries, each with its path; the message reads "path: reason".
    pub dropped: Vec<Finding>,
    /// Set when the root tree or the snapshot file is unreadable: nothing of it can be
    /// restored.
    pub unrepairable: Option<Finding>,
    /// The snapshot was removed (unrepairable, with `forget_unrepairable`).
    pub removed: bool,
}

/// What was dropped below a tree: (path relative to it, why, its message the reason alone).
type Dropped = Rc<Vec<(Vec<u8>, Finding)>>;

struct TreeRepairer<'a> {
    repo: &'a Repository,
    stored_packs: HashMap<String, u64>,
    packer: Option<&'a Packer<'a>>,
    /// Tree id → repaired tree id (None: unreadable) and what was dropped below it.
    memo: HashMap<BlobId, (Option<BlobId>, Dropped)>,
}

impl TreeRepairer<'_> {
    /// Why a blob cannot be read, if it cannot.
    fn blob_problem(&self, t: BlobType, id: &BlobId) -> Option<Finding> {
        let problem =
            |kind, message| Some(Finding::new(kind, Some(ObjectRef::blob(t, *id)), message));
        let index = self.repo.index();
        let Some(loc) = index.get(id) else {
            return problem(
                FindingKind::MissingBlob,
                format!("{} blob {id} is lost", t.name()),
            );
        };
        if loc.blob_type != t {
            return problem(
                FindingKind::BlobTypeMismatch,
                format!("blob {id} is not a {} blob", t.name()),
            );
        }
        let (pack, size) = index.pack(loc.pack);
        match self.stored_packs.get(&pack.to_hex()) {
            None => problem(
                FindingKind::BlobInDamagedPack,
                format!("{} blob {id} is in missing pack {pack}", t.name()),
            ),
            Some(s) if *s != size => problem(
                FindingKind::BlobInDamagedPack,
                format!(
                    "{} blob {id} is in pack {pack}, which has the wrong size",
                    t.name()
                ),
            ),
            Some(_) => None,
        }
    }

    fn repair(&mut self, tree_id: &BlobId, depth: usize) -> Result<(Option<BlobId>, Dropped)> {
        if let Some(r) = self.memo.get(tree_id) {
            return Ok(r.clone());
        }
        let mut dropped: Vec<(Vec<u8>, Finding)> = Vec::new();
        let this_tree = Some(ObjectRef::blob(BlobType::Tree, *tree_id));
        let loaded = match (
            self.blob_problem(BlobType::Tree, tree_id),
            crate::treewalk::guard(depth),
        ) {
            (Some(p), _) => Err(p),
            (None, Err(too_deep)) => Err(Finding::new(
                FindingKind::TooDeep,
                this_tree,
                too_deep.to_string(),
            )),
            (None, Ok(())) => match self.repo.load_tree(tree_id) {
                Ok(t) => Ok(t),
                Err(e) if e.kind() == crate::ErrorKind::Corrupt => Err(Finding::new(
                    FindingKind::UnreadableTree,
                    this_tree,
                    e.to_string(),
                )),
                // A storage failure is not lost data: stop rather than drop a directory.
                Err(e) => return Err(e),
            },
        };
        let result = match loaded {
            Err(why) => {
                dropped.push((Vec::new(), why));
                None
            }
            Ok(tree) => {
                let mut nodes = Vec::with_capacity(tree.nodes.len());
                let mut changed = false;
                for mut node in tree.nodes {
                    let mut path = vec![b'/'];
                    path.extend_from_slice(&node.name);
                    match &mut node.kind {
                        NodeKind::File { content } => {
                            if let Some(p) = content
                                .iter()
                                .find_map(|id| self.blob_problem(BlobType::Data, id))
                            {
                                dropped.push((path, p));
                                changed = true;
                                continue;
                            }
                        }
                        NodeKind::Dir { subtree } => {
                            let (new, below) = self.repair(subtree, depth + 1)?;
                            for (p, why) in below.iter() {
                                let mut full = path.clone();
                                full.extend_from_slice(p);
                                dropped.push((full, why.clone()));
                            }
                            match new {
                                None => {
                                    changed = true;
                                    continue;
                                }
                                Some(n) if n != *subtree => {
                                    *subtree = n;
                                    changed = true;
                                }
                                Some(_) => {}
                            }
                        }
                        _ => {}
                    }
                    nodes.push(node);
                }
                if changed {
                    let tree = Tree { nodes };
                    let enc = tree.encode();
                    let id = self.repo.key().blob_id(&enc);
                    if let Some(packer) = self.packer {
                        packer.add(BlobType::Tree, id, &enc)?;
                    }
                    Some(id)
                } else {
                    Some(*tree_id)
                }
            }
        };
        let out = (result, Rc::new(dropped));
        self.memo.insert(*tree_id, out.clone());
        Ok(out)
    }
}

/// Rewrites every snapshot that needs lost blobs (repository opened with its whole index,
/// under an exclusive lock). With `dry_run`, only reports. Unrepairable snapshots (root
/// tree lost, or the snapshot file itself damaged) are removed only with
/// `forget_unrepairable`.
pub fn repair_snapshots(
    repo: &Repository,
    dry_run: bool,
    forget_unrepairable: bool,
    progress: &dyn Progress,
) -> Result<Vec<SnapshotRepair>> {
    let stored_packs: HashMap<String, u64> = repo
        .block_on(repo.backend().list(FileType::Pack))?
        .into_iter()
        .collect();
    let mut out = Vec::new();
    let mut snapshots = Vec::new();
    for (id, s) in crate::snapshots::list_lenient(repo)? {
        match s {
            Ok(s) => snapshots.push((id, s)),
            Err(e) if e.kind() == crate::ErrorKind::Corrupt => {
                // Storage damage changes a file's hash. A file whose bytes match its name
                // but do not open (another key's, a newer version's) or that is too large
                // to be read is kept, whatever --forget says.
                let foreign = !matches!(e, EngineError::Damaged(_));
                let remove = forget_unrepairable && !dry_run && !foreign;
                if remove {
                    crate::snapshots::forget(repo, &[id])?;
                }
                let why = if foreign {
                    Finding::new(
                        FindingKind::ForeignSnapshot,
                        Some(ObjectRef::Snapshot { id }),
                        format!(
                            "{e}; the file is intact (it matches its name) but this program \
                             cannot read it (another repository's key, or a newer Strata): \
                             kept, also with --forget (`strata forget {}` removes it)",
                            id.short()
                        ),
                    )
                } else {
                    Finding::new(
                        FindingKind::UnreadableSnapshot,
                        Some(ObjectRef::Snapshot { id }),
                        e.to_string(),
                    )
                };
                out.push(SnapshotRepair {
                    id,
                    new_id: None,
                    dropped: Vec::new(),
                    unrepairable: Some(why.in_snapshot(id)),
                    removed: remove,
                });
            }
            Err(e) => return Err(e),
        }
    }
    let packer = Packer::new(repo);
    let mut repairer = TreeRepairer {
        repo,
        stored_packs,
        packer: (!dry_run).then_some(&packer),
        memo: HashMap::new(),
    };
    let mut plans: Vec<(SnapshotId, Option<BlobId>, Dropped)> = Vec::new();
    for (id, snap) in &snapshots {
        progress.add_item();
        let (new, dropped) = repairer.repair(&snap.tree, 0)?;
        if new != Some(snap.tree) {
            plans.push((*id, new, dropped));
        }
    }
    drop(repairer);
    // New trees are durable and indexed before any snapshot names them.
    packer.finish()?;
    let by_id: HashMap<SnapshotId, &strata_format::snapshot::SnapshotFile> =
        snapshots.iter().map(|(i, s)| (*i, s)).collect();
    for (id, new_tree, dropped) in plans {
        let snap = by_id[&id];
        let dropped: Vec<Finding> = dropped
            .iter()
            .map(|(p, why)| {
                let at: &[u8] = if p.is_empty() { b"/" } else { p };
                let shown = String::from_utf8_lossy(at).into_owned();
                why.clone()
                    .in_snapshot(id)
                    .at_path(at)
                    .reworded(|why| format!("{shown}: {why}"))
            })
            .collect();
        let mut r = SnapshotRepair {
            id,
            new_id: None,
            dropped,
            unrepairable: None,
            removed: false,
        };
        match new_tree {
            None => {
                // Only the root tree was dropped: its finding says why.
                r.unrepairable = r.dropped.first().cloned();
                if forget_unrepairable && !dry_run {
                    match crate::snapshots::forget(repo, &[id]) {
                        Ok(()) => r.removed = true,
                        // Held: kept, whatever --forget says (its hold is in the message).
                        Err(e @ EngineError::Held(_)) => {
                            r.unrepairable = r
                                .unrepairable
                                .take()
                                .map(|f| f.reworded(|why| format!("{why}; {e}")));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Some(tree) if !dry_run => {
                let mut note = format!("repair: dropped {} entries", r.dropped.len());
                for l in r.dropped.iter().take(MAX_NOTED) {
                    note.push_str("; ");
                    note.push_str(&l.message);
                }
                if r.dropped.len() > MAX_NOTED {
                    note.push_str(&format!("; and {} more", r.dropped.len() - MAX_NOTED));
                }
                let new_id = crate::snapshots::rewrite(repo, &id, snap, note, |s| s.tree = tree)?;
                r.new_id = Some(new_id);
            }
            Some(_) => {}
        }
        out.push(r);
    }
    progress.finish();
    Ok(out)
}
