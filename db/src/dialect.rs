//! The [`Dialect`] trait: everything that differs between PostgreSQL, MySQL/MariaDB and
//! SQLite. Backups, restores and restore tests are written once against it; each database
//! implements it in a module of its own, which takes its shared parts (URLs, server info,
//! checks, errors, identifiers) from their modules, never from the code that drives it.
//!
//! Contract for every implementation:
//! - A password reaches a tool only through its environment, never its command line, and
//!   appears in no error, log line, `Debug` output or snapshot.
//! - Each connecting method opens one connection and closes it before it returns; nothing
//!   is kept between calls. The futures need a tokio runtime (sqlx's), which the caller
//!   gives them (`Repository::block_on`).
//! - Names that come from a snapshot (repository content) reach SQL only quoted again
//!   ([`crate::ident`]), never as written.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use async_trait::async_trait;
use strata_format::snapshot::SourceKind;

use crate::check::Check;
use crate::error::Result;
use crate::info::ServerInfo;
use crate::scan::Syntax;
use crate::server::Server;

/// A dialect's command-line tools, and the package that has them (named when one is
/// missing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tools {
    pub dump: &'static str,
    pub load: &'static str,
    pub package: &'static str,
}

/// One kind of database: how to reach it, dump it, load a dump into it and check it.
#[async_trait]
pub trait Dialect: std::fmt::Debug + Send + Sync {
    /// The snapshot source kind its dumps are recorded as.
    fn kind(&self) -> SourceKind;

    /// The SQL its dump tool writes, for the row counter.
    fn syntax(&self) -> Syntax;

    /// The database's name: the URL's path, or the SQLite file's name without extension.
    fn name(&self) -> String;

    /// Where it is, for people and for the snapshot's paths: the URL (which holds no
    /// password) without its query, or the file's path.
    fn display(&self) -> String;

    /// The server and its login, where its password is read and set (`None` for SQLite,
    /// which has no login).
    fn server_mut(&mut self) -> Option<&mut Server>;

    /// Where its tools look for a password when none is given (`None`: no login).
    fn tool_password_sources(&self) -> Option<&'static str>;

    /// The database file, for a dialect whose database is one file (SQLite): restored
    /// beside it and put in place once checked, instead of recreated and loaded.
    fn file(&self) -> Option<&Path>;

    /// The same server and login with another database (a scratch database; SQLite: a
    /// file `<name>.db` in the same directory).
    fn with_database(&self, name: &str) -> Box<dyn Dialect>;

    fn clone_box(&self) -> Box<dyn Dialect>;

    fn tools(&self) -> Tools;

    /// The dump tool's command, writing plain SQL to its standard output, for the tool
    /// whose `--version` line is `tool_version`.
    fn dump_command(&self, tool_version: &str) -> Command;

    /// Whether `tail` (the last 512 bytes or more of a dump) ends the way a complete dump
    /// of its tool does: a tool that stopped early without saying so must not pass for one
    /// that finished.
    fn dump_complete(&self, tail: &[u8]) -> bool;

    /// The load tool's command, reading SQL on its standard input into the database, and
    /// stopping at the first error.
    fn load_command(&self) -> Command;

