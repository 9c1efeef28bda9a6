//! Snapshot selection (#15): `--host`, `--project`, `--tag` and `--path` on every command
//! that takes snapshots, `latest` as the newest snapshot matching them, filters beside
//! explicit ids refused, `snapshots --latest/--group-by/--compact`, and times in local time
//! (`--utc` for UTC; JSON always RFC 3339 in UTC).
//!
//! The repository is a small web agency's: three sites (blog, shop, wiki) with their files
//! and SQLite databases, backed up from two hosts, nine snapshots at fixed times.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// One snapshot of the fixture: what it is and what it holds.
struct Snap {
    id: String,
    /// The files of a file snapshot (path below the source → content); empty for a database.
    files: BTreeMap<String, Vec<u8>>,
}

/// The fixture: the repository, the sources, and the snapshots by name.
struct Agency {
    env: Env,
    srv: PathBuf,
    db: PathBuf,
    snaps: BTreeMap<&'static str, Snap>,
}

impl Agency {
    fn id(&self, name: &str) -> &str {
        &self.snaps[name].id
    }

    fn short(&self, name: &str) -> &str {
        &self.id(name)[..8]
    }

    fn site(&self, project: &str) -> PathBuf {
        self.srv.join(project)
    }

    fn site_arg(&self, project: &str) -> String {
        self.site(project).to_str().unwrap().to_owned()
    }

    fn sqlite(&self, project: &str) -> PathBuf {
        self.db.join(format!("{project}.sqlite"))
    }
}

/// Every file below `dir` with its content, by path relative to `dir`.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Writes version `v` of a site: its index names the site and version, its data differs.
fn write_site(dir: &Path, project: &str, v: u64) {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
    write_file(
        &dir.join("index.html"),
        format!("<h1>{project} v{v}</h1>").as_bytes(),
    );
    write_file(
        &dir.join("assets/data.bin"),
        &random_bytes(v * 100 + project.len() as u64, 20_000 + v as usize),
    );
    if v > 1 {
        write_file(&dir.join(format!("v{v}.txt")), b"new in this version");
    }
}

fn sqlite_exec(file: &Path, sql: &str) {
    require("sqlite3", "sqlite3");
    let out = std::process::Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the fixture. Times are UTC, in this order:
///
/// | name      | time (Jan 2025) | host | project | source   | tags    |
/// |-----------|-----------------|------|---------|----------|---------|
/// | blog1     | 1st 01:00       | web1 | blog    | files    | nightly |
/// | shop1     | 2nd             | web1 | shop    | files    | nightly |
/// | wiki1     | 3rd             | web2 | wiki    | files    |         |
/// | blogdb1   | 4th             | web1 | blog    | sqlite   |         |
/// | blog2     | 5th             | web1 | blog    | files    | nightly |
/// | shop2     | 6th             | web2 | shop    | files    | weekly  |
/// | shopdb1   | 7th             | web1 | shop    | sqlite   |         |
/// | wiki2     | 8th             | web2 | wiki    | files    | nightly |
/// | blogdb2   | 9th             | web1 | blog    | sqlite   | nightly |
fn agency() -> Agency {
    let env = Env::init();
    let srv = env.path("srv");
    let db = env.path("db");
    fs::create_dir_all(&db).unwrap();
    let mut a = Agency {
        env,
        srv,
        db,
        snaps: BTreeMap::new(),
    };
    // name, day, host, project, files version (None: the SQLite database), tags
    type Plan<'a> = (&'a str, u32, &'a str, &'a str, Option<u64>, &'a [&'a str]);
    let plan: [Plan; 9] = [
        ("blog1", 1, "web1", "blog", Some(1), &["nightly"]),
        ("shop1", 2, "web1", "shop", Some(1), &["nightly"]),
        ("wiki1", 3, "web2", "wiki", Some(1), &[]),
        ("blogdb1", 4, "web1", "blog", None, &[]),
        ("blog2", 5, "web1", "blog", Some(2), &["nightly"]),
        ("shop2", 6, "web2", "shop", Some(2), &["weekly"]),
        ("shopdb1", 7, "web1", "shop", None, &[]),
        ("wiki2", 8, "web2", "wiki", Some(2), &["nightly"]),
        ("blogdb2", 9, "web1", "blog", None, &["nightly"]),
    ];
    for (name, day, host, project, version, tags) in plan {
        let time = format!("2025-01-0{day}T01:00:00Z");
        let mut cmd = a.env.cmd().args(["backup", "--json", "--time", &time]);
        cmd = cmd.args(["--host", host, "--project", project]);
        for t in tags {
            cmd = cmd.args(["--tag", t]);
        }
        let files = match version {
            Some(v) => {
                let dir = a.site(project);
                write_site(&dir, project, v);
                cmd = cmd.arg(&dir);
                contents(&dir)
            }
            None => {
                let file = a.sqlite(project);
                sqlite_exec(
                    &file,
                    &format!(
                        "CREATE TABLE IF NOT EXISTS t (v TEXT); \
                         INSERT INTO t VALUES ('{name}-marker');"
                    ),
                );
                cmd = cmd.arg("--sqlite").arg(&file);
                BTreeMap::new()
            }
        };
        let out = cmd.run().success();
        let id = out.json()["snapshot_id"].as_str().unwrap().to_owned();
        a.snaps.insert(name, Snap { id, files });
    }
    a
}

