//! Taking a lock: for an operation, or by name and mode, waiting while it is taken.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_format::id::LockId;
use strata_format::lock::{LockFile, LockKind};
use strata_storage::FileType;

use super::guard::{Held, Holder, LockGuard};
use super::identity;
use super::judge::check_conflicts;
use super::timing::LockTiming;
use crate::{EngineError, Repository, Result};

/// Takes the lock `op` needs (none for some: see [`crate::Operation`]), retrying for up to
/// `wait` while a conflicting lock is held. An operation that only reads goes on without
/// a lock, with a warning, when none can be written (a read-only medium, read-only
/// credentials, a full disk): a prune running at the same time is then not excluded.
pub fn lock_for(
    repo: &Repository,
    op: crate::Operation,
    wait: Duration,
) -> Result<Option<LockGuard>> {
    use crate::LockMode;
    let kind = match op.lock() {
        LockMode::None => return Ok(None),
        LockMode::Exclusive => LockKind::Exclusive,
        LockMode::Prune => LockKind::Prune,
        LockMode::Read | LockMode::Shared => LockKind::Shared,
    };
    match acquire(
        repo,
        op.name(),
        kind,
        wait,
        LockTiming::default(),
        &op.early_listings(),
    ) {
        Ok(g) => Ok(Some(g)),
        Err(EngineError::Storage(e))
            if op.lock() == LockMode::Read && e.kind != strata_storage::ErrorKind::Transient =>
        {
            tracing::warn!(
                "cannot lock the repository ({e}); reading it without a lock: a prune running \
                 at the same time is not excluded (--no-lock skips the attempt)"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Takes a lock for `operation`. Fails with `Locked` when a conflicting live lock exists.
pub fn lock(repo: &Repository, operation: &str, exclusive: bool) -> Result<LockGuard> {
    lock_with(
        repo,
        operation,
        exclusive,
        Duration::ZERO,
        LockTiming::default(),
    )
}

/// Takes a lock, retrying for up to `wait` while a conflicting lock is held.
pub fn lock_with(
    repo: &Repository,
    operation: &str,
    exclusive: bool,
    wait: Duration,
    timing: LockTiming,
) -> Result<LockGuard> {
    acquire(repo, operation, kind_of(exclusive), wait, timing, &[])
}

/// Takes a lock of any kind, retrying for up to `wait` while a conflicting lock is held.
pub fn lock_kind(
    repo: &Repository,
    operation: &str,
    kind: LockKind,
    wait: Duration,
    timing: LockTiming,
) -> Result<LockGuard> {
    acquire(repo, operation, kind, wait, timing, &[])
}

fn kind_of(exclusive: bool) -> LockKind {
    if exclusive {
        LockKind::Exclusive
    } else {
        LockKind::Shared
    }
}

/// Takes a lock as [`lock_with`] does; once the lock file is written, `early` listings
/// start beside the check for conflicting locks (see `repository::listings`).
fn acquire(
    repo: &Repository,
    operation: &str,
    kind: LockKind,
    wait: Duration,
    timing: LockTiming,
    early: &[FileType],
) -> Result<LockGuard> {
    // What an earlier lock of this handle listed is not this lock's to use.
    repo.drop_early_listings();
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(200);
    let mut first = true;
    loop {
        // A shared lock is first written without looking: the check after the write finds
        // any conflict, and a writer that raced an exclusive lock removes its own. A
        // prune or exclusive one (rare) looks first, so that its lock file never stops a
        // backup starting while it only waits; so does every retry.
        let look_first = kind != LockKind::Shared || !first;
        first = false;
        let result = try_lock(repo, operation, kind, &timing, look_first, early);
        if result.is_err() {
            repo.drop_early_listings();
        }
        match result {
            Err(EngineError::Locked { message: msg, .. }) if Instant::now() < deadline => {
                tracing::info!("waiting for the lock: {msg}");
                // Jitter, so that two waiters do not keep colliding.
                let jitter = Duration::from_millis(rand::random::<u64>() % 200);
                std::thread::sleep((pause + jitter).min(deadline - Instant::now()));
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

fn try_lock(
    repo: &Repository,
    operation: &str,
    kind: LockKind,
    timing: &LockTiming,
    look_first: bool,
    early: &[FileType],
) -> Result<LockGuard> {
    if look_first {
        check_conflicts(repo, kind, None, timing)?;
    }
    let mine = LockFile {
        kind,
        hostname: crate::hostname(),
        username: crate::username(),
        pid: std::process::id(),
        time_ns: crate::now_ns(),
        operation: operation.to_string(),
        process: Some(identity::this_process().clone()),
        session: rand::random(),
    };
    let holder = Holder {
        backend: repo.backend().clone(),
        rt: repo.runtime().clone(),
        key: repo.key().clone(),
        timing: *timing,
        held: Mutex::new(Held {
            id: LockId::default(),
            lock: mine.clone(),
            lost: None,
        }),
    };
    let id = holder.write(&mine)?;
    holder.held().id = id;
    let mut guard = LockGuard {
        holder: Arc::new(holder),
        stop: None,
        refresher: None,
    };
    // Our lock is durable: what is listed from now on stays (see `repository::listings`).
    repo.list_early(early);
    // Another process may have locked between our check and our write: check again (the
    // guard removes our lock file if we lose).
    check_conflicts(repo, kind, Some(&id), timing)?;
    guard.start_refresher(timing.refresh_every);
    repo.lock_slot().register(&guard.holder);
    Ok(guard)
}
