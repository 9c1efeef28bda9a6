//! The repository's snapshots as one read-only file system tree, for whatever shows them:
//! the FUSE mount (`strata mount`), a web dashboard's browser, downloads over HTTP.
//!
//! ```text
//! snapshots/<time>-<shortid>/…        every snapshot
//! projects/<project>/<time>/…         the snapshots of one project, and
//! projects/<project>/latest           a symbolic link to the newest of them
//! tags/<tag>/<time>/…                 the snapshots carrying a tag
//! hosts/<host>/<time>/…               the snapshots of a host
//! ```
//!
//! - `layout`: which name appears in which virtual directory, from the
//!   snapshot list alone; [`Entry`]: what a name stands for.
//! - `content`: which chunks a byte range of a file needs, from the index
//!   alone; only those are read.
//! - `cache`: the bounded caches of decoded trees and data blobs.
//!
//! No inodes and no handles: an [`Entry`] is a value the caller keeps (a FUSE adapter in its
//! inode table, a web server nowhere: it looks paths up with [`Vfs::lookup`]). Every method
//! takes `&self`, so one `Vfs` serves concurrent requests; see `cache` for
//! what they share.
//!
//! Invariants: the snapshot list is read once, at [`Vfs::new`]; while a snapshot cannot be
//! read it may be the newest, so there are then no `latest` links at all (as
//! [`crate::snapshots::find`] refuses `latest`). A damaged tree or blob fails the request
//! that needs it with its engine error (`Corrupt`, `Storage`), never the `Vfs`; a name that
//! is not there is `None` from [`Vfs::child`] and `NotFound` from [`Vfs::lookup`].

mod cache;
mod content;
mod entry;
mod layout;

use std::sync::Arc;

use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{NodeKind, Tree};

use crate::{snapshots, EngineError, Repository, Result};

pub use cache::Lru;
pub use content::FileContent;
pub use entry::{Entry, VirtualDir};
pub use layout::{dir_name, time_name, LATEST};

use cache::Caches;
use content::Chunks;
use layout::{Layout, Slot};

/// A repository's snapshots as a file system (see the module docs).
#[derive(Debug)]
pub struct Vfs {
    repo: Repository,
    snapshots: Vec<(SnapshotId, SnapshotFile)>,
    unreadable: Vec<(SnapshotId, EngineError)>,
    layout: Layout,
    caches: Caches,
}

impl Vfs {
    /// The file system over every snapshot of `repo` as listed now. `repo` must have its
    /// full index loaded (reads find their chunks' lengths there).
    pub fn new(repo: Repository) -> Result<Vfs> {
        if repo.index_is_metadata_only() {
            return Err(EngineError::Invalid(
                "browsing snapshots reads file content: open the repository with its full \
                 index, not only its metadata"
                    .into(),
            ));
        }
        let (snapshots, unreadable) = snapshots::list_split(&repo)?;
        let layout = Layout::build(&snapshots, unreadable.is_empty());
        Ok(Vfs {
            repo,
            snapshots,
            unreadable,
            layout,
            caches: Caches::new(),
        })
    }

    /// The readable snapshots, oldest first.
    pub fn snapshots(&self) -> &[(SnapshotId, SnapshotFile)] {
        &self.snapshots
    }

    /// The snapshots that could not be read, with why; while there are any, no `latest`
    /// links are shown ([`crate::snapshots::latest_unknown`] says why to a person).
    pub fn unreadable(&self) -> &[(SnapshotId, EngineError)] {
        &self.unreadable
    }

    /// The root directory.
    pub fn root(&self) -> Entry {
        self.slot_entry(&Slot::Dir(0))
    }

    /// The entries of directory `dir`, sorted by name (raw bytes).
    pub fn list(&self, dir: &Entry) -> Result<Vec<(Vec<u8>, Entry)>> {
        if let Entry::Virtual(v) = dir {
            let d = self.virtual_dir(v)?;
            return Ok(d
                .entries
                .iter()
                .map(|(name, slot)| (name.as_bytes().to_vec(), self.slot_entry(slot)))
                .collect());
        }
        let tree = self.tree(dir)?;
        Ok(tree
            .nodes
            .iter()
            .map(|n| (n.name.clone(), Entry::Node(Box::new(n.clone()))))
            .collect())
    }

