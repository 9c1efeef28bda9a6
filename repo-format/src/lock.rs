//! Lock files: who is using the repository, and how.
//!
//! Version 2 adds [`ProcessIdentity`]: what proves that two processes share one kernel and
//! one PID namespace, and which process holds the lock. A host name proves neither (two
//! containers, two cloned VMs or a pod and its node may share one), so only a lock that
//! carries an identity can ever be judged stale for certain.
//!
//! Version 3 replaces `exclusive` with a [`LockKind`] (adding the prune lock, which
//! excludes other prunes and exclusive locks but not backups) and adds `session`, the id
//! that a prune's seal records (spec/prune.md).

use serde::{Deserialize, Serialize};

use crate::envelope::{decode_postcard, split_version, EncryptedObject};
use crate::FormatError;

/// How a lock excludes others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockKind {
    /// Backups, copies, checks, restores: any number at once, beside a prune.
    Shared,
    /// Prune, forget, and the commands that replace snapshots or keys (hold, tag, rewrite,
    /// key changes): one at a time, beside shared locks (version 3).
    Prune,
    /// Repair: excludes every other lock.
    Exclusive,
}

impl LockKind {
    /// Whether a lock of this kind and one of `other` may be held at once.
    pub fn compatible(self, other: LockKind) -> bool {
        matches!(
            (self, other),
            (LockKind::Shared, LockKind::Shared)
                | (LockKind::Shared, LockKind::Prune)
                | (LockKind::Prune, LockKind::Shared)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            LockKind::Shared => "shared",
            LockKind::Prune => "prune",
            LockKind::Exclusive => "exclusive",
        }
    }
}

/// A lock held by one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    pub kind: LockKind,
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
    /// Random, drawn when the lock is taken and kept by its refreshes: names this holding
    /// of a lock in a prune's seal (version 3; in older versions, `process.instance`, or
    /// zero without one).
    pub session: [u8; 16],
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

/// Version 2 locks: `exclusive` instead of a kind, no session.
#[derive(Deserialize)]
struct LockFileV2 {
    exclusive: bool,
    hostname: String,
    username: String,
    pid: u32,
    time_ns: i64,
    operation: String,
    process: Option<ProcessIdentity>,
}

fn kind_of(exclusive: bool) -> LockKind {
    if exclusive {
        LockKind::Exclusive
    } else {
        LockKind::Shared
    }
}

impl From<LockFileV1> for LockFile {
    fn from(v: LockFileV1) -> Self {
        LockFile {
            kind: kind_of(v.exclusive),
            hostname: v.hostname,
            username: v.username,
            pid: v.pid,
            time_ns: v.time_ns,
            operation: v.operation,
            process: None,
            session: [0; 16],
        }
    }
}

impl From<LockFileV2> for LockFile {
    fn from(v: LockFileV2) -> Self {
        LockFile {
            kind: kind_of(v.exclusive),
            hostname: v.hostname,
            username: v.username,
            pid: v.pid,
            time_ns: v.time_ns,
            operation: v.operation,
            session: v.process.as_ref().map_or([0; 16], |p| p.instance),
            process: v.process,
        }
    }
}

impl EncryptedObject for LockFile {
    const KIND: &'static str = "lock";
    const OBJECT: &'static str = "lock";
    /// Version 2 added `process`; version 3 `kind` (for `exclusive`) and `session`. Never
    /// reuse a number.
    const VERSION: u16 = 3;

    fn decode_plain(data: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = split_version(Self::OBJECT, data, Self::VERSION)?;
        match version {
            1 => Ok(decode_postcard::<LockFileV1>(Self::OBJECT, body)?.into()),
            2 => Ok(decode_postcard::<LockFileV2>(Self::OBJECT, body)?.into()),
            _ => decode_postcard(Self::OBJECT, body),
        }
    }
}
