//! [`Backend`] over Apache OpenDAL (0.59): the local filesystem, memory and S3 (SFTP has
//! a backend of its own, [`crate::SftpBackend`]).
//!
//! Reads, listings, stats and deletes go through an opendal `Operator` for every service.
//! On the local filesystem, ranged reads (one `pread` each), writes and `create_layout` go
//! through [`crate::local`] instead, which gives what opendal's fs service does not: no
//! hand-off to tokio's blocking pool per small read, a directory fsync after the rename,
//! and modes 0600/0700 whatever the umask. Writes are in [`write`], the layout and the
//! removal of leftovers in [`layout`]; remote operators are built by [`crate::remote`].
//!
//! All methods must run inside a tokio runtime (local writes use `spawn_blocking`).
//! opendal errors are mapped by kind ([`StorageError::from_opendal`]); every error names
//! the operation and the object path.

mod layout;
mod write;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use async_trait::async_trait;
use bytes::Bytes;
use opendal::services::{Fs, Memory};
use opendal::Operator;
use tracing::{debug, debug_span, Instrument};

use crate::backend::object_path;
use crate::local;
use crate::location::Location;
use crate::remote::{self, RemoteOptions};
use crate::{Backend, ErrorKind, FileType, FreeSpace, Result, StorageError};

