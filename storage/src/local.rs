//! Local-disk writes and ranged reads for the fs backend, done with `std::fs` rather than
//! through opendal.
//!
//! Ranged reads (blobs, pack headers) are one `pread` each, done inline on the calling
//! thread: going through opendal's fs service costs a hand-off to tokio's blocking pool and
//! back per read, which dominated restores of many small files. The engine drives the
//! backend with `block_on` from its own threads, so no runtime worker is blocked.
//!
//! opendal 0.59's fs writer fsyncs the file but not its directory, creates files and
//! directories with the process umask, and keeps its temp files in one flat
//! `atomic_write_dir` outside the layout. Here instead:
//! - an object is written to `.<name>.tmp-<random>` in its final directory (so the rename
//!   never crosses a filesystem), created with mode 0600 and chmodded to 0600 whatever the
//!   umask, written, fsynced, renamed over the final name, and the directory is fsynced;
//! - directories are created 0700 (chmodded after creation) and their parent fsynced.
//!
//! Object names never start with `.`, so listings skip such names: they are temp files of
//! writes in progress, or left behind by a crash (harmless; `prune` deletes them). Their
//! names come from [`crate::temp_names`].
//! Deletes are not fsynced: a crash can at worst bring back an object that was unreferenced.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use crate::temp_names;

/// Mode of every object file.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every directory of the layout.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Writes `data` to `root/rel` atomically and durably. `root` must exist; missing
/// directories below it are created.
///
/// `data` is dropped as soon as it is in the file, before the fsyncs: a pack's buffer is not
/// held for the (much longer) time the disk takes to make it durable.
pub(crate) fn write_atomic(root: &Path, rel: &str, data: impl AsRef<[u8]>) -> io::Result<()> {
    let target = root.join(rel);
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
    };
    fs::metadata(root)?;
    ensure_dirs(root, dir)?;

    let tmp = dir.join(temp_names::local_write(&name.to_string_lossy()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    let result = (|| {
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
        file.write_all(data.as_ref())?;
        drop(data);
        file.sync_all()?;
        fs::rename(&tmp, &target)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: after a successful rename the temp name no longer exists.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Moves the finished file `src` (on the same file system as `root`) to `root/rel`
/// durably: fsync the file, create missing directories, rename, fsync the directory. The
/// file is removed if anything fails.
pub(crate) fn install_file(root: &Path, rel: &str, src: &Path) -> io::Result<()> {
    let target = root.join(rel);
    let result = (|| {
        let Some(dir) = target.parent() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no file name"));
        };
        fs::metadata(root)?;
        let file = OpenOptions::new().write(true).open(src)?;
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
        file.sync_all()?;
        drop(file);
        ensure_dirs(root, dir)?;
        fs::rename(src, &target)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(src);
    }
    result
}

/// Reads `length` bytes at `offset` of `root/rel` with one positional read. `Ok(None)` means
/// the file is shorter than the range (the caller names the problem).
pub(crate) fn read_range(
    root: &Path,
    rel: &str,
    offset: u64,
    length: u64,
) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    let file = File::open(root.join(rel))?;
    let size = file.metadata()?.len();
    let Some(end) = offset.checked_add(length) else {
        return Ok(None);
    };
    if end > size {
        return Ok(None);
    }
    let len = usize::try_from(length)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "range too long"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Some(buf))
}

/// Creates `root` (with any missing ancestors) and then each directory of `dirs`, given
/// relative to `root` with parents before children, all with mode 0700; then fsyncs every
/// directory that gained an entry.
pub(crate) fn create_layout(root: &Path, dirs: &[String]) -> io::Result<()> {
    if !root.is_dir() {
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(root)?;
        fs::set_permissions(root, Permissions::from_mode(DIR_MODE))?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    let mut to_sync = Vec::new();
    for rel in dirs {
        let path = root.join(rel);
        if create_dir(&path)? {
            let parent = path.parent().unwrap_or(root).to_path_buf();
            if !to_sync.contains(&parent) {
                to_sync.push(parent);
            }
        }
    }
    to_sync.iter().try_for_each(|d| sync_dir(d))
}

/// Creates the directories between `root` (which exists) and `dir`, fsyncing each parent
/// that gained an entry.
fn ensure_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    let Ok(rel) = dir.strip_prefix(root) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "outside root"));
    };
    let mut current = root.to_path_buf();
    for component in rel.components() {
        let Component::Normal(part) = component else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad path"));
        };
        let parent = current.clone();
        current.push(part);
        if create_dir(&current)? {
            sync_dir(&parent)?;
        }
    }
    Ok(())
}

/// Creates one directory with mode 0700. Returns false if it already existed.
fn create_dir(path: &Path) -> io::Result<bool> {
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {
            fs::set_permissions(path, Permissions::from_mode(DIR_MODE))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn write_creates_missing_dirs_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "data/ab/abcd", b"hello").unwrap();
        write_atomic(dir.path(), "data/ab/abcd", b"again").unwrap();
        assert_eq!(fs::read(dir.path().join("data/ab/abcd")).unwrap(), b"again");
        assert_eq!(mode(&dir.path().join("data")), DIR_MODE);
        assert_eq!(mode(&dir.path().join("data/ab")), DIR_MODE);
        assert_eq!(mode(&dir.path().join("data/ab/abcd")), FILE_MODE);
        let names: Vec<_> = fs::read_dir(dir.path().join("data/ab"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["abcd"]);
    }

    #[test]
    fn write_requires_root() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("none"), "keys/k", b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
