//! MySQL and MariaDB: `mysqldump --single-transaction` (one consistent InnoDB snapshot, rows in
//! primary key order, no dump date, so that unchanged data dumps to the same bytes) to back
//! up, `mysql` (stops at the first error) to restore, sqlx for the rest.

mod events;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};
use strata_format::snapshot::SourceKind;

use crate::check::{count_each, Check};
use crate::dialect::{holds, number, Dialect, LoadFilter, RunSql, ToolSql, Tools};
use crate::error::{sql_error, DbError, Result};
use crate::info::ServerInfo;
use crate::scan::Syntax;
use crate::server::Server;
use events::DisableEvents;

/// A MySQL or MariaDB database: `mysql://user@host[:port]/database` (or `mariadb://`).
#[derive(Debug, Clone)]
pub(crate) struct Mysql(Server);

impl Mysql {
    /// Parses a `mysql://` or `mariadb://` URL (a password in it is taken out).
    pub(crate) fn parse(url: &str) -> Result<Self> {
        Ok(Mysql(Server::parse(url, &["mysql", "mariadb"])?))
    }
}

const TOOLS: Tools = Tools {
    dump: "mysqldump",
    load: "mysql",
    package: "mariadb-client",
};

/// The password: the one given (with the URL or apart), else `MYSQL_PWD` (which the tools
/// read too).
fn password(s: &Server) -> Option<String> {
    s.password()
        .map(|pw| pw.expose().to_string())
        .or_else(|| std::env::var("MYSQL_PWD").ok())
}

/// Connection flags for the command-line tools; the password goes to `MYSQL_PWD`.
fn tool_command(program: &str, s: &Server) -> Command {
    let mut cmd = Command::new(program);
    if let Some(host) = s.host() {
        cmd.arg(format!(
            "--host={}",
            host.trim_start_matches('[').trim_end_matches(']')
        ));
    }
    if let Some(port) = s.url().port() {
        cmd.arg(format!("--port={port}"));
    }
    if let Some(user) = s.user() {
        cmd.arg(format!("--user={user}"));
    }
    if let Some(pw) = password(s) {
        cmd.env("MYSQL_PWD", pw);
    }
    cmd
}

/// mysqldump for the database of `s`; `tool_version` is its `--version` line.
fn dump_command(s: &Server, tool_version: &str) -> Command {
    let mut cmd = tool_command(TOOLS.dump, s);
    cmd.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--order-by-primary",
        "--skip-dump-date",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
    ]);
    if writes_gtid_purged(tool_version) {
        cmd.arg("--set-gtid-purged=OFF");
    }
    cmd.arg(s.database());
    cmd
}

/// Whether this mysqldump (by its `--version` line) is MySQL's own, 5.6 or newer. Of a server
/// with GTIDs on, it writes `SET @@GLOBAL.GTID_PURGED` into the dump, which fails a restore
/// into any server that has run transactions of its own (the original included); a backup
/// is not a replica's seed, so `--set-gtid-purged=OFF`. MariaDB's tool has no such option,
/// and a line this cannot read gets none.
fn writes_gtid_purged(version: &str) -> bool {
    if version.contains("MariaDB") {
        return false;
    }
    // "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)" or
    // "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)".
    let number = match version.split_once("Distrib ") {
        Some((_, rest)) => rest,
        None => match version.split_once("Ver ") {
            Some((_, rest)) => rest,
            None => return false,
        },
    };
    let mut parts = number.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse::<u32>().ok());
    match (next(), next()) {
        (Some(major), Some(minor)) => (major, minor) >= (5, 6),
        _ => false,
    }
}

fn load_command(s: &Server) -> Command {
    let mut cmd = tool_command(TOOLS.load, s);
    cmd.args(["--batch", "--default-character-set=utf8mb4"])
        .arg(format!("--database={}", s.database()));
    cmd
}

fn options(s: &Server, with_database: bool) -> Result<MySqlConnectOptions> {
    let mut plain = s.url().clone();
    plain.set_path("/");
    plain.set_query(None);
    // sqlx knows only mysql://.
    let text = plain.as_str().replacen("mariadb://", "mysql://", 1);
    let mut opts = MySqlConnectOptions::from_str(&text).map_err(|e| sql_error(&s.display(), e))?;
    if let Some(pw) = password(s) {
        opts = opts.password(&pw);
    }
    if with_database {
        opts = opts.database(&s.database());
    }
    if s.socket() {
        opts = opts.socket(default_socket());
    }
    Ok(opts)
}

