//! Database backups (`backup --postgres/--mysql/--sqlite`, `restore --to-*`, `dump`,
//! `verify --restore-test`) against real servers on 127.0.0.1, started here once per test
//! process from Debian's packages and stopped when it exits: a PostgreSQL cluster made with
//! `initdb` (run as the `postgres` user), and a MariaDB server made with
//! `mariadb-install-db`. Both keep everything (data, sockets, logs) in a temporary directory
//! that the watchdog removes after the server stopped; neither goes near the system's own
//! cluster (port 5432, /var/run/postgresql, /var/lib/mysql). They run without fsync: the
//! tests need real servers, not durable ones.
//!
//! Workloads are the servers' own benchmark loaders (`pgbench -i`, `sysbench ... prepare`)
//! at small scales, plus a few hand-made tables. Each test uses databases of its own names,
//! so tests run in parallel on the shared servers. `.ci/run` installs every tool used here;
//! a missing one fails the test with a message saying which package to install.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// The database user of the tests, on both servers (a superuser: it creates databases).
const DB_USER: &str = "strata";
pub(crate) const DB_PASSWORD: &str = "strata-pw";

// ---------------------------------------------------------------------------
// Starting servers
// ---------------------------------------------------------------------------

/// A client tool with an environment of our own: no PG*/MYSQL* settings of whoever runs
/// the tests, and a HOME without ~/.pgpass, ~/.my.cnf or ~/.sqliterc.
fn tool(program: impl AsRef<OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in CLIENT_VARS {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home).current_dir(home).stdin(Stdio::null());
    cmd
}

/// Environment variables that would point the database tools elsewhere.
const CLIENT_VARS: [&str; 12] = [
    "PGPASSWORD",
    "PGPASSFILE",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSERVICE",
    "MYSQL_PWD",
    "MYSQL_HOST",
    "MYSQL_TCP_PORT",
    "MYSQL_UNIX_PORT",
];

/// Runs a tool to completion; returns its stdout, or fails the test with its stderr.
#[track_caller]
fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// What the tests do with a database server, whichever it is.
pub(crate) trait Server {
    /// The snapshot's `source`, and the flags' names: `--postgres`, `--to-postgres`.
    fn kind(&self) -> &'static str;
    /// The URL of `db` with the test user's password.
    fn url(&self, db: &str) -> String;
    /// The URL of `db` without a password, and the variable that gives it instead.
    fn url_without_password(&self, db: &str) -> (String, &'static str);
    /// Runs SQL in `db` (one statement); returns its rows, tab-separated, trimmed.
    fn sql(&self, db: &str, sql: &str) -> String;
    fn create_db(&self, db: &str);
    fn drop_db(&self, db: &str);
    fn databases(&self) -> BTreeSet<String>;
    /// A plain SQL dump of `db`, as the tool writes it.
    fn dump(&self, db: &str) -> Vec<u8>;
    /// `dump` without the lines that differ between two dumps of the same content.
    fn normalise(&self, dump: &[u8]) -> Vec<u8>;
    /// A table's name as the snapshot's `rows:<table>` keys write it.
    fn table(&self, name: &str) -> String;
}

/// Every database a test creates, by server kind: tests run in parallel on the shared
/// servers, so a restore test tells its own leftovers from the others' databases by this.
static TEST_DATABASES: Mutex<BTreeSet<(&str, String)>> = Mutex::new(BTreeSet::new());

fn register_database(server: &dyn Server, db: &str) {
    TEST_DATABASES
        .lock()
        .unwrap()
        .insert((server.kind(), db.to_string()));
}

/// Databases on `server` now that were not there `before` and no test made (a scratch
/// database left behind).
fn leftover_databases(server: &dyn Server, before: &BTreeSet<String>) -> Vec<String> {
    let now = server.databases();
    let made = TEST_DATABASES.lock().unwrap();
    now.difference(before)
        .filter(|d| !made.contains(&(server.kind(), d.to_string())))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

pub(crate) struct Postgres {
    /// Data directory `data/`, the unix socket and the log; the watchdog removes it.
    dir: tempfile::TempDir,
    port: u16,
    /// The server's bin directory (initdb, postgres, pgbench).
    bin: PathBuf,
    /// The command line that starts the server.
    command: String,
    /// The shared server (`postgres()`), which the watchdog removes.
    shared: bool,
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.shared {
            self.try_stop();
        }
    }
}

/// The newest PostgreSQL under /usr/lib/postgresql (Debian's layout).
fn postgres_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server in /usr/lib/postgresql: install postgresql (bash .ci/run does)"
        )
    })
}

pub(crate) fn postgres() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    // The static is never dropped: the watchdog removes the directory after the server.
    SERVER.get_or_init(|| start_postgres(true))
}

