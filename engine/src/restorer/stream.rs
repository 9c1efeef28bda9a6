//! Writing one file's content in order, as a stream (`dump`, database restores).
//!
//! The content is taken a segment at a time (consecutive blobs of at most [`SEGMENT`]
//! stored bytes). The blobs of a segment are grouped by pack and read like the file
//! restorer reads them: nearby blobs of a pack with one ranged read of at most
//! [`RUN_LIMIT`] bytes. The packer spreads consecutive chunks of a stream over several
//! packs, so grouping over a segment, not only over neighbours, is what makes the reads
//! few. The next segment's reads are under way while one is written, at most
//! `connections` at a time: a stream from S3 or SFTP waits on the network about once per
//! segment, not once per blob. Every blob is verified against its id before it is
//! written. Memory is bounded by two segments' reads, each at most twice [`SEGMENT`] (the
//! gaps read between nearby blobs are capped at one segment's worth).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::blob::BlobType;
use strata_format::id::BlobId;
use strata_format::tree::{Node, NodeKind};
use strata_storage::FileType;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::content::{MAX_GAP, RUN_LIMIT};
use crate::packread::{Held, PackFile};
use crate::{EngineError, Repository, Result};

/// Stored bytes of the content planned and read together.
const SEGMENT: u64 = 16 << 20;

/// One blob of the stream: where its stored bytes are in a run's read.
struct Slot {
    id: BlobId,
    run: usize,
    at: usize,
    length: usize,
    raw_length: u64,
}

/// One ranged read of a pack.
struct Run {
    pack: u32,
    start: u64,
    end: u64,
}

/// The reads of a segment and its blobs in stream order.
struct Segment {
    runs: Vec<Run>,
    slots: Vec<Slot>,
}

/// Plans the segment starting at `content[0]`; returns it and how many blobs it covers.
fn plan(repo: &Repository, content: &[BlobId]) -> Result<(Segment, usize)> {
    let index = repo.index();
    // (pack, offset, length, position in the stream, raw length)
    let mut located = Vec::new();
    let mut stored = 0u64;
    for (pos, id) in content.iter().enumerate() {
        let loc = index
            .get(id)
            .ok_or_else(|| EngineError::Corrupt(format!("data blob {id} is not in the index")))?;
        if loc.blob_type != BlobType::Data {
            return Err(EngineError::Corrupt(format!(
                "blob {id} is a {} blob, not data",
                loc.blob_type.name()
            )));
        }
        if pos > 0 && stored + loc.length as u64 > SEGMENT {
            break;
        }
        stored += loc.length as u64;
        located.push((
            loc.pack,
            loc.offset as u64,
            loc.length as u64,
            pos,
            loc.raw_length as u64,
        ));
    }
    let covered = located.len();
    let mut slots: Vec<Option<Slot>> = (0..covered).map(|_| None).collect();
    located.sort_unstable();
    let mut runs: Vec<Run> = Vec::new();
    // Gap bytes read along with the blobs: at most one segment's worth, so that a segment's
    // reads stay within twice its stored bytes however its blobs are spread.
    let mut gaps = 0u64;
    for &(pack, offset, length, pos, raw_length) in &located {
        let end = offset + length;
        let joins = runs.last().is_some_and(|r| {
            let gap = offset.saturating_sub(r.end);
            r.pack == pack
                && offset >= r.start
                && gap <= MAX_GAP
                && gaps + gap <= SEGMENT
                && end.max(r.end) - r.start <= RUN_LIMIT
        });
        if joins {
            let r = runs.last_mut().expect("checked above");
            gaps += offset.saturating_sub(r.end);
            r.end = r.end.max(end);
        } else {
            runs.push(Run {
                pack,
                start: offset,
                end,
            });
        }
        let run = runs.len() - 1;
        slots[pos] = Some(Slot {
            id: content[pos],
            run,
            at: (offset - runs[run].start) as usize,
            length: length as usize,
            raw_length,
        });
    }
    let slots = slots
        .into_iter()
        .map(|s| s.expect("every blob of the segment is placed"))
        .collect();
    Ok((Segment { runs, slots }, covered))
}

/// The reads of one segment, a task per run; those not awaited are cancelled when it goes.
struct Reads(Vec<JoinHandle<Result<Bytes>>>);

impl Drop for Reads {
    fn drop(&mut self) {
        for r in &self.0 {
            r.abort();
        }
    }
}

/// Starts the reads of a segment, at most `limit` requests at a time across segments.
fn start(repo: &Repository, segment: &Segment, limit: &Arc<Semaphore>) -> Reads {
    Reads(
        segment
            .runs
            .iter()
            .map(|run| {
                let backend = repo.backend().clone();
                let (pack, size) = repo.index().pack(run.pack);
                let file = PackFile::indexed(&pack, size, Held::StreamData);
                let (offset, length) = (run.start, run.end - run.start);
                let limit = limit.clone();
                repo.handle().spawn(async move {
                    let _permit = limit.acquire().await.expect("never closed");
                    // The local backend reads with a blocking pread: not on a runtime worker.
                    let runtime = tokio::runtime::Handle::current();
                    let path = FileType::Pack.path(file.name());
                    tokio::task::spawn_blocking(move || {
                        runtime.block_on(file.read_on(&*backend, offset, length))
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(strata_storage::StorageError::other(
                            "read_range",
                            path,
                            format!("the read stopped: {e}"),
                        )
                        .into())
                    })
                })
            })
            .collect(),
    )
}

/// Writes the content of file `node` to `out`, in order, verified; returns the bytes written.
pub fn write_content(repo: &Repository, node: &Node, out: &mut dyn Write) -> Result<u64> {
    let NodeKind::File { content } = &node.kind else {
        return Err(EngineError::Invalid(format!(
            "{} is a {}, not a file",
            String::from_utf8_lossy(&node.name),
            node.kind.name()
        )));
    };
    let limit = Arc::new(Semaphore::new(repo.connections().max(1)));
    let mut in_flight: VecDeque<(Segment, Reads)> = VecDeque::new();
    let mut planned = 0;
    let mut written = 0u64;
    loop {
        // The segment to write, and the one after it, have their reads under way.
        while in_flight.len() < 2 && planned < content.len() {
            let (segment, covered) = plan(repo, &content[planned..])?;
            planned += covered;
            let reads = start(repo, &segment, &limit);
            in_flight.push_back((segment, reads));
        }
        let Some((segment, mut reads)) = in_flight.pop_front() else {
            break;
        };
        let mut read = Vec::with_capacity(segment.runs.len());
        for (run, handle) in segment.runs.iter().zip(reads.0.iter_mut()) {
            let pack = repo.index().pack(run.pack).0;
            let bytes = repo.block_on(handle).map_err(|e| {
                let path = FileType::Pack.path(&pack.to_hex());
                strata_storage::StorageError::other("read_range", path, e.to_string())
            })??;
            read.push(bytes);
        }
        for slot in &segment.slots {
            let pack = repo.index().pack(segment.runs[slot.run].pack).0;
            let stored = &read[slot.run][slot.at..slot.at + slot.length];
            let data = repo.decode_stored_blob(BlobType::Data, &slot.id, &pack, stored)?;
            if data.len() as u64 != slot.raw_length {
                return Err(EngineError::Corrupt(format!(
                    "blob {} decodes to {} bytes, the index records {}",
                    slot.id,
                    data.len(),
                    slot.raw_length
                )));
            }
            out.write_all(&data)
                .map_err(|e| EngineError::io("standard output", e))?;
            written += data.len() as u64;
        }
    }
    Ok(written)
}
