//! Restoring a repository's config, and keeping the copies it is restored from.
//!
//! The config is small and never changes after `init`, but without it no command opens the
//! repository. Every key file written since key file version 2 carries a copy of it (sealed
//! under the master key, like the original, so a copy cannot be forged without it).
//! `repair config`:
//! 1. finds the master key: a key file the password unwraps whose master key opens the
//!    config; when the config is missing or damaged, one whose master key opens this
//!    repository's snapshots or index files (or pack headers, when there are neither), so
//!    that a key file copied from another repository with the same password, carrying
//!    that repository's config, is never taken for this one's;
//! 2. if the config is missing or damaged, writes the copy that opens with that key (and
//!    names the repository the damaged config's clear header names, if it is readable):
//!    never one of a lower format version than that header names, and of the others the
//!    highest version (`migrate` raises the config's version before the copies', so a
//!    crash between the two leaves lower copies beside the migrated config);
//!    with no copy anywhere (key files of older versions only), it writes a new config
//!    only when asked to rebuild, with the parameters given (a new repository id; every
//!    snapshot stays readable, since reading needs only the master key). A damaged config
//!    is replaced, and its bytes returned in the report;
//! 3. under an exclusive lock, gives every intact key file that has no copy one, or whose
//!    copy opens as a lower format version than the config (as an interrupted `migrate`
//!    leaves them): the new key file is written and read back before the old one is
//!    deleted. Any other copy that is there is never replaced.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use strata_format::config::ConfigFile;
use strata_format::crypto::MasterKey;
use strata_format::envelope::EncryptedObject;
use strata_format::index::IndexFile;
use strata_format::pack::read_pack_header_tail;
use strata_format::snapshot::SnapshotFile;
use strata_storage::{Backend, ErrorKind as StorageKind, FileType};

use crate::keyfiles::{unlock_master_key, Unlocked};
use crate::packread::PackFile;
use crate::{EngineError, InitOptions, Repository, Result};

/// Objects read to prove that a master key belongs to this repository, of each kind.
const SAMPLES: usize = 8;

/// What state the config was found in, and what was done about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ConfigState {
    /// The config was there and opens with the master key.
    Healthy,
    /// It was missing or damaged and was restored from the copy in a key file.
    Restored { from_key: String, was: String },
    /// It was missing or damaged, no key file had a copy, and a new one was written.
    Rebuilt { repo_id: String, was: String },
}

/// What `repair config` did.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigRepair {
    pub config: ConfigState,
    /// The damaged config's bytes (hex), as they were before they were replaced.
    pub damaged_config: Option<String>,
    /// Key files given a copy of the config (they had none, or one of a lower version):
    /// (old name, new name).
    pub key_files_updated: Vec<(String, String)>,
    /// Key files left as they are because they are damaged or unreadable, with why.
    pub key_files_skipped: Vec<String>,
}

/// A few of the repository's encrypted objects, to prove that a master key is this
/// repository's when its config cannot: snapshots and index files, or pack headers when
/// there are neither. Empty only when the repository holds none of them (nothing to
/// protect).
enum Sample {
    Snapshot(Bytes),
    Index(Bytes),
    /// A pack's tail (header and length) and the pack's size.
    PackTail(Bytes, u64),
}

impl Sample {
    fn opens_with(&self, key: &MasterKey) -> bool {
        match self {
            Sample::Snapshot(b) => SnapshotFile::decode(key, b).is_ok(),
            Sample::Index(b) => IndexFile::decode(key, b).is_ok(),
            Sample::PackTail(tail, size) => {
                read_pack_header_tail(key, tail, *size as usize).is_ok()
            }
        }
    }
}

async fn samples(backend: &dyn Backend) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for ft in [FileType::Snapshot, FileType::Index] {
        for (name, size) in backend.list(ft).await?.iter().take(SAMPLES) {
            if crate::stored::check_size(ft, name, *size).is_err() {
                continue;
            }
            let bytes = backend.read(ft, name).await?;
            out.push(match ft {
                FileType::Snapshot => Sample::Snapshot(bytes),
                _ => Sample::Index(bytes),
            });
        }
    }
    if out.is_empty() {
        for (name, size) in backend.list(FileType::Pack).await?.iter().take(SAMPLES) {
            if *size < 4 {
                continue;
            }
            let pack = PackFile::listed(name, *size);
            let len = pack.read_on(backend, size - 4, 4).await?;
            let header = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as u64;
            let tail = (header + 4)
                .min(*size)
                .min(strata_format::MAX_OBJECT_SIZE as u64);
            let bytes = pack.read_on(backend, size - tail, tail).await?;
            out.push(Sample::PackTail(bytes, *size));
        }
    }
    Ok(out)
}

