//! Packing blobs: deduplicate, compress + encrypt (on the caller's thread), append to the
//! open pack file of the blob's kind (data, or metadata), and hand full packs to the
//! uploader over a rendezvous channel. Uploaded packs are indexed in batches; `finish`
//! flushes, waits for every upload and writes the last index file. Small data blobs may be
//! compressed against a repository dictionary, trained here from the first ones.
//!
//! Indexing as it goes is what lets a killed backup or copy resume: the next run finds
//! the blobs of every indexed pack in the index and does not send them again, while packs
//! no index names are sent again (and the old ones removed by prune). A batch is written
//! once the uploaded packs not yet indexed hold [`INDEX_BLOBS`] blobs, or number
//! [`INDEX_PACKS`] or an eighth of the packs this packer has indexed so far (whichever is
//! more), or once [`INDEX_AGE`] has passed since the last index file. So a killed run has
//! to send again at most about an eighth of what it sent (or a few packs, or a few
//! minutes' worth), while a long run writes only tens of index files.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use strata_format::blob::{encode_blob_with, BlobType};
use strata_format::dict::Dictionary;
use strata_format::id::BlobId;
use strata_format::index::{IndexFile, IndexPack};
use strata_storage::FileType;

use crate::spool::{Finished, SpoolPack};
use crate::{EngineError, ErrorKind, Repository, Result};

/// An index file is written once uploaded packs not yet indexed hold this many blobs,
const INDEX_BLOBS: usize = 50_000;
/// or they are this many packs (or an eighth of the packs indexed so far, if more),
const INDEX_PACKS: usize = 8;
/// or this long after the last index file (or the start).
const INDEX_AGE: Duration = Duration::from_secs(300);

/// What a packer added to the repository.
#[derive(Debug, Default, Clone, Copy)]
pub struct PackerStats {
    pub data_blobs: u64,
    pub tree_blobs: u64,
    /// Stored bytes of new blobs (after compression and encryption).
    pub bytes_added: u64,
    /// Plaintext bytes of new blobs.
    pub raw_added: u64,
    /// Index files written, and their stored bytes.
    pub index_files: u64,
    pub index_bytes: u64,
}

/// Data blobs up to this size are compressed against the repository's dictionary.
const SMALL_BLOB: usize = 64 << 10;
/// Bytes of small blobs held back as samples before a dictionary is trained.
const SAMPLE_TARGET: usize = 4 << 20;
/// Most bytes of small blobs held back while a dictionary is being trained.
const TRAINING_HOLD: usize = 16 << 20;
/// Largest dictionary trained (zstd's default).
const DICT_SIZE: usize = 110 << 10;

/// Small blobs held back as training samples: their bytes end to end, and their ids and
/// sizes in the same order (one buffer, so training needs no copy).
#[derive(Default)]
struct Held {
    data: Vec<u8>,
    blobs: Vec<BlobId>,
    sizes: Vec<usize>,
}

impl Held {
    fn push(&mut self, id: BlobId, plain: &[u8]) {
        self.data.extend_from_slice(plain);
        self.blobs.push(id);
        self.sizes.push(plain.len());
    }
}

/// The dictionary for small data blobs.
enum Dict {
    /// None: a format v1 repository, or training failed.
    Off,
    /// The repository has none yet: small data blobs are held back, uncompressed, as
    /// training samples (they are in `pending`, so duplicates are still skipped).
    Collecting(Held),
    /// One thread is training; small blobs arriving meanwhile are held back too, and
    /// stored with the dictionary once it is ready.
    Training(Held),
    On(Arc<Dictionary>),
}

struct State {
    data: SpoolPack,
    tree: SpoolPack,
    pending: HashSet<BlobId>,
    stats: PackerStats,
    dict: Dict,
    /// Packs indexed so far, and when the last index file was written.
    packs_indexed: usize,
    last_index: Instant,
}

struct Shared {
    /// An uploader's failure, until a packing thread takes it.
    error: Mutex<Option<EngineError>>,
    /// The first failure of this packer (kind and message), repeated to every thread that
    /// finds the packer stopped.
    cause: Mutex<Option<(ErrorKind, String)>>,
    uploaded: Mutex<Vec<IndexPack>>,
}

