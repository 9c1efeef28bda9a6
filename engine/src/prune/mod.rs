//! Prune: remove from storage what no snapshot needs, without ever losing what one does,
//! while backups, copies, checks and restores go on (spec/prune.md).
//!
//! Prune holds a *prune* lock: one prune at a time, beside any number of shared locks.
//! Every lock carries a random session id. Deleting is done in two phases:
//!
//! 1. **Mark.** List the other locks' sessions; read every snapshot and WAL file; load the
//!    index; mark every blob they need. A pack that holds nothing needed, a pack to repack
//!    (once its needed blobs are copied into new packs) and a pack no index names are not
//!    deleted but *marked*: the new index lists them apart, with this run's mark id and
//!    time. A marked blob is still readable but no new snapshot may name it: a backup
//!    writes it again. Once the new index is durable and the files it supersedes are
//!    deleted, the locks are listed again and the mark is *sealed* with the sessions then
//!    live: those that may have loaded the index before the mark.
//! 2. **Delete**, in a later prune: a marked pack that a snapshot needs again (written by
//!    a session older than the mark) is revived; one whose mark's sessions have all ended,
//!    and that is older than the grace period, is deleted once the new index is durable
//!    (which lists it marked without its blobs, so that a run stopped before the delete
//!    leaves it due; the next index leaves it out). In the same run when no other session
//!    was live before or after the mark and no snapshot or WAL file appeared meanwhile:
//!    then nothing can name the marked packs.
//!
//! A crash at any moment leaves a valid repository: before the new index is complete, the
//! old one still names every pack (nothing has been deleted); after it, every pack it
//! names live exists, and marked packs are deleted only once no current file names them
//! live or lists their blobs. Whatever is left over (unindexed packs, old index files,
//! marks without a seal) is what the next prune marks, deletes or seals.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;
use strata_format::id::{BlobId, IndexId, PackId, SnapshotId};
use strata_format::index::{IndexPack, MarkedPack, Seal};
use strata_format::pack::PackBlob;
use strata_storage::FileType;

use crate::packer::Packer;
use crate::packread::{Held, PackFile};
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

mod plan;
use plan::is_set;
pub use plan::plan;

/// Temporary files not written for this long are a killed writer's (a running one writes
/// to its files, or renames them, far more often).
pub const LEFTOVER_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Index entries grouped by pack at a time while the new index is written (4 bytes each).
const GROUP_CHUNK: u32 = 1 << 23;

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
    /// A marked pack is deleted only once its mark is at least this old, by this host's
    /// clock (on top of the sessions rule; zero: as soon as that allows).
    pub grace: std::time::Duration,
    /// Added to this host's clock for the times prune writes and compares (marks, seals,
    /// the grace period): a host whose clock is off, for tests of skew between hosts.
    pub clock_skew_ns: i64,
    /// Index entries grouped by pack at a time while the new index is written (for tests
    /// of the chunking; the default bounds that to 32 MiB).
    #[doc(hidden)]
    pub group_chunk: u32,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 5.0,
            tiny_fraction: 0.125,
            ignore_snapshots: Vec::new(),
            grace: std::time::Duration::ZERO,
            clock_skew_ns: 0,
            group_chunk: GROUP_CHUNK,
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
    /// Marked packs that a snapshot needs again: back in the index (counted in keep_packs).
    pub revived_packs: u64,
    /// Packs marked earlier whose sessions have not all ended, or whose grace period has
    /// not passed: still marked.
    pub waiting_packs: u64,
    pub waiting_pack_bytes: u64,
    /// Packs marked earlier that this prune deletes.
    pub due_packs: u64,
    pub due_pack_bytes: u64,
    /// Other sessions (live locks) when prune began.
    pub other_sessions: u64,
    /// Packs rewritten, their bytes, and the needed blobs (and bytes) copied out of them.
    pub repack_packs: u64,
    pub repack_pack_bytes: u64,
    pub repack_blobs: u64,
    pub repack_blob_bytes: u64,
    /// Packs marked because nothing in them is needed.
    pub unused_packs: u64,
    pub unused_pack_bytes: u64,
    /// Packs marked because no index names them (left by interrupted backups or prunes,
    /// or being written by running ones).
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
    /// Packs marked by this run (unneeded, repacked or unindexed) and their bytes.
    pub packs_marked: u64,
    pub marked_bytes: u64,
    /// Whether the packs marked by this run were deleted in the same run (no other session
    /// was live and nothing was written meanwhile).
    pub marked_deleted_now: bool,
    pub temp_files_removed: u64,
    /// Evidence files deleted because every snapshot they name is gone.
    pub evidence_deleted: u64,
}

