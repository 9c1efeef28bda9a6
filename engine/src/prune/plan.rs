//! Planning a prune: marking what the snapshots need and deciding the fate of every pack.

use std::collections::HashMap;

use rayon::prelude::*;

use strata_format::blob::BlobType;
use strata_format::id::PackId;
use strata_format::tree::NodeKind;
use strata_storage::FileType;

use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

use strata_format::index::{IndexPack, Seal};
use strata_format::pack::PackBlob;

use crate::index::PackState;

use super::{Fate, PackInfo, PruneOptions, PrunePlan, PruneStats, Seen, NOT_LISTED};

/// Needed-but-missing blobs named one by one in the error, at most.
const MAX_LISTED_MISSING: usize = 10;

pub(super) fn is_set(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// Sets bit `i`; returns whether it was clear.
fn set(bits: &mut [u64], i: usize) -> bool {
    let was = is_set(bits, i);
    bits[i / 64] |= 1 << (i % 64);
    !was
}

/// Reads every snapshot (but those ignored); any unreadable one stops prune.
fn read_snapshots(
    repo: &Repository,
    ignore: &[strata_format::id::SnapshotId],
) -> Result<
    Vec<(
        strata_format::id::SnapshotId,
        strata_format::snapshot::SnapshotFile,
    )>,
> {
    let mut snapshots = Vec::new();
    for (id, s) in crate::snapshots::list_lenient(repo)? {
        match s {
            Ok(s) => snapshots.push((id, s)),
            Err(e) => {
                return Err(EngineError::Corrupt(format!(
                    "{e}; prune changed nothing: a snapshot that cannot be read might need any \
                     blob. Remove it with `strata forget {}` (or `strata repair snapshots \
                     --forget`) if it cannot be recovered",
                    id.short()
                )))
            }
        }
    }
    snapshots.retain(|(id, _)| !ignore.contains(id));
    Ok(snapshots)
}

/// Marks every blob the snapshots and the archived WAL need. Errors name what is missing.
fn mark_used(
    repo: &Repository,
    snapshots: &[(
        strata_format::id::SnapshotId,
        strata_format::snapshot::SnapshotFile,
    )],
    archive: &crate::wal::Archive,
    progress: &dyn Progress,
) -> Result<Vec<u64>> {
    let index = repo.index();
    let mut used = vec![0u64; index.len().div_ceil(64)];
    let mut missing: Vec<String> = Vec::new();
    let mut missing_count = 0usize;
    let mut note_missing = |what: String| {
        missing_count += 1;
        if missing.len() < MAX_LISTED_MISSING {
            missing.push(what);
        }
    };
    for (pos, (_, loc)) in index.iter().enumerate() {
        if loc.blob_type == BlobType::Dictionary {
            set(&mut used, pos);
        }
    }
    for (sid, snap) in snapshots {
        progress.add_item();
        // (tree, depth) still to walk, depth first.
        let mut stack = vec![(snap.tree, 0usize)];
        while let Some((tree_id, depth)) = stack.pop() {
            let Some(pos) = index.position(&tree_id) else {
                note_missing(format!("snapshot {}: tree {tree_id}", sid.short()));
                continue;
            };
            if !set(&mut used, pos) {
                continue;
            }
            crate::treewalk::guard(depth).map_err(|too_deep| {
                EngineError::Corrupt(format!("snapshot {}: {too_deep}", sid.short()))
            })?;
            let tree = repo.load_tree(&tree_id).map_err(|e| {
                EngineError::Corrupt(format!(
                    "snapshot {}: {e}; prune changed nothing: run `strata check`, then `strata repair \
                     index` and `strata repair snapshots`",
                    sid.short()
                ))
            })?;
            for node in tree.nodes {
                match node.kind {
                    NodeKind::File { content } => {
                        for id in content {
                            match index.position(&id) {
                                Some(p) => {
                                    set(&mut used, p);
                                }
                                None => note_missing(format!(
                                    "snapshot {}: data blob {id} of {}",
                                    sid.short(),
                                    String::from_utf8_lossy(&node.name)
                                )),
                            }
                        }
                    }
                    NodeKind::Dir { subtree } => stack.push((subtree, depth + 1)),
                    _ => {}
                }
            }
        }
    }
    // Archived WAL (spec/wal.md): every blob a WAL file names is kept.
    for (name, file) in &archive.files {
        for entry in &file.entries {
            for id in &entry.blobs {
                match index.position(id) {
                    Some(p) => {
                        set(&mut used, p);
                    }
                    None => note_missing(format!(
                        "WAL file {}: data blob {id} of {}",
                        name.get(..8).unwrap_or(name),
                        entry.name
                    )),
                }
            }
        }
    }
    if missing_count > 0 {
        return Err(EngineError::Corrupt(format!(
            "{missing_count} blobs needed by snapshots or archived WAL are not in the index ({}{}); prune changed \
             nothing: run `strata check`, then `strata repair index` and `strata repair snapshots`",
            missing.join("; "),
            if missing_count > missing.len() {
                "; …"
            } else {
                ""
            }
        )));
    }
    Ok(used)
}

/// Plans a prune (under this handle's prune or exclusive lock). In this order, so that
/// nothing a running session may name is judged unneeded (spec/prune.md):
/// 1. list the other live locks (their sessions);
/// 2. read every snapshot and WAL file;
/// 3. load the index (a session that wrote a snapshot wrote its index files first);
/// 4. mark what the snapshots and WAL need, and decide every pack's fate.
pub fn plan(
    repo: &mut Repository,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PrunePlan> {
    let now = crate::now_ns().saturating_add(opts.clock_skew_ns);
    let sessions_now = crate::lock::other_sessions(repo)?;
    // Listed from now on, not before the sessions were.
    repo.drop_early_listings();
    let snapshots = read_snapshots(repo, &opts.ignore_snapshots)?;
    let archive = crate::wal::read_archive(repo)?;
    if let Some((name, e)) = archive.unreadable.first() {
        return Err(EngineError::Corrupt(format!(
            "{e}; prune changed nothing: a WAL file that cannot be read might need any blob \
             (run `strata check`; {} is the file)",
            FileType::Wal.path(name)
        )));
    }
    let seen = Seen {
        snapshots: snapshots.iter().map(|(id, _)| *id).collect(),
        wal: archive.files.keys().cloned().collect(),
        ignored: opts.ignore_snapshots.clone(),
    };
    repo.load_index(false)?;
    if let Err(e) = repo.sync_metadata_cache() {
        tracing::debug!("the cache of metadata packs was not brought up to date: {e}");
    }
    let index = repo.index();
    let index_files: Vec<String> = index.files().iter().map(|id| id.to_hex()).collect();
    let used = mark_used(repo, &snapshots, &archive, progress)?;
    drop(archive);

    // One entry per pack id, in id order (a pack several files name appears once; its id
    // and size are those of its first position), found by binary search.
    let table = index.packs();
    let mut packs: Vec<PackInfo> = Vec::new();
    let mut canon = vec![0u32; table.len()];
    {
        let mut order: Vec<u32> = (0..table.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| (&table[a as usize].0, a).cmp(&(&table[b as usize].0, b)));
        for &pos in &order {
            let same = packs
                .last()
                .is_some_and(|p| table[p.at as usize].0 == table[pos as usize].0);
            if !same {
                packs.push(PackInfo::new(pos));
            }
            canon[pos as usize] = packs.len() as u32 - 1;
        }
    }
    // Live when a current file names it live; current when a current file names it at all
    // (a pack only superseded files name is not in the repository's index any more).
    for (pos, &c) in canon.iter().enumerate() {
        match index.pack_state(pos as u32) {
            PackState::Live => {
                packs[c as usize].live = true;
                packs[c as usize].current = true;
            }
            PackState::Marked => packs[c as usize].current = true,
            PackState::Dropped => {}
        }
    }
    // The marks (and times) of packs no current file names live, by pack.
    let mut marks: Vec<(u32, [u8; 16], i64)> = index
        .marks()
        .iter()
        .map(|m| (canon[m.pack as usize], m.mark, m.marked_ns))
        .filter(|(c, _, _)| !packs[*c as usize].live)
        .collect();
    marks.sort_unstable();
    marks.dedup_by_key(|(c, mark, _)| (*c, *mark));

    // Seals: those of the loaded files; a mark without one (its prune stopped before it
    // sealed it) is sealed with the sessions listed now, all of which began after it was
    // durable or were live then.
    let mut seals: HashMap<[u8; 16], Seal> = HashMap::new();
    for seal in index.seals() {
        seals
            .entry(seal.mark)
            .and_modify(|s| {
                s.sessions.extend(&seal.sessions);
                s.sessions.sort_unstable();
                s.sessions.dedup();
            })
            .or_insert_with(|| seal.clone());
    }
    let mut new_seals = Vec::new();
    for m in index.marks() {
        if let std::collections::hash_map::Entry::Vacant(e) = seals.entry(m.mark) {
            let seal = e.insert(Seal {
                mark: m.mark,
                sealed_ns: now,
                sessions: sessions_now.clone(),
            });
            new_seals.push(seal.clone());
        }
    }
    let grace_ns = opts.grace.as_nanos().min(i64::MAX as u128) as i64;
    let due = |mark: &[u8; 16], marked_ns: i64| -> bool {
        seals.get(mark).is_some_and(|seal| {
            seal.sessions
                .iter()
                .all(|s| sessions_now.binary_search(s).is_err())
        }) && now.saturating_sub(marked_ns) >= grace_ns
    };

    let mut stats = PruneStats {
        snapshots: snapshots.len() as u64,
        index_files: index_files.len() as u64,
        superseded_index_files: index
            .files()
            .iter()
            .filter(|id| index.is_superseded(id))
            .count() as u64,
        other_sessions: sessions_now.len() as u64,
        ..PruneStats::default()
    };
    drop(snapshots);
    for (pos, (_, loc)) in index.iter().enumerate() {
        let p = &mut packs[canon[loc.pack as usize] as usize];
        p.total_bytes += loc.length as u64;
        p.data |= loc.blob_type == BlobType::Data;
        if is_set(&used, pos) {
            p.used_bytes += loc.length as u64;
            p.used_blobs += 1;
            stats.used_blobs += 1;
            stats.used_bytes += loc.length as u64;
        } else {
            stats.unused_blobs += 1;
            stats.unused_bytes += loc.length as u64;
        }
    }

    // The packs in storage, as they are listed (never the whole listing at once): the size
    // of each indexed one is noted; those no current file names are kept apart, as are
    // names that are no pack id. (A listing retried part way passes some twice.)
    let mut unindexed_ids: Vec<(PackId, u64)> = Vec::new();
    let mut odd_names: Vec<(String, u64)> = Vec::new();
    let (mut listed, mut listed_bytes) = (0u64, 0u64);
    repo.block_on(repo.backend().list_each(FileType::Pack, &mut |name, size| {
        // Only the canonical name is a pack's (an upper-case one is some other object).
        let id = match name.parse::<PackId>() {
            Ok(id) if id.to_hex() == name => id,
            _ => {
                odd_names.push((name.to_string(), size));
                return;
            }
        };
        match packs.binary_search_by(|p| table[p.at as usize].0.cmp(&id)) {
            Ok(c) if packs[c].current => {
                let p = &mut packs[c];
                if p.stored == NOT_LISTED {
                    listed += 1;
                    listed_bytes += size;
                }
                p.stored = size;
            }
            _ => unindexed_ids.push((id, size)),
        }
    }))?;
    unindexed_ids.sort_unstable();
    unindexed_ids.dedup();
    odd_names.sort_unstable();
    odd_names.dedup();
    stats.packs = listed + (unindexed_ids.len() + odd_names.len()) as u64;
    stats.pack_bytes = listed_bytes
        + unindexed_ids.iter().map(|(_, s)| s).sum::<u64>()
        + odd_names.iter().map(|(_, s)| s).sum::<u64>();
    // Whether every mark of a pack no current file names live is due.
    let mut all_due = vec![true; packs.len()];
    for (c, mark, at) in &marks {
        if !due(mark, *at) {
            all_due[*c as usize] = false;
        }
    }
    let tiny = (repo.config().pack_size as f64 * opts.tiny_fraction) as u64;
    let mut tiny_count = [0u32; 2];
    for (c, p) in packs.iter_mut().enumerate() {
        let (id, size) = table[p.at as usize];
        let name = id.to_hex();
        let stored_size = (p.stored != NOT_LISTED).then_some(p.stored);
        p.fate = match stored_size {
            _ if !p.current => Fate::Dropped,
            None if p.used_blobs > 0 => {
                return Err(EngineError::Corrupt(format!(
                    "pack {name} holds {} blobs that snapshots need but is missing; prune changed \
                     nothing: run `strata repair index`, then `strata repair snapshots`",
                    p.used_blobs
                )))
            }
            None => Fate::Gone,
            Some(s) if s != size && p.used_blobs > 0 => {
                return Err(EngineError::Corrupt(format!(
                "pack {name} has {s} bytes but its index records {size}; prune changed nothing: \
                     run `strata check --read-data` and `strata repair index`"
            )))
            }
            // Marked by an earlier prune: needed again (a session that began before the
            // mark used it), still waiting, or due.
            Some(_) if !p.live && p.used_blobs > 0 => Fate::Revive,
            Some(_) if !p.live => {
                if all_due[c] {
                    Fate::Expire
                } else {
                    Fate::Wait
                }
            }
            Some(_) if p.used_blobs == 0 => Fate::Mark,
            Some(_) => {
                // Blob bytes only: pack headers are overhead, not garbage.
                let unused = p.total_bytes.saturating_sub(p.used_bytes);
                if unused as f64 * 100.0 > opts.max_unused_percent * p.total_bytes as f64 {
                    Fate::Repack
                } else {
                    if size < tiny {
                        tiny_count[p.data as usize] += 1;
                    }
                    Fate::Keep
                }
            }
        };
    }
    // Tiny packs are merged only when there are at least two of a kind (or a repack of
    // that kind writes a new pack anyway).
    let mut repacking = [false; 2];
    for p in &packs {
        if p.fate == Fate::Repack {
            repacking[p.data as usize] = true;
        }
    }
    drop(all_due);
    for p in &mut packs {
        let kind = p.data as usize;
        let size = table[p.at as usize].1;
        if p.fate == Fate::Keep && size < tiny && (tiny_count[kind] >= 2 || repacking[kind]) {
            p.fate = Fate::Repack;
        }
    }
    for p in &packs {
        let size = table[p.at as usize].1;
        match p.fate {
            Fate::Keep => stats.keep_packs += 1,
            Fate::Repack => {
                stats.repack_packs += 1;
                stats.repack_pack_bytes += size;
                stats.repack_blobs += p.used_blobs as u64;
                stats.repack_blob_bytes += p.used_bytes;
            }
            Fate::Mark => {
                stats.unused_packs += 1;
                stats.unused_pack_bytes += size;
            }
            Fate::Revive => {
                stats.revived_packs += 1;
                stats.keep_packs += 1;
            }
            Fate::Wait => {
                stats.waiting_packs += 1;
                stats.waiting_pack_bytes += size;
            }
            Fate::Expire => {
                stats.due_packs += 1;
                stats.due_pack_bytes += size;
            }
            Fate::Gone | Fate::Dropped => {}
        }
    }
    // Packs no current index file names (a pack only superseded files name counts too).
    // A name that is no pack's (not a pack id in lower-case hex) was not written by Strata:
    // kept and reported, like a pack that does not open.
    let unindexed: Vec<(String, u64)> = unindexed_ids
        .into_iter()
        .map(|(id, size)| (id.to_hex(), size))
        .collect();
    stats
        .unreadable_packs
        .extend(odd_names.into_iter().map(|(name, _)| name));
    // A pack whose header does not authenticate under this repository's key was not
    // written with it (another repository's, or this one's before its key was replaced):
    // it is kept, and reported, never deleted on a guess. Ours are marked with their blobs
    // (a running backup's index may yet name them; then they stay).
    let headers: Vec<Result<Option<Vec<PackBlob>>>> = unindexed
        .par_iter()
        .map(
            |(name, size)| match crate::packread::pack_header(repo, name, *size) {
                Ok(blobs) => Ok(Some(blobs)),
                Err(e) if e.kind() == crate::ErrorKind::Corrupt => Ok(None),
                Err(e) => Err(e),
            },
        )
        .collect();
    let mut ours = Vec::with_capacity(unindexed.len());
    for ((name, size), header) in unindexed.into_iter().zip(headers) {
        match (header?, name.parse::<PackId>()) {
            (Some(blobs), Ok(id)) => ours.push(IndexPack { id, size, blobs }),
            _ => stats.unreadable_packs.push(name),
        }
    }
    stats.unreadable_packs.sort();
    let unindexed = ours;
    stats.unindexed_packs = unindexed.len() as u64;
    stats.unindexed_pack_bytes = unindexed.iter().map(|p| p.size).sum();
    progress.finish();
    Ok(PrunePlan {
        stats,
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
        skew_ns: opts.clock_skew_ns,
        group_chunk: opts.group_chunk,
    })
}
