//! Restore tests: a database snapshot restored into a scratch database, which is created
//! here and dropped afterwards whatever happens, compared table by table with the row
//! counts recorded at backup, and checked by the database's own integrity checks.
//!
//! The scratch server is always named by the caller (`--scratch`): the server a snapshot
//! names is repository content, and is never sent credentials on its say-so. SQLite
//! restores into a private temporary directory.

use std::path::PathBuf;

use serde::Serialize;
use strata_engine::progress::Progress;
use strata_engine::Repository;
use strata_format::id::SnapshotId;
use strata_format::snapshot::{SnapshotFile, SourceKind};
use strata_format::tree::Node;

use crate::check::{Check, TableCheck};
use crate::database::Database;
use crate::error::{DbError, Result};
use crate::ident;
use crate::load::{load_dump, Load};
use crate::restore::check_kind;
use crate::snapshot::{dump_node, is_database, kind_name, meta, recorded_rows};

/// The outcome of a restore test.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestReport {
    pub snapshot_id: SnapshotId,
    pub source: &'static str,
    pub database: String,
    /// Where the scratch database was (dropped afterwards).
    pub scratch: String,
    pub passed: bool,
    pub tables: Vec<TableCheck>,
    pub checks: Vec<Check>,
    pub bytes: u64,
}

/// Restores `snap` into a scratch database (created here, dropped afterwards whatever
/// happens), compares its tables and row counts with what the snapshot recorded, and runs
/// the database's integrity checks. `scratch` names the server (its database part is
/// ignored) and is required for PostgreSQL and MySQL; SQLite restores into a private
/// temporary directory.
pub fn restore_test(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    scratch: Option<&Database>,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    if !is_database(snap) {
        return Err(DbError::Invalid(format!(
            "snapshot {} holds {}, not a database dump: a restore test needs one",
            id.short(),
            kind_name(&snap.source)
        )));
    }
    let node = dump_node(repo, snap)?;
    let name = format!("strata_verify_{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut tmpdir = None;
    let server = match (scratch, &snap.source) {
        (Some(db), _) => db.clone(),
        (None, SourceKind::Sqlite) => {
            let dir = tempdir()?;
            let db = Database::sqlite_at(dir.join("scratch.db"));
            tmpdir = Some(dir);
            db
        }
        (None, kind) => {
            return Err(DbError::Invalid(format!(
                "a {} restore test needs --scratch URL: the server to create the scratch \
                 database on, with credentials",
                kind_name(kind)
            )))
        }
    };
    let target = server.with_database(&name);
    let outcome = (|| {
        check_kind(snap, &*server)?;
        if repo.block_on(target.object_count())?.is_some() {
            return Err(DbError::Invalid(format!(
                "scratch database {} already exists",
                target.display()
            )));
        }
        run_restore_test(repo, snap, &node, &target, progress)
    })();
    let dropped = repo.block_on(target.drop_database());
    if let Some(dir) = &tmpdir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (tables, mut checks, bytes) = match (outcome, &dropped) {
        (Ok(o), _) => o,
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(d)) => {
            return Err(e.with_note(format!(
                "; and the scratch database {} could not be dropped: {d}",
                target.display()
            )))
        }
    };
    if let Err(d) = &dropped {
        checks.push(Check {
            name: "cleanup".into(),
            ok: false,
            detail: format!(
                "the scratch database {} could not be dropped: {d}",
                target.display()
            ),
        });
    }
    let passed = tables.iter().all(|t| t.ok) && checks.iter().all(|c| c.ok);
    progress.finish();
    Ok(RestoreTestReport {
        snapshot_id: *id,
        source: kind_name(&snap.source),
        database: meta(snap, "database").unwrap_or_default().to_string(),
        scratch: target.display(),
        passed,
        tables,
        checks,
        bytes,
    })
}

type TestOutcome = (Vec<TableCheck>, Vec<Check>, u64);

/// Whether two table names, as dumps and servers write them, name the same table.
fn same_table(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (ident::split(a), ident::split(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn run_restore_test(
    repo: &Repository,
    snap: &SnapshotFile,
    node: &Node,
    target: &Database,
    progress: &dyn Progress,
) -> Result<TestOutcome> {
    repo.block_on(target.recreate())?;
    let mut checks = Vec::new();
    let bytes = match load_dump(repo, node, &**target, Load::Scratch, progress) {
        Ok(n) => {
            checks.push(Check {
                name: "load".into(),
                ok: true,
                detail: "the dump loaded without an error".into(),
            });
            n
        }
        Err(e) => {
            checks.push(Check {
                name: "load".into(),
                ok: false,
                detail: e.to_string(),
            });
            return Ok((Vec::new(), checks, 0));
        }
    };
    let recorded = recorded_rows(snap);
    // Tables the restore has that the snapshot did not record.
    let unrecorded: Vec<String> = repo
        .block_on(target.tables())?
        .into_iter()
        .filter(|table| !recorded.iter().any(|(t, _)| same_table(t, table)))
        .collect();
    let names: Vec<String> = recorded
        .iter()
        .map(|(t, _)| t.clone())
        .chain(unrecorded.iter().cloned())
        .collect();
    let counts = repo.block_on(target.count_rows(&names))?;
    let expected = recorded
        .iter()
        .map(|(_, n)| *n)
        .chain(unrecorded.iter().map(|_| None));
    let tables = names
        .into_iter()
        .zip(expected)
        .zip(counts)
        .map(|((table, expected_rows), restored_rows)| TableCheck {
            ok: expected_rows.is_some() && restored_rows == expected_rows,
            table,
            expected_rows,
            restored_rows,
        })
        .collect();
    checks.extend(repo.block_on(target.integrity())?);
    Ok((tables, checks, bytes))
}

/// A new directory only this user can read (restored data is plaintext).
fn tempdir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let p = base.join(format!(
            "strata-verify-{}",
            hex::encode(rand::random::<[u8; 6]>())
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(DbError::io(&p, e)),
        }
    }
    Err(DbError::Invalid("cannot create a scratch directory".into()))
}
