//! The file system's state: an inode table over [`strata_engine::vfs`], which knows the
//! virtual directories, the snapshots' trees, ranged reads and their caches ([`super::ops`]
//! answers the kernel from here).
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

use fuser::{FileAttr, FileType};
use libc::{c_int, EIO, EISDIR, ENOENT, ENOTDIR};
use strata_engine::vfs::{Entry, FileContent, Lru, Vfs};
use strata_engine::{EngineError, ErrorKind};
use strata_format::tree::{Node, NodeKind};

use super::attr::{dir_attr, entry_attr, file_type};

/// How long the kernel may cache attributes and names: nothing here ever changes.
pub(super) const TTL: Duration = Duration::from_secs(3600);
const ROOT: u64 = fuser::FUSE_ROOT_ID;

pub(super) enum Kind {
    /// A directory of the layout, with its entries' inodes sorted by name (all made at
    /// mount; they live as long as it).
    Virtual {
        entry: Entry,
        children: Vec<(Vec<u8>, u64)>,
    },
    /// Anything else: a `latest` link, a snapshot's root, an entry of a snapshot.
    Entry(Entry),
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

impl Inode {
    fn new(parent: u64, name: Vec<u8>, view: u64, kind: Kind) -> Inode {
        Inode {
            parent,
            name,
            view,
            kind,
            lookups: 0,
            generation: 0,
        }
    }

    /// What the vfs says it is (`None` once freed).
    pub(super) fn entry(&self) -> Option<&Entry> {
        match &self.kind {
            Kind::Virtual { entry, .. } | Kind::Entry(entry) => Some(entry),
            Kind::Free => None,
        }
    }
}

/// Listed-only entries get numbers from here up: never a real inode's.
const UNLOOKED: u64 = 1 << 63;

/// A directory listing for readdir: (inode, type, name).
pub(super) type Listing = Arc<Vec<(u64, FileType, Vec<u8>)>>;

pub struct StrataFs {
    vfs: Vfs,
    /// Inode `n` is `inodes[n - 1]`.
    inodes: Vec<Inode>,
    /// Freed inode numbers.
    free: Vec<u64>,
    by_name: HashMap<(u64, Vec<u8>), u64>,
    /// (view, device, inode) of hard-linked files.
    hardlinks: HashMap<(u64, u64, u64), u64>,
    pub(super) open_files: HashMap<u64, Arc<FileContent>>,
    pub(super) open_dirs: HashMap<u64, Listing>,
    next_handle: u64,
    /// Failures logged lately.
    warned: Lru<String, ()>,
}

impl StrataFs {
    /// The file system over `vfs`, with an inode for each directory and link of its layout.
    pub fn new(vfs: Vfs) -> Result<StrataFs, EngineError> {
        let mut fs = StrataFs {
            vfs,
            inodes: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            hardlinks: HashMap::new(),
            open_files: HashMap::new(),
            open_dirs: HashMap::new(),
            next_handle: 1,
            warned: Lru::new(64, usize::MAX),
        };
        // The root is its own parent.
        let root = fs.vfs.root();
        let ino = fs.add_virtual(root, ROOT, Vec::new())?;
        debug_assert_eq!(ino, ROOT);
        Ok(fs)
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
        if !matches!(inode.kind, Kind::Entry(Entry::Node(_))) {
            return;
        }
        inode.lookups = inode.lookups.saturating_sub(n);
        if inode.lookups > 0 {
            return;
        }
        let name = std::mem::take(&mut inode.name);
        let parent = inode.parent;
        let view = inode.view;
        let Kind::Entry(Entry::Node(node)) = std::mem::replace(&mut inode.kind, Kind::Free) else {
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

    /// Adds virtual directory `entry` and everything below it; returns its inode.
    fn add_virtual(
        &mut self,
        entry: Entry,
        parent: u64,
        name: Vec<u8>,
    ) -> Result<u64, EngineError> {
        let listed = self.vfs.list(&entry)?;
        let ino = self.push(Inode::new(
            parent,
            name,
            0,
            Kind::Virtual {
                entry,
                children: Vec::new(),
            },
        ));
        let mut children = Vec::with_capacity(listed.len());
        for (child_name, entry) in listed {
            let child = match entry {
                Entry::Virtual(_) => self.add_virtual(entry, ino, child_name.clone())?,
                Entry::Snapshot { .. } => {
                    let child =
                        self.push(Inode::new(ino, child_name.clone(), 0, Kind::Entry(entry)));
                    // A snapshot's root is the view its entries are seen through.
                    self.inodes[child as usize - 1].view = child;
                    child
                }
                _ => self.push(Inode::new(ino, child_name.clone(), 0, Kind::Entry(entry))),
            };
            children.push((child_name, child));
        }
        if let Kind::Virtual { children: c, .. } = &mut self.inodes[ino as usize - 1].kind {
            *c = children;
        }
        Ok(ino)
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

    /// Logs a repository error on `ino` and returns its errno for the reader. The kernel
    /// often asks again at once (readahead, then the read itself): the same failure of the
    /// same entry is logged once.
    fn failed(&mut self, ino: u64, what: &str, e: EngineError) -> c_int {
        let errno = errno(&e);
        let e = anyhow::Error::from(e);
        let msg = format!("{what} {}: {}", self.path(ino), crate::output::one_line(&e));
        if self.warned.get(&msg).is_none() {
            tracing::warn!("{msg}");
            self.warned.insert(msg, (), 1);
        } else {
            tracing::debug!("again: {msg}");
        }
        errno
    }

    /// The inode for snapshot entry `node`, an entry of directory `parent`.
    fn child(&mut self, parent: u64, node: Box<Node>) -> u64 {
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
                let name = node.name.clone();
                let ino = self.push(Inode::new(
                    parent,
                    name,
                    view,
                    Kind::Entry(Entry::Node(node)),
                ));
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
        let mut out = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (inode.parent, FileType::Directory, b"..".to_vec()),
        ];
        let listed = match &inode.kind {
            Kind::Virtual { children, .. } => {
                for (name, child) in children {
                    out.push((*child, self.attr(*child).kind, name.clone()));
                }
                return Ok(Arc::new(out));
            }
            Kind::Entry(entry) if entry.is_dir() => self.vfs.list(entry),
            Kind::Entry(_) => return Err(ENOTDIR),
            Kind::Free => return Err(ENOENT),
        };
        let listed = listed.map_err(|e| self.failed(ino, "listing", e))?;
        for (name, entry) in listed {
            // Listing makes no inode: the kernel looks up what it uses.
            let child = match self.by_name.get(&(ino, name.clone())) {
                Some(&child) => child,
                None => unlooked(ino, &name),
            };
            out.push((child, file_type(&entry), name));
        }
        Ok(Arc::new(out))
    }

    pub(super) fn lookup_name(&mut self, parent: u64, name: &[u8]) -> Result<u64, c_int> {
        let found = match &self.inode(parent).ok_or(ENOENT)?.kind {
            Kind::Virtual { children, .. } => {
                return children
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, ino)| *ino)
                    .ok_or(ENOENT);
            }
            Kind::Entry(entry) if entry.is_dir() => self.vfs.child(entry, name),
            Kind::Entry(_) => return Err(ENOTDIR),
            Kind::Free => return Err(ENOENT),
        };
        match found.map_err(|e| self.failed(parent, "looking up in", e))? {
            Some(Entry::Node(node)) => Ok(self.child(parent, node)),
            // Below the layout's directories, the vfs names only snapshot entries.
            Some(_) | None => Err(ENOENT),
        }
    }

