//! `check --read-data`: reading every pack (or a chosen subset of the packs) from end to
//! end, a piece at a time, and verifying every byte of it; and the [`PackReader`] that
//! does the reading, which `repair index` shares.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use strata_format::id::{BlobId, Digest, PackId, StoredHasher};
use strata_format::pack::{check_preamble, read_pack_header_tail, PackBlob, PACK_PREAMBLE_LEN};
use strata_storage::FileType;

use crate::index::{BlobLocation, MasterIndex};
use crate::progress::Progress;
use crate::{EngineError, Repository, Result};

use super::Subset;

/// Bytes read from a pack at a time.
const PIECE: u64 = 4 << 20;

/// Longest stored blob: the largest object, its blob header and what sealing adds, with room
/// to spare. Longer extents are damage, never read into memory.
const MAX_STORED_BLOB: u64 = strata_format::MAX_OBJECT_SIZE as u64 + (1 << 20);

/// Damaged blobs listed one by one per pack, at most; the rest are counted.
const MAX_LISTED_PER_PACK: usize = 20;

/// What reading the data found.
pub(super) struct Damage {
    pub errors: Vec<String>,
    /// Blobs that failed to verify, with the reason (for naming the snapshots and paths).
    pub bad_blobs: HashMap<BlobId, String>,
    pub bytes_read: u64,
    /// Packs read (whole or until they failed to read).
    pub packs_read: u64,
}

/// A pack, its size, and the blobs the index places in it.
type PackToCheck = (PackId, u64, Vec<(BlobId, BlobLocation)>);

#[derive(Default)]
struct PackOutcome {
    errors: Vec<String>,
    bad: Vec<(BlobId, String)>,
    bytes: u64,
}

/// Reads and verifies every pack the index names, or those of them in `subset`, in
/// parallel. Packs in `skip` (already known to be missing or of the wrong size) are never
/// read, nor counted when a percentage is taken.
pub(super) fn check_packs(
    repo: &Repository,
    index: &MasterIndex,
    skip: &HashSet<PackId>,
    subset: Option<&Subset>,
    progress: &dyn Progress,
) -> Damage {
    // Each pack once (by pack id: a pack can be listed twice).
    let mut seen: HashSet<PackId> = HashSet::new();
    let mut chosen: Vec<(PackId, u64)> = index
        .packs()
        .iter()
        .filter(|(id, _)| !skip.contains(id) && seen.insert(*id))
        .copied()
        .collect();
    drop(seen);
    if let Some(subset) = subset {
        chosen = subset.select(chosen, |p| p.0, &mut rand::thread_rng());
        tracing::debug!(%subset, packs = chosen.len(), "reading a subset of the packs");
    }
    // The blobs the index places in each chosen pack.
    let mut pos_of: HashMap<PackId, usize> = HashMap::new();
    let mut packs: Vec<PackToCheck> = Vec::with_capacity(chosen.len());
    for (id, size) in chosen {
        pos_of.insert(id, packs.len());
        packs.push((id, size, Vec::new()));
    }
    for (id, loc) in index.iter() {
        let (pack, _) = index.pack(loc.pack);
        if let Some(&p) = pos_of.get(&pack) {
            packs[p].2.push((id, loc));
        }
    }
    drop(pos_of);
    progress.set_total(packs.iter().map(|p| p.1).sum());
    let outcomes: Vec<PackOutcome> = packs
        .par_iter_mut()
        .map(|(pack, size, blobs)| {
            // Cancelled: the packs not read yet are left out (the caller fails).
            if progress.should_stop() {
                return PackOutcome::default();
            }
            blobs.sort_unstable_by_key(|(_, loc)| loc.offset);
            let out = check_pack(repo, pack, *size, blobs);
            progress.add_bytes(out.bytes);
            // Done with this pack's list: free it while the others are read.
            *blobs = Vec::new();
            out
        })
        .collect();
    let mut damage = Damage {
        errors: Vec::new(),
        bad_blobs: HashMap::new(),
        bytes_read: 0,
        packs_read: outcomes.len() as u64,
    };
    for o in outcomes {
        damage.errors.extend(o.errors);
        damage.bad_blobs.extend(o.bad);
        damage.bytes_read += o.bytes;
    }
    damage
}

