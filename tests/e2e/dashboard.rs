//! The dashboard (issue #17) in a real headless Chromium: logging in and out, the overview
//! with its health, "Back up now" followed to its end; and what a browser must not get
//! away with (a form without its CSRF token, a page without a session).

use crate::browser::Browser;
use crate::serve::{users_toml, Served};

/// A server whose config has `site` (backed up by `strata run`, so healthy) and `shop`
/// (never backed up: critical), and users alice (admin), olga (operator), vera (viewer).
pub(crate) fn dashboard_world() -> Served {
    let users = users_toml(&[
        ("alice", "admin", "alice password"),
        ("olga", "operator", "olga password"),
        ("vera", "viewer", "vera password"),
    ]);
    let s = Served::start(&format!(
        "[projects.shop]\npaths = [\"/nonexistent/shop\"]\nrepositories = [\"main\"]\n\
         [server]\n{users}"
    ));
    s.strata(["run", "site"]).success();
    s
}

#[test]
fn dashboard_login_overview_backup_now_logout() {
    let s = dashboard_world();
    let mut b = Browser::start("overview");
    // A page without a session sends the browser to the login form, and back after it.
    b.goto(&format!("{}/?from=test", s.base));
    b.find("#login");
    assert!(
        b.url().contains("/login?next=%2F%3Ffrom%3Dtest"),
        "{}",
        b.url()
    );
    b.screenshot("login");
    b.fill("#user", "olga");
    b.fill("#password", "wrong");
    b.click("#login button[type=submit]");
    let error = b.text("#error");
    assert!(error.contains("wrong user name or password"), "{error}");
    b.goto(&format!("{}/login", s.base));
    b.login(&s, "olga", "olga password");

    // The overview: shop is flagged critical and says why; site is ok.
    b.goto(&format!("{}/", s.base));
    assert_eq!(
        b.attr("#project-shop", "data-status").as_deref(),
        Some("critical")
    );
    assert!(
        !b.texts("#project-shop .reasons li").is_empty(),
        "{}",
        b.source()
    );
    // site was backed up: not critical (a warning may come from this machine's free disk
    // space, which the health checks judge too).
    let site = b.attr("#project-site", "data-status").unwrap_or_default();
    assert!(site == "ok" || site == "warning", "{site}: {}", b.source());
    assert!(
        b.texts("#project-site .reasons li")
            .iter()
            .all(|r| !r.contains("no successful backup")),
        "{}",
        b.source()
    );
    assert_eq!(b.text("#overall").to_lowercase(), "critical");
    assert!(b.exists("#project-site svg.chart"), "{}", b.source());
    b.screenshot("overview");
    b.window(390, 844);
    b.screenshot("overview-phone");
    b.window(1280, 900);

    // Back up now: the job's page follows the run to its end.
    let before = s.strata(["snapshots", "--json"]).success().json();
    b.click("#run-site");
    b.find("#job-state");
    assert!(b.url().contains("/jobs/"), "{}", b.url());
    b.screenshot("job-running");
    let state = b.wait_text("#job-state", "done", |t| {
        matches!(t.to_lowercase().as_str(), "succeeded" | "failed")
    });
    b.screenshot("job-done");
    assert_eq!(state.to_lowercase(), "succeeded", "{}", b.source());
    let after = s.strata(["snapshots", "--json"]).success().json();
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1,
        "the run made a snapshot"
    );

    // Log out: the session is gone, pages send the browser to the login form again.
    b.click("#logout");
    b.find("#login");
    b.goto(&format!("{}/", s.base));
    b.find("#login");
}

#[test]
fn dashboard_refuses_forms_without_csrf_and_viewers_get_no_buttons() {
    let s = dashboard_world();
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |user: &str, pw: &str| {
        let r = http
            .post(format!("{}/login", s.base))
            .form(&[("user", user), ("password", pw), ("next", "/")])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        cookie
    };
    let olga = login("olga", "olga password");
    // A form post without the token: 403, and no run started.
    let r = http
        .post(format!("{}/projects/site/run", s.base))
        .header("cookie", &olga)
        .form(&[("x", "1")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let page = r.text().unwrap();
    assert!(page.contains("CSRF"), "{page}");
    // A wrong token, and another session's own token, are refused the same way.
    let alice = login("alice", "alice password");
    let alice_csrf = http
        .get(format!("{}/api/v1/session", s.base))
        .header("cookie", &alice)
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    for token in ["0".repeat(64), alice_csrf] {
        let r = http
            .post(format!("{}/projects/site/run", s.base))
            .header("cookie", &olga)
            .form(&[("csrf", token.as_str())])
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{token}");
    }
    // Nothing was asked of the runner: a run started is audited before its job runs.
    let access = s
        .strata(["log", "--json", "--kind", "access"])
        .success()
        .json();
    assert!(
        !access.to_string().contains("\"run\""),
        "no run was started: {access}"
    );
    let log = s
        .strata(["log", "--json", "--kind", "backup"])
        .success()
        .json();
    assert_eq!(
        log.as_array().map(|a| a.len()),
        Some(1),
        "only the setup's run: {log}"
    );
    // A login posted from another site's page is refused.
    let r = http
        .post(format!("{}/login", s.base))
        .header("origin", "https://evil.example")
        .form(&[("user", "olga"), ("password", "olga password")])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    // A viewer's overview offers no "Back up now"; the operator's does.
    let vera = login("vera", "vera password");
    let page = |cookie: &str| {
        http.get(format!("{}/", s.base))
            .header("cookie", cookie)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert!(!page(&vera).contains("Back up now"));
    assert!(page(&olga).contains("Back up now"));
    // Pages are never cached; the stylesheet is.
    let r = http
        .get(format!("{}/", s.base))
        .header("cookie", &vera)
        .send()
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let css = http
        .get(format!("{}/assets/strata.css", s.base))
        .send()
        .unwrap();
    assert_eq!(css.status().as_u16(), 200);
    assert_ne!(css.headers()["cache-control"], "no-store");
}
