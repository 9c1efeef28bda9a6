//! Entries' attributes as the kernel wants them: file types, times, device numbers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType};
use strata_engine::vfs::Entry;
use strata_format::tree::{Node, NodeKind};

/// The type of an entry of the vfs.
pub(super) fn file_type(entry: &Entry) -> FileType {
    match entry {
        Entry::Virtual(_) | Entry::Snapshot { .. } => FileType::Directory,
        Entry::Latest { .. } => FileType::Symlink,
        Entry::Node(node) => node_type(&node.kind),
    }
}

fn node_type(kind: &NodeKind) -> FileType {
    match kind {
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice { .. } => FileType::CharDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

/// A time in Unix nanoseconds as fuser wants it. fuser 0.16 turns a time before the epoch
/// into `(-s, n)` where `s.n` seconds is its distance from the epoch, and the kernel reads
/// that as `-s + n/1e9`; so for a time before the epoch we hand over the one whose distance
/// has exactly the wanted (floored) seconds and nanoseconds.
pub fn fuse_time(ns: i64) -> SystemTime {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::new(secs.unsigned_abs(), nanos)
    }
}

/// A device number in the kernel's FUSE encoding (`new_encode_dev`).
fn fuse_rdev(rdev: u64) -> u32 {
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as u32
}

/// A virtual directory: 0555, root's, at `time_ns`.
pub(super) fn dir_attr(ino: u64, time_ns: i64, nlink: u32) -> FileAttr {
    let t = fuse_time(time_ns);
    FileAttr {
        ino,
        size: 0,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: FileType::Directory,
        perm: 0o555,
        nlink,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// The attributes of an entry other than a virtual directory (whose link count only the
/// inode table knows).
pub(super) fn entry_attr(ino: u64, entry: &Entry) -> FileAttr {
    match entry {
        Entry::Virtual(dir) => dir_attr(ino, dir.time_ns(), 2),
        Entry::Snapshot { time_ns, .. } => dir_attr(ino, *time_ns, 2),
        Entry::Latest { target, time_ns } => FileAttr {
            kind: FileType::Symlink,
            perm: 0o777,
            nlink: 1,
            size: target.len() as u64,
            ..dir_attr(ino, *time_ns, 1)
        },
        Entry::Node(node) => node_attr(ino, node),
    }
}

/// An entry's attributes as recorded.
fn node_attr(ino: u64, node: &Node) -> FileAttr {
    let size = match &node.kind {
        NodeKind::File { .. } => node.size,
        NodeKind::Symlink { target } => target.len() as u64,
        _ => 0,
    };
    let rdev = match node.kind {
        NodeKind::CharDevice { rdev } | NodeKind::BlockDevice { rdev } => fuse_rdev(rdev),
        _ => 0,
    };
    // The archiver does not record access times (0): shown as the modification time, as
    // a restore sets it.
    let atime = if node.atime_ns == 0 {
        node.mtime_ns
    } else {
        node.atime_ns
    };
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: fuse_time(atime),
        mtime: fuse_time(node.mtime_ns),
        ctime: fuse_time(node.ctime_ns),
        crtime: fuse_time(node.mtime_ns),
        kind: node_type(&node.kind),
        perm: (node.mode & 0o7777) as u16,
        nlink: node.links.clamp(1, u32::MAX.into()) as u32,
        uid: node.uid,
        gid: node.gid,
        rdev,
        blksize: 4096,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What fuser 0.16 hands the kernel for a time (its `time_from_system_time`).
    fn as_fuser_sends(t: SystemTime) -> (i64, u32) {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => (
                -(e.duration().as_secs() as i64),
                e.duration().subsec_nanos(),
            ),
        }
    }

    #[test]
    fn times_reach_the_kernel_as_recorded_also_before_1970() {
        for (ns, want) in [
            (0i64, (0i64, 0u32)),
            (1_500_000_000_123_456_789, (1_500_000_000, 123_456_789)),
            (-315_619_200 * 1_000_000_000 + 500, (-315_619_200, 500)),
            (-1, (-1, 999_999_999)),
            (-2_000_000_000, (-2, 0)),
            (4_102_444_800_999_999_999, (4_102_444_800, 999_999_999)),
        ] {
            assert_eq!(as_fuser_sends(fuse_time(ns)), want, "{ns}");
        }
    }

    #[test]
    fn device_numbers_use_the_kernel_encoding() {
        assert_eq!(fuse_rdev(nix::sys::stat::makedev(1, 3)), 0x103);
        assert_eq!(fuse_rdev(nix::sys::stat::makedev(7, 200)), 0x7c8);
        // Minor numbers above 255 go to the high bits.
        assert_eq!(fuse_rdev(nix::sys::stat::makedev(8, 0x1234)), 0x0120_0834);
    }
}
