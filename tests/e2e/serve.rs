//! `strata serve` end to end (issue #17): the real binary serving a real repository on
//! 127.0.0.1, driven over HTTP.
//!
//! [`Served`] is a test's own world: a repository with a snapshot of a small site, a
//! `strata.toml` naming it, a token per role, and the server, stopped when the test ends.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// A running `strata serve` over a repository with one snapshot of `site/`.
#[allow(dead_code)] // the fields and helpers the API tests of #17 use as they come
pub(crate) struct Served {
    pub env: Env,
    pub config: PathBuf,
    pub base: String,
    /// A token per role: `viewer`, `operator`, `admin`.
    pub tokens: BTreeMap<&'static str, String>,
    pub http: reqwest::blocking::Client,
    child: Child,
}

#[allow(dead_code)]
impl Served {
    /// A repository with a snapshot of `site/` (project `site`), a config with
    /// `extra` appended (TOML: `[server]` keys, users, more projects), and the server.
    pub fn start(extra: &str) -> Served {
        let env = Env::init();
        let site = env.path("site");
        write_file(&site.join("index.html"), b"<h1>hello</h1>\n");
        write_file(&site.join("assets/app.js"), b"console.log('hi');\n");
        env.cmd()
            .args(["backup", "--project", "site"])
            .arg(&site)
            .run()
            .success();
        let config = env.path("strata.toml");
        std::fs::write(
            &config,
            format!(
                r#"state-dir = "{root}/state"
[repositories.main]
url = "{repo}"
password-file = "{password}"
[projects.site]
paths = ["{site}"]
repositories = ["main"]
{extra}
"#,
                root = env.root.display(),
                repo = env.repo.display(),
                password = env.password_file.display(),
                site = site.display(),
            ),
        )
        .unwrap();
        let mut tokens = BTreeMap::new();
        for role in ["viewer", "operator", "admin"] {
            let out = Cmd::new()
                .env("STRATA_CONFIG", &config)
                .env("HOME", &env.home)
                .args(["serve", "token", "add", role, "--role", role])
                .run()
                .success();
            tokens.insert(role, out.stdout_str().trim().to_string());
        }
        let mut child = Command::new(strata_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("STRATA_CONFIG", &config)
            .env("HOME", &env.home)
            .env("XDG_CACHE_HOME", &env.cache)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("strata serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("strata serve prints where it listens");
        let base = line
            .strip_prefix("strata serve: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Served {
            env,
            config,
            base,
            tokens,
            http,
            child,
        }
    }

    /// `GET /api/v1{path}` as `role` (`None`: no credentials).
    pub fn get(&self, path: &str, role: Option<&str>) -> reqwest::blocking::Response {
        self.auth(self.http.get(format!("{}/api/v1{path}", self.base)), role)
            .send()
            .unwrap()
    }

    /// `POST /api/v1{path}` with a JSON body as `role`.
    pub fn post(
        &self,
        path: &str,
        role: Option<&str>,
        body: &Value,
    ) -> reqwest::blocking::Response {
        self.auth(self.http.post(format!("{}/api/v1{path}", self.base)), role)
            .json(body)
            .send()
            .unwrap()
    }

    fn auth(
        &self,
        req: reqwest::blocking::RequestBuilder,
        role: Option<&str>,
    ) -> reqwest::blocking::RequestBuilder {
        match role {
            Some(r) => req.bearer_auth(&self.tokens[r]),
            None => req,
        }
    }

    /// `strata ARGS` with this world's config and repository.
    pub fn strata<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Output {
        self.env
            .cmd()
            .env("STRATA_CONFIG", &self.config)
            .args(args)
            .run()
    }
}

/// The argon2id hash of `password` as `strata serve user add --password-file` writes it
/// (made in a scratch config).
pub(crate) fn user_hash(name: &str, role: &str, password: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strata.toml");
    std::fs::write(&config, "").unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
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
        .run()
        .success();
    let text = std::fs::read_to_string(&config).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("password-hash = "))
        .unwrap_or_else(|| panic!("{text}"));
    line["password-hash = ".len()..]
        .trim_matches('"')
        .to_string()
}

/// The `[server.users.NAME]` tables of `users` (name, role, password).
pub(crate) fn users_toml(users: &[(&str, &str, &str)]) -> String {
    users
        .iter()
        .map(|(name, role, pw)| {
            format!(
                "[server.users.{name}]\npassword-hash = \"{}\"\nrole = \"{role}\"\n",
                user_hash(name, role, pw)
            )
        })
        .collect()
}

impl Served {
    /// Sends the server SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The caller's JSON body, with the status checked.
#[track_caller]
pub(crate) fn json_of(resp: reqwest::blocking::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// No credentials: 401 with the error's code; a token: who it is.
#[test]
fn tokens_name_the_caller() {
    let s = Served::start("");
    let body = json_of(s.get("/whoami", None), 401);
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    for role in ["viewer", "operator", "admin"] {
        let body = json_of(s.get("/whoami", Some(role)), 200);
        assert_eq!(body["role"], role, "{body}");
    }
    let forged = s
        .http
        .get(format!("{}/api/v1/whoami", s.base))
        .bearer_auth("strata_0000")
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
}
