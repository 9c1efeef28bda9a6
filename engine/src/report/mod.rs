//! Findings: what a check, backup, restore or repair found wrong, as values a catalog, a
//! health check or a notifier can read without parsing text.
//!
//! A [`Finding`] says what is wrong ([`FindingKind`]), with which stored object
//! ([`ObjectRef`], by its typed id), in which snapshot and at which path, and carries the
//! line a person reads ([`Finding::message`], which is also its `Display`). The message is
//! complete on its own: it names the object, snapshot and path again, word for word as the
//! command line has always printed it, so that adding the typed fields changed no output.
//!
//! Findings serialize with serde. Ids are hex strings and blob types their names in
//! human-readable formats (JSON), raw in binary ones (postcard); paths are raw bytes in
//! binary formats and UTF-8 text in human-readable ones (invalid sequences replaced, as
//! everywhere else `--json` shows a path). Kinds are `snake_case` strings; new kinds may be
//! added (the enum is non-exhaustive), existing ones are never renamed. Serde's default
//! (external) enum tagging is kept on purpose: internally tagged enums need a
//! self-describing format, and findings are also stored with postcard.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, EvidenceId, IndexId, KeyId, PackId, SnapshotId, WalId};
use strata_storage::FileType;

mod serde_text;
#[cfg(test)]
mod tests;

/// What is wrong. The name says it; [`Finding::object`] says with what. Binary encodings
/// number the kinds: new ones go at the end, none is ever reordered or renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A key file is damaged or does not decode: a password whose only key file it is no
    /// longer opens the repository.
    DamagedKeyFile,
    /// Key files written by an older version keep no copy of the config (a warning: a lost
    /// config could not be restored from them).
    KeyFilesWithoutConfigCopy,
    /// An index file cannot be read, is damaged or does not decode.
    UnreadableIndex,
    /// An index file a newer one supersedes is still there (a warning: an interrupted prune
    /// or repair left it).
    SupersededIndex,
    /// An index file is intact but does not open with this key (another repository's, or a
    /// newer Strata's): `repair index` keeps it.
    ForeignIndex,
    /// A pack an index names is not in storage.
    MissingPack,
    /// A pack's stored size is not the size its index records.
    PackSizeMismatch,
    /// A pack no index names (a warning: an interrupted backup left it).
    UnindexedPack,
    /// A pack could not be read (from `check --read-data`, `restore`), or nothing in it
    /// authenticates under this key (`repair index`).
    UnreadablePack,
    /// A pack's content does not hash to its name, or blobs its header lists do not verify.
    DamagedPack,
    /// A pack's sealed header does not open or decode.
    DamagedPackHeader,
    /// The index places a blob in a pack where the pack's header does not.
    PackHeaderMismatch,
    /// A blob something needs is not in the index.
    MissingBlob,
    /// A blob is indexed as another type than it is used as.
    BlobTypeMismatch,
    /// A blob does not decrypt, decompress or hash to its id, or has the wrong length.
    DamagedBlob,
    /// More damaged blobs of one pack than are listed one by one (the message counts them).
    UnlistedDamagedBlobs,
    /// A blob lies in a pack that is missing or damaged.
    BlobInDamagedPack,
    /// A snapshot file cannot be read, is damaged or does not decode.
    UnreadableSnapshot,
    /// A snapshot file is intact but does not open with this key (another repository's,
    /// or a newer Strata's): `repair snapshots` keeps it.
    ForeignSnapshot,
    /// A tree cannot be loaded (missing, damaged, does not decode).
    UnreadableTree,
    /// Trees nest deeper than the format allows (or, in a backup, directories do).
    TooDeep,
    /// A file's blobs do not add up to the size its snapshot records.
    ContentSizeMismatch,
    /// A backup could not read an entry of its source (it is left out of the snapshot).
    UnreadableSource,
    /// A restore could not create or write an entry in its target.
    TargetWriteFailed,
    /// A restore wrote an entry but could not set its owner, mode, times or attributes.
    MetadataNotApplied,
    /// A hard link was not made: the file it links to could not be restored.
    LinkTargetNotRestored,
    /// Not all of a file's content was written (the restore was cancelled).
    IncompleteContent,
    /// An evidence file (a run summary or restore-test report) cannot be read, is damaged
    /// or does not decode.
    DamagedEvidence,
    /// A WAL file (archived PostgreSQL WAL) cannot be read, is damaged or does not decode,
    /// or names one file with two contents.
    DamagedWal,
}

