//! What a restore will do to its target before it does it: which entries it creates,
//! overwrites, deletes and leaves alone ([`RestorePlan`]).
//!
//! The plan walks the snapshot (filtered as the restore is) beside the target, looking at
//! the target with `lstat` only and descending only into real directories, so it never
//! follows a symlink it finds there. Whether an existing file differs from the snapshot's
//! is decided as restic's `--overwrite if-changed` does: a different size differs, an equal
//! size and mtime is the same, and an equal size with another mtime is read and compared
//! chunk by chunk with the snapshot's content ids ([`content_differs`]). Planning writes
//! nothing.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};
use strata_format::id::BlobId;
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind, Tree};

use super::compare::{content_differs, kind_of};
use super::{target_path, RestoreOptions};
use crate::filter::Filter;
use crate::{EngineError, Repository, Result};

/// What a restore does with an entry of its target that already exists (and is not a
/// directory where the snapshot has a directory: those are kept and entered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Leave every existing entry as it is.
    Never,
    /// Replace an entry only if it differs from the snapshot's (size, then mtime, then
    /// content ids).
    IfChanged,
    /// Replace an entry only if the snapshot's is newer (by mtime).
    IfNewer,
    /// Replace every existing entry.
    #[default]
    Always,
}

/// What happens to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing is there: it is created.
    Create,
    /// Something else is there: it is replaced.
    Overwrite,
    /// It is in the target below a restored path but not in the snapshot (`delete`).
    Delete,
    /// It is there and already the same as in the snapshot: left alone.
    Unchanged,
    /// It is there and differs, but the overwrite mode keeps it: left alone.
    Keep,
}

/// One entry of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedEntry {
    pub action: Action,
    /// Where it is in the target (absolute when the target exists).
    #[serde(serialize_with = "lossy")]
    pub path: PathBuf,
    /// The snapshot's entry kind (`file`, `dir`, `symlink`, …); for a deletion, the
    /// existing entry's.
    pub kind: &'static str,
    /// The snapshot's size of a file (what a creation or an overwrite writes); for a
    /// deletion, the existing entry's.
    pub size: u64,
    /// Why, for anything but a creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Path in the snapshot (for deletions, the path the entry would have).
    #[serde(skip)]
    pub(super) snapshot_path: Vec<u8>,
}

/// Counts of a plan's entries by action.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanTotals {
    pub create: u64,
    pub overwrite: u64,
    pub delete: u64,
    pub unchanged: u64,
    pub keep: u64,
    /// Regular files that creations and overwrites write (hard links counted as files).
    pub files: u64,
    /// File content that creations and overwrites write.
    pub bytes: u64,
}

/// What a restore will do, entry by entry (directories only when created, replaced or
/// deleted; entries to create only with [`RestoreOptions::list_created`], their count
/// always).
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    /// The target, made absolute (symlinks resolved) when it exists.
    #[serde(serialize_with = "lossy")]
    pub target: PathBuf,
    pub entries: Vec<PlannedEntry>,
    pub totals: PlanTotals,
}

impl RestorePlan {
    /// The existing entries the restore replaces or deletes: what a safety snapshot holds.
    pub fn at_risk(&self) -> impl Iterator<Item = &PlannedEntry> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Overwrite | Action::Delete))
    }

    /// Snapshot paths the restore leaves alone.
    pub(super) fn skipped(&self) -> HashSet<Vec<u8>> {
        self.entries
            .iter()
            .filter(|e| matches!(e.action, Action::Unchanged | Action::Keep))
            // Not skipped: the restore reports it as an entry it could not restore.
            .filter(|e| e.reason != Some(DIR_IN_THE_WAY))
            .map(|e| e.snapshot_path.clone())
            .collect()
    }
}

/// Why a non-directory entry of the snapshot cannot be restored where a directory is.
const DIR_IN_THE_WAY: &str = "a directory is in the way (never replaced by a restore)";

