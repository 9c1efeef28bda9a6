//! The repository config: a clear header (so tools can recognise a repository and its id
//! without the password) followed by the sealed parameters.
//!
//! ```text
//! "STRATACF" (8) || version u16 LE (1 to 4) || repository id (32)
//! sealed envelope, kind "config", associated data "strata:config" || the 42 header bytes
//! ```

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::crypto::MasterKey;
use crate::envelope::{decode_postcard, encode_versioned, open_object, seal_object, split_version};
use crate::id::{Digest, RepoId};
use crate::FormatError;

/// First bytes of the config file. Never change.
pub const CONFIG_MAGIC: &[u8; 8] = b"STRATACF";
/// Repository format version written by this program for new repositories. Version 2
/// allows dictionary blobs and dictionary-compressed data blobs ([`crate::dict`]), which
/// version 1 readers cannot decode; version 3 adds the chunker parameters for database
/// dumps (`db_chunker`) to the config. Versions 1 and 2 share one layout and chunk dumps
/// with [`ChunkerParams::DATABASE`]. Version 4 has version 3's layout and may hold WAL
/// files (`wal/`, [`crate::wal`]), which reference blobs: a reader that does not know them
/// would prune their data, so it must refuse the repository.
pub const CONFIG_VERSION: u16 = 4;

/// The first version whose repositories may hold WAL files.
pub const WAL_VERSION: u16 = 4;
const HEADER_LEN: usize = 42;

/// Repository-wide parameters fixed at `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFile {
    pub repo_id: RepoId,
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level for blobs.
    pub compression_level: i32,
    pub created_ns: i64,
    /// Chunker for database dumps (version 3; [`ChunkerParams::DATABASE`] before).
    pub db_chunker: ChunkerParams,
    /// The repository format version (from the header; not part of the sealed body).
    #[serde(skip)]
    pub format_version: u16,
}

/// The body of version 1 and 2 configs: no `db_chunker`.
#[derive(Serialize, Deserialize)]
struct ConfigFileV2 {
    repo_id: RepoId,
    chunker: ChunkerParams,
    pack_size: u32,
    compression_level: i32,
    created_ns: i64,
}

impl From<ConfigFileV2> for ConfigFile {
    fn from(v: ConfigFileV2) -> Self {
        ConfigFile {
            repo_id: v.repo_id,
            chunker: v.chunker,
            pack_size: v.pack_size,
            compression_level: v.compression_level,
            created_ns: v.created_ns,
            db_chunker: ChunkerParams::DATABASE,
            format_version: 0,
        }
    }
}

impl ConfigFile {
    pub fn validate(&self) -> Result<(), FormatError> {
        self.chunker.validate()?;
        self.db_chunker.validate()?;
        if !(1 << 16..=1 << 30).contains(&self.pack_size) {
            return Err(FormatError::InvalidParameter {
                what: "pack size",
                reason: format!("{} is outside 64 KiB..1 GiB", self.pack_size),
            });
        }
        if !(-7..=22).contains(&self.compression_level) {
            return Err(FormatError::InvalidParameter {
                what: "compression level",
                reason: format!("{} is outside -7..22", self.compression_level),
            });
        }
        Ok(())
    }

    /// Whether blobs may be compressed against repository dictionaries (format v2).
    pub fn allows_dictionaries(&self) -> bool {
        self.format_version >= 2
    }

    /// Whether WAL files may be written into the repository (format version 4 on).
    pub fn allows_wal(&self) -> bool {
        self.format_version >= WAL_VERSION
    }

    /// The largest data blob either chunker cuts.
    pub fn max_chunk_size(&self) -> u32 {
        self.chunker.max_size.max(self.db_chunker.max_size)
    }

    fn header(repo_id: &RepoId, version: u16) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(CONFIG_MAGIC);
        h[8..10].copy_from_slice(&version.to_le_bytes());
        h[10..].copy_from_slice(repo_id.as_bytes());
        h
    }

    pub fn encode(&self, key: &MasterKey, rng: &mut (impl RngCore + CryptoRng)) -> Vec<u8> {
        let version = match self.format_version {
            0 => CONFIG_VERSION,
            v => v,
        };
        let header = Self::header(&self.repo_id, version);
        let body = if version < 3 {
            // An older repository keeps its layout (its database chunker is the default).
            let old = ConfigFileV2 {
                repo_id: self.repo_id,
                chunker: self.chunker,
                pack_size: self.pack_size,
                compression_level: self.compression_level,
                created_ns: self.created_ns,
            };
            encode_versioned(version, &old)
        } else {
            encode_versioned(version, self)
        };
        let mut out = header.to_vec();
        out.extend_from_slice(&seal_object(key, rng, "config", &header, &body, 3));
        out
    }

    /// Reads the clear header: the repository id, without any key.
    pub fn peek_repo_id(stored: &[u8]) -> Result<RepoId, FormatError> {
        if stored.len() < HEADER_LEN || &stored[..8] != CONFIG_MAGIC {
            return Err(FormatError::malformed(
                "config",
                "not a Strata config (missing STRATACF magic)",
            ));
        }
        split_version("config", &stored[8..10], CONFIG_VERSION)?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&stored[10..HEADER_LEN]);
        Ok(RepoId(Digest(id)))
    }

    /// Reads the clear header's format version, without any key (the header checked as
    /// [`Self::peek_repo_id`] checks it). Unauthenticated: a hint, for instance of what a
    /// damaged config was, never a reason to trust the rest.
    pub fn peek_version(stored: &[u8]) -> Result<u16, FormatError> {
        Self::peek_repo_id(stored)?;
        Ok(u16::from_le_bytes([stored[8], stored[9]]))
    }

    pub fn decode(key: &MasterKey, stored: &[u8]) -> Result<Self, FormatError> {
        let repo_id = Self::peek_repo_id(stored)?;
        let data = open_object(
            key,
            "config",
            "config",
            &stored[..HEADER_LEN],
            &stored[HEADER_LEN..],
        )?;
        let header_version = u16::from_le_bytes([stored[8], stored[9]]);
        let (version, body) = split_version("config", &data, CONFIG_VERSION)?;
        if version != header_version {
            return Err(FormatError::malformed(
                "config",
                "sealed version differs from the header",
            ));
        }
        let mut config: ConfigFile = if version < 3 {
            decode_postcard::<ConfigFileV2>("config", body)?.into()
        } else {
            decode_postcard("config", body)?
        };
        config.format_version = version;
        if config.repo_id != repo_id {
            return Err(FormatError::malformed(
                "config",
                "sealed repository id differs from the header",
            ));
        }
        config.validate()?;
        Ok(config)
    }
}
