//! The restored data directory: the target must be absent or empty, and the base
//! backup's data directory is restored into it through a staging directory (a snapshot's
//! entries restore at their full path), content verified, owner kept.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use strata_engine::progress::Progress;
use strata_engine::restorer::{self, Overwrite, RestoreOptions};
use strata_engine::Repository;
use strata_format::snapshot::SnapshotFile;

use crate::restore::Recorded;
use crate::{AppError, Result};

/// Whether `dir` holds a `postmaster.pid` whose process is alive: a server runs there. A
/// process of another user (EPERM) is alive too; a pid file that cannot be read counts as
/// a running server (never guess the safe way wrong).
pub(super) fn server_runs_in(dir: &Path) -> bool {
    let text = match std::fs::read_to_string(dir.join("postmaster.pid")) {
        Ok(t) => t,
        Err(e) => return e.kind() != std::io::ErrorKind::NotFound,
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<i32>().ok())
        .filter(|pid| *pid > 0)
    else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// With `force`: a target that holds something (a stopped cluster to replace) is allowed,
/// never one a server runs in. Returns whether it holds anything (a safety snapshot first).
pub(super) fn check_forced_target(dir: &Path) -> Result<bool> {
    if !dir.is_absolute() {
        return Err(AppError::Invalid(format!(
            "--target {} is not an absolute path",
            dir.display()
        )));
    }
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(AppError::Invalid(format!("{}: {e}", dir.display()))),
        Ok(md) if !md.is_dir() => Err(AppError::Invalid(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Ok(_) => {
            if server_runs_in(dir) {
                return Err(AppError::Invalid(format!(
                    "a server runs in {} (its postmaster.pid names a live process): stop it \
                     first; a restore never replaces a running cluster",
                    dir.display()
                )));
            }
            Ok(std::fs::read_dir(dir)
                .map_err(|e| AppError::Invalid(format!("{}: {e}", dir.display())))?
                .next()
                .is_some())
        }
    }
}

/// Refuses a target that is not an absent or empty directory.
pub(super) fn check_target_dir(dir: &Path) -> Result<()> {
    if !dir.is_absolute() {
        return Err(AppError::Invalid(format!(
            "--target {} is not an absolute path",
            dir.display()
        )));
    }
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AppError::Invalid(format!("{}: {e}", dir.display()))),
        Ok(md) if !md.is_dir() => Err(AppError::Invalid(format!(
            "{} exists and is not a directory: restore into a new or empty directory",
            dir.display()
        ))),
        Ok(_) => {
            if dir.join("postmaster.pid").exists() {
                return Err(AppError::Invalid(format!(
                    "{} is a data directory with postmaster.pid (a server may be running in \
                     it): never restored into; restore into a new directory",
                    dir.display()
                )));
            }
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| AppError::Invalid(format!("{}: {e}", dir.display())))?;
            if entries.next().is_some() {
                return Err(AppError::Invalid(format!(
                    "{} is not empty: restore into a new or empty directory (a restore never \
                     replaces a data directory)",
                    dir.display()
                )));
            }
            Ok(())
        }
    }
}

