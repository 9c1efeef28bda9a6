//! The directory layout of a new repository, and the removal of what killed writers left.
//!
//! `create_layout` makes every directory of the layout up front (`data/00` to `data/ff`
//! included): mode 0700 on a local disk, and wherever a service has directories at all
//! (opendal's `create_dir` capability). Temporary files exist only where writes are renamed
//! into place (the local disk); `remove_leftovers` looks for them in every directory but
//! `locks/`.

use tracing::{debug, Instrument};

use super::{span, OpendalBackend};
use crate::backend::layout_dirs;
use crate::{local, temp_names, Result, StorageError};

impl OpendalBackend {
    /// [`crate::Backend::create_layout`].
    pub(super) async fn create_dirs(&self) -> Result<()> {
        let dirs = layout_dirs();
        async {
            if let Some(root) = self.local_root.clone() {
                tokio::task::spawn_blocking(move || local::create_layout(&root, &dirs))
                    .await
                    .map_err(|e| StorageError::other("create_layout", "", e.to_string()))?
                    .map_err(|e| StorageError::from_io("create_layout", "", e))?;
                // Build the operator now that the root exists.
                self.operator("create_layout", "")?;
            } else {
                let op = self.existing_operator("create_layout", "")?;
                if op.info().capability().create_dir {
                    for dir in &dirs {
                        let dir = format!("{dir}/");
                        op.create_dir(&dir)
                            .await
                            .map_err(|e| StorageError::from_opendal("create_layout", &dir, e))?;
                    }
                }
            }
            debug!("create_layout done");
            Ok(())
        }
        .instrument(span("create_layout", ""))
        .await
    }

    /// [`crate::Backend::remove_leftovers`]: only names [`temp_names::is_leftover`] knows,
    /// last written at least `min_age` ago. The directories are read with `readdir` on a
    /// blocking thread, a name at a time (opendal's listing would hold every pack's entry
    /// and stat each one: 180 MB and 16 s for 600,000 packs); only leftovers are looked at.
    pub(super) async fn remove_temp_files(&self, min_age: std::time::Duration) -> Result<u64> {
        const OP: &str = "remove_leftovers";
        let Some(root) = self.local_root.clone() else {
            return Ok(0);
        };
        async {
            let (removed, first_error) =
                tokio::task::spawn_blocking(move || remove_local_leftovers(&root, min_age))
                    .await
                    .map_err(|e| StorageError::other(OP, "", e.to_string()))?;
            debug!(removed, "remove_leftovers done");
            match first_error {
                Some((path, e)) => Err(StorageError::from_io(OP, &path, e)),
                None => Ok(removed),
            }
        }
        .instrument(span(OP, ""))
        .await
    }
}

/// Removes the leftovers below a local repository root (see [`OpendalBackend::remove_temp_files`]);
/// returns how many, and the first failure (one that cannot be removed does not keep the
/// others). Not `locks/`: the caller's own lock refresher may be writing there right now.
fn remove_local_leftovers(
    root: &std::path::Path,
    min_age: std::time::Duration,
) -> (u64, Option<(String, std::io::Error)>) {
    let mut removed = 0;
    let mut first_error: Option<(String, std::io::Error)> = None;
    let mut fail = |path: &std::path::Path, e: std::io::Error| {
        if first_error.is_none() {
            let rel = path.strip_prefix(root).unwrap_or(path);
            first_error = Some((rel.display().to_string(), e));
        }
    };
    let mut dirs: Vec<std::path::PathBuf> = ["", "keys", "index", "snapshots", "evidence"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let data = root.join("data");
    match std::fs::read_dir(&data) {
        Ok(entries) => {
            dirs.push(data.clone());
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => fail(&data, e),
    }
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                fail(&dir, e);
                continue;
            }
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if !name.to_str().is_some_and(temp_names::is_leftover) {
                continue;
            }
            let path = e.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    fail(&path, e);
                    continue;
                }
            };
            if !temp_names::old_enough(meta.modified().ok(), min_age) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => fail(&path, e),
            }
        }
    }
    (removed, first_error)
}
