//! Opening, creating and reading a repository.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::blob::{decode_blob_with, BlobHeader, BlobType};
use strata_format::chunker::ChunkerParams;
use strata_format::config::ConfigFile;
use strata_format::crypto::MasterKey;
use strata_format::dict::{Dictionaries, Dictionary, MAX_DICT_SIZE};
use strata_format::envelope::EncryptedObject;
use strata_format::id::{BlobId, Digest, IndexId, KeyId, PackId, RepoId};
use strata_format::index::IndexFile;
use strata_format::keyfile::{KdfParams, KeyFile};
use strata_format::tree::Tree;
use strata_storage::{Backend, ErrorKind as StorageKind, FileType};

use crate::index::{IndexBuilder, MasterIndex};
use crate::keyfiles::{unlock_master_key, Unlocked};
use crate::packread::{Held, PackFile};
use crate::runtime::EngineRuntime;
use crate::stored::{check_size, verify_name};
use crate::{EngineError, Result};

/// How many storage requests run at once when reading many objects.
const READ_CONCURRENCY: usize = 16;

/// Parameters of a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub kdf: KdfParams,
    pub chunker: ChunkerParams,
    /// The chunker for database dumps.
    pub db_chunker: ChunkerParams,
    pub pack_size: u32,
    pub compression_level: i32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            chunker: ChunkerParams::FILES,
            db_chunker: ChunkerParams::DATABASE,
            pack_size: 16 * 1024 * 1024,
            compression_level: 3,
        }
    }
}

