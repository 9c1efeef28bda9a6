//! Database errors.
//!
//! Policy: every error names the database (its URL without password, or its file) or the
//! tool that failed, and carries an [`ErrorKind`] that tells "the database or its tool let
//! us down" ([`DbError::Unavailable`]: a health check retries or alerts the database's
//! owner) from "what was asked cannot be done" ([`DbError::Invalid`]: a bad URL, a snapshot
//! that holds no dump, a target that is not empty) from a failure of the repository, its
//! storage or a local file ([`DbError::Engine`], which keeps the engine's own kind). Context
//! added on the way up ([`DbError::Context`]) never changes the kind. No error text holds a
//! password: URLs are shown without theirs, and tools never see one on their command line.

use strata_engine::EngineError;

/// Result of database operations.
pub type Result<T, E = DbError> = std::result::Result<T, E>;

/// What kind of failure a [`DbError`] is, for callers that react to it (exit codes, health
/// checks, notifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The database or its tools failed: the server is down or refuses the login, a query
    /// or statement was rejected, a dump or load tool is missing, failed, or stopped early.
    Unavailable,
    /// What was asked cannot be done as given: a malformed URL, a snapshot that holds no
    /// dump (or one of another kind), a target that holds data without `--force`.
    Invalid,
    /// The repository, its storage or a local file failed, with the engine's kind.
    Engine(strata_engine::ErrorKind),
}

/// A failure of a database backup, restore or restore test.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// `source` with more said after it (`note` starts with its own separator).
    #[error("{source}{note}")]
    Context {
        #[source]
        source: Box<DbError>,
        note: String,
    },
}

impl DbError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DbError::Unavailable(_) => ErrorKind::Unavailable,
            DbError::Invalid(_) => ErrorKind::Invalid,
            DbError::Engine(e) => ErrorKind::Engine(e.kind()),
            DbError::Context { source, .. } => source.kind(),
        }
    }

    /// The same failure, with `note` written after its message.
    pub(crate) fn with_note(self, note: String) -> DbError {
        DbError::Context {
            source: Box::new(self),
            note,
        }
    }

    /// A local I/O failure on `path` (a SQLite file, a tool that could not be started).
    pub(crate) fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> DbError {
        DbError::Engine(EngineError::io(path, source))
    }
}

/// A failure reported by sqlx while working on `what` (a database's URL or file): a
/// connect option it cannot read is invalid input; anything else (refused connection,
/// failed login, rejected statement, lost connection) means the database let us down.
pub(crate) fn sql_error(what: &str, e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Configuration(_) => DbError::Invalid(format!("{what}: {e}")),
        e => DbError::Unavailable(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_keeps_the_kind_and_renders_after_the_message() {
        let e = DbError::Unavailable("psql failed (exit status 3): bad".into())
            .with_note("\nthe target was emptied".into());
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            e.to_string(),
            "psql failed (exit status 3): bad\nthe target was emptied"
        );
        let locked =
            DbError::from(EngineError::locked("held by backup")).with_note("; and more".into());
        assert_eq!(
            locked.kind(),
            ErrorKind::Engine(strata_engine::ErrorKind::Locked)
        );
    }

    #[test]
    fn sql_errors_are_unavailable_unless_the_options_are_bad() {
        let refused = sql_error(
            "postgres://u@h/db",
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
        );
        assert_eq!(refused.kind(), ErrorKind::Unavailable);
        assert!(
            refused.to_string().starts_with("postgres://u@h/db: "),
            "{refused}"
        );
        let bad = sql_error(
            "postgres://u@h/db",
            sqlx::Error::Configuration("unknown option".into()),
        );
        assert_eq!(bad.kind(), ErrorKind::Invalid);
    }
}
