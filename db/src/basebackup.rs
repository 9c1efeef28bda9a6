//! The server side of a PostgreSQL base backup: the non-exclusive low-level API
//! (`pg_backup_start` / `pg_backup_stop`, `pg_start_backup` / `pg_stop_backup` before 15),
//! both in ONE session that stays open while the data directory is read — the server ends
//! a non-exclusive backup whose session closes.
//!
//! The caller reads the files between [`BackupSession::start`] and [`BackupSession::stop`]
//! and stores the `backup_label` that `stop` returns in the backup (never in the live data
//! directory: a server that crashed with one there would not start).

use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::error::{sql_error, DbError, Result};
use crate::postgres::connect;
use crate::server::{DbPassword, Server};
use crate::wal::Lsn;

/// What a base backup checks of the server before it starts.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    /// `server_version_num` (150004 for 15.4).
    pub version_num: u32,
    pub system_id: u64,
    /// `archive_mode`: a base backup is only restorable to a time with WAL archived.
    pub archive_mode: String,
    /// Bytes per WAL segment.
    pub seg_size: u32,
    /// The server's data directory, when the role may read it (superuser,
    /// `pg_read_all_settings`).
    pub data_directory: Option<String>,
    /// A standby: its backups end differently (not supported here).
    pub in_recovery: bool,
}

/// Where and when the backup started.
#[derive(Debug, Clone)]
pub struct Started {
    pub lsn: Lsn,
    /// The server's clock, Unix nanoseconds.
    pub time_ns: i64,
}

/// What `pg_backup_stop` returned.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Where WAL replay is consistent: a recovery must replay at least this far.
    pub lsn: Lsn,
    /// The `backup_label` file's content.
    pub labelfile: String,
    /// The `tablespace_map` file's content (empty without tablespaces).
    pub spcmapfile: String,
    /// The server's clock when it returned, Unix nanoseconds.
    pub time_ns: i64,
}

/// One connection that runs a base backup.
pub struct BackupSession {
    conn: PgConnection,
    shown: String,
    facts: ClusterFacts,
    started: bool,
}

/// The server's clock as Unix microseconds (`extract` gives seconds).
const CLOCK_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::int8";

impl BackupSession {
    /// Connects to `url` (a `postgres://` URL; a password in it or `password`) and reads
    /// the [`ClusterFacts`].
    pub async fn connect(url: &str, password: Option<DbPassword>) -> Result<BackupSession> {
        let mut server = Server::parse(url, &["postgres", "postgresql"])?;
        if let Some(pw) = password {
            server.set_password(pw);
        }
        let shown = server.display();
        let mut conn = connect(&server).await?;
        let row = sqlx::query(
            "SELECT current_setting('server_version_num')::int4 AS version, \
             (SELECT system_identifier FROM pg_control_system())::text AS system_id, \
             current_setting('archive_mode') AS archive_mode, \
             (SELECT bytes_per_wal_segment FROM pg_control_init())::int8 AS seg_size, \
             (SELECT setting FROM pg_settings WHERE name = 'data_directory') AS data_directory, \
             pg_is_in_recovery() AS in_recovery",
        )
        .fetch_one(&mut conn)
        .await
        .map_err(|e| sql_error(&shown, e))?;
        let get = |e: sqlx::Error| sql_error(&shown, e);
        let version: i32 = row.try_get("version").map_err(get)?;
        let system_id: String = row.try_get("system_id").map_err(get)?;
        let seg_size: i64 = row.try_get("seg_size").map_err(get)?;
        let system_id = system_id
            .parse::<u64>()
            .or_else(|_| system_id.parse::<i64>().map(|v| v as u64))
            .map_err(|_| DbError::Invalid(format!("{shown}: system identifier {system_id:?}")))?;
        let facts = ClusterFacts {
            version_num: u32::try_from(version)
                .map_err(|_| DbError::Invalid(format!("{shown}: server version {version}")))?,
            system_id,
            archive_mode: row.try_get("archive_mode").map_err(get)?,
            seg_size: u32::try_from(seg_size)
                .map_err(|_| DbError::Invalid(format!("{shown}: segment size {seg_size}")))?,
            data_directory: row.try_get("data_directory").map_err(get)?,
            in_recovery: row.try_get("in_recovery").map_err(get)?,
        };
        if facts.version_num < 100000 {
            return Err(DbError::Invalid(format!(
                "{shown}: PostgreSQL {} is too old (base backups need 10 or later)",
                facts.version_num
            )));
        }
        Ok(BackupSession {
            conn,
            shown,
            facts,
            started: false,
        })
    }

