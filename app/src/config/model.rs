//! The config after reading, defaults applied and names checked: what the other parts use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use strata_engine::retention::{CalendarSpan, KeepPolicy};

pub use super::schedule::Schedule;
use crate::ops::Event;
use crate::{RepoSpec, SecretRef};

/// A whole `strata.toml`.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// Where the catalog and the run locks are.
    pub state_dir: PathBuf,
    /// The repositories by name.
    pub repositories: BTreeMap<String, RepoSpec>,
    /// The notification channels by name.
    pub notifications: BTreeMap<String, Notification>,
    /// The projects by name.
    pub projects: BTreeMap<String, Project>,
    /// `strata serve`'s settings (the `[server]` table).
    pub server: ServerConfig,
}

/// How long a browser session lasts when the config does not say.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// The `[server]` table (see `config/server.rs`).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where to listen when `--listen` is not given.
    pub listen: Option<std::net::SocketAddr>,
    /// The directories restores through the server may write under (none: no restores to a
    /// directory other than a snapshot's original place).
    pub restore_roots: Vec<PathBuf>,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// Who may log in, by name.
    pub users: BTreeMap<String, ServerUser>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (the address audited and
    /// rate-limited); a request from any other address is taken from its socket.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: None,
            restore_roots: Vec::new(),
            session_ttl: DEFAULT_SESSION_TTL,
            users: BTreeMap::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// A user of `strata serve`.
#[derive(Clone, Debug)]
pub struct ServerUser {
    /// `$argon2id$...` (PHC string).
    pub password_hash: String,
    /// `viewer`, `operator` or `admin`.
    pub role: String,
}

/// A notification channel and the events it is sent on.
#[derive(Clone, Debug)]
pub struct Notification {
    pub name: String,
    pub channel: Channel,
    /// The events it is sent on (default: failure and recovered; a ping also gets start).
    pub on: Vec<Event>,
}

#[derive(Clone, Debug)]
pub enum Channel {
    Email(Email),
    /// A Slack incoming webhook; the URL is a secret (it lets anyone post).
    Slack {
        webhook_url: SecretRef,
    },
    /// A generic webhook: JSON body, signed with HMAC-SHA256 when a secret is given.
    Webhook {
        url: String,
        secret: Option<SecretRef>,
    },
    /// Dead-man pings, as healthchecks.io reads them: `URL/start`, `URL`, `URL/fail`.
    Ping {
        url: String,
    },
}

#[derive(Clone, Debug)]
pub struct Email {
    /// `smtp://host[:port]` or `smtps://host[:port]` (TLS from the first byte).
    pub smtp: String,
    /// Upgrade a `smtp://` connection with STARTTLS (required unless the host is loopback).
    pub starttls: bool,
    pub user: Option<String>,
    pub password: Option<SecretRef>,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM file of CA certificates to trust besides the system's (a private mail relay).
    pub ca_file: Option<PathBuf>,
}

/// One project: what is backed up, where to, how long it is kept, when it runs.
#[derive(Clone, Debug)]
pub struct Project {
    pub name: String,
    /// When `strata run --due` runs it (None: only when named).
    pub schedule: Option<Schedule>,
    /// Each becomes its own snapshot, in this order: the paths (one snapshot for all of
    /// them), then the databases, then the commands, then the cluster's base backup.
    pub sources: Vec<Source>,
    /// The repositories' names; the first is the primary (sources are read once, into it),
    /// the rest receive copies.
    pub repositories: Vec<String>,
    /// The retention of each repository (by name), the project's own with the
    /// repository's table over it; a repository without any is not thinned.
    pub retention: BTreeMap<String, Retention>,
    /// Notification channels' names.
    pub notify: Vec<String>,
    /// Health: a last success older than this is critical (default: twice the schedule's
    /// interval plus an hour; None without a schedule).
    pub max_age: Option<Duration>,
    /// When the scheduled restore test of every database source runs.
    pub restore_test: Option<Schedule>,
    /// When `check --read-data-subset 1/8` runs on each repository (default weekly).
    pub check: Option<Schedule>,
    /// When prune runs on each repository.
    pub prune: Option<Schedule>,
    /// Shell command run first; its failure fails the run (nothing is backed up).
    pub before: Option<String>,
    /// Shell command run last, whatever happened (STRATA_RUN_STATUS says what).
    pub after: Option<String>,
    /// Each source is stopped and fails after this long.
    pub timeout: Option<Duration>,
    /// The PostgreSQL cluster whose WAL this project archives and whose base backups
    /// `strata pg basebackup` takes (`[projects.NAME.pitr]`).
    pub pitr: Option<PitrCluster>,
}

/// A PostgreSQL cluster kept restorable to any second (`[projects.NAME.pitr]`).
#[derive(Clone, Debug)]
pub struct PitrCluster {
    /// Its data directory, read by base backups (on this machine).
    pub data_dir: PathBuf,
    /// A connection as a superuser or a role granted `pg_backup_start`/`pg_backup_stop`
    /// (libpq URL; default: the local socket, database `postgres`).
    pub url: String,
    pub password: Option<SecretRef>,
    /// How long a base backup waits for its stop segment to reach the archive.
    pub stop_timeout: Duration,
    /// Health: the newest archived segment older than this is a warning (with
    /// `archive_timeout` set, a little more than it).
    pub max_wal_age: Option<Duration>,
    /// Segments a `wal-fetch` that opens the repository also fetches ahead, for the next
    /// ones of a recovery (0: none).
    pub prefetch: usize,
}

impl PitrCluster {
    /// The default connection: the local socket as the current user, database postgres.
    pub const DEFAULT_URL: &'static str = "postgres:///postgres";
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(300);
}

impl Project {
    /// The primary repository's name.
    pub fn primary(&self) -> &str {
        &self.repositories[0]
    }
}

/// Something backed up as one snapshot.
#[derive(Clone, Debug)]
pub enum Source {
    /// Files and directories, with the project's excludes.
    Paths {
        paths: Vec<PathBuf>,
        exclude: Vec<String>,
    },
    Database(DatabaseSource),
    /// A command whose standard output is backed up as one stream named `name`.
    Command {
        name: String,
        run: String,
    },
    /// A base backup of the project's PostgreSQL cluster (`[projects.NAME.pitr]`).
    PgCluster(PitrCluster),
}

impl Source {
    /// How records and reports name it: `paths`, `postgres:kanbu`, `command:redis.rdb`.
    pub fn label(&self) -> String {
        match self {
            Source::Paths { .. } => "paths".to_string(),
            Source::Database(d) => format!("{}:{}", d.kind.name(), d.name()),
            Source::Command { name, .. } => format!("command:{name}"),
            Source::PgCluster(_) => crate::pitr::base::TAG.to_string(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Postgres,
    Mysql,
    Sqlite,
}

impl DbKind {
    pub fn name(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
            DbKind::Sqlite => "sqlite",
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseSource {
    pub kind: DbKind,
    /// `postgres://user@host/db`, `mysql://user@host/db`, or a SQLite file's path.
    pub location: String,
    pub password: Option<SecretRef>,
    /// The dump and load tools run through this (`docker exec -i CONTAINER`).
    pub exec_prefix: Vec<String>,
    /// Where restore tests load it (a server URL); default: the same server.
    pub scratch: Option<String>,
}

impl DatabaseSource {
    /// The database's name (the URL's path, or the SQLite file's name).
    pub fn name(&self) -> String {
        // The query first: it may hold a socket directory (`?host=/run/postgresql`).
        let path = self.location.split('?').next().unwrap_or(&self.location);
        path.rsplit('/').next().unwrap_or(path).to_string()
    }
}

/// How long one repository keeps a project's snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep: KeepPolicy,
    /// Survivors kept by a rule get a hold this long (`hold-monthly = "7y"`).
    pub holds: Vec<HoldRule>,
}

/// `hold-<rule> = "<span>"`: every snapshot the rule keeps is held for the span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRule {
    pub rule: KeepRule,
    pub span: CalendarSpan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepRule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_is_named_by_its_path_not_its_query() {
        let db = |location: &str| DatabaseSource {
            kind: DbKind::Postgres,
            location: location.into(),
            password: None,
            exec_prefix: Vec::new(),
            scratch: None,
        };
        assert_eq!(db("postgres://app@db.example/shop").name(), "shop");
        assert_eq!(
            db("postgres://postgres@localhost/kanbu?host=/var/run/postgresql&port=5433").name(),
            "kanbu"
        );
        assert_eq!(db("/srv/app/jobs.sqlite").name(), "jobs.sqlite");
    }
}
