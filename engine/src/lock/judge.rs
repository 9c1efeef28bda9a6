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
    let mut sessions = Vec::new();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        if mine.is_some_and(|m| m.to_hex() == name)
            || crate::stored::check_size(FileType::Lock, &name, size).is_err()
        {
            continue;
        }
        let bytes = match read_lock(repo, &name)? {
            Some(b) => b,
            None => continue,
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
            repo.block_on(repo.backend().delete(FileType::Lock, &name))?;
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
                    exclusive: other.kind != LockKind::Shared,
                    hostname: other.hostname.clone(),
                    username: other.username.clone(),
                    pid: other.pid,
                    refreshed_ns: other.time_ns,
                })),
            });
        }
        sessions.push(other.session);
    }
    sessions.sort_unstable();
    sessions.dedup();
    Ok(sessions)
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
