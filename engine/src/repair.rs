//! Repair: rebuilding the index from the packs themselves, and rewriting snapshots whose
//! data is lost so that everything else in them stays restorable.
//!
//! `repair index` reads every pack's sealed header (and with `read_data` every byte) and
//! writes a new index naming what is really there; it supersedes and then deletes every
//! old index file. A pack whose header is unreadable is scanned blob by blob from the
//! front; a pack that fails verification has its intact blobs copied, verified, into new
//! packs, and is deleted once the new index naming the copies is durable.
//!
//! `repair snapshots` drops from each snapshot the files whose blobs are not indexed (or
//! whose pack is missing), and directories whose tree is unreadable, writes the new trees
//! and a new snapshot that records what was dropped, and only then deletes the old one.

use std::collections::HashMap;
use std::rc::Rc;

use rayon::prelude::*;
use serde::Serialize;
use strata_format::blob::{BlobHeader, BlobType};
use strata_format::id::{BlobId, Digest, IndexId, PackId, SnapshotId};
use strata_format::index::{IndexFile, IndexPack};
use strata_format::pack::{check_preamble, read_pack_header_tail, PackBlob, PACK_PREAMBLE_LEN};
use strata_format::tree::{NodeKind, Tree, MAX_TREE_DEPTH};
use strata_storage::FileType;

use crate::index::IndexBuilder;
use crate::packer::Packer;
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

/// Dropped entries recorded one by one in a snapshot's rewrite note, at most.
const MAX_NOTED: usize = 100;

/// What `repair index` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexRepair {
    pub packs: u64,
    pub blobs_indexed: u64,
    /// Packs that were damaged: their intact blobs were copied, and the packs deleted.
    pub packs_salvaged: u64,
    /// Blobs lost in damaged packs.
    pub blobs_lost: u64,
    pub packs_written: u64,
    pub index_files_written: u64,
    pub index_files_removed: u64,
    /// One line per damaged pack.
    pub problems: Vec<String>,
}

/// Blobs that verified, with their stored bytes.
type Salvaged = Vec<(PackBlob, Vec<u8>)>;

/// One pack as repair found it.
enum Found {
    /// Header readable (and, with `read_data`, every byte verified).
    Intact(IndexPack),
    /// Damaged: the blobs that verified (with their stored bytes), and what was wrong.
    Damaged {
        good: Salvaged,
        lost: u64,
        problem: String,
    },
}

/// Reads the sealed header at the end of a pack.
fn read_header(repo: &Repository, name: &str, size: u64) -> Result<Vec<PackBlob>> {
    let read = |offset: u64, len: u64| {
        repo.block_on(repo.backend().read_range(FileType::Pack, name, offset, len))
    };
    if size < (PACK_PREAMBLE_LEN + 4) as u64 {
        return Err(EngineError::Corrupt(format!(
            "pack {name} is too short to be a pack"
        )));
    }
    let preamble = read(0, PACK_PREAMBLE_LEN as u64 + 4)?;
    let tail = crate::checker::pack_tail(repo, name, size).map_err(|e| match e {
        EngineError::Corrupt(what) => EngineError::Corrupt(format!("pack {name}: {what}")),
        other => other,
    })?;
    check_preamble(&preamble)
        .and_then(|_| read_pack_header_tail(repo.key(), &tail, size as usize))
        .map_err(|e| EngineError::format(format!("pack {name}"), e))
}

/// Verifies one stored blob against what its pack header says. A blob compressed against a dictionary that is not loaded has passed authenticated
/// decryption before decompression failed: its bytes are intact, and it is kept.
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

/// Reads a whole pack and keeps the blobs that verify: those its header lists when the
/// header is readable, else those found by scanning blob headers from the front.
fn salvage(
    repo: &Repository,
    pack: &PackId,
    bytes: &[u8],
    header: Option<&[PackBlob]>,
) -> Result<(Salvaged, u64)> {
    let mut good = Vec::new();
    let mut lost = 0u64;
    let candidates: Vec<PackBlob> = match header {
        Some(h) => h.to_vec(),
        None => {
            // Scan: clear blob headers follow each other from the preamble on.
            let mut out = Vec::new();
            let mut pos = PACK_PREAMBLE_LEN;
            while let Ok(h) = BlobHeader::parse(bytes.get(pos..).unwrap_or(&[])) {
                let len = h.stored_length();
                if pos + len > bytes.len() {
                    break;
                }
                out.push(PackBlob {
                    blob_type: h.blob_type,
                    id: h.id,
                    offset: pos as u32,
                    length: len as u32,
                    raw_length: h.raw_length,
                });
                pos += len;
            }
            out
        }
    };
    for b in candidates {
        let stored = bytes.get(b.offset as usize..b.offset as usize + b.length as usize);
        match stored.map(|s| (verify(repo, pack, &b, s), s)) {
            Some((Ok(()), s)) => good.push((b, s.to_vec())),
            _ => lost += 1,
        }
    }
    Ok((good, lost))
}