/// Where the mysql tools look for the server's socket when a URL names no host:
/// `MYSQL_UNIX_PORT`, else the first of the usual places that exists.
fn default_socket() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("MYSQL_UNIX_PORT") {
        return p.into();
    }
    [
        "/run/mysqld/mysqld.sock",
        "/var/run/mysqld/mysqld.sock",
        "/tmp/mysql.sock",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| "/run/mysqld/mysqld.sock".into())
}

async fn connect(s: &Server, with_database: bool) -> Result<MySqlConnection> {
    MySqlConnection::connect_with(&options(s, with_database)?)
        .await
        .map_err(|e| sql_error(&s.display(), e))
}

/// `` `name` ``, quoted for MySQL.
fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('-') || name.contains('\0') {
        return Err(DbError::Invalid(format!(
            "{name:?} is not a database name this program uses"
        )));
    }
    Ok(())
}

/// The database's tables, one name per row.
const BASE_TABLES: &str = "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
     WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1";

/// How many objects (tables and views, routines, events) of its own the database holds.
const OBJECT_COUNT: &str =
    "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()) \
          + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = DATABASE()) \
          + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = DATABASE())";

/// The database's scheduled events, and how many of them are enabled.
const EVENTS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(status = 'ENABLED'), 0) AS SIGNED) \
     FROM information_schema.events WHERE event_schema = DATABASE()";

fn drop_sql(name: &str) -> Vec<String> {
    vec![format!("DROP DATABASE IF EXISTS {}", quote(name))]
}

fn create_sql(name: &str) -> Vec<String> {
    vec![format!("CREATE DATABASE {}", quote(name))]
}

/// A table's `CHECK TABLE` verdict, from its last row's message type and text: `None` when
/// it is OK, else what is wrong.
fn verdict(table: &str, last: Option<(&str, &str)>) -> Option<String> {
    match last {
        Some(("status", "OK")) => None,
        Some((kind, text)) => Some(format!("{table}: {kind} {text}")),
        None => Some(format!("{table}: no verdict")),
    }
}

/// The checks of a restored database: `CHECK TABLE` of its `tables` (what was wrong: `bad`),
/// and none of its `events` enabled.
fn checks(tables: usize, bad: Vec<String>, events: i64, enabled: i64) -> Vec<Check> {
    vec![
        Check {
            name: "check table".into(),
            ok: bad.is_empty(),
            detail: if bad.is_empty() {
                format!("{tables} tables OK")
            } else {
                bad.join("; ")
            },
        },
        Check {
            name: "events disabled".into(),
            ok: enabled == 0,
            detail: if enabled == 0 {
                format!(
                    "{events} scheduled event{}, none enabled in the scratch database",
                    if events == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "{enabled} of {events} scheduled events are enabled in the scratch database"
                )
            },
        },
    ]
}

/// [`Dialect::integrity`] asked through the mysql tool.
fn integrity_through(sql: &dyn RunSql) -> Result<Vec<Check>> {
    let names: Vec<String> = sql
        .rows(&[BASE_TABLES.into()])?
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect();
    let mut bad = Vec::new();
    for t in &names {
        // (Table, Op, Msg_type, Msg_text); the last row is the verdict.
        let rows = sql.rows(&[format!("CHECK TABLE {}", quote(t))])?;
        let last = rows.last().map(|r| {
            (
                r.get(2).map_or("", |s| s.as_str()),
                r.get(3).map_or("", |s| s.as_str()),
            )
        });
        bad.extend(verdict(t, last));
    }
    let rows = sql.rows(&[EVENTS.into()])?;
    let events = number(&rows)?;
    let enabled = number(
        &rows
            .iter()
            .map(|r| r.iter().skip(1).cloned().collect())
            .collect::<Vec<_>>(),
    )?;
    Ok(checks(names.len(), bad, events, enabled))
}

/// A string literal for `text`; `None` for text this program never asks about (quotes and
/// backslashes, which a literal would need to escape).
fn literal(text: &str) -> Option<String> {
    (!text.contains(['\'', '\\', '\0'])).then(|| format!("'{text}'"))
}

