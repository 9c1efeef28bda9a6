//! Checking a repository's structure: every index and snapshot decodes, every pack an
//! index names exists with the recorded size, every tree decodes, and every blob a snapshot
//! needs is in the index. Damage is reported with the snapshot and path it affects.
//!
//! With `read_data`, every pack is also read whole, in parallel on every core, and checked:
//! its bytes hash to its name, its sealed header decodes and lists exactly the blobs the
//! index records for it, and every blob decrypts, decompresses and hashes to its id. Damaged
//! blobs are then reported, like missing ones, with every snapshot and path that needs them.
//! With a [`Subset`], only some packs are read that way (a part chosen by pack id, or a
//! random sample), so a large repository can be verified a slice at a time.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use strata_format::blob::BlobType;
use strata_format::id::{BlobId, PackId};
use strata_format::tree::NodeKind;
use strata_storage::FileType;

mod read_data;
mod subset;

pub use subset::{Subset, SubsetError};

use crate::index::{IndexBuilder, MasterIndex};
use crate::progress::Progress;
use crate::report::{Finding, FindingKind, ObjectRef};
use crate::{Repository, Result};

/// What `check` found.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CheckReport {
    /// Damage: each names the object, and the snapshot and path it affects.
    pub errors: Vec<Finding>,
    /// Oddities that lose no data (unreferenced packs, superseded index files, key files
    /// without a copy of the config).
    pub warnings: Vec<Finding>,
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub blobs: u64,
    /// Pack bytes read and verified (with `read_data`).
    pub bytes_read: u64,
    /// Packs read and verified (with `read_data`: all the index names, or a subset).
    pub packs_read: u64,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What `check` reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Read and verify every byte of every pack.
    pub read_data: bool,
    /// Read and verify only these packs; implies `read_data`.
    pub subset: Option<Subset>,
}

/// Key files: damaged ones are errors (a password may depend on one); those without a copy
/// of the config (written by older versions) are warnings, since a lost config could then
/// not be restored from them.
fn check_key_files(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    let listed = repo.block_on(repo.backend().list(FileType::Key))?;
    let mut without_copy = 0;
    for k in repo.block_on(crate::keyfiles::read_all(&**repo.backend(), &listed)) {
        match (k.usable(), k.problem()) {
            (Some(kf), _) if kf.config.is_none() => without_copy += 1,
            (Some(_), _) => {}
            (None, problem) => report.errors.push(Finding::new(
                FindingKind::DamagedKeyFile,
                Some(ObjectRef::stored(FileType::Key, &k.name)),
                format!(
                    "{} (a password whose only key file this is no longer opens the repository)",
                    problem.unwrap_or_default()
                ),
            )),
        }
    }
    if without_copy > 0 {
        report.warnings.push(Finding::new(
            FindingKind::KeyFilesWithoutConfigCopy,
            None,
            format!(
                "{without_copy} of {} key files keep no copy of the config (written by an \
                 older Strata): run `strata repair config` once, so that a lost config can be \
                 restored",
                listed.len()
            ),
        ));
    }
    Ok(())
}

/// Evidence files: each must read, verify against its name, decrypt and decode.
fn check_evidence(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for (name, e) in crate::evidence::read_all(repo)?.damaged {
        report.errors.push(Finding::new(
            FindingKind::DamagedEvidence,
            Some(ObjectRef::stored(FileType::Evidence, &name)),
            e.to_string(),
        ));
    }
    Ok(())
}

/// Checks the repository's structure (no pack content is read except tree blobs).
pub fn check(repo: &Repository, progress: &dyn Progress) -> Result<CheckReport> {
    check_with(repo, &CheckOptions::default(), progress)
}

