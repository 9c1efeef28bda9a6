//! SQLite: `sqlite3 FILE .dump` (inside one read transaction: a consistent state even while
//! the application writes) to back up; `sqlite3 NEWFILE` reading the dump to restore, into a
//! new file that replaces the target only once it is complete and checked.

use std::path::{Path, PathBuf};
use std::process::Command;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::Connection;
use strata_format::snapshot::SourceKind;

use crate::check::{count_each, Check};
use crate::dialect::{Dialect, Tools};
use crate::error::{sql_error, DbError, Result};
use crate::ident::{quote, quote_qualified};
use crate::info::ServerInfo;
use crate::scan::Syntax;
use crate::server::Server;

/// A SQLite database file (absolute).
#[derive(Debug, Clone)]
pub(crate) struct Sqlite(pub(crate) PathBuf);

const TOOLS: Tools = Tools {
    dump: "sqlite3",
    load: "sqlite3",
    package: "sqlite3",
};

/// The database's name: the file's name without its extension.
fn database_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into())
}

fn dump_command(path: &Path) -> Command {
    let mut cmd = Command::new(TOOLS.dump);
    // Read-only, and waiting (up to a minute) for a writer's lock rather than failing.
    cmd.args(["-readonly", "-batch", "-cmd", ".timeout 60000"])
        .arg(path)
        .arg(".dump");
    cmd
}

fn load_command(path: &Path) -> Command {
    let mut cmd = Command::new(TOOLS.load);
    cmd.args(["-batch", "-bail"]).arg(path);
    cmd
}

async fn connect(path: &Path, read_only: bool) -> Result<SqliteConnection> {
    if !path.is_file() {
        return Err(DbError::Unavailable(format!(
            "{}: no such SQLite database file",
            path.display()
        )));
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .busy_timeout(std::time::Duration::from_secs(60));
    SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| sql_error(&path.display().to_string(), e))
}

/// The SQLite library version that last wrote the file (its header, bytes 96..100).
fn writer_version(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut header = [0u8; 100];
    std::fs::File::open(path)
        .ok()?
        .read_exact(&mut header)
        .ok()?;
    if &header[..16] != b"SQLite format 3\0" {
        return None;
    }
    let n = u32::from_be_bytes([header[96], header[97], header[98], header[99]]);
    Some(format!(
        "{}.{}.{}",
        n / 1_000_000,
        n / 1000 % 1000,
        n % 1000
    ))
}

/// Sets the header fields `.dump` leaves out on a restored database.
pub(crate) async fn set_header_fields(
    path: &Path,
    user_version: Option<i32>,
    application_id: Option<i32>,
) -> Result<()> {
    if user_version.is_none() && application_id.is_none() {
        return Ok(());
    }
    let what = path.display().to_string();
    let mut c = connect(path, false).await?;
    for (pragma, value) in [
        ("user_version", user_version),
        ("application_id", application_id),
    ] {
        if let Some(v) = value {
            // An integer, formatted here: nothing from the snapshot reaches SQL as text.
            sqlx::query(&format!("PRAGMA {pragma} = {v}"))
                .execute(&mut c)
                .await
                .map_err(|e| sql_error(&what, e))?;
        }
    }
    let _ = c.close().await;
    Ok(())
}

/// Tables as `.dump` names them: bare when that is a plain identifier, else quoted.
fn dump_name(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote(name)
    }
}

async fn table_names(c: &mut SqliteConnection, what: &str) -> Result<Vec<String>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' \
         ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
    )
    .fetch_all(c)
    .await
    .map_err(|e| sql_error(what, e))?;
    Ok(names.iter().map(|n| dump_name(n)).collect())
}

#[async_trait]
impl Dialect for Sqlite {
    fn kind(&self) -> SourceKind {
        SourceKind::Sqlite
    }

    fn syntax(&self) -> Syntax {
        Syntax::Sqlite
    }

    fn name(&self) -> String {
        database_name(&self.0)
    }

    fn display(&self) -> String {
        self.0.display().to_string()
    }

    fn server_mut(&mut self) -> Option<&mut Server> {
        None
    }

