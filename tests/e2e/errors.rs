//! Failures: wrong password, missing repository, damaged repository,
//! unreadable sources, killed backups. Every failure must be a clear
//! one-line message with the documented exit code, never a panic.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::util::*;

/// A small source with some data worth corrupting: two files of random data
/// (several chunks) and a few small files.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    write_file(
        &src.join("random-1.bin"),
        &random_bytes(11, 6 * MIB as usize),
    );
    write_file(
        &src.join("random-2.bin"),
        &random_bytes(12, 3 * MIB as usize),
    );
    write_file(&src.join("notes.txt"), b"some notes\n");
    write_file(&src.join("sub/more.txt"), b"more\n");
    src
}

/// Every 64-hex id that appears in the decrypted index files.
fn indexed_ids(env: &Env) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for file in env.repo_files("index") {
        let out = env.strata(["cat", "index", &file_name(&file)]).success();
        ids.extend(
            hex_tokens(&out.stdout_str(), 64)
                .into_iter()
                .filter(|t| t.len() == 64),
        );
    }
    ids
}

/// Whether `text` names the pack `pack_id` or one of the blob ids in `blobs`
/// (in full or by a prefix of 8 or more hex digits).
fn names_pack_or_blob(text: &str, pack_id: &str, blobs: &BTreeSet<String>) -> bool {
    names_id(text, pack_id) || blobs.iter().any(|b| names_id(text, b))
}

#[test]
fn wrong_password() {
    let env = Env::init();
    let wrong = env.path("wrong-password");
    fs::write(&wrong, "not the password").unwrap();
    chmod(&wrong, 0o600);
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &wrong)
        .arg("snapshots")
        .run()
        .code(12)
        .one_line_error()
        .stderr_contains("password");
    // Also through the flag, and for a command that would write.
    env.cmd()
        .env_remove("STRATA_PASSWORD_FILE")
        .arg("--password-file")
        .arg(&wrong)
        .arg("backup")
        .arg(&env.password_file)
        .run()
        .code(12)
        .stderr_contains("password");
    assert!(env.repo_files("snapshots").is_empty());
}

#[test]
fn missing_repository() {
    let env = Env::new();
    env.strata(["snapshots"]).code(10).one_line_error();
    env.cmd()
        .arg("backup")
        .arg(&env.password_file)
        .run()
        .code(10)
        .one_line_error();
    env.cmd()
        .args(["restore", "latest", "--target"])
        .arg(env.path("t"))
        .run()
        .code(10);
    assert!(
        !env.repo.exists(),
        "a command other than init created the repository"
    );
}

#[test]
fn no_password_source_and_no_terminal() {
    let env = Env::init();
    env.cmd()
        .env_remove("STRATA_PASSWORD_FILE")
        .arg("snapshots")
        .run()
        .code(1)
        .one_line_error();
}

#[test]
fn password_file_that_does_not_exist() {
    let env = Env::init();
    let missing = env.path("no-such-password-file");
    env.cmd()
        .env("STRATA_PASSWORD_FILE", &missing)
        .arg("snapshots")
        .run()
        .failure()
        .stderr_contains("no-such-password-file");
}

#[test]
fn init_twice_fails_and_keeps_the_repository() {
    let env = Env::init();
    let config = fs::read(env.repo.join("config")).unwrap();
    env.strata(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .failure();
    assert_eq!(fs::read(env.repo.join("config")).unwrap(), config);
    assert_eq!(env.repo_files("keys").len(), 1);
    env.strata(["snapshots"]).success();
}

#[test]
fn corrupted_byte_in_a_pack() {
    let mut env = Env::init();
    let src = source(&env);
    let id = env.backup(&[&src]);
    let blobs = indexed_ids(&env);

    let pack = env.largest_pack();
    let pack_id = file_name(&pack);
    let len = fs::metadata(&pack).unwrap().len();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pack)
        .unwrap();
    let mut byte = [0u8; 1];
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.read_exact(&mut byte).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[byte[0] ^ 0x20]).unwrap();
    drop(f);

    env.fresh_cache();
    let target = env.path("restore");
    let out = env
        .cmd()
        .args(["restore", &id, "--target"])
        .arg(&target)
        .run()
        .failure();
    assert!(
        names_pack_or_blob(&out.stderr, &pack_id, &blobs),
        "the error should name the damaged pack {pack_id} or a blob in it\n{}",
        out.describe()
    );
}

