//! Strata storage: a small backend trait keyed by (file type, name), implemented over opendal.
//!
//! This crate knows nothing of the repository format: it moves opaque bytes. Its contract:
//! - `write` is atomic (a reader never sees a half-written object) and durable when it
//!   returns (fsync of the file and its directory on local disks).
//! - `list` returns every object of a type with its size, sorted by name.
//! - errors carry a [`ErrorKind`] so callers can tell "not found" from "transient".

mod backend;
mod cache;
mod error;
pub mod fault;
mod local;
mod location;
mod opendal_backend;
mod remote;
mod retry;
mod sftp;
mod verify;

pub use backend::{Backend, FileType};
pub use cache::CachingBackend;
pub use error::{ErrorKind, StorageError};
pub use fault::{FaultBackend, FaultPlan};
pub use opendal_backend::{OpendalBackend, RemoteOptions};
pub use retry::RetryBackend;
pub use verify::VerifyingBackend;

/// Result of storage operations.
pub type Result<T> = std::result::Result<T, StorageError>;
