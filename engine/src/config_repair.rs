//! Restoring a repository's config, and keeping the copies it is restored from.
//!
//! The config is small and never changes after `init`, but without it no command opens the
//! repository. Every key file written since key file version 2 carries a copy of it (sealed
//! under the master key, like the original, so a copy cannot be forged without it).
//! `repair config`:
//! 1. finds the key file the password opens; the master key it unwraps must open the
//!    config, or, when the config is missing or damaged, a copy in some key file;
//! 2. if the config is missing or damaged, writes that copy as the config; with no copy
//!    anywhere (key files of older versions only), it writes a new config only when asked
//!    to rebuild, with the parameters given (a new repository id; every snapshot stays
//!    readable, since reading needs only the master key);
//! 3. under an exclusive lock, gives every key file that lacks a current copy one: the new
//!    key file (same password wrapping, with the copy) is written before the old one is
//!    deleted.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use strata_format::config::ConfigFile;
use strata_format::crypto::MasterKey;
use strata_format::envelope::EncryptedObject;
use strata_format::id::{Digest, KeyId, RepoId};
use strata_format::keyfile::KeyFile;
use strata_format::snapshot::SnapshotFile;
use strata_storage::{Backend, ErrorKind as StorageKind, FileType};

use crate::repository::{unlock_master_key, verify_name, Unlocked};
use crate::{EngineError, InitOptions, Repository, Result};

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
    /// Key files given a copy of the config: (old name, new name).
    pub key_files_updated: Vec<(String, String)>,
    /// Key files left as they are because they are damaged or unreadable, with why.
    pub key_files_skipped: Vec<String>,
}

/// A key file as read, with the copy it carries.
struct ReadKey {
    name: String,
    file: Option<KeyFile>,
    /// Why it was not usable, if it was not.
    problem: Option<String>,
}

fn read_keys(
    rt: &tokio::runtime::Runtime,
    backend: &dyn Backend,
    keys: &[(String, u64)],
) -> Result<Vec<ReadKey>> {
    let mut out = Vec::new();
    for (name, size) in keys {
        let read = crate::repository::check_size(FileType::Key, name, *size)
            .and_then(|()| Ok(rt.block_on(backend.read(FileType::Key, name))?))
            .and_then(|bytes| {
                verify_name(FileType::Key, name, &bytes)?;
                KeyFile::decode(&bytes).map_err(|e| EngineError::format(format!("keys/{name}"), e))
            });
        out.push(match read {
            Ok(kf) => ReadKey {
                name: name.clone(),
                file: Some(kf),
                problem: None,
            },
            Err(EngineError::Storage(e)) if e.kind != StorageKind::NotFound => {
                return Err(EngineError::Storage(e))
            }
            Err(e) => ReadKey {
                name: name.clone(),
                file: None,
                problem: Some(e.to_string()),
            },
        });
    }
    Ok(out)
}

/// A new config for `--rebuild`, from the given parameters.
fn rebuilt_config(opts: &InitOptions, key: &MasterKey) -> Result<(ConfigFile, Vec<u8>)> {
    let mut rng = rand::thread_rng();
    let mut id = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rng, &mut id);
    let config = ConfigFile {
        repo_id: RepoId(Digest(id)),
        chunker: opts.chunker,
        pack_size: opts.pack_size,
        compression_level: opts.compression_level,
        created_ns: crate::now_ns(),
        db_chunker: opts.db_chunker,
        format_version: strata_format::config::CONFIG_VERSION,
    };
    config
        .validate()
        .map_err(|e| EngineError::format("config", e))?;
    let bytes = config.encode(key, &mut rng);
    Ok((config, bytes))
}

/// A few snapshot files, to prove for a rebuild (where there is no config to prove it)
/// that a master key belongs to this repository.
fn sample_snapshots(rt: &tokio::runtime::Runtime, backend: &dyn Backend) -> Result<Vec<Bytes>> {
    let listed = rt.block_on(backend.list(FileType::Snapshot))?;
    Ok(listed
        .iter()
        .take(8)
        .filter_map(|(name, _)| rt.block_on(backend.read(FileType::Snapshot, name)).ok())
        .collect())
}

