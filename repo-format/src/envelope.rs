//! The envelope shared by every encrypted object file (config body, index, snapshot, lock)
//! and the versioned encoding of structured values.
//!
//! ```text
//! stored   = seal(enc_key, aad = "strata:" || kind [|| extra], plaintext)
//! plaintext = compression (u8: 0 none, 1 zstd) || raw_length (u32 LE) || data
//! data      = version (u16 LE) || postcard(value)        (after decompression)
//! ```

use std::cell::RefCell;

use rand::{CryptoRng, RngCore};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::crypto::MasterKey;
use zstd::zstd_safe::{CCtx, CParameter, DCtx, DictAttachPref, ResetDirective};

use crate::dict::{Dictionaries, Dictionary};
use crate::{FormatError, MAX_OBJECT_SIZE};

/// Compression of a blob or object payload. Values are stored; never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Zstd = 1,
    /// zstd against a repository dictionary named by the frame (blobs only, format v2).
    ZstdDict = 2,
}

impl Compression {
    pub fn from_byte(object: &'static str, b: u8) -> Result<Self, FormatError> {
        match b {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Zstd),
            2 => Ok(Compression::ZstdDict),
            other => Err(FormatError::malformed(
                object,
                format!("unknown compression {other}"),
            )),
        }
    }
}

thread_local! {
    /// One zstd compression context per thread (and level), reused: creating one costs
    /// more than compressing a small blob.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    /// One zstd decompression context per thread, reused for the same reason.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    /// Contexts for compressing against prepared dictionaries.
    static DICT_CCTX: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DICT_DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

fn zstd_error(code: usize) -> std::io::Error {
    std::io::Error::other(zstd::zstd_safe::get_error_name(code))
}

fn zstd_compress_dict(data: &[u8], level: i32, dict: &Dictionary) -> std::io::Result<Vec<u8>> {
    DICT_CCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cctx = match &mut *slot {
            Some(c) => c,
            none => none
                .insert(CCtx::try_create().ok_or_else(|| std::io::Error::other("zstd context"))?),
        };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(data.len()));
        // Attach the prepared dictionary rather than letting zstd copy its tables into the
        // context, which it does for inputs over a few KiB and which costs more than
        // compressing a small blob. The reset afterwards drops the reference.
        let result = dict
            .with_cdict(level, |cdict| {
                cctx.set_parameter(CParameter::ForceAttachDict(DictAttachPref::ForceAttach))?;
                cctx.ref_cdict(cdict)?;
                cctx.compress2(&mut out, data)
            })
            .ok_or_else(|| std::io::Error::other("zstd could not prepare the dictionary"));
        cctx.reset(ResetDirective::SessionAndParameters)
            .map_err(zstd_error)?;
        result?.map_err(zstd_error)?;
        Ok(out)
    })
}

fn zstd_decompress_dict(
    data: &[u8],
    capacity: usize,
    dict: &Dictionary,
) -> std::io::Result<Vec<u8>> {
    let ddict = dict
        .ddict()
        .ok_or_else(|| std::io::Error::other("zstd could not load the dictionary"))?;
    DICT_DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = match &mut *slot {
            Some(c) => c,
            none => none
                .insert(DCtx::try_create().ok_or_else(|| std::io::Error::other("zstd context"))?),
        };
        let mut out = Vec::with_capacity(capacity);
        dctx.decompress_using_ddict(&mut out, data, ddict)
            .map_err(zstd_error)?;
        Ok(out)
    })
}

fn zstd_compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(data)
    })
}

fn zstd_decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut().expect("set above").decompress(data, capacity)
    })
}

/// Compresses with zstd at `level`, unless that does not make the data smaller.
pub fn compress(data: &[u8], level: i32) -> (Compression, Vec<u8>) {
    if data.len() >= 64 {
        if let Ok(c) = zstd_compress(data, level) {
            if c.len() < data.len() {
                return (Compression::Zstd, c);
            }
        }
    }
    (Compression::None, data.to_vec())
}

