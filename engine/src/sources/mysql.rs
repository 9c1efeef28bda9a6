//! MySQL and MariaDB: `mysqldump --single-transaction` (one consistent InnoDB snapshot, rows in
//! primary key order, no dump date, so that unchanged data dumps to the same bytes) to back
//! up, `mysql` (stops at the first error) to restore, sqlx for the rest.

use std::process::Command;
use std::str::FromStr;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{Connection, Row};

use super::{db_error, url_database, url_password, url_user, Check, ServerInfo};
use crate::{EngineError, Result};

/// The password: the URL's, else `MYSQL_PWD` (which the tools read too).
fn password(u: &url::Url) -> Option<String> {
    url_password(u).or_else(|| std::env::var("MYSQL_PWD").ok())
}

/// Connection flags for the command-line tools; the password goes to `MYSQL_PWD`.
fn tool_command(program: &str, u: &url::Url) -> Command {
    let mut cmd = Command::new(program);
    if let Some(host) = u.host_str() {
        cmd.arg(format!(
            "--host={}",
            host.trim_start_matches('[').trim_end_matches(']')
        ));
    }
    if let Some(port) = u.port() {
        cmd.arg(format!("--port={port}"));
    }
    if let Some(user) = url_user(u) {
        cmd.arg(format!("--user={user}"));
    }
    if let Some(pw) = password(u) {
        cmd.env("MYSQL_PWD", pw);
    }
    cmd
}

pub(super) fn dump_command(u: &url::Url) -> Command {
    let mut cmd = tool_command("mysqldump", u);
    cmd.args([
        "--single-transaction",
        "--routines",
        "--triggers",
        "--events",
        "--order-by-primary",
        "--skip-dump-date",
        "--no-tablespaces",
        "--default-character-set=utf8mb4",
    ])
    .arg(url_database(u));
    cmd
}

pub(super) fn load_command(u: &url::Url) -> Command {
    let mut cmd = tool_command("mysql", u);
    cmd.args(["--batch", "--default-character-set=utf8mb4"])
        .arg(format!("--database={}", url_database(u)));
    cmd
}

fn options(u: &url::Url, with_database: bool) -> Result<MySqlConnectOptions> {
    let mut plain = u.clone();
    let _ = plain.set_password(None);
    plain.set_path("/");
    plain.set_query(None);
    // sqlx knows only mysql://.
    let text = plain.as_str().replacen("mariadb://", "mysql://", 1);
    let mut opts = MySqlConnectOptions::from_str(&text)
        .map_err(|e| db_error(&super::redact(u.as_str()), e))?;
    if let Some(pw) = password(u) {
        opts = opts.password(&pw);
    }
    if with_database {
        opts = opts.database(&url_database(u));
    }
    Ok(opts)
}

async fn connect(u: &url::Url, with_database: bool) -> Result<MySqlConnection> {
    MySqlConnection::connect_with(&options(u, with_database)?)
        .await
        .map_err(|e| db_error(&super::redact(u.as_str()), e))
}

/// `` `name` ``, quoted for MySQL.
fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('-') || name.contains('\0') {
        return Err(EngineError::Invalid(format!(
            "{name:?} is not a database name this program uses"
        )));
    }
    Ok(())
}

