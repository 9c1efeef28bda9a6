//! What `strata pg check` and health ask a running cluster about its WAL archiving: force a
//! segment switch (so that a segment must reach the archive now), and what
//! `pg_stat_archiver` says about the pushes that failed.

use sqlx::postgres::PgConnection;
use sqlx::Row;

use crate::error::{sql_error, DbError, Result};
use crate::postgres::connect;
use crate::server::{DbPassword, Server};

/// `pg_stat_archiver`, and the settings that say whether archiving can work at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiverStatus {
    /// `archive_mode` (`off` archives nothing).
    pub archive_mode: String,
    /// `archive_command` (visible to superusers and `pg_read_all_settings`; else empty).
    pub archive_command: String,
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    /// When the last push failed, Unix seconds.
    pub last_failed_time: Option<i64>,
    /// When the last push succeeded, Unix seconds.
    pub last_archived_time: Option<i64>,
}

impl ArchiverStatus {
    /// Whether the last push failed after the last success (archiving is failing now).
    pub fn failing(&self) -> bool {
        match (self.last_failed_time, self.last_archived_time) {
            (Some(f), Some(a)) => f >= a,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// One connection to a cluster whose WAL is archived.
pub struct ArchiveProbe {
    conn: PgConnection,
    shown: String,
}

const STATUS: &str = "SELECT current_setting('archive_mode') AS archive_mode, \
     coalesce((SELECT setting FROM pg_settings WHERE name = 'archive_command'), '') \
       AS archive_command, \
     archived_count, last_archived_wal, failed_count, last_failed_wal, \
     extract(epoch FROM last_failed_time)::int8 AS last_failed_time, \
     extract(epoch FROM last_archived_time)::int8 AS last_archived_time \
     FROM pg_stat_archiver";

impl ArchiveProbe {
    /// Connects to `url` (a `postgres://` URL; a password in it or `password`).
    pub async fn connect(url: &str, password: Option<DbPassword>) -> Result<ArchiveProbe> {
        let mut server = Server::parse(url, &["postgres", "postgresql"])?;
        if let Some(pw) = password {
            server.set_password(pw);
        }
        let shown = server.display();
        let conn = connect(&server).await?;
        Ok(ArchiveProbe { conn, shown })
    }

    /// Where it is connected (no password).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Commits a transaction and switches to a new segment; the name of the segment the
    /// switch completed, which archiving must now push. (Without a record, a switch at a
    /// segment's very start does nothing and names a segment archived long ago; and the
    /// record is a commit because a recovery to a time stops at the first commit after it:
    /// an archive whose last commit is before a target cannot recover to it.)
    pub async fn switch_wal(&mut self) -> Result<String> {
        let shown = self.shown.clone();
        let err = |e: sqlx::Error| {
            let e = sql_error(&shown, e);
            DbError::Invalid(format!(
                "{e} (pg check needs a superuser, or a role granted EXECUTE on pg_switch_wal \
                 and pg_logical_emit_message)"
            ))
        };
        // Transactional: the message makes the statement's transaction take an id, so
        // its end writes a commit record.
        sqlx::query("SELECT pg_logical_emit_message(true, 'strata', 'pg check')")
            .execute(&mut self.conn)
            .await
            .map_err(err)?;
        let row = sqlx::query("SELECT pg_walfile_name(pg_switch_wal()) AS name")
            .fetch_one(&mut self.conn)
            .await
            .map_err(err)?;
        row.try_get("name").map_err(|e| sql_error(&self.shown, e))
    }

    /// What `pg_stat_archiver` and the archiving settings say now.
    pub async fn archiver(&mut self) -> Result<ArchiverStatus> {
        let row = sqlx::query(STATUS)
            .fetch_one(&mut self.conn)
            .await
            .map_err(|e| sql_error(&self.shown, e))?;
        let get = |e: sqlx::Error| sql_error(&self.shown, e);
        Ok(ArchiverStatus {
            archive_mode: row.try_get("archive_mode").map_err(get)?,
            archive_command: row.try_get("archive_command").map_err(get)?,
            archived_count: row.try_get("archived_count").map_err(get)?,
            last_archived_wal: row.try_get("last_archived_wal").map_err(get)?,
            failed_count: row.try_get("failed_count").map_err(get)?,
            last_failed_wal: row.try_get("last_failed_wal").map_err(get)?,
            last_failed_time: row.try_get("last_failed_time").map_err(get)?,
            last_archived_time: row.try_get("last_archived_time").map_err(get)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archiving_is_failing_when_the_last_failure_is_after_the_last_success() {
        let at = |f: Option<i64>, a: Option<i64>| ArchiverStatus {
            last_failed_time: f,
            last_archived_time: a,
            ..ArchiverStatus::default()
        };
        assert!(!at(None, None).failing());
        assert!(!at(None, Some(5)).failing());
        assert!(
            !at(Some(4), Some(5)).failing(),
            "failed once, then recovered"
        );
        assert!(at(Some(6), Some(5)).failing());
        assert!(at(Some(6), None).failing());
    }
}
