//! Trees: one directory listing per tree blob. The blob plaintext is
//! `version (u16 LE) || postcard(Tree)`; entries are sorted by name (raw bytes) and unique.
//!
//! Decoding validates every name, so no consumer can be handed `..`, `/` or NUL: a hostile
//! or damaged tree is refused here, before any restore code sees it.

use serde::{Deserialize, Serialize};

use crate::envelope::{decode_postcard, encode_versioned, split_version};
use crate::id::BlobId;
use crate::FormatError;

/// Version of the tree encoding written by this program.
pub const TREE_VERSION: u16 = 1;
/// Longest accepted entry name (Linux NAME_MAX is 255; leave room for other systems).
pub const MAX_NAME_LEN: usize = 4096;
/// Deepest directory nesting readers follow. Linux paths are at most 4096 bytes, so no
/// restorable tree is deeper than 2048 levels; a deeper chain of trees is refused as
/// damaged rather than recursed into.
pub const MAX_TREE_DEPTH: usize = 2048;

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

/// One directory entry with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime_ns: i64,
    /// Access time; 0 when not recorded (the archiver's default), restored as the mtime.
    pub atime_ns: i64,
    pub ctime_ns: i64,
    /// Inode and device: change detection and hardlink groups.
    pub inode: u64,
    pub device: u64,
    /// Link count at backup; files with `links > 1` and equal (device, inode) are one file.
    pub links: u64,
    /// Content size for files, 0 otherwise.
    pub size: u64,
    pub xattrs: Vec<Xattr>,
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// What an entry is. New variants go at the end, with a new tree version (old readers
/// must refuse a tree they cannot fully read with an upgrade message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File {
        content: Vec<BlobId>,
    },
    Dir {
        subtree: BlobId,
    },
    Symlink {
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
    },
    Fifo,
    CharDevice {
        rdev: u64,
    },
    BlockDevice {
        rdev: u64,
    },
    Socket,
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::File { .. } => "file",
            NodeKind::Dir { .. } => "dir",
            NodeKind::Symlink { .. } => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::CharDevice { .. } => "chardev",
            NodeKind::BlockDevice { .. } => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

/// Whether `name` is safe as one path component: non-empty, not `.`/`..`, no `/` or NUL.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name != b"."
        && name != b".."
        && !name.iter().any(|&b| b == b'/' || b == 0)
}

impl Tree {
    /// Sorts entries by name; call before encoding.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// `version || postcard(self)`: the blob plaintext.
    pub fn encode(&self) -> Vec<u8> {
        encode_versioned(TREE_VERSION, self)
    }

    /// Decodes and validates a tree blob's plaintext.
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let (_, body) = split_version("tree", data, TREE_VERSION)?;
        let tree: Tree = decode_postcard("tree", body)?;
        tree.validate()?;
        Ok(tree)
    }

    /// Names valid, strictly ascending (so unique); symlink targets free of NUL.
    pub fn validate(&self) -> Result<(), FormatError> {
        let mut prev: Option<&[u8]> = None;
        for n in &self.nodes {
            if !valid_name(&n.name) {
                return Err(FormatError::malformed(
                    "tree",
                    format!("invalid entry name {:?}", String::from_utf8_lossy(&n.name)),
                ));
            }
            if let Some(p) = prev {
                if p >= n.name.as_slice() {
                    return Err(FormatError::malformed(
                        "tree",
                        "entries not sorted or not unique",
                    ));
                }
            }
            if let NodeKind::Symlink { target } = &n.kind {
                if target.contains(&0) {
                    return Err(FormatError::malformed(
                        "tree",
                        "symlink target contains NUL",
                    ));
                }
            }
            prev = Some(&n.name);
        }
        Ok(())
    }

    /// Finds an entry by name (entries are sorted).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::Fifo,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime_ns: 0,
            atime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            device: 0,
            links: 1,
            size: 0,
            xattrs: vec![],
        }
    }

    #[test]
    fn refuses_hostile_names() {
        for bad in [&b".."[..], b".", b"", b"a/b", b"a\0b", b"/"] {
            let t = Tree {
                nodes: vec![node(bad)],
            };
            assert!(Tree::decode(&t.encode()).is_err(), "{bad:?} accepted");
        }
        let unsorted = Tree {
            nodes: vec![node(b"b"), node(b"a")],
        };
        assert!(Tree::decode(&unsorted.encode()).is_err());
        let dup = Tree {
            nodes: vec![node(b"a"), node(b"a")],
        };
        assert!(Tree::decode(&dup.encode()).is_err());
        let mut ok = Tree {
            nodes: vec![node(b"b"), node(&[0xff, 0xfe]), node(b"a")],
        };
        ok.sort();
        assert_eq!(Tree::decode(&ok.encode()).unwrap(), ok);
        assert!(ok.get(&[0xff, 0xfe]).is_some());
    }
}
