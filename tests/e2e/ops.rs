//! `strata.toml` and `strata run` end to end (issue #16's acceptance): projects with files
//! and databases on the tests' real PostgreSQL, MariaDB and SQLite, a local and an SFTP
//! repository (the tests' sshd), simulated days through `--now`, a webhook receiver and a
//! real SMTP server (aiosmtpd) on 127.0.0.1, `log`, `health` and `stats` read back.
//!
//! Every test has a state directory, config and repositories of its own; the shared servers
//! get databases of the test's own names. Dump tools are counted through shims first on
//! PATH, which log their arguments and run the real tool.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::db::{self, Server};
use crate::remote;
use crate::util::*;

/// The start of every simulated history: a Tuesday, four days before a month ends, so that
/// ten daily runs cross into February (monthly retention and holds have a closed month).
const DAY0: &str = "2026-01-27";

/// The day `n` days after [`DAY0`] at `time` (UTC), as `--now` reads it.
fn day(n: i64, time: &str) -> String {
    let d: jiff::civil::Date = DAY0.parse().unwrap();
    let d = d.checked_add(jiff::Span::new().days(n)).unwrap();
    format!("{d} {time}Z")
}

/// The calendar day of a snapshot's RFC 3339 UTC time (`2026-01-31`).
fn date_of(time: &str) -> String {
    time[..10].to_string()
}

/// A test's own world: a directory with the config, the state directory, the repositories'
/// password, a shim directory for the dump tools, and the commands' environment.
struct Ops {
    env: Env,
    config: PathBuf,
    shims: PathBuf,
    extra: Vec<(String, String)>,
}

impl Ops {
    fn new() -> Ops {
        let env = Env::new();
        let shims = env.path("shims");
        std::fs::create_dir_all(&shims).unwrap();
        for tool in ["pg_dump", "mysqldump", "sqlite3"] {
            let real = which(tool);
            let script = format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\nexec '{real}' \"$@\"\n",
                log = shims.join(format!("{tool}.log")).display(),
                real = real.display()
            );
            let path = shims.join(tool);
            std::fs::write(&path, script).unwrap();
            chmod(&path, 0o755);
        }
        let config = env.path("strata.toml");
        Ops {
            env,
            config,
            shims,
            extra: Vec::new(),
        }
    }

    fn root(&self) -> &Path {
        &self.env.root
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    /// Writes the config, `{root}` replaced by the test's directory.
    fn write_config(&self, text: &str) {
        let text = text.replace("{root}", &self.root().display().to_string());
        std::fs::write(&self.config, text).unwrap();
    }

    /// A `strata` command with the config, the shims and the SFTP wrapper on PATH, UTC.
    fn cmd(&self) -> Cmd {
        let s = remote::servers();
        let mut path = std::ffi::OsString::from(&self.shims);
        path.push(":");
        path.push(remote::path_with(&s.ssh_bin));
        let mut cmd = Cmd::new()
            .env("STRATA_CONFIG", &self.config)
            .env("HOME", &self.env.home)
            .env("XDG_CACHE_HOME", &self.env.cache)
            .env("XDG_CONFIG_HOME", self.env.home.join(".config"))
            .env("XDG_STATE_HOME", self.env.home.join(".state"))
            .env("TZ", "UTC")
            .env("PATH", path)
            .env("STRATA_SSH_KEY", &s.user_key)
            .env("STRATA_NOTIFY_BACKOFF_MS", "20")
            .current_dir(self.root());
        for (k, v) in &self.extra {
            cmd = cmd.env(k, v);
        }
        cmd
    }

    fn strata<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Output {
        self.cmd().args(args).run()
    }

    /// `strata run ARGS --now TIME --json`; returns the output (the caller checks the code).
    fn run_at(&self, time: &str, args: &[&str]) -> Output {
        self.cmd()
            .args(["run", "--json", "--now", time])
            .args(args)
            .run()
    }

    /// `strata init` of a repository location with the test password and a cheap KDF.
    fn init(&self, url: &str) {
        self.cmd()
            .args([
                "init",
                "--kdf-memory",
                "1024",
                "--kdf-iterations",
                "1",
                "-r",
                url,
            ])
            .arg("--password-file")
            .arg(&self.env.password_file)
            .run()
            .success();
    }

    /// `snapshots --json` of a repository location.
    fn snapshots(&self, url: &str) -> Vec<Value> {
        let out = self
            .cmd()
            .args(["snapshots", "--json", "-r", url])
            .arg("--password-file")
            .arg(&self.env.password_file)
            .run()
            .success();
        out.json().as_array().cloned().unwrap_or_default()
    }

    /// The repository command `strata ARGS -r URL`.
    fn repo_cmd(&self, url: &str) -> Cmd {
        self.cmd()
            .args(["-r", url])
            .arg("--password-file")
            .arg(&self.env.password_file)
    }

    /// Invocations of a shimmed tool, each its argument line, without `--version` calls.
    fn tool_calls(&self, tool: &str) -> Vec<String> {
        std::fs::read_to_string(self.shims.join(format!("{tool}.log")))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("--version") && !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The SFTP URL of a directory below the test's root.
    fn sftp_url(&self, rel: &str) -> String {
        format!(
            "sftp://root@127.0.0.1:{}{}",
            remote::servers().sftp_port,
            self.path(rel).display()
        )
    }
}

fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on PATH: bash .ci/run installs it"))
}

