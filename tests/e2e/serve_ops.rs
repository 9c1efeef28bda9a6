//! `strata serve` as a service (issue #17): behind a reverse proxy (whose `X-Forwarded-For`
//! is believed only from `[server] trusted-proxies`), and stopped while a job runs (the job
//! is let finish).

use serde_json::json;

use crate::serve::{json_of, Served};

/// The addresses of the failed logins the audit log recorded.
fn failed_login_addresses(s: &Served) -> Vec<String> {
    let log = s
        .strata(["log", "--json", "--kind", "access"])
        .success()
        .json();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "login-failed" || r["body"]["action"] == "login-failed")
        .map(|r| {
            let a = if r["address"].is_string() {
                &r["address"]
            } else {
                &r["body"]["address"]
            };
            a.as_str().unwrap_or_default().to_string()
        })
        .collect()
}

fn failed_login(s: &Served, forwarded_for: &str) {
    let r = s
        .http
        .post(format!("{}/api/v1/session", s.base))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"user": "nobody", "password": "wrong"}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn serve_behind_a_trusted_proxy_audits_the_client_address() {
    // Trusted: the rightmost address that is not the proxy's is the client's; what the
    // client wrote further left is not believed.
    let s = Served::start("[server]\ntrusted-proxies = [\"127.0.0.1\"]\n");
    failed_login(&s, "10.9.9.9, 203.0.113.7");
    assert_eq!(failed_login_addresses(&s), ["203.0.113.7"]);
    // Not trusted: the header is anybody's to write; the socket's address counts.
    let s = Served::start("");
    failed_login(&s, "203.0.113.7");
    assert_eq!(failed_login_addresses(&s), ["127.0.0.1"]);
}

#[test]
fn serve_refuses_a_trusted_proxy_that_is_no_address() {
    let s = Served::start("");
    std::fs::write(
        &s.config,
        std::fs::read_to_string(&s.config).unwrap()
            + "[server]\ntrusted-proxies = [\"proxy.example\"]\n",
    )
    .unwrap();
    s.strata(["config", "check"])
        .failure()
        .stderr_contains("trusted-proxies[0]")
        .stderr_contains("expected an IP address");
}

#[test]
fn serve_stopped_during_a_backup_lets_it_finish() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("data.txt"), b"slow but sure\n").unwrap();
    let mut s = Served::start(&format!(
        "[projects.slow]\npaths = [\"{}\"]\nrepositories = [\"main\"]\nbefore = \"sleep 2\"\n",
        src.path().display()
    ));
    let body = json_of(
        s.post("/projects/slow/run", Some("operator"), &json!({})),
        202,
    );
    assert_eq!(body["job"]["project"], "slow", "{body}");
    // Once it runs (a job still queued when the server stops is refused, by design):
    // the hook sleeps 2 s, time enough to stop the server in.
    let id = body["job"]["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let job = json_of(s.get(&format!("/jobs/{id}"), Some("operator")), 200);
        if job["state"] == "running" {
            break;
        }
        assert_eq!(job["state"], "queued", "{job}");
        assert!(std::time::Instant::now() < deadline, "never ran: {job}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Stopped while the run's hook still sleeps: the server waits for the run to end.
    let status = s.stop();
    assert!(status.success(), "{status:?}");
    let snaps = s.strata(["snapshots", "--json"]).success().json();
    let slow: Vec<_> = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["project"] == "slow")
        .collect();
    assert_eq!(slow.len(), 1, "the run finished its backup: {snaps}");
}
