//! Checking a repository's structure: every index and snapshot decodes, every pack an
//! index names exists with the recorded size, every tree decodes, and every blob a snapshot
//! needs is in the index. Damage is reported with the snapshot and path it affects.
//!
//! (`--read-data`, which reads and verifies every pack byte, builds on this: the same
//! report type, one more pass over the packs.)

use std::collections::{HashMap, HashSet};

use strata_format::blob::BlobType;
use strata_format::id::{BlobId, PackId};
use strata_format::tree::NodeKind;
use strata_storage::FileType;

use crate::index::MasterIndex;
use crate::progress::Progress;
use crate::{Repository, Result};

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Damage: each line names the object, and the snapshot and path it affects.
    pub errors: Vec<String>,
    /// Oddities that lose no data (unreferenced packs).
    pub warnings: Vec<String>,
    pub snapshots: u64,
    pub trees: u64,
    pub packs: u64,
    pub blobs: u64,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks the repository's structure (no pack content is read except tree blobs).
pub fn check(repo: &Repository, progress: &dyn Progress) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut index = MasterIndex::default();
    for (id, file) in repo.load_index_files()? {
        match file {
            Ok(f) => index.add_file(id, &f),
            Err(e) => report.errors.push(e.to_string()),
        }
    }
    let stored: HashMap<String, u64> = repo
        .block_on(repo.backend().list(FileType::Pack))?
        .into_iter()
        .collect();
    let mut bad_packs: HashSet<PackId> = HashSet::new();
    let mut named: HashSet<String> = HashSet::new();
    for (pos, (pack, size)) in index.packs().iter().enumerate() {
        let name = pack.to_hex();
        named.insert(name.clone());
        match stored.get(&name) {
            None => {
                report.errors.push(format!(
                    "pack {name} is missing (named by index {})",
                    index.pack_source(pos as u32)
                ));
                bad_packs.insert(*pack);
            }
            Some(s) if s != size => {
                report.errors.push(format!(
                    "pack {name} has {s} bytes but its index records {size}"
                ));
                bad_packs.insert(*pack);
            }
            Some(_) => {}
        }
    }
    for name in stored.keys() {
        if !named.contains(name) {
            report.warnings.push(format!(
                "pack {name} is not in any index (left by an interrupted backup; prune removes it)"
            ));
        }
    }
    report.packs = stored.len() as u64;
    report.blobs = index.len() as u64;

    let mut checked_trees: HashSet<BlobId> = HashSet::new();
    for (sid, snap) in crate::snapshots::list_lenient(repo)? {
        let snap = match snap {
            Ok(s) => s,
            Err(e) => {
                report.errors.push(e.to_string());
                continue;
            }
        };
        report.snapshots += 1;
        progress.add_item();
        let short = sid.short();
        let blob_problem = |t: BlobType, id: &BlobId| -> Option<String> {
            match index.get(id) {
                None => Some(format!("{} blob {id} is not in the index", t.name())),
                Some(loc) if loc.blob_type != t => Some(format!(
                    "blob {id} is indexed as {}, used as {}",
                    loc.blob_type.name(),
                    t.name()
                )),
                Some(loc) => {
                    let (pack, _) = index.pack(loc.pack);
                    bad_packs.contains(&pack).then(|| {
                        format!(
                            "{} blob {id} is in damaged or missing pack {pack}",
                            t.name()
                        )
                    })
                }
            }
        };
        if let Some(p) = blob_problem(BlobType::Tree, &snap.tree) {
            report
                .errors
                .push(format!("snapshot {short}: root tree: {p}"));
            continue;
        }
        if let Err(e) = check_tree(
            repo,
            &index,
            &snap.tree,
            b"",
            &short,
            &blob_problem,
            &mut checked_trees,
            &mut report,
        ) {
            report
                .errors
                .push(format!("snapshot {short}: root tree: {e}"));
        }
    }
    report.trees = checked_trees.len() as u64;
    progress.finish();
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn check_tree(
    repo: &Repository,
    index: &MasterIndex,
    tree: &BlobId,
    prefix: &[u8],
    snap: &str,
    blob_problem: &dyn Fn(BlobType, &BlobId) -> Option<String>,
    seen: &mut HashSet<BlobId>,
    report: &mut CheckReport,
) -> Result<()> {
    if !seen.insert(*tree) {
        return Ok(());
    }
    let loaded = repo.load_tree_in(index, tree)?;
    for node in &loaded.nodes {
        let mut path = prefix.to_vec();
        path.push(b'/');
        path.extend_from_slice(&node.name);
        let shown = String::from_utf8_lossy(&path).into_owned();
        match &node.kind {
            NodeKind::File { content } => {
                if let Some(p) = content
                    .iter()
                    .find_map(|id| blob_problem(BlobType::Data, id))
                {
                    report.errors.push(format!("snapshot {snap}: {shown}: {p}"));
                }
            }
            NodeKind::Dir { subtree } => {
                if let Some(p) = blob_problem(BlobType::Tree, subtree) {
                    report.errors.push(format!("snapshot {snap}: {shown}: {p}"));
                } else if let Err(e) = check_tree(
                    repo,
                    index,
                    subtree,
                    &path,
                    snap,
                    blob_problem,
                    seen,
                    report,
                ) {
                    report.errors.push(format!("snapshot {snap}: {shown}: {e}"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
