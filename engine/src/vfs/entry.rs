//! What a name in the virtual file system stands for.

use strata_format::id::{BlobId, SnapshotId};
use strata_format::tree::{Node, NodeKind};

/// An entry of the virtual file system. A value: it holds no lock, handle or inode, and
/// stays valid for as long as the caller keeps it (the snapshots it shows never change).
/// Entries are meant for the [`super::Vfs`] that made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A directory of the layout: the root, `snapshots/`, `projects/<project>/`, …
    Virtual(VirtualDir),
    /// `projects/<project>/latest`: a symbolic link to the newest snapshot of the project;
    /// `target` is that snapshot's name in the same directory.
    Latest { target: String, time_ns: i64 },
    /// The root directory of a snapshot.
    Snapshot {
        id: SnapshotId,
        tree: BlobId,
        time_ns: i64,
    },
    /// An entry of a snapshot's tree, with its metadata as recorded.
    Node(Box<Node>),
}

/// A directory of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtualDir {
    /// Its position in the layout's list of directories.
    pub(super) index: usize,
    pub(super) time_ns: i64,
}

impl VirtualDir {
    /// The time of the newest snapshot below (0 when there is none).
    pub fn time_ns(&self) -> i64 {
        self.time_ns
    }
}

impl Entry {
    /// Whether the entry lists other entries ([`super::Vfs::list`]).
    pub fn is_dir(&self) -> bool {
        match self {
            Entry::Virtual(_) | Entry::Snapshot { .. } => true,
            Entry::Latest { .. } => false,
            Entry::Node(node) => matches!(node.kind, NodeKind::Dir { .. }),
        }
    }

    /// Its modification time (Unix ns): as recorded for a snapshot's entries, the
    /// snapshot's time for its root, the newest snapshot's below a virtual directory.
    pub fn time_ns(&self) -> i64 {
        match self {
            Entry::Virtual(dir) => dir.time_ns,
            Entry::Latest { time_ns, .. } | Entry::Snapshot { time_ns, .. } => *time_ns,
            Entry::Node(node) => node.mtime_ns,
        }
    }

    /// The target of a symbolic link (`latest` or one recorded in a snapshot).
    pub fn link_target(&self) -> Option<&[u8]> {
        match self {
            Entry::Latest { target, .. } => Some(target.as_bytes()),
            Entry::Node(node) => match &node.kind {
                NodeKind::Symlink { target } => Some(target),
                _ => None,
            },
            _ => None,
        }
    }

    /// The snapshot entry, when it is one.
    pub fn node(&self) -> Option<&Node> {
        match self {
            Entry::Node(node) => Some(node),
            _ => None,
        }
    }

    /// The tree a snapshot directory lists.
    pub(super) fn tree(&self) -> Option<BlobId> {
        match self {
            Entry::Snapshot { tree, .. } => Some(*tree),
            Entry::Node(node) => match &node.kind {
                NodeKind::Dir { subtree } => Some(*subtree),
                _ => None,
            },
            _ => None,
        }
    }

    /// How messages name it.
    pub(super) fn describe(&self) -> String {
        match self {
            Entry::Virtual(_) => "a directory of the layout".into(),
            Entry::Latest { target, .. } => format!("the link to {target}"),
            Entry::Snapshot { id, .. } => format!("snapshot {}", id.short()),
            Entry::Node(node) => format!(
                "{} ({})",
                String::from_utf8_lossy(&node.name),
                node.kind.name()
            ),
        }
    }
}
