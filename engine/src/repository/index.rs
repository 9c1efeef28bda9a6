//! Loading the index and the dictionaries, and reading blobs through an index.

use strata_format::blob::{decode_blob_with, BlobHeader, BlobType};
use strata_format::dict::{Dictionaries, Dictionary, MAX_DICT_SIZE};
use strata_format::envelope::EncryptedObject;
use strata_format::id::{BlobId, IndexId, PackId};
use strata_format::index::IndexFile;
use strata_format::tree::Tree;
use strata_storage::FileType;

use super::handle::Repository;
use crate::index::{IndexBuilder, MasterIndex};
use crate::packread::{Held, PackFile};
use crate::{EngineError, Result};

/// How many times the index is read again from a new listing when an index file vanished
/// under the reader (each time, a prune replaced files between the listing and the read).
pub(crate) const INDEX_RETRIES: u32 = 5;

/// Whether an error says that an index file listed a moment ago is gone.
pub(crate) fn index_file_vanished(e: &EngineError) -> bool {
    matches!(e, EngineError::Storage(s) if s.kind == strata_storage::ErrorKind::NotFound)
}

impl Repository {
    /// Loads the index (whole, or only its metadata part) and the dictionaries into a
    /// repository opened without one. Commands that take a lock load the index after the
    /// lock is held, so that no prune can change the repository under the index they use.
    pub fn load_index(&mut self, metadata_only: bool) -> Result<()> {
        let index = self.read_index(metadata_only)?;
        self.dicts = std::sync::OnceLock::new();
        self.load_dictionaries(&index);
        self.index = index;
        self.metadata_only = metadata_only;
        Ok(())
    }

    /// Loads what `op` needs of the index (see [`crate::Operation::index`]).
    /// Then, if `op` walks trees, brings the local cache (if any) to hold every metadata
    /// pack ([`Repository::sync_metadata_cache`]).
    pub fn load_index_for(&mut self, op: crate::Operation) -> Result<()> {
        match op.index() {
            crate::IndexNeed::None => return Ok(()),
            crate::IndexNeed::Metadata => self.load_index(true)?,
            crate::IndexNeed::Full => self.load_index(false)?,
        }
        if op.walks_trees() && op.uses_cache() {
            if let Err(e) = self.sync_metadata_cache() {
                tracing::debug!("the cache of metadata packs was not brought up to date: {e}");
            }
        }
        Ok(())
    }

    /// Reads and decodes the index files a few at a time (in parallel within a batch),
    /// handing each to `f`, so that only a batch is in memory at once. An index file that
    /// is gone by the time it is read (a prune running beside this process replaced it)
    /// stops the walk with an error for which [`index_file_vanished`] holds: the caller
    /// starts over from a new listing, which has the file that replaced it.
    ///
    /// A listing is not a snapshot of the directory (S3 lists in pages, `readdir` reads as
    /// files come and go): one made while a prune replaced the index can miss both the
    /// new file and old ones deleted before it got to them. So the directory is listed
    /// again once all is read, and what is new read too, until a listing brings nothing
    /// new: a prune writes its new file before it deletes any old one, so the listing
    /// after one that missed a deleted file has the file that replaced it.
    pub fn for_each_index_file(&self, mut f: impl FnMut(IndexId, Result<IndexFile>)) -> Result<()> {
        const BATCH: usize = 8;
        let mut listed = self.list_objects(FileType::Index)?;
        let mut read: std::collections::HashSet<String> = std::collections::HashSet::new();
        for round in 0..=INDEX_RETRIES {
            for batch in listed.chunks(BATCH) {
                let reads = self.read_many_listed(FileType::Index, batch);
                for ((name, _), r) in batch.iter().zip(reads) {
                    let r = match r {
                        Err(e) if index_file_vanished(&e) => return Err(e),
                        r => r,
                    };
                    let id = name.parse::<IndexId>().unwrap_or_default();
                    let file = r.and_then(|b| {
                        IndexFile::decode(&self.key, &b)
                            .map_err(|e| EngineError::format(format!("index/{name}"), e))
                    });
                    f(id, file);
                }
            }
            if round == INDEX_RETRIES {
                // Index files written all the time (backups finishing): what was read is
                // whole unless a prune replaced the index during the last listing too.
                tracing::debug!("index files still appearing after {round} listings");
                break;
            }
            read.extend(listed.into_iter().map(|(name, _)| name));
            listed = self
                .block_on(self.backend.list(FileType::Index))?
                .into_iter()
                .filter(|(name, _)| !read.contains(name))
                .collect();
            if listed.is_empty() {
                break;
            }
        }
        Ok(())
    }

    fn read_index(&self, metadata_only: bool) -> Result<MasterIndex> {
        let mut attempt = 0;
        loop {
            match self.read_index_once(metadata_only) {
                Err(e) if index_file_vanished(&e) && attempt < INDEX_RETRIES => attempt += 1,
                Err(e) if index_file_vanished(&e) => {
                    return Err(EngineError::locked(format!(
                        "the index kept changing while it was read ({e}; prunes running beside \
                         this command replaced its files {} times); run it again, or space \
                         prunes further apart",
                        INDEX_RETRIES + 1
                    )))
                }
                other => return other,
            }
        }
    }

