//! Copying snapshots between repositories (replication to another target).
//!
//! The two repositories have different keys, so a blob's id differs between them (ids are
//! keyed hashes). Copying a snapshot walks its trees in the source, reads each data blob,
//! computes its id in the destination and stores it there unless the destination already
//! has it; trees are rewritten with the destination's ids. Chunk boundaries are kept as
//! they are. Packs and index are written before the snapshot, as in a backup.
//!
//! The copy records the source snapshot's id in `original` (or the source's own
//! `original`, if it was itself a copy or rewritten), so a second run skips what is already
//! there: copying is idempotent. An interrupted copy resumes where it stopped: the packer
//! indexes packs as they are stored (see `packer`), so the next run finds their blobs in
//! the destination's index and does not send them again; only the packs stored since the
//! last index file (a few packs, or at most about an eighth of what was stored) are sent
//! again, and the orphaned ones are removed by the next prune. Every source blob is still
//! read, to compute its id in the destination.

use std::collections::HashMap;

use strata_format::blob::BlobType;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::{Rewrite, SnapshotFile};
use strata_format::tree::{NodeKind, Tree};
use strata_storage::FileType;

use crate::packer::Packer;
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

/// What a copy did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CopyReport {
    /// (source id, destination id) of every snapshot copied now.
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Source snapshots the destination already had.
    pub skipped: Vec<SnapshotId>,
    /// Copies in the destination whose hold was extended to the source's.
    pub holds_updated: Vec<SnapshotId>,
    pub data_blobs_added: u64,
    pub tree_blobs_added: u64,
    /// Stored bytes added to the destination.
    pub bytes_added: u64,
    /// Evidence files of the snapshots copied now, written to the destination.
    #[serde(default)]
    pub evidence_copied: u64,
}

/// The identity of a snapshot across copies and rewrites.
fn identity(id: &SnapshotId, s: &SnapshotFile) -> SnapshotId {
    s.original.unwrap_or(*id)
}

/// Copies `snapshots` of `from` into `to` (both opened with their whole index, `to` under
/// at least a shared lock), skipping those `to` already holds.
pub fn copy(
    from: &Repository,
    to: &Repository,
    snapshots: &[(SnapshotId, SnapshotFile)],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if from.config().max_chunk_size() > to.config().max_chunk_size() {
        return Err(EngineError::Invalid(format!(
            "the destination's largest chunk ({} bytes) is smaller than the source's ({} \
             bytes): its blobs would not fit",
            to.config().max_chunk_size(),
            from.config().max_chunk_size()
        )));
    }
    if to.index_is_metadata_only() {
        return Err(EngineError::Invalid(
            "copy needs the destination's whole index".into(),
        ));
    }
    let present: HashMap<SnapshotId, (SnapshotId, SnapshotFile)> =
        crate::snapshots::list_readable(to)?
            .into_iter()
            .map(|(id, s)| (identity(&id, &s), (id, s)))
            .collect();
    let mut report = CopyReport::default();
    let mut todo = Vec::new();
    for (id, s) in snapshots {
        match present.get(&identity(id, s)) {
            Some((copy_id, copy)) => {
                // Already there; a hold set on the source since then is carried over.
                if s.keep_until_ns > copy.keep_until_ns {
                    let why = format!("carried over from snapshot {} by copy", id.short());
                    crate::snapshots::hold(to, copy_id, copy, s.keep_until_ns, Some(&why))?;
                    report.holds_updated.push(*copy_id);
                }
                report.skipped.push(*id);
            }
            None => todo.push((id, s)),
        }
    }
    if todo.is_empty() {
        return Ok(report);
    }
    let packer = Packer::new(to);
    let mut copier = Copier {
        from,
        to,
        packer: &packer,
        trees: HashMap::new(),
        data: HashMap::new(),
        progress,
    };
    let mut new_snaps = Vec::new();
    progress.phase(crate::progress::Phase::Copying);
    for (id, s) in todo {
        let tree = copier.tree(&s.tree, 0)?;
        let mut snap = s.clone();
        snap.tree = tree;
        snap.parent = None;
        snap.original = Some(identity(id, s));
        snap.rewrites.push(Rewrite {
            time_ns: crate::now_ns(),
            hostname: crate::hostname(),
            username: crate::username(),
            change: format!(
                "copied from snapshot {} of {}",
                id.short(),
                from.backend().location()
            ),
        });
        new_snaps.push((*id, snap));
        progress.add_item();
    }
    drop(copier);
    crate::progress::check_stop(progress)?;
    // Everything the snapshots reference is durable and indexed before they are written.
    let stats = packer.finish()?;
    report.data_blobs_added = stats.data_blobs;
    report.tree_blobs_added = stats.tree_blobs;
    report.bytes_added = stats.bytes_added;
    for (id, snap) in new_snaps {
        let new_id = SnapshotId(to.save_object(FileType::Snapshot, &snap)?);
        report.copied.push((id, new_id));
    }
    // The evidence of the snapshots copied now, after them: sealed under the destination's
    // key and naming the snapshots by identity (`original`, else id), which every copy,
    // hold and rewrite of them keeps, so that prune finds them wherever they are.
    let identities: HashMap<SnapshotId, SnapshotId> = snapshots
        .iter()
        .map(|(id, s)| (*id, identity(id, s)))
        .collect();
    for (_, mut ev) in crate::evidence::read_all(from)?.files {
        if !ev
            .snapshots
            .iter()
            .any(|s| report.copied.iter().any(|(c, _)| c == s))
        {
            continue;
        }
        ev.snapshots = ev
            .snapshots
            .iter()
            .map(|s| identities.get(s).copied().unwrap_or(*s))
            .collect();
        crate::evidence::write(to, &ev)?;
        report.evidence_copied += 1;
    }
    progress.finish();
    Ok(report)
}

struct Copier<'a> {
    from: &'a Repository,
    to: &'a Repository,
    packer: &'a Packer<'a>,
    /// Source tree id → destination tree id.
    trees: HashMap<BlobId, BlobId>,
    /// Source data blob id → destination id.
    data: HashMap<BlobId, BlobId>,
    progress: &'a dyn Progress,
}

impl Copier<'_> {
    fn data_blob(&mut self, id: &BlobId) -> Result<BlobId> {
        if let Some(new) = self.data.get(id) {
            return Ok(*new);
        }
        crate::progress::check_stop(self.progress)?;
        let plain = self.from.read_blob(BlobType::Data, id)?;
        let new = self.to.key().blob_id(&plain);
        self.packer.add(BlobType::Data, new, &plain)?;
        self.progress.add_bytes(plain.len() as u64);
        self.data.insert(*id, new);
        Ok(new)
    }

    fn tree(&mut self, id: &BlobId, depth: usize) -> Result<BlobId> {
        if let Some(new) = self.trees.get(id) {
            return Ok(*new);
        }
        crate::treewalk::guard(depth).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let mut tree: Tree = self.from.load_tree(id)?;
        for node in &mut tree.nodes {
            match &mut node.kind {
                NodeKind::File { content } => {
                    for blob in content.iter_mut() {
                        *blob = self.data_blob(blob)?;
                    }
                }
                NodeKind::Dir { subtree } => *subtree = self.tree(subtree, depth + 1)?,
                _ => {}
            }
        }
        let enc = tree.encode();
        let new = self.to.key().blob_id(&enc);
        self.packer.add(BlobType::Tree, new, &enc)?;
        self.trees.insert(*id, new);
        Ok(new)
    }
}
