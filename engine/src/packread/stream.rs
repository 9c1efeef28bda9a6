//! Streaming a whole pack, a piece at a time, hashing every byte.

use strata_format::id::{Digest, PackId, StoredHasher};
use strata_format::pack::PACK_PREAMBLE_LEN;

use super::PackFile;
use crate::{Repository, Result};

/// Bytes read from a pack at a time.
const PIECE: u64 = 4 << 20;

/// Longest stored blob: the largest object, its blob header and what sealing adds, with room
/// to spare. Longer extents are damage, never read into memory.
const MAX_STORED_BLOB: u64 = strata_format::MAX_OBJECT_SIZE as u64 + (1 << 20);

/// Reads one pack front to back in pieces of [`PIECE`] bytes, hashing every byte, and hands
/// out the stored bytes of extents asked for in increasing order of offset as soon as they
/// are read. Bytes before the extent asked for are dropped, so memory stays at a piece
/// plus one blob however large the pack is. `check --read-data` verifies packs through it,
/// and `repair index` reads and salvages them through it.
pub(crate) struct PackReader<'r> {
    repo: &'r Repository,
    pack: PackId,
    /// The pack as listed: a pack gone missing keeps storage's `NotFound`.
    file: PackFile,
    hasher: StoredHasher,
    /// The pack's bytes from `buf_start` to `pos`.
    buf: Vec<u8>,
    buf_start: u64,
    /// The offset of the last extent handed out: extents before it are refused.
    floor: u64,
    /// Bytes read (and hashed) so far.
    pos: u64,
    /// The first bytes of the pack (magic, version, and a little more).
    preamble: Vec<u8>,
}

impl<'r> PackReader<'r> {
    pub(crate) fn new(repo: &'r Repository, pack: &PackId, size: u64) -> Self {
        PackReader {
            repo,
            pack: *pack,
            file: PackFile::listed(&pack.to_hex(), size),
            hasher: Digest::stored_hasher(),
            buf: Vec::new(),
            buf_start: 0,
            floor: 0,
            pos: 0,
            preamble: Vec::new(),
        }
    }

    /// Bytes read from storage so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.pos
    }

    /// The first bytes of the pack, once read.
    pub(crate) fn preamble(&self) -> &[u8] {
        &self.preamble
    }

    /// Reads the next piece.
    fn read_piece(&mut self) -> Result<()> {
        let len = PIECE.min(self.file.size() - self.pos);
        let piece = self.file.read(self.repo, self.pos, len)?;
        self.hasher.update(&piece);
        if self.pos == 0 {
            self.preamble = piece[..piece.len().min(PACK_PREAMBLE_LEN + 4)].to_vec();
        }
        self.buf.extend_from_slice(&piece);
        self.pos += len;
        Ok(())
    }

    /// The stored bytes of the `len` bytes at `offset`, reading on as far as needed; bytes
    /// before `offset` are dropped. `Ok(Err(why))` for an extent that cannot be a blob's
    /// (beyond the end of the pack, before bytes already dropped, longer than any blob),
    /// with nothing read; `Err` when a read fails (storage failures as they are; a pack
    /// shorter than listed is `Corrupt`), after which nothing more can be read.
    pub(crate) fn extent(
        &mut self,
        offset: u64,
        len: u64,
    ) -> Result<std::result::Result<&[u8], String>> {
        let end = offset.saturating_add(len);
        if end > self.file.size() {
            return Ok(Err("lies beyond the end of its pack".into()));
        }
        if offset < self.floor {
            return Ok(Err("overlaps the blob before it".into()));
        }
        if len > MAX_STORED_BLOB {
            return Ok(Err(format!("is {len} bytes long, longer than any blob")));
        }
        // Drop what lies before the extent when reading on (only then: moving the rest of
        // the buffer down for every blob of a pack of small blobs costs more than reading).
        while self.pos < end {
            self.drop_before(offset);
            self.read_piece()?;
        }
        self.floor = offset;
        let from = (offset - self.buf_start) as usize;
        Ok(Ok(&self.buf[from..from + len as usize]))
    }

    fn drop_before(&mut self, offset: u64) {
        let upto = offset.clamp(self.buf_start, self.pos);
        self.buf.drain(..(upto - self.buf_start) as usize);
        self.buf_start = upto;
    }

    /// Reads the rest of the pack, keeping none of it; returns whether the whole pack
    /// hashes to its name.
    pub(crate) fn read_to_end(&mut self) -> Result<bool> {
        self.buf = Vec::new();
        while self.pos < self.file.size() {
            self.buf_start = self.pos;
            self.read_piece()?;
            self.buf.clear();
        }
        self.buf_start = self.pos;
        Ok(self.hasher.finalize() == self.pack.0)
    }
}
