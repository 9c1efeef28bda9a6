//! Indexing uploaded packs as they go, which is what lets a killed backup or copy resume:
//! the next run finds the blobs of every indexed pack in the index and does not send them
//! again, while packs no index names are sent again (and the old ones removed by prune). A
//! batch is written once the uploaded packs not yet indexed hold [`INDEX_BLOBS`] blobs, or
//! number [`INDEX_PACKS`] or an eighth of the packs this packer has indexed so far
//! (whichever is more), or once [`INDEX_AGE`] has passed since the last index file. So a
//! killed run has to send again at most about an eighth of what it sent (or a few packs,
//! or a few minutes' worth), while a long run writes only tens of index files.

use std::time::{Duration, Instant};

use strata_format::index::{IndexFile, IndexPack};
use strata_storage::FileType;

use super::handle::Packer;
use crate::Result;

/// An index file is written once uploaded packs not yet indexed hold this many blobs,
const INDEX_BLOBS: usize = 50_000;
/// or they are this many packs (or an eighth of the packs indexed so far, if more),
const INDEX_PACKS: usize = 8;
/// or this long after the last index file (or the start).
const INDEX_AGE: Duration = Duration::from_secs(300);

impl Packer<'_> {
    /// Writes an index file for the uploaded packs not yet indexed, if they are due for one
    /// ([`index_due`]).
    pub(super) fn index_uploaded(&self) -> Result<()> {
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
    pub(super) fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        self.check_poisoned()?;
        let index = IndexFile {
            packs,
            ..IndexFile::default()
        };
        let (_, size) = self.repo.save_object_sized(FileType::Index, &index)?;
        let mut s = self.state.lock().expect("no panics while locked");
        s.stats.index_files += 1;
        s.stats.index_bytes += size;
        s.packs_indexed += index.packs.len();
        s.last_index = Instant::now();
        Ok(())
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

#[cfg(test)]
mod tests {
    use strata_format::blob::BlobType;
    use strata_format::id::BlobId;

    use super::*;

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
}
