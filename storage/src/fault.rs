//! Fault injection: a [`Backend`] decorator that kills the process, fails, truncates or
//! delays requests at chosen points. **This is a test hook**, for crash tests (SIGKILL at
//! every step of backup and prune), retry tests and tests that need a slow link; nothing in
//! normal operation uses it.
//!
//! Mutations (`write`, `write_file`, `delete`) are numbered from 1 in the order they start;
//! reads (`read`, `read_range`) are numbered separately. Delays and random failures apply
//! to those and to `list` and `stat`. `create_layout`, `remove_leftovers`, `location`,
//! `spool_dir` and `spool_file` are passed through untouched (so local packs are still
//! renamed into place from the inner backend's spool directory).
//!
//! The CLI builds a plan from the environment with [`FaultPlan::from_env`]:
//! - `STRATA_TEST_FAULT`: comma-separated items, each at most once (N ≥ 1; at most one kill
//!   item), e.g. `kill-after=3,fail-reads-every=5`; they set the [`FaultPlan`] fields of the
//!   same names:
//!   - `kill-before=N`, `kill-after=N`: SIGKILL at the N-th mutation, before or after it runs;
//!   - `fail=N`: the N-th mutation fails;
//!   - `fail-reads-every=N`: every N-th read fails (transient);
//!   - `fail-percent=N` (N ≤ 100): N % of all requests fail at random (transient);
//!   - `truncate=N`: the N-th write stores only the first half of the object, and succeeds;
//!   - `delay-ms=N`: every request waits N ms first (a slow link; a test that kills a
//!     server mid-backup uses it to make sure the backup is still running).
//! - `STRATA_TEST_FAULT_LOG=path`: one line per mutation, `<n> <op> <path>`, is appended to
//!   that file (and flushed) when the mutation is numbered, before it runs. A test counts
//!   the lines of a clean run, then kills a run at each of them.
//! - `STRATA_TEST_READ_LOG=path`: one line per read, `read <path>` for a whole object or
//!   `read <path> <offset> <length>` for a ranged read, is appended to that file when the
//!   read starts. A test counts what a command fetched (`strata mount` reading one byte).
//!   Setting only this variable installs the layer with no faults.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tracing::debug;

use crate::{Backend, FileType, FreeSpace, Result, StorageError};

/// The environment variable holding a fault specification (test hook).
pub const FAULT_ENV: &str = "STRATA_TEST_FAULT";
/// The environment variable naming the mutation log file (test hook).
pub const FAULT_LOG_ENV: &str = "STRATA_TEST_FAULT_LOG";
/// The environment variable naming the read log file (test hook).
pub const READ_LOG_ENV: &str = "STRATA_TEST_READ_LOG";

/// The message of every injected error.
const INJECTED: &str = "injected fault";

/// Whether a kill happens before or after the chosen mutation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The mutation never runs: tests a crash before a write or delete.
    Before,
    /// The mutation completes (durably), then the process dies: tests the window between a
    /// durable write and the next step.
    After,
}

/// What faults to inject (test hook). The default injects nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Kill the process with SIGKILL at the N-th mutation (counted from 1).
    pub kill_at_mutation: Option<(u64, When)>,
    /// The N-th mutation fails with an `ErrorKind::Other` "injected fault" error without
    /// running; later ones run normally.
    pub fail_at_mutation: Option<u64>,
    /// Every N-th read or ranged read fails with an `ErrorKind::Transient` error without
    /// running.
    pub fail_reads_every: Option<u64>,
    /// Fail this percentage of all requests, chosen at random, with an
    /// `ErrorKind::Transient` error before they run (a failed `write_file` leaves its source
    /// file in place, so that it can be retried).
    pub fail_percent: Option<u64>,
    /// The N-th mutation that is a write stores only the first half of the object and
    /// reports success (a store that loses data silently).
    pub truncate_write: Option<u64>,
    /// Every request waits this many milliseconds first (a slow link).
    pub delay_ms: Option<u64>,
    /// The first `list_each` of packs passes this many names, then fails with an
    /// `ErrorKind::Transient` error (a listing broken part way: a retry starts it over,
    /// and its caller sees those names twice).
    pub fail_pack_listing_after: Option<u64>,
    /// Append one line per mutation (`<n> <op> <path>`) to this file.
    pub log: Option<PathBuf>,
    /// Append one line per read (`read <path> [<offset> <length>]`) to this file.
    pub read_log: Option<PathBuf>,
}

