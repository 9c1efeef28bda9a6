//! The audit catalog: every run, snapshot, copy, retention decision, prune, check, restore,
//! restore test, hook and notification, in SQLite in the state directory, each record
//! chained to the one before by a hash (`strata log --verify`).
//!
//! - Files: `STATE_DIR/catalog.sqlite` (and SQLite's `-wal`/`-shm`), `catalog.head` (the
//!   last seq and hash, see [`chain`]), all 0600 in a directory created 0700.
//! - Concurrency: several `strata run` processes (one per project lock), a `restore` and a
//!   `health` may use the catalog at once. WAL mode lets readers go on beside the writer;
//!   an append is one `BEGIN IMMEDIATE` transaction (read the last hash, insert), so appends
//!   are serialized by SQLite's write lock and wait up to [`BUSY_TIMEOUT`] for it.
//! - Schema: migrations in `migrations/*.sql`, applied in order by `PRAGMA user_version`;
//!   a catalog with a newer version than this program knows is refused, not misread.
//! - Recording never fails a backup that worked: [`record_best_effort`] logs a failure
//!   and goes on (the runner's [`Recorder`] callers do the same).

mod chain;
mod rebuild;
mod stats;
mod verify;

pub use chain::{record_hash, Hash, Head, GENESIS, HEAD_FILE};
pub use rebuild::{read_repository_evidence, RebuildStats};
pub use stats::{project_stats, ProjectStats, RunStats, SizePoint, SourceTrend};
pub use verify::{Problem, VerifyReport};

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params_from_iter, Connection, OpenFlags, TransactionBehavior};

use crate::ops::{History, Query, Record, Recorder};
use crate::{AppError, Result};

/// The database's file name in the state directory.
pub const CATALOG_FILE: &str = "catalog.sqlite";

/// How long an append waits for another process's write to finish.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The migrations, in order; `PRAGMA user_version` is how many have been applied.
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_records.sql")];

/// The audit catalog of one state directory.
pub struct Catalog {
    state_dir: PathBuf,
    conn: Mutex<Connection>,
    read_only: bool,
}

/// A stored record with its place in the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub seq: u64,
    pub hash: Hash,
    pub record: Record,
}

/// A record's place in the log, newest first: its time, then its seq (for
/// [`LogFilter::before`]).
pub type Place = (i64, u64);

/// A row of the records table as a page reads it.
struct Row {
    time_ns: i64,
    seq: u64,
    entry: Option<Entry>,
}

