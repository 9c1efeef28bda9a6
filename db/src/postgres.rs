//! PostgreSQL: `pg_dump` (plain SQL, one consistent snapshot of the database) to back up,
//! `psql` (one transaction, stop at the first error) to restore, sqlx for the rest.

use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use strata_format::snapshot::SourceKind;

use crate::check::{count_each, Check};
use crate::dialect::{holds, number, Dialect, RunSql, ToolSql, Tools};
use crate::error::{sql_error, DbError, Result};
use crate::ident::{quote, quote_qualified};
use crate::info::ServerInfo;
use crate::scan::Syntax;
use crate::server::Server;

/// A PostgreSQL database: `postgres://user@host[:port]/database[?options]` (libpq's URL
/// form).
#[derive(Debug, Clone)]
pub(crate) struct Postgres(Server);

impl Postgres {
    /// Parses a `postgres://` or `postgresql://` URL (a password in it is taken out, see
    /// [`Server`]).
    pub(crate) fn parse(url: &str) -> Result<Self> {
        Ok(Postgres(Server::parse(url, &["postgres", "postgresql"])?))
    }
}

const TOOLS: Tools = Tools {
    dump: "pg_dump",
    load: "psql",
    package: "postgresql-client",
};

/// The password goes to `PGPASSWORD`: the URL on the tools' command line has none.
fn with_password(cmd: &mut Command, s: &Server) {
    if let Some(pw) = s.password() {
        cmd.env("PGPASSWORD", pw.expose());
    }
}

fn dump_command(s: &Server) -> Command {
    let mut cmd = Command::new(TOOLS.dump);
    cmd.arg("--no-password").arg("--dbname").arg(s.tool_url());
    with_password(&mut cmd, s);
    cmd
}

fn load_command(s: &Server) -> Command {
    let mut cmd = Command::new(TOOLS.load);
    cmd.args([
        "--no-password",
        "--no-psqlrc",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "--dbname",
    ])
    .arg(s.tool_url());
    with_password(&mut cmd, s);
    cmd
}

/// sqlx's options for `s`; a local socket is found where libpq looks (`PGHOST`, else the
/// usual socket directories), since sqlx's URL parser takes no empty host.
fn options(s: &Server) -> Result<PgConnectOptions> {
    let opts = if s.socket() {
        let mut u = s.url().clone();
        let _ = u.set_username("");
        let _ = u.set_port(None);
        let text = u.as_str().replacen("://localhost", "://", 1);
        let mut opts = PgConnectOptions::from_str(&text).map_err(|e| sql_error(&s.display(), e))?;
        if let Some(user) = s.user() {
            opts = opts.username(&user);
        }
        if let Some(port) = s.url().port() {
            opts = opts.port(port);
        }
        let has_host = s.url().query_pairs().any(|(k, _)| k == "host");
        if !has_host {
            let port = s
                .url()
                .port()
                .or_else(|| std::env::var("PGPORT").ok()?.parse().ok())
                .unwrap_or(5432);
            if let Some(dir) = socket_dir(port, std::env::var("PGHOST").ok(), SOCKET_DIRS) {
                opts = opts.socket(dir);
            }
        }
        opts
    } else {
        PgConnectOptions::from_str(s.url().as_str()).map_err(|e| sql_error(&s.display(), e))?
    };
    Ok(match s.password() {
        Some(pw) => opts.password(pw.expose()),
        None => opts,
    })
}

/// Where libpq (as Debian and most distributions build it) looks for a server's socket.
const SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/run/postgresql", "/tmp"];

/// The directory of the socket of the server on `port`, as libpq finds it for a URL without
/// a host: `PGHOST` when it names a directory, else the first of `dirs` that holds
/// `.s.PGSQL.<port>`; `None` when neither does (then sqlx's own default applies).
fn socket_dir(port: u16, pghost: Option<String>, dirs: &[&str]) -> Option<std::path::PathBuf> {
    if let Some(h) = pghost.filter(|h| h.starts_with('/')) {
        return Some(h.into());
    }
    dirs.iter()
        .map(std::path::PathBuf::from)
        .find(|d| d.join(format!(".s.PGSQL.{port}")).exists())
}