/// What happens to one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    /// Its needed blobs are copied into new packs; then it is marked.
    Repack,
    /// Nothing in it is needed: marked.
    Mark,
    /// Marked earlier, needed again: back in the index.
    Revive,
    /// Marked earlier, not yet due: stays marked.
    Wait,
    /// Marked earlier and due: deleted once the new index (which still lists it marked)
    /// is durable.
    Expire,
    /// Indexed but not in storage, and nothing in it is needed: left out of the new index
    /// (a marked one only when there is a new index anyway).
    Gone,
    /// Named only by superseded index files (treated as unindexed).
    Dropped,
}

/// One pack as the index knows it (packs named by several index files appear once): about
/// 40 bytes, kept for every pack of the repository while prune runs.
struct PackInfo {
    /// A position of the pack in the master index's pack table (its id and size).
    at: u32,
    /// Its blobs the snapshots need.
    used_blobs: u32,
    total_bytes: u64,
    used_bytes: u64,
    /// Its size in storage; [`NOT_LISTED`] when the listing did not have it.
    stored: u64,
    fate: Fate,
    /// Named live by a current index file.
    live: bool,
    /// Named (live or marked) by a current index file.
    current: bool,
    /// The pack holds data blobs (else trees and dictionaries).
    data: bool,
}

/// [`PackInfo::stored`] of a pack not in storage.
const NOT_LISTED: u64 = u64::MAX;

impl PackInfo {
    /// Whether its fate needs a new index. A marked pack gone from storage (deleted by an
    /// earlier prune after the index that still lists it was written) is left out whenever
    /// the index is written, but does not cause that.
    fn changes_index(&self) -> bool {
        match self.fate {
            Fate::Keep | Fate::Wait | Fate::Dropped => false,
            Fate::Gone => self.live,
            _ => true,
        }
    }

    fn new(at: u32) -> Self {
        PackInfo {
            at,
            used_blobs: 0,
            total_bytes: 0,
            used_bytes: 0,
            stored: NOT_LISTED,
            fate: Fate::Keep,
            live: false,
            current: false,
            data: false,
        }
    }
}

/// What the plan was made from, to tell afterwards whether anything was written since.
struct Seen {
    snapshots: Vec<SnapshotId>,
    wal: Vec<String>,
    ignored: Vec<SnapshotId>,
}

/// A planned prune: run it with [`execute`], or show its [`PrunePlan::stats`].
pub struct PrunePlan {
    pub stats: PruneStats,
    packs: Vec<PackInfo>,
    /// Pack position in the master index → position in `packs`.
    canon: Vec<u32>,
    /// `(position in packs, mark, time)` of every mark of a pack no current file names
    /// live, sorted.
    marks: Vec<(u32, [u8; 16], i64)>,
    /// Bit per master-index entry: needed by a snapshot.
    used: Vec<u64>,
    /// Packs no current index file names, with their headers' blobs.
    unindexed: Vec<IndexPack>,
    index_files: Vec<String>,
    /// The seal of every mark the loaded index has (made now for those without one).
    seals: HashMap<[u8; 16], Seal>,
    /// Seals made by this plan (for marks an interrupted prune left unsealed).
    new_seals: Vec<Seal>,
    seen: Seen,
    grace_ns: i64,
    skew_ns: i64,
    group_chunk: u32,
}

