//! `strata dump`

use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use strata_db::{dump_node, is_database};
use strata_engine::restorer;
use strata_engine::treewalk::{self, Found};
use strata_engine::{EngineError, Operation, Repository};
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind};

use crate::{exit, open, Cli};

/// Write one file of a snapshot, or a directory as a tar (or zip) archive, to standard output.
///
/// PATH is the absolute path in the snapshot (see `strata ls`); for a standard input backup
/// it is `/NAME`. A file's content is written as it is; a directory (`/` for the whole
/// snapshot) as a tar archive of it and everything below, as restic does: paths without
/// the leading `/`, with modes, owners, times and symlinks (sockets cannot be in a tar
/// and are left out with a warning). Every piece is checked against its content id. For
/// a database or standard input snapshot PATH may be left out: its one file (the plain
/// SQL dump) is written. With --archive zip a directory is written as a zip archive
/// instead: modes, times to the second and symlinks, no owners or devices.
#[derive(Debug, clap::Args)]
pub struct Args {
    snapshot: String,
    /// Which snapshot `latest` means: the newest of this host, project, tag or path.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Absolute path of the file in the snapshot (any bytes, not only UTF-8).
    path: Option<std::path::PathBuf>,
    /// The archive a directory is written as.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Archive::Tar)]
    archive: Archive,
}

/// How `dump` writes a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Archive {
    /// A tar archive (modes, owners, times to the nanosecond, symlinks, devices).
    Tar,
    /// A zip archive (modes, times to the second, symlinks; see `dump_zip`).
    Zip,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let filter = args.filter.for_specs(&[&args.snapshot]);
    let (repo, _lock) = open::open(cli, Operation::Dump)?;
    let (_, snap) = strata_engine::snapshots::find_in(&repo, &args.snapshot, &filter)?;
    let node = match &args.path {
        None if is_database(&snap)
            || matches!(
                snap.source,
                strata_format::snapshot::SourceKind::Stdin { .. }
            ) =>
        {
            dump_node(&repo, &snap)?
        }
        None => bail!("the snapshot holds files: name the file to dump (see `strata ls`)"),
        Some(path) => match treewalk::resolve(&repo, &snap.tree, path.as_os_str().as_bytes())? {
            Found::Root(tree) => return archive(&repo, args.archive, None, tree),
            Found::Node { node, path } if matches!(node.kind, NodeKind::Dir { .. }) => {
                return archive(&repo, args.archive, Some((path, node)), BlobId::default())
            }
            Found::Node { node, .. } => node,
        },
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    restorer::write_content(&repo, &node, &mut out)?;
    out.flush()?;
    Ok(exit::OK)
}

/// Writes an archive of the directory `dir` (its path and node), or of the whole snapshot
/// whose root tree is `root`, to standard output.
fn archive(
    repo: &Repository,
    kind: Archive,
    dir: Option<(Vec<u8>, Node)>,
    root: BlobId,
) -> Result<u8> {
    if std::io::stdout().is_terminal() {
        let name = match kind {
            Archive::Tar => "tar",
            Archive::Zip => "zip",
        };
        bail!("a {name} archive is not for a terminal: redirect the output (`> dir.{name}`)");
    }
    match kind {
        Archive::Tar => tar(repo, dir, root),
        Archive::Zip => super::dump_zip::write(repo, dir, root).map(|()| exit::OK),
    }
}

/// Writes a tar archive of the directory `dir` (its path and node), or of the whole
/// snapshot whose root tree is `root`, to standard output.
fn tar(repo: &Repository, dir: Option<(Vec<u8>, Node)>, root: BlobId) -> Result<u8> {
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut ar = tar::Builder::new(out);
    let (tree, prefix) = match &dir {
        Some((path, node)) => {
            append(repo, &mut ar, path, node)?;
            let NodeKind::Dir { subtree } = &node.kind else {
                unreachable!("a directory")
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
    ar.into_inner()?.flush()?;
    Ok(exit::OK)
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
    header.set_path("././@PaxHeader")?;
    header.set_mode(0o644);
    header.set_size(record.len() as u64);
    header.set_cksum();
    ar.append(&header, record.as_bytes())?;
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
        header.set_device_major(u32::try_from(major)?)?;
        header.set_device_minor(u32::try_from(minor)?)?;
        Ok(())
    };
    match &node.kind {
        NodeKind::File { .. } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(node.size);
            // The header (and a long name's extra entry), then the content and the padding
            // to a whole block.
            ar.append_data(&mut header, name, std::io::empty())?;
            let out = ar.get_mut();
            let written = restorer::write_content(repo, node, out)?;
            if written != node.size {
                bail!(
                    "{}: the snapshot says {} bytes, its content has {written}: the archive is \
                     broken from here",
                    String::from_utf8_lossy(path),
                    node.size
                );
            }
            let pad = (512 - node.size % 512) % 512;
            out.write_all(&vec![0u8; pad as usize])?;
            return Ok(());
        }
        NodeKind::Dir { .. } => header.set_entry_type(tar::EntryType::Directory),
        NodeKind::Symlink { target } => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = std::path::Path::new(std::ffi::OsStr::from_bytes(target));
            ar.append_link(&mut header, name, target)?;
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
    ar.append_data(&mut header, name, std::io::empty())?;
    Ok(())
}
