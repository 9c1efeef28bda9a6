//! Database sources: PostgreSQL (`pg_dump`), MySQL/MariaDB (`mysqldump`) and SQLite
//! (`sqlite3 .dump`), backed up as one plain SQL stream each; restores into a database; and
//! restore tests in a scratch database.
//!
//! A dump streams from the tool's standard output through a row counter ([`scan`]) into the
//! archiver, chunked with the repository's database chunker (small chunks, so a night's
//! scattered row changes touch few of them). The snapshot is written only after the tool
//! exited successfully; a failed tool fails the backup with its message and leaves no
//! snapshot (the blobs already stored are garbage for `prune`).
//!
//! What the snapshot records (`source_meta`): `database`, `server`, `server_version`,
//! `dump_tool`, `chunker`, `tables` (how many), and per table `rows:<table>` (rows in the
//! dump, counted as it streamed) and, where the server reports it, `bytes:<table>`.
//! Connections for metadata, checks and restore tests use sqlx; passwords are kept apart
//! from URLs ([`server`]) and never reach a command line (they go to the tools through
//! their environment) nor the snapshot.

mod child;
mod ident;
mod mysql;
mod postgres;
pub mod scan;
mod server;
mod sqlite;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use strata_format::id::SnapshotId;
use strata_format::snapshot::{SnapshotFile, SourceKind};
use strata_format::tree::{Node, NodeKind};

use crate::archiver::{BackupOptions, BackupResult, StreamBackup, StreamFile};
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};
use child::{DumpStream, LoadSink};
use scan::{CountingReader, Dialect};
pub use server::{DbPassword, Server};

/// A database: where to back up from, restore into, or test a restore in.
#[derive(Debug, Clone)]
pub enum Database {
    /// `postgres://user@host[:port]/database[?options]` (libpq's URL form).
    Postgres(Server),
    /// `mysql://user@host[:port]/database`.
    Mysql(Server),
    /// A SQLite database file.
    Sqlite(PathBuf),
}

/// What the server says about the database, before the dump.
struct ServerInfo {
    server: String,
    version: String,
    database: String,
    /// Bytes per table, as the server reports them, by the name the dump uses.
    sizes: Vec<(String, u64)>,
    /// More facts for `source_meta` (SQLite: `user_version`, `application_id`).
    extra: Vec<(String, String)>,
}

impl Database {
    /// Parses a `postgres://` or `postgresql://` URL (a password in it is taken out, see
    /// [`Server`]).
    pub fn postgres(url: &str) -> Result<Self> {
        Ok(Database::Postgres(Server::parse(
            url,
            &["postgres", "postgresql"],
        )?))
    }

    /// Parses a `mysql://` or `mariadb://` URL (a password in it is taken out).
    pub fn mysql(url: &str) -> Result<Self> {
        Ok(Database::Mysql(Server::parse(url, &["mysql", "mariadb"])?))
    }

    /// The server of a PostgreSQL or MySQL database (`None` for SQLite, which has no
    /// login): where its password is read and set.
    pub fn server_mut(&mut self) -> Option<&mut Server> {
        match self {
            Database::Postgres(s) | Database::Mysql(s) => Some(s),
            Database::Sqlite(_) => None,
        }
    }

    /// A SQLite file (made absolute).
    pub fn sqlite(path: &Path) -> Result<Self> {
        let abs = std::path::absolute(path).map_err(|e| EngineError::io(path, e))?;
        Ok(Database::Sqlite(abs))
    }

    /// The database one of three exclusive options names (`--postgres`, `--mysql`,
    /// `--sqlite` and their restore twins), if any.
    pub fn from_options(
        postgres: Option<&str>,
        mysql: Option<&str>,
        sqlite: Option<&Path>,
    ) -> Result<Option<Self>> {
        match (postgres, mysql, sqlite) {
            (Some(url), _, _) => Self::postgres(url).map(Some),
            (None, Some(url), _) => Self::mysql(url).map(Some),
            (None, None, Some(file)) => Self::sqlite(file).map(Some),
            (None, None, None) => Ok(None),
        }
    }

