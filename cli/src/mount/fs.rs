//! The file system's state: inodes built from the snapshot list (the virtual directories)
//! and, lazily, from the snapshots' trees, with the caches that serve reads ([`super::ops`]
//! answers the kernel from them).
//!
//! Inodes are numbered as they are first looked up, counted as the kernel holds them, and
//! freed when it forgets them (their numbers are reused with a new generation), so memory
//! follows what the kernel caches, not everything ever visited. A directory listing does
//! not make inodes: an entry not looked up yet is listed with a number outside the range
//! of real ones (as `d_ino` only).
//! Every appearance of a snapshot (`snapshots/…`, `projects/…`, `tags/…`, `hosts/…`) is a
//! view of its own: a directory has one parent, as the kernel expects. Within a view, the
//! names of a hard-link group (files with equal device and inode at backup) share one
//! inode.
//!
//! A repository error while serving a request is logged and answered with EIO: a damaged
//! blob makes one read fail, not the mount.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use fuser::{FileAttr, FileType};
use libc::{c_int, EIO, EISDIR, ENOENT, ENOTDIR};
use strata_engine::Repository;
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, SnapshotId};
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::{Node, NodeKind, Tree};

use super::attr::{dir_attr, file_type, node_attr};
use super::cache::Lru;
use super::content::Chunks;
use super::layout::{Entry, Layout};

/// How long the kernel may cache attributes and names: nothing here ever changes.
pub(super) const TTL: Duration = Duration::from_secs(3600);
/// Decoded data blobs kept: enough that reading a file sequentially in the kernel's small
/// requests fetches each chunk once.
const BLOB_CACHE_ENTRIES: usize = 32;
const BLOB_CACHE_BYTES: usize = 64 << 20;
const TREE_CACHE_ENTRIES: usize = 256;
const TREE_CACHE_BYTES: usize = 32 << 20;
const ROOT: u64 = fuser::FUSE_ROOT_ID;

pub(super) enum Kind {
    /// A directory of the layout; entries sorted by name.
    Virtual {
        entries: Vec<(Vec<u8>, u64)>,
        time_ns: i64,
    },
    /// `latest`.
    Link { target: Vec<u8>, time_ns: i64 },
    /// The root tree of a snapshot (an index into `StrataFs::snaps`).
    SnapshotRoot(usize),
    /// An entry of a snapshot.
    Node(Box<Node>),
    /// Forgotten by the kernel; the number is free for reuse.
    Free,
}

pub(super) struct Inode {
    parent: u64,
    name: Vec<u8>,
    /// The snapshot root this entry is seen through (0 for virtual entries).
    view: u64,
    pub(super) kind: Kind,
    /// How many lookups the kernel holds (snapshot entries only).
    lookups: u64,
    /// Bumped each time the number is reused.
    pub(super) generation: u64,
}

/// Listed-only entries get numbers from here up: never a real inode's.
const UNLOOKED: u64 = 1 << 63;

/// A directory listing for readdir: (inode, type, name).
pub(super) type Listing = Arc<Vec<(u64, FileType, Vec<u8>)>>;

pub struct StrataFs {
    repo: Repository,
    snaps: Vec<(SnapshotId, SnapshotFile)>,
    /// Inode `n` is `inodes[n - 1]`.
    inodes: Vec<Inode>,
    /// Freed inode numbers.
    free: Vec<u64>,
    by_name: HashMap<(u64, Vec<u8>), u64>,
    /// (view, device, inode) of hard-linked files.
    hardlinks: HashMap<(u64, u64, u64), u64>,
    trees: Lru<BlobId, Arc<Tree>>,
    blobs: Lru<BlobId, Arc<Vec<u8>>>,
    pub(super) open_files: HashMap<u64, Arc<Chunks>>,
    pub(super) open_dirs: HashMap<u64, Listing>,
    next_handle: u64,
    /// Failures logged lately.
    warned: Lru<String, ()>,
}

