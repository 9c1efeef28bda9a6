//! Restoring a snapshot into a directory.
//!
//! Safety: names come from trees that `Tree::decode` validated (no `..`, `/` or NUL), so
//! every path is `target` joined with plain components. Existing entries in the way are
//! removed rather than written through, files are created with `O_EXCL | O_NOFOLLOW`, and a
//! directory is entered only after checking it is a real directory, so a restore never
//! writes outside the target, even through symlinks it restored itself. Every blob is
//! verified against its id before a byte of it is written.
//!
//! Existing entries: a restore is planned first ([`plan`]): an entry already in the target
//! is replaced, kept or left alone as [`RestoreOptions::overwrite`] says, and with
//! [`RestoreOptions::delete`] what the target holds below the restored paths beyond the
//! snapshot is deleted. Before anything that exists is replaced or deleted, those entries
//! (and only they) are backed up into a safety snapshot tagged `pre-restore`, when
//! [`RestoreOptions::safety`] asks for one; if that backup fails, nothing is touched.
//!
//! Failures: an entry that cannot be restored is reported once (through
//! [`Progress::warn`] and in [`RestoreStats::errors`]) and the restore goes on. A file whose
//! content cannot be restored in full (a damaged or missing pack, a full disk) is removed
//! again, and hard links to it are not made: nothing is left that looks restored but holds
//! zeros where content is missing.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use strata_format::blob::BlobType;
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind, Tree};

mod compare;
mod content;
mod plan;
mod safety;
mod stream;
mod verify;

use crate::archiver::BackupOptions;
use crate::filter::Filter;
use crate::meta::apply_metadata;
use crate::progress::{Progress, Totals, WarningsOnly};
use crate::report::{Finding, FindingKind, ObjectRef};
use crate::{EngineError, Repository, Result};

pub use compare::content_differs;
pub use plan::{plan, Action, Overwrite, PlanTotals, PlannedEntry, RestorePlan};
pub use stream::write_content;
pub use verify::VerifyStats;

/// The tag of safety snapshots (of what a restore replaces or deletes).
pub const SAFETY_TAG: &str = "pre-restore";

/// Which parts of a snapshot to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore only entries matching these patterns (and what they contain).
    pub includes: Vec<String>,
    /// Leave out entries matching these patterns (and what they contain).
    pub excludes: Vec<String>,
    /// What to do with entries that already exist in the target.
    pub overwrite: Overwrite,
    /// Delete what the target holds below the restored paths (below included paths, with
    /// includes) that the snapshot does not hold.
    pub delete: bool,
    /// Read every restored file back and check it against the snapshot's content ids.
    pub verify: bool,
    /// List the entries to create in the plan, too (a dry run shows them; a restore needs
    /// only their count, and a plan of a large restore into an empty target stays small).
    pub list_created: bool,
    /// Back up what the restore replaces or deletes first, into a snapshot with these
    /// labels and the tag [`SAFETY_TAG`]; `None`: no safety snapshot.
    pub safety: Option<BackupOptions>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Existing entries replaced, deleted, left alone as identical, and kept (by the
    /// overwrite mode).
    pub overwritten: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub kept: u64,
    /// The snapshot of what was replaced or deleted, taken before it was.
    pub safety_snapshot: Option<SnapshotId>,
    /// The read-back of every restored file, when asked for.
    pub verify: Option<VerifyStats>,
    /// Entries that could not be restored, each with its path in the snapshot; the
    /// message reads "path: reason".
    pub errors: Vec<Finding>,
}

/// Reports an entry that could not be restored: its path in the snapshot, and what went
/// wrong (a finding whose message is the reason alone).
type Fail<'a> = &'a (dyn Fn(&[u8], Finding) + Sync);

/// A finding about the restore target (no stored object is at fault).
fn target_problem(kind: FindingKind, message: impl Into<String>) -> Finding {
    Finding::new(kind, None, message)
}

struct Item {
    /// Absolute path in the snapshot.
    path: Vec<u8>,
    node: Box<Node>,
}

/// Files restored per batch: the walk collects this many, restores their content, and goes
/// on, so memory follows the batch rather than the snapshot's file count.
const BATCH_FILES: usize = 20_000;

