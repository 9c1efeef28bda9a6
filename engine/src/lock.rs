//! Repository locks. Backup, restore and check take shared locks; forget, prune and repair
//! take an exclusive one. A held lock is refreshed in the background (a new lock file with
//! the current time, then the old one is deleted), so that a lock which has not been
//! refreshed for [`LockTiming::stale_after`] belongs to a process that is gone or hung.
//!
//! A lock of a process that no longer runs on this host is stale for certain and removed
//! automatically. A lock from another host blocks until it expires and is removed with
//! `strata unlock` (whose holder is reported), since a lock that looks expired may still
//! belong to a process on a machine whose clock is off.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender};
use strata_format::crypto::MasterKey;
use strata_format::envelope::EncryptedObject;
use strata_format::id::{Digest, LockId};
use strata_format::lock::LockFile;
use strata_storage::{Backend, FileType};

use crate::{EngineError, Repository, Result};

/// How often a held lock is refreshed, and when an unrefreshed one counts as expired.
#[derive(Debug, Clone, Copy)]
pub struct LockTiming {
    pub refresh_every: Duration,
    pub stale_after: Duration,
}

impl Default for LockTiming {
    fn default() -> Self {
        LockTiming {
            refresh_every: Duration::from_secs(5 * 60),
            stale_after: Duration::from_secs(30 * 60),
        }
    }
}

/// What a lock guard needs after the repository handle that made it is gone.
struct Holder {
    backend: Arc<dyn Backend>,
    rt: Arc<tokio::runtime::Runtime>,
    key: MasterKey,
    /// The current lock file (changes with every refresh).
    id: Mutex<LockId>,
    lock: Mutex<LockFile>,
}

impl Holder {
    fn write(&self, lock: &LockFile) -> Result<LockId> {
        let bytes = lock.encode(&self.key, &mut rand::thread_rng());
        let id = LockId(Digest::of_stored(&bytes));
        self.rt.block_on(
            self.backend
                .write(FileType::Lock, &id.to_hex(), Bytes::from(bytes)),
        )?;
        Ok(id)
    }

    fn delete(&self, id: &LockId) -> Result<()> {
        Ok(self
            .rt
            .block_on(self.backend.delete(FileType::Lock, &id.to_hex()))?)
    }

    /// Writes a lock file with the current time, then removes the previous one.
    fn refresh(&self) -> Result<()> {
        let mut lock = self.lock.lock().expect("no panics while locked");
        lock.time_ns = crate::now_ns();
        let new = self.write(&lock)?;
        let old = std::mem::replace(&mut *self.id.lock().expect("no panics while locked"), new);
        self.delete(&old)
    }
}

/// A held lock: refreshed while held, removed from the repository when dropped. It does
/// not borrow the repository, so the repository may load its index after locking.
pub struct LockGuard {
    holder: Arc<Holder>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// The lock file currently held.
    pub fn id(&self) -> LockId {
        *self.holder.id.lock().expect("no panics while locked")
    }

    /// Refreshes the lock now (the background thread also does it periodically).
    pub fn refresh(&self) -> Result<()> {
        self.holder.refresh()
    }

