//! zstd dictionaries for small data blobs ([spec/blob.md](../../spec/blob.md#dictionaries)).
//!
//! Compressing small blobs one by one loses the redundancy between them (license headers,
//! common code, repeated keys). A repository (format version 2) may hold dictionaries,
//! trained from the first small blobs its backups see and stored as blobs of type
//! `dictionary`; small data blobs are then compressed against one (compression `2`), and
//! the zstd frame names the dictionary by its 32-bit dictionary id.

use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use zstd::zstd_safe::{CDict, DDict};

use crate::FormatError;

/// The magic number every zstd dictionary starts with (little endian).
pub const ZSTD_DICT_MAGIC: u32 = 0xEC30_A437;
/// The largest dictionary a reader accepts.
pub const MAX_DICT_SIZE: usize = 1 << 20;

/// One zstd dictionary, with its prepared (digested) forms made on first use.
pub struct Dictionary {
    id: NonZeroU32,
    bytes: Vec<u8>,
    digest: [u8; 32],
    /// Prepared for compression at one level (the repository's).
    cdict: OnceLock<(i32, CDict<'static>)>,
    ddict: OnceLock<Option<DDict<'static>>>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl PartialEq for Dictionary {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for Dictionary {}

impl Dictionary {
    /// Parses a stored dictionary: zstd dictionary magic and a non-zero dictionary id.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, FormatError> {
        if bytes.len() < 8 || bytes.len() > MAX_DICT_SIZE {
            return Err(FormatError::malformed(
                "dictionary",
                format!("{} bytes is not a dictionary size", bytes.len()),
            ));
        }
        let magic = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        if magic != ZSTD_DICT_MAGIC {
            return Err(FormatError::malformed(
                "dictionary",
                "missing zstd dictionary magic",
            ));
        }
        let id = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        let id = NonZeroU32::new(id)
            .ok_or_else(|| FormatError::malformed("dictionary", "dictionary id 0"))?;
        let digest = *blake3::hash(&bytes).as_bytes();
        Ok(Dictionary {
            id,
            bytes,
            digest,
            cdict: OnceLock::new(),
            ddict: OnceLock::new(),
        })
    }

    /// Trains a dictionary of at most `max_size` bytes from samples laid end to end in
    /// `data` with the given sizes.
    pub fn train(data: &[u8], sizes: &[usize], max_size: usize) -> Result<Self, FormatError> {
        let bytes = zstd::dict::from_continuous(data, sizes, max_size.min(MAX_DICT_SIZE))
            .map_err(|e| FormatError::malformed("dictionary", format!("training: {e}")))?;
        Self::from_bytes(bytes)
    }

    pub fn id(&self) -> u32 {
        self.id.get()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The BLAKE3 of the dictionary's bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The dictionary prepared for compression at `level` (prepared once; another level
    /// is prepared per call, which only a repository whose level changed would do).
    pub(crate) fn with_cdict<R>(
        &self,
        level: i32,
        f: impl FnOnce(&CDict<'static>) -> R,
    ) -> Option<R> {
        let (l, cdict) = match self.cdict.get() {
            Some(c) => c,
            None => {
                let c = CDict::try_create(&self.bytes, level)?;
                let _ = self.cdict.set((level, c));
                self.cdict.get()?
            }
        };
        if *l == level {
            Some(f(cdict))
        } else {
            let other = CDict::try_create(&self.bytes, level)?;
            Some(f(&other))
        }
    }

    /// The dictionary prepared for decompression.
    pub(crate) fn ddict(&self) -> Option<&DDict<'static>> {
        self.ddict
            .get_or_init(|| DDict::try_create(&self.bytes))
            .as_ref()
    }
}

/// The dictionaries of a repository, found by id.
#[derive(Debug, Default, Clone)]
pub struct Dictionaries(Vec<Arc<Dictionary>>);

impl Dictionaries {
    /// An empty set, for decoding what never uses dictionaries.
    pub fn none() -> &'static Dictionaries {
        static NONE: Dictionaries = Dictionaries(Vec::new());
        &NONE
    }

    /// Adds a dictionary (a second one with the same id is ignored).
    pub fn add(&mut self, d: Arc<Dictionary>) {
        if self.get(d.id()).is_none() {
            self.0.push(d);
        }
    }

    pub fn get(&self, id: u32) -> Option<&Arc<Dictionary>> {
        self.0.iter().find(|d| d.id() == id)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Dictionary>> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small text samples with shared structure, enough for zstd's trainer.
    pub(crate) fn samples() -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..2000u32 {
            let s = format!(
                "// SPDX-License-Identifier: GPL-2.0\n#include <linux/module.h>\n\
                 static int probe_{i}(struct device *dev)\n{{\n\treturn {};\n}}\n",
                i * 7 % 13
            );
            sizes.push(s.len());
            data.extend_from_slice(s.as_bytes());
        }
        (data, sizes)
    }

    #[test]
    fn trained_dictionary_parses_and_rejects_damage() {
        let (data, sizes) = samples();
        let d = Dictionary::train(&data, &sizes, 4096).unwrap();
        assert!(d.bytes().len() <= 4096);
        let again = Dictionary::from_bytes(d.bytes().to_vec()).unwrap();
        assert_eq!(again.id(), d.id());
        let mut bad = d.bytes().to_vec();
        bad[0] ^= 1;
        assert!(Dictionary::from_bytes(bad).is_err());
        let mut zero = d.bytes().to_vec();
        zero[4..8].copy_from_slice(&[0; 4]);
        assert!(Dictionary::from_bytes(zero).is_err());
        assert!(Dictionary::from_bytes(vec![0; 3]).is_err());
    }
}
