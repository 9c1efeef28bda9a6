//! Application errors.
//!
//! Policy: an engine or storage failure keeps its own kind (`AppError::kind` passes it
//! through), so a front end maps "repository locked" or "wrong password" to the same exit
//! code or HTTP status whichever layer noticed it. What the application layer adds are the
//! failures of its own inputs: a secret that cannot be read, an option that makes no
//! sense. No message ever holds a secret, nor the text of a command that produces one.

use strata_engine::{EngineError, ErrorKind};
use strata_storage::StorageError;

/// A failure of the application layer.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine's failure, storage failures included (as `EngineError::Storage`).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A password (or other secret) could not be obtained: a file that cannot be read, a
    /// command that failed or did not answer in time. The message names the source (never
    /// its content, nor a command's text).
    #[error("{0}")]
    Secret(String),
    /// The caller asked for something that cannot be done (e.g. `--no-lock` for a command
    /// that writes).
    #[error("{0}")]
    Invalid(String),
    /// A notification could not be delivered (`strata notify test`); the message names the
    /// channel, never a secret (URLs keep only their scheme, host and port).
    #[error("{0}")]
    Notify(String),
    /// The audit catalog (SQLite in the state directory) could not be opened, read or
    /// written, or was written by a newer strata. The message names the file.
    #[error("{0}")]
    Catalog(String),
}

impl AppError {
    /// The engine's kind of failure (secrets and invalid requests are `Invalid`, a
    /// notification that could not be delivered is `Io`).
    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::Engine(e) => e.kind(),
            AppError::Secret(_) | AppError::Invalid(_) => ErrorKind::Invalid,
            AppError::Notify(_) => ErrorKind::Io,
            AppError::Catalog(_) => ErrorKind::Io,
        }
    }
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> Self {
        AppError::Engine(EngineError::Storage(e))
    }
}

pub type Result<T> = std::result::Result<T, AppError>;
