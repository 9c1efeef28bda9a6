//! `strata diff`

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use strata_engine::browse::{self, DiffStats, Difference};
use strata_engine::snapshots;
use strata_engine::Operation;

use crate::output::{bytes, json};
use crate::{exit, open, Cli};

/// Show what changed between two snapshots: entries added (+), removed (-), modified (M:
/// other content), of another type (T) and, with --metadata, whose metadata alone changed
/// (U: mode, owner, times, extended attributes), with totals of files and bytes.
///
/// Only trees are read; directories with the same content in both are skipped unopened.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The older snapshot.
    first: String,
    /// The newer snapshot.
    second: String,
    /// Which snapshot `latest` means: the newest of this host, project, tag or path.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Also list entries whose content is the same but whose metadata changed.
    #[arg(long)]
    metadata: bool,
    /// Print the changes and totals as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DiffJson<'a> {
    first: String,
    second: String,
    changes: &'a [Difference],
    stats: &'a DiffStats,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let filter = args.filter.for_specs(&[&args.first, &args.second]);
    let (repo, _lock) = open::open(cli, Operation::Diff)?;
    let (ida, a) = snapshots::find_in(&repo, &args.first, &filter)?;
    let (idb, b) = snapshots::find_in(&repo, &args.second, &filter)?;
    let (changes, stats) = browse::diff(&repo, &a, &b, args.metadata)?;
    if args.json {
        json(&DiffJson {
            first: ida.to_hex(),
            second: idb.to_hex(),
            changes: &changes,
            stats: &stats,
        })?;
        return Ok(exit::OK);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "comparing snapshot {} to {}:",
        ida.short(),
        idb.short()
    )?;
    for d in &changes {
        let slash = if d.entry.kind == "dir" { "/" } else { "" };
        writeln!(
            out,
            "{}    {}{slash}",
            d.change.marker(),
            crate::output::printable(&d.entry.path_bytes)
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "files:       {} new, {} removed, {} changed",
        stats.added_files, stats.removed_files, stats.modified_files
    )?;
    writeln!(
        out,
        "dirs:        {} new, {} removed",
        stats.added_dirs, stats.removed_dirs
    )?;
    if stats.type_changed > 0 || args.metadata {
        writeln!(
            out,
            "other:       {} changed type, {} metadata only",
            stats.type_changed, stats.metadata_changed
        )?;
    }
    let delta = stats.modified_bytes_delta;
    writeln!(
        out,
        "bytes:       {} added, {} removed, {}{} in changed files",
        bytes(stats.added_bytes),
        bytes(stats.removed_bytes),
        if delta < 0 { "-" } else { "+" },
        bytes(delta.unsigned_abs())
    )?;
    out.flush()?;
    Ok(exit::OK)
}