/// What readers of the audit log (`GET /log`, the dashboard's `/log`) narrow by beyond a
/// [`Query`]; the default narrows by nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only records that failed.
    pub failed_only: bool,
    /// Only records of this user (who made a request, ran a restore).
    pub user: Option<String>,
    /// Only records older than this `(time_ns, seq)` in the log's order (newest first):
    /// the last record of the page before, so that the next page is one indexed query.
    pub before: Option<(i64, u64)>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.path())
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Catalog {
    /// Opens (creating when missing) the catalog of `state_dir` for reading and writing.
    pub fn open(state_dir: &Path) -> Result<Catalog> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(|e| {
                AppError::Catalog(format!(
                    "creating the state directory {}: {e}",
                    state_dir.display()
                ))
            })?;
        let path = state_dir.join(CATALOG_FILE);
        // Created 0600 before SQLite sees it: SQLite gives its -wal and -shm files the
        // database file's permissions.
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| err(&path, "creating", e))?;
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(&path, "opening", e))?;
        let mut cat = Catalog {
            state_dir: state_dir.to_path_buf(),
            conn: Mutex::new(conn),
            read_only: false,
        };
        cat.setup()?;
        cat.migrate()?;
        // Tighten what SQLite created, in case the database file had been widened.
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            if p.exists() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(&p, "restricting", e))?;
            }
        }
        Ok(cat)
    }

    /// Opens the catalog of `state_dir` for reading only; None when there is none yet
    /// (an empty history, for `health`; `log` says so).
    pub fn open_read_only(state_dir: &Path) -> Result<Option<Catalog>> {
        let path = state_dir.join(CATALOG_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(&path, "opening", e))?;
        let cat = Catalog {
            state_dir: state_dir.to_path_buf(),
            conn: Mutex::new(conn),
            read_only: true,
        };
        cat.conn()
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| cat.fail("opening", e))?;
        let version = cat.user_version()?;
        if version > MIGRATIONS.len() {
            return Err(cat.newer(version));
        }
        Ok(Some(cat))
    }

    /// The database file.
    pub fn path(&self) -> PathBuf {
        self.state_dir.join(CATALOG_FILE)
    }

    /// The state directory it lives in.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves nothing half-done in it (SQLite rolls
        // back an unfinished transaction when it is dropped), so a poisoned lock is usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> AppError {
        err(&self.path(), what, e)
    }

    fn newer(&self, version: usize) -> AppError {
        AppError::Catalog(format!(
            "the catalog {} has schema version {version}, newer than this strata knows ({}): \
             use a newer strata",
            self.path().display(),
            MIGRATIONS.len()
        ))
    }

    fn setup(&self) -> Result<()> {
        let conn = self.conn();
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.fail("opening", e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.fail("opening", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(self.fail("opening", format!("journal mode {mode}, not WAL")));
        }
        // An audit record that was acknowledged must survive a power cut.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.fail("opening", e))?;
        Ok(())
    }

    fn user_version(&self) -> Result<usize> {
        let v: i64 = self
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.fail("reading", e))?;
        Ok(usize::try_from(v).unwrap_or(usize::MAX))
    }

    /// Applies the migrations this database lacks, each in its own IMMEDIATE transaction
    /// (two processes opening a new catalog at once apply each migration once).
    fn migrate(&mut self) -> Result<()> {
        let path = self.path();
        let mut conn = self.conn();
        loop {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| err(&path, "migrating", e))?;
            let v: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|e| err(&path, "migrating", e))?;
            let v = usize::try_from(v).unwrap_or(usize::MAX);
            if v > MIGRATIONS.len() {
                drop(tx);
                drop(conn);
                return Err(self.newer(v));
            }
            if v == MIGRATIONS.len() {
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[v])
                .and_then(|()| tx.pragma_update(None, "user_version", (v + 1) as i64))
                .and_then(|()| tx.commit())
                .map_err(|e| err(&path, &format!("migrating to schema version {}", v + 1), e))?;
        }
    }

    /// Appends `record` to the chain; returns its place. Durable when it returns.
    pub fn append(&self, record: &Record) -> Result<Head> {
        if self.read_only {
            return Err(self.fail("writing", "opened read-only"));
        }
        let body = serde_json::to_string(record).expect("a record serializes to JSON");
        let kind = record.kind().name();
        let head = {
            let mut conn = self.conn();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.fail("writing", e))?;
            let last: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })
                .map_err(|e| self.fail("writing", e))?;
            let (seq, prev) = match last {
                None => (1u64, GENESIS),
                Some((seq, hash)) => {
                    let prev: Hash = hash.try_into().map_err(|_| {
                        self.fail(
                            "writing",
                            format!("record {seq} has a damaged hash (see `strata log --verify`)"),
                        )
                    })?;
                    (seq as u64 + 1, prev)
                }
            };
            let hash = record_hash(&prev, seq, kind, record.time_ns, &body);
            tx.execute(
                "INSERT INTO records (seq, time_ns, kind, project, repository, run_id, ok, \
                 body, prev, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    seq as i64,
                    record.time_ns,
                    kind,
                    record.project,
                    record.repository,
                    record.run_id.as_ref().map(|r| r.as_str()),
                    record.ok,
                    body,
                    &prev[..],
                    &hash[..],
                ],
            )
            .and_then(|_| tx.commit())
            .map_err(|e| self.fail("writing", e))?;
            Head { seq, hash }
        };
        chain::advance_head(&self.state_dir, head)?;
        Ok(head)
    }

    /// The records `q` selects with their seq and hash, newest first.
    pub fn entries(&self, q: &Query) -> Result<Vec<Entry>> {
        self.entries_filtered(q, &LogFilter::default())
    }

    /// The records `q` and `f` select with their seq and hash, newest first: one query with
    /// `q.limit`, so that a page of a large catalog reads only that page.
    pub fn entries_filtered(&self, q: &Query, f: &LogFilter) -> Result<Vec<Entry>> {
        Ok(self
            .rows(q, f)?
            .into_iter()
            .filter_map(|r| r.entry)
            .collect())
    }

    /// One page of the records `q` and `f` select, newest first: at most `page` rows (`q`'s
    /// limit is ignored), and the place (time, seq) of the page's last row when there are
    /// older ones, for [`LogFilter::before`]. A record that cannot be read takes its place
    /// in the page without being shown, so that paging goes on past it.
    pub fn entries_page(
        &self,
        q: &Query,
        f: &LogFilter,
        page: usize,
    ) -> Result<(Vec<Entry>, Option<Place>)> {
        let q = Query {
            limit: Some(page.saturating_add(1)),
            ..q.clone()
        };
        let mut rows = self.rows(&q, f)?;
        let older = (rows.len() > page).then(|| {
            rows.truncate(page);
            rows.last().map(|r| (r.time_ns, r.seq))
        });
        let entries = rows.into_iter().filter_map(|r| r.entry).collect();
        Ok((entries, older.flatten()))
    }

    /// The rows `q` and `f` select, newest first; a row's entry is `None` when its record
    /// cannot be read (written by a newer strata, or damaged: `verify` reports damage).
    fn rows(&self, q: &Query, f: &LogFilter) -> Result<Vec<Row>> {
        let mut sql = String::from("SELECT seq, hash, body, time_ns FROM records WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut narrow = |column: &str, value: rusqlite::types::Value| {
            args.push(value);
            sql.push_str(&format!(" AND {column} ?{}", args.len()));
        };
        if let Some(p) = &q.project {
            narrow("project =", p.clone().into());
        }
        if let Some(r) = &q.repository {
            narrow("repository =", r.clone().into());
        }
        if let Some(k) = q.kind {
            narrow("kind =", k.name().to_string().into());
        }
        if q.ok_only {
            narrow("ok =", 1i64.into());
        }
        if let Some(t) = q.since_ns {
            narrow("time_ns >=", t.into());
        }
        if f.failed_only {
            narrow("ok =", 0i64.into());
        }
        if let Some(u) = &f.user {
            narrow("json_extract(body, '$.user') =", u.clone().into());
        }
        if let Some((time_ns, seq)) = f.before {
            args.push(time_ns.into());
            args.push((seq.min(i64::MAX as u64) as i64).into());
            let (t, s) = (args.len() - 1, args.len());
            sql.push_str(&format!(
                " AND (time_ns < ?{t} OR (time_ns = ?{t} AND seq < ?{s}))"
            ));
        }
        sql.push_str(" ORDER BY time_ns DESC, seq DESC");
        if let Some(n) = q.limit {
            sql.push_str(&format!(" LIMIT {}", n.min(i64::MAX as usize)));
        }
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql).map_err(|e| self.fail("reading", e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.fail("reading", e))?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, hash, body, time_ns) = row.map_err(|e| self.fail("reading", e))?;
            // A record this strata cannot read (written by a newer one, or damaged) is left
            // out of answers; `verify` reports damage.
            let entry = match (serde_json::from_str::<Record>(&body), Hash::try_from(hash)) {
                (Ok(record), Ok(hash)) => Some(Entry {
                    seq: seq as u64,
                    hash,
                    record,
                }),
                _ => {
                    tracing::warn!(seq, catalog = %self.path().display(),
                                   "a catalog record cannot be read; skipped");
                    None
                }
            };
            out.push(Row {
                time_ns,
                seq: seq as u64,
                entry,
            });
        }
        Ok(out)
    }

    /// How many records there are.
    pub fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .map_err(|e| self.fail("reading", e))?;
        Ok(n as u64)
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Checks the chain and the head file (see [`VerifyReport`]).
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(self)
    }
}

impl Recorder for Catalog {
    fn record(&self, record: Record) -> Result<()> {
        self.append(&record).map(|_| ())
    }

    fn head(&self) -> Option<(u64, [u8; 32])> {
        match self.last_head() {
            Ok(head) => head.map(|h| (h.seq, h.hash)),
            Err(e) => {
                tracing::warn!("reading the catalog's head: {e}");
                None
            }
        }
    }
}

impl History for Catalog {
    fn query(&self, q: &Query) -> Result<Vec<Record>> {
        Ok(self.entries(q)?.into_iter().map(|e| e.record).collect())
    }
}

/// Appends `record` to the catalog of `state_dir`, logging a warning when that fails: for
/// callers whose own work must not fail because it could not be recorded (`restore`,
/// `verify`). Returns whether it was recorded.
pub fn record_best_effort(state_dir: &Path, record: &Record) -> bool {
    match Catalog::open(state_dir).and_then(|c| c.append(record)) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(
                "could not record {} in the catalog: {e}",
                record.kind().name()
            );
            false
        }
    }
}

fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Catalog(format!("catalog {}: {what}: {e}", path.display()))
}
