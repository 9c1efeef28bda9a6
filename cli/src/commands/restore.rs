//! `strata restore`

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;
use strata_app::restore;
use strata_db::Database;
use strata_engine::report::{messages, Finding};
use strata_engine::restorer::{self, Action, Overwrite, RestoreOptions, RestorePlan};
use strata_engine::Operation;

use crate::output::{bytes, json, printable};
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
/// Into a directory that already holds entries of the snapshot, a restore needs an
/// --overwrite choice: without one it lists what it would overwrite and exits 1, touching
/// nothing (entries it would only create, or that are already identical, need no choice).
/// Before anything that exists is overwritten or deleted (--delete), exactly those entries
/// are backed up into a snapshot tagged `pre-restore`, at their real absolute paths (so
/// `strata restore ID --target / --overwrite always` puts them back); if that backup fails,
/// nothing is touched. --dry-run shows the whole plan and touches nothing. An --include
/// that matches nothing in the snapshot, or --exclude patterns that leave nothing of it, are
/// an error.
///
/// A database snapshot restores with --to-postgres, --to-mysql or --to-sqlite into the
/// original database or any other (created if missing), through psql / mysql / sqlite3.
/// A target that already holds tables is replaced only with --force, and only after a
/// snapshot of it, tagged `pre-restore`, has been saved. The database password comes from
/// --db-password-file or --db-password-command, else from PGPASSWORD / ~/.pgpass or
/// MYSQL_PWD / ~/.my.cnf.
///
/// With --json, a restore into a directory prints {"files", "dirs", "other", "bytes",
/// "overwritten", "deleted", "unchanged", "kept", "safety_snapshot" (id or null), "verify"
/// (null, or {"files", "bytes", "mismatches": [one line per file]}),
/// "errors": [one line per entry not restored], "findings": [the same as objects {"kind"
/// (e.g. "missing_blob", "target_write_failed"), "object" (null, or {"pack": {"id"}} or
/// {"blob": {"blob_type", "id"}}), "snapshot" (null), "path" (in the snapshot),
/// "message"}]}; --dry-run --json prints {"dry_run": true, "target", "entries": [{"action"
/// ("create", "overwrite", "delete", "unchanged", "keep"), "path" (in the target), "kind",
/// "size", "reason"}], "totals": {"create", "overwrite", "delete", "unchanged", "keep",
/// "bytes"}}; a restore into a database {"target", "bytes", "pre_restore_snapshot" (id
/// or null)}.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("into")
    .args(["target", "to_postgres", "to_mysql", "to_sqlite"]).required(true)))]
pub struct Args {
    snapshot: String,
    /// Which snapshot `latest` means: the newest of this host, project, tag or path.
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
    /// Print the outcome as JSON on stdout, and progress as JSON lines on stderr
    /// ("message_type": "status", as for backup; see the README).
    #[arg(long)]
    json: bool,
    /// Restore only entries matching GLOB and what they contain (repeatable).
    #[arg(long = "include", value_name = "GLOB", requires = "target", value_parser = values::glob)]
    includes: Vec<String>,
    /// Leave out entries matching GLOB and what they contain (repeatable).
    #[arg(long = "exclude", value_name = "GLOB", requires = "target", value_parser = values::glob)]
    excludes: Vec<String>,
    /// What to do with entries that already exist in the target: never (leave them),
    /// if-changed (replace those whose size, or content when only the mtime differs, is
    /// not the snapshot's), if-newer (replace those older than the snapshot's), always.
    /// Needed when the restore would overwrite anything.
    #[arg(long, value_enum, value_name = "MODE", requires = "target")]
    overwrite: Option<OverwriteMode>,
    /// Delete what the target holds below the snapshot's paths (below included paths,
    /// with --include) that the snapshot does not hold; never above or beside them.
    #[arg(long, requires = "target")]
    delete: bool,
    /// List what would be created, overwritten, deleted and left alone, with totals;
    /// change nothing.
    #[arg(long, requires = "target")]
    dry_run: bool,
    /// After restoring, read every restored file back and check it against the snapshot's
    /// content ids; a mismatch is reported and the exit code is 1.
    #[arg(long, requires = "target")]
    verify: bool,
    /// UNSAFE: overwrite and delete without first saving those entries in a `pre-restore`
    /// snapshot (what is overwritten or deleted is then lost).
    #[arg(long, requires = "target")]
    no_safety_snapshot: bool,
}