impl FaultPlan {
    /// The plan given by `STRATA_TEST_FAULT`, `STRATA_TEST_FAULT_LOG` and
    /// `STRATA_TEST_READ_LOG` (test hook). `Ok(None)` when all are unset or empty; an error
    /// naming the variable on bad syntax.
    pub fn from_env() -> std::result::Result<Option<FaultPlan>, String> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let spec = var(FAULT_ENV);
        let log = var(FAULT_LOG_ENV);
        let read_log = var(READ_LOG_ENV);
        if spec.is_none() && log.is_none() && read_log.is_none() {
            return Ok(None);
        }
        let mut plan = match spec {
            Some(spec) => {
                let spec = spec
                    .to_str()
                    .ok_or_else(|| format!("{FAULT_ENV} (a test hook) is not valid UTF-8"))?;
                FaultPlan::parse(spec)
                    .map_err(|e| format!("{FAULT_ENV}={spec:?} (a test hook): {e}"))?
            }
            None => FaultPlan::default(),
        };
        plan.log = log.map(PathBuf::from);
        plan.read_log = read_log.map(PathBuf::from);
        Ok(Some(plan))
    }

    /// Parses the `STRATA_TEST_FAULT` syntax (see the module docs): comma-separated
    /// `kill-before=N`, `kill-after=N`, `fail=N`, `fail-reads-every=N`, `fail-percent=N`,
    /// `truncate=N` and `delay-ms=N`, each at most once, at most one kill item, N ≥ 1
    /// (`fail-percent` ≤ 100). The empty string is the empty plan. `log` is left unset.
    pub fn parse(spec: &str) -> std::result::Result<FaultPlan, String> {
        let mut plan = FaultPlan::default();
        if spec.trim().is_empty() {
            return Ok(plan);
        }
        for item in spec.split(',') {
            let item = item.trim();
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!("`{item}` is not KEY=N"));
            };
            let (key, value) = (key.trim(), value.trim());
            let n: u64 = match value.parse() {
                Ok(n) if n >= 1 => n,
                _ => return Err(format!("`{item}`: {value:?} is not a number ≥ 1")),
            };
            let slot_taken = match key {
                "kill-before" | "kill-after" => {
                    let when = if key == "kill-before" {
                        When::Before
                    } else {
                        When::After
                    };
                    plan.kill_at_mutation.replace((n, when)).is_some()
                }
                "fail" => plan.fail_at_mutation.replace(n).is_some(),
                "fail-reads-every" => plan.fail_reads_every.replace(n).is_some(),
                "fail-percent" if n <= 100 => plan.fail_percent.replace(n).is_some(),
                "truncate" => plan.truncate_write.replace(n).is_some(),
                "delay-ms" => plan.delay_ms.replace(n).is_some(),
                _ => {
                    return Err(format!(
                        "unknown item `{item}` (expected kill-before=N, kill-after=N, fail=N, \
                         fail-reads-every=N, fail-percent=N with N ≤ 100, truncate=N or delay-ms=N)"
                    ))
                }
            };
            if slot_taken {
                return Err(format!("`{item}` repeats an earlier item"));
            }
        }
        Ok(plan)
    }
}

/// A [`Backend`] that injects the faults of a [`FaultPlan`] around an inner backend.
/// Clones share their counters.
#[derive(Debug, Clone)]
pub struct FaultBackend {
    inner: Arc<dyn Backend>,
    plan: FaultPlan,
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    mutations: AtomicU64,
    reads: AtomicU64,
    requests: AtomicU64,
    writes: AtomicU64,
    /// A pack listing was broken ([`FaultPlan::fail_pack_listing_after`]).
    listing_broken: std::sync::atomic::AtomicBool,
    /// Serializes lines of the mutation and read logs.
    log: Mutex<()>,
}

impl FaultBackend {
    /// Wraps `inner`, injecting the faults of `plan`.
    pub fn new(inner: Arc<dyn Backend>, plan: FaultPlan) -> Self {
        FaultBackend {
            inner,
            plan,
            state: Arc::default(),
        }
    }

    /// How many mutations have started so far (including failed and injected ones).
    pub fn mutations(&self) -> u64 {
        self.state.mutations.load(Ordering::SeqCst)
    }

    /// How many reads and ranged reads have started so far.
    pub fn reads(&self) -> u64 {
        self.state.reads.load(Ordering::SeqCst)
    }

    /// Numbers a mutation about to run, logs it, and applies the plan: kills the process
    /// (`When::Before`), returns the injected error, or returns whether to kill after it.
    fn start_mutation(&self, op: &'static str, path: &str) -> Result<bool> {
        let n = self.state.mutations.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = &self.plan.log {
            self.log_line(log, &format!("{n} {op} {path}\n"))
                .map_err(|e| {
                    let msg = format!("fault log {}: {e}", log.display());
                    StorageError::other(op, path, msg)
                })?;
        }
        match self.plan.kill_at_mutation {
            Some((at, When::Before)) if at == n => kill(n, op, path),
            Some((at, When::After)) if at == n => return Ok(true),
            _ => {}
        }
        if self.plan.fail_at_mutation == Some(n) {
            debug!(n, op, path, "fault injection: failing mutation");
            return Err(StorageError::from_io(
                op,
                path,
                std::io::Error::other(INJECTED),
            ));
        }
        Ok(false)
    }

    /// Finishes a mutation started by [`Self::start_mutation`].
    fn end_mutation<T>(
        &self,
        kill_after: bool,
        op: &'static str,
        path: &str,
        r: Result<T>,
    ) -> Result<T> {
        if kill_after {
            kill(self.mutations(), op, path);
        }
        r
    }

