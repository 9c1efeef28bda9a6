//! File metadata: reading it from the filesystem into tree nodes, and applying it back.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use filetime::FileTime;
use strata_format::tree::{Node, NodeKind, Xattr};

/// Caches uid/gid → name lookups (the password database is slow to query per file).
#[derive(Default)]
pub(crate) struct NameCache {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl NameCache {
    fn user(&self, uid: u32) -> Option<String> {
        let mut m = self.users.lock().expect("no panics while locked");
        m.entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    fn group(&self, gid: u32) -> Option<String> {
        let mut m = self.groups.lock().expect("no panics while locked");
        m.entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }
}

fn ns(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// Builds a node from `lstat` metadata. `kind` carries content/subtree/target, filled in by
/// the caller; xattrs are read here (a filesystem without xattr support gives none).
pub(crate) fn node_from_metadata(
    name: Vec<u8>,
    path: &Path,
    md: &Metadata,
    kind: NodeKind,
    names: &NameCache,
) -> Node {
    let xattrs = read_xattrs(path);
    Node {
        name,
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        user: names.user(md.uid()),
        group: names.group(md.gid()),
        mtime_ns: ns(md.mtime(), md.mtime_nsec()),
        // Not recorded: reads by anyone change it, so recording it would make unchanged
        // trees differ from backup to backup (as borg, by default).
        atime_ns: 0,
        ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        inode: md.ino(),
        device: md.dev(),
        links: md.nlink(),
        size: if md.is_file() { md.size() } else { 0 },
        xattrs,
    }
}

/// The node kind for non-file, non-directory entries.
pub(crate) fn special_kind(path: &Path, md: &Metadata) -> std::io::Result<NodeKind> {
    let ft = md.file_type();
    Ok(if ft.is_symlink() {
        use std::os::unix::ffi::OsStrExt;
        NodeKind::Symlink {
            target: std::fs::read_link(path)?.as_os_str().as_bytes().to_vec(),
        }
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice { rdev: md.rdev() }
    } else if ft.is_block_device() {
        NodeKind::BlockDevice { rdev: md.rdev() }
    } else {
        NodeKind::Socket
    })
}

fn read_xattrs(path: &Path) -> Vec<Xattr> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|n| {
            let value = xattr::get(path, &n).ok().flatten()?;
            Some(Xattr {
                name: n.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Applies ownership, xattrs, mode and times to a restored entry, in that order: chown
/// clears setuid bits, and xattrs need write permission the final mode may not give.
/// Returns a description of what could not be applied, if anything.
pub(crate) fn apply_metadata(path: &Path, node: &Node, is_root: bool) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let mut problems = Vec::new();
    let is_symlink = matches!(node.kind, NodeKind::Symlink { .. });
    if is_root {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            problems.push(format!("chown: {e}"));
        }
    }
    // xattrs before chmod: writing them needs write permission the final mode may not give.
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        if let Err(e) = xattr::set(path, name, &x.value) {
            problems.push(format!("xattr {}: {e}", name.to_string_lossy()));
        }
    }
    if !is_symlink {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)) {
            problems.push(format!("chmod: {e}"));
        }
    }
    let (atime, mtime) = times(node);
    if let Err(e) = filetime::set_symlink_file_times(path, atime, mtime) {
        problems.push(format!("times: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Applies ownership, xattrs, mode and times to a restored regular file through its open
/// descriptor (same order and meaning as [`apply_metadata`], without path lookups).
pub(crate) fn apply_file_metadata(
    file: &std::fs::File,
    node: &Node,
    is_root: bool,
) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use xattr::FileExt;
    let mut problems = Vec::new();
    if is_root {
        if let Err(e) = std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid)) {
            problems.push(format!("chown: {e}"));
        }
    }
    for x in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&x.name);
        if let Err(e) = file.set_xattr(name, &x.value) {
            problems.push(format!("xattr {}: {e}", name.to_string_lossy()));
        }
    }
    if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(node.mode)) {
        problems.push(format!("chmod: {e}"));
    }
    let (atime, mtime) = times(node);
    if let Err(e) = filetime::set_file_handle_times(file, Some(atime), Some(mtime)) {
        problems.push(format!("times: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The access and modification times to restore (atime is mtime when not recorded).
fn times(node: &Node) -> (FileTime, FileTime) {
    let ft = |ns: i64| {
        FileTime::from_unix_time(
            ns.div_euclid(1_000_000_000),
            ns.rem_euclid(1_000_000_000) as u32,
        )
    };
    let mtime = ft(node.mtime_ns);
    let atime = if node.atime_ns == 0 {
        mtime
    } else {
        ft(node.atime_ns)
    };
    (atime, mtime)
}
