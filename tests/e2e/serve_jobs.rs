//! `strata serve` jobs (issue #17): a backup run now, restores, restore tests, forget and
//! hold, through the real server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::serve::{json_of, Served};
use crate::util::write_file;

/// The events of `GET /jobs/{id}/events` as `role`, read until the stream ends:
/// `(event, data)`.
fn events(s: &Served, id: &str, role: &str) -> Vec<(String, Value)> {
    let resp = s.get(&format!("/jobs/{id}/events"), Some(role));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut out = Vec::new();
    let mut event = String::new();
    for line in BufReader::new(resp).lines() {
        let line = line.unwrap();
        if let Some(e) = line.strip_prefix("event: ") {
            event = e.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            let data = serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}"));
            out.push((std::mem::take(&mut event), data));
        }
    }
    out
}

/// The job a POST started (202), followed to its end: `(job id, events)`.
fn follow(
    s: &Served,
    resp: reqwest::blocking::Response,
    role: &str,
) -> (String, Vec<(String, Value)>) {
    let body = json_of(resp, 202);
    let id = body["job"]["id"].as_str().unwrap().to_string();
    let evs = events(s, &id, role);
    (id, evs)
}

/// The catalog's records of `kind`, as `strata log --json` shows them.
pub(crate) fn log_of(s: &Served, kind: &str) -> Vec<Value> {
    let out = s.strata(["log", "--kind", kind, "--json"]).success();
    match out.json() {
        Value::Array(a) => a,
        other => panic!("log --json is not an array: {other}"),
    }
}

/// An operator runs the project now: a job whose events start with its state, name the
/// runner's steps and end with the result; a new snapshot exists, the run is recorded and
/// the request audited. A viewer may not; another operator's job is an admin's to see.
#[test]
fn run_now_is_a_job_that_ends_with_its_result() {
    let s = Served::start("");
    let before = s.env.snapshots().len();
    let denied = json_of(
        s.post("/projects/site/run", Some("viewer"), &json!({})),
        403,
    );
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let missing = json_of(
        s.post("/projects/nope/run", Some("operator"), &json!({})),
        404,
    );
    assert_eq!(missing["error"]["code"], "not_found", "{missing}");

    let (id, evs) = follow(
        &s,
        s.post("/projects/site/run", Some("operator"), &json!({})),
        "operator",
    );
    let names: Vec<&str> = evs.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{names:?}");
    assert_eq!(names.last(), Some(&"result"), "{evs:?}");
    assert!(
        evs.iter()
            .any(|(e, d)| e == "phase" && d["phase"].as_str().unwrap().contains("backing up")),
        "{evs:?}"
    );
    let result = &evs.last().unwrap().1;
    assert_eq!(result["project"]["status"], "ok", "{result}");
    let made = result["project"]["snapshots"][0]["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let after = s.env.snapshots();
    assert_eq!(after.len(), before + 1);
    assert!(after.iter().any(|v| v["id"] == made.as_str()), "{after:?}");

    // The job as it ended; a late subscriber gets its state and its end at once.
    let job = json_of(s.get(&format!("/jobs/{id}"), Some("operator")), 200);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "run");
    assert_eq!(job["user"], "operator");
    assert!(job["finished"].is_string(), "{job}");
    let late = events(&s, &id, "operator");
    assert_eq!(late.len(), 2, "{late:?}");
    assert_eq!(late[0].0, "state");
    assert_eq!(late[0].1["state"], "succeeded");
    assert_eq!(late[1], ("result".to_string(), result.clone()));

    // Only its owner and admins see it.
    let hidden = json_of(s.get(&format!("/jobs/{id}"), Some("viewer")), 404);
    assert_eq!(hidden["error"]["code"], "not_found", "{hidden}");
    json_of(s.get(&format!("/jobs/{id}"), Some("admin")), 200);
    json_of(s.get("/jobs/0123456789abcdef01234567", Some("admin")), 404);

    let runs = log_of(&s, "run");
    assert!(
        runs.iter()
            .any(|r| r["project"] == "site" && r["body"]["trigger"] == "api"),
        "{runs:?}"
    );
    let access = log_of(&s, "access");
    assert!(
        access
            .iter()
            .any(|r| r["body"]["action"] == "run" && r["user"] == "operator" && r["ok"] == true),
        "{access:?}"
    );
}

