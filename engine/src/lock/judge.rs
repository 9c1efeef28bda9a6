//! Judging other processes' locks: describing them, telling stale ones, and finding the
//! ones that conflict with a lock wanted.

use strata_format::envelope::EncryptedObject;
use strata_format::id::LockId;
use strata_format::lock::{LockFile, LockKind};
use strata_format::FormatError;
use strata_storage::FileType;

use super::identity;
use super::timing::{humanize_secs, LockTiming};
use crate::{EngineError, Repository, Result};

pub(super) fn describe(l: &LockFile) -> String {
    let kind = l.kind.name();
    let age = crate::now_ns().saturating_sub(l.time_ns).max(0) / 1_000_000_000;
    format!(
        "{kind} lock of `{}` by {}@{} (pid {}), last refreshed {} ago",
        l.operation,
        l.username,
        l.hostname,
        l.pid,
        humanize_secs(age)
    )
}

/// Why a lock is stale, if it is (see the module docs).
pub(super) fn staleness(l: &LockFile, timing: &LockTiming) -> Option<String> {
    if let Some(why) = identity::certainly_gone(l.pid, l.process.as_ref()) {
        return Some(why.to_string());
    }
    let age = crate::now_ns().saturating_sub(l.time_ns);
    let expiry = timing.stale_after + timing.clock_skew;
    (age > expiry.as_nanos() as i64).then(|| {
        format!(
            "it expired: not refreshed for over {} (holders refresh every {}; {} of it allow \
             for clocks that differ)",
            humanize_secs(expiry.as_secs() as i64),
            humanize_secs(timing.refresh_every.as_secs() as i64),
            humanize_secs(timing.clock_skew.as_secs() as i64),
        )
    })
}

/// Reads every lock but `mine`: removes the stale ones, and fails with `Locked` on the
/// first that conflicts with a lock of the kind asked for. Returns the sessions of the
/// live locks that do not conflict, sorted.
pub(super) fn check_conflicts(
    repo: &Repository,
    kind: LockKind,
    mine: Option<&LockId>,
    timing: &LockTiming,
) -> Result<Vec<[u8; 16]>> {
    Ok(judge_locks(repo, kind, mine, timing)?.live)
}

/// What a reading of the locks found.
pub(super) struct Judged {
    /// Sessions of the live locks (none conflicting), sorted.
    pub(super) live: Vec<[u8; 16]>,
    /// Sessions of the locks removed now because they expired (not because their process
    /// is certainly gone): their holders may still be running, unaware.
    pub(super) expired: Vec<[u8; 16]>,
}

/// How many times the locks are listed again when a listed lock vanished before it was
/// read (a refresh writes the new file, then deletes the old one).
const LOCK_RELISTS: usize = 8;

/// Reads every lock but `mine` (in parallel), as [`check_conflicts`] describes. A lock
/// listed but gone when read was refreshed or released meanwhile: the locks are listed
/// again and the new names read, so that a live holder refreshing its lock is never
/// missed (spec/prune.md counts on every live session being seen).
pub(super) fn judge_locks(
    repo: &Repository,
    kind: LockKind,
    mine: Option<&LockId>,
    timing: &LockTiming,
) -> Result<Judged> {
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut live = Vec::new();
    let mut expired = Vec::new();
    for _ in 0..LOCK_RELISTS {
        let listed: Vec<(String, u64)> = repo
            .block_on(repo.backend().list(FileType::Lock))?
            .into_iter()
            .filter(|(name, size)| {
                mine.is_none_or(|m| m.to_hex() != *name)
                    && crate::stored::check_size(FileType::Lock, name, *size).is_ok()
                    && !seen.contains(name)
            })
            .collect();
        let reads = repo.read_many_listed(FileType::Lock, &listed);
        let mut vanished = false;
        for ((name, _), read) in listed.iter().zip(reads) {
            seen.insert(name.clone());
            let bytes = match read {
                Ok(b) => b,
                Err(EngineError::Storage(e)) if e.kind == strata_storage::ErrorKind::NotFound => {
                    vanished = true;
                    continue;
                }
                // Damaged: a live holder finds it still there, and replaces it at its next
                // refresh.
                Err(e) if e.kind() == crate::ErrorKind::Corrupt => {
                    tracing::warn!("ignoring damaged lock locks/{name}: {e}");
                    continue;
                }
                // A lock that cannot be read might be live: nothing may proceed as if it
                // were not there.
                Err(e) => return Err(e),
            };
            let other = match LockFile::decode(repo.key(), &bytes) {
                Ok(l) => l,
                // A newer Strata's lock: who holds it and how cannot be told, so it is live
                // and conflicts with everything.
                Err(FormatError::UnknownVersion { found, .. }) => {
                    return Err(EngineError::locked(format!(
                        "repository is locked by a newer Strata (lock version {found}, \
                         locks/{name}); upgrade strata on this host, or wait for it to finish"
                    )))
                }
                Err(e) => {
                    tracing::warn!("ignoring undecodable lock locks/{name}: {e}");
                    continue;
                }
            };
            if let Some(why) = staleness(&other, timing) {
                tracing::warn!(
                    "removing stale lock locks/{name} ({why}): {}",
                    describe(&other)
                );
                repo.block_on(repo.backend().delete(FileType::Lock, name))?;
                if identity::certainly_gone(other.pid, other.process.as_ref()).is_none() {
                    expired.push(other.session);
                }
                continue;
            }
            if !kind.compatible(other.kind) {
                return Err(EngineError::Locked {
                    message: format!(
                        "repository is locked: {}; wait for it to finish, or retry with \
                         --retry-lock (if that process is gone, `strata unlock --remove-all` removes \
                         the lock; otherwise it expires {} after its last refresh)",
                        describe(&other),
                        humanize_secs((timing.stale_after + timing.clock_skew).as_secs() as i64)
                    ),
                    holder: Some(Box::new(crate::error::LockHolder {
                        operation: other.operation.clone(),
                        exclusive: other.kind == LockKind::Exclusive,
                        kind: other.kind.name().to_string(),
                        hostname: other.hostname.clone(),
                        username: other.username.clone(),
                        pid: other.pid,
                        refreshed_ns: other.time_ns,
                    })),
                });
            }
            live.push(other.session);
        }
        if !vanished {
            live.sort_unstable();
            live.dedup();
            expired.sort_unstable();
            expired.dedup();
            return Ok(Judged { live, expired });
        }
    }
    Err(EngineError::locked(format!(
        "the repository's locks kept changing while they were read ({LOCK_RELISTS} listings); \
         try again"
    )))
}

/// Reads a lock file: `None` when it is gone (removed meanwhile) or damaged (a live holder
/// finds it still there, and replaces it at its next refresh). Any other failure is an
/// error: a lock that cannot be read might be live, so nothing may proceed as if it were
/// not there.
pub(super) fn read_lock(repo: &Repository, name: &str) -> Result<Option<bytes::Bytes>> {
    match repo.read_verified(FileType::Lock, name) {
        Ok(b) => Ok(Some(b)),
        Err(EngineError::Storage(e)) if e.kind == strata_storage::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == crate::ErrorKind::Corrupt => {
            tracing::warn!("ignoring damaged lock locks/{name}: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}