/// The id `stats SNAPSHOT --json ARGS` resolved (one snapshot).
fn stats_ids(a: &Agency, args: &[&str]) -> Vec<String> {
    let out = a
        .env
        .cmd()
        .arg("stats")
        .args(args)
        .arg("--json")
        .run()
        .success()
        .json();
    out["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn latest_with_each_filter_selects_the_newest_match_for_every_command() {
    let a = agency();
    let env = &a.env;
    let blog = a.site_arg("blog");

    // `latest` alone is the newest of anything: the blog's database.
    assert_eq!(stats_ids(&a, &["latest"]), [a.id("blogdb2")]);
    // Each filter, and filters together, narrow it.
    for (filter, want) in [
        (vec!["--project", "shop"], "shopdb1"),
        (vec!["--project", "wiki"], "wiki2"),
        (vec!["--host", "web2"], "wiki2"),
        (vec!["--host", "web2", "--project", "shop"], "shop2"),
        (vec!["--tag", "weekly"], "shop2"),
        (vec!["--tag", "weekly", "--tag", "nightly"], "blogdb2"),
        (vec!["--path", &blog], "blog2"),
        (
            vec!["--project", "blog", "--tag", "nightly", "--path", &blog],
            "blog2",
        ),
    ] {
        let mut args = vec!["latest"];
        args.extend(&filter);
        assert_eq!(stats_ids(&a, &args), [a.id(want)], "{filter:?}");
    }
    // Without a snapshot: every match, oldest first.
    assert_eq!(
        stats_ids(&a, &["--project", "wiki"]),
        [a.id("wiki1"), a.id("wiki2")]
    );

    // restore: the blog's newest file snapshot, byte for byte (not its newer database).
    let target = env.path("restore-blog");
    env.cmd()
        .args([
            "restore",
            "latest",
            "--project",
            "blog",
            "--path",
            &blog,
            "--target",
        ])
        .arg(&target)
        .run()
        .success();
    assert_eq!(
        contents(&restored(&target, &a.site("blog"))),
        a.snaps["blog2"].files
    );
    assert!(
        !target.join("db").exists(),
        "a database snapshot was restored"
    );
    // ... and host web1's newest shop files are the first version (web2 made the second).
    let target = env.path("restore-shop");
    env.cmd()
        .args([
            "restore",
            "latest",
            "--host",
            "web1",
            "--tag",
            "nightly",
            "--project",
            "shop",
        ])
        .arg("--target")
        .arg(&target)
        .run()
        .success();
    assert_eq!(
        contents(&restored(&target, &a.site("shop"))),
        a.snaps["shop1"].files
    );

    // dump: the issue's case, a file of the blog while `latest` is the blog's database.
    let index = a.site("blog").join("index.html");
    let index = index.to_str().unwrap();
    env.strata(["dump", "latest", index]).failure();
    let out = env
        .strata([
            "dump",
            "latest",
            index,
            "--project",
            "blog",
            "--path",
            &blog,
        ])
        .success();
    assert_eq!(out.stdout, b"<h1>blog v2</h1>");
    let out = env
        .strata(["dump", "latest", "--project", "shop"])
        .success();
    let sql = out.stdout_str();
    assert!(sql.contains("shopdb1-marker"), "{sql}");
    let sql_blog = env.strata(["dump", "latest"]).success().stdout_str();
    assert!(sql_blog.contains("blogdb2-marker"), "{sql_blog}");

    // ls: the wiki's newest files, from host web2.
    let listed = env
        .strata(["ls", "latest", "--host", "web2", "--tag", "nightly"])
        .success()
        .lines();
    let wiki = a.site("wiki");
    assert!(
        listed.contains(&wiki.join("v2.txt").to_str().unwrap().to_owned()),
        "{listed:?}"
    );
    assert!(listed.iter().all(|l| !l.contains("/shop")), "{listed:?}");

    // diff: both sides are the newest match.
    let out = env
        .strata(["diff", "latest", "latest", "--tag", "weekly", "--json"])
        .success()
        .json();
    assert_eq!(out["first"], a.id("shop2"));
    assert_eq!(out["second"], a.id("shop2"));

    // find: only the matching snapshots are searched.
    let found = env
        .strata(["find", "index.html", "--project", "blog", "--json"])
        .success()
        .json();
    let snaps: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["snapshot"].as_str().unwrap())
        .collect();
    assert_eq!(snaps, [a.id("blog1"), a.id("blog2")]);
    let found = env
        .strata(["find", "*.txt", "-s", "latest", "--host", "web2", "--json"])
        .success()
        .json();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["snapshot"], a.id("wiki2"));

    // cat snapshot
    let cat = env
        .strata(["cat", "snapshot", "latest", "--tag", "weekly"])
        .success()
        .json();
    assert_eq!(cat["hostname"], "web2");
    assert_eq!(cat["project"], "shop");

    // verify --restore-test: the shop's database, not the blog's newer one.
    let out = env
        .strata(["verify", "--restore-test", "latest", "--project", "shop"])
        .success();
    assert!(
        out.stdout_str()
            .contains(&format!("snapshot {}", a.short("shopdb1"))),
        "{}",
        out.describe()
    );

    // copy: the copied snapshot is the wiki's newest, and only it.
    let other = env.path("offsite");
    env.cmd()
        .arg("-r")
        .arg(&other)
        .args(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"])
        .run()
        .success();
    let report = env
        .cmd()
        .args(["copy", "latest", "--project", "wiki", "--json", "--to-repo"])
        .arg(&other)
        .run()
        .success()
        .json();
    let copied = report["copied"].as_array().unwrap();
    assert_eq!(copied.len(), 1, "{report}");
    assert_eq!(copied[0][0], a.id("wiki2"));
    let there = env
        .cmd()
        .arg("-r")
        .arg(&other)
        .args(["snapshots", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(there.as_array().unwrap().len(), 1, "{there}");
    assert_eq!(there[0]["time"], "2025-01-08T01:00:00Z");
    assert_eq!(there[0]["host"], "web2");
    let target = env.path("restore-copy");
    env.cmd()
        .arg("-r")
        .arg(&other)
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .run()
        .success();
    assert_eq!(contents(&restored(&target, &wiki)), a.snaps["wiki2"].files);

    // hold: `latest` of the filter is held, and nothing else.
    let held = env
        .strata([
            "hold",
            "latest",
            "--project",
            "wiki",
            "--until",
            "2099-01-01",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(held[0]["id"], a.id("wiki2"));
    let list = env.snapshots();
    let holds: Vec<&Value> = list.iter().filter(|s| !s["keep_until"].is_null()).collect();
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0]["time"], "2025-01-08T01:00:00Z");
    assert_eq!(holds[0]["project"], "wiki");

    // A filter that matches nothing: exit 1, naming the filter and the snapshots there are.
    env.strata(["ls", "latest", "--project", "intranet"])
        .code(1)
        .one_line_error()
        .stderr_contains("no snapshot of project intranet")
        .stderr_contains("9 snapshots");
}

#[test]
fn filters_beside_explicit_ids_are_usage_errors_naming_both() {
    let a = agency();
    let env = &a.env;
    let id = a.short("shop1");
    let other = env.path("offsite");
    let target = env.path("target");
    let before = env.snapshots();
    let runs: Vec<Vec<String>> = vec![
        vec![
            "restore".into(),
            id.into(),
            "--target".into(),
            target.to_str().unwrap().into(),
        ],
        vec!["dump".into(), id.into(), "/x".into()],
        vec!["ls".into(), id.into()],
        vec!["diff".into(), id.into(), "latest".into()],
        vec!["find".into(), "*".into(), "-s".into(), id.into()],
        vec!["stats".into(), id.into()],
        vec![
            "copy".into(),
            id.into(),
            "--to-repo".into(),
            other.to_str().unwrap().into(),
        ],
        vec!["forget".into(), id.into()],
        vec!["hold".into(), id.into(), "--release".into()],
        vec!["verify".into(), "--restore-test".into(), id.into()],
        vec!["cat".into(), "snapshot".into(), id.into()],
        vec!["snapshots".into(), "latest".into(), id.into()],
        vec!["tag".into(), id.into(), "--add".into(), "x".into()],
        vec![
            "rewrite".into(),
            id.into(),
            "--exclude".into(),
            "*.php".into(),
        ],
    ];
    for run in runs {
        let out = env
            .cmd()
            .args(&run)
            .args(["--tag", "nightly"])
            .run()
            .code(2)
            .stderr_contains(id)
            .stderr_contains("tagged nightly");
        assert!(out.stdout.is_empty(), "{}", out.describe());
    }
    assert!(!target.exists());
    assert!(!other.exists());
    assert_eq!(env.snapshots(), before, "something changed");
    // The same ids without a filter, and `latest` with one, are fine.
    env.strata(["ls", id]).success();
    env.strata([
        "forget",
        "latest",
        "--tag",
        "weekly",
        "--prune",
        "--dry-run",
    ])
    .success();
}

#[test]
fn snapshots_latest_per_group_group_by_and_compact() {
    let a = agency();
    let env = &a.env;
    // One per project, the newest of each.
    let out = env
        .strata([
            "snapshots",
            "--latest",
            "1",
            "--group-by",
            "project",
            "--json",
        ])
        .success()
        .json();
    let groups: Vec<(Value, Vec<&str>)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group_key"].clone(),
                g["snapshots"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["id"].as_str().unwrap())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (
                serde_json::json!({"project": "blog"}),
                vec![a.id("blogdb2")]
            ),
            (
                serde_json::json!({"project": "shop"}),
                vec![a.id("shopdb1")]
            ),
            (serde_json::json!({"project": "wiki"}), vec![a.id("wiki2")]),
        ]
    );
    // The same as a table: a heading per group, one row each, with the project column.
    let text = env
        .strata(["snapshots", "--latest", "1", "--group-by", "project"])
        .success()
        .stdout_str();
    for (project, name) in [("blog", "blogdb2"), ("shop", "shopdb1"), ("wiki", "wiki2")] {
        let heading = format!("group project={project}:");
        let at = text
            .find(&heading)
            .unwrap_or_else(|| panic!("{heading}\n{text}"));
        let row = text[at..].lines().nth(2).unwrap();
        assert!(row.starts_with(a.short(name)), "{row}\n{text}");
        assert!(
            row.contains(&format!(" {project} ")),
            "project column: {row}"
        );
    }
    assert!(text.trim_end().ends_with("3 snapshots"), "{text}");

    // Two per host and project, oldest first in each group.
    let out = env
        .strata([
            "snapshots",
            "--latest",
            "2",
            "--group-by",
            "host,project",
            "--json",
        ])
        .success()
        .json();
    let count: Vec<(String, usize)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group_key"].to_string(),
                g["snapshots"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(count.len(), 4, "{count:?}"); // web1 blog, web1 shop, web2 shop, web2 wiki
    let web1_blog = &out[0]["snapshots"];
    assert_eq!(web1_blog[0]["id"], a.id("blog2"));
    assert_eq!(web1_blog[1]["id"], a.id("blogdb2"));

    // --latest without --group-by: the newest of each host, paths and project, as a list.
    let flat = env
        .strata(["snapshots", "--latest", "1", "--json"])
        .success()
        .json();
    let ids: Vec<&str> = flat
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    // Groups: web1 blog files, web1 blog db, web1 shop files, web2 shop files, web1 shop
    // db, web2 wiki files; listed oldest first.
    let want = ["shop1", "blog2", "shop2", "shopdb1", "wiki2", "blogdb2"].map(|n| a.id(n));
    assert_eq!(ids, want);

    // The hold marker, in the table and in the compact form (with its legend).
    env.strata(["hold", a.id("shop2"), "--until", "2099-03-04"])
        .success();
    let shop2_now = env
        .strata(["snapshots", "--tag", "weekly", "--json"])
        .success()
        .json()[0]["short_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let table = env.strata(["snapshots"]).success().stdout_str();
    assert!(
        table.lines().next().unwrap().contains("held until"),
        "{table}"
    );
    let held_rows: Vec<&str> = table.lines().filter(|l| l.contains("2099-03-04")).collect();
    assert_eq!(held_rows.len(), 1, "{table}");
    assert!(held_rows[0].starts_with(&shop2_now), "{table}");
    let compact = env.strata(["snapshots", "--compact"]).success().lines();
    assert_eq!(
        compact.len(),
        9 + 2,
        "9 lines, the legend and the count: {compact:?}"
    );
    let starred: Vec<&String> = compact.iter().filter(|l| l.contains('*')).collect();
    assert_eq!(starred.len(), 2, "{compact:?}"); // the held one and the legend
    assert!(
        starred[0].starts_with(&format!("{shop2_now}*")),
        "{compact:?}"
    );
    assert!(
        compact.iter().any(|l| l.contains("web2 wiki [nightly]")),
        "{compact:?}"
    );
    assert!(compact.iter().all(|l| l.len() < 80), "{compact:?}");
}

#[test]
fn path_filters_need_every_path_and_only_backed_up_paths() {
    let env = Env::init();
    let (x, y) = (env.path("src/x"), env.path("src/y"));
    write_file(&x.join("f"), b"x");
    write_file(&y.join("f"), b"y");
    let both = env.backup_json(&[&x, &y], &["--time", "2025-01-01T00:00:00Z"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let only_x = env.backup_json(&[&x], &["--time", "2025-01-02T00:00:00Z"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids = |args: &[&str]| -> Vec<String> {
        env.cmd()
            .args(["snapshots", "--json"])
            .args(args)
            .run()
            .success()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (xs, ys) = (x.to_str().unwrap(), y.to_str().unwrap());
    assert_eq!(ids(&["--path", xs]), [both.clone(), only_x.clone()]);
    assert_eq!(ids(&["--path", ys]), std::slice::from_ref(&both));
    assert_eq!(
        ids(&["--path", xs, "--path", ys]),
        std::slice::from_ref(&both)
    );
    assert_eq!(
        ids(&["--path", &format!("{xs}/")]).len(),
        2,
        "a trailing slash"
    );
    assert!(ids(&["--path", env.path("src").to_str().unwrap()]).is_empty());
    assert!(ids(&["--path", x.join("f").to_str().unwrap()]).is_empty());
    // A relative path is taken from the current directory, as backup takes it.
    let rel = env
        .cmd()
        .current_dir(env.path("src"))
        .args(["snapshots", "--json", "--path", "y"])
        .run()
        .success()
        .json();
    assert_eq!(rel.as_array().unwrap().len(), 1);
    assert_eq!(rel[0]["id"], both.as_str());

    // forget --path: the policy applies among the matching snapshots only.
    let plan = env
        .strata([
            "forget",
            "--keep-last",
            "1",
            "--group-by",
            "",
            "--path",
            ys,
            "--dry-run",
            "--json",
        ])
        .success()
        .json();
    assert_eq!(plan["removed"], serde_json::json!([]), "{plan}");
    let plan = env
        .strata([
            "forget",
            "--keep-last",
            "1",
            "--group-by",
            "",
            "--path",
            xs,
            "--json",
        ])
        .success()
        .json();
    assert_eq!(plan["removed"], serde_json::json!([both]), "{plan}");
    assert_eq!(ids(&[]), [only_x]);
}

#[test]
fn times_are_local_unless_utc_and_json_is_rfc3339_utc() {
    let env = Env::init();
    let src = env.path("src");
    write_file(&src.join("f"), b"f");
    // Summer time in Berlin: UTC+2.
    let id = env.backup_json(&[&src], &["--time", "2025-07-01T01:30:00Z"])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let berlin = |args: &[&str]| {
        env.cmd()
            .env("TZ", "Europe/Berlin")
            .args(args)
            .run()
            .success()
            .stdout_str()
    };
    let local = berlin(&["snapshots"]);
    assert!(local.contains("2025-07-01 03:30:00"), "{local}");
    let utc = berlin(&["snapshots", "--utc"]);
    assert!(utc.contains("2025-07-01 01:30:00"), "{utc}");
    assert!(!utc.contains("03:30"), "{utc}");
    let compact = berlin(&["snapshots", "--compact"]);
    assert!(compact.contains("2025-07-01 03:30 "), "{compact}");
    // forget's plan and stats, too.
    let plan = berlin(&["forget", "--keep-last", "1", "--dry-run"]);
    assert!(plan.contains("2025-07-01 03:30:00"), "{plan}");
    let plan = berlin(&["--utc", "forget", "--keep-last", "1", "--dry-run"]);
    assert!(plan.contains("2025-07-01 01:30:00"), "{plan}");
    let stats = berlin(&["stats", &id]);
    assert!(stats.contains("2025-07-01 03:30:00"), "{stats}");
    // A hold's end in local time; in JSON, UTC.
    let held = berlin(&["hold", &id, "--until", "2030-01-01T12:00:00Z"]);
    assert!(held.contains("2030-01-01 13:00:00"), "{held}");
    // JSON: RFC 3339 in UTC whatever TZ or --utc says.
    for args in [
        &["snapshots", "--json"][..],
        &["snapshots", "--json", "--utc"][..],
    ] {
        let list: Value = serde_json::from_str(&berlin(args)).unwrap();
        assert_eq!(list[0]["time"], "2025-07-01T01:30:00Z");
        assert_eq!(list[0]["keep_until"], "2030-01-01T12:00:00Z");
    }
}
