//! `check --read-data`: reading every pack whole and verifying every byte of it.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use strata_format::id::{BlobId, Digest, PackId};
use strata_format::pack::read_pack_header;
use strata_storage::FileType;

use crate::index::{BlobLocation, MasterIndex};
use crate::progress::Progress;
use crate::Repository;

/// Damaged blobs listed one by one per pack, at most; the rest are counted.
const MAX_LISTED_PER_PACK: usize = 20;

/// What reading the data found.
pub(super) struct Damage {
    pub errors: Vec<String>,
    /// Blobs that failed to verify, with the reason (for naming the snapshots and paths).
    pub bad_blobs: HashMap<BlobId, String>,
    pub bytes_read: u64,
}

/// A pack, its size, and the blobs the index places in it.
type PackToCheck = (PackId, u64, Vec<(BlobId, BlobLocation)>);

struct PackOutcome {
    errors: Vec<String>,
    bad: Vec<(BlobId, String)>,
    bytes: u64,
}

/// Reads and verifies every pack the index names (except those already known to be
/// missing or of the wrong size), in parallel.
pub(super) fn check_packs(
    repo: &Repository,
    index: &MasterIndex,
    skip: &HashSet<PackId>,
    progress: &dyn Progress,
) -> Damage {
    // The blobs the index places in each pack (by pack id: a pack can be listed twice).
    let mut pos_of: HashMap<PackId, usize> = HashMap::new();
    let mut packs: Vec<PackToCheck> = Vec::new();
    for &(id, size) in index.packs() {
        if !skip.contains(&id) && !pos_of.contains_key(&id) {
            pos_of.insert(id, packs.len());
            packs.push((id, size, Vec::new()));
        }
    }
    for (id, loc) in index.iter() {
        let (pack, _) = index.pack(loc.pack);
        if let Some(&p) = pos_of.get(&pack) {
            packs[p].2.push((id, loc));
        }
    }
    drop(pos_of);
    progress.set_total(packs.iter().map(|p| p.1).sum());
    let outcomes: Vec<PackOutcome> = packs
        .par_iter_mut()
        .map(|(pack, size, blobs)| {
            blobs.sort_unstable_by_key(|(_, loc)| loc.offset);
            let out = check_pack(repo, pack, *size, blobs);
            progress.add_bytes(out.bytes);
            // Done with this pack's list: free it while the others are read.
            *blobs = Vec::new();
            out
        })
        .collect();
    let mut damage = Damage {
        errors: Vec::new(),
        bad_blobs: HashMap::new(),
        bytes_read: 0,
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
    let read = crate::repository::check_size(FileType::Pack, &name, size)
        .and_then(|_| Ok(repo.block_on(repo.backend().read(FileType::Pack, &name))?));
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let msg = format!("pack {name} could not be read: {e}");
            out.errors.push(msg.clone());
            out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
            return out;
        }
    };
    out.bytes = bytes.len() as u64;
    if Digest::of_stored(&bytes) != pack.0 {
        out.errors.push(format!(
            "pack {name}: content does not hash to its name (damaged)"
        ));
    }
    match read_pack_header(repo.key(), &bytes) {
        Err(e) => out.errors.push(format!("pack {name}: header: {e}")),
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
                    out.errors.push(format!(
                        "pack {name}: the index places {} blob {id} at offset {}, the pack header does not",
                        loc.blob_type.name(),
                        loc.offset
                    ));
                }
            }
        }
    }
    let mut damaged = 0usize;
    for (id, loc) in blobs {
        let start = loc.offset as usize;
        let problem = match bytes.get(start..start + loc.length as usize) {
            None => Some("lies beyond the end of its pack".to_string()),
            Some(stored) => match repo.decode_stored_blob(loc.blob_type, id, pack, stored) {
                Err(e) => Some(e.to_string()),
                Ok(plain) if plain.len() != loc.raw_length as usize => Some(format!(
                    "decodes to {} bytes, the index records {}",
                    plain.len(),
                    loc.raw_length
                )),
                Ok(_) => None,
            },
        };
        if let Some(p) = problem {
            damaged += 1;
            if damaged <= MAX_LISTED_PER_PACK {
                out.errors.push(format!(
                    "pack {name}: {} blob {id} is damaged: {p}",
                    loc.blob_type.name()
                ));
            }
            out.bad.push((*id, format!("in pack {name}: {p}")));
        }
    }
    if damaged > MAX_LISTED_PER_PACK {
        out.errors.push(format!(
            "pack {name}: {} more damaged blobs not listed",
            damaged - MAX_LISTED_PER_PACK
        ));
    }
    out
}
