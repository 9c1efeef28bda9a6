//! The dashboard's audit log, health and config pages (issue #17) in a real headless
//! Chromium: the log's rows and filters against `strata log --json`, its pages over a
//! large catalog, health against `GET /api/v1/health`, and a config page that shows the
//! config but none of its secrets.

use serde_json::Value;
use strata_app::catalog::Catalog;
use strata_app::ops::{Record, RecordBody, Recorder};

use crate::browser::Browser;
use crate::serve::{users_toml, Served};

/// Secrets the pages' world has in its config (inline, or in files it names).
const WEBHOOK_SECRET: &str = "hook-secret-4f9a1c";
const SLACK_PATH: &str = "T01/B02/slack-secret-77d0";
const SMTP_PASSWORD: &str = "smtp-secret-31b7e2";

/// `dashboard_world()` (projects `site`, backed up, and `shop`, never; users alice, olga,
/// vera) with notification channels that hold secrets: a webhook's inline `secret`, a
/// Slack URL (a secret whole) and a mail relay's password file (in the directory returned
/// beside the server).
fn pages_world() -> (Served, tempfile::TempDir) {
    let users = users_toml(&[
        ("alice", "admin", "alice password"),
        ("olga", "operator", "olga password"),
        ("vera", "viewer", "vera password"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let smtp_pw = dir.path().join("smtp.pw");
    std::fs::write(&smtp_pw, format!("{SMTP_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(
        &smtp_pw,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let s = Served::start(&format!(
        r#"[notifications.hook]
webhook = {{ url = "http://127.0.0.1:9/hooks/backup", secret = "{WEBHOOK_SECRET}" }}
[notifications.chat]
slack = {{ webhook-url = "https://hooks.slack.com/services/{SLACK_PATH}" }}
[notifications.mail]
email = {{ smtp = "smtp://127.0.0.1:2525", starttls = false, user = "mailer", password-file = "{pw}", from = "backup@example.com", to = ["ops@example.com"] }}
[projects.shop]
paths = ["/nonexistent/shop"]
repositories = ["main"]
[server]
{users}"#,
        pw = smtp_pw.display(),
    ));
    s.strata(["run", "site"]).success();
    (s, dir)
}

/// `strata log --json ARGS` in this world.
fn strata_log(s: &Served, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log", "--json"];
    all.extend_from_slice(args);
    s.strata(all).success().json().as_array().unwrap().clone()
}

/// The `data-` attribute `name` of every row of the log's table.
fn rows_attr(b: &Browser, name: &str) -> Vec<String> {
    let n = b.count("#log tbody tr");
    (1..=n)
        .map(|i| {
            b.attr(&format!("#log tbody tr:nth-child({i})"), name)
                .unwrap_or_default()
        })
        .collect()
}

/// Sets the log's filter form and submits it.
fn filter(b: &Browser, project: &str, kind: &str, since: &str, failed: bool) {
    b.select("#f-project", project);
    b.select("#f-kind", kind);
    b.fill("#f-since", since);
    let checked = b.attr("#f-failed", "checked").is_some();
    if checked != failed {
        b.click("#f-failed");
    }
    b.click("#f-apply");
    // The form's answer, not the page it was on.
    let mut want = format!(
        "/log?project={project}&kind={kind}&since={}&user=",
        since.replace(' ', "+")
    );
    if failed {
        want.push_str("&failed=1");
    }
    let deadline = std::time::Instant::now() + crate::browser::WAIT;
    while !b.url().ends_with(&want) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} is not {want}",
            b.url()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    b.find("#log-filters");
}

/// The value of the option the page marked selected in `select` ("" for none).
fn selected(b: &Browser, select: &str) -> String {
    let css = format!("{select} option[selected]");
    if b.exists(&css) {
        b.attr(&css, "value").unwrap_or_default()
    } else {
        String::new()
    }
}

fn row_count(b: &Browser) -> usize {
    if b.exists("#log-empty") {
        0
    } else {
        b.count("#log tbody tr")
    }
}

#[test]
fn dashboard_log_rows_and_filters_match_strata_log() {
    let (s, _secrets) = pages_world();
    // shop's path does not exist: its run fails, and the catalog says so.
    let out = s.strata(["run", "shop"]);
    assert_ne!(out.code, 0, "shop's run fails");
    let mut b = Browser::start("log");
    b.login(&s, "olga", "olga password");
    b.goto(&format!("{}/log", s.base));
    b.find("#log");
    b.screenshot("all");

    // Every record, newest first: the test's own login is the newest, with its address.
    let all = strata_log(&s, &[]);
    assert_eq!(row_count(&b), all.len(), "{}", b.source());
    let first = b.text("#log tbody tr:first-child");
    assert!(first.contains("access"), "{first}");
    assert!(first.contains("login user olga"), "{first}");
    assert!(first.contains("127.0.0.1"), "{first}");
    assert_eq!(
        b.text("#log tbody tr:first-child td.user"),
        "olga",
        "{first}"
    );
    // `strata run site`'s records: its run and its backup, linked to the snapshot made.
    let site_backup = all
        .iter()
        .find(|r| r["kind"] == "backup" && r["project"] == "site")
        .expect("the setup's backup is in the catalog");
    let row = format!("#rec-{}", site_backup["seq"]);
    assert_eq!(b.attr(&row, "data-project").as_deref(), Some("site"));
    let snapshot = site_backup["body"]["snapshot_id"].as_str().unwrap();
    let href = b.attr(&format!("{row} a.snap"), "href").unwrap();
    assert!(
        href.starts_with(&format!("/snapshots/{snapshot}")),
        "{href} names {snapshot}"
    );
    assert_eq!(
        b.attr(&format!("{row} td.project a"), "href").as_deref(),
        Some("/projects/site")
    );

    // Filters: each kind, and a kind in one project, give exactly `strata log`'s rows.
    for (project, kind) in [
        ("", "backup"),
        ("", "run"),
        ("", "access"),
        ("site", "run"),
        ("shop", "run"),
        ("site", ""),
    ] {
        filter(&b, project, kind, "", false);
        let mut args = Vec::new();
        if !kind.is_empty() {
            args.extend(["--kind", kind]);
        }
        if !project.is_empty() {
            args.extend(["--project", project]);
        }
        let expected = strata_log(&s, &args);
        assert!(!expected.is_empty(), "{args:?} selects something");
        assert_eq!(row_count(&b), expected.len(), "{args:?}\n{}", b.source());
        // The same records, newest first.
        let seqs: Vec<String> = expected
            .iter()
            .rev()
            .map(|r| r["seq"].to_string())
            .collect();
        let ids: Vec<String> = (1..=row_count(&b))
            .map(|i| {
                b.attr(&format!("#log tbody tr:nth-child({i})"), "id")
                    .unwrap()
                    .trim_start_matches("rec-")
                    .to_string()
            })
            .collect();
        assert_eq!(ids, seqs, "{args:?}");
        if !kind.is_empty() {
            assert!(rows_attr(&b, "data-kind").iter().all(|k| k == kind));
        }
        if !project.is_empty() {
            assert!(rows_attr(&b, "data-project").iter().all(|p| p == project));
        }
        // The form shows the filters it applied.
        assert_eq!(selected(&b, "#f-kind"), kind);
        assert_eq!(selected(&b, "#f-project"), project);
    }
    b.screenshot("site");

    // Failures only: shop's failed run (and its failed backup), with the error; none of
    // site's successes.
    filter(&b, "", "", "", true);
    let failed = strata_log(&s, &["--failed"]);
    assert!(failed.len() < strata_log(&s, &[]).len());
    assert!(
        failed.iter().any(|r| r["kind"] == "run"),
        "shop's run is a failure: {failed:?}"
    );
    assert_eq!(row_count(&b), failed.len(), "{}", b.source());
    assert!(rows_attr(&b, "data-ok").iter().all(|ok| ok == "false"));
    let run = failed.iter().find(|r| r["kind"] == "run").unwrap();
    let text = b.text(&format!("#rec-{} td.result", run["seq"]));
    assert!(
        text.contains(run["error"].as_str().unwrap()),
        "{text} shows {}",
        run["error"]
    );
    b.screenshot("failures");
    b.window(390, 844);
    b.screenshot("failures-phone");
    b.window(1280, 900);

    // Since: a span keeps everything recent; nonsense is said on the page, the form kept.
    filter(&b, "", "", "24h", false);
    assert_eq!(row_count(&b), strata_log(&s, &[]).len());
    filter(&b, "site", "", "last tuesdayish", false);
    let error = b.text("#error");
    assert!(error.contains("last tuesdayish"), "{error}");
    assert_eq!(
        b.attr("#f-since", "value").as_deref(),
        Some("last tuesdayish")
    );
    assert_eq!(selected(&b, "#f-project"), "site");
    b.screenshot("bad-since");
    // A user: only olga's records (her login).
    b.goto(&format!("{}/log?user=olga", s.base));
    b.find("#log");
    assert_eq!(rows_attr(&b, "data-kind"), vec!["access".to_string()]);
}

/// 250 records more in the catalog: `/log` shows them 100 a page, newest first, and its
/// "Older records" links walk through all of them, each once.
#[test]
fn dashboard_log_pages_through_a_large_catalog() {
    let (s, _secrets) = pages_world();
    let state = s.env.root.join("state");
    {
        let cat = Catalog::open(&state).unwrap();
        let t0 = 1_700_000_000_000_000_000i64;
        for i in 0..250i64 {
            cat.record(Record {
                // Pairs of records at the same instant: the pages must tell them apart.
                time_ns: t0 + (i / 2) * 1_000_000_000,
                project: Some("site".into()),
                repository: Some("main".into()),
                run_id: None,
                ok: i % 7 != 0,
                error: (i % 7 == 0).then(|| format!("failure {i}")),
                user: Some("importer".into()),
                body: RecordBody::Access {
                    action: "download".into(),
                    target: format!("file {i}"),
                    address: "192.0.2.7".into(),
                    role: Some("operator".into()),
                },
            })
            .unwrap();
        }
    }
    let b = Browser::start("log-pages");
    b.login(&s, "vera", "vera password");
    b.goto(&format!("{}/log", s.base));
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        b.find("#log-filters");
        pages += 1;
        assert!(pages <= 10, "the pages never end: {}", b.url());
        let n = row_count(&b);
        assert!(n <= 100, "{n} rows on a page");
        for i in 1..=n {
            seen.push(
                b.attr(&format!("#log tbody tr:nth-child({i})"), "id")
                    .unwrap()
                    .trim_start_matches("rec-")
                    .parse::<u64>()
                    .unwrap(),
            );
        }
        if pages == 2 {
            b.screenshot("page-2");
        }
        if !b.exists("#older") {
            break;
        }
        let next = b.attr("#older", "href").unwrap();
        b.goto(&format!("{}{next}", s.base));
    }
    // The login (the newest) comes first, then the setup's records and the imported ones.
    let all = strata_log(&s, &[]);
    let expected: Vec<u64> = all
        .iter()
        .rev()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seen.len(), expected.len());
    assert_eq!(seen, expected, "every record once, in the log's order");
    assert_eq!(pages, expected.len().div_ceil(100));
    // The pager keeps the filters: failures only, over pages.
    b.goto(&format!("{}/log?failed=1&user=importer", s.base));
    b.find("#log");
    let failed = all
        .iter()
        .filter(|r| r["ok"] == false && r["user"] == "importer")
        .count();
    assert_eq!(failed, 36);
    assert_eq!(row_count(&b), failed);
    assert!(!b.exists("#older"));
    // A forged place in the log is refused, not misread.
    b.goto(&format!("{}/log?before=x", s.base));
    assert!(b.text("#error").contains("not a place in the log"));
}

#[test]
fn dashboard_health_and_config_pages() {
    let (s, _secrets) = pages_world();
    let api: Value = s.get("/health", Some("viewer")).json().unwrap();
    let mut b = Browser::start("health");
    b.login(&s, "vera", "vera password");
    b.goto(&format!("{}/health", s.base));
    b.find("#legend");
    assert_eq!(
        b.attr("#overall", "data-status").as_deref(),
        Some(api["status"].as_str().unwrap())
    );
    assert_eq!(
        b.attr("#health-shop", "data-status").as_deref(),
        Some("critical")
    );
    // site's backup is recent and its run succeeded. (Its overall status is the API's: a
    // nearly full disk makes free-space a warning on some machines.)
    for check in ["last-success", "last-run"] {
        let sel = format!("#health-site tr[data-check={check}]");
        assert_eq!(
            b.attr(&sel, "data-status").as_deref(),
            Some("ok"),
            "{check}"
        );
    }
    // shop's last success: critical, with the API's own message.
    let item = api["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["project"] == "shop" && i["check"] == "last-success")
        .expect("shop has a last-success item");
    assert_eq!(item["status"], "critical");
    let sel = "#health-shop tr[data-check=last-success]";
    assert_eq!(b.attr(sel, "data-status").as_deref(), Some("critical"));
    assert_eq!(
        b.text(&format!("{sel} td.message")),
        item["message"].as_str().unwrap()
    );
    // Every item the API evaluates, per project, in its order, with its status.
    for p in ["shop", "site"] {
        let items: Vec<(String, String)> = api["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["project"] == p)
            .map(|i| {
                (
                    i["check"].as_str().unwrap().to_string(),
                    i["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let worst = ["unknown", "critical", "warning"]
            .into_iter()
            .find(|w| items.iter().any(|(_, s)| s == w))
            .unwrap_or("ok");
        assert_eq!(
            b.attr(&format!("#health-{p}"), "data-status").as_deref(),
            Some(worst),
            "{p}"
        );
        let n = b.count(&format!("#health-{p} tr.item"));
        let shown: Vec<(String, String)> = (1..=n)
            .map(|i| {
                let row = format!("#health-{p} tr.item:nth-child({i})");
                (
                    b.attr(&row, "data-check").unwrap(),
                    b.attr(&row, "data-status").unwrap(),
                )
            })
            .collect();
        assert_eq!(shown, items, "{p}");
    }
    assert!(b.text("#legend").contains("last-success"));
    assert!(b.text("#legend").contains("max-age"));
    b.screenshot("health");
    b.window(390, 844);
    b.screenshot("health-phone");
    b.window(1280, 900);

    // A viewer may not read the config: a page that says why.
    b.goto(&format!("{}/config", s.base));
    let error = b.text("#error");
    assert!(error.contains("operator"), "{error}");
    assert!(!b.exists("#config"));
    b.screenshot("config-viewer");

    // An operator sees it, secrets redacted.
    let mut b = Browser::start("config");
    b.login(&s, "olga", "olga password");
    b.goto(&format!("{}/config", s.base));
    let text = b.text("#config");
    let page = b.source();
    for shown in [
        "[repositories.main]",
        "[projects.site]",
        "[projects.shop]",
        "/nonexistent/shop",
        &s.env.repo.display().to_string(),
        &s.env.password_file.display().to_string(),
        "<redacted>",
        "hooks.slack.com",
    ] {
        assert!(text.contains(shown), "{shown} in\n{text}");
    }
    let repo_password = std::fs::read_to_string(&s.env.password_file).unwrap();
    for secret in [
        repo_password.trim(),
        WEBHOOK_SECRET,
        SLACK_PATH,
        "slack-secret",
        SMTP_PASSWORD,
    ] {
        assert!(!secret.is_empty());
        assert!(!page.contains(secret), "{secret} is on the config page");
    }
    b.screenshot("config");
    b.window(390, 844);
    b.screenshot("config-phone");
}

/// Without a session every page of these sends the browser to the login form, and back.
#[test]
fn dashboard_pages_send_a_browser_without_a_session_to_login() {
    let s = Served::start("");
    for path in ["/log", "/log?kind=run&failed=1", "/health", "/config"] {
        let r = s.http.get(format!("{}{path}", s.base)).send().unwrap();
        assert_eq!(r.status().as_u16(), 303, "{path}");
        let to = r.headers()["location"].to_str().unwrap().to_string();
        let next: String = url_encode(path);
        assert_eq!(to, format!("/login?next={next}"), "{path}");
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What goes wrong in a browser gets a page, not plain text: a query value that is no
/// number is the 422 page naming it; a form posted after the session expired goes to the
/// login form and on to the page it was posted from, starting nothing; the sixth wrong
/// login from an address is the login form again with 429 and `Retry-After`.
#[test]
fn dashboard_bad_query_expired_session_and_rate_limit_get_pages() {
    let users = users_toml(&[("olga", "operator", "olga password")]);
    let s = Served::start(&format!("[server]\nsession-ttl = \"2s\"\n{users}"));
    let html = |r: reqwest::blocking::Response, status: u16| -> String {
        assert_eq!(r.status().as_u16(), status);
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/html"), "{kind}");
        r.text().unwrap()
    };
    let login = s
        .http
        .post(format!("{}/login", s.base))
        .form(&[("user", "olga"), ("password", "olga password")])
        .send()
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = s
        .http
        .get(format!("{}/api/v1/session", s.base))
        .header("cookie", &cookie)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        "/projects/site?page=x",
        "/log?before=1-x&kind=run&x=",
        "/snapshots/latest?offset=-1",
    ] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .header("cookie", &cookie)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let page = html(r, status);
        assert_eq!(status, 422, "{path}: {page}");
        assert!(page.contains("id=\"error\""), "{path}: {page}");
    }

    std::thread::sleep(std::time::Duration::from_millis(2500));
    let r = s
        .http
        .post(format!("{}/projects/site/run", s.base))
        .header("cookie", &cookie)
        .header("referer", format!("{}/projects/site?page=1", s.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers()["location"],
        "/login?next=%2Fprojects%2Fsite%3Fpage%3D1"
    );
    let runs = strata_log(&s, &["--kind", "access"]);
    assert!(
        !runs.iter().any(|r| r["body"]["action"] == "run"),
        "nothing started: {runs:?}"
    );

    for i in 0..5 {
        let r = s
            .http
            .post(format!("{}/login", s.base))
            .form(&[
                ("user", "olga"),
                ("password", format!("guess {i}").as_str()),
            ])
            .send()
            .unwrap();
        let page = html(r, 401);
        assert!(page.contains("wrong user name or password"), "{page}");
    }
    let r = s
        .http
        .post(format!("{}/login", s.base))
        .form(&[("user", "olga"), ("password", "olga password")])
        .send()
        .unwrap();
    assert!(
        r.headers().get("retry-after").is_some(),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("set-cookie").is_none());
    let page = html(r, 429);
    assert!(page.contains("id=\"login\""), "the form again: {page}");
    assert!(page.contains("id=\"error\""), "{page}");
}
