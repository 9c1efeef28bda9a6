//! `strata serve` sessions and login security (issue #17): users made by `strata serve user
//! add`, logins, cookies, CSRF, expiry, rate limits, security headers, TLS.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};

use crate::serve::{json_of, Served};
use crate::util::*;

/// The argon2id hash `strata serve user add NAME --role ROLE --password-file` writes, made
/// in a scratch config (whose bytes before the new table must stay as they were).
fn hash_of(name: &str, role: &str, password: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strata.toml");
    let before = format!(
        "# scratch\nstate-dir = \"{}\"  # kept\n\n[server]\nsession-ttl = \"1h\"\n",
        dir.path().join("state").display()
    );
    std::fs::write(&config, &before).unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let add = |extra: &[&str]| {
        Cmd::new()
            .env("STRATA_CONFIG", &config)
            .env("HOME", dir.path())
            .args([
                "serve",
                "user",
                "add",
                name,
                "--role",
                role,
                "--password-file",
            ])
            .arg(&pw)
            .args(extra)
            .run()
    };
    add(&[]).success();
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with(&before), "{text}");
    // A second add is refused without --force and changes nothing.
    add(&[]).failure().stderr_contains("--force");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    let list = Cmd::new()
        .env("STRATA_CONFIG", &config)
        .env("HOME", dir.path())
        .args(["serve", "user", "list", "--json"])
        .run()
        .success()
        .json();
    assert_eq!(list, json!([{"name": name, "role": role}]));
    assert!(!text.contains(password), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("password-hash = "))
        .unwrap_or_else(|| panic!("{text}"));
    let hash = line["password-hash = ".len()..]
        .trim_matches('"')
        .to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

/// A server with users alice (admin, "alice password") and bob (viewer, "bob password").
fn with_users(extra: &str) -> Served {
    let alice = hash_of("alice", "admin", "alice password");
    let bob = hash_of("bob", "viewer", "bob password");
    Served::start(&format!(
        "[server]\n{extra}\n[server.users.alice]\npassword-hash = \"{alice}\"\nrole = \"admin\"\n\
         [server.users.bob]\npassword-hash = \"{bob}\"\nrole = \"viewer\"\n"
    ))
}

const FORM: &str = "application/x-www-form-urlencoded";

fn url(s: &Served, path: &str) -> String {
    format!("{}/api/v1{path}", s.base)
}

