//! Engine errors.
//!
//! Policy: every error says what failed and on which object (repository path, snapshot id,
//! or source path), and carries an [`ErrorKind`] that callers (the CLI's exit codes) match
//! on. Storage and format errors are wrapped with the object they concern; nothing that
//! comes from the repository may panic.

use std::path::PathBuf;

use strata_format::FormatError;
use strata_storage::StorageError;

/// Broad classes of failure callers react to differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// There is no repository at the given location.
    RepoNotFound,
    /// No key file opens with the given password.
    WrongPassword,
    /// Another process holds a conflicting lock.
    Locked,
    /// A repository object is damaged or missing.
    Corrupt,
    /// A snapshot, path or other named thing does not exist.
    NotFound,
    /// The user asked for something invalid.
    Invalid,
    /// Local I/O failed (source or restore target).
    Io,
    /// Storage failed.
    Storage,
    /// The caller asked the operation to stop.
    Cancelled,
    /// A failure of this program itself (a worker thread that panicked, a runtime that
    /// could not start): not the user's input, not the repository, not the storage.
    Internal,
}

/// Who holds a lock that stands in the way (what a person or a health check needs to act).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    /// The command holding it, e.g. `"backup"`.
    pub operation: String,
    /// Whether it excludes every other lock (repair).
    pub exclusive: bool,
    /// `shared`, `prune` or `exclusive` (spec/lock.md).
    pub kind: String,
    pub hostname: String,
    pub username: String,
    /// Process id in the holder's own PID namespace.
    pub pid: u32,
    /// When it was last refreshed, Unix nanoseconds (by the holder's clock).
    pub refreshed_ns: i64,
}

/// An engine failure with the context that names the object.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no repository at {0} (run `strata init` to create one)")]
    RepoNotFound(String),
    #[error("wrong password: no key in {0} opens with it")]
    WrongPassword(String),
    /// The repository is locked (by `holder`, when it is known), or this process lost its
    /// own lock.
    #[error("{message}")]
    Locked {
        message: String,
        holder: Option<Box<LockHolder>>,
    },
    /// A failure of this program itself (see [`ErrorKind::Internal`]).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{object}: {source}")]
    Format {
        object: String,
        #[source]
        source: FormatError,
    },
    #[error("{0}")]
    Corrupt(String),
    /// An object whose stored bytes do not hash to its name: damaged in storage (as
    /// opposed to intact but unreadable, e.g. written with another key).
    #[error("{0}")]
    Damaged(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Snapshots under a retention hold, with the time each is held until (Unix ns): never
    /// forgotten, whoever asks; nothing was removed.
    #[error("refusing to forget held snapshots ({}); nothing was removed", held_list(.0))]
    Held(Vec<(strata_format::id::SnapshotId, i64)>),
    /// The caller asked the operation to stop (see [`crate::progress::Progress::should_stop`]).
    #[error("cancelled")]
    Cancelled,
    /// Work stopped because of an earlier failure on another thread; carries that
    /// failure's kind and message, so whichever thread reports it names the cause.
    #[error("{message}")]
    Stopped { kind: ErrorKind, message: String },
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::RepoNotFound(_) => ErrorKind::RepoNotFound,
            EngineError::WrongPassword(_) => ErrorKind::WrongPassword,
            EngineError::Locked { .. } => ErrorKind::Locked,
            EngineError::Internal(_) => ErrorKind::Internal,
            EngineError::Format {
                source: FormatError::WrongPassword,
                ..
            } => ErrorKind::WrongPassword,
            EngineError::Format { .. } | EngineError::Corrupt(_) | EngineError::Damaged(_) => {
                ErrorKind::Corrupt
            }
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Invalid(_) => ErrorKind::Invalid,
            EngineError::Io { .. } => ErrorKind::Io,
            EngineError::Storage(_) => ErrorKind::Storage,
            EngineError::Stopped { kind, .. } => *kind,
            EngineError::Cancelled => ErrorKind::Cancelled,
            EngineError::Held(_) => ErrorKind::Invalid,
        }
    }

    /// Whether this is a blob compressed against a dictionary that was not loaded (the
    /// blob itself may be intact).
    pub fn is_missing_dictionary(&self) -> bool {
        matches!(
            self,
            EngineError::Format {
                source: FormatError::MissingDictionary { .. },
                ..
            }
        )
    }

    /// Wraps a format error with the object it concerns.
    pub fn format(object: impl Into<String>, source: FormatError) -> Self {
        EngineError::Format {
            object: object.into(),
            source,
        }
    }

    /// A lock conflict or loss without a known holder.
    pub fn locked(message: impl Into<String>) -> Self {
        EngineError::Locked {
            message: message.into(),
            holder: None,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}

/// "1a2b3c4d held until 2030-01-01 00:00:00 UTC, …".
fn held_list(held: &[(strata_format::id::SnapshotId, i64)]) -> String {
    held.iter()
        .map(|(id, until)| {
            format!(
                "{} held until {} UTC",
                id.short(),
                crate::retention::format_time(*until, &jiff::tz::TimeZone::UTC)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
