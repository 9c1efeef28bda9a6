//! Creating a repository, and opening one with a password.

use std::sync::Arc;

use bytes::Bytes;
use strata_format::chunker::ChunkerParams;
use strata_format::config::ConfigFile;
use strata_format::crypto::MasterKey;
use strata_format::id::{Digest, KeyId, RepoId};
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_storage::{Backend, ErrorKind as StorageKind, FileType};

use super::contents::{config_lost, no_key_opens, Contents};
use super::handle::Repository;
use crate::index::MasterIndex;
use crate::keyfiles::{unlock_master_key, Unlocked};
use crate::runtime::EngineRuntime;
use crate::{EngineError, Result};

/// Parameters of a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    /// The chunker for database dumps.
    pub db_chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression_level: i32,
    /// The chunker's seed (part of the master key); `None`: a random one. Two repositories
    /// cut the same content at the same places only with the same seed and parameters
    /// ([`InitOptions::chunk_like`]).
    pub chunker_seed: Option<u64>,
}

impl InitOptions {
    /// These options with `other`'s chunker parameters (files and databases) and seed
    /// (`init --copy-chunker-params`): content backed up into either repository is then
    /// cut at the same places, so that snapshots copied from one to the other deduplicate
    /// against what was backed up into it directly. Blob ids need no shared key for that:
    /// `copy` computes every blob's id in the destination, which is where dedup looks.
    pub fn chunk_like(self, other: &Repository) -> Self {
        InitOptions {
            chunker: other.config().chunker,
            db_chunker: other.config().db_chunker,
            chunker_seed: Some(other.key().chunker_seed),
            ..self
        }
    }
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            chunker: ChunkerParams::FILES,
            db_chunker: ChunkerParams::DATABASE,
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
            chunker_seed: None,
        }
    }
}

impl Repository {
    /// Creates a repository: layout, one key file for `password` (carrying a copy of the
    /// config), and the config. Refuses a location that holds anything of a repository,
    /// whole or in part: a new master key beside old keys, packs and snapshots would make
    /// them unreadable to every command, and `repair index` would delete them.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<RepoId> {
        Self::init_on(&EngineRuntime::new()?, backend, password, opts)
    }

    /// [`Repository::init`] on a given runtime.
    pub fn init_on(
        rt: &EngineRuntime,
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
    ) -> Result<RepoId> {
        let found = rt.block_on(Contents::survey(&*backend))?;
        if !found.is_empty() {
            return Err(EngineError::Invalid(format!(
                "{} already holds a repository, or part of one ({}); `strata init` creates \
                 repositories only where there is none. If its config is missing or damaged, \
                 `strata repair config` restores it; to start afresh, choose an empty location",
                backend.location(),
                found.describe()
            )));
        }
        let mut rng = rand::thread_rng();
        let mut key = MasterKey::random(&mut rng);
        if let Some(seed) = opts.chunker_seed {
            key.chunker_seed = seed;
        }
        let (config, config_bytes) = new_config(opts, &key)?;
        let mut keyfile = KeyFile::wrap(
            &key,
            password,
            opts.kdf,
            &mut rng,
            crate::now_ns(),
            crate::hostname(),
            crate::username(),
        )
        .map_err(|e| EngineError::format("key file", e))?;
        keyfile.config = Some(config_bytes.clone());
        let key_bytes = keyfile.encode();
        let key_id = KeyId(Digest::of_stored(&key_bytes));
        rt.block_on(async {
            backend.create_layout().await?;
            backend
                .write(FileType::Key, &key_id.to_hex(), Bytes::from(key_bytes))
                .await?;
            backend
                .write(FileType::Config, "", Bytes::from(config_bytes))
                .await
        })?;
        Ok(config.repo_id)
    }

    /// Opens a repository and loads its index.
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Self::open_with(backend, password, false)
    }

    /// Opens a repository and loads only the metadata part of its index (trees and
    /// dictionaries): for commands that list and compare snapshots without reading file
    /// content. Reading a data blob through it fails ("not in the index"), and backups
    /// refuse it.
    pub fn open_metadata(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Self::open_with(backend, password, true)
    }

    fn open_with(backend: Arc<dyn Backend>, password: &[u8], metadata_only: bool) -> Result<Self> {
        let mut repo = Self::open_without_index(backend, password)?;
        repo.load_index(metadata_only)?;
        Ok(repo)
    }

    /// Opens a repository without reading its index (for commands that list snapshots).
    pub fn open_without_index(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Self::open_without_index_on(EngineRuntime::new()?, backend, password)
    }

    /// [`Repository::open_without_index`] on a given runtime (see [`EngineRuntime`]).
    pub fn open_without_index_on(
        rt: EngineRuntime,
        backend: Arc<dyn Backend>,
        password: &[u8],
    ) -> Result<Self> {
        let location = backend.location();
        // The config and the key list at once: over a network, one round trip fewer.
        let (config_read, keys_listed) = rt.block_on(async {
            tokio::join!(
                backend.read(FileType::Config, ""),
                backend.list(FileType::Key)
            )
        });
        let config_bytes = match config_read {
            Ok(b) => b,
            Err(e) if e.kind == StorageKind::NotFound => {
                let found = rt.block_on(Contents::survey(&*backend))?;
                return Err(if found.is_empty() {
                    EngineError::RepoNotFound(location)
                } else {
                    config_lost(&location, "is missing", &found)
                });
            }
            Err(e) => return Err(e.into()),
        };
        if let Err(e) = ConfigFile::peek_repo_id(&config_bytes) {
            let found = rt.block_on(Contents::survey(&*backend))?;
            return Err(config_lost(&location, &format!("is damaged ({e})"), &found));
        }
        let keys = keys_listed?;
        if keys.is_empty() {
            return Err(EngineError::Corrupt(format!(
                "repository {location} has no key files"
            )));
        }
        let opens = |k: &MasterKey| {
            ConfigFile::decode(k, &config_bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        let (key, key_name) =
            match rt.block_on(unlock_master_key(&*backend, &keys, password, &opens))? {
                Unlocked::Key { key, name } => (key, name),
                Unlocked::NoKey { damaged, refused } if refused.is_empty() => {
                    return Err(no_key_opens(&location, &damaged))
                }
                Unlocked::NoKey { refused, .. } => {
                    let found = rt.block_on(Contents::survey(&*backend))?;
                    return Err(config_lost(
                        &location,
                        &format!(
                            "does not open with any key this password unwraps ({})",
                            refused.join("; ")
                        ),
                        &found,
                    ));
                }
            };
        let config = ConfigFile::decode(&key, &config_bytes)
            .map_err(|e| EngineError::format("config", e))?;
        let backend_is_local = backend.spool_dir().is_some();
        let remote = backend.is_remote();
        Ok(Repository {
            backend,
            rt,
            key,
            key_name,
            config,
            config_bytes,
            index: MasterIndex::default(),
            dicts: std::sync::OnceLock::new(),
            metadata_only: false,
            // A local disk gains nothing from parallel pack writes (measured in #3); a
            // remote one hides latency with a few.
            connections: if backend_is_local { 1 } else { 2 },
            remote,
            lock_slot: crate::lock::LockSlot::default(),
            metadata_packs: Default::default(),
            early_listings: Default::default(),
        })
    }
}

/// A new config from `opts` (a fresh repository id, the current format version), checked,
/// and its stored bytes sealed under `key`: for `init`, and for `repair config --rebuild`.
pub(crate) fn new_config(opts: &InitOptions, key: &MasterKey) -> Result<(ConfigFile, Vec<u8>)> {
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