fn lossy<S: Serializer>(p: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Plans the restore of `snapshot` (filtered by `opts`) into `target`; touches nothing.
/// An include pattern that matches nothing in the snapshot is an error that names it.
pub fn plan(
    repo: &Repository,
    snapshot: &SnapshotFile,
    target: &Path,
    opts: &RestoreOptions,
) -> Result<RestorePlan> {
    let target = match std::fs::canonicalize(target) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::path::absolute(target).map_err(|e| EngineError::io(target, e))?
        }
        Err(e) => return Err(EngineError::io(target, e)),
    };
    let exists = match std::fs::metadata(&target) {
        Ok(md) if md.is_dir() => true,
        Ok(_) => {
            return Err(EngineError::Invalid(format!(
                "{} is not a directory: restore into a directory",
                target.display()
            )))
        }
        Err(_) => false,
    };
    let includes = opts
        .includes
        .iter()
        .map(|p| Filter::new(std::slice::from_ref(p)))
        .collect::<Result<Vec<_>>>()?;
    let mut p = Planner {
        repo,
        target: &target,
        overwrite: opts.overwrite,
        delete: opts.delete,
        list_created: opts.list_created,
        selected: 0,
        roots: snapshot
            .paths
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect(),
        inc: Filter::new(&opts.includes)?,
        includes,
        used: vec![false; opts.includes.len()],
        exc: Filter::new(&opts.excludes)?,
        entries: Vec::new(),
        totals: PlanTotals::default(),
    };
    let included_all = opts.includes.is_empty();
    p.dir(
        repo.load_tree(&snapshot.tree)?,
        b"",
        included_all,
        exists,
        0,
    )?;
    if let Some(i) = p.used.iter().position(|u| !u) {
        return Err(EngineError::Invalid(format!(
            "--include {:?} matches nothing in the snapshot (patterns with `/` match the \
             whole absolute path in the snapshot, as `strata ls` shows it; others match a \
             name at any depth); nothing was restored",
            opts.includes[i]
        )));
    }
    if p.selected == 0 && !opts.excludes.is_empty() {
        return Err(EngineError::Invalid(format!(
            "--exclude {} leaves nothing of the snapshot to restore; nothing was restored",
            opts.excludes
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(" --exclude ")
        )));
    }
    let (entries, totals) = (p.entries, p.totals);
    Ok(RestorePlan {
        target,
        entries,
        totals,
    })
}

struct Planner<'a> {
    repo: &'a Repository,
    target: &'a Path,
    overwrite: Overwrite,
    delete: bool,
    list_created: bool,
    /// Entries the filters let through.
    selected: u64,
    /// The snapshot's backed-up paths: deletions happen only below them.
    roots: Vec<Vec<u8>>,
    inc: Filter,
    /// Each include pattern on its own, to tell which ones matched nothing.
    includes: Vec<Filter>,
    used: Vec<bool>,
    exc: Filter,
    entries: Vec<PlannedEntry>,
    totals: PlanTotals,
}

