//! `strata backup`

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;
use strata_db::{backup_database, meta, recorded_rows, Database};
use strata_engine::archiver::{self, BackupOptions, BackupResult};
use strata_engine::report::{messages, Finding};
use strata_engine::retention::{self, CalendarSpan};
use strata_engine::Operation;

use crate::output::{bytes, json};
use crate::password::DbPasswordArgs;
use crate::progress::Bar;
use crate::{exit, open, values, Cli};

/// Back up files and directories, standard input, or a database into a new snapshot.
///
/// Content is cut into chunks (FastCDC), deduplicated against everything already in the
/// repository, compressed and encrypted. Files unchanged since the parent snapshot (same
/// size, mtime, ctime and inode) are not read again. Unreadable files are reported and
/// skipped; the snapshot is still written and the exit code is 3. So is a file replaced
/// between the listing and the read (by a FIFO, a symlink or another file): it is never
/// followed or waited on.
///
/// Pseudo file systems (proc, sysfs, cgroup, devpts, debugfs, tracefs, securityfs, ...,
/// recognised by their statfs type) are skipped where they are mounted: each mount point is
/// kept as an empty directory and reported with a warning (not an error). A path given
/// that is itself on one is refused. --include-pseudo-fs backs them up, reading their
/// files without ever waiting (a file that would block is reported and skipped).
///
/// A database (--postgres, --mysql, --sqlite) is backed up as one plain SQL dump that
/// streams from the dump tool (pg_dump, mysqldump, sqlite3) into the repository, cut into
/// small chunks so that a night's changes add little. The snapshot holds `/<database>.sql`
/// and records the server version, the dump tool and every table with its row count. If
/// the dump tool fails, the backup fails with its message and no snapshot is written.
/// The database password comes from --db-password-file or --db-password-command, else from
/// PGPASSWORD / ~/.pgpass or MYSQL_PWD / ~/.my.cnf; it reaches the dump tool through its
/// environment, never its command line, and is never stored.
///
/// With --json, the summary is one object: snapshot_id, files_new, files_changed,
/// files_unchanged, dirs, bytes_read, bytes_added, data_blobs_added, tree_blobs_added,
/// duration_secs, errors (one line per source entry left out), skipped_pseudo_fs and
/// skipped_pseudo_fs_paths, tables (a database's tables and row counts), and findings: the
/// errors as objects {"kind" ("unreadable_source" or "too_deep"), "object" (null),
/// "snapshot" (null), "path" (on the source), "message" (the line in errors)}. Progress
/// then goes to stderr as JSON lines (see the README: "message_type": "status" with
/// percent_done, files_done, total_files, bytes_done, total_bytes, seconds_elapsed,
/// seconds_remaining; "verbose_status" with -v), never to stdout.
///
/// On a terminal, progress shows the percentage, files and bytes done of the totals (a
/// scanner counts them beside the backup; no ETA until it has finished), the rate, the ETA
/// and the current file. -v lists new and modified files.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source")
    .args(["paths", "stdin", "postgres", "mysql", "sqlite"]).required(true)))]