/// Makes a cluster in a new directory and starts it. `shared`: the watchdog removes the
/// directory after the server stopped (the static is never dropped); otherwise the
/// `Postgres` value owns it, and a test may stop and start the server.
fn start_postgres(shared: bool) -> Postgres {
    let bin = postgres_bin_dir();
    for t in ["initdb", "postgres", "pgbench"] {
        require(bin.join(t), "postgresql");
    }
    require("psql", "postgresql-client");
    require("pg_dump", "postgresql-client");
    require("setpriv", "util-linux");
    // initdb and the server refuse to run as root.
    let user = nix::unistd::User::from_name("postgres")
        .ok()
        .flatten()
        .expect("no `postgres` user: install postgresql (bash .ci/run does)");
    let dir = tempfile::Builder::new()
        .prefix("strata-pg-")
        .tempdir()
        .unwrap();
    let d = dir.path();
    nix::unistd::chown(d, Some(user.uid), Some(user.gid)).unwrap();
    let as_postgres = |program: &Path| {
        let mut cmd = tool("setpriv", d);
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--",
        ])
        .arg(program);
        cmd
    };
    // Trust on the socket (only root and postgres can reach it), passwords (SCRAM)
    // over TCP.
    run_ok(
        as_postgres(&bin.join("initdb"))
            .arg("--pgdata")
            .arg(d.join("data"))
            .args([
                "--username=postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ]),
    );
    let port = free_port();
    let command = format!(
        "setpriv --reuid=postgres --regid=postgres --clear-groups -- {postgres} \
         -D {d}/data -h 127.0.0.1 -p {port} -k {d} \
         -c fsync=off -c full_page_writes=off -c synchronous_commit=off",
        postgres = bin.join("postgres").display(),
        d = d.display()
    );
    let pg = Postgres {
        dir,
        port,
        bin,
        command,
        shared,
    };
    pg.start();
    run_ok(
        tool("psql", pg.dir.path())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password"])
            .arg("--host")
            .arg(pg.dir.path())
            .args(["--port", &port.to_string(), "-U", "postgres", "-d"])
            .args(["postgres", "-c"])
            .arg(format!(
                "CREATE ROLE {DB_USER} LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'"
            )),
    );
    pg
}

impl Postgres {
    /// A cluster of the caller's own, which it may stop and start; removed when dropped.
    pub(crate) fn private() -> Postgres {
        start_postgres(false)
    }

    /// Starts the server (again) under a watchdog and waits until it listens.
    pub(crate) fn start(&self) {
        let d = self.dir.path();
        start_server(
            "postgres",
            &self.command,
            self.port,
            &d.join("postgres.log"),
            "INT",
            self.shared.then_some(d),
        );
    }

    /// Stops the server (fast shutdown) and waits until it no longer listens.
    pub(crate) fn stop(&self) {
        assert!(self.try_stop(), "postgres did not stop within a minute");
    }

    /// Stops the server; false when it still runs after a minute.
    fn try_stop(&self) -> bool {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            return true;
        };
        let Ok(pid) = text.lines().next().unwrap_or("").trim().parse::<i32>() else {
            return true;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while pid_file.exists() || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    /// The cluster's data directory (owned by the `postgres` user).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's unix socket (trust authentication for local users).
    pub(crate) fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `pgbench -i -s SCALE`: four tables, 100,000 × SCALE accounts.
    fn pgbench_init(&self, db: &str, scale: u32) {
        run_ok(
            tool(self.bin.join("pgbench"), self.dir.path())
                .args(["-i", "-q", "-s", &scale.to_string()])
                .arg(self.url(db)),
        );
    }

    /// The tables `pgbench -i -s SCALE` makes, with their row counts.
    fn pgbench_tables(&self, scale: u64) -> Vec<(String, u64)> {
        vec![
            (self.table("pgbench_accounts"), 100_000 * scale),
            (self.table("pgbench_branches"), scale),
            (self.table("pgbench_history"), 0),
            (self.table("pgbench_tellers"), 10 * scale),
        ]
    }
}

impl Server for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    fn url_without_password(&self, db: &str) -> (String, &'static str) {
        (
            format!("postgres://{DB_USER}@127.0.0.1:{}/{db}", self.port),
            "PGPASSWORD",
        )
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        let out = run_ok(
            tool("psql", self.dir.path())
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["--no-password", "-d", &self.url(db), "-c", sql]),
        );
        String::from_utf8(out).unwrap().trim().to_string()
    }

    fn create_db(&self, db: &str) {
        register_database(self, db);
        self.sql("postgres", &format!("CREATE DATABASE {db}"));
    }

    fn drop_db(&self, db: &str) {
        self.sql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        );
    }

    fn databases(&self) -> BTreeSet<String> {
        self.sql("postgres", "SELECT datname FROM pg_database")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn dump(&self, db: &str) -> Vec<u8> {
        run_ok(
            tool("pg_dump", self.dir.path())
                .args(["--no-password", "--dbname"])
                .arg(self.url(db)),
        )
    }

    /// pg_dump (15.14 and later) opens and closes every dump with `\restrict KEY` /
    /// `\unrestrict KEY`, a random key of each run: those two lines go.
    fn normalise(&self, dump: &[u8]) -> Vec<u8> {
        drop_lines(dump, &["\\restrict ", "\\unrestrict "])
    }

    fn table(&self, name: &str) -> String {
        format!("public.{name}")
    }
}

// ---------------------------------------------------------------------------
// MariaDB
// ---------------------------------------------------------------------------

pub(crate) struct Mariadb {
    /// Data directory `data/`, the socket and the log; the watchdog removes it.
    dir: tempfile::TempDir,
    port: u16,
}

pub(crate) fn mariadb() -> &'static Mariadb {
    static SERVER: OnceLock<Mariadb> = OnceLock::new();
    SERVER.get_or_init(|| {
        // Debian's root PATH has /usr/sbin; a CI runner's may not.
        let mariadbd = if have_tool("mariadbd") {
            "mariadbd"
        } else {
            "/usr/sbin/mariadbd"
        };
        require(mariadbd, "mariadb-server");
        require("mariadb-install-db", "mariadb-server");
        require("mariadb", "mariadb-client");
        require("mysqldump", "mariadb-client");
        require("sysbench", "sysbench");
        let dir = tempfile::Builder::new()
            .prefix("strata-mariadb-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let data = d.join("data");
        // A small redo log: the default is 96 MiB of temporary disk.
        let server_args = format!(
            "--no-defaults --datadir={} --user=root --innodb-log-file-size=16M",
            data.display()
        );
        run_ok(
            tool("mariadb-install-db", d)
                .args(server_args.split(' '))
                .args(["--auth-root-authentication-method=socket", "--skip-test-db"]),
        );
        let port = free_port();
        let socket = d.join("mysql.sock");
        let command = format!(
            "{mariadbd} {server_args} --bind-address=127.0.0.1 --port={port} \
             --socket={socket} --pid-file={d}/mariadbd.pid --skip-name-resolve --skip-log-bin \
             --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --event-scheduler=ON",
            socket = socket.display(),
            d = d.display()
        );
        start_server(
            "mariadbd",
            &command,
            port,
            &d.join("mariadbd.log"),
            "TERM",
            Some(d),
        );
        // root logs in over the socket (unix_socket authentication): it makes the test user.
        run_ok(
            tool("mariadb", d)
                .arg("--no-defaults")
                .arg(format!("--socket={}", socket.display()))
                .args(["-u", "root", "-e"])
                .arg(format!(
                    "CREATE USER '{DB_USER}'@'%' IDENTIFIED BY '{DB_PASSWORD}'; \
                     GRANT ALL PRIVILEGES ON *.* TO '{DB_USER}'@'%' WITH GRANT OPTION;"
                )),
        );
        Mariadb { dir, port }
    })
}

impl Mariadb {
    /// `sysbench oltp_read_write prepare`: tables `sbtest1..N` of `size` rows each.
    fn sysbench_prepare(&self, db: &str, tables: u32, size: u32) {
        run_ok(
            tool("sysbench", self.dir.path())
                .args([
                    "oltp_read_write",
                    "--db-driver=mysql",
                    "--mysql-host=127.0.0.1",
                ])
                .arg(format!("--mysql-port={}", self.port))
                .arg(format!("--mysql-user={DB_USER}"))
                .arg(format!("--mysql-password={DB_PASSWORD}"))
                .arg(format!("--mysql-db={db}"))
                .arg(format!("--tables={tables}"))
                .arg(format!("--table-size={size}"))
                .arg("prepare"),
        );
    }

    fn sysbench_tables(&self, tables: u32, size: u64) -> Vec<(String, u64)> {
        (1..=tables)
            .map(|i| (self.table(&format!("sbtest{i}")), size))
            .collect()
    }

    fn client(&self, program: &str) -> Command {
        let mut cmd = tool(program, self.dir.path());
        // Like the backup's own mysqldump, the client reads the system's option files
        // (Debian's /etc/mysql); only HOME is ours.
        cmd.args(["--protocol=TCP", "--host=127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={DB_USER}"))
            .arg(format!("--password={DB_PASSWORD}"));
        cmd
    }
}