/// Snapshots of a project by source: the snapshot's first path (a directory, a database
/// URL, a SQLite file) → the calendar days it has snapshots of, sorted.
fn days_by_source(snaps: &[Value], project: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in snaps.iter().filter(|s| s["project"] == project) {
        let source = s["paths"][0].as_str().unwrap().to_string();
        out.entry(source)
            .or_default()
            .push(date_of(s["time"].as_str().unwrap()));
    }
    for days in out.values_mut() {
        days.sort();
    }
    out
}

fn days(list: &[i64]) -> Vec<String> {
    list.iter().map(|n| date_of(&day(*n, "03:00:00"))).collect()
}

fn write_secret(path: &Path, value: &str) {
    std::fs::write(path, value).unwrap();
    chmod(path, 0o600);
}

/// `strata health --json --now TIME [PROJECT...]`: its exit code and the worst status of
/// its items other than free space, which is this machine's disk and not the test's to
/// judge (a full build directory makes it a warning).
fn health(ops: &Ops, time: &str, projects: &[&str]) -> (i32, String, Output) {
    let out = ops
        .cmd()
        .args(["health", "--json", "--now", time])
        .args(projects)
        .run();
    let report = out.json();
    let rank = |s: &str| {
        ["ok", "warning", "critical", "unknown"]
            .iter()
            .position(|x| *x == s)
    };
    let worst = report["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", out.describe()))
        .iter()
        .filter(|i| i["check"] != "free-space")
        .map(|i| i["status"].as_str().unwrap().to_string())
        .max_by_key(|s| rank(s))
        .unwrap_or_else(|| "ok".into());
    (out.code, worst, out)
}

/// The project `report["projects"]` entry named `name`.
fn project<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["projects"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["project"] == name))
        .unwrap_or_else(|| panic!("no project {name} in the report: {report}"))
}

// ---------------------------------------------------------------------------
// Two projects over ten days
// ---------------------------------------------------------------------------