fn check_pack(
    repo: &Repository,
    pack: &PackId,
    size: u64,
    blobs: &[(BlobId, BlobLocation)],
) -> PackOutcome {
    let name = pack.to_hex();
    let mut out = PackOutcome {
        errors: Vec::new(),
        bad: Vec::new(),
        bytes: 0,
    };
    if let Err(e) = crate::stored::check_size(FileType::Pack, &name, size) {
        let msg = format!("pack {name} could not be read: {e}");
        out.errors.push(msg.clone());
        out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
        return out;
    }
    // Each blob is verified as soon as its bytes are read: memory stays at a piece plus
    // one blob (see `PackReader`).
    let mut reader = PackReader::new(repo, pack, size);
    let mut problems: Vec<(usize, String)> = Vec::new();
    for (i, (id, loc)) in blobs.iter().enumerate() {
        let stored = match reader.extent(loc.offset as u64, loc.length as u64) {
            Ok(Ok(s)) => s,
            Ok(Err(why)) => {
                problems.push((i, why));
                continue;
            }
            Err(e) => {
                let msg = format!("pack {name} could not be read: {e}");
                out.errors.push(msg.clone());
                out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
                out.bytes = reader.bytes_read();
                return out;
            }
        };
        match repo.decode_stored_blob(loc.blob_type, id, pack, stored) {
            Err(e) => problems.push((i, e.to_string())),
            Ok(plain) if plain.len() != loc.raw_length as usize => problems.push((
                i,
                format!(
                    "decodes to {} bytes, the index records {}",
                    plain.len(),
                    loc.raw_length
                ),
            )),
            Ok(_) => {}
        }
    }
    let whole = reader.read_to_end();
    out.bytes = reader.bytes_read();
    let hash_ok = match whole {
        Ok(ok) => ok,
        Err(e) => {
            let msg = format!("pack {name} could not be read: {e}");
            out.errors.push(msg.clone());
            out.bad = blobs.iter().map(|(id, _)| (*id, msg.clone())).collect();
            return out;
        }
    };
    let preamble = reader.preamble().to_vec();
    drop(reader);
    if !hash_ok {
        out.errors.push(format!(
            "pack {name}: content does not hash to its name (damaged)"
        ));
    }
    let tail = pack_tail(repo, &name, size).map_err(|e| e.to_string());
    let header = tail.and_then(|t| {
        check_preamble(&preamble)
            .and_then(|_| read_pack_header_tail(repo.key(), &t, size as usize))
            .map_err(|e| e.to_string())
    });
    match header {
        Err(e) => out.errors.push(format!("pack {name}: header: {e}")),
        Ok(header) => {
            let listed: HashMap<BlobId, _> = header.iter().map(|b| (b.id, b)).collect();
            for (id, loc) in blobs {
                let agrees = listed.get(id).is_some_and(|b| {
                    b.blob_type == loc.blob_type
                        && b.offset == loc.offset
                        && b.length == loc.length
                        && b.raw_length == loc.raw_length
                });
                if !agrees {
                    out.errors.push(format!(
                        "pack {name}: the index places {} blob {id} at offset {}, the pack header does not",
                        loc.blob_type.name(),
                        loc.offset
                    ));
                }
            }
        }
    }
    let mut damaged = 0usize;
    for (i, p) in problems {
        let (id, loc) = &blobs[i];
        damaged += 1;
        if damaged <= MAX_LISTED_PER_PACK {
            out.errors.push(format!(
                "pack {name}: {} blob {id} is damaged: {p}",
                loc.blob_type.name()
            ));
        }
        out.bad.push((*id, format!("in pack {name}: {p}")));
    }
    if damaged > MAX_LISTED_PER_PACK {
        out.errors.push(format!(
            "pack {name}: {} more damaged blobs not listed",
            damaged - MAX_LISTED_PER_PACK
        ));
    }
    out
}