    /// The entry `name` of directory `dir`, if there is one. Reads at most one tree.
    pub fn child(&self, dir: &Entry, name: &[u8]) -> Result<Option<Entry>> {
        if let Entry::Virtual(v) = dir {
            let d = self.virtual_dir(v)?;
            return Ok(d
                .entries
                .binary_search_by(|(n, _)| n.as_bytes().cmp(name))
                .ok()
                .map(|i| self.slot_entry(&d.entries[i].1)));
        }
        let tree = self.tree(dir)?;
        Ok(tree.get(name).map(|n| Entry::Node(Box::new(n.clone()))))
    }

    /// The entry at `path`: names separated by `/` from the root (`projects/shop/latest/srv`;
    /// empty names and `.` are skipped, `..` is refused). A `latest` link met before the
    /// last name is followed; at the end it is returned as the link. Symbolic links inside
    /// snapshots are never followed (their targets are paths of the machine backed up).
    pub fn lookup(&self, path: &[u8]) -> Result<Entry> {
        let names: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|n| !n.is_empty() && *n != b".")
            .collect();
        // The path of the first `k` names, for messages.
        let at = |k: usize| format!("/{}", String::from_utf8_lossy(&names[..k].join(&b'/')));
        let mut entry = self.root();
        for (i, name) in names.iter().enumerate() {
            if *name == b".." {
                return Err(EngineError::Invalid(format!(
                    "{}: `..` is not allowed; give the path from the root",
                    String::from_utf8_lossy(path)
                )));
            }
            if !entry.is_dir() {
                return Err(EngineError::NotFound(format!(
                    "{} is not a directory",
                    at(i)
                )));
            }
            let dir = entry;
            entry = self
                .child(&dir, name)?
                .ok_or_else(|| EngineError::NotFound(format!("{} does not exist", at(i + 1))))?;
            if let (Entry::Latest { target, .. }, true) = (&entry, i + 1 < names.len()) {
                entry = self.child(&dir, target.as_bytes())?.ok_or_else(|| {
                    EngineError::NotFound(format!("{}: {target} does not exist", at(i + 1)))
                })?;
            }
        }
        Ok(entry)
    }

    /// Opens file `file` for [`Vfs::read`]: its chunks, from the index (no blob is read).
    pub fn open(&self, file: &Entry) -> Result<FileContent> {
        let node = match file {
            Entry::Node(node) => node,
            _ => return Err(not_a_file(file)),
        };
        let NodeKind::File { content } = &node.kind else {
            return Err(not_a_file(file));
        };
        let index = self.repo.index();
        let chunks = Chunks::new(content, |id| index.get(id).map(|l| l.raw_length.into()));
        Ok(FileContent {
            chunks,
            size: node.size,
        })
    }

    /// Bytes `[offset, offset + len)` of `file` (fewer at its end, none past it), reading
    /// only the chunks that cover them. The bytes are returned whole: ask for a large file
    /// in pieces.
    pub fn read(&self, file: &FileContent, offset: u64, len: u64) -> Result<Vec<u8>> {
        let len = len.min(file.size.saturating_sub(offset));
        file.chunks
            .read(offset, len, |id| self.caches.blob(&self.repo, id))
    }

    /// The tree a snapshot directory lists.
    fn tree(&self, dir: &Entry) -> Result<Arc<Tree>> {
        let id = dir.tree().ok_or_else(|| {
            EngineError::Invalid(format!("{} is not a directory", dir.describe()))
        })?;
        self.caches.tree(&self.repo, &id)
    }

    fn virtual_dir(&self, v: &VirtualDir) -> Result<&layout::Dir> {
        self.layout.dirs.get(v.index).ok_or_else(|| {
            EngineError::Invalid("a virtual directory of another file system".into())
        })
    }

    fn slot_entry(&self, slot: &Slot) -> Entry {
        match slot {
            Slot::Dir(index) => Entry::Virtual(VirtualDir {
                index: *index,
                time_ns: self.layout.dirs[*index].time_ns,
            }),
            Slot::Snapshot(i) => {
                let (id, snap) = &self.snapshots[*i];
                Entry::Snapshot {
                    id: *id,
                    tree: snap.tree,
                    time_ns: snap.time_ns,
                }
            }
            Slot::Symlink { target, time_ns } => Entry::Latest {
                target: target.clone(),
                time_ns: *time_ns,
            },
        }
    }
}

fn not_a_file(entry: &Entry) -> EngineError {
    EngineError::Invalid(format!("{} is not a file", entry.describe()))
}
