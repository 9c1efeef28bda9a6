//! Backing up a database as one SQL dump.
//!
//! The dump streams from the tool's standard output through the completion check
//! ([`EndCheck`]) and the row counter ([`crate::scan`]) into the archiver, chunked with the
//! repository's database chunker. The snapshot is written only after the tool exited
//! successfully and its dump ended the way a complete one does; otherwise the backup fails
//! with the tool's message ([`DbError::Unavailable`]) and leaves no snapshot (the blobs
//! already stored are garbage for `prune`).

use strata_engine::archiver::{BackupOptions, BackupResult, StreamBackup, StreamFile};
use strata_engine::progress::Progress;
use strata_engine::Repository;

use crate::child::{tool_version_through, DumpStream, ToolOptions};
use crate::database::Database;
use crate::dialect::Dialect;
use crate::error::{DbError, Result};
use crate::scan::CountingReader;
use crate::snapshot::dump_file_name;

/// Backs up `db` as one SQL dump: a snapshot with the dump as `/<database>.sql` and what the
/// server said about it in `source_meta`.
pub fn backup_database(
    repo: &Repository,
    db: &Database,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupResult> {
    backup_database_with(repo, db, opts, progress, &ToolOptions::default())
}

/// [`backup_database`] with the dump tool run as `tools` says: through an exec prefix,
/// and killed at a deadline. With a prefix the database may be out of this machine's reach
/// (in a container, behind a socket only its user may open): what the server says is then
/// asked of the tools through the prefix where the dialect can ([`Dialect::info_through`]);
/// a SQLite file this machine can read is read here, as without a prefix.
pub fn backup_database_with(
    repo: &Repository,
    db: &Database,
    opts: &BackupOptions,
    progress: &dyn Progress,
    tools_opts: &ToolOptions,
) -> Result<BackupResult> {
    let reachable = tools_opts.exec_prefix.is_empty() || db.file().is_some_and(|f| f.is_file());
    let info = if reachable {
        // Connecting first finds a wrong password or a missing database before anything
        // runs.
        repo.block_on(db.info())?
    } else {
        db.info_through(&tools_opts.exec_prefix)?
    };
    let tools = db.tools();
    let prefix = match tools_opts.exec_prefix.as_slice() {
        [] => db.exec_prefix(),
        given => given,
    };
    let tool_version = tool_version_through(tools.dump, prefix);
    let stream = DumpStream::spawn_with(
        tools.dump,
        db.dump_command(&tool_version),
        tools.package,
        tools_opts,
    )?;
    let mut dump = EndCheck::new(stream, &**db);
    let backup = StreamBackup::new(repo, opts, progress)?;
    let chunker = repo.config().db_chunker;
    let mut reader = CountingReader::new(&mut dump, db.syntax());
    let read = backup.read(&mut reader, chunker, &db.display());
    let tables = reader.finish();
    let (content, size) = read.map_err(|e| {
        // The dump tool failed or stopped early (its message is in `e`), not the repository.
        if dump.ended_early() || dump.inner.failure().is_some() {
            DbError::Unavailable(e.to_string())
        } else {
            DbError::Engine(e)
        }
    })?;

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
    Ok(backup.finish(
        StreamFile {
            name: dump_file_name(&info.database),
            content,
            size,
        },
        db.kind(),
        vec![db.display()],
        meta,
    )?)
}

/// Fails the end of a dump that lacks its tool's completion marker: a tool that stopped
/// early without saying so (`sqlite3 .dump` exits 0 after read errors, ending with
/// `ROLLBACK; -- due to errors`) must not pass for a complete dump.
struct EndCheck<'d, R> {
    inner: R,
    dialect: &'d dyn Dialect,
    tail: Vec<u8>,
    ended_early: bool,
}

const TAIL: usize = 512;

impl<'d, R: std::io::Read> EndCheck<'d, R> {
    fn new(inner: R, dialect: &'d dyn Dialect) -> Self {
        EndCheck {
            inner,
            dialect,
            tail: Vec::new(),
            ended_early: false,
        }
    }

    /// Whether the stream ended without its completion marker.
    fn ended_early(&self) -> bool {
        self.ended_early
    }
}

impl<R: std::io::Read> std::io::Read for EndCheck<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if !self.dialect.dump_complete(&self.tail) {
                self.ended_early = true;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_without_its_end_is_an_error() {
        use std::io::Read;
        let read = |db: Result<Database>, text: &str| {
            let db = db.unwrap();
            let mut out = Vec::new();
            let mut check = EndCheck::new(text.as_bytes(), &*db);
            let result = check.read_to_end(&mut out);
            assert_eq!(check.ended_early(), result.is_err());
            result
        };
        let sqlite = || Database::sqlite(std::path::Path::new("/x/app.db"));
        let postgres = || Database::postgres("postgres://u@h/app");
        let mysql = || Database::mysql("mysql://u@h/app");
        assert!(read(sqlite(), "BEGIN TRANSACTION;\nCOMMIT;\n").is_ok());
        assert!(read(sqlite(), "BEGIN;\nROLLBACK; -- due to errors\n").is_err());
        assert!(read(sqlite(), "").is_err());
        assert!(read(
            postgres(),
            "x\n-- PostgreSQL database dump complete\n--\n\n"
        )
        .is_ok());
        assert!(read(postgres(), "COPY t (a) FROM stdin;\n1\n").is_err());
        assert!(read(mysql(), "INSERT ...;\n-- Dump completed\n").is_ok());
        let long = format!("-- Dump completed\n{}", "x".repeat(4000));
        assert!(read(mysql(), &long).is_err());
    }
}
