//! Restores as `strata restore` and `strata serve` both do them: into a directory (the
//! engine's restorer, with a `pre-restore` safety snapshot of whatever would be
//! overwritten or deleted) or into a database (`strata_db::restore_database`, which saves
//! a target it replaces first), and the catalog record each leaves.
//!
//! The front ends parse, decide who may do what, and call these; the safety snapshot's
//! labels, the lock a restore takes and the record's shape are made only here.

use std::path::{Component, Path, PathBuf};

use strata_db::{restore_database, Database, DbRestoreReport};
use strata_engine::archiver::BackupOptions;
use strata_engine::progress::Progress;
use strata_engine::restorer::{self, RestoreOptions, RestorePlan, RestoreStats};
use strata_engine::{Operation, Repository};
use strata_format::id::SnapshotId;
use strata_format::snapshot::SnapshotFile;

use crate::ops::RecordBody;
use crate::{AppError, Result};

/// The labels of the safety snapshot of a restore of `snap` (the engine tags it
/// `pre-restore`): the project of the snapshot restored.
pub fn safety_labels(snap: &SnapshotFile) -> BackupOptions {
    BackupOptions {
        project: snap.project.clone(),
        ..BackupOptions::default()
    }
}

/// The lock a restore into `target` takes: a safety snapshot writes into the repository,
/// so a restore into a directory that holds anything (it may overwrite or delete) takes
/// the lock of one that writes; a dry run or an empty target only reads.
pub fn operation_for_dir(target: &Path, dry_run: bool, safety: bool) -> Operation {
    let may_save =
        !dry_run && safety && std::fs::read_dir(target).is_ok_and(|mut d| d.next().is_some());
    if may_save {
        Operation::RestoreDatabase
    } else {
        Operation::Restore
    }
}

/// The include pattern that restores the snapshot path `path` and what it contains:
/// absolute, without `.` or `..`, and with glob characters escaped (it names one path).
pub fn include_for_path(path: &str) -> Result<String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(AppError::Invalid(format!(
            "{path:?} is not a snapshot path: snapshot paths are absolute"
        )));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(AppError::Invalid(format!(
            "{path:?}: `.` and `..` are not allowed in a snapshot path"
        )));
    }
    let mut out = String::with_capacity(path.len());
    for ch in path.trim_end_matches('/').chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '{' | '}' | '\\' | '!') {
            out.push('\\');
        }
        out.push(ch);
    }
    if out.is_empty() {
        // `/`: the whole snapshot.
        out.push_str("/**");
    }
    Ok(out)
}

/// `target` made absolute with symlinks in its existing part resolved, if it lies under
/// one of `roots` (resolved the same way), else why not. `..` is refused outright (never
/// normalised away: a request that says it is a mistake or an attack).
pub fn target_under_roots(target: &Path, roots: &[PathBuf]) -> Result<PathBuf> {
    if !target.is_absolute() {
        return Err(AppError::Invalid(format!(
            "restore target {} is not an absolute path",
            target.display()
        )));
    }
    if target.components().any(|c| c == Component::ParentDir) {
        return Err(AppError::Invalid(format!(
            "restore target {}: `..` is not allowed",
            target.display()
        )));
    }
    if roots.is_empty() {
        return Err(AppError::Invalid(
            "no [server] restore-roots are configured: restores go only to the original place"
                .into(),
        ));
    }
    let resolved = resolve_existing(target)?;
    for root in roots {
        let Ok(root) = resolve_existing(root) else {
            continue;
        };
        if resolved.starts_with(&root) {
            return Ok(resolved);
        }
    }
    Err(AppError::Invalid(format!(
        "restore target {} is not under a configured restore root ({})",
        target.display(),
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// `path` (absolute, without `..`) with its longest existing ancestor canonicalised (so a
/// symlink there counts where it points) and the rest appended.
fn resolve_existing(path: &Path) -> Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => {
                let mut out = real;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(|n| n.to_os_string()) else {
                    return Err(AppError::Invalid(format!("{}: {e}", path.display())));
                };
                rest.push(name);
                existing.pop();
            }
            Err(e) => return Err(AppError::Invalid(format!("{}: {e}", path.display()))),
        }
    }
}

/// Restores `snap` into the directory of `plan` as `opts` say (after the safety snapshot,
/// when `opts.safety`), and the record it leaves in the catalog (ok, error, body).
pub fn files(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    plan: &RestorePlan,
    opts: &RestoreOptions,
    target: &str,
    progress: &dyn Progress,
) -> (strata_engine::Result<RestoreStats>, Recorded) {
    let stats = restorer::execute(repo, snap, plan, opts, progress);
    let what = if opts.includes.is_empty() {
        snap.paths.join(" ")
    } else {
        opts.includes.join(" ")
    };
    let error = match &stats {
        Ok(s) if s.errors.is_empty() => None,
        Ok(s) => Some(format!("{} entries could not be restored", s.errors.len())),
        Err(e) => Some(e.to_string()),
    };
    let recorded = Recorded {
        ok: error.is_none(),
        error,
        body: RecordBody::Restore {
            snapshot_id: id.to_hex(),
            what,
            target: target.to_string(),
            safety_snapshot: stats
                .as_ref()
                .ok()
                .and_then(|s| s.safety_snapshot.as_ref())
                .map(|s| s.to_hex()),
        },
    };
    (stats, recorded)
}

/// Restores the database snapshot `snap` into `db` (replacing what it holds only with
/// `force`, after a `pre-restore` snapshot of it), and the record it leaves.
pub fn database(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    db: &Database,
    force: bool,
    progress: &dyn Progress,
) -> (strata_db::Result<DbRestoreReport>, Recorded) {
    let report = restore_database(repo, snap, db, force, &safety_labels(snap), progress);
    let recorded = Recorded {
        ok: report.is_ok(),
        error: report.as_ref().err().map(|e| e.to_string()),
        body: RecordBody::Restore {
            snapshot_id: id.to_hex(),
            what: snap.paths.join(" "),
            target: db.display(),
            safety_snapshot: report
                .as_ref()
                .ok()
                .and_then(|r| r.pre_restore_snapshot.as_ref())
                .map(|s| s.to_hex()),
        },
    };
    (report, recorded)
}

/// What a restore leaves in the catalog, for the front end to record with its user.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub ok: bool,
    pub error: Option<String>,
    pub body: RecordBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_path_becomes_one_escaped_include() {
        assert_eq!(include_for_path("/srv/site/").unwrap(), "/srv/site");
        assert_eq!(include_for_path("/a/b*[1]").unwrap(), "/a/b\\*\\[1\\]");
        assert_eq!(include_for_path("/").unwrap(), "/**");
        assert!(include_for_path("srv/site").is_err());
        assert!(include_for_path("/srv/../etc").is_err());
    }

    #[test]
    fn targets_outside_the_roots_or_with_dotdot_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("roots");
        std::fs::create_dir_all(root.join("in")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("out"), root.join("link")).unwrap();
        let roots = vec![root.clone()];
        let real = std::fs::canonicalize(&root).unwrap();
        assert_eq!(
            target_under_roots(&root.join("in/new/deeper"), &roots).unwrap(),
            real.join("in/new/deeper")
        );
        assert!(target_under_roots(&root.join("in/../../out"), &roots).is_err());
        assert!(target_under_roots(&dir.path().join("out"), &roots).is_err());
        // A symlink under the root that points outside it is outside.
        assert!(target_under_roots(&root.join("link/x"), &roots).is_err());
        assert!(target_under_roots(Path::new("relative"), &roots).is_err());
        assert!(target_under_roots(&root.join("in"), &[]).is_err());
    }
}
