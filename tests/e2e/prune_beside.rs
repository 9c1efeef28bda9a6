//! Two-phase prune (spec/prune.md) with real processes killed with SIGKILL (through the
//! `STRATA_TEST_FAULT` hook): a prune killed before every storage mutation it makes while
//! a backup that began before it runs, and a backup killed before every storage mutation
//! it makes while a prune runs beside it. After each, `check --read-data` is clean, every
//! kept snapshot (and the backup's, when it wrote one) restores byte-identical, and two
//! more prunes leave nothing to do.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A repository with 1 MiB packs and two snapshots of `src`, the first forgotten: its
/// files that changed are garbage for prune, one of them (`f1.bin` of round 0) kept aside
/// in `old/` for a later backup to deduplicate against. Returns the kept snapshot id and
/// a copy of what it holds.
fn repository_with_garbage(env: &Env) -> (String, PathBuf) {
    let src = env.path("src");
    let mut kept = None;
    for round in 0..2u64 {
        for i in 0..4u64 {
            let seed = if i % 2 == 0 { i } else { i + 100 * round };
            write_file(
                &src.join(format!("f{i}.bin")),
                &random_bytes(seed, 300 * 1024),
            );
        }
        let id = env.backup(&[&src]);
        if round == 0 {
            write_file(
                &env.path("b/old/f1.bin"),
                &std::fs::read(src.join("f1.bin")).unwrap(),
            );
            env.strata(["forget", id.as_str()]).success();
        } else {
            let copy = env.path("copy");
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(&copy)
                .status()
                .unwrap();
            assert!(status.success());
            kept = Some((id, copy));
        }
    }
    // The rest of what the slow backup reads: six packs of new data.
    write_file(&env.path("b/new.bin"), &random_bytes(77, 6 << 20));
    kept.unwrap()
}

/// `check --read-data` is clean and the snapshot restores identical to `copy` (of `src`).
fn assert_restores(env: &Env, id: &str, copy: &Path, src: &Path, what: &str) {
    let out = env.strata(["check", "--read-data", "--json"]);
    assert_eq!(out.code, 0, "{what}: {}", out.describe());
    let target = env.path(format!("restore-{}", &id[..8]));
    env.restore(id, &target).success();
    let files = |root: &Path| -> Vec<(String, Option<String>)> {
        walk(root)
            .into_iter()
            .filter(|e| e.kind == "file")
            .map(|e| (e.path, e.blake3))
            .collect()
    };
    let want = files(copy);
    assert!(!want.is_empty(), "{what}: nothing to compare");
    assert_eq!(
        files(&restored(&target, src)),
        want,
        "{what}: snapshot {id} does not restore as backed up"
    );
    std::fs::remove_dir_all(&target).unwrap();
}

