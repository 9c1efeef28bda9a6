//! Blobs: the unit of deduplication. A stored blob is a clear 44-byte header followed by the
//! sealed (optionally compressed) plaintext; the header is the associated data, so its id,
//! type and lengths cannot be altered without failing authentication, and a pack can be
//! scanned blob by blob without its trailing header.
//!
//! ```text
//! off len field
//!   0   1 magic 0xB7                      (never change)
//!   1   1 blob type: 0 data, 1 tree
//!   2   1 compression: 0 none, 1 zstd
//!   3   1 reserved, 0
//!   4   4 raw length, u32 LE (plaintext before compression)
//!   8   4 payload length, u32 LE (nonce || ciphertext || tag)
//!  12  32 blob id (keyed BLAKE3 of the plaintext)
//!  44   . payload
//! ```

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::crypto::{MasterKey, SEAL_OVERHEAD};
use crate::dict::{Dictionaries, Dictionary};
use crate::envelope::{compress_with, decompress_with, Compression};
use crate::id::{BlobId, Digest};
use crate::{FormatError, MAX_OBJECT_SIZE};

/// First byte of every stored blob. Never change.
pub const BLOB_MAGIC: u8 = 0xB7;
/// Size of the clear blob header.
pub const BLOB_HEADER_LEN: usize = 44;

/// What a blob holds. Values are stored; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlobType {
    Data = 0,
    Tree = 1,
    /// A zstd dictionary for small data blobs (format v2, [`crate::dict`]).
    Dictionary = 2,
}

impl BlobType {
    pub fn from_byte(b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            2 => Ok(BlobType::Dictionary),
            other => Err(FormatError::malformed(
                "blob header",
                format!("unknown blob type {other}"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
            BlobType::Dictionary => "dictionary",
        }
    }
}

/// The clear header of a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    pub blob_type: BlobType,
    pub compression: Compression,
    pub raw_length: u32,
    pub payload_length: u32,
    pub id: BlobId,
}

impl BlobHeader {
    pub fn to_bytes(&self) -> [u8; BLOB_HEADER_LEN] {
        let mut h = [0u8; BLOB_HEADER_LEN];
        h[0] = BLOB_MAGIC;
        h[1] = self.blob_type as u8;
        h[2] = self.compression as u8;
        h[4..8].copy_from_slice(&self.raw_length.to_le_bytes());
        h[8..12].copy_from_slice(&self.payload_length.to_le_bytes());
        h[12..44].copy_from_slice(self.id.as_bytes());
        h
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < BLOB_HEADER_LEN {
            return Err(FormatError::malformed(
                "blob header",
                format!("{} bytes, need 44", bytes.len()),
            ));
        }
        if bytes[0] != BLOB_MAGIC {
            return Err(FormatError::malformed(
                "blob header",
                format!("bad magic {:#04x}", bytes[0]),
            ));
        }
        if bytes[3] != 0 {
            return Err(FormatError::malformed(
                "blob header",
                "reserved byte is not zero",
            ));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[12..44]);
        Ok(BlobHeader {
            blob_type: BlobType::from_byte(bytes[1])?,
            compression: Compression::from_byte("blob header", bytes[2])?,
            raw_length: u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")),
            payload_length: u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")),
            id: BlobId(Digest(id)),
        })
    }

    /// Total stored length: header plus payload.
    pub fn stored_length(&self) -> usize {
        BLOB_HEADER_LEN + self.payload_length as usize
    }
}

/// Compresses (when it pays) and seals a blob whose id the caller already computed.
pub fn encode_blob(
    key: &MasterKey,
    rng: &mut (impl RngCore + CryptoRng),
    blob_type: BlobType,
    id: BlobId,
    plaintext: &[u8],
    level: i32,
) -> Vec<u8> {
    encode_blob_with(key, rng, blob_type, id, plaintext, level, None)
}

/// Like [`encode_blob`], compressing against `dict` when one is given (data blobs of
/// format v2 repositories only).
pub fn encode_blob_with(
    key: &MasterKey,
    rng: &mut (impl RngCore + CryptoRng),
    blob_type: BlobType,
    id: BlobId,
    plaintext: &[u8],
    level: i32,
    dict: Option<&Dictionary>,
) -> Vec<u8> {
    let (compression, payload) = compress_with(plaintext, level, dict);
    let header = BlobHeader {
        blob_type,
        compression,
        raw_length: plaintext.len() as u32,
        payload_length: (payload.len() + SEAL_OVERHEAD) as u32,
        id,
    };
    let hb = header.to_bytes();
    let mut out = Vec::with_capacity(BLOB_HEADER_LEN + payload.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&hb);
    key.seal_into(rng, &hb, &payload, &mut out);
    out
}

/// Opens a stored blob, checking its type, its declared id and that the plaintext hashes to
/// that id. Returns the header and the plaintext.
pub fn decode_blob(
    key: &MasterKey,
    expected: Option<(BlobType, BlobId)>,
    stored: &[u8],
) -> Result<(BlobHeader, Vec<u8>), FormatError> {
    decode_blob_with(key, Dictionaries::none(), expected, stored)
}

/// Like [`decode_blob`], for repositories whose blobs may be compressed against one of
/// `dicts`.
pub fn decode_blob_with(
    key: &MasterKey,
    dicts: &Dictionaries,
    expected: Option<(BlobType, BlobId)>,
    stored: &[u8],
) -> Result<(BlobHeader, Vec<u8>), FormatError> {
    let header = BlobHeader::parse(stored)?;
    if stored.len() != header.stored_length() {
        return Err(FormatError::malformed(
            "blob",
            format!(
                "{} stored bytes, header says {}",
                stored.len(),
                header.stored_length()
            ),
        ));
    }
    if let Some((t, id)) = expected {
        if header.blob_type != t || header.id != id {
            return Err(FormatError::malformed(
                "blob",
                format!(
                    "expected {} blob {}, found {} blob {}",
                    t.name(),
                    id,
                    header.blob_type.name(),
                    header.id
                ),
            ));
        }
    }
    if header.raw_length as usize > MAX_OBJECT_SIZE {
        return Err(FormatError::malformed(
            "blob",
            "raw length exceeds the limit",
        ));
    }
    let payload = key.open(
        "blob",
        &stored[..BLOB_HEADER_LEN],
        &stored[BLOB_HEADER_LEN..],
    )?;
    let plain = decompress_with(
        "blob",
        header.compression,
        &payload,
        header.raw_length as usize,
        dicts,
    )?;
    if key.blob_id(&plain) != header.id {
        return Err(FormatError::malformed(
            "blob",
            format!("content does not hash to its id {}", header.id),
        ));
    }
    Ok((header, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn blob_round_trip_and_damage() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let key = MasterKey::random(&mut rng);
        let data = vec![42u8; 5000];
        let id = key.blob_id(&data);
        let stored = encode_blob(&key, &mut rng, BlobType::Data, id, &data, 3);
        let (h, plain) = decode_blob(&key, Some((BlobType::Data, id)), &stored).unwrap();
        assert_eq!(plain, data);
        assert_eq!(h.compression, Compression::Zstd);
        assert!(decode_blob(&key, Some((BlobType::Tree, id)), &stored).is_err());
        for i in [0, 1, 2, 5, 9, 20, 50, stored.len() - 1] {
            let mut bad = stored.clone();
            bad[i] ^= 0x40;
            assert!(
                decode_blob(&key, None, &bad).is_err(),
                "flip at {i} undetected"
            );
        }
        assert!(decode_blob(&key, None, &stored[..stored.len() - 1]).is_err());
    }
}
