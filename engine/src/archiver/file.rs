//! Chunking file and stream content into data blobs.

use std::fs::Metadata;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::Ordering;

use strata_format::blob::BlobType;
use strata_format::chunker::{ChunkerParams, Cutter};
use strata_format::id::BlobId;

use super::{source, Ctx};
use crate::EngineError;

/// Why a file could not be archived.
pub(super) enum FileError {
    /// The source could not be read: skip it and report.
    Source(std::io::Error),
    /// Storage or repository failure: abort the backup.
    Fatal(EngineError),
}

impl FileError {
    pub fn into_engine(self, what: &str) -> EngineError {
        match self {
            FileError::Source(e) => EngineError::io(what, e),
            FileError::Fatal(e) => e,
        }
    }
}

fn add_chunk(ctx: &Ctx<'_>, chunk: &[u8], content: &mut Vec<BlobId>) -> Result<(), FileError> {
    // Between chunks: a stream (a database dump) may be long.
    crate::progress::check_stop(ctx.progress).map_err(FileError::Fatal)?;
    let id = ctx.repo.key().blob_id(chunk);
    ctx.packer
        .add(BlobType::Data, id, chunk)
        .map_err(FileError::Fatal)?;
    ctx.counters
        .bytes_read
        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    ctx.progress.add_bytes(chunk.len() as u64);
    content.push(id);
    Ok(())
}

/// The repository's cutter for `params` (which the config validated when it was opened).
fn cutter(ctx: &Ctx<'_>, params: ChunkerParams) -> Result<Cutter, FileError> {
    Cutter::new(params, ctx.repo.key().chunker_seed)
        .map_err(|e| FileError::Fatal(EngineError::format("config", e)))
}

/// Chunks the regular file `listed` (its `lstat`) describes; returns the blob ids and the
/// bytes actually read (which is the size recorded: files that grow while read, or `/proc`
/// files that claim size 0, differ from their `lstat` size). Up to the maximum chunk size
/// is read at once and cut in memory; anything longer is streamed. Both cut at the same
/// places ([`Cutter`]). A file no longer the one listed is not read (see [`source`]);
/// `nonblocking` reads never wait (pseudo file systems).
///
/// [`source`]: super::source
pub(super) fn chunk_file(
    ctx: &Ctx<'_>,
    path: &Path,
    listed: &Metadata,
    nonblocking: bool,
) -> Result<(Vec<BlobId>, u64), FileError> {
    let (mut f, md) =
        source::open_listed_file(path, listed, nonblocking).map_err(FileError::Source)?;
    let params = ctx.repo.config().chunker;
    let max = params.max_size as usize;
    // Sized from the file's length, so reading it whole does not grow (and copy) the
    // buffer step by step; the extra byte detects a file longer than one chunk.
    let expected = md.len().min(max as u64) as usize;
    let mut buf = Vec::with_capacity(expected + 1);
    (&mut f)
        .take(max as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| FileError::Source(source::read_error(e)))?;
    if buf.len() > max {
        return chunk_stream(ctx, &mut std::io::Cursor::new(buf).chain(f), params).map_err(|e| {
            match e {
                FileError::Source(e) => FileError::Source(source::read_error(e)),
                fatal => fatal,
            }
        });
    }
    let mut content = Vec::new();
    for chunk in cutter(ctx, params)?.cut(&buf) {
        add_chunk(ctx, chunk, &mut content)?;
    }
    Ok((content, buf.len() as u64))
}

/// Chunks a stream of unknown length with `params`; returns the blob ids and the byte
/// count.
pub(super) fn chunk_stream(
    ctx: &Ctx<'_>,
    reader: &mut dyn Read,
    params: ChunkerParams,
) -> Result<(Vec<BlobId>, u64), FileError> {
    let mut content = Vec::new();
    let mut size = 0u64;
    for chunk in cutter(ctx, params)?.cut_stream(reader) {
        let chunk = chunk.map_err(FileError::Source)?;
        size += chunk.len() as u64;
        add_chunk(ctx, &chunk, &mut content)?;
    }
    Ok((content, size))
}
