//! `repair index`: a new index from the packs in storage.
//!
//! Every pack's sealed header is read (and with `read_data` every byte, a piece at a time
//! through the [`PackReader`]). A pack whose header is unreadable is scanned blob
//! by blob from the front; a pack that fails verification has its intact blobs copied,
//! verified, into new packs, and is deleted once the new index naming the copies is
//! durable. Every pack is examined before anything is written, so a storage failure stops
//! the repair with the repository unchanged; the intact blobs are then read a second time
//! for the copy, so that memory holds a piece and a blob, never a pack.
//!
//! A pack is deleted only when something in it authenticates under the repository's key
//! (its sealed header, or at least one blob), which proves that it was written with that
//! key. A pack in which nothing does (not a file of ours at all, or its header does not
//! open and no blob found in it verifies) is far more likely another repository's pack, or
//! this repository's from before its key was replaced (a config deleted and `init` run
//! again), than damage: it is reported, kept in place and out of the new index, and
//! deleted only when the caller names it.

use std::collections::HashSet;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_format::blob::{BlobHeader, BLOB_HEADER_LEN};
use strata_format::id::{IndexId, PackId};
use strata_format::index::{IndexFile, IndexPack};
use strata_format::pack::{PackBlob, PACK_PREAMBLE_LEN};
use strata_storage::FileType;

use crate::index::IndexBuilder;
use crate::packer::Packer;
use crate::packread::PackReader;
use crate::progress::Progress;
use crate::report::{Finding, FindingKind, ObjectRef};
use crate::{EngineError, Repository, Result};

/// What `repair index` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct IndexRepairOptions {
    /// Read and verify every byte of every pack (finds and salvages damaged packs).
    pub read_data: bool,
    /// Packs to delete if this run finds them unreadable (see [`UnreadablePack`]): pack
    /// ids, or prefixes of at least [`MIN_PACK_PREFIX`] hex digits naming one pack each.
    pub delete_unreadable: Vec<String>,
}

/// Shortest prefix of a pack id accepted for deletion.
pub const MIN_PACK_PREFIX: usize = 8;

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexRepair {
    pub packs: u64,
    /// Packs the new index names (intact packs and new ones).
    pub packs_indexed: u64,
    pub blobs_indexed: u64,
    /// Packs that were damaged: their intact blobs were copied, and the packs deleted.
    pub packs_salvaged: u64,
    /// Blobs lost in damaged packs.
    pub blobs_lost: u64,
    pub packs_written: u64,
    pub index_files_written: u64,
    pub index_files_removed: u64,
    /// One per damaged pack (salvaged), and per index file kept because it does not open.
    pub problems: Vec<Finding>,
    /// Packs in which nothing authenticates: kept out of the index, deleted only if named.
    pub unreadable_packs: Vec<UnreadablePack>,
}

/// A pack in which nothing authenticates under the repository's key: its sealed header
/// does not open, and no blob found in it verifies. That is more likely a pack of another
/// repository, or of this one before its key was replaced, than damage: `repair index`
/// leaves it in place and out of the new index, and deletes it only when asked to by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnreadablePack {
    pub id: PackId,
    pub size: u64,
    /// What failed.
    pub problem: String,
    /// Deleted because it was named; otherwise still in storage.
    pub deleted: bool,
}

/// One pack as repair found it.
enum Found {
    /// Header readable (and, with `read_data`, every byte verified).
    Intact(IndexPack),
    /// Damaged, with blobs that verified (copied into new packs before it is deleted).
    Damaged {
        good: Vec<PackBlob>,
        lost: u64,
        problem: Finding,
    },
    /// Nothing in it authenticates: see [`UnreadablePack`].
    Unreadable { id: PackId, problem: String },
}

/// Verifies one stored blob against what its pack header says. A blob compressed against a
/// dictionary that is not loaded has passed authenticated decryption before decompression
/// failed: its bytes are intact, and it is kept.
fn verify(repo: &Repository, pack: &PackId, b: &PackBlob, stored: &[u8]) -> Result<()> {
    let plain = match repo.decode_stored_blob(b.blob_type, &b.id, pack, stored) {
        Err(e) if e.is_missing_dictionary() => return Ok(()),
        other => other?,
    };
    if plain.len() != b.raw_length as usize {
        return Err(EngineError::Corrupt(format!(
            "blob {} decodes to {} bytes, the pack header says {}",
            b.id,
            plain.len(),
            b.raw_length
        )));
    }
    Ok(())
}

