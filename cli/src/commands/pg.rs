//! `strata pg`: PostgreSQL point-in-time recovery. `wal-push` is the cluster's
//! `archive_command`, `wal-fetch` its `restore_command` (see `strata_app::pitr`).

use std::path::PathBuf;

use anyhow::Result;

use crate::output::json;
use crate::Cli;

/// PostgreSQL point-in-time recovery: WAL archiving into a project's primary repository.
///
/// In postgresql.conf (with the config in STRATA_CONFIG or /etc/strata/strata.toml, readable
/// by the postgres user):
///
///   archive_mode = on
///   archive_command = 'strata pg wal-push --project shop %p'
///
/// and, to recover, restore_command = 'strata pg wal-fetch --project shop %f %p'.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Archive one WAL file (PostgreSQL's archive_command; %p is the file).
    ///
    /// Exits 0 only once the file is durable in the repository (its blobs, their index,
    /// then the WAL file naming them), or when the archive already holds this very file
    /// (PostgreSQL pushes again what it did not see succeed). Refuses, with a message and
    /// exit 1, a file of another cluster than the project's archive or the data directory,
    /// a different file under a name already archived, and anything that is not a WAL
    /// segment, .history, .backup or .partial file. Never exits above 125, so PostgreSQL
    /// counts every failure and tries again.
    ///
    /// With --json: {"name", "repository", "bytes", "outcome" (stored or
    /// already-archived), "bytes_added"}.
    WalPush {
        /// The project of strata.toml whose cluster this is.
        #[arg(long)]
        project: String,
        /// The file to archive (%p: a path under pg_wal, relative to the data directory).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The cluster's data directory (default: the current directory, where PostgreSQL
        /// runs archive_command): its global/pg_control names the cluster.
        #[arg(long, value_name = "DIR")]
        pgdata: Option<PathBuf>,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore one archived WAL file (PostgreSQL's restore_command; %f the name, %p where).
    ///
    /// Exits 0 once the file is written (atomically: a temporary file, then a rename), and
    /// 1 only when the archive surely has no such file (PostgreSQL asks for files that may
    /// not exist, and ends recovery at the first it does not get). Any other failure (the
    /// repository unreachable or locked, a WAL file that cannot be read, content that does
    /// not match the hash it was archived with) exits 126, which PostgreSQL takes as fatal:
    /// recovery stops loudly instead of ending early and dropping the transactions after
    /// the file it could not get.
    WalFetch {
        /// The project of strata.toml whose archive to read.
        #[arg(long)]
        project: String,
        /// The file's name (%f).
        #[arg(value_name = "NAME")]
        name: String,
        /// Where to write it (%p).
        #[arg(value_name = "DEST")]
        dest: PathBuf,
    },
    /// Take a base backup of the project's cluster ([projects.P.pitr]: data-dir, url).
    ///
    /// Runs the backup in one session (pg_backup_start, then the data directory read as a
    /// files snapshot without pg_wal's content, postmaster.pid and temporary files, then
    /// pg_backup_stop), and writes the snapshot (tagged pg-basebackup, with the
    /// backup_label at the data directory's root) only once the segment holding the stop
    /// LSN is in the project's WAL archive: a base backup in the repository is complete.
    /// Run it as a user who can read the data directory (root or the cluster's owner).
    ///
    /// Exit codes: 0 complete; 1 refused or failed (archive_mode off, another cluster than
    /// the archive's, tablespaces, an unreadable file, the stop segment not archived within
    /// stop-timeout): no snapshot is written; 10, 11, 12 the repository cannot be opened.
    ///
    /// With --json: {"snapshot_id", "project", "repository", "system_id", "version_num",
    /// "timeline", "start_lsn", "stop_lsn", "seg_size", "start_time_ns", "stop_time_ns",
    /// "data_dir", "start_wal", "stop_wal", "start_time", "stop_time", "files",
    /// "bytes_total", "bytes_added", "duration_secs"}.
    Basebackup {
        /// The project of strata.toml whose cluster to back up.
        #[arg(long)]
        project: String,
        /// Print the result as JSON (progress as JSON lines on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Check a project's WAL archive for continuity: per timeline, the segments archived
    /// (first, last, how many), the segments missing between them (a recovery cannot replay
    /// past a gap), and whether each later timeline's history file is there; the project's
    /// base backups, whether the WAL each needs is archived, and per timeline the
    /// restorable window: from the stop time of the oldest restorable base backup to the
    /// push time of the last segment reachable from it without a gap.
    ///
    /// Exit codes: 0 continuous, 1 a gap or a problem (nothing archived yet, an unreadable
    /// WAL file, a name archived with two contents, a timeline without its history file, a
    /// base backup whose WAL is not all archived), 10, 11 or 12 when the repository cannot
    /// be opened (none, locked, wrong password). No base backup yet is a note, not a failure.
    ///
    /// With --json: {"project", "repository", "system_id", "timelines": [{"timeline",
    /// "segments", "first", "last", "gaps": [{"from", "to", "missing"}], "history",
    /// "last_pushed", "window": {"earliest", "latest", "base_snapshot", "last_segment"} or
    /// null, "earlier_windows": [...]}], "base_backups": [{"snapshot", "timeline",
    /// "start_wal", "stop_wal", "stop_time", "restorable", "missing": [gap], "reaches",
    /// "gap_after": gap or null}], "backup_labels", "partial", "problems", "notes"}. Times
    /// are RFC 3339 UTC.
    Verify {
        /// The project of strata.toml whose archive to check.
        #[arg(long)]
        project: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    Restore(super::pg_restore::Args),
    /// Prove the cluster can be brought back to a recent moment, and time it (the RTO).
    ///
    /// Forces a segment switch on the live server ([projects.P.pitr] url) and waits for it
    /// in the archive (so a commit after the target is archived; skipped with a warning if
    /// the server does not answer), restores the newest base backup that ended before now
    /// minus --ago into a new directory under the temporary directory, recovers it to that
    /// time (paused, read-only: no new timeline, nothing archived from it), starts it on a
    /// socket there, counts the rows of every table of every database, stops it and removes
    /// the directory (--keep keeps it). Recorded in the catalog as a restore test (`strata
    /// log --kind restore-test`), as `strata run` does on the project's restore-test
    /// schedule.
    ///
    /// Exit codes: 0 passed, 1 failed or could not run, 10, 11 or 12 when the repository
    /// cannot be opened.
    ///
    /// With --json: {"project", "passed", "error", "target_time", "base_snapshot",
    /// "timeline", "recovery_stop", "rto_secs", "databases": [{"database", "tables":
    /// [[name, rows]]}], "switched", "kept"}.
    RestoreTest {
        /// The project of strata.toml whose cluster to test.
        #[arg(long)]
        project: String,
        /// Recover to now minus this long.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        ago: std::time::Duration,
        /// Keep the restored directory (its path is printed), to look at.
        #[arg(long)]
        keep: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drop from a project's WAL archive what no kept base backup needs: every segment (and
    /// .backup, .partial file) before the start segment of the oldest base backup; history
    /// files stay. The next `strata prune` frees their data. `strata run`'s prune step does
    /// this for every project with [projects.NAME.pitr].
    ///
    /// Nothing is dropped while the project has no base backup. A snapshot that cannot be
    /// read, or a base backup whose facts cannot be read or that is of another cluster,
    /// stops it (exit 1): it could be the oldest base backup.
    ///
    /// With --json: {"project", "repository", "dry_run", "oldest_base", "keep_from",
    /// "dropped": [names], "segments_dropped", "bytes_dropped", "files_written",
    /// "files_deleted", "note"}.
    Expire {
        /// The project of strata.toml whose archive to trim.
        #[arg(long)]
        project: String,
        /// Say what would be dropped; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Prove WAL archiving works now: force a segment switch on the project's cluster
    /// ([projects.NAME.pitr] url and password) and wait until that segment is in the
    /// project's WAL archive. Catches a wrong archive_command, a project name it does not
    /// use, a repository it cannot write.
    ///
    /// Exit codes: 0 the segment arrived, 1 it did not in time (the message names the
    /// segment and pg_stat_archiver's last failure) or archive_mode is off or the cluster
    /// cannot be reached; 10, 11 or 12 when the repository cannot be opened.
    ///
    /// With --json: {"project", "repository", "segment", "archived", "waited_secs",
    /// "archiver": {"archive_mode", "archive_command", "archived_count",
    /// "last_archived_wal", "failed_count", "last_failed_wal", "last_failed_time",
    /// "last_archived_time"}, "problem"}.
    Check {
        /// The project of strata.toml whose cluster to check.
        #[arg(long)]
        project: String,
        /// How long to wait for the segment.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `wal-fetch`'s exit code for a failure other than "not archived": PostgreSQL treats an
/// exit status above 125 as fatal and stops recovery, where 1 would mean "no such file" and
/// end it early.
const FETCH_FAILED: u8 = 126;

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let cfg = strata_app::config::load(cli.config.as_deref())?;
    match &args.command {
        Sub::WalPush {
            project,
            file,
            pgdata,
            json: as_json,
        } => {
            let pushed = strata_app::pitr::wal_push(&cfg, project, file, pgdata.as_deref())?;
            if *as_json {
                json(&pushed)?;
            }
            Ok(crate::exit::OK)
        }
        Sub::WalFetch {
            project,
            name,
            dest,
        } => match strata_app::pitr::wal_fetch(&cfg, project, name, dest) {
            Ok(Some(_)) => Ok(crate::exit::OK),
            Ok(None) => {
                eprintln!("strata: {name} is not in the WAL archive of project {project}");
                Ok(crate::exit::FATAL)
            }
            Err(e) => {
                eprintln!("strata: {name} cannot be fetched: {e}");
                Ok(FETCH_FAILED)
            }
        },
        Sub::Basebackup {
            project,
            json: as_json,
        } => {
            let bar = crate::progress::Bar::with_totals("files", cli.quiet, *as_json);
            let r = strata_app::pitr::basebackup::basebackup(&cfg, project, &bar)?;
            drop(bar);
            if *as_json {
                json(&r)?;
            } else if !cli.quiet {
                println!(
                    "base backup {} of project {} in repository {}: timeline {}, WAL {} .. {} \
                     (archived), {} files, {} ({} added), {:.1} s",
                    &r.snapshot_id[..8],
                    r.project,
                    r.repository,
                    r.backup.timeline,
                    r.start_wal,
                    r.stop_wal,
                    r.files,
                    crate::output::bytes(r.bytes_total),
                    crate::output::bytes(r.bytes_added),
                    r.duration_secs
                );
            }
            Ok(crate::exit::OK)
        }
        Sub::Restore(a) => super::pg_restore::run(cli, &cfg, a),
        Sub::Verify {
            project,
            json: as_json,
        } => {
            let report = strata_app::pitr::verify(&cfg, project)?;
            if *as_json {
                json(&report)?;
            } else {
                print_report(&report)?;
            }
            Ok(if report.is_ok() {
                crate::exit::OK
            } else {
                crate::exit::FATAL
            })
        }
        Sub::RestoreTest {
            project,
            ago,
            keep,
            json: as_json,
        } => {
            let quiet = cli.quiet;
            let say = |line: &str| {
                if !quiet {
                    eprintln!("strata: {line}");
                }
            };
            let bar = crate::progress::Bar::with_totals("files", cli.quiet, *as_json);
            let report = strata_app::pitr::restore_test::restore_test(
                &cfg, project, *ago, *keep, &bar, &say,
            )?;
            drop(bar);
            report.record(
                &cfg,
                nix::unistd::User::from_uid(nix::unistd::getuid())
                    .ok()
                    .flatten()
                    .map(|u| u.name),
            );
            if *as_json {
                json(&report)?;
            } else {
                print_restore_test(&report)?;
            }
            Ok(if report.passed {
                crate::exit::OK
            } else {
                crate::exit::FATAL
            })
        }
        Sub::Check {
            project,
            timeout,
            json: as_json,
        } => {
            let report = strata_app::pitr::check::check(&cfg, project, *timeout)?;
            if *as_json {
                json(&report)?;
            } else if report.archived {
                println!(
                    "WAL archiving of project {project} works: {} reached repository {} in {:.1}s",
                    report.segment.as_deref().unwrap_or("?"),
                    report.repository,
                    report.waited_secs
                );
            }
            if let Some(p) = &report.problem {
                eprintln!("strata: {p}");
            }
            Ok(if report.archived {
                crate::exit::OK
            } else {
                crate::exit::FATAL
            })
        }
        Sub::Expire {
            project,
            dry_run,
            json: as_json,
        } => {
            let report = strata_app::pitr::expire::expire(&cfg, project, *dry_run)?;
            if *as_json {
                json(&report)?;
            } else {
                print_expired(&report)?;
            }
            Ok(crate::exit::OK)
        }
    }
}

fn print_expired(r: &strata_app::pitr::expire::ExpireReport) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let verb = if r.dry_run { "would drop" } else { "dropped" };
    if let (Some(base), Some(from)) = (&r.oldest_base, &r.keep_from) {
        writeln!(
            out,
            "WAL archive of project {} in repository {}: kept from {from} (the start of base \
             backup {}, the oldest)",
            r.project,
            r.repository,
            &base[..8.min(base.len())]
        )?;
    }
    if !r.dropped.is_empty() {
        writeln!(
            out,
            "{verb} {} file{} ({} segment{}, {} bytes): {} .. {}",
            r.dropped.len(),
            if r.dropped.len() == 1 { "" } else { "s" },
            r.segments_dropped,
            if r.segments_dropped == 1 { "" } else { "s" },
            r.bytes_dropped,
            r.dropped[0],
            r.dropped[r.dropped.len() - 1]
        )?;
        if !r.dry_run {
            writeln!(out, "run `strata prune` to free their data")?;
        }
    }
    if let Some(n) = &r.note {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

fn print_report(r: &strata_app::pitr::ArchiveReport) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "WAL archive of project {} in repository {}{}",
        r.project,
        r.repository,
        r.system_id
            .as_deref()
            .map(|id| format!(" (cluster {id})"))
            .unwrap_or_default()
    )?;
    if r.timelines.is_empty() {
        writeln!(out, "no WAL archived yet")?;
    }
    for t in &r.timelines {
        let range = match (&t.first, &t.last) {
            (Some(f), Some(l)) => format!("{f} .. {l}"),
            _ => "no segments".to_string(),
        };
        writeln!(
            out,
            "timeline {}: {} segment{} {range}{}{}",
            t.timeline,
            t.segments,
            if t.segments == 1 { "" } else { "s" },
            if t.history { ", history file" } else { "" },
            t.last_pushed
                .as_deref()
                .map(|p| format!(", last pushed {p}"))
                .unwrap_or_default()
        )?;
        for g in &t.gaps {
            writeln!(out, "  gap: {}", gap_text(g))?;
        }
        match &t.window {
            Some(w) => writeln!(
                out,
                "  restorable from {} (base backup {}) up to the last archived segment {}, \
                 pushed at {}",
                w.earliest,
                &w.base_snapshot[..8.min(w.base_snapshot.len())],
                w.last_segment,
                w.latest
            )?,
            None => writeln!(
                out,
                "  no restorable window: no restorable base backup taken on this timeline"
            )?,
        }
        for w in &t.earlier_windows {
            writeln!(
                out,
                "  also restorable from {} to {} (base backup {}, up to {}: a gap follows)",
                w.earliest,
                w.latest,
                &w.base_snapshot[..8.min(w.base_snapshot.len())],
                w.last_segment
            )?;
        }
    }
    for b in &r.base_backups {
        let id = &b.snapshot[..8.min(b.snapshot.len())];
        write!(
            out,
            "base backup {id}: timeline {}, WAL {} .. {}, stopped {}",
            b.timeline, b.start_wal, b.stop_wal, b.stop_time
        )?;
        if b.restorable {
            write!(
                out,
                ", replays up to {}",
                b.reaches.as_deref().unwrap_or("?")
            )?;
            if let Some(g) = &b.gap_after {
                write!(out, ", then a gap: {}", gap_text(g))?;
            }
            writeln!(out)?;
        } else if b.missing.is_empty() {
            writeln!(out, ", NOT restorable (see the problems)")?;
        } else {
            let missing: Vec<String> = b.missing.iter().map(gap_text).collect();
            writeln!(out, ", NOT restorable: {}", missing.join(", "))?;
        }
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    for p in &r.problems {
        writeln!(out, "problem: {p}")?;
    }
    writeln!(
        out,
        "{}",
        if r.is_ok() {
            "continuous: no segment missing"
        } else {
            "NOT continuous: see above"
        }
    )?;
    Ok(())
}

/// `FROM .. TO (N segments missing)`.
fn gap_text(g: &strata_app::pitr::Gap) -> String {
    format!(
        "{} .. {} ({} segment{} missing)",
        g.from,
        g.to,
        g.missing,
        if g.missing == 1 { "" } else { "s" }
    )
}

fn print_restore_test(r: &strata_app::pitr::restore_test::PitrTestReport) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "restore test of project {}: {}",
        r.project,
        if r.passed { "PASSED" } else { "FAILED" }
    )?;
    writeln!(out, "  target time: {}", r.target_time)?;
    if let Some(b) = &r.base_snapshot {
        writeln!(
            out,
            "  base backup: {}, timeline {}",
            &b[..b.len().min(8)],
            r.timeline.unwrap_or(0)
        )?;
    }
    if let Some(stop) = &r.recovery_stop {
        writeln!(out, "  {stop}")?;
    }
    if let Some(rto) = r.rto_secs {
        writeln!(out, "  time to recover (RTO): {rto:.1} s")?;
    }
    for db in &r.databases {
        let rows: u64 = db.tables.iter().map(|(_, n)| n).sum();
        writeln!(
            out,
            "  database {}: {} tables, {rows} rows",
            db.database,
            db.tables.len()
        )?;
    }
    if let Some(k) = &r.kept {
        writeln!(out, "  kept in {k}")?;
    }
    if let Some(e) = &r.error {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}
