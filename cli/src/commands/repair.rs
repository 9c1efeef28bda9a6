//! `strata repair index|snapshots|config`

use anyhow::Result;
use serde::Serialize;
use strata_engine::repair;
use strata_engine::report::{messages, Finding};
use strata_engine::Operation;
use strata_format::id::SnapshotId;

use crate::output::{bytes, json};
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Repair a damaged repository (exclusive lock).
///
/// The usual order after `check` reports damage: `repair index` (with --read-data when
/// `check --read-data` found damaged packs), then `repair snapshots`, then `check` again.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Args)]
struct IndexArgs {
    /// Read and verify every byte of every pack (finds and salvages damaged packs).
    #[arg(long)]
    read_data: bool,
    /// Delete these packs if this run finds them unreadable (ids, or their first 8 or
    /// more hex digits). A pack that is readable after all is not deleted: the repair
    /// then stops before changing anything.
    #[arg(long, value_name = "PACK", num_args = 1..)]
    delete_unreadable: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Rebuild the index from the packs in storage.
    ///
    /// Reads the sealed header of every pack and writes a new index naming exactly what
    /// is there, then deletes the old index files. A pack whose header is unreadable is
    /// scanned blob by blob. With --read-data every pack is read (a piece at a time) and
    /// every blob verified; the intact blobs of a damaged pack are copied into new packs
    /// and the damaged pack is deleted (after the new index is durable). Blobs that were
    /// lost are then missing from the index: run `repair snapshots` next.
    ///
    /// A pack in which nothing can be read with this repository's key (neither its header
    /// nor any blob) is never deleted as damaged: it more likely belongs to another
    /// repository, or to this one before its key was replaced. It is reported as
    /// unreadable, left in place and out of the index (exit code 1), and deleted only when
    /// named with --delete-unreadable.
    ///
    /// With --json: {"packs", "packs_indexed", "blobs_indexed", "packs_salvaged",
    /// "blobs_lost", "packs_written", "index_files_written", "index_files_removed",
    /// "problems": [one line per damaged pack], "unreadable_packs": [{"id", "size",
    /// "problem", "deleted"}], "findings": [the problems as objects {"kind"
    /// ("damaged_pack", "damaged_pack_header" or "foreign_index"), "object" ({"pack":
    /// {"id"}} or {"index": {"id"}}), "snapshot" (null), "path" (null), "message" (the
    /// line in problems)}]}.
    Index(IndexArgs),
    /// Rewrite snapshots that need lost data, dropping only the damaged files.
    ///
    /// A file whose content blobs are not in the index (or whose pack is missing) is
    /// dropped, as is a directory whose tree is lost; everything else stays. The new
    /// snapshot records what was dropped and the id it replaces (`cat snapshot`). A
    /// snapshot whose root tree is lost cannot be repaired: it is reported, and removed
    /// with --forget.
    ///
    /// With --json: one object per snapshot that needs repair: {"id", "new_id" (null when
    /// not rewritten), "dropped": ["path: reason", …], "unrepairable" (the reason, or
    /// null), "removed", "dropped_findings": [the dropped entries as objects {"kind" (e.g.
    /// "missing_blob", "blob_in_damaged_pack", "unreadable_tree"), "object" ({"blob":
    /// {"blob_type", "id"}}), "snapshot", "path", "message" (the line in dropped)}],
    /// "unrepairable_finding" (the same for unrepairable, or null)}.
    Snapshots(SnapshotsArgs),
    Config(super::repair_config::Args),
}

#[derive(Debug, clap::Args)]
struct SnapshotsArgs {
    /// Only report what would be dropped.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Remove snapshots that cannot be repaired (their root tree is lost).
    #[arg(long)]
    forget: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The JSON report of `repair index`.
#[derive(Serialize)]
struct IndexReport<'a> {
    packs: u64,
    packs_indexed: u64,
    blobs_indexed: u64,
    packs_salvaged: u64,
    blobs_lost: u64,
    packs_written: u64,
    index_files_written: u64,
    index_files_removed: u64,
    problems: Vec<String>,
    unreadable_packs: &'a [repair::UnreadablePack],
    findings: &'a [Finding],
}

/// The JSON report of `repair snapshots`, for one snapshot.
#[derive(Serialize)]
struct SnapshotReport<'a> {
    id: SnapshotId,
    new_id: Option<SnapshotId>,
    dropped: Vec<String>,
    unrepairable: Option<&'a str>,
    removed: bool,
    dropped_findings: &'a [Finding],
    unrepairable_finding: Option<&'a Finding>,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    match &args.what {
        What::Index(a) => index(cli, a),
        What::Snapshots(a) => snapshots(cli, a),
        What::Config(a) => super::repair_config::run(cli, a),
    }
}