    fn read_index_once(&self, metadata_only: bool) -> Result<MasterIndex> {
        let mut builder = IndexBuilder::new(metadata_only);
        let mut first_error = None;
        self.for_each_index_file(|id, file| match file {
            Ok(file) => builder.add_file(id, file),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        })?;
        match first_error {
            // A storage failure stays what it is; damage gets the way out.
            Some(e) if e.kind() == crate::ErrorKind::Corrupt => Err(EngineError::Corrupt(format!(
                "{e}; rebuild the index from the packs with `strata repair index`"
            ))),
            Some(e) => Err(e),
            None => Ok(builder.build()),
        }
    }

    /// Loads every dictionary blob `index` lists (once per repository handle; `check`
    /// calls it with the index it builds). A dictionary that cannot be read is skipped with
    /// a warning: only the blobs compressed against it become unreadable, and they say so.
    pub fn load_dictionaries(&self, index: &MasterIndex) {
        if self.dicts.get().is_some() {
            return;
        }
        let mut dicts = Dictionaries::default();
        for (id, loc) in index.iter() {
            if loc.blob_type != BlobType::Dictionary {
                continue;
            }
            let loaded = self
                .read_blob_in(index, BlobType::Dictionary, &id)
                .and_then(|bytes| {
                    Dictionary::from_bytes(bytes)
                        .map_err(|e| EngineError::format(format!("dictionary blob {id}"), e))
                });
            match loaded {
                Ok(d) => dicts.add(std::sync::Arc::new(d)),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let _ = self.dicts.set(dicts);
    }

    /// Reads one blob through the index, verifying its id.
    pub fn read_blob(&self, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        self.read_blob_in(&self.index, blob_type, id)
    }

    /// Reads one blob through the given index (for `check`, which builds its own).
    pub fn read_blob_in(
        &self,
        index: &MasterIndex,
        blob_type: BlobType,
        id: &BlobId,
    ) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| {
            EngineError::Corrupt(format!(
                "{} blob {id} is not in the index",
                blob_type.name()
            ))
        })?;
        let (pack, size) = index.pack(loc.pack);
        let held = Held::Blob(blob_type, *id);
        let (offset, length) = (loc.offset as u64, loc.length as u64);
        let bytes = if blob_type != BlobType::Data && index.is_metadata_pack(loc.pack) {
            self.block_on(self.metadata_packs.read(
                &*self.backend,
                &pack,
                size,
                held,
                offset,
                length,
            ))?
        } else {
            PackFile::indexed(&pack, size, held).read(self, offset, length)?
        };
        self.decode_stored_blob(blob_type, id, &pack, &bytes)
    }

    /// Decodes a blob's stored bytes as read from `pack`, verifying its type, id and
    /// content (data blobs may not be longer than the largest chunk).
    pub fn decode_stored_blob(
        &self,
        blob_type: BlobType,
        id: &BlobId,
        pack: &PackId,
        bytes: &[u8],
    ) -> Result<Vec<u8>> {
        let header = BlobHeader::parse(bytes).map_err(|e| {
            EngineError::format(format!("{} blob {id} in pack {pack}", blob_type.name()), e)
        })?;
        if blob_type == BlobType::Data && header.raw_length > self.config.max_chunk_size() {
            return Err(EngineError::Corrupt(format!(
                "data blob {id} in pack {pack} declares {} bytes, more than the largest chunk",
                header.raw_length
            )));
        }
        if blob_type == BlobType::Dictionary && header.raw_length as usize > MAX_DICT_SIZE {
            return Err(EngineError::Corrupt(format!(
                "dictionary blob {id} in pack {pack} declares {} bytes, more than a dictionary",
                header.raw_length
            )));
        }
        decode_blob_with(
            &self.key,
            self.dictionaries(),
            Some((blob_type, *id)),
            bytes,
        )
        .map(|(_, plain)| plain)
        .map_err(|e| {
            EngineError::format(format!("{} blob {id} in pack {pack}", blob_type.name()), e)
        })
    }

    /// Makes the local cache (of a remote repository; without one, nothing) hold every
    /// metadata pack the loaded index names, fetching the missing ones in parallel and
    /// dropping those no index names any more; returns how many it fetched. Called before
    /// walking trees, so that a cold cache costs one request per metadata pack, made
    /// `connections × 4` at a time, and a warm one none.
    pub fn sync_metadata_cache(&self) -> Result<usize> {
        let packs: Vec<(String, u64)> = self
            .index
            .metadata_packs()
            .into_iter()
            .map(|(id, size)| (id.to_hex(), size))
            .collect();
        Ok(self.block_on(
            self.backend
                .sync_metadata_packs(&packs, self.connections.max(1) * 4),
        )?)
    }

    /// Loads and decodes a tree blob.
    pub fn load_tree(&self, id: &BlobId) -> Result<Tree> {
        self.load_tree_in(&self.index, id)
    }

    /// Loads a tree through the given index.
    pub fn load_tree_in(&self, index: &MasterIndex, id: &BlobId) -> Result<Tree> {
        let plain = self.read_blob_in(index, BlobType::Tree, id)?;
        Tree::decode(&plain).map_err(|e| EngineError::format(format!("tree {id}"), e))
    }
}
