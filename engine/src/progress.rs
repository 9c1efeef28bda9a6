//! Progress reporting and cancellation. The engine calls these hooks; the CLI renders them
//! (or not), a server records them for a web page, and either may ask a running operation
//! to stop.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// What a long operation is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Reading the index, listing snapshots, planning.
    Preparing,
    /// Walking and reading the sources of a backup.
    BackingUp,
    /// Writing what is left to storage (the last packs, index, snapshot).
    Uploading,
    /// Writing restored files.
    Restoring,
    /// Verifying the repository.
    Checking,
    /// Copying snapshots to another repository.
    Copying,
    /// Rewriting packs and the index, deleting what is not needed.
    Pruning,
}

/// What a backup did with one regular file, measured against the parent snapshot (the
/// same three counts as [`strata_format::snapshot::SnapshotSummary`]). A dry run reports
/// what it would do with the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileStatus {
    /// Not in the parent snapshot (or no parent): read and stored.
    New,
    /// In the parent snapshot with other metadata: read again.
    Modified,
    /// Size, mtime, ctime and inode as in the parent snapshot: not read, its content reused.
    Unchanged,
}

impl FileStatus {
    /// The word restic's `backup -v` prints before the path (`new`, `modified`, `unchanged`).
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::New => "new",
            FileStatus::Modified => "modified",
            FileStatus::Unchanged => "unchanged",
        }
    }
}

/// The work an operation has in front of it, reported through [`Progress::set_totals`]:
/// `items` are files for a backup or a restore, packs for `check --read-data`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub items: u64,
    pub bytes: u64,
    /// `false` while the numbers may still grow: a backup's scanner walks the sources
    /// beside the backup and reports what it has counted so far, then the final totals
    /// with `complete` set. Restore and check know theirs up front.
    pub complete: bool,
}

/// Receives progress of long operations, and may ask them to stop. Every method has a
/// default: report nothing, never stop.
///
/// Counting contract: an operation that reports [`Totals`] reports the same units as done,
/// `add_item` once per item and `add_bytes` for its bytes (a backup counts an unchanged
/// file, not read, as done with its size). Methods are called from several threads at once.
pub trait Progress: Send + Sync {
    /// The operation entered a phase.
    fn phase(&self, _phase: Phase) {}
    /// Total bytes expected, when known.
    fn set_total(&self, _bytes: u64) {}
    /// Items and bytes expected, possibly while still counting (see [`Totals::complete`]).
    /// By default, final totals are passed on to [`Progress::set_total`].
    fn set_totals(&self, totals: Totals) {
        if totals.complete {
            self.set_total(totals.bytes);
        }
    }
    /// Bytes processed (read for backup, written for restore, checked for check).
    fn add_bytes(&self, _n: u64) {}
    /// One more item (file, snapshot, pack) processed.
    fn add_item(&self) {}
    /// A backup is done with one regular file (called besides `add_item`), and what it did
    /// with it: `backup -v` lists the new and modified ones, a dry run reports them all.
    fn file_done(&self, _path: &Path, _status: FileStatus) {}
    /// The item being worked on.
    fn current(&self, _path: &Path) {}
    /// A non-fatal problem (an unreadable source file, a file that could not be restored).
    fn warn(&self, _message: &str) {}
    /// The operation has ended.
    fn finish(&self) {}
    /// Asked between files and packs: `true` stops the operation with
    /// [`crate::EngineError::Cancelled`], leaving the repository as a kill at that moment
    /// would (nothing names data before it is durable; what was written unreferenced is
    /// what the next prune removes).
    fn should_stop(&self) -> bool {
        false
    }
    /// Whether totals are shown (or recorded) at all: when not, a backup runs no scanner
    /// to count them (a cron job's backup without a terminal pays nothing for progress).
    fn wants_totals(&self) -> bool {
        true
    }
}

/// Progress that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn wants_totals(&self) -> bool {
        false
    }
}

/// A flag to stop an operation from another thread: clone it, hand one to a
/// [`Cancellable`] progress, and call [`CancelToken::cancel`] on the other.
#[derive(Debug, Default, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Another progress, stopped by a [`CancelToken`].
pub struct Cancellable<'p> {
    pub inner: &'p dyn Progress,
    pub token: CancelToken,
}

impl Progress for Cancellable<'_> {
    fn phase(&self, phase: Phase) {
        self.inner.phase(phase)
    }
    fn set_total(&self, bytes: u64) {
        self.inner.set_total(bytes)
    }
    fn set_totals(&self, totals: Totals) {
        self.inner.set_totals(totals)
    }
    fn add_bytes(&self, n: u64) {
        self.inner.add_bytes(n)
    }
    fn add_item(&self) {
        self.inner.add_item()
    }
    fn file_done(&self, path: &Path, status: FileStatus) {
        self.inner.file_done(path, status)
    }
    fn current(&self, path: &Path) {
        self.inner.current(path)
    }
    fn warn(&self, message: &str) {
        self.inner.warn(message)
    }
    fn finish(&self) {
        self.inner.finish()
    }
    fn should_stop(&self) -> bool {
        self.token.is_cancelled() || self.inner.should_stop()
    }
    fn wants_totals(&self) -> bool {
        self.inner.wants_totals()
    }
}

/// Another progress, told only of warnings (and asked whether to stop): for an operation
/// run inside another one (the safety snapshot of a restore) whose counts would mix with
/// the outer operation's.
pub struct WarningsOnly<'p>(pub &'p dyn Progress);

impl Progress for WarningsOnly<'_> {
    fn warn(&self, message: &str) {
        self.0.warn(message)
    }
    fn should_stop(&self) -> bool {
        self.0.should_stop()
    }
    fn wants_totals(&self) -> bool {
        false
    }
}

/// Fails with [`crate::EngineError::Cancelled`] when the progress asks to stop.
pub(crate) fn check_stop(progress: &dyn Progress) -> crate::Result<()> {
    if progress.should_stop() {
        return Err(crate::EngineError::Cancelled);
    }
    Ok(())
}
