//! Restoring a snapshot into a directory.
//!
//! Safety: names come from trees that `Tree::decode` validated (no `..`, `/` or NUL), so
//! every path is `target` joined with plain components. Existing entries in the way are
//! removed rather than written through, files are created with `O_EXCL | O_NOFOLLOW`, and a
//! directory is entered only after checking it is a real directory, so a restore never
//! writes outside the target, even through symlinks it restored itself. Every blob is
//! verified against its id before a byte of it is written.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use strata_format::blob::BlobType;
use strata_format::id::BlobId;
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind};

mod content;

use crate::filter::Filter;
use crate::meta::apply_metadata;
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

/// Which parts of a snapshot to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore only entries matching these patterns (and what they contain).
    pub includes: Vec<String>,
    /// Leave out entries matching these patterns (and what they contain).
    pub excludes: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Entries that could not be restored, with the reason.
    pub errors: Vec<String>,
}

struct Item {
    /// Absolute path in the snapshot.
    path: Vec<u8>,
    node: Box<Node>,
}

struct Plan {
    dirs: Vec<Item>,
    files: Vec<Item>,
    links: Vec<(Item, Vec<u8>)>,
    special: Vec<Item>,
}

/// Walks the snapshot and decides what to restore.
struct Planner<'a> {
    repo: &'a Repository,
    inc: Filter,
    exc: Filter,
    /// No include patterns: everything not excluded is restored.
    included_all: bool,
    out: Plan,
    /// First path of each hard-link group (device, inode).
    seen: HashMap<(u64, u64), Vec<u8>>,
}

impl Planner<'_> {
    /// Plans the entries of `tree`; returns whether anything below was planned.
    fn visit(
        &mut self,
        tree: &BlobId,
        prefix: &[u8],
        included: bool,
        depth: usize,
    ) -> Result<bool> {
        crate::treewalk::check_depth(depth, prefix)?;
        let tree = self.repo.load_tree(tree)?;
        let mut any = false;
        for node in tree.nodes {
            let mut path = prefix.to_vec();
            path.push(b'/');
            path.extend_from_slice(&node.name);
            if self.exc.matches_bytes(&path) {
                continue;
            }
            let here = included || self.inc.matches_bytes(&path);
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    let subtree = *subtree;
                    let pos = self.out.dirs.len();
                    self.out.dirs.push(Item {
                        path: path.clone(),
                        node: Box::new(node),
                    });
                    if !self.visit(&subtree, &path, here, depth + 1)? && !here {
                        self.out.dirs.truncate(pos);
                        continue;
                    }
                }
                _ if !here => continue,
                NodeKind::File { .. } if node.links > 1 => {
                    match self.seen.get(&(node.device, node.inode)) {
                        Some(first) => self.out.links.push((
                            Item {
                                path,
                                node: Box::new(node),
                            },
                            first.clone(),
                        )),
                        None => {
                            self.seen.insert((node.device, node.inode), path.clone());
                            self.out.files.push(Item {
                                path,
                                node: Box::new(node),
                            });
                        }
                    }
                }
                NodeKind::File { .. } => self.out.files.push(Item {
                    path,
                    node: Box::new(node),
                }),
                _ => self.out.special.push(Item {
                    path,
                    node: Box::new(node),
                }),
            }
            any = true;
        }
        Ok(any)
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

