use async_trait::async_trait;
use bytes::Bytes;

use crate::spool::{SpoolError, SpoolFile};
use crate::{Result, StorageError};

/// The kinds of objects a repository stores; each lives under its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `config` (the name is ignored).
    Config,
    /// `keys/<name>`
    Key,
    /// `data/<first 2 chars of name>/<name>`
    Pack,
    /// `index/<name>`
    Index,
    /// `snapshots/<name>`
    Snapshot,
    /// `locks/<name>`
    Lock,
    /// `evidence/<name>`: run summaries and restore-test reports (spec/evidence.md).
    Evidence,
    /// `wal/<name>`: archived PostgreSQL WAL files and the blobs holding them (spec/wal.md).
    Wal,
}

impl FileType {
    /// Every file type, in layout order.
    pub const ALL: [FileType; 8] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Evidence,
        FileType::Wal,
    ];

    /// The directory holding objects of this type (`""` for config).
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Evidence => "evidence",
            FileType::Wal => "wal",
        }
    }

    /// The path of an object relative to the repository root.
    pub fn path(self, name: &str) -> String {
        match self {
            FileType::Config => "config".to_string(),
            FileType::Pack => {
                let prefix = name.get(..2).unwrap_or("00");
                format!("data/{prefix}/{name}")
            }
            other => format!("{}/{name}", other.dir()),
        }
    }
}

/// Room on a repository's storage ([`Backend::free_space`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes an unprivileged writer may still use.
    pub free_bytes: u64,
    pub total_bytes: u64,
}

impl FreeSpace {
    /// From a statvfs's block counts (`frsize` the fragment size, 0: use `bsize`).
    pub fn from_blocks(frsize: u64, bsize: u64, blocks: u64, bavail: u64) -> FreeSpace {
        let unit = if frsize > 0 { frsize } else { bsize };
        FreeSpace {
            free_bytes: bavail.saturating_mul(unit),
            total_bytes: blocks.saturating_mul(unit),
        }
    }
}

