//! The dashboard's restore wizard (issue #17) in a real headless Chromium and over plain
//! HTTP: to another directory (an operator's) and in place (an admin's, after a safety
//! snapshot), a target outside the restore roots refused on the page, the audit record,
//! what each role may do, and a database snapshot restored into a new database.

use std::path::PathBuf;

use serde_json::Value;

use crate::browser::Browser;
use crate::serve::{users_toml, Served};

/// A server whose config has `[server] restore-roots` (one directory, `restores`), users
/// alice (admin), olga (operator), vera (viewer), and `site` backed up by `strata run`.
fn restore_world() -> (Served, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let roots = std::fs::canonicalize(dir.path()).unwrap().join("restores");
    std::fs::create_dir_all(&roots).unwrap();
    let users = users_toml(&[
        ("alice", "admin", "alice password"),
        ("olga", "operator", "olga password"),
        ("vera", "viewer", "vera password"),
    ]);
    let s = Served::start(&format!(
        "[server]\nrestore-roots = [\"{}\"]\n{users}",
        roots.display()
    ));
    s.strata(["run", "site"]).success();
    (s, roots, dir)
}

/// The id of the newest snapshot of `site` (the run's).
fn site_snapshot(s: &Served) -> String {
    let snaps = s.strata(["snapshots", "--json"]).success().json();
    snaps
        .as_array()
        .unwrap()
        .iter()
        .rfind(|v| v["project"] == "site")
        .unwrap_or_else(|| panic!("no snapshot of site: {snaps}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Percent-encodes `s` for a query string.
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The wizard's first step for `path` of snapshot `id`.
fn wizard(s: &Served, id: &str, path: &std::path::Path) -> String {
    format!(
        "{}/restore?snapshot={id}&repository=main&path={}",
        s.base,
        q(path.to_str().unwrap())
    )
}

/// The catalog's records of `kind`, as `strata log --json` shows them.
fn log_of(s: &Served, kind: &str) -> Vec<Value> {
    match s.strata(["log", "--kind", kind, "--json"]).success().json() {
        Value::Array(a) => a,
        other => panic!("log --json is not an array: {other}"),
    }
}

/// The job page's result (its JSON, shown on the page once the job succeeded).
fn job_result(b: &Browser) -> Value {
    let state = b.wait_text("#job-state", "done", |t| {
        matches!(t.to_lowercase().as_str(), "succeeded" | "failed")
    });
    assert_eq!(state.to_lowercase(), "succeeded", "{}", b.source());
    let text = b.text("#job-result");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// (a) An operator restores `site` into a new directory under the restore root: the
/// original place is not offered, the preview lists the files to be created and nothing
/// overwritten, and once the job succeeded the files are byte-identical to the source.
#[test]
fn wizard_restores_to_another_directory_byte_identical() {
    let (s, roots, _dir) = restore_world();
    let id = site_snapshot(&s);
    let site = s.env.path("site");
    let target = roots.join("olga");
    let mut b = Browser::start("restore-directory");
    b.login(&s, "olga", "olga password");
    b.goto(&wizard(&s, &id, &site));
    b.find("#restore-form");
    assert!(!b.exists("#place-original"), "{}", b.source());
    assert!(
        b.text("#restore-roots").contains(roots.to_str().unwrap()),
        "the allowed roots are shown: {}",
        b.source()
    );
    assert_eq!(b.text("#restore-what"), site.to_str().unwrap());
    b.screenshot("choose");
    b.fill("#directory", target.to_str().unwrap());
    b.click("#overwrite-never");
    b.click("#preview");
    b.find("#plan-totals");
    b.screenshot("preview");
    b.window(390, 844);
    b.screenshot("preview-phone");
    b.window(1280, 900);
    let created = b.texts("#plan-create td.path");
    let inside = target.join(site.strip_prefix("/").unwrap());
    for f in ["index.html", "assets/app.js"] {
        let want = inside.join(f).display().to_string();
        assert!(created.contains(&want), "{want} not in {created:?}");
    }
    assert_eq!(b.text("#count-overwrite"), "0");
    assert!(
        b.text("#safety-notice").contains("no safety snapshot"),
        "{}",
        b.source()
    );
    assert!(!target.exists(), "a preview changes nothing");
    b.click("#start");
    b.find("#job-state");
    assert!(b.url().contains("/jobs/"), "{}", b.url());
    b.screenshot("running");
    let result = job_result(&b);
    b.screenshot("done");
    assert_eq!(result["files"], 2, "{result}");
    assert_eq!(result["safety_snapshot"], Value::Null, "{result}");
    for f in ["index.html", "assets/app.js"] {
        assert_eq!(
            std::fs::read(inside.join(f)).unwrap(),
            std::fs::read(site.join(f)).unwrap(),
            "{f}"
        );
    }
}

/// (b) and (d) An admin restores `site` in place with "always" after index.html changed:
/// the preview says index.html will be overwritten and that a safety snapshot comes
/// first; the job page names it; it is listed (tagged pre-restore) and holds the changed
/// page; index.html is the snapshot's again; the audit record names the safety snapshot.
#[test]
fn wizard_restores_in_place_after_a_safety_snapshot() {
    let (s, roots, _dir) = restore_world();
    let id = site_snapshot(&s);
    let site = s.env.path("site");
    let original = std::fs::read(site.join("index.html")).unwrap();
    std::fs::write(site.join("index.html"), b"changed by hand\n").unwrap();
    let mut b = Browser::start("restore-in-place");
    b.login(&s, "alice", "alice password");
    b.goto(&wizard(&s, &id, &site));
    b.click("#place-original");
    b.click("#overwrite-always");
    b.screenshot("choose");
    b.click("#preview");
    b.find("#plan-totals");
    b.screenshot("preview");
    b.window(390, 844);
    b.screenshot("preview-phone");
    b.window(1280, 900);
    assert_eq!(b.text("#count-overwrite"), "1", "{}", b.source());
    let overwritten = b.texts("#plan-overwrite td.path");
    assert_eq!(
        overwritten,
        vec![site.join("index.html").display().to_string()],
        "{}",
        b.source()
    );
    let notice = b.text("#safety-notice");
    assert!(
        notice.contains("safety snapshot") && notice.contains("1 entry"),
        "{notice}"
    );
    assert_eq!(
        std::fs::read(site.join("index.html")).unwrap(),
        b"changed by hand\n",
        "a preview changes nothing"
    );
    b.click("#start");
    b.find("#job-state");
    let result = job_result(&b);
    b.screenshot("done");
    let safety = result["safety_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("no safety snapshot: {result}"))
        .to_string();
    assert!(
        b.exists(&format!("a[href=\"/snapshots/{safety}?repository=main\"]")),
        "the job page links the safety snapshot: {}",
        b.source()
    );
    assert_eq!(std::fs::read(site.join("index.html")).unwrap(), original);

    let snaps = s.strata(["snapshots", "--json"]).success().json();
    let saved = snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == safety.as_str())
        .unwrap_or_else(|| panic!("{safety} not in {snaps}"));
    assert!(
        saved["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "pre-restore"),
        "{saved}"
    );
    let back = roots.join("back");
    s.strata(["restore", &safety, "--target", back.to_str().unwrap()])
        .success();
    let kept = back
        .join(site.strip_prefix("/").unwrap())
        .join("index.html");
    assert_eq!(std::fs::read(kept).unwrap(), b"changed by hand\n");

    // (d) The audit log names who restored and the safety snapshot.
    let access = log_of(&s, "access");
    assert!(
        access.iter().any(|r| r["user"] == "alice"
            && r["ok"] == true
            && r["body"]["action"] == "restore"
            && r["body"]["target"]
                .as_str()
                .is_some_and(|t| t.contains(&safety))),
        "{access:?}"
    );
}

/// (c) A directory outside the restore roots is refused on the page, with the reason and
/// the choices kept; nothing is written there.
#[test]
fn wizard_refuses_a_target_outside_the_restore_roots() {
    let (s, _roots, _dir) = restore_world();
    let id = site_snapshot(&s);
    let site = s.env.path("site");
    let outside = s.env.root.join("elsewhere");
    let b = Browser::start("restore-outside");
    b.login(&s, "olga", "olga password");
    b.goto(&wizard(&s, &id, &site));
    b.fill("#directory", outside.to_str().unwrap());
    b.click("#overwrite-if-newer");
    b.click("#preview");
    let error = b.text("#restore-error");
    assert!(
        error.contains("is not under a configured restore root"),
        "{error}"
    );
    assert_eq!(
        b.attr("#directory", "value").as_deref(),
        outside.to_str(),
        "the choice is kept"
    );
    assert_eq!(
        b.attr("#overwrite-if-newer", "checked").as_deref(),
        Some("true")
    );
    b.screenshot("refused");
    assert!(!outside.exists());
}

/// A browser session over plain HTTP: its cookie and CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn session(s: &Served, user: &str, pw: &str) -> Session {
    let r = s
        .http
        .post(format!("{}/login", s.base))
        .form(&[("user", user), ("password", pw), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: Value = s
        .http
        .get(format!("{}/api/v1/session", s.base))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .json()
        .unwrap();
    Session {
        cookie,
        csrf: me["csrf"].as_str().unwrap().to_string(),
    }
}

impl Session {
    fn get(&self, s: &Served, url: &str) -> (u16, String) {
        let r = s
            .http
            .get(url)
            .header("cookie", &self.cookie)
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    fn post(&self, s: &Served, path: &str, form: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut form = form.to_vec();
        form.push(("csrf", &self.csrf));
        s.http
            .post(format!("{}{path}", s.base))
            .header("cookie", &self.cookie)
            .form(&form)
            .send()
            .unwrap()
    }
}

/// Roles: a viewer's wizard is 403; an operator's page offers no "original place", and a
/// forged post of it (preview or start) is the 403 page and changes nothing; a post
/// without the CSRF token is refused.
#[test]
fn wizard_roles_viewer_403_operator_never_in_place() {
    let (s, _roots, _dir) = restore_world();
    let id = site_snapshot(&s);
    let site = s.env.path("site");
    std::fs::write(site.join("index.html"), b"changed\n").unwrap();
    let vera = session(&s, "vera", "vera password");
    let (status, page) = vera.get(&s, &wizard(&s, &id, &site));
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("needs the operator role"), "{page}");

    let olga = session(&s, "olga", "olga password");
    let (status, page) = olga.get(&s, &wizard(&s, &id, &site));
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("place-original"), "{page}");
    let site_path = site.to_str().unwrap();
    let forged = [
        ("snapshot", id.as_str()),
        ("repository", "main"),
        ("path", site_path),
        ("place", "original"),
        ("overwrite", "always"),
    ];
    for step in ["/restore/preview", "/restore/start"] {
        let r = olga.post(&s, step, &forged);
        assert_eq!(r.status().as_u16(), 403, "{step}");
        let page = r.text().unwrap();
        assert!(
            page.contains("restoring in place needs the admin role"),
            "{page}"
        );
    }
    // Without the token: refused before anything is looked at.
    let r = s
        .http
        .post(format!("{}/restore/start", s.base))
        .header("cookie", &olga.cookie)
        .form(&forged)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("CSRF"));
    assert_eq!(
        std::fs::read(site.join("index.html")).unwrap(),
        b"changed\n"
    );
    let access = log_of(&s, "access");
    assert!(
        !access.iter().any(|r| r["body"]["action"] == "restore"),
        "{access:?}"
    );
}

/// A database snapshot (SQLite): no file list but what will happen, in words; an
/// operator restores it into a new database file under the restore root (the rows are
/// there); replacing one (force) is an admin's.
#[test]
fn wizard_restores_a_database_into_a_new_one() {
    let (s, roots, _dir) = restore_world();
    let db = s.env.path("app.db");
    let made = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("CREATE TABLE t (a); INSERT INTO t VALUES (1), (2);")
        .status()
        .unwrap();
    assert!(made.success());
    let id = s
        .strata(["backup", "--json", "--sqlite", db.to_str().unwrap()])
        .success()
        .json()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let copy = roots.join("copy.db");
    let olga = session(&s, "olga", "olga password");
    let (status, page) = olga.get(
        &s,
        &format!("{}/restore?snapshot={id}&repository=main", s.base),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"db-name\""), "{page}");
    assert!(!page.contains("db-original"), "{page}");
    // A file outside the restore roots: the preview refuses it as the start would, with
    // the form again and the reason.
    let outside = s.env.root.join("outside.db");
    let r = olga.post(
        &s,
        "/restore/preview",
        &[
            ("snapshot", id.as_str()),
            ("repository", "main"),
            ("database", "new"),
            ("name", outside.to_str().unwrap()),
        ],
    );
    assert_eq!(r.status().as_u16(), 422);
    let page = r.text().unwrap();
    assert!(page.contains("id=\"restore-error\""), "{page}");
    assert!(
        page.contains("is not under a configured restore root"),
        "{page}"
    );
    let choice = [
        ("snapshot", id.as_str()),
        ("repository", "main"),
        ("database", "new"),
        ("name", copy.to_str().unwrap()),
    ];
    let r = olga.post(&s, "/restore/preview", &choice);
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().unwrap();
    assert!(page.contains("id=\"database-plan\""), "{page}");
    assert!(page.contains("is loaded into a new database"), "{page}");
    assert!(!copy.exists(), "a preview changes nothing");
    let r = olga.post(&s, "/restore/start", &choice);
    assert_eq!(r.status().as_u16(), 303);
    let job = r.headers()["location"].to_str().unwrap().to_string();
    assert!(job.starts_with("/jobs/"), "{job}");
    let id_of_job = job.trim_start_matches("/jobs/");
    let deadline = std::time::Instant::now() + crate::browser::WAIT;
    let done = loop {
        let v: Value = s
            .http
            .get(format!("{}/api/v1/jobs/{id_of_job}", s.base))
            .header("cookie", &olga.cookie)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["state"] == "succeeded" || v["state"] == "failed" {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(done["state"], "succeeded", "{done}");
    let rows = std::process::Command::new("sqlite3")
        .arg(&copy)
        .arg("SELECT count(*) FROM t")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "2");
    // Replacing is an admin's: a forged force of the operator's is the 403 page.
    let forced = [
        ("snapshot", id.as_str()),
        ("repository", "main"),
        ("database", "original"),
        ("force", "on"),
    ];
    let r = olga.post(&s, "/restore/start", &forced);
    assert_eq!(r.status().as_u16(), 403);
    // An admin who forgets to tick "replace it" is asked to, on the form.
    let alice = session(&s, "alice", "alice password");
    let r = alice.post(&s, "/restore/preview", &forced[..3]);
    assert_eq!(r.status().as_u16(), 422);
    let page = r.text().unwrap();
    assert!(page.contains("id=\"restore-error\""), "{page}");
    assert!(page.contains("tick"), "{page}");
}
