//! `migrate wal`: a version 3 repository becomes version 4 (config and every key file's
//! copy of it), keeps every snapshot, takes WAL afterwards; a crash between the config and
//! the key files is finished by a second run; versions 1 and 2 are refused; version 4 is
//! left alone. `repair config` never brings back a lower version than the config's.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_engine::archiver::{backup_paths, BackupOptions};
use strata_engine::config_repair::{repair_config, ConfigState};
use strata_engine::migrate::{self, MigrationState};
use strata_engine::progress::NoProgress;
use strata_engine::wal::{self, Push};
use strata_engine::{keys, snapshots, ErrorKind, Repository};
use strata_format::config::ConfigFile;
use strata_format::id::Digest;
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_storage::{Backend, FaultBackend, FaultPlan, FileType};

const CHEAP: KdfParams = KdfParams {
    m_kib: 64,
    t: 1,
    p: 1,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn read(backend: &Arc<dyn Backend>, ft: FileType, name: &str) -> Bytes {
    rt().block_on(backend.read(ft, name)).unwrap()
}

fn key_names(backend: &Arc<dyn Backend>) -> Vec<String> {
    rt().block_on(backend.list(FileType::Key))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect()
}

/// Rewrites key file `name` with `edit` applied (a new name, the old one deleted), as an
/// older Strata or an interrupted command would have left it; returns the new name.
fn rewrite_key(backend: &Arc<dyn Backend>, name: &str, edit: impl FnOnce(&mut KeyFile)) -> String {
    let mut kf = KeyFile::decode(&read(backend, FileType::Key, name)).unwrap();
    edit(&mut kf);
    let bytes = kf.encode();
    let new = Digest::of_stored(&bytes).to_hex();
    let rt = rt();
    rt.block_on(backend.write(FileType::Key, &new, Bytes::from(bytes)))
        .unwrap();
    if new != name {
        rt.block_on(backend.delete(FileType::Key, name)).unwrap();
    }
    new
}

/// Makes the repository one of format `version`, as a Strata of that time wrote it: the
/// config and every key file's copy of it. Returns the config's bytes.
fn make_version(backend: &Arc<dyn Backend>, version: u16) -> Bytes {
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    let cfg = ConfigFile {
        format_version: version,
        ..repo.config().clone()
    };
    let bytes = Bytes::from(cfg.encode(repo.key(), &mut rand::thread_rng()));
    rt().block_on(backend.write(FileType::Config, "", bytes.clone()))
        .unwrap();
    for name in key_names(backend) {
        rewrite_key(backend, &name, |kf| kf.config = Some(bytes.to_vec()));
    }
    let old = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    assert_eq!(old.config().format_version, version);
    bytes
}

/// The format version of every key file's copy of the config, in listing order.
fn copy_versions(backend: &Arc<dyn Backend>) -> Vec<u16> {
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    key_names(backend)
        .iter()
        .map(|name| {
            let kf = KeyFile::decode(&read(backend, FileType::Key, name)).unwrap();
            ConfigFile::decode(repo.key(), kf.config.as_deref().expect("a copy"))
                .unwrap()
                .format_version
        })
        .collect()
}

/// A version 3 repository with one snapshot and two key files (`pw`, `pw2`); the source's
/// directory.
fn version_3_with_a_snapshot() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let backend = common::init_memory(1 << 20);
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), b"precious").unwrap();
    std::fs::write(src.path().join("b.bin"), common::pseudo_random(300_000, 7)).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    backup_paths(
        &repo,
        &[src.path().to_path_buf()],
        &BackupOptions::default(),
        &NoProgress,
    )
    .unwrap();
    keys::add(&repo, b"pw2", CHEAP).unwrap();
    make_version(&backend, 3);
    (backend, src)
}

fn segment_push(content: &[u8]) -> Push<'_> {
    Push {
        project: "shop",
        system_id: 7_312_345_678_901_234_567,
        timeline: 1,
        seg_size: 16 << 20,
        wal_magic: 0xD110,
        name: "000000010000000000000001",
        content,
    }
}

fn wal_state(repo: &Repository) -> MigrationState {
    let list = migrate::list(repo).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, migrate::WAL);
    list[0].state.clone()
}