impl Planner<'_> {
    fn add(
        &mut self,
        action: Action,
        snapshot_path: &[u8],
        kind: &'static str,
        size: u64,
        reason: Option<&'static str>,
    ) {
        let t = &mut self.totals;
        match action {
            Action::Create | Action::Overwrite => {
                if action == Action::Create {
                    t.create += 1
                } else {
                    t.overwrite += 1
                }
                if kind == "file" {
                    t.files += 1;
                    t.bytes = t.bytes.saturating_add(size);
                }
            }
            Action::Delete => t.delete += 1,
            Action::Unchanged => t.unchanged += 1,
            Action::Keep => t.keep += 1,
        }
        if action == Action::Create && !self.list_created {
            return;
        }
        self.entries.push(PlannedEntry {
            action,
            path: target_path(self.target, snapshot_path),
            kind,
            size,
            reason,
            snapshot_path: snapshot_path.to_vec(),
        });
    }

    /// Whether `path` (in the snapshot) is at or below one of the backed-up paths.
    fn below_roots(&self, path: &[u8]) -> bool {
        self.roots.iter().any(|r| {
            r.as_slice() == b"/"
                || path == r.as_slice()
                || (path.starts_with(r) && path.get(r.len()) == Some(&b'/'))
        })
    }

    /// Plans the entries of `tree` (at `prefix` in the snapshot). `exists`: the target's
    /// directory for `prefix` is a real directory (so its entries are looked at).
    fn dir(
        &mut self,
        tree: Tree,
        prefix: &[u8],
        included: bool,
        exists: bool,
        depth: usize,
    ) -> Result<()> {
        crate::treewalk::check_depth(depth, prefix)?;
        let names: HashSet<Vec<u8>> = tree.nodes.iter().map(|n| n.name.clone()).collect();
        for node in tree.nodes {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            if self.exc.matches_bytes(&path) {
                continue;
            }
            let here = included || self.matches_include(&path);
            if here {
                self.selected += 1;
            }
            let full = target_path(self.target, &path);
            let existing = if exists {
                std::fs::symlink_metadata(&full).ok()
            } else {
                None
            };
            if let NodeKind::Dir { subtree } = &node.kind {
                let inside = match &existing {
                    None => {
                        if here {
                            self.add(Action::Create, &path, "dir", 0, None);
                        }
                        false
                    }
                    Some(md) if md.is_dir() => true,
                    Some(md) => {
                        let (action, reason) = self.decide_other(&node, &full, md);
                        self.add(action, &path, "dir", 0, Some(reason));
                        if action == Action::Keep {
                            continue;
                        }
                        false
                    }
                };
                // An unreadable subtree is reported by the restore itself.
                if let Ok(sub) = self.repo.load_tree(subtree) {
                    self.dir(sub, &path, here, inside, depth + 1)?;
                }
                continue;
            }
            if !here {
                continue;
            }
            let kind = node.kind.name();
            match &existing {
                None => self.add(Action::Create, &path, kind, node.size, None),
                Some(md) if md.is_dir() => {
                    self.add(Action::Keep, &path, kind, node.size, Some(DIR_IN_THE_WAY))
                }
                Some(md) => {
                    let (action, reason) = match &node.kind {
                        NodeKind::File { content } if md.is_file() => {
                            self.decide_file(&node, content, &full, md)
                        }
                        _ => self.decide_other(&node, &full, md),
                    };
                    self.add(action, &path, kind, node.size, Some(reason));
                }
            }
        }
        if self.delete && exists && included && self.below_roots(prefix) {
            self.extras(prefix, &names)?;
        }
        Ok(())
    }

    /// Whether `path` matches an include pattern; records which ones do.
    fn matches_include(&mut self, path: &[u8]) -> bool {
        if !self.inc.matches_bytes(path) {
            return false;
        }
        for (i, f) in self.includes.iter().enumerate() {
            if !self.used[i] && f.matches_bytes(path) {
                self.used[i] = true;
            }
        }
        true
    }

    /// Plans the deletion of what the target holds in `prefix` beyond `names` (excluded
    /// entries stay).
    fn extras(&mut self, prefix: &[u8], names: &HashSet<Vec<u8>>) -> Result<()> {
        let dir = if prefix.is_empty() {
            self.target.to_path_buf()
        } else {
            target_path(self.target, prefix)
        };
        let list = std::fs::read_dir(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let mut found = Vec::new();
        for entry in list {
            let entry = entry.map_err(|e| EngineError::io(&dir, e))?;
            let name = entry.file_name().as_bytes().to_vec();
            if names.contains(&name) {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(&name);
            if self.exc.matches_bytes(&path) {
                continue;
            }
            let md = entry
                .metadata()
                .map_err(|e| EngineError::io(entry.path(), e))?;
            found.push((path, kind_of(&md), if md.is_file() { md.len() } else { 0 }));
        }
        found.sort();
        for (path, kind, size) in found {
            self.add(
                Action::Delete,
                &path,
                kind,
                size,
                Some("not in the snapshot"),
            );
        }
        Ok(())
    }

    /// An existing regular file where the snapshot has a file.
    fn decide_file(
        &self,
        node: &Node,
        content: &[BlobId],
        full: &Path,
        md: &Metadata,
    ) -> (Action, &'static str) {
        let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        let same_size = md.len() == node.size;
        if same_size && mtime == node.mtime_ns {
            return (Action::Unchanged, "same size and modification time");
        }
        match self.overwrite {
            Overwrite::Never => (Action::Keep, "exists (--overwrite never)"),
            Overwrite::Always => (Action::Overwrite, "exists (--overwrite always)"),
            Overwrite::IfNewer if node.mtime_ns > mtime => {
                (Action::Overwrite, "the snapshot's is newer")
            }
            Overwrite::IfNewer => (Action::Keep, "not older than the snapshot's"),
            Overwrite::IfChanged if !same_size => (Action::Overwrite, "its size differs"),
            Overwrite::IfChanged => match content_differs(self.repo, full, content, node.size) {
                Ok(None) => (Action::Unchanged, "same content"),
                Ok(Some(_)) => (Action::Overwrite, "its content differs"),
                Err(_) => (Action::Overwrite, "its content could not be read"),
            },
        }
    }

    /// An existing entry that is not a regular file with a file in the snapshot, or is in
    /// the way of a directory.
    fn decide_other(&self, node: &Node, full: &Path, md: &Metadata) -> (Action, &'static str) {
        let same = kind_of(md) == node.kind.name()
            && match &node.kind {
                NodeKind::Symlink { target } => std::fs::read_link(full)
                    .is_ok_and(|t| t.as_os_str().as_bytes() == target.as_slice()),
                NodeKind::CharDevice { rdev } | NodeKind::BlockDevice { rdev } => {
                    md.rdev() == *rdev
                }
                NodeKind::Dir { .. } | NodeKind::File { .. } => false,
                NodeKind::Fifo | NodeKind::Socket => true,
            };
        let mtime = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        match self.overwrite {
            _ if same => (Action::Unchanged, "the same kind and target"),
            Overwrite::Always => (Action::Overwrite, "exists (--overwrite always)"),
            Overwrite::Never => (Action::Keep, "exists (--overwrite never)"),
            Overwrite::IfNewer if node.mtime_ns > mtime => {
                (Action::Overwrite, "the snapshot's is newer")
            }
            Overwrite::IfNewer => (Action::Keep, "not older than the snapshot's"),
            Overwrite::IfChanged => (Action::Overwrite, "it differs from the snapshot's"),
        }
    }
}