impl PrunePlan {
    /// Whether running the plan would change anything.
    pub fn is_noop(&self) -> bool {
        !self.packs.iter().any(PackInfo::changes_index)
            && self.unindexed.is_empty()
            && self.new_seals.is_empty()
            && self.stats.superseded_index_files == 0
    }
}

/// Carries out a plan: repack, write the new index (live, revived and new packs; marked
/// packs; seals), delete the index files it supersedes, seal this run's mark, then delete
/// the packs that are due. Returns the plan's numbers with what was written and freed.
pub fn execute(repo: &Repository, plan: PrunePlan, progress: &dyn Progress) -> Result<PruneStats> {
    let PrunePlan {
        mut stats,
        packs,
        canon,
        marks,
        used,
        unindexed,
        index_files,
        seals,
        new_seals,
        seen,
        grace_ns,
        skew_ns,
        group_chunk,
    } = plan;
    progress.phase(crate::progress::Phase::Pruning);
    let index = repo.index();
    let index_changes = packs.iter().any(PackInfo::changes_index)
        || !unindexed.is_empty()
        || !new_seals.is_empty()
        || stats.superseded_index_files > 0;
    let mark: [u8; 16] = rand::random();

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
            let (id, size) = index.pack(packs[c as usize].at);
            copy_pack(repo, &packer, &id, size, &blobs)?;
            progress.add_bytes(size);
            Ok::<_, EngineError>(())
        })?;
        let (_, written) = packer.finish_repack()?;
        stats.packs_written = written.len() as u64;
        stats.bytes_written = written.iter().map(|p| p.size).sum();
        new_packs = written;
    }

    // 2. The new index: kept and revived packs with their blobs, the new packs, every
    //    marked pack (this run's and those still waiting) and the seals of the marks that
    //    remain. The last file written supersedes every index file read (until then those
    //    still name every pack); all are durable before anything is deleted.
    let mut marked_now: Vec<String> = Vec::new();
    let mut marks_files: Vec<String> = Vec::new();
    if index_changes {
        let supersedes: Vec<IndexId> = index_files.iter().filter_map(|n| n.parse().ok()).collect();
        // The entry positions of every pack that stays, grouped by pack (a counting sort,
        // 4 bytes an entry, in chunks of consecutive packs with at most GROUP_CHUNK entries
        // (one pass over the index each): `start[c]..start[c + 1]` are pack `c`'s places.
        let stays = |c: usize| {
            matches!(
                packs[c].fate,
                Fate::Keep | Fate::Revive | Fate::Repack | Fate::Mark | Fate::Wait
            )
        };
        let mut start = vec![0u32; packs.len() + 1];
        for (_, loc) in index.iter() {
            let c = canon[loc.pack as usize] as usize;
            if stays(c) {
                start[c + 1] += 1;
            }
        }
        for c in 0..packs.len() {
            start[c + 1] += start[c];
        }
        // This run's marks go in files of their own (`mine`), finished first and
        // superseding nothing, so that when they can be deleted at once (step 5) their
        // files can go with them; everything else (`rest`) ends with the file that
        // supersedes what was read.
        let mut mine = crate::objects::IndexWriter::new(repo);
        let mut rest = crate::objects::IndexWriter::new(repo);
        let mut waiting_marks: Vec<[u8; 16]> = Vec::new();
        // The mark's time is when it is written (the grace period counts from there),
        // by this host's clock with the plan's skew.
        let marked_ns = crate::now_ns().saturating_add(skew_ns);
        let mut mark_now = |pack: IndexPack, mine: &mut crate::objects::IndexWriter| {
            marked_now.push(pack.id.to_hex());
            stats.marked_bytes += pack.size;
            mine.marked(MarkedPack {
                mark,
                marked_ns,
                pack,
            })
        };
        let mut keep_waiting =
            |pack: IndexPack, c: u32, rest: &mut crate::objects::IndexWriter| -> Result<()> {
                // Under each of its marks (a pack is rarely under two).
                let from = marks.partition_point(|(m, _, _)| *m < c);
                for (_, m, at) in marks[from..].iter().take_while(|(m, _, _)| *m == c) {
                    waiting_marks.push(*m);
                    rest.marked(MarkedPack {
                        mark: *m,
                        marked_ns: *at,
                        pack: pack.clone(),
                    })?;
                }
                Ok(())
            };
        let mut c0 = 0;
        while c0 < packs.len() {
            let mut c1 = c0 + 1;
            while c1 < packs.len() && start[c1 + 1] - start[c0] <= group_chunk {
                c1 += 1;
            }
            let base = start[c0];
            let mut order = vec![0u32; (start[c1] - base) as usize];
            let mut fill: Vec<u32> = start[c0..c1].iter().map(|s| s - base).collect();
            for (pos, (_, loc)) in index.iter().enumerate() {
                let c = canon[loc.pack as usize] as usize;
                if (c0..c1).contains(&c) && stays(c) {
                    order[fill[c - c0] as usize] = pos as u32;
                    fill[c - c0] += 1;
                }
            }
            drop(fill);
            for (c, info) in packs.iter().enumerate().take(c1).skip(c0) {
                let group = &order[(start[c] - base) as usize..(start[c + 1] - base) as usize];
                // A marked pack whose entries all resolve elsewhere (every blob also in a
                // live pack) has none here: it is marked with no blobs.
                let (id, size) = index.pack(info.at);
                let pack = IndexPack {
                    id,
                    size,
                    blobs: group
                        .iter()
                        .map(|&pos| {
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
                };
                match info.fate {
                    Fate::Keep | Fate::Revive if !group.is_empty() => rest.pack(pack)?,
                    Fate::Repack | Fate::Mark => mark_now(pack, &mut mine)?,
                    Fate::Wait => keep_waiting(pack, c as u32, &mut rest)?,
                    // Due ones too, without their blobs (deleted after this index is
                    // durable, in step 5, no entry may lead a reader to them): a run
                    // stopped before the deletes leaves them due, not unindexed.
                    Fate::Expire => keep_waiting(pack, c as u32, &mut rest)?,
                    _ => {}
                }
            }
            c0 = c1;
        }
        drop(start);
        for pack in unindexed.iter().cloned() {
            mark_now(pack, &mut mine)?;
        }
        for pack in new_packs {
            rest.pack(pack)?;
        }
        waiting_marks.sort_unstable();
        waiting_marks.dedup();
        let carried: Vec<Seal> = waiting_marks
            .iter()
            .filter_map(|m| seals.get(m).cloned())
            .collect();
        crate::progress::check_stop(progress)?;
        if !marked_now.is_empty() {
            marks_files = mine.finish(Vec::new(), &[])?;
            stats.index_files_written += marks_files.len() as u64;
        }
        stats.index_files_written += rest.finish(carried, &supersedes)?.len() as u64;

        // 3. Superseded index files.
        crate::objects::delete_all(repo, FileType::Index, &index_files)?;
    }
    stats.packs_marked = marked_now.len() as u64;

    // 4. Seal this run's mark: the sessions live now, once the mark is durable, are those
    //    that may have loaded the index before it.
    let mut sealed_with = Vec::new();
    if !marked_now.is_empty() {
        sealed_with = crate::lock::other_sessions(repo)?;
        let seal = Seal {
            mark,
            sealed_ns: crate::now_ns().saturating_add(skew_ns),
            sessions: sealed_with.clone(),
        };
        marks_files.extend(crate::objects::write_index_files(
            repo,
            crate::objects::NewIndex {
                seals: vec![seal],
                ..Default::default()
            },
            &[],
        )?);
        stats.index_files_written += 1;
    }

    // 5. Packs: those marked earlier that are due. (Stopped before, the next prune deletes
    //    them.) Then, if nothing can name them, this run's.
    crate::progress::check_stop(progress)?;
    let mut doomed: Vec<String> = packs
        .iter()
        .filter(|p| p.fate == Fate::Expire)
        .map(|p| index.pack(p.at).0.to_hex())
        .collect();
    let mut freed: u64 = packs
        .iter()
        .filter(|p| p.fate == Fate::Expire)
        .map(|p| index.pack(p.at).1)
        .sum();
    if !marked_now.is_empty()
        && grace_ns == 0
        && stats.other_sessions == 0
        && sealed_with.is_empty()
        && nothing_written_since(repo, &seen)?
    {
        doomed.extend(marked_now.iter().cloned());
        freed += stats.marked_bytes;
        stats.marked_deleted_now = true;
    }
    crate::objects::delete_all(repo, FileType::Pack, &doomed)?;
    if stats.marked_deleted_now {
        // Their marks and seal name nothing now (stopped before, the next prune drops
        // them).
        crate::objects::delete_all(repo, FileType::Index, &marks_files)?;
    }
    stats.packs_deleted = doomed.len() as u64;
    stats.bytes_freed = freed as i64 - stats.bytes_written as i64;

    // 5b. Evidence whose snapshots are all gone (forget deleted them before this prune,
    //     durably). A snapshot rewritten since (a hold) keeps the evidence of its original.
    crate::progress::check_stop(progress)?;
    stats.evidence_deleted = delete_orphaned_evidence(repo)?;

    // 6. Temporary files of killed writers, only when no other session was live before
    //    or after, and only those not written for an hour (a running writer's file looks
    //    the same, and one may start while they are removed). The repository is whole
    //    without this step, so a failure is only a warning.
    if stats.other_sessions == 0 && crate::lock::other_sessions(repo)?.is_empty() {
        let removed = repo.block_on(repo.backend().remove_leftovers(LEFTOVER_MIN_AGE));
        stats.temp_files_removed = match removed {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("could not remove temporary files left by killed writers: {e}");
                0
            }
        };
    }
    progress.finish();
    Ok(stats)
}