#[test]
fn a_version_3_repository_becomes_version_4_with_every_snapshot_and_takes_wal() {
    let (backend, src) = version_3_with_a_snapshot();
    let old = Repository::open(backend.clone(), b"pw").unwrap();
    let old_config = old.config().clone();
    let segment = common::pseudo_random(1 << 20, 9);
    let e = wal::push(&old, &segment_push(&segment)).unwrap_err();
    assert!(e.to_string().contains("format version 3"), "{e}");
    assert!(matches!(wal_state(&old), MigrationState::Needed(_)));

    let done = migrate::wal(&old, Duration::ZERO).unwrap();
    assert_eq!((done.from_version, done.to_version), (3, 4));
    assert!(done.config_written);
    assert_eq!(done.key_files_updated.len(), 2, "{done:?}");
    assert!(done.key_files_skipped.is_empty(), "{done:?}");
    assert!(!done.was_done());

    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    assert_eq!(repo.config().format_version, 4);
    assert_eq!(
        ConfigFile {
            format_version: 3,
            ..repo.config().clone()
        },
        old_config,
        "every field but the version is the old one's"
    );
    assert_eq!(copy_versions(&backend), [4, 4], "every key file's copy");
    for name in key_names(&backend) {
        let kf = KeyFile::decode(&read(&backend, FileType::Key, &name)).unwrap();
        assert_eq!(kf.config.as_deref(), Some(&repo.config_bytes()[..]));
    }
    // Both passwords still open it.
    Repository::open_without_index(backend.clone(), b"pw2").unwrap();
    common::assert_checks_clean(&repo);
    let snaps = snapshots::list(&repo).unwrap();
    assert_eq!(snaps.len(), 1);
    let target = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &snaps[0].1, target.path(), src.path());
    for f in ["a.txt", "b.bin"] {
        assert_eq!(
            std::fs::read(restored.join(f)).unwrap(),
            std::fs::read(src.path().join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(wal_state(&repo), MigrationState::Done);
    wal::push(&repo, &segment_push(&segment)).unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    common::assert_checks_clean(&repo);
}

#[test]
fn a_crash_between_the_config_and_the_key_files_is_finished_by_running_it_again() {
    let (backend, src) = version_3_with_a_snapshot();
    // Mutations: 1 the lock, 2 the config, 3 the first new key file: it fails, as if the
    // process died after the config was written.
    let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
        backend.clone(),
        FaultPlan {
            fail_at_mutation: Some(3),
            ..Default::default()
        },
    ));
    let repo = Repository::open_without_index(faulty, b"pw").unwrap();
    let e = migrate::wal(&repo, Duration::ZERO).unwrap_err();
    assert!(e.to_string().contains("injected fault"), "{e}");
    drop(repo);

    // It opens, as version 4, with the copies still of version 3, and says so.
    let half = Repository::open(backend.clone(), b"pw").unwrap();
    assert_eq!(half.config().format_version, 4);
    assert_eq!(copy_versions(&backend), [3, 3]);
    match wal_state(&half) {
        MigrationState::Needed(why) => assert!(why.contains("2 key file(s)"), "{why}"),
        other => panic!("{other:?}"),
    }
    common::assert_checks_clean(&half);

    let done = migrate::wal(&half, Duration::ZERO).unwrap();
    assert!(!done.config_written, "{done:?}");
    assert_eq!((done.from_version, done.to_version), (4, 4));
    assert_eq!(done.key_files_updated.len(), 2, "{done:?}");
    assert_eq!(copy_versions(&backend), [4, 4]);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    assert_eq!(wal_state(&repo), MigrationState::Done);
    let snaps = snapshots::list(&repo).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = common::restore_clean(&repo, &snaps[0].1, target.path(), src.path());
    assert_eq!(std::fs::read(restored.join("a.txt")).unwrap(), b"precious");
}

#[test]
fn versions_1_and_2_are_refused_and_left_unchanged() {
    for version in [1u16, 2] {
        let backend = common::init_memory(1 << 20);
        let config = make_version(&backend, version);
        let keys_before = key_names(&backend);
        let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
        let e = migrate::wal(&repo, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("format version {version}"))
                && msg.contains("database-dump chunker")
                && msg.contains("strata init")
                && msg.contains("copy --from-repo"),
            "{msg}"
        );
        assert!(
            matches!(wal_state(&repo), MigrationState::Refused(why) if why == msg),
            "version {version}"
        );
        assert_eq!(read(&backend, FileType::Config, ""), config);
        assert_eq!(key_names(&backend), keys_before);
        assert_eq!(copy_versions(&backend), [version]);
    }
}