/// Reads the blobs its header lists from a pack, streaming; returns those that verify and
/// how many do not. A failed read stops the repair.
fn verify_listed(
    repo: &Repository,
    reader: &mut PackReader,
    pack: &PackId,
    listed: &[PackBlob],
) -> Result<(Vec<PackBlob>, u64)> {
    let mut good = Vec::new();
    let mut lost = 0u64;
    for b in listed {
        match reader.extent(b.offset as u64, b.length as u64)? {
            Ok(stored) if verify(repo, pack, b, stored).is_ok() => good.push(*b),
            _ => lost += 1,
        }
    }
    Ok((good, lost))
}

/// Finds the blobs of a pack whose header is unreadable by scanning their clear headers
/// from the front, streaming; returns those that verify and how many damaged stretches lie
/// between them. After a blob that does not verify (or a header that does not parse) the
/// scan moves on a byte at a time until the next blob that verifies, so that damage stays
/// local to the blob it hit and every intact blob after it is still found.
fn scan(repo: &Repository, reader: &mut PackReader, pack: &PackId) -> Result<(Vec<PackBlob>, u64)> {
    let mut good = Vec::new();
    let mut lost = 0u64;
    let mut pos = PACK_PREAMBLE_LEN as u64;
    // Whether the bytes since the last good blob are damage (counted once per stretch).
    let mut in_damage = false;
    while pos <= u32::MAX as u64 {
        let header = match reader.extent(pos, BLOB_HEADER_LEN as u64)? {
            Ok(bytes) => BlobHeader::parse(bytes).ok(),
            // Too close to the end for a blob.
            Err(_) => break,
        };
        let found = match header {
            Some(header) => {
                let len = header.stored_length() as u64;
                let b = PackBlob {
                    blob_type: header.blob_type,
                    id: header.id,
                    offset: pos as u32,
                    length: len as u32,
                    raw_length: header.raw_length,
                };
                match reader.extent(pos, len)? {
                    Ok(stored) if verify(repo, pack, &b, stored).is_ok() => Some(b),
                    _ => None,
                }
            }
            None => None,
        };
        match found {
            Some(b) => {
                good.push(b);
                pos += b.length as u64;
                in_damage = false;
            }
            None => {
                if !in_damage {
                    lost += 1;
                    in_damage = true;
                }
                pos += 1;
            }
        }
    }
    // The bytes after the last blob are the (unreadable) sealed header, not damage.
    if in_damage && lost > 0 && good.last().is_some() {
        lost -= 1;
    }
    Ok((good, lost))
}

/// Reads one pack (its header; with `read_data`, or when the header is unreadable, all of
/// it, a piece at a time) and says what it is.
fn examine(repo: &Repository, name: &str, size: u64, read_data: bool) -> Result<Found> {
    let pack: PackId = name
        .parse()
        .map_err(|e| EngineError::format(format!("pack name {name}"), e))?;
    let header = match crate::packread::pack_header(repo, name, size) {
        // Only damage is salvaged; a storage failure stops the repair.
        Err(e) if e.kind() != crate::ErrorKind::Corrupt => return Err(e),
        h => h,
    };
    let mut reader = PackReader::new(repo, &pack, size);
    match header {
        Ok(blobs) if !read_data => Ok(Found::Intact(IndexPack {
            id: pack,
            size,
            blobs,
        })),
        Ok(blobs) => {
            let (good, lost) = verify_listed(repo, &mut reader, &pack, &blobs)?;
            let hash_ok = reader.read_to_end()?;
            if hash_ok && lost == 0 {
                return Ok(Found::Intact(IndexPack {
                    id: pack,
                    size,
                    blobs,
                }));
            }
            // The header opened, so the pack was written with this key: what fails is
            // damage, even if every blob does.
            let problem = if hash_ok {
                format!("pack {name}: {lost} blobs do not verify")
            } else {
                format!(
                    "pack {name} is damaged (its content does not hash to its name): {lost} \
                     blobs lost"
                )
            };
            Ok(Found::Damaged {
                good,
                lost,
                problem: Finding::new(
                    FindingKind::DamagedPack,
                    Some(ObjectRef::pack(pack)),
                    problem,
                ),
            })
        }
        Err(e) => {
            let (good, lost) = scan(repo, &mut reader, &pack)?;
            if good.is_empty() {
                return Ok(Found::Unreadable {
                    id: pack,
                    problem: format!(
                        "{e}; scanned its blobs, none verifies ({lost} found that do not)"
                    ),
                });
            }
            Ok(Found::Damaged {
                problem: Finding::new(
                    FindingKind::DamagedPackHeader,
                    Some(ObjectRef::pack(pack)),
                    format!(
                        "{e}: scanned its blobs, {} intact, {lost} damaged stretches",
                        good.len()
                    ),
                ),
                good,
                lost,
            })
        }
    }
}

