//! Reading packs: the one place the engine reads bytes of a pack. [`PackFile::read`] reads
//! a byte range (every blob read through the index — trees, `copy`, the vfs, `cat` —, the
//! runs of file and stream restores, prune's copies); [`PackReader`] streams a whole pack
//! a piece at a time through it (`check --read-data`, `repair index`); [`pack_header`]
//! reads and opens a pack's sealed header (check, repair, prune).
//!
//! What every read guarantees, whoever calls it:
//! - A range that does not lie inside the pack, as its size is known (from the index or
//!   from a listing), is `Corrupt` and is not read: no damaged length makes a request, or
//!   an allocation, larger than the pack.
//! - Exactly the bytes asked for come back, or a `Corrupt` error (the pack is shorter than
//!   its known size): callers slice what they get without checking again.
//! - A missing pack means what the pack was read for. One the index names
//!   ([`PackFile::indexed`]) is `Corrupt`, and the error names the pack and what it held:
//!   the repository lost data. One a listing named ([`PackFile::listed`]) keeps storage's
//!   `NotFound`: it went while we worked, which is no damage, and repair and prune decide
//!   what to delete on `Corrupt`.
//! - Every other storage failure stays what it is.

mod metadata;
mod stream;

use std::fmt;

use bytes::Bytes;
use strata_format::blob::BlobType;
use strata_format::id::{BlobId, PackId};
use strata_format::pack::{check_preamble, read_pack_header_tail, PackBlob, PACK_PREAMBLE_LEN};
use strata_storage::{Backend, ErrorKind as StorageKind, FileType};

use crate::{EngineError, Repository, Result};

pub(crate) use metadata::MetadataPacks;
pub(crate) use stream::PackReader;

/// What a pack the index names was read for: named when the pack is missing.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Held {
    /// One blob, read through the index.
    Blob(BlobType, BlobId),
    /// Content of files being restored.
    FileContent,
    /// Content of a stream being written out (`dump`, database restores).
    StreamData,
    /// Blobs that prune keeps, being copied out of a pack it rewrites.
    KeptBlobs,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Blob(t, id) => write!(f, "{} blob {id}", t.name()),
            Held::FileContent => f.write_str("restored file content"),
            Held::StreamData => f.write_str("stream data"),
            Held::KeptBlobs => f.write_str("blobs prune keeps"),
        }
    }
}

/// A pack to read from: its name, its size, and why it is read (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct PackFile {
    name: String,
    size: u64,
    /// `Some` for a pack the index names.
    held: Option<Held>,
}

impl PackFile {
    /// A pack the index names, with the size it records, read for what it holds.
    pub(crate) fn indexed(id: &PackId, size: u64, held: Held) -> Self {
        PackFile {
            name: id.to_hex(),
            size,
            held: Some(held),
        }
    }

