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

// ---------------------------------------------------------------------------------------
// rewrite

/// The content ids of the file at absolute `path` in snapshot `id` (walking `cat tree`).
fn content_ids(env: &Env, id: &str, path: &Path) -> Vec<String> {
    let snap = env.strata(["cat", "snapshot", id]).success().json();
    let mut tree = snap["tree"].as_str().unwrap().to_string();
    let comps: Vec<&std::ffi::OsStr> = path.iter().skip(1).collect();
    for (i, name) in comps.iter().enumerate() {
        let t = env.strata(["cat", "tree", &tree]).success().json();
        let want: Vec<Value> = name
            .as_encoded_bytes()
            .iter()
            .map(|b| Value::from(*b))
            .collect();
        let node = t["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"].as_array() == Some(&want))
            .unwrap_or_else(|| panic!("{name:?} not in tree {tree}: {t}"))
            .clone();
        let kind = &node["kind"];
        if i + 1 == comps.len() {
            return kind["File"]["content"]
                .as_array()
                .unwrap_or_else(|| panic!("not a file: {node}"))
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
        }
        tree = kind["Dir"]["subtree"].as_str().unwrap().to_string();
    }
    unreachable!("a path below /")
}

/// `list blobs`, as (type, id) pairs.
fn blobs(env: &Env) -> BTreeSet<(String, String)> {
    env.strata(["list", "blobs"])
        .success()
        .lines()
        .into_iter()
        .map(|l| {
            let (t, id) = l.split_once(' ').unwrap();
            (t.to_string(), id.to_string())
        })
        .collect()
}

/// The leaked-secret case: `rewrite --exclude` writes a snapshot without the file (its
/// time, host, paths, tags and a record of the rewrite kept), the rest restores byte for
/// byte, the old snapshot is forgotten; `--dry-run` and a pattern matching nothing change
/// nothing, `--keep-old` keeps the old one; after `prune` the secret's blob is gone from
/// the index and `check --read-data` is clean.
#[test]
fn rewrite_removes_a_leaked_secret_down_to_its_data() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    let secret = src.join("sub/.env");
    write_file(&secret, b"API_KEY=a-secret-only-this-file-holds-7d1f0c\n");
    let first = env.backup_json(&[&src], &["--tag", "web"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_blobs = content_ids(&env, &first, &secret);
    assert_eq!(secret_blobs.len(), 1);
    assert!(blobs(&env).contains(&("data".into(), secret_blobs[0].clone())));
    let before = snapshots_by_id(&env);

    // A pattern that matches nothing: unchanged.
    let out = env.strata(["rewrite", "--exclude", "*.nothing"]).success();
    assert!(out.stdout_str().contains("unchanged"), "{}", out.describe());
    assert_eq!(snapshots_by_id(&env), before);

    // --dry-run names the file and changes nothing.
    let out = env
        .strata(["rewrite", "latest", "--exclude", ".env", "--dry-run"])
        .success();
    assert!(
        out.stdout_str().contains(&secret.display().to_string()),
        "{}",
        out.describe()
    );
    assert_eq!(snapshots_by_id(&env), before);

    // --keep-old: both, the new one without the file.
    let exclude = secret.display().to_string();
    let kept = env
        .strata([
            "rewrite",
            &first,
            "--exclude",
            &exclude,
            "--keep-old",
            "--json",
        ])
        .success()
        .json();
    let copy = kept[0]["new_id"].as_str().unwrap().to_string();
    assert_eq!(kept[0]["removed"], serde_json::json!([exclude]));
    let now = snapshots_by_id(&env);
    assert_eq!(
        now.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([first.clone(), copy.clone()])
    );
    env.strata(["forget", &copy]).success();

    // The real thing (an exclude file, as restic's).
    let patterns = env.path("patterns");
    fs::write(&patterns, format!("# the leaked key\n\n{exclude}\n")).unwrap();
    let done = env
        .cmd()
        .args(["rewrite", "--exclude-file"])
        .arg(&patterns)
        .args(["--json"])
        .run()
        .success()
        .json();
    let new = done[0]["new_id"].as_str().unwrap().to_string();
    let after = snapshots_by_id(&env);
    assert_eq!(after.keys().collect::<Vec<_>>(), [&new]);
    let (old, rewritten) = (&before[&first], &after[&new]);
    for field in ["time", "host", "user", "paths", "tags", "project", "parent"] {
        assert_eq!(old[field], rewritten[field], "{field}");
    }
    assert_eq!(rewritten["original"], Value::from(first.clone()));
    let cat = env.strata(["cat", "snapshot", &new]).success().json();
    let change = cat["rewrites"][0]["change"].as_str().unwrap();
    assert!(
        change.contains(&first) && change.contains(&exclude),
        "{change}"
    );

    let listed = env.ls(&new, Some(&src.join("sub")));
    assert!(!listed.contains(&exclude), "{listed:?}");
    assert!(listed.contains(&src.join("sub/b.txt").display().to_string()));
    // The rest restores identical (the source without the secret, its directory's time put
    // back).
    let sub_time = fs::metadata(src.join("sub")).unwrap().modified().unwrap();
    fs::remove_file(&secret).unwrap();
    fs::File::open(src.join("sub"))
        .unwrap()
        .set_modified(sub_time)
        .unwrap();
    let target = env.path("restore");
    env.restore(&new, &target);
    assert_same_tree(&src, &restored(&target, &src));

    // The data goes at the next prune.
    assert!(blobs(&env).contains(&("data".into(), secret_blobs[0].clone())));
    env.strata(["prune"]).success();
    let left = blobs(&env);
    assert!(
        !left.contains(&("data".into(), secret_blobs[0].clone())),
        "{left:?}"
    );
    env.check_read_data_clean();
    env.restore(&new, &env.path("restore-2"));
}

/// A held snapshot is refused (exit 1, nothing written) unless --force-held; the
/// rewritten copy keeps the hold.
#[test]
fn rewrite_refuses_held_snapshots_unless_forced() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    env.backup_json(&[&src], &["--hold-for", "10y"]);
    let before = snapshots_by_id(&env);
    let packs = env.repo_objects("data");
    let index = env.repo_objects("index");
    let out = env.strata(["rewrite", "--exclude", "a.txt"]).code(1);
    assert!(out.stderr.contains("--force-held"), "{}", out.describe());
    assert_eq!(snapshots_by_id(&env), before);
    assert_eq!(env.repo_objects("data"), packs);
    assert_eq!(env.repo_objects("index"), index);

    let done = env
        .strata(["rewrite", "--exclude", "a.txt", "--force-held", "--json"])
        .success()
        .json();
    let new = done[0]["new_id"].as_str().unwrap();
    let after = snapshots_by_id(&env);
    assert_eq!(after.len(), 1);
    let old = before.values().next().unwrap();
    assert_eq!(after[new]["keep_until"], old["keep_until"]);
    let listed = env.ls(new, Some(&src));
    assert!(!listed.contains(&src.join("a.txt").display().to_string()));
    assert!(listed.contains(&src.join("sub").display().to_string()));
}