pub(crate) async fn connect(s: &Server) -> Result<PgConnection> {
    PgConnection::connect_with(&options(s)?)
        .await
        .map_err(|e| connect_error(s, e))
}

fn connect_error(s: &Server, e: sqlx::Error) -> DbError {
    sql_error(&s.display(), e)
}

/// Whether the error says the database does not exist.
fn is_missing_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000"))
}

/// A connection to another database of the same server, for creating and dropping.
async fn maintenance(s: &Server) -> Result<PgConnection> {
    connect(&s.with_database(maintenance_name(s))).await
}

/// The database to connect to for creating and dropping `s`'s.
fn maintenance_name(s: &Server) -> &'static str {
    if s.database() == "postgres" {
        "template1"
    } else {
        "postgres"
    }
}

const USER_TABLES: &str = "FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// How many objects (relations, functions, schemas, extensions) of its own the database
/// holds.
const OBJECT_COUNT: &str = "SELECT (SELECT count(*) FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%') \
      + (SELECT count(*) FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')) \
      + (SELECT count(*) FROM pg_catalog.pg_namespace \
         WHERE nspname NOT IN ('public', 'pg_catalog', 'information_schema') \
           AND nspname NOT LIKE 'pg\\_%') \
      + (SELECT count(*) FROM pg_catalog.pg_extension WHERE extname <> 'plpgsql')";

/// The database's tables as dumps write them (`schema.table`, quoted where needed).
fn tables_sql() -> String {
    format!(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
         {USER_TABLES} ORDER BY 1"
    )
}

const INVALID_INDEXES: &str = "SELECT count(*) FROM pg_catalog.pg_index WHERE NOT indisvalid";

const LOAD_AMCHECK: &str = "CREATE EXTENSION IF NOT EXISTS amcheck";

/// Checks every valid B-tree index against its table; the number checked. Materialized
/// first: the check must only ever see B-tree indexes.
const AMCHECK: &str = "WITH idx AS MATERIALIZED ( \
       SELECT c.oid FROM pg_catalog.pg_index i \
       JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
       JOIN pg_catalog.pg_am am ON am.oid = c.relam \
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
       WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_toast%') \
     SELECT count(*) FROM (SELECT bt_index_check(oid, true) FROM idx) checked";

fn drop_sql(name: &str) -> Vec<String> {
    vec![format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote(name)
    )]
}

/// From template0, as pg_dump's documentation asks: nothing local in template1 may collide
/// with what the dump creates.
fn create_sql(name: &str) -> Vec<String> {
    vec![format!(
        "CREATE DATABASE {} TEMPLATE template0",
        quote(name)
    )]
}

fn valid_indexes(invalid: i64) -> Check {
    Check {
        name: "valid indexes".into(),
        ok: invalid == 0,
        detail: format!("{invalid} invalid indexes"),
    }
}

/// The amcheck check: its extension could not be loaded (`loaded` fails: skipped), or the
/// indexes it checked (`checked`).
fn amcheck(
    loaded: std::result::Result<(), String>,
    checked: std::result::Result<i64, String>,
) -> Check {
    let name = "amcheck".to_string();
    match (loaded, checked) {
        (Err(e), _) => Check {
            name,
            ok: true,
            detail: format!("skipped: the amcheck extension cannot be loaded ({e})"),
        },
        (Ok(()), Ok(n)) => Check {
            name,
            ok: true,
            detail: format!("{n} B-tree indexes agree with their tables (bt_index_check)"),
        },
        (Ok(()), Err(e)) => Check {
            name,
            ok: false,
            detail: e,
        },
    }
}