/// A project whose run lock another run holds: 409 `locked` at once, audited, and no
/// job.
#[test]
fn run_now_of_a_locked_project_is_409() {
    let s = Served::start("");
    let dir = s.env.root.join("state/locks");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("site.lock"))
        .unwrap();
    let _held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let body = json_of(
        s.post("/projects/site/run", Some("operator"), &json!({})),
        409,
    );
    assert_eq!(body["error"]["code"], "locked", "{body}");
    let access = log_of(&s, "access");
    assert!(
        access
            .iter()
            .any(|r| r["body"]["action"] == "run" && r["ok"] == false),
        "{access:?}"
    );
}

/// A world whose restores may go under the returned root (a directory of its own).
fn with_roots() -> (Served, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let roots = std::fs::canonicalize(dir.path()).unwrap().join("restores");
    std::fs::create_dir_all(&roots).unwrap();
    let s = Served::start(&format!(
        "[server]\nrestore-roots = [\"{}\"]\n",
        roots.display()
    ));
    (s, roots, dir)
}

/// The first snapshot's id (the one `Served::start` made of `site/`).
fn first_snapshot(s: &Served) -> String {
    s.env.snapshots()[0]["id"].as_str().unwrap().to_string()
}

/// To another directory under a restore root: a job whose result names what it wrote,
/// and the files are byte-identical to the source; recorded as the CLI's restores are
/// and audited.
#[test]
fn restore_to_another_directory_gives_identical_files() {
    let (s, roots, _dir) = with_roots();
    let id = first_snapshot(&s);
    let site = s.env.path("site");
    let target = roots.join("new");
    let (_, evs) = follow(
        &s,
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "target": target, "overwrite": "never"}),
        ),
        "operator",
    );
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert_eq!(result["files"], 2, "{result}");
    assert_eq!(result["safety_snapshot"], Value::Null, "{result}");
    let restored = target.join(site.strip_prefix("/").unwrap());
    for f in ["index.html", "assets/app.js"] {
        assert_eq!(
            std::fs::read(restored.join(f)).unwrap(),
            std::fs::read(site.join(f)).unwrap(),
            "{f}"
        );
    }
    let restores = log_of(&s, "restore");
    assert!(
        restores
            .iter()
            .any(|r| r["body"]["snapshot_id"] == id.as_str()
                && r["user"] == "operator"
                && r["ok"] == true),
        "{restores:?}"
    );
    let access = log_of(&s, "access");
    assert!(
        access
            .iter()
            .any(|r| r["body"]["action"] == "restore" && r["user"] == "operator"),
        "{access:?}"
    );
}

/// In place: an operator is refused (403); an admin's restore first saves what it
/// overwrites in a `pre-restore` snapshot, named in the result and listed, and puts the
/// files back as they were.
#[test]
fn restore_in_place_is_an_admins_and_saves_what_it_overwrites() {
    let (s, roots, _dir) = with_roots();
    let id = first_snapshot(&s);
    let site = s.env.path("site");
    std::fs::write(site.join("index.html"), b"defaced\n").unwrap();
    let req = json!({"snapshot": id, "target": "original", "overwrite": "always",
                     "paths": [site]});
    let denied = json_of(s.post("/restores", Some("operator"), &req), 403);
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    assert_eq!(
        std::fs::read(site.join("index.html")).unwrap(),
        b"defaced\n"
    );

    let (_, evs) = follow(&s, s.post("/restores", Some("admin"), &req), "admin");
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert_eq!(result["overwritten"], 1, "{result}");
    let safety = result["safety_snapshot"]
        .as_str()
        .expect("a safety snapshot");
    assert_eq!(
        std::fs::read(site.join("index.html")).unwrap(),
        b"<h1>hello</h1>\n"
    );
    let snaps = s.env.snapshots();
    let saved = snaps
        .iter()
        .find(|v| v["id"] == safety)
        .unwrap_or_else(|| panic!("{safety} not in {snaps:?}"));
    assert!(
        saved["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "pre-restore"),
        "{saved}"
    );
    // The safety snapshot holds what was there: the defaced page.
    let back = roots.join("back");
    s.strata(["restore", safety, "--target", back.to_str().unwrap()])
        .success();
    let kept = back
        .join(site.strip_prefix("/").unwrap())
        .join("index.html");
    assert_eq!(std::fs::read(kept).unwrap(), b"defaced\n");
    let restores = log_of(&s, "restore");
    assert!(
        restores
            .iter()
            .any(|r| r["body"]["safety_snapshot"] == safety && r["user"] == "admin"),
        "{restores:?}"
    );
}

/// Targets outside the restore roots, with `..`, or relative are 422 `invalid`; so is a
/// body that is not a restore.
#[test]
fn restore_targets_outside_the_roots_are_refused() {
    let (s, roots, _dir) = with_roots();
    let id = first_snapshot(&s);
    std::fs::create_dir_all(s.env.root.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(s.env.root.join("elsewhere"), roots.join("link")).unwrap();
    for target in [
        s.env.root.join("elsewhere").display().to_string(),
        format!("{}/../elsewhere", roots.display()),
        format!("{}/link/x", roots.display()),
        "restores/new".to_string(),
    ] {
        let body = json_of(
            s.post(
                "/restores",
                Some("operator"),
                &json!({"snapshot": id, "target": target}),
            ),
            422,
        );
        assert_eq!(body["error"]["code"], "invalid", "{target}: {body}");
    }
    let body = json_of(
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "paths": ["/etc/.."], "target": roots.join("x")}),
        ),
        422,
    );
    assert_eq!(body["error"]["code"], "invalid", "{body}");
    let body = json_of(
        s.post("/restores", Some("operator"), &json!({"snap": id})),
        422,
    );
    assert_eq!(body["error"]["code"], "invalid", "{body}");
    assert!(!s.env.root.join("elsewhere/tmp").exists());
}