    /// A database of the same kind as the snapshot source `kind`: a URL, or a file for
    /// SQLite (for `--scratch`, which names a server of the snapshot's kind).
    pub fn of_kind(kind: &SourceKind, text: &str) -> Result<Self> {
        match kind {
            SourceKind::Postgres => Self::postgres(text),
            SourceKind::Mysql => Self::mysql(text),
            SourceKind::Sqlite => Self::sqlite(Path::new(text)),
            other => Err(EngineError::Invalid(format!(
                "a {} snapshot is not a database dump",
                kind_name(other)
            ))),
        }
    }

    /// The snapshot source kind for this database.
    pub fn kind(&self) -> SourceKind {
        match self {
            Database::Postgres(_) => SourceKind::Postgres,
            Database::Mysql(_) => SourceKind::Mysql,
            Database::Sqlite(_) => SourceKind::Sqlite,
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Database::Postgres(_) => Dialect::Postgres,
            Database::Mysql(_) => Dialect::Mysql,
            Database::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The database's name: the URL's path, or the SQLite file's name without extension.
    pub fn name(&self) -> String {
        match self {
            Database::Postgres(s) | Database::Mysql(s) => s.database(),
            Database::Sqlite(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "database".into()),
        }
    }

    /// Where it is, for people and for the snapshot's paths: the URL (which holds no
    /// password) without its query, or the file's path.
    pub fn display(&self) -> String {
        match self {
            Database::Postgres(s) | Database::Mysql(s) => s.display(),
            Database::Sqlite(p) => p.display().to_string(),
        }
    }

    /// The same server with another database (for scratch databases).
    fn with_database(&self, name: &str) -> Database {
        match self {
            Database::Postgres(s) => Database::Postgres(s.with_database(name)),
            Database::Mysql(s) => Database::Mysql(s.with_database(name)),
            Database::Sqlite(p) => Database::Sqlite(p.with_file_name(format!("{name}.db"))),
        }
    }

    fn info(&self, repo: &Repository) -> Result<ServerInfo> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::info(s)),
            Database::Mysql(s) => repo.block_on(mysql::info(s)),
            Database::Sqlite(p) => repo.block_on(sqlite::info(p)),
        }
    }

    /// The dump tool's program name.
    fn dump_tool(&self) -> &'static str {
        match self {
            Database::Postgres(_) => "pg_dump",
            Database::Mysql(_) => "mysqldump",
            Database::Sqlite(_) => "sqlite3",
        }
    }

    /// The dump tool: its name, its command (for the tool whose `--version` line is
    /// `tool_version`), and the package that has it.
    fn dump_command(&self, tool_version: &str) -> (&'static str, Command, &'static str) {
        let tool = self.dump_tool();
        match self {
            Database::Postgres(s) => (tool, postgres::dump_command(s), "postgresql-client"),
            Database::Mysql(s) => (tool, mysql::dump_command(s, tool_version), "mariadb-client"),
            Database::Sqlite(p) => (tool, sqlite::dump_command(p), "sqlite3"),
        }
    }

    fn dump_tool_version(&self) -> String {
        let tool = self.dump_tool();
        let out = Command::new(tool).arg("--version").output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let first = text.lines().next().unwrap_or_default().trim().to_string();
                if first.is_empty() {
                    tool.to_string()
                } else if first.starts_with(tool) {
                    first
                } else {
                    format!("{tool} {first}")
                }
            }
            _ => tool.to_string(),
        }
    }

    /// How many objects of its own (tables, views, functions, …) the database holds;
    /// `None` if it does not exist.
    fn object_count(&self, repo: &Repository) -> Result<Option<u64>> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::object_count(s)),
            Database::Mysql(s) => repo.block_on(mysql::object_count(s)),
            Database::Sqlite(p) => repo.block_on(sqlite::object_count(p)),
        }
    }

    /// Names of its tables, as the dumps write them.
    fn tables(&self, repo: &Repository) -> Result<Vec<String>> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::tables(s)),
            Database::Mysql(s) => repo.block_on(mysql::tables(s)),
            Database::Sqlite(p) => repo.block_on(sqlite::tables(p)),
        }
    }

    /// Rows of each table (`None`: that table could not be counted), over one connection.
    fn count_rows(&self, repo: &Repository, tables: &[String]) -> Result<Vec<Option<u64>>> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::count_rows(s, tables)),
            Database::Mysql(s) => repo.block_on(mysql::count_rows(s, tables)),
            Database::Sqlite(p) => repo.block_on(sqlite::count_rows(p, tables)),
        }
    }

    /// The engine's own integrity checks of a restored database.
    fn integrity(&self, repo: &Repository) -> Result<Vec<Check>> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::integrity(s)),
            Database::Mysql(s) => repo.block_on(mysql::integrity(s)),
            Database::Sqlite(p) => repo.block_on(sqlite::integrity(p)),
        }
    }

    /// Drops the database if it exists and creates it empty (SQLite: nothing to do, the
    /// restored file replaces the old one).
    fn recreate(&self, repo: &Repository) -> Result<()> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::recreate(s)),
            Database::Mysql(s) => repo.block_on(mysql::recreate(s)),
            Database::Sqlite(_) => Ok(()),
        }
    }

    fn drop_database(&self, repo: &Repository) -> Result<()> {
        match self {
            Database::Postgres(s) => repo.block_on(postgres::drop_database(s)),
            Database::Mysql(s) => repo.block_on(mysql::drop_database(s)),
            Database::Sqlite(p) => match std::fs::remove_file(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(EngineError::io(p, e)),
            },
        }
    }
}

