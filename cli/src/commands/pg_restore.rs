//! `strata pg restore`: a PostgreSQL cluster restored to a point in time (see
//! `strata_app::pitr::restore`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_app::pitr::restore::{
    self, PitrRestoreOptions, RecoveryAction, RecoveryTarget, TimelineChoice,
};
use strata_app::pitr::timeline::parse_target_time;

use crate::output::json;
use crate::progress::Bar;
use crate::{exit, Cli};

/// Restore a PostgreSQL cluster to a point in time, from a base backup and the WAL archive.
///
/// Chooses the newest base backup of the project that ended before the target on the way
/// to the target timeline, and checks BEFORE restoring anything that every WAL segment the
/// recovery replays is archived (a missing one refuses the restore, naming the gap). Then
/// restores the backup's data directory into TARGET (which must not exist or be empty, or
/// with --force may hold a stopped cluster, saved first in a safety snapshot;
/// content verified; owner kept when run as root; mode 0700), writes recovery.signal and
/// appends to postgresql.auto.conf: restore_command (this strata's `pg wal-fetch` with this
/// config), recovery_target_time, recovery_target_timeline (always a number) and
/// recovery_target_action.
///
/// With --start --port N it starts the cluster (its version's pg_ctl under
/// /usr/lib/postgresql, as the data directory's owner) on a socket in TARGET and port N (no
/// TCP), logging to TARGET/strata-recovery.log, and reads that log until recovery ended:
/// "recovery ended before configured recovery target was reached", a FATAL or a PANIC fail
/// the restore (exit 1) with the lines quoted. The restored cluster is written
/// archive_mode = off unless --archive: a copy restored to look at, even promoted, never
/// pushes a timeline of its own into the project's archive.
///
/// Exit codes: 0 restored (and, with --start, recovered to the target), 1 refused or
/// failed, 10, 11 or 12 when the repository cannot be opened (none, locked, wrong
/// password).
///
/// With --json: {"project", "base_snapshot", "target_time" (RFC 3339 UTC, null with
/// --latest), "timeline", "target_dir", "started", "recovery_stop" (the server's words, or
/// null), "new_timeline" (after a promotion, or null), "safety_snapshot" (with --force, or
/// null), "duration_secs"}.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("to").args(["to_time", "latest"]).required(true)))]
pub struct Args {
    /// The project of strata.toml whose cluster to restore.
    #[arg(long)]
    project: String,
    /// Recover to this time, with its offset from UTC: "2026-12-06 14:03:27+01" (or Z).
    #[arg(long, value_name = "TIME")]
    to_time: Option<String>,
    /// Recover to the end of the archived WAL (and promote: PostgreSQL ignores the action
    /// without a target).
    #[arg(long)]
    latest: bool,
    /// The directory to restore into: absent or empty.
    #[arg(long, value_name = "DIR")]
    target: PathBuf,
    /// The timeline to recover along: latest (the highest archived), current (the base
    /// backup's) or a number.
    #[arg(long, default_value = "latest", value_name = "latest|current|N")]
    timeline: TimelineChoice,
    /// What the server does at the target: pause (PostgreSQL's default: read-only, in
    /// recovery), promote (a new timeline, open for writes) or shutdown.
    #[arg(long, default_value = "pause", value_name = "promote|pause|shutdown")]
    action: RecoveryAction,
    /// Start from this base backup (snapshot id or unique prefix) instead of the newest
    /// fitting one; it is checked all the same.
    #[arg(long, value_name = "SNAPSHOT")]
    base: Option<String>,
    /// Start the restored cluster and wait until recovery ended (needs --port).
    #[arg(long, requires = "port")]
    start: bool,
    /// The port of the started cluster.
    #[arg(long, requires = "start")]
    port: Option<u16>,
    /// Let the restored cluster archive its WAL (with its postgresql.conf's
    /// archive_command): for a restore that becomes the new primary. Without it the restore
    /// writes archive_mode = off, so a copy never pushes a timeline of its own into the
    /// project's archive.
    #[arg(long)]
    archive: bool,
    /// Restore into TARGET even if it holds a (stopped) cluster: everything it holds is
    /// saved first in a safety snapshot (tag pre-restore, its id printed), then moved aside,
    /// and removed only once the restore succeeded (put back if it failed). Never when a
    /// server runs in it.
    #[arg(long)]
    force: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, cfg: &strata_app::config::Config, args: &Args) -> Result<u8> {
    let target = match &args.to_time {
        Some(t) => RecoveryTarget::Time(parse_target_time(t)?),
        None => RecoveryTarget::Latest,
    };
    let dir = std::path::absolute(&args.target)
        .with_context(|| format!("--target {}", args.target.display()))?;
    let strata_bin = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .context("cannot tell where this strata binary is (for restore_command)")?;
    let opts = PitrRestoreOptions {
        project: args.project.clone(),
        target,
        timeline: args.timeline,
        action: args.action,
        base: args.base.clone(),
        dir,
        start: args.start.then_some(args.port).flatten(),
        strata_bin,
        archive: args.archive,
        force: args.force,
    };
    let quiet = cli.quiet;
    let say = |line: &str| {
        if !quiet {
            eprintln!("strata: {line}");
        }
    };
    let bar = Bar::with_totals("files", cli.quiet, args.json);
    let mut record = |r: strata_app::restore::Recorded| super::audit(cli, r.ok, r.error, r.body);
    let done = restore::restore(cfg, &opts, &bar, &say, &mut record)?;
    if args.json {
        json(&done)?;
    } else if !cli.quiet {
        println!(
            "restored base backup {} of project {} into {}, to {} on timeline {}{}",
            &done.base_snapshot[..done.base_snapshot.len().min(8)],
            done.project,
            done.target_dir,
            done.target_time
                .as_deref()
                .unwrap_or("the end of the archive"),
            done.timeline,
            if done.started {
                ""
            } else {
                " (not started: pg_ctl start -D DIR recovers it)"
            }
        );
        if let Some(stop) = &done.recovery_stop {
            println!("{stop}");
        }
        if let Some(t) = done.new_timeline {
            println!("promoted: new timeline {t}");
        }
        if let Some(s) = &done.safety_snapshot {
            println!(
                "what {} held before is in safety snapshot {}",
                done.target_dir,
                s.get(..8).unwrap_or(s)
            );
        }
    }
    Ok(exit::OK)
}
