//! The cases every backend must pass. Those that look at what a backend leaves on disk
//! (modes, temporary files) run where its files are on this machine (local disk, and SFTP
//! served from here); elsewhere they check what the trait shows.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use strata_storage::{Backend, ErrorKind, FileType};

use crate::backends::Fixture;

/// `len` deterministic bytes.
pub fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub async fn round_trip(f: &Fixture) {
    let b = f.backend();
    for (i, ft) in FileType::ALL.into_iter().enumerate() {
        let bytes = data(1000 + i, i as u8);
        b.write(ft, "abcdef01", bytes.clone()).await.unwrap();
        assert_eq!(b.read(ft, "abcdef01").await.unwrap(), bytes, "{ft:?}");
    }
    b.write(FileType::Index, "empty", Bytes::new())
        .await
        .unwrap();
    assert!(b.read(FileType::Index, "empty").await.unwrap().is_empty());
}

pub async fn write_file_consumes_the_file(f: &Fixture) {
    let b = f.backend();
    let bytes = data(300_000, 9);
    let mut spool = b.spool_file().unwrap();
    spool.write_all(&bytes).unwrap();
    let file = spool.path().to_path_buf();
    b.write_file(FileType::Pack, "ab12cd", &file).await.unwrap();
    assert!(!file.exists(), "the spooled file is moved or removed");
    drop(spool);
    assert_eq!(b.read(FileType::Pack, "ab12cd").await.unwrap(), bytes);
    let listed = b.list(FileType::Pack).await.unwrap();
    assert_eq!(listed, vec![("ab12cd".to_string(), bytes.len() as u64)]);
    // A missing file is an error, and writes nothing.
    let dir = file.parent().unwrap();
    let err = b
        .write_file(FileType::Pack, "ef34", &dir.join(".missing.tmp"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(b.stat(FileType::Pack, "ef34").await.unwrap().is_none());
}

/// A spool file dropped unstored leaves nothing. One a killed writer left in the
/// repository (a local one spools in `data/`) is hidden from listings and removed as a
/// leftover: the name storage makes is the name it recognises.
pub async fn spool_files_are_temporary(f: &Fixture) {
    let b = f.backend();
    let spool = b.spool_file().unwrap();
    let path = spool.path().to_path_buf();
    assert!(path.exists());
    drop(spool);
    assert!(!path.exists(), "a dropped spool file is removed");
    let Some(dir) = b.spool_dir() else {
        return; // Spool files lie outside the repository (the system's temporary directory).
    };
    let mut left = b.spool_file().unwrap();
    assert_eq!(left.path().parent(), Some(dir.as_path()));
    left.write_all(b"half a pack").unwrap();
    let path = left.path().to_path_buf();
    // As a SIGKILL leaves it: no destructor runs.
    std::mem::forget(left);
    assert!(b.list(FileType::Pack).await.unwrap().is_empty());
    assert_eq!(b.remove_leftovers(Duration::ZERO).await.unwrap(), 1);
    assert!(!path.exists());
}

pub async fn read_range(f: &Fixture) {
    let b = f.backend();
    let bytes = data(100, 7);
    b.write(FileType::Pack, "ab01", bytes.clone())
        .await
        .unwrap();
    let read = |offset, length| b.read_range(FileType::Pack, "ab01", offset, length);
    assert_eq!(read(0, 10).await.unwrap(), bytes.slice(0..10));
    assert_eq!(read(37, 21).await.unwrap(), bytes.slice(37..58));
    assert_eq!(read(90, 10).await.unwrap(), bytes.slice(90..100));
    assert!(read(100, 0).await.unwrap().is_empty());
    for (offset, length) in [(95, 10), (100, 1), (200, 5), (101, 0), (1, u64::MAX)] {
        let err = read(offset, length).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other, "{offset}+{length}: {err}");
        assert!(err.to_string().contains("data/ab/ab01"), "{err}");
    }
    let err = b
        .read_range(FileType::Pack, "ab02", 0, 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

pub async fn list_sorted_with_sizes(f: &Fixture) {
    let b = f.backend();
    let names = ["ff09", "0a11", "ab02", "ab01", "00ff", "c3"];
    for ft in FileType::ALL
        .into_iter()
        .filter(|ft| *ft != FileType::Config)
    {
        for (i, name) in names.iter().enumerate() {
            b.write(ft, name, data(i * 10, 0)).await.unwrap();
        }
        let mut expected: Vec<(String, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as u64 * 10))
            .collect();
        expected.sort();
        assert_eq!(b.list(ft).await.unwrap(), expected, "{ft:?}");
        assert_eq!(listed_each(b, ft).await, expected, "{ft:?}");
    }
    b.write(FileType::Config, "", data(42, 1)).await.unwrap();
    let config = vec![("config".to_string(), 42)];
    assert_eq!(b.list(FileType::Config).await.unwrap(), config);
    assert_eq!(listed_each(b, FileType::Config).await, config);
}

/// What [`Backend::list_each`] passes, sorted, with each object once.
async fn listed_each(b: &dyn Backend, ft: FileType) -> Vec<(String, u64)> {
    let mut listed = Vec::new();
    b.list_each(ft, &mut |name, size| listed.push((name.to_string(), size)))
        .await
        .unwrap();
    listed.sort();
    listed.dedup();
    listed
}

pub async fn list_empty(f: &Fixture) {
    let b = f.backend();
    for ft in FileType::ALL {
        assert!(b.list(ft).await.unwrap().is_empty(), "{ft:?}");
        assert!(listed_each(b, ft).await.is_empty(), "{ft:?}");
    }
}

pub async fn stat(f: &Fixture) {
    let b = f.backend();
    assert_eq!(b.stat(FileType::Snapshot, "s1").await.unwrap(), None);
    assert_eq!(b.stat(FileType::Config, "").await.unwrap(), None);
    b.write(FileType::Snapshot, "s1", data(17, 3))
        .await
        .unwrap();
    assert_eq!(b.stat(FileType::Snapshot, "s1").await.unwrap(), Some(17));
    b.write(FileType::Pack, "9e00", data(5, 3)).await.unwrap();
    assert_eq!(b.stat(FileType::Pack, "9e00").await.unwrap(), Some(5));
}

pub async fn delete_is_idempotent(f: &Fixture) {
    let b = f.backend();
    b.write(FileType::Lock, "l1", data(3, 0)).await.unwrap();
    b.write(FileType::Pack, "12ab", data(3, 0)).await.unwrap();
    for (ft, name) in [(FileType::Lock, "l1"), (FileType::Pack, "12ab")] {
        b.delete(ft, name).await.unwrap();
        assert_eq!(b.stat(ft, name).await.unwrap(), None);
        assert!(b.list(ft).await.unwrap().is_empty());
        b.delete(ft, name).await.unwrap();
    }
    b.delete(FileType::Key, "never").await.unwrap();
}

pub async fn missing_read_is_not_found(f: &Fixture) {
    let b = f.backend();
    let err = b.read(FileType::Key, "nokey").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!((err.op, err.path.as_str()), ("read", "keys/nokey"));
    assert!(err
        .to_string()
        .starts_with("storage read of keys/nokey: not found"));
    let err = b.read(FileType::Config, "").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

pub async fn overwrite(f: &Fixture) {
    let b = f.backend();
    b.write(FileType::Index, "i1", data(50, 1)).await.unwrap();
    b.write(FileType::Index, "i1", data(20, 2)).await.unwrap();
    assert_eq!(b.read(FileType::Index, "i1").await.unwrap(), data(20, 2));
    let listed = vec![("i1".to_string(), 20)];
    assert_eq!(b.list(FileType::Index).await.unwrap(), listed);
}

pub async fn invalid_names(f: &Fixture) {
    let b = f.backend();
    for name in ["", "../config", "a/b", ".hidden"] {
        let err = b.write(FileType::Key, name, data(1, 0)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other, "{name:?}");
    }
    assert!(b.list(FileType::Key).await.unwrap().is_empty());
}

pub async fn create_layout_twice(f: &Fixture) {
    let b = f.backend();
    b.write(FileType::Key, "k", data(4, 0)).await.unwrap();
    b.create_layout().await.unwrap();
    assert_eq!(b.read(FileType::Key, "k").await.unwrap(), data(4, 0));
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
}

/// Objects are 0600 and the layout's directories 0700, whatever the umask.
pub async fn modes(f: &Fixture) {
    let b = f.backend();
    b.write(FileType::Config, "", data(8, 0)).await.unwrap();
    b.write(FileType::Pack, "7f01", data(8, 0)).await.unwrap();
    b.write(FileType::Key, "k", data(8, 0)).await.unwrap();
    let Some(root) = &f.local_dir else {
        return; // No modes to see from here.
    };
    for dir in ["", "keys", "data", "index", "snapshots", "locks"] {
        assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
    }
    for b in 0..=255u8 {
        assert_eq!(mode(&root.join(format!("data/{b:02x}"))), 0o700);
    }
    for file in ["config", "data/7f/7f01", "keys/k"] {
        assert_eq!(mode(&root.join(file)), 0o600, "{file}");
    }
}

/// Hidden files (writes in progress) are not listed.
pub async fn temp_files_are_not_listed(f: &Fixture) {
    let b = f.backend();
    if let Some(root) = &f.local_dir {
        std::fs::write(root.join("data/ab/.ab01.tmp-0123456789abcdef"), b"half").unwrap();
        std::fs::write(root.join("keys/.k.tmp-0123456789abcdef"), b"half").unwrap();
    }
    b.write(FileType::Pack, "ab02", data(3, 0)).await.unwrap();
    let packs = vec![("ab02".to_string(), 3)];
    assert_eq!(b.list(FileType::Pack).await.unwrap(), packs);
    assert_eq!(listed_each(b, FileType::Pack).await, packs);
    assert!(b.list(FileType::Key).await.unwrap().is_empty());
    assert!(listed_each(b, FileType::Key).await.is_empty());
}

/// Temporary files of killed writers, in every directory but `locks/`, are removed; objects
/// and hidden files of other names stay. Backends that write in one request (memory, S3)
/// have none.
pub async fn leftovers_are_removed(f: &Fixture) {
    let b = f.backend();
    let objects = [
        (FileType::Config, ""),
        (FileType::Pack, "ab02"),
        (FileType::Index, "i1"),
        (FileType::Snapshot, "s1"),
    ];
    for (ft, name) in objects {
        b.write(ft, name, data(3, 0)).await.unwrap();
    }
    let Some(root) = &f.local_dir else {
        assert_eq!(b.remove_leftovers(Duration::ZERO).await.unwrap(), 0);
        for (ft, name) in objects {
            assert_eq!(b.stat(ft, name).await.unwrap(), Some(3), "{name}");
        }
        return;
    };
    let leftovers = [
        ".config.tmp-0123456789abcdef",
        "data/.pack-0123456789abcdef.tmp",
        "data/ab/.ab01.tmp-0123456789abcdef",
        "data/ab/.tmp-0123456789abcdef",
        "keys/.k.tmp-0123456789abcdef",
        "index/.i2.tmp-fedcba9876543210",
        "snapshots/.tmp-fedcba9876543210",
    ];
    let kept = [
        // The caller's own lock refresher may be writing it.
        "locks/.l.tmp-fedcba9876543210",
        ".hidden",
        "data/ab/.ab03.tmp-0123",
        "index/.tmp-0123456789abcdeg",
        "snapshots/.pack-0123456789abcdef.tmp.more",
        "keys/not.tmp-0123456789abcdef",
    ];
    for rel in leftovers.iter().chain(&kept) {
        std::fs::write(root.join(rel), b"half").unwrap();
    }
    // Just written: a running writer's, as far as anyone can tell.
    let hour = Duration::from_secs(3600);
    assert_eq!(b.remove_leftovers(hour).await.unwrap(), 0);
    // Not written for two hours: a killed writer's.
    let (old, fresh) = leftovers.split_at(4);
    let two_hours_ago = std::time::SystemTime::now() - 2 * hour;
    for rel in old {
        std::fs::File::options()
            .write(true)
            .open(root.join(rel))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    assert_eq!(b.remove_leftovers(hour).await.unwrap(), old.len() as u64);
    for rel in old {
        assert!(!root.join(rel).exists(), "{rel} is left");
    }
    for rel in fresh {
        assert!(root.join(rel).exists(), "{rel} was removed");
    }
    assert_eq!(
        b.remove_leftovers(Duration::ZERO).await.unwrap(),
        fresh.len() as u64
    );
    for rel in leftovers {
        assert!(!root.join(rel).exists(), "{rel} is left");
    }
    for rel in kept {
        assert_eq!(std::fs::read(root.join(rel)).unwrap(), b"half", "{rel}");
    }
    for (ft, name) in objects {
        assert_eq!(b.stat(ft, name).await.unwrap(), Some(3), "{name}");
    }
    assert_eq!(b.remove_leftovers(Duration::ZERO).await.unwrap(), 0);
}

/// A repository whose empty directories were lost (copied with a tool that skips them):
/// writes make the directory they need, and read back whole. Large objects take many
/// requests (SFTP reads and writes them piece by piece): every byte is where it belongs.
pub async fn missing_directories_are_made_and_large_objects_round_trip(f: &Fixture) {
    let b = f.backend();
    if let Some(root) = &f.local_dir {
        std::fs::remove_dir(root.join("data/ab")).unwrap();
        std::fs::remove_dir(root.join("index")).unwrap();
    }
    let big = data(3 * 1024 * 1024 + 12_345, 7);
    b.write(FileType::Pack, "ab04", big.clone()).await.unwrap();
    assert_eq!(b.read(FileType::Pack, "ab04").await.unwrap(), big);
    let range = b
        .read_range(FileType::Pack, "ab04", 1_000_001, 2_000_000)
        .await
        .unwrap();
    assert_eq!(range, big.slice(1_000_001..3_000_001));
    b.write(FileType::Index, "i9", data(10, 1)).await.unwrap();
    assert_eq!(b.read(FileType::Index, "i9").await.unwrap(), data(10, 1));
    assert_eq!(
        b.list(FileType::Pack).await.unwrap(),
        vec![("ab04".to_string(), big.len() as u64)]
    );
}

/// Room left: where the repository's files are on a disk of this machine (local, and SFTP
/// served from here through `statvfs@openssh.com`) it is that disk's; elsewhere (memory,
/// S3) there is none to tell.
#[allow(clippy::unnecessary_cast)] // statvfs's counts are u64 on some targets, not all
pub async fn free_space(f: &Fixture) {
    let got = f.backend().free_space().await.unwrap();
    let Some(root) = &f.local_dir else {
        assert_eq!(got, None);
        return;
    };
    let got = got.expect("a local or SFTP repository tells its free space");
    let st = nix::sys::statvfs::statvfs(root.as_path()).unwrap();
    let unit = st.fragment_size() as u64;
    assert_eq!(got.total_bytes, st.blocks() as u64 * unit);
    let free = st.blocks_available() as u64 * unit;
    // Other tests write meanwhile: the same disk, within 1 GiB.
    assert!(got.free_bytes.abs_diff(free) < 1 << 30, "{got:?} vs {free}");
    assert!(got.free_bytes <= got.total_bytes);
}