#[test]
fn check_read_data_names_the_damaged_pack_snapshot_and_path() {
    let mut env = Env::init();
    let src = source(&env);
    let id = env.backup(&[&src]);
    let healthy = env
        .strata(["check", "--read-data", "--json"])
        .success()
        .json();
    let pack_bytes: u64 = env
        .repo_files("data")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(healthy["ok"], true);
    assert_eq!(healthy["bytes_read"].as_u64(), Some(pack_bytes));

    let pack_id = env.flip_byte_in_largest_pack();
    env.fresh_cache();
    // The structure alone is intact: only reading the data finds the damage.
    env.strata(["check"]).success();
    let out = env.strata(["check", "--read-data"]).code(1);
    assert!(
        names_id(&out.stderr, &pack_id),
        "check --read-data should name the damaged pack {pack_id}\n{}",
        out.describe()
    );
    let snapshot_line = out
        .stderr
        .lines()
        .find(|l| l.contains(&format!("snapshot {}", &id[..8])))
        .unwrap_or_else(|| panic!("no line names snapshot {id}\n{}", out.describe()));
    assert!(
        snapshot_line.contains("/src/random-1.bin") || snapshot_line.contains("/src/random-2.bin"),
        "the snapshot line should name the damaged file: {snapshot_line}"
    );
    let report = env
        .strata(["check", "--read-data", "--json"])
        .code(1)
        .json();
    assert_eq!(report["ok"], false);
    assert!(report["errors"].as_array().unwrap().len() >= 2);
}

#[test]
fn truncated_index() {
    let mut env = Env::init();
    let src = source(&env);
    let id = env.backup(&[&src]);
    let index = env.repo_files("index");
    assert!(!index.is_empty(), "no index file after a backup");
    let index_file = &index[0];
    let len = fs::metadata(index_file).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(index_file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    env.fresh_cache();
    let out = env.strata(["check"]).code(1);
    let all = format!("{}\n{}", out.stderr, out.stdout_str());
    assert!(
        all.to_lowercase().contains("index") || names_id(&all, &file_name(index_file)),
        "check should report the damaged index\n{}",
        out.describe()
    );

    env.fresh_cache();
    env.cmd()
        .args(["restore", &id, "--target"])
        .arg(env.path("restore"))
        .run()
        .failure();
}

#[test]
fn deleted_pack() {
    let mut env = Env::init();
    let src = source(&env);
    let id = env.backup(&[&src]);
    let blobs = indexed_ids(&env);
    let pack = env.largest_pack();
    let pack_id = file_name(&pack);
    fs::remove_file(&pack).unwrap();

    env.fresh_cache();
    let out = env.strata(["check"]).code(1);
    let all = format!("{}\n{}", out.stderr, out.stdout_str());
    assert!(
        names_id(&all, &pack_id),
        "check should name the missing pack {pack_id}\n{}",
        out.describe()
    );

    env.fresh_cache();
    let out = env
        .cmd()
        .args(["restore", &id, "--target"])
        .arg(env.path("restore"))
        .run()
        .failure();
    assert!(
        names_pack_or_blob(&out.stderr, &pack_id, &blobs),
        "restore should name the missing pack {pack_id} or a blob in it\n{}",
        out.describe()
    );
}

#[test]
fn check_passes_on_a_healthy_repository() {
    let env = Env::init();
    env.strata(["check"]).success();
    let src = source(&env);
    env.backup(&[&src]);
    env.backup(&[&src]);
    env.strata(["check"]).success();
}

#[test]
fn backup_of_a_missing_path() {
    let env = Env::init();
    let missing = env.path("there-is-nothing-here");
    env.cmd()
        .arg("backup")
        .arg(&missing)
        .run()
        .failure()
        .stderr_contains("there-is-nothing-here");
    assert!(env.snapshots().is_empty());
}

/// As restic: a missing path among others is reported and the rest is backed up, with
/// exit code 3; the snapshot names only what was there, and restores identical.
#[test]
fn a_missing_path_among_others_gives_exit_code_3_and_a_snapshot_of_the_rest() {
    let env = Env::init();
    let src = source(&env);
    let missing = env.path("gone-away");
    let out = env
        .cmd()
        .arg("backup")
        .arg(&src)
        .arg(&missing)
        .arg("--json")
        .run()
        .code(3)
        .stderr_contains("gone-away");
    let summary = out.json();
    let id = summary["snapshot_id"].as_str().unwrap().to_string();
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        snaps[0]["paths"],
        serde_json::json!([src.to_string_lossy()]),
        "{}",
        snaps[0]
    );
    let target = env.path("restore");
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
}