/// A dry run answers at once with what would be created, overwritten and left alone,
/// and changes nothing.
#[test]
fn restore_dry_run_previews_the_plan() {
    let (s, roots, _dir) = with_roots();
    let id = first_snapshot(&s);
    let site = s.env.path("site");
    let target = roots.join("preview");
    let inside = target.join(site.strip_prefix("/").unwrap());
    write_file(&inside.join("index.html"), b"other\n");
    write_file(&inside.join("assets/app.js"), b"console.log('hi');\n");
    let plan = json_of(
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "target": target, "overwrite": "if-changed", "dry_run": true}),
        ),
        200,
    );
    assert_eq!(plan["dry_run"], true, "{plan}");
    let action_of = |name: &str| {
        plan["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(name))
            .map(|e| e["action"].as_str().unwrap().to_string())
    };
    assert_eq!(
        action_of("index.html").as_deref(),
        Some("overwrite"),
        "{plan}"
    );
    assert_eq!(action_of("app.js").as_deref(), Some("unchanged"), "{plan}");
    assert_eq!(plan["totals"]["overwrite"], 1, "{plan}");
    assert_eq!(plan["totals"]["unchanged"], 1, "{plan}");
    let fresh = json_of(
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "target": roots.join("fresh"), "dry_run": true}),
        ),
        200,
    );
    let created: Vec<&Value> = fresh["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "file" && e["action"] == "create")
        .collect();
    assert_eq!(created.len(), 2, "{fresh}");
    assert!(!roots.join("fresh").exists());
    assert_eq!(
        std::fs::read(inside.join("index.html")).unwrap(),
        b"other\n"
    );
}

/// A SQLite database `app.db` with two rows, backed up; its snapshot's id.
fn sqlite_snapshot(s: &Served) -> String {
    let db = s.env.path("app.db");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE t (a); INSERT INTO t VALUES (1), (2);")
        .status()
        .unwrap();
    assert!(made.success());
    let out = s
        .strata(["backup", "--json", "--sqlite", db.to_str().unwrap()])
        .success();
    out.json()["snapshot_id"].as_str().unwrap().to_string()
}