/// Fails the end of a dump that lacks its tool's completion marker: a tool that stopped
/// early without saying so (`sqlite3 .dump` exits 0 after read errors, ending with
/// `ROLLBACK; -- due to errors`) must not pass for a complete dump.
struct EndCheck<R> {
    inner: R,
    dialect: Dialect,
    tail: Vec<u8>,
}

const TAIL: usize = 512;

impl<R: std::io::Read> EndCheck<R> {
    fn new(inner: R, dialect: Dialect) -> Self {
        EndCheck {
            inner,
            dialect,
            tail: Vec::new(),
        }
    }
}

/// Whether `tail` (the last bytes of a dump) ends the way a complete dump does.
fn complete(dialect: Dialect, tail: &[u8]) -> bool {
    let has = |marker: &[u8]| tail.windows(marker.len()).any(|w| w == marker);
    match dialect {
        Dialect::Postgres => has(b"-- PostgreSQL database dump complete"),
        Dialect::Mysql => has(b"-- Dump completed"),
        Dialect::Sqlite => tail.trim_ascii_end().ends_with(b"COMMIT;"),
    }
}

impl<R: std::io::Read> std::io::Read for EndCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if !complete(self.dialect, &self.tail) {
                return Err(std::io::Error::other(
                    "the dump ended without its completion marker: the dump tool stopped \
                     early (see its messages above)",
                ));
            }
            return Ok(0);
        }
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > 2 * TAIL {
            self.tail.drain(..self.tail.len() - TAIL);
        }
        Ok(n)
    }
}

/// `SELECT COUNT(*)` of each table, given quoted (`None`: it could not be quoted), over one
/// connection; `None` where a count fails. The connection is closed afterwards.
async fn count_each<C>(mut c: C, quoted: Vec<Option<String>>) -> Vec<Option<u64>>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    (i64,): for<'r> sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'q> <C::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, C::Database>,
{
    let mut out = Vec::with_capacity(quoted.len());
    for table in quoted {
        let n = match table {
            Some(quoted) => sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {quoted}"))
                .fetch_one(&mut c)
                .await
                .ok(),
            None => None,
        };
        out.push(n.map(|n| n.max(0) as u64));
    }
    let _ = c.close().await;
    out
}

/// A database error, naming where.
fn db_error(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{what}: {e}"))
}