/// An open repository: its storage, its keys, its config and its index.
pub struct Repository {
    backend: Arc<dyn Backend>,
    rt: EngineRuntime,
    key: MasterKey,
    /// The key file (`keys/<name>`) the password opened.
    key_name: String,
    config: ConfigFile,
    /// The config file's stored bytes.
    config_bytes: Bytes,
    index: MasterIndex,
    /// Dictionaries for small data blobs, loaded with an index.
    dicts: std::sync::OnceLock<Dictionaries>,
    metadata_only: bool,
    /// Uploads in flight at once (packs being written to storage).
    connections: usize,
    /// The lock this handle took, once it took one ([`crate::lock`] checks it before
    /// writes and deletes).
    lock_slot: crate::lock::LockSlot,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("id", &self.config.repo_id)
            .finish()
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
        let key = MasterKey::random(&mut rng);
        let mut repo_id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rng, &mut repo_id);
        let config = ConfigFile {
            repo_id: RepoId(Digest(repo_id)),
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
        let config_bytes = config.encode(&key, &mut rng);
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

    /// Loads the index (whole, or only its metadata part) and the dictionaries into a
    /// repository opened without one. Commands that take a lock load the index after the
    /// lock is held, so that no prune can change the repository under the index they use.
    pub fn load_index(&mut self, metadata_only: bool) -> Result<()> {
        let index = self.read_index(metadata_only)?;
        self.dicts = std::sync::OnceLock::new();
        self.load_dictionaries(&index);
        self.index = index;
        self.metadata_only = metadata_only;
        Ok(())
    }

    /// Loads what `op` needs of the index (see [`crate::Operation::index`]).
    pub fn load_index_for(&mut self, op: crate::Operation) -> Result<()> {
        match op.index() {
            crate::IndexNeed::None => Ok(()),
            crate::IndexNeed::Metadata => self.load_index(true),
            crate::IndexNeed::Full => self.load_index(false),
        }
    }

    /// Whether only the metadata part of the index was loaded ([`Repository::open_metadata`]).
    pub fn index_is_metadata_only(&self) -> bool {
        self.metadata_only
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
        let config_bytes = match rt.block_on(backend.read(FileType::Config, "")) {
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
        let keys = rt.block_on(backend.list(FileType::Key))?;
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
            lock_slot: crate::lock::LockSlot::default(),
        })
    }

    /// The config file as stored (what key files keep a copy of).
    pub fn config_bytes(&self) -> &Bytes {
        &self.config_bytes
    }

    /// Runs a storage future to completion from synchronous code.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// How many packs are uploaded at once (`--connections`).
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// Sets how many packs are uploaded at once (at least one).
    pub fn set_connections(&mut self, n: usize) {
        self.connections = n.max(1);
    }

    /// A handle to the storage runtime, for threads that outlive a borrow of `self`.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// The runtime this repository runs its storage futures on (shared: a lock guard keeps
    /// it to remove its lock).
    pub fn runtime(&self) -> &EngineRuntime {
        &self.rt
    }

    /// Where [`crate::lock`] registers the lock this handle took.
    pub(crate) fn lock_slot(&self) -> &crate::lock::LockSlot {
        &self.lock_slot
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The name of the key file the password opened (its id).
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn config(&self) -> &ConfigFile {
        &self.config
    }

    pub fn index(&self) -> &MasterIndex {
        &self.index
    }

    /// The dictionaries for small data blobs (empty until an index was loaded).
    pub fn dictionaries(&self) -> &Dictionaries {
        self.dicts.get().unwrap_or(Dictionaries::none())
    }

    /// Loads every dictionary blob `index` lists (once per repository handle; `check`
    /// calls it with the index it builds). A dictionary that cannot be read is skipped with
    /// a warning: only the blobs compressed against it become unreadable, and they say so.
    pub fn load_dictionaries(&self, index: &MasterIndex) {
        if self.dicts.get().is_some() {
            return;
        }
        let mut dicts = Dictionaries::default();
        for (id, loc) in index.iter() {
            if loc.blob_type != BlobType::Dictionary {
                continue;
            }
            let loaded = self
                .read_blob_in(index, BlobType::Dictionary, &id)
                .and_then(|bytes| {
                    Dictionary::from_bytes(bytes)
                        .map_err(|e| EngineError::format(format!("dictionary blob {id}"), e))
                });
            match loaded {
                Ok(d) => dicts.add(std::sync::Arc::new(d)),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let _ = self.dicts.set(dicts);
    }

    /// Reads an object and checks that its bytes hash to its name.
    pub fn read_verified(&self, ft: FileType, name: &str) -> Result<Bytes> {
        let bytes = self.block_on(self.backend.read(ft, name))?;
        verify_name(ft, name, &bytes)?;
        Ok(bytes)
    }

    /// Reads many objects concurrently, verifying each against its name. Results are in
    /// the order of `names`.
    pub fn read_many_verified(&self, ft: FileType, names: &[String]) -> Vec<Result<Bytes>> {
        self.for_each_name(names, READ_CONCURRENCY, move |backend, name| async move {
            let bytes = backend.read(ft, &name).await?;
            verify_name(ft, &name, &bytes)?;
            Ok(bytes)
        })
    }

    /// Runs `op` on each name as a storage task, at most `limit` at a time; the results
    /// are in the order of `names`.
    pub(crate) fn for_each_name<T, F, Fut>(
        &self,
        names: &[String],
        limit: usize,
        op: F,
    ) -> Vec<Result<T>>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Backend>, String) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let sem = Arc::new(tokio::sync::Semaphore::new(limit));
        self.block_on(async {
            let handles: Vec<_> = names
                .iter()
                .map(|name| {
                    let sem = sem.clone();
                    let task = op(self.backend.clone(), name.clone());
                    tokio::spawn(async move {
                        let _permit = sem.acquire().await.expect("semaphore is never closed");
                        task.await
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(handles.len());
            for h in handles {
                out.push(h.await.unwrap_or_else(|e| {
                    Err(EngineError::Internal(format!("storage task failed: {e}")))
                }));
            }
            out
        })
    }

    /// Like [`Repository::read_many_verified`] for `(name, size)` pairs from a listing,
    /// refusing objects too large to be valid without reading them.
    pub fn read_many_listed(&self, ft: FileType, listed: &[(String, u64)]) -> Vec<Result<Bytes>> {
        let sized: Vec<Result<()>> = listed
            .iter()
            .map(|(n, size)| check_size(ft, n, *size))
            .collect();
        let to_read: Vec<String> = listed
            .iter()
            .zip(&sized)
            .filter(|(_, ok)| ok.is_ok())
            .map(|((n, _), _)| n.clone())
            .collect();
        let mut reads = self.read_many_verified(ft, &to_read).into_iter();
        sized
            .into_iter()
            .map(|ok| match ok {
                Ok(()) => reads
                    .next()
                    .expect("one read per object within the size limit"),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Loads and decrypts an encrypted object stored under its hash.
    pub fn load_object<T: EncryptedObject>(&self, ft: FileType, name: &str) -> Result<T> {
        let bytes = self.read_verified(ft, name)?;
        T::decode(&self.key, &bytes).map_err(|e| EngineError::format(ft.path(name), e))
    }

    /// Encrypts and stores an object under the hash of its stored bytes.
    pub fn save_object<T: EncryptedObject>(&self, ft: FileType, value: &T) -> Result<Digest> {
        Ok(self.save_object_sized(ft, value)?.0)
    }

    /// Like [`Repository::save_object`], also returning the stored size.
    pub fn save_object_sized<T: EncryptedObject>(
        &self,
        ft: FileType,
        value: &T,
    ) -> Result<(Digest, u64)> {
        // Index files and snapshots name data: only under a lock that is still held.
        if matches!(ft, FileType::Index | FileType::Snapshot) {
            self.lock_slot.before_write()?;
        }
        let bytes = value.encode(&self.key, &mut rand::thread_rng());
        let id = Digest::of_stored(&bytes);
        let size = bytes.len() as u64;
        self.block_on(self.backend.write(ft, &id.to_hex(), Bytes::from(bytes)))?;
        Ok((id, size))
    }

    /// Reads and decodes the index files a few at a time (in parallel within a batch),
    /// handing each to `f`, so that only a batch is in memory at once.
    pub fn for_each_index_file(&self, mut f: impl FnMut(IndexId, Result<IndexFile>)) -> Result<()> {
        const BATCH: usize = 8;
        let listed = self.block_on(self.backend.list(FileType::Index))?;
        for batch in listed.chunks(BATCH) {
            let reads = self.read_many_listed(FileType::Index, batch);
            for ((name, _), r) in batch.iter().zip(reads) {
                let id = name.parse::<IndexId>().unwrap_or_default();
                let file = r.and_then(|b| {
                    IndexFile::decode(&self.key, &b)
                        .map_err(|e| EngineError::format(format!("index/{name}"), e))
                });
                f(id, file);
            }
        }
        Ok(())
    }

    fn read_index(&self, metadata_only: bool) -> Result<MasterIndex> {
        let mut builder = IndexBuilder::new(metadata_only);
        let mut first_error = None;
        self.for_each_index_file(|id, file| match file {
            Ok(file) => builder.add_file(id, file),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        })?;
        match first_error {
            // A storage failure stays what it is; damage gets the way out.
            Some(e) if e.kind() == crate::ErrorKind::Corrupt => Err(EngineError::Corrupt(format!(
                "{e}; rebuild the index from the packs with `strata repair index`"
            ))),
            Some(e) => Err(e),
            None => Ok(builder.build()),
        }
    }

    /// Reads one blob through the index, verifying its id.
    pub fn read_blob(&self, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        self.read_blob_in(&self.index, blob_type, id)
    }

    /// Reads one blob through the given index (for `check`, which builds its own).
    pub fn read_blob_in(
        &self,
        index: &MasterIndex,
        blob_type: BlobType,
        id: &BlobId,
    ) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| {
            EngineError::Corrupt(format!(
                "{} blob {id} is not in the index",
                blob_type.name()
            ))
        })?;
        let (pack, size) = index.pack(loc.pack);
        let bytes = PackFile::indexed(&pack, size, Held::Blob(blob_type, *id)).read(
            self,
            loc.offset as u64,
            loc.length as u64,
        )?;
        self.decode_stored_blob(blob_type, id, &pack, &bytes)
    }

    /// Decodes a blob's stored bytes as read from `pack`, verifying its type, id and
    /// content (data blobs may not be longer than the largest chunk).
    pub fn decode_stored_blob(
        &self,
        blob_type: BlobType,
        id: &BlobId,
        pack: &PackId,
        bytes: &[u8],
    ) -> Result<Vec<u8>> {
        let header = BlobHeader::parse(bytes).map_err(|e| {
            EngineError::format(format!("{} blob {id} in pack {pack}", blob_type.name()), e)
        })?;
        if blob_type == BlobType::Data && header.raw_length > self.config.max_chunk_size() {
            return Err(EngineError::Corrupt(format!(
                "data blob {id} in pack {pack} declares {} bytes, more than the largest chunk",
                header.raw_length
            )));
        }
        if blob_type == BlobType::Dictionary && header.raw_length as usize > MAX_DICT_SIZE {
            return Err(EngineError::Corrupt(format!(
                "dictionary blob {id} in pack {pack} declares {} bytes, more than a dictionary",
                header.raw_length
            )));
        }
        decode_blob_with(
            &self.key,
            self.dictionaries(),
            Some((blob_type, *id)),
            bytes,
        )
        .map(|(_, plain)| plain)
        .map_err(|e| {
            EngineError::format(format!("{} blob {id} in pack {pack}", blob_type.name()), e)
        })
    }

    /// Loads and decodes a tree blob.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.load_tree_in(&self.index, id)
    }

    /// Loads a tree through the given index.
    pub fn load_tree_in(&self, index: &MasterIndex, id: &BlobId) -> Result<Tree> {
        let plain = self.read_blob_in(index, BlobType::Tree, id)?;
        Tree::decode(&plain).map_err(|e| EngineError::format(format!("tree {id}"), e))
    }
}

/// What a location holds of a repository (counts of listed objects).
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub config: bool,
    pub keys: usize,
    pub packs: usize,
    pub index_files: usize,
    pub snapshots: usize,
}

impl Contents {
    /// Lists what is there (a missing root is an empty location).
    pub(crate) async fn survey(backend: &dyn Backend) -> Result<Contents> {
        let count = |ft| async move {
            match backend.list(ft).await {
                Ok(l) => Ok(l.len()),
                Err(e) if e.kind == StorageKind::NotFound => Ok(0),
                Err(e) => Err(EngineError::from(e)),
            }
        };
        Ok(Contents {
            config: match backend.stat(FileType::Config, "").await {
                Ok(s) => s.is_some(),
                Err(e) if e.kind == StorageKind::NotFound => false,
                Err(e) => return Err(e.into()),
            },
            keys: count(FileType::Key).await?,
            packs: count(FileType::Pack).await?,
            index_files: count(FileType::Index).await?,
            snapshots: count(FileType::Snapshot).await?,
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.config && self.keys + self.packs + self.index_files + self.snapshots == 0
    }

    /// "a config, 2 key files, 14 packs, 3 index files and 3 snapshots".
    pub(crate) fn describe(&self) -> String {
        let plural = |n: usize, one: &str| match n {
            1 => format!("1 {one}"),
            n => format!("{n} {one}s"),
        };
        let mut parts = Vec::new();
        if self.config {
            parts.push("a config".to_string());
        }
        for (n, what) in [
            (self.keys, "key file"),
            (self.packs, "pack"),
            (self.index_files, "index file"),
            (self.snapshots, "snapshot"),
        ] {
            if n > 0 {
                parts.push(plural(n, what));
            }
        }
        match parts.len() {
            0 => "nothing".to_string(),
            1 => parts.remove(0),
            n => {
                let last = parts.remove(n - 1);
                format!("{} and {last}", parts.join(", "))
            }
        }
    }
}

/// The error for a repository whose config is missing or unreadable while the rest of it
/// is there: never "no repository" (which invites `init`).
fn config_lost(location: &str, what: &str, found: &Contents) -> EngineError {
    EngineError::Corrupt(format!(
        "the config of the repository at {location} {what}; the rest of it is still there \
         ({}). Restore the config with `strata repair config` (from the copy each key file \
         keeps); do not run `strata init` here",
        found.describe()
    ))
}

/// The error when no key file opens with the password: a wrong password, unless key files
/// were damaged (then one of them may have been the password's).
fn no_key_opens(location: &str, damaged: &[String]) -> EngineError {
    if damaged.is_empty() {
        return EngineError::WrongPassword(location.to_string());
    }
    EngineError::Corrupt(format!(
        "no intact key file of {location} opens with this password, and {} damaged ({}): if \
         the password is right, its key file is among them; restore it from a copy of the \
         repository, or open with another password",
        if damaged.len() == 1 {
            "one is"
        } else {
            "some are"
        },
        damaged.join("; ")
    ))
}
