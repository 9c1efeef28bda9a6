//! Prune: remove from storage what no snapshot needs, without ever losing what one does.
//!
//! 1. Under an exclusive lock (the caller's), read every index file and snapshot; any
//!    unreadable one stops prune before anything is changed.
//! 2. Mark every blob reachable from the snapshots (and every dictionary). A needed blob
//!    that is not indexed, or whose pack is missing, stops prune: `repair` comes first.
//! 3. Plan, per pack: keep it; delete it (nothing in it is needed, or no index names it);
//!    or repack it (more than `max_unused` percent of it is unneeded, or it is tiny and
//!    there are other tiny packs to merge it with).
//! 4. Copy the needed blobs of the packs to repack, verified, into new packs (durable
//!    before the next step). Write the new index, which names every kept and new pack and
//!    supersedes every index file read in step 1. Then delete the superseded index files,
//!    then the packs. Last, remove the temporary files that killed writers left behind.
//!
//! A crash at any moment leaves a valid repository: before the new index is complete, the
//! old one still names every pack (nothing has been deleted); after it, every pack that is
//! still named exists. Whatever is left over (unindexed new packs, old index files, packs
//! no index names) is what the next prune removes.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;
use strata_format::id::{BlobId, IndexId, PackId};
use strata_format::index::IndexPack;
use strata_format::pack::PackBlob;
use strata_storage::FileType;

use crate::packer::Packer;
use crate::packread::{Held, PackFile};
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

mod plan;
use plan::is_set;
pub use plan::plan;

/// How prune decides.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of its bytes is unneeded.
    pub max_unused_percent: f64,
    /// Packs smaller than this fraction of the target pack size are merged when there
    /// are at least two of a kind.
    pub tiny_fraction: f64,
    /// Plan as if these snapshots were already gone (for `forget --prune --dry-run`).
    pub ignore_snapshots: Vec<strata_format::id::SnapshotId>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            tiny_fraction: 0.125,
            ignore_snapshots: Vec::new(),
        }
    }
}

/// What prune will do (or did), in numbers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneStats {
    pub snapshots: u64,
    pub index_files: u64,
    /// Index files a newer one supersedes (left by an interrupted prune or repair).
    pub superseded_index_files: u64,
    /// Packs in storage, and their bytes.
    pub packs: u64,
    pub pack_bytes: u64,
    /// Blobs the snapshots need, and their stored bytes.
    pub used_blobs: u64,
    pub used_bytes: u64,
    /// Indexed blobs no snapshot needs, and their stored bytes.
    pub unused_blobs: u64,
    pub unused_bytes: u64,
    pub keep_packs: u64,
    /// Packs rewritten, their bytes, and the needed blobs (and bytes) copied out of them.
    pub repack_packs: u64,
    pub repack_pack_bytes: u64,
    pub repack_blobs: u64,
    pub repack_blob_bytes: u64,
    /// Packs deleted because nothing in them is needed.
    pub unused_packs: u64,
    pub unused_pack_bytes: u64,
    /// Packs deleted because no index names them (left by interrupted backups or prunes).
    pub unindexed_packs: u64,
    pub unindexed_pack_bytes: u64,
    /// Packs no index names whose header does not authenticate under this repository's
    /// key: kept (`repair index --delete-unreadable` removes them by name).
    pub unreadable_packs: Vec<String>,
    /// After the run: packs and index files written, bytes written, bytes freed.
    pub packs_written: u64,
    pub bytes_written: u64,
    pub index_files_written: u64,
    pub packs_deleted: u64,
    pub bytes_freed: i64,
    pub temp_files_removed: u64,
    /// Evidence files deleted because every snapshot they name is gone.
    pub evidence_deleted: u64,
}

/// What happens to one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Repack,
    /// Nothing in it is needed: deleted.
    Delete,
    /// Indexed but not in storage, and nothing in it is needed: left out of the new index.
    Gone,
}

/// One pack as the index knows it (packs named by several index files appear once).
struct PackInfo {
    id: PackId,
    size: u64,
    fate: Fate,
    /// The pack holds data blobs (else trees and dictionaries).
    data: bool,
    total_bytes: u64,
    used_bytes: u64,
    used_blobs: u64,
}