/// A repository store backed by an opendal service: the local filesystem, memory or S3.
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
        };
        backend.operator("open", "")?;
        Ok(backend)
    }

    /// A fresh, empty in-memory repository (for tests).
    pub fn memory() -> Result<Self> {
        let op = Operator::new(Memory::default())
            .map_err(|e| StorageError::from_opendal("open", "", e))?;
        Ok(OpendalBackend {
            location: "memory://".to_string(),
            local_root: None,
            op: OnceLock::from(op),
        })
    }

    /// A backend over a remote service's operator (built by [`crate::remote`]).
    fn remote(location: String, op: Operator) -> Self {
        OpendalBackend {
            location,
            local_root: None,
            op: OnceLock::from(op),
        }
    }

    /// A backend for a location given by a user: a plain path, `file:///abs/path`,
    /// `s3://…` or `memory://` (see [`crate::location`]). Other URLs, and `sftp://…`
    /// (which [`crate::open`] gives to [`crate::SftpBackend`]), are refused with an
    /// `ErrorKind::Other` error.
    pub fn from_location(s: &str) -> Result<Self> {
        Self::from_location_with(s, &RemoteOptions::default())
    }

    /// Like [`OpendalBackend::from_location`], with options for remote services (which
    /// override the environment).
    pub fn from_location_with(s: &str, opts: &RemoteOptions) -> Result<Self> {
        match Location::parse(s)? {
            Location::Fs(path) => Self::fs(&path),
            Location::Memory => Self::memory(),
            Location::Sftp { .. } => Err(StorageError::other(
                "open",
                "",
                format!("{s}: SFTP repositories are opened by strata_storage::open"),
            )),
            Location::S3 { bucket, prefix } => {
                let op = remote::s3(&bucket, &prefix, opts)?;
                Ok(Self::remote(s.to_string(), op))
            }
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
        let built = Operator::new(Fs::default().root(root_str))
            .map_err(|e| StorageError::from_opendal(op, path, e))?;
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
    fn is_remote(&self) -> bool {
        OpendalBackend::is_remote(self)
    }

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
                .map_err(|e| StorageError::from_opendal("read", &path, e))?;
            let bytes = exact(buf.to_bytes());
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
                let size = op
                    .stat(&path)
                    .await
                    .map_err(|e| StorageError::from_opendal(OP, &path, e))?;
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
                .map_err(|e| StorageError::from_opendal(OP, &path, e))?;
            if buf.len() as u64 != length {
                let msg = format!("short read: {} of {length} bytes at {offset}", buf.len());
                return Err(StorageError::other(OP, &path, msg));
            }
            debug!(offset, bytes = length, "read_range done");
            Ok(exact(buf.to_bytes()))
        }
        .instrument(span(OP, &path))
        .await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        self.write_object(ft, name, data).await
    }

    fn spool_dir(&self) -> Option<PathBuf> {
        // Spool file names are hidden, so listings skip them.
        self.local_root
            .as_ref()
            .map(|r| r.join(FileType::Pack.dir()))
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        self.write_spooled(ft, name, file).await
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
        if let Some(root) = &self.local_root {
            // A local directory is listed on one blocking thread: opendal's lister asks for
            // each entry's metadata as a task of its own (10,000 snapshots: 10,000 thread
            // hand-offs, ~0.15 s, for what read_dir and a stat each do in ~0.02 s).
            let root = root.clone();
            return async move {
                let listed = tokio::task::spawn_blocking(move || list_local(&root, ft))
                    .await
                    .map_err(|e| StorageError::other("list", &dir, format!("listing failed: {e}")))?
                    .map_err(|e| StorageError::from_io("list", &dir, e))?;
                debug!(objects = listed.len(), "list done");
                Ok(listed)
            }
            .instrument(span("list", ft.dir()))
            .await;
        }
        async {
            let Some(op) = self.operator("list", &dir)? else {
                return Ok(Vec::new());
            };
            let entries = op
                .list_with(&dir)
                .recursive(ft == FileType::Pack)
                .await
                .map_err(|e| StorageError::from_opendal("list", &dir, e))?;
            let mut objects: Vec<(String, u64)> = entries
                .iter()
                .filter(|e| e.metadata().is_file() && !crate::temp_names::is_hidden(e.name()))
                .map(|e| (e.name().to_string(), e.metadata().content_length()))
                .collect();
            objects.sort_unstable();
            debug!(objects = objects.len(), "list done");
            Ok(objects)
        }
        .instrument(span("list", &dir))
        .await
    }

    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        if ft == FileType::Config {
            for (name, size) in self.list(ft).await? {
                each(&name, size);
            }
            return Ok(());
        }
        let dir = format!("{}/", ft.dir());
        if let Some(root) = &self.local_root {
            // Walked on a blocking thread, handed over in batches (a few in flight).
            let root = root.clone();
            return async {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(String, u64)>>(2);
                let walk = tokio::task::spawn_blocking(move || {
                    let mut batch = Vec::with_capacity(LIST_BATCH);
                    let mut open = true;
                    walk_local(&root, ft, &mut |name, size| {
                        batch.push((name, size));
                        if batch.len() == LIST_BATCH {
                            let full =
                                std::mem::replace(&mut batch, Vec::with_capacity(LIST_BATCH));
                            open = tx.blocking_send(full).is_ok();
                        }
                        open
                    })?;
                    if open && !batch.is_empty() {
                        let _ = tx.blocking_send(batch);
                    }
                    Ok::<_, std::io::Error>(())
                });
                let mut objects = 0usize;
                while let Some(batch) = rx.recv().await {
                    objects += batch.len();
                    for (name, size) in batch {
                        each(&name, size);
                    }
                }
                walk.await
                    .map_err(|e| StorageError::other("list", &dir, format!("listing failed: {e}")))?
                    .map_err(|e| StorageError::from_io("list", &dir, e))?;
                debug!(objects, "list done");
                Ok(())
            }
            .instrument(span("list", ft.dir()))
            .await;
        }
        async {
            let Some(op) = self.operator("list", &dir)? else {
                return Ok(());
            };
            let mut lister = op
                .lister_with(&dir)
                .recursive(ft == FileType::Pack)
                .await
                .map_err(|e| StorageError::from_opendal("list", &dir, e))?;
            let mut objects = 0usize;
            while let Some(entry) = futures::TryStreamExt::try_next(&mut lister)
                .await
                .map_err(|e| StorageError::from_opendal("list", &dir, e))?
            {
                if entry.metadata().is_file() && !crate::temp_names::is_hidden(entry.name()) {
                    objects += 1;
                    each(entry.name(), entry.metadata().content_length());
                }
            }
            debug!(objects, "list done");
            Ok(())
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
                Err(e) => return Err(StorageError::from_opendal("delete", &path, e)),
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
                Err(e) => return Err(StorageError::from_opendal("stat", &path, e)),
            };
            debug!(bytes = size, "stat done");
            Ok(size)
        }
        .instrument(span("stat", &path))
        .await
    }

    // statvfs's counts are `c_ulong` and `fsblkcnt_t`: u64 on some targets, not all.
    #[allow(clippy::unnecessary_cast)]
    async fn free_space(&self) -> Result<Option<FreeSpace>> {
        // Local disks only; S3 and memory have no such notion. A root not made yet has none.
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        match nix::sys::statvfs::statvfs(root.as_path()) {
            Ok(st) => Ok(Some(FreeSpace::from_blocks(
                st.fragment_size() as u64,
                st.block_size() as u64,
                st.blocks() as u64,
                st.blocks_available() as u64,
            ))),
            Err(nix::errno::Errno::ENOENT) => Ok(None),
            Err(e) => Err(StorageError::from_io("free_space", "", e.into())),
        }
    }

    async fn create_layout(&self) -> Result<()> {
        self.create_dirs().await
    }

    async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64> {
        self.remove_temp_files(min_age).await
    }
}

