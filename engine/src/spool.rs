//! Packs assembled in a local file rather than in memory.
//!
//! Blobs are appended to a spool file the backend makes ([`Backend::spool_file`]), hashed
//! as they are written; the sealed pack header follows, and the finished file is handed to
//! the backend's `write_file`: the local backend renames it into place (its spool files are
//! on the same file system), others upload it. So a pack costs no memory however large it
//! is, and a local backup never copies pack bytes a second time. Storage names the file,
//! hides it from listings and removes it when it is dropped unstored; one a killed backup
//! left behind (never referenced) goes with the next prune.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use rand::{CryptoRng, RngCore};
use strata_format::blob::BlobType;
use strata_format::crypto::MasterKey;
use strata_format::id::{BlobId, Digest, PackId, StoredHasher};
use strata_format::pack::{preamble, trailer, PackBlob};
use strata_storage::{Backend, SpoolError, SpoolFile};

use crate::{EngineError, Result};

/// Writes are buffered this much before reaching the file.
const BUFFER: usize = 256 << 10;

/// The open pack of one blob type; the file is created with the first blob.
pub(crate) struct SpoolPack {
    backend: Arc<dyn Backend>,
    open: Option<Open>,
}

/// An unfinished pack: dropping it (the backup failed) drops the spool file, which removes
/// it.
struct Open {
    out: BufWriter<SpoolFile>,
    len: u64,
    hasher: StoredHasher,
    blobs: Vec<PackBlob>,
}

/// A complete pack file, ready to be stored under its id. Dropping it removes the file if
/// the backend did not move it into place.
pub(crate) struct Finished {
    file: SpoolFile,
    pub id: PackId,
    pub size: u64,
    pub blobs: Vec<PackBlob>,
}

impl Finished {
    /// The file to pass to `write_file`.
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

fn spool_error(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::io(format!("pack spool file {}", path.display()), e)
}

impl From<SpoolError> for EngineError {
    fn from(e: SpoolError) -> Self {
        spool_error(&e.path, e.source)
    }
}

impl SpoolPack {
    /// A pack whose file the backend makes ([`Backend::spool_file`]).
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        SpoolPack {
            backend,
            open: None,
        }
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
            let err = spool_error(o.out.get_ref().path(), e);
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
        let file = self.backend.spool_file()?;
        let mut open = Open {
            out: BufWriter::with_capacity(BUFFER, file),
            len: 0,
            hasher: Digest::stored_hasher(),
            blobs: Vec::new(),
        };
        let p = preamble();
        open.out
            .write_all(&p)
            .map_err(|e| spool_error(open.out.get_ref().path(), e))?;
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
        o.out
            .write_all(&t)
            .map_err(|e| spool_error(o.out.get_ref().path(), e))?;
        let file = o.out.into_inner().map_err(|e| {
            let (e, out) = e.into_parts();
            spool_error(out.get_ref().path(), e)
        })?;
        o.hasher.update(&t);
        Ok(Some(Finished {
            file,
            id: PackId(o.hasher.finalize()),
            size: o.len + t.len() as u64,
            blobs: o.blobs,
        }))
    }
}
