//! Restoring into a directory that already holds files: nothing is overwritten without an
//! `--overwrite` choice, `--dry-run` shows the plan and touches nothing, and whatever is
//! overwritten or deleted is first saved in a `pre-restore` safety snapshot.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// A backed-up site and a restore of it in `target`.
struct Site {
    env: Env,
    src: PathBuf,
    snap: String,
    target: PathBuf,
}

impl Site {
    /// Backs up `src/site` (a config file, a page, a subdirectory) and restores it.
    fn new() -> Site {
        let env = Env::init();
        let src = env.path("src/site");
        write_file(
            &src.join("wp-config.php"),
            b"define('DB_PASSWORD', 'original');\n",
        );
        write_file(&src.join("index.php"), b"<?php echo 'hello';\n");
        write_file(&src.join("sub/page.html"), b"<p>page</p>\n");
        let snap = env.backup(&[&src]);
        let target = env.path("target");
        env.restore(&snap, &target);
        Site {
            env,
            src,
            snap,
            target,
        }
    }

    /// Where the source path `rel` (below `src/site`) is in the target.
    fn restored(&self, rel: &str) -> PathBuf {
        restored(&self.target, &self.src.join(rel))
    }

    /// `strata restore SNAP --target TARGET ARGS...`.
    fn restore(&self, args: &[&str]) -> Output {
        self.env
            .cmd()
            .args(["restore", &self.snap, "--target"])
            .arg(&self.target)
            .args(args)
            .run()
    }

    /// Edits the restored config file.
    fn edit_config(&self) -> PathBuf {
        let cfg = self.restored("wp-config.php");
        fs::write(&cfg, b"define('DB_PASSWORD', 'edited by hand');\n").unwrap();
        cfg
    }

    /// Restores snapshot `id` into a fresh directory; returns where `path` (absolute, as
    /// it was on disk) is in it.
    fn restore_elsewhere(&self, id: &str, path: &Path) -> PathBuf {
        let dir = self.env.path(format!("elsewhere-{id}"));
        self.env.restore(id, &dir);
        restored(&dir, path)
    }
}

/// Every entry of a tree with its size, mtime and content hash.
/// An entry's path, kind, size, mtime and content hash.
type EntryState = (String, &'static str, Option<u64>, i128, Option<String>);

fn state(root: &Path) -> Vec<EntryState> {
    walk(root)
        .into_iter()
        .map(|e| (e.path, e.kind, e.size, e.mtime_ns, e.blake3))
        .collect()
}

fn entries<'a>(plan: &'a Value, action: &str) -> Vec<&'a str> {
    plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| e["path"].as_str().unwrap())
        .collect()
}

#[test]
fn restore_into_an_edited_target_without_overwrite_exits_1_and_changes_nothing() {
    let site = Site::new();
    let cfg = site.edit_config();
    let before = state(&site.target);
    site.restore(&[])
        .code(1)
        .stderr_contains("would overwrite")
        .stderr_contains(&cfg.to_string_lossy())
        .stderr_contains("--overwrite");
    assert_eq!(state(&site.target), before);
    assert!(
        site.env.snapshots().len() == 1,
        "no safety snapshot without a restore"
    );
}

#[test]
fn restore_into_a_target_with_only_new_or_identical_files_needs_no_choice() {
    let site = Site::new();
    fs::remove_file(site.restored("index.php")).unwrap();
    let out = site.restore(&["--json"]).success().json();
    assert_eq!(out["overwritten"], 0, "{out}");
    assert_eq!(out["unchanged"], 2, "{out}");
    assert_eq!(out["safety_snapshot"], Value::Null, "{out}");
    assert_eq!(
        fs::read(site.restored("index.php")).unwrap(),
        b"<?php echo 'hello';\n"
    );
}