/// Checks the repository's structure and, with `read_data`, every pack's content (or, with
/// a subset, the content of the packs in it).
pub fn check_with(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    progress.phase(crate::progress::Phase::Checking);
    check_key_files(repo, &mut report)?;
    check_evidence(repo, &mut report)?;
    // Read again from a new listing if a prune beside this check replaces index files
    // between the listing and the reads.
    let mut attempt = 0;
    let (builder, read, superseded) = loop {
        let mut builder = IndexBuilder::new(false);
        let mut read = HashSet::new();
        let mut superseded = HashSet::new();
        let mut unreadable = Vec::new();
        let walked = repo.for_each_index_file(|id, file| match file {
            Ok(f) => {
                read.insert(id);
                superseded.extend(f.supersedes.iter().copied());
                builder.add_file(id, f)
            }
            Err(e) => unreadable.push(Finding::new(
                FindingKind::UnreadableIndex,
                Some(ObjectRef::Index { id }),
                e.to_string(),
            )),
        });
        match walked {
            Err(e)
                if crate::repository::index_file_vanished(&e)
                    && attempt < crate::repository::INDEX_RETRIES =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
            Ok(()) => {
                report.errors.extend(unreadable);
                break (builder, read, superseded);
            }
        }
    };
    let mut leftover: Vec<_> = read.intersection(&superseded).collect();
    if !leftover.is_empty() {
        // Only those still there: a file read before a prune beside this check replaced
        // it (and the replacement, read too) is no leftover.
        let present: HashSet<String> = repo
            .block_on(repo.backend().list(FileType::Index))?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        leftover.retain(|id| present.contains(&id.to_hex()));
    }
    leftover.sort();
    for id in leftover {
        report.warnings.push(Finding::new(
            FindingKind::SupersededIndex,
            Some(ObjectRef::Index { id: *id }),
            format!(
                "index {id} is superseded by a newer index file (left by an interrupted prune \
                 or repair; the next prune removes it)"
            ),
        ));
    }
    let index = builder.build();
    repo.load_dictionaries(&index);
    // The packs in storage, as they are listed (never the whole listing at once): the
    // size in storage of every pack position a current file names (12 bytes a pack: the
    // positions sorted by id, found by binary search, and a size each). Listed packs no
    // current file names, and names that are not pack ids, are unindexed.
    let table = index.packs();
    let mut by_id: Vec<u32> = (0..table.len() as u32)
        .filter(|&pos| index.pack_state(pos) != crate::index::PackState::Dropped)
        .collect();
    by_id.sort_unstable_by(|&a, &b| table[a as usize].0.cmp(&table[b as usize].0));
    const NOT_LISTED: u64 = u64::MAX;
    let mut stored_size = vec![NOT_LISTED; table.len()];
    let mut unindexed: Vec<String> = Vec::new();
    let mut listed = 0u64;
    repo.block_on(repo.backend().list_each(FileType::Pack, &mut |name, size| {
        let id = match name.parse::<PackId>() {
            Ok(id) if id.to_hex() == name => id,
            _ => {
                unindexed.push(name.to_string());
                return;
            }
        };
        let from = by_id.partition_point(|&pos| table[pos as usize].0 < id);
        let named = by_id[from..]
            .iter()
            .take_while(|&&pos| table[pos as usize].0 == id);
        let mut any = false;
        for &pos in named {
            if !any && stored_size[pos as usize] == NOT_LISTED {
                // (A retried listing passes some packs twice.)
                listed += 1;
            }
            any = true;
            stored_size[pos as usize] = size;
        }
        if !any {
            unindexed.push(name.to_string());
        }
    }))?;
    drop(by_id);
    unindexed.sort_unstable();
    unindexed.dedup();
    let mut bad_packs: HashSet<PackId> = HashSet::new();
    for (pos, (pack, size)) in table.iter().enumerate() {
        let state = index.pack_state(pos as u32);
        if state == crate::index::PackState::Dropped {
            continue;
        }
        let found = (stored_size[pos] != NOT_LISTED).then_some(stored_size[pos]);
        match found {
            // A pack marked for deletion may be deleted by a prune at any time: only a blob
            // that a snapshot needs from it would make its absence damage (found below).
            None if state == crate::index::PackState::Marked => {
                bad_packs.insert(*pack);
            }
            None => {
                report.errors.push(Finding::new(
                    FindingKind::MissingPack,
                    Some(ObjectRef::pack(*pack)),
                    format!(
                        "pack {pack} is missing (named by index {})",
                        index.pack_source(pos as u32)
                    ),
                ));
                bad_packs.insert(*pack);
            }
            Some(s) if s != *size => {
                report.errors.push(Finding::new(
                    FindingKind::PackSizeMismatch,
                    Some(ObjectRef::pack(*pack)),
                    format!("pack {pack} has {s} bytes but its index records {size}"),
                ));
                bad_packs.insert(*pack);
            }
            Some(_) => {}
        }
    }
    drop(stored_size);
    for name in &unindexed {
        report.warnings.push(Finding::new(
            FindingKind::UnindexedPack,
            Some(ObjectRef::stored(FileType::Pack, name)),
            format!(
                "pack {name} is not in any index (left by an interrupted backup, or being \
                 written by one running now; prune removes it once no backup can need it)"
            ),
        ));
    }
    report.packs = listed + unindexed.len() as u64;
    report.blobs = index.len() as u64;

    let mut bad_blobs = HashMap::new();
    if opts.read_data || opts.subset.is_some() {
        let damage =
            read_data::check_packs(repo, &index, &bad_packs, opts.subset.as_ref(), progress);
        crate::progress::check_stop(progress)?;
        report.errors.extend(damage.errors);
        report.bytes_read = damage.bytes_read;
        report.packs_read = damage.packs_read;
        bad_blobs = damage.bad_blobs;
    }

    let mut trees = TreeChecker {
        repo,
        index: &index,
        bad_packs: &bad_packs,
        bad_blobs: &bad_blobs,
        memo: HashMap::new(),
    };
    for (sid, snap) in crate::snapshots::list_lenient(repo)? {
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(
                    Finding::new(
                        FindingKind::UnreadableSnapshot,
                        Some(ObjectRef::Snapshot { id: sid }),
                        e.to_string(),
                    )
                    .in_snapshot(sid),
                );
                continue;
            }
        };
        crate::progress::check_stop(progress)?;
        report.snapshots += 1;
        // Items are the packs read when there are any (their totals were reported).
        if !(opts.read_data || opts.subset.is_some()) {
            progress.add_item();
        }
        let short = sid.short();
        // A problem below a tree, placed in this snapshot: the root tree has path "/".
        let place = |path: &[u8], problem: &Finding| {
            let shown = if path.is_empty() {
                "root tree".into()
            } else {
                String::from_utf8_lossy(path)
            };
            let at: &[u8] = if path.is_empty() { b"/" } else { path };
            problem
                .clone()
                .in_snapshot(sid)
                .at_path(at)
                .reworded(|p| format!("snapshot {short}: {shown}: {p}"))
        };
        if let Some(p) = trees.blob_problem(BlobType::Tree, &snap.tree) {
            report.errors.push(place(b"", &p));
            continue;
        }
        for (path, problem) in trees.problems(&snap.tree, 0).iter() {
            report.errors.push(place(path, problem));
        }
    }
    report.trees = trees.memo.len() as u64;
    check_wal(repo, &trees, &mut report)?;
    progress.finish();
    Ok(report)
}