/// Backs up `db` as one SQL dump: a snapshot with the dump as `/<database>.sql` and what the
/// server said about it in `source_meta`.
pub fn backup_database(
    repo: &Repository,
    db: &Database,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    // Connecting first finds a wrong password or a missing database before anything runs.
    let info = db.info(repo)?;
    let tool_version = db.dump_tool_version();
    let (tool, cmd, package) = db.dump_command(&tool_version);
    let stream = DumpStream::spawn(tool, cmd, package)?;
    let mut reader = CountingReader::new(EndCheck::new(stream, db.dialect()), db.dialect());
    let backup = StreamBackup::new(repo, opts, progress)?;
    let chunker = repo.config().db_chunker;
    let (content, size) = backup.read(&mut reader, chunker, &db.display())?;
    let tables = reader.finish();

    let mut meta = vec![
        ("database".to_string(), info.database.clone()),
        ("server".to_string(), info.server),
        ("server_version".to_string(), info.version),
        ("dump_tool".to_string(), tool_version),
        (
            "chunker".to_string(),
            format!(
                "{}/{}/{}",
                chunker.min_size, chunker.avg_size, chunker.max_size
            ),
        ),
        ("tables".to_string(), tables.len().to_string()),
    ];
    meta.extend(info.extra);
    for (table, rows) in &tables {
        meta.push((format!("rows:{table}"), rows.to_string()));
    }
    for (table, bytes) in &info.sizes {
        if tables.iter().any(|(t, _)| t == table) {
            meta.push((format!("bytes:{table}"), bytes.to_string()));
        }
    }
    backup.finish(
        StreamFile {
            name: dump_file_name(&info.database),
            content,
            size,
        },
        db.kind(),
        vec![db.display()],
        meta,
    )
}

/// The name of the dump file in a database snapshot.
fn dump_file_name(database: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    let clean = if clean.is_empty() || clean == "." || clean == ".." {
        "database".to_string()
    } else {
        clean
    };
    format!("{clean}.sql")
}

/// Whether a snapshot holds a database dump.
pub fn is_database(snap: &SnapshotFile) -> bool {
    matches!(
        snap.source,
        SourceKind::Postgres | SourceKind::Mysql | SourceKind::Sqlite
    )
}

/// The dump file of a database snapshot (the only file at its root).
pub fn dump_node(repo: &Repository, snap: &SnapshotFile) -> Result<Node> {
    let tree = repo.load_tree(&snap.tree)?;
    let mut files = tree
        .nodes
        .into_iter()
        .filter(|n| matches!(n.kind, NodeKind::File { .. }));
    match (files.next(), files.next()) {
        (Some(node), None) => Ok(node),
        _ => Err(EngineError::Invalid(
            "the snapshot does not hold exactly one dump file".into(),
        )),
    }
}

/// The value of a `source_meta` key.
pub fn meta<'a>(snap: &'a SnapshotFile, key: &str) -> Option<&'a str> {
    snap.source_meta
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The tables and row counts a database snapshot recorded.
pub fn recorded_rows(snap: &SnapshotFile) -> Vec<(String, Option<u64>)> {
    snap.source_meta
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("rows:")
                .map(|t| (t.to_string(), v.parse::<u64>().ok()))
        })
        .collect()
}

/// The outcome of a restore into a database.
#[derive(Debug, Clone, Serialize)]
pub struct DbRestoreReport {
    /// Where it went (without password).
    pub target: String,
    pub bytes: u64,
    /// The snapshot of the target taken before it was replaced.
    pub pre_restore_snapshot: Option<String>,
}

/// How a dump is loaded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// As it was: a restore.
    Restore,
    /// Into a scratch database next to live ones: MySQL events are created disabled.
    Scratch,
}