pub struct Args {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Back up a PostgreSQL database with pg_dump (consistent snapshot, plain SQL):
    /// postgres://USER@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Back up a MySQL or MariaDB database with mysqldump --single-transaction (routines,
    /// triggers and events included, rows in primary key order):
    /// mysql://USER@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL")]
    mysql: Option<String>,
    #[command(flatten)]
    db_password: DbPasswordArgs,
    /// Back up a SQLite database file (a consistent read while the application writes).
    #[arg(long, value_name = "FILE")]
    sqlite: Option<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Leave out entries matching GLOB (repeatable). Without `/` it matches base names at any
    /// depth (`*.log`); with `/` the whole absolute path (`/var/cache/**`).
    #[arg(long = "exclude", value_name = "GLOB", value_parser = values::glob)]
    excludes: Vec<String>,
    /// Do not cross into other filesystems below the given paths.
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Back up pseudo file systems (proc, sysfs, cgroup, ...) too, instead of skipping them.
    #[arg(long)]
    include_pseudo_fs: bool,
    /// Snapshot to compare against for change detection (default: latest of the same host
    /// and paths).
    #[arg(long)]
    parent: Option<String>,
    /// Read the content from standard input.
    #[arg(long, requires = "stdin_filename")]
    stdin: bool,
    /// File name for the standard input content in the snapshot.
    #[arg(long, value_name = "NAME")]
    stdin_filename: Option<String>,
    /// Project the snapshot belongs to (forget groups by host, paths and project).
    #[arg(long)]
    project: Option<String>,
    /// Record this as the snapshot's time instead of now, in local time
    /// ("2025-01-31 03:00:00", "2025-01-31") or RFC 3339 (for imports and tests).
    #[arg(long, value_name = "TIME", value_parser = values::local_time)]
    time: Option<i64>,
    /// Hold the snapshot: `forget` keeps it until this date (local time, as for --time).
    #[arg(long, value_name = "DATE", conflicts_with = "hold_for",
          value_parser = values::local_time)]
    hold_until: Option<i64>,
    /// Hold the snapshot for this long after its time: `7y`, `18m`, `90d`, `1y6m`.
    #[arg(long, value_name = "SPAN")]
    hold_for: Option<CalendarSpan>,
    /// Print the summary as JSON on stdout, and progress as JSON lines on stderr.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary<'a> {
    snapshot_id: strata_format::id::SnapshotId,
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    dirs: u64,
    bytes_read: u64,
    bytes_added: u64,
    data_blobs_added: u64,
    tree_blobs_added: u64,
    duration_secs: f64,
    errors: Vec<String>,
    /// Mount points of pseudo file systems left out (not errors), and their count.
    skipped_pseudo_fs: usize,
    skipped_pseudo_fs_paths: Vec<String>,
    /// For a database: its tables and their row counts in the dump.
    #[serde(skip_serializing_if = "Option::is_none")]
    tables: Option<std::collections::BTreeMap<String, u64>>,
    findings: &'a [Finding],
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let tz = jiff::tz::TimeZone::system();
    let time_ns = args.time;
    let keep_until_ns = match (args.hold_until, args.hold_for) {
        (Some(until), _) => Some(until),
        (None, Some(span)) => {
            let base = time_ns.unwrap_or_else(strata_engine::now_ns);
            Some(retention::add_span(base, span, &tz))
        }
        (None, None) => None,
    };
    let (repo, _lock) = open::open(cli, Operation::Backup)?;
    let parent = match &args.parent {
        Some(spec) => Some(strata_engine::snapshots::find(&repo, spec)?.0),
        None => None,
    };
    let opts = BackupOptions {
        tags: args.tags.clone(),
        hostname: args.host.clone(),
        excludes: args.excludes.clone(),
        one_file_system: args.one_file_system,
        include_pseudo_fs: args.include_pseudo_fs,
        parent,
        time_ns,
        project: args.project.clone(),
        keep_until_ns,
    };
    // Files are counted (and totals scanned) for paths; a stream is bytes only.
    let unit = if args.paths.is_empty() { "" } else { "files" };
    let bar = Bar::with_totals(unit, cli.quiet, args.json).listing(cli.verbose, cli.quiet);
    let mut database = Database::from_options(
        args.postgres.as_deref(),
        args.mysql.as_deref(),
        args.sqlite.as_deref(),
    )?;
    if let Some(db) = &mut database {
        let flag = if args.postgres.is_some() {
            "--postgres"
        } else {
            "--mysql"
        };
        args.db_password.apply(db, flag)?;
    }
    let result: BackupResult = if let Some(db) = &database {
        backup_database(&repo, db, &opts, &bar)?
    } else if args.stdin {
        let Some(name) = &args.stdin_filename else {
            bail!("--stdin needs --stdin-filename NAME");
        };
        let mut stdin = std::io::stdin().lock();
        archiver::backup_stream(&repo, name, &mut stdin, &opts, &bar)?
    } else {
        archiver::backup_paths(&repo, &args.paths, &opts, &bar)?
    };
    let s = &result.snapshot.summary;
    if args.json {
        json(&Summary {
            snapshot_id: result.snapshot_id,
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unchanged: s.files_unchanged,
            dirs: s.dirs,
            bytes_read: s.bytes_read,
            bytes_added: s.bytes_added,
            data_blobs_added: s.data_blobs_added,
            tree_blobs_added: s.tree_blobs_added,
            duration_secs: s.duration_secs,
            errors: messages(&result.errors),
            skipped_pseudo_fs: result.skipped_pseudo_fs.len(),
            skipped_pseudo_fs_paths: result
                .skipped_pseudo_fs
                .iter()
                .map(|s| s.path.display().to_string())
                .collect(),
            tables: database.as_ref().map(|_| {
                recorded_rows(&result.snapshot)
                    .into_iter()
                    .map(|(t, n)| (t, n.unwrap_or(0)))
                    .collect()
            }),
            findings: &result.errors,
        })?;
    } else if let (Some(db), false) = (&database, cli.quiet) {
        println!(
            "dumped {} ({} tables, {} rows)",
            db.display(),
            meta(&result.snapshot, "tables").unwrap_or("0"),
            recorded_rows(&result.snapshot)
                .iter()
                .filter_map(|(_, n)| *n)
                .sum::<u64>()
        );
        println!(
            "read {}, added {} to the repository ({} data blobs) in {:.1}s",
            bytes(s.bytes_read),
            bytes(s.bytes_added),
            s.data_blobs_added,
            s.duration_secs
        );
        println!("snapshot {} saved", result.snapshot_id.short());
    } else if !cli.quiet {
        println!(
            "files: {} new, {} changed, {} unchanged; {} directories",
            s.files_new, s.files_changed, s.files_unchanged, s.dirs
        );
        if !result.skipped_pseudo_fs.is_empty() {
            println!(
                "skipped {} pseudo file system(s) (--include-pseudo-fs backs them up)",
                result.skipped_pseudo_fs.len()
            );
        }
        println!(
            "read {}, added {} to the repository ({} data blobs, {} tree blobs) in {:.1}s",
            bytes(s.bytes_read),
            bytes(s.bytes_added),
            s.data_blobs_added,
            s.tree_blobs_added,
            s.duration_secs
        );
        println!("snapshot {} saved", result.snapshot_id.short());
    }
    if result.errors.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "strata: {} source entries could not be read and were left out of snapshot {}",
            result.errors.len(),
            result.snapshot_id.short()
        );
        Ok(exit::PARTIAL)
    }
}