/// Archived WAL (spec/wal.md): every WAL file must read and decode, no name may be listed
/// with two contents, and every blob an entry names must be indexed (and, after a data
/// read, intact).
fn check_wal(repo: &Repository, trees: &TreeChecker<'_>, report: &mut CheckReport) -> Result<()> {
    let archive = crate::wal::read_archive(repo)?;
    for (name, e) in &archive.unreadable {
        report.errors.push(Finding::new(
            FindingKind::DamagedWal,
            Some(ObjectRef::stored(FileType::Wal, name)),
            e.to_string(),
        ));
    }
    let mut projects: Vec<&str> = archive.files.values().map(|f| f.project.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    for project in projects {
        for found in archive.entries(project).values() {
            if let Err(e) = archive.find(project, &found.entry.name) {
                report
                    .errors
                    .push(Finding::new(FindingKind::DamagedWal, None, e.to_string()));
            }
        }
    }
    for (name, file) in &archive.files {
        for entry in &file.entries {
            for id in &entry.blobs {
                if let Some(p) = trees.blob_problem(BlobType::Data, id) {
                    let short = name.get(..8).unwrap_or(name);
                    report.errors.push(p.reworded(|m| {
                        format!(
                            "WAL file {short}: {} of project {}: {m}",
                            entry.name, file.project
                        )
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Problems reported below one tree at most (a damaged tree shared many times over must not
/// multiply its report without bound).
const MAX_PROBLEMS_PER_TREE: usize = 1000;

/// What is wrong below a tree: (path relative to it, the problem, its message naming
/// neither snapshot nor path), shared between the snapshots that reach the tree.
type Problems = Rc<Vec<(Vec<u8>, Finding)>>;

/// Checks trees once each, remembering what is wrong below every tree so that each
/// snapshot sharing a damaged tree is named.
struct TreeChecker<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    bad_packs: &'a HashSet<PackId>,
    /// Blobs whose content is damaged (found by reading the data), with the reason.
    bad_blobs: &'a HashMap<BlobId, String>,
    /// Problems below each checked tree (see [`Problems`]).
    memo: HashMap<BlobId, Problems>,
}

impl TreeChecker<'_> {
    fn blob_problem(&self, t: BlobType, id: &BlobId) -> Option<Finding> {
        let problem =
            |kind, message| Some(Finding::new(kind, Some(ObjectRef::blob(t, *id)), message));
        match self.index.get(id) {
            None => problem(
                FindingKind::MissingBlob,
                format!("{} blob {id} is not in the index", t.name()),
            ),
            Some(loc) if loc.blob_type != t => problem(
                FindingKind::BlobTypeMismatch,
                format!(
                    "blob {id} is indexed as {}, used as {}",
                    loc.blob_type.name(),
                    t.name()
                ),
            ),
            Some(_) if self.bad_blobs.contains_key(id) => problem(
                FindingKind::DamagedBlob,
                format!("{} blob {id} is damaged: {}", t.name(), self.bad_blobs[id]),
            ),
            Some(loc) => {
                let (pack, _) = self.index.pack(loc.pack);
                if !self.bad_packs.contains(&pack) {
                    return None;
                }
                problem(
                    FindingKind::BlobInDamagedPack,
                    format!(
                        "{} blob {id} is in damaged or missing pack {pack}",
                        t.name()
                    ),
                )
            }
        }
    }

    fn problems(&mut self, tree: &BlobId, depth: usize) -> Problems {
        if let Some(p) = self.memo.get(tree) {
            return p.clone();
        }
        let mut out = Vec::new();
        let this_tree = Some(ObjectRef::blob(BlobType::Tree, *tree));
        if let Err(too_deep) = crate::treewalk::guard(depth) {
            out.push((
                Vec::new(),
                Finding::new(FindingKind::TooDeep, this_tree, too_deep.to_string()),
            ));
        } else {
            match self.repo.load_tree_in(self.index, tree) {
                Err(e) => out.push((
                    Vec::new(),
                    Finding::new(FindingKind::UnreadableTree, this_tree, e.to_string()),
                )),
                Ok(loaded) => {
                    for node in &loaded.nodes {
                        let mut path = vec![b'/'];
                        path.extend_from_slice(&node.name);
                        match &node.kind {
                            NodeKind::File { content } => {
                                if let Some(p) = content
                                    .iter()
                                    .find_map(|id| self.blob_problem(BlobType::Data, id))
                                {
                                    out.push((path, p));
                                }
                            }
                            NodeKind::Dir { subtree } => {
                                if let Some(p) = self.blob_problem(BlobType::Tree, subtree) {
                                    out.push((path, p));
                                    continue;
                                }
                                for (below, p) in self
                                    .problems(subtree, depth + 1)
                                    .iter()
                                    .take(MAX_PROBLEMS_PER_TREE)
                                {
                                    let mut full = path.clone();
                                    full.extend_from_slice(below);
                                    out.push((full, p.clone()));
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let out = Rc::new(out);
        self.memo.insert(*tree, out.clone());
        out
    }
}
