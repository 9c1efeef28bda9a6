//! Crash safety: a backup killed with SIGKILL at a storage mutation (through the
//! `STRATA_TEST_FAULT` test hook) leaves a repository that checks clean and takes the next
//! backup, which restores byte-identical.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::*;

/// A small tree: random files smaller than the minimum chunk (so each is one blob whatever
/// the repository's chunker key) of one size (so the number of packs does not depend on the
/// order blobs reach the packer), and some small files. Every fresh repository then makes
/// the same number of mutations backing it up.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    for i in 0..8u64 {
        write_file(
            &src.join(format!("random-{i}.bin")),
            &random_bytes(300 + i, 400 * 1024),
        );
    }
    write_file(&src.join("notes.txt"), b"some notes\n");
    write_file(&src.join("sub/deeper/leaf.txt"), b"a leaf\n");
    write_file(&src.join("sub/empty"), b"");
    src
}

/// The mutation log of one clean backup of a fresh repository: one line per mutation.
fn clean_run_mutations() -> Vec<String> {
    let env = Env::init_small_packs();
    let src = source(&env);
    let log = env.path("mutations.log");
    env.cmd()
        .env("STRATA_TEST_FAULT_LOG", &log)
        .arg("backup")
        .arg(&src)
        .run()
        .success();
    let text = std::fs::read_to_string(&log).expect("the backup logged its mutations");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with(&format!("{} ", i + 1)),
            "log line {line:?} is not numbered {}",
            i + 1
        );
    }
    lines
}

/// Runs `strata backup SRC` with `STRATA_TEST_FAULT=fault` and asserts that SIGKILL ended it.
fn killed_backup(env: &Env, src: &Path, fault: &str) {
    let (mut command, cmdline) = env
        .cmd()
        .env("STRATA_TEST_FAULT", fault)
        .arg("backup")
        .arg(src)
        .build();
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{cmdline} with STRATA_TEST_FAULT={fault} was not killed by SIGKILL: {:?}\n\
         --- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kill points spread over 1..=m: first, second, quarters, second to last, last.
fn kill_points(m: u64) -> Vec<u64> {
    let mut points = vec![1, 2, m / 4, m / 2, 3 * m / 4, m.saturating_sub(1), m];
    points.retain(|&n| (1..=m).contains(&n));
    points.sort_unstable();
    points.dedup();
    points
}

#[test]
fn backup_killed_at_any_mutation_leaves_a_usable_repository() {
    let mutations = clean_run_mutations();
    let again = clean_run_mutations();
    assert_eq!(
        mutations.len(),
        again.len(),
        "two clean backups of the same tree made different numbers of mutations:\n\
         {mutations:#?}\n{again:#?}"
    );
    let m = mutations.len() as u64;
    assert!(
        m >= 4,
        "a backup of several packs makes several mutations: {mutations:?}"
    );
    let mut runs: Vec<String> = kill_points(m)
        .into_iter()
        .map(|n| format!("kill-before={n}"))
        .collect();
    // The window between a durable write and the next step, in the middle and at the end.
    runs.push(format!("kill-after={}", m / 2));
    runs.push(format!("kill-after={m}"));

    for fault in runs {
        let env = Env::init_small_packs();
        let src = source(&env);
        killed_backup(&env, &src, &fault);
        // At most unreferenced packs are left; the dead process's lock is removed.
        env.strata(["check", "--read-data"]).success();
        let id = env.backup(&[&src]);
        let target = env.path("restore");
        env.restore(&id, &target);
        assert_same_tree(&src, &restored(&target, &src));
    }
}

#[test]
fn bad_fault_syntax_is_an_error() {
    let env = Env::init();
    env.cmd()
        .env("STRATA_TEST_FAULT", "kill-at=3")
        .arg("snapshots")
        .run()
        .failure()
        .stderr_contains("STRATA_TEST_FAULT");
}
