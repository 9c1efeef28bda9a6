//! `strata snapshots`

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use strata_engine::Operation;
use strata_format::snapshot::{SnapshotFile, SnapshotSummary};

use crate::output::{bytes, json, time};
use crate::{exit, open, Cli};

/// List the snapshots in the repository, oldest first.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only snapshots of this host, project or tag.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// The `--json` form of a snapshot (a documented contract; add fields, never rename).
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    id: String,
    short_id: String,
    time: String,
    host: &'a str,
    user: &'a str,
    paths: &'a [String],
    tags: &'a [String],
    tree: String,
    parent: Option<String>,
    project: Option<&'a str>,
    /// End of the retention hold, if any.
    keep_until: Option<String>,
    /// The id the backup first wrote, if the snapshot was rewritten (hold, repair).
    original: Option<String>,
    summary: &'a SnapshotSummary,
    /// "files", "stdin", "postgres", "mysql" or "sqlite".
    source: &'static str,
    /// What the source recorded (database, server_version, rows:<table>, …).
    source_meta: std::collections::BTreeMap<&'a str, &'a str>,
}

impl<'a> SnapshotJson<'a> {
    pub fn new(id: &strata_format::id::SnapshotId, s: &'a SnapshotFile) -> Self {
        SnapshotJson {
            id: id.to_hex(),
            short_id: id.short(),
            time: time(s.time_ns),
            host: &s.hostname,
            user: &s.username,
            paths: &s.paths,
            tags: &s.tags,
            tree: s.tree.to_hex(),
            parent: s.parent.map(|p| p.to_hex()),
            project: s.project.as_deref(),
            keep_until: s.keep_until_ns.map(time),
            original: s.original.map(|o| o.to_hex()),
            summary: &s.summary,
            source: strata_db::kind_name(&s.source),
            source_meta: s
                .source_meta
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        }
    }
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _) = open::open(cli, Operation::Snapshots)?;
    let filter = args.filter.engine();
    let mut list = strata_engine::snapshots::list(&repo)?;
    list.retain(|(_, s)| filter.matches(s));
    if args.json {
        let items: Vec<_> = list
            .iter()
            .map(|(id, s)| SnapshotJson::new(id, s))
            .collect();
        json(&items)?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8}  {:<20}  {:<16}  {:<12}  {:>10}  paths",
        "id", "time", "host", "tags", "added"
    )?;
    for (id, s) in &list {
        writeln!(
            out,
            "{:<8}  {:<20}  {:<16}  {:<12}  {:>10}  {}",
            id.short(),
            time(s.time_ns),
            s.hostname,
            s.tags.join(","),
            bytes(s.summary.bytes_added),
            s.paths.join(" ")
        )?;
    }
    writeln!(out, "{} snapshots", list.len())?;
    Ok(exit::OK)
}
