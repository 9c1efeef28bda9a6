//! Reading and writing whole stored objects: verified against their names, many at a
//! time, and encrypted objects saved under the hash of their bytes.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::envelope::EncryptedObject;
use strata_format::id::Digest;
use strata_storage::{Backend, FileType};

use super::handle::Repository;
use crate::stored::{check_size, verify_name};
use crate::{EngineError, Result};

/// How many storage requests run at once when reading many objects.
const READ_CONCURRENCY: usize = 16;

impl Repository {
    /// Reads an object and checks that its bytes hash to its name.
    pub fn read_verified(&self, ft: FileType, name: &str) -> Result<Bytes> {
        let bytes = self.block_on(self.backend.read(ft, name))?;
        verify_name(ft, name, &bytes)?;
        Ok(bytes)
    }

    /// Reads many objects concurrently, verifying each against its name. Results are in
    /// the order of `names`.
    pub fn read_many_verified(&self, ft: FileType, names: &[String]) -> Vec<Result<Bytes>> {
        self.for_each_name(names, READ_CONCURRENCY, move |backend, name| async move {
            let bytes = backend.read(ft, &name).await?;
            verify_name(ft, &name, &bytes)?;
            Ok(bytes)
        })
    }

    /// Runs `op` on each name as a storage task, at most `limit` at a time; the results
    /// are in the order of `names`. Tasks are made as earlier ones finish: a task holds a
    /// request's state (some kilobytes through the storage layers), so making one for each
    /// of a prune's hundreds of thousands of packs up front took gigabytes.
    pub(crate) fn for_each_name<T, F, Fut>(
        &self,
        names: &[String],
        limit: usize,
        op: F,
    ) -> Vec<Result<T>>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn Backend>, String) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        use futures::StreamExt;
        // Unordered, so that one request waiting out retries does not hold back the rest;
        // each result is put back in its place.
        let mut out: Vec<Option<Result<T>>> = (0..names.len()).map(|_| None).collect();
        self.block_on(
            futures::stream::iter(names.iter().enumerate())
                .map(|(i, name)| {
                    let task = tokio::spawn(op(self.backend.clone(), name.clone()));
                    async move { (i, task.await) }
                })
                .buffer_unordered(limit.max(1))
                .for_each(|(i, joined)| {
                    out[i] = Some(joined.unwrap_or_else(|e| {
                        Err(EngineError::Internal(format!("storage task failed: {e}")))
                    }));
                    async {}
                }),
        );
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(EngineError::Internal("a storage task was lost".into())))
            })
            .collect()
    }

    /// Like [`Repository::read_many_verified`] for `(name, size)` pairs from a listing,
    /// refusing objects too large to be valid without reading them.
    pub fn read_many_listed(&self, ft: FileType, listed: &[(String, u64)]) -> Vec<Result<Bytes>> {
        let sized: Vec<Result<()>> = listed
            .iter()
            .map(|(n, size)| check_size(ft, n, *size))
            .collect();
        let to_read: Vec<String> = listed
            .iter()
            .zip(&sized)
            .filter(|(_, ok)| ok.is_ok())
            .map(|((n, _), _)| n.clone())
            .collect();
        let mut reads = self.read_many_verified(ft, &to_read).into_iter();
        sized
            .into_iter()
            .map(|ok| match ok {
                Ok(()) => reads
                    .next()
                    .expect("one read per object within the size limit"),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Loads and decrypts an encrypted object stored under its hash.
    pub fn load_object<T: EncryptedObject>(&self, ft: FileType, name: &str) -> Result<T> {
        let bytes = self.read_verified(ft, name)?;
        T::decode(&self.key, &bytes).map_err(|e| EngineError::format(ft.path(name), e))
    }

    /// Encrypts and stores an object under the hash of its stored bytes.
    pub fn save_object<T: EncryptedObject>(&self, ft: FileType, value: &T) -> Result<Digest> {
        Ok(self.save_object_sized(ft, value)?.0)
    }

    /// Like [`Repository::save_object`], also returning the stored size.
    pub fn save_object_sized<T: EncryptedObject>(
        &self,
        ft: FileType,
        value: &T,
    ) -> Result<(Digest, u64)> {
        // Index files, snapshots and evidence name data: only under a lock that is still
        // held.
        if matches!(
            ft,
            FileType::Index | FileType::Snapshot | FileType::Evidence | FileType::Wal
        ) {
            self.lock_slot.before_write()?;
        }
        self.drop_early_listings();
        let bytes = value.encode(&self.key, &mut rand::thread_rng());
        let id = Digest::of_stored(&bytes);
        let size = bytes.len() as u64;
        self.block_on(self.backend.write(ft, &id.to_hex(), Bytes::from(bytes)))?;
        Ok((id, size))
    }
}
