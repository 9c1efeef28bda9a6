//! Strata engine: everything a backup program does, without printing anything.
//!
//! # Concurrency and crash design
//! - Writes happen in the order packs → index → snapshot. Each backend write is atomic and
//!   durable when it returns, and the archiver waits for every pack upload before it writes
//!   the index, and for the index before the snapshot. A killed backup therefore leaves at
//!   most unreferenced packs, never a snapshot pointing at missing data.
//! - CPU work (chunking, hashing, compression, encryption) runs on rayon; storage I/O runs on
//!   a tokio runtime owned by the [`Repository`]; queues between them are bounded.
//!
//! # Locks
//! Shared locks for reading and for backups (two backups may run at once: each writes its
//! own packs and index files); exclusive for everything that deletes or rewrites. Which
//! operation takes which lock, and how much of the index, is decided in one place,
//! [`Operation`] (its module docs hold the lock matrix, which a test checks with real
//! locks). Commands load the index only once they hold their lock. Locks are refreshed
//! while held; a lock whose process is certainly gone (same kernel and PID namespace) or
//! that expired is removed automatically; a holder checks that its lock still exists before
//! it writes an index file or a snapshot, and an exclusive holder lists the locks again
//! before its first delete (see [`lock`]).

pub mod archiver;
pub mod browse;
pub mod checker;
pub mod config_repair;
pub mod copy;
mod error;
pub mod evidence;
pub mod filter;
mod index;
mod keycache;
mod keyfiles;
pub mod keys;
pub mod lock;
mod meta;
pub mod migrate;
mod objects;
mod operation;
mod packer;
mod packread;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod report;
mod repository;
pub mod restorer;
pub mod retention;
pub mod rewrite;
mod runtime;
pub mod snapshots;
mod spool;
mod stored;
pub mod tags;
pub mod treewalk;
pub mod vfs;
pub mod wal;

#[cfg(test)]
mod test_support;

pub use error::{EngineError, ErrorKind, LockHolder};
pub use index::{BlobLocation, IndexBuilder, MasterIndex};
pub use operation::{IndexNeed, LockMode, Operation};
pub use repository::{InitOptions, Repository};
pub use runtime::EngineRuntime;

/// Stack size a thread needs to walk trees nested `MAX_TREE_DEPTH` deep (tree walks
/// recurse once per level). The CLI runs commands on a thread of this size; it is virtual
/// memory, touched only as deep as a tree really goes.
pub const STACK_SIZE: usize = 64 << 20;

/// Result of engine operations.
pub type Result<T> = std::result::Result<T, EngineError>;

/// Current time as Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The current user's name (from the password database, else `$USER`, else the uid).
pub fn username() -> String {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| uid.to_string())
}