impl StrataFs {
    /// The file system over `snaps` (oldest first), with `latest` links when
    /// `latest_links`. `repo` must have its full index loaded.
    pub fn new(
        repo: Repository,
        snaps: Vec<(SnapshotId, SnapshotFile)>,
        latest_links: bool,
    ) -> StrataFs {
        let layout = Layout::build(&snaps, latest_links);
        let mut fs = StrataFs {
            repo,
            snaps,
            inodes: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            hardlinks: HashMap::new(),
            trees: Lru::new(TREE_CACHE_ENTRIES, TREE_CACHE_BYTES),
            blobs: Lru::new(BLOB_CACHE_ENTRIES, BLOB_CACHE_BYTES),
            open_files: HashMap::new(),
            open_dirs: HashMap::new(),
            next_handle: 1,
            warned: Lru::new(64, usize::MAX),
        };
        // The root is its own parent.
        let root = fs.add_virtual(&layout, 0, ROOT, Vec::new());
        debug_assert_eq!(root, ROOT);
        fs
    }

    fn push(&mut self, mut inode: Inode) -> u64 {
        if let Some(ino) = self.free.pop() {
            let slot = &mut self.inodes[ino as usize - 1];
            inode.generation = slot.generation + 1;
            *slot = inode;
            return ino;
        }
        self.inodes.push(inode);
        self.inodes.len() as u64
    }

    /// The kernel took one more reference to `ino` (a lookup answered with it).
    pub(super) fn looked_up(&mut self, ino: u64) {
        if let Some(i) = ino
            .checked_sub(1)
            .and_then(|i| self.inodes.get_mut(i as usize))
        {
            i.lookups += 1;
        }
    }

    /// The kernel dropped `n` references to `ino`: at none, a snapshot entry's inode is
    /// freed (the layout's own directories live as long as the mount).
    pub(super) fn forget(&mut self, ino: u64, n: u64) {
        let Some(inode) = ino
            .checked_sub(1)
            .and_then(|i| self.inodes.get_mut(i as usize))
        else {
            return;
        };
        if !matches!(inode.kind, Kind::Node(_)) {
            return;
        }
        inode.lookups = inode.lookups.saturating_sub(n);
        if inode.lookups > 0 {
            return;
        }
        let name = std::mem::take(&mut inode.name);
        let parent = inode.parent;
        let view = inode.view;
        let Kind::Node(node) = std::mem::replace(&mut inode.kind, Kind::Free) else {
            return;
        };
        if node.links > 1 {
            // Every name of the hard-link group led here.
            self.by_name.retain(|_, v| *v != ino);
            let key = (view, node.device, node.inode);
            if self.hardlinks.get(&key) == Some(&ino) {
                self.hardlinks.remove(&key);
            }
        } else if self.by_name.get(&(parent, name.clone())) == Some(&ino) {
            self.by_name.remove(&(parent, name));
        }
        self.free.push(ino);
        tracing::trace!("inode {ino} forgotten; {} in use", self.live_inodes());
    }

    /// How many inodes are in use (for tests and logs).
    pub(super) fn live_inodes(&self) -> usize {
        self.inodes.len() - self.free.len()
    }

    /// Adds layout directory `dir` and everything below it; returns its inode.
    fn add_virtual(&mut self, layout: &Layout, dir: usize, parent: u64, name: Vec<u8>) -> u64 {
        let d = &layout.dirs[dir];
        let ino = self.push(Inode {
            parent,
            name,
            view: 0,
            kind: Kind::Virtual {
                entries: Vec::new(),
                time_ns: d.time_ns,
            },
            lookups: 0,
            generation: 0,
        });
        let mut entries = Vec::with_capacity(d.entries.len());
        for (child_name, entry) in &d.entries {
            let child_name = child_name.as_bytes().to_vec();
            let child = match entry {
                Entry::Dir(sub) => self.add_virtual(layout, *sub, ino, child_name.clone()),
                Entry::Snapshot(snap) => {
                    let child = self.push(Inode {
                        parent: ino,
                        name: child_name.clone(),
                        view: 0,
                        kind: Kind::SnapshotRoot(*snap),
                        lookups: 0,
                        generation: 0,
                    });
                    self.inodes[child as usize - 1].view = child;
                    child
                }
                Entry::Symlink { target, time_ns } => self.push(Inode {
                    parent: ino,
                    name: child_name.clone(),
                    view: 0,
                    kind: Kind::Link {
                        target: target.as_bytes().to_vec(),
                        time_ns: *time_ns,
                    },
                    lookups: 0,
                    generation: 0,
                }),
            };
            entries.push((child_name, child));
        }
        if let Kind::Virtual { entries: e, .. } = &mut self.inodes[ino as usize - 1].kind {
            *e = entries;
        }
        ino
    }