/// Restores a missing or damaged config (see the module docs), and gives every key file a
/// copy of it. With `rebuild`, a config is written from those parameters when no copy
/// exists; without it, that case is an error that says so.
pub fn repair_config(
    backend: Arc<dyn Backend>,
    password: &[u8],
    rebuild: Option<&InitOptions>,
) -> Result<ConfigRepair> {
    let rt = crate::repository::runtime()?;
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
    let keys = read_keys(&rt, &*backend, &listed)?;
    let snapshots = match rebuild {
        Some(_) => sample_snapshots(&rt, &*backend)?,
        None => Vec::new(),
    };
    let copies: Vec<(&str, &[u8])> = keys
        .iter()
        .filter_map(|k| Some((k.name.as_str(), k.file.as_ref()?.config.as_deref()?)))
        .collect();
    // Which master key counts as this repository's: one that opens the config, else one
    // that opens a copy, else (rebuilding) one that opens a snapshot.
    let accept = |k: &MasterKey| -> std::result::Result<(), String> {
        let config = match &config_now {
            Ok(b) => ConfigFile::decode(k, b)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(was) => Err(format!("the config is {was}")),
        };
        if config.is_ok()
            || copies.iter().any(|(_, c)| ConfigFile::decode(k, c).is_ok())
            || (rebuild.is_some()
                && (snapshots.is_empty()
                    || snapshots.iter().any(|b| SnapshotFile::decode(k, b).is_ok())))
        {
            return Ok(());
        }
        config
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
            return Err(EngineError::Corrupt(format!(
                "the password opens key files, but their master key opens neither the config \
                 nor any copy of it ({}); with `--rebuild`, a new config is written if the key \
                 opens the repository's snapshots",
                refused.join("; ")
            )))
        }
    };

    let state = match config_now
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|b| ConfigFile::decode(&key, b).map_err(|e| format!("damaged ({e})")))
    {
        Ok(_) => ConfigState::Healthy,
        Err(was) => {
            let copy = copies
                .iter()
                .find(|(_, c)| ConfigFile::decode(&key, c).is_ok());
            let (bytes, state) = match (copy, rebuild) {
                (Some((name, c)), _) => (
                    c.to_vec(),
                    ConfigState::Restored {
                        from_key: name.to_string(),
                        was: was.clone(),
                    },
                ),
                (None, Some(opts)) => {
                    let (config, bytes) = rebuilt_config(opts, &key)?;
                    (
                        bytes,
                        ConfigState::Rebuilt {
                            repo_id: config.repo_id.to_hex(),
                            was: was.clone(),
                        },
                    )
                }
                (None, None) => {
                    return Err(EngineError::Corrupt(format!(
                        "the config of {location} is {was}, and no key file holds a copy of it \
                         (they were written by a Strata older than key file version 2). \
                         `strata repair config --rebuild` writes a new config: every snapshot \
                         stays readable; give the --pack-size and --db-chunk-size the \
                         repository was created with (defaults: 16 MiB, 64 KiB), or new \
                         backups deduplicate less against old ones"
                    )))
                }
            };
            if config_now.is_ok() {
                // Damaged: nothing reads it; the replacement takes its place.
                rt.block_on(backend.delete(FileType::Config, ""))?;
            }
            rt.block_on(backend.write(FileType::Config, "", Bytes::from(bytes)))?;
            state
        }
    };

    // The repository opens now: give every key file a current copy, under an exclusive
    // lock (no `key passwd` or `key remove` runs beside it).
    let repo = Repository::open_without_index(backend, password)?;
    let _lock = crate::lock::lock(&repo, "repair config", true)?;
    let current = repo.config_bytes().to_vec();
    let mut report = ConfigRepair {
        config: state,
        key_files_updated: Vec::new(),
        key_files_skipped: Vec::new(),
    };
    for k in read_keys(
        &rt,
        &**repo.backend(),
        &rt.block_on(repo.backend().list(FileType::Key))?,
    )? {
        let Some(mut kf) = k.file else {
            report.key_files_skipped.push(format!(
                "keys/{}: {}",
                k.name,
                k.problem.unwrap_or_default()
            ));
            continue;
        };
        if kf.config.as_deref() == Some(&current[..]) {
            continue;
        }
        kf.config = Some(current.clone());
        let bytes = kf.encode();
        let new = KeyId(Digest::of_stored(&bytes)).to_hex();
        repo.block_on(
            repo.backend()
                .write(FileType::Key, &new, Bytes::from(bytes)),
        )?;
        // The new file first, then the old one goes.
        repo.block_on(repo.backend().delete(FileType::Key, &k.name))?;
        report.key_files_updated.push((k.name, new));
    }
    Ok(report)
}
