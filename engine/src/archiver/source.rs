//! Reading the source without being fooled or stopped by it: pseudo file systems, and
//! files that change between the listing and the read.
//!
//! Pseudo file systems (proc, sysfs, cgroup, debugfs, ...) hold no stored data: the kernel
//! makes their files up when read, and some of them never end (`/proc/kcore`), block until
//! something happens (`/proc/kmsg`, `trace_pipe`) or consume what they return. A backup
//! skips them, recognised by the `f_type` that `statfs` reports (never by path: a container
//! or a chroot mounts them anywhere), at each mount point it meets; the mount point itself
//! is kept as an empty directory, as with `--one-file-system`. Asked to include them, it
//! reads their files without ever waiting (a read that would block fails and the file is
//! reported). devtmpfs reports tmpfs's `f_type` and cannot be told apart from a real
//! tmpfs; it holds device nodes, which are recorded, never read.
//!
//! A regular file is opened with `O_NOFOLLOW | O_NONBLOCK` (so that neither a symlink nor a
//! FIFO put in its place after the `lstat` is followed or waited on) and checked with
//! `fstat` to still be the file the `lstat` described (device, inode and type); a file
//! replaced in between is skipped and reported like an unreadable one.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Pseudo file systems by `statfs` `f_type` (the kernel's `linux/magic.h`), with the name
/// `mount` shows for them.
const PSEUDO: &[(u32, &str)] = &[
    (0x0000_9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x0000_1cd1, "devpts"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6165_676c, "pstore"),
    (0xcafe_4a11, "bpf"),
    (0x6265_6570, "configfs"),
    (0x6573_5543, "fusectl"),
    (0x1980_0202, "mqueue"),
    (0x4249_4e4d, "binfmt_misc"),
    (0xde5e_81e4, "efivarfs"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
    (0x5a3c_69f0, "apparmorfs"),
    (0x0000_0187, "autofs"),
    (0x6e73_6673, "nsfs"),
    (0x0765_5821, "resctrl"),
    (0x6759_6969, "rpc_pipefs"),
    (0x6e66_7364, "nfsd"),
    (0xabba_1974, "xenfs"),
    (0x6c6f_6f70, "binder"),
    (0x0000_9fa2, "usbdevfs"),
];

/// The name of the pseudo file system with this `f_type`, if it is one.
pub(crate) fn pseudo_fs_name(f_type: u32) -> Option<&'static str> {
    PSEUDO
        .iter()
        .find(|(magic, _)| *magic == f_type)
        .map(|(_, name)| *name)
}

/// The pseudo file system `path` (followed if a symlink) lies on, if any. A path `statfs`
/// cannot examine is taken for a real file system: reading it will say what is wrong.
pub(super) fn pseudo_fs_at(path: &Path) -> Option<&'static str> {
    match nix::sys::statfs::statfs(path) {
        // The magic numbers are 32 bits; `f_type`'s C type differs between platforms.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) => pseudo_fs_name(st.filesystem_type().0 as u32),
        Err(e) => {
            tracing::debug!("statfs {}: {e}", path.display());
            None
        }
    }
}

/// Opens the regular file that `listed` (its `lstat`) describes for reading, never
/// following a symlink or waiting on a FIFO; fails when what is at `path` now is not that
/// file. `nonblocking` keeps `O_NONBLOCK` for the reads (pseudo file systems), so that a
/// read that would wait fails instead.
pub(super) fn open_listed_file(
    path: &Path,
    listed: &Metadata,
    nonblocking: bool,
) -> std::io::Result<(File, Metadata)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                std::io::Error::other("replaced by a symbolic link after it was listed; skipped")
            }
            _ => e,
        })?;
    let now = f.metadata()?;
    if (now.dev(), now.ino()) != (listed.dev(), listed.ino())
        || now.mode() & libc::S_IFMT != listed.mode() & libc::S_IFMT
    {
        return Err(std::io::Error::other(format!(
            "replaced by {} after it was listed; skipped",
            describe(&now)
        )));
    }
    if !nonblocking {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = fcntl(f.as_raw_fd(), FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_truncate(flags) & !OFlag::O_NONBLOCK;
        fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
    }
    Ok((f, now))
}

/// Whether `e` says a listed file was replaced by another (see [`open_listed_file`]).
pub(super) fn is_replaced(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("replaced by another file")
}

/// What an entry is, for messages.
fn describe(md: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    if ft.is_file() {
        "another file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "something else"
    }
}

/// A read error of a source file in words a person can act on.
pub(super) fn read_error(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        std::io::Error::other("reading it would wait for more data; skipped (a backup never waits)")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_and_sysfs_are_pseudo_and_tmpfs_is_not() {
        assert_eq!(pseudo_fs_name(0x9fa0), Some("proc"));
        assert_eq!(pseudo_fs_name(0x6265_6572), Some("sysfs"));
        assert_eq!(pseudo_fs_name(0x0102_1994), None); // tmpfs
        assert_eq!(pseudo_fs_name(0xef53), None); // ext4
        if Path::new("/proc/self").exists() {
            assert_eq!(pseudo_fs_at(Path::new("/proc")), Some("proc"));
        }
    }

    #[test]
    fn a_fifo_in_place_of_a_listed_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let listed = std::fs::symlink_metadata(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_listed_file(&path, &listed, false).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
    }
}
