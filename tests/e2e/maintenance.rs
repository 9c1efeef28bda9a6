//! Retention and maintenance end to end: `forget` by policy and by id, holds, `prune`
//! (freeing data, removing what killed backups left), `repair index` and `repair snapshots`
//! after damage, and how these commands meet running backups through the repository lock.
//!
//! Snapshot times are given with `backup --time` and every command runs with `TZ=UTC`, so
//! the calendar buckets of the retention policy are the ones the tests compute by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// Exit code of a command refused because another process holds the lock.
const EXIT_LOCKED: i32 = 11;

/// Size of the random files of the data trees: below the minimum chunk, so each file is
/// exactly one blob whatever the repository's chunker key.
const SMALL_FILE: usize = 400 * 1024;

/// `strata ARGS...` in `env` with `TZ=UTC`.
fn run<I, S>(env: &Env, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    env.cmd().env("TZ", "UTC").args(args).run()
}

/// `strata LINE` (split at spaces) in `env` with `TZ=UTC`.
fn run_line(env: &Env, line: &str) -> Output {
    run(env, line.split_whitespace())
}

/// `strata LINE`, asserting success; its JSON output.
#[track_caller]
fn json_of(env: &Env, line: &str) -> Value {
    run_line(env, line).success().json()
}

/// `strata backup SRC --time TIME EXTRA... --json`, asserting success; returns the id.
#[track_caller]
fn backup_at(env: &Env, src: &Path, time: &str, extra: &[&str]) -> String {
    let out = env
        .cmd()
        .env("TZ", "UTC")
        .arg("backup")
        .arg(src)
        .args(["--time", time])
        .args(extra)
        .arg("--json")
        .run()
        .success();
    out.json()["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("backup --json has no snapshot_id\n{}", out.describe()))
        .to_owned()
}

/// The ids `snapshots --json` lists, oldest first.
#[track_caller]
fn snapshot_ids(env: &Env) -> Vec<String> {
    env.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_set<S: AsRef<str>>(ids: &[S]) -> BTreeSet<String> {
    ids.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// The decision `forget --json` made about one snapshot.
#[derive(Debug)]
struct Decision {
    keep: bool,
    reasons: Vec<String>,
}

/// Every snapshot of every group of a `forget --json` plan, by id.
#[track_caller]
fn decisions(plan: &Value) -> BTreeMap<String, Decision> {
    let mut out = BTreeMap::new();
    for group in plan["groups"].as_array().expect("forget --json has groups") {
        for s in group["snapshots"]
            .as_array()
            .expect("a group has snapshots")
        {
            let id = s["id"].as_str().unwrap().to_owned();
            assert_eq!(s["short_id"].as_str(), Some(&id[..8]), "{s}");
            let decision = Decision {
                keep: s["keep"].as_bool().expect("keep is a bool"),
                reasons: s["reasons"]
                    .as_array()
                    .expect("reasons is an array")
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
            };
            assert!(out.insert(id, decision).is_none(), "listed twice: {s}");
        }
    }
    out
}

/// The ids in the `removed` array of a `forget --json` plan.
#[track_caller]
fn removed(plan: &Value) -> BTreeSet<String> {
    plan["removed"]
        .as_array()
        .expect("forget --json has removed")
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// The kept ids of a plan.
fn kept(d: &BTreeMap<String, Decision>) -> BTreeSet<String> {
    d.iter()
        .filter(|(_, d)| d.keep)
        .map(|(id, _)| id.clone())
        .collect()
}

fn counter(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key:?} in {v}"))
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no array {key:?} in {v}"))
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

/// `cat snapshot ID`, parsed.
#[track_caller]
fn cat_snapshot(env: &Env, id: &str) -> Value {
    run(env, ["cat", "snapshot", id]).success().json()
}

/// Pack files under data/ (temp files excluded), by file name.
fn pack_names(env: &Env) -> BTreeSet<String> {
    env.repo_files("data")
        .iter()
        .map(|p| file_name(p))
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Spool files left under data/ (`.pack-*.tmp`).
fn spool_files(env: &Env) -> Vec<PathBuf> {
    env.repo_files("data")
        .into_iter()
        .filter(|p| {
            let n = file_name(p);
            n.starts_with(".pack-") && n.ends_with(".tmp")
        })
        .collect()
}

/// A tree of `n` random files of [`SMALL_FILE`] bytes (`random-I.bin`, seeded by `seed + I`)
/// and a small text file in a subdirectory.
fn data_tree(root: &Path, n: u64, seed: u64) {
    for i in 0..n {
        write_file(
            &root.join(format!("random-{i}.bin")),
            &random_bytes(seed + i, SMALL_FILE),
        );
    }
    write_file(&root.join("sub/notes.txt"), b"some notes\n");
}

/// Asserts that `restored` equals `src` without the entries at `missing` (paths relative to
/// `src`, as `walk` writes them).
#[track_caller]
fn assert_same_tree_except(src: &Path, restored: &Path, missing: &BTreeSet<String>) {
    let expected: Vec<Entry> = walk(src)
        .into_iter()
        .filter(|e| !missing.contains(&e.path))
        .collect();
    assert_eq!(
        expected.len() + missing.len(),
        walk(src).len(),
        "not every path of {missing:?} is in the source"
    );
    let got = walk(restored);
    assert_eq!(
        expected,
        got,
        "the restored tree {} is not the source without {missing:?}",
        restored.display()
    );
}

// ---------------------------------------------------------------------------
// forget
// ---------------------------------------------------------------------------

/// Fifteen snapshots over three ISO weeks; `--keep-daily 3 --keep-weekly 2` keeps the
/// newest of the last three days with snapshots and the newest of the last two ISO weeks.
#[test]
fn forget_by_policy_keeps_exactly_the_computed_survivors() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("static.txt"), b"never changes\n");
    let times = [
        "2025-01-01 03:00:00", // 0  Wed, ISO week 2025-W01
        "2025-01-03 03:00:00", // 1  Fri, W01
        "2025-01-05 03:00:00", // 2  Sun, W01
        "2025-01-06 03:00:00", // 3  Mon, W02
        "2025-01-08 03:00:00", // 4  Wed, W02
        "2025-01-10 03:00:00", // 5  Fri, W02
        "2025-01-12 03:00:00", // 6  Sun, W02: newest of W02 (a Sunday-based week would differ)
        "2025-01-13 03:00:00", // 7  Mon, W03
        "2025-01-14 03:00:00", // 8  Tue, W03
        "2025-01-15 03:00:00", // 9  Wed, W03
        "2025-01-15 15:00:00", // 10 Wed, W03: newest of the 15th
        "2025-01-16 03:00:00", // 11 Thu, W03
        "2025-01-16 21:00:00", // 12 Thu, W03: newest of the 16th
        "2025-01-17 03:00:00", // 13 Fri, W03
        "2025-01-17 23:59:59", // 14 Fri, W03: newest of the 17th and of W03
    ];
    let mut ids = Vec::new();
    for (i, time) in times.iter().enumerate() {
        write_file(
            &src.join("counter.txt"),
            format!("backup number {i}\n").as_bytes(),
        );
        write_file(
            &src.join(format!("added/file-{i}.txt")),
            format!("added at {time}\n").as_bytes(),
        );
        ids.push(backup_at(&env, &src, time, &[]));
    }
    assert_eq!(id_set(&ids).len(), times.len(), "snapshot ids repeat");
    assert_eq!(snapshot_ids(&env), ids);

    // Worked out by hand from the calendar above.
    let expected_reasons: BTreeMap<usize, Vec<&str>> = [
        (14, vec!["daily snapshot", "weekly snapshot"]),
        (12, vec!["daily snapshot"]),
        (10, vec!["daily snapshot"]),
        (6, vec!["weekly snapshot"]),
    ]
    .into_iter()
    .collect();
    let survivors: BTreeSet<String> = expected_reasons.keys().map(|&i| ids[i].clone()).collect();
    let doomed: BTreeSet<String> = id_set(&ids).difference(&survivors).cloned().collect();
    let snapshot_files = env.repo_files("snapshots");

    let policy = "forget --keep-daily 3 --keep-weekly 2";
    let out = run_line(&env, &format!("{policy} --dry-run --json")).success();
    let plan = out.json();
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["prune"], Value::Null, "{plan}");
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "one host, one path, no project: {plan}");
    assert_eq!(groups[0]["key"]["paths"][0].as_str(), src.to_str());
    let d = decisions(&plan);
    assert_eq!(d.len(), times.len(), "every snapshot is listed: {plan}");
    assert_eq!(kept(&d), survivors, "{}", out.describe());
    for (&i, reasons) in &expected_reasons {
        let mut got = d[&ids[i]].reasons.clone();
        got.sort();
        assert_eq!(got, *reasons, "reasons of snapshot {i} ({})", times[i]);
    }
    for id in &doomed {
        assert!(
            d[id].reasons.is_empty(),
            "{id} removed with reasons: {plan}"
        );
    }
    assert_eq!(removed(&plan), doomed, "what the dry run would remove");
    // Newest first within the group.
    let listed: Vec<&str> = groups[0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    // The dry run removed nothing.
    assert_eq!(env.repo_files("snapshots"), snapshot_files);
    assert_eq!(snapshot_ids(&env), ids);

    // The real run removes exactly the others.
    let plan = json_of(&env, &format!("{policy} --json"));
    assert_eq!(plan["dry_run"], false, "{plan}");
    assert_eq!(kept(&decisions(&plan)), survivors);
    assert_eq!(removed(&plan), doomed);
    let left = env.snapshots();
    let left_ids: Vec<&str> = left.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let want: Vec<&str> = [6, 10, 12, 14].iter().map(|&i| ids[i].as_str()).collect();
    assert_eq!(left_ids, want, "survivors, oldest first");
    let left_times: Vec<&str> = left.iter().map(|s| s["time"].as_str().unwrap()).collect();
    assert_eq!(
        left_times,
        [
            "2025-01-12T03:00:00Z",
            "2025-01-15T15:00:00Z",
            "2025-01-16T21:00:00Z",
            "2025-01-17T23:59:59Z"
        ]
    );
    assert_eq!(env.repo_files("snapshots").len(), 4);

    // Applying the same policy again changes nothing.
    let plan = json_of(&env, &format!("{policy} --json"));
    assert!(removed(&plan).is_empty(), "{plan}");
    assert_eq!(snapshot_ids(&env), want);
}

/// Holds set at backup time and later with `hold` keep snapshots whatever the policy; a
/// held snapshot cannot be forgotten by id; `hold --release` lifts that.
#[test]
fn holds_protect_snapshots_until_released() {
    let env = Env::init();
    let src = env.path("src");
    let mut ids = Vec::new();
    for (i, (time, extra)) in [
        ("2025-03-01 10:00:00", &["--hold-for", "100y"][..]),
        ("2025-03-02 10:00:00", &[][..]),
        ("2025-03-03 10:00:00", &[][..]),
        ("2025-03-04 10:00:00", &[][..]),
    ]
    .into_iter()
    .enumerate()
    {
        write_file(&src.join("file.txt"), format!("version {i}\n").as_bytes());
        ids.push(backup_at(&env, &src, time, extra));
    }
    let [held_at_backup, to_hold, plain, newest] = <[String; 4]>::try_from(ids).unwrap();
    let listed = env.snapshots();
    assert_eq!(
        listed[0]["keep_until"], "2125-03-01T10:00:00Z",
        "{listed:?}"
    );
    assert_eq!(listed[1]["keep_until"], Value::Null);

    // `hold` rewrites the snapshot under a new id that records the old one.
    let out = run(&env, ["hold", &to_hold, "--until", "2099-01-01", "--json"]).success();
    let v = out.json();
    let outcome = v.as_array().expect("hold --json is an array");
    assert_eq!(outcome.len(), 1, "{v}");
    assert_eq!(outcome[0]["id"].as_str(), Some(to_hold.as_str()));
    assert_eq!(outcome[0]["changed"], true);
    assert_eq!(outcome[0]["keep_until"], "2099-01-01T00:00:00Z");
    let held_later = outcome[0]["new_id"].as_str().unwrap().to_owned();
    assert_ne!(held_later, to_hold);
    assert_eq!(
        snapshot_ids(&env),
        [&*held_at_backup, &held_later, &plain, &newest]
    );
    let cat = cat_snapshot(&env, &held_later);
    assert_eq!(cat["original"].as_str(), Some(to_hold.as_str()), "{cat}");
    assert_eq!(cat["keep_until_ns"], 4_070_908_800_000_000_000i64, "{cat}");
    let rewrites = cat["rewrites"].as_array().expect("rewrites array");
    assert_eq!(rewrites.len(), 1, "{cat}");
    let change = rewrites[0]["change"].as_str().unwrap();
    assert!(
        change.contains("hold") && change.contains("2099-01-01"),
        "{change}"
    );
    // Holding again to an earlier date changes nothing: holds only extend.
    let v = run(
        &env,
        ["hold", &held_later, "--until", "2030-01-01", "--json"],
    )
    .success()
    .json();
    assert_eq!(v[0]["changed"], false, "{v}");
    assert_eq!(v[0]["new_id"].as_str(), Some(held_later.as_str()), "{v}");

    // --keep-last 1 keeps the newest and both held snapshots.
    let plan = json_of(&env, "forget --keep-last 1 --json");
    let d = decisions(&plan);
    assert_eq!(kept(&d), id_set(&[&held_at_backup, &held_later, &newest]));
    assert_eq!(d[&newest].reasons, ["last snapshot #1"]);
    assert_eq!(
        d[&held_at_backup].reasons,
        ["held until 2125-03-01 10:00:00 UTC"]
    );
    assert_eq!(
        d[&held_later].reasons,
        ["held until 2099-01-01 00:00:00 UTC"]
    );
    assert_eq!(removed(&plan), id_set(&[&plain]));
    assert_eq!(snapshot_ids(&env), [&*held_at_backup, &held_later, &newest]);

    // Forgetting a held snapshot by id fails and removes nothing, also the unheld one
    // named with it.
    let files = env.repo_files("snapshots");
    for args in [
        vec![held_later.as_str()],
        vec![newest.as_str(), &held_at_backup[..12]],
    ] {
        run(&env, ["forget"].iter().chain(&args))
            .code(1)
            .one_line_error()
            .stderr_contains("held")
            .stderr_contains("nothing was removed");
        assert_eq!(env.repo_files("snapshots"), files);
    }

    // Released, it can be forgotten.
    let v = run(&env, ["hold", &held_later, "--release", "--json"])
        .success()
        .json();
    assert_eq!(v[0]["changed"], true, "{v}");
    assert_eq!(v[0]["keep_until"], Value::Null, "{v}");
    let released = v[0]["new_id"].as_str().unwrap().to_owned();
    let cat = cat_snapshot(&env, &released);
    assert_eq!(cat["keep_until_ns"], Value::Null, "{cat}");
    assert_eq!(
        cat["original"].as_str(),
        Some(to_hold.as_str()),
        "the first id stays the original: {cat}"
    );
    assert_eq!(cat["rewrites"].as_array().map(Vec::len), Some(2), "{cat}");
    let plan = run(&env, ["forget", &released, "--json"]).success().json();
    assert_eq!(removed(&plan), id_set(&[&released]));
    assert_eq!(snapshot_ids(&env), [&*held_at_backup, &newest]);
}

/// A policy that keeps nothing leaves each group its newest snapshot; `--allow-empty`
/// lets groups go. Projects with the same paths are separate groups.
#[test]
fn forget_never_empties_a_group_unless_allowed() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("file.txt"), b"shared by both projects\n");
    let a1 = backup_at(&env, &src, "2025-05-01 08:00:00", &["--project", "a"]);
    let b1 = backup_at(&env, &src, "2025-05-02 08:00:00", &["--project", "b"]);
    let a2 = backup_at(&env, &src, "2025-05-03 08:00:00", &["--project", "a"]);
    let b2 = backup_at(&env, &src, "2025-05-04 08:00:00", &["--project", "b"]);

    let plan = json_of(&env, "forget --keep-tag nonexistent --json");
    let groups = plan["groups"].as_array().unwrap();
    let projects: BTreeMap<&str, BTreeSet<String>> = groups
        .iter()
        .map(|g| {
            assert_eq!(g["key"]["paths"][0].as_str(), src.to_str(), "{g}");
            let ids = g["snapshots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned())
                .collect();
            (g["key"]["project"].as_str().unwrap(), ids)
        })
        .collect();
    assert_eq!(groups.len(), 2, "{plan}");
    assert_eq!(projects["a"], id_set(&[&a1, &a2]));
    assert_eq!(projects["b"], id_set(&[&b1, &b2]));
    let d = decisions(&plan);
    assert_eq!(kept(&d), id_set(&[&a2, &b2]));
    for id in [&a2, &b2] {
        assert_eq!(d[id].reasons.len(), 1, "{plan}");
        assert!(
            d[id].reasons[0].contains("last snapshot"),
            "{:?}",
            d[id].reasons
        );
    }
    assert_eq!(removed(&plan), id_set(&[&a1, &b1]));
    assert_eq!(snapshot_ids(&env), [&*a2, &b2]);

    // --project limits the run to one group.
    let plan = json_of(
        &env,
        "forget --keep-tag nonexistent --allow-empty --project a --json",
    );
    assert_eq!(removed(&plan), id_set(&[&a2]));
    assert_eq!(snapshot_ids(&env), [&*b2]);

    let plan = json_of(&env, "forget --keep-tag nonexistent --allow-empty --json");
    assert!(kept(&decisions(&plan)).is_empty(), "{plan}");
    assert_eq!(removed(&plan), id_set(&[&b2]));
    assert!(env.snapshots().is_empty());
    assert!(env.repo_files("snapshots").is_empty());
}

// ---------------------------------------------------------------------------
// prune
// ---------------------------------------------------------------------------

/// Two snapshots sharing half their files; the first forgotten. Prune deletes and rewrites
/// packs so that only what the second needs is left, and everything it needs is kept.
#[test]
fn prune_frees_unneeded_data_and_keeps_what_is_needed() {
    let mut env = Env::init_small_packs();
    let src = env.path("src");
    data_tree(&src, 8, 1000);
    let first = env.backup(&[&src]);
    for i in 0..4u64 {
        write_file(
            &src.join(format!("random-{i}.bin")),
            &random_bytes(2000 + i, SMALL_FILE),
        );
    }
    let second = env.backup(&[&src]);
    let plan = run(&env, ["forget", &first, "--json"]).success().json();
    assert_eq!(removed(&plan), id_set(&[&first]));

    let data_before = env.repo_files("data");
    let index_before = env.repo_files("index");
    let bytes_before = env.repo_bytes("data");
    assert!(data_before.len() >= 4, "{} packs", data_before.len());

    // A dry run reports and changes nothing.
    let dry = json_of(&env, "prune --dry-run --json");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(counter(&dry, "snapshots"), 1, "{dry}");
    assert_eq!(counter(&dry, "packs"), data_before.len() as u64, "{dry}");
    assert_eq!(counter(&dry, "pack_bytes"), bytes_before, "{dry}");
    assert!(counter(&dry, "unused_blobs") >= 4, "{dry}");
    for key in ["packs_deleted", "packs_written", "bytes_freed"] {
        assert_eq!(counter(&dry, key), 0, "{key}: {dry}");
    }
    assert_eq!(env.repo_files("data"), data_before);
    assert_eq!(env.repo_files("index"), index_before);

    let stats = json_of(&env, "prune --json");
    assert_eq!(stats["dry_run"], false, "{stats}");
    for key in [
        "snapshots",
        "packs",
        "pack_bytes",
        "used_blobs",
        "used_bytes",
        "unused_blobs",
        "unused_bytes",
        "unused_packs",
        "repack_packs",
    ] {
        assert_eq!(
            stats[key], dry[key],
            "{key}: the dry run predicted otherwise"
        );
    }
    assert!(counter(&stats, "packs_deleted") > 0, "{stats}");
    assert!(counter(&stats, "bytes_freed") > 0, "{stats}");
    assert_eq!(counter(&stats, "unindexed_packs"), 0, "{stats}");
    let bytes_after = env.repo_bytes("data");
    assert!(
        bytes_after + 4 * SMALL_FILE as u64 <= bytes_before,
        "data/ went from {bytes_before} to {bytes_after} bytes; four files' worth should go"
    );
    // bytes_freed is net of the packs written.
    assert_eq!(
        bytes_before - bytes_after,
        counter(&stats, "bytes_freed"),
        "bytes_freed should be what data/ lost: {stats}"
    );
    assert_eq!(
        counter(&stats, "unused_pack_bytes") + counter(&stats, "repack_pack_bytes"),
        counter(&stats, "bytes_freed") + counter(&stats, "bytes_written"),
        "{stats}"
    );
    assert_eq!(
        env.repo_files("data").len() as u64,
        data_before.len() as u64 - counter(&stats, "packs_deleted")
            + counter(&stats, "packs_written"),
        "{stats}"
    );

    env.fresh_cache();
    run_line(&env, "check --read-data").success();
    let target = env.path("restore");
    env.restore(&second, &target);
    assert_same_tree(&src, &restored(&target, &src));

    // Nothing is left to do.
    let data_pruned = env.repo_files("data");
    let again = json_of(&env, "prune --json");
    for key in [
        "packs_deleted",
        "packs_written",
        "bytes_freed",
        "unused_blobs",
        "repack_packs",
    ] {
        assert_eq!(counter(&again, key), 0, "{key}: {again}");
    }
    assert_eq!(env.repo_files("data"), data_pruned);
}

/// `forget --prune` prunes in the same run; `--max-unused 100` rewrites no pack, so the
/// unneeded blobs in packs that also hold needed ones stay until a prune with the default
/// threshold.
#[test]
fn forget_with_prune_honours_max_unused() {
    let env = Env::init_small_packs();
    let src = env.path("src");
    data_tree(&src, 6, 9000);
    let first = env.backup(&[&src]);
    write_file(&src.join("random-0.bin"), &random_bytes(9100, SMALL_FILE));
    let second = env.backup(&[&src]);
    let data_before = env.repo_files("data");

    let forget = "forget --keep-last 1 --prune --max-unused 100 --json";
    let plan = json_of(&env, &format!("{forget} --dry-run"));
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(removed(&plan), id_set(&[&first]));
    assert!(plan["prune"].is_object(), "{plan}");
    assert_eq!(counter(&plan["prune"], "packs_deleted"), 0, "{plan}");
    assert_eq!(env.repo_files("data"), data_before);
    assert_eq!(snapshot_ids(&env), [&*first, &second]);

    let plan = json_of(&env, forget);
    assert_eq!(plan["dry_run"], false, "{plan}");
    assert_eq!(removed(&plan), id_set(&[&first]));
    let stats = &plan["prune"];
    assert_eq!(counter(stats, "snapshots"), 1, "{plan}");
    // Tiny (tree) packs are merged whatever the threshold; no data pack is rewritten.
    assert!(
        counter(stats, "repack_pack_bytes") < SMALL_FILE as u64,
        "{plan}"
    );
    assert!(
        counter(stats, "unused_bytes") >= SMALL_FILE as u64,
        "{plan}"
    );
    assert_eq!(snapshot_ids(&env), [&*second]);

    // The old random-0.bin shares its pack with needed blobs: it is still there.
    let dry = json_of(&env, "prune --dry-run --json");
    assert!(counter(&dry, "unused_bytes") >= SMALL_FILE as u64, "{dry}");
    assert!(
        counter(&dry, "repack_pack_bytes") >= SMALL_FILE as u64,
        "{dry}"
    );
    let bytes_before = env.repo_bytes("data");
    let stats = json_of(&env, "prune --json");
    assert!(
        counter(&stats, "bytes_freed") >= SMALL_FILE as u64,
        "{stats}"
    );
    assert_eq!(
        env.repo_bytes("data"),
        bytes_before - counter(&stats, "bytes_freed")
    );
    let dry = json_of(&env, "prune --dry-run --json");
    assert_eq!(counter(&dry, "unused_blobs"), 0, "{dry}");

    run_line(&env, "check --read-data").success();
    let target = env.path("restore");
    env.restore(&second, &target);
    assert_same_tree(&src, &restored(&target, &src));
}

/// A backup killed with SIGKILL leaves packs no index names (and perhaps a spool file);
/// `check` warns about them without failing, `prune` removes them.
#[test]
fn prune_removes_what_a_killed_backup_left() {
    let env = Env::init_small_packs();
    let src = env.path("src");
    for i in 0..8u64 {
        write_file(
            &src.join(format!("big-{i}.bin")),
            &random_bytes(3000 + i, 4 * MIB as usize),
        );
    }
    // A spool file as a backup killed while filling a pack leaves it.
    let fake_spool = env.repo.join("data/.pack-0123456789abcdef.tmp");
    write_file(&fake_spool, &random_bytes(1, 1000));
    // And the temporary name of an index write killed before its rename; a hidden file
    // that is no temporary name of ours stays.
    let fake_temp = env
        .repo
        .join(format!("index/.{}.tmp-00112233aabbccdd", "ab".repeat(32)));
    write_file(&fake_temp, &random_bytes(2, 1000));
    let not_ours = env.repo.join("index/.not-a-temporary-file");
    write_file(&not_ours, b"kept");

    let (mut command, cmdline) = env.cmd().arg("backup").arg(&src).build();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    // Kill it once it has stored two packs: far from its end (32 packs).
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if let Some(status) = child.try_wait().unwrap() {
            // Only a machine that stalls this test for the whole backup gets here: what
            // follows still holds, with nothing to remove.
            assert!(status.success(), "{cmdline}: {status:?}");
            eprintln!("note: the backup finished before it could be killed");
            break false;
        }
        if pack_names(&env).len() >= 2 {
            child.kill().unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.signal(), Some(9), "{status:?}");
            break true;
        }
        assert!(Instant::now() < deadline, "the backup stored no packs");
        std::thread::sleep(Duration::from_millis(2));
    };

    let left = pack_names(&env);
    let spools = spool_files(&env);
    eprintln!(
        "killed: {killed}; left behind: {} pack(s), {} spool file(s), {} lock(s)",
        left.len(),
        spools.len(),
        env.repo_files("locks").len()
    );
    if killed {
        assert!(
            env.snapshots().is_empty(),
            "the killed backup wrote a snapshot"
        );
        assert!(left.len() >= 2);
    }
    assert!(spools.contains(&fake_spool));

    // check: the unindexed packs are warnings, not errors.
    let out = run_line(&env, "check --json").success();
    let report = out.json();
    assert_eq!(report["ok"], true, "{}", out.describe());
    assert!(strings(&report, "errors").is_empty(), "{report}");
    let unindexed: BTreeSet<String> = strings(&report, "warnings")
        .iter()
        .filter(|w| w.contains("not in any index"))
        .map(|w| {
            let pack = left
                .iter()
                .find(|p| w.contains(p.as_str()))
                .unwrap_or_else(|| panic!("the warning names no pack under data/: {w}"));
            pack.clone()
        })
        .collect();
    if killed {
        assert!(
            !unindexed.is_empty(),
            "no warning about the left packs\n{report}"
        );
    }
    let out = run_line(&env, "check").success();
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("warning:") && l.contains("not in any index"))
            .count(),
        unindexed.len(),
        "{}",
        out.describe()
    );

    // Just written, the temporary files could be a running writer's (prune leaves them);
    // two hours old, they are a killed one's.
    age_hidden_files(&env.repo);
    let stats = json_of(&env, "prune --json");
    assert_eq!(
        counter(&stats, "unindexed_packs"),
        unindexed.len() as u64,
        "{stats}"
    );
    assert!(counter(&stats, "packs_deleted") >= unindexed.len() as u64);
    assert_eq!(
        counter(&stats, "temp_files_removed"),
        spools.len() as u64 + 1,
        "{stats}"
    );
    assert!(spool_files(&env).is_empty(), "spool files left after prune");
    assert!(!fake_temp.exists(), "the temporary index file is left");
    assert_eq!(std::fs::read(&not_ours).unwrap(), b"kept");
    let remaining = pack_names(&env);
    assert!(
        remaining.is_disjoint(&unindexed),
        "prune left unindexed packs: {:?}",
        remaining.intersection(&unindexed).collect::<Vec<_>>()
    );
    assert!(
        env.repo_files("locks").is_empty(),
        "the dead backup's lock is left"
    );

    let report = json_of(&env, "check --read-data --json");
    assert_eq!(report["ok"], true, "{report}");
    assert!(strings(&report, "warnings").is_empty(), "{report}");
    let again = json_of(&env, "prune --json");
    assert_eq!(counter(&again, "unindexed_packs"), 0, "{again}");
    assert_eq!(counter(&again, "packs_deleted"), 0, "{again}");
}