    fn tool_password_sources(&self) -> Option<&'static str> {
        None
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.0)
    }

    fn with_database(&self, name: &str) -> Box<dyn Dialect> {
        Box::new(Sqlite(self.0.with_file_name(format!("{name}.db"))))
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
        tail.trim_ascii_end().ends_with(b"COMMIT;")
    }

    fn load_command(&self) -> Command {
        load_command(&self.0)
    }

    async fn info(&self) -> Result<ServerInfo> {
        let path = &self.0;
        let what = path.display().to_string();
        let mut c = connect(path, true).await?;
        // Reading proves it is a database (and waits out a writer's lock).
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        // Header fields `.dump` does not write (applications keep their schema version in
        // user_version): recorded, and set again on restore.
        let mut extra = Vec::new();
        for pragma in ["user_version", "application_id"] {
            let v: i64 = sqlx::query_scalar(&format!("PRAGMA {pragma}"))
                .fetch_one(&mut c)
                .await
                .map_err(|e| sql_error(&what, e))?;
            extra.push((pragma.to_string(), v.to_string()));
        }
        let _ = c.close().await;
        let version = writer_version(path).unwrap_or_else(|| "unknown".into());
        Ok(ServerInfo {
            server: what,
            version: format!("SQLite {version} (last writer)"),
            database: database_name(path),
            sizes: Vec::new(),
            extra,
        })
    }

    /// How many schema objects (tables, views, indexes, triggers) the file holds; `None` if it
    /// does not exist.
    async fn object_count(&self) -> Result<Option<u64>> {
        let path = &self.0;
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(DbError::io(path, e)),
            Ok(m) if m.len() == 0 => return Ok(Some(0)),
            Ok(_) => {}
        }
        let what = path.display().to_string();
        let mut c = connect(path, true).await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema")
            .fetch_one(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let _ = c.close().await;
        Ok(Some(n.max(0) as u64))
    }

    async fn tables(&self) -> Result<Vec<String>> {
        let path = &self.0;
        let what = path.display().to_string();
        let mut c = connect(path, true).await?;
        let names = table_names(&mut c, &what).await?;
        let _ = c.close().await;
        Ok(names)
    }

    /// Rows of each table, over one connection (`None`: the table could not be counted).
    async fn count_rows(&self, tables: &[String]) -> Result<Vec<Option<u64>>> {
        let path = &self.0;
        let c = connect(path, true).await?;
        let quoted = tables.iter().map(|t| quote_qualified(t).ok()).collect();
        Ok(count_each(c, quoted).await)
    }

    /// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.
    async fn integrity(&self) -> Result<Vec<Check>> {
        let path = &self.0;
        let what = path.display().to_string();
        let mut c = connect(path, true).await?;
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let fk: Vec<(String,)> = sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&mut c)
            .await
            .map_err(|e| sql_error(&what, e))?;
        let _ = c.close().await;
        let ok = integrity.len() == 1 && integrity[0] == "ok";
        Ok(vec![
            Check {
                name: "integrity_check".into(),
                ok,
                detail: integrity.join("; "),
            },
            Check {
                name: "foreign_key_check".into(),
                ok: fk.is_empty(),
                detail: format!("{} rows violate a foreign key", fk.len()),
            },
        ])
    }

    async fn recreate(&self) -> Result<()> {
        Ok(())
    }

    async fn drop_database(&self) -> Result<()> {
        match std::fs::remove_file(&self.0) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DbError::io(&self.0, e)),
        }
    }
}

/// A new, unused file beside `path`, readable by this user only (restored data is
/// plaintext).
pub(crate) fn temp_beside(path: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into());
    for _ in 0..16 {
        let tmp = dir.join(format!(
            ".{name}.strata-restore-{}",
            hex::encode(rand::random::<[u8; 4]>())
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(_) => return Ok(tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(DbError::io(&tmp, e)),
        }
    }
    Err(DbError::Invalid(format!(
        "cannot create a temporary file beside {}",
        path.display()
    )))
}

/// Copies the database `from` into the existing database `into` with SQLite's backup
/// (`.restore`), under its locks (waiting up to a minute for other connections).
pub(crate) fn restore_into(from: &Path, into: &Path) -> Result<()> {
    let out = Command::new(TOOLS.load)
        .args(["-batch", "-bail"])
        .arg(into)
        .arg(".timeout 60000")
        .arg(format!(
            ".restore '{}'",
            from.display().to_string().replace('\'', "''")
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| DbError::io("sqlite3", e))?;
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() || !said.is_empty() {
        return Err(DbError::Unavailable(format!(
            "sqlite3 could not restore into {} ({}): {said}",
            into.display(),
            out.status
        )));
    }
    Ok(())
}

/// Removes a temporary database and whatever journal files SQLite left beside it.
pub(crate) fn remove_with_journals(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

pub(crate) fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| DbError::io(path, e))
}

pub(crate) fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_quote_only_what_needs_it() {
        assert_eq!(dump_name("my t"), "\"my t\"");
        assert_eq!(dump_name("ledger"), "ledger");
    }
}
