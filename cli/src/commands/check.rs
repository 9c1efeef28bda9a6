//! `strata check`

use anyhow::Result;
use serde::Serialize;
use strata_engine::checker;
use strata_engine::report::{messages, Finding};
use strata_engine::Operation;

use crate::output::{bytes, json};
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Check the repository's structure (and with --read-data, every byte of it).
///
/// Verifies that every index and snapshot decodes, every pack an index names exists with
/// the recorded size, every tree of every snapshot decodes, and every blob a snapshot needs
/// is indexed. With --read-data, every pack is also read whole and verified: its bytes hash
/// to its name, its header agrees with the index, and every blob decrypts and hashes to its
/// id. With --read-data-subset, only some packs are read that way. Damage is reported with
/// the snapshot and path it affects; the exit code is 1 when anything is damaged.
///
/// With --json, the report is one object: ok, errors, warnings, snapshots, trees, packs,
/// blobs, bytes_read and packs_read (packs whose content was read; 0 without --read-data or
/// --read-data-subset), and findings: the errors and warnings as objects {"severity"
/// ("error" or "warning"), "kind" (e.g. "missing_pack", "damaged_blob"), "object" (null,
/// or the stored object at fault: {"pack": {"id"}}, likewise "index", "snapshot" and
/// "key", or {"blob": {"blob_type", "id"}}), "snapshot" (id or null), "path" (in the
/// snapshot, or null), "message" (the line in errors or warnings)}.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also read and verify the content of every pack (reads the whole repository).
    #[arg(long)]
    read_data: bool,
    /// Read and verify the content of only some packs (implies --read-data; given with it,
    /// only the subset is read).
    ///
    /// N/M reads part N of M (1 <= N <= M), chosen by pack id: running 1/M, 2/M, ... M/M
    /// (say one a day) reads every pack exactly once, and a pack stays in its part as the
    /// repository grows. P% reads a random sample of P percent of the packs (0 < P <= 100,
    /// decimals allowed, rounded up to at least one pack), e.g. 10% or 2.5%.
    #[arg(long, value_name = "N/M|P%")]
    read_data_subset: Option<checker::Subset>,
    /// Print the report as JSON on stdout, and progress as JSON lines on stderr
    /// ("message_type": "status": packs_done and total_packs with --read-data).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    ok: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
    snapshots: u64,
    trees: u64,
    packs: u64,
    blobs: u64,
    bytes_read: u64,
    packs_read: u64,
    findings: Vec<Graded<'a>>,
}

/// A finding with its severity, for `findings` in the JSON report.
#[derive(Serialize)]
struct Graded<'a> {
    severity: &'static str,
    #[serde(flatten)]
    finding: &'a Finding,
}

fn graded<'a>(severity: &'static str, findings: &'a [Finding]) -> impl Iterator<Item = Graded<'a>> {
    findings
        .iter()
        .map(move |finding| Graded { severity, finding })
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (repo, _lock) = open::open(cli, Operation::Check)?;
    let opts = checker::CheckOptions {
        read_data: args.read_data,
        subset: args.read_data_subset,
    };
    // Reading data counts packs (their totals known up front); otherwise snapshots.
    let reads = opts.read_data || opts.subset.is_some();
    let bar = Bar::with_totals(
        if reads { "packs" } else { "snapshots" },
        cli.quiet,
        args.json,
    );
    let r = checker::check_with(&repo, &opts, &bar)?;
    if args.json {
        json(&Report {
            ok: r.is_ok(),
            errors: messages(&r.errors),
            warnings: messages(&r.warnings),
            snapshots: r.snapshots,
            trees: r.trees,
            packs: r.packs,
            blobs: r.blobs,
            bytes_read: r.bytes_read,
            packs_read: r.packs_read,
            findings: graded("error", &r.errors)
                .chain(graded("warning", &r.warnings))
                .collect(),
        })?;
    } else {
        for w in &r.warnings {
            eprintln!("warning: {w}");
        }
        for e in &r.errors {
            eprintln!("error: {e}");
        }
        if !cli.quiet {
            let read = if opts.read_data || opts.subset.is_some() {
                format!(
                    " (read {} of {} packs, {})",
                    r.packs_read,
                    r.packs,
                    bytes(r.bytes_read)
                )
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
