//! Pack files: blobs of one type appended after a magic, then a sealed pack header listing
//! them, then the header's length.
//!
//! ```text
//! "STRATAPK" (8) || version u16 LE (=1)
//! blob*                                  (see blob.rs)
//! sealed pack header                      (envelope kind "packheader", data = version || postcard(Vec<PackBlob>))
//! header length, u32 LE                   (of the sealed pack header)
//! ```
//! The pack id is the BLAKE3 of the whole file.

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::blob::{BlobType, BLOB_HEADER_LEN};
use crate::crypto::MasterKey;
use crate::envelope::{decode_postcard, encode_versioned, open_object, seal_object, split_version};
use crate::id::BlobId;
use crate::FormatError;

/// First bytes of every pack. Never change.
pub const PACK_MAGIC: &[u8; 8] = b"STRATAPK";
/// Pack layout version written by this program.
pub const PACK_VERSION: u16 = 1;
/// Length of magic plus version.
pub const PACK_PREAMBLE_LEN: usize = 10;
/// Version of the encoded pack header list.
pub const PACK_HEADER_VERSION: u16 = 1;

/// One blob's place in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackBlob {
    pub blob_type: BlobType,
    pub id: BlobId,
    /// Offset of the blob's clear header from the start of the pack.
    pub offset: u32,
    /// Stored length (clear header + payload).
    pub length: u32,
    /// Plaintext length.
    pub raw_length: u32,
}

/// Assembles a pack in memory. Pure: the caller decides when it is full and stores it.
#[derive(Debug)]
pub struct PackBuilder {
    buf: Vec<u8>,
    blobs: Vec<PackBlob>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::with_capacity(1 << 20)
    }

    /// A builder whose buffer holds `capacity` bytes before it must grow (growing doubles
    /// it, so a caller that knows its pack size passes it plus the largest blob).
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(PACK_PREAMBLE_LEN));
        buf.extend_from_slice(&preamble());
        PackBuilder {
            buf,
            blobs: Vec::new(),
        }
    }

    /// Appends a stored blob (as made by `encode_blob`).
    pub fn add(&mut self, blob_type: BlobType, id: BlobId, raw_length: u32, stored: &[u8]) {
        self.blobs.push(PackBlob {
            blob_type,
            id,
            offset: self.buf.len() as u32,
            length: stored.len() as u32,
            raw_length,
        });
        self.buf.extend_from_slice(stored);
    }

    /// Bytes so far (without the header to come).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn blobs(&self) -> &[PackBlob] {
        &self.blobs
    }

    /// Seals the header, appends it and its length, and returns the bytes and the blob list.
    pub fn finish(
        mut self,
        key: &MasterKey,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (Vec<u8>, Vec<PackBlob>) {
        self.buf.extend_from_slice(&trailer(key, rng, &self.blobs));
        (self.buf, self.blobs)
    }
}

/// The first bytes of every pack: magic and version.
pub fn preamble() -> [u8; PACK_PREAMBLE_LEN] {
    let mut p = [0u8; PACK_PREAMBLE_LEN];
    p[..8].copy_from_slice(PACK_MAGIC);
    p[8..].copy_from_slice(&PACK_VERSION.to_le_bytes());
    p
}

/// What follows the blobs of a pack: the sealed header listing `blobs`, and its length
/// (u32 LE). For writers that stream blobs elsewhere than a [`PackBuilder`].
pub fn trailer(
    key: &MasterKey,
    rng: &mut (impl RngCore + CryptoRng),
    blobs: &[PackBlob],
) -> Vec<u8> {
    let data = encode_versioned(PACK_HEADER_VERSION, &blobs);
    let mut out = seal_object(key, rng, "packheader", b"", &data, 3);
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// Checks the preamble of a pack.
pub fn check_preamble(pack: &[u8]) -> Result<(), FormatError> {
    if pack.len() < PACK_PREAMBLE_LEN + 4 || &pack[..8] != PACK_MAGIC {
        return Err(FormatError::malformed("pack", "missing STRATAPK magic"));
    }
    let version = u16::from_le_bytes([pack[8], pack[9]]);
    if version == 0 {
        return Err(FormatError::malformed("pack", "version 0 is never written"));
    }
    if version > PACK_VERSION {
        return Err(FormatError::UnknownVersion {
            object: "pack",
            found: version,
            supported: PACK_VERSION,
        });
    }
    Ok(())
}

/// Decodes the blob list of a whole pack and validates that every entry lies inside the blob
/// area, in order, without overlap.
pub fn read_pack_header(key: &MasterKey, pack: &[u8]) -> Result<Vec<PackBlob>, FormatError> {
    check_preamble(pack)?;
    read_pack_header_tail(key, pack, pack.len())
}

/// Like [`read_pack_header`], from only the last bytes of a pack of `pack_len` bytes
/// (`tail` must hold the sealed header and the trailer; more is fine). The preamble is not
/// checked here: see [`check_preamble`].
pub fn read_pack_header_tail(
    key: &MasterKey,
    tail: &[u8],
    pack_len: usize,
) -> Result<Vec<PackBlob>, FormatError> {
    let n = pack_len;
    let t = tail.len();
    if t < 4 || t > n || n < PACK_PREAMBLE_LEN + 4 {
        return Err(FormatError::malformed("pack", "too short for a trailer"));
    }
    let hlen = u32::from_le_bytes(tail[t - 4..].try_into().expect("4 bytes")) as usize;
    if hlen > n - 4 - PACK_PREAMBLE_LEN || hlen > t - 4 {
        return Err(FormatError::malformed(
            "pack",
            format!("header length {hlen} exceeds the pack"),
        ));
    }
    let header_start = n - 4 - hlen;
    let data = open_object(
        key,
        "pack header",
        "packheader",
        b"",
        &tail[t - 4 - hlen..t - 4],
    )?;
    let (_, body) = split_version("pack header", &data, PACK_HEADER_VERSION)?;
    let blobs: Vec<PackBlob> = decode_postcard("pack header", body)?;
    let mut pos = PACK_PREAMBLE_LEN;
    for b in &blobs {
        let (off, len) = (b.offset as usize, b.length as usize);
        if off < pos || len < BLOB_HEADER_LEN || off + len > header_start {
            return Err(FormatError::malformed(
                "pack header",
                format!("blob {} has an invalid extent", b.id),
            ));
        }
        pos = off + len;
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{decode_blob, encode_blob};
    use rand::SeedableRng;

    #[test]
    fn pack_round_trip() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let key = MasterKey::random(&mut rng);
        let mut pb = PackBuilder::new();
        let mut want = Vec::new();
        for i in 0..5u8 {
            let data = vec![i; 100 * i as usize + 1];
            let id = key.blob_id(&data);
            let stored = encode_blob(&key, &mut rng, BlobType::Data, id, &data, 3);
            pb.add(BlobType::Data, id, data.len() as u32, &stored);
            want.push(data);
        }
        let (bytes, blobs) = pb.finish(&key, &mut rng);
        let read = read_pack_header(&key, &bytes).unwrap();
        assert_eq!(read, blobs);
        for (b, data) in read.iter().zip(&want) {
            let s = &bytes[b.offset as usize..(b.offset + b.length) as usize];
            assert_eq!(
                &decode_blob(&key, Some((b.blob_type, b.id)), s).unwrap().1,
                data
            );
        }
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] = 0xff;
        assert!(read_pack_header(&key, &bad).is_err());
    }
}