/// Walks the snapshot and restores as it goes: directories are created when something in
/// them is restored, files in batches; hard links, special entries and directory metadata
/// are kept for the end.
struct Walker<'a> {
    repo: &'a Repository,
    target: &'a Path,
    inc: Filter,
    exc: Filter,
    is_root: bool,
    progress: &'a dyn Progress,
    fail: Fail<'a>,
    /// The directories on the way to the current one; `Some` while not yet created.
    stack: Vec<(Vec<u8>, Option<Box<Node>>)>,
    /// Directories created, in creation order (parents first).
    dirs: Vec<Item>,
    failed: HashSet<Vec<u8>>,
    /// Files whose content could not be restored (removed again), by snapshot path.
    failed_files: HashSet<Vec<u8>>,
    /// Entries the plan leaves alone (directories with everything below them).
    skip: HashSet<Vec<u8>>,
    files: Vec<Item>,
    links: Vec<(Item, Vec<u8>)>,
    special: Vec<Item>,
    /// First path of each hard-link group (device, inode).
    seen: HashMap<(u64, u64), Vec<u8>>,
    stats: RestoreStats,
}

impl Walker<'_> {
    /// Restores the entries of `tree` (files in batches).
    /// A damaged subtree is reported and skipped; nesting deeper than the format allows
    /// aborts (hostile).
    fn visit(&mut self, tree: Tree, prefix: &[u8], included: bool, depth: usize) -> Result<()> {
        crate::treewalk::check_depth(depth, prefix)?;
        for node in tree.nodes {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            if self.exc.matches_bytes(&path) || self.skip.contains(&path) {
                continue;
            }
            let here = included || self.inc.matches_bytes(&path);
            if let NodeKind::Dir { subtree } = &node.kind {
                let subtree = *subtree;
                self.stack.push((path.clone(), Some(Box::new(node))));
                if here {
                    self.create_dirs();
                }
                match self.repo.load_tree(&subtree) {
                    Ok(sub) => self.visit(sub, &path, here, depth + 1)?,
                    Err(e) => (self.fail)(
                        &path,
                        Finding::new(
                            FindingKind::UnreadableTree,
                            Some(ObjectRef::blob(BlobType::Tree, subtree)),
                            format!("{e}; nothing below it is restored"),
                        ),
                    ),
                }
                self.stack.pop();
                continue;
            }
            if !here {
                continue;
            }
            self.create_dirs();
            if under_failed(&self.failed, &path) {
                continue;
            }
            let item = Item {
                path,
                node: Box::new(node),
            };
            match &item.node.kind {
                NodeKind::File { .. } if item.node.links > 1 => {
                    let key = (item.node.device, item.node.inode);
                    match self.seen.get(&key) {
                        Some(first) => {
                            let first = first.clone();
                            self.links.push((item, first));
                        }
                        None => {
                            self.seen.insert(key, item.path.clone());
                            self.files.push(item);
                        }
                    }
                }
                NodeKind::File { .. } => self.files.push(item),
                _ => self.special.push(item),
            }
            if self.files.len() >= BATCH_FILES {
                self.write_files();
                crate::progress::check_stop(self.progress)?;
            }
        }
        Ok(())
    }

    /// Creates the directories on the way to the current entry that do not exist yet.
    fn create_dirs(&mut self) {
        for (path, node) in self.stack.iter_mut() {
            let Some(node) = node.take() else { continue };
            if under_failed(&self.failed, path) {
                self.failed.insert(path.clone());
                continue;
            }
            let full = target_path(self.target, path);
            let r = clear(&full, true).and_then(|_| match std::fs::create_dir(&full) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            });
            match r {
                Ok(()) => {
                    self.stats.dirs += 1;
                    self.dirs.push(Item {
                        path: path.clone(),
                        node,
                    });
                }
                Err(e) => {
                    (self.fail)(
                        path,
                        target_problem(
                            FindingKind::TargetWriteFailed,
                            format!("{e}; nothing below it is restored"),
                        ),
                    );
                    self.failed.insert(path.clone());
                }
            }
        }
    }

    /// Restores the content and metadata of the files collected so far.
    fn write_files(&mut self) {
        let batch = std::mem::take(&mut self.files);
        let files: Vec<content::FileToWrite<'_>> = batch
            .iter()
            .map(|f| content::FileToWrite {
                snapshot_path: &f.path,
                node: &f.node,
            })
            .collect();
        let outcome = content::write_files(
            self.repo,
            self.target,
            &files,
            self.is_root,
            self.progress,
            self.fail,
        );
        self.stats.files += files.len() as u64 - outcome.failed;
        self.stats.bytes = self.stats.bytes.saturating_add(outcome.bytes);
        self.failed_files.extend(outcome.failed_paths);
    }
}

