//! `strata prune`

use anyhow::Result;
use strata_engine::prune::{self, PruneOptions, PruneStats};
use strata_engine::Operation;
use strata_engine::Repository;

use crate::output::{bytes, json};
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Remove data that no snapshot needs, while backups keep running.
///
/// Prune takes a prune lock: one prune (or forget) at a time, beside any number of
/// backups, copies, checks and restores, from any number of hosts. It marks every blob the
/// snapshots and archived WAL need, then deletes in two phases (spec/prune.md): packs that
/// hold nothing needed, packs no index names (left by killed backups, or being written by
/// running ones) and packs it rewrites (more than --max-unused of them unneeded, or tiny)
/// are first *marked*; no new backup uses a marked pack. They are deleted once every
/// backup or other session that was running when they were marked has ended, and the
/// mark is at least --grace old: in the same run when no other session was running at
/// all, otherwise by a later prune. A marked pack that a snapshot needs again (written by
/// a backup that began before the mark) is kept. New packs and the new index are durable
/// before any index file or pack is deleted, so a crash at any moment loses nothing and
/// the next prune finishes the job. When no other session runs, it also removes the
/// temporary files of writes that were killed before they were renamed into place (local
/// and SFTP repositories) once nothing has written to them for an hour. Prune refuses to
/// run when any index file or snapshot is unreadable or a needed blob is missing: run
/// `check` and `repair` first.
///
/// With --json the summary fields are: snapshots, other_sessions (backups and other
/// sessions running when prune began), packs, pack_bytes, used_blobs, used_bytes,
/// unused_blobs, unused_bytes, keep_packs, revived_packs, repack_packs, repack_pack_bytes,
/// repack_blobs, repack_blob_bytes, unused_packs, unused_pack_bytes, unindexed_packs,
/// unindexed_pack_bytes, unreadable_packs (ids kept because they do not open with the
/// repository's key), waiting_packs and waiting_pack_bytes (marked earlier, not yet due),
/// due_packs and due_pack_bytes (marked earlier, deleted now), packs_marked and
/// marked_bytes (marked by this run), marked_deleted_now (whether those were deleted at
/// once), packs_written, bytes_written, index_files_written, packs_deleted, bytes_freed
/// (bytes deleted minus bytes written), temp_files_removed, and dry_run.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub opts: PruneArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

/// Options prune shares with `forget --prune`.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Rewrite a pack when more than this percentage of it is unneeded.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0,
          value_parser = parse_percent)]
    pub max_unused: f64,
    /// Only show what would be done.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Delete a marked pack only once its mark is at least this old (e.g. 1h, 1d), on top
    /// of waiting for the sessions that were running when it was marked. It protects what
    /// the sessions rule cannot see, for as long as it lasts: readers without a lock
    /// (--no-lock), a store that lists new objects late.
    #[arg(long, value_name = "DURATION", default_value = "0s",
          value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s} is not between 0 and 100"));
    }
    Ok(v)
}

#[derive(serde::Serialize)]
struct Json<'a> {
    #[serde(flatten)]
    stats: &'a PruneStats,
    dry_run: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let (mut repo, _lock) = open::open(cli, Operation::Prune)?;
    let stats = prune_locked(cli, &mut repo, &args.opts, args.json, Vec::new())?;
    if args.json {
        json(&Json {
            stats: &stats,
            dry_run: args.opts.dry_run,
        })?;
    }
    Ok(exit::OK)
}

/// Plans and (unless --dry-run) runs a prune on a repository opened under a prune
/// lock (the plan loads the index); prints the plan and the outcome unless `json` or --quiet.
pub fn prune_locked(
    cli: &Cli,
    repo: &mut Repository,
    args: &PruneArgs,
    json: bool,
    ignore_snapshots: Vec<strata_format::id::SnapshotId>,
) -> Result<PruneStats> {
    let opts = PruneOptions {
        max_unused_percent: args.max_unused,
        grace: args.grace,
        ignore_snapshots,
        ..PruneOptions::default()
    };
    let talk = !json && !cli.quiet;
    let bar = Bar::new("marking", cli.quiet || json);
    let plan = prune::plan(repo, &opts, &bar)?;
    let s = &plan.stats;
    if talk {
        println!(
            "{} snapshots need {} blobs ({}); {} blobs ({}) are unneeded",
            s.snapshots,
            s.used_blobs,
            bytes(s.used_bytes),
            s.unused_blobs,
            bytes(s.unused_bytes)
        );
        println!(
            "packs: {} in storage ({}): keep {}, repack {} ({}, copying {} blobs of {}), \
             mark {} unneeded ({}) and {} not in any index ({})",
            s.packs,
            bytes(s.pack_bytes),
            s.keep_packs,
            s.repack_packs,
            bytes(s.repack_pack_bytes),
            s.repack_blobs,
            bytes(s.repack_blob_bytes),
            s.unused_packs,
            bytes(s.unused_pack_bytes),
            s.unindexed_packs,
            bytes(s.unindexed_pack_bytes)
        );
        if s.due_packs + s.waiting_packs + s.revived_packs > 0 {
            println!(
                "marked earlier: {} due for deletion ({}), {} waiting ({}), {} needed again \
                 (kept)",
                s.due_packs,
                bytes(s.due_pack_bytes),
                s.waiting_packs,
                bytes(s.waiting_pack_bytes),
                s.revived_packs
            );
        }
        if s.other_sessions > 0 {
            println!(
                "{} other sessions (backups, copies, checks, restores) are running: what \
                 this prune marks is deleted by a prune after they end",
                s.other_sessions
            );
        }
    }
    // Whatever else is printed, these are kept and named: they may be someone's data.
    for name in &s.unreadable_packs {
        eprintln!(
            "warning: pack {name} is in no index and does not open with this repository's key \
             (another repository's?): kept; `strata repair index --delete-unreadable {}` \
             deletes it",
            &name[..name.len().min(12)]
        );
    }
    if args.dry_run {
        if talk {
            println!("dry run: nothing changed");
        }
        return Ok(plan.stats);
    }
    // A plan with nothing to do still removes what killed writers left (its last step).
    let noop = plan.is_noop();
    let bar = Bar::new("prune", cli.quiet || json || noop);
    let done = prune::execute(repo, plan, &bar)?;
    if talk {
        if noop {
            println!("nothing to prune");
        } else {
            println!(
                "wrote {} packs ({}) and {} index files; deleted {} packs; freed {}",
                done.packs_written,
                bytes(done.bytes_written),
                done.index_files_written,
                done.packs_deleted,
                bytes(done.bytes_freed.max(0) as u64)
            );
            if done.packs_marked > 0 && !done.marked_deleted_now {
                println!(
                    "marked {} packs ({}) for deletion: a later prune deletes them once the \
                     sessions running when they were marked have ended (or a snapshot or WAL \
                     file written meanwhile was read){}",
                    done.packs_marked,
                    bytes(done.marked_bytes),
                    if args.grace.is_zero() {
                        String::new()
                    } else {
                        format!(
                            " and {} have passed",
                            humantime::format_duration(args.grace)
                        )
                    }
                );
            }
        }
        if done.temp_files_removed > 0 {
            println!(
                "removed {} temporary files of interrupted writes",
                done.temp_files_removed
            );
        }
    }
    Ok(done)
}