/// Reads one pack front to back in pieces of [`PIECE`] bytes, hashing every byte, and hands
/// out the stored bytes of extents asked for in increasing order of offset as soon as they
/// are read. Bytes before the extent asked for are dropped, so memory stays at a piece
/// plus one blob however large the pack is. `check --read-data` verifies packs through it,
/// and `repair index` reads and salvages them through it.
pub(crate) struct PackReader<'r> {
    repo: &'r Repository,
    pack: PackId,
    name: String,
    size: u64,
    hasher: StoredHasher,
    /// The pack's bytes from `buf_start` to `pos`.
    buf: Vec<u8>,
    buf_start: u64,
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
            name: pack.to_hex(),
            size,
            hasher: Digest::stored_hasher(),
            buf: Vec::new(),
            buf_start: 0,
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
        let len = PIECE.min(self.size - self.pos);
        let piece = self.repo.block_on(self.repo.backend().read_range(
            FileType::Pack,
            &self.name,
            self.pos,
            len,
        ))?;
        if piece.len() as u64 != len {
            return Err(EngineError::Corrupt(format!(
                "pack {}: {len} bytes asked for at offset {}, {} read (the pack is shorter \
                 than listed)",
                self.name,
                self.pos,
                piece.len()
            )));
        }
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
        if end > self.size {
            return Ok(Err("lies beyond the end of its pack".into()));
        }
        if offset < self.buf_start {
            return Ok(Err("overlaps the blob before it".into()));
        }
        if len > MAX_STORED_BLOB {
            return Ok(Err(format!("is {len} bytes long, longer than any blob")));
        }
        // Drop what lies before the extent, also while reading up to it.
        while self.pos < end {
            self.drop_before(offset);
            self.read_piece()?;
        }
        self.drop_before(offset);
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
        while self.pos < self.size {
            self.buf_start = self.pos;
            self.read_piece()?;
            self.buf.clear();
        }
        self.buf_start = self.pos;
        Ok(self.hasher.finalize() == self.pack.0)
    }
}

/// The sealed header and trailer at the end of a pack of `size` bytes, read with two
/// ranged reads (for `check`, which did not keep the pieces, and `repair index`, which
/// reads only headers). Damage is a `Corrupt` error; storage failures stay what they are.
pub(crate) fn pack_tail(repo: &Repository, name: &str, size: u64) -> Result<Vec<u8>> {
    let read = |offset: u64, len: u64| {
        repo.block_on(repo.backend().read_range(FileType::Pack, name, offset, len))
    };
    let corrupt = |what: String| Err(EngineError::Corrupt(what));
    if size < 4 {
        return corrupt("too short for a trailer".into());
    }
    let trailer = read(size - 4, 4)?;
    let Some(len) = trailer.get(..4) else {
        return corrupt(format!("its trailer reads as {} bytes", trailer.len()));
    };
    let hlen = u32::from_le_bytes(len.try_into().expect("4 bytes")) as u64;
    if hlen + 4 > size {
        return corrupt(format!("header length {hlen} exceeds the pack"));
    }
    Ok(read(size - 4 - hlen, hlen + 4)?.to_vec())
}

/// Reads and opens the sealed header at the end of a pack (checking its preamble): the
/// blobs it lists. Damage (or another key) is a `Corrupt` error; storage failures stay what
/// they are.
pub(crate) fn pack_header(repo: &Repository, name: &str, size: u64) -> Result<Vec<PackBlob>> {
    let read = |offset: u64, len: u64| {
        repo.block_on(repo.backend().read_range(FileType::Pack, name, offset, len))
    };
    if size < (PACK_PREAMBLE_LEN + 4) as u64 {
        return Err(EngineError::Corrupt(format!(
            "pack {name} is too short to be a pack"
        )));
    }
    let preamble = read(0, PACK_PREAMBLE_LEN as u64 + 4)?;
    let tail = pack_tail(repo, name, size).map_err(|e| match e {
        EngineError::Corrupt(what) => EngineError::Corrupt(format!("pack {name}: {what}")),
        other => other,
    })?;
    check_preamble(&preamble)
        .and_then(|_| read_pack_header_tail(repo.key(), &tail, size as usize))
        .map_err(|e| EngineError::format(format!("pack {name}"), e))
}