pub(super) async fn info(u: &url::Url) -> Result<ServerInfo> {
    check_name(&url_database(u))?;
    let what = super::redact(u.as_str());
    let mut c = connect(u, true).await?;
    let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
        .fetch_one(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    let database: String = sqlx::query_scalar("SELECT CAST(DATABASE() AS CHAR)")
        .fetch_one(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    let rows = sqlx::query(
        "SELECT CAST(table_name AS CHAR), \
                CAST(COALESCE(data_length, 0) + COALESCE(index_length, 0) AS UNSIGNED) \
         FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .map_err(|e| db_error(&what, e))?;
    let mut sizes = Vec::new();
    for r in rows {
        let name: String = r.try_get(0).map_err(|e| db_error(&what, e))?;
        let bytes: u64 = r.try_get(1).map_err(|e| db_error(&what, e))?;
        sizes.push((name, bytes));
    }
    let _ = c.close().await;
    let host = u.host_str().unwrap_or("localhost");
    Ok(ServerInfo {
        server: format!("{host}:{}", u.port().unwrap_or(3306)),
        version,
        database,
        sizes,
        extra: Vec::new(),
    })
}

async fn base_tables(c: &mut MySqlConnection, what: &str) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
         WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(c)
    .await
    .map_err(|e| db_error(what, e))
}

/// How many tables, views, routines and events the database holds; `None` if it does not
/// exist.
pub(super) async fn object_count(u: &url::Url) -> Result<Option<u64>> {
    let what = super::redact(u.as_str());
    let mut c = match MySqlConnection::connect_with(&options(u, true)?).await {
        Ok(c) => c,
        Err(sqlx::Error::Database(d))
            if d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| m.number() == 1049) =>
        {
            // ER_BAD_DB_ERROR: unknown database.
            return Ok(None);
        }
        Err(e) => return Err(db_error(&what, e)),
    };
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()) \
              + (SELECT COUNT(*) FROM information_schema.routines WHERE routine_schema = DATABASE()) \
              + (SELECT COUNT(*) FROM information_schema.events WHERE event_schema = DATABASE())",
    )
    .fetch_one(&mut c)
    .await
    .map_err(|e| db_error(&what, e))?;
    let _ = c.close().await;
    Ok(Some(n.max(0) as u64))
}

pub(super) async fn tables(u: &url::Url) -> Result<Vec<String>> {
    let what = super::redact(u.as_str());
    let mut c = connect(u, true).await?;
    let names = base_tables(&mut c, &what).await?;
    let _ = c.close().await;
    Ok(names)
}

/// Rows of each table, over one connection (`None`: the table could not be counted).
pub(super) async fn count_rows(u: &url::Url, tables: &[String]) -> Result<Vec<Option<u64>>> {
    let mut c = connect(u, true).await?;
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let n = sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {}", quote(table)))
            .fetch_one(&mut c)
            .await
            .ok();
        out.push(n.map(|n| n.max(0) as u64));
    }
    let _ = c.close().await;
    Ok(out)
}

/// `CHECK TABLE` on every table.
pub(super) async fn integrity(u: &url::Url) -> Result<Vec<Check>> {
    let what = super::redact(u.as_str());
    let mut c = connect(u, true).await?;
    let mut bad = Vec::new();
    let names = base_tables(&mut c, &what).await?;
    for t in &names {
        let rows = sqlx::query(&format!("CHECK TABLE {}", quote(t)))
            .fetch_all(&mut c)
            .await
            .map_err(|e| db_error(t, e))?;
        // (Table, Op, Msg_type, Msg_text); the last row is the verdict.
        let verdict = rows.last().map(|r| {
            let kind: String = r.try_get::<String, _>(2).unwrap_or_default();
            let text: String = r.try_get::<String, _>(3).unwrap_or_default();
            (kind, text)
        });
        match verdict {
            Some((kind, text)) if kind == "status" && text == "OK" => {}
            Some((kind, text)) => bad.push(format!("{t}: {kind} {text}")),
            None => bad.push(format!("{t}: no verdict")),
        }
    }
    let _ = c.close().await;
    Ok(vec![Check {
        name: "check table".into(),
        ok: bad.is_empty(),
        detail: if bad.is_empty() {
            format!("{} tables OK", names.len())
        } else {
            bad.join("; ")
        },
    }])
}

pub(super) async fn recreate(u: &url::Url) -> Result<()> {
    let name = url_database(u);
    check_name(&name)?;
    let what = super::redact(u.as_str());
    let mut c = connect(u, false).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {}", quote(&name)))
        .execute(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    sqlx::query(&format!("CREATE DATABASE {}", quote(&name)))
        .execute(&mut c)
        .await
        .map_err(|e| db_error(&what, e))?;
    let _ = c.close().await;
    Ok(())
}

pub(super) async fn drop_database(u: &url::Url) -> Result<()> {
    let name = url_database(u);
    let mut c = connect(u, false).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {}", quote(&name)))
        .execute(&mut c)
        .await
        .map_err(|e| db_error(&super::redact(u.as_str()), e))?;
    let _ = c.close().await;
    Ok(())
}
