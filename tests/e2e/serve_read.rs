//! `strata serve`, the read API and downloads (issue #17): projects, snapshots, one
//! directory level, health, log, stats, metrics; a file (with `Range`), a directory as a
//! `.tar.gz`, a database's SQL dump. Against the real server over HTTP.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::serve::{json_of, Served};
use crate::util::*;

/// The site's directory as a snapshot path (the snapshot holds it by its absolute path).
fn site_path(s: &Served) -> String {
    s.env.path("site").to_str().unwrap().to_string()
}

/// The one snapshot `Served::start` made, by the CLI.
fn first_snapshot(s: &Served) -> String {
    let list = s.strata(["snapshots", "--json"]).success().json();
    list[0]["id"].as_str().unwrap().to_string()
}

/// `strata ARGS` by the config alone (no repository from the environment): `run`,
/// `log`, `stats --project`, `health`.
fn by_config<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(s: &Served, args: I) -> Output {
    Cmd::new()
        .env("STRATA_CONFIG", &s.config)
        .env("HOME", &s.env.home)
        .env("XDG_CACHE_HOME", &s.env.cache)
        .args(args)
        .run()
}

/// Percent-encodes a query value (paths hold `/`, spaces, anything).
fn q(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Without credentials every read route is 401 with the `unauthorized` code.
#[test]
fn serve_read_needs_credentials() {
    let s = Served::start("");
    let id = first_snapshot(&s);
    for path in [
        "/projects".to_string(),
        "/projects/site".into(),
        "/snapshots".into(),
        format!("/snapshots/{id}"),
        format!("/snapshots/{id}/tree?path=/"),
        format!("/snapshots/{id}/download?path={}", q(&site_path(&s))),
        "/health".into(),
        "/log".into(),
        "/stats?project=site".into(),
        "/metrics".into(),
    ] {
        let body = json_of(s.get(&path, None), 401);
        assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
    }
}

/// Projects with their health and last backup, snapshots filtered by project and tag, one
/// snapshot by a prefix (ambiguous: 409, missing: 404, not hex: 422), one directory level,
/// paths that are not snapshot paths refused.
#[test]
fn serve_read_projects_snapshots_tree() {
    let s = Served::start(
        r#"
[projects.other]
paths = ["/nonexistent-other"]
repositories = ["main"]
"#,
    );
    let first = first_snapshot(&s);
    // A run of `site` through the config: the catalog then has its backup.
    by_config(&s, ["run", "site"]).success();
    // Snapshots of another project, with a tag: 1 + 1 + 15 = 17 snapshots, so two share a
    // first hex digit (an ambiguous one-digit prefix).
    let other = s.env.path("other");
    write_file(&other.join("o.txt"), b"other\n");
    for i in 0..15 {
        let mut args = vec!["backup", "--project", "other"];
        if i == 0 {
            args.extend(["--tag", "nightly"]);
        }
        s.strata(args.into_iter().chain([other.to_str().unwrap()]))
            .success();
    }

    let projects = json_of(s.get("/projects", Some("viewer")), 200);
    let names: Vec<&str> = projects
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other", "site"], "{projects}");
    let site = json_of(s.get("/projects/site", Some("viewer")), 200);
    assert_eq!(site["repositories"], serde_json::json!(["main"]), "{site}");
    assert!(
        ["ok", "warning", "critical", "unknown"].contains(&site["status"].as_str().unwrap()),
        "{site}"
    );
    assert!(
        site["health"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["check"] == "last-success"),
        "{site}"
    );
    let last = &site["last_backup"][0];
    assert_eq!(last["repository"], "main", "{site}");
    assert!(last["last_success"].is_string(), "{site}");
    let newest_site = s
        .strata(["snapshots", "--json", "--project", "site"])
        .success()
        .json();
    let newest_site = newest_site.as_array().unwrap().last().unwrap()["id"].clone();
    assert_eq!(last["last_snapshot"]["id"], newest_site, "{site}");
    assert_eq!(last["last_snapshot"]["kind"], "files", "{site}");
    let body = json_of(s.get("/projects/nope", Some("viewer")), 404);
    assert_eq!(body["error"]["code"], "not_found");

    // Snapshots: all, by project, by tag, by repository.
    let all = json_of(s.get("/snapshots", Some("viewer")), 200);
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 17);
    let cli: Vec<Value> = s
        .strata(["snapshots", "--json"])
        .success()
        .json()
        .as_array()
        .unwrap()
        .clone();
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&all), ids(&cli), "oldest first, as the CLI lists them");
    let one = all.iter().find(|x| x["id"] == first.as_str()).unwrap();
    assert_eq!(one["repository"], "main");
    assert_eq!(one["kind"], "files");
    assert_eq!(one["project"], "site");
    assert_eq!(one["paths"], serde_json::json!([site_path(&s)]));
    assert_eq!(one["held"], false);
    assert!(one["size"].as_u64().unwrap() > 0, "{one}");
    let by_project = json_of(s.get("/snapshots?project=site", Some("viewer")), 200);
    assert_eq!(by_project.as_array().unwrap().len(), 2, "{by_project}");
    assert!(by_project
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["project"] == "site"));
    let by_tag = json_of(s.get("/snapshots?tag=nightly", Some("viewer")), 200);
    let by_tag = by_tag.as_array().unwrap();
    assert_eq!(by_tag.len(), 1, "{by_tag:?}");
    assert_eq!(by_tag[0]["project"], "other");
    assert_eq!(by_tag[0]["tags"], serde_json::json!(["nightly"]));
    let both = json_of(
        s.get("/snapshots?project=site&tag=nightly", Some("viewer")),
        200,
    );
    assert_eq!(both, serde_json::json!([]));
    let in_main = json_of(s.get("/snapshots?repository=main", Some("viewer")), 200);
    assert_eq!(in_main.as_array().unwrap().len(), 17);
    let body = json_of(s.get("/snapshots?repository=nope", Some("viewer")), 404);
    assert_eq!(body["error"]["code"], "not_found");

    // One snapshot: by its id, by a prefix; ambiguous, missing, not hex.
    let by_prefix = json_of(
        s.get(&format!("/snapshots/{}", &first[..10]), Some("viewer")),
        200,
    );
    assert_eq!(by_prefix["id"], first.as_str());
    assert_eq!(by_prefix["repository"], "main");
    assert!(by_prefix["source_meta"].is_object(), "{by_prefix}");
    let mut firsts = BTreeSet::new();
    let shared = ids(&all)
        .into_iter()
        .map(|id| id[..1].to_string())
        .find(|c| !firsts.insert(c.clone()))
        .expect("17 ids, 16 hex digits");
    let body = json_of(s.get(&format!("/snapshots/{shared}"), Some("viewer")), 409);
    assert_eq!(body["error"]["code"], "conflict", "{body}");
    let body = json_of(
        s.get(&format!("/snapshots/{}", "0".repeat(64)), Some("viewer")),
        404,
    );
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let body = json_of(s.get("/snapshots/latest-nope", Some("viewer")), 422);
    assert_eq!(body["error"]["code"], "invalid", "{body}");

    // The tree: one level of the site's directory.
    let site_dir = site_path(&s);
    let tree = json_of(
        s.get(
            &format!("/snapshots/{first}/tree?path={}", q(&site_dir)),
            Some("viewer"),
        ),
        200,
    );
    let entries = tree["entries"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("assets", "dir"), ("index.html", "file")],
        "{tree}"
    );
    let index = &entries[1];
    assert_eq!(index["size"], 15);
    assert_eq!(index["path"], format!("{site_dir}/index.html"));
    let meta = std::fs::metadata(s.env.path("site/index.html")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        index["mode"].as_u64().unwrap() & 0o7777,
        u64::from(meta.mode() & 0o7777)
    );
    assert_eq!(
        index["mtime_ns"].as_i64().unwrap(),
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
    );
    // The root of the snapshot: the first component of the site's path.
    let root = json_of(
        s.get(&format!("/snapshots/{first}/tree"), Some("viewer")),
        200,
    );
    let top = site_dir.split('/').nth(1).unwrap();
    assert_eq!(root["entries"][0]["name"], top, "{root}");
    assert_eq!(root["entries"].as_array().unwrap().len(), 1, "{root}");
    // Not snapshot paths: refused before anything is read; a host path that is not in the
    // snapshot is simply not there.
    for bad in [
        format!("{site_dir}/../site"),
        format!("{site_dir}/assets/.."),
        "../../etc".to_string(),
        "etc/passwd".to_string(),
        format!("{site_dir}/"),
        format!("{site_dir}/a\0b"),
    ] {
        let body = json_of(
            s.get(
                &format!("/snapshots/{first}/tree?path={}", q(&bad)),
                Some("viewer"),
            ),
            422,
        );
        assert_eq!(body["error"]["code"], "invalid", "{bad:?}: {body}");
    }
    let body = json_of(
        s.get(
            &format!("/snapshots/{first}/tree?path=/etc"),
            Some("viewer"),
        ),
        404,
    );
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let body = json_of(
        s.get(
            &format!(
                "/snapshots/{first}/tree?path={}",
                q(&format!("{site_dir}/index.html"))
            ),
            Some("viewer"),
        ),
        422,
    );
    assert_eq!(body["error"]["code"], "invalid", "{body}");
}

