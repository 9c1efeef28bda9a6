//! `strata backup`

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use strata_db::{backup_database, meta, recorded_rows, Database};
use strata_engine::archiver::{self, BackupOptions, BackupResult, PathList, TagFile};
use strata_engine::filter::Filter;
use strata_engine::progress::{FileStatus, Phase, Progress, Totals};
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
/// files_unchanged, dirs, bytes_read, bytes_total (the source bytes the snapshot holds,
/// unchanged files included), bytes_added, data_blobs_added, tree_blobs_added,
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
///
/// --dry-run reads the sources as a backup would and writes nothing to the repository (no
/// pack, no index, no snapshot); it prints what would be added, and with --json one object
/// {"dry_run": true, files_new, files_changed, files_unchanged, dirs, bytes_read,
/// bytes_added, data_blobs_added, tree_blobs_added, errors, findings}. -v lists every new
/// and modified file as it is done, restic's way (`new       /path`, `modified  /path`);
/// with --json they are also in the result's "files".
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source")
    .args(["paths", "stdin", "postgres", "mysql", "sqlite"])))]
pub struct Args {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Back up the paths listed in FILE too: one a line; blank lines and lines starting
    /// with `#` are ignored, whitespace around a path is trimmed (repeatable; `-` reads
    /// standard input).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stdin", "postgres", "mysql", "sqlite"])]
    files_from: Vec<PathBuf>,
    /// Like --files-from, with every non-empty line taken as it is (no comments, nothing
    /// trimmed).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stdin", "postgres", "mysql", "sqlite"])]
    files_from_verbatim: Vec<PathBuf>,
    /// Like --files-from, with the paths separated by NUL bytes (`find -print0`), for
    /// names holding newlines.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stdin", "postgres", "mysql", "sqlite"])]
    files_from_raw: Vec<PathBuf>,
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
    /// Leave out entries matching the patterns in FILE (as --exclude): one a line; blank
    /// lines and lines starting with `#` are ignored (repeatable).
    #[arg(long, value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Leave out the contents of every directory holding a CACHEDIR.TAG file that starts
    /// with the standard signature (https://bford.info/cachedir/); the tag file itself is
    /// kept.
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out the contents of every directory holding a file named NAME (with
    /// NAME:HEADER, only if the file starts with HEADER); that file itself is kept
    /// (repeatable).
    #[arg(long, value_name = "NAME[:HEADER]", value_parser = tag_file)]
    exclude_if_present: Vec<TagFile>,
    /// Leave out files larger than SIZE: bytes, or with a unit (1024-based): 500K, 1M, 2G,
    /// 1T (`KiB`, `MB` and the like read the same).
    #[arg(long, value_name = "SIZE", value_parser = values::size)]
    exclude_larger_than: Option<u64>,
    /// Read everything as a backup would and show what it would add; write nothing to the
    /// repository.
    #[arg(short = 'n', long)]
    dry_run: bool,
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

/// Reads `--exclude-if-present`'s NAME[:HEADER].
fn tag_file(text: &str) -> std::result::Result<TagFile, String> {
    TagFile::parse(text).map_err(|e| e.to_string())
}

#[derive(Serialize)]
struct Summary<'a> {
    snapshot_id: strata_format::id::SnapshotId,
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    dirs: u64,
    bytes_read: u64,
    bytes_total: u64,
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
    /// With -v: the new and modified files.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<&'a Vec<Listed>>,
}

/// `backup --dry-run --json`.
#[derive(Serialize)]
struct DryRun<'a> {
    dry_run: bool,
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    dirs: u64,
    bytes_read: u64,
    bytes_added: u64,
    data_blobs_added: u64,
    tree_blobs_added: u64,
    errors: Vec<String>,
    findings: &'a [Finding],
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<&'a Vec<Listed>>,
}

/// A new or modified file, as -v lists it.
#[derive(Serialize)]
struct Listed {
    path: String,
    status: FileStatus,
}

/// The progress of a backup: the bar's, and with -v and --json each new or modified file
/// collected for the result.
struct Listing<'a> {
    bar: &'a Bar,
    collect: bool,
    files: Mutex<Vec<Listed>>,
}

impl Progress for Listing<'_> {
    fn phase(&self, phase: Phase) {
        self.bar.phase(phase)
    }
    fn set_total(&self, bytes: u64) {
        self.bar.set_total(bytes)
    }
    fn set_totals(&self, totals: Totals) {
        self.bar.set_totals(totals)
    }
    fn add_bytes(&self, n: u64) {
        self.bar.add_bytes(n)
    }
    fn add_item(&self) {
        self.bar.add_item()
    }
    fn file_done(&self, path: &Path, status: FileStatus) {
        self.bar.file_done(path, status);
        if status == FileStatus::Unchanged || !self.collect {
            return;
        }
        {
            self.files
                .lock()
                .expect("no panics while locked")
                .push(Listed {
                    path: path.display().to_string(),
                    status,
                });
        }
    }
    fn current(&self, path: &Path) {
        self.bar.current(path)
    }
    fn warn(&self, message: &str) {
        self.bar.warn(message)
    }
    fn finish(&self) {
        self.bar.finish()
    }
    fn should_stop(&self) -> bool {
        self.bar.should_stop()
    }
    fn wants_totals(&self) -> bool {
        self.bar.wants_totals()
    }
}

