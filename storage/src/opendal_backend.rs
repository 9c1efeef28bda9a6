//! [`Backend`] over Apache OpenDAL (0.59).
//!
//! Reads, ranged reads, listings, stats and deletes go through an opendal `Operator` for
//! every service. Writes and `create_layout` on the local filesystem go through
//! [`crate::local`] instead, which gives what opendal's fs writer does not: a directory
//! fsync after the rename, and modes 0600/0700 whatever the umask.
//!
//! All methods must run inside a tokio runtime (local writes use `spawn_blocking`).
//! opendal errors are mapped by kind: not found, permission denied, temporary (retryable)
//! or other; every error names the operation and the object path.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use opendal::services::{Fs, Memory};
use opendal::Operator;
use tracing::{debug, debug_span, Instrument};

use crate::local;
use crate::location::Location;
pub use crate::remote::RemoteOptions;
use crate::{Backend, ErrorKind, FileType, Result, StorageError};

/// A repository store backed by an opendal service (local filesystem or memory for now).
#[derive(Debug, Clone)]
pub struct OpendalBackend {
    /// What [`Backend::location`] shows.
    location: String,
    /// The absolute repository root, for the local filesystem only.
    local_root: Option<PathBuf>,
    /// The operator. For the local filesystem it is built only once the root exists,
    /// because opendal's fs builder creates a missing root: opening a mistyped path must
    /// not leave an empty directory behind.
    op: OnceLock<Operator>,
    /// Writes go to a temporary name and are renamed into place (SFTP, where opendal writes
    /// in place and a reader could see half an object).
    rename_writes: bool,
    /// SFTP: the side channel that makes each temporary file 0600 and durable before the
    /// rename, and the layout's directories 0700.
    sealer: Option<Arc<crate::sftp::Sealer>>,
}

impl OpendalBackend {
    /// A repository in the local directory `root` (which need not exist yet:
    /// [`Backend::create_layout`] creates it).
    pub fn fs(root: &Path) -> Result<Self> {
        let root = std::path::absolute(root).map_err(|e| StorageError::from_io("open", "", e))?;
        if root.to_str().is_none() {
            return Err(StorageError::other(
                "open",
                "",
                format!("repository path {} is not valid UTF-8", root.display()),
            ));
        }
        let backend = OpendalBackend {
            location: root.display().to_string(),
            local_root: Some(root),
            op: OnceLock::new(),
            rename_writes: false,
            sealer: None,
        };
        backend.operator("open", "")?;
        Ok(backend)
    }

    /// A fresh, empty in-memory repository (for tests).
    pub fn memory() -> Result<Self> {
        let op = Operator::new(Memory::default()).map_err(|e| map_err("open", "", e))?;
        Ok(OpendalBackend {
            location: "memory://".to_string(),
            local_root: None,
            op: OnceLock::from(op),
            rename_writes: false,
            sealer: None,
        })
    }

    /// A backend over a remote service's operator (built by [`crate::remote`]). An SFTP
    /// backend (with a sealer) writes to temporary names and renames them into place.
    pub(crate) fn remote(
        location: String,
        op: Operator,
        sealer: Option<crate::sftp::Sealer>,
    ) -> Self {
        OpendalBackend {
            location,
            local_root: None,
            op: OnceLock::from(op),
            rename_writes: sealer.is_some(),
            sealer: sealer.map(Arc::new),
        }
    }

    /// A backend for a location given by a user: a plain path, `file:///abs/path`,
    /// `sftp://…`, `s3://…` or `memory://` (see [`crate::location`]). Other URLs are
    /// refused with an `ErrorKind::Other` error.
    pub fn from_location(s: &str) -> Result<Self> {
        Self::from_location_with(s, &RemoteOptions::default())
    }

    /// Like [`OpendalBackend::from_location`], with options for remote services (which
    /// override the environment).
    pub fn from_location_with(s: &str, opts: &RemoteOptions) -> Result<Self> {
        match Location::parse(s)? {
            Location::Fs(path) => Self::fs(&path),
            Location::Memory => Self::memory(),
            Location::Sftp {
                user,
                host,
                port,
                path,
            } => crate::remote::sftp(s, user.as_deref(), &host, port, &path, opts),
            Location::S3 { bucket, prefix } => crate::remote::s3(s, &bucket, &prefix, opts),
        }
    }