fn span(op: &'static str, path: &str) -> tracing::Span {
    debug_span!("storage", op, path)
}

/// Reads below this size are copied out of opendal's buffer (see [`exact`]).
const COPY_BELOW: usize = 4 << 20;

/// `bytes` in an allocation of its own size when it is small. opendal reads into chunks of
/// a couple of MiB and hands back a slice that keeps the whole chunk alive: a 400-byte
/// snapshot file held 2 MiB, and listing 10,000 snapshots took 20 GB. A small read is
/// copied (cheap); a large one wastes at most one chunk, a fraction of its own size.
fn exact(bytes: Bytes) -> Bytes {
    if bytes.len() < COPY_BELOW {
        Bytes::copy_from_slice(&bytes)
    } else {
        bytes
    }
}

/// Objects a local listing hands over at a time in [`Backend::list_each`].
const LIST_BATCH: usize = 4096;

/// The objects of type `ft` under a local repository root, sorted, with their sizes (see
/// [`walk_local`]).
fn list_local(root: &Path, ft: FileType) -> std::io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    walk_local(root, ft, &mut |name, size| {
        out.push((name, size));
        true
    })?;
    out.sort_unstable();
    Ok(out)
}

/// Calls `each` with the objects of type `ft` under a local repository root and their
/// sizes, in directory order, until it returns `false`: regular files only (not
/// symlinks), hidden temporary names skipped, packs one level down (`data/<xx>/<id>`). A
/// directory that does not exist (yet) lists nothing.
fn walk_local(
    root: &Path,
    ft: FileType,
    each: &mut dyn FnMut(String, u64) -> bool,
) -> std::io::Result<()> {
    fn files_in(
        dir: &Path,
        each: &mut dyn FnMut(String, u64) -> bool,
        depth: u8,
    ) -> std::io::Result<bool> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if crate::temp_names::is_hidden(name) {
                continue;
            }
            if kind.is_dir() && depth > 0 {
                if !files_in(&entry.path(), each, depth - 1)? {
                    return Ok(false);
                }
            } else if kind.is_file() {
                match entry.metadata() {
                    Ok(meta) => {
                        if !each(name.to_string(), meta.len()) {
                            return Ok(false);
                        }
                    }
                    // Deleted since read_dir saw it (a prune beside us): not there.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(true)
    }
    let depth = if ft == FileType::Pack { 1 } else { 0 };
    files_in(&root.join(ft.dir()), each, depth)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    /// A local listing of more packs than one batch hands every one over, once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_local_listing_in_batches_passes_every_object_once() {
        let dir = tempfile::tempdir().unwrap();
        let b = OpendalBackend::fs(dir.path()).unwrap();
        b.create_layout().await.unwrap();
        let n = LIST_BATCH * 2 + 17;
        let mut expected = Vec::new();
        for i in 0..n {
            let name = blake3::hash(&i.to_le_bytes()).to_hex().to_string();
            let sub = dir.path().join("data").join(&name[..2]);
            std::fs::create_dir_all(&sub).unwrap();
            std::fs::write(sub.join(&name), vec![0u8; i % 5]).unwrap();
            expected.push((name, (i % 5) as u64));
        }
        expected.sort();
        let mut listed = Vec::new();
        b.list_each(FileType::Pack, &mut |name, size| {
            listed.push((name.to_string(), size))
        })
        .await
        .unwrap();
        assert_eq!(listed.len(), n);
        listed.sort();
        assert_eq!(listed, expected);
        assert_eq!(b.list(FileType::Pack).await.unwrap(), expected);
    }
}