/// `--overwrite`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum OverwriteMode {
    Never,
    IfChanged,
    IfNewer,
    Always,
}

impl From<OverwriteMode> for Overwrite {
    fn from(m: OverwriteMode) -> Overwrite {
        match m {
            OverwriteMode::Never => Overwrite::Never,
            OverwriteMode::IfChanged => Overwrite::IfChanged,
            OverwriteMode::IfNewer => Overwrite::IfNewer,
            OverwriteMode::Always => Overwrite::Always,
        }
    }
}

/// The JSON report of a restore into a directory.
#[derive(Serialize)]
struct Report<'a> {
    files: u64,
    dirs: u64,
    other: u64,
    bytes: u64,
    overwritten: u64,
    deleted: u64,
    unchanged: u64,
    kept: u64,
    safety_snapshot: Option<String>,
    verify: Option<VerifyReport>,
    errors: Vec<String>,
    findings: &'a [Finding],
}

#[derive(Serialize)]
struct VerifyReport {
    files: u64,
    bytes: u64,
    mismatches: Vec<String>,
}

/// The JSON of `--dry-run`.
#[derive(Serialize)]
struct DryRun<'a> {
    dry_run: bool,
    #[serde(flatten)]
    plan: &'a RestorePlan,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let database = Database::from_options(
        args.to_postgres.as_deref(),
        args.to_mysql.as_deref(),
        args.to_sqlite.as_deref(),
    )?
    .map(|db| {
        let flag = if args.to_postgres.is_some() {
            "--to-postgres"
        } else {
            "--to-mysql"
        };
        args.db_password.prepare(db, flag)
    })
    .transpose()?;
    // A database restore first saves the target in a safety snapshot: it writes; so does
    // a restore into a directory that holds anything (it may overwrite or delete).
    let op = match (&database, &args.target) {
        (Some(_), _) => Operation::RestoreDatabase,
        (None, Some(t)) => restore::operation_for_dir(t, args.dry_run, !args.no_safety_snapshot),
        (None, None) => Operation::Restore,
    };
    let filter = args.filter.for_specs(&[&args.snapshot]);
    let (repo, _lock) = open::open(cli, op)?;
    let (id, snap) = strata_engine::snapshots::find_in(&repo, &args.snapshot, &filter)?;
    let Some(target) = &args.target else {
        let db = database.expect("clap requires a target");
        let bar = Bar::new("restore", cli.quiet || args.json);
        let (report, recorded) = restore::database(&repo, &id, &snap, &db, args.force, &bar);
        super::audit(cli, recorded.ok, recorded.error, recorded.body);
        let report = report?;
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
        // Without a choice, nothing that differs may be overwritten (checked below).
        overwrite: args.overwrite.map_or(Overwrite::IfChanged, Overwrite::from),
        delete: args.delete,
        verify: args.verify,
        list_created: args.dry_run,
        safety: (!args.no_safety_snapshot).then(|| restore::safety_labels(&snap)),
    };
    let plan = restorer::plan(&repo, &snap, target, &opts)?;
    if args.dry_run {
        if args.json {
            json(&DryRun {
                dry_run: true,
                plan: &plan,
            })?;
        } else {
            print_plan(&plan);
        }
        return Ok(exit::OK);
    }
    if args.overwrite.is_none() && plan.totals.overwrite > 0 {
        for e in plan
            .entries
            .iter()
            .filter(|e| e.action == Action::Overwrite)
        {
            eprintln!(
                "would overwrite {} ({})",
                printable(e.path.as_os_str().as_encoded_bytes()),
                e.reason.unwrap_or("exists")
            );
        }
        eprintln!(
            "strata: {} holds {} entries that this restore would overwrite (listed above); \
             nothing was changed. Choose --overwrite if-changed (or never, if-newer, always): \
             what is overwritten is first saved in a snapshot tagged pre-restore; --dry-run \
             shows the whole plan",
            plan.target.display(),
            plan.totals.overwrite
        );
        return Ok(exit::FATAL);
    }
    let bar = Bar::with_totals("files", cli.quiet, args.json);
    let target_text = target.display().to_string();
    let (stats, recorded) = restore::files(&repo, &id, &snap, &plan, &opts, &target_text, &bar);
    super::audit(cli, recorded.ok, recorded.error, recorded.body);
    let stats = stats?;
    let mismatches = stats.verify.as_ref().map_or(0, |v| v.mismatches.len());
    if args.json {
        json(&Report {
            files: stats.files,
            dirs: stats.dirs,
            other: stats.other,
            bytes: stats.bytes,
            overwritten: stats.overwritten,
            deleted: stats.deleted,
            unchanged: stats.unchanged,
            kept: stats.kept,
            safety_snapshot: stats.safety_snapshot.as_ref().map(|id| id.to_hex()),
            verify: stats.verify.as_ref().map(|v| VerifyReport {
                files: v.files,
                bytes: v.bytes,
                mismatches: messages(&v.mismatches),
            }),
            errors: messages(&stats.errors),
            findings: &stats.errors,
        })?;
    } else if !cli.quiet {
        if let Some(safety) = &stats.safety_snapshot {
            println!(
                "saved the {} entries this restore overwrites or deletes as snapshot {} (tag \
                 pre-restore); `strata restore {} --target / --overwrite always` puts them back",
                plan.totals.overwrite + plan.totals.delete,
                safety.short(),
                safety.short()
            );
        }
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} other, {}",
            id.short(),
            target.display(),
            stats.files,
            stats.dirs,
            stats.other,
            bytes(stats.bytes)
        );
        if stats.overwritten + stats.deleted + stats.unchanged + stats.kept > 0 {
            println!(
                "existing entries: {} overwritten, {} deleted, {} unchanged, {} kept",
                stats.overwritten, stats.deleted, stats.unchanged, stats.kept
            );
        }
        if let Some(v) = &stats.verify {
            println!(
                "verified {} files ({}): {} mismatches",
                v.files,
                bytes(v.bytes),
                v.mismatches.len()
            );
        }
    }
    if stats.errors.is_empty() && mismatches == 0 {
        return Ok(exit::OK);
    }
    // Each failure was printed as it happened (and is in the JSON): only the count here.
    if !stats.errors.is_empty() {
        eprintln!(
            "strata: {} entries could not be restored (listed above)",
            stats.errors.len()
        );
    }
    if mismatches > 0 {
        eprintln!("strata: {mismatches} restored files do not read back as the snapshot holds them (listed above)");
    }
    Ok(exit::FATAL)
}

/// Prints a plan: one line per entry, then the totals.
fn print_plan(plan: &RestorePlan) {
    for e in &plan.entries {
        let action = match e.action {
            Action::Create => "create",
            Action::Overwrite => "overwrite",
            Action::Delete => "delete",
            Action::Unchanged => "unchanged",
            Action::Keep => "keep",
        };
        let path = printable(e.path.as_os_str().as_encoded_bytes());
        match e.reason {
            Some(why) => println!("{action:<9} {} {path} ({why})", e.kind),
            None => println!("{action:<9} {} {path}", e.kind),
        }
    }
    let t = &plan.totals;
    println!(
        "dry run, nothing changed: would create {}, overwrite {}, delete {}; {} unchanged, {} \
         kept; {} to write",
        t.create,
        t.overwrite,
        t.delete,
        t.unchanged,
        t.keep,
        bytes(t.bytes)
    );
}