impl Server for Mariadb {
    fn kind(&self) -> &'static str {
        "mysql"
    }

    fn url(&self, db: &str) -> String {
        format!(
            "mysql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{}/{db}",
            self.port
        )
    }

    fn url_without_password(&self, db: &str) -> (String, &'static str) {
        (
            format!("mysql://{DB_USER}@127.0.0.1:{}/{db}", self.port),
            "MYSQL_PWD",
        )
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        let out = run_ok(
            self.client("mariadb")
                .args(["--batch", "--skip-column-names"])
                .arg(format!("--database={db}"))
                .args(["-e", sql]),
        );
        String::from_utf8(out).unwrap().trim().to_string()
    }

    fn create_db(&self, db: &str) {
        register_database(self, db);
        self.sql("mysql", &format!("CREATE DATABASE `{db}`"));
    }

    fn drop_db(&self, db: &str) {
        self.sql("mysql", &format!("DROP DATABASE IF EXISTS `{db}`"));
    }

    fn databases(&self) -> BTreeSet<String> {
        self.sql("mysql", "SHOW DATABASES")
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn dump(&self, db: &str) -> Vec<u8> {
        run_ok(
            self.client("mysqldump")
                .args([
                    "--single-transaction",
                    "--routines",
                    "--triggers",
                    "--events",
                ])
                .arg(db),
        )
    }

    /// Comment lines go that differ between two dumps of the same content: mysqldump's
    /// trailer `-- Dump completed on <date>`; the comments naming the database (which a
    /// restore may change): `-- Host: 127.0.0.1    Database: <name>`, `-- Dumping events
    /// for database '<name>'`, `-- Dumping routines ...`; and `-- ORDER BY:  <key>`, which
    /// only --order-by-primary writes (InnoDB rows come in primary key order either way).
    fn normalise(&self, dump: &[u8]) -> Vec<u8> {
        drop_lines(
            dump,
            &[
                "-- Dump completed",
                "-- Host: ",
                "-- Dumping events for database ",
                "-- Dumping routines for database ",
                "-- ORDER BY: ",
            ],
        )
    }

    fn table(&self, name: &str) -> String {
        name.to_string()
    }
}

// ---------------------------------------------------------------------------
// SQLite
// ---------------------------------------------------------------------------

/// Runs SQL on a SQLite file (waiting for a writer's lock); returns its output, trimmed.
fn sqlite(file: &Path, sql: &str) -> String {
    require("sqlite3", "sqlite3");
    let out = run_ok(
        tool("sqlite3", file.parent().unwrap())
            .args(["-bail", "-batch", "-cmd", ".timeout 30000"])
            .arg(file)
            .arg(sql),
    );
    String::from_utf8(out).unwrap().trim().to_string()
}

fn sqlite_dump(file: &Path) -> Vec<u8> {
    require("sqlite3", "sqlite3");
    run_ok(
        tool("sqlite3", file.parent().unwrap())
            .arg("-batch")
            .arg(file)
            .arg(".dump"),
    )
}

/// A SQLite file with table `t` of `rows` rows.
fn make_sqlite(file: &Path, rows: u32) {
    sqlite(
        file,
        &format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL); \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < {rows}) \
             INSERT INTO t SELECT n, 'row ' || n FROM c;"
        ),
    );
}

// ---------------------------------------------------------------------------
// Running strata and reading what it wrote
// ---------------------------------------------------------------------------

/// `strata ...` in `env`, without database settings from the test runner's environment.
pub(crate) fn strata(env: &Env) -> Cmd {
    CLIENT_VARS
        .iter()
        .fold(env.cmd(), |cmd, var| cmd.env_remove(var))
}

/// `strata backup --json SOURCE...`, asserting success; returns the JSON summary.
#[track_caller]
fn backup(env: &Env, source: &[&str]) -> Value {
    let out = strata(env)
        .args(["backup", "--json"])
        .args(source)
        .run()
        .success();
    let v = out.json();
    assert!(
        v["snapshot_id"].is_string() && v["bytes_read"].is_u64() && v["bytes_added"].is_u64(),
        "backup --json lacks snapshot_id, bytes_read or bytes_added\n{}",
        out.describe()
    );
    v
}

fn id_of(v: &Value) -> String {
    v["snapshot_id"].as_str().unwrap().to_string()
}

/// The snapshot `id` as `snapshots --json` lists it.
#[track_caller]
fn listed(env: &Env, id: &str) -> Value {
    let all = env.snapshots();
    all.iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("snapshot {id} is not listed: {all:?}"))
}

/// A snapshot's `source_meta`, which must be an object of strings.
#[track_caller]
fn meta(snap: &Value) -> BTreeMap<String, String> {
    let obj = snap["source_meta"]
        .as_object()
        .unwrap_or_else(|| panic!("source_meta is not an object: {snap}"));
    obj.iter()
        .map(|(k, v)| {
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("source_meta {k} is not a string: {snap}"));
            (k.clone(), v.to_string())
        })
        .collect()
}

/// The snapshot describes database `db` of kind `kind` with exactly these tables and row
/// counts (and, for servers, their sizes).
#[track_caller]
fn assert_db_snapshot(snap: &Value, kind: &str, db: &str, tables: &[(String, u64)]) {
    assert_eq!(snap["source"], kind, "{snap}");
    let m = meta(snap);
    assert_eq!(m.get("database").map(String::as_str), Some(db), "{snap}");
    for key in ["server", "server_version", "dump_tool", "chunker"] {
        assert!(
            m.get(key).is_some_and(|v| !v.is_empty()),
            "source_meta has no {key}: {snap}"
        );
    }
    assert_eq!(m.get("tables"), Some(&tables.len().to_string()), "{snap}");
    let recorded: BTreeMap<&str, &str> = m
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("rows:")?, v.as_str())))
        .collect();
    let expected: BTreeMap<&str, String> = tables
        .iter()
        .map(|(t, n)| (t.as_str(), n.to_string()))
        .collect();
    let expected: BTreeMap<&str, &str> = expected.iter().map(|(t, n)| (*t, n.as_str())).collect();
    assert_eq!(recorded, expected, "rows:<table> of {snap}");
    if kind != "sqlite" {
        for (t, _) in tables {
            let bytes = m.get(&format!("bytes:{t}"));
            assert!(
                bytes.is_some_and(|b| b.parse::<u64>().is_ok()),
                "source_meta has no bytes:{t} (a number): {snap}"
            );
        }
    }
}

/// Lines of `text` without those starting with any of `prefixes`.
fn drop_lines(text: &[u8], prefixes: &[&str]) -> Vec<u8> {
    text.split_inclusive(|b| *b == b'\n')
        .filter(|line| !prefixes.iter().any(|p| line.starts_with(p.as_bytes())))
        .flatten()
        .copied()
        .collect()
}

/// Two dumps are the same; if not, the failure shows the first line that differs.
#[track_caller]
pub(crate) fn assert_same_dump(what: &str, expected: &[u8], actual: &[u8]) {
    if expected == actual {
        return;
    }
    let show = |l: Option<&[u8]>| {
        l.map_or("<end of dump>".to_string(), |l| {
            String::from_utf8_lossy(&l[..l.len().min(300)]).into_owned()
        })
    };
    let mut e = expected.split(|b| *b == b'\n');
    let mut a = actual.split(|b| *b == b'\n');
    let mut line = 1;
    loop {
        let (x, y) = (e.next(), a.next());
        if x != y || x.is_none() {
            panic!(
                "{what}: the dumps differ ({} bytes expected, {} bytes found); first at line \
                 {line}:\n  expected: {}\n  found:    {}",
                expected.len(),
                actual.len(),
                show(x),
                show(y)
            );
        }
        line += 1;
    }
}