/// shop (files, PostgreSQL, SQLite) and blog (files, MariaDB) into a local repository and
/// an SFTP one with retention of their own, run once a day for ten simulated days: every
/// source is dumped once a run (the copies to SFTP read no database), each repository keeps
/// exactly what its own retention says, the monthly survivor of a closed month is held on
/// the offsite repository, the copies restore to the same bytes, and `log`, `health` and
/// `stats` tell the same story.
#[test]
fn two_projects_ten_days_two_repositories() {
    let pg = db::postgres();
    let maria = db::mariadb();
    let ops = Ops::new();
    let shop_db = "ops_shop_days";
    let blog_db = "ops_blog_days";
    pg.drop_db(shop_db);
    pg.create_db(shop_db);
    maria.drop_db(blog_db);
    maria.create_db(blog_db);
    pg.sql(
        shop_db,
        "CREATE TABLE orders (id int primary key, note text)",
    );
    maria.sql(
        blog_db,
        "CREATE TABLE posts (id int primary key, body text)",
    );
    write_secret(&ops.path("db.pw"), db::DB_PASSWORD);
    for dir in ["shop", "blog", "data"] {
        std::fs::create_dir_all(ops.path(dir)).unwrap();
    }
    let jobs = ops.path("data/jobs.sqlite");
    let sqlite = |sql: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(&jobs)
            .arg(sql)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    sqlite("CREATE TABLE jobs (id integer primary key, payload text)");

    let hot = ops.path("hot").display().to_string();
    let offsite = ops.sftp_url("offsite");
    ops.init(&hot);
    ops.init(&offsite);
    let (_, pg_port) = pg.url_without_password(shop_db);
    ops.write_config(&format!(
        r#"
state-dir = "{{root}}/state"

[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"

[repositories.offsite]
url = "{offsite}"
password-file = "{{root}}/password"

[projects.shop]
schedule = "daily 03:00"
paths = ["{{root}}/shop"]
exclude = ["*.log"]
databases = [
  {{ postgres = "{pg_url}", password-file = "{{root}}/db.pw" }},
  {{ sqlite = "{{root}}/data/jobs.sqlite" }},
]
repositories = ["hot", "offsite"]

[projects.shop.retention]
keep-daily = 5

[projects.shop.retention.offsite]
keep-daily = 2
keep-monthly = 2
hold-monthly = "1y"

[projects.blog]
schedule = "daily 03:00"
paths = ["{{root}}/blog"]
databases = [ {{ mysql = "{my_url}", password-file = "{{root}}/db.pw" }} ]
repositories = ["hot", "offsite"]

[projects.blog.retention]
keep-last = 3
"#,
        pg_url = pg_port_url(pg, shop_db),
        my_url = maria.url_without_password(blog_db).0,
    ));
    let _ = pg_port;
    ops.strata(["config", "check"]).success();

    for n in 0..10 {
        // Each day brings an order, a post, a job and an upload (and a log nobody keeps).
        pg.sql(
            shop_db,
            &format!("INSERT INTO orders VALUES ({n}, 'order of day {n}')"),
        );
        maria.sql(
            blog_db,
            &format!("INSERT INTO posts VALUES ({n}, 'post of day {n}')"),
        );
        sqlite(&format!("INSERT INTO jobs (payload) VALUES ('job {n}')"));
        write_file(
            &ops.path(&format!("shop/upload-{n}.bin")),
            &random_bytes(n as u64, 50_000),
        );
        write_file(&ops.path(&format!("shop/app-{n}.log")), b"noise");
        write_file(
            &ops.path(&format!("blog/page-{n}.html")),
            format!("<p>day {n}</p>").as_bytes(),
        );
        let out = ops.run_at(&day(n, "03:00:00"), &[]);
        assert_eq!(out.code, 0, "day {n}: {}", out.describe());
        let report = out.json();
        for p in ["shop", "blog"] {
            assert_eq!(project(&report, p)["status"], "ok", "day {n}: {report}");
        }
    }

    // Sources were read once a run: no dump for the copies.
    assert_eq!(
        ops.tool_calls("pg_dump").len(),
        10,
        "{:?}",
        ops.tool_calls("pg_dump")
    );
    assert_eq!(ops.tool_calls("mysqldump").len(), 10);
    let sqlite_dumps = ops
        .tool_calls("sqlite3")
        .into_iter()
        .filter(|l| l.contains(".dump"))
        .count();
    assert_eq!(sqlite_dumps, 10);

    // Each repository kept what its own retention says, per source.
    let hot_snaps = ops.snapshots(&hot);
    let off_snaps = ops.snapshots(&offsite);
    let shop_hot = days_by_source(&hot_snaps, "shop");
    let shop_off = days_by_source(&off_snaps, "shop");
    assert_eq!(shop_hot.len(), 3, "{shop_hot:?}");
    for (source, kept) in &shop_hot {
        assert_eq!(kept, &days(&[5, 6, 7, 8, 9]), "hot, shop {source}");
    }
    assert_eq!(shop_off.len(), 3, "{shop_off:?}");
    for (source, kept) in &shop_off {
        // Daily: the last two days; monthly: February's newest (day 9) and January's (day 4).
        assert_eq!(kept, &days(&[4, 8, 9]), "offsite, shop {source}");
    }
    for snaps in [&hot_snaps, &off_snaps] {
        let blog = days_by_source(snaps, "blog");
        assert_eq!(blog.len(), 2, "{blog:?}");
        for (source, kept) in &blog {
            assert_eq!(kept, &days(&[7, 8, 9]), "blog {source}");
        }
    }
    // January's monthly survivor on offsite is held for a year; February is not over, so its
    // newest is not held yet; hot holds nothing.
    for s in off_snaps.iter().filter(|s| s["project"] == "shop") {
        let held = s["keep_until"].is_string();
        let date = date_of(s["time"].as_str().unwrap());
        assert_eq!(held, date == days(&[4])[0], "offsite {s}");
        if held {
            assert!(
                s["keep_until"].as_str().unwrap().starts_with("2027-01-31"),
                "{s}"
            );
        }
    }
    assert!(hot_snaps.iter().all(|s| !s["keep_until"].is_string()));

    // The copies hold the same bytes: the newest files snapshot of shop from both
    // repositories, and the newest PostgreSQL dump.
    let newest = |snaps: &[Value], project: &str, path_start: &str| -> String {
        snaps
            .iter()
            .filter(|s| {
                s["project"] == project && s["paths"][0].as_str().unwrap().starts_with(path_start)
            })
            .max_by_key(|s| s["time"].as_str().unwrap().to_string())
            .map(|s| s["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let shop_dir = ops.path("shop").display().to_string();
    for (url, name) in [(&hot, "from-hot"), (&offsite, "from-offsite")] {
        let snaps = if name == "from-hot" {
            &hot_snaps
        } else {
            &off_snaps
        };
        let id = newest(snaps, "shop", &shop_dir);
        ops.repo_cmd(url)
            .args(["restore", &id, "--target"])
            .arg(ops.path(name))
            .run()
            .success();
    }
    let a = restored(&ops.path("from-hot"), &ops.path("shop"));
    let b = restored(&ops.path("from-offsite"), &ops.path("shop"));
    assert_same_tree(&a, &b);
    assert!(a.join("upload-9.bin").is_file() && !a.join("app-9.log").exists());
    let dump = |url: &str, snaps: &[Value]| -> Vec<u8> {
        let id = newest(snaps, "shop", "postgres://");
        ops.repo_cmd(url).args(["dump", &id]).run().success().stdout
    };
    let from_hot = dump(&hot, &hot_snaps);
    assert_eq!(from_hot, dump(&offsite, &off_snaps));
    assert!(String::from_utf8_lossy(&from_hot).contains("order of day 9"));

    // The catalog: 10 runs of each project, 30 backups of shop, 10 copies a source.
    let log = |args: &[&str]| -> Vec<Value> {
        ops.strata([&["log", "--json"][..], args].concat())
            .success()
            .json()
            .as_array()
            .cloned()
            .unwrap()
    };
    let runs = log(&["--project", "shop", "--kind", "run"]);
    assert_eq!(runs.len(), 10, "{runs:?}");
    assert!(runs.iter().all(|r| r["ok"] == true));
    let backups = log(&["--project", "shop", "--kind", "backup"]);
    assert_eq!(backups.len(), 30);
    let copies = log(&["--project", "shop", "--kind", "copy"]);
    assert_eq!(copies.len(), 30);
    assert!(copies
        .iter()
        .all(|c| c["repository"] == "offsite" && c["ok"] == true));
    let forgotten = log(&["--project", "shop", "--kind", "retention"]);
    // hot: 5 days × 3 sources forgotten; offsite: 7 days × 3 (10 − {4, 8, 9}); plus holds.
    let forgets = forgotten
        .iter()
        .filter(|r| r["action"] == "forget" || r["body"]["action"] == "forget")
        .count();
    assert_eq!(forgets, 15 + 21, "{forgotten:?}");
    ops.strata(["log", "--verify"]).success();

    // Health at the last run: everything fresh.
    let (_, worst, out) = health(&ops, &day(9, "04:00:00"), &[]);
    assert_eq!(worst, "ok", "{}", out.describe());

    // Stats from the catalog: one row per run, the first adding the most.
    let stats = ops
        .cmd()
        .args(["stats", "--project", "shop", "--json"])
        .run()
        .success()
        .json();
    let rows = stats["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("{stats}"));
    assert_eq!(rows.len(), 10, "{stats}");
}

/// The URL of `db` on the shared PostgreSQL without its password.
fn pg_port_url(pg: &db::Postgres, db: &str) -> String {
    pg.url_without_password(db).0
}

// ---------------------------------------------------------------------------
// Failures, alarms and recovery
// ---------------------------------------------------------------------------

/// An HTTP receiver on 127.0.0.1 that answers 200 to everything and keeps each request.
struct Receiver {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let keep = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = BTreeMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                keep.lock().unwrap().push(Request {
                    path,
                    headers,
                    body,
                });
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { port, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The JSON bodies of the requests to `path`.
    fn events(&self, path: &str) -> Vec<(Request, Value)> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| {
                let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                (r, v)
            })
            .collect()
    }
}

/// A real SMTP server (aiosmtpd, from .ci/run's virtualenv) writing what it receives to a
/// Maildir.
struct Smtp {
    port: u16,
    maildir: PathBuf,
}

impl Smtp {
    fn start(dir: &Path) -> Smtp {
        let python = Path::new("/var/tmp/strata-venv/bin/python3");
        let python = if python.is_file() {
            python.to_path_buf()
        } else {
            which("python3")
        };
        let check = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .unwrap();
        assert!(
            check.success(),
            "aiosmtpd is missing: bash .ci/run installs it"
        );
        let port = free_port();
        let maildir = dir.join("maildir");
        start_server(
            "aiosmtpd",
            &format!(
                "{} -m aiosmtpd -n -l 127.0.0.1:{port} -c aiosmtpd.handlers.Mailbox {}",
                python.display(),
                maildir.display()
            ),
            port,
            &dir.join("smtp.log"),
            "TERM",
            None,
        );
        Smtp { port, maildir }
    }

    /// Every message received, as text.
    fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            for e in std::fs::read_dir(self.maildir.join(sub))
                .into_iter()
                .flatten()
            {
                out.push(std::fs::read_to_string(e.unwrap().path()).unwrap());
            }
        }
        out
    }
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Waits (up to a minute) for `cond`; notifications are sent before `run` exits, so this
/// only covers a slow receiver.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PostgreSQL stopped: shop fails and blog does not (exit 1); the webhook receiver gets the
/// failure signed with the shared secret, the SMTP server gets the mail, health is critical
/// (exit 2); with PostgreSQL back the next run succeeds and says `recovered`.
#[test]
fn postgres_down_fails_one_project_alerts_and_recovers() {
    let pg = db::Postgres::private();
    let ops = Ops::new();
    let receiver = Receiver::start();
    let smtp = Smtp::start(ops.root());
    let shop_db = "ops_down";
    pg.create_db(shop_db);
    pg.sql(shop_db, "CREATE TABLE t (id int)");
    write_secret(&ops.path("db.pw"), db::DB_PASSWORD);
    let hook_key = "hook-secret-value";
    write_secret(&ops.path("hook.key"), hook_key);
    for dir in ["shop", "blog"] {
        std::fs::create_dir_all(ops.path(dir)).unwrap();
        write_file(&ops.path(&format!("{dir}/index.html")), dir.as_bytes());
    }
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    ops.write_config(&format!(
        r#"
state-dir = "{{root}}/state"

[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"

[notifications.mail]
email = {{ smtp = "smtp://127.0.0.1:{smtp_port}", starttls = false, from = "backup@example.com", to = ["ops@example.com"] }}
on = ["failure", "recovered"]

[notifications.app]
webhook = {{ url = "http://127.0.0.1:{hook_port}/hooks/backup", secret-file = "{{root}}/hook.key" }}
on = ["failure", "recovered", "success"]

[projects.shop]
schedule = "daily 03:00"
max-age = "26h"
paths = ["{{root}}/shop"]
databases = [ {{ postgres = "{pg_url}", password-file = "{{root}}/db.pw" }} ]
repositories = ["hot"]
notify = ["mail", "app"]

[projects.blog]
schedule = "daily 03:00"
paths = ["{{root}}/blog"]
repositories = ["hot"]
notify = ["mail", "app"]
"#,
        smtp_port = smtp.port,
        hook_port = receiver.port,
        pg_url = pg.url_without_password(shop_db).0,
    ));

    let out = ops.run_at(&day(0, "03:00:00"), &[]);
    assert_eq!(out.code, 0, "{}", out.describe());

    pg.stop();
    let out = ops.run_at(&day(1, "03:00:00"), &[]);
    assert_eq!(out.code, 1, "{}", out.describe());
    let report = out.json();
    assert_eq!(project(&report, "shop")["status"], "failed", "{report}");
    assert_eq!(project(&report, "blog")["status"], "ok", "{report}");
    // blog's files and shop's files were still backed up; shop's database was not.
    let snaps = ops.snapshots(&hot);
    let on_day1: Vec<&Value> = snaps
        .iter()
        .filter(|s| date_of(s["time"].as_str().unwrap()) == days(&[1])[0])
        .collect();
    assert_eq!(on_day1.len(), 2, "{on_day1:?}");

    // The webhook: a failure event for shop, signed.
    let failures: Vec<(Request, Value)> = receiver
        .events("/hooks/backup")
        .into_iter()
        .filter(|(_, v)| v["event"] == "failure")
        .collect();
    assert_eq!(failures.len(), 1, "{:?}", receiver.requests());
    let (req, body) = &failures[0];
    assert_eq!(body["project"], "shop");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let signature = req
        .headers
        .get("x-strata-signature")
        .expect("signature header");
    assert_eq!(
        signature,
        &format!("sha256={}", hmac_hex(hook_key.as_bytes(), &req.body))
    );
    assert!(!String::from_utf8_lossy(&req.body).contains(hook_key));
    // The mail.
    let mail_arrived = || {
        smtp.messages()
            .iter()
            .any(|m| m.contains("shop") && m.contains("failure"))
    };
    if !mail_arrived() {
        std::thread::sleep(Duration::from_secs(5));
    }
    assert!(
        mail_arrived(),
        "no failure mail in {}: {:?}; the notify records: {}",
        smtp.maildir.display(),
        smtp.messages(),
        ops.strata(["log", "--json", "--kind", "notify"])
            .stdout_str()
    );
    let mail = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains("failure"))
        .unwrap();
    assert!(mail.contains("ops@example.com"), "{mail}");
    assert!(!mail.contains(db::DB_PASSWORD), "{mail}");

    // Health: shop critical, exit 2; blog fine.
    let (code, worst, out) = health(&ops, &day(1, "04:00:00"), &[]);
    assert_eq!(
        (code, worst.as_str()),
        (2, "critical"),
        "{}",
        out.describe()
    );
    let (_, worst, out) = health(&ops, &day(1, "04:00:00"), &["blog"]);
    assert_eq!(worst, "ok", "{}", out.describe());

    // PostgreSQL back: the next run succeeds and says so.
    pg.start();
    let out = ops.run_at(&day(2, "03:00:00"), &[]);
    assert_eq!(out.code, 0, "{}", out.describe());
    let recovered: Vec<(Request, Value)> = receiver
        .events("/hooks/backup")
        .into_iter()
        .filter(|(_, v)| v["event"] == "recovered")
        .collect();
    assert_eq!(recovered.len(), 1, "{:?}", receiver.requests());
    assert_eq!(recovered[0].1["project"], "shop");
    wait_for("the recovered mail", || {
        smtp.messages().iter().any(|m| m.contains("recovered"))
    });
    let (_, worst, out) = health(&ops, &day(2, "04:00:00"), &[]);
    assert_eq!(worst, "ok", "{}", out.describe());
    // Every notification is in the catalog.
    let notes = ops
        .strata(["log", "--json", "--kind", "notify"])
        .success()
        .json();
    assert!(notes.as_array().unwrap().len() >= 4, "{notes}");
}

/// A project whose backups simply stopped (the last run succeeded, nothing ran since) is
/// critical once its max-age has passed, without any failed run.
#[test]
fn stopped_backups_are_critical() {
    let ops = Ops::new();
    std::fs::create_dir_all(ops.path("site")).unwrap();
    write_file(&ops.path("site/a"), b"a");
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    ops.write_config(&format!(
        r#"
state-dir = "{{root}}/state"
[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"
[projects.site]
schedule = "daily 03:00"
paths = ["{{root}}/site"]
repositories = ["hot"]
"#
    ));
    let out = ops.run_at(&day(0, "03:00:00"), &[]);
    assert_eq!(out.code, 0, "{}", out.describe());
    let (_, worst, out) = health(&ops, &day(0, "05:00:00"), &[]);
    assert_eq!(worst, "ok", "{}", out.describe());
    // Default max-age of a daily schedule: 2 × 24 h + 1 h.
    let (code, worst, late) = health(&ops, &day(2, "05:00:00"), &[]);
    assert_eq!(
        (code, worst.as_str()),
        (2, "critical"),
        "{}",
        late.describe()
    );
    let report = late.json();
    let critical: Vec<&Value> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "critical")
        .collect();
    assert!(
        critical.len() == 1 && critical[0]["check"] == "last-success",
        "{}",
        late.describe()
    );
    let failed = ops
        .strata(["log", "--json", "--kind", "run"])
        .success()
        .json();
    assert!(failed.as_array().unwrap().iter().all(|r| r["ok"] == true));
}

// ---------------------------------------------------------------------------
// Run locks
// ---------------------------------------------------------------------------

/// A second `strata run` of a project that is running exits 11 with "already running"; a
/// run killed with SIGKILL does not block the next one.
#[test]
fn overlapping_runs_and_a_killed_run() {
    let ops = Ops::new();
    let slow = ops.path("slow");
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    std::fs::create_dir_all(ops.path("other")).unwrap();
    write_file(&ops.path("other/x"), b"x");
    ops.write_config(&format!(
        r#"
state-dir = "{{root}}/state"
[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"
[projects.queue]
commands = [ {{ name = "queue.txt", run = "while [ -e '{slow}' ]; do sleep 0.1; done; echo drained" }} ]
repositories = ["hot"]
[projects.other]
paths = ["{{root}}/other"]
repositories = ["hot"]
"#,
        slow = slow.display()
    ));
    write_file(&slow, b"");
    let (mut command, _) = ops.cmd().args(["run", "queue"]).build();
    let mut first = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = ops.path("state/locks/queue.lock");
    wait_for("the first run's lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|s| !s.trim().is_empty())
    });
    let second = ops.strata(["run", "queue", "other"]);
    assert_eq!(second.code, 11, "{}", second.describe());
    assert!(
        second
            .stderr
            .contains("project queue: already running since")
            || second
                .stdout_str()
                .contains("project queue: already running since"),
        "{}",
        second.describe()
    );
    // The other project went ahead.
    let snaps = ops.snapshots(&hot);
    assert_eq!(
        snaps.iter().filter(|s| s["project"] == "other").count(),
        1,
        "{snaps:?}"
    );

    // SIGKILL: the kernel drops the lock with the process (setsid made strata the group
    // leader: kill the group, so the command's loop goes too).
    let pid = first.id() as i32;
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    first.wait().unwrap();
    std::fs::remove_file(&slow).unwrap();
    let third = ops.strata(["run", "queue"]);
    assert_eq!(third.code, 0, "{}", third.describe());
    let snaps = ops.snapshots(&hot);
    assert_eq!(
        snaps.iter().filter(|s| s["project"] == "queue").count(),
        1,
        "{snaps:?}"
    );
}

// ---------------------------------------------------------------------------
// Bad configs
// ---------------------------------------------------------------------------

/// Unknown key, bad schedule, undefined repository, missing password file: each is reported
/// as FILE:LINE:COLUMN naming the key, by `config check` and by `run` (exit 2), and nothing
/// runs.
#[test]
fn bad_configs_name_file_line_column_and_key() {
    let ops = Ops::new();
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    std::fs::create_dir_all(ops.path("site")).unwrap();
    write_file(&ops.path("site/a"), b"a");
    let good = format!(
        "state-dir = \"{{root}}/state\"\n\
         [repositories.hot]\n\
         url = \"{hot}\"\n\
         password-file = \"{{root}}/password\"\n\
         [projects.site]\n\
         schedule = \"daily 03:00\"\n\
         paths = [\"{{root}}/site\"]\n\
         repositories = [\"hot\"]\n"
    );
    // (what, replace, with, line, key): the column is the value's (or the key's) own.
    let cases: [(&str, &str, &str, usize, &str); 4] = [
        (
            "unknown key",
            "schedule = \"daily 03:00\"",
            "schedule = \"daily 03:00\"\nretension = 3",
            7,
            "projects.site.retension",
        ),
        (
            "bad schedule",
            "schedule = \"daily 03:00\"",
            "schedule = \"daily 25:00\"",
            6,
            "projects.site.schedule",
        ),
        (
            "undefined repository",
            "repositories = [\"hot\"]",
            "repositories = [\"hot\", \"cold\"]",
            8,
            "projects.site.repositories",
        ),
        (
            "missing password file",
            "password-file = \"{root}/password\"",
            "password-file = \"{root}/no-such-file\"",
            4,
            "repositories.hot.password-file",
        ),
    ];
    ops.write_config(&good);
    ops.strata(["config", "check"]).success();
    // `FILE:LINE:COLUMN: key` somewhere in the text.
    let names = |text: &str, line: usize, key: &str| -> bool {
        let head = format!("{}:{line}:", ops.config.display());
        text.lines().any(|l| {
            l.find(&head).is_some_and(|at| {
                let rest = &l[at + head.len()..];
                let digits = rest.chars().take_while(char::is_ascii_digit).count();
                digits > 0 && rest[digits..].starts_with(&format!(": {key}"))
            })
        })
    };
    for (what, from, to, line, key) in cases {
        ops.write_config(&good.replace(from, to));
        let check = ops.strata(["config", "check"]);
        assert_eq!(check.code, 2, "{what}: {}", check.describe());
        assert!(
            names(&check.stderr, line, key) || names(&check.stdout_str(), line, key),
            "{what}: expected FILE:{line}:COL: {key} in {}",
            check.describe()
        );
        let run = ops.strata(["run"]);
        assert_eq!(run.code, 2, "{what}: {}", run.describe());
        assert!(names(&run.stderr, line, key), "{what}: {}", run.describe());
        assert!(ops.snapshots(&hot).is_empty(), "{what}: something ran");
    }
}

// ---------------------------------------------------------------------------
// The catalog
// ---------------------------------------------------------------------------

/// `log --verify` finds an edited and a deleted record; `log --rebuild` on an empty state
/// directory recreates the backup history from the repository.
#[test]
fn log_verify_finds_edits_and_deletions_and_rebuild_recreates_history() {
    let ops = Ops::new();
    std::fs::create_dir_all(ops.path("site")).unwrap();
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    let config = |state: &str| {
        format!(
            r#"
state-dir = "{{root}}/{state}"
[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"
[projects.site]
paths = ["{{root}}/site"]
databases = [ {{ sqlite = "{{root}}/jobs.sqlite" }} ]
commands = [ {{ name = "queue.txt", run = "echo queue" }} ]
repositories = ["hot"]
restore-test = "daily"
"#
        )
    };
    ops.write_config(&config("state"));
    let made = std::process::Command::new("sqlite3")
        .arg(ops.path("jobs.sqlite"))
        .arg("CREATE TABLE jobs (id integer primary key); INSERT INTO jobs VALUES (1);")
        .status()
        .unwrap();
    assert!(made.success());
    for n in 0..3 {
        write_file(&ops.path(&format!("site/{n}")), format!("{n}").as_bytes());
        let out = ops.run_at(&day(n, "03:00:00"), &[]);
        assert_eq!(out.code, 0, "{}", out.describe());
    }
    ops.strata(["log", "--verify"]).success();
    // One restore test a day (the SQLite database's newest snapshot), each passed.
    let tests = ops
        .strata(["log", "--json", "--kind", "restore-test"])
        .success()
        .json();
    let tests = tests.as_array().unwrap().clone();
    assert_eq!(tests.len(), 3, "{tests:?}");
    assert!(tests.iter().all(|t| t["ok"] == true), "{tests:?}");
    // A restore with -r is recorded too: who, which snapshot, where to.
    let site = ops.path("site").display().to_string();
    let snap = ops
        .snapshots(&hot)
        .iter()
        .find(|s| s["paths"][0] == site.as_str())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap();
    ops.repo_cmd(&hot)
        .args(["restore", &snap, "--target"])
        .arg(ops.path("restored"))
        .run()
        .success();
    let restores = ops
        .strata(["log", "--json", "--kind", "restore"])
        .success()
        .json();
    let restores = restores.as_array().unwrap();
    assert_eq!(restores.len(), 1, "{restores:?}");
    assert_eq!(restores[0]["body"]["snapshot_id"], snap.as_str());
    assert_eq!(restores[0]["repository"], "hot");
    assert_eq!(restores[0]["user"], "root");
    assert_eq!(
        restores[0]["body"]["target"],
        ops.path("restored").display().to_string()
    );
    let catalog = ops.path("state/catalog.sqlite");
    assert_eq!(
        std::fs::metadata(&catalog).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sql = |q: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(&catalog)
            .arg(q)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let before = sql("SELECT count(*) FROM records")
        .trim()
        .parse::<u64>()
        .unwrap();
    assert!(before >= 9, "{before}");
    // Edited: a backup's body says it added nothing.
    let backup_seq = sql("SELECT min(seq) FROM records WHERE kind = 'backup'")
        .trim()
        .to_string();
    let body = sql(&format!(
        "SELECT body FROM records WHERE seq = {backup_seq}"
    ));
    sql(&format!(
        "UPDATE records SET body = body || ' ' WHERE seq = {backup_seq}"
    ));
    let edited = ops.strata(["log", "--verify"]);
    assert_eq!(edited.code, 1, "{}", edited.describe());
    assert!(
        edited.describe().contains(&backup_seq),
        "{}",
        edited.describe()
    );
    sql(&format!(
        "UPDATE records SET body = '{}' WHERE seq = {backup_seq}",
        body.trim_end_matches('\n').replace('\'', "''")
    ));
    ops.strata(["log", "--verify"]).success();
    // Deleted: a record in the middle.
    sql(&format!("DELETE FROM records WHERE seq = {backup_seq}"));
    let deleted = ops.strata(["log", "--verify"]);
    assert_eq!(deleted.code, 1, "{}", deleted.describe());

    // Rebuild into an empty state directory from the repository's evidence.
    ops.write_config(&config("state2"));
    ops.strata(["log", "--rebuild"]).success();
    let rebuilt = ops
        .strata(["log", "--json", "--kind", "backup"])
        .success()
        .json();
    let rebuilt = rebuilt.as_array().unwrap();
    assert_eq!(rebuilt.len(), 9, "{rebuilt:?}");
    // The restore tests' history came back too, reports and all.
    let rebuilt_tests = ops
        .strata(["log", "--json", "--kind", "restore-test"])
        .success()
        .json();
    let strip = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                for k in ["seq", "hash"] {
                    r.as_object_mut().unwrap().remove(k);
                }
                r
            })
            .collect()
    };
    assert_eq!(strip(&rebuilt_tests), strip(&Value::Array(tests)));
    let ids: BTreeSet<String> = rebuilt
        .iter()
        .filter_map(|r| {
            r["snapshot_id"]
                .as_str()
                .or(r["body"]["snapshot_id"].as_str())
                .map(str::to_string)
        })
        .collect();
    let snaps: BTreeSet<String> = ops
        .snapshots(&hot)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, snaps);
}

// ---------------------------------------------------------------------------
// Databases through a prefix
// ---------------------------------------------------------------------------

/// A PostgreSQL database reached only as the `postgres` user over its unix socket (trust
/// authentication), named as the issue writes it (`postgres://USER@/DB`: no host, the
/// socket libpq finds through `PGHOST`), is dumped through an exec-prefix and its restore
/// test runs through the same prefix: the scratch database is created, loaded, counted and
/// dropped by psql run through it (a wrapper around `runuser -u postgres --` logs each
/// call), and the report has the table's rows.
#[test]
fn a_database_through_an_exec_prefix() {
    require("runuser", "util-linux");
    let pg = db::postgres();
    let mut ops = Ops::new();
    let name = "ops_prefix";
    pg.drop_db(name);
    pg.create_db(name);
    pg.sql(name, "CREATE TABLE items (id int, label text)");
    pg.sql(
        name,
        "INSERT INTO items VALUES (1, 'through the prefix'), (2, 'and back')",
    );
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    let log = ops.path("prefix.log");
    let prefix = ops.path("prefix");
    std::fs::write(
        &prefix,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\ntee -a '{log}' | runuser -u postgres -- \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    chmod(&prefix, 0o755);
    ops.extra
        .push(("PGHOST".into(), pg.socket_dir().display().to_string()));
    ops.extra.push(("PGPORT".into(), pg.port().to_string()));
    ops.write_config(&format!(
        r#"
state-dir = "{{root}}/state"
[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"
[projects.app]
databases = [
  {{ postgres = "postgres://postgres@/{name}", exec-prefix = ["{prefix}"] }},
]
repositories = ["hot"]
restore-test = "daily"
"#,
        prefix = prefix.display(),
    ));
    let out = ops.run_at(&day(0, "03:00:00"), &[]);
    assert_eq!(out.code, 0, "{}", out.describe());
    let snaps = ops.snapshots(&hot);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0]["paths"][0], format!("postgres://postgres@/{name}"));
    let id = snaps[0]["id"].as_str().unwrap();
    let dump = ops.repo_cmd(&hot).args(["dump", id]).run().success().stdout;
    assert!(
        String::from_utf8_lossy(&dump).contains("through the prefix"),
        "{}",
        String::from_utf8_lossy(&dump)
    );
    // The restore test passed, with the table's two rows counted in the scratch database.
    let tests = ops
        .strata(["log", "--json", "--kind", "restore-test"])
        .success()
        .json();
    let tests = tests.as_array().unwrap().clone();
    assert_eq!(tests.len(), 1, "{tests:?}");
    let report = &tests[0]["body"]["report"];
    assert_eq!(tests[0]["ok"], true, "{tests:?}");
    assert_eq!(report["passed"], true, "{report}");
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{report}");
    assert_eq!(tables[0]["table"], "public.items", "{report}");
    assert_eq!(tables[0]["expected_rows"], 2, "{report}");
    assert_eq!(tables[0]["restored_rows"], 2, "{report}");
    // Every step went through the prefix (its command line, and the SQL on its input): the
    // dump, the scratch database's existence check, creation, load, table list, counts and
    // drop; and it is gone.
    let calls = std::fs::read_to_string(&log).unwrap();
    let scratch = report["scratch"].as_str().unwrap();
    let scratch_name = scratch.rsplit('/').next().unwrap();
    assert!(scratch_name.starts_with("strata_verify_"), "{scratch}");
    for wanted in [
        "pg_dump".to_string(),
        format!("pg_database WHERE datname = '{scratch_name}'"),
        format!("CREATE DATABASE \"{scratch_name}\""),
        "pg_catalog.quote_ident(c.relname)".to_string(),
        "--single-transaction".to_string(),
        "SELECT count(*) FROM \"public\".\"items\"".to_string(),
        format!("DROP DATABASE IF EXISTS \"{scratch_name}\""),
    ] {
        assert!(
            calls.contains(&wanted),
            "{wanted} not in the prefix's calls:\n{calls}"
        );
    }
    assert!(
        !pg.databases().contains(scratch_name),
        "the scratch database {scratch_name} was left behind"
    );
}

/// `exec-prefix = ["ssh", ...]`, the issue's third example: the tools run on the other
/// side of an ssh connection (the tests' sshd, as root), each word quoted for the remote
/// shell, so the URL's `?` and `&` and the restore test's SQL reach psql as they are. The
/// backup and its restore test pass, the scratch database counted on that side.
#[test]
fn a_database_through_ssh() {
    let pg = db::postgres();
    let s = remote::servers();
    let ops = Ops::new();
    let name = "ops_ssh";
    pg.drop_db(name);
    pg.create_db(name);
    pg.sql(name, "CREATE TABLE \"Odd name\" (id int, label text)");
    pg.sql(
        name,
        "INSERT INTO \"Odd name\" VALUES (1, 'it''s over ssh'), (2, 'a & b'), (3, '$(x)')",
    );
    let hot = ops.path("hot").display().to_string();
    ops.init(&hot);
    // On the far side of ssh, a wrapper logs each command and the SQL on its input.
    let log = ops.path("remote.log");
    let wrap = ops.path("remote-wrap");
    std::fs::write(
        &wrap,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\ntee -a '{log}' | \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    chmod(&wrap, 0o755);
    ops.write_config(&format!(
        r#"
state-dir = "{{root}}/state"
[repositories.hot]
url = "{hot}"
password-file = "{{root}}/password"
[projects.app]
databases = [
  {{ postgres = "postgres://postgres@/{name}?host={socket}&port={port}",
     exec-prefix = ["ssh", "-i", "{key}", "-p", "{ssh_port}", "-o", "BatchMode=yes", "root@127.0.0.1", "{wrap}"] }},
]
repositories = ["hot"]
restore-test = "daily"
"#,
        socket = pg.socket_dir().display(),
        port = pg.port(),
        key = s.user_key.display(),
        ssh_port = s.sftp_port,
        wrap = wrap.display(),
    ));
    let out = ops.run_at(&day(0, "03:00:00"), &[]);
    assert_eq!(out.code, 0, "{}", out.describe());
    let snaps = ops.snapshots(&hot);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let id = snaps[0]["id"].as_str().unwrap();
    let dump = ops.repo_cmd(&hot).args(["dump", id]).run().success().stdout;
    let dump = String::from_utf8_lossy(&dump);
    assert!(
        dump.contains("it''s over ssh") || dump.contains("it's over ssh"),
        "{dump}"
    );
    let tests = ops
        .strata(["log", "--json", "--kind", "restore-test"])
        .success()
        .json();
    let tests = tests.as_array().unwrap().clone();
    assert_eq!(tests.len(), 1, "{tests:?}");
    let report = &tests[0]["body"]["report"];
    assert_eq!(report["passed"], true, "{report}");
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{report}");
    assert_eq!(tables[0]["table"], "public.\"Odd name\"", "{report}");
    assert_eq!(tables[0]["restored_rows"], 3, "{report}");
    // It ran on the far side: the dump, the scratch database's creation and its count.
    let calls = std::fs::read_to_string(&log).unwrap();
    for wanted in [
        "pg_dump",
        "CREATE DATABASE \"strata_verify_",
        "FROM \"public\".\"Odd name\"",
    ] {
        assert!(
            calls.contains(wanted),
            "{wanted} not run through ssh:\n{calls}"
        );
    }
}

use std::os::unix::fs::PermissionsExt;
