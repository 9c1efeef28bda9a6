//! Every operation on a repository, and what each needs: its lock, how much of the index,
//! and whether it may read through a local cache. Front ends (the CLI, the runner, the
//! server) name an [`Operation`] and open the repository for it; none of them picks a lock
//! or an index on its own.
//!
//! # Lock matrix
//! Whether an operation may start while another runs follows from their [`LockMode`]s:
//!
//! | running \\ wants | none | read, shared | prune | exclusive |
//! |---|---|---|---|---|
//! | none          | yes | yes | yes | yes |
//! | read, shared  | yes | yes | yes | no  |
//! | prune         | yes | yes | no  | no  |
//! | exclusive     | yes | no  | no  | no  |
//!
//! - **none**: `init`, `snapshots`, `cat` of a stored object, `key list`, `unlock`,
//!   `repair config` and `migrate` (each takes the exclusive lock itself once the
//!   repository opens),
//!   `list` of stored objects (names only), `pg verify` (WAL files only).
//! - **read** (shared, or none on a repository that cannot be written): `restore` into a
//!   directory, `dump`, `ls`, `find`, `diff`, `stats`, `cat` of a blob, `mount`, `check`,
//!   `verify`, `list blobs`, the source of `copy`, and `pg wal-fetch`.
//! - **shared**: `backup`, a database `restore` (it first backs up the target), and the
//!   destination of `copy`, and `pg wal-push`. Two backups may run at once: each writes its
//!   own packs and index files. (A WAL push also merges WAL files: it deletes only files
//!   whose entries a file it wrote first lists, so readers lose nothing; spec/wal.md.)
//! - **prune**: `prune`, `forget` (with or without `--prune`), `hold`, `tag`, `rewrite`,
//!   `key add`, `key remove`, `key passwd`: what deletes or replaces snapshots or keys. One
//!   at a time, beside backups, copies, checks and restores: prune deletes in two phases, so
//!   that nothing a running session may still name is deleted (spec/prune.md), and while a
//!   prune runs no snapshot is replaced (a snapshot read by name and gone, its replacement
//!   not yet listed, would be missed).
//! - **exclusive**: `repair index` and `repair snapshots`, which rebuild the index or
//!   rewrite snapshots wholesale.
//!
//! The test `lock_matrix` in `engine/tests` takes the real locks of every pair of
//! operations and checks them against this table.

use serde::Serialize;

/// How an operation locks the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockMode {
    /// No lock.
    None,
    /// A shared lock, or none (with a warning) when the repository cannot be written: a
    /// read-only medium, read-only credentials, a full disk.
    Read,
    /// A shared lock.
    Shared,
    /// A prune lock: excludes other prunes and exclusive locks, not shared ones.
    Prune,
    /// An exclusive lock.
    Exclusive,
}

/// How much of the index an operation loads (after its lock is held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexNeed {
    None,
    /// Trees and dictionaries only.
    Metadata,
    Full,
}

/// An operation on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    Init,
    Backup,
    /// Restore into a directory.
    Restore,
    /// Restore a database (after a safety snapshot of the target).
    RestoreDatabase,
    Dump,
    Ls,
    Find,
    Diff,
    Stats,
    /// `cat` of a stored object (config, key, snapshot, index file).
    CatObject,
    /// `cat` of a blob or tree, found through the index.
    CatBlob,
    Snapshots,
    Mount,
    Check,
    /// A restore test of a database snapshot.
    Verify,
    /// The repository `copy` reads from.
    CopyFrom,
    /// The repository `copy` writes to.
    CopyTo,
    Forget,
    /// `forget --prune`.
    ForgetAndPrune,
    Hold,
    Prune,
    RepairIndex,
    RepairSnapshots,
    RepairConfig,
    KeyList,
    KeyAdd,
    KeyRemove,
    KeyPasswd,
    Unlock,
    /// `tag`: changes the tags of snapshots (rewrites them).
    Tag,
    /// `rewrite`: snapshots without some paths.
    Rewrite,
    /// `list` of stored objects by name (snapshots, index files, packs, keys, locks).
    List,
    /// `list blobs`: every blob the index names.
    ListBlobs,
    /// Writes an evidence file (`strata run`'s summary): it names snapshots, so like a
    /// backup it holds a shared lock; it needs no index.
    Evidence,
    /// `pg wal-push`: stores an archived WAL file (blobs, then a WAL file naming them), as
    /// a backup does.
    WalPush,
    /// `pg wal-fetch`: reads an archived WAL file back.
    WalFetch,
    /// `pg verify`: lists a WAL archive (WAL files only: no lock, no index).
    WalList,
    /// `migrate`: lists or applies format migrations; applying one takes the exclusive
    /// lock itself (`crate::migrate::wal`), so that every front end does.
    Migrate,
}

impl Operation {
    /// Every operation (for tests and documentation).
    pub const ALL: [Operation; 38] = [
        Operation::Init,
        Operation::Backup,
        Operation::Restore,
        Operation::RestoreDatabase,
        Operation::Dump,
        Operation::Ls,
        Operation::Find,
        Operation::Diff,
        Operation::Stats,
        Operation::CatObject,
        Operation::CatBlob,
        Operation::Snapshots,
        Operation::Mount,
        Operation::Check,
        Operation::Verify,
        Operation::CopyFrom,
        Operation::CopyTo,
        Operation::Forget,
        Operation::ForgetAndPrune,
        Operation::Hold,
        Operation::Prune,
        Operation::RepairIndex,
        Operation::RepairSnapshots,
        Operation::RepairConfig,
        Operation::KeyList,
        Operation::KeyAdd,
        Operation::KeyRemove,
        Operation::KeyPasswd,
        Operation::Unlock,
        Operation::Tag,
        Operation::Rewrite,
        Operation::List,
        Operation::ListBlobs,
        Operation::Evidence,
        Operation::WalPush,
        Operation::WalFetch,
        Operation::WalList,
        Operation::Migrate,
    ];

