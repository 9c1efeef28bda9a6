//! `check --read-data`: reading every pack (or a chosen subset of the packs) from end to
//! end, a piece at a time, and verifying every byte of it (through the [`PackReader`]
//! `repair index` shares).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use strata_format::id::{BlobId, PackId};
use strata_format::pack::{check_preamble, read_pack_header_tail};
use strata_storage::FileType;

use crate::index::{BlobLocation, MasterIndex};
use crate::packread::{pack_tail, PackReader};
use crate::progress::{Progress, Totals};
use crate::report::{Finding, FindingKind, ObjectRef};
use crate::Repository;

use super::Subset;

/// Damaged blobs listed one by one per pack, at most; the rest are counted.
const MAX_LISTED_PER_PACK: usize = 20;

/// What reading the data found.
pub(super) struct Damage {
    pub errors: Vec<Finding>,
    /// Blobs that failed to verify, with the reason (for naming the snapshots and paths).
    pub bad_blobs: HashMap<BlobId, String>,
    pub bytes_read: u64,
    /// Packs read (whole or until they failed to read).
    pub packs_read: u64,
}

/// A pack, its size, and the blobs the index places in it.
type PackToCheck = (PackId, u64, Vec<(BlobId, BlobLocation)>);

#[derive(Default)]
struct PackOutcome {
    errors: Vec<Finding>,
    bad: Vec<(BlobId, String)>,
    bytes: u64,
}

/// Reads and verifies every pack the index names, or those of them in `subset`, in
/// parallel. Packs in `skip` (already known to be missing or of the wrong size) are never
/// read, nor counted when a percentage is taken.
pub(super) fn check_packs(
    repo: &Repository,
    index: &MasterIndex,
    skip: &HashSet<PackId>,
    subset: Option<&Subset>,
    progress: &dyn Progress,
) -> Damage {
    // Each pack once (by pack id: a pack can be listed twice).
    let mut seen: HashSet<PackId> = HashSet::new();
    // Live packs only: one marked for deletion may be deleted by a prune while this reads
    // (spec/prune.md).
    let mut chosen: Vec<(PackId, u64)> = index
        .packs()
        .iter()
        .enumerate()
        .filter(|(pos, _)| index.pack_state(*pos as u32) == crate::index::PackState::Live)
        .map(|(_, p)| p)
        .filter(|(id, _)| !skip.contains(id) && seen.insert(*id))
        .copied()
        .collect();
    drop(seen);
    if let Some(subset) = subset {
        chosen = subset.select(chosen, |p| p.0, &mut rand::thread_rng());
        tracing::debug!(%subset, packs = chosen.len(), "reading a subset of the packs");
    }
    // The blobs the index places in each chosen pack.
    let mut pos_of: HashMap<PackId, usize> = HashMap::new();
    let mut packs: Vec<PackToCheck> = Vec::with_capacity(chosen.len());
    for (id, size) in chosen {
        pos_of.insert(id, packs.len());
        packs.push((id, size, Vec::new()));
    }
    for (id, loc) in index.iter() {
        let (pack, _) = index.pack(loc.pack);
        if let Some(&p) = pos_of.get(&pack) {
            packs[p].2.push((id, loc));
        }
    }
    drop(pos_of);
    progress.set_totals(Totals {
        items: packs.len() as u64,
        bytes: packs.iter().map(|p| p.1).sum(),
        complete: true,
    });
    let read_all = |packs: &mut Vec<PackToCheck>| -> Vec<PackOutcome> {
        packs
            .par_iter_mut()
            .map(|(pack, size, blobs)| {
                // Cancelled: the packs not read yet are left out (the caller fails).
                if progress.should_stop() {
                    return PackOutcome::default();
                }
                blobs.sort_unstable_by_key(|(_, loc)| loc.offset);
                let out = check_pack(repo, pack, *size, blobs);
                progress.add_bytes(out.bytes);
                progress.add_item();
                // Done with this pack's list: free it while the others are read.
                *blobs = Vec::new();
                out
            })
            .collect()
    };
    let outcomes = repo.with_read_threads(|| read_all(&mut packs));
    let mut damage = Damage {
        errors: Vec::new(),
        bad_blobs: HashMap::new(),
        bytes_read: 0,
        packs_read: outcomes.len() as u64,
    };
    for o in outcomes {
        damage.errors.extend(o.errors);
        damage.bad_blobs.extend(o.bad);
        damage.bytes_read += o.bytes;
    }
    damage
}