/// Compresses like [`compress`], against `dict` when one is given (compression
/// [`Compression::ZstdDict`]; the frame records the dictionary id).
pub fn compress_with(data: &[u8], level: i32, dict: Option<&Dictionary>) -> (Compression, Vec<u8>) {
    let Some(dict) = dict else {
        return compress(data, level);
    };
    if data.len() >= 64 {
        match zstd_compress_dict(data, level, dict) {
            Ok(c) if c.len() < data.len() => return (Compression::ZstdDict, c),
            Ok(_) => {}
            // The dictionary could not be used: plain zstd still applies.
            Err(_) => return compress(data, level),
        }
    }
    (Compression::None, data.to_vec())
}

/// Reverses [`compress`], checking the result is exactly `raw_length` bytes.
pub fn decompress(
    object: &'static str,
    compression: Compression,
    data: &[u8],
    raw_length: usize,
) -> Result<Vec<u8>, FormatError> {
    decompress_with(object, compression, data, raw_length, Dictionaries::none())
}

/// Reverses [`compress_with`]: a dictionary-compressed frame must name one of `dicts`.
pub fn decompress_with(
    object: &'static str,
    compression: Compression,
    data: &[u8],
    raw_length: usize,
    dicts: &Dictionaries,
) -> Result<Vec<u8>, FormatError> {
    if raw_length > MAX_OBJECT_SIZE {
        return Err(FormatError::malformed(
            object,
            format!("declared size {raw_length} exceeds the limit"),
        ));
    }
    let out = match compression {
        Compression::None => data.to_vec(),
        Compression::Zstd => zstd_decompress(data, raw_length)
            .map_err(|e| FormatError::malformed(object, format!("zstd: {e}")))?,
        Compression::ZstdDict => {
            let id = zstd::zstd_safe::get_dict_id_from_frame(data).ok_or_else(|| {
                FormatError::malformed(object, "dictionary-compressed frame names no dictionary")
            })?;
            let dict = dicts.get(id.get()).ok_or(FormatError::MissingDictionary {
                object,
                id: id.get(),
            })?;
            zstd_decompress_dict(data, raw_length, dict)
                .map_err(|e| FormatError::malformed(object, format!("zstd: {e}")))?
        }
    };
    if out.len() != raw_length {
        return Err(FormatError::malformed(
            object,
            format!(
                "decompressed to {} bytes, header says {raw_length}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Encodes `value` as `version (u16 LE) || postcard(value)`.
pub fn encode_versioned<T: Serialize>(version: u16, value: &T) -> Vec<u8> {
    let out = version.to_le_bytes().to_vec();
    postcard::to_extend(value, out).expect("postcard encodes into a Vec")
}

/// Splits off the version of a versioned encoding, refusing versions above `supported`.
pub fn split_version<'a>(
    object: &'static str,
    data: &'a [u8],
    supported: u16,
) -> Result<(u16, &'a [u8]), FormatError> {
    if data.len() < 2 {
        return Err(FormatError::malformed(object, "shorter than its version"));
    }
    let version = u16::from_le_bytes([data[0], data[1]]);
    if version == 0 {
        return Err(FormatError::malformed(object, "version 0 is never written"));
    }
    if version > supported {
        return Err(FormatError::UnknownVersion {
            object,
            found: version,
            supported,
        });
    }
    Ok((version, &data[2..]))
}

/// Decodes a postcard body, requiring that it consumes every byte.
pub fn decode_postcard<T: DeserializeOwned>(
    object: &'static str,
    body: &[u8],
) -> Result<T, FormatError> {
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|e| FormatError::malformed(object, e.to_string()))?;
    if !rest.is_empty() {
        return Err(FormatError::malformed(
            object,
            format!("{} trailing bytes", rest.len()),
        ));
    }
    Ok(value)
}

/// The associated data of an object of `kind`, optionally bound to `extra` bytes.
pub fn aad(kind: &str, extra: &[u8]) -> Vec<u8> {
    let mut a = b"strata:".to_vec();
    a.extend_from_slice(kind.as_bytes());
    a.extend_from_slice(extra);
    a
}

/// Compresses and seals an already versioned encoding.
pub fn seal_object(
    key: &MasterKey,
    rng: &mut (impl RngCore + CryptoRng),
    kind: &str,
    extra_aad: &[u8],
    data: &[u8],
    level: i32,
) -> Vec<u8> {
    let (compression, payload) = compress(data, level);
    let mut plain = Vec::with_capacity(payload.len() + 5);
    plain.push(compression as u8);
    plain.extend_from_slice(&(data.len() as u32).to_le_bytes());
    plain.extend_from_slice(&payload);
    key.seal(rng, &aad(kind, extra_aad), &plain)
}

/// Opens and decompresses an object sealed by [`seal_object`], returning the versioned data.
pub fn open_object(
    key: &MasterKey,
    object: &'static str,
    kind: &str,
    extra_aad: &[u8],
    stored: &[u8],
) -> Result<Vec<u8>, FormatError> {
    let plain = key.open(object, &aad(kind, extra_aad), stored)?;
    if plain.len() < 5 {
        return Err(FormatError::malformed(
            object,
            "envelope shorter than 5 bytes",
        ));
    }
    let compression = Compression::from_byte(object, plain[0])?;
    let raw_length = u32::from_le_bytes([plain[1], plain[2], plain[3], plain[4]]) as usize;
    decompress(object, compression, &plain[5..], raw_length)
}

/// A structured object stored as its own encrypted file (index, snapshot, lock).
pub trait EncryptedObject: Serialize + DeserializeOwned {
    /// The kind bound into the associated data (`"strata:" || KIND`). Never change.
    const KIND: &'static str;
    /// Human name for messages.
    const OBJECT: &'static str;
    /// The version this program writes (and the highest it reads).
    const VERSION: u16;

    /// Checks invariants serde cannot express; called by `decode`.
    fn validate(&self) -> Result<(), FormatError> {
        Ok(())
    }

    /// Versioned, compressed and sealed bytes, ready to store.
    fn encode(&self, key: &MasterKey, rng: &mut (impl RngCore + CryptoRng)) -> Vec<u8> {
        seal_object(
            key,
            rng,
            Self::KIND,
            b"",
            &encode_versioned(Self::VERSION, self),
            3,
        )
    }

    /// Opens, checks the version, decodes and validates.
    fn decode(key: &MasterKey, stored: &[u8]) -> Result<Self, FormatError> {
        let data = open_object(key, Self::OBJECT, Self::KIND, b"", stored)?;
        Self::decode_plain(&data)
    }

    /// Decodes the versioned plaintext (what `cat` shows, what fuzzers feed).
    fn decode_plain(data: &[u8]) -> Result<Self, FormatError> {
        let (_version, body) = split_version(Self::OBJECT, data, Self::VERSION)?;
        let value: Self = decode_postcard(Self::OBJECT, body)?;
        value.validate()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn object_round_trip_and_future_version() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let key = MasterKey::random(&mut rng);
        let data = encode_versioned(1, &vec![String::from("x"); 100]);
        let stored = seal_object(&key, &mut rng, "test", b"", &data, 3);
        let opened = open_object(&key, "test", "test", b"", &stored).unwrap();
        assert_eq!(opened, data);
        assert!(open_object(&key, "test", "other", b"", &stored).is_err());
        let future = encode_versioned(9, &1u8);
        assert!(matches!(
            split_version("test", &future, 1),
            Err(FormatError::UnknownVersion { found: 9, .. })
        ));
    }

    #[test]
    fn decompress_rejects_wrong_length() {
        let (c, d) = compress(&[7u8; 1000], 3);
        assert_eq!(c, Compression::Zstd);
        assert!(decompress("t", c, &d, 999).is_err());
        assert!(decompress("t", c, &d, MAX_OBJECT_SIZE + 1).is_err());
        assert_eq!(decompress("t", c, &d, 1000).unwrap(), vec![7u8; 1000]);
    }
}
