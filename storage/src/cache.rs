//! A local cache of a remote repository's index files, snapshots and metadata packs (packs
//! of trees), so that listing snapshots, opening the index, or walking a snapshot's trees
//! (`ls`, `find`, `diff`, `mount`, the parent of a backup) on an SFTP or S3 repository
//! does not download them every time, nor make one request per directory.
//!
//! All three kinds are named by the BLAKE3 hash of their stored bytes and never change, so
//! a cached copy is valid exactly when its bytes still hash to its name (checked on every
//! read; a damaged copy is dropped and fetched again). Objects are cached as stored
//! (encrypted). Listing a kind drops the cached objects the repository no longer has; for
//! metadata packs, so does [`Backend::sync_metadata_packs`], given the packs the index
//! names. Metadata packs are kept up to a size bound ([`CachingBackend::with_pack_limit`],
//! [`DEFAULT_PACK_LIMIT`]): beyond it they are read from the repository each time. Data
//! packs are never cached. Cache failures never fail an operation: the cache is only a
//! shortcut.
//!
//! The cache is private, whatever the umask: directories 0700, files 0600 (the objects are
//! encrypted, but their names, sizes and number tell about the repository). A cache left
//! open by an older version is closed when it is next used: its repository directory and
//! everything in it, and the cache root if it holds nothing but repository directories (a
//! root given by `STRATA_CACHE_DIR` that holds anything else is left as it is; the
//! repository directories inside it are private all the same).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::debug;

use crate::cache_dirs::{is_repository_dir, KEY_LEN};
use crate::{Backend, FileType, FreeSpace, Result};

/// The bytes of metadata packs a cache keeps by default (per repository).
pub const DEFAULT_PACK_LIMIT: u64 = 2 << 30;

/// A [`Backend`] that keeps copies of index files, snapshots and metadata packs in a
/// local directory.
#[derive(Debug, Clone)]
pub struct CachingBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    pack_limit: u64,
}

fn cached(ft: FileType) -> bool {
    matches!(ft, FileType::Index | FileType::Snapshot | FileType::Wal)
}

impl CachingBackend {
    /// Caches under `root`, in a directory of its own per repository location. Both are
    /// made private (see the module docs).
    pub fn new(inner: Arc<dyn Backend>, root: &Path) -> Self {
        let key = blake3::hash(inner.location().as_bytes()).to_hex();
        let cache = CachingBackend {
            dir: root.join(&key.as_str()[..KEY_LEN]),
            inner,
            pack_limit: DEFAULT_PACK_LIMIT,
        };
        if let Err(e) = private_root(root).and_then(|()| private_tree(&cache.dir)) {
            debug!("cannot make the cache {} private: {e}", cache.dir.display());
        }
        // Its time is its last use (what `strata cache --cleanup` goes by).
        crate::cache_dirs::mark_used(&cache.dir);
        cache
    }

    /// Keeps at most `bytes` of metadata packs (0: none).
    pub fn with_pack_limit(mut self, bytes: u64) -> Self {
        self.pack_limit = bytes;
        self
    }

    /// The bytes of metadata packs cached now.
    fn packs_cached(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(self.dir.join(FileType::Pack.dir())) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Fetches metadata pack `name` and keeps it if it hashes to its name and fits.
    async fn fetch_pack(&self, name: &str) -> Result<Bytes> {
        let bytes = self.inner.read(FileType::Pack, name).await?;
        self.keep_pack(name, &bytes);
        Ok(bytes)
    }

    /// Keeps metadata pack `name` if `bytes` hash to its name and fit in the bound.
    fn keep_pack(&self, name: &str, bytes: &[u8]) {
        if blake3::hash(bytes).to_hex().as_str() == name
            && self.packs_cached() + bytes.len() as u64 <= self.pack_limit
        {
            self.put(FileType::Pack, name, bytes);
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
        let stored = private_dir(dir)
            .and_then(|_| write_private(&tmp, data))
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

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Sets `path`'s permission bits to `mode` unless they are already.
fn set_mode(path: &Path, meta: &std::fs::Metadata, mode: u32) -> std::io::Result<()> {
    if meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}

/// Creates `dir` (and missing parents) 0700, or makes an existing one 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    // The umask may have taken bits away (or a dir was there already).
    set_mode(dir, &std::fs::metadata(dir)?, DIR_MODE)
}

/// Writes a new file 0600 (whatever the umask).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(Permissions::from_mode(FILE_MODE))?;
    f.write_all(data)
}

/// Creates the cache root 0700; an existing one is made 0700 only if it holds nothing
/// but repository directories (it is then a strata cache, not a directory of the user's).
fn private_root(root: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => private_dir(root),
        Err(e) => Err(e),
        Ok(meta) if !meta.is_dir() || meta.permissions().mode() & 0o077 == 0 => Ok(()),
        Ok(meta) => {
            if std::fs::read_dir(root)?.all(|e| e.as_ref().is_ok_and(is_repository_dir)) {
                set_mode(root, &meta, DIR_MODE)?;
            }
            Ok(())
        }
    }
}

/// Makes a repository's cache directory private: created 0700; one found open (made by an
/// older version) is closed with everything in it.
fn private_tree(dir: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return private_dir(dir),
        other => other?,
    };
    if meta.permissions().mode() & 0o7777 == DIR_MODE || !meta.is_dir() {
        return Ok(());
    }
    // Inside out: the directory is closed last, so that a failure leaves it to be
    // found open, and fixed, next time.
    for kind in std::fs::read_dir(dir)? {
        let kind = kind?;
        if !kind.file_type()?.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(kind.path())? {
            let file = file?;
            let m = file.metadata()?;
            if m.is_file() {
                set_mode(&file.path(), &m, FILE_MODE)?;
            }
        }
        set_mode(&kind.path(), &kind.metadata()?, DIR_MODE)?;
    }
    set_mode(dir, &meta, DIR_MODE)
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