/// Copies the blobs of a damaged pack that verified when it was examined into `packer`,
/// reading the pack again a piece at a time and verifying each blob again. Returns how
/// many of them no longer verify.
fn salvage(
    repo: &Repository,
    packer: &Packer,
    name: &str,
    size: u64,
    good: &[PackBlob],
) -> Result<u64> {
    let pack: PackId = name
        .parse()
        .map_err(|e| EngineError::format(format!("pack name {name}"), e))?;
    let mut reader = PackReader::new(repo, &pack, size);
    let mut lost = 0;
    for b in good {
        match reader.extent(b.offset as u64, b.length as u64)? {
            Ok(stored) if verify(repo, &pack, b, stored).is_ok() => {
                packer.add_stored(b.blob_type, b.id, b.raw_length, stored)?;
            }
            _ => lost += 1,
        }
    }
    Ok(lost)
}

/// The stored packs `named` designates (ids or unique prefixes).
fn resolve_packs(named: &[String], packs: &[(String, u64)]) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for n in named {
        let prefix = n.to_ascii_lowercase();
        if prefix.len() < MIN_PACK_PREFIX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(EngineError::Invalid(format!(
                "pack to delete {n:?}: give its id, or at least its first {MIN_PACK_PREFIX} \
                 hex digits"
            )));
        }
        let mut matching = packs.iter().filter(|(p, _)| p.starts_with(&prefix));
        match (matching.next(), matching.next()) {
            (Some((p, _)), None) => out.insert(p.clone()),
            (None, _) => {
                return Err(EngineError::Invalid(format!(
                    "pack to delete {n}: no pack id in the repository starts with it"
                )))
            }
            (Some(_), Some(_)) => {
                return Err(EngineError::Invalid(format!(
                    "pack to delete {n}: several pack ids start with it; give more of it"
                )))
            }
        };
    }
    Ok(out)
}

