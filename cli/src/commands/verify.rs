//! `strata verify`

use anyhow::Result;
use strata_db::{is_database, restore_test, Database};
use strata_engine::Operation;

use crate::output::{bytes, json};
use crate::password::DbPasswordArgs;
use crate::progress::Bar;
use crate::{exit, open, Cli};

/// Test that a database snapshot really restores.
///
/// `--restore-test SNAPSHOT` restores the dump into a scratch database that it creates
/// (`strata_verify_<random>`) and always drops afterwards, then compares every table's row
/// count with what the snapshot recorded at backup, and runs the database's own integrity
/// checks (SQLite: integrity_check and foreign_key_check; MySQL/MariaDB: CHECK TABLE;
/// PostgreSQL: index validity and amcheck where it can be loaded). MySQL scheduled events
/// are created disabled in the scratch database, so that none runs there (its body might
/// write elsewhere); the report checks that none is enabled. Exit code 0 when everything
/// agrees, 1 when anything does not.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database snapshot to test (`latest`, an id or a unique prefix).
    #[arg(long, value_name = "SNAPSHOT")]
    restore_test: String,
    /// Which snapshot `latest` means: the newest of this host, project, tag or path.
    #[command(flatten)]
    filter: super::SnapshotFilter,
    /// The server to create the scratch database on (postgres://USER@HOST:PORT/ANY or
    /// mysql://…; the database part is ignored; the password from --db-password-file or
    /// --db-password-command, else PGPASSWORD / MYSQL_PWD). Required for PostgreSQL and
    /// MySQL snapshots: the server a snapshot names is never trusted with credentials.
    /// SQLite snapshots are tested in a private temporary directory.
    #[arg(long, value_name = "URL")]
    scratch: Option<String>,
    #[command(flatten)]
    db_password: DbPasswordArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cli: &Cli, args: &Args) -> Result<u8> {
    let filter = args.filter.for_specs(&[&args.restore_test]);
    let (repo, _lock) = open::open(cli, Operation::Verify)?;
    let (id, snap) = strata_engine::snapshots::find_in(&repo, &args.restore_test, &filter)?;
    let scratch = match &args.scratch {
        Some(text) if is_database(&snap) => {
            let db = Database::of_kind(&snap.source, text)?;
            Some(args.db_password.prepare(db, "--scratch")?)
        }
        _ => None,
    };
    let bar = Bar::new("restore test", cli.quiet || args.json);
    let report = restore_test(&repo, &id, &snap, scratch.as_ref(), &bar)?;
    if args.json {
        json(&report)?;
    } else {
        println!(
            "restore test of snapshot {} ({} database {}) in {}: {} loaded",
            id.short(),
            report.source,
            report.database,
            report.scratch,
            bytes(report.bytes)
        );
        for t in &report.tables {
            let show = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
            println!(
                "  {} table {}: {} rows recorded, {} restored",
                if t.ok { "ok  " } else { "FAIL" },
                t.table,
                show(t.expected_rows),
                show(t.restored_rows)
            );
        }
        for c in &report.checks {
            println!(
                "  {} {}: {}",
                if c.ok { "ok  " } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        println!("{}", if report.passed { "passed" } else { "FAILED" });
    }
    Ok(if report.passed { exit::OK } else { exit::FATAL })
}
