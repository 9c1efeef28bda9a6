//! Adding blobs: deduplicated against the index and the packer, compressed and encrypted
//! on the caller's thread, and appended to the open pack of their kind.

use strata_format::blob::{encode_blob_with, BlobType};
use strata_format::dict::Dictionary;
use strata_format::id::BlobId;

use super::dictionary::{SAMPLE_TARGET, SMALL_BLOB, TRAINING_HOLD};
use super::handle::{Dict, Held, Packer};
use crate::{EngineError, Result};

impl Packer<'_> {
    /// Appends a blob exactly as it is stored elsewhere (verified by the caller), unless
    /// this packer already has it. Returns whether it was added.
    pub fn add_stored(
        &self,
        blob_type: BlobType,
        id: BlobId,
        raw_length: u32,
        stored: &[u8],
    ) -> Result<bool> {
        debug_assert!(self.repack);
        if !self
            .state
            .lock()
            .expect("no panics while locked")
            .pending
            .insert(id)
        {
            return Ok(false);
        }
        self.check_poisoned()?;
        drop(self.gate.lock().expect("no panics while locked"));
        self.append(blob_type, id, raw_length, stored)?;
        Ok(true)
    }

    /// Whether the repository or this packer already has the blob.
    pub fn has(&self, id: &BlobId) -> bool {
        self.repo.index().contains(id)
            || self
                .state
                .lock()
                .expect("no panics while locked")
                .pending
                .contains(id)
    }

    /// Adds a blob unless it is already known. Returns whether it was new.
    pub fn add(&self, blob_type: BlobType, id: BlobId, plain: &[u8]) -> Result<bool> {
        if plain.len() > strata_format::MAX_OBJECT_SIZE {
            return Err(EngineError::Invalid(format!(
                "{} blob of {} bytes exceeds the format's limit of {} bytes",
                blob_type.name(),
                plain.len(),
                strata_format::MAX_OBJECT_SIZE
            )));
        }
        // A stopped backup stops reading its sources too.
        self.check_poisoned()?;
        if self.repo.index().contains(&id) {
            return Ok(false);
        }
        let small = blob_type == BlobType::Data && plain.len() <= SMALL_BLOB;
        let dict = {
            let mut s = self.state.lock().expect("no panics while locked");
            if !s.pending.insert(id) {
                return Ok(false);
            }
            match &mut s.dict {
                Dict::On(d) if small => Some(d.clone()),
                // Held while training, up to a bound; past it, stored without.
                Dict::Training(held) if small && held.data.len() < TRAINING_HOLD => {
                    held.push(id, plain);
                    return Ok(true);
                }
                Dict::Collecting(held) if small => {
                    held.push(id, plain);
                    if held.data.len() < SAMPLE_TARGET {
                        return Ok(true);
                    }
                    let held = std::mem::take(held);
                    s.dict = Dict::Training(Held::default());
                    drop(s);
                    self.train_and_store(held)?;
                    return Ok(true);
                }
                _ => None,
            }
        };
        self.store(blob_type, id, plain, dict.as_deref())?;
        Ok(true)
    }

    /// Compresses, encrypts and appends a blob already marked pending.
    pub(super) fn store(
        &self,
        blob_type: BlobType,
        id: BlobId,
        plain: &[u8],
        dict: Option<&Dictionary>,
    ) -> Result<()> {
        self.check_poisoned()?;
        let level = self.repo.config().compression_level;
        // Wait here while a full pack waits for the uploader (see `send`).
        drop(self.gate.lock().expect("no panics while locked"));
        let stored = encode_blob_with(
            self.repo.key(),
            &mut rand::thread_rng(),
            blob_type,
            id,
            plain,
            level,
            dict,
        );
        if self.dry_run {
            let mut s = self.state.lock().expect("no panics while locked");
            s.stats.bytes_added += stored.len() as u64;
            s.stats.raw_added += plain.len() as u64;
            match blob_type {
                BlobType::Data => s.stats.data_blobs += 1,
                BlobType::Tree => s.stats.tree_blobs += 1,
                BlobType::Dictionary => {}
            }
            return Ok(());
        }
        self.append(blob_type, id, plain.len() as u32, &stored)
    }

    /// Appends a stored blob to the open pack of its kind, sending the pack when full.
    pub(super) fn append(
        &self,
        blob_type: BlobType,
        id: BlobId,
        raw_length: u32,
        stored: &[u8],
    ) -> Result<()> {
        let full = {
            let mut s = self.state.lock().expect("no panics while locked");
            s.stats.bytes_added += stored.len() as u64;
            s.stats.raw_added += raw_length as u64;
            // Metadata packs hold trees (and dictionaries, though new ones get a pack of
            // their own: see `store_dictionary`).
            let builder = match blob_type {
                BlobType::Data => {
                    s.stats.data_blobs += 1;
                    &mut s.data
                }
                BlobType::Tree => {
                    s.stats.tree_blobs += 1;
                    &mut s.tree
                }
                BlobType::Dictionary => &mut s.tree,
            };
            let added = builder
                .add(blob_type, id, raw_length, stored)
                .and_then(|_| {
                    if builder.len() >= self.repo.config().pack_size as u64 {
                        builder.finish(self.repo.key(), &mut rand::thread_rng())
                    } else {
                        Ok(None)
                    }
                });
            added.map_err(|e| self.poison(e))?
        };
        if let Some(pack) = full {
            self.send(pack)?;
        }
        Ok(())
    }
}
