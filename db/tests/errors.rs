//! Error kinds of database operations against an in-memory repository: a database or dump
//! tool that fails is an unavailable source, a request that cannot be carried out is
//! invalid, and a repository failure keeps the engine's kind.
//!
//! Only `dump_tools_that_fail_are_an_unavailable_source` runs a tool (through `PATH`, which
//! it changes for the process); every other test here stays within sqlx and the engine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::Connection;
use strata_db::{backup_database, restore_database, restore_test, Database, DbError, ErrorKind};
use strata_engine::archiver::{BackupOptions, StreamBackup, StreamFile};
use strata_engine::progress::NoProgress;
use strata_engine::{InitOptions, Repository};
use strata_format::chunker::ChunkerParams;
use strata_format::keyfile::KdfParams;
use strata_format::snapshot::{SnapshotFile, SourceKind};
use strata_storage::{Backend, FileType, OpendalBackend};

/// A fresh in-memory repository, opened (a cheap KDF).
fn repository() -> (Arc<dyn Backend>, Repository) {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 64,
            t: 1,
            p: 1,
        },
        chunker: ChunkerParams::DATABASE,
        db_chunker: ChunkerParams::DATABASE,
        pack_size: 1 << 20,
        compression_level: 3,
        chunker_seed: None,
    };
    Repository::init(backend.clone(), b"pw", &opts).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    (backend, repo)
}

/// A SQLite database file holding one table with one row, made through sqlx (no tool).
fn sqlite_file(repo: &Repository, path: &Path) {
    repo.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(path)
            .create_if_missing(true);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::query("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1);")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
}

/// A SQLite snapshot written directly (no dump tool), recording table `t` with one row;
/// the repository's index is loaded again to hold it.
fn sqlite_snapshot(repo: &mut Repository) -> SnapshotFile {
    let dump =
        b"BEGIN TRANSACTION;\nCREATE TABLE t (a INTEGER);\nINSERT INTO t VALUES(1);\nCOMMIT;\n";
    let backup = StreamBackup::new(repo, &BackupOptions::default(), &NoProgress).unwrap();
    let (content, size) = backup
        .read(&mut &dump[..], ChunkerParams::DATABASE, "dump")
        .unwrap();
    let file = StreamFile {
        name: "app.sql".into(),
        content,
        size,
    };
    let meta = vec![("rows:t".to_string(), "1".to_string())];
    let result = backup
        .finish(file, SourceKind::Sqlite, vec!["/app.db".into()], meta)
        .unwrap();
    repo.load_index(false).unwrap();
    result.snapshot
}

fn snapshots(repo: &Repository) -> usize {
    strata_engine::snapshots::list(repo).unwrap().len()
}

fn assert_kind(result: Result<impl std::fmt::Debug, DbError>, kind: ErrorKind, says: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.kind(), kind, "{err}");
    assert!(err.to_string().contains(says), "{err}");
}

/// Writes an executable `sqlite3` into `dir` that answers `--version`, writes the start of
/// a dump, then runs `end` (shell).
fn fake_sqlite3(dir: &Path, end: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo '3.0.0 fake'; exit 0; }}\n\
         printf 'BEGIN TRANSACTION;\\nCREATE TABLE t (a INTEGER);\\n'\n{end}\n"
    );
    let tool = dir.join("sqlite3");
    std::fs::write(&tool, script).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn dump_tools_that_fail_are_an_unavailable_source() {
    let (_, repo) = repository();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("app.db");
    sqlite_file(&repo, &file);
    let db = Database::sqlite(&file).unwrap();
    fake_sqlite3(
        &work.path().join("fails"),
        "echo 'Error: disk I/O error' >&2; exit 1",
    );
    fake_sqlite3(&work.path().join("stops"), "exit 0");
    std::fs::create_dir(work.path().join("none")).unwrap();

    let path = std::env::var_os("PATH").unwrap_or_default();
    let with_path = |dir: &str| {
        std::env::set_var("PATH", work.path().join(dir));
        let result = backup_database(&repo, &db, &BackupOptions::default(), &NoProgress);
        std::env::set_var("PATH", &path);
        result
    };
    assert_kind(
        with_path("fails"),
        ErrorKind::Unavailable,
        "sqlite3 failed (exit status 1): Error: disk I/O error",
    );
    assert_kind(
        with_path("stops"),
        ErrorKind::Unavailable,
        "without its completion marker",
    );
    assert_kind(
        with_path("none"),
        ErrorKind::Unavailable,
        "is not installed",
    );
    assert_eq!(snapshots(&repo), 0, "a failed dump wrote a snapshot");
}

#[test]
fn databases_that_cannot_be_reached_are_an_unavailable_source() {
    let (_, repo) = repository();
    let work = tempfile::tempdir().unwrap();
    let missing = Database::sqlite(&work.path().join("missing.db")).unwrap();
    let opts = BackupOptions::default();
    assert_kind(
        backup_database(&repo, &missing, &opts, &NoProgress),
        ErrorKind::Unavailable,
        "missing.db: no such SQLite database file",
    );
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let down = Database::postgres("postgres://u@127.0.0.1:1/app").unwrap();
    assert_kind(
        backup_database(&repo, &down, &opts, &NoProgress),
        ErrorKind::Unavailable,
        "postgres://u@127.0.0.1:1/app",
    );
    assert_eq!(snapshots(&repo), 0);
}

#[test]
fn requests_that_cannot_be_carried_out_are_invalid() {
    let (_, mut repo) = repository();
    let snap = sqlite_snapshot(&mut repo);
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("in-use.db");
    sqlite_file(&repo, &target);
    let into = Database::sqlite(&target).unwrap();
    let safety = BackupOptions::default();
    assert_kind(
        restore_database(&repo, &snap, &into, false, &safety, &NoProgress),
        ErrorKind::Invalid,
        "pass --force",
    );
    let server = Database::postgres("postgres://u@127.0.0.1:1/app").unwrap();
    assert_kind(
        restore_database(&repo, &snap, &server, true, &safety, &NoProgress),
        ErrorKind::Invalid,
        "holds a sqlite dump; it cannot be restored into postgres",
    );
    assert_kind(
        Database::postgres("http://u@host/app"),
        ErrorKind::Invalid,
        "expected a postgres:// URL",
    );
    let mut files = snap.clone();
    files.source = SourceKind::Files;
    let id = strata_engine::snapshots::list(&repo).unwrap()[0].0;
    assert_kind(
        restore_test(&repo, &id, &files, None, &NoProgress),
        ErrorKind::Invalid,
        "not a database dump",
    );
    assert_kind(
        Database::of_kind(&SourceKind::Files, "x"),
        ErrorKind::Invalid,
        "a files snapshot is not a database dump",
    );
}

#[test]
fn repository_failures_keep_the_engines_kind() {
    let (backend, mut repo) = repository();
    let snap = sqlite_snapshot(&mut repo);
    // The snapshot's tree and dump are gone from storage.
    repo.block_on(async {
        for (name, _) in backend.list(FileType::Pack).await.unwrap() {
            backend.delete(FileType::Pack, &name).await.unwrap();
        }
    });
    let work = tempfile::tempdir().unwrap();
    let into = Database::sqlite(&work.path().join("new.db")).unwrap();
    let err = restore_database(
        &repo,
        &snap,
        &into,
        false,
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Engine(k) if k == strata_engine::ErrorKind::Corrupt),
        "{:?}: {err}",
        err.kind()
    );
    assert!(!work.path().join("new.db").exists());
}
