//! The repository directories of a cache root (see [`crate::CachingBackend`]): listing
//! them with their size and last use, and removing those not used for a while (`strata
//! cache`).
//!
//! A repository directory is named by 32 hex digits of the hash of its repository's
//! location; its modification time is set whenever a cache is opened on it, so it tells
//! when the repository was last used from this machine. Nothing else in a root is ever
//! listed or removed: a root given by `STRATA_CACHE_DIR` may hold the user's own files.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One repository's cache directory.
#[derive(Debug, Clone)]
pub struct CacheDir {
    /// Its name (hex digits of the hash of the repository's location).
    pub name: String,
    pub path: PathBuf,
    /// The bytes of the files in it.
    pub bytes: u64,
    /// When a cache was last opened on it.
    pub last_used: SystemTime,
}

/// Length of a repository directory's name (hex digits of the location's hash).
pub(crate) const KEY_LEN: usize = 32;

/// Whether `entry` is a repository's cache directory (its name: [`KEY_LEN`] hex digits).
pub(crate) fn is_repository_dir(entry: &std::fs::DirEntry) -> bool {
    let name = entry.file_name();
    let name = name.to_string_lossy();
    name.len() == KEY_LEN
        && name.bytes().all(|b| b.is_ascii_hexdigit())
        && entry.file_type().is_ok_and(|t| t.is_dir())
}

/// Sets `dir`'s modification time to now (failures only logged: the cache is a shortcut).
pub(crate) fn mark_used(dir: &Path) {
    let now = SystemTime::now();
    if let Err(e) = std::fs::File::open(dir).and_then(|f| f.set_modified(now)) {
        tracing::debug!("cannot mark the cache {} used: {e}", dir.display());
    }
}

fn bytes_below(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_below(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The repository directories under `root`, by name; none when `root` does not exist.
pub fn list(root: &Path) -> std::io::Result<Vec<CacheDir>> {
    let entries = match std::fs::read_dir(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        if !is_repository_dir(&e) {
            continue;
        }
        let path = e.path();
        out.push(CacheDir {
            name: e.file_name().to_string_lossy().into_owned(),
            bytes: bytes_below(&path),
            last_used: e.metadata()?.modified()?,
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes a repository directory and everything in it.
pub fn remove(dir: &CacheDir) -> std::io::Result<()> {
    std::fs::remove_dir_all(&dir.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_only_repository_directories_with_size_and_use() {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("0123456789abcdef0123456789abcdef");
        std::fs::create_dir_all(repo.join("index")).unwrap();
        std::fs::write(repo.join("index").join("x"), [0u8; 1000]).unwrap();
        std::fs::create_dir(root.path().join("mine")).unwrap();
        std::fs::write(
            root.path().join("0123456789abcdef0123456789abcdee"),
            b"a file",
        )
        .unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86_400);
        std::fs::File::open(&repo)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let listed = list(root.path()).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].bytes, 1000);
        assert_eq!(listed[0].last_used, old);
        mark_used(&repo);
        assert!(list(root.path()).unwrap()[0].last_used > old);
        remove(&listed[0]).unwrap();
        assert!(list(root.path()).unwrap().is_empty());
        assert!(root.path().join("mine").exists());
        assert!(list(&root.path().join("none")).unwrap().is_empty());
    }
}