    pub(super) fn attr(&self, ino: u64) -> FileAttr {
        let Some(inode) = self.inode(ino) else {
            return dir_attr(ino, 0, 2);
        };
        match &inode.kind {
            Kind::Virtual { entry, children } => {
                let subdirs = children
                    .iter()
                    .filter(|(_, c)| {
                        self.inode(*c)
                            .and_then(Inode::entry)
                            .is_some_and(Entry::is_dir)
                    })
                    .count();
                dir_attr(ino, entry.time_ns(), 2 + subdirs as u32)
            }
            Kind::Entry(entry) => entry_attr(ino, entry),
            Kind::Free => dir_attr(ino, 0, 2),
        }
    }

    pub(super) fn node(&self, ino: u64) -> Option<&Node> {
        self.inode(ino)?.entry()?.node()
    }

    pub(super) fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    /// Opens a file inode: its chunks, from the index.
    pub(super) fn open_file(&mut self, ino: u64) -> Result<FileContent, c_int> {
        let entry = self.inode(ino).and_then(Inode::entry).ok_or(ENOENT)?;
        match entry.node().map(|n| &n.kind) {
            Some(NodeKind::File { .. }) => {}
            Some(NodeKind::Dir { .. }) | None => return Err(EISDIR),
            Some(_) => return Err(libc::EINVAL),
        }
        let content = self.vfs.open(entry);
        let content = content.map_err(|e| self.failed(ino, "opening", e))?;
        if content
            .stored_size()
            .is_some_and(|stored| stored != content.size())
        {
            tracing::warn!(
                "{}: the snapshot records {} bytes, its chunks hold {:?}",
                self.path(ino),
                content.size(),
                content.stored_size()
            );
        }
        Ok(content)
    }

    pub(super) fn read_range(
        &mut self,
        ino: u64,
        fh: u64,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, c_int> {
        let content = match self.open_files.get(&fh) {
            Some(c) => c.clone(),
            None => Arc::new(self.open_file(ino)?),
        };
        let data = self.vfs.read(&content, offset, size);
        data.map_err(|e| self.failed(ino, "reading", e))
    }
}

/// The errno a failure of the vfs answers the kernel with: a repository that cannot be
/// read is EIO (the message is in the log).
fn errno(e: &EngineError) -> c_int {
    match e.kind() {
        ErrorKind::NotFound => ENOENT,
        ErrorKind::Invalid => libc::EINVAL,
        _ => EIO,
    }
}

/// The `d_ino` of an entry listed but not looked up: stable, and never a real inode.
fn unlooked(parent: u64, name: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (parent, name).hash(&mut h);
    UNLOOKED | (h.finish() >> 1)
}