    /// The command's name, as locks record it and messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Init => "init",
            Operation::Backup => "backup",
            Operation::Restore | Operation::RestoreDatabase => "restore",
            Operation::Dump => "dump",
            Operation::Ls => "ls",
            Operation::Find => "find",
            Operation::Diff => "diff",
            Operation::Stats => "stats",
            Operation::CatObject | Operation::CatBlob => "cat",
            Operation::Snapshots => "snapshots",
            Operation::Mount => "mount",
            Operation::Check => "check",
            Operation::Verify => "verify",
            Operation::CopyFrom | Operation::CopyTo => "copy",
            Operation::Forget | Operation::ForgetAndPrune => "forget",
            Operation::Hold => "hold",
            Operation::Prune => "prune",
            Operation::RepairIndex => "repair index",
            Operation::RepairSnapshots => "repair snapshots",
            Operation::RepairConfig => "repair config",
            Operation::KeyList => "key list",
            Operation::KeyAdd => "key add",
            Operation::KeyRemove => "key remove",
            Operation::KeyPasswd => "key passwd",
            Operation::Unlock => "unlock",
            Operation::Tag => "tag",
            Operation::Rewrite => "rewrite",
            Operation::List | Operation::ListBlobs => "list",
            Operation::Evidence => "evidence",
            Operation::WalPush => "pg wal-push",
            Operation::WalFetch => "pg wal-fetch",
            Operation::WalList => "pg verify",
            Operation::Migrate => "migrate",
        }
    }

    /// The lock it takes (see the module docs).
    pub fn lock(self) -> LockMode {
        use Operation::*;
        match self {
            Init | Snapshots | CatObject | KeyList | Unlock | RepairConfig | List | WalList
            | Migrate => LockMode::None,
            Restore | Dump | Ls | Find | Diff | Stats | CatBlob | Mount | Check | Verify
            | CopyFrom | ListBlobs | WalFetch => LockMode::Read,
            Backup | RestoreDatabase | CopyTo | Evidence | WalPush => LockMode::Shared,
            Forget | ForgetAndPrune | Prune | Hold | Tag | Rewrite | KeyAdd | KeyRemove
            | KeyPasswd => LockMode::Prune,
            RepairIndex | RepairSnapshots => LockMode::Exclusive,
        }
    }

    /// How much of the index it loads once locked.
    pub fn index(self) -> IndexNeed {
        use Operation::*;
        match self {
            Ls | Find | Diff => IndexNeed::Metadata,
            Backup | Restore | RestoreDatabase | Dump | Stats | CatBlob | Mount | Verify
            | CopyFrom | CopyTo | RepairSnapshots | Rewrite | ListBlobs | WalPush | WalFetch => {
                IndexNeed::Full
            }
            // `check` builds its own from every index file (damaged ones included); `repair
            // index` rebuilds it from the packs; prune loads it itself, after it has listed
            // the other sessions and read the snapshots (spec/prune.md).
            Init | Snapshots | CatObject | Check | Forget | ForgetAndPrune | Prune | Hold
            | RepairIndex | RepairConfig | KeyList | KeyAdd | KeyRemove | KeyPasswd | Unlock
            | Tag | List | Evidence | WalList | Migrate => IndexNeed::None,
        }
    }

    /// What it lists first once its lock is held, started as soon as the lock file is
    /// written: the index files if it loads the index, the snapshots if it reads them.
    pub(crate) fn early_listings(self) -> Vec<strata_storage::FileType> {
        use strata_storage::FileType;
        use Operation::*;
        let mut types = Vec::new();
        if self.index() != IndexNeed::None {
            types.push(FileType::Index);
        }
        if matches!(
            self,
            Backup
                | Restore
                | RestoreDatabase
                | Dump
                | Ls
                | Find
                | Diff
                | Stats
                | Snapshots
                | Mount
                | Verify
                | CopyFrom
                | CopyTo
                | Forget
                | ForgetAndPrune
                | Hold
                | Tag
                | Rewrite
        ) {
            types.push(FileType::Snapshot);
        }
        types
    }

    /// Whether it walks the trees of snapshots (of many directories, so that the local
    /// cache of a remote repository is first brought to hold every metadata pack).
    pub fn walks_trees(self) -> bool {
        use Operation::*;
        matches!(
            self,
            Backup
                | Restore
                | Dump
                | Ls
                | Find
                | Diff
                | Stats
                | Mount
                | Verify
                | CopyFrom
                | ForgetAndPrune
                | Prune
                | Rewrite
        )
    }

    /// Whether it may read index files and snapshots of a remote repository through the
    /// local cache. What checks, mends or migrates the repository reads it as it is.
    pub fn uses_cache(self) -> bool {
        !matches!(
            self,
            Operation::Check
                | Operation::RepairIndex
                | Operation::RepairSnapshots
                | Operation::RepairConfig
                | Operation::KeyList
                | Operation::Migrate
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
