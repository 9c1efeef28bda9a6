//! `strata migrate`: a repository of format 3 (made before WAL archiving) refuses WAL
//! until `strata migrate wal` makes it version 4; its snapshots restore byte-identical
//! afterwards, a second run has nothing to do, and a migration killed at any step leaves a
//! repository that opens and that a second run finishes.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use strata_engine::Repository;
use strata_format::config::ConfigFile;
use strata_format::id::Digest;
use strata_format::keyfile::KeyFile;
use strata_storage::{Backend, FileType, OpendalBackend};

use crate::util::*;

fn open_engine(env: &Env) -> Repository {
    let backend: Arc<dyn Backend> =
        Arc::new(OpendalBackend::fs(&env.repo).expect("open the repository"));
    Repository::open_without_index(backend, PASSWORD.as_bytes()).expect("open the repository")
}

/// Rewrites the repository as a Strata of format `version` wrote it: the config, and the
/// copy of it in every key file (through the engine, as no command makes old formats).
fn make_version(env: &Env, version: u16) {
    let repo = open_engine(env);
    let cfg = ConfigFile {
        format_version: version,
        ..repo.config().clone()
    };
    let bytes = cfg.encode(repo.key(), &mut rand::thread_rng());
    let backend = repo.backend();
    repo.block_on(backend.write(FileType::Config, "", bytes.clone().into()))
        .unwrap();
    for (name, _) in repo.block_on(backend.list(FileType::Key)).unwrap() {
        let mut kf =
            KeyFile::decode(&repo.block_on(backend.read(FileType::Key, &name)).unwrap()).unwrap();
        kf.config = Some(bytes.clone());
        let new = kf.encode();
        let id = Digest::of_stored(&new).to_hex();
        repo.block_on(backend.write(FileType::Key, &id, new.into()))
            .unwrap();
        repo.block_on(backend.delete(FileType::Key, &name)).unwrap();
    }
    assert_eq!(open_engine(env).config().format_version, version);
}

/// The format version of the config, and of every key file's copy of it.
fn versions(env: &Env) -> (u16, Vec<u16>) {
    let repo = open_engine(env);
    let backend = repo.backend();
    let copies = repo
        .block_on(backend.list(FileType::Key))
        .unwrap()
        .iter()
        .map(|(name, _)| {
            let kf = KeyFile::decode(&repo.block_on(backend.read(FileType::Key, name)).unwrap())
                .unwrap();
            ConfigFile::decode(repo.key(), kf.config.as_deref().expect("a copy"))
                .unwrap()
                .format_version
        })
        .collect();
    (repo.config().format_version, copies)
}

/// A version 3 repository holding a snapshot of `src` (two key files: a second password
/// was added); returns the snapshot's id.
fn version_3_with_a_snapshot(env: &Env) -> (PathBuf, String) {
    let src = env.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    write_file(&src.join("a.txt"), b"precious");
    write_file(&src.join("sub/b.bin"), &random_bytes(3, 700_000));
    let id = env.backup(&[&src]);
    let second = env.path("password2");
    write_file(&second, b"another password");
    chmod(&second, 0o600);
    env.cmd()
        .args([
            "key",
            "add",
            "--kdf-memory",
            "1024",
            "--kdf-iterations",
            "1",
        ])
        .arg("--new-password-file")
        .arg(&second)
        .run()
        .success();
    make_version(env, 3);
    (src, id)
}

/// A 1 MiB WAL segment (timeline 1, segment 1) with a PostgreSQL 15 long page header.
fn segment(dir: &Path) -> PathBuf {
    let mut b = random_bytes(11, 1 << 20);
    let mut header = Vec::new();
    header.extend(0xD110u16.to_le_bytes()); // xlp_magic
    header.extend(2u16.to_le_bytes()); // XLP_LONG_HEADER
    header.extend(1u32.to_le_bytes()); // timeline
    header.extend((1u64 << 20).to_le_bytes()); // page address: segment 1
    header.extend([0u8; 8]); // rem_len, padding
    header.extend(7_312_345_678_901_234_567u64.to_le_bytes()); // system identifier
    header.extend((1u32 << 20).to_le_bytes()); // segment size
    header.extend(8192u32.to_le_bytes()); // page size
    b[..header.len()].copy_from_slice(&header);
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("000000010000000000000001");
    write_file(&path, &b);
    path
}

/// `strata pg wal-push --project shop SEGMENT` with a config naming this repository.
fn wal_push(env: &Env, segment: &Path) -> Output {
    let config = env.path("strata.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = \"{state}\"\n[repositories.main]\nurl = \"{repo}\"\npassword-file = \
             \"{pw}\"\n[projects.shop]\npaths = [\"{src}\"]\nrepositories = [\"main\"]\n",
            state = env.path("state").display(),
            repo = env.repo.display(),
            pw = env.password_file.display(),
            src = env.path("src").display(),
        ),
    )
    .unwrap();
    Cmd::new()
        .env("STRATA_CONFIG", &config)
        .env("HOME", &env.home)
        .env("XDG_CACHE_HOME", &env.cache)
        .current_dir(segment.parent().unwrap())
        .args(["pg", "wal-push", "--project", "shop"])
        .arg(segment)
        .run()
}

