//! Lock files: who is using the repository, and how.

use serde::{Deserialize, Serialize};

use crate::envelope::EncryptedObject;

/// A lock held by one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// Exclusive locks (prune, repair) exclude every other lock.
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    pub pid: u32,
    /// When the lock was taken or last refreshed, Unix nanoseconds.
    pub time_ns: i64,
    /// The command holding it, e.g. "backup".
    pub operation: String,
}

impl EncryptedObject for LockFile {
    const KIND: &'static str = "lock";
    const OBJECT: &'static str = "lock";
    const VERSION: u16 = 1;
}
