//! Listings of index files and snapshots started early, while the lock is being confirmed.
//!
//! Over a network each listing costs round trips (three over SFTP: open, read, read to the
//! end). An operation lists the lock directory after writing its lock, then the index
//! files, then the snapshots, one after another. Once its lock file is durable, a prune
//! running beside it may still replace index files and snapshots (spec/prune.md), but the
//! readers list again when a listed file is gone (and a repair, exclusive, is found by the
//! lock check, and then the early listings are dropped). So the listings start as soon as
//! the lock is written and run beside its check.
//!
//! Each early listing is used once, by the first reader of that type, and only while the
//! lock it was made under is held; every write or delete of an index file or snapshot
//! through this handle drops what is left, so no reader sees a listing older than this
//! handle's own changes, and a new lock drops what an older one left.

use std::collections::HashMap;
use std::sync::Mutex;

use strata_storage::FileType;
use tokio::task::JoinHandle;

use crate::{Repository, Result};

type Listing = strata_storage::Result<Vec<(String, u64)>>;

/// Listings started in the background, by type.
#[derive(Default)]
pub(crate) struct EarlyListings {
    started: Mutex<HashMap<FileType, JoinHandle<Listing>>>,
}

impl EarlyListings {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileType, JoinHandle<Listing>>> {
        self.started.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for EarlyListings {
    fn drop(&mut self) {
        for (_, task) in self.lock().drain() {
            task.abort();
        }
    }
}

impl Repository {
    /// Starts listing each of `types` in the background (only after this handle's lock
    /// file is durable: see the module's docs).
    pub(crate) fn list_early(&self, types: &[FileType]) {
        let mut started = self.early_listings.lock();
        for &ft in types {
            let backend = self.backend.clone();
            let task = self
                .rt
                .handle()
                .spawn(async move { backend.list(ft).await });
            if let Some(old) = started.insert(ft, task) {
                old.abort();
            }
        }
    }

    /// Drops every early listing (the lock was not confirmed, or the repository changed).
    pub(crate) fn drop_early_listings(&self) {
        for (_, task) in self.early_listings.lock().drain() {
            task.abort();
        }
    }

    /// Every stored object of type `ft` with its size: the early listing if one was
    /// started (once), else a listing now.
    pub(crate) fn list_objects(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        let early = self.early_listings.lock().remove(&ft);
        // Only under the lock it was made under: once that is released or lost, a prune
        // may have changed what it lists.
        if let Some(task) = early.filter(|task| {
            let held = self.lock_slot.holds_lock();
            if !held {
                task.abort();
            }
            held
        }) {
            match self.block_on(task) {
                Ok(listed) => return Ok(listed?),
                // Aborted or panicked in the background: list again here.
                Err(e) => tracing::debug!("early listing of {ft:?} lost ({e}); listing again"),
            }
        }
        Ok(self.block_on(self.backend.list(ft))?)
    }
}
