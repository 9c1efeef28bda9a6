//! `--limit-upload` and `--limit-download`: a [`Backend`] decorator that holds the bytes
//! written to (or read from) the store to a rate, with one [`TokenBucket`] per direction
//! shared by every request of the command (however many connections upload at once).
//!
//! Objects are moved whole by the inner backend, so a request waits *before* it is sent
//! (an upload, whose size is known) or *after* it arrived (a download) for as long as its
//! bytes cost: the average rate over any stretch of time stays at the limit (plus a small
//! burst), while a single object may still travel at the link's speed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Backend, FileType, FreeSpace, Result};

/// A rate limit in bytes per second with a small burst, as a virtual clock (GCRA): each
/// request moves the time until which everything let through is paid for by
/// `bytes / rate`, and waits until that time, less the burst it may run ahead, has come. Over any interval of length `t`, at
/// most `rate × t + burst` bytes are let through.
#[derive(Debug)]
pub struct TokenBucket {
    bytes_per_sec: u64,
    burst: Duration,
    /// When everything let through so far will have been paid for.
    paid_until: Mutex<Option<Instant>>,
}

impl TokenBucket {
    /// A bucket for `bytes_per_sec` (at least 1), with a burst of a tenth of a second's
    /// worth.
    pub fn new(bytes_per_sec: u64) -> Self {
        TokenBucket {
            bytes_per_sec: bytes_per_sec.max(1),
            burst: Duration::from_millis(100),
            paid_until: Mutex::new(None),
        }
    }

    /// A bucket for a limit given in KiB/s (restic's unit).
    pub fn kib_per_sec(kib: u64) -> Self {
        Self::new(kib.saturating_mul(1024))
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// How long a request of `bytes` starting `now` must wait, and books it.
    fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(self.bytes_per_sec);
        let cost = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        let mut paid = self.paid_until.lock().expect("no panics while locked");
        // Time not used is not saved up: an idle bucket starts again from now, with its
        // burst.
        let start = match *paid {
            Some(p) if p > now => p,
            _ => now,
        };
        let until = start + cost;
        *paid = Some(until);
        until.saturating_duration_since(now + self.burst)
    }

    /// Waits until `bytes` may pass.
    pub async fn take(&self, bytes: u64) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A [`Backend`] whose uploads and downloads are held to the rates of its buckets (`None`:
/// that direction is not limited). Listing, stat and delete requests are not counted.
#[derive(Debug)]
pub struct ThrottledBackend {
    inner: Arc<dyn Backend>,
    upload: Option<Arc<TokenBucket>>,
    download: Option<Arc<TokenBucket>>,
}

impl ThrottledBackend {
    pub fn new(
        inner: Arc<dyn Backend>,
        upload: Option<Arc<TokenBucket>>,
        download: Option<Arc<TokenBucket>>,
    ) -> Self {
        ThrottledBackend {
            inner,
            upload,
            download,
        }
    }

    async fn sent(&self, bytes: u64) {
        if let Some(b) = &self.upload {
            b.take(bytes).await;
        }
    }

    async fn received(&self, bytes: u64) {
        if let Some(b) = &self.download {
            b.take(bytes).await;
        }
    }
}

#[async_trait]
impl Backend for ThrottledBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn is_remote(&self) -> bool {
        self.inner.is_remote()
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        let data = self.inner.read(ft, name).await?;
        self.received(data.len() as u64).await;
        Ok(data)
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        let data = self.inner.read_range(ft, name, offset, length).await?;
        self.received(data.len() as u64).await;
        Ok(data)
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        // A lock refresh must never queue behind booked packs: at a low limit it would
        // wait past the lock's expiry, and the holder would lose its lock.
        if ft != FileType::Lock {
            self.sent(data.len() as u64).await;
        }
        self.inner.write(ft, name, data).await
    }

    fn spool_dir(&self) -> Option<PathBuf> {
        self.inner.spool_dir()
    }

    async fn free_space(&self) -> Result<Option<FreeSpace>> {
        self.inner.free_space().await
    }

    async fn write_file(&self, ft: FileType, name: &str, file: &Path) -> Result<()> {
        // A file that cannot be stat'ed is the inner backend's error to report.
        if let Ok(md) = std::fs::metadata(file) {
            self.sent(md.len()).await;
        }
        self.inner.write_file(ft, name, file).await
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

    /// Over a stretch of requests the bucket lets through its rate plus the burst: a
    /// tenth of a second's worth passes at once, then each request waits for its cost.
    #[test]
    fn the_bucket_lets_through_its_rate_plus_a_burst() {
        let bucket = TokenBucket::new(1000);
        let t0 = Instant::now();
        // 100 bytes: the burst, no wait.
        assert_eq!(bucket.reserve(100, t0), Duration::ZERO);
        // The next 500 bytes are paid for at 0.6 s: 600 bytes by 0.5 s (the rate's 500
        // and the burst).
        assert_eq!(bucket.reserve(500, t0), Duration::from_millis(500));
        // Requests made meanwhile queue behind it.
        assert_eq!(bucket.reserve(1000, t0), Duration::from_millis(1500));
        // Time passed pays the debt, and the burst is there again.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(bucket.reserve(500, later), Duration::from_millis(400));
        // An idle bucket saves up no more than the burst.
        let idle = t0 + Duration::from_secs(60);
        assert_eq!(bucket.reserve(100, idle), Duration::ZERO);
        assert_eq!(bucket.reserve(1000, idle), Duration::from_millis(1000));
    }

    /// Requests from several tasks share one bucket: 200 KiB through a 1000 KiB/s bucket
    /// take at least 0.1 s (0.2 s less the burst), however they are split.
    #[tokio::test]
    async fn one_bucket_is_shared_by_concurrent_requests() {
        let bucket = Arc::new(TokenBucket::kib_per_sec(1000));
        let started = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let b = bucket.clone();
                tokio::spawn(async move { b.take(50 * 1024).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn uploads_and_downloads_are_held_to_their_own_rates() {
        let memory: Arc<dyn Backend> = Arc::new(crate::OpendalBackend::memory().unwrap());
        let backend = ThrottledBackend::new(
            memory,
            Some(Arc::new(TokenBucket::new(10_000))),
            Some(Arc::new(TokenBucket::new(20_000))),
        );
        let data = Bytes::from(vec![7u8; 5_000]);
        let started = Instant::now();
        backend
            .write(FileType::Snapshot, "a", data.clone())
            .await
            .unwrap();
        backend
            .write(FileType::Snapshot, "b", data.clone())
            .await
            .unwrap();
        // 10 kB at 10 kB/s, less the 0.1 s burst.
        let up = started.elapsed();
        assert!(up >= Duration::from_millis(900), "{up:?}");
        let started = Instant::now();
        for name in ["a", "b", "a", "b"] {
            assert_eq!(backend.read(FileType::Snapshot, name).await.unwrap(), data);
        }
        // 20 kB at 20 kB/s, less the burst.
        let down = started.elapsed();
        assert!(down >= Duration::from_millis(900), "{down:?}");
    }
}