    /// Whether the repository is on a remote service (SFTP, S3).
    pub fn is_remote(&self) -> bool {
        self.local_root.is_none() && self.location != "memory://"
    }

    /// The operator, or `None` while a local root does not exist.
    fn operator(&self, op: &'static str, path: &str) -> Result<Option<&Operator>> {
        if let Some(operator) = self.op.get() {
            return Ok(Some(operator));
        }
        let Some(root) = &self.local_root else {
            return Err(StorageError::other(op, path, "backend has no operator"));
        };
        match std::fs::metadata(root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(not_a_directory(op, path, root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(not_a_directory(op, path, root))
            }
            Err(e) => return Err(StorageError::from_io(op, path, e)),
        }
        let root_str = root.to_str().unwrap_or_default();
        let built =
            Operator::new(Fs::default().root(root_str)).map_err(|e| map_err(op, path, e))?;
        Ok(Some(self.op.get_or_init(|| built)))
    }

    /// The operator, or a `NotFound` error naming the missing root.
    fn existing_operator(&self, op: &'static str, path: &str) -> Result<&Operator> {
        self.operator(op, path)?.ok_or_else(|| {
            let msg = format!("repository directory {} does not exist", self.location);
            StorageError::new(ErrorKind::NotFound, op, path, msg)
        })
    }
}

/// The error for a local repository root that is not a directory, or lies below a file:
/// it names the file in the way.
fn not_a_directory(op: &'static str, path: &str, root: &Path) -> StorageError {
    let file = root
        .ancestors()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()));
    let msg = match file {
        Some(f) if f == root => format!(
            "no repository at {}: it is a file, not a directory",
            root.display()
        ),
        Some(f) => format!(
            "no repository at {}: {} is a file, not a directory",
            root.display(),
            f.display()
        ),
        None => format!("no repository at {}: it is not a directory", root.display()),
    };
    StorageError::new(ErrorKind::NotADirectory, op, path, msg)
}