/// A planned prune: run it with [`execute`], or show its [`PrunePlan::stats`].
pub struct PrunePlan {
    pub stats: PruneStats,
    packs: Vec<PackInfo>,
    /// Pack position in the master index → position in `packs`.
    canon: Vec<u32>,
    /// Bit per master-index entry: needed by a snapshot.
    used: Vec<u64>,
    unindexed: Vec<(String, u64)>,
    index_files: Vec<String>,
}

impl PrunePlan {
    /// Whether running the plan would change anything.
    pub fn is_noop(&self) -> bool {
        self.packs.iter().all(|p| p.fate == Fate::Keep)
            && self.unindexed.is_empty()
            && self.stats.superseded_index_files == 0
    }
}

/// Carries out a plan: repack, write the new index, delete superseded index files, then
/// delete packs. Returns the plan's numbers with what was written and freed.
pub fn execute(repo: &Repository, plan: PrunePlan, progress: &dyn Progress) -> Result<PruneStats> {
    let PrunePlan {
        mut stats,
        packs,
        canon,
        used,
        unindexed,
        index_files,
    } = plan;
    progress.phase(crate::progress::Phase::Pruning);
    let index = repo.index();
    let index_changes =
        packs.iter().any(|p| p.fate != Fate::Keep) || stats.superseded_index_files > 0;

    // 1. Copy what is needed out of the packs to repack, into new packs (durable).
    let mut new_packs = Vec::new();
    if packs.iter().any(|p| p.fate == Fate::Repack) {
        let mut blobs_of: HashMap<u32, Vec<(BlobId, crate::BlobLocation)>> = HashMap::new();
        for (pos, (id, loc)) in index.iter().enumerate() {
            let c = canon[loc.pack as usize];
            if packs[c as usize].fate == Fate::Repack && is_set(&used, pos) {
                blobs_of.entry(c).or_default().push((id, loc));
            }
        }
        progress.set_total(stats.repack_pack_bytes);
        let packer = Packer::for_repack(repo);
        let mut work: Vec<(u32, Vec<(BlobId, crate::BlobLocation)>)> =
            blobs_of.into_iter().collect();
        work.sort_by_key(|(c, _)| *c);
        work.into_par_iter().try_for_each(|(c, mut blobs)| {
            crate::progress::check_stop(progress)?;
            blobs.sort_by_key(|(_, l)| l.offset);
            let pack = &packs[c as usize];
            copy_pack(repo, &packer, pack, &blobs)?;
            progress.add_bytes(pack.size);
            Ok::<_, EngineError>(())
        })?;
        let (_, written) = packer.finish_repack()?;
        stats.packs_written = written.len() as u64;
        stats.bytes_written = written.iter().map(|p| p.size).sum();
        new_packs = written;
    }

    // 2. The new index: every kept pack with its blobs, and the new packs. Each file
    //    supersedes every index file read; all are durable before anything is deleted.
    if index_changes {
        let supersedes: Vec<IndexId> = index_files.iter().filter_map(|n| n.parse().ok()).collect();
        // (pack, entry position) for every entry of a kept pack, grouped by pack.
        let mut order: Vec<(u32, u32)> = index
            .iter()
            .enumerate()
            .filter_map(|(pos, (_, loc))| {
                let c = canon[loc.pack as usize];
                (packs[c as usize].fate == Fate::Keep).then_some((c, pos as u32))
            })
            .collect();
        order.sort_unstable();
        let mut kept: Vec<IndexPack> = Vec::new();
        for group in order.chunk_by(|a, b| a.0 == b.0) {
            let info = &packs[group[0].0 as usize];
            kept.push(IndexPack {
                id: info.id,
                size: info.size,
                blobs: group
                    .iter()
                    .map(|&(_, pos)| {
                        let (id, loc) = index.at(pos as usize);
                        PackBlob {
                            blob_type: loc.blob_type,
                            id,
                            offset: loc.offset,
                            length: loc.length,
                            raw_length: loc.raw_length,
                        }
                    })
                    .collect(),
            });
        }
        kept.extend(new_packs);
        crate::progress::check_stop(progress)?;
        stats.index_files_written = crate::objects::write_index_files(repo, kept, &supersedes)?;

        // 3. Superseded index files.
        crate::objects::delete_all(repo, FileType::Index, &index_files)?;
    }

    // 4. Packs: unneeded, repacked, and those no index names. (Stopped before, the next
    //    prune deletes them.)
    crate::progress::check_stop(progress)?;
    let mut doomed: Vec<String> = packs
        .iter()
        .filter(|p| matches!(p.fate, Fate::Repack | Fate::Delete))
        .map(|p| p.id.to_hex())
        .collect();
    let mut freed: u64 = packs
        .iter()
        .filter(|p| matches!(p.fate, Fate::Repack | Fate::Delete))
        .map(|p| p.size)
        .sum();
    doomed.extend(unindexed.iter().map(|(n, _)| n.clone()));
    freed += unindexed.iter().map(|(_, s)| s).sum::<u64>();
    crate::objects::delete_all(repo, FileType::Pack, &doomed)?;
    stats.packs_deleted = doomed.len() as u64;
    stats.bytes_freed = freed as i64 - stats.bytes_written as i64;

    // 4b. Evidence whose snapshots are all gone (forget deleted them before this prune,
    //     durably). A snapshot rewritten since (a hold) keeps the evidence of its original.
    crate::progress::check_stop(progress)?;
    stats.evidence_deleted = delete_orphaned_evidence(repo)?;

    // 5. Temporary files of killed writers (none is at work: the lock is exclusive). The
    //    repository is whole without this step, so a failure is only a warning.
    stats.temp_files_removed = match repo.block_on(repo.backend().remove_leftovers()) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("could not remove temporary files left by killed writers: {e}");
            0
        }
    };
    progress.finish();
    Ok(stats)
}