/// Writes a copy of snapshot `spec` whose `source_meta` says `value` for `key`, through
/// the engine (as a damaged or forged snapshot would look); returns the copy's id.
fn forge_snapshot(env: &Env, spec: &str, key: &str, value: &str) -> String {
    use strata_engine::{lock, snapshots, Repository};
    let backend = strata_storage::OpendalBackend::fs(&env.repo).expect("open the repository");
    let repo = Repository::open_without_index(Arc::new(backend), PASSWORD.as_bytes())
        .expect("open the repository");
    let _lock = lock::lock(&repo, "forge a snapshot (test)", true).expect("lock");
    let (_, mut snap) = snapshots::find(&repo, spec).expect("find the snapshot");
    let entry = snap
        .source_meta
        .iter_mut()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("the snapshot has no {key}"));
    entry.1 = value.to_string();
    repo.save_object(strata_storage::FileType::Snapshot, &snap)
        .expect("save the snapshot")
        .to_hex()
}

/// `verify --restore-test SNAPSHOT [SCRATCH...] --json` with the expected exit code; its
/// report.
#[track_caller]
fn restore_test(env: &Env, snapshot: &str, scratch: &[&str], code: i32) -> Value {
    let out = strata(env)
        .args(["verify", "--restore-test", snapshot, "--json"])
        .args(scratch)
        .run()
        .code(code);
    let report = out.json();
    assert_eq!(report["snapshot_id"], snapshot, "{report}");
    assert_eq!(report["passed"], code == 0, "{report}");
    report
}

/// A restore-test report's verdict per table: (ok, expected rows, restored rows).
#[track_caller]
fn table_verdicts(report: &Value) -> BTreeMap<String, (bool, Option<u64>, Option<u64>)> {
    report["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {report}"))
        .iter()
        .map(|t| {
            let name = t["table"].as_str().unwrap_or_else(|| panic!("{t}"));
            let ok = t["ok"].as_bool().unwrap_or_else(|| panic!("{t}"));
            (
                name.to_string(),
                (ok, t["expected_rows"].as_u64(), t["restored_rows"].as_u64()),
            )
        })
        .collect()
}

/// Every table of `tables` restored with its row count, and every check passed.
#[track_caller]
fn assert_restore_test_passed(report: &Value, tables: &[(String, u64)]) {
    let expected: BTreeMap<String, (bool, Option<u64>, Option<u64>)> = tables
        .iter()
        .map(|(t, n)| (t.clone(), (true, Some(*n), Some(*n))))
        .collect();
    assert_eq!(table_verdicts(report), expected, "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert!(!checks.is_empty(), "no integrity checks ran: {report}");
    for c in checks {
        assert!(
            c["ok"] == true && c["name"].is_string() && c["detail"].is_string(),
            "{report}"
        );
    }
}

/// The restore test of a snapshot whose `rows:<forged>` was changed fails on that table
/// alone, naming both counts.
#[track_caller]
fn assert_restore_test_caught(report: &Value, tables: &[(String, u64)], forged: (&str, u64)) {
    let verdicts = table_verdicts(report);
    assert_eq!(verdicts.len(), tables.len(), "{report}");
    for (t, n) in tables {
        let want = if t == forged.0 {
            (false, Some(forged.1), Some(*n))
        } else {
            (true, Some(*n), Some(*n))
        };
        assert_eq!(verdicts.get(t), Some(&want), "table {t}: {report}");
    }
}

// ---------------------------------------------------------------------------
// Shared test bodies
// ---------------------------------------------------------------------------

/// Backup (password from the environment, with --tag and --project), `dump`, DROP,
/// `restore` (which creates the database again): the new database dumps identical to the
/// original, and so does `strata dump`.
fn round_trip(server: &dyn Server, db: &str, tables: &[(String, u64)]) {
    let env = Env::init();
    let kind = server.kind();
    let before = server.dump(db);
    let (url, password_var) = server.url_without_password(db);
    let out = strata(&env)
        .env(password_var, DB_PASSWORD)
        .args(["backup", "--json", "--tag", "nightly", "--project", "shop"])
        .arg(format!("--{kind}"))
        .arg(&url)
        .run()
        .success()
        .json();
    let id = id_of(&out);
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let snap = &snaps[0];
    assert_eq!(snap["id"], id.as_str(), "{snap}");
    assert_eq!(snap["tags"], serde_json::json!(["nightly"]), "{snap}");
    assert_eq!(snap["project"], "shop", "{snap}");
    assert_db_snapshot(snap, kind, db, tables);
    let file = format!("/{db}.sql");
    assert!(env.ls(&id, None).contains(&file), "{file} not in {id}");

    // `dump` with and without the path: the dump the backup took, as the tool writes it.
    let dumped = strata(&env).args(["dump", "latest"]).run().success().stdout;
    let by_path = strata(&env)
        .args(["dump", &id, &file])
        .run()
        .success()
        .stdout;
    assert!(dumped == by_path, "dump with and without {file} differ");
    assert_eq!(out["bytes_read"], dumped.len() as u64, "{out}");
    assert_same_dump(
        "strata dump against the tool's own dump of the original",
        &server.normalise(&before),
        &server.normalise(&dumped),
    );

    server.drop_db(db);
    assert!(!server.databases().contains(db));
    strata(&env)
        .args([
            "restore",
            "latest",
            &format!("--to-{kind}"),
            &server.url(db),
        ])
        .run()
        .success();
    assert_same_dump(
        "the restored database against the original",
        &server.normalise(&before),
        &server.normalise(&server.dump(db)),
    );
}

/// Restoring over a database that holds tables needs --force, and then first saves the
/// target as a `pre-restore` snapshot, which restores the old content again. An existing
/// empty database needs no --force.
fn restore_needs_force(server: &dyn Server, prefix: &str) {
    let env = Env::init();
    let kind = server.kind();
    let to = format!("--to-{kind}");
    let (src, dst, empty) = (
        format!("{prefix}_src"),
        format!("{prefix}_dst"),
        format!("{prefix}_empty"),
    );
    for db in [&src, &dst, &empty] {
        server.create_db(db);
    }
    server.sql(
        &src,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)",
    );
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, 'item {i}')")).collect();
    server.sql(
        &src,
        &format!("INSERT INTO items VALUES {}", rows.join(", ")),
    );
    server.sql(
        &dst,
        "CREATE TABLE other (k INT PRIMARY KEY, v VARCHAR(40))",
    );
    server.sql(
        &dst,
        "INSERT INTO other VALUES (1, 'keep'), (2, 'me'), (3, 'safe')",
    );
    let src_dump = server.normalise(&server.dump(&src));
    let dst_dump = server.normalise(&server.dump(&dst));
    let id = id_of(&backup(&env, &[&format!("--{kind}"), &server.url(&src)]));

    strata(&env)
        .args(["restore", &id, &to, &server.url(&empty)])
        .run()
        .success();
    assert_same_dump(
        "restored into an empty database",
        &src_dump,
        &server.normalise(&server.dump(&empty)),
    );

    strata(&env)
        .args(["restore", &id, &to, &server.url(&dst)])
        .run()
        .code(1)
        .stderr_contains("--force");
    assert_same_dump(
        "the target after a refused restore",
        &dst_dump,
        &server.normalise(&server.dump(&dst)),
    );
    assert_eq!(env.snapshots().len(), 1, "a refused restore saves nothing");

    strata(&env)
        .args(["restore", &id, &to, &server.url(&dst), "--force"])
        .run()
        .success();
    assert_same_dump(
        "the target after restore --force",
        &src_dump,
        &server.normalise(&server.dump(&dst)),
    );
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let pre = snaps.iter().find(|s| s["id"] != id.as_str()).unwrap();
    assert_eq!(pre["tags"], serde_json::json!(["pre-restore"]), "{pre}");
    assert_db_snapshot(pre, kind, &dst, &[(server.table("other"), 3)]);

    // Undo: the pre-restore snapshot brings the old content back.
    let pre_id = pre["id"].as_str().unwrap();
    strata(&env)
        .args(["restore", pre_id, &to, &server.url(&dst), "--force"])
        .run()
        .success();
    assert_same_dump(
        "the target restored from its pre-restore snapshot",
        &dst_dump,
        &server.normalise(&server.dump(&dst)),
    );
}

