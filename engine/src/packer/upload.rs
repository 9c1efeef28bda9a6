//! Starting a packer with its uploader threads, handing them full packs over a rendezvous
//! channel, and finishing: flushing the open packs and waiting until every one is durable.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::bounded;
use strata_format::blob::BlobType;
use strata_format::index::IndexPack;
use strata_storage::FileType;

use super::handle::{Dict, Held, Packer, PackerStats, Shared, State};
use crate::spool::{Finished, SpoolPack};
use crate::{EngineError, Repository, Result};

impl<'r> Packer<'r> {
    /// A packer for a backup.
    pub fn new(repo: &'r Repository) -> Self {
        Self::with_mode(repo, false, false)
    }

    /// A packer for a backup's dry run: it counts what [`Packer::new`]'s would add, and
    /// writes nothing (no pack, no spool file, no index).
    pub fn dry_run(repo: &'r Repository) -> Self {
        Self::with_mode(repo, false, true)
    }

    /// A packer for blobs copied as stored ([`Packer::add_stored`]) by prune and repair;
    /// [`Packer::finish_repack`] returns the packs for the caller to index.
    pub fn for_repack(repo: &'r Repository) -> Self {
        Self::with_mode(repo, true, false)
    }

    fn with_mode(repo: &'r Repository, repack: bool, dry_run: bool) -> Self {
        let (tx, rx) = bounded::<Finished>(0);
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
            cause: Mutex::new(None),
            uploaded: Mutex::new(Vec::new()),
        });
        let uploaders = (0..if dry_run { 0 } else { repo.connections() })
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                let backend = repo.backend().clone();
                let handle = repo.handle();
                std::thread::spawn(move || {
                    for mut pack in rx {
                        let (id, size) = (pack.id, pack.size);
                        let _span = tracing::debug_span!("upload pack", pack = %id, size).entered();
                        // Packs of trees are kept by a local cache as they are stored.
                        let metadata = !pack.blobs.is_empty()
                            && pack.blobs.iter().all(|b| b.blob_type != BlobType::Data);
                        let name = id.to_hex();
                        let stored = if metadata {
                            handle.block_on(backend.write_metadata_pack(&name, pack.path()))
                        } else {
                            handle.block_on(backend.write_file(FileType::Pack, &name, pack.path()))
                        };
                        match stored {
                            Ok(()) => shared
                                .uploaded
                                .lock()
                                .expect("no panics while locked")
                                .push(IndexPack {
                                    id,
                                    size,
                                    blobs: std::mem::take(&mut pack.blobs),
                                }),
                            Err(e) => {
                                let e = EngineError::from(e);
                                // The cause first: a thread that finds every uploader gone
                                // before the error is taken still names it.
                                shared
                                    .cause
                                    .lock()
                                    .expect("no panics while locked")
                                    .get_or_insert_with(|| (e.kind(), e.to_string()));
                                shared
                                    .error
                                    .lock()
                                    .expect("no panics while locked")
                                    .get_or_insert(e);
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
                data: SpoolPack::new(repo.backend().clone()),
                tree: SpoolPack::new(repo.backend().clone()),
                pending: HashSet::new(),
                stats: PackerStats::default(),
                dict: if repack || dry_run || !repo.config().allows_dictionaries() {
                    Dict::Off
                } else if let Some(d) = repo.dictionaries().iter().last() {
                    Dict::On(d.clone())
                } else {
                    Dict::Collecting(Held::default())
                },
                packs_indexed: 0,
                last_index: Instant::now(),
            }),
            tx: Some(tx),
            uploaders,
            shared,
            gate: Mutex::new(()),
            failed: std::sync::atomic::AtomicBool::new(false),
            repack,
            dry_run,
        }
    }

    /// Hands a full pack to an uploader, waiting until one takes it, and indexes what was
    /// uploaded once a batch is due.
    pub(super) fn send(&self, finished: Finished) -> Result<()> {
        self.check_poisoned()?;
        self.check_error()?;
        let tx = self.tx.as_ref().expect("sender lives until finish");
        // While this full pack waits for the uploader, nobody fills the next one: memory
        // stays at the pack being uploaded plus this one, not a third.
        let gate = self.gate.lock().expect("no panics while locked");
        let sent = tx.send(finished);
        drop(gate);
        if sent.is_err() {
            // Every uploader has stopped, so one of them recorded why.
            self.check_error()?;
            return Err(self.stopped());
        }
        if self.repack {
            return Ok(());
        }
        self.index_uploaded()
    }

    /// Flushes open packs, waits until every pack is durable, and indexes them all.
    pub fn finish(mut self) -> Result<PackerStats> {
        debug_assert!(!self.repack);
        if self.dry_run {
            return Ok(self.state.lock().expect("no panics while locked").stats);
        }
        let (_, packs) = self.flush()?;
        self.write_index(packs)?;
        // Counted again: writing the index adds to the stats.
        Ok(self.state.lock().expect("no panics while locked").stats)
    }

    /// For a repack packer: flushes open packs and waits until every pack is durable,
    /// returning them unindexed.
    pub fn finish_repack(mut self) -> Result<(PackerStats, Vec<IndexPack>)> {
        debug_assert!(self.repack);
        self.flush()
    }

    fn flush(&mut self) -> Result<(PackerStats, Vec<IndexPack>)> {
        // Too few small blobs to be worth a dictionary: store them as they are.
        let held = match &mut self.state.lock().expect("no panics while locked").dict {
            Dict::Collecting(held) | Dict::Training(held) => std::mem::take(held),
            _ => Held::default(),
        };
        self.store_held(held, None)?;
        let (data, tree) = {
            let mut s = self.state.lock().expect("no panics while locked");
            let mut rng = rand::thread_rng();
            (
                s.data.finish(self.repo.key(), &mut rng)?,
                s.tree.finish(self.repo.key(), &mut rng)?,
            )
        };
        for pack in [data, tree].into_iter().flatten() {
            self.send(pack)?;
        }
        drop(self.tx.take());
        for h in self.uploaders.drain(..) {
            h.join()
                .map_err(|_| EngineError::Invalid("a pack uploader panicked".into()))?;
        }
        self.check_error()?;
        let packs =
            std::mem::take(&mut *self.shared.uploaded.lock().expect("no panics while locked"));
        let stats = self.state.lock().expect("no panics while locked").stats;
        Ok((stats, packs))
    }
}