/// Root can read anything, so the backup runs as `nobody` (via setpriv) over
/// a tree that user owns, with one file it cannot read: exit code 3, the
/// error names the file, and the snapshot is written with everything else.
#[test]
fn unreadable_file_gives_exit_code_3() {
    assert!(
        have_tool("setpriv"),
        "setpriv (util-linux) is needed to run strata unprivileged: .ci/run installs it"
    );
    let env = Env::new();
    let src = env.path("src");
    write_file(&src.join("ok.txt"), b"readable\n");
    write_file(&src.join("secret.txt"), b"you cannot read me\n");
    write_file(&src.join("sub/fine.txt"), b"also readable\n");
    chown_tree(&env.root, 65534, 65534);
    chmod(&env.root, 0o755);
    chmod(&src.join("secret.txt"), 0o000);
    let as_nobody = |cmd: Cmd| {
        cmd.wrap([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ])
    };

    as_nobody(env.cmd())
        .args(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .run()
        .success();
    let out = as_nobody(env.cmd()).arg("backup").arg(&src).run().code(3);
    assert!(
        out.stderr.contains("secret.txt"),
        "the error should name the unreadable file\n{}",
        out.describe()
    );

    let snaps = {
        let out = as_nobody(env.cmd())
            .args(["snapshots", "--json"])
            .run()
            .success();
        out.json().as_array().unwrap().clone()
    };
    assert_eq!(snaps.len(), 1, "the snapshot must still be written");
    let listed: BTreeSet<String> = as_nobody(env.cmd())
        .args(["ls", "latest"])
        .run()
        .success()
        .lines()
        .into_iter()
        .collect();
    for f in ["ok.txt", "sub/fine.txt"] {
        let p = src.join(f).to_string_lossy().into_owned();
        assert!(listed.contains(&p), "{p} missing from {listed:#?}");
    }

    // The JSON summary lists the error too.
    let out = as_nobody(env.cmd())
        .arg("backup")
        .arg(&src)
        .arg("--json")
        .run()
        .code(3);
    let v = out.json();
    let errors = v["errors"].as_array().expect("errors array");
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap_or("").contains("secret.txt")),
        "{v}"
    );

    // What could be read restores.
    let target = env.path("restore");
    let id = v["snapshot_id"].as_str().unwrap();
    env.restore(id, &target);
    let out_dir = restored(&target, &src);
    assert_eq!(fs::read(out_dir.join("ok.txt")).unwrap(), b"readable\n");
    assert_eq!(
        fs::read(out_dir.join("sub/fine.txt")).unwrap(),
        b"also readable\n"
    );
}

/// A backup killed at an arbitrary point leaves a valid repository that the
/// next backup can use at once (no lock left in its way). Whenever the kill
/// lands — even after the backup finished — the assertions hold.
#[test]
fn killed_backup_leaves_a_usable_repository() {
    let env = Env::init();
    let src = env.path("src");
    for i in 0..4u64 {
        write_file(
            &src.join(format!("part-{i}.bin")),
            &random_bytes(100 + i, 16 * MIB as usize),
        );
    }
    let (mut command, cmdline) = env.cmd().arg("backup").arg(&src).build();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    // Kill it once it has written its first pack (or let it finish).
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if !env.repo_files("data").is_empty() {
            child.kill().unwrap();
            child.wait().unwrap();
            eprintln!(
                "killed the backup after its first pack; left behind: {} lock(s), {} pack(s)",
                env.repo_files("locks").len(),
                env.repo_files("data").len()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    env.strata(["check"]).success();
    let id = env.backup(&[&src]);
    env.strata(["check"]).success();
    let target = env.path("restore");
    env.restore(&id, &target);
    assert_same_tree(&src, &restored(&target, &src));
    assert!(!env.snapshots().is_empty());
}

#[test]
fn unlock_keeps_live_locks_and_removes_those_of_dead_processes() {
    let env = Env::init();
    env.strata(["unlock"]).success();
    // A stdin backup holds its lock while it waits for input that never comes.
    let (mut command, cmdline) = env
        .cmd()
        .args(["backup", "--stdin", "--stdin-filename", "wait.sql"])
        .build();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env.repo_objects("locks").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never took its lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = env.strata(["unlock"]).success();
    assert!(out.stdout_str().contains("kept"), "{}", out.describe());
    assert_eq!(env.repo_files("locks").len(), 1, "a live lock was removed");

    child.kill().unwrap();
    child.wait().unwrap();
    let out = env.strata(["unlock"]).success();
    assert!(out.stdout_str().contains("removed"), "{}", out.describe());
    assert!(env.repo_files("locks").is_empty());
}
