//! `strata rewrite`

use std::path::PathBuf;

use anyhow::Result;
use strata_engine::rewrite::{self, RewriteOptions};
use strata_engine::{snapshots, Operation};

use crate::output::json;
use crate::{exit, open, values, Cli};

/// Remove paths from existing snapshots (a leaked secret, data that must be erased).
///
/// Every snapshot named (ids, prefixes, `latest`), or every snapshot the filters match when
/// none is named (all of them without filters), is written anew without the entries that
/// match the patterns (a matching directory goes with everything below it). The new
/// snapshot keeps the time, host, paths, tags, project and hold, and records the rewrite
/// (the id it had when its backup wrote it, and the rewrite itself with its patterns and
/// what was removed: see `cat snapshot`). The old snapshot is then forgotten unless
/// --keep-old. Snapshots in which nothing matches are left as they are. Held snapshots are
/// refused (nothing is written) unless --force-held. The removed data stays in the
/// repository until the next `prune`.
///
/// With --json: [{"id", "new_id", "removed": [paths], "old_deleted"}] (new_id null when
/// the snapshot is unchanged or with --dry-run).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots to rewrite (ids, prefixes or `latest`); none: all the filters match.
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Remove entries matching GLOB (repeatable), as backup's --exclude: without `/` it
    /// matches base names at any depth (`*.log`); with `/` the whole absolute path
    /// (`/srv/app/.env`, `/home/ann/**`).
    #[arg(long = "exclude", value_name = "GLOB", value_parser = values::glob)]
    excludes: Vec<String>,
    /// Read patterns from FILE, one per line (blank lines and lines starting with `#`
    /// are skipped); repeatable.
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Keep the old snapshots beside the rewritten ones.
    #[arg(long)]
    keep_old: bool,
    /// Only show what would be removed; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Rewrite held snapshots too (the rewritten copies keep the hold).
    #[arg(long)]
    force_held: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let mut excludes = args.excludes.clone();
    for f in &args.exclude_files {
        excludes.extend(super::backup::exclude_file(f)?);
    }
    if excludes.is_empty() {
        crate::usage_error("say which paths to remove: --exclude GLOB or --exclude-file FILE");
    }
    let opts = RewriteOptions {
        excludes,
        keep_old: args.keep_old,
        dry_run: args.dry_run,
        force_held: args.force_held,
    };
    let filter = args.filter.for_specs(&args.snapshots);
    let (repo, _lock) = open::open(cli, Operation::Rewrite)?;
    let found = snapshots::select(&repo, &args.snapshots, &filter)?;
    let done = rewrite::rewrite(&repo, &found, &opts)?;
    if args.json {
        json(&done)?;
        return Ok(exit::OK);
    }
    if cli.quiet {
        return Ok(exit::OK);
    }
    let would = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for r in &done {
        if !r.changed() {
            println!("snapshot {}: unchanged (nothing matches)", r.id.short());
            continue;
        }
        match r.new_id {
            Some(new) if r.old_deleted => {
                println!(
                    "snapshot {} rewritten as {} (old one forgotten)",
                    r.id.short(),
                    new.short()
                )
            }
            Some(new) => println!(
                "snapshot {} rewritten as {} (old one kept)",
                r.id.short(),
                new.short()
            ),
            None => println!("snapshot {}:", r.id.short()),
        }
        for p in &r.removed {
            println!("  {would} {}", crate::output::printable(p.as_bytes()));
        }
    }
    let changed = done.iter().filter(|r| r.changed()).count();
    if args.dry_run {
        println!(
            "{changed} of {} snapshots would be rewritten (dry run: nothing written)",
            done.len()
        );
    } else {
        println!(
            "{changed} of {} snapshots rewritten; `strata prune` removes the data",
            done.len()
        );
    }
    Ok(exit::OK)
}