/// Writes the dump of `snap` into a tool's input, counting bytes for the progress.
fn load_dump(
    repo: &Repository,
    node: &Node,
    target: &Database,
    sqlite_file: Option<&Path>,
    load: Load,
    progress: &dyn Progress,
) -> Result<u64> {
    let (tool, cmd, package) = match (target, sqlite_file) {
        (Database::Postgres(s), _) => ("psql", postgres::load_command(s), "postgresql-client"),
        (Database::Mysql(s), _) => ("mysql", mysql::load_command(s), "mariadb-client"),
        (Database::Sqlite(p), file) => (
            "sqlite3",
            sqlite::load_command(file.unwrap_or(p)),
            "sqlite3",
        ),
    };
    let sink = LoadSink::spawn(tool, cmd, package)?;
    progress.set_total(node.size);
    let mut counting = Counting {
        sink,
        progress,
        failed: None,
    };
    let written = if load == Load::Scratch && matches!(target, Database::Mysql(_)) {
        let mut filter = mysql::DisableEvents::new(&mut counting);
        match crate::restorer::write_content(repo, node, &mut filter) {
            Ok(n) => match filter.finish() {
                Ok(_) => Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    Err(EngineError::Invalid(e.to_string()))
                }
                Err(e) => Err(EngineError::io("mysql's input", e)),
            },
            Err(e) => Err(filter
                .refused()
                .map_or(e, |why| EngineError::Invalid(why.to_string()))),
        }
    } else {
        crate::restorer::write_content(repo, node, &mut counting)
    };
    let Counting { sink, failed, .. } = counting;
    match (written, failed) {
        (Ok(n), _) => {
            sink.finish()?;
            Ok(n)
        }
        // The tool stopped reading: its own message says why.
        (Err(_), Some(e)) => Err(sink.failed(e)),
        (Err(e), None) => Err(e),
    }
}

struct Counting<'a> {
    sink: LoadSink,
    progress: &'a dyn Progress,
    failed: Option<std::io::Error>,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.sink.write(buf) {
            Ok(n) => {
                self.progress.add_bytes(n as u64);
                Ok(n)
            }
            Err(e) => {
                self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

fn check_kind(snap: &SnapshotFile, target: &Database) -> Result<()> {
    if !is_database(snap) {
        return Err(EngineError::Invalid(
            "the snapshot holds files, not a database dump".into(),
        ));
    }
    if std::mem::discriminant(&snap.source) != std::mem::discriminant(&target.kind()) {
        return Err(EngineError::Invalid(format!(
            "the snapshot holds a {} dump; it cannot be restored into {}",
            kind_name(&snap.source),
            kind_name(&target.kind())
        )));
    }
    Ok(())
}

/// "postgres", "mysql", "sqlite", "files", "stdin".
pub fn kind_name(kind: &SourceKind) -> &'static str {
    match kind {
        SourceKind::Files => "files",
        SourceKind::Stdin { .. } => "stdin",
        SourceKind::Postgres => "postgres",
        SourceKind::Mysql => "mysql",
        SourceKind::Sqlite => "sqlite",
    }
}

/// Restores the dump of `snap` into `target`. A target that exists and holds anything is
/// replaced only with `force`, and only after a snapshot of it (tagged `pre-restore`, with
/// `safety`'s labels) is durable.
pub fn restore_database(
    repo: &Repository,
    snap: &SnapshotFile,
    target: &Database,
    force: bool,
    safety: &BackupOptions,
    progress: &dyn Progress,
) -> Result<DbRestoreReport> {
    check_kind(snap, target)?;
    let node = dump_node(repo, snap)?;
    let mut pre_restore = None;
    if let Some(n) = target.object_count(repo)? {
        if n > 0 {
            if !force {
                return Err(EngineError::Invalid(format!(
                    "{} holds {n} objects (tables, views, functions, …); restoring replaces \
                     them: pass --force (a snapshot of it, tagged pre-restore, is taken first)",
                    target.display()
                )));
            }
            let mut opts = safety.clone();
            if !opts.tags.iter().any(|t| t == "pre-restore") {
                opts.tags.push("pre-restore".into());
            }
            let saved = backup_database(repo, target, &opts, progress)?;
            pre_restore = Some(saved.snapshot_id.to_hex());
        }
    }
    let bytes = match target {
        Database::Sqlite(path) => restore_sqlite(repo, snap, &node, path, progress)?,
        _ => {
            // From here on the old content is gone: every failure says where it went.
            let replaced = |e: EngineError| match &pre_restore {
                Some(id) => EngineError::Invalid(format!(
                    "{e}\n{} was emptied for the restore and may now be empty or partial; its \
                     previous content is snapshot {} (tag pre-restore)",
                    target.display(),
                    &id[..8]
                )),
                None => e,
            };
            target.recreate(repo).map_err(replaced)?;
            load_dump(repo, &node, target, None, Load::Restore, progress).map_err(replaced)?
        }
    };
    progress.finish();
    Ok(DbRestoreReport {
        target: target.display(),
        bytes,
        pre_restore_snapshot: pre_restore,
    })
}

/// Loads the dump into a new file beside `path`, checks it (integrity, and every table's
/// row count against the snapshot), and only then puts it in place: by renaming when there
/// is no database yet, else through SQLite's own backup (`.restore`), which takes the
/// database's locks and goes through its journal or WAL, so that an application that has
/// it open sees the restored content, not a mix. The old database stays whole until then.
fn restore_sqlite(
    repo: &Repository,
    snap: &SnapshotFile,
    node: &Node,
    path: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    let tmp = sqlite::temp_beside(path)?;
    let tmp_db = Database::Sqlite(tmp.clone());
    let result = (|| {
        let n = load_dump(repo, node, &tmp_db, Some(&tmp), Load::Restore, progress)?;
        // What `.dump` leaves out, recorded at backup.
        let pragma = |key: &str| meta(snap, key).and_then(|v| v.parse::<i32>().ok());
        repo.block_on(sqlite::set_header_fields(
            &tmp,
            pragma("user_version"),
            pragma("application_id"),
        ))?;
        let checks = repo.block_on(sqlite::integrity(&tmp))?;
        if let Some(bad) = checks.iter().find(|c| !c.ok) {
            return Err(EngineError::Corrupt(format!(
                "the restored database fails {}: {}",
                bad.name, bad.detail
            )));
        }
        let recorded = recorded_rows(snap);
        let names: Vec<String> = recorded.iter().map(|(t, _)| t.clone()).collect();
        let counts = tmp_db.count_rows(repo, &names)?;
        for ((table, expected), found) in recorded.into_iter().zip(counts) {
            if expected.is_some() && found != expected {
                return Err(EngineError::Corrupt(format!(
                    "the restored table {table} has {} rows where the snapshot recorded {}",
                    found.map_or("no".to_string(), |n| n.to_string()),
                    expected.unwrap_or_default()
                )));
            }
        }
        if path.exists() {
            sqlite::restore_into(&tmp, path)?;
        } else {
            sqlite::sync_file(&tmp)?;
            std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))?;
            sqlite::sync_dir(path);
        }
        Ok(n)
    })();
    sqlite::remove_with_journals(&tmp);
    result
}

