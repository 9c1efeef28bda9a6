//! Checks that only make sense on a local disk: a missing root, a missing pack directory,
//! a root the process may not write to, and callers outside the runtime.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use strata_storage::{Backend, ErrorKind, FileType, OpendalBackend};

use crate::backends::{Fixture, Kind};
use crate::cases::data;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o777
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

/// A root the process may not write to refuses writes with `PermissionDenied`, and nothing
/// is written. Root may write anywhere, so as root the check runs in a child process (this
/// test binary, this test alone) as `nobody`, through setpriv, as the e2e tests drop
/// privileges.
#[test]
fn fs_read_only_root_refuses_writes() {
    if nix::unistd::geteuid().is_root() {
        if Kind::Fs.selected() {
            as_nobody("local_disk::fs_read_only_root_refuses_writes");
        }
        return;
    }
    runtime().block_on(async {
        let Some(f) = Fixture::new(Kind::Fs).await else {
            return;
        };
        let root = f.local_dir.as_ref().unwrap();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o500)).unwrap();
        let err = f.backend().write(FileType::Config, "", data(4, 0)).await;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = err.unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
        assert!(
            err.to_string().starts_with("storage write of config"),
            "{err}"
        );
        assert_eq!(f.backend().stat(FileType::Config, "").await.unwrap(), None);
    });
}

/// Runs `test` of this binary, alone, as uid and gid 65534 (`nobody`), in a temporary
/// directory of that user's; fails unless it ran and passed.
fn as_nobody(test: &str) {
    const NOBODY: u32 = 65534;
    let tmp = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(tmp.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("TMPDIR", tmp.path())
        .current_dir(tmp.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("setpriv (util-linux) runs the test unprivileged: {e}; bash .ci/run installs it")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} as uid {NOBODY}: {} (the test binary {} must be readable and executable by \
         that user)\n{stdout}\n{}",
        out.status,
        exe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
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

/// A small object read holds its own size, not opendal's read chunk: 400-byte snapshot
/// files held 2 MiB each, and listing 10,000 snapshots took 20 GB. 1,000 small reads kept
/// at once must grow the process by far less than one chunk each (2 GiB before the fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_small_reads_hold_only_their_bytes() {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let b = OpendalBackend::fs(dir.path()).unwrap();
    b.create_layout().await.unwrap();
    for i in 0..N {
        let name = format!("{i:064x}");
        b.write(FileType::Snapshot, &name, data(400, i as u8))
            .await
            .unwrap();
    }
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split(' ').nth(1).unwrap().parse::<u64>().unwrap() * 4096
    };
    let before = rss();
    let mut kept = Vec::new();
    for i in 0..N {
        kept.push(
            b.read(FileType::Snapshot, &format!("{i:064x}"))
                .await
                .unwrap(),
        );
    }
    let grown = rss().saturating_sub(before);
    assert!(kept.iter().all(|k| k.len() == 400));
    assert!(
        grown < 256 << 20,
        "{N} reads of 400 bytes grew the process by {} MiB",
        grown >> 20
    );
}
