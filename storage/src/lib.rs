//! Strata storage: a small backend trait keyed by (file type, name), implemented over opendal
//! (local disk, memory, S3) and over SFTP directly ([`SftpBackend`]); [`open`] picks the one
//! a location names.
//!
//! This crate knows nothing of the repository format: it moves opaque bytes. Its contract:
//! - `write` is atomic (a reader never sees a half-written object) and durable when it
//!   returns (fsync of the file and its directory on local disks).
//! - `list` returns every object of a type with its size, sorted by name.
//! - errors carry a [`ErrorKind`] so callers can tell "not found" from "transient".
//! - large objects are assembled in a [`SpoolFile`] the backend makes
//!   ([`Backend::spool_file`]) and stored with [`Backend::write_file`]; every temporary
//!   name (spool files, writes in progress) is made and recognised in one module, so that
//!   `remove_leftovers` removes exactly those.
//!
//! Decorators implement the same trait: [`RetryBackend`], [`CachingBackend`],
//! [`VerifyingBackend`], [`ThrottledBackend`] and the test hook [`FaultBackend`].

mod backend;
mod cache;
pub mod cache_dirs;
mod error;
pub mod fault;
mod local;
mod location;
mod open;
mod opendal_backend;
mod remote;
mod retry;
mod sftp;
mod spool;
mod temp_names;
mod throttle;
mod verify;

pub use backend::{Backend, FileType, FreeSpace};
pub use cache::CachingBackend;
pub use error::{ErrorKind, Result, StorageError};
pub use fault::{FaultBackend, FaultPlan};
pub use open::open;
pub use opendal_backend::OpendalBackend;
pub use remote::RemoteOptions;
pub use retry::RetryBackend;
pub use sftp::SftpBackend;
pub use spool::{SpoolError, SpoolFile};
pub use throttle::{ThrottledBackend, TokenBucket};
pub use verify::VerifyingBackend;
