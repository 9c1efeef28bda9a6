//! `strata stats`

use anyhow::Result;
use serde::Serialize;
use strata_engine::browse::{self, SnapshotStats};
use strata_engine::snapshots;
use strata_engine::Operation;

use crate::output::{bytes, json, rfc3339, time};
use crate::{exit, open, Cli};

/// Show what snapshots hold and what they cost: files, directories, the size a restore
/// writes, and the distinct data blobs they reference (before compression and as stored).
/// With several snapshots (default: all), a total line counts shared blobs once, so it
/// shows what deduplication saves.
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