/// Restores the data directory of `snap` into `dir`: into a staging directory inside it
/// (a snapshot's entries restore at their full path), content verified, then each entry
/// moved up into `dir`, which takes the data directory's owner and mode 0700.
pub(super) fn restore_data_dir(
    repo: &Repository,
    id: &strata_format::id::SnapshotId,
    snap: &SnapshotFile,
    dir: &Path,
    progress: &dyn Progress,
    record: &mut dyn FnMut(Recorded),
) -> Result<()> {
    let [data_path] = snap.paths.as_slice() else {
        return Err(AppError::Invalid(format!(
            "snapshot {} holds {} paths: a base backup holds its data directory alone",
            id.short(),
            snap.paths.len()
        )));
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| AppError::Invalid(format!("{} cannot be made: {e}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| AppError::Invalid(format!("{}: {e}", dir.display())))?;
    let staging = dir.join(".strata-restore");
    let result = (|| {
        let opts = RestoreOptions {
            overwrite: Overwrite::Never,
            verify: true,
            ..RestoreOptions::default()
        };
        let plan = restorer::plan(repo, snap, &staging, &opts)?;
        let (stats, recorded) = crate::restore::files(
            repo,
            id,
            snap,
            &plan,
            &opts,
            &dir.display().to_string(),
            progress,
        );
        record(recorded);
        let stats = stats?;
        let mismatches = stats.verify.as_ref().map_or(0, |v| v.mismatches.len());
        if !stats.errors.is_empty() || mismatches > 0 {
            return Err(AppError::Invalid(format!(
                "the base backup did not restore intact ({} entries not restored, {mismatches} \
                 read back wrong: listed above); {} was left empty",
                stats.errors.len(),
                dir.display()
            )));
        }
        let root = staging.join(data_path.trim_start_matches('/'));
        if !root.join("backup_label").is_file() {
            return Err(AppError::Invalid(format!(
                "snapshot {} holds no backup_label at its data directory's root: it is not a \
                 base backup PostgreSQL can recover from",
                id.short()
            )));
        }
        let md = std::fs::metadata(&root).map_err(|e| io(&root, e))?;
        for entry in std::fs::read_dir(&root).map_err(|e| io(&root, e))? {
            let entry = entry.map_err(|e| io(&root, e))?;
            let to = dir.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(|e| io(&to, e))?;
        }
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(dir, Some(md.uid()), Some(md.gid()))
                .map_err(|e| io(dir, e))?;
        }
        // The running server's files, if the backup kept them: a stale pid file whose pid
        // is alive stops the restored server from starting.
        for stale in ["postmaster.pid", "postmaster.opts"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        detach_pg_wal(dir)?;
        Ok(())
    })();
    let cleaned = std::fs::remove_dir_all(&staging);
    if result.is_err() {
        // Leave the target as it was: empty.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() && !p.is_symlink() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        return result;
    }
    cleaned.map_err(|e| io(&staging, e))
}

/// Replaces a `pg_wal` that is a symlink (`initdb --waldir`) by an empty directory of the
/// data directory's owner, mode 0700: restored as it was, it would point at the original
/// cluster's WAL directory, and recovery would write into a live cluster's WAL. Returns
/// whether it did.
pub(super) fn detach_pg_wal(dir: &Path) -> Result<bool> {
    let wal = dir.join("pg_wal");
    match std::fs::symlink_metadata(&wal) {
        Ok(md) if md.file_type().is_symlink() => {}
        _ => return Ok(false),
    }
    std::fs::remove_file(&wal).map_err(|e| io(&wal, e))?;
    std::fs::create_dir(&wal).map_err(|e| io(&wal, e))?;
    std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io(&wal, e))?;
    if nix::unistd::geteuid().is_root() {
        let md = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
        std::os::unix::fs::chown(&wal, Some(md.uid()), Some(md.gid())).map_err(|e| io(&wal, e))?;
    }
    Ok(true)
}

pub(super) fn io(path: &Path, e: std::io::Error) -> AppError {
    AppError::Invalid(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_pg_wal_becomes_a_directory_of_its_own() {
        let d = tempfile::tempdir().unwrap();
        let elsewhere = d.path().join("original-wal");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("000000010000000000000001"), "live").unwrap();
        let data = d.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::os::unix::fs::symlink(&elsewhere, data.join("pg_wal")).unwrap();
        assert!(detach_pg_wal(&data).unwrap());
        let md = std::fs::symlink_metadata(data.join("pg_wal")).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(data.join("pg_wal")).unwrap().count(), 0);
        // The original is untouched; a real directory is left alone.
        assert!(elsewhere.join("000000010000000000000001").exists());
        assert!(!detach_pg_wal(&data).unwrap());
    }

    #[test]
    fn a_live_postmaster_is_seen_whoever_runs_it() {
        let d = tempfile::tempdir().unwrap();
        assert!(!server_runs_in(d.path()), "no pid file");
        // pid 1 runs, as root: a process of another user when this is not root.
        std::fs::write(d.path().join("postmaster.pid"), "1\n/data\n").unwrap();
        assert!(server_runs_in(d.path()));
        assert!(check_forced_target(d.path()).is_err());
        // A pid nobody has: stale.
        std::fs::write(d.path().join("postmaster.pid"), "2147483646\n").unwrap();
        assert!(!server_runs_in(d.path()));
        assert!(check_forced_target(d.path()).unwrap(), "holds something");
    }

    #[test]
    fn only_an_absent_or_empty_directory_is_a_target() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_target_dir(&d.path().join("new")).is_ok());
        assert!(check_target_dir(d.path()).is_ok());
        std::fs::write(d.path().join("postmaster.pid"), "1").unwrap();
        let e = check_target_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("postmaster.pid"), "{e}");
        std::fs::remove_file(d.path().join("postmaster.pid")).unwrap();
        std::fs::write(d.path().join("PG_VERSION"), "15").unwrap();
        let e = check_target_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("is not empty"), "{e}");
        let e = check_target_dir(&d.path().join("PG_VERSION"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
        assert!(check_target_dir(Path::new("relative")).is_err());
    }
}
