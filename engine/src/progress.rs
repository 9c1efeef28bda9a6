//! Progress reporting. The engine calls these hooks; the CLI renders them (or not).

use std::path::Path;

/// Receives progress of long operations. Every method has a no-op default.
pub trait Progress: Send + Sync {
    /// Total bytes expected, when known.
    fn set_total(&self, _bytes: u64) {}
    /// Bytes processed (read for backup, written for restore, checked for check).
    fn add_bytes(&self, _n: u64) {}
    /// One more item (file, snapshot) processed.
    fn add_item(&self) {}
    /// The item being worked on.
    fn current(&self, _path: &Path) {}
    /// A non-fatal problem (an unreadable source file, a file that could not be restored).
    fn warn(&self, _message: &str) {}
    /// The operation has ended.
    fn finish(&self) {}
}

/// Progress that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