/// Reads a pack, verifies each needed blob and appends it, as stored, to the packer.
fn copy_pack(
    repo: &Repository,
    packer: &Packer,
    pack: &PackInfo,
    blobs: &[(BlobId, crate::BlobLocation)],
) -> Result<()> {
    let Some(end) = blobs
        .iter()
        .map(|(_, l)| l.offset as u64 + l.length as u64)
        .max()
    else {
        return Ok(());
    };
    let name = pack.id.to_hex();
    let start = blobs[0].1.offset as u64;
    let bytes =
        PackFile::indexed(&pack.id, pack.size, Held::KeptBlobs).read(repo, start, end - start)?;
    for (id, loc) in blobs {
        let from = (loc.offset as u64 - start) as usize;
        let stored = &bytes[from..from + loc.length as usize];
        let plain = repo
            .decode_stored_blob(loc.blob_type, id, &pack.id, stored)
            .map_err(|e| {
                EngineError::Corrupt(format!(
                    "{e}; prune deleted nothing: run `strata check --read-data`, then \
                     `strata repair index --read-data` and `strata repair snapshots`"
                ))
            })?;
        if plain.len() != loc.raw_length as usize {
            return Err(EngineError::Corrupt(format!(
                "{} blob {id} in pack {name} decodes to {} bytes, the index records {}; prune \
                 deleted nothing",
                loc.blob_type.name(),
                plain.len(),
                loc.raw_length
            )));
        }
        packer.add_stored(loc.blob_type, *id, loc.raw_length, stored)?;
    }
    Ok(())
}

/// Deletes the evidence files every snapshot of which is gone; returns how many. Evidence
/// that names no snapshot, and evidence that cannot be read (`check` reports it), is kept.
fn delete_orphaned_evidence(repo: &Repository) -> Result<u64> {
    let evidence = crate::evidence::read_all(repo)?.files;
    if evidence.is_empty() {
        return Ok(0);
    }
    let mut live = std::collections::HashSet::new();
    for (id, s) in crate::snapshots::list_lenient(repo)? {
        live.insert(id);
        if let Ok(s) = s {
            live.extend(s.original);
        }
    }
    let doomed: Vec<String> = evidence
        .iter()
        .filter(|(_, e)| !e.snapshots.is_empty() && !e.snapshots.iter().any(|s| live.contains(s)))
        .map(|(id, _)| id.to_hex())
        .collect();
    crate::objects::delete_all(repo, FileType::Evidence, &doomed)?;
    Ok(doomed.len() as u64)
}