    pub(super) fn inode(&self, ino: u64) -> Option<&Inode> {
        ino.checked_sub(1).and_then(|i| self.inodes.get(i as usize))
    }

    /// The path of an inode inside the mount, for messages.
    fn path(&self, mut ino: u64) -> String {
        let mut parts = Vec::new();
        while let Some(inode) = self.inode(ino) {
            if ino == ROOT {
                break;
            }
            parts.push(String::from_utf8_lossy(&inode.name).into_owned());
            ino = inode.parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Logs a repository error on `ino` and returns EIO for the reader. The kernel often
    /// asks again at once (readahead, then the read itself): the same failure of the same
    /// entry is logged once.
    fn failed(&mut self, ino: u64, what: &str, e: anyhow::Error) -> c_int {
        let msg = format!("{what} {}: {}", self.path(ino), crate::output::one_line(&e));
        if self.warned.get(&msg).is_none() {
            tracing::warn!("{msg}");
            self.warned.insert(msg, (), 1);
        } else {
            tracing::debug!("again: {msg}");
        }
        EIO
    }

    /// The tree a directory inode lists (`None`: not a snapshot directory).
    fn tree_id(&self, ino: u64) -> Option<BlobId> {
        match &self.inode(ino)?.kind {
            Kind::SnapshotRoot(snap) => Some(self.snaps[*snap].1.tree),
            Kind::Node(node) => match &node.kind {
                NodeKind::Dir { subtree } => Some(*subtree),
                _ => None,
            },
            _ => None,
        }
    }

    fn load_tree(&mut self, id: &BlobId) -> Result<Arc<Tree>> {
        if let Some(t) = self.trees.get(id) {
            return Ok(t);
        }
        let tree = Arc::new(self.repo.load_tree(id)?);
        let weight = tree
            .nodes
            .iter()
            .map(|n| 160 + n.name.len() + 32 * content_len(n))
            .sum();
        self.trees.insert(*id, tree.clone(), weight);
        Ok(tree)
    }

    fn load_blob(&mut self, id: &BlobId) -> Result<Arc<Vec<u8>>> {
        if let Some(b) = self.blobs.get(id) {
            return Ok(b);
        }
        let blob = Arc::new(self.repo.read_blob(BlobType::Data, id)?);
        self.blobs.insert(*id, blob.clone(), blob.len());
        Ok(blob)
    }

    /// The inode for `node`, an entry of directory `parent`.
    fn child(&mut self, parent: u64, node: &Node) -> u64 {
        let key = (parent, node.name.clone());
        if let Some(&ino) = self.by_name.get(&key) {
            return ino;
        }
        let view = self.inode(parent).map_or(0, |p| p.view);
        let link_key = match node.kind {
            NodeKind::File { .. } if node.links > 1 => Some((view, node.device, node.inode)),
            _ => None,
        };
        let ino = match link_key.and_then(|k| self.hardlinks.get(&k)) {
            Some(&ino) => ino,
            None => {
                let ino = self.push(Inode {
                    parent,
                    name: node.name.clone(),
                    view,
                    kind: Kind::Node(Box::new(node.clone())),
                    lookups: 0,
                    generation: 0,
                });
                if let Some(k) = link_key {
                    self.hardlinks.insert(k, ino);
                }
                ino
            }
        };
        self.by_name.insert(key, ino);
        ino
    }

    /// The entries of a directory inode, with their inodes.
    pub(super) fn list(&mut self, ino: u64) -> Result<Listing, c_int> {
        let inode = self.inode(ino).ok_or(ENOENT)?;
        let parent = inode.parent;
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        if let Kind::Virtual { entries, .. } = &inode.kind {
            for (name, child) in entries {
                out.push((*child, self.attr(*child).kind, name.clone()));
            }
            return Ok(Arc::new(out));
        }
        let id = self.tree_id(ino).ok_or(ENOTDIR)?;
        let tree = self
            .load_tree(&id)
            .map_err(|e| self.failed(ino, "listing", e))?;
        for node in &tree.nodes {
            // Listing makes no inode: the kernel looks up what it uses.
            let child = match self.by_name.get(&(ino, node.name.clone())) {
                Some(&child) => child,
                None => unlooked(ino, &node.name),
            };
            out.push((child, file_type(&node.kind), node.name.clone()));
        }
        Ok(Arc::new(out))
    }

    pub(super) fn lookup_name(&mut self, parent: u64, name: &[u8]) -> Result<u64, c_int> {
        let inode = self.inode(parent).ok_or(ENOENT)?;
        if let Kind::Virtual { entries, .. } = &inode.kind {
            return entries
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, ino)| *ino)
                .ok_or(ENOENT);
        }
        let id = self.tree_id(parent).ok_or(ENOTDIR)?;
        let tree = self
            .load_tree(&id)
            .map_err(|e| self.failed(parent, "looking up in", e))?;
        let node = tree.get(name).ok_or(ENOENT)?;
        Ok(self.child(parent, node))
    }

