//! A repository whose config is missing or damaged: never "no repository" (which invites
//! `init`), never re-initialised, and restored by `repair config` with every snapshot
//! intact. Key files that are damaged are named, not taken for a wrong password.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::config_repair::{repair_config, ConfigState};
use strata_engine::progress::NoProgress;
use strata_engine::{keys, snapshots, ErrorKind, InitOptions, Repository};
use strata_format::id::Digest;
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_storage::{Backend, FileType};

const CHEAP: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A repository holding one snapshot of a small tree; returns the tree's directory.
fn with_a_snapshot() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let backend = common::init_memory(1 << 20);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), b"precious").unwrap();
    std::fs::write(src.path().join("b.bin"), vec![3u8; 300_000]).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    (backend, src)
}

/// Every snapshot restores byte for byte and the repository checks clean.
fn assert_everything_restores(backend: &Arc<dyn Backend>, src: &std::path::Path) {
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    common::assert_checks_clean(&repo);
    let snaps = snapshots::list(&repo).unwrap();
    assert_eq!(snaps.len(), 1);
    let target = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &snaps[0].1, target.path(), src);
    assert_eq!(std::fs::read(restored.join("a.txt")).unwrap(), b"precious");
    assert_eq!(
        std::fs::read(restored.join("b.bin")).unwrap(),
        vec![3u8; 300_000]
    );
}

fn delete_config(backend: &Arc<dyn Backend>) {
    rt().block_on(backend.delete(FileType::Config, "")).unwrap();
}

