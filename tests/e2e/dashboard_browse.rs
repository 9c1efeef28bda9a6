//! The dashboard's project page and snapshot browser (issue #17) in a real headless
//! Chromium: snapshots per repository, a directory at a time, downloads byte for byte, what
//! a viewer is not offered, an admin's hold and forget, a database snapshot's tables, and
//! a directory too big for one page.

use std::process::Command;

use serde_json::Value;

use crate::browser::Browser;
use crate::dashboard::dashboard_world;
use crate::serve::Served;
use crate::util::*;

/// `s` percent-encoded for a query string.
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The site's directory (the world's backups are of it).
fn site_dir(s: &Served) -> String {
    s.env.path("site").to_str().unwrap().to_string()
}

/// The ids of `project`'s snapshots as `strata snapshots --json` lists them, newest first.
fn ids_of(s: &Served, project: &str) -> Vec<String> {
    let mut list: Vec<Value> = match s.strata(["snapshots", "--json"]).success().json() {
        Value::Array(a) => a,
        other => panic!("{other}"),
    };
    list.retain(|v| v["project"] == project);
    // The CLI lists oldest first (by time to the nanosecond, then id).
    list.reverse();
    list.iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// The values of attribute `name` in `html`, in order.
fn attrs(html: &str, name: &str) -> Vec<String> {
    let key = format!(" {name}=\"");
    html.match_indices(&key)
        .map(|(i, _)| {
            let rest = &html[i + key.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// A browser session of `user` for plain HTTP requests: its cookie.
fn session(s: &Served, user: &str, password: &str) -> String {
    let r = s
        .http
        .post(format!("{}/login", s.base))
        .form(&[("user", user), ("password", password), ("next", "/")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{user} logs in");
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// `GET path` (a page or an API address) with a session: status and body.
fn get(s: &Served, cookie: &str, path: &str) -> (u16, Vec<u8>) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}{path}", s.base)
    };
    let r = s.http.get(url).header("cookie", cookie).send().unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().unwrap().to_vec())
}

/// A page's HTML (with the `&` of its links unescaped, to compare them).
fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).replace("&#38;", "&")
}

/// Goes into the directory `name` of the listing and waits for the page of `path`.
fn open_dir(b: &Browser, name: &str, path: &str) {
    b.click(&format!("tr.entry[data-name=\"{name}\"] a.open"));
    b.wait_text("#listing h2.path", path, |t| t == path);
}

/// Unpacks a `.tar.gz` with the system's tar into a new directory of the world.
fn untar(s: &Served, archive: &[u8], name: &str) -> std::path::PathBuf {
    let file = s.env.path(format!("{name}.tar.gz"));
    std::fs::write(&file, archive).unwrap();
    let dir = s.env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("tar")
        .arg("xzf")
        .arg(&file)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "tar xzf {}", file.display());
    dir
}

#[test]
fn dashboard_browse_project_snapshots_and_downloads() {
    let s = dashboard_world();
    let site = site_dir(&s);
    let ids = ids_of(&s, "site");
    assert_eq!(ids.len(), 2, "the world backed site up twice");
    let mut b = Browser::start("browse");
    b.login(&s, "olga", "olga password");

    // The project page: every snapshot of site, newest first; health; the runs.
    b.goto(&format!("{}/projects/site", s.base));
    b.find("#repo-main");
    assert_eq!(
        b.count("#repo-main tr.snapshot"),
        ids.len(),
        "{}",
        b.source()
    );
    assert_eq!(attrs(&b.source(), "data-id"), ids);
    // Its status is the API's (ok, or a warning on a nearly full disk).
    let api = crate::serve::json_of(s.get("/projects/site", Some("viewer")), 200);
    assert_eq!(
        b.attr("#project-status", "data-status").as_deref(),
        api["status"].as_str()
    );
    assert!(
        b.count("#runs tr.run[data-result=succeeded]") >= 1,
        "{}",
        b.source()
    );
    assert!(!b.exists("button.forget"), "an operator cannot forget");
    b.screenshot("project");

    // The newest snapshot, down to the site's assets.
    b.click("#repo-main tr.snapshot a.open");
    b.wait_text("#listing h2.path", "/", |t| t == "/");
    assert!(
        b.url().contains(&format!("/snapshots/{}", ids[0])),
        "{}",
        b.url()
    );
    b.screenshot("snapshot-root");
    let mut at = String::new();
    for comp in site.split('/').filter(|c| !c.is_empty()) {
        at.push('/');
        at.push_str(comp);
        open_dir(&b, comp, &at);
    }
    // Directories first, then files by name.
    assert_eq!(
        attrs(&b.source(), "data-name"),
        ["assets", "index.html"],
        "{}",
        b.source()
    );
    assert_eq!(b.count("#crumbs a"), site.split('/').count() - 1);
    b.screenshot("snapshot-site");
    b.window(390, 844);
    b.screenshot("snapshot-site-phone");
    b.window(1280, 900);
    open_dir(&b, "assets", &format!("{site}/assets"));
    let assets_url = b.url();
    let restore = b.attr("#restore-dir", "href").unwrap();
    assert!(
        restore.ends_with(&format!(
            "/restore?snapshot={}&repository=main&path={}",
            ids[0],
            q(&format!("{site}/assets"))
        )),
        "{restore}"
    );
    let link = b
        .attr("tr.entry[data-name=\"app.js\"] a.download", "href")
        .unwrap();
    assert!(
        link.ends_with(&format!(
            "/api/v1/snapshots/{}/download?repository=main&path={}",
            ids[0],
            q(&format!("{site}/assets/app.js"))
        )),
        "{link}"
    );
    b.click("tr.entry[data-name=\"app.js\"] a.download");
    assert_eq!(
        b.downloaded("app.js"),
        std::fs::read(s.env.path("site/assets/app.js")).unwrap()
    );

    // The whole snapshot as .tar.gz from its root's page.
    b.click("#crumbs a");
    b.wait_text("#listing h2.path", "/", |t| t == "/");
    b.click("#download-dir");
    let archive = b.downloaded(&format!("{}.tar.gz", &ids[0][..8]));
    let out = untar(&s, &archive, "whole");
    let unpacked = out.join(site.trim_start_matches('/'));
    for file in ["index.html", "assets/app.js"] {
        assert_eq!(
            std::fs::read(unpacked.join(file)).unwrap(),
            std::fs::read(s.env.path("site").join(file)).unwrap(),
            "{file}"
        );
    }

    // A viewer browses but is offered no download nor restore, and the API refuses her.
    b.click("#logout");
    b.find("#login");
    b.login(&s, "vera", "vera password");
    b.goto(&assets_url);
    b.find("tr.entry[data-name=\"app.js\"]");
    assert!(
        !b.exists("a.download") && !b.exists("#download-dir"),
        "{}",
        b.source()
    );
    assert!(
        !b.exists("a.restore") && !b.exists("#restore-dir"),
        "{}",
        b.source()
    );
    let vera = session(&s, "vera", "vera password");
    let (status, body) = get(&s, &vera, &link);
    assert_eq!(status, 403, "{}", text(&body));
    let olga = session(&s, "olga", "olga password");
    let (status, body) = get(&s, &olga, &link);
    assert_eq!(status, 200);
    assert_eq!(body, b"console.log('hi');\n");
}

#[test]
fn dashboard_browse_admin_holds_and_forgets() {
    let s = dashboard_world();
    let ids = ids_of(&s, "site");
    let (newest, oldest) = (&ids[0], &ids[1]);
    let b = Browser::start("hold-forget");
    b.login(&s, "alice", "alice password");
    b.goto(&format!("{}/projects/site", s.base));

    // Hold the oldest for ten years: the page and the CLI say so.
    let row = format!("#snap-{}", &oldest[..8]);
    b.fill(&format!("{row} input[name=for]"), "10y");
    b.click(&format!("{row} button.hold"));
    let notice = b.text("#notice");
    assert!(notice.contains("held"), "{notice}");
    let after = ids_of(&s, "site");
    assert_eq!(after.len(), 2);
    assert_eq!(&after[0], newest, "only the held snapshot is rewritten");
    let held = &after[1];
    assert_ne!(held, oldest, "a hold rewrites the snapshot");
    assert!(notice.contains(&held[..8]), "{notice}");
    let listed = s.strata(["snapshots", "--json"]).success().json();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == held.as_str())
        .unwrap();
    assert!(
        entry["keep_until"].as_str().is_some_and(|u| u > "2035"),
        "{entry}"
    );
    let row = format!("#snap-{}", &held[..8]);
    assert_eq!(b.attr(&row, "data-held").as_deref(), Some("yes"));
    assert!(b
        .text(&format!("{row} td.hold"))
        .starts_with("held until 20"));
    // Forget is not offered for it, with the reason; and refused when posted anyway.
    assert!(!b.exists(&format!("{row} button.forget")));
    assert!(
        b.text(&format!("{row} p.refused")).contains("held until"),
        "{}",
        b.source()
    );
    b.screenshot("project-held");
    // A link kept from before the hold (the catalog's run page, a bookmark) names the old
    // id: it leads to the held snapshot.
    b.goto(&format!("{}/snapshots/{oldest}?repository=main", s.base));
    b.find("#crumbs");
    assert!(
        b.url().contains(&format!("/snapshots/{held}")),
        "{}",
        b.url()
    );
    b.goto(&format!("{}/projects/site", s.base));
    b.find(&row);
    let alice = session(&s, "alice", "alice password");
    let (_, page) = get(&s, &alice, "/projects/site");
    let page = text(&page);
    let key = "name=\"csrf\" value=\"";
    let at = page.find(key).expect("a form with a CSRF token") + key.len();
    let csrf = page[at..at + page[at..].find('"').unwrap()].to_string();
    let r = s
        .http
        .post(format!("{}/projects/site/forget", s.base))
        .header("cookie", &alice)
        .form(&[
            ("csrf", csrf.as_str()),
            ("snapshot", held.as_str()),
            ("repository", "main"),
        ])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let refusal = r.text().unwrap();
    assert!(refusal.contains("held"), "{refusal}");
    assert!(ids_of(&s, "site").contains(held));

    // Forget the newest (the page asks first): gone from the page and from the CLI.
    let row = format!("#snap-{}", &newest[..8]);
    b.click(&format!("{row} button.forget"));
    let question = b.accept_dialog();
    assert!(question.contains(&newest[..8]), "{question}");
    let notice = b.wait_text("#notice", "the forget notice", |t| t.contains("forgotten"));
    assert!(notice.contains(&newest[..8]), "{notice}");
    assert!(!b.exists(&row), "{}", b.source());
    assert_eq!(b.count("#repo-main tr.snapshot"), 1);
    assert_eq!(ids_of(&s, "site"), std::slice::from_ref(held));
    b.screenshot("project-forgotten");
}