    /// A pack as a listing of storage names it, with the listed size.
    pub(crate) fn listed(name: &str, size: u64) -> Self {
        PackFile {
            name: name.to_string(),
            size,
            held: None,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The `len` bytes at `offset`, through the repository's runtime.
    pub(crate) fn read(&self, repo: &Repository, offset: u64, len: u64) -> Result<Bytes> {
        repo.block_on(self.read_on(&**repo.backend(), offset, len))
    }

    /// The `len` bytes at `offset`, for callers already on a runtime.
    pub(crate) async fn read_on(
        &self,
        backend: &dyn Backend,
        offset: u64,
        len: u64,
    ) -> Result<Bytes> {
        let corrupt = |what: String| EngineError::Corrupt(format!("pack {}: {what}", self.name));
        if offset.checked_add(len).is_none_or(|end| end > self.size) {
            return Err(corrupt(format!(
                "{len} bytes at offset {offset} lie beyond its end ({} bytes as {})",
                self.size,
                self.known_from()
            )));
        }
        let bytes = backend
            .read_range(FileType::Pack, &self.name, offset, len)
            .await
            .map_err(|e| match (e.kind, self.held) {
                (StorageKind::NotFound, Some(held)) => {
                    EngineError::Corrupt(format!("pack {} holding {held} is missing", self.name))
                }
                _ => e.into(),
            })?;
        if bytes.len() as u64 != len {
            return Err(corrupt(format!(
                "{len} bytes asked for at offset {offset}, {} read (the pack is shorter than \
                 {})",
                bytes.len(),
                self.known_from()
            )));
        }
        Ok(bytes)
    }

    /// Where the size came from.
    fn known_from(&self) -> &'static str {
        if self.held.is_some() {
            "indexed"
        } else {
            "listed"
        }
    }
}

/// The sealed header and trailer at the end of a pack of `size` bytes as listed, read with
/// two ranged reads (for `check`, which did not keep the pieces, and `repair index`, which
/// reads only headers). Damage is a `Corrupt` error naming the pack; storage failures stay
/// what they are.
pub(crate) fn pack_tail(repo: &Repository, name: &str, size: u64) -> Result<Vec<u8>> {
    let pack = PackFile::listed(name, size);
    let corrupt = |what: String| Err(EngineError::Corrupt(format!("pack {name}: {what}")));
    if size < 4 {
        return corrupt("too short for a trailer".into());
    }
    let trailer = pack.read(repo, size - 4, 4)?;
    let hlen = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as u64;
    if hlen + 4 > size {
        return corrupt(format!("header length {hlen} exceeds the pack"));
    }
    Ok(pack.read(repo, size - 4 - hlen, hlen + 4)?.to_vec())
}

/// Reads and opens the sealed header at the end of a pack (checking its preamble): the
/// blobs it lists. Damage (or another key) is a `Corrupt` error; storage failures stay what
/// they are.
pub(crate) fn pack_header(repo: &Repository, name: &str, size: u64) -> Result<Vec<PackBlob>> {
    if size < (PACK_PREAMBLE_LEN + 4) as u64 {
        return Err(EngineError::Corrupt(format!(
            "pack {name} is too short to be a pack"
        )));
    }
    let preamble = PackFile::listed(name, size).read(repo, 0, PACK_PREAMBLE_LEN as u64 + 4)?;
    let tail = pack_tail(repo, name, size)?;
    check_preamble(&preamble)
        .and_then(|_| read_pack_header_tail(repo.key(), &tail, size as usize))
        .map_err(|e| EngineError::format(format!("pack {name}"), e))
}

#[cfg(test)]
mod tests {
    use strata_format::id::Digest;
    use strata_storage::OpendalBackend;

    use super::*;
    use crate::{EngineRuntime, ErrorKind};

    /// A memory backend holding one "pack" of 100 bytes; its id and the runtime.
    fn one_pack() -> (OpendalBackend, PackId, EngineRuntime) {
        let rt = EngineRuntime::new().unwrap();
        let backend = OpendalBackend::memory().unwrap();
        let bytes: Vec<u8> = (0..100).collect();
        let id = PackId(Digest::of_stored(&bytes));
        rt.block_on(backend.write(FileType::Pack, &id.to_hex(), Bytes::from(bytes)))
            .unwrap();
        (backend, id, rt)
    }

    #[test]
    fn reads_exactly_the_range_asked_for() {
        let (backend, id, rt) = one_pack();
        for pack in [
            PackFile::indexed(&id, 100, Held::FileContent),
            PackFile::listed(&id.to_hex(), 100),
        ] {
            let got = rt.block_on(pack.read_on(&backend, 90, 10)).unwrap();
            assert_eq!(&got[..], &(90..100).collect::<Vec<u8>>()[..]);
        }
    }

    #[test]
    fn a_range_beyond_the_known_size_is_corrupt_and_not_read() {
        let (backend, id, rt) = one_pack();
        // The pack is 100 bytes in storage: only the known size can refuse these.
        let pack = PackFile::indexed(&id, 50, Held::FileContent);
        let err = rt.block_on(pack.read_on(&backend, 40, 20)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(
            err.to_string()
                .contains("beyond its end (50 bytes as indexed)"),
            "{err}"
        );
        let pack = PackFile::listed(&id.to_hex(), 100);
        let err = rt
            .block_on(pack.read_on(&backend, u64::MAX, 2))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }

    #[test]
    fn a_missing_pack_the_index_names_is_corrupt_and_says_what_it_held() {
        let (backend, _, rt) = one_pack();
        let gone = PackId(Digest([9; 32]));
        let blob = BlobId(Digest([3; 32]));
        let pack = PackFile::indexed(&gone, 100, Held::Blob(BlobType::Tree, blob));
        let err = rt.block_on(pack.read_on(&backend, 0, 10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(
            err.to_string(),
            format!("pack {gone} holding tree blob {blob} is missing")
        );
    }

    #[test]
    fn a_missing_pack_a_listing_named_stays_a_storage_error() {
        let (backend, _, rt) = one_pack();
        let gone = PackId(Digest([9; 32]));
        let pack = PackFile::listed(&gone.to_hex(), 100);
        let err = rt.block_on(pack.read_on(&backend, 0, 10)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
        assert!(
            matches!(&err, EngineError::Storage(e) if e.kind == StorageKind::NotFound),
            "{err:?}"
        );
    }
}
