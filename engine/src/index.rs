//! The in-memory index: where every blob lives. Built from all index files at open.

use std::collections::HashMap;

use strata_format::blob::BlobType;
use strata_format::id::{BlobId, IndexId, PackId};
use strata_format::index::IndexFile;

/// Where one blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`MasterIndex::packs`].
    pub pack: u32,
    pub blob_type: BlobType,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
}

/// Every blob of the repository, keyed by id; about 56 bytes a blob.
#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: HashMap<BlobId, BlobLocation>,
    packs: Vec<(PackId, u64)>,
    /// Which index file named each pack (for messages).
    pack_index: Vec<IndexId>,
}

impl MasterIndex {
    /// Adds every pack and blob of one index file.
    pub fn add_file(&mut self, id: IndexId, file: &IndexFile) {
        for p in &file.packs {
            let pack = self.packs.len() as u32;
            self.packs.push((p.id, p.size));
            self.pack_index.push(id);
            for b in &p.blobs {
                self.blobs.entry(b.id).or_insert(BlobLocation {
                    pack,
                    blob_type: b.blob_type,
                    offset: b.offset,
                    length: b.length,
                    raw_length: b.raw_length,
                });
            }
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.blobs.contains_key(id)
    }

    /// The pack id and size at a position.
    pub fn pack(&self, pos: u32) -> (PackId, u64) {
        self.packs[pos as usize]
    }

    /// The index file that named the pack at a position.
    pub fn pack_source(&self, pos: u32) -> IndexId {
        self.pack_index[pos as usize]
    }

    /// Every pack named by an index, with its size (a pack may appear more than once).
    pub fn packs(&self) -> &[(PackId, u64)] {
        &self.packs
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}
