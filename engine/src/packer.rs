//! Packing blobs: deduplicate, compress + encrypt (on the caller's thread), append to the
//! open pack of the blob's type, and hand full packs to uploader threads over a bounded
//! queue. `finish` flushes, waits for every upload, and returns what the index must record.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender};
use strata_format::blob::{encode_blob, BlobType};
use strata_format::id::{BlobId, Digest, PackId};
use strata_format::index::IndexPack;
use strata_format::pack::PackBuilder;
use strata_storage::FileType;

use crate::{EngineError, Repository, Result};

const UPLOADERS: usize = 2;

/// What a packer added to the repository.
#[derive(Debug, Default, Clone, Copy)]
pub struct PackerStats {
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Stored bytes of new blobs (after compression and encryption).
    pub bytes_added: u64,
    /// Plaintext bytes of new blobs.
    pub raw_added: u64,
}

struct State {
    data: PackBuilder,
    tree: PackBuilder,
    pending: HashSet<BlobId>,
    stats: PackerStats,
}

struct Shared {
    error: Mutex<Option<EngineError>>,
    uploaded: Mutex<Vec<IndexPack>>,
}

/// Packs blobs for one writer (a backup). Safe to share between threads.
pub(crate) struct Packer<'r> {
    repo: &'r Repository,
    state: Mutex<State>,
    tx: Option<Sender<(Vec<u8>, Vec<strata_format::pack::PackBlob>)>>,
    uploaders: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl<'r> Packer<'r> {
    pub fn new(repo: &'r Repository) -> Self {
        let (tx, rx) = bounded::<(Vec<u8>, Vec<strata_format::pack::PackBlob>)>(0);
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
            uploaded: Mutex::new(Vec::new()),
        });
        let uploaders = (0..UPLOADERS)
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                let backend = repo.backend().clone();
                let handle = repo.handle();
                std::thread::spawn(move || {
                    for (bytes, blobs) in rx {
                        let id = PackId(Digest::of_stored(&bytes));
                        let size = bytes.len() as u64;
                        let _span = tracing::debug_span!("upload pack", pack = %id, size).entered();
                        match handle.block_on(backend.write(
                            FileType::Pack,
                            &id.to_hex(),
                            Bytes::from(bytes),
                        )) {
                            Ok(()) => shared
                                .uploaded
                                .lock()
                                .expect("no panics while locked")
                                .push(IndexPack { id, size, blobs }),
                            Err(e) => {
                                shared
                                    .error
                                    .lock()
                                    .expect("no panics while locked")
                                    .get_or_insert(e.into());
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        Packer {
            repo,
            state: Mutex::new(State {
                data: new_builder(repo),
                tree: new_builder(repo),
                pending: HashSet::new(),
                stats: PackerStats::default(),
            }),
            tx: Some(tx),
            uploaders,
            shared,
        }
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
        if self.repo.index().contains(&id) {
            return Ok(false);
        }
        if !self
            .state
            .lock()
            .expect("no panics while locked")
            .pending
            .insert(id)
        {
            return Ok(false);
        }
        let level = self.repo.config().compression_level;
        let stored = encode_blob(
            self.repo.key(),
            &mut rand::thread_rng(),
            blob_type,
            id,
            plain,
            level,
        );
        let full = {
            let mut s = self.state.lock().expect("no panics while locked");
            s.stats.bytes_added += stored.len() as u64;
            s.stats.raw_added += plain.len() as u64;
            let builder = match blob_type {
                BlobType::Data => {
                    s.stats.data_blobs += 1;
                    &mut s.data
                }
                BlobType::Tree => {
                    s.stats.tree_blobs += 1;
                    &mut s.tree
                }
            };
            builder.add(blob_type, id, plain.len() as u32, &stored);
            if builder.len() >= self.repo.config().pack_size as usize {
                Some(std::mem::replace(builder, new_builder(self.repo)))
            } else {
                None
            }
        };
        if let Some(pack) = full {
            self.send(pack)?;
        }
        Ok(true)
    }

    fn send(&self, pack: PackBuilder) -> Result<()> {
        self.check_error()?;
        let finished = pack.finish(self.repo.key(), &mut rand::thread_rng());
        let tx = self.tx.as_ref().expect("sender lives until finish");
        if tx.send(finished).is_err() {
            self.check_error()?;
            return Err(EngineError::Invalid("pack uploaders stopped".into()));
        }
        Ok(())
    }

    fn check_error(&self) -> Result<()> {
        match self
            .shared
            .error
            .lock()
            .expect("no panics while locked")
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Flushes open packs and waits until every pack is durable.
    pub fn finish(mut self) -> Result<(Vec<IndexPack>, PackerStats)> {
        let (data, tree, stats) = {
            let mut s = self.state.lock().expect("no panics while locked");
            (
                std::mem::take(&mut s.data),
                std::mem::take(&mut s.tree),
                s.stats,
            )
        };
        for pack in [data, tree] {
            if !pack.is_empty() {
                self.send(pack)?;
            }
        }
        drop(self.tx.take());
        for h in self.uploaders.drain(..) {
            h.join()
                .map_err(|_| EngineError::Invalid("a pack uploader panicked".into()))?;
        }
        self.check_error()?;
        let packs =
            std::mem::take(&mut *self.shared.uploaded.lock().expect("no panics while locked"));
        Ok((packs, stats))
    }
}

/// A pack builder that never reallocates: room for a full pack plus the largest blob (the
/// pages are only touched as blobs arrive).
fn new_builder(repo: &Repository) -> PackBuilder {
    let config = repo.config();
    PackBuilder::with_capacity(config.pack_size as usize + config.chunker.max_size as usize + 4096)
}

impl Drop for Packer<'_> {
    fn drop(&mut self) {
        drop(self.tx.take());
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
    }
}
