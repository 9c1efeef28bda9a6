//! Identifiers: 32-byte BLAKE3 digests, one newtype per kind so that a `PackId` cannot be
//! passed where a `SnapshotId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::FormatError;

/// A raw 32-byte digest. In binary encodings (postcard) it is 32 raw bytes; in
/// human-readable ones (JSON, for `cat` and `--json`) a 64-digit hex string.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Digest::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Digest)
        }
    }
}

impl Digest {
    /// Lowercase hex of all 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 lowercase or uppercase hex digits.
    pub fn from_hex(s: &str) -> Result<Self, FormatError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| {
            FormatError::malformed("id", format!("{s:?} is not a 64-digit hex id: {e}"))
        })?;
        Ok(Digest(out))
    }

    /// The unkeyed BLAKE3 of stored bytes: the name of every stored object.
    pub fn of_stored(bytes: &[u8]) -> Self {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// Hashes stored bytes that arrive in pieces; the result equals [`Digest::of_stored`]
    /// of the whole.
    pub fn stored_hasher() -> StoredHasher {
        StoredHasher(blake3::Hasher::new())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        pub struct $name(pub Digest);

        impl $name {
            /// Lowercase hex of the id.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            /// The first 8 hex digits, for display.
            pub fn short(&self) -> String {
                self.0.to_hex()[..8].to_string()
            }
            /// The id as raw bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0 .0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = FormatError;
            fn from_str(s: &str) -> Result<Self, FormatError> {
                Digest::from_hex(s).map($name)
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a blob's plaintext (before compression).
    BlobId
);
id_type!(
    /// BLAKE3 of a pack file's stored bytes.
    PackId
);
id_type!(
    /// BLAKE3 of an index file's stored bytes.
    IndexId
);
id_type!(
    /// BLAKE3 of a snapshot file's stored bytes.
    SnapshotId
);
id_type!(
    /// BLAKE3 of a key file's stored bytes.
    KeyId
);
id_type!(
    /// BLAKE3 of a lock file's stored bytes.
    LockId
);
id_type!(
    /// BLAKE3 of an evidence file's stored bytes.
    EvidenceId
);
id_type!(
    /// BLAKE3 of a WAL file's stored bytes (`wal/<id>`).
    WalId
);
id_type!(
    /// Random identity of a repository, chosen at init.
    RepoId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short() {
        let id = SnapshotId(Digest::of_stored(b"abc"));
        let parsed: SnapshotId = id.to_hex().parse().unwrap();
        assert_eq!(parsed, id);
        assert_eq!(id.short(), &id.to_hex()[..8]);
        assert!("xyz".parse::<SnapshotId>().is_err());
        assert!("ab".repeat(31).parse::<SnapshotId>().is_err());
    }
}

/// See [`Digest::stored_hasher`].
#[derive(Debug, Clone)]
pub struct StoredHasher(blake3::Hasher);

impl StoredHasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finalize(&self) -> Digest {
        Digest(*self.0.finalize().as_bytes())
    }
}
