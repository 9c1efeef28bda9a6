//! The commands restic users reach for (#15): `tag`, `rewrite`, `list`, `cache`, `dump
//! --archive zip`, and the global `--no-cache` and `--cache-dir`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

fn small_tree(env: &Env, name: &str) -> PathBuf {
    let src = env.path(name);
    write_file(&src.join("a.txt"), b"alpha\n");
    write_file(&src.join("sub/b.txt"), b"beta\n");
    write_file(&src.join("sub/deeper/c.txt"), b"gamma\n");
    src
}

/// `snapshots --json`, by id.
fn snapshots_by_id(env: &Env) -> std::collections::BTreeMap<String, Value> {
    env.snapshots()
        .into_iter()
        .map(|s| (s["id"].as_str().unwrap().to_string(), s))
        .collect()
}

fn tags_of(s: &Value) -> Vec<String> {
    s["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// The only snapshot's id and tags.
#[track_caller]
fn only_snapshot(env: &Env) -> (String, Vec<String>) {
    let all = env.snapshots();
    assert_eq!(all.len(), 1, "{all:?}");
    (all[0]["id"].as_str().unwrap().to_string(), tags_of(&all[0]))
}

// ---------------------------------------------------------------------------------------
// tag

/// `tag --add`, `--remove` and `--set` leave exactly the tag sets restic would; each
/// change is a new snapshot id that records the original, and the old file is gone.
#[test]
fn tag_add_remove_and_set_give_exact_tag_sets() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    let first = env.backup_json(&[&src], &["--tag", "a"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = env
        .strata(["tag", &first, "--add", "b", "--add", "c"])
        .success();
    assert!(
        out.stdout_str().contains("1 of 1 snapshots changed"),
        "{}",
        out.describe()
    );
    let (id, tags) = only_snapshot(&env);
    assert_eq!(tags, ["a", "b", "c"]);
    assert_ne!(id, first);
    assert!(!env.repo.join("snapshots").join(&first).exists());
    let snap = env.strata(["cat", "snapshot", &id]).success().json();
    assert_eq!(snap["original"], Value::from(first.clone()));

    env.strata([
        "tag", "latest", "--remove", "a", "--remove", "c", "--add", "d",
    ])
    .success();
    assert_eq!(only_snapshot(&env).1, ["b", "d"]);

    env.strata(["tag", "--set", "x", "--set", "y"]).success();
    assert_eq!(only_snapshot(&env).1, ["x", "y"]);

    // Nothing to change: the same id, "0 of 1".
    let (before, _) = only_snapshot(&env);
    let out = env.strata(["tag", "--add", "x", "--json"]).success().json();
    assert_eq!(out[0]["changed"], Value::Bool(false));
    assert_eq!(only_snapshot(&env).0, before);

    env.strata(["tag", "--set", ""]).success();
    assert_eq!(only_snapshot(&env).1, Vec::<String>::new());

    // Usage errors: no change named, --set with --add.
    env.strata(["tag", "latest"]).code(2);
    env.strata(["tag", "latest", "--set", "x", "--add", "y"])
        .code(2);
    assert_eq!(only_snapshot(&env).1, Vec::<String>::new());
}

/// Without ids, `tag` changes the snapshots the filters match, and only those.
#[test]
fn tag_follows_the_snapshot_filters() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    env.backup_json(&[&src], &["--tag", "nightly"]);
    env.backup_json(&[&src], &["--tag", "weekly"]);
    let out = env
        .strata(["tag", "--tag", "weekly", "--add", "keep", "--json"])
        .success()
        .json();
    assert_eq!(out.as_array().unwrap().len(), 1);
    let mut sets: Vec<Vec<String>> = env.snapshots().iter().map(tags_of).collect();
    sets.sort();
    assert_eq!(sets, [vec!["nightly"], vec!["weekly", "keep"]]);
}

/// Tagging a held snapshot keeps its hold (and so `forget` still refuses it).
#[test]
fn tag_on_a_held_snapshot_keeps_the_hold() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    env.backup_json(&[&src], &["--hold-for", "10y"]);
    let held = env.snapshots()[0]["keep_until"].clone();
    assert!(held.is_string());
    env.strata(["tag", "latest", "--add", "audit"]).success();
    let (id, tags) = only_snapshot(&env);
    assert_eq!(tags, ["audit"]);
    assert_eq!(env.snapshots()[0]["keep_until"], held);
    env.strata(["forget", &id]).code(1);
}