fn key_names(backend: &Arc<dyn Backend>) -> Vec<String> {
    rt().block_on(backend.list(FileType::Key))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Rewrites every key file as an older Strata wrote it: without a copy of the config.
fn strip_config_copies(backend: &Arc<dyn Backend>) {
    let rt = rt();
    for name in key_names(backend) {
        let mut kf =
            KeyFile::decode(&rt.block_on(backend.read(FileType::Key, &name)).unwrap()).unwrap();
        kf.config = None;
        let bytes = kf.encode();
        let new = Digest::of_stored(&bytes).to_hex();
        rt.block_on(backend.write(FileType::Key, &new, Bytes::from(bytes)))
            .unwrap();
        rt.block_on(backend.delete(FileType::Key, &name)).unwrap();
    }
}

/// The sequence of issue #12: the config is deleted; `snapshots` must not say "no
/// repository, run init", `init` must refuse, and `repair config` brings back every
/// snapshot.
#[test]
fn a_deleted_config_is_reported_init_refuses_and_repair_config_restores_it() {
    let (backend, src) = with_a_snapshot();
    delete_config(&backend);

    let err = Repository::open_without_index(backend.clone(), b"pw").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("config")
            && msg.contains("is missing")
            && msg.contains("1 key file")
            && msg.contains("1 snapshot")
            && msg.contains("strata repair config")
            && !msg.contains("no repository"),
        "{msg}"
    );

    let err = Repository::init(backend.clone(), b"pw", &InitOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(
        err.to_string().contains("already holds a repository"),
        "{err}"
    );
    assert_eq!(key_names(&backend).len(), 1, "init wrote nothing");

    let r = repair_config(backend.clone(), b"pw", None).unwrap();
    assert!(
        matches!(&r.config, ConfigState::Restored { was, .. } if was == "missing"),
        "{r:?}"
    );
    assert!(r.key_files_updated.is_empty(), "{r:?}");
    assert_everything_restores(&backend, src.path());
}

#[test]
fn a_damaged_config_is_restored_from_the_copy() {
    let (backend, src) = with_a_snapshot();
    let rt = rt();
    let mut config = rt
        .block_on(backend.read(FileType::Config, ""))
        .unwrap()
        .to_vec();
    let last = config.len() - 1;
    config[last] ^= 0x40;
    rt.block_on(backend.delete(FileType::Config, "")).unwrap();
    rt.block_on(backend.write(FileType::Config, "", Bytes::from(config)))
        .unwrap();
    let err = Repository::open_without_index(backend.clone(), b"pw").unwrap_err();
    assert!(err.to_string().contains("repair config"), "{err}");

    let r = repair_config(backend.clone(), b"pw", None).unwrap();
    assert!(matches!(r.config, ConfigState::Restored { .. }), "{r:?}");
    assert_everything_restores(&backend, src.path());
    // Nothing left to do.
    let again = repair_config(backend, b"pw", None).unwrap();
    assert_eq!(again.config, ConfigState::Healthy);
    assert!(again.key_files_updated.is_empty());
}

/// Key files of older versions carry no copy: `repair config` on a healthy repository
/// gives each one (also those of other passwords), after which a lost config restores.
#[test]
fn repair_config_gives_old_key_files_a_copy() {
    let (backend, src) = with_a_snapshot();
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    keys::add(&repo, b"second", CHEAP).unwrap();
    drop(repo);
    strip_config_copies(&backend);

    let r = repair_config(backend.clone(), b"second", None).unwrap();
    assert_eq!(r.config, ConfigState::Healthy);
    assert_eq!(r.key_files_updated.len(), 2, "{r:?}");
    let rt = rt();
    for name in key_names(&backend) {
        let kf =
            KeyFile::decode(&rt.block_on(backend.read(FileType::Key, &name)).unwrap()).unwrap();
        assert!(kf.config.is_some(), "keys/{name} has no copy");
    }
    delete_config(&backend);
    let r = repair_config(backend.clone(), b"pw", None).unwrap();
    assert!(matches!(r.config, ConfigState::Restored { .. }), "{r:?}");
    assert_everything_restores(&backend, src.path());
}

/// Without a copy, `repair config` says what it cannot do and how to go on.
#[test]
fn without_a_copy_repair_config_asks_for_rebuild() {
    let (backend, _src) = with_a_snapshot();
    strip_config_copies(&backend);
    delete_config(&backend);
    let err = repair_config(backend.clone(), b"pw", None).unwrap_err();
    assert!(err.to_string().contains("--rebuild"), "{err}");
    assert!(rt()
        .block_on(backend.stat(FileType::Config, ""))
        .unwrap()
        .is_none());
}

/// [`with_a_snapshot`], whose key file's name is not among the smallest a hash can be (so
/// that [`plant_foreign_key`] soon finds a name that sorts before it).
fn with_a_snapshot_and_a_late_key() -> (Arc<dyn Backend>, tempfile::TempDir) {
    loop {
        let (backend, src) = with_a_snapshot();
        if key_names(&backend).iter().all(|n| n.as_str() >= "4") {
            return (backend, src);
        }
    }
}

/// Copies the key file of another repository (same password) into `backend`, named as
/// key files are (by its hash) and sorting first, so that it is tried first. It keeps
/// that repository's config copy.
fn plant_foreign_key(backend: &Arc<dyn Backend>) -> String {
    let rt = rt();
    let first = key_names(backend).into_iter().min().expect("a key file");
    loop {
        let other = common::init_memory(1 << 20);
        let (name, _) = rt.block_on(other.list(FileType::Key)).unwrap().remove(0);
        if name >= first {
            continue;
        }
        let bytes = rt.block_on(other.read(FileType::Key, &name)).unwrap();
        rt.block_on(backend.write(FileType::Key, &name, bytes))
            .unwrap();
        assert_eq!(key_names(backend)[0], name);
        return name;
    }
}

/// A key file of another repository with the same password, carrying that repository's
/// config, is never taken for this one's: not while the config is healthy (it would be
/// replaced), not when it is missing (the wrong copy would be restored), not to rebuild.
#[test]
fn a_foreign_key_file_and_its_copy_are_never_taken_for_this_repository() {
    let (backend, src) = with_a_snapshot_and_a_late_key();
    let config = rt().block_on(backend.read(FileType::Config, "")).unwrap();
    let foreign = plant_foreign_key(&backend);
    let foreign_bytes = rt()
        .block_on(backend.read(FileType::Key, &foreign))
        .unwrap();

    let r = repair_config(backend.clone(), b"pw", None).unwrap();
    assert_eq!(r.config, ConfigState::Healthy, "{r:?}");
    assert_eq!(
        rt().block_on(backend.read(FileType::Config, "")).unwrap(),
        config
    );
    // Its copy is left as it is.
    assert_eq!(
        rt().block_on(backend.read(FileType::Key, &foreign))
            .unwrap(),
        foreign_bytes
    );

    delete_config(&backend);
    let r = repair_config(backend.clone(), b"pw", None).unwrap();
    assert!(
        matches!(&r.config, ConfigState::Restored { from_key, .. } if *from_key != foreign),
        "{r:?}"
    );
    assert_eq!(
        rt().block_on(backend.read(FileType::Config, "")).unwrap(),
        config
    );
    assert_everything_restores(&backend, src.path());
}

/// With no copy anywhere, `--rebuild` writes a new config from the parameters given, and
/// every snapshot stays readable; a key file of another repository with the same password
/// (tried first) does not pass: its master key opens none of these snapshots.
#[test]
fn rebuild_writes_a_new_config_that_reads_every_snapshot() {
    let (backend, src) = with_a_snapshot_and_a_late_key();
    let old_id = Repository::open_without_index(backend.clone(), b"pw")
        .unwrap()
        .config()
        .repo_id;
    strip_config_copies(&backend);
    delete_config(&backend);
    let opts = InitOptions {
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    plant_foreign_key(&backend);
    let r = repair_config(backend.clone(), b"pw", Some(&opts)).unwrap();
    let ConfigState::Rebuilt { repo_id, .. } = &r.config else {
        panic!("{r:?}")
    };
    assert_ne!(*repo_id, old_id.to_hex());
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    assert_eq!(repo.config().pack_size, 1 << 20);
    drop(repo);
    assert_everything_restores(&backend, src.path());
}

#[test]
fn init_refuses_any_part_of_a_repository_and_accepts_an_empty_layout() {
    let backend = common::init_memory(1 << 20);
    let err = Repository::init(backend.clone(), b"pw", &InitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("a config and 1 key file"), "{err}");
    // Only packs left (keys and config gone): still refused.
    let (backend, _src) = with_a_snapshot();
    let rt = rt();
    delete_config(&backend);
    for name in key_names(&backend) {
        rt.block_on(backend.delete(FileType::Key, &name)).unwrap();
    }
    let err = Repository::init(backend.clone(), b"pw", &InitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("pack"), "{err}");
    // The directories of an init that died before writing anything: fine.
    let empty: Arc<dyn Backend> = Arc::new(strata_storage::OpendalBackend::memory().unwrap());
    rt.block_on(empty.create_layout()).unwrap();
    Repository::init(empty, b"pw", &InitOptions::default()).unwrap();
}

/// One flipped byte in a key file: named as damaged, the other key files tried; with no
/// other key for the password, the error is "damaged", not "wrong password".
#[test]
fn a_damaged_key_file_is_named_and_the_others_are_tried() {
    let backend = common::init_memory(1 << 20);
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let first = repo.key_name().to_string();
    keys::add(&repo, b"pw", CHEAP).unwrap();
    drop(repo);
    let rt = rt();
    let mut bytes = rt
        .block_on(backend.read(FileType::Key, &first))
        .unwrap()
        .to_vec();
    // A byte of the wrapped master key (the end of the file is host, user and config).
    bytes[60] ^= 1;
    rt.block_on(backend.delete(FileType::Key, &first)).unwrap();
    rt.block_on(backend.write(FileType::Key, &first, Bytes::from(bytes)))
        .unwrap();
    // The other key for the same password opens.
    Repository::open_without_index(backend.clone(), b"pw").unwrap();
    // Without it, the damage is named.
    for name in key_names(&backend) {
        if name != first {
            rt.block_on(backend.delete(FileType::Key, &name)).unwrap();
        }
    }
    let err = Repository::open_without_index(backend.clone(), b"pw").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("keys/{first} is damaged")),
        "{err}"
    );
}