/// Rebuilds the index from the packs in storage (under an exclusive lock; the repository
/// may be opened without its index, which may be what is broken).
///
/// Every pack is examined first; a storage failure then stops the repair before anything
/// is written. Then the intact blobs of damaged packs are copied into new packs, the new
/// index is written, the old index files are deleted, and last the damaged packs (and the
/// unreadable packs named in `opts.delete_unreadable`).
pub fn repair_index(
    repo: &Repository,
    opts: &IndexRepairOptions,
    progress: &dyn Progress,
) -> Result<IndexRepair> {
    // Old index files are superseded and deleted, except those that are intact but do not
    // open with this key (another repository's, or a newer Strata's): kept, and reported.
    let mut old_index = Vec::new();
    let mut foreign_index = Vec::new();
    let mut failed = None;
    repo.for_each_index_file(|id, file| match file {
        Err(EngineError::Damaged(_)) | Ok(_) => old_index.push(id.to_hex()),
        Err(e @ EngineError::Format { .. }) => foreign_index.push((id, e.to_string())),
        Err(e) if e.kind() == crate::ErrorKind::Corrupt => old_index.push(id.to_hex()),
        Err(e) => {
            failed.get_or_insert(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let packs = repo.block_on(repo.backend().list(FileType::Pack))?;
    let to_delete = resolve_packs(&opts.delete_unreadable, &packs)?;
    let mut report = IndexRepair {
        packs: packs.len() as u64,
        ..IndexRepair::default()
    };
    // Dictionary-compressed blobs verify only with their dictionaries: headers first.
    {
        let headers: Vec<IndexPack> = packs
            .par_iter()
            .filter_map(|(name, size)| {
                let id = name.parse().ok()?;
                let blobs = crate::packread::pack_header(repo, name, *size).ok()?;
                Some(IndexPack {
                    id,
                    size: *size,
                    blobs,
                })
            })
            .collect();
        let mut b = IndexBuilder::new(true);
        b.add_file(
            IndexId::default(),
            IndexFile {
                packs: headers,
                ..IndexFile::default()
            },
        );
        repo.load_dictionaries(&b.build());
    }
    progress.set_total(packs.iter().map(|(_, s)| s).sum());
    let found: Vec<(String, u64, Found)> = packs
        .par_iter()
        .map(|(name, size)| {
            let f = examine(repo, name, *size, opts.read_data)?;
            progress.add_bytes(*size);
            Ok((name.clone(), *size, f))
        })
        .collect::<Result<_>>()?;
    let mut intact = Vec::new();
    let mut damaged = Vec::new();
    for (name, size, f) in found {
        match f {
            Found::Intact(p) => {
                if to_delete.contains(&name) {
                    return Err(EngineError::Invalid(format!(
                        "pack {name} is not unreadable (its header opens{}): nothing was \
                         changed; name only packs that `repair index` reports as unreadable",
                        if opts.read_data {
                            " and every blob in it verifies"
                        } else {
                            ""
                        }
                    )));
                }
                intact.push(p)
            }
            Found::Damaged {
                good,
                lost,
                problem,
            } => {
                if to_delete.contains(&name) {
                    return Err(EngineError::Invalid(format!(
                        "pack {name} is not unreadable ({} of its blobs verify, and are \
                         salvaged when it is repaired): nothing was changed; name only packs \
                         that `repair index` reports as unreadable",
                        good.len()
                    )));
                }
                report.packs_salvaged += 1;
                report.blobs_lost += lost;
                report.problems.push(problem);
                damaged.push((name, size, good));
            }
            Found::Unreadable { id, problem } => report.unreadable_packs.push(UnreadablePack {
                deleted: to_delete.contains(&name),
                id,
                size,
                problem,
            }),
        }
    }
    // Nothing has been written so far. The damaged packs' intact blobs are copied now.
    let packer = Packer::for_repack(repo);
    let lost_since: Vec<u64> = damaged
        .par_iter()
        .map(|(name, size, good)| salvage(repo, &packer, name, *size, good))
        .collect::<Result<_>>()?;
    report.blobs_lost += lost_since.iter().sum::<u64>();
    let (_, written) = packer.finish_repack()?;
    report.packs_written = written.len() as u64;
    intact.extend(written);
    report.packs_indexed = intact.len() as u64;
    report.blobs_indexed = intact.iter().map(|p| p.blobs.len() as u64).sum();

    let supersedes: Vec<IndexId> = old_index.iter().filter_map(|n| n.parse().ok()).collect();
    report.index_files_written = crate::objects::write_index_files(
        repo,
        crate::objects::NewIndex {
            packs: intact,
            ..Default::default()
        },
        &supersedes,
    )?
    .len() as u64;
    crate::objects::delete_all(repo, FileType::Index, &old_index)?;
    report.index_files_removed = old_index.len() as u64;
    for (id, why) in foreign_index {
        report.problems.push(Finding::new(
            FindingKind::ForeignIndex,
            Some(ObjectRef::Index { id }),
            format!(
                "index file {id} is intact but cannot be read ({why}): kept (another \
                 repository's, or a newer Strata's)"
            ),
        ));
    }
    let mut doomed: Vec<String> = damaged.into_iter().map(|(name, _, _)| name).collect();
    doomed.extend(
        report
            .unreadable_packs
            .iter()
            .filter(|u| u.deleted)
            .map(|u| u.id.to_hex()),
    );
    crate::objects::delete_all(repo, FileType::Pack, &doomed)?;
    progress.finish();
    Ok(report)
}
