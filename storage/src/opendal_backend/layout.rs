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

    /// [`crate::Backend::remove_leftovers`]: only names [`temp_names::is_leftover`] knows.
    pub(super) async fn remove_temp_files(&self) -> Result<u64> {
        const OP: &str = "remove_leftovers";
        if self.local_root.is_none() {
            return Ok(0);
        }
        async {
            let Some(op) = self.operator(OP, "")? else {
                return Ok(0);
            };
            let mut removed = 0;
            let mut first_error = None;
            // Not `locks/`: the caller's own lock refresher may be writing there right now.
            for dir in ["", "keys/", "data/", "index/", "snapshots/", "evidence/"] {
                let entries = match op.list_with(dir).recursive(dir == "data/").await {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::from_opendal(OP, dir, e)),
                };
                for e in entries {
                    if !e.metadata().is_file() || !temp_names::is_leftover(e.name()) {
                        continue;
                    }
                    // One that cannot be removed does not keep the others.
                    match op.delete(e.path()).await {
                        Ok(()) => removed += 1,
                        Err(err) if err.kind() == opendal::ErrorKind::NotFound => {}
                        Err(err) => {
                            first_error.get_or_insert_with(|| {
                                StorageError::from_opendal(OP, e.path(), err)
                            });
                        }
                    }
                }
            }
            debug!(removed, "remove_leftovers done");
            match first_error {
                Some(e) => Err(e),
                None => Ok(removed),
            }
        }
        .instrument(span(OP, ""))
        .await
    }
}