// ---------------------------------------------------------------------------------------
// list

/// `list` prints one id per line: exactly the snapshot ids `snapshots --json` prints, the
/// files under index/, data/, keys/ and locks/, and `TYPE ID` for blobs.
#[test]
fn list_prints_the_ids_of_every_kind() {
    let env = Env::init();
    let src = small_tree(&env, "src");
    env.backup(&[&src]);
    env.backup_json(&[&src], &["--tag", "second"]);
    let listed: BTreeSet<String> = env
        .strata(["list", "snapshots"])
        .success()
        .lines()
        .into_iter()
        .collect();
    let ids: BTreeSet<String> = env
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(listed.len(), 2);
    let names = |dir: &str| -> BTreeSet<String> {
        env.repo_objects(dir).iter().map(|p| file_name(p)).collect()
    };
    for (kind, dir) in [
        ("index", "index"),
        ("packs", "data"),
        ("keys", "keys"),
        ("locks", "locks"),
    ] {
        let listed: BTreeSet<String> = env
            .strata(["list", kind])
            .success()
            .lines()
            .into_iter()
            .collect();
        assert_eq!(listed, names(dir), "{kind}");
    }
    assert_eq!(env.strata(["list", "keys"]).success().lines().len(), 1);
    let blobs = blobs(&env);
    let data = blobs.iter().filter(|(t, _)| t == "data").count();
    let trees = blobs.iter().filter(|(t, _)| t == "tree").count();
    // Three distinct contents; trees: the same for both snapshots.
    assert_eq!(data, 3, "{blobs:?}");
    assert!(trees >= 3, "{blobs:?}");
    let json = env.strata(["list", "snapshots", "--json"]).success().json();
    assert_eq!(json.as_array().unwrap().len(), 2);
    env.strata(["list", "nothing"]).code(2);
}

// ---------------------------------------------------------------------------------------
// cache, --cache-dir, --no-cache

