//! Restoring a database snapshot into a database.
//!
//! A target that holds anything is replaced only when asked (`force`), and only after a
//! snapshot of it, tagged `pre-restore`, is durable. A server database is then dropped,
//! created empty and loaded; a failure from there on says where its old content went. A
//! SQLite file is loaded beside the target, checked, and only then put in place, so the
//! old database stays whole until the new one is known good.

use std::path::Path;

use serde::Serialize;
use strata_engine::archiver::BackupOptions;
use strata_engine::progress::Progress;
use strata_engine::{EngineError, Repository};
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;
use strata_format::tree::Node;

use crate::backup::backup_database;
use crate::database::Database;
use crate::dialect::Dialect;
use crate::error::{DbError, Result};
use crate::load::{load_dump, Load};
use crate::snapshot::{dump_node, is_database, kind_name, meta, recorded_rows};
use crate::sqlite::{self, Sqlite};

/// The outcome of a restore into a database.
#[derive(Debug, Clone, Serialize)]
pub struct DbRestoreReport {
    /// Where it went (without password).
    pub target: String,
    pub bytes: u64,
    /// The snapshot of the target taken before it was replaced.
    pub pre_restore_snapshot: Option<SnapshotId>,
}

/// Restores the dump of `snap` into `target`. A target that exists and holds anything is
/// replaced only with `force`, and only after a snapshot of it (tagged `pre-restore`, with
/// `safety`'s labels) is durable.
pub fn restore_database(
    repo: &Repository,
    snap: &SnapshotFile,
    target: &Database,
    force: bool,
    safety: &BackupOptions,
    progress: &dyn Progress,
) -> Result<DbRestoreReport> {
    check_kind(snap, &**target)?;
    let node = dump_node(repo, snap)?;
    let mut pre_restore = None;
    if let Some(n) = repo.block_on(target.object_count())? {
        if n > 0 {
            if !force {
                return Err(DbError::Invalid(format!(
                    "{} holds {n} objects (tables, views, functions, …); restoring replaces \
                     them: pass --force (a snapshot of it, tagged pre-restore, is taken first)",
                    target.display()
                )));
            }
            let opts = safety.for_safety_snapshot(strata_engine::restorer::SAFETY_TAG);
            let saved = backup_database(repo, target, &opts, progress)?;
            pre_restore = Some(saved.snapshot_id);
        }
    }
    let bytes = match target.file() {
        Some(path) => restore_file(repo, snap, &node, path, progress)?,
        None => {
            // From here on the old content is gone: every failure says where it went.
            let replaced = |e: DbError| match &pre_restore {
                Some(id) => e.with_note(format!(
                    "\n{} was emptied for the restore and may now be empty or partial; its \
                     previous content is snapshot {} (tag pre-restore)",
                    target.display(),
                    id.short()
                )),
                None => e,
            };
            repo.block_on(target.recreate()).map_err(replaced)?;
            load_dump(repo, &node, &**target, Load::Restore, progress).map_err(replaced)?
        }
    };
    progress.finish();
    Ok(DbRestoreReport {
        target: target.display(),
        bytes,
        pre_restore_snapshot: pre_restore,
    })
}

/// Fails unless `snap` holds a dump of `target`'s kind.
pub(crate) fn check_kind(snap: &SnapshotFile, target: &dyn Dialect) -> Result<()> {
    if !is_database(snap) {
        return Err(DbError::Invalid(
            "the snapshot holds files, not a database dump".into(),
        ));
    }
    if snap.source != target.kind() {
        return Err(DbError::Invalid(format!(
            "the snapshot holds a {} dump; it cannot be restored into {}",
            kind_name(&snap.source),
            kind_name(&target.kind())
        )));
    }
    Ok(())
}

/// Loads the dump into a new file beside `path`, checks it (integrity, and every table's
/// row count against the snapshot), and only then puts it in place: by renaming when there
/// is no database yet, else through SQLite's own backup (`.restore`), which takes the
/// database's locks and goes through its journal or WAL, so that an application that has
/// it open sees the restored content, not a mix. The old database stays whole until then.
fn restore_file(
    repo: &Repository,
    snap: &SnapshotFile,
    node: &Node,
    path: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    let tmp = sqlite::temp_beside(path)?;
    let tmp_db = Sqlite(tmp.clone());
    let result = (|| {
        let n = load_dump(repo, node, &tmp_db, Load::Restore, progress)?;
        // What `.dump` leaves out, recorded at backup.
        let pragma = |key: &str| meta(snap, key).and_then(|v| v.parse::<i32>().ok());
        repo.block_on(sqlite::set_header_fields(
            &tmp,
            pragma("user_version"),
            pragma("application_id"),
        ))?;
        let checks = repo.block_on(tmp_db.integrity())?;
        if let Some(bad) = checks.iter().find(|c| !c.ok) {
            return Err(DbError::Engine(EngineError::Corrupt(format!(
                "the restored database fails {}: {}",
                bad.name, bad.detail
            ))));
        }
        let recorded = recorded_rows(snap);
        let names: Vec<String> = recorded.iter().map(|(t, _)| t.clone()).collect();
        let counts = repo.block_on(tmp_db.count_rows(&names))?;
        for ((table, expected), found) in recorded.into_iter().zip(counts) {
            if expected.is_some() && found != expected {
                return Err(DbError::Engine(EngineError::Corrupt(format!(
                    "the restored table {table} has {} rows where the snapshot recorded {}",
                    found.map_or("no".to_string(), |n| n.to_string()),
                    expected.unwrap_or_default()
                ))));
            }
        }
        if path.exists() {
            sqlite::restore_into(&tmp, path)?;
        } else {
            sqlite::sync_file(&tmp)?;
            std::fs::rename(&tmp, path).map_err(|e| DbError::io(path, e))?;
            sqlite::sync_dir(path);
        }
        Ok(n)
    })();
    sqlite::remove_with_journals(&tmp);
    result
}