/// [`Dialect::integrity`] asked through psql.
fn integrity_through(sql: &dyn RunSql) -> Result<Vec<Check>> {
    let invalid = number(&sql.rows(&[INVALID_INDEXES.into()])?)?;
    let loaded = sql
        .rows(&[LOAD_AMCHECK.into()])
        .map(|_| ())
        .map_err(|e| e.to_string());
    let checked = match &loaded {
        Ok(()) => sql
            .rows(&[AMCHECK.into()])
            .map_err(|e| e.to_string())
            .and_then(|r| number(&r).map_err(|e| e.to_string())),
        Err(_) => Ok(0),
    };
    Ok(vec![valid_indexes(invalid), amcheck(loaded, checked)])
}

/// A string literal for `text`; `None` for text this program never asks about (quotes and
/// backslashes, which a literal would need to escape).
fn literal(text: &str) -> Option<String> {
    (!text.contains(['\'', '\\', '\0'])).then(|| format!("'{text}'"))
}

#[async_trait]
impl Dialect for Postgres {
    fn kind(&self) -> SourceKind {
        SourceKind::Postgres
    }

    fn syntax(&self) -> Syntax {
        Syntax::Postgres
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
        Some("PGPASSWORD or ~/.pgpass")
    }

    fn file(&self) -> Option<&Path> {
        None
    }

    fn with_database(&self, name: &str) -> Box<dyn Dialect> {
        Box::new(Postgres(self.0.with_database(name)))
    }

    fn clone_box(&self) -> Box<dyn Dialect> {
        Box::new(self.clone())
    }

    fn tools(&self) -> Tools {
        TOOLS
    }

    fn dump_command(&self, _tool_version: &str) -> Command {
        dump_command(&self.0)
    }

    fn dump_complete(&self, tail: &[u8]) -> bool {
        holds(tail, b"-- PostgreSQL database dump complete")
    }

    fn load_command(&self) -> Command {
        load_command(&self.0)
    }

    fn info_command(&self) -> Option<Command> {
        let mut cmd = Command::new(TOOLS.load);
        cmd.args(["--no-password", "--no-psqlrc", "-At", "-F", "\t", "-c"])
            .arg("SELECT pg_catalog.current_database(), pg_catalog.version()")
            .arg("--dbname")
            .arg(self.0.tool_url());
        with_password(&mut cmd, &self.0);
        Some(cmd)
    }

    fn tool_sql(&self) -> Option<ToolSql> {
        Some(ToolSql {
            exists: |name| {
                literal(name)
                    .map(|l| format!("SELECT 1 FROM pg_catalog.pg_database WHERE datname = {l}"))
            },
            object_count: OBJECT_COUNT.into(),
            tables: tables_sql(),
            count: |table| {
                quote_qualified(table)
                    .ok()
                    .map(|q| format!("SELECT count(*) FROM {q}"))
            },
            drop: drop_sql,
            create: create_sql,
            integrity: integrity_through,
            escaped: false,
        })
    }

    fn sql_command(&self, admin: bool) -> Option<Command> {
        let s = if admin {
            self.0.with_database(maintenance_name(&self.0))
        } else {
            self.0.clone()
        };
        let mut cmd = Command::new(TOOLS.load);
        cmd.args([
            "--no-password",
            "--no-psqlrc",
            "--quiet",
            "--set",
            "ON_ERROR_STOP=1",
            "-At",
            "-F",
            "\t",
            "--file=-",
        ]);
        cmd.arg("--dbname").arg(s.tool_url());
        with_password(&mut cmd, &s);
        Some(cmd)
    }

