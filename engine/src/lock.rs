//! Repository locks. Backup, restore and check take shared locks; prune and repair take an
//! exclusive one. A lock of a process that no longer runs on this host is stale for certain
//! and removed automatically; a lock from another host blocks until `strata unlock`.

use strata_format::envelope::EncryptedObject;
use strata_format::id::LockId;
use strata_format::lock::LockFile;
use strata_storage::FileType;

use crate::{EngineError, Repository, Result};

/// A held lock; removed from the repository when dropped.
pub struct LockGuard<'r> {
    repo: &'r Repository,
    id: LockId,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.repo.block_on(
            self.repo
                .backend()
                .delete(FileType::Lock, &self.id.to_hex()),
        ) {
            tracing::warn!("could not remove lock {}: {e}", self.id);
        }
    }
}

fn process_alive(pid: u32) -> bool {
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true,
    }
}

fn describe(l: &LockFile) -> String {
    let kind = if l.exclusive { "exclusive" } else { "shared" };
    let secs = l.time_ns / 1_000_000_000;
    format!(
        "{kind} lock of `{}` by {}@{} (pid {}) since unix time {secs}",
        l.operation, l.username, l.hostname, l.pid
    )
}

/// Takes a lock for `operation`. Fails with `Locked` when a conflicting live lock exists.
pub fn lock<'r>(repo: &'r Repository, operation: &str, exclusive: bool) -> Result<LockGuard<'r>> {
    check_conflicts(repo, exclusive, None)?;
    let mine = LockFile {
        exclusive,
        hostname: crate::hostname(),
        username: crate::username(),
        pid: std::process::id(),
        time_ns: crate::now_ns(),
        operation: operation.to_string(),
    };
    let id = LockId(repo.save_object(FileType::Lock, &mine)?);
    let guard = LockGuard { repo, id };
    // Another process may have locked between our check and our write: check again.
    check_conflicts(repo, exclusive, Some(&id))?;
    Ok(guard)
}

fn check_conflicts(repo: &Repository, exclusive: bool, mine: Option<&LockId>) -> Result<()> {
    let host = crate::hostname();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        if mine.is_some_and(|m| m.to_hex() == name)
            || crate::repository::check_size(FileType::Lock, &name, size).is_err()
        {
            continue;
        }
        let bytes = match repo.read_verified(FileType::Lock, &name) {
            Ok(b) => b,
            Err(_) => continue, // removed meanwhile, or damaged: not a live lock
        };
        let Ok(other) = LockFile::decode(repo.key(), &bytes) else {
            tracing::warn!("ignoring undecodable lock locks/{name}");
            continue;
        };
        if other.hostname == host && !process_alive(other.pid) {
            tracing::info!("removing stale lock locks/{name}: {}", describe(&other));
            repo.block_on(repo.backend().delete(FileType::Lock, &name))?;
            continue;
        }
        if exclusive || other.exclusive {
            return Err(EngineError::Locked(format!(
                "repository is locked: {}; if that process is gone, remove the lock with `strata unlock --remove-all`",
                describe(&other)
            )));
        }
    }
    Ok(())
}

/// What `unlock` did with one lock.
#[derive(Debug, Clone)]
pub struct UnlockedLock {
    pub name: String,
    pub description: String,
    pub removed: bool,
}

/// Removes stale locks (of processes gone from this host, or undecodable), or every lock
/// with `all`. Reports each lock found and whether it was removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<UnlockedLock>> {
    let host = crate::hostname();
    let mut out = Vec::new();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        let decoded = crate::repository::check_size(FileType::Lock, &name, size)
            .and_then(|_| repo.read_verified(FileType::Lock, &name))
            .ok()
            .and_then(|b| LockFile::decode(repo.key(), &b).ok());
        let (description, stale) = match &decoded {
            Some(l) => (describe(l), l.hostname == host && !process_alive(l.pid)),
            None => ("unreadable lock".to_string(), true),
        };
        let removed = all || stale;
        if removed {
            repo.block_on(repo.backend().delete(FileType::Lock, &name))?;
        }
        out.push(UnlockedLock {
            name,
            description,
            removed,
        });
    }
    Ok(out)
}
