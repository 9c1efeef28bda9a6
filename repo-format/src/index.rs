//! Index files: which blobs live in which pack, at which offset. Written only after the packs
//! they name are durable.
//!
//! Version 2 adds what two-phase prune needs (spec/index.md, spec/prune.md): packs *marked*
//! for deletion, which no new snapshot may use but which a snapshot of a session that began
//! before the mark still may, and *seals*, which record the sessions that were live once a
//! mark was durable (a mark's packs are deleted only after every one of them has ended).

use serde::{Deserialize, Serialize};

use crate::blob::BLOB_HEADER_LEN;
use crate::envelope::{decode_postcard, split_version, EncryptedObject};
use crate::id::{IndexId, PackId};
use crate::pack::{PackBlob, PACK_PREAMBLE_LEN};
use crate::FormatError;

/// An index file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces (written by prune/repair; empty for backups).
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexPack>,
    /// Packs marked for deletion by a prune (version 2).
    pub marked: Vec<MarkedPack>,
    /// The sessions each mark waits for (version 2).
    pub seals: Vec<Seal>,
}

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Stored size of the whole pack file.
    pub size: u64,
    pub blobs: Vec<PackBlob>,
}

/// A pack that a prune found no snapshot needs: kept in storage, and readable through the
/// index, until a later prune deletes it (or revives it, if a snapshot came to need it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedPack {
    /// The prune run that marked it (random, one per run).
    pub mark: [u8; 16],
    /// When it was marked, Unix nanoseconds, by the marking host's clock.
    pub marked_ns: i64,
    pub pack: IndexPack,
}

/// The sessions that were live once a mark was durable: the mark's packs may be deleted
/// only when none of them is live any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seal {
    pub mark: [u8; 16],
    /// When the locks were listed, Unix nanoseconds, by the sealing host's clock.
    pub sealed_ns: i64,
    /// The `session` of every other live lock then (spec/lock.md), sorted.
    pub sessions: Vec<[u8; 16]>,
}

/// Version 1: no marks, no seals.
#[derive(Deserialize)]
struct IndexFileV1 {
    supersedes: Vec<IndexId>,
    packs: Vec<IndexPack>,
}

fn validate_pack(p: &IndexPack) -> Result<(), FormatError> {
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
    Ok(())
}

impl EncryptedObject for IndexFile {
    const KIND: &'static str = "index";
    const OBJECT: &'static str = "index";
    /// Version 2 added `marked` and `seals`. Never reuse a number.
    const VERSION: u16 = 2;

    fn validate(&self) -> Result<(), FormatError> {
        for p in &self.packs {
            validate_pack(p)?;
        }
        for m in &self.marked {
            validate_pack(&m.pack)?;
        }
        Ok(())
    }

    fn decode_plain(data: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = split_version(Self::OBJECT, data, Self::VERSION)?;
        let value = if version == 1 {
            let v1: IndexFileV1 = decode_postcard(Self::OBJECT, body)?;
            IndexFile {
                supersedes: v1.supersedes,
                packs: v1.packs,
                ..IndexFile::default()
            }
        } else {
            decode_postcard(Self::OBJECT, body)?
        };
        value.validate()?;
        Ok(value)
    }
}
