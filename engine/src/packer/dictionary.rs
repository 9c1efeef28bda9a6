//! The dictionary for small data blobs: trained from the first ones a backup holds back,
//! stored and indexed before any blob compressed against it.

use std::sync::Arc;

use strata_format::blob::{encode_blob_with, BlobType};
use strata_format::dict::Dictionary;
use strata_format::id::BlobId;
use strata_format::index::IndexPack;
use strata_storage::FileType;

use super::handle::{Dict, Held, Packer};
use crate::spool::SpoolPack;
use crate::Result;

/// Data blobs up to this size are compressed against the repository's dictionary.
pub(super) const SMALL_BLOB: usize = 64 << 10;
/// Bytes of small blobs held back as samples before a dictionary is trained.
pub(super) const SAMPLE_TARGET: usize = 4 << 20;
/// Most bytes of small blobs held back while a dictionary is being trained.
pub(super) const TRAINING_HOLD: usize = 16 << 20;
/// Largest dictionary trained (zstd's default).
const DICT_SIZE: usize = 110 << 10;

impl Packer<'_> {
    /// Trains a dictionary from the held-back small blobs, stores it, and stores the blobs
    /// compressed against it. If training fails the blobs are stored without one.
    pub(super) fn train_and_store(&self, held: Held) -> Result<()> {
        let trained = Dictionary::train(&held.data, &held.sizes, DICT_SIZE);
        let dict = match trained {
            // Blobs name their dictionary by its 32-bit id: never store a second one with
            // an id the repository already uses.
            Ok(d) if self.repo.dictionaries().get(d.id()).is_some() => {
                tracing::warn!("trained dictionary id {} is taken; none used", d.id());
                None
            }
            Ok(d) => {
                let d = Arc::new(d);
                let id = self.repo.key().blob_id(d.bytes());
                let fresh = !self.repo.index().contains(&id)
                    && self
                        .state
                        .lock()
                        .expect("no panics while locked")
                        .pending
                        .insert(id);
                if fresh {
                    if let Err(e) = self.store_dictionary(id, &d) {
                        self.state.lock().expect("no panics while locked").dict = Dict::Off;
                        return Err(self.poison(e));
                    }
                }
                tracing::debug!(id = d.id(), bytes = d.bytes().len(), "trained a dictionary");
                Some(d)
            }
            Err(e) => {
                tracing::warn!("no dictionary for small blobs: {e}");
                None
            }
        };
        let late = {
            let mut s = self.state.lock().expect("no panics while locked");
            let next = match &dict {
                Some(d) => Dict::On(d.clone()),
                None => Dict::Off,
            };
            match std::mem::replace(&mut s.dict, next) {
                Dict::Training(late) => late,
                _ => Held::default(),
            }
        };
        self.store_held(held, dict.as_deref())?;
        self.store_held(late, dict.as_deref())
    }

    /// Stores a new dictionary in a pack of its own and indexes it, before any blob
    /// compressed against it can be stored: no index may ever list such a blob while the
    /// dictionary it needs is not durable and indexed.
    fn store_dictionary(&self, id: BlobId, dict: &Dictionary) -> Result<()> {
        let mut rng = rand::thread_rng();
        let key = self.repo.key();
        let level = self.repo.config().compression_level;
        let stored = encode_blob_with(
            key,
            &mut rng,
            BlobType::Dictionary,
            id,
            dict.bytes(),
            level,
            None,
        );
        let mut pack = SpoolPack::new(self.repo.backend().clone());
        pack.add(BlobType::Dictionary, id, dict.bytes().len() as u32, &stored)?;
        let mut finished = pack.finish(key, &mut rng)?.expect("holds the dictionary");
        self.repo.block_on(self.repo.backend().write_file(
            FileType::Pack,
            &finished.id.to_hex(),
            finished.path(),
        ))?;
        let indexed = IndexPack {
            id: finished.id,
            size: finished.size,
            blobs: std::mem::take(&mut finished.blobs),
        };
        self.write_index(vec![indexed])?;
        let mut s = self.state.lock().expect("no panics while locked");
        s.stats.bytes_added += stored.len() as u64;
        s.stats.raw_added += dict.bytes().len() as u64;
        Ok(())
    }

    /// Stores held-back blobs, compressed against `dict` if given.
    pub(super) fn store_held(&self, held: Held, dict: Option<&Dictionary>) -> Result<()> {
        let mut pos = 0;
        for (id, size) in held.blobs.into_iter().zip(held.sizes) {
            self.store(BlobType::Data, id, &held.data[pos..pos + size], dict)?;
            pos += size;
        }
        Ok(())
    }
}
