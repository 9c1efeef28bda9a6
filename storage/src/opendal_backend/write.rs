//! Writes, one way per kind of service, all atomic:
//! - the local filesystem: [`crate::local`] writes a temporary file, fsyncs it, renames it
//!   into place and fsyncs the directory; a spool file is renamed into place (same file
//!   system), never copied;
//! - S3 and memory: one request replaces the object whole.
//!
//! A remote write is then checked with a stat: an object the server kept shorter than what
//! was sent is a transient failure (retried above), never a success.

use std::path::Path;

use bytes::Bytes;
use tracing::{debug, Instrument};

use super::{span, OpendalBackend};
use crate::backend::object_path;
use crate::{local, ErrorKind, FileType, Result, StorageError};

impl OpendalBackend {
    /// [`crate::Backend::write`].
    pub(super) async fn write_object(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        let path = object_path("write", ft, name)?;
        async {
            let bytes = data.len();
            if let Some(root) = self.local_root.clone() {
                let rel = path.clone();
                tokio::task::spawn_blocking(move || local::write_atomic(&root, &rel, data))
                    .await
                    .map_err(|e| StorageError::other("write", &path, e.to_string()))?
                    .map_err(|e| StorageError::from_io("write", &path, e))?;
            } else {
                let op = self.existing_operator("write", &path)?;
                op.write(&path, data)
                    .await
                    .map_err(|e| StorageError::from_opendal("write", &path, e))?;
            }
            if self.local_root.is_none() {
                // What the server kept must at least have the size that was sent.
                let op = self.existing_operator("write", &path)?;
                let kept = op
                    .stat(&path)
                    .await
                    .map_err(|e| StorageError::from_opendal("write", &path, e))?
                    .content_length();
                if kept != bytes as u64 {
                    let msg = format!("the server kept {kept} bytes of the {bytes} written");
                    return Err(StorageError::new(ErrorKind::Transient, "write", &path, msg));
                }
            }
            debug!(bytes, "write done");
            Ok(())
        }
        .instrument(span("write", &path))
        .await
    }

    /// [`crate::Backend::write_file`].
    pub(super) async fn write_spooled(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            // The file is removed only once the upload succeeded, so that a transient
            // failure can be retried with it (the caller removes it after a final failure).
            let path = file.to_path_buf();
            let data = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| StorageError::other("write", name, e.to_string()))?
                .map_err(|e| StorageError::from_io("write", name, e))?;
            self.write_object(ft, name, Bytes::from(data)).await?;
            let _ = std::fs::remove_file(file);
            return Ok(());
        };
        let path = object_path("write", ft, name)?;
        let src = file.to_path_buf();
        let rel = path.clone();
        async {
            tokio::task::spawn_blocking(move || local::install_file(&root, &rel, &src))
                .await
                .map_err(|e| StorageError::other("write", &path, e.to_string()))?
                .map_err(|e| StorageError::from_io("write", &path, e))?;
            debug!("write_file done");
            Ok(())
        }
        .instrument(span("write", &path))
        .await
    }
}
