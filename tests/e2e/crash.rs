//! Crash safety: the real process is killed with SIGKILL (through the `STRATA_TEST_FAULT`
//! hook). A prune killed before and after every storage mutation it makes: after each kill
//! `check --read-data` finds nothing wrong, every kept snapshot restores byte-identical,
//! and the next prune finishes the job. A copy killed late: the next one sends only what
//! is missing.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;

use crate::util::*;

/// A repository with 1 MiB packs holding three snapshots of a changing tree, the first of
/// them forgotten (so prune has packs to delete and packs to repack). Returns the kept
/// snapshot ids with copies of their sources.
fn repository_with_garbage() -> (Env, Vec<(String, PathBuf)>) {
    let env = Env::init_small_packs();
    let src = env.path("src");
    let mut kept = Vec::new();
    for round in 0..3u64 {
        for i in 0..6u64 {
            // Files under the minimum chunk size are one blob each; half change each round.
            let seed = if i % 2 == 0 { i } else { i + 100 * round };
            write_file(
                &src.join(format!("f{i}.bin")),
                &random_bytes(seed, 300 * 1024),
            );
        }
        write_file(
            &src.join("sub/round.txt"),
            format!("round {round}\n").as_bytes(),
        );
        let id = env.backup(&[&src]);
        // Keep a copy of what this snapshot holds, to compare restores with.
        let copy = env.path(format!("copy{round}"));
        copy_tree(&src, &copy);
        if round > 0 {
            kept.push((id, copy));
        } else {
            env.strata(["forget", id.as_str()]).success();
        }
    }
    (env, kept)
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// `check --read-data` is clean and every kept snapshot restores identical to its copy.
fn assert_intact(env: &Env, kept: &[(String, PathBuf)], what: &str) {
    let out = env.strata(["check", "--read-data", "--json"]);
    assert_eq!(out.code, 0, "{what}: {}", out.describe());
    for (n, (id, copy)) in kept.iter().enumerate() {
        let target = env.path(format!("restore-{what}-{n}"));
        env.restore(id, &target).success();
        let src = env.path("src");
        assert_same_tree(copy, &restored(&target, &src));
        std::fs::remove_dir_all(&target).unwrap();
    }
}

/// The mutations of one prune of a fresh repository (from the mutation log).
fn clean_prune_mutations() -> u64 {
    let (env, _) = repository_with_garbage();
    let log = env.path("mutations.log");
    env.cmd()
        .env("STRATA_TEST_FAULT_LOG", &log)
        .arg("prune")
        .run()
        .success();
    std::fs::read_to_string(&log).unwrap().lines().count() as u64
}

#[test]
fn prune_killed_at_every_mutation_loses_nothing() {
    let m = clean_prune_mutations();
    assert!(m >= 5, "a prune with garbage makes several mutations ({m})");
    // Pack assembly order may differ between repositories: go one past the count, and
    // accept a run that finishes before its kill point.
    let mut faults: Vec<String> = (1..=m + 1).map(|n| format!("kill-before={n}")).collect();
    faults.extend([2, m / 2, m].iter().map(|n| format!("kill-after={n}")));
    let mut killed = 0;
    for fault in faults {
        let (env, kept) = repository_with_garbage();
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
        assert_intact(&env, &kept, &format!("after {fault}"));
        // The next prune completes, and leaves nothing for a third one.
        env.strata(["prune"]).success();
        assert_intact(&env, &kept, &format!("after {fault} and a prune"));
        let again = env
            .strata(["prune", "--dry-run", "--json"])
            .success()
            .json();
        for field in ["repack_packs", "unused_packs", "unindexed_packs"] {
            assert_eq!(again[field], 0, "after {fault}: {field} left: {again}");
        }
    }
    assert!(killed as u64 >= m, "only {killed} of {m} runs were killed");
}

/// `strata copy --json` of every snapshot of `from` into `to`: the command, to be run.
fn copy_cmd(from: &Env, to: &Env) -> Cmd {
    from.cmd()
        .args(["copy", "--json", "--to-repo"])
        .arg(&to.repo)
        .arg("--to-password-file")
        .arg(&to.password_file)
}

/// Issue #12: an interrupted copy sent everything again, because the packs it had stored
/// were named by no index until its end. Killed once it has stored most of its packs, the
/// next copy sends only a small part again; the copy checks clean and restores identical.
#[test]
fn a_killed_copy_resumes_sending_only_what_is_missing() {
    let from = Env::init();
    let src = from.path("src");
    // 160 files of 256 KiB (under the smallest chunk: one blob each), in 1 MiB packs at
    // the destination: about 40 packs.
    for i in 0..160u64 {
        write_file(
            &src.join(format!("f{i:03}.bin")),
            &random_bytes(7000 + i, 256 * 1024),
        );
    }
    from.backup(&[&src]);

    // A whole copy, for its size and its number of storage mutations.
    let whole = Env::init_small_packs();
    let log = whole.path("mutations.log");
    let report = copy_cmd(&from, &whole)
        .env("STRATA_TEST_FAULT_LOG", &log)
        .run()
        .success()
        .json();
    let total = report["bytes_added"].as_u64().unwrap();
    // Both repositories log here; the source only writes and removes its lock.
    let mutations = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert!(mutations >= 40, "{mutations} mutations");

    let to = Env::init_small_packs();
    let fault = format!("kill-after={}", mutations * 3 / 4);
    let (mut command, cmdline) = copy_cmd(&from, &to)
        .env("STRATA_TEST_FAULT", &fault)
        .build();
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{cmdline} ({fault}) was not killed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        to.snapshots().is_empty(),
        "the killed copy wrote a snapshot"
    );
    let stored = to.repo_bytes("data");
    assert!(stored >= total / 2, "only {stored} of {total} bytes stored");

    let report = copy_cmd(&from, &to).run().success().json();
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
    let sent = report["bytes_added"].as_u64().unwrap();
    // What the killed copy had stored but not indexed is sent again: a few packs.
    let resent = (sent + stored).saturating_sub(total);
    eprintln!(
        "whole copy {total} bytes; killed after storing {stored}; the next copy sent {sent} \
         ({resent} of them again)"
    );
    assert!(
        sent <= total / 2,
        "{sent} of {total} bytes sent again: {report}"
    );
    assert!(
        resent <= stored / 3,
        "{resent} of {stored} stored bytes sent again"
    );

    to.check_read_data_clean();
    let new_id = report["copied"][0][1].as_str().unwrap();
    let target = to.path("restore");
    to.restore(new_id, &target);
    assert_same_tree(&src, &restored(&target, &src));
}