/// `cache` lists the repository caches of its directory (--cache-dir) with size and last
/// use; `--cleanup` removes the ones unused for longer than --max-age, and only those;
/// nothing else in the directory is touched.
#[test]
fn cache_lists_and_cleans_old_caches() {
    let env = Env::new();
    let root = env.path("caches");
    let fresh = root.join("00112233445566778899aabbccddeeff");
    let old = root.join("ffeeddccbbaa99887766554433221100");
    write_file(&fresh.join("index/x"), &[1u8; 3000]);
    write_file(&old.join("snapshots/y"), &[2u8; 100]);
    write_file(&root.join("notes.txt"), b"the user's own file\n");
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    fs::File::open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();

    let listed = env
        .cmd()
        .arg("--cache-dir")
        .arg(&root)
        .args(["cache", "--json"])
        .run()
        .success()
        .json();
    let caches = listed["caches"].as_array().unwrap();
    assert_eq!(caches.len(), 2, "{listed}");
    assert_eq!(caches[0]["bytes"], 3000);
    assert_eq!(caches[0]["old"], false);
    assert_eq!(caches[1]["old"], true);

    // Through STRATA_CACHE_DIR too, and a longer --max-age keeps it.
    env.cmd()
        .env("STRATA_CACHE_DIR", &root)
        .args(["cache", "--cleanup", "--max-age", "60"])
        .run()
        .success();
    assert!(old.exists());
    let out = env
        .cmd()
        .env("STRATA_CACHE_DIR", &root)
        .args(["cache", "--cleanup"])
        .run()
        .success();
    assert!(
        out.stdout_str().contains("removed 1 caches"),
        "{}",
        out.describe()
    );
    assert!(!old.exists());
    assert!(fresh.join("index/x").exists());
    assert!(root.join("notes.txt").exists());
}

// ---------------------------------------------------------------------------------------
// dump --archive zip

/// `dump SNAPSHOT DIR --archive zip` writes a zip that unzip(1) unpacks into the backed-up
/// tree: contents (a file of many chunks too), modes, modification times to the second,
/// symlinks, an empty directory.
#[test]
fn dump_archive_zip_unpacks_identical() {
    require("unzip", "unzip");
    let env = Env::init();
    let src = small_tree(&env, "src");
    write_file(&src.join("big.bin"), &random_bytes(9, 5 * 1024 * 1024 + 77));
    chmod(&src.join("a.txt"), 0o640);
    chmod(&src.join("sub/deeper"), 0o750);
    set_mtime(&src.join("sub/b.txt"), 1_500_000_000, 0);
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    fs::create_dir(src.join("empty-dir")).unwrap();
    let id = env.backup(&[&src]);

    let out = env
        .cmd()
        .args(["dump", &id])
        .arg(&src)
        .args(["--archive", "zip"])
        .run()
        .success();
    let zip_file = env.path("out.zip");
    fs::write(&zip_file, &out.stdout).unwrap();
    let into = env.path("unzipped");
    let status = std::process::Command::new("unzip")
        .arg("-q")
        .arg(&zip_file)
        .arg("-d")
        .arg(&into)
        .status()
        .unwrap();
    assert!(status.success(), "unzip failed");
    let unpacked = into.join(src.strip_prefix("/").unwrap());
    // What a zip keeps: everything but owners and sub-second times (directories' times
    // are not compared: unzip sets them only for some versions).
    let comparable = |root: &Path| -> Vec<String> {
        walk(root)
            .into_iter()
            .map(|e| {
                let time = match e.kind {
                    "dir" => String::new(),
                    "symlink" => String::new(),
                    _ => (e.mtime_ns / 1_000_000_000).to_string(),
                };
                let mode = if e.kind == "symlink" {
                    0
                } else {
                    e.mode & 0o777
                };
                format!(
                    "{} {} {mode:o} {:?} {:?} {:?} {time}",
                    e.path, e.kind, e.size, e.blake3, e.link_target
                )
            })
            .collect()
    };
    assert_eq!(comparable(&unpacked), comparable(&src));
    // The test sees the modes and times it set.
    assert!(comparable(&src)
        .iter()
        .any(|l| l.starts_with("a.txt file 640")));
    assert!(comparable(&src).iter().any(|l| l.ends_with(" 1500000000")));
}