/// One table's row count: recorded at backup and found after the restore.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub expected_rows: Option<u64>,
    pub restored_rows: Option<u64>,
    pub ok: bool,
}

/// One integrity check of the restored database.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The outcome of a restore test.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreTestReport {
    pub snapshot_id: String,
    pub source: &'static str,
    pub database: String,
    /// Where the scratch database was (dropped afterwards).
    pub scratch: String,
    pub passed: bool,
    pub tables: Vec<TableCheck>,
    pub checks: Vec<Check>,
    pub bytes: u64,
}

/// Restores `snap` into a scratch database (created here, dropped afterwards whatever
/// happens), compares its tables and row counts with what the snapshot recorded, and runs
/// the database's integrity checks. `scratch` names the server (its database part is
/// ignored) and is required for PostgreSQL and MySQL: the server a snapshot names is
/// repository content, and is never sent credentials on its say-so. SQLite restores into a
/// private temporary directory.
pub fn restore_test(
    repo: &Repository,
    id: &SnapshotId,
    snap: &SnapshotFile,
    scratch: Option<&Database>,
    progress: &dyn Progress,
) -> Result<RestoreTestReport> {
    if !is_database(snap) {
        return Err(EngineError::Invalid(format!(
            "snapshot {} holds {}, not a database dump: a restore test needs one",
            id.short(),
            kind_name(&snap.source)
        )));
    }
    let node = dump_node(repo, snap)?;
    let name = format!("strata_verify_{}", hex::encode(rand::random::<[u8; 4]>()));
    let mut tmpdir = None;
    let server = match (scratch, &snap.source) {
        (Some(db), _) => db.clone(),
        (None, SourceKind::Sqlite) => {
            let dir = tempdir()?;
            let db = Database::Sqlite(dir.join("scratch.db"));
            tmpdir = Some(dir);
            db
        }
        (None, kind) => {
            return Err(EngineError::Invalid(format!(
                "a {} restore test needs --scratch URL: the server to create the scratch \
                 database on, with credentials",
                kind_name(kind)
            )))
        }
    };
    let target = server.with_database(&name);
    let outcome = (|| {
        check_kind(snap, &server)?;
        if target.object_count(repo)?.is_some() {
            return Err(EngineError::Invalid(format!(
                "scratch database {} already exists",
                target.display()
            )));
        }
        run_restore_test(repo, snap, &node, &target, progress)
    })();
    let dropped = target.drop_database(repo);
    if let Some(dir) = &tmpdir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (tables, mut checks, bytes) = match (outcome, &dropped) {
        (Ok(o), _) => o,
        (Err(e), Ok(())) => return Err(e),
        (Err(e), Err(d)) => {
            return Err(EngineError::Invalid(format!(
                "{e}; and the scratch database {} could not be dropped: {d}",
                target.display()
            )))
        }
    };
    if let Err(d) = &dropped {
        checks.push(Check {
            name: "cleanup".into(),
            ok: false,
            detail: format!(
                "the scratch database {} could not be dropped: {d}",
                target.display()
            ),
        });
    }
    let passed = tables.iter().all(|t| t.ok) && checks.iter().all(|c| c.ok);
    progress.finish();
    Ok(RestoreTestReport {
        snapshot_id: id.to_hex(),
        source: kind_name(&snap.source),
        database: meta(snap, "database").unwrap_or_default().to_string(),
        scratch: target.display(),
        passed,
        tables,
        checks,
        bytes,
    })
}