fn index(cli: &Cli, args: &IndexArgs) -> Result<u8> {
    // The index may be what is broken: it is not loaded.
    let (repo, _lock) = open::open(cli, Operation::RepairIndex)?;
    let bar = Bar::new("repair index", cli.quiet || args.json);
    let opts = repair::IndexRepairOptions {
        read_data: args.read_data,
        delete_unreadable: args.delete_unreadable.clone(),
    };
    let r = repair::repair_index(&repo, &opts, &bar)?;
    let kept: Vec<&repair::UnreadablePack> =
        r.unreadable_packs.iter().filter(|u| !u.deleted).collect();
    if args.json {
        json(&IndexReport {
            packs: r.packs,
            packs_indexed: r.packs_indexed,
            blobs_indexed: r.blobs_indexed,
            packs_salvaged: r.packs_salvaged,
            blobs_lost: r.blobs_lost,
            packs_written: r.packs_written,
            index_files_written: r.index_files_written,
            index_files_removed: r.index_files_removed,
            problems: messages(&r.problems),
            unreadable_packs: &r.unreadable_packs,
            findings: &r.problems,
        })?;
    } else {
        for p in &r.problems {
            eprintln!("damaged: {p}");
        }
        for u in &r.unreadable_packs {
            let done = if u.deleted {
                "deleted as asked"
            } else {
                "kept, not indexed"
            };
            eprintln!(
                "unreadable: pack {} ({}): {}; {done}",
                u.id,
                bytes(u.size),
                u.problem
            );
        }
        if !cli.quiet {
            println!(
                "indexed {} blobs in {} packs ({} index files written, {} removed); \
                 {} damaged packs salvaged into {} new packs, {} blobs lost",
                r.blobs_indexed,
                r.packs_indexed,
                r.index_files_written,
                r.index_files_removed,
                r.packs_salvaged,
                r.packs_written,
                r.blobs_lost
            );
            if r.packs_salvaged > 0 {
                println!("run `strata repair snapshots` to drop the files whose data was lost");
            }
        }
        if !kept.is_empty() {
            let ids: Vec<String> = kept.iter().map(|u| u.id.to_hex()).collect();
            eprintln!(
                "{} packs ({}) were kept out of the index: nothing in them (header or \
                 blob) can be read with this repository's key. They may belong to another \
                 repository, or to this one before its config and key were replaced (see \
                 `strata repair config`). They were not deleted. If they are not needed: \
                 `strata repair index --delete-unreadable {}`",
                kept.len(),
                bytes(kept.iter().map(|u| u.size).sum()),
                ids.join(" ")
            );
        }
    }
    Ok(if kept.is_empty() {
        exit::OK
    } else {
        exit::FATAL
    })
}

fn snapshots(cli: &Cli, args: &SnapshotsArgs) -> Result<u8> {
    let (repo, _lock) = open::open(cli, Operation::RepairSnapshots)?;
    let bar = Bar::new("repair snapshots", cli.quiet || args.json);
    let done = repair::repair_snapshots(&repo, args.dry_run, args.forget, &bar)?;
    let unrepaired = done.iter().any(|r| r.unrepairable.is_some() && !r.removed);
    if args.json {
        let reports: Vec<SnapshotReport> = done
            .iter()
            .map(|r| SnapshotReport {
                id: r.id,
                new_id: r.new_id,
                dropped: messages(&r.dropped),
                unrepairable: r.unrepairable.as_ref().map(|f| f.message.as_str()),
                removed: r.removed,
                dropped_findings: &r.dropped,
                unrepairable_finding: r.unrepairable.as_ref(),
            })
            .collect();
        json(&reports)?;
    } else {
        for r in &done {
            let short = r.id.short();
            match (&r.new_id, &r.unrepairable) {
                (_, Some(why)) if r.removed => {
                    println!("snapshot {short}: removed, cannot be repaired ({why})")
                }
                (_, Some(why)) => println!(
                    "snapshot {short}: cannot be repaired ({why}); `repair snapshots --forget` removes it"
                ),
                (Some(new), None) => println!(
                    "snapshot {short}: rewritten as {}, dropping {} entries",
                    new.short(),
                    r.dropped.len()
                ),
                (None, None) => println!(
                    "snapshot {short}: would drop {} entries",
                    r.dropped.len()
                ),
            }
            for d in &r.dropped {
                println!("  dropped {d}");
            }
        }
        if done.is_empty() && !cli.quiet {
            println!("every snapshot is intact");
        }
    }
    Ok(if unrepaired { exit::FATAL } else { exit::OK })
}