    pub(super) fn attr(&self, ino: u64) -> FileAttr {
        let Some(inode) = self.inode(ino) else {
            return dir_attr(ino, 0, 2);
        };
        match &inode.kind {
            Kind::Virtual { entries, time_ns } => {
                let subdirs = entries
                    .iter()
                    .filter(|(_, c)| {
                        self.inode(*c)
                            .is_some_and(|i| !matches!(i.kind, Kind::Link { .. }))
                    })
                    .count();
                dir_attr(ino, *time_ns, 2 + subdirs as u32)
            }
            Kind::SnapshotRoot(snap) => dir_attr(ino, self.snaps[*snap].1.time_ns, 2),
            Kind::Link { target, time_ns } => FileAttr {
                kind: FileType::Symlink,
                perm: 0o777,
                nlink: 1,
                size: target.len() as u64,
                ..dir_attr(ino, *time_ns, 1)
            },
            Kind::Node(node) => node_attr(ino, node),
            Kind::Free => dir_attr(ino, 0, 2),
        }
    }

    pub(super) fn node(&self, ino: u64) -> Option<&Node> {
        match &self.inode(ino)?.kind {
            Kind::Node(n) => Some(n),
            _ => None,
        }
    }

    pub(super) fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    /// The chunks of a file inode, from the index.
    pub(super) fn chunks(&self, ino: u64) -> Result<Chunks, c_int> {
        let inode = self.inode(ino).ok_or(ENOENT)?;
        match &inode.kind {
            Kind::Node(node) => match &node.kind {
                NodeKind::File { content } => {
                    let index = self.repo.index();
                    let chunks =
                        Chunks::new(content, |id| index.get(id).map(|l| l.raw_length.into()));
                    if chunks.len().is_some_and(|len| len != node.size) {
                        tracing::warn!(
                            "{}: the snapshot records {} bytes, its chunks hold {:?}",
                            self.path(ino),
                            node.size,
                            chunks.len()
                        );
                    }
                    Ok(chunks)
                }
                NodeKind::Dir { .. } => Err(EISDIR),
                _ => Err(libc::EINVAL),
            },
            _ => Err(EISDIR),
        }
    }

    pub(super) fn read_range(
        &mut self,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, c_int> {
        let chunks = match self.open_files.get(&fh) {
            Some(c) => c.clone(),
            None => Arc::new(self.chunks(ino)?),
        };
        let size_limit = self.node(ino).map_or(0, |n| n.size);
        let size = size.min(size_limit.saturating_sub(offset));
        chunks
            .read(offset, size, |id| self.load_blob(id))
            .map_err(|e| self.failed(ino, "reading", e))
    }
}

/// The `d_ino` of an entry listed but not looked up: stable, and never a real inode.
fn unlooked(parent: u64, name: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (parent, name).hash(&mut h);
    UNLOOKED | (h.finish() >> 1)
}

fn content_len(n: &Node) -> usize {
    match &n.kind {
        NodeKind::File { content } => content.len(),
        _ => 0,
    }
}
