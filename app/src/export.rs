//! A directory of a snapshot as a tar archive, written to any `Write` as it is read: `strata
//! dump` writes it to standard output, `strata serve` gzips it into a download.
//!
//! As restic writes it: paths without the leading `/`, with modes, owners, times (to the
//! nanosecond, in a PAX header) and symlinks, devices and fifos; sockets cannot be in a
//! tar and are left out with a warning. A file's content is streamed from the repository
//! with every blob checked against its content id (nothing is held in memory).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use strata_engine::restorer;
use strata_engine::treewalk;
use strata_engine::{EngineError, Repository};
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind};

use crate::{AppError, Result};

/// Where a failed write of the archive is reported as having gone.
const ARCHIVE: &str = "the tar archive";

fn io(e: std::io::Error) -> AppError {
    AppError::Engine(EngineError::io(ARCHIVE, e))
}

/// Writes a tar archive of the directory `dir` (its absolute path in the snapshot and its
/// node), or of the whole snapshot whose root tree is `root` when `dir` is `None`, to
/// `out`; returns `out` (not flushed) after the archive's end.
pub fn tar<W: Write>(
    repo: &Repository,
    dir: Option<(Vec<u8>, Node)>,
    root: BlobId,
    out: W,
) -> Result<W> {
    let mut ar = tar::Builder::new(out);
    let (tree, prefix) = match &dir {
        Some((path, node)) => {
            append(repo, &mut ar, path, node)?;
            let NodeKind::Dir { subtree } = &node.kind else {
                return Err(AppError::Invalid(format!(
                    "{} is not a directory",
                    String::from_utf8_lossy(path)
                )));
            };
            (*subtree, path.clone())
        }
        None => (root, Vec::new()),
    };
    let mut failed = None;
    treewalk::walk(repo, &tree, &prefix, &mut |p, n| {
        if let Err(e) = append(repo, &mut ar, p, n) {
            failed = Some(e);
            return Err(EngineError::Invalid("writing the archive failed".into()));
        }
        Ok(true)
    })
    .map_err(|e| match failed.take() {
        Some(e) => e,
        None => e.into(),
    })?;
    ar.into_inner().map_err(io)
}

/// A PAX extended header with the entry's modification time to the nanosecond (a tar
/// header holds whole seconds), as GNU tar and restic write it; none for whole seconds.
fn pax_mtime(ar: &mut tar::Builder<impl Write>, mtime_ns: i64) -> Result<()> {
    if mtime_ns < 0 || mtime_ns % 1_000_000_000 == 0 {
        return Ok(());
    }
    let value = format!(
        "{}.{:09}",
        mtime_ns / 1_000_000_000,
        mtime_ns % 1_000_000_000
    );
    let body = format!(" mtime={value}\n");
    // A record starts with its own length in decimal, that length included.
    let mut len = body.len() + 1;
    while len != body.len() + len.to_string().len() {
        len = body.len() + len.to_string().len();
    }
    let record = format!("{len}{body}");
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_path("././@PaxHeader").map_err(io)?;
    header.set_mode(0o644);
    header.set_size(record.len() as u64);
    header.set_cksum();
    ar.append(&header, record.as_bytes()).map_err(io)?;
    Ok(())
}

/// One entry of the archive: its header, and a file's content streamed from the
/// repository (the size is known from the snapshot, so nothing is held in memory).
fn append(
    repo: &Repository,
    ar: &mut tar::Builder<impl Write>,
    path: &[u8],
    node: &Node,
) -> Result<()> {
    let name = std::path::Path::new(std::ffi::OsStr::from_bytes(
        path.strip_prefix(b"/").unwrap_or(path),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_mode(node.mode & 0o7777);
    header.set_uid(node.uid.into());
    header.set_gid(node.gid.into());
    header.set_mtime(u64::try_from(node.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0));
    if let Some(user) = &node.user {
        let _ = header.set_username(user);
    }
    if let Some(group) = &node.group {
        let _ = header.set_groupname(group);
    }
    pax_mtime(ar, node.mtime_ns)?;
    let device = |header: &mut tar::Header, rdev: u64| -> Result<()> {
        let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
        let too_large = |_| AppError::Invalid(format!("device {major}:{minor} cannot be in a tar"));
        header
            .set_device_major(u32::try_from(major).map_err(too_large)?)
            .map_err(io)?;
        header
            .set_device_minor(u32::try_from(minor).map_err(too_large)?)
            .map_err(io)?;
        Ok(())
    };
    match &node.kind {
        NodeKind::File { .. } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(node.size);
            // The header (and a long name's extra entry), then the content and the padding
            // to a whole block.
            ar.append_data(&mut header, name, std::io::empty())
                .map_err(io)?;
            let out = ar.get_mut();
            let written = restorer::write_content(repo, node, out)?;
            if written != node.size {
                return Err(AppError::Engine(EngineError::Corrupt(format!(
                    "{}: the snapshot says {} bytes, its content has {written}: the archive is \
                     broken from here",
                    String::from_utf8_lossy(path),
                    node.size
                ))));
            }
            let pad = (512 - node.size % 512) % 512;
            out.write_all(&vec![0u8; pad as usize]).map_err(io)?;
            return Ok(());
        }
        NodeKind::Dir { .. } => header.set_entry_type(tar::EntryType::Directory),
        NodeKind::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = std::path::Path::new(std::ffi::OsStr::from_bytes(target));
            ar.append_link(&mut header, name, target).map_err(io)?;
            return Ok(());
        }
        NodeKind::Fifo => header.set_entry_type(tar::EntryType::Fifo),
        NodeKind::CharDevice { rdev } => {
            header.set_entry_type(tar::EntryType::Char);
            device(&mut header, *rdev)?;
        }
        NodeKind::BlockDevice { rdev } => {
            header.set_entry_type(tar::EntryType::Block);
            device(&mut header, *rdev)?;
        }
        NodeKind::Socket => {
            tracing::warn!(
                "{}: a socket cannot be in a tar archive: left out",
                String::from_utf8_lossy(path)
            );
            return Ok(());
        }
    }
    header.set_size(0);
    ar.append_data(&mut header, name, std::io::empty())
        .map_err(io)?;
    Ok(())
}