#[test]
fn dry_run_lists_what_would_change_and_touches_nothing() {
    let site = Site::new();
    let cfg = site.edit_config();
    fs::remove_file(site.restored("index.php")).unwrap();
    let extra = site.restored("sub/extra.txt");
    fs::write(&extra, b"not in the snapshot").unwrap();
    let before = state(&site.target);

    let plan = site
        .restore(&["--dry-run", "--delete", "--json"])
        .success()
        .json();
    assert_eq!(plan["dry_run"], true, "{plan}");
    let s = |p: &Path| p.to_string_lossy().into_owned();
    assert_eq!(entries(&plan, "overwrite"), [s(&cfg)], "{plan}");
    assert_eq!(entries(&plan, "delete"), [s(&extra)], "{plan}");
    assert_eq!(
        entries(&plan, "create"),
        [s(&site.restored("index.php"))],
        "{plan}"
    );
    assert_eq!(
        entries(&plan, "unchanged"),
        [s(&site.restored("sub/page.html"))],
        "{plan}"
    );
    let totals = &plan["totals"];
    assert_eq!(
        (
            &totals["create"],
            &totals["overwrite"],
            &totals["delete"],
            &totals["unchanged"]
        ),
        (&1.into(), &1.into(), &1.into(), &1.into()),
        "{plan}"
    );

    let text = site.restore(&["--dry-run", "--delete"]).success();
    let listed = text.stdout_str();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("overwrite") && l.contains(&s(&cfg))),
        "{}",
        text.describe()
    );
    assert!(
        listed.contains("would create 1, overwrite 1, delete 1"),
        "{listed}"
    );

    assert_eq!(state(&site.target), before, "a dry run changed the target");
    assert_eq!(site.env.snapshots().len(), 1, "a dry run wrote a snapshot");
}

#[test]
fn overwrite_if_changed_replaces_the_edited_file_after_saving_it_in_a_safety_snapshot() {
    let site = Site::new();
    let cfg = site.edit_config();
    let edited = fs::read(&cfg).unwrap();
    let page = site.restored("sub/page.html");
    let page_mtime = fs::symlink_metadata(&page).unwrap().modified().unwrap();

    let out = site
        .restore(&["--overwrite", "if-changed", "--json"])
        .success()
        .json();
    assert_eq!(
        fs::read(&cfg).unwrap(),
        fs::read(site.src.join("wp-config.php")).unwrap()
    );
    assert_eq!(
        fs::symlink_metadata(&page).unwrap().modified().unwrap(),
        page_mtime,
        "an identical file was rewritten"
    );
    assert_eq!(out["overwritten"], 1, "{out}");
    let safety = out["safety_snapshot"]
        .as_str()
        .expect("a safety snapshot")
        .to_owned();

    let snaps = site.env.snapshots();
    let saved = snaps
        .iter()
        .find(|s| s["id"].as_str().unwrap().starts_with(&safety[..8]))
        .unwrap_or_else(|| panic!("{safety} not in {snaps:?}"));
    assert_eq!(saved["tags"], serde_json::json!(["pre-restore"]), "{saved}");
    assert_eq!(
        saved["paths"],
        serde_json::json!([cfg.to_string_lossy()]),
        "{saved}"
    );
    // Restored back, the safety snapshot gives the edited file at its real path.
    assert_eq!(
        fs::read(site.restore_elsewhere(&safety, &cfg)).unwrap(),
        edited
    );
}

#[test]
fn delete_removes_what_the_snapshot_does_not_hold_below_its_paths_only() {
    let site = Site::new();
    let extra = site.restored("sub/extra.txt");
    fs::write(&extra, b"extra file").unwrap();
    let extra_dir = site.restored("cache");
    write_file(&extra_dir.join("deep/x.bin"), b"cached");
    // Beside the backed-up path (in its parent directory): never deleted.
    let beside = site.restored("../beside.txt");
    fs::write(&beside, b"beside").unwrap();

    let out = site.restore(&["--delete", "--json"]).success().json();
    assert_eq!(out["deleted"], 2, "{out}");
    assert!(!extra.exists() && !extra_dir.exists());
    assert_eq!(fs::read(&beside).unwrap(), b"beside");
    assert_same_tree(&site.src, &site.restored(""));

    let safety = out["safety_snapshot"].as_str().expect("a safety snapshot");
    assert_eq!(
        fs::read(site.restore_elsewhere(safety, &extra)).unwrap(),
        b"extra file"
    );
    assert_eq!(
        fs::read(site.restore_elsewhere(safety, &extra_dir.join("deep/x.bin"))).unwrap(),
        b"cached"
    );
}

#[test]
fn delete_with_include_deletes_below_included_paths_only() {
    let site = Site::new();
    let in_sub = site.restored("sub/extra.txt");
    fs::write(&in_sub, b"x").unwrap();
    let in_site = site.restored("extra.txt");
    fs::write(&in_site, b"y").unwrap();
    let include = format!("{}/sub", site.src.display());
    let out = site.restore(&["--delete", "--include", &include]).success();
    assert!(
        out.stdout_str().contains("(tag pre-restore)"),
        "the safety snapshot is not named\n{}",
        out.describe()
    );
    assert!(!in_sub.exists());
    assert_eq!(fs::read(&in_site).unwrap(), b"y");
}