/// Restores `snapshot` (filtered by `opts`) under `target`.
pub fn restore(
    repo: &Repository,
    snapshot: &SnapshotFile,
    target: &Path,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreStats> {
    let inc = Filter::new(&opts.includes)?;
    let mut planner = Planner {
        repo,
        exc: Filter::new(&opts.excludes)?,
        included_all: inc.is_empty(),
        inc,
        out: Plan {
            dirs: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            special: Vec::new(),
        },
        seen: HashMap::new(),
    };
    planner.visit(&snapshot.tree, b"", planner.included_all, 0)?;
    let p = planner.out;
    progress.set_total(
        p.files
            .iter()
            .fold(0u64, |a, i| a.saturating_add(i.node.size)),
    );
    std::fs::create_dir_all(target).map_err(|e| EngineError::io(target, e))?;
    let is_root = nix::unistd::geteuid().is_root();
    let errors = Mutex::new(Vec::new());
    let fail = |path: &[u8], msg: String| {
        let m = format!("{}: {msg}", String::from_utf8_lossy(path));
        progress.warn(&m);
        errors.lock().expect("no panics while locked").push(m);
    };
    let mut stats = RestoreStats::default();

    // Order matters for safety: directories, then file contents, hard links and file
    // metadata, then special entries (symlinks last among creations, so nothing is ever
    // written or chmod-ed through a symlink this restore made), then directory metadata.
    let mut failed: HashSet<Vec<u8>> = HashSet::new();
    for d in &p.dirs {
        if under_failed(&failed, &d.path) {
            failed.insert(d.path.clone());
            continue;
        }
        let path = target_path(target, &d.path);
        let r = clear(&path, true).and_then(|_| match std::fs::create_dir(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        });
        match r {
            Ok(()) => stats.dirs += 1,
            Err(e) => {
                fail(&d.path, format!("{e}; nothing below it is restored"));
                failed.insert(d.path.clone());
            }
        }
    }
    let usable = |i: &&Item| !under_failed(&failed, &i.path);
    let files: Vec<content::FileToWrite<'_>> = p
        .files
        .iter()
        .filter(usable)
        .map(|f| content::FileToWrite {
            snapshot_path: &f.path,
            node: &f.node,
        })
        .collect();
    // Contents, then each file's metadata as soon as its last blob is written.
    let outcome = content::write_files(repo, target, &files, is_root, progress, &fail);
    stats.files = files.len() as u64 - outcome.failed;
    stats.bytes = outcome.bytes;
    drop(files);
    for (l, first) in p
        .links
        .iter()
        .filter(|(l, _)| !under_failed(&failed, &l.path))
    {
        let path = target_path(target, &l.path);
        match clear(&path, false)
            .and_then(|_| std::fs::hard_link(target_path(target, first), &path))
        {
            Ok(()) => stats.files += 1,
            Err(e) => fail(
                &l.path,
                format!("hard link to {}: {e}", String::from_utf8_lossy(first)),
            ),
        }
    }
    for s in p.special.iter().filter(usable) {
        let path = target_path(target, &s.path);
        // Metadata right away: a later entry may legitimately take this name's place on a
        // case-insensitive file system, and must not receive this entry's chmod.
        match clear(&path, false)
            .and_then(|_| create_special(&path, &s.node))
            .map_err(|e| e.to_string())
            .and_then(|_| apply_metadata(&path, &s.node, is_root))
        {
            Ok(()) => stats.other += 1,
            Err(e) => fail(&s.path, e),
        }
    }
    for d in p.dirs.iter().rev().filter(|d| !failed.contains(&d.path)) {
        let path = target_path(target, &d.path);
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fail(
                &d.path,
                "no longer a directory; metadata not applied".into(),
            );
            continue;
        }
        if let Err(e) = apply_metadata(&path, &d.node, is_root) {
            fail(&d.path, e);
        }
    }
    stats.errors = errors.into_inner().expect("no panics while locked");
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

/// Writes a file node's content to `out` (for `dump`), verifying every blob.
pub fn write_content(repo: &Repository, node: &Node, out: &mut dyn std::io::Write) -> Result<u64> {
    let NodeKind::File { content } = &node.kind else {
        return Err(EngineError::Invalid(format!(
            "{} is a {}, not a file",
            String::from_utf8_lossy(&node.name),
            node.kind.name()
        )));
    };
    let mut n = 0u64;
    for id in content {
        let data = repo.read_blob(BlobType::Data, id)?;
        out.write_all(&data)
            .map_err(|e| EngineError::io("standard output", e))?;
        n += data.len() as u64;
    }
    Ok(n)
}
