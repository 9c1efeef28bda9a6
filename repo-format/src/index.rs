//! Index files: which blobs live in which pack, at which offset. Written only after the packs
//! they name are durable.

use serde::{Deserialize, Serialize};

use crate::blob::BLOB_HEADER_LEN;
use crate::envelope::EncryptedObject;
use crate::id::{IndexId, PackId};
use crate::pack::{PackBlob, PACK_PREAMBLE_LEN};
use crate::FormatError;

/// An index file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces (written by prune/repair; empty for backups).
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexPack>,
}

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Stored size of the whole pack file.
    pub size: u64,
    pub blobs: Vec<PackBlob>,
}

impl EncryptedObject for IndexFile {
    const KIND: &'static str = "index";
    const OBJECT: &'static str = "index";
    const VERSION: u16 = 1;

    fn validate(&self) -> Result<(), FormatError> {
        for p in &self.packs {
            for b in &p.blobs {
                let end = b.offset as u64 + b.length as u64;
                if (b.offset as usize) < PACK_PREAMBLE_LEN
                    || (b.length as usize) < BLOB_HEADER_LEN
                    || end > p.size
                {
                    return Err(FormatError::malformed(
                        "index",
                        format!("blob {} lies outside pack {}", b.id, p.id),
                    ));
                }
            }
        }
        Ok(())
    }
}