    async fn read_metadata_pack(&self, name: &str) -> Result<Bytes> {
        if let Some(b) = self.get(FileType::Pack, name) {
            return Ok(b);
        }
        self.fetch_pack(name).await
    }

    async fn write_metadata_pack(&self, name: &str, file: &Path) -> Result<()> {
        // Read before the upload consumes the file; kept once it is stored.
        let copy = std::fs::read(file).ok();
        self.inner.write_file(FileType::Pack, name, file).await?;
        if let Some(bytes) = copy {
            self.keep_pack(name, &bytes);
        }
        Ok(())
    }

    async fn sync_metadata_packs(&self, packs: &[(String, u64)], parallel: usize) -> Result<usize> {
        self.forget_others(FileType::Pack, packs);
        let dir = self.dir.join(FileType::Pack.dir());
        let mut room = self.pack_limit.saturating_sub(self.packs_cached());
        let mut missing = Vec::new();
        for (name, size) in packs {
            if dir.join(name).exists() {
                continue;
            }
            if *size > room {
                debug!(
                    "the cache keeps no more metadata packs ({} bytes)",
                    self.pack_limit
                );
                break;
            }
            room -= size;
            missing.push(name.as_str());
        }
        // At most `parallel` fetches at once.
        let mut tasks = tokio::task::JoinSet::new();
        let mut fetched = 0;
        for name in missing {
            if tasks.len() >= parallel.max(1) {
                fetched += usize::from(matches!(tasks.join_next().await, Some(Ok(Ok(_)))));
            }
            let cache = self.clone();
            let name = name.to_string();
            tasks.spawn(async move { cache.fetch_pack(&name).await });
        }
        while let Some(done) = tasks.join_next().await {
            fetched += usize::from(matches!(done, Ok(Ok(_))));
        }
        Ok(fetched)
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

    async fn free_space(&self) -> Result<Option<FreeSpace>> {
        self.inner.free_space().await
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        self.inner.write_file(ft, name, file).await
    }

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        let listed = self.inner.list(ft).await?;
        if cached(ft) || ft == FileType::Pack {
            self.forget_others(ft, &listed);
        }
        Ok(listed)
    }

    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        if !(cached(ft) || ft == FileType::Pack) {
            return self.inner.list_each(ft, each).await;
        }
        // What the cache holds is small (metadata only): the names not listed are dropped
        // once the listing is complete.
        let mut unlisted: std::collections::HashSet<String> =
            match std::fs::read_dir(self.dir.join(ft.dir())) {
                Ok(entries) => entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => Default::default(),
            };
        self.inner
            .list_each(ft, &mut |name, size| {
                unlisted.remove(name);
                each(name, size)
            })
            .await?;
        for name in unlisted {
            let _ = std::fs::remove_file(self.file(ft, &name));
        }
        Ok(())
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        self.inner.delete(ft, name).await?;
        if cached(ft) || ft == FileType::Pack {
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

    async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64> {
        self.inner.remove_leftovers(min_age).await
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
        // The same with a listing in pages: what is listed stays cached, the rest goes.
        let other = Bytes::from_static(b"another index file");
        let other_name = id(&other);
        for (n, d) in [(&name, &data), (&other_name, &other)] {
            counting.write(FileType::Index, n, d.clone()).await.unwrap();
            cache.read(FileType::Index, n).await.unwrap();
            assert!(cache.file(FileType::Index, n).exists());
        }
        counting.delete(FileType::Index, &name).await.unwrap();
        let mut listed = Vec::new();
        cache
            .list_each(FileType::Index, &mut |n, size| {
                listed.push((n.to_string(), size))
            })
            .await
            .unwrap();
        assert_eq!(listed, vec![(other_name.clone(), other.len() as u64)]);
        assert!(!cache.file(FileType::Index, &name).exists());
        assert!(cache.file(FileType::Index, &other_name).exists());
    }

    /// Metadata packs are read once and then from the cache; `sync_metadata_packs` fetches
    /// the missing ones (and only those), drops cached packs no longer named, and keeps to
    /// the size bound; a damaged copy is fetched again; data packs stay uncached.
    #[tokio::test]
    async fn metadata_packs_are_cached_whole_and_synced_with_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let memory: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let counting = Arc::new(FaultBackend::new(memory, FaultPlan::default()));
        let cache = CachingBackend::new(counting.clone(), dir.path()).with_pack_limit(250);
        let mut packs = Vec::new();
        for i in 0..4u8 {
            let data = Bytes::from(vec![i; 100]);
            let name = id(&data);
            counting
                .write(FileType::Pack, &name, data.clone())
                .await
                .unwrap();
            packs.push((name, 100u64, data));
        }
        let (a, _, a_bytes) = &packs[0];
        for _ in 0..3 {
            assert_eq!(&cache.read_metadata_pack(a).await.unwrap(), a_bytes);
        }
        assert_eq!(counting.reads(), 1, "read once, then from the cache");
        // Synced with three packs: one is there, one more fits (250 bytes), the third not.
        let named: Vec<(String, u64)> =
            packs[..3].iter().map(|(n, s, _)| (n.clone(), *s)).collect();
        assert_eq!(cache.sync_metadata_packs(&named, 4).await.unwrap(), 1);
        assert_eq!(counting.reads(), 2);
        assert!(cache.file(FileType::Pack, &packs[1].0).exists());
        assert!(!cache.file(FileType::Pack, &packs[2].0).exists());
        assert_eq!(
            cache.read_metadata_pack(&packs[1].0).await.unwrap(),
            packs[1].2
        );
        assert_eq!(counting.reads(), 2);
        // Beyond the bound: read each time, never kept.
        cache.read_metadata_pack(&packs[2].0).await.unwrap();
        cache.read_metadata_pack(&packs[2].0).await.unwrap();
        assert_eq!(counting.reads(), 4);
        // A pack the index no longer names leaves the cache; room for another.
        let named: Vec<(String, u64)> =
            packs[1..].iter().map(|(n, s, _)| (n.clone(), *s)).collect();
        assert_eq!(cache.sync_metadata_packs(&named, 4).await.unwrap(), 1);
        assert!(!cache.file(FileType::Pack, a).exists());
        assert_eq!(counting.reads(), 5);
        // A damaged copy is fetched again.
        std::fs::write(cache.file(FileType::Pack, &packs[1].0), b"damaged").unwrap();
        assert_eq!(
            cache.read_metadata_pack(&packs[1].0).await.unwrap(),
            packs[1].2
        );
        assert_eq!(counting.reads(), 6);
        // Data packs (read as objects or ranges) are not kept.
        cache.read(FileType::Pack, &packs[3].0).await.unwrap();
        cache
            .read_range(FileType::Pack, &packs[3].0, 0, 10)
            .await
            .unwrap();
        assert_eq!(counting.reads(), 8);
        // Deleted: gone from the cache.
        cache.delete(FileType::Pack, &packs[1].0).await.unwrap();
        assert!(!cache.file(FileType::Pack, &packs[1].0).exists());
        // One written is kept as it is stored, and read from the cache.
        let data = Bytes::from(vec![9u8; 100]);
        let name = id(&data);
        let spooled = dir.path().join("spooled");
        std::fs::write(&spooled, &data).unwrap();
        cache.write_metadata_pack(&name, &spooled).await.unwrap();
        assert_eq!(counting.read(FileType::Pack, &name).await.unwrap(), data);
        let reads = counting.reads();
        assert_eq!(cache.read_metadata_pack(&name).await.unwrap(), data);
        assert_eq!(counting.reads(), reads, "from the cache");
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// Regression: the cache was created 0755 with 0644 files (by the umask). Now it is
    /// 0700/0600 even with a umask of 0, and a cache an older version left open is closed.
    #[tokio::test]
    async fn the_cache_is_private_whatever_the_umask() {
        use nix::sys::stat::{umask, Mode};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cache").join("strata");
        let memory: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let data = Bytes::from_static(b"a snapshot");
        let name = id(&data);
        memory
            .write(FileType::Snapshot, &name, data.clone())
            .await
            .unwrap();
        // Only this test changes the umask, and files made meanwhile elsewhere only lose
        // nothing: other tests' temporary directories are theirs alone.
        let old = umask(Mode::empty());
        let cache = CachingBackend::new(memory.clone(), &root);
        let read = cache.read(FileType::Snapshot, &name).await;
        umask(old);
        assert_eq!(read.unwrap(), data);
        let file = cache.file(FileType::Snapshot, &name);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&cache.dir), 0o700);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&file), 0o600);

        // As an older version left it: everything open.
        for p in [&root, &cache.dir, &file.parent().unwrap().to_path_buf()] {
            std::fs::set_permissions(p, Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        let again = CachingBackend::new(memory.clone(), &root);
        assert_eq!(again.dir, cache.dir);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&cache.dir), 0o700);
        assert_eq!(mode(file.parent().unwrap()), 0o700);
        assert_eq!(mode(&file), 0o600);

        // A root that holds anything else is the user's: left alone, its cache private.
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o755)).unwrap();
        std::fs::write(shared.join("notes.txt"), b"mine").unwrap();
        let inside = CachingBackend::new(memory, &shared);
        assert_eq!(mode(&shared), 0o755);
        assert_eq!(mode(&inside.dir), 0o700);
    }
}
