//! `strata stats`

use anyhow::Result;
use serde::Serialize;
use strata_engine::browse::{self, SnapshotStats};
use strata_engine::snapshots;
use strata_engine::Operation;

use crate::output::{bytes, json, rfc3339, time};
use crate::{exit, open, Cli};

mod project;

/// Show what snapshots hold and what they cost: files, directories, the size a restore
/// writes, and the distinct data blobs they reference (before compression and as stored).
/// With several snapshots (default: all), a total line counts shared blobs once, so it
/// shows what deduplication saves.
///
/// With --project and no repository (-r), reads the audit catalog instead: per run of the
/// project its logical size (bytes read), bytes added, stored bytes, dedup ratio and
/// duration, and each source's growth per day.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Snapshots (`latest`, ids or prefixes); default: every snapshot.
    snapshots: Vec<String>,
    /// Only snapshots of this host, project, tag or path (`latest`: the newest of them).
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Print JSON: one object per snapshot and a total.
    #[arg(long)]
    json: bool,
    /// With --project and no repository: read the catalog of this state directory
    /// (default: the config's `state-dir`).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// With --project and no repository: only runs since this long ago (`30d`) or since
    /// this time.
    #[arg(long, value_name = "SPAN|TIME")]
    since: Option<String>,
}

#[derive(Serialize)]
struct StatsJson<'a> {
    snapshots: Vec<OneJson<'a>>,
    total: &'a SnapshotStats,
}

#[derive(Serialize)]
struct OneJson<'a> {
    id: String,
    time: String,
    #[serde(flatten)]
    stats: &'a SnapshotStats,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    if let (Some(project), None, true) =
        (&args.filter.project, &cli.repo, args.snapshots.is_empty())
    {
        return project::run(
            cli,
            project,
            args.state_dir.as_deref(),
            args.since.as_deref(),
            args.json,
        );
    }
    if args.state_dir.is_some() || args.since.is_some() {
        crate::usage_error("--state-dir and --since go with --project and no repository (the catalog's statistics)");
    }
    let filter = args.filter.for_specs(&args.snapshots);
    let (repo, _lock) = open::open(cli, Operation::Stats)?;
    let list = snapshots::select(&repo, &args.snapshots, &filter)?;
    let (each, total) = browse::stats(&repo, &list)?;
    let code = if total.missing_blobs > 0 {
        eprintln!(
            "strata: {} data blobs these snapshots reference are missing from the index \
             (see `strata check`)",
            total.missing_blobs
        );
        exit::FATAL
    } else {
        exit::OK
    };
    if args.json {
        json(&StatsJson {
            snapshots: list
                .iter()
                .zip(&each)
                .map(|((id, s), st)| OneJson {
                    id: id.to_hex(),
                    time: rfc3339(s.time_ns),
                    stats: st,
                })
                .collect(),
            total: &total,
        })?;
        return Ok(code);
    }
    println!(
        "{:<8}  {:<20}  {:>9}  {:>7}  {:>11}  {:>8}  {:>11}  {:>11}",
        "id", "time", "files", "dirs", "restore", "blobs", "raw data", "stored"
    );
    let line = |id: &str, t: &str, s: &SnapshotStats| {
        println!(
            "{:<8}  {:<20}  {:>9}  {:>7}  {:>11}  {:>8}  {:>11}  {:>11}",
            id,
            t,
            s.files,
            s.dirs,
            bytes(s.restore_size),
            s.blobs,
            bytes(s.blob_raw_bytes),
            bytes(s.blob_stored_bytes)
        )
    };
    for ((id, s), st) in list.iter().zip(&each) {
        line(&id.short(), &time(s.time_ns), st);
    }
    if list.len() > 1 {
        line("total", "", &total);
    }
    Ok(code)
}
