//! `strata dump`

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use strata_db::{dump_node, is_database};
use strata_engine::restorer;
use strata_engine::treewalk::{self, Found};
use strata_engine::Operation;

use crate::{exit, open, Cli};

/// Write the content of one file of a snapshot to standard output.
///
/// PATH is the file's absolute path in the snapshot (see `strata ls`); for a standard input
/// backup it is `/NAME`. For a database or standard input snapshot PATH may be left out:
/// its one file (the plain SQL dump) is written.
#[derive(Debug, clap::Args)]
pub struct Args {
    snapshot: String,
    /// Which snapshot `latest` means: the newest of this host, project or tag.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Absolute path of the file in the snapshot (any bytes, not only UTF-8).
    path: Option<std::path::PathBuf>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _lock) = open::open(cli, Operation::Dump)?;
    let (_, snap) =
        strata_engine::snapshots::find_in(&repo, &args.snapshot, &args.filter.engine())?;
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
            Found::Root(_) => bail!("{} is the snapshot root, not a file", path.display()),
            Found::Node { node, .. } => node,
        },
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    restorer::write_content(&repo, &node, &mut out)?;
    out.flush()?;
    Ok(exit::OK)
}