/// `verify --restore-test` passes for the latest snapshot and leaves no scratch database;
/// a copy of it whose recorded row count of one table was changed fails on that table.
fn restore_test_on_server(server: &dyn Server, db: &str, tables: &[(String, u64)]) {
    let env = Env::init();
    let kind = server.kind();
    let id = id_of(&backup(&env, &[&format!("--{kind}"), &server.url(db)]));
    // The database part of --scratch is ignored: any name will do.
    let scratch_url = server.url(if kind == "postgres" {
        "postgres"
    } else {
        "mysql"
    });
    let scratch = ["--scratch", scratch_url.as_str()];
    let databases = server.databases();

    let report = restore_test(&env, &id, &scratch, 0);
    assert_restore_test_passed(&report, tables);
    let latest = strata(&env)
        .args(["verify", "--restore-test", "latest", "--json"])
        .args(scratch)
        .run()
        .success()
        .json();
    assert_eq!(latest["snapshot_id"], id.as_str(), "{latest}");
    assert_eq!(
        leftover_databases(server, &databases),
        Vec::<String>::new(),
        "the restore test left its scratch database"
    );

    let (table, rows) = &tables[0];
    let forged = rows + 7;
    let forged_id = forge_snapshot(&env, &id, &format!("rows:{table}"), &forged.to_string());
    let report = restore_test(&env, &forged_id, &scratch, 1);
    assert_restore_test_caught(&report, tables, (table, forged));
    assert_eq!(
        leftover_databases(server, &databases),
        Vec::<String>::new(),
        "the failed restore test left its scratch database"
    );
}

// ---------------------------------------------------------------------------
// Tests: round trips
// ---------------------------------------------------------------------------

/// PostgreSQL filled by `pgbench -i`: backup, DROP DATABASE, restore; the database dumps
/// byte for byte as before (but for pg_dump's random `\restrict` key).
#[test]
fn postgres_round_trip() {
    let pg = postgres();
    let db = "round_trip";
    pg.create_db(db);
    pg.pgbench_init(db, 1);
    round_trip(pg, db, &pg.pgbench_tables(1));
}

/// MariaDB filled by `sysbench ... prepare`: backup, DROP DATABASE, restore; the database
/// dumps as before (but for mysqldump's date trailer and the header naming the host).
#[test]
fn mariadb_round_trip() {
    let my = mariadb();
    let db = "round_trip";
    my.create_db(db);
    my.sysbench_prepare(db, 4, 20_000);
    round_trip(my, db, &my.sysbench_tables(4, 20_000));
}

