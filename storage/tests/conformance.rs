//! One conformance suite for every backend (memory and local fs here), plus the checks that
//! only make sense on a local disk (modes, temp files, missing or read-only roots).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use bytes::Bytes;
use strata_storage::{Backend, ErrorKind, FileType, OpendalBackend};
use tempfile::TempDir;

/// A backend with its layout created, and the temp dir that holds it (if any).
struct Fixture {
    backend: OpendalBackend,
    _dir: Option<TempDir>,
}

impl Fixture {
    async fn memory() -> Fixture {
        let backend = OpendalBackend::memory().unwrap();
        backend.create_layout().await.unwrap();
        Fixture {
            backend,
            _dir: None,
        }
    }

    async fn fs() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let backend = OpendalBackend::fs(&dir.path().join("repo")).unwrap();
        backend.create_layout().await.unwrap();
        Fixture {
            backend,
            _dir: Some(dir),
        }
    }
}

/// Generates one test per case and backend: `memory::case` and `fs::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Fixture::memory().await.backend).await;
                }
            )*
        }
        mod fs {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::Fixture::fs().await.backend).await;
                }
            )*
        }
    };
}

conformance!(
    round_trip,
    read_range,
    list_sorted_with_sizes,
    list_empty,
    stat,
    delete_is_idempotent,
    missing_read_is_not_found,
    overwrite,
    invalid_names,
    create_layout_twice,
    write_file_consumes_the_file,
);