    fn start_refresher(&mut self, every: Duration) {
        let (tx, rx) = bounded::<()>(0);
        let holder = self.holder.clone();
        let handle = std::thread::Builder::new()
            .name("lock refresh".into())
            .spawn(move || {
                // Ends when the guard drops the sender.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = rx.recv_timeout(every)
                {
                    if let Err(e) = holder.refresh() {
                        tracing::warn!("could not refresh the repository lock: {e}");
                    }
                }
            });
        match handle {
            Ok(h) => {
                self.stop = Some(tx);
                self.refresher = Some(h);
            }
            Err(e) => tracing::warn!("cannot start the lock refresher: {e}"),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let id = self.id();
        if let Err(e) = self.holder.delete(&id) {
            tracing::warn!("could not remove lock {id}: {e}");
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
    let age = (crate::now_ns() - l.time_ns).max(0) / 1_000_000_000;
    format!(
        "{kind} lock of `{}` by {}@{} (pid {}), last refreshed {} ago",
        l.operation,
        l.username,
        l.hostname,
        l.pid,
        humanize_secs(age)
    )
}

fn humanize_secs(s: i64) -> String {
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Why a lock is stale, if it is.
fn staleness(l: &LockFile, timing: &LockTiming) -> Option<&'static str> {
    if l.hostname == crate::hostname() && !process_alive(l.pid) {
        return Some("its process no longer runs");
    }
    let age = crate::now_ns().saturating_sub(l.time_ns);
    (age > timing.stale_after.as_nanos() as i64).then_some("it has not been refreshed in time")
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
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(200);
    loop {
        match try_lock(repo, operation, exclusive, &timing) {
            Err(EngineError::Locked(msg)) if Instant::now() < deadline => {
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
    exclusive: bool,
    timing: &LockTiming,
) -> Result<LockGuard> {
    check_conflicts(repo, exclusive, None, timing)?;
    let mine = LockFile {
        exclusive,
        hostname: crate::hostname(),
        username: crate::username(),
        pid: std::process::id(),
        time_ns: crate::now_ns(),
        operation: operation.to_string(),
    };
    let holder = Holder {
        backend: repo.backend().clone(),
        rt: repo.runtime(),
        key: repo.key().clone(),
        id: Mutex::new(LockId::default()),
        lock: Mutex::new(mine.clone()),
    };
    let id = holder.write(&mine)?;
    *holder.id.lock().expect("no panics while locked") = id;
    let mut guard = LockGuard {
        holder: Arc::new(holder),
        stop: None,
        refresher: None,
    };
    // Another process may have locked between our check and our write: check again (the
    // guard removes our lock file if we lose).
    check_conflicts(repo, exclusive, Some(&id), timing)?;
    guard.start_refresher(timing.refresh_every);
    Ok(guard)
}

fn check_conflicts(
    repo: &Repository,
    exclusive: bool,
    mine: Option<&LockId>,
    timing: &LockTiming,
) -> Result<()> {
    let host = crate::hostname();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        if mine.is_some_and(|m| m.to_hex() == name)
            || crate::repository::check_size(FileType::Lock, &name, size).is_err()
        {
            continue;
        }
        let bytes = match read_lock(repo, &name)? {
            Some(b) => b,
            None => continue,
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
            let advice = match staleness(&other, timing) {
                Some(why) => format!(
                    "the lock looks stale ({why}); if that process is gone, remove it with `strata unlock`"
                ),
                None => "wait for it to finish, or retry with --retry-lock".to_string(),
            };
            return Err(EngineError::Locked(format!(
                "repository is locked: {}; {advice}",
                describe(&other)
            )));
        }
    }
    Ok(())
}

/// Reads a lock file: `None` when it is gone (removed meanwhile) or damaged (a live holder
/// replaces it at its next refresh). Any other failure is an error: a lock that cannot be
/// read might be live, so nothing may proceed as if it were not there.
fn read_lock(repo: &Repository, name: &str) -> Result<Option<bytes::Bytes>> {
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

/// What `unlock` did with one lock.
#[derive(Debug, Clone)]
pub struct UnlockedLock {
    pub name: String,
    pub description: String,
    pub removed: bool,
}

/// Removes stale locks (of processes gone from this host, not refreshed within the expiry
/// time, or undecodable), or every lock with `all`. Reports each lock found and whether it
/// was removed.
pub fn unlock(repo: &Repository, all: bool) -> Result<Vec<UnlockedLock>> {
    unlock_with(repo, all, LockTiming::default())
}

/// [`unlock`] with a given expiry time.
pub fn unlock_with(repo: &Repository, all: bool, timing: LockTiming) -> Result<Vec<UnlockedLock>> {
    let mut out = Vec::new();
    for (name, size) in repo.block_on(repo.backend().list(FileType::Lock))? {
        // Unreadable for a reason other than damage: it may be live; keep it (unless all).
        let read = match crate::repository::check_size(FileType::Lock, &name, size) {
            Ok(()) => match read_lock(repo, &name) {
                Ok(r) => r,
                Err(e) if !all => {
                    out.push(UnlockedLock {
                        name,
                        description: format!("lock that could not be read ({e})"),
                        removed: false,
                    });
                    continue;
                }
                Err(_) => None,
            },
            Err(_) => None,
        };
        let decoded = read.and_then(|b| LockFile::decode(repo.key(), &b).ok());
        let (description, stale) = match &decoded {
            Some(l) => {
                let why = staleness(l, &timing);
                let mut d = describe(l);
                if let Some(why) = why {
                    d.push_str(&format!(" (stale: {why})"));
                }
                (d, why.is_some())
            }
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