/// The paths to back up: those given, then those the --files-from lists name.
fn source_paths(args: &Args) -> Result<Vec<PathBuf>> {
    let mut paths = args.paths.clone();
    for (files, format) in [
        (&args.files_from, PathList::Lines),
        (&args.files_from_verbatim, PathList::Verbatim),
        (&args.files_from_raw, PathList::Raw),
    ] {
        for file in files {
            let bytes = if file.as_os_str() == "-" {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading the list of paths from standard input")?;
                bytes
            } else {
                std::fs::read(file)
                    .with_context(|| format!("reading the list of paths {}", file.display()))?
            };
            paths.extend(format.parse(&bytes));
        }
    }
    Ok(paths)
}

/// The patterns of an --exclude-file, each checked.
/// The patterns of an exclude file (backup's and rewrite's `--exclude-file`); a bad one
/// is an error naming the file and the line.
pub(crate) fn exclude_file(file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the exclude file {}", file.display()))?;
    let mut patterns = Vec::new();
    for (line, p) in Filter::numbered_patterns(&text) {
        values::glob(&p)
            .map_err(|e| anyhow::anyhow!("exclude file {}, line {line}: {e}", file.display()))?;
        patterns.push(p);
    }
    Ok(patterns)
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
    let paths = source_paths(args)?;
    let database_given = args.postgres.is_some() || args.mysql.is_some() || args.sqlite.is_some();
    if paths.is_empty() && !args.stdin && !database_given {
        crate::usage_error(
            "nothing to back up: give paths, --files-from FILE (or -verbatim, -raw), --stdin, \
             --postgres, --mysql or --sqlite",
        );
    }
    let mut excludes = args.excludes.clone();
    for file in &args.exclude_file {
        excludes.extend(exclude_file(file)?);
    }
    let opts = BackupOptions {
        tags: args.tags.clone(),
        hostname: args.host.clone(),
        excludes,
        exclude_caches: args.exclude_caches,
        exclude_if_present: args.exclude_if_present.clone(),
        exclude_larger_than: args.exclude_larger_than,
        dry_run: args.dry_run,
        one_file_system: args.one_file_system,
        include_pseudo_fs: args.include_pseudo_fs,
        parent,
        time_ns,
        project: args.project.clone(),
        keep_until_ns,
        ignore_vanished: false,
        reuse_margin: None,
    };
    // Files are counted (and totals scanned) for paths; a stream is bytes only.
    let stream =
        args.stdin || args.postgres.is_some() || args.mysql.is_some() || args.sqlite.is_some();
    let unit = if stream { "" } else { "files" };
    let bar = Bar::with_totals(unit, cli.quiet, args.json).listing(cli.verbose, cli.quiet);
    // The bar lists changed files with -v; with --json they are also collected for the
    // result.
    let listing = Listing {
        bar: &bar,
        collect: cli.verbose > 0 && args.json,
        files: Default::default(),
    };
    let database = Database::from_options(
        args.postgres.as_deref(),
        args.mysql.as_deref(),
        args.sqlite.as_deref(),
    )?
    .map(|db| {
        let flag = if args.postgres.is_some() {
            "--postgres"
        } else {
            "--mysql"
        };
        args.db_password.prepare(db, flag)
    })
    .transpose()?;
    let result: BackupResult = if let Some(db) = &database {
        backup_database(&repo, db, &opts, &listing)?
    } else if args.stdin {
        let Some(name) = &args.stdin_filename else {
            bail!("--stdin needs --stdin-filename NAME");
        };
        let mut stdin = std::io::stdin().lock();
        archiver::backup_stream(&repo, name, &mut stdin, &opts, &listing)?
    } else {
        archiver::backup_paths(&repo, &paths, &opts, &listing)?
    };
    let s = &result.snapshot.summary;
    let mut files = listing.files.into_inner().expect("no panics while locked");
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if result.dry_run {
        if args.json {
            json(&DryRun {
                dry_run: true,
                files_new: s.files_new,
                files_changed: s.files_changed,
                files_unchanged: s.files_unchanged,
                dirs: s.dirs,
                bytes_read: s.bytes_read,
                bytes_added: s.bytes_added,
                data_blobs_added: s.data_blobs_added,
                tree_blobs_added: s.tree_blobs_added,
                errors: messages(&result.errors),
                findings: &result.errors,
                files: (cli.verbose > 0).then_some(&files),
            })?;
        } else if !cli.quiet {
            println!(
                "dry run: files: {} new, {} changed, {} unchanged; {} directories",
                s.files_new, s.files_changed, s.files_unchanged, s.dirs
            );
            println!(
                "would read {}, would add {} to the repository ({} data blobs, {} tree \
                 blobs); nothing was written",
                bytes(s.bytes_read),
                bytes(s.bytes_added),
                s.data_blobs_added,
                s.tree_blobs_added
            );
        }
        if !result.errors.is_empty() {
            eprintln!(
                "strata: {} source entries could not be read and would be left out",
                result.errors.len()
            );
            return Ok(exit::PARTIAL);
        }
        return Ok(exit::OK);
    }
    if args.json {
        json(&Summary {
            snapshot_id: result.snapshot_id,
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unchanged: s.files_unchanged,
            dirs: s.dirs,
            bytes_read: s.bytes_read,
            bytes_total: s.bytes_total,
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
            files: (cli.verbose > 0).then_some(&files),
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
