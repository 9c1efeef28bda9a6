//! Snapshot files: one backup, naming its root tree and what it came from.

use serde::{Deserialize, Serialize};

use crate::envelope::EncryptedObject;
use crate::id::{BlobId, SnapshotId};

/// Where a snapshot's content came from. New variants go at the end, with a new snapshot
/// version (so old readers ask for an upgrade instead of calling the snapshot malformed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    Files,
    Stdin { filename: String },
    Postgres,
    Mysql,
    Sqlite,
}

/// Counters of the backup that wrote a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    /// Stored bytes added to the repository (after dedup, compression, encryption).
    pub bytes_added: u64,
    pub data_blobs_added: u64,
    pub tree_blobs_added: u64,
    pub duration_secs: f64,
    /// Source entries that could not be read and were left out.
    pub errors: u64,
}

/// A snapshot file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// When the backup started, Unix nanoseconds (UTC).
    pub time_ns: i64,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    /// The paths given to backup, absolute.
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub project: Option<String>,
    pub excludes: Vec<String>,
    pub source: SourceKind,
    /// Source-specific facts (server version, tables, row counts), as key/value pairs.
    pub source_meta: Vec<(String, String)>,
    pub tree: BlobId,
    pub parent: Option<SnapshotId>,
    pub program_version: String,
    pub summary: SnapshotSummary,
    /// Retention hold: never forget before this time (Unix nanoseconds).
    pub keep_until_ns: Option<i64>,
}

impl EncryptedObject for SnapshotFile {
    const KIND: &'static str = "snapshot";
    const OBJECT: &'static str = "snapshot";
    const VERSION: u16 = 1;
}
