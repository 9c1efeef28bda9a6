//! Reading a byte range of a file: which chunks cover it, from the raw lengths the index
//! records (no blob is read to find out), and only those chunks are fetched.

use std::sync::Arc;

use strata_format::id::BlobId;

use crate::{EngineError, Result};

/// A file opened for reading ([`super::Vfs::open`]): its size as the snapshot records it
/// and its chunks. Reads never go past the recorded size; where the chunks hold less, a
/// read ends where they end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContent {
    pub(super) chunks: Chunks,
    pub(super) size: u64,
}

impl FileContent {
    /// The size the snapshot records.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// What the chunks hold, by the index (`None` while a chunk is not in it). Differs from
    /// [`Self::size`] only in a damaged repository.
    pub fn stored_size(&self) -> Option<u64> {
        self.chunks.len()
    }
}

/// A file's chunks and where each starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chunks {
    ids: Vec<BlobId>,
    /// `starts[i]` is where chunk `i` starts; one more entry than chunks whose length is
    /// known. The lengths are known up to the first chunk the index does not list.
    starts: Vec<u64>,
}

impl Chunks {
    /// The chunks of `content`, with lengths from `raw_length` (the index).
    pub fn new(content: &[BlobId], raw_length: impl Fn(&BlobId) -> Option<u64>) -> Chunks {
        let mut starts = Vec::with_capacity(content.len() + 1);
        starts.push(0u64);
        for id in content {
            match raw_length(id) {
                Some(len) => starts.push(starts[starts.len() - 1] + len),
                None => break,
            }
        }
        Chunks {
            ids: content.to_vec(),
            starts,
        }
    }

    /// The length of the content, if every chunk is in the index.
    pub fn len(&self) -> Option<u64> {
        (self.starts.len() == self.ids.len() + 1).then(|| self.starts[self.ids.len()])
    }

    /// Bytes `[offset, offset + size)` of the content (fewer at its end), fetching only the
    /// chunks that cover them with `fetch`.
    pub fn read(
        &self,
        offset: u64,
        size: u64,
        mut fetch: impl FnMut(&BlobId) -> Result<Arc<Vec<u8>>>,
    ) -> Result<Vec<u8>> {
        let known_end = self.starts[self.starts.len() - 1];
        let end = offset.saturating_add(size);
        let end = match self.len() {
            Some(len) => end.min(len),
            None if end <= known_end => end,
            None => {
                let missing = &self.ids[self.starts.len() - 1];
                return Err(EngineError::Corrupt(format!(
                    "data blob {missing} is not in the index"
                )));
            }
        };
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        if offset >= end {
            return Ok(out);
        }
        // The chunk holding `offset`: the last one starting at or before it.
        let mut i = self.starts.partition_point(|&s| s <= offset) - 1;
        let mut pos = offset;
        while pos < end {
            let (start, next) = (self.starts[i], self.starts[i + 1]);
            if start == next {
                i += 1;
                continue;
            }
            let data = fetch(&self.ids[i])?;
            if data.len() as u64 != next - start {
                return Err(EngineError::Corrupt(format!(
                    "data blob {} holds {} bytes, the index says {}",
                    self.ids[i],
                    data.len(),
                    next - start
                )));
            }
            let from = (pos - start) as usize;
            let to = (end.min(next) - start) as usize;
            out.extend_from_slice(&data[from..to]);
            pos = end.min(next);
            i += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use strata_format::id::Digest;

    fn id(n: u8) -> BlobId {
        BlobId(Digest::of_stored(&[n]))
    }

    /// Chunks of lengths 3, 0, 5, 2 holding the bytes 0..10, and the blobs by id.
    fn setup() -> (Chunks, HashMap<BlobId, Arc<Vec<u8>>>) {
        let parts: [&[u8]; 4] = [&[0, 1, 2], &[], &[3, 4, 5, 6, 7], &[8, 9]];
        let blobs: HashMap<BlobId, Arc<Vec<u8>>> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (id(i as u8), Arc::new(p.to_vec())))
            .collect();
        let ids: Vec<BlobId> = (0..4).map(id).collect();
        let lens: HashMap<BlobId, u64> = blobs.iter().map(|(k, v)| (*k, v.len() as u64)).collect();
        (Chunks::new(&ids, |i| lens.get(i).copied()), blobs)
    }

    #[test]
    fn reads_fetch_only_the_chunks_covering_the_range() {
        let (chunks, blobs) = setup();
        assert_eq!(chunks.len(), Some(10));
        let read = |offset, size| {
            let mut fetched = Vec::new();
            let out = chunks
                .read(offset, size, |i| {
                    fetched.push((0..4).position(|n| id(n) == *i).unwrap());
                    Ok(blobs[i].clone())
                })
                .unwrap();
            (out, fetched)
        };
        assert_eq!(read(0, 10), ((0..10).collect(), vec![0, 2, 3]));
        assert_eq!(read(4, 1), (vec![4], vec![2]));
        assert_eq!(read(3, 5), (vec![3, 4, 5, 6, 7], vec![2]));
        assert_eq!(read(2, 2), (vec![2, 3], vec![0, 2]));
        assert_eq!(read(9, 100), (vec![9], vec![3]));
        assert_eq!(read(10, 5), (vec![], vec![]));
        assert_eq!(read(50, 5), (vec![], vec![]));
    }

    #[test]
    fn a_chunk_missing_from_the_index_fails_only_the_reads_that_need_it() {
        let (_, blobs) = setup();
        let ids: Vec<BlobId> = (0..4).map(id).collect();
        let chunks = Chunks::new(&ids, |i| (*i != id(2)).then(|| blobs[i].len() as u64));
        assert_eq!(chunks.len(), None);
        let fetch = |i: &BlobId| Ok(blobs[i].clone());
        assert_eq!(chunks.read(0, 3, fetch).unwrap(), vec![0, 1, 2]);
        let err = chunks.read(2, 2, fetch).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        assert!(err.to_string().contains("not in the index"), "{err}");
    }

    #[test]
    fn a_blob_of_the_wrong_length_is_an_error() {
        let (chunks, _) = setup();
        let err = chunks.read(0, 2, |_| Ok(Arc::new(vec![0; 7]))).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        assert!(err.to_string().contains("the index says 3"), "{err}");
    }
}