type TestOutcome = (Vec<TableCheck>, Vec<Check>, u64);

/// Whether two table names, as dumps and servers write them, name the same table.
fn same_table(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (ident::split(a), ident::split(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn run_restore_test(
    repo: &Repository,
    snap: &SnapshotFile,
    node: &Node,
    target: &Database,
    progress: &dyn Progress,
) -> Result<TestOutcome> {
    target.recreate(repo)?;
    let mut checks = Vec::new();
    let bytes = match load_dump(repo, node, target, None, Load::Scratch, progress) {
        Ok(n) => {
            checks.push(Check {
                name: "load".into(),
                ok: true,
                detail: "the dump loaded without an error".into(),
            });
            n
        }
        Err(e) => {
            checks.push(Check {
                name: "load".into(),
                ok: false,
                detail: e.to_string(),
            });
            return Ok((Vec::new(), checks, 0));
        }
    };
    let recorded = recorded_rows(snap);
    // Tables the restore has that the snapshot did not record.
    let unrecorded: Vec<String> = target
        .tables(repo)?
        .into_iter()
        .filter(|table| !recorded.iter().any(|(t, _)| same_table(t, table)))
        .collect();
    let names: Vec<String> = recorded
        .iter()
        .map(|(t, _)| t.clone())
        .chain(unrecorded.iter().cloned())
        .collect();
    let counts = target.count_rows(repo, &names)?;
    let expected = recorded
        .iter()
        .map(|(_, n)| *n)
        .chain(unrecorded.iter().map(|_| None));
    let tables = names
        .into_iter()
        .zip(expected)
        .zip(counts)
        .map(|((table, expected_rows), restored_rows)| TableCheck {
            ok: expected_rows.is_some() && restored_rows == expected_rows,
            table,
            expected_rows,
            restored_rows,
        })
        .collect();
    checks.extend(target.integrity(repo)?);
    Ok((tables, checks, bytes))
}

/// A new directory only this user can read (restored data is plaintext).
fn tempdir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for _ in 0..16 {
        let p = base.join(format!(
            "strata-verify-{}",
            hex::encode(rand::random::<[u8; 6]>())
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(EngineError::io(&p, e)),
        }
    }
    Err(EngineError::Invalid(
        "cannot create a scratch directory".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords_for_display() {
        let db =
            Database::postgres("postgres://u:s%40cret@127.0.0.1:5433/app?sslmode=disable").unwrap();
        assert_eq!(db.display(), "postgres://u@127.0.0.1:5433/app");
        assert_eq!(db.name(), "app");
        let Database::Postgres(s) = &db else { panic!() };
        assert!(s.password().is_some());
        let scratch = db.with_database("strata_verify_1");
        assert_eq!(scratch.name(), "strata_verify_1");
        assert!(!format!("{scratch:?}").contains("cret"), "{scratch:?}");
        let err = Database::mysql("mysql://u:pw@host/")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("names no database") && !err.contains("pw"),
            "{err}"
        );
        let err = Database::mysql("postgres://u:pw@host/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql://") && !err.contains("pw"), "{err}");
    }

    /// A password given apart (`--db-password-file`) reaches the dump and load tools in
    /// their environment, never on their command line.
    #[test]
    fn passwords_reach_the_tools_only_through_their_environment() {
        for (url, var) in [
            ("postgres://u@127.0.0.1:5433/app", "PGPASSWORD"),
            ("mysql://u@127.0.0.1:3306/app", "MYSQL_PWD"),
        ] {
            let mut db = Database::postgres(url)
                .or_else(|_| Database::mysql(url))
                .unwrap();
            db.server_mut()
                .unwrap()
                .set_password(DbPassword::new("s3cret-pw"));
            let (_, dump, _) = db.dump_command("mysqldump  Ver 10.19 Distrib 10.11.6-MariaDB");
            let load = match &db {
                Database::Postgres(s) => postgres::load_command(s),
                Database::Mysql(s) => mysql::load_command(s),
                Database::Sqlite(_) => unreachable!(),
            };
            for cmd in [dump, load] {
                let args: Vec<String> = cmd
                    .get_args()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                assert!(!args.iter().any(|a| a.contains("s3cret")), "{args:?}");
                let env: Vec<_> = cmd.get_envs().collect();
                assert!(
                    env.contains(&(
                        std::ffi::OsStr::new(var),
                        Some(std::ffi::OsStr::new("s3cret-pw"))
                    )),
                    "{url}: {var} not set"
                );
            }
            assert!(!format!("{db:?}").contains("s3cret"));
        }
    }

    #[test]
    fn urls_that_would_leak_a_password_are_refused() {
        for bad in [
            "postgres:user:pw@host/db",
            "postgres:///db",
            "postgres://u@host/db?password=pw",
        ] {
            let err = Database::postgres(bad).unwrap_err().to_string();
            assert!(!err.contains("pw@") && !err.contains("=pw"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_dump_without_its_end_is_an_error() {
        use std::io::Read;
        let read = |d: Dialect, text: &str| {
            let mut out = Vec::new();
            EndCheck::new(text.as_bytes(), d).read_to_end(&mut out)
        };
        assert!(read(Dialect::Sqlite, "BEGIN TRANSACTION;\nCOMMIT;\n").is_ok());
        assert!(read(Dialect::Sqlite, "BEGIN;\nROLLBACK; -- due to errors\n").is_err());
        assert!(read(Dialect::Sqlite, "").is_err());
        assert!(read(
            Dialect::Postgres,
            "x\n-- PostgreSQL database dump complete\n--\n\n"
        )
        .is_ok());
        assert!(read(Dialect::Postgres, "COPY t (a) FROM stdin;\n1\n").is_err());
        assert!(read(Dialect::Mysql, "INSERT ...;\n-- Dump completed\n").is_ok());
        let long = format!("-- Dump completed\n{}", "x".repeat(4000));
        assert!(read(Dialect::Mysql, &long).is_err());
    }

    #[test]
    fn dump_names_are_plain_file_names() {
        assert_eq!(dump_file_name("app"), "app.sql");
        assert_eq!(dump_file_name("a/b"), "a_b.sql");
        assert_eq!(dump_file_name(".."), "database.sql");
    }
}