#[test]
fn dashboard_browse_database_tables_big_directories_and_bad_paths() {
    require("sqlite3", "sqlite3");
    let s = dashboard_world();
    // A SQLite database of two tables.
    let db = s.env.path("app.db");
    let st = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); \
             CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER); \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 37) \
             INSERT INTO users SELECT n, 'user ' || n FROM c; \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1234) \
             INSERT INTO orders SELECT n, n * 3 FROM c;",
        )
        .status()
        .unwrap();
    assert!(st.success());
    let out = s
        .strata(["backup", "--json", "--sqlite", db.to_str().unwrap()])
        .success()
        .json();
    let db_id = out["snapshot_id"].as_str().unwrap().to_string();

    let b = Browser::start("browse-db");
    b.login(&s, "olga", "olga password");
    b.goto(&format!("{}/snapshots/{db_id}?repository=main", s.base));
    b.find("#tables");
    let tables: Vec<(String, String)> = b
        .texts("#tables tr.db-table td")
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    let mut tables = tables;
    tables.sort();
    assert_eq!(
        tables,
        [
            ("orders".to_string(), "1234".to_string()),
            ("users".to_string(), "37".to_string())
        ]
    );
    b.screenshot("database");
    let olga = session(&s, "olga", "olga password");
    let sql = b.attr("#download-sql", "href").unwrap();
    let (status, body) = get(&s, &olga, &sql);
    assert_eq!(status, 200);
    let dump = s.strata(["dump", db_id.as_str()]).success();
    assert!(
        body == dump.stdout,
        "the .sql link gives what `strata dump` writes"
    );

    // A directory of 1236 entries: 500 a page, directories first, next and previous.
    let big = s.env.path("big");
    for i in 0..1234 {
        write_file(&big.join(format!("f{i:05}")), format!("{i}\n").as_bytes());
    }
    std::fs::create_dir_all(big.join("zz1")).unwrap();
    std::fs::create_dir_all(big.join("zz2")).unwrap();
    let out = s
        .strata(["backup", "--json", big.to_str().unwrap()])
        .success()
        .json();
    let big_id = out["snapshot_id"].as_str().unwrap().to_string();
    let big_dir = big.to_str().unwrap();
    let page = |offset: Option<usize>| {
        let mut path = format!("/snapshots/{big_id}?repository=main&path={}", q(big_dir));
        if let Some(o) = offset {
            path.push_str(&format!("&offset={o}"));
        }
        let (status, body) = get(&s, &olga, &path);
        assert_eq!(status, 200, "{}", text(&body));
        text(&body)
    };
    let first = page(None);
    let names = attrs(&first, "data-name");
    assert_eq!(names.len(), 500);
    assert_eq!(names[..3], ["zz1", "zz2", "f00000"]);
    assert!(first.contains("entries 1–500 of 1236"), "{first}");
    assert!(first.contains("&offset=500\" rel=\"next\""), "{first}");
    assert!(!first.contains("rel=\"prev\""));
    let last = page(Some(1000));
    let names = attrs(&last, "data-name");
    assert_eq!(names.len(), 236);
    assert_eq!(names.last().map(String::as_str), Some("f01233"));
    assert!(last.contains("entries 1001–1236 of 1236"), "{last}");
    assert!(last.contains("&offset=500\" rel=\"prev\""), "{last}");
    assert!(!last.contains("rel=\"next\""));
    // The API pages the same directory by name.
    let tree = |query: &str| -> Value {
        let (status, body) = get(
            &s,
            &olga,
            &format!("/api/v1/snapshots/{big_id}/tree?path={}{query}", q(big_dir)),
        );
        assert_eq!(status, 200, "{}", text(&body));
        serde_json::from_slice(&body).unwrap()
    };
    let all = tree("");
    assert_eq!(all["entries"].as_array().unwrap().len(), 1236);
    assert_eq!(all["total"], 1236);
    assert_eq!(all["next_offset"], Value::Null);
    let part = tree("&limit=100&offset=1200");
    let names: Vec<&str> = part["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 36);
    assert_eq!(names[34..], ["zz1", "zz2"]);
    assert_eq!(part["next_offset"], Value::Null);
    let part = tree("&limit=10");
    assert_eq!(part["entries"].as_array().unwrap().len(), 10);
    assert_eq!(part["next_offset"], 10);

    // Bad addresses: error pages with the right status, not a crash.
    let (status, body) = get(&s, &olga, "/projects/nope");
    assert_eq!(status, 404);
    assert!(text(&body).contains("no project named"), "{}", text(&body));
    let (status, body) = get(
        &s,
        &olga,
        &format!("/snapshots/{big_id}?path={}", q(&format!("{big_dir}/nope"))),
    );
    assert_eq!(status, 404, "{}", text(&body));
    for bad in [format!("{big_dir}/../etc"), "etc/passwd".to_string()] {
        let (status, body) = get(&s, &olga, &format!("/snapshots/{big_id}?path={}", q(&bad)));
        assert_eq!(status, 422, "{bad}: {}", text(&body));
        assert!(
            text(&body).contains("not a snapshot path"),
            "{}",
            text(&body)
        );
    }
}

