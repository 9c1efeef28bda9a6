//! Retrying transient storage errors with exponential backoff and jitter, for any backend.
//!
//! The one retry layer: it sits above every backend, remote or local (and above the
//! fault-injection layer, so that tests exercise it); opendal's own is not used, so that
//! retries do not multiply. Only
//! errors of kind [`ErrorKind::Transient`] are retried; a write is retried only when it can
//! be repeated (a `write_file` whose source file was consumed is not).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tracing::info;

use crate::{Backend, ErrorKind, FileType, FreeSpace, Result};

/// Attempts per request: a request keeps failing for about 25 s before its error is final.
const ATTEMPTS: u32 = 10;
const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(10);

/// A [`Backend`] that retries transient failures of an inner backend.
#[derive(Debug, Clone)]
pub struct RetryBackend {
    inner: Arc<dyn Backend>,
}

impl RetryBackend {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        RetryBackend { inner }
    }
}

/// The pause before attempt `n + 1` (n ≥ 1): doubling from [`FIRST_DELAY`], capped, with
/// up to 50% random jitter so that parallel requests do not retry in lockstep.
fn backoff(n: u32) -> Duration {
    let base = FIRST_DELAY
        .saturating_mul(1 << (n - 1).min(16))
        .min(MAX_DELAY);
    let jitter = base.mul_f64(random_fraction() * 0.5);
    base + jitter
}

/// A number in [0, 1) that differs between calls (not cryptographic).
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `attempt` until it succeeds, fails with a non-transient error, or runs out of
/// attempts (or `again` says it cannot be repeated).
async fn with_retries<T, F, Fut>(
    op: &str,
    what: &str,
    again: impl Fn() -> bool,
    attempt: F,
) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if e.kind == ErrorKind::Transient && n < ATTEMPTS && again() => {
                let pause = backoff(n);
                info!("{op} of {what} failed ({e}); retry {n} in {pause:?}");
                tokio::time::sleep(pause).await;
                n += 1;
            }
            other => return other,
        }
    }
}

#[async_trait]
impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        with_retries(
            "read",
            &ft.path(name),
            || true,
            || self.inner.read(ft, name),
        )
        .await
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        with_retries(
            "read",
            &ft.path(name),
            || true,
            || self.inner.read_range(ft, name, offset, length),
        )
        .await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        // Writes are atomic and named by content: repeating one is harmless.
        with_retries(
            "write",
            &ft.path(name),
            || true,
            || self.inner.write(ft, name, data.clone()),
        )
        .await
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
        with_retries(
            "write",
            &ft.path(name),
            || file.exists(),
            || self.inner.write_file(ft, name, file),
        )
        .await
    }

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        with_retries("list", ft.dir(), || true, || self.inner.list(ft)).await
    }

    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        // As `with_retries`, by hand: every attempt lends `each` again (a retried listing
        // starts over, which `list_each` allows).
        let mut n = 1;
        loop {
            match self.inner.list_each(ft, each).await {
                Err(e) if e.kind == ErrorKind::Transient && n < ATTEMPTS => {
                    let pause = backoff(n);
                    info!("list of {} failed ({e}); retry {n} in {pause:?}", ft.dir());
                    tokio::time::sleep(pause).await;
                    n += 1;
                }
                other => return other,
            }
        }
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        with_retries(
            "delete",
            &ft.path(name),
            || true,
            || self.inner.delete(ft, name),
        )
        .await
    }

    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
        with_retries(
            "stat",
            &ft.path(name),
            || true,
            || self.inner.stat(ft, name),
        )
        .await
    }

    async fn create_layout(&self) -> Result<()> {
        with_retries(
            "create",
            "the repository layout",
            || true,
            || self.inner.create_layout(),
        )
        .await
    }

    async fn remove_leftovers(&self, min_age: std::time::Duration) -> Result<u64> {
        with_retries(
            "remove",
            "temporary files left by killed writers",
            || true,
            || self.inner.remove_leftovers(min_age),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FaultBackend, FaultPlan, OpendalBackend};

    /// A fifth of all requests fail; through the retry layer every one succeeds (all ten
    /// attempts fail with odds of 1 in ten million), and the data is intact.
    #[tokio::test]
    async fn transient_failures_are_retried() {
        let memory: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let faulty: Arc<dyn Backend> = Arc::new(FaultBackend::new(
            memory,
            FaultPlan {
                fail_percent: Some(20),
                ..FaultPlan::default()
            },
        ));
        let direct_failures = failures_of_200_writes(&faulty).await;
        assert!(direct_failures > 10, "only {direct_failures} of 200 failed");
        let retrying: Arc<dyn Backend> = Arc::new(RetryBackend::new(faulty));
        for i in 0..40u8 {
            let name = format!("k{i}");
            retrying
                .write(FileType::Key, &name, Bytes::from(vec![i; 100]))
                .await
                .unwrap();
            let back = retrying.read(FileType::Key, &name).await.unwrap();
            assert_eq!(back, Bytes::from(vec![i; 100]));
        }
        assert_eq!(retrying.list(FileType::Key).await.unwrap().len(), 40);
        for _ in 0..10 {
            let mut listed = Vec::new();
            retrying
                .list_each(FileType::Key, &mut |name, _| listed.push(name.to_string()))
                .await
                .unwrap();
            listed.sort();
            listed.dedup();
            assert_eq!(listed.len(), 40);
        }
    }

    /// How many of 200 writes fail when nothing retries.
    async fn failures_of_200_writes(b: &Arc<dyn Backend>) -> usize {
        let mut failed = 0;
        for i in 0..200u8 {
            if b.write(FileType::Lock, &format!("x{i}"), Bytes::new())
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        failed
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        for n in 1..12 {
            let d = backoff(n);
            let base = FIRST_DELAY.saturating_mul(1 << (n - 1)).min(MAX_DELAY);
            assert!(d >= base && d <= base.mul_f64(1.5), "{n}: {d:?}");
        }
    }
}