    pub fn facts(&self) -> &ClusterFacts {
        &self.facts
    }

    /// Starts the backup, with an immediate checkpoint (`fast`): the files may be read
    /// from now on.
    pub async fn start(&mut self, label: &str) -> Result<Started> {
        let sql = if self.facts.version_num >= 150000 {
            format!("SELECT pg_backup_start($1, true)::text AS lsn, {CLOCK_US} AS now_us")
        } else {
            format!("SELECT pg_start_backup($1, true, false)::text AS lsn, {CLOCK_US} AS now_us")
        };
        let row = sqlx::query(&sql)
            .bind(label)
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.error("starting the base backup", e))?;
        self.started = true;
        let lsn: String = row.try_get("lsn").map_err(|e| self.error("", e))?;
        let now_us: i64 = row.try_get("now_us").map_err(|e| self.error("", e))?;
        Ok(Started {
            lsn: self.lsn(&lsn)?,
            time_ns: now_us.saturating_mul(1000),
        })
    }

    /// Ends the backup without waiting for WAL archiving (the caller waits for the stop
    /// segment in its own archive, which proves more: that it reached this archive).
    pub async fn stop(&mut self) -> Result<Stopped> {
        let sql = if self.facts.version_num >= 150000 {
            format!(
                "SELECT lsn::text AS lsn, labelfile, coalesce(spcmapfile, '') AS spcmapfile, \
                 {CLOCK_US} AS now_us FROM pg_backup_stop(false)"
            )
        } else {
            format!(
                "SELECT lsn::text AS lsn, labelfile, coalesce(spcmapfile, '') AS spcmapfile, \
                 {CLOCK_US} AS now_us FROM pg_stop_backup(false, false)"
            )
        };
        let row = sqlx::query(&sql)
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| self.error("ending the base backup", e))?;
        self.started = false;
        let lsn: String = row.try_get("lsn").map_err(|e| self.error("", e))?;
        let now_us: i64 = row.try_get("now_us").map_err(|e| self.error("", e))?;
        Ok(Stopped {
            lsn: self.lsn(&lsn)?,
            labelfile: row.try_get("labelfile").map_err(|e| self.error("", e))?,
            spcmapfile: row.try_get("spcmapfile").map_err(|e| self.error("", e))?,
            time_ns: now_us.saturating_mul(1000),
        })
    }

    /// Whether a backup is running in this session (started, not stopped).
    pub fn running(&self) -> bool {
        self.started
    }

    fn lsn(&self, text: &str) -> Result<Lsn> {
        Lsn::parse(text).map_err(|e| DbError::Invalid(format!("{}: {e}", self.shown)))
    }

    fn error(&self, doing: &str, e: sqlx::Error) -> DbError {
        if doing.is_empty() {
            sql_error(&self.shown, e)
        } else {
            sql_error(&format!("{} ({doing})", self.shown), e)
        }
    }
}

/// The timeline a `backup_label` names (`START TIMELINE: 1`).
pub fn label_timeline(labelfile: &str) -> Option<u32> {
    labelfile
        .lines()
        .find_map(|l| l.strip_prefix("START TIMELINE:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|t| *t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_names_its_timeline() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
                     BACKUP FROM: primary\nSTART TIME: 2026-12-07 12:00:00 UTC\n\
                     LABEL: strata\nSTART TIMELINE: 3\n";
        assert_eq!(label_timeline(label), Some(3));
        assert_eq!(label_timeline("START TIMELINE: x\n"), None);
        assert_eq!(label_timeline("START TIMELINE: 0\n"), None);
        assert_eq!(label_timeline(""), None);
    }
}
