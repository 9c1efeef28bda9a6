//! Reading a pack's sealed header from its end, without reading the blobs before it.

use strata_format::pack::{check_preamble, read_pack_header_tail, PackBlob, PACK_PREAMBLE_LEN};

use super::PackFile;
use crate::{EngineError, Repository, Result};

/// The sealed header and trailer at the end of a pack of `size` bytes as listed, read with
/// two ranged reads (for `check`, which did not keep the pieces, and `repair index`, which
/// reads only headers). Damage is a `Corrupt` error naming the pack; storage failures stay
/// what they are.
pub(crate) fn pack_tail(repo: &Repository, name: &str, size: u64) -> Result<Vec<u8>> {
    let pack = PackFile::listed(name, size);
    let corrupt = |what: String| Err(EngineError::Corrupt(format!("pack {name}: {what}")));
    if size < 4 {
        return corrupt("too short for a trailer".into());
    }
    let trailer = pack.read(repo, size - 4, 4)?;
    let hlen = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as u64;
    if hlen + 4 > size {
        return corrupt(format!("header length {hlen} exceeds the pack"));
    }
    Ok(pack.read(repo, size - 4 - hlen, hlen + 4)?.to_vec())
}

/// Reads and opens the sealed header at the end of a pack (checking its preamble): the
/// blobs it lists. Damage (or another key) is a `Corrupt` error; storage failures stay what
/// they are.
pub(crate) fn pack_header(repo: &Repository, name: &str, size: u64) -> Result<Vec<PackBlob>> {
    if size < (PACK_PREAMBLE_LEN + 4) as u64 {
        return Err(EngineError::Corrupt(format!(
            "pack {name} is too short to be a pack"
        )));
    }
    let preamble = PackFile::listed(name, size).read(repo, 0, PACK_PREAMBLE_LEN as u64 + 4)?;
    let tail = pack_tail(repo, name, size)?;
    check_preamble(&preamble)
        .and_then(|_| read_pack_header_tail(repo.key(), &tail, size as usize))
        .map_err(|e| EngineError::format(format!("pack {name}"), e))
}
