//! Writing and deleting many repository objects at once: the index files prune and repair
//! write, and the deletes of forget, prune and repair.

use strata_format::id::IndexId;
use strata_format::index::{IndexFile, IndexPack, MarkedPack, Seal};
use strata_storage::FileType;

use crate::{Repository, Result};

/// Blobs per index file written by prune and repair.
const INDEX_BLOBS: usize = 50_000;
/// Storage deletes in flight at once.
const DELETE_CONCURRENCY: usize = 16;

/// What a repair writes as the new index: live packs, packs marked for deletion, and
/// seals.
#[derive(Default)]
pub(crate) struct NewIndex {
    pub packs: Vec<IndexPack>,
    pub marked: Vec<MarkedPack>,
    pub seals: Vec<Seal>,
}

/// Writes index files naming `new` (see [`IndexWriter`]), the last superseding
/// `supersedes`. Returns their names.
pub(crate) fn write_index_files(
    repo: &Repository,
    new: NewIndex,
    supersedes: &[IndexId],
) -> Result<Vec<String>> {
    let mut w = IndexWriter::new(repo);
    for m in new.marked {
        w.marked(m)?;
    }
    for p in new.packs {
        w.pack(p)?;
    }
    w.finish(new.seals, supersedes)
}

/// Writes a new index as it is produced, at most [`INDEX_BLOBS`] blobs a file, so that
/// only one file is held in memory. Only the last file, written by [`IndexWriter::finish`],
/// supersedes anything: until it is durable the files it replaces are still current and
/// name every pack (a reader ignores a superseded file, so the new index must be whole
/// before anything supersedes it).
pub(crate) struct IndexWriter<'a> {
    repo: &'a Repository,
    file: IndexFile,
    blobs: usize,
    written: Vec<String>,
}

impl<'a> IndexWriter<'a> {
    pub(crate) fn new(repo: &'a Repository) -> Self {
        IndexWriter {
            repo,
            file: IndexFile::default(),
            blobs: 0,
            written: Vec::new(),
        }
    }

    pub(crate) fn pack(&mut self, pack: IndexPack) -> Result<()> {
        self.blobs += pack.blobs.len();
        self.file.packs.push(pack);
        self.flush_if_full()
    }

    pub(crate) fn marked(&mut self, marked: MarkedPack) -> Result<()> {
        self.blobs += marked.pack.blobs.len();
        self.file.marked.push(marked);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.blobs >= INDEX_BLOBS {
            let file = std::mem::take(&mut self.file);
            self.written
                .push(self.repo.save_object(FileType::Index, &file)?.to_hex());
            self.blobs = 0;
        }
        Ok(())
    }

    /// Writes what is left with `seals`, superseding `supersedes` (a file is written if
    /// there is anything to say, or if nothing was written yet); returns every file's name.
    pub(crate) fn finish(
        mut self,
        seals: Vec<Seal>,
        supersedes: &[IndexId],
    ) -> Result<Vec<String>> {
        self.file.seals = seals;
        self.file.supersedes = supersedes.to_vec();
        let f = &self.file;
        if !f.packs.is_empty()
            || !f.marked.is_empty()
            || !f.seals.is_empty()
            || !f.supersedes.is_empty()
            || self.written.is_empty()
        {
            self.written
                .push(self.repo.save_object(FileType::Index, &self.file)?.to_hex());
        }
        Ok(self.written)
    }
}

/// Deletes objects, several at a time. An object already gone is not an error. Deletes
/// only while this handle's lock is held and no conflicting lock has appeared.
pub(crate) fn delete_all(repo: &Repository, ft: FileType, names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    crate::lock::before_delete(repo)?;
    repo.drop_early_listings();
    repo.for_each_name(names, DELETE_CONCURRENCY, move |backend, name| async move {
        match backend.delete(ft, &name).await {
            Err(e) if e.kind != strata_storage::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    })
    .into_iter()
    .collect()
}
