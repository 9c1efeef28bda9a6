//! `--verify-uploads`: every object written is read back and compared, by hash, with what
//! was sent (objects are named by the BLAKE3 hash of their bytes; the config, whose name
//! is fixed, is compared byte for byte). It doubles the traffic, and catches a store that
//! acknowledges writes it did not keep intact.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Backend, ErrorKind, FileType, FreeSpace, Result, StorageError};

/// A [`Backend`] that reads back every write of an inner backend.
#[derive(Debug, Clone)]
pub struct VerifyingBackend {
    inner: Arc<dyn Backend>,
}

impl VerifyingBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        VerifyingBackend { inner }
    }

    async fn check(&self, ft: FileType, name: &str, sent: Option<&[u8]>) -> Result<()> {
        let back = self.inner.read(ft, name).await?;
        let ok = match (ft, sent) {
            (FileType::Config, Some(sent)) => back.as_ref() == sent,
            _ => blake3::hash(&back).to_hex().as_str() == name,
        };
        if ok {
            return Ok(());
        }
        Err(StorageError::new(
            ErrorKind::Other,
            "verify",
            ft.path(name),
            format!(
                "the object read back after upload differs from what was written ({} bytes)",
                back.len()
            ),
        ))
    }
}

#[async_trait]
impl Backend for VerifyingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        self.inner.read(ft, name).await
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        self.inner.read_range(ft, name, offset, length).await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        self.inner.write(ft, name, data.clone()).await?;
        self.check(ft, name, Some(&data)).await
    }

    fn spool_dir(&self) -> Option<PathBuf> {
        self.inner.spool_dir()
    }

    async fn free_space(&self) -> Result<Option<FreeSpace>> {
        self.inner.free_space().await
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        self.inner.write_file(ft, name, file).await?;
        self.check(ft, name, None).await
    }

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        self.inner.list(ft).await
    }

    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        self.inner.list_each(ft, each).await
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        self.inner.delete(ft, name).await
    }

    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
        self.inner.stat(ft, name).await
    }

    async fn create_layout(&self) -> Result<()> {
        self.inner.create_layout().await
    }

    async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64> {
        self.inner.remove_leftovers(min_age).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpendalBackend;

    /// A store that keeps something else than what it was given is caught.
    #[derive(Debug)]
    struct Lossy(Arc<dyn Backend>);

    #[async_trait]
    impl Backend for Lossy {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
            self.0.read(ft, name).await
        }
        async fn read_range(&self, ft: FileType, n: &str, o: u64, l: u64) -> Result<Bytes> {
            self.0.read_range(ft, n, o, l).await
        }
        async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
            let mut v = data.to_vec();
            if let Some(b) = v.last_mut() {
                *b ^= 1;
            }
            self.0.write(ft, name, Bytes::from(v)).await
        }
        async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
            self.0.list(ft).await
        }
        async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
            self.0.delete(ft, name).await
        }
        async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
            self.0.stat(ft, name).await
        }
        async fn create_layout(&self) -> Result<()> {
            self.0.create_layout().await
        }
        async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64> {
            self.0.remove_leftovers(min_age).await
        }
    }

    #[tokio::test]
    async fn damaged_uploads_are_detected() {
        let memory: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let data = Bytes::from_static(b"a snapshot");
        let name = blake3::hash(&data).to_hex().to_string();
        let good = VerifyingBackend::new(memory.clone());
        good.write(FileType::Snapshot, &name, data.clone())
            .await
            .unwrap();
        let bad = VerifyingBackend::new(Arc::new(Lossy(memory)));
        let err = bad
            .write(FileType::Snapshot, &name, data.clone())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
        let err = bad.write(FileType::Config, "", data).await.unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
    }
}
