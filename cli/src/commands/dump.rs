//! `strata dump`

use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use strata_db::{dump_node, is_database};
use strata_engine::restorer;
use strata_engine::treewalk::{self, Found};
use strata_engine::{Operation, Repository};
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
/// snapshot whose root tree is `root`, to standard output (see `strata_app::export`).
fn tar(repo: &Repository, dir: Option<(Vec<u8>, Node)>, root: BlobId) -> Result<u8> {
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    strata_app::export::tar(repo, dir, root, out)?.flush()?;
    Ok(exit::OK)
}