async fn base_tables(c: &mut MySqlConnection, what: &str) -> Result<Vec<String>> {
    sqlx::query_scalar(BASE_TABLES)
        .fetch_all(c)
        .await
        .map_err(|e| sql_error(what, e))
}

#[async_trait]
impl Dialect for Mysql {
    fn kind(&self) -> SourceKind {
        SourceKind::Mysql
    }

    fn syntax(&self) -> Syntax {
        Syntax::Mysql
    }

    fn name(&self) -> String {
        self.0.database()
    }

    fn display(&self) -> String {
        self.0.display()
    }

    fn server_mut(&mut self) -> Option<&mut Server> {
        Some(&mut self.0)
    }

    fn tool_password_sources(&self) -> Option<&'static str> {
        Some("MYSQL_PWD or ~/.my.cnf")
    }

    fn file(&self) -> Option<&Path> {
        None
    }

    fn with_database(&self, name: &str) -> Box<dyn Dialect> {
        Box::new(Mysql(self.0.with_database(name)))
    }

    fn clone_box(&self) -> Box<dyn Dialect> {
        Box::new(self.clone())
    }

    fn tools(&self) -> Tools {
        TOOLS
    }

    fn dump_command(&self, tool_version: &str) -> Command {
        dump_command(&self.0, tool_version)
    }

    fn dump_complete(&self, tail: &[u8]) -> bool {
        holds(tail, b"-- Dump completed")
    }

    fn load_command(&self) -> Command {
        load_command(&self.0)
    }

    fn info_command(&self) -> Option<Command> {
        let mut cmd = tool_command(TOOLS.load, &self.0);
        cmd.args(["--batch", "--skip-column-names", "-e"])
            .arg("SELECT DATABASE(), VERSION()")
            .arg(format!("--database={}", self.0.database()));
        Some(cmd)
    }

    fn tool_sql(&self) -> Option<ToolSql> {
        Some(ToolSql {
            exists: |name| {
                literal(name).map(|l| {
                    format!("SELECT 1 FROM information_schema.schemata WHERE schema_name = {l}")
                })
            },
            object_count: OBJECT_COUNT.into(),
            tables: BASE_TABLES.into(),
            count: |table| Some(format!("SELECT COUNT(*) FROM {}", quote(table))),
            drop: drop_sql,
            create: create_sql,
            integrity: integrity_through,
            escaped: true,
        })
    }

    fn sql_command(&self, admin: bool) -> Option<Command> {
        let mut cmd = tool_command(TOOLS.load, &self.0);
        // Output as the parser reads it, whatever the user's option files say.
        cmd.args([
            "--batch",
            "--skip-column-names",
            "--skip-vertical",
            "--skip-html",
            "--skip-xml",
            "--default-character-set=utf8mb4",
        ]);
        if !admin {
            cmd.arg(format!("--database={}", self.0.database()));
        }
        Some(cmd)
    }

    fn scratch_filter<'w>(&self, out: &'w mut dyn Write) -> Box<dyn LoadFilter + 'w> {
        Box::new(DisableEvents::new(out))
    }

    async fn info(&self) -> Result<ServerInfo> {
        let s = &self.0;
        check_name(&s.database())?;
        let what = s.display();
        let mut c = connect(s, true).await?;
        let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let database: String = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let rows = sqlx::query(
            "SELECT CAST(table_name AS CHAR), \
                    CAST(COALESCE(data_length, 0) + COALESCE(index_length, 0) AS UNSIGNED) \
             FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .map_err(|e| sql_error(&what, e))?;
        let mut sizes = Vec::new();
        for r in rows {
            let name: String = r.try_get(0).map_err(|e| sql_error(&what, e))?;
            let bytes: u64 = r.try_get(1).map_err(|e| sql_error(&what, e))?;
            sizes.push((name, bytes));
        }
        let _ = c.close().await;
        let host = s.host().unwrap_or("localhost");
        Ok(ServerInfo {
            server: format!("{host}:{}", s.url().port().unwrap_or(3306)),
            version,
            database,
            sizes,
            extra: Vec::new(),
        })
    }

    /// How many tables, views, routines and events the database holds; `None` if it does not
    /// exist.
    async fn object_count(&self) -> Result<Option<u64>> {
        let s = &self.0;
        let what = s.display();
        let mut c = match MySqlConnection::connect_with(&options(s, true)?).await {
            Ok(c) => c,
            Err(sqlx::Error::Database(d))
                if d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|m| m.number() == 1049) =>
            {
                // ER_BAD_DB_ERROR: unknown database.
                return Ok(None);
            }
            Err(e) => return Err(sql_error(&what, e)),
        };
        let n: i64 = sqlx::query_scalar(OBJECT_COUNT)
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let _ = c.close().await;
        Ok(Some(n.max(0) as u64))
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let s = &self.0;
        let what = s.display();
        let mut c = connect(s, true).await?;
        let names = base_tables(&mut c, &what).await?;
        let _ = c.close().await;
        Ok(names)
    }

    /// Rows of each table, over one connection (`None`: the table could not be counted).
    async fn count_rows(&self, tables: &[String]) -> Result<Vec<Option<u64>>> {
        let s = &self.0;
        let c = connect(s, true).await?;
        let quoted = tables.iter().map(|t| Some(quote(t))).collect();
        Ok(count_each(c, quoted).await)
    }

    /// `CHECK TABLE` on every table.
    async fn integrity(&self) -> Result<Vec<Check>> {
        let s = &self.0;
        let what = s.display();
        let mut c = connect(s, true).await?;
        let mut bad = Vec::new();
        let names = base_tables(&mut c, &what).await?;
        for t in &names {
            let rows = sqlx::query(&format!("CHECK TABLE {}", quote(t)))
                .fetch_all(&mut c)
                .await
                .map_err(|e| sql_error(t, e))?;
            // (Table, Op, Msg_type, Msg_text); the last row is the verdict.
            let verdict_of = rows.last().map(|r| {
                let kind: String = r.try_get::<String, _>(2).unwrap_or_default();
                let text: String = r.try_get::<String, _>(3).unwrap_or_default();
                (kind, text)
            });
            bad.extend(verdict(
                t,
                verdict_of.as_ref().map(|(k, t)| (k.as_str(), t.as_str())),
            ));
        }
        // Events were loaded disabled (see `DisableEvents`): none may be able to run here.
        let (events, enabled): (i64, i64) = sqlx::query_as(EVENTS)
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let _ = c.close().await;
        Ok(checks(names.len(), bad, events, enabled))
    }

    async fn recreate(&self) -> Result<()> {
        let s = &self.0;
        let name = s.database();
        check_name(&name)?;
        let what = s.display();
        let mut c = connect(s, false).await?;
        for statement in drop_sql(&name).into_iter().chain(create_sql(&name)) {
            sqlx::query(&statement)
                .execute(&mut c)
                .await
                .map_err(|e| sql_error(&what, e))?;
        }
        let _ = c.close().await;
        Ok(())
    }

    async fn drop_database(&self) -> Result<()> {
        let s = &self.0;
        let mut c = connect(s, false).await?;
        for statement in drop_sql(&s.database()) {
            sqlx::query(&statement)
                .execute(&mut c)
                .await
                .map_err(|e| sql_error(&s.display(), e))?;
        }
        let _ = c.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtids_are_left_out_by_mysqls_own_dump_tool() {
        for (line, off) in [
            (
                "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)",
                true,
            ),
            (
                "mysqldump  Ver 8.4.3 for Linux on aarch64 (MySQL Community Server - GPL)",
                true,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)",
                true,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.6.51, for Linux (x86_64)",
                true,
            ),
            (
                "mysqldump  Ver 10.13 Distrib 5.5.62, for Linux (x86_64)",
                false,
            ),
            (
                "mysqldump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)",
                false,
            ),
            (
                "mysqldump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)",
                false,
            ),
            ("mysqldump", false),
            ("mysqldump  Ver x", false),
        ] {
            assert_eq!(writes_gtid_purged(line), off, "{line}");
            let s = Server::parse("mysql://u@h/db", &["mysql"]).unwrap();
            let args: Vec<String> = dump_command(&s, line)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(
                args.iter().any(|a| a == "--set-gtid-purged=OFF"),
                off,
                "{line}: {args:?}"
            );
            assert_eq!(args.last().map(String::as_str), Some("db"), "{args:?}");
        }
    }
}
