//! Lock files: who is using the repository, and how.
//!
//! Version 2 adds [`ProcessIdentity`]: what proves that two processes share one kernel and
//! one PID namespace, and which process holds the lock. A host name proves neither (two
//! containers, two cloned VMs or a pod and its node may share one), so only a lock that
//! carries an identity can ever be judged stale for certain.

use serde::{Deserialize, Serialize};

use crate::envelope::{decode_postcard, split_version, EncryptedObject};
use crate::FormatError;

/// A lock held by one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// Exclusive locks (prune, repair) exclude every other lock.
    pub exclusive: bool,
    pub hostname: String,
    pub username: String,
    /// Process id in the holder's own PID namespace.
    pub pid: u32,
    /// When the lock was taken or last refreshed, Unix nanoseconds.
    pub time_ns: i64,
    /// The command holding it, e.g. "backup".
    pub operation: String,
    /// Who the holder is, beyond a host name (version 2; `None` in version 1 locks).
    pub process: Option<ProcessIdentity>,
}

/// What identifies a process across hosts, containers and reboots. Every field may be
/// unknown (empty or zero) on a system that does not offer it; an unknown field never
/// proves anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), empty if unknown. Equal
    /// boot ids mean one running kernel.
    pub boot_id: String,
    /// Inode number of the holder's PID namespace (`/proc/self/ns/pid`), 0 if unknown.
    pub pid_namespace: u64,
    /// The holder's start time in clock ticks after boot (field 22 of `/proc/self/stat`),
    /// 0 if unknown: a pid reused by a later process has another start time.
    pub start_ticks: u64,
    /// Random, chosen once per process: tells the locks of one process from another's.
    pub instance: [u8; 16],
}

/// Version 1 locks: no process identity.
#[derive(Deserialize)]
struct LockFileV1 {
    exclusive: bool,
    hostname: String,
    username: String,
    pid: u32,
    time_ns: i64,
    operation: String,
}

impl From<LockFileV1> for LockFile {
    fn from(v: LockFileV1) -> Self {
        LockFile {
            exclusive: v.exclusive,
            hostname: v.hostname,
            username: v.username,
            pid: v.pid,
            time_ns: v.time_ns,
            operation: v.operation,
            process: None,
        }
    }
}

impl EncryptedObject for LockFile {
    const KIND: &'static str = "lock";
    const OBJECT: &'static str = "lock";
    /// Version 2 added `process`. Never reuse a number.
    const VERSION: u16 = 2;

    fn decode_plain(data: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = split_version(Self::OBJECT, data, Self::VERSION)?;
        if version == 1 {
            return Ok(decode_postcard::<LockFileV1>(Self::OBJECT, body)?.into());
        }
        decode_postcard(Self::OBJECT, body)
    }
}