/// Packs blobs for one writer (a backup). Safe to share between threads.
pub(crate) struct Packer<'r> {
    repo: &'r Repository,
    state: Mutex<State>,
    tx: Option<Sender<Finished>>,
    uploaders: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Held while a full pack waits to be taken by the uploader.
    gate: Mutex<()>,
    /// Set by a failure that may have left a pack inconsistent.
    failed: std::sync::atomic::AtomicBool,
    /// Copying already stored blobs for prune or repair: no dedup against the index, no
    /// dictionaries, and no index files (the caller writes the new index).
    repack: bool,
}

impl<'r> Packer<'r> {
    /// A packer for a backup.
    pub fn new(repo: &'r Repository) -> Self {
        Self::with_mode(repo, false)
    }

    /// A packer for blobs copied as stored ([`Packer::add_stored`]) by prune and repair;
    /// [`Packer::finish_repack`] returns the packs for the caller to index.
    pub fn for_repack(repo: &'r Repository) -> Self {
        Self::with_mode(repo, true)
    }

    fn with_mode(repo: &'r Repository, repack: bool) -> Self {
        let (tx, rx) = bounded::<Finished>(0);
        let shared = Arc::new(Shared {
            error: Mutex::new(None),
            cause: Mutex::new(None),
            uploaded: Mutex::new(Vec::new()),
        });
        let uploaders = (0..repo.connections())
            .map(|_| {
                let rx = rx.clone();
                let shared = shared.clone();
                let backend = repo.backend().clone();
                let handle = repo.handle();
                std::thread::spawn(move || {
                    for mut pack in rx {
                        let (id, size) = (pack.id, pack.size);
                        let _span = tracing::debug_span!("upload pack", pack = %id, size).entered();
                        match handle.block_on(backend.write_file(
                            FileType::Pack,
                            &id.to_hex(),
                            pack.path(),
                        )) {
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
                dict: if repack || !repo.config().allows_dictionaries() {
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
        }
    }

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

    /// Trains a dictionary from the held-back small blobs, stores it, and stores the blobs
    /// compressed against it. If training fails the blobs are stored without one.
    fn train_and_store(&self, held: Held) -> Result<()> {
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

    /// Records that the backup failed: nothing more is packed or indexed.
    fn poison(&self, e: EngineError) -> EngineError {
        self.shared
            .cause
            .lock()
            .expect("no panics while locked")
            .get_or_insert_with(|| (e.kind(), e.to_string()));
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        e
    }

    /// The error for a thread that finds the packer stopped: the first failure's.
    fn stopped(&self) -> EngineError {
        let cause = self.shared.cause.lock().expect("no panics while locked");
        let (kind, message) = cause.clone().unwrap_or_else(|| {
            (
                ErrorKind::Invalid,
                "an earlier error stopped this backup".into(),
            )
        });
        EngineError::Stopped { kind, message }
    }

    fn check_poisoned(&self) -> Result<()> {
        if self.failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(self.stopped());
        }
        Ok(())
    }

    /// Stores held-back blobs, compressed against `dict` if given.
    fn store_held(&self, held: Held, dict: Option<&Dictionary>) -> Result<()> {
        let mut pos = 0;
        for (id, size) in held.blobs.into_iter().zip(held.sizes) {
            self.store(BlobType::Data, id, &held.data[pos..pos + size], dict)?;
            pos += size;
        }
        Ok(())
    }

    /// Compresses, encrypts and appends a blob already marked pending.
    fn store(
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
        self.append(blob_type, id, plain.len() as u32, &stored)
    }

    /// Appends a stored blob to the open pack of its kind, sending the pack when full.
    fn append(
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

    fn send(&self, finished: Finished) -> Result<()> {
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
        // Index what is durable as it goes (see the module docs): a killed run leaves most
        // of its packs indexed, ready for the next one to reuse, and the index of a large
        // backup is not held (and encoded) in memory all at once.
        let (indexed, last) = {
            let s = self.state.lock().expect("no panics while locked");
            (s.packs_indexed, s.last_index)
        };
        let batch = {
            let mut up = self.shared.uploaded.lock().expect("no panics while locked");
            if index_due(&up, indexed, last.elapsed()) {
                std::mem::take(&mut *up)
            } else {
                Vec::new()
            }
        };
        self.write_index(batch)
    }

    /// Writes an index file for packs that are durable.
    fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        self.check_poisoned()?;
        let index = IndexFile {
            supersedes: Vec::new(),
            packs,
        };
        let (_, size) = self.repo.save_object_sized(FileType::Index, &index)?;
        let mut s = self.state.lock().expect("no panics while locked");
        s.stats.index_files += 1;
        s.stats.index_bytes += size;
        s.packs_indexed += index.packs.len();
        s.last_index = Instant::now();
        Ok(())
    }

    /// Returns an uploader's failure to the first thread that asks, and stops the
    /// packer, so that later callers get the same message.
    fn check_error(&self) -> Result<()> {
        let taken = self
            .shared
            .error
            .lock()
            .expect("no panics while locked")
            .take();
        match taken {
            Some(e) => Err(self.poison(e)),
            None => Ok(()),
        }
    }

    /// Flushes open packs, waits until every pack is durable, and indexes them all.
    pub fn finish(mut self) -> Result<PackerStats> {
        debug_assert!(!self.repack);
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

/// Whether the uploaded packs not yet indexed, `waiting`, are due for an index file, when
/// `indexed` packs have been indexed so far and the last index file was written `age` ago.
fn index_due(waiting: &[IndexPack], indexed: usize, age: Duration) -> bool {
    !waiting.is_empty()
        && (waiting.len() >= INDEX_PACKS.max(indexed / 8)
            || waiting.iter().map(|p| p.blobs.len()).sum::<usize>() >= INDEX_BLOBS
            || age >= INDEX_AGE)
}

impl Drop for Packer<'_> {
    fn drop(&mut self) {
        drop(self.tx.take());
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::keyfile::KdfParams;
    use strata_storage::{Backend, OpendalBackend, StorageError};

    fn uploaded(blobs: usize) -> IndexPack {
        IndexPack {
            id: strata_format::id::PackId(strata_format::id::Digest([1; 32])),
            size: 1,
            blobs: vec![
                strata_format::pack::PackBlob {
                    blob_type: BlobType::Data,
                    id: BlobId(strata_format::id::Digest([2; 32])),
                    offset: 10,
                    length: 50,
                    raw_length: 6,
                };
                blobs
            ],
        }
    }

    /// Uploaded packs are indexed in batches of a few packs at first, then of an eighth of
    /// what is indexed, or sooner when they hold many blobs or have waited long.
    #[test]
    fn uploaded_packs_are_indexed_in_bounded_batches() {
        let fresh = Duration::ZERO;
        let packs = |n: usize| vec![uploaded(3); n];
        assert!(!index_due(&[], 0, INDEX_AGE));
        assert!(!index_due(&packs(INDEX_PACKS - 1), 0, fresh));
        assert!(index_due(&packs(INDEX_PACKS), 0, fresh));
        assert!(index_due(&packs(INDEX_PACKS), 8 * INDEX_PACKS, fresh));
        assert!(!index_due(&packs(INDEX_PACKS), 80 * INDEX_PACKS, fresh));
        assert!(index_due(&packs(10 * INDEX_PACKS), 80 * INDEX_PACKS, fresh));
        assert!(index_due(&[uploaded(INDEX_BLOBS)], 1000, fresh));
        assert!(index_due(&packs(1), 1000, INDEX_AGE));
    }

    /// Whichever thread finds the packer stopped after an upload failed reports that
    /// failure, not a bare "stopped": the first takes the error itself, later ones a copy.
    #[test]
    fn every_caller_after_a_failed_upload_names_it() {
        let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let opts = crate::InitOptions {
            kdf: KdfParams {
                m_kib: 64,
                t: 1,
                p: 1,
            },
            ..Default::default()
        };
        Repository::init(backend.clone(), b"pw", &opts).unwrap();
        let repo = Repository::open(backend, b"pw").unwrap();
        let packer = Packer::new(&repo);
        let failure = || StorageError::other("write", "data/ab/abcd", "connection refused");
        let message = EngineError::from(failure()).to_string();
        *packer.shared.error.lock().unwrap() = Some(failure().into());
        let first = packer.check_error().unwrap_err();
        assert!(matches!(first, EngineError::Storage(_)), "{first}");
        for later in [
            packer.check_poisoned().unwrap_err(),
            packer.stopped(),
            packer
                .add(
                    BlobType::Data,
                    BlobId(strata_format::id::Digest([7; 32])),
                    b"x",
                )
                .unwrap_err(),
        ] {
            assert_eq!(later.kind(), ErrorKind::Storage);
            assert_eq!(later.to_string(), message);
        }
    }
}