/// The cache of a remote repository goes where --cache-dir (or STRATA_CACHE_DIR) says;
/// with --no-cache (or STRATA_NO_CACHE) no cache directory is made at all.
#[test]
fn cache_dir_and_no_cache_decide_where_a_remote_repository_is_cached() {
    let (env, _s3) = crate::remote::s3_env();
    crate::remote::init_repo(&env, false);
    let src = small_tree(&env, "src");
    env.backup(&[&src]);
    let default_root = env.cache.join("strata");
    let repo_dirs = |root: &Path| -> usize {
        fs::read_dir(root).map_or(0, |d| d.flatten().filter(|e| e.path().is_dir()).count())
    };
    assert_eq!(repo_dirs(&default_root), 1, "the default cache is used");

    let chosen = env.path("chosen-cache");
    env.cmd()
        .arg("--cache-dir")
        .arg(&chosen)
        .args(["snapshots"])
        .run()
        .success();
    assert_eq!(repo_dirs(&chosen), 1);
    let listed = env
        .cmd()
        .arg("--cache-dir")
        .arg(&chosen)
        .args(["cache", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(listed["caches"].as_array().unwrap().len(), 1, "{listed}");
    assert!(
        listed["caches"][0]["bytes"].as_u64().unwrap() > 0,
        "{listed}"
    );

    let from_env = env.path("env-cache");
    env.cmd()
        .env("STRATA_CACHE_DIR", &from_env)
        .args(["snapshots"])
        .run()
        .success();
    assert_eq!(repo_dirs(&from_env), 1);

    // --no-cache wins over a cache directory from the command line or the environment.
    let unused = env.path("unused-cache");
    let out = env
        .cmd()
        .env("STRATA_CACHE_DIR", &unused)
        .arg("--no-cache")
        .args(["ls", "latest"])
        .arg(src.join("sub"))
        .run()
        .success();
    assert!(out.stdout_str().contains("b.txt"));
    assert!(!unused.exists());
    env.cmd()
        .arg("--no-cache")
        .arg("--cache-dir")
        .arg(&unused)
        .args(["snapshots"])
        .run()
        .success();
    assert!(!unused.exists());
    env.cmd()
        .env("STRATA_NO_CACHE", "1")
        .env("STRATA_CACHE_DIR", &unused)
        .args(["snapshots"])
        .run()
        .success();
    assert!(!unused.exists());
}

/// Every new command is listed in `strata --help` and has help of its own; the new global
/// options are documented.
#[test]
fn new_commands_and_options_have_help() {
    let top = Cmd::new().arg("--help").run().success().stdout_str();
    for sub in ["tag", "rewrite", "list", "cache"] {
        let listed = top
            .lines()
            .any(|l| l.starts_with("  ") && l.split_whitespace().next() == Some(sub));
        assert!(listed, "`strata --help` does not list {sub}\n{top}");
        let out = Cmd::new().args([sub, "--help"]).run().success();
        assert!(out.stdout_str().len() > 200, "{}", out.describe());
    }
    assert!(
        top.contains("--no-cache") && top.contains("--cache-dir"),
        "{top}"
    );
    let dump = Cmd::new()
        .args(["dump", "--help"])
        .run()
        .success()
        .stdout_str();
    assert!(dump.contains("--archive") && dump.contains("zip"), "{dump}");
}

/// `rewrite` killed before and after every storage mutation it makes (lock, pack, index,
/// snapshot, delete): the repository stays clean (`check --read-data`), the snapshot is
/// never lost (the old one, the new one or both are there, each restorable), and a second
/// `rewrite` leaves no snapshot with the file.
#[test]
fn rewrite_killed_at_every_mutation_loses_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let setup = || {
        let env = Env::init();
        let src = small_tree(&env, "src");
        write_file(&src.join("sub/.env"), b"API_KEY=leaked\n");
        let id = env.backup(&[&src]);
        (env, src, id)
    };
    let (env, _, _) = setup();
    let log = env.path("mutations.log");
    env.cmd()
        .env("STRATA_TEST_FAULT_LOG", &log)
        .args(["rewrite", "--exclude", ".env"])
        .run()
        .success();
    let m = fs::read_to_string(&log).unwrap().lines().count() as u64;
    assert!(m >= 5, "lock, pack, index, snapshot, delete ({m})");
    let mut faults: Vec<String> = (1..=m).map(|n| format!("kill-before={n}")).collect();
    faults.extend((1..=m).map(|n| format!("kill-after={n}")));
    let mut killed = 0;
    for fault in faults {
        let (env, src, old) = setup();
        let (mut command, cmdline) = env
            .cmd()
            .env("STRATA_TEST_FAULT", &fault)
            .args(["rewrite", "--exclude", ".env"])
            .build();
        let out = command.stdin(std::process::Stdio::null()).output().unwrap();
        match out.status.signal() {
            Some(9) => killed += 1,
            _ => assert!(out.status.success(), "{cmdline} ({fault}): {out:?}"),
        }
        env.check_read_data_clean();
        let ids: Vec<String> = snapshots_by_id(&env).into_keys().collect();
        assert!(!ids.is_empty() && ids.len() <= 2, "{fault}: {ids:?}");
        for id in &ids {
            let listed = env.ls(id, Some(&src.join("sub")));
            assert!(listed.contains(&src.join("sub/b.txt").display().to_string()));
            let has_secret = listed.contains(&src.join("sub/.env").display().to_string());
            assert_eq!(has_secret, *id == old, "{fault}: {id} (old {old})");
        }
        env.strata(["rewrite", "--exclude", ".env"]).success();
        for id in snapshots_by_id(&env).keys() {
            assert!(
                !env.ls(id, Some(&src.join("sub")))
                    .contains(&src.join("sub/.env").display().to_string()),
                "{fault}: {id}"
            );
        }
    }
    assert!(
        killed as u64 >= m,
        "only {killed} of {} runs were killed",
        2 * m
    );
}
