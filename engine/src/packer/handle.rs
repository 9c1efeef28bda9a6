//! The packer and its parts: the state its packing threads share, what its uploaders
//! report back, and the dictionary for small blobs, from samples collected to trained.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::Sender;
use strata_format::dict::Dictionary;
use strata_format::id::BlobId;
use strata_format::index::IndexPack;

use crate::spool::{Finished, SpoolPack};
use crate::{EngineError, ErrorKind, Repository};

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

/// Small blobs held back as training samples: their bytes end to end, and their ids and
/// sizes in the same order (one buffer, so training needs no copy).
#[derive(Default)]
pub(super) struct Held {
    pub(super) data: Vec<u8>,
    pub(super) blobs: Vec<BlobId>,
    pub(super) sizes: Vec<usize>,
}

impl Held {
    pub(super) fn push(&mut self, id: BlobId, plain: &[u8]) {
        self.data.extend_from_slice(plain);
        self.blobs.push(id);
        self.sizes.push(plain.len());
    }
}

/// The dictionary for small data blobs.
pub(super) enum Dict {
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

pub(super) struct State {
    pub(super) data: SpoolPack,
    pub(super) tree: SpoolPack,
    pub(super) pending: HashSet<BlobId>,
    pub(super) stats: PackerStats,
    pub(super) dict: Dict,
    /// Packs indexed so far, and when the last index file was written.
    pub(super) packs_indexed: usize,
    pub(super) last_index: Instant,
}

pub(super) struct Shared {
    /// An uploader's failure, until a packing thread takes it.
    pub(super) error: Mutex<Option<EngineError>>,
    /// The first failure of this packer (kind and message), repeated to every thread that
    /// finds the packer stopped.
    pub(super) cause: Mutex<Option<(ErrorKind, String)>>,
    pub(super) uploaded: Mutex<Vec<IndexPack>>,
}

/// Packs blobs for one writer (a backup). Safe to share between threads.
pub(crate) struct Packer<'r> {
    pub(super) repo: &'r Repository,
    pub(super) state: Mutex<State>,
    pub(super) tx: Option<Sender<Finished>>,
    pub(super) uploaders: Vec<JoinHandle<()>>,
    pub(super) shared: Arc<Shared>,
    /// Held while a full pack waits to be taken by the uploader.
    pub(super) gate: Mutex<()>,
    /// Set by a failure that may have left a pack inconsistent.
    pub(super) failed: std::sync::atomic::AtomicBool,
    /// Copying already stored blobs for prune or repair: no dedup against the index, no
    /// dictionaries, and no index files (the caller writes the new index).
    pub(super) repack: bool,
    /// A dry run (`backup --dry-run`): blobs are deduplicated, compressed and encrypted
    /// to count what they would add, and then dropped: nothing is written anywhere.
    pub(super) dry_run: bool,
}

impl Drop for Packer<'_> {
    fn drop(&mut self) {
        drop(self.tx.take());
        for h in self.uploaders.drain(..) {
            let _ = h.join();
        }
    }
}