#[test]
fn a_version_3_repository_takes_wal_after_migrate_wal_and_restores_the_same() {
    let env = Env::init();
    let (src, id) = version_3_with_a_snapshot(&env);
    let listed = env.strata(["migrate"]).success().stdout_str();
    assert!(
        listed.contains("wal") && listed.contains("needed"),
        "{listed}"
    );
    let seg = segment(&env.path("wal"));
    wal_push(&env, &seg)
        .code(1)
        .stderr_contains("format version 3")
        .stderr_contains("strata migrate wal");

    let done = env.strata(["migrate", "wal", "--json"]).success().json();
    assert_eq!(done["from_version"], 3, "{done}");
    assert_eq!(done["to_version"], 4, "{done}");
    assert_eq!(done["config_written"], true, "{done}");
    assert_eq!(
        done["key_files_updated"].as_array().map(Vec::len),
        Some(2),
        "{done}"
    );
    assert_eq!(versions(&env), (4, vec![4, 4]));

    let again = env.strata(["migrate", "wal"]).success().stdout_str();
    assert!(again.contains("already version 4"), "{again}");
    let list = env.strata(["migrate", "--json"]).success().json();
    assert_eq!(list[0]["name"], "wal", "{list}");
    assert_eq!(list[0]["state"], "done", "{list}");

    let target = env.path("restored");
    env.restore(&id, &target);
    assert_same_tree(&src, &restored(&target, &src));
    env.check_read_data_clean();
    // Both passwords still open it.
    env.cmd()
        .env("STRATA_PASSWORD_FILE", env.path("password2"))
        .arg("snapshots")
        .run()
        .success();
    wal_push(&env, &seg).success();
}

#[test]
fn formats_1_and_2_are_refused_with_what_to_do() {
    for version in [1u16, 2] {
        let env = Env::init();
        make_version(&env, version);
        let before = std::fs::read(env.repo.join("config")).unwrap();
        env.strata(["migrate", "wal"])
            .code(1)
            .stderr_contains(&format!("format version {version}"))
            .stderr_contains("strata init")
            .stderr_contains("copy --from-repo");
        assert_eq!(std::fs::read(env.repo.join("config")).unwrap(), before);
        let list = env.strata(["migrate", "--json"]).success().json();
        assert_eq!(list[0]["state"], "refused", "{list}");
    }
}

/// The mutations (writes and deletes) of one clean migration, from the mutation log.
fn clean_migration_mutations() -> u64 {
    let env = Env::init();
    version_3_with_a_snapshot(&env);
    let log = env.path("mutations.log");
    env.cmd()
        .env("STRATA_TEST_FAULT_LOG", &log)
        .args(["migrate", "wal"])
        .run()
        .success();
    std::fs::read_to_string(&log).unwrap().lines().count() as u64
}

#[test]
fn a_migration_killed_at_any_step_leaves_a_repository_that_opens_and_a_rerun_finishes() {
    let m = clean_migration_mutations();
    // The lock, the config, two key files written and two deleted, the lock removed.
    assert!(m >= 7, "{m} mutations");
    let faults = (1..=m).flat_map(|n| [format!("kill-before={n}"), format!("kill-after={n}")]);
    let mut killed = 0;
    for fault in faults {
        let env = Env::init();
        let (src, id) = version_3_with_a_snapshot(&env);
        let (mut command, cmdline) = env
            .cmd()
            .env("STRATA_TEST_FAULT", &fault)
            .args(["migrate", "wal"])
            .build();
        let out = command.stdin(Stdio::null()).output().unwrap();
        match out.status.signal() {
            Some(9) => killed += 1,
            _ => assert!(
                out.status.success(),
                "{cmdline} ({fault}) neither died nor succeeded: {:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        // It opens, as version 3 or 4, whatever copies the key files carry.
        let (config, _) = versions(&env);
        assert!(config == 3 || config == 4, "{fault}: version {config}");
        env.strata(["snapshots"]).success();
        // The killed process's lock is stale (its process is gone): the next run goes on.
        env.strata(["migrate", "wal"]).success();
        let (config, copies) = versions(&env);
        assert_eq!(config, 4, "{fault}");
        assert!(
            copies.len() == 2 && copies.iter().all(|v| *v == 4),
            "{fault}: {copies:?}"
        );
        let list = env.strata(["migrate", "--json"]).success().json();
        assert_eq!(list[0]["state"], "done", "{fault}: {list}");
        let target = env.path("restored");
        env.restore(&id, &target);
        assert_same_tree(&src, &restored(&target, &src));
    }
    assert_eq!(killed, 2 * m, "every run was killed");
}