/// `len` deterministic bytes.
fn data(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn round_trip(b: &dyn Backend) {
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

async fn write_file_consumes_the_file(b: &dyn Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = b.spool_dir().unwrap_or_else(|| tmp.path().to_path_buf());
    let bytes = data(300_000, 9);
    let file = dir.join(".spooled.tmp");
    std::fs::write(&file, &bytes).unwrap();
    b.write_file(FileType::Pack, "ab12cd", &file).await.unwrap();
    assert!(!file.exists(), "the spooled file is moved or removed");
    assert_eq!(b.read(FileType::Pack, "ab12cd").await.unwrap(), bytes);
    let listed = b.list(FileType::Pack).await.unwrap();
    assert_eq!(listed, vec![("ab12cd".to_string(), bytes.len() as u64)]);
    // A missing file is an error, and writes nothing.
    let err = b
        .write_file(FileType::Pack, "ef34", &dir.join(".missing.tmp"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(b.stat(FileType::Pack, "ef34").await.unwrap().is_none());
}

async fn read_range(b: &dyn Backend) {
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

async fn list_sorted_with_sizes(b: &dyn Backend) {
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
    }
    b.write(FileType::Config, "", data(42, 1)).await.unwrap();
    let config = vec![("config".to_string(), 42)];
    assert_eq!(b.list(FileType::Config).await.unwrap(), config);
}

async fn list_empty(b: &dyn Backend) {
    for ft in FileType::ALL {
        assert!(b.list(ft).await.unwrap().is_empty(), "{ft:?}");
    }
}

async fn stat(b: &dyn Backend) {
    assert_eq!(b.stat(FileType::Snapshot, "s1").await.unwrap(), None);
    assert_eq!(b.stat(FileType::Config, "").await.unwrap(), None);
    b.write(FileType::Snapshot, "s1", data(17, 3))
        .await
        .unwrap();
    assert_eq!(b.stat(FileType::Snapshot, "s1").await.unwrap(), Some(17));
    b.write(FileType::Pack, "9e00", data(5, 3)).await.unwrap();
    assert_eq!(b.stat(FileType::Pack, "9e00").await.unwrap(), Some(5));
}

async fn delete_is_idempotent(b: &dyn Backend) {
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

async fn missing_read_is_not_found(b: &dyn Backend) {
    let err = b.read(FileType::Key, "nokey").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!((err.op, err.path.as_str()), ("read", "keys/nokey"));
    assert!(err
        .to_string()
        .starts_with("storage read of keys/nokey: not found"));
    let err = b.read(FileType::Config, "").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

async fn overwrite(b: &dyn Backend) {
    b.write(FileType::Index, "i1", data(50, 1)).await.unwrap();
    b.write(FileType::Index, "i1", data(20, 2)).await.unwrap();
    assert_eq!(b.read(FileType::Index, "i1").await.unwrap(), data(20, 2));
    let listed = vec![("i1".to_string(), 20)];
    assert_eq!(b.list(FileType::Index).await.unwrap(), listed);
}

async fn invalid_names(b: &dyn Backend) {
    for name in ["", "../config", "a/b", ".hidden"] {
        let err = b.write(FileType::Key, name, data(1, 0)).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other, "{name:?}");
    }
    assert!(b.list(FileType::Key).await.unwrap().is_empty());
}

async fn create_layout_twice(b: &dyn Backend) {
    b.write(FileType::Key, "k", data(4, 0)).await.unwrap();
    b.create_layout().await.unwrap();
    assert_eq!(b.read(FileType::Key, "k").await.unwrap(), data(4, 0));
}

// ---- local filesystem only ----

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
}

/// Whether this process bypasses permission checks (root): files it creates belong to uid 0.
fn running_as_root(dir: &Path) -> bool {
    let probe = dir.join("euid-probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid() == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_modes() {
    let f = Fixture::fs().await;
    let root = f._dir.as_ref().unwrap().path().join("repo");
    f.backend
        .write(FileType::Config, "", data(8, 0))
        .await
        .unwrap();
    f.backend
        .write(FileType::Pack, "7f01", data(8, 0))
        .await
        .unwrap();
    f.backend
        .write(FileType::Key, "k", data(8, 0))
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_temp_files_are_not_listed() {
    let f = Fixture::fs().await;
    let root = f._dir.as_ref().unwrap().path().join("repo");
    std::fs::write(root.join("data/ab/.ab01.tmp-0123456789abcdef"), b"half").unwrap();
    std::fs::write(root.join("keys/.k.tmp-0123456789abcdef"), b"half").unwrap();
    f.backend
        .write(FileType::Pack, "ab02", data(3, 0))
        .await
        .unwrap();
    let packs = vec![("ab02".to_string(), 3)];
    assert_eq!(f.backend.list(FileType::Pack).await.unwrap(), packs);
    assert!(f.backend.list(FileType::Key).await.unwrap().is_empty());
}

/// Temporary files of killed writers, in every directory but `locks/`, are removed; objects
/// and hidden files of other names stay. The memory backend has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_leftovers_are_removed() {
    let f = Fixture::fs().await;
    let root = f._dir.as_ref().unwrap().path().join("repo");
    for (ft, name) in [
        (FileType::Config, ""),
        (FileType::Pack, "ab02"),
        (FileType::Index, "i1"),
        (FileType::Snapshot, "s1"),
    ] {
        f.backend.write(ft, name, data(3, 0)).await.unwrap();
    }
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
    assert_eq!(
        f.backend.remove_leftovers().await.unwrap(),
        leftovers.len() as u64
    );
    for rel in leftovers {
        assert!(!root.join(rel).exists(), "{rel} is left");
    }
    for rel in kept {
        assert_eq!(std::fs::read(root.join(rel)).unwrap(), b"half", "{rel}");
    }
    for (ft, name) in [
        (FileType::Config, ""),
        (FileType::Pack, "ab02"),
        (FileType::Index, "i1"),
        (FileType::Snapshot, "s1"),
    ] {
        assert_eq!(f.backend.stat(ft, name).await.unwrap(), Some(3), "{name}");
    }
    assert_eq!(f.backend.remove_leftovers().await.unwrap(), 0);
    let memory = Fixture::memory().await;
    assert_eq!(memory.backend.remove_leftovers().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_missing_root_is_not_created_until_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("typo");
    let b = OpendalBackend::fs(&root).unwrap();
    assert!(!root.exists());
    let err = b.read(FileType::Config, "").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(b.stat(FileType::Config, "").await.unwrap(), None);
    assert!(b.list(FileType::Pack).await.unwrap().is_empty());
    b.delete(FileType::Lock, "l").await.unwrap();
    let err = b.write(FileType::Key, "k", data(1, 0)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(!root.exists());

    b.create_layout().await.unwrap();
    b.write(FileType::Key, "k", data(1, 0)).await.unwrap();
    assert_eq!(
        b.list(FileType::Key).await.unwrap(),
        vec![("k".to_string(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_write_creates_missing_pack_dir() {
    let dir = tempfile::tempdir().unwrap();
    let b = OpendalBackend::fs(dir.path()).unwrap();
    b.write(FileType::Pack, "e4aa", data(9, 0)).await.unwrap();
    assert_eq!(mode(&dir.path().join("data/e4")), 0o700);
    assert_eq!(
        b.list(FileType::Pack).await.unwrap(),
        vec![("e4aa".to_string(), 9)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_read_only_root_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    if running_as_root(dir.path()) {
        eprintln!("skipped: running as root, permissions are not enforced");
        return;
    }
    let f = Fixture::fs().await;
    let root = f._dir.as_ref().unwrap().path().join("repo");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o500)).unwrap();
    let err = f.backend.write(FileType::Config, "", data(4, 0)).await;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = err.unwrap_err();
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string().starts_with("storage write of config"),
        "{err}"
    );
    assert_eq!(f.backend.stat(FileType::Config, "").await.unwrap(), None);
}

#[test]
fn blocking_callers_outside_the_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = std::sync::Arc::new(OpendalBackend::fs(dir.path()).unwrap());
    let handle = rt.handle().clone();
    let thread = std::thread::spawn(move || {
        handle.block_on(b.write(FileType::Index, "i", data(6, 0)))?;
        handle.block_on(b.read(FileType::Index, "i"))
    });
    assert_eq!(thread.join().unwrap().unwrap(), data(6, 0));
}

#[test]
fn locations() {
    assert_eq!(OpendalBackend::memory().unwrap().location(), "memory://");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r");
    let b = OpendalBackend::fs(&root).unwrap();
    assert_eq!(b.location(), root.display().to_string());
    let relative = OpendalBackend::fs(Path::new("some/repo")).unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        relative.location(),
        cwd.join("some/repo").display().to_string()
    );
    assert!(
        !Path::new("some").exists(),
        "opening must not create directories"
    );
}

#[test]
fn from_location_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let plain = OpendalBackend::from_location(&path).unwrap();
    assert_eq!(plain.location(), path);
    let url = OpendalBackend::from_location(&format!("file://{path}")).unwrap();
    assert_eq!(url.location(), path);
    let mem = OpendalBackend::from_location("memory://").unwrap();
    assert_eq!(mem.location(), "memory://");
    // Remote locations build without contacting the server.
    let sftp = OpendalBackend::from_location("sftp://backup@host:2222/srv/repo").unwrap();
    assert_eq!(sftp.location(), "sftp://backup@host:2222/srv/repo");
    let s3 = OpendalBackend::from_location("s3://bucket/prefix").unwrap();
    assert_eq!(s3.location(), "s3://bucket/prefix");
    for bad in [
        "ftp://host/repo",
        "s3:bucket/x",
        "sftp://host",
        "file://relative",
        "",
    ] {
        let err = OpendalBackend::from_location(bad).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Other, "{bad:?}");
    }
    let err = OpendalBackend::from_location("ftp://host/repo").unwrap_err();
    assert!(
        err.to_string().contains("unsupported repository URL"),
        "{err}"
    );
}

#[tokio::test]
async fn memory_backends_are_independent() {
    let a = OpendalBackend::memory().unwrap();
    let b = OpendalBackend::memory().unwrap();
    a.write(FileType::Key, "k", data(1, 0)).await.unwrap();
    assert_eq!(b.stat(FileType::Key, "k").await.unwrap(), None);
}