/// A SQLite database in WAL mode written to all the time (every transaction adds rows to
/// `ledger` and their sum to `total`): the backup is a consistent copy, whose restore passes
/// `integrity_check` and keeps the invariant.
#[test]
fn sqlite_backup_with_concurrent_writer() {
    let env = Env::init();
    let db = env.path("ledger.db");
    sqlite(
        &db,
        "PRAGMA journal_mode=WAL; \
         CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL, \
                              note TEXT NOT NULL); \
         CREATE TABLE total (value INTEGER NOT NULL, commits INTEGER NOT NULL); \
         WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000) \
         INSERT INTO ledger (amount, note) SELECT n % 997, hex(randomblob(16)) FROM c; \
         INSERT INTO total SELECT sum(amount), 0 FROM ledger;",
    );
    let mut writer = Writer::start(&db);
    // The writer has committed before the backup starts...
    let commits = || -> u64 { sqlite(&db, "SELECT commits FROM total").parse().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(60);
    while commits() == 0 {
        assert!(Instant::now() < deadline, "the writer never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = backup(&env, &["--sqlite", db.to_str().unwrap()]);
    // ... and still writes after it.
    writer.assert_running();
    let after_backup = commits();
    writer.stop();

    let snap = listed(&env, &id_of(&out));
    let m = meta(&snap);
    let rows: u64 = m["rows:ledger"].parse().unwrap();
    assert_db_snapshot(
        &snap,
        "sqlite",
        "ledger",
        &[("ledger".into(), rows), ("total".into(), 1)],
    );
    assert!(env.ls("latest", None).contains("/ledger.sql"));

    let restored = env.path("restored.db");
    strata(&env)
        .args([
            "restore",
            "latest",
            "--to-sqlite",
            restored.to_str().unwrap(),
        ])
        .run()
        .success();
    assert_eq!(sqlite(&restored, "PRAGMA integrity_check"), "ok");
    let state = sqlite(
        &restored,
        "SELECT (SELECT sum(amount) FROM ledger) = value, (SELECT count(*) FROM ledger), \
         commits FROM total",
    );
    let f: Vec<u64> = state.split('|').map(|x| x.parse().unwrap()).collect();
    eprintln!(
        "SQLite writer: {} commits in the backup, {after_backup} when it had finished",
        f[2]
    );
    assert_eq!(
        f[0], 1,
        "sum(amount) != total in the restored copy: {state}"
    );
    assert_eq!(f[1], rows, "the restored ledger differs from rows:ledger");
    assert_eq!(
        f[1],
        100_000 + 50 * f[2],
        "a writer transaction was cut in half"
    );
    assert!(
        f[2] >= 1 && f[2] <= after_backup,
        "the copy holds {} writer commits, the writer had made at least one before and {after_backup} after",
        f[2]
    );
}

/// A writer of the ledger database: a shell loop feeding transactions into one `sqlite3`,
/// each inserting 50 rows and adding their amounts to `total`, until the file `stop` appears.
struct Writer {
    child: Option<Child>,
    stop: PathBuf,
}

impl Writer {
    fn start(db: &Path) -> Writer {
        require("sqlite3", "sqlite3");
        let stop = db.with_file_name("stop-writer");
        let script = format!(
            "{{ echo '.timeout 30000'; i=0; while [ ! -e '{stop}' ]; do i=$((i + 1)); \
             echo \"BEGIN IMMEDIATE; \
             WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50) \
             INSERT INTO ledger (amount, note) SELECT $i, 'writer' FROM c; \
             UPDATE total SET value = value + 50 * $i, commits = commits + 1; COMMIT;\"; \
             sleep 0.01; done; }} | sqlite3 -bail -batch '{db}'",
            stop = stop.display(),
            db = db.display()
        );
        let child = tool("sh", db.parent().unwrap())
            .arg("-c")
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Writer {
            child: Some(child),
            stop,
        }
    }

    /// The writer has not stopped (say, on an error).
    #[track_caller]
    fn assert_running(&mut self) {
        let child = self.child.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("the writer stopped during the backup ({status}): {err}");
        }
    }

    /// Stops the writer; it must have ended without an error.
    #[track_caller]
    fn stop(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the writer failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::fs::write(&self.stop, b"");
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Tests: night after night
// ---------------------------------------------------------------------------

/// The second night's backup of a database where 1% of the rows were added and 0.1%
/// changed in place (scattered through the table) adds a small fraction of the first's.
#[test]
fn postgres_nightly_backups_dedup() {
    let pg = postgres();
    let env = Env::init();
    let db = "nightly";
    pg.create_db(db);
    pg.pgbench_init(db, 2);
    // pgbench's filler is blanks, which compress to nothing; real rows do not.
    pg.sql(
        db,
        "UPDATE pgbench_accounts SET filler = md5(aid::text) || ' ' || md5((aid * 7)::text)",
    );
    pg.sql(db, "VACUUM FULL pgbench_accounts");
    let source = ["--postgres", &pg.url(db)];
    let first = backup(&env, &source);

    pg.sql(
        db,
        "INSERT INTO pgbench_accounts (aid, bid, abalance, filler) \
         SELECT aid, 2, 0, md5(aid::text) || ' ' || md5((aid * 7)::text) \
         FROM generate_series(200001, 202000) AS aid",
    );
    pg.sql(
        db,
        "UPDATE pgbench_accounts SET abalance = abalance + 17 WHERE aid % 1000 = 0",
    );
    let second = backup(&env, &source);

    let n = |v: &Value, k: &str| v[k].as_u64().unwrap();
    eprintln!(
        "nightly PostgreSQL backups: first read {} bytes, added {} in {} data blobs; second \
         read {}, added {} in {} data blobs ({:.1}% of the first's bytes)",
        n(&first, "bytes_read"),
        n(&first, "bytes_added"),
        n(&first, "data_blobs_added"),
        n(&second, "bytes_read"),
        n(&second, "bytes_added"),
        n(&second, "data_blobs_added"),
        100.0 * n(&second, "bytes_added") as f64 / n(&first, "bytes_added") as f64
    );
    assert!(n(&second, "bytes_read") > n(&first, "bytes_read"));
    assert!(
        n(&second, "bytes_added") * 4 <= n(&first, "bytes_added"),
        "the second backup added more than 25% of the first: {first} then {second}"
    );
    let snap = listed(&env, &id_of(&second));
    assert_eq!(
        meta(&snap)["rows:public.pgbench_accounts"],
        "202000",
        "{snap}"
    );
}

// ---------------------------------------------------------------------------
// Tests: failing dumps
// ---------------------------------------------------------------------------

/// A wrong password or a missing database fails the backup with the server's reason, and
/// writes no snapshot.
#[test]
fn postgres_failed_dump_writes_no_snapshot() {
    let pg = postgres();
    let env = Env::init();
    let db = "failing";
    pg.create_db(db);
    pg.sql(db, "CREATE TABLE t (id INT)");
    let bad = format!("postgres://{DB_USER}:wrong-pw@127.0.0.1:{}/{db}", pg.port);
    let out = strata(&env)
        .args(["backup", "--postgres", &bad])
        .run()
        .code(1)
        .stderr_contains("password authentication failed");
    assert!(!out.stderr.contains("wrong-pw"), "{}", out.describe());
    let (url, var) = pg.url_without_password(db);
    strata(&env)
        .env(var, "wrong-pw")
        .args(["backup", "--postgres", &url])
        .run()
        .code(1)
        .stderr_contains("password authentication failed");
    strata(&env)
        .args(["backup", "--postgres", &pg.url("no_such_db")])
        .run()
        .code(1)
        .stderr_contains("does not exist");

    // pg_dump itself fails, after it has written part of the dump: a user who may read the
    // first table but not the second.
    pg.sql(db, "INSERT INTO t SELECT generate_series(1, 50000)");
    pg.sql(db, "CREATE ROLE weak LOGIN PASSWORD 'weak-pw'");
    pg.sql(db, "GRANT SELECT ON t TO weak");
    pg.sql(db, "CREATE TABLE u (id INT)");
    let weak = format!("postgres://weak:weak-pw@127.0.0.1:{}/{db}", pg.port);
    strata(&env)
        .args(["backup", "--postgres", &weak])
        .run()
        .code(1)
        .stderr_contains("pg_dump failed (exit status 1)")
        .stderr_contains("permission denied for table u");

    // pg_dump dies in the middle of its output (a wrapper earlier on PATH kills it): the
    // stream ends early, and that is an error, not a short dump.
    let bin = env.path("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v pg_dump"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let wrapper = bin.join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = --version ] && exec {real} --version\n\
             {real} \"$@\" | head -c 20000\nkill -9 $$\n",
            real = real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    strata(&env)
        .env("PATH", &path)
        .args(["backup", "--postgres", &pg.url(db)])
        .run()
        .code(1)
        .stderr_contains("pg_dump failed (killed by a signal)");
    assert_eq!(env.snapshots(), Vec::<Value>::new());
    // The blobs the failed backups stored are garbage, and the repository is sound.
    strata(&env).args(["check", "--read-data"]).run().success();
}

#[test]
fn mariadb_failed_dump_writes_no_snapshot() {
    let my = mariadb();
    let env = Env::init();
    let db = "failing";
    my.create_db(db);
    my.sql(db, "CREATE TABLE t (id INT)");
    let bad = format!("mysql://{DB_USER}:wrong-pw@127.0.0.1:{}/{db}", my.port);
    let out = strata(&env)
        .args(["backup", "--mysql", &bad])
        .run()
        .code(1)
        .stderr_contains("Access denied");
    assert!(!out.stderr.contains("wrong-pw"), "{}", out.describe());
    strata(&env)
        .args(["backup", "--mysql", &my.url("no_such_db")])
        .run()
        .code(1)
        .stderr_contains("no_such_db");
    assert_eq!(env.snapshots(), Vec::<Value>::new());
}

/// A missing SQLite file fails the backup (and is not created, as `sqlite3` would), and so
/// does a file that is not a database; neither writes a snapshot.
#[test]
fn sqlite_failed_dump_writes_no_snapshot() {
    let env = Env::init();
    let missing = env.path("missing.db");
    strata(&env)
        .args(["backup", "--sqlite", missing.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_contains("missing.db");
    assert!(!missing.exists(), "the backup created the missing file");
    let garbage = env.path("garbage.db");
    write_file(&garbage, &random_bytes(5, 64 * 1024));
    strata(&env)
        .args(["backup", "--sqlite", garbage.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_contains("not a database");

    // A database damaged past its first page: `sqlite3 .dump` reports the error inside the
    // dump, ends it with ROLLBACK and exits 0. The dump lacks its COMMIT: no snapshot.
    let damaged = env.path("damaged.db");
    make_sqlite(&damaged, 20_000);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let len = bytes.len();
    assert!(len > 64 * 1024, "{len}");
    for b in &mut bytes[len / 2..len / 2 + 3 * 4096] {
        *b = 0x55;
    }
    std::fs::write(&damaged, &bytes).unwrap();
    strata(&env)
        .args(["backup", "--sqlite", damaged.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_contains("completion marker");
    assert_eq!(env.snapshots(), Vec::<Value>::new());
}

/// Restoring over a SQLite database that an application holds open in WAL mode, with
/// changes not yet checkpointed: the restore goes through SQLite's own locking and WAL, so
/// a new connection sees the restored content, not the old WAL replayed onto it.
#[test]
fn sqlite_restore_over_a_database_in_use() {
    let env = Env::init();
    let src = env.path("src.db");
    make_sqlite(&src, 500);
    let id = id_of(&backup(&env, &["--sqlite", src.to_str().unwrap()]));

    let app = env.path("app.db");
    sqlite(
        &app,
        "PRAGMA journal_mode=WAL; CREATE TABLE other (x); INSERT INTO other VALUES (1);",
    );
    // The application: a connection that keeps the database open, with a write in its WAL.
    let mut holder = std::process::Command::new("sqlite3")
        .arg(&app)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = holder.stdin.as_mut().unwrap();
        writeln!(
            stdin,
            "PRAGMA wal_autocheckpoint=0; INSERT INTO other VALUES (2);"
        )
        .unwrap();
        stdin.flush().unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    strata(&env)
        .args([
            "restore",
            &id,
            "--to-sqlite",
            app.to_str().unwrap(),
            "--force",
        ])
        .run()
        .success();
    assert_eq!(sqlite(&app, "SELECT count(*) FROM t"), "500");
    assert_eq!(
        sqlite(
            &app,
            "SELECT count(*) FROM sqlite_schema WHERE name = 'other'"
        ),
        "0"
    );
    assert_eq!(sqlite(&app, "PRAGMA integrity_check"), "ok");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert_eq!(sqlite(&app, "SELECT count(*) FROM t"), "500");
    // The pre-restore snapshot holds the application's table, with both rows.
    let pre = env
        .snapshots()
        .into_iter()
        .find(|s| s["tags"][0] == "pre-restore")
        .unwrap();
    assert_eq!(meta(&pre)["rows:other"], "2");
}

// ---------------------------------------------------------------------------
// Tests: restoring over a database
// ---------------------------------------------------------------------------

#[test]
fn postgres_restore_over_data_needs_force() {
    restore_needs_force(postgres(), "force");
}

#[test]
fn mariadb_restore_over_data_needs_force() {
    restore_needs_force(mariadb(), "force");
}

/// As for the servers: a SQLite file that holds tables is replaced only with --force,
/// after a `pre-restore` snapshot; an empty file needs no --force.
#[test]
fn sqlite_restore_over_data_needs_force() {
    let env = Env::init();
    let src = env.path("src.db");
    make_sqlite(&src, 300);
    let dst = env.path("dst.db");
    sqlite(
        &dst,
        "CREATE TABLE other (k INTEGER PRIMARY KEY, v TEXT); \
         INSERT INTO other VALUES (1, 'keep'), (2, 'me'), (3, 'safe');",
    );
    let (src_dump, dst_dump) = (sqlite_dump(&src), sqlite_dump(&dst));
    let id = id_of(&backup(&env, &["--sqlite", src.to_str().unwrap()]));
    assert_db_snapshot(&listed(&env, &id), "sqlite", "src", &[("t".into(), 300)]);
    let restore = |target: &Path, force: bool| {
        let mut cmd = strata(&env)
            .args(["restore", &id, "--to-sqlite"])
            .arg(target);
        if force {
            cmd = cmd.arg("--force");
        }
        cmd.run()
    };

    let empty = env.path("empty.db");
    write_file(&empty, b"");
    restore(&empty, false).success();
    assert_same_dump(
        "restored into an empty file",
        &src_dump,
        &sqlite_dump(&empty),
    );

    restore(&dst, false).code(1).stderr_contains("--force");
    assert_same_dump(
        "the target after a refused restore",
        &dst_dump,
        &sqlite_dump(&dst),
    );
    assert_eq!(env.snapshots().len(), 1, "a refused restore saves nothing");

    restore(&dst, true).success();
    assert_same_dump("the target after --force", &src_dump, &sqlite_dump(&dst));
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let pre = snaps.iter().find(|s| s["id"] != id.as_str()).unwrap();
    assert_eq!(pre["tags"], serde_json::json!(["pre-restore"]), "{pre}");
    assert_db_snapshot(pre, "sqlite", "dst", &[("other".into(), 3)]);
    strata(&env)
        .args(["restore", pre["id"].as_str().unwrap(), "--to-sqlite"])
        .arg(&dst)
        .arg("--force")
        .run()
        .success();
    assert_same_dump(
        "the target restored from its pre-restore snapshot",
        &dst_dump,
        &sqlite_dump(&dst),
    );
}

// ---------------------------------------------------------------------------
// Tests: restore tests
// ---------------------------------------------------------------------------

#[test]
fn postgres_restore_test() {
    let pg = postgres();
    let db = "restore_test";
    pg.create_db(db);
    pg.pgbench_init(db, 1);
    restore_test_on_server(pg, db, &pg.pgbench_tables(1));
}

#[test]
fn mariadb_restore_test() {
    let my = mariadb();
    let db = "restore_test";
    my.create_db(db);
    my.sysbench_prepare(db, 2, 5_000);
    restore_test_on_server(my, db, &my.sysbench_tables(2, 5_000));
}

/// `--exec-prefix` runs every tool, and every question a restore and a restore test ask,
/// through the prefix (a wrapper that logs each call and runs it): a backup, a restore into
/// a new database, and a restore test whose scratch database is created, loaded, counted,
/// checked and dropped there.
fn through_a_prefix(server: &dyn Server, db: &str, checked: &str) {
    let env = Env::init();
    let kind = server.kind();
    let copy = format!("{db}_copy");
    server.drop_db(db);
    server.drop_db(&copy);
    server.create_db(db);
    register_database(server, &copy);
    server.sql(
        db,
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL)",
    );
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, 'item {i}')")).collect();
    server.sql(db, &format!("INSERT INTO items VALUES {}", rows.join(", ")));
    let log = env.path("prefix.log");
    let wrapper = env.path("prefix");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\ntee -a '{log}' | \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let prefix = ["--exec-prefix".to_string(), wrapper.display().to_string()];
    let databases = server.databases();

    let id = id_of(&backup(
        &env,
        &[
            &format!("--{kind}"),
            &server.url(db),
            &prefix[0],
            &prefix[1],
        ],
    ));
    strata(&env)
        .args(["restore", &id, &format!("--to-{kind}"), &server.url(&copy)])
        .args(&prefix)
        .run()
        .success();
    assert_eq!(server.sql(&copy, "SELECT COUNT(*) FROM items"), "300");
    let scratch_url = server.url(if kind == "postgres" {
        "postgres"
    } else {
        "mysql"
    });
    let report = restore_test(
        &env,
        &id,
        &["--scratch", &scratch_url, &prefix[0], &prefix[1]],
        0,
    );
    assert_restore_test_passed(&report, &[(server.table("items"), 300)]);
    assert_eq!(
        leftover_databases(server, &databases),
        Vec::<String>::new(),
        "the restore test left its scratch database"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    let scratch = report["scratch"].as_str().unwrap();
    let scratch_name = scratch.rsplit('/').next().unwrap();
    for wanted in [
        server_tools(kind).0.to_string(),
        if kind == "postgres" {
            format!("pg_database WHERE datname = '{scratch_name}'")
        } else {
            format!("schemata WHERE schema_name = '{scratch_name}'")
        },
        format!("CREATE DATABASE {}", quoted(kind, scratch_name)),
        format!("CREATE DATABASE {}", quoted(kind, &copy)),
        format!("COUNT(*) FROM {}", quoted_table(kind, "items")),
        checked.to_string(),
        format!("DROP DATABASE IF EXISTS {}", quoted(kind, scratch_name)),
    ] {
        assert!(
            calls.to_lowercase().contains(&wanted.to_lowercase()),
            "{wanted} not in the prefix's calls:\n{calls}"
        );
    }
    for d in [db, copy.as_str()] {
        server.drop_db(d);
    }
}

/// The dump and load tools of a server kind.
fn server_tools(kind: &str) -> (&'static str, &'static str) {
    if kind == "postgres" {
        ("pg_dump", "psql")
    } else {
        ("mysqldump", "mysql")
    }
}

fn quoted(kind: &str, name: &str) -> String {
    if kind == "postgres" {
        format!("\"{name}\"")
    } else {
        format!("`{name}`")
    }
}

fn quoted_table(kind: &str, name: &str) -> String {
    if kind == "postgres" {
        format!("\"public\".\"{name}\"")
    } else {
        format!("`{name}`")
    }
}

#[test]
fn postgres_through_an_exec_prefix() {
    through_a_prefix(postgres(), "through_prefix", "bt_index_check");
}

#[test]
fn mariadb_through_an_exec_prefix() {
    through_a_prefix(mariadb(), "through_prefix", "CHECK TABLE `items`");
}

/// A scheduled event must not run in a restore test's scratch copy: the server runs events
/// (`--event-scheduler=ON`, MySQL 8's default) and an event's body may write to any schema.
/// The copy's event is loaded disabled and the report says so, while a real restore keeps it
/// enabled.
#[test]
fn mariadb_restore_test_loads_events_disabled() {
    let my = mariadb();
    let (db, witness, copy) = ("events", "events_witness", "events_copy");
    my.create_db(db);
    my.create_db(witness);
    register_database(my, copy);
    my.sql(witness, "CREATE TABLE hits (db VARCHAR(64) NOT NULL)");
    my.sql(
        db,
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3); \
             CREATE EVENT tick ON SCHEDULE EVERY 1 SECOND \
             DO INSERT INTO `{witness}`.hits VALUES (DATABASE())"
        ),
    );
    // The scheduler runs the source's event: a run in the scratch copy would show.
    let ran_in = |pattern: &str| {
        my.sql(
            witness,
            &format!("SELECT COUNT(*) FROM hits WHERE db LIKE '{pattern}'"),
        )
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ran_in(db) == "0" {
        assert!(std::time::Instant::now() < deadline, "the event never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let env = Env::init();
    let id = id_of(&backup(&env, &["--mysql", &my.url(db)]));
    let scratch_url = my.url("mysql");
    let report = restore_test(&env, &id, &["--scratch", &scratch_url], 0);
    assert_restore_test_passed(&report, &[("t".to_string(), 3)]);
    let events = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "events disabled")
        .unwrap_or_else(|| panic!("no events check: {report}"));
    assert_eq!(
        events["detail"], "1 scheduled event, none enabled in the scratch database",
        "{report}"
    );
    assert_eq!(
        ran_in("strata\\_verify\\_%"),
        "0",
        "the event ran in the scratch copy"
    );

    strata(&env)
        .args(["restore", &id, "--to-mysql", &my.url(copy)])
        .run()
        .success();
    assert_eq!(
        my.sql(
            copy,
            "SELECT CONCAT(event_name, ' ', status) FROM information_schema.events \
             WHERE event_schema = DATABASE()"
        ),
        "tick ENABLED"
    );
    // No event keeps writing into the shared server.
    for d in [db, copy, witness] {
        my.drop_db(d);
    }
}

/// SQLite needs no --scratch (the scratch file is temporary, and goes away); a forged row
/// count fails the test.
#[test]
fn sqlite_restore_test() {
    let env = Env::init();
    let dir = env.path("db");
    let db = dir.join("app.db");
    std::fs::create_dir(&dir).unwrap();
    make_sqlite(&db, 2_000);
    let id = id_of(&backup(&env, &["--sqlite", db.to_str().unwrap()]));
    let files = || -> BTreeSet<String> {
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = files();
    let tables = [("t".to_string(), 2_000)];
    assert_restore_test_passed(&restore_test(&env, &id, &[], 0), &tables);
    let forged = forge_snapshot(&env, &id, "rows:t", "1999");
    let report = restore_test(&env, &forged, &[], 1);
    assert_restore_test_caught(&report, &tables, ("t", 1999));
    assert_eq!(
        files(),
        before,
        "the restore tests left files beside the database"
    );
}

/// What `sqlite3 .dump` leaves out of the dump (the header's user_version, where
/// applications keep their schema version, and application_id) is recorded at backup and
/// set again on restore.
#[test]
fn sqlite_header_fields_survive_a_restore() {
    let env = Env::init();
    let src = env.path("versioned.db");
    make_sqlite(&src, 10);
    sqlite(
        &src,
        "PRAGMA user_version = 7; PRAGMA application_id = 1234;",
    );
    let id = id_of(&backup(&env, &["--sqlite", src.to_str().unwrap()]));
    let m = meta(&listed(&env, &id));
    assert_eq!(m["user_version"], "7");
    assert_eq!(m["application_id"], "1234");
    let dst = env.path("restored.db");
    strata(&env)
        .args(["restore", &id, "--to-sqlite", dst.to_str().unwrap()])
        .run()
        .success();
    assert_eq!(sqlite(&dst, "PRAGMA user_version"), "7");
    assert_eq!(sqlite(&dst, "PRAGMA application_id"), "1234");
    assert_eq!(sqlite(&dst, "SELECT count(*) FROM t"), "10");
}