/// A repository store. Implementations must be safe to share between threads.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A human-readable location (path or URL without secrets), for messages.
    fn location(&self) -> String;

    /// Whether it is reached over a network (SFTP, S3), where every request costs a round
    /// trip: readers then keep more requests in flight. Decorators pass the inner one's on.
    fn is_remote(&self) -> bool {
        false
    }

    /// Reads a whole object. Missing objects give `ErrorKind::NotFound`.
    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes>;

    /// Reads `length` bytes at `offset`. Reading past the end is an error (`Corrupt` kind is
    /// not known here, so it is reported as `ErrorKind::Other` or `NotFound` for a missing
    /// object); a short result is never returned silently.
    async fn read_range(&self, ft: FileType, name: &str, offset: u64, length: u64)
        -> Result<Bytes>;

    /// Reads a whole pack that holds metadata only (trees, dictionaries). A cache keeps such
    /// packs ([`crate::CachingBackend`]); the default reads it like any object.
    async fn read_metadata_pack(&self, name: &str) -> Result<Bytes> {
        self.read(FileType::Pack, name).await
    }

    /// Writes a pack that holds metadata only from a local file, as
    /// [`Backend::write_file`] does; a cache keeps a copy once it is stored, so that the
    /// next walk of its trees needs no request. The default writes it like any pack.
    async fn write_metadata_pack(&self, name: &str, file: &std::path::Path) -> Result<()> {
        self.write_file(FileType::Pack, name, file).await
    }

    /// Makes the local cache hold these metadata packs (`(name, size)`: every metadata pack
    /// the repository's index names), fetching the missing ones, up to `parallel` at once,
    /// and dropping cached packs not among them. Returns how many were fetched. Without a
    /// cache (the default), nothing. Cache failures are no error: the cache is a shortcut.
    async fn sync_metadata_packs(&self, packs: &[(String, u64)], parallel: usize) -> Result<usize> {
        let _ = (packs, parallel);
        Ok(0)
    }

    /// Writes an object atomically and durably. Objects are content addressed by their
    /// callers, so writing an existing name with the same content is harmless.
    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()>;

    /// The local directory where [`Backend::spool_file`] creates files, so that
    /// [`Backend::write_file`] can move them into place without copying (same file system).
    /// `None`: the system's temporary directory. Decorators pass the inner backend's on.
    fn spool_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// A new spool file (in [`Backend::spool_dir`], else the system's temporary directory)
    /// in which to assemble an object for [`Backend::write_file`].
    fn spool_file(&self) -> std::result::Result<SpoolFile, SpoolError> {
        let dir = self.spool_dir().unwrap_or_else(std::env::temp_dir);
        SpoolFile::create_in(&dir)
    }

    /// Writes an object from a local file (a [`SpoolFile`]'s path), like [`Backend::write`],
    /// and consumes the file (it is moved into place or deleted, also on error when
    /// possible). The default reads it into memory; the local backend renames it.
    async fn write_file(&self, ft: FileType, name: &str, file: &std::path::Path) -> Result<()> {
        let data = read_and_remove(name, file).await?;
        self.write(ft, name, data).await
    }

    /// Lists every object of a type as `(name, size)`, sorted by name. Names are the last
    /// path component (for packs, without the `data/xx/` prefix). A missing directory is an
    /// empty list.
    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>>;

    /// Calls `each` with every object of a type as `(name, size)` (names as
    /// [`Backend::list`] gives them), in no particular order, without holding the whole
    /// listing: a repository of millions of packs is listed in the memory of one page of
    /// it. An object may be passed more than once (a listing that failed part way and was
    /// retried starts again), none is left out. The default passes on [`Backend::list`]'s
    /// result; backends that can list in pages override it, decorators pass it on.
    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        for (name, size) in self.list(ft).await? {
            each(&name, size);
        }
        Ok(())
    }

    /// Deletes an object. Deleting a missing object is not an error.
    async fn delete(&self, ft: FileType, name: &str) -> Result<()>;

    /// The size of an object, or `None` if it does not exist.
    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>>;

    /// The room left on the storage that holds the repository, where the backend can
    /// tell: a local disk (statvfs), an SFTP server with the `statvfs@openssh.com`
    /// extension. `None` where it cannot (S3, memory, an SFTP server without it).
    /// Decorators pass the inner one's on.
    async fn free_space(&self) -> Result<Option<FreeSpace>> {
        Ok(None)
    }

    /// Creates the directory layout of a new repository (no-op where directories do not
    /// exist, like S3).
    async fn create_layout(&self) -> Result<()>;

    /// Removes the temporary files that killed writers left in the repository (local and
    /// SFTP writes go to a temporary name first; a local repository's spool files) and
    /// that were last written at least `min_age` ago; returns how many. `locks/` is left
    /// alone. A running writer's temporary file looks the same: a caller that cannot rule
    /// out writers starting beside it passes an age no write takes (a file whose time the
    /// store does not give is then left). Backends that write in one request (S3) leave
    /// none. A file that cannot be removed does not keep the others; the first such
    /// failure is returned.
    async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64>;
}

/// The path of an object, refusing names that could escape its directory or be mistaken
/// for temp files.
pub(crate) fn object_path(op: &'static str, ft: FileType, name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && !crate::temp_names::is_hidden(name)
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control);
    if ft != FileType::Config && !valid {
        return Err(StorageError::other(op, name, "invalid object name"));
    }
    Ok(ft.path(name))
}

/// The directories of a repository, parents first.
pub(crate) fn layout_dirs() -> Vec<String> {
    let mut dirs = vec!["keys".to_string(), "data".to_string()];
    dirs.extend((0..=255u8).map(|b| format!("data/{b:02x}")));
    dirs.extend(["index", "snapshots", "locks", "evidence"].map(String::from));
    dirs
}

/// Reads a spooled file into memory and removes it (for backends that cannot move it).
pub(crate) async fn read_and_remove(name: &str, file: &std::path::Path) -> Result<Bytes> {
    let path = file.to_path_buf();
    let data = tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .map_err(|e| StorageError::other("write", name, e.to_string()))?
        .map_err(|e| StorageError::from_io("write", name, e));
    let _ = std::fs::remove_file(file);
    Ok(Bytes::from(data?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn object_names_are_checked() {
        assert_eq!(object_path("read", FileType::Key, "ab").unwrap(), "keys/ab");
        assert_eq!(object_path("read", FileType::Config, "").unwrap(), "config");
        for bad in ["", ".x", "../x", "a/b", "a\\b", "a\nb"] {
            let err = object_path("read", FileType::Index, bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Other, "{bad:?}");
        }
    }

    #[test]
    fn layout_has_every_pack_dir() {
        let dirs = layout_dirs();
        assert_eq!(dirs.len(), 2 + 256 + 4);
        assert_eq!(dirs[2], "data/00");
        assert_eq!(dirs[257], "data/ff");
    }
}
