//! Snapshot files: one backup, naming its root tree and what it came from.

use serde::{Deserialize, Serialize};

use crate::envelope::{decode_postcard, split_version, EncryptedObject};
use crate::id::{BlobId, SnapshotId};
use crate::FormatError;

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
    /// Source bytes the snapshot holds: every file's size (read or reused unread), a
    /// stream's length. Version 3; 0 in snapshots written before (see [`Self::size`]).
    pub bytes_total: u64,
}

impl SnapshotSummary {
    /// The source bytes the snapshot holds, as well as it is known: `bytes_total`, or for a
    /// snapshot written before version 3 (which did not record it) the bytes its backup read.
    pub fn size(&self) -> u64 {
        if self.bytes_total > 0 {
            self.bytes_total
        } else {
            self.bytes_read
        }
    }
}

/// Version 1 and 2 summaries: the same counters, without `bytes_total`.
#[derive(Deserialize)]
struct SnapshotSummaryV2 {
    files_new: u64,
    files_changed: u64,
    files_unchanged: u64,
    dirs: u64,
    bytes_read: u64,
    bytes_added: u64,
    data_blobs_added: u64,
    tree_blobs_added: u64,
    duration_secs: f64,
    errors: u64,
}

impl From<SnapshotSummaryV2> for SnapshotSummary {
    fn from(v: SnapshotSummaryV2) -> Self {
        SnapshotSummary {
            files_new: v.files_new,
            files_changed: v.files_changed,
            files_unchanged: v.files_unchanged,
            dirs: v.dirs,
            bytes_read: v.bytes_read,
            bytes_added: v.bytes_added,
            data_blobs_added: v.data_blobs_added,
            tree_blobs_added: v.tree_blobs_added,
            duration_secs: v.duration_secs,
            errors: v.errors,
            bytes_total: 0,
        }
    }
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
    /// The id this snapshot had when its backup wrote it, if it was rewritten since
    /// (a hold set, damaged files dropped by repair). Version 2.
    pub original: Option<SnapshotId>,
    /// Every rewrite of this snapshot, oldest first. Version 2.
    pub rewrites: Vec<Rewrite>,
}

/// One rewrite of a snapshot: when, by whom, and what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrite {
    /// Unix nanoseconds.
    pub time_ns: i64,
    pub hostname: String,
    pub username: String,
    /// What changed, for people: "hold set until 2032-01-01 00:00:00", "dropped /srv/a.db:
    /// data blob 1f2e… is missing".
    pub change: String,
}

/// Version 1 snapshots: the same fields, without `original` and `rewrites`.
#[derive(Deserialize)]
struct SnapshotFileV1 {
    time_ns: i64,
    hostname: String,
    username: String,
    uid: u32,
    gid: u32,
    paths: Vec<String>,
    tags: Vec<String>,
    project: Option<String>,
    excludes: Vec<String>,
    source: SourceKind,
    source_meta: Vec<(String, String)>,
    tree: BlobId,
    parent: Option<SnapshotId>,
    program_version: String,
    summary: SnapshotSummaryV2,
    keep_until_ns: Option<i64>,
}

/// A v1 snapshot is a v2 one without a rewrite.
impl From<SnapshotFileV1> for SnapshotFileV2 {
    fn from(v: SnapshotFileV1) -> Self {
        SnapshotFileV2 {
            time_ns: v.time_ns,
            hostname: v.hostname,
            username: v.username,
            uid: v.uid,
            gid: v.gid,
            paths: v.paths,
            tags: v.tags,
            project: v.project,
            excludes: v.excludes,
            source: v.source,
            source_meta: v.source_meta,
            tree: v.tree,
            parent: v.parent,
            program_version: v.program_version,
            summary: v.summary,
            keep_until_ns: v.keep_until_ns,
            original: None,
            rewrites: Vec::new(),
        }
    }
}

/// Version 2 snapshots: the same fields, with a summary without `bytes_total`.
#[derive(Deserialize)]
struct SnapshotFileV2 {
    time_ns: i64,
    hostname: String,
    username: String,
    uid: u32,
    gid: u32,
    paths: Vec<String>,
    tags: Vec<String>,
    project: Option<String>,
    excludes: Vec<String>,
    source: SourceKind,
    source_meta: Vec<(String, String)>,
    tree: BlobId,
    parent: Option<SnapshotId>,
    program_version: String,
    summary: SnapshotSummaryV2,
    keep_until_ns: Option<i64>,
    original: Option<SnapshotId>,
    rewrites: Vec<Rewrite>,
}

impl From<SnapshotFileV2> for SnapshotFile {
    fn from(v: SnapshotFileV2) -> Self {
        SnapshotFile {
            time_ns: v.time_ns,
            hostname: v.hostname,
            username: v.username,
            uid: v.uid,
            gid: v.gid,
            paths: v.paths,
            tags: v.tags,
            project: v.project,
            excludes: v.excludes,
            source: v.source,
            source_meta: v.source_meta,
            tree: v.tree,
            parent: v.parent,
            program_version: v.program_version,
            summary: v.summary.into(),
            keep_until_ns: v.keep_until_ns,
            original: v.original,
            rewrites: v.rewrites,
        }
    }
}

impl EncryptedObject for SnapshotFile {
    const KIND: &'static str = "snapshot";
    const OBJECT: &'static str = "snapshot";
    const VERSION: u16 = 3;

    fn decode_plain(data: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = split_version(Self::OBJECT, data, Self::VERSION)?;
        match version {
            1 => Ok(
                SnapshotFileV2::from(decode_postcard::<SnapshotFileV1>(Self::OBJECT, body)?).into(),
            ),
            2 => Ok(decode_postcard::<SnapshotFileV2>(Self::OBJECT, body)?.into()),
            _ => decode_postcard(Self::OBJECT, body),
        }
    }
}
