//! `find`, `diff`, `stats` and `ls --long --recursive` over three snapshots of a changing
//! tree, with exact expected output.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::util::*;

/// Three snapshots of `src`:
/// 1. a.txt (6 B), docs/report.pdf (100 B), docs/notes.txt (10 B), old.log (50 B)
/// 2. a.txt rewritten (11 B), docs/report-2.pdf added (200 B), old.log removed,
///    docs/notes.txt chmod 600 (metadata only)
/// 3. docs/report.pdf removed, new/x.pdf added (300 B), a.txt replaced by a directory
fn three_snapshots(env: &Env) -> (std::path::PathBuf, [String; 3]) {
    let src = env.path("src");
    let t = |p: &str| src.join(p);
    write_file(&t("a.txt"), b"alpha\n");
    write_file(&t("docs/report.pdf"), &[1u8; 100]);
    write_file(&t("docs/notes.txt"), b"notes.....");
    write_file(&t("old.log"), &[2u8; 50]);
    std::fs::set_permissions(t("docs/notes.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    for (p, s) in [
        ("a.txt", 1),
        ("docs/report.pdf", 2),
        ("docs/notes.txt", 3),
        ("old.log", 4),
    ] {
        set_mtime(&t(p), 1_700_000_000 + s, 0);
    }
    let backup = |when: &str| {
        env.cmd()
            .env("TZ", "UTC")
            .args(["backup", "--json", "--time", when])
            .arg(&src)
            .run()
            .success()
            .json()["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = backup("2025-01-01 00:00:00");

    write_file(&t("a.txt"), b"alpha beta\n");
    set_mtime(&t("a.txt"), 1_700_000_100, 0);
    write_file(&t("docs/report-2.pdf"), &[3u8; 200]);
    set_mtime(&t("docs/report-2.pdf"), 1_700_000_101, 0);
    std::fs::remove_file(t("old.log")).unwrap();
    std::fs::set_permissions(t("docs/notes.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let second = backup("2025-02-01 00:00:00");

    std::fs::remove_file(t("docs/report.pdf")).unwrap();
    write_file(&t("new/x.pdf"), &[4u8; 300]);
    set_mtime(&t("new/x.pdf"), 1_700_000_200, 0);
    std::fs::remove_file(t("a.txt")).unwrap();
    write_file(&t("a.txt/inner"), b"i\n");
    let third = backup("2025-03-01 00:00:00");
    (src, [first, second, third])
}

fn s(src: &Path, rel: &str) -> String {
    src.join(rel).to_string_lossy().into_owned()
}

#[test]
fn find_lists_every_snapshot_holding_a_match() {
    let env = Env::init();
    let (src, ids) = three_snapshots(&env);
    let out = env
        .cmd()
        .env("TZ", "UTC")
        .args(["find", "*.pdf", "--json"])
        .run()
        .success()
        .json();
    let pdf = |rel: &str, size: u64, mtime: &str| json!({"path": s(&src, rel), "type": "file", "size": size, "mtime": mtime});
    let strip = |v: &Value| -> Value {
        let items: Vec<Value> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                json!({
                    "snapshot": r["snapshot"],
                    "time": r["time"],
                    "matches": r["matches"].as_array().unwrap().iter().map(|m| json!({
                        "path": m["path"], "type": m["type"], "size": m["size"], "mtime": m["mtime"],
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Value::Array(items)
    };
    assert_eq!(
        strip(&out),
        json!([
            {"snapshot": ids[0], "time": "2025-01-01T00:00:00Z",
             "matches": [pdf("docs/report.pdf", 100, "2023-11-14T22:13:22Z")]},
            {"snapshot": ids[1], "time": "2025-02-01T00:00:00Z",
             "matches": [pdf("docs/report-2.pdf", 200, "2023-11-14T22:15:01Z"),
                         pdf("docs/report.pdf", 100, "2023-11-14T22:13:22Z")]},
            {"snapshot": ids[2], "time": "2025-03-01T00:00:00Z",
             "matches": [pdf("docs/report-2.pdf", 200, "2023-11-14T22:15:01Z"),
                         pdf("new/x.pdf", 300, "2023-11-14T22:16:40Z")]},
        ])
    );

    // A full path, one snapshot, and the modification time window.
    let path_glob = format!("{}/docs/*", src.display());
    let out = env
        .cmd()
        .args(["find", &path_glob, "--snapshot", &ids[0][..8], "--json"])
        .run()
        .success()
        .json();
    let paths: Vec<&str> = out[0]["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [s(&src, "docs/notes.txt"), s(&src, "docs/report.pdf")]
    );
    let out = env
        .cmd()
        .env("TZ", "UTC")
        .args(["find", "*.pdf", "--newer", "2023-11-14 22:15:00", "--json"])
        .run()
        .success()
        .json();
    let found: Vec<(String, Vec<String>)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["snapshot"].as_str().unwrap().to_string(),
                r["matches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["path"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (ids[1].clone(), vec![s(&src, "docs/report-2.pdf")]),
            (
                ids[2].clone(),
                vec![s(&src, "docs/report-2.pdf"), s(&src, "new/x.pdf")]
            ),
        ]
    );
    // Nothing matches: an empty list, not an error.
    let none = env.strata(["find", "*.docx", "--json"]).success().json();
    assert_eq!(none, json!([]));
}

#[test]
fn diff_lists_added_removed_and_changed_with_totals() {
    let env = Env::init();
    let (src, ids) = three_snapshots(&env);
    let out = env.strata(["diff", &ids[0], &ids[1]]).success();
    let expected = format!(
        "comparing snapshot {} to {}:\n\
         M    {}\n\
         +    {}\n\
         -    {}\n\
         \n\
         files:       1 new, 1 removed, 1 changed\n\
         dirs:        0 new, 0 removed\n\
         bytes:       200 B added, 50 B removed, +5 B in changed files\n",
        &ids[0][..8],
        &ids[1][..8],
        s(&src, "a.txt"),
        s(&src, "docs/report-2.pdf"),
        s(&src, "old.log"),
    );
    assert_eq!(out.stdout_str(), expected);

    // A file that became a directory, a new directory, a removed file.
    let out = env
        .strata(["diff", &ids[1], &ids[2], "--json"])
        .success()
        .json();
    let changes: Vec<(String, String, String)> = out["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
                c["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let c =
        |change: &str, rel: &str, kind: &str| (change.to_string(), s(&src, rel), kind.to_string());
    assert_eq!(
        changes,
        vec![
            c("type_changed", "a.txt", "dir"),
            c("added", "a.txt/inner", "file"),
            c("removed", "docs/report.pdf", "file"),
            c("added", "new", "dir"),
            c("added", "new/x.pdf", "file"),
        ]
    );
    assert_eq!(out["stats"]["added_files"], 2);
    assert_eq!(out["stats"]["added_dirs"], 1);
    assert_eq!(out["stats"]["removed_files"], 1);
    assert_eq!(out["stats"]["added_bytes"], 302);
    assert_eq!(out["stats"]["removed_bytes"], 100);
    assert_eq!(out["stats"]["type_changed"], 1);

    // --metadata also names the chmod; without it, it is not there.
    let out = env
        .strata(["diff", &ids[0], &ids[1], "--metadata"])
        .success();
    let notes = format!("U    {}", s(&src, "docs/notes.txt"));
    assert!(out.lines().contains(&notes), "{}", out.describe());
    let out = env.strata(["diff", &ids[0], &ids[1]]).success();
    assert!(!out.stdout_str().contains("notes.txt"));
    // A snapshot against itself: nothing.
    let out = env
        .strata(["diff", &ids[2], &ids[2], "--json"])
        .success()
        .json();
    assert_eq!(out["changes"], json!([]));
}

#[test]
fn stats_count_what_snapshots_hold_and_share() {
    let env = Env::init();
    let (_src, ids) = three_snapshots(&env);
    let out = env.strata(["stats", "--json"]).success().json();
    let snaps = out["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 3);
    // Files: 4, then 4 (a.txt, report-2, report, notes), then 4 (inner, notes, report-2, x).
    let files: Vec<u64> = snaps.iter().map(|s| s["files"].as_u64().unwrap()).collect();
    assert_eq!(files, [4, 4, 4]);
    let sizes: Vec<u64> = snaps
        .iter()
        .map(|s| s["restore_size"].as_u64().unwrap())
        .collect();
    assert_eq!(
        sizes,
        [6 + 100 + 10 + 50, 11 + 100 + 10 + 200, 2 + 10 + 200 + 300]
    );
    assert_eq!(snaps[0]["id"], ids[0].as_str());
    // Distinct contents over all three: alpha, report, notes, old, alpha beta, report-2,
    // x, inner = 8 blobs; the total counts shared ones once.
    assert_eq!(out["total"]["blobs"], 8);
    assert_eq!(
        out["total"]["blob_raw_bytes"],
        6 + 100 + 10 + 50 + 11 + 200 + 300 + 2
    );
    let one = env.strata(["stats", &ids[1], "--json"]).success().json();
    assert_eq!(one["snapshots"][0]["blobs"], 4);
}

#[test]
fn ls_long_recursive_shows_every_entry_with_metadata() {
    let env = Env::init();
    let (src, ids) = three_snapshots(&env);
    let out = env
        .cmd()
        .env("TZ", "UTC")
        .args(["ls", "--long", "--recursive", &ids[0]])
        .arg(src.join("docs"))
        .run()
        .success();
    let lines = out.lines();
    let report = lines
        .iter()
        .find(|l| l.ends_with("/docs/report.pdf"))
        .unwrap();
    assert!(report.starts_with("-rw-r--r--"), "{report}");
    assert!(report.contains(" 100 2023-11-14 22:13:22 "), "{report}");
    assert_eq!(lines.len(), 3, "{lines:?}"); // docs, notes.txt, report.pdf
}

/// `restore --json` reports what it restored.
#[test]
fn restore_json_reports_counts() {
    let env = Env::init();
    let (_src, ids) = three_snapshots(&env);
    let target = env.path("restored");
    let out = env
        .cmd()
        .args(["restore", &ids[0], "--json", "--target"])
        .arg(&target)
        .run()
        .success()
        .json();
    assert_eq!(out["files"], 4);
    assert_eq!(out["bytes"], 6 + 100 + 10 + 50);
    assert_eq!(out["errors"], json!([]));
}
