//! Checks on stored objects that need neither a key nor a repository handle: a listed
//! object too large to be valid is refused before it is read, and an object whose bytes do
//! not hash to its name is damaged.

use strata_format::id::Digest;
use strata_storage::FileType;

use crate::{EngineError, Result};

/// Refuses listed objects larger than any valid one, before they are read into memory.
pub(crate) fn check_size(ft: FileType, name: &str, size: u64) -> Result<()> {
    let limit = match ft {
        FileType::Key => 64 * 1024,
        FileType::Pack => u64::MAX,
        _ => strata_format::MAX_OBJECT_SIZE as u64 + 1024 * 1024,
    };
    if size > limit {
        return Err(EngineError::Corrupt(format!(
            "{} is {size} bytes, larger than any valid object of its kind",
            ft.path(name)
        )));
    }
    Ok(())
}

/// Checks that stored bytes hash to the object's name (not for config, whose name is fixed).
pub(crate) fn verify_name(ft: FileType, name: &str, bytes: &[u8]) -> Result<()> {
    if ft == FileType::Config {
        return Ok(());
    }
    if Digest::of_stored(bytes).to_hex() != name {
        return Err(EngineError::Damaged(format!(
            "{} is damaged: its content does not match its name ({} bytes)",
            ft.path(name),
            bytes.len()
        )));
    }
    Ok(())
}
