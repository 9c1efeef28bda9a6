//! A local cache of a remote repository's index files and snapshots, so that listing
//! snapshots or opening the index of an SFTP or S3 repository does not download them
//! every time.
//!
//! Both kinds are named by the BLAKE3 hash of their stored bytes and never change, so a
//! cached copy is valid exactly when its bytes still hash to its name (checked on every
//! read; a damaged copy is dropped and fetched again). Objects are cached as stored
//! (encrypted). Listing a kind drops the cached objects the repository no longer has.
//! Cache failures never fail an operation: the cache is only a shortcut.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::debug;

use crate::{Backend, FileType, Result};

/// A [`Backend`] that keeps copies of index files and snapshots in a local directory.
#[derive(Debug, Clone)]
pub struct CachingBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
}

fn cached(ft: FileType) -> bool {
    matches!(ft, FileType::Index | FileType::Snapshot)
}

impl CachingBackend {
    /// Caches under `root`, in a directory of its own per repository location.
    pub fn new(inner: Arc<dyn Backend>, root: &Path) -> Self {
        let key = blake3::hash(inner.location().as_bytes()).to_hex();
        CachingBackend {
            dir: root.join(&key.as_str()[..32]),
            inner,
        }
    }

    fn file(&self, ft: FileType, name: &str) -> PathBuf {
        self.dir.join(ft.dir()).join(name)
    }

    fn get(&self, ft: FileType, name: &str) -> Option<Bytes> {
        let path = self.file(ft, name);
        let bytes = std::fs::read(&path).ok()?;
        if blake3::hash(&bytes).to_hex().as_str() == name {
            debug!(object = %ft.path(name), "cache hit");
            return Some(Bytes::from(bytes));
        }
        let _ = std::fs::remove_file(&path);
        None
    }

    fn put(&self, ft: FileType, name: &str, data: &[u8]) {
        let path = self.file(ft, name);
        let dir = path.parent().expect("cache files are in a directory");
        let tmp = dir.join(format!(".{name}.tmp"));
        let stored = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, data))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = stored {
            debug!("cannot cache {}: {e}", ft.path(name));
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Drops cached objects of kind `ft` that are not in `listed`.
    fn forget_others(&self, ft: FileType, listed: &[(String, u64)]) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(ft.dir())) else {
            return;
        };
        let keep: std::collections::HashSet<&str> =
            listed.iter().map(|(n, _)| n.as_str()).collect();
        for e in entries.flatten() {
            let name = e.file_name();
            if !keep.contains(name.to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[async_trait]
impl Backend for CachingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        if !cached(ft) {
            return self.inner.read(ft, name).await;
        }
        if let Some(b) = self.get(ft, name) {
            return Ok(b);
        }
        let bytes = self.inner.read(ft, name).await?;
        // Only what hashes to its name is worth keeping.
        if blake3::hash(&bytes).to_hex().as_str() == name {
            self.put(ft, name, &bytes);
        }
        Ok(bytes)
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        self.inner.read_range(ft, name, offset, length).await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        self.inner.write(ft, name, data.clone()).await?;
        if cached(ft) {
            self.put(ft, name, &data);
        }
        Ok(())
    }

    fn spool_dir(&self) -> Option<PathBuf> {
        self.inner.spool_dir()
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        self.inner.write_file(ft, name, file).await
    }

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        let listed = self.inner.list(ft).await?;
        if cached(ft) {
            self.forget_others(ft, &listed);
        }
        Ok(listed)
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        self.inner.delete(ft, name).await?;
        if cached(ft) {
            let _ = std::fs::remove_file(self.file(ft, name));
        }
        Ok(())
    }

    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
        self.inner.stat(ft, name).await
    }

    async fn create_layout(&self) -> Result<()> {
        self.inner.create_layout().await
    }

    async fn remove_leftovers(&self) -> Result<u64> {
        self.inner.remove_leftovers().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultBackend, FaultPlan, OpendalBackend};

    fn id(data: &[u8]) -> String {
        blake3::hash(data).to_hex().to_string()
    }

    /// Index files and snapshots are read once from the repository, then from the cache;
    /// a damaged cache copy is fetched again; deleted objects leave the cache.
    #[tokio::test]
    async fn index_and_snapshots_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let memory: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let counting = Arc::new(FaultBackend::new(memory, FaultPlan::default()));
        let cache = CachingBackend::new(counting.clone(), dir.path());
        let data = Bytes::from_static(b"an index file");
        let name = id(&data);
        counting
            .write(FileType::Index, &name, data.clone())
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(cache.read(FileType::Index, &name).await.unwrap(), data);
        }
        assert_eq!(counting.reads(), 1, "read once, then from the cache");
        // Packs are never cached.
        counting
            .write(FileType::Pack, &name, data.clone())
            .await
            .unwrap();
        cache.read(FileType::Pack, &name).await.unwrap();
        cache.read(FileType::Pack, &name).await.unwrap();
        assert_eq!(counting.reads(), 3);
        // A damaged copy is replaced.
        std::fs::write(cache.file(FileType::Index, &name), b"damaged").unwrap();
        assert_eq!(cache.read(FileType::Index, &name).await.unwrap(), data);
        assert_eq!(counting.reads(), 4);
        // Gone from the repository: gone from the cache at the next listing.
        counting.delete(FileType::Index, &name).await.unwrap();
        assert!(cache.list(FileType::Index).await.unwrap().is_empty());
        assert!(!cache.file(FileType::Index, &name).exists());
    }
}