fn check_pack(
    repo: &Repository,
    pack: &PackId,
    size: u64,
    blobs: &[(BlobId, BlobLocation)],
) -> PackOutcome {
    let name = pack.to_hex();
    let mut out = PackOutcome {
        errors: Vec::new(),
        bad: Vec::new(),
        bytes: 0,
    };
    let this_pack = Some(ObjectRef::pack(*pack));
    let finding = |kind, message: String| Finding::new(kind, this_pack.clone(), message);
    // A pack that could not be read: every blob in it is reported with it.
    let unreadable = |out: &mut PackOutcome, msg: String| {
        out.errors
            .push(finding(FindingKind::UnreadablePack, msg.clone()));
        out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
    };
    if let Err(e) = crate::stored::check_size(FileType::Pack, &name, size) {
        unreadable(&mut out, format!("pack {name} could not be read: {e}"));
        return out;
    }
    // Each blob is verified as soon as its bytes are read: memory stays at a piece plus
    // one blob (see `PackReader`).
    let mut reader = PackReader::new(repo, pack, size);
    let mut problems: Vec<(usize, String)> = Vec::new();
    for (i, (id, loc)) in blobs.iter().enumerate() {
        let stored = match reader.extent(loc.offset as u64, loc.length as u64) {
            Ok(Ok(s)) => s,
            Ok(Err(why)) => {
                problems.push((i, why));
                continue;
            }
            Err(e) => {
                unreadable(&mut out, format!("pack {name} could not be read: {e}"));
                out.bytes = reader.bytes_read();
                return out;
            }
        };
        match repo.decode_stored_blob(loc.blob_type, id, pack, stored) {
            Err(e) => problems.push((i, e.to_string())),
            Ok(plain) if plain.len() != loc.raw_length as usize => problems.push((
                i,
                format!(
                    "decodes to {} bytes, the index records {}",
                    plain.len(),
                    loc.raw_length
                ),
            )),
            Ok(_) => {}
        }
    }
    let whole = reader.read_to_end();
    out.bytes = reader.bytes_read();
    let hash_ok = match whole {
        Ok(ok) => ok,
        Err(e) => {
            unreadable(&mut out, format!("pack {name} could not be read: {e}"));
            return out;
        }
    };
    let preamble = reader.preamble().to_vec();
    drop(reader);
    if !hash_ok {
        out.errors.push(finding(
            FindingKind::DamagedPack,
            format!("pack {name}: content does not hash to its name (damaged)"),
        ));
    }
    let header = match pack_tail(repo, &name, size) {
        Err(e) => Err(finding(FindingKind::UnreadablePack, e.to_string())),
        Ok(t) => check_preamble(&preamble)
            .and_then(|_| read_pack_header_tail(repo.key(), &t, size as usize))
            .map_err(|e| {
                finding(
                    FindingKind::DamagedPackHeader,
                    format!("pack {name}: header: {e}"),
                )
            }),
    };
    match header {
        Err(e) => out.errors.push(e),
        Ok(header) => {
            let listed: HashMap<BlobId, _> = header.iter().map(|b| (b.id, b)).collect();
            for (id, loc) in blobs {
                let agrees = listed.get(id).is_some_and(|b| {
                    b.blob_type == loc.blob_type
                        && b.offset == loc.offset
                        && b.length == loc.length
                        && b.raw_length == loc.raw_length
                });
                if !agrees {
                    out.errors.push(Finding::new(
                        FindingKind::PackHeaderMismatch,
                        Some(ObjectRef::blob(loc.blob_type, *id)),
                        format!(
                            "pack {name}: the index places {} blob {id} at offset {}, the pack \
                             header does not",
                            loc.blob_type.name(),
                            loc.offset
                        ),
                    ));
                }
            }
        }
    }
    let mut damaged = 0usize;
    for (i, p) in problems {
        let (id, loc) = &blobs[i];
        damaged += 1;
        if damaged <= MAX_LISTED_PER_PACK {
            out.errors.push(Finding::new(
                FindingKind::DamagedBlob,
                Some(ObjectRef::blob(loc.blob_type, *id)),
                format!(
                    "pack {name}: {} blob {id} is damaged: {p}",
                    loc.blob_type.name()
                ),
            ));
        }
        out.bad.push((*id, format!("in pack {name}: {p}")));
    }
    if damaged > MAX_LISTED_PER_PACK {
        out.errors.push(finding(
            FindingKind::UnlistedDamagedBlobs,
            format!(
                "pack {name}: {} more damaged blobs not listed",
                damaged - MAX_LISTED_PER_PACK
            ),
        ));
    }
    out
}