    /// The filter a dump passes through on its way into a scratch database beside live
    /// ones (MySQL: scheduled events are created disabled); by default none.
    fn scratch_filter<'w>(&self, out: &'w mut dyn Write) -> Box<dyn LoadFilter + 'w> {
        Box::new(Unfiltered(out))
    }

    /// What the server says about the database; connecting first finds a wrong password
    /// or a missing database before a tool runs.
    async fn info(&self) -> Result<ServerInfo>;

    /// A command of the load tool that prints the database's name and the server's
    /// version, tab-separated, on one line (`psql -Atc`, `mysql -N -e`): [`Dialect::info`]
    /// asked through an exec prefix. `None` for a dialect without a server.
    fn info_command(&self) -> Option<Command> {
        None
    }

    /// [`Dialect::info`] asked of the tools run through `prefix`: the database's name and
    /// the server's version (no table sizes). A failing tool fails with its message.
    fn info_through(&self, prefix: &[String]) -> Result<ServerInfo> {
        let mut info = ServerInfo {
            server: self.display(),
            version: "unknown".into(),
            database: self.name(),
            ..ServerInfo::default()
        };
        let Some(cmd) = self.info_command() else {
            return Ok(info);
        };
        let tool = self.tools().load;
        let mut cmd = crate::child::prefixed(cmd, prefix);
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| crate::error::DbError::io(tool, e))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(crate::error::DbError::Unavailable(format!(
                "{tool} through {} failed: {}",
                prefix.join(" "),
                said.trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next().unwrap_or_default();
        if let Some((database, version)) = line.split_once('\t') {
            info.database = database.trim().to_string();
            info.version = version.trim().to_string();
        }
        Ok(info)
    }

    /// The SQL its load tool runs to answer, through an exec prefix, what the methods below
    /// ask over sqlx ([`crate::Database::through`]); `None` for a dialect without a server.
    fn tool_sql(&self) -> Option<ToolSql> {
        None
    }

    /// The load tool's command that runs the statements it reads on its standard input
    /// (`;`-terminated) in turn, each result row on a line of tab-separated fields without a
    /// header, and stops at the first that fails; in the server's maintenance database with
    /// `admin`, else in the database itself. The SQL never goes on a command line (where a
    /// name from a snapshot would meet a remote shell through ssh, and `ps`). `None` for a
    /// dialect without a server.
    fn sql_command(&self, _admin: bool) -> Option<Command> {
        None
    }

    /// The exec prefix its tools run through (empty: they run here).
    fn exec_prefix(&self) -> &[String] {
        &[]
    }

    /// When its tools are killed (with their process groups), if ever.
    fn deadline(&self) -> Option<std::time::Instant> {
        None
    }

    /// How many objects of its own (tables, views, functions, …) the database holds;
    /// `None` if it does not exist.
    async fn object_count(&self) -> Result<Option<u64>>;

    /// Names of its tables, as its dumps write them.
    async fn tables(&self) -> Result<Vec<String>>;

    /// Rows of each table (`None`: that table could not be counted), over one connection.
    async fn count_rows(&self, tables: &[String]) -> Result<Vec<Option<u64>>>;

    /// The database's own integrity checks of a restored database.
    async fn integrity(&self) -> Result<Vec<Check>>;

    /// Drops the database if it exists and creates it empty (SQLite: nothing to do, the
    /// restored file replaces the old one).
    async fn recreate(&self) -> Result<()>;

    /// Drops the database if it exists.
    async fn drop_database(&self) -> Result<()>;
}

/// Runs SQL through a dialect's load tool ([`Dialect::sql_command`]).
pub trait RunSql {
    /// The result rows of `statements`, run in turn in the database, each split into its
    /// fields; the first that fails fails them all, with the tool's message.
    fn rows(&self, statements: &[String]) -> Result<Vec<Vec<String>>>;
}

/// The SQL a dialect's load tool runs for a database whose tools run through an exec
/// prefix: the same questions its sqlx methods ask, as text.
pub struct ToolSql {
    /// One row when the database `name` exists, asked in the maintenance database; `None`
    /// when `name` cannot be written as a string literal here.
    pub exists: fn(name: &str) -> Option<String>,
    /// One row, one number: how many objects of its own the database holds.
    pub object_count: String,
    /// Its tables' names as dumps write them, one per row.
    pub tables: String,
    /// `SELECT COUNT(*)` of a table named as dumps write it; `None` if it cannot be quoted.
    pub count: fn(table: &str) -> Option<String>,
    /// Statements that drop the database `name` if it exists (in the maintenance database).
    pub drop: fn(name: &str) -> Vec<String>,
    /// Statements that create the database `name` empty (in the maintenance database).
    pub create: fn(name: &str) -> Vec<String>,
    /// The database's own integrity checks, asked through `sql`.
    pub integrity: fn(sql: &dyn RunSql) -> Result<Vec<Check>>,
    /// Whether the tool escapes tabs, newlines, NULs and backslashes in the fields it
    /// prints (mysql's batch mode does; psql's unaligned mode does not).
    pub escaped: bool,
}

/// A writer between a dump and its load tool (see [`Dialect::scratch_filter`]).
pub trait LoadFilter: Write {
    /// Writes what it still holds back. An error of kind `InvalidData` refuses the dump.
    fn finish(self: Box<Self>) -> std::io::Result<()>;

    /// Why it refused the dump, once it has.
    fn refused(&self) -> Option<&str>;
}

/// The dump as it is.
pub struct Unfiltered<'w>(pub &'w mut dyn Write);

impl Write for Unfiltered<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl LoadFilter for Unfiltered<'_> {
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        Ok(())
    }

    fn refused(&self) -> Option<&str> {
        None
    }
}

/// Whether `marker` occurs in `tail`.
pub(crate) fn holds(tail: &[u8], marker: &[u8]) -> bool {
    tail.windows(marker.len()).any(|w| w == marker)
}

/// The number in the first field of the first row (a `count(*)`).
pub(crate) fn number(rows: &[Vec<String>]) -> Result<i64> {
    let field = rows
        .first()
        .and_then(|r| r.first())
        .map(|f| f.trim())
        .unwrap_or_default();
    field.parse().map_err(|_| {
        crate::error::DbError::Unavailable(format!(
            "expected a number from the server, got {field:?}"
        ))
    })
}
