//! `strata restore`

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use strata_db::{restore_database, Database};
use strata_engine::archiver::BackupOptions;
use strata_engine::report::{messages, Finding};
use strata_engine::restorer::{self, RestoreOptions};
use strata_engine::Operation;

use crate::output::{bytes, json};
use crate::password::DbPasswordArgs;
use crate::progress::Bar;
use crate::{exit, open, values, Cli};

/// Restore a snapshot into a directory, or a database snapshot into a database.
///
/// Entries are recreated under TARGET at their absolute path in the snapshot, with their
/// content (verified against its ids), mode, owner (when run as root), times, extended
/// attributes, hard links, and holes in sparse files. Nothing is ever written outside
/// TARGET. SNAPSHOT is `latest`, a snapshot id, or a unique prefix of one; `latest` fails
/// while any snapshot cannot be read (the damaged one may be the newest): give an id then.
///
/// An entry that cannot be restored (damaged or missing data, a full disk) is reported
/// once on stderr and the restore goes on; the exit code is then 1. A file whose content
/// could not be restored in full is removed, never left in place with zeros where the
/// content is missing (nor are hard links to it made).
///
/// A database snapshot restores with --to-postgres, --to-mysql or --to-sqlite into the
/// original database or any other (created if missing), through psql / mysql / sqlite3.
/// A target that already holds tables is replaced only with --force, and only after a
/// snapshot of it, tagged `pre-restore`, has been saved. The database password comes from
/// --db-password-file or --db-password-command, else from PGPASSWORD / ~/.pgpass or
/// MYSQL_PWD / ~/.my.cnf.
///
/// With --json, a restore into a directory prints {"files", "dirs", "other", "bytes",
/// "errors": [one line per entry not restored], "findings": [the same as objects {"kind"
/// (e.g. "missing_blob", "target_write_failed"), "object" (null, or {"pack": {"id"}} or
/// {"blob": {"blob_type", "id"}}), "snapshot" (null), "path" (in the snapshot),
/// "message"}]}; a restore into a database {"target", "bytes", "pre_restore_snapshot" (id
/// or null)}.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("into")
    .args(["target", "to_postgres", "to_mysql", "to_sqlite"]).required(true)))]
pub struct Args {
    snapshot: String,
    /// Which snapshot `latest` means: the newest of this host, project or tag.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// Directory to restore into (created if missing).
    #[arg(short, long)]
    target: Option<PathBuf>,
    /// Restore a PostgreSQL snapshot into this database: postgres://USER@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL")]
    to_postgres: Option<String>,
    /// Restore a MySQL/MariaDB snapshot into this database: mysql://USER@HOST[:PORT]/DATABASE.
    #[arg(long, value_name = "URL")]
    to_mysql: Option<String>,
    #[command(flatten)]
    db_password: DbPasswordArgs,
    /// Restore a SQLite snapshot into this file (written beside it, checked, then renamed over it).
    #[arg(long, value_name = "FILE")]
    to_sqlite: Option<PathBuf>,
    /// Replace a target database that holds anything (after a pre-restore snapshot of it).
    #[arg(long, conflicts_with = "target")]
    force: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
    /// Restore only entries matching GLOB and what they contain (repeatable).
    #[arg(long = "include", value_name = "GLOB", requires = "target", value_parser = values::glob)]
    includes: Vec<String>,
    /// Leave out entries matching GLOB and what they contain (repeatable).
    #[arg(long = "exclude", value_name = "GLOB", requires = "target", value_parser = values::glob)]
    excludes: Vec<String>,
}

/// The JSON report of a restore into a directory.
#[derive(Serialize)]
struct Report<'a> {
    files: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    errors: Vec<String>,
    findings: &'a [Finding],
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let mut database = Database::from_options(
        args.to_postgres.as_deref(),
        args.to_mysql.as_deref(),
        args.to_sqlite.as_deref(),
    )?;
    if let Some(db) = &mut database {
        let flag = if args.to_postgres.is_some() {
            "--to-postgres"
        } else {
            "--to-mysql"
        };
        args.db_password.apply(db, flag)?;
    }
    // A database restore first saves the target in a safety snapshot: it writes.
    let op = match database {
        Some(_) => Operation::RestoreDatabase,
        None => Operation::Restore,
    };
    let (repo, _lock) = open::open(cli, op)?;
    let (id, snap) =
        strata_engine::snapshots::find_in(&repo, &args.snapshot, &args.filter.engine())?;
    let Some(target) = &args.target else {
        let db = database.expect("clap requires a target");
        let bar = Bar::new("restore", cli.quiet || args.json);
        // The engine tags the safety snapshot `pre-restore`.
        let safety = BackupOptions {
            project: snap.project.clone(),
            ..BackupOptions::default()
        };
        let report = restore_database(&repo, &snap, &db, args.force, &safety, &bar)?;
        if args.json {
            json(&report)?;
        } else if !cli.quiet {
            if let Some(pre) = &report.pre_restore_snapshot {
                println!(
                    "saved the target's previous content as snapshot {} (tag pre-restore)",
                    pre.short()
                );
            }
            println!(
                "restored snapshot {} into {}: {}",
                id.short(),
                report.target,
                bytes(report.bytes)
            );
        }
        return Ok(exit::OK);
    };
    let opts = RestoreOptions {
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
    };
    let bar = Bar::new("restore", cli.quiet || args.json);
    let stats = restorer::restore(&repo, &snap, target, &opts, &bar)?;
    if args.json {
        json(&Report {
            files: stats.files,
            dirs: stats.dirs,
            other: stats.other,
            bytes: stats.bytes,
            errors: messages(&stats.errors),
            findings: &stats.errors,
        })?;
    } else if !cli.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} other, {}",
            id.short(),
            target.display(),
            stats.files,
            stats.dirs,
            stats.other,
            bytes(stats.bytes)
        );
    }
    if stats.errors.is_empty() {
        Ok(exit::OK)
    } else {
        // Each failure was printed as it happened (and is in the JSON): only the count here.
        eprintln!(
            "strata: {} entries could not be restored (listed above)",
            stats.errors.len()
        );
        Ok(exit::FATAL)
    }
}