    /// Numbers a read, logs it (`range`: offset and length of a ranged read) and fails it
    /// if the plan says so.
    fn start_read(&self, op: &'static str, path: &str, range: Option<(u64, u64)>) -> Result<()> {
        let n = self.state.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = &self.plan.read_log {
            let line = match range {
                Some((offset, length)) => format!("read {path} {offset} {length}\n"),
                None => format!("read {path}\n"),
            };
            self.log_line(log, &line).map_err(|e| {
                let msg = format!("read log {}: {e}", log.display());
                StorageError::other(op, path, msg)
            })?;
        }
        match self.plan.fail_reads_every {
            Some(every) if n.is_multiple_of(every) => {
                debug!(n, op, path, "fault injection: failing read");
                let io = std::io::Error::new(std::io::ErrorKind::TimedOut, INJECTED);
                Err(StorageError::from_io(op, path, io))
            }
            _ => Ok(()),
        }
    }

    /// Fails a request at random, as often as `fail_percent` says (after the delay, if
    /// any).
    async fn maybe_fail(&self, op: &'static str, path: &str) -> Result<()> {
        if let Some(ms) = self.plan.delay_ms {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let Some(p) = self.plan.fail_percent else {
            return Ok(());
        };
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.state.requests.fetch_add(1, Ordering::Relaxed));
        if h.finish() % 100 < p {
            debug!(op, path, "fault injection: failing a request at random");
            let io = std::io::Error::new(std::io::ErrorKind::TimedOut, INJECTED);
            return Err(StorageError::from_io(op, path, io));
        }
        Ok(())
    }

    fn log_line(&self, log: &Path, line: &str) -> std::io::Result<()> {
        let _serial = self.state.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        file.write_all(line.as_bytes())?;
        file.flush()
    }
}

/// Kills this process with SIGKILL: no destructor, flush or unwinding runs.
fn kill(n: u64, op: &str, path: &str) -> ! {
    debug!(n, op, path, "fault injection: SIGKILL");
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught; should raise fail, still die without cleanup.
    std::process::abort()
}

#[async_trait]
impl Backend for FaultBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn read(&self, ft: FileType, name: &str) -> Result<Bytes> {
        self.maybe_fail("read", &ft.path(name)).await?;
        self.start_read("read", &ft.path(name), None)?;
        self.inner.read(ft, name).await
    }

    async fn read_range(
        &self,
        ft: FileType,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Bytes> {
        self.maybe_fail("read_range", &ft.path(name)).await?;
        self.start_read("read_range", &ft.path(name), Some((offset, length)))?;
        self.inner.read_range(ft, name, offset, length).await
    }

    async fn write(&self, ft: FileType, name: &str, data: Bytes) -> Result<()> {
        let path = ft.path(name);
        self.maybe_fail("write", &path).await?;
        let kill_after = self.start_mutation("write", &path)?;
        let writes = self.state.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let data = if self.plan.truncate_write == Some(writes) {
            debug!(path, "fault injection: truncating a write");
            data.slice(..data.len() / 2)
        } else {
            data
        };
        let r = self.inner.write(ft, name, data).await;
        self.end_mutation(kill_after, "write", &path, r)
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
        let path = ft.path(name);
        self.maybe_fail("write_file", &path).await?;
        let kill_after = match self.start_mutation("write_file", &path) {
            Ok(kill_after) => kill_after,
            Err(e) => {
                // The contract: the file is consumed, also on error.
                let _ = std::fs::remove_file(file);
                return Err(e);
            }
        };
        let r = self.inner.write_file(ft, name, file).await;
        self.end_mutation(kill_after, "write_file", &path, r)
    }

    async fn list(&self, ft: FileType) -> Result<Vec<(String, u64)>> {
        self.maybe_fail("list", ft.dir()).await?;
        self.inner.list(ft).await
    }

    async fn list_each(
        &self,
        ft: FileType,
        each: &mut (dyn for<'n> FnMut(&'n str, u64) + Send),
    ) -> Result<()> {
        self.maybe_fail("list", ft.dir()).await?;
        if let Some(n) = self
            .plan
            .fail_pack_listing_after
            .filter(|_| ft == FileType::Pack)
        {
            if !self.state.listing_broken.swap(true, Ordering::SeqCst) {
                let mut seen = 0u64;
                self.inner
                    .list_each(ft, &mut |name, size| {
                        seen += 1;
                        if seen <= n {
                            each(name, size);
                        }
                    })
                    .await?;
                if seen > n {
                    debug!(passed = n, "fault injection: breaking a pack listing");
                    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, INJECTED);
                    return Err(StorageError::from_io("list", ft.dir(), io));
                }
                return Ok(());
            }
        }
        self.inner.list_each(ft, each).await
    }

    async fn delete(&self, ft: FileType, name: &str) -> Result<()> {
        let path = ft.path(name);
        self.maybe_fail("delete", &path).await?;
        let kill_after = self.start_mutation("delete", &path)?;
        let r = self.inner.delete(ft, name).await;
        self.end_mutation(kill_after, "delete", &path, r)
    }

    async fn stat(&self, ft: FileType, name: &str) -> Result<Option<u64>> {
        self.maybe_fail("stat", &ft.path(name)).await?;
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
mod tests;
