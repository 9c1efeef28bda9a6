//! Packs assembled in a local file rather than in memory.
//!
//! Blobs are appended to a temporary file (hashed as they are written), the sealed pack
//! header follows, and the finished file is handed to the backend's `write_file`: the local
//! backend renames it into place (the file is created in its spool directory, on the same
//! file system), others upload it. So a pack costs no memory however large it is, and a
//! local backup never copies pack bytes a second time. Temporary names start with `.`, which
//! listings skip; a killed backup may leave one behind (harmless, never referenced).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::{CryptoRng, RngCore};
use strata_format::blob::BlobType;
use strata_format::crypto::MasterKey;
use strata_format::id::{BlobId, Digest, PackId, StoredHasher};
use strata_format::pack::{preamble, trailer, PackBlob};

use crate::{EngineError, Result};

/// Writes are buffered this much before reaching the file.
const BUFFER: usize = 256 << 10;

/// The open pack of one blob type; the file is created with the first blob.
pub(crate) struct SpoolPack {
    dir: PathBuf,
    open: Option<Open>,
}

struct Open {
    out: BufWriter<File>,
    path: PathBuf,
    len: u64,
    hasher: StoredHasher,
    blobs: Vec<PackBlob>,
}

impl Drop for Open {
    /// An unfinished pack (the backup failed) leaves no file behind.
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A complete pack file, ready to be stored under its id.
pub(crate) struct Finished {
    pub path: PathBuf,
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<PackBlob>,
}

impl Drop for Finished {
    /// Stored packs were moved or deleted by the backend; this removes one that never was.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn spool_error(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::io(format!("pack spool file {}", path.display()), e)
}

impl SpoolPack {
    pub fn new(dir: PathBuf) -> Self {
        SpoolPack { dir, open: None }
    }

    /// Appends a stored blob (as made by `encode_blob`).
    pub fn add(
        &mut self,
        blob_type: BlobType,
        id: BlobId,
        raw_length: u32,
        stored: &[u8],
    ) -> Result<()> {
        if self.open.is_none() {
            self.open = Some(self.create()?);
        }
        let o = self.open.as_mut().expect("created above");
        if let Err(e) = o.out.write_all(stored) {
            // Part of the blob may be in the file: this pack is unusable. Dropping it
            // deletes the file; the caller fails the backup.
            let err = spool_error(&o.path, e);
            self.open = None;
            return Err(err);
        }
        o.blobs.push(PackBlob {
            blob_type,
            id,
            offset: o.len as u32,
            length: stored.len() as u32,
            raw_length,
        });
        o.hasher.update(stored);
        o.len += stored.len() as u64;
        Ok(())
    }

    fn create(&self) -> Result<Open> {
        let path = self
            .dir
            .join(format!(".pack-{:016x}.tmp", rand::random::<u64>()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| spool_error(&path, e))?;
        let mut open = Open {
            out: BufWriter::with_capacity(BUFFER, file),
            path,
            len: 0,
            hasher: Digest::stored_hasher(),
            blobs: Vec::new(),
        };
        let p = preamble();
        open.out
            .write_all(&p)
            .map_err(|e| spool_error(&open.path, e))?;
        open.hasher.update(&p);
        open.len = p.len() as u64;
        Ok(open)
    }

    /// Bytes so far (without the header to come).
    pub fn len(&self) -> u64 {
        self.open.as_ref().map_or(0, |o| o.len)
    }

    /// Appends the sealed header and closes the file; `None` if no blob was added.
    pub fn finish(
        &mut self,
        key: &MasterKey,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Option<Finished>> {
        let Some(mut o) = self.open.take() else {
            return Ok(None);
        };
        let t = trailer(key, rng, &o.blobs);
        o.out.write_all(&t).map_err(|e| spool_error(&o.path, e))?;
        o.out.flush().map_err(|e| spool_error(&o.path, e))?;
        o.hasher.update(&t);
        Ok(Some(Finished {
            // Taken, so that dropping `o` (which closes the file) does not remove it.
            path: std::mem::take(&mut o.path),
            id: PackId(o.hasher.finalize()),
            size: o.len + t.len() as u64,
            blobs: std::mem::take(&mut o.blobs),
        }))
    }
}
