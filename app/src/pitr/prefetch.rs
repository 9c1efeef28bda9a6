//! Prefetching for `wal-fetch`: recovery runs `restore_command` once per segment, one after
//! the other, and each process would open the repository (key, index, WAL files) for one
//! segment. A fetch that had to open it also fetches the next segments of the same timeline
//! into a spool outside the data directory, and the next processes take theirs from there
//! without opening the repository at all.
//!
//! The spool is `<state-dir>/wal-prefetch/<key>/`, mode 0700, where `key` names the
//! repository (its configured URL, hashed), the project and the cluster (the system
//! identifier of the data directory's `pg_control`: PostgreSQL runs `restore_command` in the
//! data directory). Within one archive a name has one content for ever (a different content
//! is refused at push), so an entry can be served whenever it is asked for. Each entry is
//! `NAME.BLAKE3` (unkeyed hash of the content, checked when it is served: a torn write after
//! a crash is dropped, never handed to PostgreSQL), written to a temporary name and renamed.
//! An entry is removed when it is served; entries older than [`MAX_AGE`] are removed by
//! the next fetch (a recovery that stopped before using them).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_db::wal::{SegmentSize, WalName};
use strata_format::id::Digest;

/// How long a prefetched segment is kept unused.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// The spool directory of `project`'s archive in the repository at `repo_url`, for the
/// cluster `system_id`.
pub fn spool_dir(state_dir: &Path, repo_url: &str, project: &str, system_id: u64) -> PathBuf {
    let key = Digest::of_stored(format!("{repo_url}\n{project}\n{system_id}").as_bytes());
    state_dir.join("wal-prefetch").join(&key.to_hex()[..32])
}

/// Creates `dir` (and its parents) with mode 0700; refuses one that others may write to.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let md = std::fs::metadata(dir)?;
    if md.permissions().mode() & 0o077 != 0 || md.uid() != nix::unistd::geteuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{} is not private to this user (mode {:o}): not used",
            dir.display(),
            md.permissions().mode() & 0o777
        )));
    }
    Ok(())
}

use std::os::unix::fs::MetadataExt;

/// Whether `dir` and its parent (`wal-prefetch`) are directories of this user that nobody
/// else may write to or read: what is taken from a spool goes into a recovery.
fn is_private(dir: &Path) -> bool {
    let own = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|md| {
            md.is_dir()
                && md.uid() == nix::unistd::geteuid().as_raw()
                && md.permissions().mode() & 0o077 == 0
        })
    };
    own(dir) && dir.parent().is_some_and(own)
}

/// Reads a spool entry, never through a symbolic link.
fn read_entry(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// The content of `name` if the spool holds it intact; the entry is removed either way
/// (served once, or damaged). A spool that is not private is not used.
pub fn take(dir: &Path, name: &str) -> Option<Vec<u8>> {
    if !is_private(dir) {
        if dir.exists() {
            tracing::warn!("{} is not private to this user: not used", dir.display());
        }
        return None;
    }
    let rd = std::fs::read_dir(dir).ok()?;
    let prefix = format!("{name}.");
    for entry in rd.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(hash) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        if hash.len() != 64 {
            continue;
        }
        let path = entry.path();
        let content = read_entry(&path).ok();
        let _ = std::fs::remove_file(&path);
        let content = content?;
        if Digest::of_stored(&content).to_hex() == hash {
            return Some(content);
        }
        tracing::warn!("prefetched {name} is damaged: fetched again from the repository");
        return None;
    }
    None
}

/// Puts `content` of `name` into the spool (to a temporary name, then renamed).
pub fn put(dir: &Path, name: &str, content: &[u8]) -> std::io::Result<()> {
    private_dir(dir)?;
    if !is_private(dir) {
        return Err(std::io::Error::other(format!(
            "{} is not private to this user",
            dir.display()
        )));
    }
    let hash = Digest::of_stored(content).to_hex();
    // A temporary name of its own (two fetches may prefetch the same segment at once).
    let mut tmp = tempfile::Builder::new().prefix(".").tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, content)?;
    tmp.persist(dir.join(format!("{name}.{hash}")))
        .map(|_| ())
        .map_err(|e| e.error)
}

/// Whether the spool holds `name` (intact or not).
pub fn holds(dir: &Path, name: &str) -> bool {
    let prefix = format!("{name}.");
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix) && !n.starts_with('.'))
        })
    })
}

/// Removes entries (and temporary files) older than [`MAX_AGE`].
pub fn sweep(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > MAX_AGE);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The `count` segments after `name` on its timeline (`name` a segment; else none).
pub fn following(name: &str, size: SegmentSize, count: usize) -> Vec<String> {
    let Ok(WalName::Segment(mut seg)) = WalName::parse(name) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        match seg.next(size) {
            Ok(next) => {
                out.push(next.to_string());
                seg = next;
            }
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_once_and_a_damaged_one_never() {
        let state = tempfile::tempdir().unwrap();
        let dir = spool_dir(state.path(), "/repo", "shop", 7);
        let name = "000000010000000000000003";
        assert!(take(&dir, name).is_none());
        put(&dir, name, b"segment bytes").unwrap();
        assert!(holds(&dir, name));
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(take(&dir, name).unwrap(), b"segment bytes");
        assert!(take(&dir, name).is_none(), "served once");
        // A torn or altered entry is dropped, not served.
        put(&dir, name, b"segment bytes").unwrap();
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_str().unwrap().starts_with(name))
            .unwrap()
            .path();
        std::fs::write(&entry, b"segment byteZ").unwrap();
        assert!(take(&dir, name).is_none());
        assert!(!holds(&dir, name));
        // A spool others may write to is not used.
        put(&dir, name, b"segment bytes").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(take(&dir, name).is_none(), "an open spool is never read");
        assert!(put(&dir, name, b"x").is_err());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(take(&dir, name).unwrap(), b"segment bytes");
        // Another project, repository or cluster has a spool of its own.
        assert_ne!(dir, spool_dir(state.path(), "/repo", "shop", 8));
        assert_ne!(dir, spool_dir(state.path(), "/repo", "blog", 7));
        assert_ne!(dir, spool_dir(state.path(), "/other", "shop", 7));
    }

    #[test]
    fn the_following_segments_cross_log_boundaries() {
        let size = SegmentSize::new(16 << 20).unwrap();
        assert_eq!(
            following("0000000100000000000000FE", size, 3),
            [
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000001"
            ]
        );
        assert!(following("00000002.history", size, 3).is_empty());
    }
}