/// A restore test of a SQLite snapshot is a job that passes, recorded as the runner's
/// restore tests are and audited; one of a files snapshot fails saying why.
#[test]
fn restore_test_of_a_sqlite_snapshot_passes() {
    let s = Served::start("");
    let id = sqlite_snapshot(&s);
    let denied = json_of(
        s.post("/restore-tests", Some("viewer"), &json!({"snapshot": id})),
        403,
    );
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let (_, evs) = follow(
        &s,
        s.post("/restore-tests", Some("operator"), &json!({"snapshot": id})),
        "operator",
    );
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert_eq!(result["passed"], true, "{result}");
    let tests = log_of(&s, "restore-test");
    assert!(
        tests
            .iter()
            .any(|r| r["body"]["snapshot_id"] == id.as_str() && r["ok"] == true),
        "{tests:?}"
    );
    let access = log_of(&s, "access");
    assert!(
        access
            .iter()
            .any(|r| r["body"]["action"] == "restore-test" && r["user"] == "operator"),
        "{access:?}"
    );
    let files = first_snapshot(&s);
    let (_, evs) = follow(
        &s,
        s.post(
            "/restore-tests",
            Some("operator"),
            &json!({"snapshot": files}),
        ),
        "operator",
    );
    let (last, error) = evs.last().unwrap();
    assert_eq!(last, "error", "{evs:?}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not a database dump"),
        "{error}"
    );
}

/// A database restore into a new SQLite file under a restore root (an operator's) holds
/// the rows; replacing it (`force`) is an admin's and saves it first.
#[test]
fn restore_of_a_database_into_a_new_one_and_with_force() {
    let (s, roots, _dir) = with_roots();
    let id = sqlite_snapshot(&s);
    let target = roots.join("copy.db");
    let req = json!({"snapshot": id, "database": {"url": target}});
    let (_, evs) = follow(&s, s.post("/restores", Some("operator"), &req), "operator");
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert_eq!(result["safety_snapshot"], Value::Null, "{result}");
    let rows = std::process::Command::new("sqlite3")
        .arg(&target)
        .arg("SELECT count(*) FROM t")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "2");
    let forced = json!({"snapshot": id, "database": {"url": target}, "force": true});
    let denied = json_of(s.post("/restores", Some("operator"), &forced), 403);
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let (_, evs) = follow(&s, s.post("/restores", Some("admin"), &forced), "admin");
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert!(result["safety_snapshot"].is_string(), "{result}");
    let outside = json!({"snapshot": id, "database": {"url": s.env.path("x.db")}});
    let body = json_of(s.post("/restores", Some("operator"), &outside), 422);
    assert_eq!(body["error"]["code"], "invalid", "{body}");
}

/// Forget and hold are an admin's; a held snapshot is not forgotten (409 `conflict`
/// naming the hold) until released; each is audited.
#[test]
fn forget_refuses_a_held_snapshot_and_hold_is_an_admins() {
    let s = Served::start("");
    let id = first_snapshot(&s);
    let denied = json_of(
        s.post(
            &format!("/snapshots/{id}/hold"),
            Some("operator"),
            &json!({"for": "7y"}),
        ),
        403,
    );
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let held = json_of(
        s.post(
            &format!("/snapshots/{id}/hold"),
            Some("admin"),
            &json!({"for": "7y"}),
        ),
        200,
    );
    assert_eq!(held["changed"], true, "{held}");
    assert!(held["keep_until"].is_string(), "{held}");
    let new_id = held["new_id"].as_str().unwrap().to_string();
    let bad = json_of(
        s.post(
            &format!("/snapshots/{new_id}/hold"),
            Some("admin"),
            &json!({"for": "soon"}),
        ),
        422,
    );
    assert_eq!(bad["error"]["code"], "invalid", "{bad}");

    let del = |role: &str, id: &str| {
        s.http
            .delete(format!("{}/api/v1/snapshots/{id}?repository=main", s.base))
            .bearer_auth(&s.tokens[role])
            .send()
            .unwrap()
    };
    let denied = json_of(del("operator", &new_id), 403);
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let refused = json_of(del("admin", &new_id), 409);
    assert_eq!(refused["error"]["code"], "conflict", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("held"),
        "{refused}"
    );
    assert!(s.env.snapshots().iter().any(|v| v["id"] == new_id.as_str()));

    let released = json_of(
        s.post(
            &format!("/snapshots/{new_id}/hold"),
            Some("admin"),
            &json!({"release": true}),
        ),
        200,
    );
    let free_id = released["new_id"].as_str().unwrap().to_string();
    let gone = json_of(del("admin", &free_id), 200);
    assert_eq!(gone["forgotten"], free_id.as_str(), "{gone}");
    assert!(s.env.snapshots().is_empty());
    json_of(del("admin", &free_id), 404);

    let access = log_of(&s, "access");
    for (action, ok) in [("hold", true), ("forget", false), ("forget", true)] {
        assert!(
            access
                .iter()
                .any(|r| r["body"]["action"] == action && r["ok"] == ok && r["user"] == "admin"),
            "{action} {ok}: {access:?}"
        );
    }
}