fn login(s: &Served, http: &Client, user: &str, password: &str) -> Response {
    http.post(url(s, "/session"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .unwrap()
}

/// The session cookie `strata_session=VALUE` a login set, and its whole Set-Cookie line.
fn cookie_of(resp: &Response) -> (String, String) {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_string();
    let pair = set.split(';').next().unwrap().trim().to_string();
    assert!(pair.starts_with("strata_session="), "{set}");
    (pair, set)
}

/// A client whose connections come from `ip` (any 127.x address reaches the server).
fn client_from(ip: &str) -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

fn access_records(s: &Served) -> Vec<Value> {
    let all = s
        .strata(["log", "--kind", "access", "--json"])
        .success()
        .json();
    all.as_array().unwrap().clone()
}

fn actions(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            let text = r.to_string();
            ["login-failed", "login", "logout"]
                .into_iter()
                .find(|a| text.contains(&format!("\"{a}\"")))
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

/// Log in (JSON and form) → a cookie (HttpOnly, SameSite=Strict, Path=/, not Secure over
/// plain HTTP) → whoami names the user; the session's CSRF token guards every
/// state-changing request (header or form field); logout ends it; all of it audited.
#[test]
fn serve_auth_login_session_csrf_logout() {
    let s = with_users("");
    let resp = login(&s, &s.http, "alice", "alice password");
    let (cookie, set) = cookie_of(&resp);
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let body = json_of(resp, 200);
    assert_eq!(body["user"], "alice", "{body}");
    assert_eq!(body["role"], "admin", "{body}");
    let csrf = body["csrf"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 64, "{body}");

    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    let who = json_of(who, 200);
    assert_eq!(who, json!({"name": "alice", "role": "admin"}));
    let current = s
        .http
        .get(url(&s, "/session"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(json_of(current, 200)["csrf"], csrf.as_str());

    // State-changing without the token, or with a wrong one: 403 csrf, session intact.
    for token in [None, Some("0".repeat(64))] {
        let mut req = s.http.delete(url(&s, "/session")).header("cookie", &cookie);
        if let Some(t) = &token {
            req = req.header("x-csrf-token", t);
        }
        let body = json_of(req.send().unwrap(), 403);
        assert_eq!(body["error"]["code"], "csrf", "{body}");
    }
    let form = s
        .http
        .post(url(&s, "/session/logout"))
        .header("cookie", &cookie)
        .header("content-type", FORM)
        .body("csrf=nope")
        .send()
        .unwrap();
    assert_eq!(json_of(form, 403)["error"]["code"], "csrf");
    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(who.status().as_u16(), 200);

    // Logout with the header: 204, the cookie cleared, the session gone.
    let out = s
        .http
        .delete(url(&s, "/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("strata_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(json_of(who, 401)["error"]["code"], "unauthorized");

    // A form login, and a form logout carrying the token in its csrf field.
    let resp = s
        .http
        .post(url(&s, "/session"))
        .header("content-type", FORM)
        .body("user=bob&password=bob+password")
        .send()
        .unwrap();
    let (bob, _) = cookie_of(&resp);
    let csrf = json_of(resp, 200)["csrf"].as_str().unwrap().to_string();
    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &bob)
        .send()
        .unwrap();
    assert_eq!(json_of(who, 200)["role"], "viewer");
    let out = s
        .http
        .post(url(&s, "/session/logout"))
        .header("cookie", &bob)
        .header("content-type", FORM)
        .body(format!("csrf={csrf}&other=1"))
        .send()
        .unwrap();
    assert_eq!(out.status().as_u16(), 204);
    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &bob)
        .send()
        .unwrap();
    assert_eq!(who.status().as_u16(), 401);

    let records = access_records(&s);
    assert_eq!(
        actions(&records),
        ["login", "logout", "login", "logout"],
        "{records:?}"
    );
    let first = records[0].to_string();
    assert!(
        first.contains("alice") && first.contains("127.0.0.1"),
        "{first}"
    );
}

/// A wrong password and an unknown user get the same 401; each is audited as
/// `login-failed`, without the password.
#[test]
fn serve_auth_wrong_password_is_401_and_audited() {
    let s = with_users("");
    let wrong = json_of(login(&s, &s.http, "alice", "not her password"), 401);
    let nobody = json_of(login(&s, &s.http, "mallory", "not her password"), 401);
    assert_eq!(wrong, nobody);
    assert_eq!(wrong["error"]["code"], "unauthorized", "{wrong}");
    let bad = s.http.post(url(&s, "/session")).body("{").send().unwrap();
    assert_eq!(json_of(bad, 400)["error"]["code"], "bad_request");
    let records = access_records(&s);
    assert_eq!(
        actions(&records),
        ["login-failed", "login-failed"],
        "{records:?}"
    );
    let text = serde_json::to_string(&records).unwrap();
    // A name no user has is not recorded (it may be a password typed in the wrong box).
    assert!(
        text.contains("user alice")
            && !text.contains("mallory")
            && text.contains("an unknown user name"),
        "{text}"
    );
    assert!(!text.contains("not her password"), "{text}");
}

/// Five failures from an address: the sixth login from there is 429 with Retry-After, even
/// with the right password; the user's own count stops guesses from other addresses too,
/// while another user from another address still logs in; that success does not free the
/// first address.
#[test]
fn serve_auth_brute_force_is_rate_limited() {
    let s = with_users("");
    let one = client_from("127.0.0.1");
    for i in 0..5 {
        let r = login(&s, &one, "alice", &format!("guess {i}"));
        assert_eq!(r.status().as_u16(), 401, "attempt {i}");
    }
    let r = login(&s, &one, "alice", "alice password");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert_eq!(json_of(r, 429)["error"]["code"], "too_many_requests");
    // Alice's name is spent from anywhere.
    let two = client_from("127.0.0.2");
    assert_eq!(
        login(&s, &two, "alice", "alice password").status().as_u16(),
        429
    );
    // Bob from elsewhere is not; his success frees nothing at 127.0.0.1.
    let three = client_from("127.0.0.3");
    assert_eq!(
        login(&s, &three, "bob", "bob password").status().as_u16(),
        200
    );
    assert_eq!(
        login(&s, &one, "bob", "bob password").status().as_u16(),
        429
    );
}

/// A session lives for `session-ttl` by the server's clock, then it is no caller.
#[test]
fn serve_auth_session_expires() {
    let s = with_users("session-ttl = \"2s\"");
    let resp = login(&s, &s.http, "bob", "bob password");
    let (cookie, set) = cookie_of(&resp);
    assert!(set.contains("Max-Age=2"), "{set}");
    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(who.status().as_u16(), 200);
    std::thread::sleep(Duration::from_millis(2500));
    let who = s
        .http
        .get(url(&s, "/whoami"))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(json_of(who, 401)["error"]["code"], "unauthorized");
}

/// Security headers on every answer (an error too), no-store on the API, and a body over
/// 1 MiB refused with 413 as JSON.
#[test]
fn serve_auth_security_headers_and_body_limit() {
    let s = with_users("");
    for resp in [s.get("/whoami", Some("viewer")), s.get("/whoami", None)] {
        let h = resp.headers();
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; frame-ancestors 'none'"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h.get("strict-transport-security").is_none());
    }
    let big = format!(
        "{{\"user\": \"alice\", \"password\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    let resp = s
        .http
        .post(url(&s, "/session"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .unwrap();
    assert_eq!(json_of(resp, 413)["error"]["code"], "payload_too_large");
    // A session's form post is read for its csrf field: over the limit, the same 413.
    let resp = login(&s, &s.http, "bob", "bob password");
    let (cookie, _) = cookie_of(&resp);
    let resp = s
        .http
        .post(url(&s, "/session/logout"))
        .header("cookie", &cookie)
        .header("content-type", FORM)
        .body(format!("a={}", "x".repeat(2 << 20)))
        .send()
        .unwrap();
    assert_eq!(json_of(resp, 413)["error"]["code"], "payload_too_large");
    // A token needs no CSRF token (logging a token out is a plain 400, not a 403).
    let resp = s
        .http
        .delete(url(&s, "/session"))
        .bearer_auth(&s.tokens["admin"])
        .send()
        .unwrap();
    assert_eq!(json_of(resp, 400)["error"]["code"], "bad_request");
}

/// A second `strata serve` over `s`'s config with `args`; its first stdout line, and the
/// child (stopped by the caller).
fn serve_with(s: &Served, args: &[&std::ffi::OsStr]) -> (Stopped, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(strata_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("STRATA_CONFIG", &s.config)
        .env("HOME", &s.env.home)
        .env("XDG_CACHE_HOME", &s.env.cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let child = Stopped(child);
    let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (child, line)
}

/// A server process stopped when the test ends, passed or failed (an orphan would keep the
/// test's stderr open).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// `--tls-cert/--tls-key` with a self-signed certificate: HTTPS answers whoami (the client
/// trusting that certificate), a login's cookie is Secure and HSTS is sent; plain HTTP to
/// the same port gets no answer.
#[test]
fn serve_auth_tls_with_a_self_signed_certificate() {
    let s = with_users("");
    let cert = s.env.path("cert.pem");
    let key = s.env.path("key.pem");
    // A self-signed end-entity certificate (webpki refuses a CA as a server's certificate).
    let cnf = s.env.path("openssl.cnf");
    std::fs::write(
        &cnf,
        "[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n[dn]\nCN = localhost\n\
         [ext]\nbasicConstraints = critical,CA:FALSE\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n\
         extendedKeyUsage = serverAuth\nkeyUsage = critical,digitalSignature\n",
    )
    .unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-config"])
        .arg(&cnf)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{made:?}");
    let (child, line) = serve_with(
        &s,
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    let base = line
        .strip_prefix("strata serve: listening on ")
        .unwrap_or_else(|| panic!("{line}"))
        .to_string();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let https = Client::builder()
        .timeout(Duration::from_secs(30))
        .add_root_certificate(root)
        .build()
        .unwrap();
    let who = https
        .get(format!("{base}/api/v1/whoami"))
        .bearer_auth(&s.tokens["operator"])
        .send()
        .unwrap();
    assert_eq!(
        who.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(json_of(who, 200)["role"], "operator");
    let resp = https
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"user": "alice", "password": "alice password"}))
        .send()
        .unwrap();
    let (_, set) = cookie_of(&resp);
    assert!(set.contains("; Secure"), "{set}");
    // A client that does not trust the certificate is refused; so is plain HTTP.
    let untrusting = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{base}/api/v1/whoami"))
        .send()
        .is_err());
    let plain = base.replace("https://", "http://");
    assert!(untrusting
        .get(format!("{plain}/api/v1/whoami"))
        .send()
        .is_err());
    drop(child);
}

/// A certificate or key that cannot be used stops `strata serve` at start, naming the file;
/// an address other than loopback without TLS is refused (unless --insecure-http).
#[test]
fn serve_auth_refuses_bad_tls_files_and_open_plain_http() {
    let s = Served::start("");
    let garbage = s.env.path("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = s.env.path("missing.pem");
    let cases = [
        (missing.clone(), garbage.clone(), missing.clone()),
        (garbage.clone(), garbage.clone(), garbage.clone()),
    ];
    for (cert, key, named) in cases {
        let out = s
            .strata([
                "serve".as_ref(),
                "--listen".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--tls-cert".as_ref(),
                cert.as_os_str(),
                "--tls-key".as_ref(),
                key.as_os_str(),
            ])
            .code(1);
        assert!(out.stdout.is_empty(), "{}", out.describe());
        assert!(
            out.stderr.contains(&named.display().to_string()),
            "{}",
            out.describe()
        );
    }
    let out = s.strata(["serve", "--listen", "0.0.0.0:0"]).code(1);
    assert!(
        out.stderr.contains("0.0.0.0:0 is not a loopback address")
            && out.stderr.contains("--insecure-http"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.is_empty(), "{}", out.describe());
}