/// Health (200 whatever the status), the catalog's log, the project's statistics and the
/// Prometheus metrics, each as the CLI gives them.
#[test]
fn serve_read_health_log_stats_metrics() {
    let s = Served::start("");
    by_config(&s, ["run", "site"]).success();

    let health = json_of(s.get("/health", Some("viewer")), 200);
    let cli = by_config(&s, ["health", "--json"]).json();
    assert_eq!(health["status"], cli["status"], "{health}");
    let checks = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["check"].to_string(), i["status"].to_string()))
            .collect()
    };
    assert_eq!(checks(&health), checks(&cli));
    assert!(!checks(&health).is_empty());

    let log = json_of(s.get("/log?project=site", Some("viewer")), 200);
    let cli = by_config(&s, ["log", "--json", "--project", "site"])
        .success()
        .json();
    assert_eq!(log, cli, "the log as `strata log --json` prints it");
    let runs = json_of(s.get("/log?kind=run&limit=1", Some("viewer")), 200);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["kind"], "run");
    assert_eq!(runs[0]["project"], "site");
    let none = json_of(s.get("/log?since=2200-01-01", Some("viewer")), 200);
    assert_eq!(none, serde_json::json!([]));
    let recent = json_of(s.get("/log?since=1h&kind=backup", Some("viewer")), 200);
    assert_eq!(recent.as_array().unwrap().len(), 1, "{recent}");
    for bad in ["/log?kind=nope", "/log?since=yesterday-ish"] {
        let body = json_of(s.get(bad, Some("viewer")), 422);
        assert_eq!(body["error"]["code"], "invalid", "{bad}: {body}");
    }

    let stats = json_of(s.get("/stats?project=site", Some("viewer")), 200);
    let cli = by_config(&s, ["stats", "--project", "site", "--json"])
        .success()
        .json();
    assert_eq!(
        stats, cli,
        "the statistics as `strata stats --project --json`"
    );
    assert_eq!(stats["runs"].as_array().unwrap().len(), 1, "{stats}");
    let body = json_of(s.get("/stats?project=nope", Some("viewer")), 404);
    assert_eq!(body["error"]["code"], "not_found");
    let body = json_of(s.get("/stats", Some("viewer")), 422);
    assert_eq!(body["error"]["code"], "invalid");

    let resp = s.get("/metrics", Some("viewer"));
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().unwrap();
    let file = s.env.path("metrics.prom");
    by_config(&s, ["health", "--prometheus", file.to_str().unwrap()]);
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(
            "strata_last_success_timestamp_seconds{project=\"site\",repository=\"main\"}"
        ),
        "{text}"
    );
    let metric_names = |t: &str| -> BTreeSet<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect()
    };
    assert_eq!(metric_names(&text), metric_names(&written));
}