fn examine(repo: &Repository, name: &str, size: u64, read_data: bool) -> Result<Found> {
    let pack: PackId = name
        .parse()
        .map_err(|e| EngineError::format(format!("pack name {name}"), e))?;
    let header = match read_header(repo, name, size) {
        // Only damage is salvaged; a storage failure stops the repair.
        Err(e) if e.kind() != crate::ErrorKind::Corrupt => return Err(e),
        h => h,
    };
    match (header, read_data) {
        (Ok(blobs), false) => Ok(Found::Intact(IndexPack {
            id: pack,
            size,
            blobs,
        })),
        (Ok(blobs), true) => {
            let bytes = repo.block_on(repo.backend().read_range(FileType::Pack, name, 0, size))?;
            let hash_ok = Digest::of_stored(&bytes) == pack.0;
            let all_ok = hash_ok
                && blobs.iter().all(|b| {
                    bytes
                        .get(b.offset as usize..b.offset as usize + b.length as usize)
                        .is_some_and(|s| verify(repo, &pack, b, s).is_ok())
                });
            if all_ok {
                return Ok(Found::Intact(IndexPack {
                    id: pack,
                    size,
                    blobs,
                }));
            }
            // The pack is already in memory: salvage from these bytes, not a second read.
            let (good, lost) = salvage(repo, &pack, &bytes, Some(&blobs))?;
            let problem = if hash_ok {
                format!("pack {name}: {lost} blobs do not verify")
            } else {
                format!("pack {name} is damaged (its content does not hash to its name): {lost} blobs lost")
            };
            Ok(Found::Damaged {
                good,
                lost,
                problem,
            })
        }
        (Err(e), _) => {
            let bytes = repo.block_on(repo.backend().read_range(FileType::Pack, name, 0, size))?;
            let (good, lost) = salvage(repo, &pack, &bytes, None)?;
            Ok(Found::Damaged {
                problem: format!(
                    "{e}: scanned its blobs, {} intact, {lost} damaged (blobs after a damaged \
                     one cannot be found without the header and are lost too)",
                    good.len()
                ),
                good,
                lost,
            })
        }
    }
}

/// Rebuilds the index from the packs in storage (under an exclusive lock; the repository
/// may be opened without its index, which may be what is broken).
pub fn repair_index(
    repo: &Repository,
    read_data: bool,
    progress: &dyn Progress,
) -> Result<IndexRepair> {
    let old_index: Vec<String> = repo
        .block_on(repo.backend().list(FileType::Index))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let packs = repo.block_on(repo.backend().list(FileType::Pack))?;
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
                let blobs = read_header(repo, name, *size).ok()?;
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
                supersedes: Vec::new(),
                packs: headers,
            },
        );
        repo.load_dictionaries(&b.build());
    }
    progress.set_total(packs.iter().map(|(_, s)| s).sum());
    let found: Vec<(String, Result<Found>)> = packs
        .par_iter()
        .map(|(name, size)| {
            let f = examine(repo, name, *size, read_data);
            progress.add_bytes(*size);
            (name.clone(), f)
        })
        .collect();
    let mut intact = Vec::new();
    let mut doomed = Vec::new();
    let packer = Packer::for_repack(repo);
    for (name, f) in found {
        match f? {
            Found::Intact(p) => intact.push(p),
            Found::Damaged {
                good,
                lost,
                problem,
            } => {
                for (b, stored) in &good {
                    packer.add_stored(b.blob_type, b.id, b.raw_length, stored)?;
                }
                report.packs_salvaged += 1;
                report.blobs_lost += lost;
                report.problems.push(problem);
                doomed.push(name);
            }
        }
    }
    let (_, written) = packer.finish_repack()?;
    report.packs_written = written.len() as u64;
    intact.extend(written);
    report.blobs_indexed = intact.iter().map(|p| p.blobs.len() as u64).sum();

    let supersedes: Vec<IndexId> = old_index.iter().filter_map(|n| n.parse().ok()).collect();
    report.index_files_written = crate::objects::write_index_files(repo, intact, &supersedes)?;
    crate::objects::delete_all(repo, FileType::Index, &old_index)?;
    report.index_files_removed = old_index.len() as u64;
    crate::objects::delete_all(repo, FileType::Pack, &doomed)?;
    progress.finish();
    Ok(report)
}