#[test]
fn a_version_4_repository_is_left_as_it_is() {
    let backend = common::init_memory(1 << 20);
    let config = read(&backend, FileType::Config, "");
    let keys_before = key_names(&backend);
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    assert_eq!(wal_state(&repo), MigrationState::Done);
    let done = migrate::wal(&repo, Duration::ZERO).unwrap();
    assert!(done.was_done(), "{done:?}");
    assert_eq!((done.from_version, done.to_version), (4, 4));
    assert_eq!(read(&backend, FileType::Config, ""), config);
    assert_eq!(key_names(&backend), keys_before);
    assert!(
        rt().block_on(backend.list(FileType::Lock))
            .unwrap()
            .is_empty(),
        "the lock is released"
    );
}

/// Key files `(copy of version 3, copy of version 4)` beside a version 4 config, the
/// version 3 one listed first (what a crash inside the key file step can leave, in the
/// order that finds a lower copy first).
fn lower_copy_listed_first(backend: &Arc<dyn Backend>, v3: &Bytes, v4: &Bytes) {
    let names = key_names(backend);
    assert_eq!(names.len(), 2);
    let low = rewrite_key(backend, &names[0], |kf| kf.config = Some(v3.to_vec()));
    let mut high = rewrite_key(backend, &names[1], |kf| kf.config = Some(v4.to_vec()));
    // Names are hashes: another creation time gives another name, until it sorts after.
    while high < low {
        high = rewrite_key(backend, &high, |kf| kf.created_ns += 1);
    }
    assert_eq!(copy_versions(backend), [3, 4]);
}

#[test]
fn repair_config_restores_the_highest_copy_and_never_a_lower_one_than_the_config() {
    let (backend, src) = version_3_with_a_snapshot();
    let v3 = read(&backend, FileType::Config, "");
    let repo = Repository::open_without_index(backend.clone(), b"pw").unwrap();
    migrate::wal(&repo, Duration::ZERO).unwrap();
    let v4 = read(&backend, FileType::Config, "");
    lower_copy_listed_first(&backend, &v3, &v4);

    // Missing: the highest copy comes back.
    rt().block_on(backend.delete(FileType::Config, "")).unwrap();
    let r = repair_config(backend.clone(), b"pw", None).unwrap();
    assert!(matches!(r.config, ConfigState::Restored { .. }), "{r:?}");
    assert_eq!(read(&backend, FileType::Config, ""), v4);
    // And the lower copy is raised, as a second `migrate wal` would.
    assert_eq!(r.key_files_updated.len(), 1, "{r:?}");
    assert_eq!(copy_versions(&backend), [4, 4]);

    // Damaged with its header readable (version 4), and only version 3 copies: refused,
    // nothing written.
    let only_v3 = key_names(&backend);
    for name in only_v3 {
        rewrite_key(&backend, &name, |kf| kf.config = Some(v3.to_vec()));
    }
    let mut damaged = v4.to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    rt().block_on(backend.write(FileType::Config, "", Bytes::from(damaged.clone())))
        .unwrap();
    let e = repair_config(backend.clone(), b"pw", None).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("format version 3 at most")
            && msg.contains("is of version 4")
            && msg.contains("downgrade"),
        "{msg}"
    );
    assert_eq!(read(&backend, FileType::Config, ""), damaged);

    // With a version 4 copy among them, that one is restored.
    let names = key_names(&backend);
    rewrite_key(&backend, &names[1], |kf| kf.config = Some(v4.to_vec()));
    repair_config(backend.clone(), b"pw", None).unwrap();
    assert_eq!(read(&backend, FileType::Config, ""), v4);
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    assert_eq!(repo.config().format_version, 4);
    let snaps = snapshots::list(&repo).unwrap();
    let target = tempfile::tempdir().unwrap();
    common::restore_clean(&repo, &snaps[0].1, target.path(), src.path());
}

#[test]
fn a_config_that_does_not_read_back_as_written_is_replaced_by_the_old_one() {
    let (backend, _src) = version_3_with_a_snapshot();
    let v3 = read(&backend, FileType::Config, "");
    let keys_before = key_names(&backend);
    // Mutations: 1 the lock, 2 the config: stored half, as a store that loses data would.
    let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
        backend.clone(),
        FaultPlan {
            truncate_write: Some(2),
            ..Default::default()
        },
    ));
    let repo = Repository::open_without_index(faulty, b"pw").unwrap();
    let e = migrate::wal(&repo, Duration::ZERO).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("does not read back as written")
            && msg.contains("the old config was written back"),
        "{msg}"
    );
    assert_eq!(read(&backend, FileType::Config, ""), v3);
    assert_eq!(key_names(&backend), keys_before, "no key file was touched");
    assert_eq!(copy_versions(&backend), [3, 3]);
}