/// A backup of `b/` whose every storage request waits 150 ms, logging its mutations; it is
/// killed at `kill` if given.
fn slow_backup(env: &Env, log: &Path, kill: Option<&str>) -> Child {
    let fault = match kill {
        Some(k) => format!("delay-ms=150,{k}"),
        None => "delay-ms=150".into(),
    };
    let (mut command, _) = env
        .cmd()
        .env("STRATA_TEST_FAULT", fault)
        .env("STRATA_TEST_FAULT_LOG", log)
        .args(["backup", "--json"])
        .arg(env.path("b"))
        .build();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the backup has begun its first mutation after its lock: by then it has
/// loaded the index.
fn wait_for_upload(backup: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = std::fs::read_to_string(log).unwrap_or_default();
        if lines.lines().any(|l| !l.contains("locks/")) {
            return;
        }
        if let Some(status) = backup.try_wait().unwrap() {
            panic!("the backup ended before uploading: {status}");
        }
        assert!(Instant::now() < deadline, "the backup never uploaded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Prune, prune again, and a dry run that has nothing left to do but wait.
fn settle(env: &Env, what: &str) {
    env.strata(["prune"]).success();
    env.strata(["prune"]).success();
    let again = env
        .strata(["prune", "--dry-run", "--json"])
        .success()
        .json();
    for field in [
        "repack_packs",
        "unused_packs",
        "unindexed_packs",
        "waiting_packs",
    ] {
        assert_eq!(again[field], 0, "{what}: {field} left: {again}");
    }
}

/// The mutations of one prune beside the slow backup (from the mutation log).
fn prune_mutations() -> u64 {
    let env = Env::init_small_packs();
    repository_with_garbage(&env);
    let mut backup = slow_backup(&env, &env.path("b.log"), None);
    wait_for_upload(&mut backup, &env.path("b.log"));
    let log = env.path("prune.log");
    env.cmd()
        .env("STRATA_TEST_FAULT_LOG", &log)
        .arg("prune")
        .run()
        .success();
    assert!(backup.wait().unwrap().success());
    std::fs::read_to_string(&log).unwrap().lines().count() as u64
}

#[test]
fn prune_killed_at_every_mutation_beside_a_backup_loses_nothing() {
    let m = prune_mutations();
    assert!(m >= 4, "a prune that marks makes several mutations ({m})");
    let mut killed = 0;
    for n in 1..=m + 1 {
        let fault = format!("kill-before={n}");
        let env = Env::init_small_packs();
        let (kept, copy) = repository_with_garbage(&env);
        let blog = env.path("b.log");
        let mut backup = slow_backup(&env, &blog, None);
        wait_for_upload(&mut backup, &blog);
        let (mut command, cmdline) = env
            .cmd()
            .env("STRATA_TEST_FAULT", &fault)
            .arg("prune")
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
        // A full prune while the backup still runs, then the backup finishes.
        env.strata(["prune"]).success();
        let done = backup.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "{fault}: the backup failed: {}",
            String::from_utf8_lossy(&done.stderr)
        );
        let b: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        let b_id = b["snapshot_id"].as_str().unwrap().to_string();
        // It named the forgotten (marked) data of `old/f1.bin` rather than storing it
        // again: its index predates the mark.
        let added = b["bytes_added"].as_u64().unwrap();
        assert!(
            added < (6 << 20) + 150_000,
            "{fault}: the backup stored old/f1.bin again ({added} bytes added): {b}"
        );
        let what = format!("prune {fault}");
        settle(&env, &what);
        assert_restores(&env, &kept, &copy, &env.path("src"), &what);
        assert_restores(&env, &b_id, &env.path("b"), &env.path("b"), &what);
    }
    assert!(
        killed as u64 >= m,
        "only {killed} of {m} prunes were killed"
    );
}

/// The mutations of the slow backup alone.
fn backup_mutations() -> u64 {
    let env = Env::init_small_packs();
    repository_with_garbage(&env);
    let log = env.path("b.log");
    assert!(slow_backup(&env, &log, None).wait().unwrap().success());
    std::fs::read_to_string(&log).unwrap().lines().count() as u64
}

#[test]
fn backup_killed_at_every_mutation_beside_a_prune_loses_nothing() {
    let m = backup_mutations();
    assert!(m >= 6, "the backup makes several mutations ({m})");
    let mut killed = 0;
    for n in 2..=m + 1 {
        let fault = format!("kill-before={n}");
        let env = Env::init_small_packs();
        let (kept, copy) = repository_with_garbage(&env);
        let blog = env.path("b.log");
        let mut backup = slow_backup(&env, &blog, Some(&fault));
        // A prune once the backup has its lock and its index (or has died trying).
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&blog)
            .unwrap_or_default()
            .lines()
            .count()
            < 2
            && backup.try_wait().unwrap().is_none()
        {
            assert!(
                Instant::now() < deadline,
                "{fault}: the backup never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // One prune marks; the next, while the backup that began before the mark may
        // still run, must wait for it.
        env.strata(["prune"]).success();
        env.strata(["prune"]).success();
        let done = backup.wait_with_output().unwrap();
        let b_id = match done.status.signal() {
            Some(9) => {
                killed += 1;
                None
            }
            _ => {
                assert!(
                    done.status.success(),
                    "{fault}: the backup neither died nor succeeded: {}",
                    String::from_utf8_lossy(&done.stderr)
                );
                let b: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
                Some(b["snapshot_id"].as_str().unwrap().to_string())
            }
        };
        let what = format!("backup {fault}");
        settle(&env, &what);
        assert_restores(&env, &kept, &copy, &env.path("src"), &what);
        if let Some(id) = b_id {
            assert_restores(&env, &id, &env.path("b"), &env.path("b"), &what);
        }
    }
    // The last kill point is past the backup's last mutation; and a backup may make one
    // mutation fewer than the probe did (its blobs grouped into packs by other packer
    // threads): all but two at the least.
    assert!(
        killed as u64 + 2 >= m,
        "only {killed} of {m} backups were killed"
    );
}
