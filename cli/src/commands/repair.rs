//! `strata repair index|snapshots|config`

use anyhow::Result;
use strata_engine::repair;

use crate::output::json;
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

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Rebuild the index from the packs in storage.
    ///
    /// Reads the sealed header of every pack and writes a new index naming exactly what
    /// is there, then deletes the old index files. A pack whose header is unreadable is
    /// scanned blob by blob. With --read-data every pack is read whole and every blob
    /// verified; the intact blobs of a damaged pack are copied into new packs and the
    /// damaged pack is deleted (after the new index is durable). Blobs that were lost are
    /// then missing from the index: run `repair snapshots` next.
    Index {
        /// Read and verify every byte of every pack (finds and salvages damaged packs).
        #[arg(long)]
        read_data: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite snapshots that need lost data, dropping only the damaged files.
    ///
    /// A file whose content blobs are not in the index (or whose pack is missing) is
    /// dropped, as is a directory whose tree is lost; everything else stays. The new
    /// snapshot records what was dropped and the id it replaces (`cat snapshot`). A
    /// snapshot whose root tree is lost cannot be repaired: it is reported, and removed
    /// with --forget.
    Snapshots {
        /// Only report what would be dropped.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Remove snapshots that cannot be repaired (their root tree is lost).
        #[arg(long)]
        forget: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    Config(super::repair_config::Args),
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    match &args.what {
        What::Config(a) => super::repair_config::run(cli, a),
        What::Index { read_data, json: j } => {
            // The index may be what is broken: it is not loaded.
            let (repo, _lock) = open::locked(
                cli,
                "repair index",
                open::Access::Exclusive,
                open::Index::None,
            )?;
            let bar = Bar::new("repair index", cli.quiet || *j);
            let r = repair::repair_index(&repo, *read_data, &bar)?;
            if *j {
                json(&r)?;
            } else {
                for p in &r.problems {
                    eprintln!("damaged: {p}");
                }
                if !cli.quiet {
                    println!(
                        "indexed {} blobs in {} packs ({} index files written, {} removed); \
                         {} damaged packs salvaged into {} new packs, {} blobs lost",
                        r.blobs_indexed,
                        r.packs - r.packs_salvaged + r.packs_written,
                        r.index_files_written,
                        r.index_files_removed,
                        r.packs_salvaged,
                        r.packs_written,
                        r.blobs_lost
                    );
                    if r.packs_salvaged > 0 {
                        println!(
                            "run `strata repair snapshots` to drop the files whose data was lost"
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
        What::Snapshots {
            dry_run,
            forget,
            json: j,
        } => {
            let (repo, _lock) = open::locked(
                cli,
                "repair snapshots",
                open::Access::Exclusive,
                open::Index::Full,
            )?;
            let bar = Bar::new("repair snapshots", cli.quiet || *j);
            let done = repair::repair_snapshots(&repo, *dry_run, *forget, &bar)?;
            let unrepaired = done.iter().any(|r| r.unrepairable.is_some() && !r.removed);
            if *j {
                json(&done)?;
            } else {
                for r in &done {
                    let short = &r.id[..8];
                    match (&r.new_id, &r.unrepairable) {
                        (_, Some(why)) if r.removed => {
                            println!("snapshot {short}: removed, cannot be repaired ({why})")
                        }
                        (_, Some(why)) => println!(
                            "snapshot {short}: cannot be repaired ({why}); `repair snapshots --forget` removes it"
                        ),
                        (Some(new), None) => println!(
                            "snapshot {short}: rewritten as {}, dropping {} entries",
                            &new[..8],
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
    }
}
