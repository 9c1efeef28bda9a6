//! `strata restore`

use std::path::PathBuf;

use anyhow::Result;
use strata_engine::restorer::{self, RestoreOptions};

use crate::output::bytes;
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Restore a snapshot into a directory.
///
/// Entries are recreated under TARGET at their absolute path in the snapshot, with their
/// content (verified against its ids), mode, owner (when run as root), times, extended
/// attributes, hard links, and holes in sparse files. Nothing is ever written outside
/// TARGET. SNAPSHOT is `latest`, a snapshot id, or a unique prefix of one.
#[derive(Debug, clap::Args)]
pub struct Args {
    snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(short, long)]
    target: PathBuf,
    /// Restore only entries matching GLOB and what they contain (repeatable).
    #[arg(long = "include", value_name = "GLOB")]
    includes: Vec<String>,
    /// Leave out entries matching GLOB and what they contain (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _lock) = open::locked(cli, "restore", false, open::Index::Full)?;
    let (id, snap) = strata_engine::snapshots::find(&repo, &args.snapshot)?;
    let opts = RestoreOptions {
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
    };
    let bar = Bar::new("restore", cli.quiet);
    let stats = restorer::restore(&repo, &snap, &args.target, &opts, &bar)?;
    if !cli.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} other, {}",
            id.short(),
            args.target.display(),
            stats.files,
            stats.dirs,
            stats.other,
            bytes(stats.bytes)
        );
    }
    if stats.errors.is_empty() {
        Ok(exit::OK)
    } else {
        for e in &stats.errors {
            eprintln!("error: {e}");
        }
        eprintln!(
            "strata: {} entries could not be restored",
            stats.errors.len()
        );
        Ok(exit::FATAL)
    }
}
