//! Comparing what the target holds with the snapshot: an existing entry's kind, and a
//! file's content against the snapshot's content ids (for `--overwrite if-changed` and
//! `--verify`).

use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use strata_format::id::BlobId;

use crate::Repository;

/// The kind of an existing entry, named as snapshot entries are.
pub(super) fn kind_of(md: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let ft = md.file_type();
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else {
        "socket"
    }
}

/// Where a file's content first differs from `content` (the snapshot's blob ids, whose
/// lengths the index gives), read without following a symlink: `None` when it holds
/// exactly that content. Every piece is hashed with the repository's id key, as the
/// archiver names blobs, so no chunker runs and nothing is read from the repository.
pub fn content_differs(
    repo: &Repository,
    path: &Path,
    content: &[BlobId],
    size: u64,
) -> std::io::Result<Option<String>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Ok(Some("not a regular file".into()));
    }
    if md.len() != size {
        return Ok(Some(format!(
            "{} bytes where the snapshot has {size}",
            md.len()
        )));
    }
    let index = repo.index();
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for id in content {
        let Some(loc) = index.get(id) else {
            return Ok(Some(format!("data blob {id} is not in the index")));
        };
        buf.resize(loc.raw_length as usize, 0);
        if let Err(e) = file.read_exact(&mut buf) {
            return match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Ok(Some(format!(
                    "ends before byte {}",
                    offset + buf.len() as u64
                ))),
                _ => Err(e),
            };
        }
        if repo.key().blob_id(&buf) != *id {
            return Ok(Some(format!(
                "bytes {offset}..{} differ from the snapshot's",
                offset + buf.len() as u64
            )));
        }
        offset += buf.len() as u64;
    }
    let mut extra = [0u8; 1];
    if file.read(&mut extra)? != 0 {
        return Ok(Some(format!("longer than the snapshot's {size} bytes")));
    }
    Ok(None)
}