#[test]
fn overwrite_never_keeps_existing_files() {
    let site = Site::new();
    let cfg = site.edit_config();
    let edited = fs::read(&cfg).unwrap();
    fs::remove_file(site.restored("index.php")).unwrap();
    let out = site
        .restore(&["--overwrite", "never", "--json"])
        .success()
        .json();
    assert_eq!(fs::read(&cfg).unwrap(), edited);
    assert!(
        site.restored("index.php").exists(),
        "missing files are created"
    );
    assert_eq!(
        (&out["kept"], &out["overwritten"]),
        (&1.into(), &0.into()),
        "{out}"
    );
    assert_eq!(out["safety_snapshot"], Value::Null, "{out}");
}

#[test]
fn overwrite_if_newer_replaces_only_files_older_than_the_snapshot() {
    let site = Site::new();
    let old = site.edit_config();
    set_mtime(&old, 1_000_000, 0);
    let newer = site.restored("index.php");
    fs::write(&newer, b"changed later").unwrap();
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 86_400;
    set_mtime(&newer, future, 0);

    let out = site
        .restore(&["--overwrite", "if-newer", "--json"])
        .success()
        .json();
    assert_eq!(
        fs::read(&old).unwrap(),
        fs::read(site.src.join("wp-config.php")).unwrap()
    );
    assert_eq!(fs::read(&newer).unwrap(), b"changed later");
    assert_eq!(
        (&out["overwritten"], &out["kept"]),
        (&1.into(), &1.into()),
        "{out}"
    );
}

#[test]
fn verify_reads_every_restored_file_back() {
    let site = Site::new();
    let target = site.env.path("verified");
    let out = site
        .env
        .cmd()
        .args(["restore", &site.snap, "--verify", "--json", "--target"])
        .arg(&target)
        .run()
        .success()
        .json();
    assert_eq!(out["verify"]["files"], 3, "{out}");
    assert_eq!(out["verify"]["mismatches"], serde_json::json!([]), "{out}");
}

#[test]
fn an_include_that_matches_nothing_is_an_error() {
    let site = Site::new();
    let target = site.env.path("nothing");
    site.env
        .cmd()
        .args([
            "restore",
            &site.snap,
            "--include",
            "site/wp-config.php",
            "--target",
        ])
        .arg(&target)
        .run()
        .code(1)
        .stderr_contains("\"site/wp-config.php\" matches nothing");
    assert!(!target.exists(), "the target was created");
}

#[test]
fn a_directory_in_the_way_of_a_file_is_reported_not_replaced() {
    let site = Site::new();
    let page = site.restored("index.php");
    fs::remove_file(&page).unwrap();
    write_file(&page.join("inside.txt"), b"kept");
    site.restore(&["--overwrite", "always"])
        .code(1)
        .stderr_contains("a directory is in the way");
    assert_eq!(fs::read(page.join("inside.txt")).unwrap(), b"kept");
}

#[test]
fn a_failed_safety_snapshot_leaves_the_target_untouched() {
    let site = Site::new();
    let cfg = site.edit_config();
    let extra = site.restored("extra.txt");
    fs::write(&extra, b"extra").unwrap();
    let before = state(&site.target);
    // Mutation 1 is the lock; 2 is the first upload of the safety snapshot.
    let log = site.env.path("mutations.log");
    site.env
        .cmd()
        .env("STRATA_TEST_FAULT", "fail=2")
        .env("STRATA_TEST_FAULT_LOG", &log)
        .args([
            "restore",
            &site.snap,
            "--overwrite",
            "always",
            "--delete",
            "--target",
        ])
        .arg(&site.target)
        .run()
        .code(1)
        .stderr_contains("safety snapshot")
        .stderr_contains("nothing was restored");
    let mutations = fs::read_to_string(&log).unwrap();
    assert!(
        mutations
            .lines()
            .nth(1)
            .is_some_and(|l| !l.contains("locks/")),
        "mutation 2 is not the safety snapshot's:\n{mutations}"
    );
    assert_eq!(state(&site.target), before);
    assert!(cfg.exists() && extra.exists());
    assert_eq!(site.env.snapshots().len(), 1);
}

#[test]
fn an_exclude_that_leaves_nothing_is_an_error() {
    let site = Site::new();
    let target = site.env.path("nothing");
    site.env
        .cmd()
        .args(["restore", &site.snap, "--exclude", "/*", "--target"])
        .arg(&target)
        .run()
        .code(1)
        .stderr_contains("\"/*\" leaves nothing");
    assert!(!target.exists(), "the target was created");
}
