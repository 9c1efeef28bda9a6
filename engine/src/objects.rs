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

/// What a prune or repair writes as the new index: live packs, packs marked for deletion,
/// and seals.
#[derive(Default)]
pub(crate) struct NewIndex {
    pub packs: Vec<IndexPack>,
    pub marked: Vec<MarkedPack>,
    pub seals: Vec<Seal>,
}

/// Writes index files naming `new` (at most [`INDEX_BLOBS`] blobs each, at least one
/// file; the seals go in the first; marked packs before live ones). Only the last file
/// written supersedes `supersedes`: until it is durable, the files it replaces are still
/// current and name every pack (a reader ignores a superseded file, so the new index must
/// be whole before anything supersedes it). Returns their names.
pub(crate) fn write_index_files(
    repo: &Repository,
    new: NewIndex,
    supersedes: &[IndexId],
) -> Result<Vec<String>> {
    let mut files: Vec<IndexFile> = Vec::new();
    let mut file = IndexFile {
        seals: new.seals,
        ..IndexFile::default()
    };
    let mut blobs = 0usize;
    let all = new
        .marked
        .into_iter()
        .map(|m| (m.pack, Some((m.mark, m.marked_ns))))
        .chain(new.packs.into_iter().map(|p| (p, None)));
    for (pack, mark) in all {
        blobs += pack.blobs.len();
        match mark {
            None => file.packs.push(pack),
            Some((mark, marked_ns)) => file.marked.push(MarkedPack {
                mark,
                marked_ns,
                pack,
            }),
        }
        if blobs >= INDEX_BLOBS {
            files.push(std::mem::take(&mut file));
            blobs = 0;
        }
    }
    if !file.packs.is_empty()
        || !file.marked.is_empty()
        || !file.seals.is_empty()
        || files.is_empty()
    {
        files.push(file);
    }
    if let Some(last) = files.last_mut() {
        last.supersedes = supersedes.to_vec();
    }
    let mut written = Vec::with_capacity(files.len());
    for file in files {
        written.push(repo.save_object(FileType::Index, &file)?.to_hex());
    }
    Ok(written)
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