/// Restores a missing or damaged config (see the module docs), and gives every key file a
/// copy of it. With `rebuild`, a config is written from those parameters when no copy
/// exists; without it, that case is an error that says so.
pub fn repair_config(
    backend: Arc<dyn Backend>,
    password: &[u8],
    rebuild: Option<&InitOptions>,
) -> Result<ConfigRepair> {
    let rt = crate::EngineRuntime::new()?;
    let location = backend.location();
    let listed = rt.block_on(backend.list(FileType::Key))?;
    if listed.is_empty() {
        return Err(EngineError::RepoNotFound(location));
    }
    let config_now: std::result::Result<Bytes, String> =
        match rt.block_on(backend.read(FileType::Config, "")) {
            Ok(b) => Ok(b),
            Err(e) if e.kind == StorageKind::NotFound => Err("missing".into()),
            Err(e) => return Err(e.into()),
        };
    // The repository the config names, if its clear header is still readable.
    let named_id = config_now
        .as_ref()
        .ok()
        .and_then(|b| ConfigFile::peek_repo_id(b).ok());
    let healthy = |k: &MasterKey| {
        config_now
            .as_ref()
            .is_ok_and(|b| ConfigFile::decode(k, b).is_ok())
    };
    let keys = rt.block_on(crate::keyfiles::read_all(&*backend, &listed));
    let copies: Vec<(&str, &[u8])> = keys
        .iter()
        .filter_map(|k| Some((k.name.as_str(), k.usable()?.config.as_deref()?)))
        .collect();
    // The format version the damaged config's clear header names, if it is readable.
    let named_version = config_now
        .as_ref()
        .ok()
        .and_then(|b| ConfigFile::peek_version(b).ok());
    // The copies this key opens that name the repository the damaged config names (if
    // any), with their format versions.
    let opening = |k: &MasterKey| -> Vec<(&str, &[u8], u16)> {
        copies
            .iter()
            .filter_map(|&(name, c)| {
                let cfg = ConfigFile::decode(k, c).ok()?;
                named_id
                    .is_none_or(|id| cfg.repo_id == id)
                    .then_some((name, c, cfg.format_version))
            })
            .collect()
    };
    // The copy to restore: never one of a lower format version than the damaged config's
    // header names (`migrate` raises the version, then the key files' copies: a version 3
    // copy left by an interrupted migration would bring back a config that an older Strata
    // opens, and whose prune deletes the blobs of archived WAL); among the others, the
    // highest version (with the config missing, a copy of the version before a migration
    // may sit beside the migrated one), the first listed of equals.
    let copy_for = |k: &MasterKey| {
        opening(k)
            .into_iter()
            .filter(|&(_, _, v)| named_version.is_none_or(|named| v >= named))
            .rev()
            .max_by_key(|&(_, _, v)| v)
            .map(|(name, c, _)| (name, c))
    };
    // What proves a key is this repository's when the config cannot.
    let samples = rt.block_on(samples(&*backend))?;
    let proven = |k: &MasterKey| samples.is_empty() || samples.iter().any(|s| s.opens_with(k));
    let accept = |k: &MasterKey| -> std::result::Result<(), String> {
        if healthy(k) {
            return Ok(());
        }
        if !proven(k) {
            return Err(
                "its master key opens neither the config nor this repository's snapshots, \
                 index files or packs (a key file of another repository?)"
                    .into(),
            );
        }
        if copy_for(k).is_some() || rebuild.is_some() {
            return Ok(());
        }
        match (opening(k).iter().map(|&(_, _, v)| v).max(), named_version) {
            (Some(highest), Some(named)) => Err(format!(
                "the copies of the config that open with its master key are of format version \
                 {highest} at most, but the damaged config is of version {named}: restoring \
                 one would downgrade the repository (an older Strata would open it and prune \
                 what it does not know)"
            )),
            _ => Err("no copy of the config opens with its master key".into()),
        }
    };
    let key = match rt.block_on(unlock_master_key(&*backend, &listed, password, &accept))? {
        Unlocked::Key { key, .. } => key,
        Unlocked::NoKey { damaged, refused } if refused.is_empty() => {
            return Err(if damaged.is_empty() {
                EngineError::WrongPassword(location)
            } else {
                EngineError::Corrupt(format!(
                    "no intact key file of {location} opens with this password ({})",
                    damaged.join("; ")
                ))
            })
        }
        Unlocked::NoKey { refused, .. } => {
            let how = if rebuild.is_some() {
                ""
            } else {
                "; if no key file has a copy (they were written by a Strata older than key \
                 file version 2), `strata repair config --rebuild` writes a new config"
            };
            return Err(EngineError::Corrupt(format!(
                "the password opens key files, but none restores this repository's config \
                 ({}){how}",
                refused.join("; ")
            )));
        }
    };

    let mut damaged_config = None;
    let state = if healthy(&key) {
        ConfigState::Healthy
    } else {
        let was = match &config_now {
            Ok(b) => {
                damaged_config = Some(hex::encode(b));
                match ConfigFile::decode(&key, b) {
                    Err(e) => format!("damaged ({e})"),
                    Ok(_) => unreachable!("healthy(&key) is false"),
                }
            }
            Err(missing) => missing.clone(),
        };
        let (bytes, state) = match (copy_for(&key), rebuild) {
            (Some((name, c)), _) => (
                c.to_vec(),
                ConfigState::Restored {
                    from_key: name.to_string(),
                    was,
                },
            ),
            (None, Some(opts)) => {
                let (config, bytes) = crate::repository::new_config(opts, &key)?;
                (
                    bytes,
                    ConfigState::Rebuilt {
                        repo_id: config.repo_id.to_hex(),
                        was,
                    },
                )
            }
            (None, None) => unreachable!("accept() took the key only with a copy or --rebuild"),
        };
        // Written over a damaged one in place (atomically, where the storage can); where it
        // cannot be overwritten, the damaged one (its bytes are in the report) goes first.
        let bytes = Bytes::from(bytes);
        if let Err(e) = rt.block_on(backend.write(FileType::Config, "", bytes.clone())) {
            if config_now.is_err() {
                return Err(e.into());
            }
            tracing::warn!("could not write the config over the damaged one ({e}); replacing it");
            rt.block_on(backend.delete(FileType::Config, ""))?;
            rt.block_on(backend.write(FileType::Config, "", bytes))?;
        }
        state
    };

    // The repository opens now: give every intact key file without a copy one, under an
    // exclusive lock (no `key passwd` or `key remove` runs beside it).
    let repo = Repository::open_without_index_on(rt.clone(), backend, password)?;
    let _lock = crate::lock::lock(&repo, "repair config", true)?;
    let current = repo.config_bytes().to_vec();
    let version = repo.config().format_version;
    let mut report = ConfigRepair {
        config: state,
        damaged_config,
        key_files_updated: Vec::new(),
        key_files_skipped: Vec::new(),
    };
    let listed = repo.block_on(repo.backend().list(FileType::Key))?;
    for k in repo.block_on(crate::keyfiles::read_all(&**repo.backend(), &listed)) {
        let Some(kf) = k.usable() else {
            report
                .key_files_skipped
                .push(k.problem().unwrap_or_default());
            continue;
        };
        // A copy of a lower format version than the config (an interrupted `migrate` leaves
        // such copies) is raised: restored later, it would downgrade the repository. Any
        // other copy that is there is never replaced.
        let lower = kf.config.as_deref().is_some_and(|c| {
            ConfigFile::decode(repo.key(), c).is_ok_and(|c| c.format_version < version)
        });
        if kf.config.is_some() && !lower {
            continue;
        }
        let mut kf = kf.clone();
        kf.config = Some(current.clone());
        let new = crate::keys::replace(&repo, &k.name, &kf)?;
        report.key_files_updated.push((k.name, new));
    }
    Ok(report)
}