/// `GET /api/v1{path}` as `role` with extra headers.
fn get_with(
    s: &Served,
    path: &str,
    role: &str,
    headers: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut req = s
        .http
        .get(format!("{}/api/v1{path}", s.base))
        .bearer_auth(&s.tokens[role]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

/// The body of a successful download, with its status checked.
#[track_caller]
fn body_of(resp: reqwest::blocking::Response, status: u16) -> Vec<u8> {
    let got = resp.status().as_u16();
    let bytes = resp.bytes().unwrap().to_vec();
    assert_eq!(got, status, "{}", String::from_utf8_lossy(&bytes));
    bytes
}

/// Every entry below `dir`, relative, with what it is: a file's bytes, a link's target,
/// a directory; and modification times to the second.
fn tree_of(dir: &std::path::Path) -> std::collections::BTreeMap<String, (String, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if meta.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                format!(
                    "file {}",
                    blake3::hash(&std::fs::read(&p).unwrap()).to_hex()
                )
            };
            let mtime = if meta.file_type().is_symlink() {
                0
            } else {
                meta.mtime()
            };
            out.insert(rel, (what, mtime));
        }
    }
    out
}

/// Unpacks a `.tar.gz` with the system's tar into a new directory.
fn untar(s: &Served, archive: &[u8], name: &str) -> std::path::PathBuf {
    let file = s.env.path(format!("{name}.tar.gz"));
    std::fs::write(&file, archive).unwrap();
    let dir = s.env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    let st = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&file)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "tar xzf {}", file.display());
    dir
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "gzip -dc");
    out.stdout
}