    async fn info(&self) -> Result<ServerInfo> {
        let s = &self.0;
        let what = s.display();
        let mut c = connect(s).await?;
        let version: String = sqlx::query_scalar("SELECT pg_catalog.version()")
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let database: String = sqlx::query_scalar("SELECT pg_catalog.current_database()::text")
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let sizes: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), \
                    pg_catalog.pg_total_relation_size(c.oid) {USER_TABLES} ORDER BY 1"
        ))
        .fetch_all(&mut c)
        .await
        .map_err(|e| sql_error(&what, e))?;
        let _ = c.close().await;
        let host = s.host().unwrap_or("local socket");
        Ok(ServerInfo {
            server: match s.url().port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            },
            version,
            database,
            sizes: sizes
                .into_iter()
                .map(|(t, b)| (t, b.max(0) as u64))
                .collect(),
            extra: Vec::new(),
        })
    }

    /// How many objects (relations, functions, schemas, extensions) of its own the database
    /// holds; `None` if it does not exist.
    async fn object_count(&self) -> Result<Option<u64>> {
        let s = &self.0;
        let mut c = match PgConnection::connect_with(&options(s)?).await {
            Ok(c) => c,
            Err(e) if is_missing_database(&e) => return Ok(None),
            Err(e) => return Err(connect_error(s, e)),
        };
        let n: i64 = sqlx::query_scalar(OBJECT_COUNT)
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&s.display(), e))?;
        let _ = c.close().await;
        Ok(Some(n.max(0) as u64))
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let s = &self.0;
        let mut c = connect(s).await?;
        let names: Vec<String> = sqlx::query_scalar(&tables_sql())
            .fetch_all(&mut c)
            .await
            .map_err(|e| sql_error(&s.display(), e))?;
        let _ = c.close().await;
        Ok(names)
    }

    /// Rows of each table, over one connection (`None`: the table could not be counted).
    async fn count_rows(&self, tables: &[String]) -> Result<Vec<Option<u64>>> {
        let s = &self.0;
        let c = connect(s).await?;
        let quoted = tables.iter().map(|t| quote_qualified(t).ok()).collect();
        Ok(count_each(c, quoted).await)
    }

    /// Every index valid, and (where the amcheck extension can be loaded) every B-tree index
    /// consistent with its table.
    async fn integrity(&self) -> Result<Vec<Check>> {
        let s = &self.0;
        let what = s.display();
        let mut c = connect(s).await?;
        let invalid: i64 = sqlx::query_scalar(INVALID_INDEXES)
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let loaded = sqlx::query(LOAD_AMCHECK)
            .execute(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        let checked = match &loaded {
            Ok(()) => sqlx::query_scalar::<_, i64>(AMCHECK)
                .fetch_one(&mut c)
                .await
                .map_err(|e| e.to_string()),
            Err(_) => Ok(0),
        };
        let checks = vec![valid_indexes(invalid), amcheck(loaded, checked)];
        let _ = c.close().await;
        Ok(checks)
    }

    async fn recreate(&self) -> Result<()> {
        let s = &self.0;
        let mut c = maintenance(s).await?;
        let what = s.display();
        let name = s.database();
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
        let mut c = maintenance(s).await?;
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

    /// A URL without a host reaches the socket of its own port, as libpq would: `PGHOST`
    /// when it names a directory, else the directory that holds that port's socket.
    #[test]
    fn a_socket_url_finds_its_ports_socket() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(b.path().join(".s.PGSQL.5433"), b"").unwrap();
        let dirs = [a.path().to_str().unwrap(), b.path().to_str().unwrap()];
        assert_eq!(socket_dir(5433, None, &dirs), Some(b.path().to_path_buf()));
        assert_eq!(socket_dir(5432, None, &dirs), None);
        assert_eq!(
            socket_dir(5432, Some("/srv/pg".into()), &dirs),
            Some("/srv/pg".into())
        );
        assert_eq!(
            socket_dir(5433, Some("db.example".into()), &dirs),
            Some(b.path().to_path_buf())
        );
        let s = Server::parse("postgres://kanbu@:5433/kanbu?host=/srv/pg", &["postgres"]).unwrap();
        let o = options(&s).unwrap();
        assert_eq!(
            o.get_socket().map(|p| p.to_path_buf()),
            Some("/srv/pg".into())
        );
        assert_eq!(o.get_port(), 5433);
        assert_eq!(o.get_username(), "kanbu");
        assert_eq!(o.get_database(), Some("kanbu"));
    }
}
