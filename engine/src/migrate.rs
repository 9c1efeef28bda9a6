//! Upgrading a repository's format in place (`strata migrate`, as `restic migrate`).
//!
//! One migration so far, [`WAL`]: format version 3 to 4, so that a repository made before
//! WAL archiving can take WAL (`strata pg wal-push` refuses older formats). Version 4 is
//! version 3's layout plus WAL files, so the migration changes only the version number,
//! in the config's clear header and sealed body, and in every copy of the config that the
//! key files carry: a version 3 copy left behind would let `repair config` bring back a
//! version 3 config, which an older Strata opens and whose prune deletes archived WAL's
//! blobs (see `config_repair`, which never restores a lower version than the config's).
//! Versions 1 and 2 are refused: their config lacks what version 3 added.
//!
//! # Crash ordering
//! Under the exclusive lock (no backup, prune or key change runs beside it):
//! 1. the new config is written in one storage write (atomic: a reader sees the old or the
//!    new one), read back and checked to decode to version 4 with every other field equal
//!    to the old one's; if not, the old config is written back and the migration fails;
//! 2. each key file whose copy is of a lower version gets the new one: the new key file is
//!    written and read back before the old one is deleted (as `repair config` does).
//!
//! A crash before 1 completes leaves version 3 (run it again); after it, a version 4
//! repository whose key files may still carry a version 3 copy, which [`list`] reports
//! and a second run of [`wal`] finishes (it rewrites the copies whatever the config's
//! version). A crash inside 2 may leave a key file twice (old and new, both opening the
//! repository with the same password); the next run replaces the old one again and
//! deletes it.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use strata_format::config::{ConfigFile, WAL_VERSION};
use strata_storage::FileType;

use crate::keyfiles::read_all;
use crate::lock::{lock_with, LockTiming};
use crate::{EngineError, Repository, Result};

/// The name of the migration to format version 4 (`strata migrate wal`).
pub const WAL: &str = "wal";

/// The lowest format version [`wal`] upgrades: version 4 is version 3's layout.
const WAL_FROM: u16 = 3;

/// One migration and whether this repository needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// What `strata migrate` takes to apply it.
    pub name: &'static str,
    /// What it does, in a line.
    pub description: &'static str,
    #[serde(flatten)]
    pub state: MigrationState,
}

/// Whether a migration applies to a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum MigrationState {
    /// It applies and is not (completely) done; why.
    Needed(String),
    /// Done, or nothing to do.
    Done,
    /// It cannot be applied to this repository; why, and what to do instead.
    Refused(String),
}

/// What [`wal`] did.
#[derive(Debug, Clone, Serialize)]
pub struct WalMigration {
    /// The format version the config had.
    pub from_version: u16,
    /// The format version it has now.
    pub to_version: u16,
    /// Whether this run wrote the config (false: it was version 4 already).
    pub config_written: bool,
    /// Key files given a copy of the new config: (old name, new name).
    pub key_files_updated: Vec<(String, String)>,
    /// Key files left as they are, with why (damaged, unreadable, or a copy that does not
    /// open with this repository's key).
    pub key_files_skipped: Vec<String>,
}

impl WalMigration {
    /// Whether the repository was version 4 with every copy current: nothing was written.
    pub fn was_done(&self) -> bool {
        !self.config_written && self.key_files_updated.is_empty()
    }
}

/// Why a repository of `version` (below 3) cannot be migrated, and what to do instead.
fn refused(version: u16) -> String {
    let lacks = match version {
        1 => {
            "dictionary blobs (version 2) and the database-dump chunker in the config \
              (version 3)"
        }
        _ => "the database-dump chunker in the config (version 3)",
    };
    format!(
        "this repository is of format version {version}, whose layout lacks what later \
         versions added ({lacks}); only version 3 is upgraded in place. To archive WAL, \
         create a new repository (`strata init`) and copy the snapshots into it (`strata -r NEW \
         copy --from-repo THIS`); this one keeps working as it is"
    )
}

/// The key files whose config copy is of a lower format version than `version`, or that
/// have none.
/// Copies that do not open with this repository's key are left out (`repair config` never
/// restores those), as are damaged key files.
fn stale_copies(repo: &Repository, version: u16) -> Result<Vec<String>> {
    let listed = repo.block_on(repo.backend().list(FileType::Key))?;
    let mut stale = Vec::new();
    for k in repo.block_on(read_all(&**repo.backend(), &listed)) {
        let Some(kf) = k.usable() else { continue };
        let lower = match kf.config.as_deref() {
            None => true,
            Some(c) => ConfigFile::decode(repo.key(), c).is_ok_and(|c| c.format_version < version),
        };
        if lower {
            stale.push(k.name);
        }
    }
    Ok(stale)
}