/// What `repair snapshots` did to one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRepair {
    pub id: String,
    /// The rewritten snapshot's id (None when it could not be repaired or was removed).
    pub new_id: Option<String>,
    /// Dropped entries: "path: reason".
    pub dropped: Vec<String>,
    /// Set when the root tree is unreadable: nothing of it can be restored.
    pub unrepairable: Option<String>,
    /// The snapshot was removed (unrepairable, with `forget_unrepairable`).
    pub removed: bool,
}

/// What was dropped below a tree: (path relative to it, reason).
type Dropped = Rc<Vec<(Vec<u8>, String)>>;

struct TreeRepairer<'a> {
    repo: &'a Repository,
    stored_packs: HashMap<String, u64>,
    packer: Option<&'a Packer<'a>>,
    /// Tree id → repaired tree id (None: unreadable) and what was dropped below it.
    memo: HashMap<BlobId, (Option<BlobId>, Dropped)>,
}

impl TreeRepairer<'_> {
    /// Why a blob cannot be read, if it cannot.
    fn blob_problem(&self, t: BlobType, id: &BlobId) -> Option<String> {
        let index = self.repo.index();
        let Some(loc) = index.get(id) else {
            return Some(format!("{} blob {id} is lost", t.name()));
        };
        if loc.blob_type != t {
            return Some(format!("blob {id} is not a {} blob", t.name()));
        }
        let (pack, size) = index.pack(loc.pack);
        match self.stored_packs.get(&pack.to_hex()) {
            None => Some(format!("{} blob {id} is in missing pack {pack}", t.name())),
            Some(s) if *s != size => Some(format!(
                "{} blob {id} is in pack {pack}, which has the wrong size",
                t.name()
            )),
            Some(_) => None,
        }
    }

    fn repair(&mut self, tree_id: &BlobId, depth: usize) -> Result<(Option<BlobId>, Dropped)> {
        if let Some(r) = self.memo.get(tree_id) {
            return Ok(r.clone());
        }
        let mut dropped: Vec<(Vec<u8>, String)> = Vec::new();
        let loaded = match self.blob_problem(BlobType::Tree, tree_id) {
            Some(p) => Err(p),
            None if depth > MAX_TREE_DEPTH => {
                Err(format!("trees nest deeper than {MAX_TREE_DEPTH} levels"))
            }
            None => match self.repo.load_tree(tree_id) {
                Ok(t) => Ok(t),
                Err(e) if e.kind() == crate::ErrorKind::Corrupt => Err(e.to_string()),
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
                let remove = forget_unrepairable && !dry_run;
                if remove {
                    crate::snapshots::forget(repo, &[id])?;
                }
                out.push(SnapshotRepair {
                    id: id.to_hex(),
                    new_id: None,
                    dropped: Vec::new(),
                    unrepairable: Some(e.to_string()),
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
        let lines: Vec<String> = dropped
            .iter()
            .map(|(p, why)| {
                let shown = if p.is_empty() {
                    "/".to_string()
                } else {
                    String::from_utf8_lossy(p).into_owned()
                };
                format!("{shown}: {why}")
            })
            .collect();
        let mut r = SnapshotRepair {
            id: id.to_hex(),
            new_id: None,
            dropped: lines.clone(),
            unrepairable: None,
            removed: false,
        };
        match new_tree {
            None => {
                r.unrepairable = Some(lines.first().cloned().unwrap_or_default());
                if forget_unrepairable && !dry_run {
                    crate::snapshots::forget(repo, &[id])?;
                    r.removed = true;
                }
            }
            Some(tree) if !dry_run => {
                let mut note = format!("repair: dropped {} entries", lines.len());
                for l in lines.iter().take(MAX_NOTED) {
                    note.push_str("; ");
                    note.push_str(l);
                }
                if lines.len() > MAX_NOTED {
                    note.push_str(&format!("; and {} more", lines.len() - MAX_NOTED));
                }
                let new_id = crate::snapshots::rewrite(repo, &id, snap, note, |s| s.tree = tree)?;
                r.new_id = Some(new_id.to_hex());
            }
            Some(_) => {}
        }
        out.push(r);
    }
    progress.finish();
    Ok(out)
}