/// The stored object a finding is about, by its typed id. In JSON, an object named by its
/// variant: `{"pack": {"id": "…"}}`, `{"blob": {"blob_type": "data", "id": "…"}}`.
/// Binary encodings number the variants: new ones go at the end, none is ever reordered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ObjectRef {
    Key {
        id: KeyId,
    },
    Index {
        id: IndexId,
    },
    Pack {
        id: PackId,
    },
    Snapshot {
        id: SnapshotId,
    },
    Blob {
        #[serde(with = "serde_text::blob_type")]
        blob_type: BlobType,
        id: BlobId,
    },
    /// A stored file whose name is not an id (so not one of ours): its directory
    /// (`keys`, `data`, `index`, `snapshots`) and name.
    Unnamed {
        dir: String,
        name: String,
    },
    Evidence {
        id: EvidenceId,
    },
    /// A WAL file (`wal/<id>`, archived PostgreSQL WAL).
    Wal {
        id: WalId,
    },
}

impl ObjectRef {
    pub fn blob(blob_type: BlobType, id: BlobId) -> Self {
        ObjectRef::Blob { blob_type, id }
    }

    pub fn pack(id: PackId) -> Self {
        ObjectRef::Pack { id }
    }

    /// The stored file `name` of type `ft`, by its id when the name is one.
    pub fn stored(ft: FileType, name: &str) -> Self {
        let unnamed = || ObjectRef::Unnamed {
            dir: ft.dir().to_string(),
            name: name.to_string(),
        };
        let parsed = match ft {
            FileType::Key => name.parse().map(|id| ObjectRef::Key { id }),
            FileType::Pack => name.parse().map(|id| ObjectRef::Pack { id }),
            FileType::Index => name.parse().map(|id| ObjectRef::Index { id }),
            FileType::Snapshot => name.parse().map(|id| ObjectRef::Snapshot { id }),
            FileType::Evidence => name.parse().map(|id| ObjectRef::Evidence { id }),
            FileType::Wal => name.parse().map(|id| ObjectRef::Wal { id }),
            _ => return unnamed(),
        };
        parsed.unwrap_or_else(|_| unnamed())
    }
}

/// One thing found wrong: what, with which object, in which snapshot, at which path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The stored object at fault, if one is (a source or target path has none, nor has a
    /// count over several key files).
    pub object: Option<ObjectRef>,
    /// The snapshot the damage affects (check, repair snapshots).
    pub snapshot: Option<SnapshotId>,
    /// The entry affected: its absolute path in the snapshot (`/` for the root tree), or,
    /// for a backup, its path on the source file system. Raw bytes: names need not be
    /// UTF-8.
    #[serde(with = "serde_text::path")]
    pub path: Option<Vec<u8>>,
    /// The whole finding as one line for a person (its `Display`).
    pub message: String,
}

impl Finding {
    pub fn new(kind: FindingKind, object: Option<ObjectRef>, message: impl Into<String>) -> Self {
        Finding {
            kind,
            object,
            snapshot: None,
            path: None,
            message: message.into(),
        }
    }

    /// The same finding, affecting `snapshot`.
    pub fn in_snapshot(mut self, snapshot: SnapshotId) -> Self {
        self.snapshot = Some(snapshot);
        self
    }

    /// The same finding, at `path`.
    pub fn at_path(mut self, path: impl Into<Vec<u8>>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// The same finding with its message rewritten from the old one (to add the context
    /// the caller knows: the snapshot, the path, what was done about it).
    pub fn reworded(mut self, f: impl FnOnce(&str) -> String) -> Self {
        self.message = f(&self.message);
        self
    }

    /// The path as text (invalid UTF-8 replaced), if there is one.
    pub fn path_lossy(&self) -> Option<Cow<'_, str>> {
        self.path.as_deref().map(String::from_utf8_lossy)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The messages of `findings`, one line each (what the command line prints, and what the
/// `errors` and `problems` fields of its `--json` output hold).
pub fn messages(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(|f| f.message.clone()).collect()
}
