//! The hash chain: what exactly is hashed, and the head kept outside the database.
//!
//! Each record's `hash` is BLAKE3-256 over these bytes, in this order:
//!
//! | bytes | what |
//! |-------|------|
//! | 32    | `prev`: the previous record's hash (32 zero bytes for seq 1) |
//! | 8     | `seq`, u64 little-endian |
//! | 1     | length of the kind's name in bytes |
//! | n     | the kind's name, ASCII (`backup`, `restore-test`, …) |
//! | 8     | `time_ns`, i64 little-endian |
//! | rest  | `body`: the record's JSON exactly as stored, UTF-8 |
//!
//! The body is last, so no length is needed for it. An edited body, kind, time or seq
//! changes the hash; a deleted record breaks the next record's `prev` link and leaves a gap
//! in `seq`. A deleted *tail* leaves a shorter valid chain, which is why the head (the last
//! seq and its hash) is also written to `catalog.head` beside the database after every
//! append, and (issue #16 part 3) into the repositories' evidence.
//!
//! This is tamper *evidence*, not tamper proofing: who can write the database can recompute
//! every hash. It catches careless edits and deletions, and a rewrite shows as a head that
//! no longer matches the one the repositories carry.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{AppError, Result};

/// A record's hash, and the `prev` of the first record.
pub type Hash = [u8; 32];

/// The `prev` of the first record.
pub const GENESIS: Hash = [0; 32];

/// The hash of one record (see the module docs for the bytes).
pub fn record_hash(prev: &Hash, seq: u64, kind: &str, time_ns: i64, body: &str) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&seq.to_le_bytes());
    // Kind names are short ASCII words; a longer one is cut at 255 bytes rather than
    // wrapping its length byte (not reachable with the kinds ops defines).
    let kind = &kind.as_bytes()[..kind.len().min(255)];
    h.update(&[kind.len() as u8]);
    h.update(kind);
    h.update(&time_ns.to_le_bytes());
    h.update(body.as_bytes());
    *h.finalize().as_bytes()
}

/// The last record of the chain: its seq and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    #[serde(with = "hex_hash")]
    pub hash: Hash,
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &super::Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<super::Hash, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// The head file's name in the state directory.
pub const HEAD_FILE: &str = "catalog.head";
const HEAD_LOCK: &str = "catalog.head.lock";

/// Writes `head` to the head file unless it already names a later record (two processes
/// that appended one after the other may get here in the other order). Atomic: a temporary
/// file renamed over the old one, 0600, under a lock file so that the check and the rename
/// are one step.
pub fn advance_head(state_dir: &Path, head: Head) -> Result<()> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        AppError::Catalog(format!(
            "{what} {}: {e}",
            state_dir.join(HEAD_FILE).display()
        ))
    };
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(state_dir.join(HEAD_LOCK))
        .map_err(|e| fail("locking", &e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| fail("locking", &e))?;
    if let Ok(Some(current)) = read_head(state_dir) {
        if current.seq >= head.seq {
            return Ok(());
        }
    }
    let tmp = state_dir.join(format!("{HEAD_FILE}.tmp"));
    let text = serde_json::to_string(&head).expect("a head serializes") + "\n";
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail("writing", &e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("writing", &e))?;
    fs::rename(&tmp, state_dir.join(HEAD_FILE)).map_err(|e| fail("writing", &e))?;
    if let Ok(dir) = File::open(state_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// The head file's content: None when there is no head file; an error when it cannot be
/// read or parsed.
pub fn read_head(state_dir: &Path) -> std::result::Result<Option<Head>, String> {
    let path = state_dir.join(HEAD_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} cannot be read: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hashed_field_changes_the_hash() {
        let base = record_hash(&GENESIS, 1, "backup", 5, "{}");
        assert_ne!(base, record_hash(&[1; 32], 1, "backup", 5, "{}"));
        assert_ne!(base, record_hash(&GENESIS, 2, "backup", 5, "{}"));
        assert_ne!(base, record_hash(&GENESIS, 1, "copy", 5, "{}"));
        assert_ne!(base, record_hash(&GENESIS, 1, "backup", 6, "{}"));
        assert_ne!(base, record_hash(&GENESIS, 1, "backup", 5, "{ }"));
    }

    #[test]
    fn the_hashed_bytes_are_the_documented_ones() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[7; 32]);
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.push(4);
        bytes.extend_from_slice(b"copy");
        bytes.extend_from_slice(&(-2i64).to_le_bytes());
        bytes.extend_from_slice(b"{\"a\":1}");
        assert_eq!(
            record_hash(&[7; 32], 3, "copy", -2, "{\"a\":1}"),
            *blake3::hash(&bytes).as_bytes()
        );
    }

    #[test]
    fn the_head_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_head(dir.path()), Ok(None));
        let h5 = Head {
            seq: 5,
            hash: [5; 32],
        };
        advance_head(dir.path(), h5).unwrap();
        advance_head(
            dir.path(),
            Head {
                seq: 4,
                hash: [4; 32],
            },
        )
        .unwrap();
        assert_eq!(read_head(dir.path()), Ok(Some(h5)));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(HEAD_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