#[async_trait]
impl Backend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        let path = object_path("read", ft, name)?;
        async {
            let op = self.existing_operator("read", &path)?;
            let buf = op
                .read(&path)
                .await
                .map_err(|e| map_err("read", &path, e))?;
            let bytes = buf.to_bytes();
            debug!(bytes = bytes.len(), "read done");
            Ok(bytes)
        }
        .instrument(span("read", &path))
        .await
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        const OP: &str = "read_range";
        let path = object_path(OP, ft, name)?;
        async {
            if let Some(root) = &self.local_root {
                if length > 0 {
                    return match local::read_range(root, &path, offset, length) {
                        Ok(Some(buf)) => {
                            debug!(offset, bytes = length, "read_range done");
                            Ok(Bytes::from(buf))
                        }
                        Ok(None) => {
                            let msg = format!("range {offset}+{length} is beyond the end");
                            Err(StorageError::other(OP, &path, msg))
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !root.is_dir() => {
                            let msg =
                                format!("repository directory {} does not exist", self.location);
                            Err(StorageError::new(ErrorKind::NotFound, OP, &path, msg))
                        }
                        Err(e) => Err(StorageError::from_io(OP, &path, e)),
                    };
                }
            }
            let op = self.existing_operator(OP, &path)?;
            let past_end = |size: u64| {
                let msg = format!("range {offset}+{length} is beyond the end ({size} bytes)");
                StorageError::other(OP, &path, msg)
            };
            let Some(end) = offset.checked_add(length) else {
                let msg = format!("range {offset}+{length} overflows");
                return Err(StorageError::other(OP, &path, msg));
            };
            if length == 0 {
                // opendal has no empty range; check the bounds with a stat instead.
                let size = op.stat(&path).await.map_err(|e| map_err(OP, &path, e))?;
                let size = size.content_length();
                return if offset <= size {
                    Ok(Bytes::new())
                } else {
                    Err(past_end(size))
                };
            }
            let buf = op
                .read_with(&path)
                .range(offset..end)
                .await
                .map_err(|e| map_err(OP, &path, e))?;
            if buf.len() as u64 != length {
                let msg = format!("short read: {} of {length} bytes at {offset}", buf.len());
                return Err(StorageError::other(OP, &path, msg));
            }
            debug!(offset, bytes = length, "read_range done");
            Ok(buf.to_bytes())
        }
        .instrument(span(OP, &path))
        .await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        let path = object_path("write", ft, name)?;
        async {
            let bytes = data.len();
            if let Some(root) = self.local_root.clone() {
                let rel = path.clone();
                tokio::task::spawn_blocking(move || local::write_atomic(&root, &rel, data))
                    .await
                    .map_err(|e| StorageError::other("write", &path, e.to_string()))?
                    .map_err(|e| StorageError::from_io("write", &path, e))?;
            } else if self.rename_writes {
                let op = self.existing_operator("write", &path)?;
                let (dir, _) = path.rsplit_once('/').unwrap_or(("", &path));
                let tmp = format!("{dir}/.tmp-{:016x}", rand_u64());
                op.write(&tmp, data)
                    .await
                    .map_err(|e| map_err("write", &path, e))?;
                if let Some(sealer) = &self.sealer {
                    if let Err(e) = sealer.seal(&tmp).await {
                        let _ = op.delete(&tmp).await;
                        return Err(StorageError::new(e.kind, "write", &path, e.to_string()));
                    }
                }
                if let Err(e) = op.rename(&tmp, &path).await {
                    let _ = op.delete(&tmp).await;
                    return Err(map_err("write", &path, e));
                }
            } else {
                let op = self.existing_operator("write", &path)?;
                op.write(&path, data)
                    .await
                    .map_err(|e| map_err("write", &path, e))?;
            }
            if self.local_root.is_none() {
                // What the server kept must at least have the size that was sent.
                let op = self.existing_operator("write", &path)?;
                let kept = op
                    .stat(&path)
                    .await
                    .map_err(|e| map_err("write", &path, e))?
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

    fn spool_dir(&self) -> Option<PathBuf> {
        // Temp names start with '.', so listings skip them.
        self.local_root
            .as_ref()
            .map(|r| r.join(FileType::Pack.dir()))
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            // The file is removed only once the upload succeeded, so that a transient
            // failure can be retried with it (the caller removes it after a final failure).
            let path = file.to_path_buf();
            let data = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .map_err(|e| StorageError::other("write", name, e.to_string()))?
                .map_err(|e| StorageError::from_io("write", name, e))?;
            self.write(ft, name, Bytes::from(data)).await?;
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

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        if ft == FileType::Config {
            let size = self.stat(ft, "").await?;
            return Ok(size
                .map(|s| ("config".to_string(), s))
                .into_iter()
                .collect());
        }
        let dir = format!("{}/", ft.dir());
        async {
            let Some(op) = self.operator("list", &dir)? else {
                return Ok(Vec::new());
            };
            let entries = op
                .list_with(&dir)
                .recursive(ft == FileType::Pack)
                .await
                .map_err(|e| map_err("list", &dir, e))?;
            let mut objects: Vec<(String, u64)> = entries
                .iter()
                .filter(|e| e.metadata().is_file() && !local::is_temp_name(e.name()))
                .map(|e| (e.name().to_string(), e.metadata().content_length()))
                .collect();
            objects.sort_unstable();
            debug!(objects = objects.len(), "list done");
            Ok(objects)
        }
        .instrument(span("list", &dir))
        .await
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        let path = object_path("delete", ft, name)?;
        async {
            let Some(op) = self.operator("delete", &path)? else {
                return Ok(());
            };
            match op.delete(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(map_err("delete", &path, e)),
            }
            debug!("delete done");
            Ok(())
        }
        .instrument(span("delete", &path))
        .await
    }

    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
        let path = object_path("stat", ft, name)?;
        async {
            let Some(op) = self.operator("stat", &path)? else {
                return Ok(None);
            };
            let size = match op.stat(&path).await {
                Ok(meta) => Some(meta.content_length()),
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => None,
                Err(e) => return Err(map_err("stat", &path, e)),
            };
            debug!(bytes = size, "stat done");
            Ok(size)
        }
        .instrument(span("stat", &path))
        .await
    }

    async fn create_layout(&self) -> Result<()> {
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
                            .map_err(|e| map_err("create_layout", &dir, e))?;
                    }
                }
                if let Some(sealer) = &self.sealer {
                    sealer.restrict_dirs(&dirs).await?;
                }
            }
            debug!("create_layout done");
            Ok(())
        }
        .instrument(span("create_layout", ""))
        .await
    }

    async fn remove_leftovers(&self) -> Result<u64> {
        const OP: &str = "remove_leftovers";
        if self.local_root.is_none() && !self.rename_writes {
            return Ok(0);
        }
        async {
            let Some(op) = self.operator(OP, "")? else {
                return Ok(0);
            };
            let mut removed = 0;
            let mut first_error = None;
            // Not `locks/`: the caller's own lock refresher may be writing there right now.
            for dir in ["", "keys/", "data/", "index/", "snapshots/"] {
                let entries = match op.list_with(dir).recursive(dir == "data/").await {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == opendal::ErrorKind::NotFound => continue,
                    Err(e) => return Err(map_err(OP, dir, e)),
                };
                for e in entries {
                    if !e.metadata().is_file() || !local::is_leftover_name(e.name()) {
                        continue;
                    }
                    // One that cannot be removed does not keep the others.
                    match op.delete(e.path()).await {
                        Ok(()) => removed += 1,
                        Err(err) if err.kind() == opendal::ErrorKind::NotFound => {}
                        Err(err) => {
                            first_error.get_or_insert_with(|| map_err(OP, e.path(), err));
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

/// The directories of a repository, parents first.
fn layout_dirs() -> Vec<String> {
    let mut dirs = vec!["keys".to_string(), "data".to_string()];
    dirs.extend((0..=255u8).map(|b| format!("data/{b:02x}")));
    dirs.extend(["index", "snapshots", "locks"].map(String::from));
    dirs
}

/// The path of an object, refusing names that could escape its directory or be mistaken
/// for temp files.
fn object_path(op: &'static str, ft: FileType, name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && !local::is_temp_name(name)
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control);
    if ft != FileType::Config && !valid {
        return Err(StorageError::other(op, name, "invalid object name"));
    }
    Ok(ft.path(name))
}

fn span(op: &'static str, path: &str) -> tracing::Span {
    debug_span!("storage", op, path)
}

/// A random number for temporary names (no cryptographic strength needed).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Maps an opendal error onto our kinds.
pub(crate) fn map_err(op: &'static str, path: &str, err: opendal::Error) -> StorageError {
    let kind = match err.kind() {
        opendal::ErrorKind::NotFound => ErrorKind::NotFound,
        opendal::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
        _ if err.is_temporary() => ErrorKind::Transient,
        _ => ErrorKind::Other,
    };
    StorageError::new(kind, op, path, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_every_pack_dir() {
        let dirs = layout_dirs();
        assert_eq!(dirs.len(), 2 + 256 + 3);
        assert_eq!(dirs[2], "data/00");
        assert_eq!(dirs[257], "data/ff");
    }

    #[test]
    fn object_names_are_checked() {
        assert_eq!(object_path("read", FileType::Key, "ab").unwrap(), "keys/ab");
        assert_eq!(object_path("read", FileType::Config, "").unwrap(), "config");
        for bad in ["", ".x", "../x", "a/b", "a\\b", "a\nb"] {
            let err = object_path("read", FileType::Index, bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Other, "{bad:?}");
        }
    }

    /// Regression: a repository path that is a file was an `Other` error (exit code 1, not
    /// "no repository").
    #[test]
    fn a_root_that_is_a_file_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        for (root, named) in [
            (file.clone(), "it is a file"),
            (file.join("sub"), "file is a file"),
        ] {
            let err = OpendalBackend::fs(&root).unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotADirectory, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("no repository at {}", root.display()))
                    && text.contains(named),
                "{text}"
            );
        }
    }

    #[test]
    fn opendal_kinds_map() {
        let e = opendal::Error::new(opendal::ErrorKind::NotFound, "gone");
        assert_eq!(map_err("read", "x", e).kind, ErrorKind::NotFound);
        let e = opendal::Error::new(opendal::ErrorKind::PermissionDenied, "no");
        assert_eq!(map_err("read", "x", e).kind, ErrorKind::PermissionDenied);
        let e = opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary();
        assert_eq!(map_err("read", "x", e).kind, ErrorKind::Transient);
        let e = opendal::Error::new(opendal::ErrorKind::Unexpected, "bad");
        let err = map_err("read", "keys/x", e);
        assert_eq!(err.kind, ErrorKind::Other);
        assert!(err
            .to_string()
            .starts_with("storage read of keys/x: failed: "));
    }
}
