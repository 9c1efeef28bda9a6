//! `strata check`

use anyhow::Result;
use serde::Serialize;
use strata_engine::{checker, lock};

use crate::output::json;
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Check the repository's structure (and with --read-data, every byte of it).
///
/// Verifies that every index and snapshot decodes, every pack an index names exists with
/// the recorded size, every tree of every snapshot decodes, and every blob a snapshot needs
/// is indexed. With --read-data, every pack is also read whole and verified: its bytes hash
/// to its name, its header agrees with the index, and every blob decrypts and hashes to its
/// id. Damage is reported with the snapshot and path it affects; the exit code is 1 when
/// anything is damaged.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also read and verify the content of every pack (reads the whole repository).
    #[arg(long)]
    read_data: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    errors: &'a [String],
    warnings: &'a [String],
    snapshots: u64,
    trees: u64,
    packs: u64,
    blobs: u64,
    bytes_read: u64,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let backend = open::backend(cli)?;
    let pw = open::password(cli, false)?;
    let repo = strata_engine::Repository::open_without_index(backend, &pw)?;
    let _lock = lock::lock(&repo, "check", false)?;
    let bar = Bar::new("check", cli.quiet || args.json);
    let opts = checker::CheckOptions {
        read_data: args.read_data,
    };
    let r = checker::check_with(&repo, &opts, &bar)?;
    if args.json {
        json(&Report {
            ok: r.is_ok(),
            errors: &r.errors,
            warnings: &r.warnings,
            snapshots: r.snapshots,
            trees: r.trees,
            packs: r.packs,
            blobs: r.blobs,
            bytes_read: r.bytes_read,
        })?;
    } else {
        for w in &r.warnings {
            eprintln!("warning: {w}");
        }
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if !cli.quiet {
            let read = if args.read_data {
                format!(" ({} MiB of pack data read)", r.bytes_read >> 20)
            } else {
                String::new()
            };
            println!(
                "checked {} snapshots, {} trees, {} packs, {} blobs{read}: {}",
                r.snapshots,
                r.trees,
                r.packs,
                r.blobs,
                if r.is_ok() { "no errors" } else { "DAMAGED" }
            );
        }
    }
    if r.is_ok() {
        Ok(exit::OK)
    } else {
        if !args.json {
            eprintln!("strata: the repository has {} errors", r.errors.len());
        }
        Ok(exit::FATAL)
    }
}
