//! `strata list`

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use strata_engine::Operation;
use strata_storage::FileType;

use crate::output::json;
use crate::{exit, open, Cli};

/// What `list` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Snapshot files.
    Snapshots,
    /// Index files.
    Index,
    /// Pack files.
    Packs,
    /// Key files (one per password).
    Keys,
    /// Lock files.
    Locks,
    /// Every blob the index names, as `TYPE ID` (data or tree).
    Blobs,
}

/// List the ids of the repository's objects, one per line (as restic's `list`).
///
/// Objects are listed by their stored names, sorted, whether or not they can be read
/// (`check` tells which cannot). `blobs` prints `TYPE ID` for every blob the index names.
///
/// With --json: ["id", ...]; for blobs [{"type", "id"}, ...].
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to list.
    #[arg(value_enum)]
    kind: Kind,
    /// Print the ids as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Blob {
    #[serde(rename = "type")]
    blob_type: &'static str,
    id: String,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let file_type = match args.kind {
        Kind::Snapshots => FileType::Snapshot,
        Kind::Index => FileType::Index,
        Kind::Packs => FileType::Pack,
        Kind::Keys => FileType::Key,
        Kind::Locks => FileType::Lock,
        Kind::Blobs => return list_blobs(cli, args),
    };
    let (repo, _lock) = open::open(cli, Operation::List)?;
    let mut names: Vec<String> = repo
        .block_on(repo.backend().list(file_type))?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    names.sort();
    if args.json {
        return json(&names).map(|()| exit::OK);
    }
    let mut out = std::io::stdout().lock();
    for n in names {
        writeln!(out, "{n}")?;
    }
    Ok(exit::OK)
}

fn list_blobs(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _lock) = open::open(cli, Operation::ListBlobs)?;
    let mut blobs: Vec<Blob> = repo
        .index()
        .iter()
        .map(|(id, loc)| Blob {
            blob_type: loc.blob_type.name(),
            id: id.to_hex(),
        })
        .collect();
    blobs.sort_by(|a, b| (a.blob_type, &a.id).cmp(&(b.blob_type, &b.id)));
    if args.json {
        return json(&blobs).map(|()| exit::OK);
    }
    let mut out = std::io::stdout().lock();
    for b in blobs {
        writeln!(out, "{} {}", b.blob_type, b.id)?;
    }
    Ok(exit::OK)
}