fn target_path(target: &Path, snapshot_path: &[u8]) -> PathBuf {
    target.join(OsStr::from_bytes(&snapshot_path[1..]))
}

/// Makes room for a new entry at `path` without following symlinks. An existing directory
/// is kept when a directory is wanted and is otherwise an error: a restore never deletes a
/// directory (on a case-insensitive file system `a` and `A` are one entry, and removing one
/// to make room for the other would discard restored data or let a symlink take its place).
fn clear(path: &Path, want_dir: bool) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => {
            if want_dir {
                Ok(())
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a directory is in the way (not replaced)",
                ))
            }
        }
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `path` lies below one of the directories that could not be created.
fn under_failed(failed: &HashSet<Vec<u8>>, path: &[u8]) -> bool {
    !failed.is_empty()
        && path
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'/' && i > 0 && failed.contains(&path[..i]))
}

/// Restores `snapshot` (filtered by `opts`) under `target`: [`plan`], then [`execute`].
pub fn restore(
    repo: &Repository,
    snapshot: &SnapshotFile,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let plan = plan(repo, snapshot, target, opts)?;
    execute(repo, snapshot, &plan, opts, progress)
}

/// Carries out `plan` (made by [`plan`] with the same `opts`): takes the safety snapshot
/// of what it replaces or deletes (when `opts.safety` asks; if it fails, nothing is
/// touched), deletes, restores, then reads back (`opts.verify`).
pub fn execute(
    repo: &Repository,
    snapshot: &SnapshotFile,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let target = plan.target.as_path();
    let safety_snapshot = match &opts.safety {
        // Its own backup reports warnings (and may be stopped), not counts: the restore's
        // progress counts the restore.
        Some(labels) => safety::snapshot(repo, plan, labels, &WarningsOnly(progress))?,
        None => None,
    };
    let inc = Filter::new(&opts.includes)?;
    let included_all = inc.is_empty();
    std::fs::create_dir_all(target).map_err(|e| EngineError::io(target, e))?;
    let errors = Mutex::new(Vec::new());
    let fail = |path: &[u8], problem: Finding| {
        let shown = String::from_utf8_lossy(path).into_owned();
        let f = problem
            .at_path(path)
            .reworded(|why| format!("{shown}: {why}"));
        progress.warn(&f.message);
        errors.lock().expect("no panics while locked").push(f);
    };
    let is_root = nix::unistd::geteuid().is_root();
    let mut w = Walker {
        repo,
        target,
        inc,
        exc: Filter::new(&opts.excludes)?,
        is_root,
        progress,
        fail: &fail,
        stack: Vec::new(),
        dirs: Vec::new(),
        failed: HashSet::new(),
        failed_files: HashSet::new(),
        skip: plan.skipped(),
        files: Vec::new(),
        links: Vec::new(),
        special: Vec::new(),
        seen: HashMap::new(),
        stats: RestoreStats::default(),
    };

    // Order matters for safety: directories and file contents (each file's metadata as
    // soon as its last blob is written), then hard links, then special entries (symlinks
    // last among creations, so nothing is ever written or chmod-ed through a symlink this
    // restore made), then directory metadata, children before parents.
    progress.phase(crate::progress::Phase::Restoring);
    progress.set_totals(Totals {
        items: plan.totals.files,
        bytes: plan.totals.bytes,
        complete: true,
    });
    let mut deleted = 0;
    for d in plan.entries.iter().filter(|e| e.action == Action::Delete) {
        let removed = match std::fs::symlink_metadata(&d.path) {
            Ok(md) if md.is_dir() => std::fs::remove_dir_all(&d.path),
            Ok(_) => std::fs::remove_file(&d.path),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => deleted += 1,
            Err(e) => fail(
                &d.snapshot_path,
                target_problem(FindingKind::TargetWriteFailed, format!("not deleted: {e}")),
            ),
        }
    }
    w.visit(repo.load_tree(&snapshot.tree)?, b"", included_all, 0)?;
    w.write_files();
    crate::progress::check_stop(progress)?;
    let failed = std::mem::take(&mut w.failed);
    let mut stats = std::mem::take(&mut w.stats);
    for (l, first) in w
        .links
        .iter()
        .filter(|(l, _)| !under_failed(&failed, &l.path))
    {
        if w.failed_files.contains(first) {
            fail(
                &l.path,
                target_problem(
                    FindingKind::LinkTargetNotRestored,
                    format!(
                        "not restored: a hard link to {}, whose content could not be restored",
                        String::from_utf8_lossy(first)
                    ),
                ),
            );
            continue;
        }
        let path = target_path(target, &l.path);
        match clear(&path, false)
            .and_then(|_| std::fs::hard_link(target_path(target, first), &path))
        {
            Ok(()) => {
                stats.files += 1;
                // The plan counted it as a file of its size.
                progress.add_item();
                progress.add_bytes(l.node.size);
            }
            Err(e) => fail(
                &l.path,
                target_problem(
                    FindingKind::TargetWriteFailed,
                    format!("hard link to {}: {e}", String::from_utf8_lossy(first)),
                ),
            ),
        }
    }
    for s in w.special.iter().filter(|i| !under_failed(&failed, &i.path)) {
        let path = target_path(target, &s.path);
        // Metadata right away: a later entry may legitimately take this name's place on a
        // case-insensitive file system, and must not receive this entry's chmod.
        let made = match clear(&path, false).and_then(|_| create_special(&path, &s.node)) {
            Err(e) => Err(target_problem(
                FindingKind::TargetWriteFailed,
                e.to_string(),
            )),
            Ok(()) => apply_metadata(&path, &s.node, is_root)
                .map_err(|e| target_problem(FindingKind::MetadataNotApplied, e)),
        };
        match made {
            Ok(()) => stats.other += 1,
            Err(e) => fail(&s.path, e),
        }
    }
    for d in w.dirs.iter().rev().filter(|d| !failed.contains(&d.path)) {
        let path = target_path(target, &d.path);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fail(
                &d.path,
                target_problem(
                    FindingKind::MetadataNotApplied,
                    "no longer a directory; metadata not applied",
                ),
            );
            continue;
        }
        if let Err(e) = apply_metadata(&path, &d.node, is_root) {
            fail(&d.path, target_problem(FindingKind::MetadataNotApplied, e));
        }
    }
    let skip = std::mem::take(&mut w.skip);
    drop(w);
    stats.deleted = deleted;
    stats.overwritten = plan.totals.overwrite;
    stats.unchanged = plan.totals.unchanged;
    stats.kept = plan.totals.keep;
    stats.safety_snapshot = safety_snapshot;
    stats.errors = errors.into_inner().expect("no panics while locked");
    if opts.verify {
        let failed: HashSet<Vec<u8>> = stats.errors.iter().filter_map(|f| f.path.clone()).collect();
        let checker = verify::Verifier::new(repo, target, opts, &skip, &failed, progress)?;
        stats.verify = Some(checker.run(snapshot)?);
    }
    progress.finish();
    Ok(stats)
}

fn create_special(path: &Path, node: &Node) -> std::io::Result<()> {
    use nix::sys::stat::{mknod, Mode, SFlag};
    let mode = Mode::from_bits_truncate(node.mode & 0o777);
    let res = match &node.kind {
        NodeKind::Symlink { target } => {
            return std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        }
        NodeKind::Fifo => nix::unistd::mkfifo(path, mode),
        NodeKind::CharDevice { rdev } => mknod(path, SFlag::S_IFCHR, mode, *rdev as libc::dev_t),
        NodeKind::BlockDevice { rdev } => mknod(path, SFlag::S_IFBLK, mode, *rdev as libc::dev_t),
        NodeKind::Socket => mknod(path, SFlag::S_IFSOCK, mode, 0),
        NodeKind::File { .. } | NodeKind::Dir { .. } => {
            unreachable!("files and dirs are restored elsewhere")
        }
    };
    res.map_err(std::io::Error::from)
}