// ---------------------------------------------------------------------------
// repair
// ---------------------------------------------------------------------------

/// The paths (relative to `src`) that lines of the form `snapshot SHORT: PATH: ...` name
/// for `snapshot`.
fn damaged_paths<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    snapshot: &str,
    src: &Path,
) -> BTreeSet<String> {
    let prefix = format!("snapshot {}: ", &snapshot[..8]);
    lines
        .into_iter()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            let path = &rest[..rest.find(": ")?];
            let rel = Path::new(path)
                .strip_prefix(src)
                .unwrap_or_else(|_| panic!("{path} is not below {}: {l}", src.display()));
            Some(rel.to_string_lossy().into_owned())
        })
        .collect()
}

/// The relative paths a `repair snapshots --json` entry dropped.
fn dropped_paths(entry: &Value, src: &Path) -> BTreeSet<String> {
    strings(entry, "dropped")
        .iter()
        .map(|d| {
            let path = &d[..d.find(": ").unwrap_or(d.len())];
            Path::new(path)
                .strip_prefix(src)
                .unwrap_or_else(|_| panic!("dropped {d} is not below {}", src.display()))
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Runs `repair snapshots --json` and checks it rewrote `id` alone, dropping exactly
/// `lost`; returns the new id.
#[track_caller]
fn repair_snapshots(env: &Env, id: &str, src: &Path, lost: &BTreeSet<String>) -> String {
    let dry = json_of(env, "repair snapshots --dry-run --json");
    assert_eq!(dry[0]["id"].as_str(), Some(id), "{dry}");
    assert_eq!(dropped_paths(&dry[0], src), *lost, "{dry}");
    assert_eq!(snapshot_ids(env), [id], "the dry run changed the snapshots");

    let v = json_of(env, "repair snapshots --json");
    let entries = v.as_array().expect("repair snapshots --json is an array");
    assert_eq!(entries.len(), 1, "{v}");
    let entry = &entries[0];
    assert_eq!(entry["id"].as_str(), Some(id), "{v}");
    assert_eq!(entry["unrepairable"], Value::Null, "{v}");
    assert_eq!(entry["removed"], false, "{v}");
    assert_eq!(dropped_paths(entry, src), *lost, "{v}");
    let new_id = entry["new_id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(snapshot_ids(env), [&*new_id]);

    // The new snapshot records what it replaces and what was dropped.
    let cat = cat_snapshot(env, &new_id);
    assert_eq!(cat["original"].as_str(), Some(id), "{cat}");
    let changes: Vec<&str> = cat["rewrites"]
        .as_array()
        .expect("rewrites array")
        .iter()
        .map(|r| r["change"].as_str().unwrap())
        .collect();
    for rel in lost {
        let path = src.join(rel);
        assert!(
            changes.iter().any(|c| c.contains(path.to_str().unwrap())),
            "cat snapshot should mention the dropped {}: {changes:?}",
            path.display()
        );
    }
    new_id
}

/// A flipped byte: `check --read-data` names the snapshot and the file; the repairs salvage
/// the pack's other blobs and drop that file alone.
#[test]
fn damaged_pack_is_repaired_dropping_only_the_damaged_file() {
    let mut env = Env::init_small_packs();
    let src = env.path("src");
    data_tree(&src, 8, 4000);
    let id = env.backup(&[&src]);
    env.flip_byte_in_largest_pack();
    env.fresh_cache();

    // Structure alone does not see it; the data read does.
    run_line(&env, "check").success();
    let out = run_line(&env, "check --read-data --json").code(1);
    let report = out.json();
    let errors = strings(&report, "errors");
    let lost = damaged_paths(errors.iter().map(String::as_str), &id, &src);
    assert_eq!(lost.len(), 1, "one file is damaged\n{}", out.describe());
    let damaged = lost.iter().next().unwrap();
    assert!(damaged.starts_with("random-"), "{damaged}");
    let out = run_line(&env, "check --read-data").code(1);
    assert_eq!(
        damaged_paths(out.stderr.lines(), &id, &src),
        lost,
        "{}",
        out.describe()
    );

    let v = json_of(&env, "repair index --read-data --json");
    assert_eq!(counter(&v, "packs_salvaged"), 1, "{v}");
    assert_eq!(counter(&v, "blobs_lost"), 1, "{v}");
    assert_eq!(strings(&v, "problems").len(), 1, "{v}");
    let new_id = repair_snapshots(&env, &id, &src, &lost);

    let report = json_of(&env, "check --read-data --json");
    assert!(strings(&report, "errors").is_empty(), "{report}");
    let target = env.path("restore");
    env.restore(&new_id, &target);
    assert_same_tree_except(&src, &restored(&target, &src), &lost);
}

/// A deleted pack: `check` names the snapshot and every file that needed it; rebuilding
/// the index and repairing the snapshot leave a clean repository without those files.
#[test]
fn missing_pack_is_repaired_dropping_the_files_it_held() {
    let mut env = Env::init_small_packs();
    let src = env.path("src");
    data_tree(&src, 8, 5000);
    let id = env.backup(&[&src]);
    let pack = env.largest_pack();
    fs::remove_file(&pack).unwrap();
    env.fresh_cache();

    let out = run_line(&env, "check --json").code(1);
    let report = out.json();
    let errors = strings(&report, "errors");
    assert!(
        errors.iter().any(|e| e.contains(&file_name(&pack))),
        "no error names the missing pack\n{}",
        out.describe()
    );
    let lost = damaged_paths(errors.iter().map(String::as_str), &id, &src);
    // The largest pack holds several whole files (1 MiB packs of 400 KiB files).
    assert!(lost.len() >= 2, "{}", out.describe());
    assert!(lost.iter().all(|p| p.starts_with("random-")), "{lost:?}");
    let out = run_line(&env, "check").code(1);
    assert_eq!(
        damaged_paths(out.stderr.lines(), &id, &src),
        lost,
        "{}",
        out.describe()
    );

    let v = json_of(&env, "repair index --json");
    assert_eq!(counter(&v, "packs_salvaged"), 0, "{v}");
    // The index no longer names the missing pack: `check` sees the same files' blobs lost,
    // not a missing pack.
    let out = run_line(&env, "check --json").code(1);
    let errors = strings(&out.json(), "errors");
    assert!(
        !errors.iter().any(|e| e.contains(&file_name(&pack))),
        "{}",
        out.describe()
    );
    assert_eq!(
        damaged_paths(errors.iter().map(String::as_str), &id, &src),
        lost,
        "{}",
        out.describe()
    );
    let new_id = repair_snapshots(&env, &id, &src, &lost);
    let report = json_of(&env, "check --read-data --json");
    assert!(strings(&report, "errors").is_empty(), "{report}");
    let target = env.path("restore");
    env.restore(&new_id, &target);
    assert_same_tree_except(&src, &restored(&target, &src), &lost);
}

/// A damaged index file: `check` reports it, `prune` refuses to run (it could not tell
/// which packs are needed), and `repair index` rebuilds the index from the packs, after
/// which everything checks clean and restores identical.
#[test]
fn damaged_index_file_is_rebuilt_from_the_packs() {
    let env = Env::init_small_packs();
    let src = env.path("src");
    data_tree(&src, 6, 6000);
    let id = env.backup(&[&src]);
    let index_files = env.repo_files("index");
    assert!(!index_files.is_empty());
    let victim = &index_files[0];
    let mut bytes = fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(victim, &bytes).unwrap();
    let packs_before = pack_names(&env);

    let out = run_line(&env, "check --json").code(1);
    let errors = strings(&out.json(), "errors");
    assert!(
        errors.iter().any(|e| e.contains(&file_name(victim))),
        "no error names the damaged index file\n{}",
        out.describe()
    );
    run_line(&env, "prune").code(1).stderr_contains("index");
    assert_eq!(
        pack_names(&env),
        packs_before,
        "a refused prune deleted packs"
    );

    let v = json_of(&env, "repair index --json");
    assert_eq!(counter(&v, "packs_salvaged"), 0, "{v}");
    assert_eq!(counter(&v, "blobs_lost"), 0, "{v}");
    assert!(!victim.exists(), "the damaged index file is replaced");
    let report = json_of(&env, "check --read-data --json");
    assert!(strings(&report, "errors").is_empty(), "{report}");
    let target = env.path("restore");
    env.restore(&id, &target).success();
    assert_same_tree(&src, &restored(&target, &src));
    // Nothing was lost, so prune has nothing to free.
    let v = json_of(&env, "prune --json");
    assert_eq!(counter(&v, "packs_deleted"), 0, "{v}");
}

/// Issue #12: packs written under another key (there, a repository re-created by `init`
/// over one whose config was lost; here, packs of another repository moved in). `repair
/// index` used to find no blob in them and delete them all. It keeps them out of the index,
/// names them and how to delete them (exit 1), and deletes only the packs it is asked to.
#[test]
fn repair_index_keeps_packs_of_another_key_until_named() {
    let other = Env::init_small_packs();
    let other_src = other.path("src");
    data_tree(&other_src, 3, 7000);
    other.backup(&[&other_src]);
    let foreign: Vec<PathBuf> = other.repo_files("data");
    assert!(foreign.len() >= 2, "{foreign:?}");

    let env = Env::init_small_packs();
    let src = env.path("src");
    data_tree(&src, 3, 8000);
    let id = env.backup(&[&src]);
    let own = pack_names(&env);
    for pack in &foreign {
        let rel = pack.strip_prefix(&other.repo).unwrap();
        fs::create_dir_all(env.repo.join(rel).parent().unwrap()).unwrap();
        fs::copy(pack, env.repo.join(rel)).unwrap();
    }
    let foreign: BTreeSet<String> = foreign.iter().map(|p| file_name(p)).collect();
    let all: BTreeSet<String> = own.union(&foreign).cloned().collect();

    for line in ["repair index --json", "repair index --read-data --json"] {
        let out = run_line(&env, line).code(1);
        let v = out.json();
        let kept: BTreeSet<String> = v["unreadable_packs"]
            .as_array()
            .unwrap_or_else(|| panic!("{line}: {v}"))
            .iter()
            .map(|u| {
                assert_eq!(u["deleted"], false, "{v}");
                u["id"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(kept, foreign, "{line}: {v}");
        assert_eq!(counter(&v, "packs_salvaged"), 0, "{v}");
        assert_eq!(counter(&v, "blobs_lost"), 0, "{v}");
        assert_eq!(counter(&v, "packs_indexed"), own.len() as u64, "{v}");
        assert_eq!(pack_names(&env), all, "{line} deleted packs");
    }
    let out = run_line(&env, "repair index").code(1);
    for pack in &foreign {
        assert!(
            out.stderr.contains(&format!("unreadable: pack {pack}")),
            "{}",
            out.describe()
        );
    }
    out.stderr_contains("--delete-unreadable");
    env.check_read_data_clean();
    let target = env.path("restore");
    env.restore(&id, &target);
    assert_same_tree(&src, &restored(&target, &src));

    // A pack of this repository is not deleted as unreadable: nothing changes.
    let mine = own.iter().next().unwrap();
    run_line(&env, &format!("repair index --delete-unreadable {mine}"))
        .code(1)
        .stderr_contains("not unreadable");
    assert_eq!(pack_names(&env), all);
    // Named by a prefix, one goes; then the rest.
    let mut foreign = foreign.into_iter();
    let first = foreign.next().unwrap();
    run_line(
        &env,
        &format!("repair index --delete-unreadable {}", &first[..10]),
    )
    .code(1);
    let left: BTreeSet<String> = all.iter().filter(|p| **p != first).cloned().collect();
    assert_eq!(pack_names(&env), left);
    let rest: Vec<String> = foreign.collect();
    let v = json_of(
        &env,
        &format!("repair index --json --delete-unreadable {}", rest.join(" ")),
    );
    assert_eq!(
        v["unreadable_packs"].as_array().unwrap().len(),
        rest.len(),
        "{v}"
    );
    assert_eq!(pack_names(&env), own);
    env.check_read_data_clean();
}

// ---------------------------------------------------------------------------
// Locks
// ---------------------------------------------------------------------------

/// Two backups at once share the repository; both snapshots are whole.
#[test]
fn concurrent_backups_both_succeed() {
    let env = Env::init_small_packs();
    let a = env.path("a");
    let b = env.path("b");
    data_tree(&a, 5, 6000);
    data_tree(&b, 5, 7000);
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| {
            run(
                &env,
                [Path::new("backup"), a.as_path(), Path::new("--json")],
            )
        });
        let tb = s.spawn(|| {
            run(
                &env,
                [Path::new("backup"), b.as_path(), Path::new("--json")],
            )
        });
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let ida = ra.success().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let idb = rb.success().json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(id_set(&snapshot_ids(&env)), id_set(&[&ida, &idb]));
    run_line(&env, "check --read-data").success();
    let target = env.path("restore");
    env.restore(&ida, &target);
    env.restore(&idb, &target);
    assert_same_tree(&a, &restored(&target, &a));
    assert_same_tree(&b, &restored(&target, &b));
}

/// A prune meeting a running backup runs beside it (two-phase: spec/prune.md) and deletes
/// nothing the backup may need; an exclusive command (`repair snapshots`) fails at once
/// with exit code 11 naming the holder, and with --retry-lock waits for the backup and then
/// runs.
///
/// The backup reads standard input, so it holds its lock exactly until the test closes
/// its input: no timing decides the outcome.
#[test]
fn prune_runs_beside_a_running_backup_and_exclusive_commands_wait_with_retry_lock() {
    let env = Env::init_small_packs();
    let (mut command, cmdline) = env
        .cmd()
        .args([
            "backup",
            "--stdin",
            "--stdin-filename",
            "dump.bin",
            "--json",
        ])
        .build();
    let mut backup = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmdline}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.repo_objects("locks").is_empty() {
        assert!(Instant::now() < deadline, "the backup never took its lock");
        assert!(backup.try_wait().unwrap().is_none(), "the backup ended");
        std::thread::sleep(Duration::from_millis(10));
    }

    let beside = json_of(&env, "prune --json");
    assert_eq!(counter(&beside, "other_sessions"), 1, "{beside}");
    assert_eq!(counter(&beside, "packs_deleted"), 0, "{beside}");
    run_line(&env, "forget --keep-last 1").success();
    run_line(&env, "repair snapshots --dry-run")
        .code(EXIT_LOCKED)
        .one_line_error()
        .stderr_contains("locked")
        .stderr_contains("backup");
    // Reading commands share the lock with the backup.
    run_line(&env, "check").success();

    let content = random_bytes(8000, 3 * MIB as usize);
    let (repair, backup_out) = std::thread::scope(|s| {
        let repair = s.spawn(|| run_line(&env, "--retry-lock 5m repair snapshots --dry-run"));
        // The repair is waiting; the backup gets its input and finishes.
        std::thread::sleep(Duration::from_millis(500));
        assert!(!repair.is_finished(), "repair did not wait for the lock");
        let mut stdin = backup.stdin.take().unwrap();
        stdin.write_all(&content).unwrap();
        drop(stdin);
        let backup_out = backup.wait_with_output().unwrap();
        (repair.join().unwrap(), backup_out)
    });
    assert!(
        backup_out.status.success(),
        "{cmdline}: {:?}\n{}",
        backup_out.status,
        String::from_utf8_lossy(&backup_out.stderr)
    );
    repair.success();
    let summary: Value = serde_json::from_slice(&backup_out.stdout).unwrap();
    let id = summary["snapshot_id"].as_str().unwrap().to_owned();
    let stats = json_of(&env, "prune --json");
    assert_eq!(counter(&stats, "snapshots"), 1, "{stats}");
    assert_eq!(counter(&stats, "packs_deleted"), 0, "{stats}");

    let target = env.path("restore");
    env.restore(&id, &target);
    assert_eq!(fs::read(target.join("dump.bin")).unwrap(), content);
    run_line(&env, "check --read-data").success();

    let out = run_line(&env, "unlock").success();
    assert!(out.stdout_str().contains("no locks"), "{}", out.describe());
    assert!(env.repo_files("locks").is_empty());
}