/// Whether no snapshot or WAL file appeared (or went) since the plan read them: then no
/// session that ended meanwhile named a marked blob.
fn nothing_written_since(repo: &Repository, seen: &Seen) -> Result<bool> {
    repo.drop_early_listings();
    let mut snapshots: Vec<SnapshotId> = repo
        .block_on(repo.backend().list(FileType::Snapshot))?
        .into_iter()
        .filter_map(|(n, _)| n.parse().ok())
        .filter(|id| !seen.ignored.contains(id))
        .collect();
    snapshots.sort_unstable();
    let mut before = seen.snapshots.clone();
    before.sort_unstable();
    if snapshots != before {
        return Ok(false);
    }
    let mut wal: Vec<String> = repo
        .block_on(repo.backend().list(FileType::Wal))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    wal.sort_unstable();
    let mut before = seen.wal.clone();
    before.sort_unstable();
    Ok(wal == before)
}

/// Reads a pack, verifies each needed blob and appends it, as stored, to the packer.
fn copy_pack(
    repo: &Repository,
    packer: &Packer,
    pack: &PackId,
    size: u64,
    blobs: &[(BlobId, crate::BlobLocation)],
) -> Result<()> {
    let Some(end) = blobs
        .iter()
        .map(|(_, l)| l.offset as u64 + l.length as u64)
        .max()
    else {
        return Ok(());
    };
    let name = pack.to_hex();
    let start = blobs[0].1.offset as u64;
    let bytes = PackFile::indexed(pack, size, Held::KeptBlobs).read(repo, start, end - start)?;
    for (id, loc) in blobs {
        let from = (loc.offset as u64 - start) as usize;
        let stored = &bytes[from..from + loc.length as usize];
        let plain = repo
            .decode_stored_blob(loc.blob_type, id, pack, stored)
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