/// The access records of the catalog (downloads among them), waiting a little for the
/// last: a download is recorded once its last byte went out.
fn accesses(s: &Served, at_least: usize) -> Vec<Value> {
    for _ in 0..100 {
        let log = json_of(s.get("/log?kind=access", Some("viewer")), 200);
        let list = log.as_array().unwrap().clone();
        if list.len() >= at_least {
            return list;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("fewer than {at_least} access records");
}

/// A file byte-identical to its source, with its length and name; one range exactly
/// (206), a range past the end (416); gzipped; a directory and the whole snapshot as
/// `.tar.gz` identical to the source tree; a viewer refused (403), paths that are not
/// snapshot paths refused (422), a host path not in the snapshot (404); each download in
/// the audit log.
#[test]
fn serve_read_downloads_files_and_directories() {
    let s = Served::start("");
    let site = s.env.path("site");
    // A file of several chunks (and more than one channel message), a symlink, a nested
    // directory.
    // Pseudo-random (xorshift), so the chunker cuts it into several chunks.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let big: Vec<u8> = (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    write_file(&site.join("data/big.bin"), &big);
    write_file(&site.join("data/deeper/note.txt"), b"a note\n");
    std::os::unix::fs::symlink("index.html", site.join("link")).unwrap();
    s.strata(["backup", "--project", "site", site.to_str().unwrap()])
        .success();
    let list = s.strata(["snapshots", "--json"]).success().json();
    let id = list.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let site_dir = site_path(&s);
    let big_path = format!(
        "/snapshots/{id}/download?path={}",
        q(&format!("{site_dir}/data/big.bin"))
    );

    // The whole file.
    let resp = get_with(&s, &big_path, "operator", &[]);
    assert_eq!(resp.status().as_u16(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-length"], big.len().to_string().as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"big.bin\"; filename*=UTF-8''big.bin"
    );
    let got = resp.bytes().unwrap();
    assert!(got[..] == big[..], "the download differs from the source");

    // Ranges.
    let resp = get_with(
        &s,
        &big_path,
        "operator",
        &[("Range", "bytes=1000000-1999999")],
    );
    assert_eq!(
        resp.headers()["content-range"],
        "bytes 1000000-1999999/3000000"
    );
    assert_eq!(resp.headers()["content-length"], "1000000");
    let part = body_of(resp, 206);
    assert!(part[..] == big[1_000_000..2_000_000], "the range differs");
    // Ranges that start and end in different chunks (only the chunks that cover a range
    // are read).
    for (a, b) in [
        (0usize, 0usize),
        (1, 1 << 20),
        (524_288, 2_621_440),
        (123_457, 2_876_543),
        (2_000_000, 2_999_999),
        (2_999_999, 2_999_999),
    ] {
        let resp = get_with(
            &s,
            &big_path,
            "operator",
            &[("Range", &format!("bytes={a}-{b}"))],
        );
        assert_eq!(
            resp.headers()["content-range"],
            format!("bytes {a}-{b}/3000000").as_str()
        );
        let part = body_of(resp, 206);
        assert!(part[..] == big[a..=b], "the range {a}-{b} differs");
    }
    let resp = get_with(&s, &big_path, "operator", &[("Range", "bytes=-7")]);
    assert_eq!(
        resp.headers()["content-range"],
        "bytes 2999993-2999999/3000000"
    );
    assert_eq!(body_of(resp, 206), big[2_999_993..]);
    let resp = get_with(&s, &big_path, "operator", &[("Range", "bytes=2999999-")]);
    assert_eq!(body_of(resp, 206), big[2_999_999..]);
    let resp = get_with(&s, &big_path, "operator", &[("Range", "bytes=3000000-")]);
    assert_eq!(resp.headers()["content-range"], "bytes */3000000");
    let body = json_of(resp, 416);
    assert_eq!(body["error"]["code"], "range_not_satisfiable", "{body}");
    // Gzipped.
    let gz = body_of(
        get_with(&s, &format!("{big_path}&gzip=1"), "operator", &[]),
        200,
    );
    assert!(gunzip(&gz) == big, "gzip=1 is the file gzipped");

    // A directory, and the whole snapshot.
    let resp = get_with(
        &s,
        &format!("/snapshots/{id}/download?path={}", q(&site_dir)),
        "operator",
        &[],
    );
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"site.tar.gz\"; filename*=UTF-8''site.tar.gz"
    );
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    let archive = body_of(resp, 200);
    let out = untar(&s, &archive, "unpacked");
    let source = tree_of(&site);
    assert_eq!(tree_of(&out.join(site_dir.trim_start_matches('/'))), source);
    assert!(source.contains_key("data/deeper/note.txt") && source.contains_key("link"));
    let archive = body_of(
        get_with(&s, &format!("/snapshots/{id}/download"), "admin", &[]),
        200,
    );
    let whole = untar(&s, &archive, "whole");
    assert_eq!(
        tree_of(&whole.join(site_dir.trim_start_matches('/'))),
        source
    );

    // Refused: a viewer; not snapshot paths; a host path that is not in the snapshot.
    let body = json_of(get_with(&s, &big_path, "viewer", &[]), 403);
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    for bad in [
        format!("{site_dir}/../../../etc/passwd"),
        "../etc/passwd".to_string(),
        format!("{site_dir}/./index.html"),
    ] {
        let body = json_of(
            get_with(
                &s,
                &format!("/snapshots/{id}/download?path={}", q(&bad)),
                "operator",
                &[],
            ),
            422,
        );
        assert_eq!(body["error"]["code"], "invalid", "{bad}: {body}");
    }
    let body = json_of(
        get_with(
            &s,
            &format!("/snapshots/{id}/download?path=/etc/passwd"),
            "operator",
            &[],
        ),
        404,
    );
    assert_eq!(body["error"]["code"], "not_found", "{body}");

    // The audit log: every download, with who, the snapshot and path, and its outcome.
    let log = accesses(&s, 19);
    let downloads: Vec<&Value> = log
        .iter()
        .filter(|r| r["body"]["action"] == "download")
        .collect();
    assert_eq!(downloads.len(), 19, "{log:?}");
    let first = downloads[0];
    assert_eq!(first["user"], "operator");
    assert_eq!(first["ok"], true);
    assert_eq!(first["repository"], "main");
    assert_eq!(first["project"], "site");
    assert_eq!(
        first["body"]["target"],
        format!("{id}:{site_dir}/data/big.bin")
    );
    assert_eq!(first["body"]["address"], "127.0.0.1");
    let refused: Vec<&&Value> = downloads.iter().filter(|r| r["ok"] == false).collect();
    assert_eq!(
        refused.len(),
        6,
        "416, 403, three 422 and a 404: {refused:?}"
    );
    assert!(refused.iter().any(|r| r["user"] == "viewer"));
}

/// A PostgreSQL snapshot downloaded (no path, its `.sql` path, gzipped) equals `strata
/// dump` of it.
#[test]
fn serve_read_downloads_a_database_dump() {
    use crate::db::Server;
    let pg = crate::db::postgres();
    let db = "serve_read_dump";
    pg.create_db(db);
    pg.sql(
        db,
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;",
    );
    let s = Served::start("");
    s.strata(["backup", "--postgres", &pg.url(db), "--project", "db"])
        .success();
    let list = s
        .strata(["snapshots", "--json", "--project", "db"])
        .success()
        .json();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let dumped = s.strata(["dump", &id]).success().stdout;
    assert!(String::from_utf8_lossy(&dumped).contains("item 500"));

    let one = json_of(s.get(&format!("/snapshots/{id}"), Some("viewer")), 200);
    assert_eq!(one["kind"], "postgres", "{one}");
    let resp = get_with(&s, &format!("/snapshots/{id}/download"), "operator", &[]);
    let name = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(resp.headers()["content-type"], "application/sql");
    let got = body_of(resp, 200);
    assert!(
        got == dumped,
        "the download is not what `strata dump` writes"
    );
    // Its one file by path.
    let tree = json_of(s.get(&format!("/snapshots/{id}/tree"), Some("viewer")), 200);
    let file = tree["entries"][0]["path"].as_str().unwrap().to_string();
    assert!(
        file.ends_with(".sql") && name.contains(file.trim_start_matches('/')),
        "{tree} {name}"
    );
    let by_path = body_of(
        get_with(
            &s,
            &format!("/snapshots/{id}/download?path={}", q(&file)),
            "operator",
            &[],
        ),
        200,
    );
    assert!(by_path == dumped);
    let gz = body_of(
        get_with(
            &s,
            &format!("/snapshots/{id}/download?gzip=1"),
            "operator",
            &[],
        ),
        200,
    );
    assert!(gunzip(&gz) == dumped, "gzip=1 is the dump gzipped");
    let body = json_of(
        get_with(&s, &format!("/snapshots/{id}/download"), "viewer", &[]),
        403,
    );
    assert_eq!(body["error"]["code"], "forbidden");
}