/// Every migration and whether this repository needs it (`strata migrate`). Reads the
/// config as the handle opened it, and the key files.
pub fn list(repo: &Repository) -> Result<Vec<Migration>> {
    let version = repo.config().format_version;
    let state = if version < WAL_FROM {
        MigrationState::Refused(refused(version))
    } else if version < WAL_VERSION {
        MigrationState::Needed(format!(
            "the repository is of format version {version}, which takes no WAL"
        ))
    } else {
        match stale_copies(repo, version)?.len() {
            0 => MigrationState::Done,
            n => MigrationState::Needed(format!(
                "the config is of version {version}, but {n} key file(s) carry a copy of an \
                 older one or none (an interrupted migration?)"
            )),
        }
    };
    Ok(vec![Migration {
        name: WAL,
        description: "format version 3 to 4, which may hold PostgreSQL WAL (`strata pg \
                      wal-push`)",
        state,
    }])
}

/// Upgrades a version 3 repository to version 4 (see the module docs), under an
/// exclusive lock taken here (waiting up to `wait` for one). On a version 4 repository it
/// only gives key files that lack it a copy of the config (finishing an interrupted run);
/// versions 1 and 2 are refused, changing nothing.
pub fn wal(repo: &Repository, wait: Duration) -> Result<WalMigration> {
    let _lock = lock_with(repo, "migrate", true, wait, LockTiming::default())?;
    let backend = repo.backend();
    // Read again under the lock: another process may have migrated since this one opened.
    let stored = repo.block_on(backend.read(FileType::Config, ""))?;
    let old =
        ConfigFile::decode(repo.key(), &stored).map_err(|e| EngineError::format("config", e))?;
    if old.repo_id != repo.config().repo_id {
        return Err(EngineError::Corrupt(format!(
            "the config of {} names repository {}, not {} as when it was opened; nothing was \
             migrated",
            backend.location(),
            old.repo_id.short(),
            repo.config().repo_id.short()
        )));
    }
    let from_version = old.format_version;
    if from_version < WAL_FROM {
        return Err(EngineError::Invalid(refused(from_version)));
    }
    // The config and key files are replaced: only while this lock is still the only one.
    crate::lock::before_delete(repo)?;
    let (current, config_written) = if from_version < WAL_VERSION {
        (write_config(repo, &old, &stored)?, true)
    } else {
        (stored, false)
    };
    let mut report = WalMigration {
        from_version,
        to_version: from_version.max(WAL_VERSION),
        config_written,
        key_files_updated: Vec::new(),
        key_files_skipped: Vec::new(),
    };
    give_copies(repo, &current, &mut report)?;
    Ok(report)
}

/// Step 1: writes `old` as version 4, reads it back and checks it; returns its bytes. A
/// config that does not read back as written is replaced by the old one again.
fn write_config(repo: &Repository, old: &ConfigFile, old_bytes: &Bytes) -> Result<Bytes> {
    let backend = repo.backend();
    let new = ConfigFile {
        format_version: WAL_VERSION,
        ..old.clone()
    };
    let bytes = Bytes::from(new.encode(repo.key(), &mut rand::thread_rng()));
    repo.block_on(backend.write(FileType::Config, "", bytes.clone()))?;
    let back = repo.block_on(backend.read(FileType::Config, ""))?;
    let decoded = ConfigFile::decode(repo.key(), &back);
    let same_but_version = decoded.as_ref().is_ok_and(|c| {
        c.format_version == WAL_VERSION
            && ConfigFile {
                format_version: old.format_version,
                ..c.clone()
            } == *old
    });
    if back != bytes || !same_but_version {
        let put_back = match repo.block_on(backend.write(FileType::Config, "", old_bytes.clone())) {
            Ok(()) => "the old config was written back".to_string(),
            Err(e) => format!(
                "writing the old one back failed too ({e}): `strata repair config` restores it \
                 from a key file"
            ),
        };
        return Err(EngineError::Corrupt(format!(
            "the version {WAL_VERSION} config written to {} does not read back as written \
             ({}); {put_back}",
            backend.location(),
            match decoded {
                Err(e) => e.to_string(),
                Ok(_) => "other bytes".into(),
            }
        )));
    }
    Ok(bytes)
}

/// Step 2: gives every intact key file whose copy is of a lower version than `current`
/// (or that has none) a copy of `current`, recording in `report` the key files rewritten
/// and why others were left.
fn give_copies(repo: &Repository, current: &Bytes, report: &mut WalMigration) -> Result<()> {
    let version = ConfigFile::decode(repo.key(), current)
        .map_err(|e| EngineError::format("config", e))?
        .format_version;
    let listed = repo.block_on(repo.backend().list(FileType::Key))?;
    for k in repo.block_on(read_all(&**repo.backend(), &listed)) {
        let Some(kf) = k.usable() else {
            report
                .key_files_skipped
                .push(k.problem().unwrap_or_default());
            continue;
        };
        match kf
            .config
            .as_deref()
            .map(|c| ConfigFile::decode(repo.key(), c))
        {
            None => {}
            Some(Ok(copy)) if copy.format_version < version => {}
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                report.key_files_skipped.push(format!(
                    "keys/{}: its copy of the config does not open with this repository's key \
                     ({e})",
                    k.name
                ));
                continue;
            }
        }
        let mut kf = kf.clone();
        kf.config = Some(current.to_vec());
        let new = crate::keys::replace(repo, &k.name, &kf)?;
        report.key_files_updated.push((k.name, new));
    }
    Ok(())
}
