//! The handle of an open repository: what it holds, and access to it.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::config::ConfigFile;
use strata_format::crypto::MasterKey;
use strata_format::dict::Dictionaries;
use strata_storage::Backend;

use crate::index::MasterIndex;
use crate::runtime::EngineRuntime;

/// An open repository: its storage, its keys, its config and its index.
pub struct Repository {
    pub(super) backend: Arc<dyn Backend>,
    pub(super) rt: EngineRuntime,
    pub(super) key: MasterKey,
    /// The key file (`keys/<name>`) the password opened.
    pub(super) key_name: String,
    pub(super) config: ConfigFile,
    /// The config file's stored bytes.
    pub(super) config_bytes: Bytes,
    pub(super) index: MasterIndex,
    /// Dictionaries for small data blobs, loaded with an index.
    pub(super) dicts: std::sync::OnceLock<Dictionaries>,
    pub(super) metadata_only: bool,
    /// Uploads in flight at once (packs being written to storage).
    pub(super) connections: usize,
    /// Whether storage is reached over a network (not a local directory).
    pub(super) remote: bool,
    /// The lock this handle took, once it took one ([`crate::lock`] checks it before
    /// writes and deletes).
    pub(super) lock_slot: crate::lock::LockSlot,
    /// Metadata packs read whole, for the trees in them.
    pub(super) metadata_packs: crate::packread::MetadataPacks,
    /// Index and snapshot listings started while the lock was confirmed.
    pub(super) early_listings: super::listings::EarlyListings,
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

    /// How many pack reads restore and `check --read-data` keep in flight: one per core on
    /// a local disk; over a network, enough to hide the round trips (four per connection,
    /// at least one per core).
    pub fn read_parallelism(&self) -> usize {
        let cores = rayon::current_num_threads();
        if self.remote {
            cores.max(self.connections * 4)
        } else {
            cores
        }
    }

    /// Runs `f`, whose parallel iterators read packs, on [`Repository::read_parallelism`]
    /// threads: the global pool on a local disk, a pool of its own over a network (its
    /// threads mostly wait for the network, so there are more of them than cores).
    pub(crate) fn with_read_threads<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let threads = self.read_parallelism();
        if threads <= rayon::current_num_threads() {
            return f();
        }
        match rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("strata-read-{i}"))
            .build()
        {
            Ok(pool) => pool.install(f),
            Err(e) => {
                tracing::debug!("no pool of {threads} threads for reading packs ({e})");
                f()
            }
        }
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

    /// Whether only the metadata part of the index was loaded ([`Repository::open_metadata`]).
    pub fn index_is_metadata_only(&self) -> bool {
        self.metadata_only
    }

    /// The dictionaries for small data blobs (empty until an index was loaded).
    pub fn dictionaries(&self) -> &Dictionaries {
        self.dicts.get().unwrap_or(Dictionaries::none())
    }
}