/// A restore test of a PostgreSQL snapshot (on a server of its own, so that no other
/// test sees its scratch database), into the scratch server the request names, passes.
#[test]
fn restore_test_of_a_postgres_snapshot_passes() {
    use crate::db::Server;
    let pg = crate::db::Postgres::private();
    let s = Served::start("");
    pg.create_db("shop");
    pg.sql("shop", "CREATE TABLE t (a int)");
    pg.sql("shop", "INSERT INTO t VALUES (1), (2), (3)");
    let out = crate::db::strata(&s.env)
        .args(["backup", "--json", "--postgres", &pg.url("shop")])
        .run()
        .success();
    let id = out.json()["snapshot_id"].as_str().unwrap().to_string();
    // A scratch server named by URL is an admin's to give (it is reached with this host's
    // credentials); an operator is refused.
    let req = json!({"snapshot": id, "scratch": pg.url("postgres")});
    let denied = json_of(s.post("/restore-tests", Some("operator"), &req), 403);
    assert_eq!(denied["error"]["code"], "forbidden", "{denied}");
    let (_, evs) = follow(&s, s.post("/restore-tests", Some("admin"), &req), "admin");
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert_eq!(result["passed"], true, "{result}");
    assert_eq!(result["tables"][0]["restored_rows"], 3, "{result}");
    assert_eq!(
        pg.databases()
            .into_iter()
            .filter(|d| d.starts_with("strata_verify"))
            .count(),
        0
    );
    let message = serde_json::to_string(&evs).unwrap();
    assert!(!message.contains(crate::db::DB_PASSWORD), "{message}");
}

/// A PostgreSQL snapshot of a project's database restored under a new name on the same
/// server (an operator's), holding the rows; the original name without `force` fails and
/// changes nothing; with `force` (an admin's) it is saved first.
#[test]
fn restore_of_a_database_under_a_new_name() {
    use crate::db::Server;
    let pg = crate::db::Postgres::private();
    pg.create_db("shop");
    pg.sql("shop", "CREATE TABLE t (a int)");
    pg.sql("shop", "INSERT INTO t VALUES (1), (2), (3)");
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, crate::db::DB_PASSWORD).unwrap();
    let mut mode = std::fs::metadata(&pw).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o600);
    std::fs::set_permissions(&pw, mode).unwrap();
    let (url, _) = pg.url_without_password("shop");
    let s = Served::start(&format!(
        "[projects.shop]\ndatabases = [{{ postgres = \"{url}\", password-file = \"{}\" }}]\n\
         repositories = [\"main\"]\n",
        pw.display()
    ));
    let run = s.strata(["run", "shop", "--json"]).success().json();
    let id = run["projects"][0]["snapshots"][0]["snapshot_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{run}"))
        .to_string();
    let (_, evs) = follow(
        &s,
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "database": {"name": "shop_copy"}}),
        ),
        "operator",
    );
    assert_eq!(evs.last().unwrap().0, "result", "{evs:?}");
    assert_eq!(pg.sql("shop_copy", "SELECT count(*) FROM t"), "3");

    pg.sql("shop", "INSERT INTO t VALUES (4)");
    let (_, evs) = follow(
        &s,
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "database": {"name": "shop"}}),
        ),
        "operator",
    );
    assert_eq!(evs.last().unwrap().0, "error", "{evs:?}");
    assert_eq!(pg.sql("shop", "SELECT count(*) FROM t"), "4");
    let (_, evs) = follow(
        &s,
        s.post(
            "/restores",
            Some("admin"),
            &json!({"snapshot": id, "database": {"name": "shop"}, "force": true}),
        ),
        "admin",
    );
    let (last, result) = evs.last().unwrap();
    assert_eq!(last, "result", "{evs:?}");
    assert!(result["safety_snapshot"].is_string(), "{result}");
    assert_eq!(pg.sql("shop", "SELECT count(*) FROM t"), "3");
    let bad = json_of(
        s.post(
            "/restores",
            Some("operator"),
            &json!({"snapshot": id, "database": {"name": "x", "url": "postgres://a@b/c"}}),
        ),
        422,
    );
    assert_eq!(bad["error"]["code"], "invalid", "{bad}");
}
