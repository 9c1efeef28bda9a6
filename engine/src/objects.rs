//! Writing and deleting many repository objects at once: the index files prune and repair
//! write, and the deletes of forget, prune and repair.

use strata_format::id::IndexId;
use strata_format::index::{IndexFile, IndexPack};
use strata_storage::FileType;

use crate::{Repository, Result};

/// Blobs per index file written by prune and repair.
const INDEX_BLOBS: usize = 50_000;
/// Storage deletes in flight at once.
const DELETE_CONCURRENCY: usize = 16;

/// Writes index files naming `packs` (at most [`INDEX_BLOBS`] blobs each, at least one
/// file), each superseding `supersedes`. Returns how many were written.
pub(crate) fn write_index_files(
    repo: &Repository,
    packs: Vec<IndexPack>,
    supersedes: &[IndexId],
) -> Result<u64> {
    let mut file = IndexFile {
        supersedes: supersedes.to_vec(),
        packs: Vec::new(),
    };
    let mut written = 0;
    let mut blobs = 0usize;
    for p in packs {
        blobs += p.blobs.len();
        file.packs.push(p);
        if blobs >= INDEX_BLOBS {
            repo.save_object(FileType::Index, &file)?;
            written += 1;
            file.packs.clear();
            blobs = 0;
        }
    }
    if !file.packs.is_empty() || written == 0 {
        repo.save_object(FileType::Index, &file)?;
        written += 1;
    }
    Ok(written)
}

/// Deletes objects, several at a time. An object already gone is not an error. Deletes
/// only while this handle's exclusive lock is held and no other lock has appeared.
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
