//! Opening backends: locations as users write them, and what each one shows.

use std::path::Path;

use strata_storage::{Backend, ErrorKind, FileType, OpendalBackend};

use crate::cases::data;

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
    let sftp =
        strata_storage::open("sftp://backup@host:2222/srv/repo", &Default::default(), 2).unwrap();
    assert_eq!(sftp.location(), "sftp://backup@host:2222/srv/repo");
    assert!(sftp.is_remote());
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
