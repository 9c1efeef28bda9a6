//! `strata find`

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use strata_engine::browse::{self, Entry, FindQuery};
use strata_engine::filter::Filter;
use strata_engine::snapshots;
use strata_engine::Operation;

use crate::output::{json, rfc3339, time};
use crate::{exit, open, values, Cli};

/// Find which snapshots hold a path: every matching entry, per snapshot, with its size and
/// modification time.
///
/// PATTERN is a glob as for `backup --exclude`: without `/` it matches base names at any
/// depth (`*.pdf`, `invoice-2025*`); with `/` the whole absolute path (`/srv/app/**/*.db`).
/// Only trees are read, never file content, and a directory unchanged between snapshots
/// is searched once. Finding nothing is not an error (exit code 0, an empty list).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to look for (repeatable: an entry matching any of them is listed).
    #[arg(required = true, value_parser = values::glob)]
    patterns: Vec<String>,
    /// Look only in this snapshot (repeatable; `latest`, an id or a prefix).
    #[arg(long = "snapshot", short = 's', value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Only entries modified at or after this time (local time, "2025-01-31" or
    /// "2025-01-31 03:00:00", or RFC 3339).
    #[arg(long, value_name = "DATE", value_parser = values::local_time)]
    newer: Option<i64>,
    /// Only entries modified before this time.
    #[arg(long, value_name = "DATE", value_parser = values::local_time)]
    older: Option<i64>,
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Print a JSON array: one object per snapshot with matches.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    snapshot: String,
    time: String,
    matches: Vec<MatchJson<'a>>,
}

#[derive(Serialize)]
struct MatchJson<'a> {
    #[serde(flatten)]
    entry: &'a Entry,
    mtime: String,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let query = FindQuery {
        filter: Filter::new(&args.patterns)?,
        newer_ns: args.newer,
        older_ns: args.older,
    };
    let filter = args.filter.for_specs(&args.snapshots);
    let (repo, _lock) = open::open(cli, Operation::Find)?;
    let list = snapshots::select(&repo, &args.snapshots, &filter)?;
    let results = browse::find(&repo, &list, &query)?;
    if args.json {
        let items: Vec<ResultJson> = results
            .iter()
            .map(|r| ResultJson {
                snapshot: r.snapshot.to_hex(),
                time: rfc3339(r.time_ns),
                matches: r
                    .matches
                    .iter()
                    .map(|e| MatchJson {
                        entry: e,
                        mtime: rfc3339(e.mtime_ns),
                    })
                    .collect(),
            })
            .collect();
        json(&items)?;
    } else {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for r in &results {
            writeln!(
                out,
                "snapshot {} of {}:",
                r.snapshot.short(),
                time(r.time_ns)
            )?;
            for e in &r.matches {
                writeln!(
                    out,
                    "  {:<8} {:>12}  {}  {}",
                    e.kind,
                    e.size,
                    time(e.mtime_ns),
                    crate::output::printable(&e.path_bytes)
                )?;
            }
        }
        if results.is_empty() && !cli.quiet {
            writeln!(out, "no matches in {} snapshots", list.len())?;
        }
        out.flush()?;
    }
    Ok(exit::OK)
}