#[test]
fn dashboard_project_page_shows_fifty_snapshots_a_page() {
    let s = dashboard_world();
    let site = site_dir(&s);
    for _ in 0..49 {
        s.strata(["backup", "--project", "site", site.as_str()])
            .success();
    }
    let ids = ids_of(&s, "site");
    assert_eq!(ids.len(), 51);
    let olga = session(&s, "olga", "olga password");
    let page = |query: &str| {
        let (status, body) = get(&s, &olga, &format!("/projects/site{query}"));
        assert_eq!(status, 200, "{}", text(&body));
        text(&body)
    };
    let first = page("");
    assert_eq!(attrs(&first, "data-id"), ids[..50]);
    assert!(first.contains("page 1 of 2"), "{first}");
    assert!(
        first.contains("href=\"/projects/site?repository=main&page=2\" rel=\"next\""),
        "{first}"
    );
    let second = page("?repository=main&page=2");
    assert_eq!(attrs(&second, "data-id"), ids[50..]);
    assert!(second.contains("page 2 of 2"), "{second}");
    assert!(second.contains("&page=1\" rel=\"prev\""), "{second}");
    assert!(!second.contains("rel=\"next\""), "{second}");
    // A page past the end is the last one; another repository's page number is ignored.
    assert_eq!(
        attrs(&page("?repository=main&page=99"), "data-id"),
        ids[50..]
    );
    assert_eq!(
        attrs(&page("?repository=other&page=2"), "data-id"),
        ids[..50]
    );
}
